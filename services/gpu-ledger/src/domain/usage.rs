//! GPU-hours used against GPU-hours granted. A GPU held for part of a period is that part
//! of the period's hours of GPU time: each grant (a `single` or `post` transfer crediting the
//! team's grant account) counts its GPUs x the whole hours from the moment it takes effect
//! (its transfer's time, or the period's start if earlier) to the period's end, and each
//! reclaim (a transfer debiting the grant account) takes off its GPUs x the whole hours left
//! at its time. Exact integer arithmetic; the hours left are floored to whole hours (a grant
//! at 10:20 counts from 11:00), so a mid-period grant is never credited with time before it.
//! Operators report hours used. A report that takes a team past its granted hours is
//! recorded (the hours were used) and flagged as an overrun, never silently accepted: the
//! report's answer, its event and the utilisation all say so.

use chrono::{DateTime, Utc};

/// What one report does to a team's use of a model in a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub granted_hours: i64,
    pub used_hours: i64,
    /// Used / granted in thousandths (None when nothing is granted).
    pub utilisation_permille: Option<i64>,
    pub overrun: bool,
}

/// Whole hours from `at` to `end`, floored, counting from `start` when `at` is earlier;
/// 0 at or after `end`.
pub fn hours_left(at: DateTime<Utc>, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    let from = at.max(start);
    if from >= end {
        return 0;
    }
    // Positive, so truncation is the floor.
    (end - from).num_seconds() / 3600
}

/// Granted GPU-hours for a period from `[start, end)` from the changes of a team's posted
/// GPUs (`(when, +GPUs granted or -GPUs reclaimed)`), each counted for the whole hours left
/// in the period at its time. `None` when a product overflows (no real programme comes near).
pub fn prorated_hours(
    changes: &[(DateTime<Utc>, i64)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<i64> {
    let mut total: i128 = 0;
    for (at, gpus) in changes {
        total = total.checked_add(i128::from(*gpus) * i128::from(hours_left(*at, start, end)))?;
    }
    i64::try_from(total.max(0)).ok()
}

/// Assesses `used` GPU-hours against `granted_hours` (see [`prorated_hours`]).
pub fn assess(used: i64, granted_hours: i64) -> Assessment {
    let granted_hours = granted_hours.max(0);
    let utilisation_permille = if granted_hours > 0 {
        // Saturates: a ratio past i64 is "far over" either way.
        Some(i64::try_from(i128::from(used) * 1000 / i128::from(granted_hours)).unwrap_or(i64::MAX))
    } else {
        None
    };
    Assessment {
        granted_hours,
        used_hours: used,
        utilisation_permille,
        overrun: used > granted_hours,
    }
}

/// The total after adding a report, refusing an overflow.
pub fn add(used_before: i64, hours: i64) -> Option<i64> {
    used_before.checked_add(hours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn h1_2026() -> (DateTime<Utc>, DateTime<Utc>) {
        // 2026H1 in KST: 2026-01-01 00:00 KST to 2026-07-01 00:00 KST, 4,344 hours.
        let start = Utc.with_ymd_and_hms(2025, 12, 31, 15, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 6, 30, 15, 0, 0).unwrap();
        assert_eq!((end - start).num_hours(), 4_344);
        (start, end)
    }

    #[test]
    fn use_within_the_grant_is_not_an_overrun() {
        let (start, end) = h1_2026();
        let granted = prorated_hours(&[(start - Duration::days(30), 1)], start, end).unwrap();
        assert_eq!(
            granted, 4_344,
            "granted before the period: the whole period"
        );
        let a = assess(2_000, granted);
        assert_eq!(a.utilisation_permille, Some(460));
        assert!(!a.overrun);
        let full = assess(4_344, granted);
        assert_eq!(
            (full.utilisation_permille, full.overrun),
            (Some(1000), false)
        );
    }

    #[test]
    fn one_hour_past_the_grant_is_an_overrun() {
        let a = assess(4_345, 4_344);
        assert!(a.overrun);
        assert_eq!(a.utilisation_permille, Some(1000));
        let none = assess(1, 0);
        assert_eq!(
            (none.granted_hours, none.utilisation_permille, none.overrun),
            (0, None, true)
        );
        assert_eq!(assess(0, -5).granted_hours, 0);
    }

    #[test]
    fn a_grant_half_way_through_the_period_counts_the_hours_left() {
        let (start, end) = h1_2026();
        let half_way = start + Duration::hours(2_172);
        // 2 GPUs from half-way: 2 x 2,172 GPU-hours, not 2 x 4,344.
        let granted = prorated_hours(&[(half_way, 2)], start, end).unwrap();
        assert_eq!(granted, 4_344);
        assert!(!assess(4_344, granted).overrun, "up to the pro-rated hours");
        assert!(assess(4_345, granted).overrun, "one hour past them");
        // Whole hours, floored: 20 minutes past the half-way hour counts from the next hour.
        let late = prorated_hours(&[(half_way + Duration::minutes(20), 1)], start, end).unwrap();
        assert_eq!(late, 2_171);
        // Exactly on the hour counts that hour.
        assert_eq!(prorated_hours(&[(half_way, 1)], start, end), Some(2_172));
    }

    #[test]
    fn reclaims_and_grants_outside_the_period() {
        let (start, end) = h1_2026();
        let q2 = start + Duration::hours(2_160);
        // 4 GPUs from the start, 3 taken back at q2: 4 x 4,344 - 3 x 2,184.
        let granted = prorated_hours(&[(start, 4), (q2, -3)], start, end).unwrap();
        assert_eq!(granted, 4 * 4_344 - 3 * 2_184);
        assert_eq!(
            prorated_hours(&[(end, 5)], start, end),
            Some(0),
            "after the end"
        );
        assert_eq!(
            prorated_hours(&[(end + Duration::days(9), 5)], start, end),
            Some(0)
        );
        assert_eq!(prorated_hours(&[], start, end), Some(0));
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let (start, end) = h1_2026();
        assert_eq!(prorated_hours(&[(start, i64::MAX)], start, end), None);
        assert_eq!(add(i64::MAX, 1), None);
        assert_eq!(add(1, 2), Some(3));
        let far = assess(i64::MAX, 1);
        assert!(far.overrun);
        assert_eq!(far.utilisation_permille, Some(i64::MAX));
    }
}
