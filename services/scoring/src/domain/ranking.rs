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

/// `num / den` rounded half away from zero; `den > 0`.
pub(crate) fn round_div(num: i128, den: i128) -> i64 {
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

/// One reviewer's sheet: whole points per criterion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sheet {
    pub reviewer: String,
    pub proposal: Uuid,
    pub scores: BTreeMap<String, i64>,
}

/// A proposal's consensus on one basis: the total and its split over the criteria, in
/// hundredths, the split always adding up to the total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consensus {
    pub total: Centi,
    pub per_criterion: BTreeMap<String, Centi>,
}

/// Splits `total` over the criteria in proportion to their exact values: each gets its
/// value rounded down to a hundredth, and the hundredths still missing (or in excess) go to
/// the largest (or smallest) remainders, the earlier criterion first on equal remainders.
/// The split is as close to the exact values as hundredths allow and adds up to `total`.
pub fn apportion(exact: &[f64], total: Centi) -> Vec<Centi> {
    if exact.is_empty() {
        return Vec::new();
    }
    let floors: Vec<i64> = exact.iter().map(|v| (v * 100.0).floor() as i64).collect();
    let rem: Vec<f64> = exact
        .iter()
        .zip(&floors)
        .map(|(v, f)| v * 100.0 - *f as f64)
        .collect();
    let mut out = floors.clone();
    let missing = total.0 - floors.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    if missing >= 0 {
        order.sort_by(|&a, &b| rem[b].total_cmp(&rem[a]).then(a.cmp(&b)));
        for n in 0..missing as usize {
            out[order[n % order.len()]] += 1;
        }
    } else {
        order.sort_by(|&a, &b| rem[a].total_cmp(&rem[b]).then(a.cmp(&b)));
        for n in 0..missing.unsigned_abs() as usize {
            out[order[n % order.len()]] -= 1;
        }
    }
    out.into_iter().map(Centi).collect()
}

/// Every proposal's consensus on one basis, raw or normalised, so that minimums,
/// thresholds, tie-breaks and feedback all read the same figures.
///
/// The total is the mean of the reviewers' totals, each first normalised when `normalise`
/// is on ([`normalise`]). Per criterion, a normalised sheet applies its reviewer's
/// calibration to each criterion: `x'_c = μ_c + σ (x_c − μ_rc) / σ_r`, where `μ_c` and
/// `μ_rc` are the panel's and the reviewer's means on that criterion and `σ / σ_r` the same
/// scale as the total's. Since the criterion means add up to the total's, the criteria of a
/// sheet add up to its normalised total exactly; an uncalibratable reviewer's sheet stays as
/// given. The proposal's per-criterion means are then [`apportion`]ed to hundredths so that
/// they add up to its total.
pub fn consensus_by_criterion(
    sheets: &[Sheet],
    criteria: &[String],
    normalise_on: bool,
) -> BTreeMap<Uuid, Consensus> {
    let totals: Vec<ReviewerTotal> = sheets
        .iter()
        .map(|s| ReviewerTotal {
            reviewer: s.reviewer.clone(),
            proposal: s.proposal,
            total: criteria.iter().filter_map(|c| s.scores.get(c)).sum(),
        })
        .collect();
    let normalised = if normalise_on {
        normalise(&totals)
    } else {
        totals.iter().map(|t| Centi::from_points(t.total)).collect()
    };
    let point = |s: &Sheet, c: &str| s.scores.get(c).copied().unwrap_or(0) as f64;
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    // Per reviewer: mean and population standard deviation of totals, means per criterion.
    let mut by_reviewer: BTreeMap<&str, Vec<&Sheet>> = BTreeMap::new();
    for s in sheets {
        by_reviewer.entry(&s.reviewer).or_default().push(s);
    }
    let all_totals: Vec<f64> = totals.iter().map(|t| t.total as f64).collect();
    let sigma = if all_totals.is_empty() {
        0.0
    } else {
        let m = mean(&all_totals);
        (all_totals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / all_totals.len() as f64).sqrt()
    };
    let panel_mean: BTreeMap<&str, f64> = criteria
        .iter()
        .map(|c| {
            let xs: Vec<f64> = sheets.iter().map(|s| point(s, c)).collect();
            (c.as_str(), if xs.is_empty() { 0.0 } else { mean(&xs) })
        })
        .collect();
    struct Calibration<'a> {
        scale: f64,
        means: BTreeMap<&'a str, f64>,
    }
    let calibration: BTreeMap<&str, Option<Calibration>> = by_reviewer
        .iter()
        .map(|(r, mine)| {
            let ts: Vec<f64> = mine
                .iter()
                .map(|s| criteria.iter().map(|c| point(s, c)).sum())
                .collect();
            let m = mean(&ts);
            let sd = (ts.iter().map(|x| (x - m).powi(2)).sum::<f64>() / ts.len() as f64).sqrt();
            let cal = (normalise_on && ts.len() >= 2 && sd != 0.0).then(|| Calibration {
                scale: sigma / sd,
                means: criteria
                    .iter()
                    .map(|c| {
                        let xs: Vec<f64> = mine.iter().map(|s| point(s, c)).collect();
                        (c.as_str(), mean(&xs))
                    })
                    .collect(),
            });
            (*r, cal)
        })
        .collect();
    let mut proposals: Vec<Uuid> = sheets.iter().map(|s| s.proposal).collect();
    proposals.sort();
    proposals.dedup();
    proposals
        .into_iter()
        .map(|p| {
            let mine: Vec<usize> = (0..sheets.len())
                .filter(|&i| sheets[i].proposal == p)
                .collect();
            let total = consensus(&mine.iter().map(|&i| normalised[i]).collect::<Vec<_>>())
                .unwrap_or_default();
            let exact: Vec<f64> = criteria
                .iter()
                .map(|c| {
                    let xs: Vec<f64> = mine
                        .iter()
                        .map(|&i| {
                            let s = &sheets[i];
                            match &calibration[s.reviewer.as_str()] {
                                Some(cal) => {
                                    panel_mean[c.as_str()]
                                        + cal.scale * (point(s, c) - cal.means[c.as_str()])
                                }
                                None => point(s, c),
                            }
                        })
                        .collect();
                    mean(&xs)
                })
                .collect();
            let split = apportion(&exact, total);
            (
                p,
                Consensus {
                    total,
                    per_criterion: criteria.iter().cloned().zip(split).collect(),
                },
            )
        })
        .collect()
}

/// How ties in the total are broken, in the declared order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TieBreak {
    /// Higher consensus on this criterion ranks first.
    Criterion(String),
    /// The earlier submission ranks first (only when a call declares it: it is not merit).
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

/// An officer's recorded order for proposals the declared rules could not separate. It
/// settles a tie when it names every proposal of the tied group (it may name more: only the
/// group's members are ordered by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TieDecision {
    pub order: Vec<Uuid>,
    /// How the ranking cites it, e.g. "officer decision 2 by officer-1".
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranked {
    /// 1-based.
    pub position: usize,
    pub proposal: Uuid,
    pub total: Centi,
    /// When this proposal tied on total with the one above it, the rule that separated them.
    pub tie_broken_by: Option<String>,
    /// The other members of a tie no declared rule and no officer decision separates (their
    /// order here is the proposal id's, which is not a decision), empty otherwise.
    pub unresolved_with: Vec<Uuid>,
}

/// The label of a tie that only the proposal id separates.
pub const UNRESOLVED: &str = "unresolved tie: no declared rule or officer decision separates them";

/// Compares by total, then by the declared rules; `Equal` means a full tie.
fn by_rules(a: &Standing, b: &Standing, rules: &[TieBreak]) -> (Ordering, Option<String>) {
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
    (Ordering::Equal, None)
}

/// Ranks standings by total, breaking ties by `rules` in order, then by the latest officer
/// decision (`decisions` in the order they were recorded) that names the whole tied group.
/// A group nothing separates keeps the proposal id order and is reported in
/// `unresolved_with`: callers refuse to let such a tie decide anything.
pub fn rank(standings: &[Standing], rules: &[TieBreak], decisions: &[TieDecision]) -> Vec<Ranked> {
    let mut sorted: Vec<&Standing> = standings.iter().collect();
    // A total order: the rules, then the id. Officer decisions reorder whole groups below,
    // so the sort never sees a comparison that could contradict another.
    sorted.sort_by(|a, b| by_rules(a, b, rules).0.then(a.proposal.cmp(&b.proposal)));
    let mut out: Vec<(&Standing, Option<String>, Vec<Uuid>)> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && by_rules(sorted[i], sorted[j], rules).0 == Ordering::Equal {
            j += 1;
        }
        let mut group: Vec<&Standing> = sorted[i..j].to_vec();
        if group.len() > 1 {
            let ids: Vec<Uuid> = group.iter().map(|s| s.proposal).collect();
            let decision = decisions
                .iter()
                .rev()
                .find(|d| ids.iter().all(|p| d.order.contains(p)));
            match decision {
                Some(d) => {
                    group.sort_by_key(|s| d.order.iter().position(|p| *p == s.proposal));
                    for (n, s) in group.into_iter().enumerate() {
                        out.push((s, (n > 0).then(|| d.label.clone()), Vec::new()));
                    }
                }
                None => {
                    for (n, s) in group.into_iter().enumerate() {
                        let others = ids.iter().copied().filter(|p| *p != s.proposal).collect();
                        out.push((s, (n > 0).then(|| UNRESOLVED.to_owned()), others));
                    }
                }
            }
        } else {
            out.push((group[0], None, Vec::new()));
        }
        i = j;
    }
    let labels: Vec<Option<String>> = (0..out.len())
        .map(|n| match &out[n].1 {
            Some(label) => Some(label.clone()),
            // Tied on total with the one above, separated by a declared rule.
            None if n > 0 && out[n - 1].0.total == out[n].0.total => {
                by_rules(out[n - 1].0, out[n].0, rules).1
            }
            None => None,
        })
        .collect();
    out.into_iter()
        .zip(labels)
        .enumerate()
        .map(|(n, ((s, _, unresolved_with), tie_broken_by))| Ranked {
            position: n + 1,
            proposal: s.proposal,
            total: s.total,
            tie_broken_by,
            unresolved_with,
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
        let ranked = rank(&standings, &rules, &[]);
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

    #[test]
    fn apportion_adds_up_to_the_total_and_stays_within_a_hundredth_of_each_value() {
        // Three criteria of 33.333...: floors 3333 each, one hundredth missing, to the first.
        let third = 100.0 / 3.0;
        assert_eq!(
            apportion(&[third, third, third], Centi(10000)),
            [3334, 3333, 3333].map(Centi)
        );
        // The largest remainder first.
        assert_eq!(
            apportion(&[10.004, 20.009, 30.001], Centi(6002)),
            [1001, 2001, 3000].map(Centi)
        );
        // A total below the floors' sum takes from the smallest remainders.
        assert_eq!(
            apportion(&[10.0, 20.5, 30.0], Centi(6049)),
            [999, 2050, 3000].map(Centi)
        );
        assert_eq!(apportion(&[], Centi(5)), Vec::<Centi>::new());
    }

    #[test]
    fn raw_consensus_by_criterion_adds_up_to_the_raw_total() {
        let sheet = |reviewer: &str, p: u128, s: [i64; 3]| Sheet {
            reviewer: reviewer.into(),
            proposal: Uuid::from_u128(p),
            scores: ["technology", "strategy", "ecosystem"]
                .into_iter()
                .map(String::from)
                .zip(s)
                .collect(),
        };
        let keys: Vec<String> = ["technology", "strategy", "ecosystem"]
            .into_iter()
            .map(String::from)
            .collect();
        // Means 33.33, 33.33, 33.33 and a total of 100: the criteria must show 100.00 too.
        let sheets = [
            sheet("a", 1, [34, 33, 33]),
            sheet("b", 1, [33, 34, 33]),
            sheet("c", 1, [33, 33, 34]),
        ];
        let c = &consensus_by_criterion(&sheets, &keys, false)[&Uuid::from_u128(1)];
        assert_eq!(c.total, Centi(10000));
        assert_eq!(c.per_criterion.values().map(|v| v.0).sum::<i64>(), 10000);
        assert_eq!(c.per_criterion["technology"], Centi(3334));
        // Normalisation on, with single-sheet reviewers (uncalibratable): the raw figures.
        assert_eq!(
            &consensus_by_criterion(&sheets, &keys, true)[&Uuid::from_u128(1)],
            c
        );
    }
}
