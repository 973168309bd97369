//! An officer's override of the proposed portfolio, checked against the call's rules. An
//! override may depart from them (a re-call may select nobody), but only by an explicit
//! waiver naming each rule it breaks, and its explanation is computed from what it does,
//! so the record cannot say one thing while the selection does another.

use super::ranking::TieDecision;
use super::selection::{Candidate, Constraint};
use super::Centi;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The waiver of the number of teams.
pub const TEAMS: &str = "teams";

/// The waiver key of a slot constraint: `at_least:<category>` or `at_most:<category>`.
pub fn waiver_key(c: &Constraint) -> String {
    match c {
        Constraint::AtLeast { category, .. } => format!("at_least:{category}"),
        Constraint::AtMost { category, .. } => format!("at_most:{category}"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideError {
    /// The override breaks a rule it does not waive.
    Unwaived { waiver: String, rule: String },
    /// `waivers[index]` is malformed, repeated, or waives a rule the override keeps.
    BadWaiver { index: usize, rule: String },
}

/// Checks an override selecting `selected` (indices into `candidates`, in rank order)
/// where the settings ask for `k` teams under `constraints`, with the officer's `waivers`.
/// `optimum` is the best total a portfolio keeping every rule reaches (`None`: none does).
/// Returns the explanation to record.
pub fn check_override(
    candidates: &[Candidate],
    k: usize,
    selected: &[usize],
    constraints: &[Constraint],
    waivers: &[String],
    optimum: Option<Centi>,
) -> Result<Vec<String>, OverrideError> {
    let chosen: BTreeSet<usize> = selected.iter().copied().collect();
    let count = |cat: &str| {
        chosen
            .iter()
            .filter(|&&i| candidates[i].categories.contains(cat))
            .count()
    };
    let mut broken: Vec<(String, String)> = Vec::new();
    if chosen.len() != k {
        broken.push((
            TEAMS.to_owned(),
            format!(
                "the settings select {k} team(s); this override selects {}",
                chosen.len()
            ),
        ));
    }
    for c in constraints {
        let n = count(c.category());
        let kept = match c {
            Constraint::AtLeast { count, .. } => n >= *count,
            Constraint::AtMost { count, .. } => n <= *count,
        };
        if !kept && !broken.iter().any(|(w, _)| *w == waiver_key(c)) {
            broken.push((
                waiver_key(c),
                format!(
                    "\"{}\" is broken: {n} selected team(s) are {}",
                    c.describe(),
                    c.category()
                ),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (index, w) in waivers.iter().enumerate() {
        let known = w == TEAMS || constraints.iter().any(|c| waiver_key(c) == *w);
        if !known {
            let mut keys: Vec<String> = constraints.iter().map(waiver_key).collect();
            keys.insert(0, TEAMS.to_owned());
            keys.dedup();
            return Err(OverrideError::BadWaiver {
                index,
                rule: format!("`{w}` is not a rule of this call ({})", keys.join(", ")),
            });
        }
        if !seen.insert(w.as_str()) {
            return Err(OverrideError::BadWaiver {
                index,
                rule: format!("`{w}` appears twice"),
            });
        }
        if !broken.iter().any(|(b, _)| b == w) {
            return Err(OverrideError::BadWaiver {
                index,
                rule: format!("`{w}` is kept by this override: waive only what it breaks"),
            });
        }
    }
    if let Some((waiver, rule)) = broken.iter().find(|(b, _)| !waivers.contains(b)) {
        return Err(OverrideError::Unwaived {
            waiver: waiver.clone(),
            rule: rule.clone(),
        });
    }

    let mut out = vec![format!(
        "officer override: {} of {} finalist(s) selected; the settings ask for {k}{}",
        chosen.len(),
        candidates.len(),
        if chosen.len() == k { "" } else { " (waived)" }
    )];
    let top: BTreeSet<usize> = (0..k.min(candidates.len())).collect();
    let describe = |i: usize| {
        format!(
            "{} (finalist rank {}, score {})",
            candidates[i].proposal,
            i + 1,
            candidates[i].score
        )
    };
    for &i in chosen.difference(&top) {
        out.push(format!(
            "promoted: {} is selected although ranked below the top {k}",
            describe(i)
        ));
    }
    for &i in top.difference(&chosen) {
        out.push(format!(
            "displaced: {} is in the top {k} but not selected",
            describe(i)
        ));
    }
    for c in constraints {
        let state = if broken.iter().any(|(b, _)| *b == waiver_key(c)) {
            "broken, waived"
        } else {
            "kept"
        };
        out.push(format!(
            "\"{}\": {} selected team(s) are {}, {state}",
            c.describe(),
            count(c.category()),
            c.category()
        ));
    }
    let total = Centi(chosen.iter().map(|&i| candidates[i].score.0).sum());
    out.push(match optimum {
        Some(best) => format!(
            "total score {total}; the best portfolio keeping every rule totals {best} ({} {})",
            Centi((best.0 - total.0).abs()),
            if total <= best {
                "less"
            } else {
                "more, by breaking a rule"
            }
        ),
        None => format!("total score {total}; no portfolio keeps every rule"),
    });
    Ok(out)
}

/// A finalist of the last stage, as its result recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalist {
    pub proposal: Uuid,
    pub score: Centi,
    pub categories: BTreeSet<String>,
    /// The finalists nothing separated from this one at the stage's close.
    pub unresolved_with: Vec<Uuid>,
}

/// The selection's candidates from the finalists (in final-stage rank order), with the
/// ties left at the stage's close ordered by the latest officer decision naming the whole
/// group (`ties` oldest first). Returns the candidates and the groups still unresolved.
pub fn candidates(
    finalists: &[Finalist],
    ties: &[TieDecision],
) -> (Vec<Candidate>, Vec<Vec<Uuid>>) {
    let present: BTreeSet<Uuid> = finalists.iter().map(|f| f.proposal).collect();
    let mut order: Vec<&Finalist> = finalists.iter().collect();
    let mut unresolved: BTreeSet<Vec<Uuid>> = BTreeSet::new();
    let mut done: BTreeSet<Uuid> = BTreeSet::new();
    for f in finalists {
        if f.unresolved_with.is_empty() || done.contains(&f.proposal) {
            continue;
        }
        let mut group: Vec<Uuid> = f
            .unresolved_with
            .iter()
            .copied()
            .filter(|p| present.contains(p))
            .collect();
        group.push(f.proposal);
        group.sort();
        done.extend(group.iter().copied());
        if group.len() < 2 {
            continue;
        }
        match ties
            .iter()
            .rev()
            .find(|d| group.iter().all(|p| d.order.contains(p)))
        {
            Some(d) => {
                // The group's slots in rank order, refilled in the decision's order.
                let slots: Vec<usize> = (0..order.len())
                    .filter(|&i| group.contains(&order[i].proposal))
                    .collect();
                let mut members: Vec<&Finalist> = slots.iter().map(|&i| order[i]).collect();
                members.sort_by_key(|m| d.order.iter().position(|p| *p == m.proposal));
                for (slot, m) in slots.into_iter().zip(members) {
                    order[slot] = m;
                }
            }
            None => {
                unresolved.insert(group);
            }
        }
    }
    let candidates = order
        .into_iter()
        .map(|f| Candidate {
            proposal: f.proposal,
            score: f.score,
            categories: f.categories.clone(),
        })
        .collect();
    (candidates, unresolved.into_iter().collect())
}

/// The unresolved groups whose members are partly selected: their order decided the outcome.
pub fn straddling(groups: &[Vec<Uuid>], selected: &[Uuid]) -> Vec<Vec<Uuid>> {
    groups
        .iter()
        .filter(|g| {
            let inside = g.iter().filter(|p| selected.contains(p)).count();
            inside > 0 && inside < g.len()
        })
        .cloned()
        .collect()
}

/// The portfolio the rules give: the exact optimum under the constraints, how it departs
/// from rank order and why (as recorded in the decision's explanation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposed {
    pub selected: Vec<usize>,
    pub total: Centi,
    pub departure: Option<super::selection::Departure>,
    pub explanation: Vec<String>,
}

pub fn propose(
    candidates: &[Candidate],
    k: usize,
    constraints: &[Constraint],
) -> Result<Proposed, super::selection::SelectionError> {
    let k = k.min(candidates.len());
    let chosen = super::selection::select(candidates, k, constraints)?;
    let selected: Vec<usize> = chosen
        .selected
        .iter()
        .filter_map(|p| candidates.iter().position(|c| c.proposal == *p))
        .collect();
    let explanation = match &chosen.departure {
        Some(d) => d.reasons.clone(),
        None if constraints.is_empty() => vec![format!("the top {k} by rank")],
        None => vec![format!(
            "the top {k} by rank, which keep {}",
            constraints
                .iter()
                .map(|c| format!("\"{}\"", c.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        )],
    };
    Ok(Proposed {
        selected,
        total: chosen.total,
        departure: chosen.departure,
        explanation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(p: u128, score: i64, cats: &[&str]) -> Candidate {
        Candidate {
            proposal: Uuid::from_u128(p),
            score: Centi(score),
            categories: cats.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn field() -> (Vec<Candidate>, Vec<Constraint>) {
        (
            vec![
                cand(1, 9000, &[]),
                cand(2, 8500, &[]),
                cand(3, 8000, &["sme_or_academia_led"]),
                cand(4, 7000, &[]),
            ],
            vec![Constraint::AtLeast {
                category: "sme_or_academia_led".into(),
                count: 1,
            }],
        )
    }

    #[test]
    fn an_override_keeping_every_rule_needs_no_waiver_and_says_what_it_does() {
        let (c, rules) = field();
        let out = check_override(&c, 2, &[0, 2], &rules, &[], Some(Centi(17000))).expect("ok");
        assert_eq!(
            out,
            vec![
                "officer override: 2 of 4 finalist(s) selected; the settings ask for 2".to_string(),
                format!("promoted: {} (finalist rank 3, score 80.00) is selected although ranked below the top 2", Uuid::from_u128(3)),
                format!("displaced: {} (finalist rank 2, score 85.00) is in the top 2 but not selected", Uuid::from_u128(2)),
                "\"at least 1 sme_or_academia_led\": 1 selected team(s) are sme_or_academia_led, kept".to_string(),
                "total score 170.00; the best portfolio keeping every rule totals 170.00 (0.00 less)".to_string(),
            ]
        );
    }

    #[test]
    fn a_broken_rule_is_refused_unless_waived_by_name() {
        let (c, rules) = field();
        // The top two break the constraint.
        assert_eq!(
            check_override(&c, 2, &[0, 1], &rules, &[], Some(Centi(17000))),
            Err(OverrideError::Unwaived {
                waiver: "at_least:sme_or_academia_led".into(),
                rule: "\"at least 1 sme_or_academia_led\" is broken: 0 selected team(s) are sme_or_academia_led".into()
            })
        );
        let out = check_override(
            &c,
            2,
            &[0, 1],
            &rules,
            &["at_least:sme_or_academia_led".into()],
            Some(Centi(17000)),
        )
        .expect("waived");
        assert!(out.contains(&"\"at least 1 sme_or_academia_led\": 0 selected team(s) are sme_or_academia_led, broken, waived".to_string()), "{out:?}");
        assert!(
            out.last()
                .is_some_and(|l| l.ends_with("(5.00 more, by breaking a rule)")),
            "{out:?}"
        );
        // Select nobody: the team count and the constraint both need waiving.
        assert!(matches!(
            check_override(&c, 2, &[], &rules, &["at_least:sme_or_academia_led".into()], None),
            Err(OverrideError::Unwaived { waiver, .. }) if waiver == TEAMS
        ));
        let out = check_override(
            &c,
            2,
            &[],
            &rules,
            &[TEAMS.into(), "at_least:sme_or_academia_led".into()],
            None,
        )
        .expect("nobody");
        assert_eq!(
            out[0],
            "officer override: 0 of 4 finalist(s) selected; the settings ask for 2 (waived)"
        );
        assert_eq!(
            out.last().map(String::as_str),
            Some("total score 0.00; no portfolio keeps every rule")
        );
        // Three teams where two are asked.
        assert!(matches!(
            check_override(&c, 2, &[0, 1, 2], &rules, &[], None),
            Err(OverrideError::Unwaived { waiver, .. }) if waiver == TEAMS
        ));
    }

    #[test]
    fn waivers_must_be_known_single_and_of_a_broken_rule() {
        let (c, rules) = field();
        let bad = |w: &[&str]| {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            check_override(&c, 2, &[0, 2], &rules, &w, None).unwrap_err()
        };
        assert_eq!(
            bad(&["at_least:lead:sme"]),
            OverrideError::BadWaiver { index: 0, rule: "`at_least:lead:sme` is not a rule of this call (teams, at_least:sme_or_academia_led)".into() }
        );
        assert_eq!(
            bad(&[TEAMS]),
            OverrideError::BadWaiver {
                index: 0,
                rule: "`teams` is kept by this override: waive only what it breaks".into()
            }
        );
        let w = vec![TEAMS.to_string(), TEAMS.to_string()];
        assert_eq!(
            check_override(&c, 2, &[0], &rules, &w, None).unwrap_err(),
            OverrideError::BadWaiver {
                index: 1,
                rule: "`teams` appears twice".into()
            }
        );
    }

    #[test]
    fn at_most_constraints_are_checked_too() {
        let c = vec![
            cand(1, 9000, &["lead:large_enterprise"]),
            cand(2, 8000, &["lead:large_enterprise"]),
            cand(3, 7000, &[]),
        ];
        let rules = vec![Constraint::AtMost {
            category: "lead:large_enterprise".into(),
            count: 1,
        }];
        assert!(matches!(
            check_override(&c, 2, &[0, 1], &rules, &[], None),
            Err(OverrideError::Unwaived { waiver, .. }) if waiver == "at_most:lead:large_enterprise"
        ));
        assert!(check_override(&c, 2, &[0, 2], &rules, &[], Some(Centi(16000))).is_ok());
    }

    #[test]
    fn candidates_follow_the_latest_decision_naming_the_whole_group_and_report_the_rest() {
        let f = |p: u128, score: i64, with: &[u128]| Finalist {
            proposal: Uuid::from_u128(p),
            score: Centi(score),
            categories: BTreeSet::new(),
            unresolved_with: with.iter().map(|&x| Uuid::from_u128(x)).collect(),
        };
        let finalists = [
            f(1, 9000, &[]),
            f(2, 8000, &[3]),
            f(3, 8000, &[2]),
            f(4, 7000, &[]),
        ];
        let order = |c: &[Candidate]| c.iter().map(|c| c.proposal.as_u128()).collect::<Vec<_>>();
        let (c, open) = candidates(&finalists, &[]);
        assert_eq!(order(&c), vec![1, 2, 3, 4]);
        assert_eq!(open, vec![vec![Uuid::from_u128(2), Uuid::from_u128(3)]]);
        // Selecting #1 and #2 leaves #3 out of a tie with #2: it decided the outcome.
        assert_eq!(
            straddling(&open, &[Uuid::from_u128(1), Uuid::from_u128(2)]),
            open
        );
        assert!(straddling(&open, &[Uuid::from_u128(1), Uuid::from_u128(4)]).is_empty());
        assert!(straddling(&open, &[Uuid::from_u128(2), Uuid::from_u128(3)]).is_empty());
        let decide = |o: &[u128]| TieDecision {
            order: o.iter().map(|&x| Uuid::from_u128(x)).collect(),
            label: "officer".into(),
        };
        let (c, open) = candidates(&finalists, &[decide(&[2, 3]), decide(&[3, 2])]);
        assert_eq!(order(&c), vec![1, 3, 2, 4], "the latest decision prevails");
        assert!(open.is_empty());
        let (_, open) = candidates(&finalists, &[decide(&[3, 4])]);
        assert_eq!(open.len(), 1, "a decision not naming #2 settles nothing");
        // A withdrawn member leaves a group of one: no tie any more.
        let (_, open) = candidates(&[f(1, 9000, &[]), f(2, 8000, &[3])], &[]);
        assert!(open.is_empty());
    }
}

/// Approvals a replacement call's committee of `members` must give before its selection is
/// published: a strict majority of the whole committee (abstentions count against).
pub fn majority(members: usize) -> usize {
    members / 2 + 1
}

#[cfg(test)]
mod majority_tests {
    use super::majority;

    #[test]
    fn a_majority_is_more_than_half_of_the_whole_committee() {
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
        assert_eq!(majority(6), 4);
    }
}
