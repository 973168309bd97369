//! GPU-hours used against GPU-hours granted. A grant of N GPUs for a period is N x the
//! period's hours of GPU time; operators report hours used. A report that takes a team past
//! its granted hours is recorded (the hours were used) and flagged as an overrun, never
//! silently accepted: the report's answer, its event and the utilisation all say so.

/// What one report does to a team's use of a model in a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub granted_hours: i64,
    pub used_hours: i64,
    /// Used / granted in thousandths (None when nothing is granted).
    pub utilisation_permille: Option<i64>,
    pub overrun: bool,
}

/// Assesses `used` GPU-hours against `granted_gpus` for a period of `period_hours`.
/// `None` when a product overflows (no real programme comes near).
pub fn assess(used: i64, granted_gpus: i64, period_hours: i64) -> Option<Assessment> {
    let granted_hours = granted_gpus.max(0).checked_mul(period_hours)?;
    let utilisation_permille = if granted_hours > 0 {
        // Saturates: a ratio past i64 is "far over" either way.
        Some(i64::try_from(i128::from(used) * 1000 / i128::from(granted_hours)).unwrap_or(i64::MAX))
    } else {
        None
    };
    Some(Assessment {
        granted_hours,
        used_hours: used,
        utilisation_permille,
        overrun: used > granted_hours,
    })
}

/// The total after adding a report, refusing an overflow.
pub fn add(used_before: i64, hours: i64) -> Option<i64> {
    used_before.checked_add(hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_within_the_grant_is_not_an_overrun() {
        let a = assess(2_000, 1, 4_344).unwrap();
        assert_eq!(a.granted_hours, 4_344);
        assert_eq!(a.utilisation_permille, Some(460));
        assert!(!a.overrun);
        let full = assess(4_344, 1, 4_344).unwrap();
        assert_eq!(
            (full.utilisation_permille, full.overrun),
            (Some(1000), false)
        );
    }

    #[test]
    fn one_hour_past_the_grant_is_an_overrun() {
        let a = assess(4_345, 1, 4_344).unwrap();
        assert!(a.overrun);
        assert_eq!(a.utilisation_permille, Some(1000));
        let none = assess(1, 0, 4_344).unwrap();
        assert_eq!(
            (none.granted_hours, none.utilisation_permille, none.overrun),
            (0, None, true)
        );
        assert_eq!(assess(0, -5, 4_344).unwrap().granted_hours, 0);
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        assert_eq!(assess(1, i64::MAX, 2), None);
        assert_eq!(add(i64::MAX, 1), None);
        assert_eq!(add(1, 2), Some(3));
        let far = assess(i64::MAX, 1, 1).unwrap();
        assert!(far.overrun);
        assert_eq!(far.utilisation_permille, Some(i64::MAX));
    }
}
