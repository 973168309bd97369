//! A gate's expert panel as plain functions: its score sheet (a [`Rubric`] without
//! minimums, so a sheet is checked exactly as a stage's) and each team's consensus when
//! the panel closes, out of 100.
//!
//! The consensus is the stage consensus without normalisation
//! ([`ranking::consensus_by_criterion`]: the mean of the reviewers' totals, split over the
//! criteria): normalisation calibrates a reviewer over the many proposals they scored, and
//! a gate's few teams cannot calibrate anyone. The score out of 100 is computed from the
//! whole-point totals in integers, never from the rounded consensus:
//! `score = Σ totals × 100 / (reviewers × max_total)`, kept in ten-thousandths and rounded
//! half up at the fourth decimal place (all values are non-negative, so half up is half
//! away from zero, the stage consensus's rule).

use super::ranking::{self, Sheet};
use super::rubric::{Criterion, Rubric};
use super::Centi;
use kaip_contracts::dto::panels::PanelCriterion;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Ten-thousandths: a score out of 100 is at most `1_000_000`.
pub const SCORE_SCALE: i64 = 10_000;

/// The panel's score sheet as a rubric: no minimums (a panel scores, it does not exclude).
pub fn rubric(criteria: &[PanelCriterion]) -> Rubric {
    Rubric {
        criteria: criteria
            .iter()
            .map(|c| Criterion {
                key: c.key.clone(),
                name: c.name.clone(),
                max_points: c.max_points,
                min_points: None,
            })
            .collect(),
        min_total: None,
    }
}

/// One team's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamScore {
    /// Out of 100, in ten-thousandths (`83.3333` = `833_333`).
    pub score_e4: i64,
    pub total: Centi,
    pub per_criterion: BTreeMap<String, Centi>,
    pub reviewers: u32,
}

/// The mean of `totals` (whole points, each out of `max_total`) as a score out of 100 in
/// ten-thousandths, rounded half up. `None` without totals or with a `max_total` below 1.
pub fn score_e4(totals: &[i64], max_total: i64) -> Option<i64> {
    if totals.is_empty() || max_total < 1 {
        return None;
    }
    let sum: i128 = totals.iter().map(|&t| i128::from(t)).sum();
    let den = totals.len() as i128 * i128::from(max_total);
    Some(ranking::round_div(sum * 100 * i128::from(SCORE_SCALE), den))
}

/// Each team's consensus from the counting sheets (`Sheet::proposal` is the team's
/// consortium id). Teams without a sheet are absent.
pub fn consensus(rubric: &Rubric, sheets: &[Sheet]) -> BTreeMap<Uuid, TeamScore> {
    let keys: Vec<String> = rubric.criteria.iter().map(|c| c.key.clone()).collect();
    let by_team = ranking::consensus_by_criterion(sheets, &keys, false);
    let max_total = rubric.max_total();
    by_team
        .into_iter()
        .filter_map(|(team, c)| {
            let totals: Vec<i64> = sheets
                .iter()
                .filter(|s| s.proposal == team)
                .map(|s| keys.iter().filter_map(|k| s.scores.get(k)).sum())
                .collect();
            let score_e4 = score_e4(&totals, max_total)?;
            Some((
                team,
                TeamScore {
                    score_e4,
                    total: c.total,
                    per_criterion: c.per_criterion,
                    reviewers: totals.len() as u32,
                },
            ))
        })
        .collect()
}

/// A score in ten-thousandths as the exact decimal string events carry: no trailing
/// zeros (`875_000` is `"87.5"`, `1_000_000` is `"100"`, `833_333` is `"83.3333"`).
pub fn format_e4(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let abs = v.unsigned_abs();
    let (int, frac) = (abs / SCORE_SCALE as u64, abs % SCORE_SCALE as u64);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let digits = format!("{frac:04}");
    format!("{sign}{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crit(key: &str, max: i64) -> PanelCriterion {
        PanelCriterion {
            key: key.into(),
            name: key.into(),
            max_points: max,
        }
    }

    fn sheet(reviewer: &str, team: u128, a: i64, b: i64) -> Sheet {
        Sheet {
            reviewer: reviewer.into(),
            proposal: Uuid::from_u128(team),
            scores: [("a".to_string(), a), ("b".to_string(), b)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn scores_are_exact_out_of_100_and_rounded_half_up_at_the_fourth_place() {
        // 250 of 300 = 83.33333..: 83.3333.
        assert_eq!(score_e4(&[80, 85, 85], 100), Some(833_333));
        // 2 of 3 = 66.66666..: 66.6667 (the fifth place is 6: up).
        assert_eq!(score_e4(&[2], 3), Some(666_667));
        // 1 of 16 = 6.25 exactly; 1 of 32 = 3.125 exactly.
        assert_eq!(score_e4(&[1], 16), Some(62_500));
        assert_eq!(score_e4(&[1], 32), Some(31_250));
        // 1 of 160000 = 0.000625 (6.25 ten-thousandths): 0.0006.
        assert_eq!(score_e4(&[1], 160_000), Some(6));
        // 1 of 320000 = 0.0003125 -> 0.0003; 3 of 160000 = 0.001875 -> 0.0019.
        assert_eq!(score_e4(&[1], 320_000), Some(3));
        assert_eq!(score_e4(&[3], 160_000), Some(19));
        // 1 of 80000 x 100 = 0.00125 -> 0.0013 (exactly half: up).
        assert_eq!(score_e4(&[1], 80_000), Some(13));
        // The edges: nothing and everything.
        assert_eq!(score_e4(&[0, 0], 35), Some(0));
        assert_eq!(score_e4(&[35, 35], 35), Some(1_000_000));
        assert_eq!(score_e4(&[], 100), None);
        assert_eq!(score_e4(&[1], 0), None);
        // Extreme sheets do not overflow (i128 inside).
        assert_eq!(score_e4(&[i64::MAX, i64::MAX], i64::MAX), Some(1_000_000));
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format_e4(875_000), "87.5");
        assert_eq!(format_e4(1_000_000), "100");
        assert_eq!(format_e4(833_333), "83.3333");
        assert_eq!(format_e4(6), "0.0006");
        assert_eq!(format_e4(0), "0");
        assert_eq!(format_e4(12_340), "1.234");
    }

    #[test]
    fn the_consensus_is_the_stage_consensus_and_the_score_its_exact_share_of_the_maximum() {
        let r = rubric(&[crit("a", 20), crit("b", 15)]);
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.max_total(), 35);
        let sheets = [
            sheet("r1", 1, 20, 10),
            sheet("r2", 1, 15, 12),
            sheet("r3", 1, 18, 11),
            sheet("r1", 2, 5, 0),
        ];
        let out = consensus(&r, &sheets);
        let one = &out[&Uuid::from_u128(1)];
        // Totals 30, 27, 29: mean 28.67 points; 86 of 105 = 81.90476..: 81.9048.
        assert_eq!(one.total, Centi(2867));
        assert_eq!(one.score_e4, 819_048);
        assert_eq!(one.reviewers, 3);
        assert_eq!(one.per_criterion.values().map(|c| c.0).sum::<i64>(), 2867);
        let two = &out[&Uuid::from_u128(2)];
        // 5 of 35 = 14.285714..: 14.2857.
        assert_eq!((two.score_e4, two.reviewers), (142_857, 1));
        assert_eq!(format_e4(two.score_e4), "14.2857");
    }
}
