//! GPU-hours used against GPU-hours granted. A GPU held for part of a period is that part
//! of the period's hours of GPU time: each grant (a `single` or `post` transfer crediting the
//! team's grant account) counts its GPUs x the time from the moment it takes effect (its
//! transfer's time, a dated tranche's date, or the period's start if earlier) to the period's
//! end, and each reclaim (a transfer debiting the grant account) takes off its GPUs x the
//! time left at its time. Exact integer arithmetic in GPU-microseconds, floored to whole
//! GPU-hours once for the line, so a mid-period grant is never credited with time before it
//! and rounding costs a team less than one GPU-hour in all, however many changes it had.
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

/// Microseconds from `at` to `end`, counting from `start` when `at` is earlier; 0 at or
/// after `end`.
pub fn micros_left(at: DateTime<Utc>, start: DateTime<Utc>, end: DateTime<Utc>) -> i128 {
    let from = at.max(start);
    if from >= end {
        return 0;
    }
    // Positive; a period is months long, far inside the range.
    i128::from((end - from).num_microseconds().unwrap_or(i64::MAX))
}

const MICROS_PER_HOUR: i128 = 3_600_000_000;

/// Granted GPU-hours for a period from `[start, end)` from the changes of a team's posted
/// GPUs (`(when it takes effect, +GPUs granted or -GPUs reclaimed)`): the exact GPU-time,
/// the sum of each change's GPUs x the time from it (or the period's start) to the period's
/// end, in GPU-microseconds, floored to whole GPU-hours once at the end. `None` when it
/// overflows (no real programme comes near).
pub fn prorated_hours(
    changes: &[(DateTime<Utc>, i64)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<i64> {
    let mut total: i128 = 0;
    for (at, gpus) in changes {
        total = total.checked_add(i128::from(*gpus).checked_mul(micros_left(*at, start, end))?)?;
    }
    // Floored once (div_euclid: a negative total floors down, and is then clamped to 0).
    i64::try_from(total.div_euclid(MICROS_PER_HOUR).max(0)).ok()
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
        // Floored to whole GPU-hours: 1 GPU for 2,171 h 40 min is 2,171.
        let late = prorated_hours(&[(half_way + Duration::minutes(20), 1)], start, end).unwrap();
        assert_eq!(late, 2_171);
        // Exactly on the hour counts that hour.
        assert_eq!(prorated_hours(&[(half_way, 1)], start, end), Some(2_172));
    }

    #[test]
    fn the_line_is_rounded_once_not_each_change() {
        let (start, end) = h1_2026();
        // 512 GPUs posted one second after the period's start: 512 GPU-seconds short of the
        // whole period, one GPU-hour after the floor (rounding each GPU's hours would lose
        // 512).
        let late = prorated_hours(&[(start + Duration::seconds(1), 512)], start, end).unwrap();
        assert_eq!(late, 512 * 4_344 - 1);
        // Two grants of 1 GPU each 20 minutes past an hour: 2 x 2,171 h 40 min is 4,343 h 20
        // min, floored once to 4,343 (4,342 when each is floored).
        let at = start + Duration::hours(2_172) + Duration::minutes(20);
        assert_eq!(prorated_hours(&[(at, 1), (at, 1)], start, end), Some(4_343));
        let later = at + Duration::seconds(1);
        assert_eq!(
            prorated_hours(&[(at, 1), (later, 1)], start, end),
            Some(4_343)
        );
        // A grant and a reclaim of the same GPU at the same moment cancel exactly.
        assert_eq!(
            prorated_hours(&[(start, 1), (at, 1), (at, -1)], start, end),
            Some(4_344)
        );
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
