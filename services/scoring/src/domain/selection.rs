//! Portfolio selection: choose `k` teams maximising the total score under declared slot
//! constraints ("at least one industry-specialised team", "at most two large-enterprise
//! leads"), exactly, and explain every departure from pure rank order.
//!
//! The solver is a dynamic programme over (candidate, teams chosen, count per constrained
//! category, capped at what the constraints can tell apart). It is exact, and polynomial for
//! a fixed set of constraints: n · (k+1) · Π(cap+1) states, which for hundreds of proposals,
//! k ≤ 20 and a handful of categories is a few million at most. Among portfolios with the
//! same total it picks the one closest to rank order (lexicographically: the best-ranked
//! proposal that differs is in), so the result is deterministic and departures are minimal.

use super::Centi;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// A ranked, eligible proposal and the categories it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub proposal: Uuid,
    pub score: Centi,
    pub categories: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Constraint {
    AtLeast { category: String, count: usize },
    AtMost { category: String, count: usize },
}

impl Constraint {
    pub fn category(&self) -> &str {
        match self {
            Constraint::AtLeast { category, .. } | Constraint::AtMost { category, .. } => category,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Constraint::AtLeast { category, count } => format!("at least {count} {category}"),
            Constraint::AtMost { category, count } => format!("at most {count} {category}"),
        }
    }

    fn satisfied_by(&self, counts: usize) -> bool {
        match self {
            Constraint::AtLeast { count, .. } => counts >= *count,
            Constraint::AtMost { count, .. } => counts <= *count,
        }
    }
}

/// Why a departure from rank order was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departure {
    /// Selected although ranked below the top k.
    pub promoted: Vec<Uuid>,
    /// In the top k by rank but not selected.
    pub displaced: Vec<Uuid>,
    /// The constraints the pure top k would break, in plain words.
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// In rank order.
    pub selected: Vec<Uuid>,
    pub total: Centi,
    /// `None` when the selection is exactly the top k by rank.
    pub departure: Option<Departure>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("no portfolio of {k} teams satisfies {constraints}")]
    Infeasible { k: usize, constraints: String },
    #[error("k: {0}")]
    BadK(String),
}

/// Selects `k` of `candidates` (given in rank order, best first) maximising the total score
/// subject to `constraints`.
pub fn select(
    candidates: &[Candidate],
    k: usize,
    constraints: &[Constraint],
) -> Result<Selection, SelectionError> {
    if k > candidates.len() {
        return Err(SelectionError::BadK(format!(
            "cannot select {k} of {} eligible proposals",
            candidates.len()
        )));
    }
    // The categories that matter and how far each count must be tracked: for "at most m" we
    // must know counts up to m (one more is forbidden); for "at least n", up to n.
    let mut cats: Vec<String> = constraints
        .iter()
        .map(|c| c.category().to_owned())
        .collect();
    cats.sort();
    cats.dedup();
    let caps: Vec<usize> = cats
        .iter()
        .map(|cat| {
            constraints
                .iter()
                .filter(|c| c.category() == cat)
                .map(|c| match c {
                    Constraint::AtLeast { count, .. } | Constraint::AtMost { count, .. } => *count,
                })
                .max()
                .unwrap_or(0)
        })
        .collect();
    let at_most: Vec<Option<usize>> = cats
        .iter()
        .map(|cat| {
            constraints
                .iter()
                .filter_map(|c| match c {
                    Constraint::AtMost { category, count } if category == cat => Some(*count),
                    _ => None,
                })
                .min()
        })
        .collect();
    let membership: Vec<Vec<bool>> = candidates
        .iter()
        .map(|c| cats.iter().map(|cat| c.categories.contains(cat)).collect())
        .collect();

    let solver = Solver {
        candidates,
        k,
        constraints,
        cats: &cats,
        caps: &caps,
        at_most: &at_most,
        membership: &membership,
    };
    let mut memo = HashMap::new();
    let start = State {
        i: 0,
        chosen: 0,
        counts: vec![0; cats.len()],
    };
    let Some(total) = solver.best(&start, &mut memo) else {
        let list: Vec<String> = constraints.iter().map(Constraint::describe).collect();
        return Err(SelectionError::Infeasible {
            k,
            constraints: if list.is_empty() {
                "the call's rules".into()
            } else {
                list.join(", ")
            },
        });
    };

    // Walk the memo forward to recover the choices (include first on equal value).
    let mut selected = Vec::with_capacity(k);
    let mut state = start;
    while state.i < candidates.len() {
        let take = solver.include(&state).and_then(|next| {
            let rest = solver.best(&next, &mut memo)?;
            Some((next, rest + candidates[state.i].score.0))
        });
        let skip = solver.best(&solver.exclude(&state), &mut memo);
        match (take, skip) {
            (Some((next, with)), Some(without)) if with >= without => {
                selected.push(state.i);
                state = next;
            }
            (Some((next, _)), None) => {
                selected.push(state.i);
                state = next;
            }
            _ => state = solver.exclude(&state),
        }
    }

    let chosen: Vec<Uuid> = selected.iter().map(|&i| candidates[i].proposal).collect();
    let departure = explain(candidates, k, &selected, constraints);
    Ok(Selection {
        selected: chosen,
        total: Centi(total),
        departure,
    })
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    i: usize,
    chosen: usize,
    counts: Vec<usize>,
}

struct Solver<'a> {
    candidates: &'a [Candidate],
    k: usize,
    constraints: &'a [Constraint],
    cats: &'a [String],
    caps: &'a [usize],
    at_most: &'a [Option<usize>],
    membership: &'a [Vec<bool>],
}

impl Solver<'_> {
    fn include(&self, s: &State) -> Option<State> {
        if s.chosen == self.k {
            return None;
        }
        let mut counts = s.counts.clone();
        for (j, member) in self.membership[s.i].iter().enumerate() {
            if *member {
                if self.at_most[j].is_some_and(|m| counts[j] + 1 > m) {
                    return None;
                }
                counts[j] = (counts[j] + 1).min(self.caps[j].max(1));
            }
        }
        Some(State {
            i: s.i + 1,
            chosen: s.chosen + 1,
            counts,
        })
    }

    fn exclude(&self, s: &State) -> State {
        State {
            i: s.i + 1,
            chosen: s.chosen,
            counts: s.counts.clone(),
        }
    }

    /// The best total reachable from `s`, or `None` if no completion satisfies everything.
    fn best(&self, s: &State, memo: &mut HashMap<State, Option<i64>>) -> Option<i64> {
        if let Some(v) = memo.get(s) {
            return *v;
        }
        let value = if s.chosen == self.k {
            let ok = self.constraints.iter().all(|c| {
                let j = self
                    .cats
                    .iter()
                    .position(|cat| cat == c.category())
                    .unwrap_or(0);
                c.satisfied_by(s.counts[j])
            });
            ok.then_some(0)
        } else if self.candidates.len() - s.i < self.k - s.chosen {
            None
        } else {
            let with = self.include(s).and_then(|next| {
                self.best(&next, memo)
                    .map(|rest| rest + self.candidates[s.i].score.0)
            });
            let without = self.best(&self.exclude(s), memo);
            match (with, without) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        };
        memo.insert(s.clone(), value);
        value
    }
}

/// How `selected` (indices into `candidates`, in rank order) departs from the top `k` by
/// rank, and which constraints the top `k` would have broken.
pub fn explain(
    candidates: &[Candidate],
    k: usize,
    selected: &[usize],
    constraints: &[Constraint],
) -> Option<Departure> {
    let top: BTreeSet<usize> = (0..k).collect();
    let chosen: BTreeSet<usize> = selected.iter().copied().collect();
    if top == chosen {
        return None;
    }
    let count_in = |set: &BTreeSet<usize>, cat: &str| {
        set.iter()
            .filter(|&&i| candidates[i].categories.contains(cat))
            .count()
    };
    let reasons = constraints
        .iter()
        .filter(|c| !c.satisfied_by(count_in(&top, c.category())))
        .map(|c| {
            format!(
                "the top {k} by rank would break \"{}\" ({} of them are {})",
                c.describe(),
                count_in(&top, c.category()),
                c.category()
            )
        })
        .collect::<Vec<_>>();
    let reasons = if reasons.is_empty() {
        vec!["the top k by rank breaks a combination of constraints that only this portfolio satisfies".to_owned()]
    } else {
        reasons
    };
    Some(Departure {
        promoted: chosen
            .difference(&top)
            .map(|&i| candidates[i].proposal)
            .collect(),
        displaced: top
            .difference(&chosen)
            .map(|&i| candidates[i].proposal)
            .collect(),
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(p: u128, score: i64, cats: &[&str]) -> Candidate {
        Candidate {
            proposal: Uuid::from_u128(p),
            score: Centi(score),
            categories: cats.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn without_constraints_it_is_the_top_k() {
        let c = [cand(1, 90, &[]), cand(2, 80, &[]), cand(3, 70, &[])];
        let s = select(&c, 2, &[]).unwrap();
        assert_eq!(s.selected, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert_eq!(s.total, Centi(170));
        assert_eq!(s.departure, None);
    }

    #[test]
    fn a_slot_constraint_promotes_and_explains() {
        let c = [
            cand(1, 95, &[]),
            cand(2, 90, &[]),
            cand(3, 85, &[]),
            cand(4, 60, &["sme"]),
            cand(5, 50, &["sme"]),
        ];
        let rule = Constraint::AtLeast {
            category: "sme".into(),
            count: 1,
        };
        let s = select(&c, 3, std::slice::from_ref(&rule)).unwrap();
        assert_eq!(
            s.selected,
            vec![Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(4)]
        );
        let d = s.departure.unwrap();
        assert_eq!(d.promoted, vec![Uuid::from_u128(4)]);
        assert_eq!(d.displaced, vec![Uuid::from_u128(3)]);
        assert!(
            d.reasons[0].contains("\"at least 1 sme\" (0 of them are sme)"),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn at_most_limits_a_category() {
        let c = [
            cand(1, 95, &["large"]),
            cand(2, 90, &["large"]),
            cand(3, 85, &["large"]),
            cand(4, 10, &[]),
        ];
        let s = select(
            &c,
            3,
            &[Constraint::AtMost {
                category: "large".into(),
                count: 2,
            }],
        )
        .unwrap();
        assert_eq!(
            s.selected,
            vec![Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(4)]
        );
    }

    #[test]
    fn taking_the_best_ranked_team_can_be_the_wrong_move() {
        // At most one x, at least one y, two teams. Taking #1 (x) leaves only #4 to supply
        // the y: 100 + 5. Passing over #1 allows #2 (x and y) with #3: 90 + 85 = 175.
        let c = [
            cand(1, 100, &["x"]),
            cand(2, 90, &["x", "y"]),
            cand(3, 85, &[]),
            cand(4, 5, &["y"]),
        ];
        let rules = [
            Constraint::AtMost {
                category: "x".into(),
                count: 1,
            },
            Constraint::AtLeast {
                category: "y".into(),
                count: 1,
            },
        ];
        let s = select(&c, 2, &rules).unwrap();
        assert_eq!(s.selected, vec![Uuid::from_u128(2), Uuid::from_u128(3)]);
        assert_eq!(s.total, Centi(175));
        let d = s.departure.expect("departs from the top 2");
        assert_eq!(d.promoted, vec![Uuid::from_u128(3)]);
        assert_eq!(d.displaced, vec![Uuid::from_u128(1)]);
        assert_eq!(
            d.reasons,
            vec!["the top 2 by rank would break \"at most 1 x\" (2 of them are x)"]
        );
    }

    #[test]
    fn each_limit_binds_only_its_own_category() {
        // At most one x and at most three y: the second x (#3) gives way to the third y (#5).
        // A limit applied to the wrong category would leave no portfolio of four.
        let c = [
            cand(1, 100, &["y"]),
            cand(2, 95, &["x"]),
            cand(3, 90, &["x"]),
            cand(4, 85, &["y"]),
            cand(5, 80, &["y"]),
            cand(6, 10, &[]),
        ];
        let rules = [
            Constraint::AtMost {
                category: "x".into(),
                count: 1,
            },
            Constraint::AtMost {
                category: "y".into(),
                count: 3,
            },
        ];
        let s = select(&c, 4, &rules).unwrap();
        let ids: Vec<u128> = s.selected.iter().map(|u| u.as_u128()).collect();
        assert_eq!(ids, vec![1, 2, 4, 5]);
        assert_eq!(s.total, Centi(360));
        let d = s.departure.expect("departs from the top 4");
        assert_eq!(d.promoted, vec![Uuid::from_u128(5)]);
        assert_eq!(d.displaced, vec![Uuid::from_u128(3)]);
    }

    #[test]
    fn an_impossible_portfolio_is_reported() {
        let c = [cand(1, 95, &[]), cand(2, 90, &[])];
        let e = select(
            &c,
            2,
            &[Constraint::AtLeast {
                category: "university".into(),
                count: 1,
            }],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no portfolio of 2 teams satisfies at least 1 university"
        );
        assert!(matches!(select(&c, 3, &[]), Err(SelectionError::BadK(_))));
        assert_eq!(
            select(&c, 0, &[]).unwrap().selected,
            Vec::<Uuid>::new(),
            "selecting nobody is valid"
        );
    }

    #[test]
    fn hundreds_of_proposals_and_k_20_are_solved() {
        let cats = ["industry", "sme", "academia", "large"];
        let c: Vec<Candidate> = (0..300u128)
            .map(|i| {
                cand(
                    i,
                    10_000 - i as i64 * 7,
                    &[cats[(i % 4) as usize], cats[((i * 7) % 4) as usize]],
                )
            })
            .collect();
        let rules = vec![
            Constraint::AtLeast {
                category: "sme".into(),
                count: 3,
            },
            Constraint::AtLeast {
                category: "academia".into(),
                count: 3,
            },
            Constraint::AtMost {
                category: "large".into(),
                count: 4,
            },
        ];
        let s = select(&c, 20, &rules).unwrap();
        let mut want: Vec<u128> = vec![1, 3, 5, 7];
        want.extend((0..=30).step_by(2));
        want.sort_unstable();
        let got: Vec<u128> = s.selected.iter().map(|u| u.as_u128()).collect();
        assert_eq!(got, want);
        // 4 · 10 000 − 7 · 16 + 16 · 10 000 − 7 · 240 = 198 208.
        assert_eq!(s.total, Centi(198_208));
        let d = s.departure.expect("the top 20 holds ten large teams");
        let ids = |v: &[u128]| v.iter().map(|&i| Uuid::from_u128(i)).collect::<Vec<_>>();
        assert_eq!(d.promoted, ids(&[20, 22, 24, 26, 28, 30]));
        assert_eq!(d.displaced, ids(&[9, 11, 13, 15, 17, 19]));
        assert_eq!(
            d.reasons,
            vec!["the top 20 by rank would break \"at most 4 large\" (10 of them are large)"]
        );
    }

    /// Brute force: every k-subset, keep the feasible ones with the best total; ties go to
    /// the lexicographically first by rank (the same rule the solver promises).
    fn brute(c: &[Candidate], k: usize, rules: &[Constraint]) -> Option<(Vec<usize>, i64)> {
        let n = c.len();
        let mut best: Option<(Vec<usize>, i64)> = None;
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != k {
                continue;
            }
            let set: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            let ok = rules.iter().all(|r| {
                r.satisfied_by(
                    set.iter()
                        .filter(|&&i| c[i].categories.contains(r.category()))
                        .count(),
                )
            });
            if !ok {
                continue;
            }
            let total: i64 = set.iter().map(|&i| c[i].score.0).sum();
            let better = match &best {
                None => true,
                Some((bs, bt)) => total > *bt || (total == *bt && set < *bs),
            };
            if better {
                best = Some((set, total));
            }
        }
        best
    }

    fn instance() -> impl Strategy<Value = (Vec<Candidate>, usize, Vec<Constraint>)> {
        let cats = ["a", "b", "c"];
        (1usize..=10).prop_flat_map(move |n| {
            let cands = proptest::collection::vec(
                (0i64..20, proptest::collection::vec(any::<bool>(), 3)),
                n,
            );
            let rules = proptest::collection::vec((0usize..3, any::<bool>(), 0usize..4), 0..4);
            (cands, 0..=n, rules).prop_map(move |(cs, k, rs)| {
                // Rank order: scores non-increasing, as the ranking hands them over.
                let mut cs = cs;
                cs.sort_by_key(|c| std::cmp::Reverse(c.0));
                let candidates = cs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (score, member))| Candidate {
                        proposal: Uuid::from_u128(i as u128),
                        score: Centi(score),
                        categories: cats
                            .iter()
                            .zip(member)
                            .filter(|(_, m)| *m)
                            .map(|(c, _)| c.to_string())
                            .collect(),
                    })
                    .collect();
                let rules = rs
                    .into_iter()
                    .map(|(c, least, count)| {
                        let category = cats[c].to_string();
                        if least {
                            Constraint::AtLeast { category, count }
                        } else {
                            Constraint::AtMost { category, count }
                        }
                    })
                    .collect();
                (candidates, k, rules)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn selection_is_exact_against_brute_force((c, k, rules) in instance()) {
            let expected = brute(&c, k, &rules);
            match (select(&c, k, &rules), expected) {
                (Ok(s), Some((set, total))) => {
                    prop_assert_eq!(s.total, Centi(total));
                    let want: Vec<Uuid> = set.iter().map(|&i| c[i].proposal).collect();
                    prop_assert_eq!(s.selected, want);
                }
                (Err(SelectionError::Infeasible { .. }), None) => {}
                (got, want) => prop_assert!(false, "solver {:?}, brute force {:?}", got, want),
            }
        }
    }
}
