//! From reviewers' sheets to a ranking: optional per-reviewer normalisation, a consensus per
//! proposal, and a ranking with a declared tie-break order.

use super::Centi;
use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use uuid::Uuid;

/// One reviewer's total for one proposal, in whole points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewerTotal {
    pub reviewer: String,
    pub proposal: Uuid,
    pub total: i64,
}

fn round_div(num: i128, den: i128) -> i64 {
    // Half away from zero; den > 0.
    let q = if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    q as i64
}

/// Z-score normalisation against harsh or lenient reviewers: each reviewer's totals are
/// mapped onto the panel's distribution, `x' = μ + σ (x − μ_r) / σ_r`. A reviewer with
/// fewer than two scores, or who gave every proposal the same total, cannot be calibrated:
/// their totals are kept as given. Returns each input's normalised total, in input order.
pub fn normalise(totals: &[ReviewerTotal]) -> Vec<Centi> {
    if totals.is_empty() {
        return Vec::new();
    }
    let stats = |xs: &[f64]| {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    };
    let all: Vec<f64> = totals.iter().map(|t| t.total as f64).collect();
    let (mu, sigma) = stats(&all);
    let mut by_reviewer: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for t in totals {
        by_reviewer
            .entry(&t.reviewer)
            .or_default()
            .push(t.total as f64);
    }
    let per_reviewer: BTreeMap<&str, (f64, f64, usize)> = by_reviewer
        .iter()
        .map(|(r, xs)| {
            let (m, s) = stats(xs);
            (*r, (m, s, xs.len()))
        })
        .collect();
    totals
        .iter()
        .map(|t| {
            let (m, s, n) = per_reviewer[t.reviewer.as_str()];
            if n < 2 || s == 0.0 {
                Centi::from_points(t.total)
            } else {
                Centi((100.0 * (mu + sigma * (t.total as f64 - m) / s)).round() as i64)
            }
        })
        .collect()
}

/// The consensus of several reviewers: the mean, in hundredths of a point.
pub fn consensus(values: &[Centi]) -> Option<Centi> {
    if values.is_empty() {
        return None;
    }
    let sum: i128 = values.iter().map(|v| i128::from(v.0)).sum();
    Some(Centi(round_div(sum, values.len() as i128)))
}

/// How ties in the total are broken, in the declared order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TieBreak {
    /// Higher consensus on this criterion ranks first.
    Criterion(String),
    /// The earlier submission ranks first.
    EarlierSubmission,
}

/// A proposal's consensus, ready to rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub proposal: Uuid,
    pub total: Centi,
    pub per_criterion: BTreeMap<String, Centi>,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranked {
    /// 1-based.
    pub position: usize,
    pub proposal: Uuid,
    pub total: Centi,
    /// When this proposal tied on total with the one above it, the rule that separated them.
    pub tie_broken_by: Option<String>,
}

fn compare(a: &Standing, b: &Standing, rules: &[TieBreak]) -> (Ordering, Option<String>) {
    let by_total = b.total.cmp(&a.total);
    if by_total != Ordering::Equal {
        return (by_total, None);
    }
    for rule in rules {
        let ord = match rule {
            TieBreak::Criterion(key) => b.per_criterion.get(key).cmp(&a.per_criterion.get(key)),
            TieBreak::EarlierSubmission => a.submitted_at.cmp(&b.submitted_at),
        };
        if ord != Ordering::Equal {
            let label = match rule {
                TieBreak::Criterion(key) => format!("higher {key} score"),
                TieBreak::EarlierSubmission => "earlier submission".to_owned(),
            };
            return (ord, Some(label));
        }
    }
    // Always total: the last resort is the proposal id (time-ordered UUIDv7).
    (
        a.proposal.cmp(&b.proposal),
        Some("proposal id (all declared tie-breaks were equal)".to_owned()),
    )
}

/// Ranks standings by total, breaking ties by `rules` in order.
pub fn rank(standings: &[Standing], rules: &[TieBreak]) -> Vec<Ranked> {
    let mut sorted: Vec<&Standing> = standings.iter().collect();
    sorted.sort_by(|a, b| compare(a, b, rules).0);
    sorted
        .iter()
        .enumerate()
        .map(|(i, s)| Ranked {
            position: i + 1,
            proposal: s.proposal,
            total: s.total,
            tie_broken_by: (i > 0 && sorted[i - 1].total == s.total)
                .then(|| compare(sorted[i - 1], s, rules).1)
                .flatten(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(reviewer: &str, proposal: u128, total: i64) -> ReviewerTotal {
        ReviewerTotal {
            reviewer: reviewer.into(),
            proposal: Uuid::from_u128(proposal),
            total,
        }
    }

    #[test]
    fn a_harsh_and_a_lenient_reviewer_agree_after_normalisation() {
        // Both order the three proposals alike; one scores 20 points lower throughout.
        let totals = [
            t("harsh", 1, 50),
            t("harsh", 2, 60),
            t("harsh", 3, 70),
            t("kind", 1, 70),
            t("kind", 2, 80),
            t("kind", 3, 90),
        ];
        let n = normalise(&totals);
        assert_eq!(n[0], n[3]);
        assert_eq!(n[1], n[4]);
        assert_eq!(n[2], n[5]);
        assert_eq!(
            n[1],
            Centi(7000),
            "the middle proposal sits on the panel mean"
        );
    }

    #[test]
    fn uncalibratable_reviewers_keep_their_scores() {
        let totals = [t("once", 1, 77), t("flat", 1, 60), t("flat", 2, 60)];
        assert_eq!(
            normalise(&totals),
            vec![Centi(7700), Centi(6000), Centi(6000)]
        );
    }

    #[test]
    fn consensus_is_the_exact_mean() {
        assert_eq!(consensus(&[Centi(7000), Centi(8001)]), Some(Centi(7501)));
        assert_eq!(
            consensus(&[Centi(1), Centi(2)]),
            Some(Centi(2)),
            "half rounds away from zero"
        );
        assert_eq!(consensus(&[]), None);
    }

    #[test]
    fn normalisation_follows_the_definition_on_an_uneven_panel() {
        // Panel of 8 totals: μ = 65.625, σ = 15.0909 (population). Reviewer a: μ_a = 60,
        // σ_a = 16.3299; b: μ_b = 72.5, σ_b = 2.5; c scored once, d gave the same total
        // twice: both kept as given. a's 40 → 65.625 + 15.0909 · (40 − 60) / 16.3299 =
        // 47.1425; a's 60 sits on a's mean, so on the panel's: 65.625, whose hundredths
        // (6562.5) round half away from zero to 6563.
        let totals = [
            t("a", 1, 40),
            t("a", 2, 60),
            t("a", 3, 80),
            t("b", 1, 70),
            t("b", 2, 75),
            t("c", 1, 90),
            t("d", 1, 55),
            t("d", 2, 55),
        ];
        assert_eq!(
            normalise(&totals),
            [4714, 6563, 8411, 5053, 8072, 9000, 5500, 5500].map(Centi)
        );
        assert_eq!(normalise(&[]), Vec::<Centi>::new());
    }

    #[test]
    fn a_normalised_total_can_fall_below_zero_and_rounds_to_the_nearest_hundredth() {
        // e gave four 100s and one 0 (μ_e = 80, σ_e = 40): the 0 is two of e's deviations
        // low, and two panel deviations below the panel's mean is below zero:
        // 71.7143 − 2 · 36.2598 = −0.8054 → −81 hundredths (not −80).
        let totals = [
            t("e", 1, 100),
            t("e", 2, 100),
            t("e", 3, 100),
            t("e", 4, 100),
            t("e", 5, 0),
            t("f", 1, 50),
            t("f", 2, 52),
        ];
        assert_eq!(
            normalise(&totals),
            [8984, 8984, 8984, 8984, -81, 3545, 10797].map(Centi)
        );
    }

    #[test]
    fn consensus_rounds_negative_halves_away_from_zero() {
        assert_eq!(consensus(&[Centi(-1), Centi(-2)]), Some(Centi(-2)));
        assert_eq!(consensus(&[Centi(-3), Centi(-4)]), Some(Centi(-4)));
        assert_eq!(
            consensus(&[Centi(-1), Centi(-1), Centi(-2)]),
            Some(Centi(-1))
        );
        assert_eq!(
            consensus(&[Centi(-1), Centi(-2), Centi(-2)]),
            Some(Centi(-2))
        );
        assert_eq!(
            consensus(&[Centi(-81), Centi(8984)]),
            Some(Centi(4452)),
            "8903 / 2 = 4451.5"
        );
        assert_eq!(consensus(&[Centi(1), Centi(1), Centi(2)]), Some(Centi(1)));
        assert_eq!(consensus(&[Centi(1), Centi(2), Centi(2)]), Some(Centi(2)));
        assert_eq!(
            consensus(&[Centi(i64::MAX), Centi(i64::MAX)]),
            Some(Centi(i64::MAX)),
            "the sum does not overflow"
        );
    }

    #[test]
    fn ties_are_broken_in_the_declared_order_and_say_how() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let st = |p: u128, total: i64, tech: i64, secs: i64| Standing {
            proposal: Uuid::from_u128(p),
            total: Centi(total),
            per_criterion: [("technology".to_string(), Centi(tech))]
                .into_iter()
                .collect(),
            submitted_at: at(secs),
        };
        let standings = [
            st(1, 8000, 3000, 5),
            st(2, 8000, 3500, 9),
            st(3, 9000, 3000, 1),
            st(4, 8000, 3500, 2),
        ];
        let rules = [
            TieBreak::Criterion("technology".into()),
            TieBreak::EarlierSubmission,
        ];
        let ranked = rank(&standings, &rules);
        let order: Vec<u128> = ranked.iter().map(|r| r.proposal.as_u128()).collect();
        assert_eq!(order, vec![3, 4, 2, 1]);
        let positions: Vec<usize> = ranked.iter().map(|r| r.position).collect();
        assert_eq!(positions, vec![1, 2, 3, 4], "positions are 1-based");
        let totals: Vec<Centi> = ranked.iter().map(|r| r.total).collect();
        assert_eq!(totals, [9000, 8000, 8000, 8000].map(Centi));
        assert_eq!(ranked[0].tie_broken_by, None);
        assert_eq!(ranked[1].tie_broken_by, None, "#2 did not tie with #1");
        assert_eq!(
            ranked[2].tie_broken_by.as_deref(),
            Some("earlier submission")
        );
        assert_eq!(
            ranked[3].tie_broken_by.as_deref(),
            Some("higher technology score")
        );
    }
}
