use super::*;
use proptest::prelude::*;

fn skills(s: &[&str]) -> BTreeSet<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn fit_components_are_whole_points_from_the_weights() {
    let w = FitWeights::default();
    let p = Position {
        id: id(1),
        field: "nlp".into(),
        required_skills: skills(&["rust", "cuda", "pytorch"]),
        seniority: 2,
        count: 1,
    };
    let r = Researcher {
        id: id(2),
        field: "nlp".into(),
        skills: skills(&["cuda", "pytorch", "jax"]),
        seniority: 4,
        preferences: vec![0],
    };
    assert_eq!(
        fit(&p, &r, &w),
        Fit {
            skills: 20,
            field: 20,
            seniority: 5,
            total: 45
        }
    );
    let far = Researcher {
        seniority: 0,
        field: "vision".into(),
        ..r.clone()
    };
    // Two levels away costs 10 of 15; a different field earns nothing.
    assert_eq!(
        fit(&p, &far, &w),
        Fit {
            skills: 20,
            field: 0,
            seniority: 5,
            total: 25
        }
    );
    let very_far = Researcher { seniority: 9, ..r };
    assert_eq!(fit(&p, &very_far, &w).seniority, 0, "never below zero");
}

#[test]
fn the_higher_fit_wins_a_contested_place_and_the_loser_moves_on() {
    let w = FitWeights::default();
    let positions = vec![
        Position {
            id: id(10),
            field: "nlp".into(),
            required_skills: skills(&["rust"]),
            seniority: 2,
            count: 1,
        },
        Position {
            id: id(11),
            field: "vision".into(),
            required_skills: skills(&["cuda"]),
            seniority: 2,
            count: 1,
        },
    ];
    let researchers = vec![
        // Both want position 0 first; researcher 1 fits it better.
        Researcher {
            id: id(1),
            field: "vision".into(),
            skills: skills(&["cuda"]),
            seniority: 2,
            preferences: vec![0, 1],
        },
        Researcher {
            id: id(2),
            field: "nlp".into(),
            skills: skills(&["rust"]),
            seniority: 2,
            preferences: vec![0, 1],
        },
    ];
    let m = deferred_acceptance(&positions, &researchers, &w);
    assert_eq!(m.len(), 2);
    let of = |r: usize| m.iter().find(|p| p.researcher == r).expect("matched");
    assert_eq!(of(1).position, 0);
    assert_eq!(of(1).researcher_rank, 1);
    assert_eq!(of(1).position_rank, 1);
    assert_eq!(of(1).applicants, 2);
    assert_eq!(of(0).position, 1);
    assert_eq!(of(0).researcher_rank, 2, "its second choice");
    assert_eq!(of(0).position_rank, 1, "the only applicant to position 1");
    assert_eq!(
        of(0).fit,
        Fit {
            skills: 10,
            field: 20,
            seniority: 15,
            total: 45
        }
    );
}

#[test]
fn counts_are_respected_and_ties_go_to_the_lower_id_whatever_the_input_order() {
    let w = FitWeights::default();
    let positions = vec![Position {
        id: id(10),
        field: "nlp".into(),
        required_skills: skills(&[]),
        seniority: 0,
        count: 2,
    }];
    let mk = |n| Researcher {
        id: id(n),
        field: "nlp".into(),
        skills: skills(&[]),
        seniority: 0,
        preferences: vec![0],
    };
    let forward = vec![mk(3), mk(1), mk(2)];
    let backward = vec![mk(2), mk(1), mk(3)];
    let ids = |rs: &[Researcher]| {
        let mut v: Vec<Uuid> = deferred_acceptance(&positions, rs, &w)
            .iter()
            .map(|p| rs[p.researcher].id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&forward), vec![id(1), id(2)]);
    assert_eq!(ids(&backward), vec![id(1), id(2)]);
}

#[test]
fn a_researcher_is_only_matched_to_a_position_they_listed() {
    let w = FitWeights::default();
    let positions = vec![Position {
        id: id(10),
        field: "nlp".into(),
        required_skills: skills(&[]),
        seniority: 0,
        count: 5,
    }];
    let researchers = vec![Researcher {
        id: id(1),
        field: "nlp".into(),
        skills: skills(&[]),
        seniority: 0,
        preferences: vec![],
    }];
    assert!(deferred_acceptance(&positions, &researchers, &w).is_empty());
}

// ---------------------------------------------------------------------------------------
// Property: against brute force on small instances, deferred acceptance is stable and
// researcher-optimal.
// ---------------------------------------------------------------------------------------

const SKILLS: [&str; 4] = ["rust", "cuda", "jax", "rl"];
const FIELDS: [&str; 2] = ["nlp", "vision"];

fn instance() -> impl Strategy<Value = (Vec<Position>, Vec<Researcher>)> {
    (1usize..=3, 1usize..=4).prop_flat_map(|(np, nr)| {
        let pos = proptest::collection::vec(
            (
                0usize..2,
                proptest::collection::btree_set(0usize..4, 0..3),
                0i64..5,
                1usize..=2,
            ),
            np,
        );
        let res = proptest::collection::vec(
            (
                0usize..2,
                proptest::collection::btree_set(0usize..4, 0..4),
                0i64..5,
                Just((0..np).collect::<Vec<_>>()).prop_shuffle(),
                0usize..=np,
                // A small id space so fit ties happen and the tie-break is exercised.
                0u128..6,
            ),
            nr,
        );
        (pos, res).prop_map(|(pos, res)| {
            let positions = pos
                .into_iter()
                .enumerate()
                .map(|(i, (f, s, sen, count))| Position {
                    id: id(100 + i as u128),
                    field: FIELDS[f].into(),
                    required_skills: s.into_iter().map(|k| SKILLS[k].to_string()).collect(),
                    seniority: sen,
                    count,
                })
                .collect();
            let mut used = BTreeSet::new();
            let researchers = res
                .into_iter()
                .enumerate()
                .map(|(i, (f, s, sen, order, len, idn))| {
                    // Distinct ids (a real id is unique); the low range keeps ties of fit.
                    let mut n = idn;
                    while !used.insert(n) {
                        n += 7;
                    }
                    let _ = i;
                    Researcher {
                        id: id(n),
                        field: FIELDS[f].into(),
                        skills: s.into_iter().map(|k| SKILLS[k].to_string()).collect(),
                        seniority: sen,
                        preferences: order.into_iter().take(len).collect(),
                    }
                })
                .collect();
            (positions, researchers)
        })
    })
}

/// Every assignment of researchers to listed positions within the counts.
fn all_assignments(positions: &[Position], researchers: &[Researcher]) -> Vec<Vec<Option<usize>>> {
    let mut out = vec![vec![]];
    for r in researchers {
        let mut next = Vec::new();
        for partial in &out {
            let mut options = vec![None];
            options.extend(r.preferences.iter().map(|&p| Some(p)));
            for o in options {
                if let Some(p) = o {
                    let taken = partial.iter().filter(|&&x| x == Some(p)).count();
                    if taken >= positions[p].count {
                        continue;
                    }
                }
                let mut a: Vec<Option<usize>> = partial.clone();
                a.push(o);
                next.push(a);
            }
        }
        out = next;
    }
    out
}

/// How a researcher values an outcome: lower is better, unmatched worst.
fn rank_of(r: &Researcher, p: Option<usize>) -> usize {
    p.and_then(|p| r.preferences.iter().position(|&q| q == p))
        .unwrap_or(usize::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn deferred_acceptance_is_stable_and_researcher_optimal((positions, researchers) in instance()) {
        let w = FitWeights::default();
        let proposals = deferred_acceptance(&positions, &researchers, &w);
        let mut assigned = vec![None; researchers.len()];
        for p in &proposals {
            prop_assert!(assigned[p.researcher].is_none(), "a researcher matched twice");
            assigned[p.researcher] = Some(p.position);
        }
        // Feasible: counts and acceptability.
        for (i, pos) in positions.iter().enumerate() {
            prop_assert!(assigned.iter().filter(|&&a| a == Some(i)).count() <= pos.count);
        }
        for (r, a) in assigned.iter().enumerate() {
            if let Some(p) = a {
                prop_assert!(researchers[r].preferences.contains(p));
            }
        }
        // Stable.
        prop_assert_eq!(blocking_pair(&positions, &researchers, &w, &assigned), None);
        // Researcher-optimal: in every stable matching (found by brute force), every
        // researcher does no better than under deferred acceptance.
        let mut stable = 0;
        for other in all_assignments(&positions, &researchers) {
            if blocking_pair(&positions, &researchers, &w, &other).is_some() {
                continue;
            }
            stable += 1;
            for (r, res) in researchers.iter().enumerate() {
                prop_assert!(
                    rank_of(res, assigned[r]) <= rank_of(res, other[r]),
                    "researcher {} does better in another stable matching {:?} than in {:?}",
                    r, other, assigned
                );
            }
        }
        prop_assert!(stable >= 1, "brute force found the DA matching stable too");
        // Explanations agree with the inputs.
        for p in &proposals {
            prop_assert_eq!(p.fit, fit(&positions[p.position], &researchers[p.researcher], &w));
            prop_assert_eq!(researchers[p.researcher].preferences[p.researcher_rank - 1], p.position);
            prop_assert!(p.position_rank >= 1 && p.position_rank <= p.applicants);
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_researchers_are_listed(
        (positions, researchers) in instance(),
    ) {
        let w = FitWeights::default();
        let pairs = |rs: &[Researcher]| {
            let mut v: Vec<(Uuid, usize)> = deferred_acceptance(&positions, rs, &w)
                .iter()
                .map(|p| (rs[p.researcher].id, p.position))
                .collect();
            v.sort();
            v
        };
        let mut reversed = researchers.clone();
        reversed.reverse();
        prop_assert_eq!(pairs(&researchers), pairs(&reversed));
    }
}
