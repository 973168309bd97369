//! The GPU catalogue's arithmetic: models with an H100-equivalence factor (a positive
//! integer: H100 = 1, B200 = 2), and capacity expressed in H100-equivalents. H100-eq is
//! always derived from units x factor, never stored, and never a float.

use kaip_contracts::H100Eq;

// The model-code and period rules live in the contracts so that the milestones service can
// check a reallocation plan by the ledger's own rules before it publishes it.
pub use kaip_contracts::gpu_rules::{check_model_code, check_period, period_start, Invalid};

/// The largest factor a model may have. Generous (a future part worth 64 H100s) but small
/// enough that units x factor cannot overflow for any balance the ledger accepts.
pub const MAX_FACTOR: i64 = 64;

pub fn check_factor(factor: i64) -> Result<(), Invalid> {
    if (1..=MAX_FACTOR).contains(&factor) {
        Ok(())
    } else {
        Err(Invalid {
            field: "h100_factor",
            rule: format!("must be a whole number from 1 to {MAX_FACTOR} (H100 = 1, B200 = 2)"),
        })
    }
}

/// The period after `period` (`2026H1` -> `2026H2`, `2026H2` -> `2027H1`, `2026Q4` ->
/// `2027Q1`, `2026` -> `2027`).
pub fn next_period(period: &str) -> Option<String> {
    check_period(period).ok()?;
    let year: i32 = period.get(..4)?.parse().ok()?;
    Some(match period.get(4..)? {
        "" => format!("{}", year + 1),
        "H1" => format!("{year}H2"),
        "H2" => format!("{}H1", year + 1),
        "Q4" => format!("{}Q1", year + 1),
        q => format!("{year}Q{}", q.get(1..)?.parse::<u8>().ok()? + 1),
    })
}

/// How many hours a period lasts (KST calendar): a half year is 4,344 or 4,416 hours.
pub fn period_hours(period: &str) -> Option<i64> {
    let (start, end) = period_bounds(period)?;
    Some((end - start).num_hours())
}

/// When a period starts and when it ends (the next period's start), midnight KST: whole
/// hours in UTC too (KST is UTC+9).
pub fn period_bounds(
    period: &str,
) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    Some((period_start(period)?, period_start(&next_period(period)?)?))
}

/// Units of a model in H100-equivalents, exactly. `None` when it would overflow i64 (it
/// cannot for balances the ledger accepts with factors up to [`MAX_FACTOR`], but the caller
/// must not be able to make it panic).
pub fn h100_eq(units: i64, factor: i64) -> Option<H100Eq> {
    units.checked_mul(factor).map(H100Eq)
}

/// How many units of a model make `target` H100-eq, when it divides exactly: "1,024
/// H100-eq" is 512 B200 or 1,024 H100, and not a fraction of a GPU of either.
pub fn units_for(target: H100Eq, factor: i64) -> Option<i64> {
    (factor > 0 && target.0 >= 0 && target.0 % factor == 0).then(|| target.0 / factor)
}

/// A source of a pool as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceBalance {
    pub id: uuid::Uuid,
    pub name: String,
    pub leased: bool,
    pub phase: Option<String>,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
}

/// What one pool's sources supplied: per source (posted debits less what came back to it),
/// and the totals, leased and government-owned, in units and in H100-eq. Sums are taken in
/// i128 and saturate at the edge of i64 (no real programme comes near; a saturated figure
/// is still an integer, never a wrapped one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceTotals {
    /// (units supplied, H100-eq) per source, in the order given.
    pub per_source: Vec<(i64, H100Eq)>,
    pub supplied: (i64, H100Eq),
    pub leased: (i64, H100Eq),
    pub government: (i64, H100Eq),
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn pair(units: i128, factor: i64) -> (i64, H100Eq) {
    (
        saturate(units),
        H100Eq(saturate(units * i128::from(factor))),
    )
}

pub fn source_totals(sources: &[SourceBalance], factor: i64) -> SourceTotals {
    let mut out = SourceTotals::default();
    let (mut all, mut leased, mut government) = (0i128, 0i128, 0i128);
    for s in sources {
        let net = i128::from(s.debits_posted) - i128::from(s.credits_posted);
        out.per_source.push(pair(net, factor));
        all += net;
        if s.leased {
            leased += net;
        } else {
            government += net;
        }
    }
    out.supplied = pair(all, factor);
    out.leased = pair(leased, factor);
    out.government = pair(government, factor);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_whole_and_bounded() {
        assert!(check_factor(1).is_ok());
        assert!(check_factor(MAX_FACTOR).is_ok());
        for bad in [0, -1, MAX_FACTOR + 1, i64::MIN, i64::MAX] {
            assert_eq!(check_factor(bad).unwrap_err().field, "h100_factor");
        }
    }

    #[test]
    fn periods_follow_each_other_and_last_their_hours() {
        assert_eq!(next_period("2026H1").as_deref(), Some("2026H2"));
        assert_eq!(next_period("2026H2").as_deref(), Some("2027H1"));
        assert_eq!(next_period("2026Q1").as_deref(), Some("2026Q2"));
        assert_eq!(next_period("2026Q4").as_deref(), Some("2027Q1"));
        assert_eq!(next_period("2026").as_deref(), Some("2027"));
        assert_eq!(next_period("2026H3"), None);
        assert_eq!(period_hours("2026"), Some(365 * 24));
        assert_eq!(period_hours("2028"), Some(366 * 24));
        assert_eq!(period_hours("2026H1"), Some(181 * 24));
        assert_eq!(period_hours("2026H2"), Some(184 * 24));
        assert_eq!(period_hours("2028Q1"), Some(91 * 24));
        assert_eq!(period_hours("2026Q4"), Some(92 * 24));
        assert_eq!(period_hours("x"), None);
    }

    #[test]
    fn h100_equivalents_are_exact_integers() {
        assert_eq!(h100_eq(512, 2), Some(H100Eq(1024)));
        assert_eq!(h100_eq(1024, 1), Some(H100Eq(1024)));
        assert_eq!(h100_eq(0, 2), Some(H100Eq(0)));
        assert_eq!(h100_eq(i64::MAX, 2), None);
        assert_eq!(units_for(H100Eq(1024), 2), Some(512));
        assert_eq!(units_for(H100Eq(1024), 1), Some(1024));
        assert_eq!(units_for(H100Eq(1025), 2), None, "half a B200 is not a GPU");
        assert_eq!(units_for(H100Eq(-2), 2), None);
        assert_eq!(units_for(H100Eq(4), 0), None);
    }

    #[test]
    fn sources_are_totalled_by_type_in_units_and_h100_eq_without_wrapping() {
        let src = |leased: bool, d: i64, c: i64| SourceBalance {
            id: uuid::Uuid::now_v7(),
            name: "s".into(),
            leased,
            phase: None,
            debits_posted: d,
            credits_posted: c,
            debits_pending: 0,
        };
        let t = source_totals(
            &[src(true, 300, 44), src(false, 200, 0), src(true, 10, 0)],
            2,
        );
        assert_eq!(
            t.per_source,
            vec![(256, H100Eq(512)), (200, H100Eq(400)), (10, H100Eq(20))]
        );
        assert_eq!(t.leased, (266, H100Eq(532)));
        assert_eq!(t.government, (200, H100Eq(400)));
        assert_eq!(t.supplied, (466, H100Eq(932)));
        let huge = source_totals(&[src(true, i64::MAX, 0), src(true, i64::MAX, 0)], 64);
        assert_eq!(huge.supplied, (i64::MAX, H100Eq(i64::MAX)));
        assert_eq!(huge.per_source[0], (i64::MAX, H100Eq(i64::MAX)));
        assert_eq!(source_totals(&[], 2), SourceTotals::default());
    }
}
