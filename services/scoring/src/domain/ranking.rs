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
