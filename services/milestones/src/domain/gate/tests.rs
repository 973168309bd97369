use super::*;
use uuid::Uuid;

fn first() -> Vec<Component> {
    components(&first_gate()).unwrap()
}

fn team(n: u128, values: [&str; 5], failed: &[&str]) -> TeamFacts {
    let keys = [
        "benchmark-national",
        "benchmark-global",
        "benchmark-team",
        "expert-panel",
        "user-evaluation",
    ];
    TeamFacts {
        team: ConsortiumId(Uuid::from_u128(n)),
        values: keys
            .iter()
            .zip(values)
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    decimal::parse("v", v, INPUT_SCALE).unwrap(),
                )
            })
            .collect(),
        failed_rules: failed.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn the_first_gate_template_sums_to_100_with_benchmarks_40() {
    let c = first();
    assert_eq!(check_weights(&c), Ok(()));
    let bench: i32 = c
        .iter()
        .filter(|c| c.group == "benchmarks")
        .map(|c| c.weight)
        .sum();
    assert_eq!(bench, 40);
    assert_eq!(
        c.iter().map(|c| c.weight).collect::<Vec<_>>(),
        [10, 20, 10, 35, 25]
    );
}

#[test]
fn weights_that_do_not_sum_to_100_are_refused_with_the_sum_and_groups() {
    let mut d = first_gate();
    d[3].weight = 30;
    let e = check_weights(&components(&d).unwrap()).unwrap_err();
    assert!(e.contains("sum to 95"), "{e}");
    assert!(e.contains("benchmarks 40"), "{e}");
    d[3].weight = 40;
    assert!(check_weights(&components(&d).unwrap())
        .unwrap_err()
        .contains("sum to 105"));
}

#[test]
fn bad_components_name_the_field() {
    let mut d = first_gate();
    d[1].key = d[0].key.clone();
    assert_eq!(components(&d).unwrap_err().field, "components[1].key");
    let mut d = first_gate();
    d[0].normalisation = "zscore".into();
    assert_eq!(
        components(&d).unwrap_err().field,
        "components[0].normalisation"
    );
    let mut d = first_gate();
    d[3].max = Some("0".into());
    assert_eq!(components(&d).unwrap_err().field, "components[3].max");
    let mut d = first_gate();
    d[2].weight = 0;
    assert_eq!(components(&d).unwrap_err().field, "components[2].weight");
    assert_eq!(components(&[]).unwrap_err().field, "components");
}

#[test]
fn min_max_gives_the_best_the_whole_weight_and_rounds_down_to_a_nano_point() {
    let c = &first()[1]; // global, 20, min-max
    assert_eq!(points(c, 90, 60, 90), 20 * NANO);
    assert_eq!(points(c, 60, 60, 90), 0);
    // 20 × 1/3 = 6.666666666… rounded down.
    assert_eq!(points(c, 70, 60, 90), 6_666_666_666);
    // All equal: everyone gets the weight.
    assert_eq!(points(c, 5, 5, 5), 20 * NANO);
    let p = &first()[3]; // panel, 35, of 100
    assert_eq!(points(p, 800_000, 0, 0), 28 * NANO); // 80/100 × 35
    assert_eq!(points(p, 1_000_000, 0, 0), 35 * NANO);
}

/// The real first gate: planned 5 → 4, ended 5 → 3: a team in the top four failed the
/// independence rule and the lowest-ranked eligible team was eliminated too.
#[test]
fn an_ineligible_team_is_eliminated_whatever_its_score_and_the_lowest_by_rank() {
    let teams = vec![
        team(1, ["80", "70", "60", "90", "85"], &[]),
        team(
            2,
            ["85", "75", "65", "92", "88"],
            &["built-from-scratch: used a foreign base model"],
        ),
        team(3, ["70", "60", "50", "70", "70"], &[]),
        team(4, ["75", "65", "55", "80", "75"], &[]),
        team(5, ["60", "50", "40", "60", "60"], &[]),
    ];
    let out = propose(&first(), &teams, 1).unwrap();
    let eliminated: Vec<u128> = out
        .iter()
        .filter(|r| r.outcome == "eliminated")
        .map(|r| r.consortium_id.0.as_u128())
        .collect();
    assert_eq!(eliminated, [5, 2]);
    let t2 = out
        .iter()
        .find(|r| r.consortium_id.0.as_u128() == 2)
        .unwrap();
    assert_eq!(
        t2.score, "94.200000000",
        "the best score (40 + 32.2 + 22), still out"
    );
    assert_eq!(t2.rank, None);
    assert!(t2
        .reason
        .as_deref()
        .unwrap()
        .starts_with("ineligible: built-from-scratch"));
    let t5 = out
        .iter()
        .find(|r| r.consortium_id.0.as_u128() == 5)
        .unwrap();
    assert_eq!(t5.rank, Some(4));
    assert!(t5.reason.as_deref().unwrap().starts_with("rank: 4 of 4"));
    let ranks: Vec<(u128, Option<i32>)> = out
        .iter()
        .map(|r| (r.consortium_id.0.as_u128(), r.rank))
        .collect();
    assert_eq!(
        ranks[..4],
        [(1, Some(1)), (4, Some(2)), (3, Some(3)), (5, Some(4))]
    );
}

#[test]
fn the_score_is_the_exact_total_rounded_down_and_the_points_each_rounded_down() {
    let teams = vec![
        team(1, ["80", "70", "60", "90.5", "85.25"], &[]),
        team(2, ["50", "40", "30", "70", "60"], &[]),
        team(3, ["60", "50", "40", "80", "70"], &[]),
    ];
    let out = propose(&first(), &teams, 0).unwrap();
    let t3 = out
        .iter()
        .find(|r| r.consortium_id.0.as_u128() == 3)
        .unwrap();
    // national 10×10/30 = 3.333333333, global 20×10/30 = 6.666666666, team 10×10/30 =
    // 3.333333333, panel 35×0.8 = 28, users 25×0.7 = 17.5.
    let pts: Vec<&str> = t3.components.iter().map(|c| c.points.as_str()).collect();
    assert_eq!(
        pts,
        [
            "3.333333333",
            "6.666666666",
            "3.333333333",
            "28.000000000",
            "17.500000000"
        ]
    );
    // Exactly 40/3 + 45.5 = 58.8333…: shown rounded down once, not as the sum of the
    // rounded points (58.833333332).
    assert_eq!(t3.score, "58.833333333");
    assert!(out.iter().all(|r| r.outcome == "continues"));
}

#[test]
fn ties_are_broken_by_the_components_in_order_then_by_id_and_flagged() {
    let teams = vec![
        team(9, ["50", "50", "50", "50", "50"], &[]),
        team(3, ["50", "50", "50", "50", "50"], &[]),
    ];
    let out = propose(&first(), &teams, 1).unwrap();
    assert_eq!(out[0].consortium_id.0.as_u128(), 3);
    assert_eq!(out[1].outcome, "eliminated");
    assert!(out.iter().all(|r| r.tie_break.is_some()));
    // Same inputs in another order: the same outcome.
    let rev: Vec<TeamFacts> = teams.into_iter().rev().collect();
    assert_eq!(propose(&first(), &rev, 1).unwrap(), out);
}

/// The review's counterexample (issue #11): A and C score exactly 68.5 (A: 10 + 40/3 +
/// 20/3 + 21 + 17.5; C: 0 + 20 + 10 + 21 + 17.5). Summing points rounded to nano-points gave
/// A 68.499999999 and put C above A; exactly, they tie and the tie rule (the components'
/// points in the gate's order: national, A 10 against C 0) puts A above C.
#[test]
fn exact_scores_decide_the_rank_and_an_exact_tie_goes_to_the_tie_rule() {
    let teams = vec![
        team(1, ["6", "4", "2", "60", "70"], &[]), // A
        team(2, ["6", "0", "0", "80", "80"], &[]), // B
        team(3, ["1", "6", "3", "60", "70"], &[]), // C
    ];
    let out = propose(&first(), &teams, 1).unwrap();
    let by = |n: u128| {
        out.iter()
            .find(|r| r.consortium_id.0.as_u128() == n)
            .unwrap()
    };
    assert_eq!(by(1).score, "68.500000000");
    assert_eq!(by(3).score, "68.500000000");
    assert_eq!(by(2).score, "58.000000000");
    assert_eq!(
        [by(1).rank, by(3).rank, by(2).rank],
        [Some(1), Some(2), Some(3)]
    );
    assert!(by(1).tie_break.is_some() && by(3).tie_break.is_some());
    assert!(by(2).tie_break.is_none(), "B ties with nobody");
    // Two places to cut: C goes, A stays, whatever the order of the inputs.
    for input in [teams.clone(), teams.iter().rev().cloned().collect()] {
        let out = propose(&first(), &input, 2).unwrap();
        let outcome = |n: u128| {
            out.iter()
                .find(|r| r.consortium_id.0.as_u128() == n)
                .map(|r| r.outcome.clone())
                .unwrap()
        };
        assert_eq!(outcome(1), "continues");
        assert_eq!(outcome(3), "eliminated");
        assert_eq!(outcome(2), "eliminated");
    }
}

/// Min-max ranges are the eligible teams': with the ineligible team's global value (0) in
/// the range, E1 would score 64 against E2's 60 and E2 would go; over the eligible teams
/// only, E1 scores 10 + 0 (+ 40 elsewhere) and E2 0 + 20, and E1 goes.
#[test]
fn min_max_ranges_are_the_eligible_teams_so_an_ineligible_team_decides_nothing() {
    let e1 = team(1, ["10", "7", "1", "50", "50"], &[]);
    let e2 = team(2, ["0", "10", "1", "50", "50"], &[]);
    let out_of = team(3, ["5", "0", "1", "50", "50"], &["built-from-scratch: no"]);
    let with = propose(&first(), &[e1.clone(), e2.clone(), out_of], 1).unwrap();
    let without = propose(&first(), &[e1, e2], 1).unwrap();
    assert_eq!(
        with[..2],
        without[..],
        "the eligible teams' results are the same"
    );
    let outcome = |n: u128| {
        with.iter()
            .find(|r| r.consortium_id.0.as_u128() == n)
            .map(|r| (r.outcome.as_str(), r.score.as_str()))
            .unwrap()
    };
    assert_eq!(outcome(1), ("eliminated", "50.000000000"));
    assert_eq!(outcome(2), ("continues", "60.000000000"));
    // The ineligible team's global value (below the eligible range) is clamped: 0 points,
    // never negative; its national value is inside the range: 5.
    let pts: Vec<&str> = with[2]
        .components
        .iter()
        .map(|c| c.points.as_str())
        .collect();
    assert_eq!(pts[..2], ["5.000000000", "0.000000000"]);
}

#[test]
fn more_planned_eliminations_than_eligible_teams_eliminates_them_all_without_panic() {
    let teams = vec![team(1, ["1", "1", "1", "1", "1"], &["r: g"])];
    let out = propose(&first(), &teams, 3).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].outcome, "eliminated");
    let teams = vec![team(1, ["1", "1", "1", "1", "1"], &[])];
    assert_eq!(
        propose(&first(), &teams, 3).unwrap()[0].outcome,
        "eliminated"
    );
    assert!(propose(&first(), &[], 1).unwrap().is_empty());
}

#[test]
fn a_missing_input_names_the_team_and_component() {
    let mut t = team(1, ["1", "1", "1", "1", "1"], &[]);
    t.values.remove("expert-panel");
    let e = propose(&first(), &[t], 0).unwrap_err();
    assert_eq!(e.component, "expert-panel");
}

#[test]
fn an_ineligible_team_needs_no_missing_input_and_it_earns_nothing() {
    let mut out_of = team(2, ["9", "9", "9", "90", "90"], &["built-from-scratch: no"]);
    out_of.values.remove("expert-panel");
    let teams = vec![team(1, ["1", "1", "1", "50", "50"], &[]), out_of];
    let out = propose(&first(), &teams, 0).unwrap();
    assert_eq!(out[1].outcome, "eliminated");
    assert_eq!(out[1].components.len(), 4, "the missing input is not shown");
    assert!(out[1].components.iter().all(|c| c.key != "expert-panel"));
    // One eligible team: its values are the whole range, worth the whole weight (10 + 20 +
    // 10); users 22.5; no panel points.
    assert_eq!(out[1].score, "62.500000000");
}

#[test]
fn extreme_values_do_not_overflow() {
    let max = decimal::parse("v", "1000000000", INPUT_SCALE).unwrap();
    let c = &first()[0];
    assert_eq!(points(c, max, 0, max), 10 * NANO);
    assert_eq!(points(c, 1, 0, max), 0);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn facts() -> impl Strategy<Value = Vec<TeamFacts>> {
        prop::collection::vec(
            (prop::array::uniform5(0i64..=1_000_000), any::<bool>()),
            0..8,
        )
        .prop_map(|rows| {
            let keys = [
                "benchmark-national",
                "benchmark-global",
                "benchmark-team",
                "expert-panel",
                "user-evaluation",
            ];
            rows.into_iter()
                .enumerate()
                .map(|(i, (vals, ok))| TeamFacts {
                    team: ConsortiumId(Uuid::from_u128(i as u128 + 1)),
                    values: keys
                        .iter()
                        .zip(vals)
                        .map(|(k, v)| ((*k).to_owned(), v))
                        .collect(),
                    failed_rules: if ok {
                        vec![]
                    } else {
                        vec!["rule: grounds".into()]
                    },
                })
                .collect()
        })
    }

    fn nano(s: &str) -> i128 {
        let (i, f) = s.split_once('.').unwrap();
        i.parse::<i128>().unwrap() * NANO + f.parse::<i128>().unwrap()
    }

    proptest! {
        #[test]
        fn eliminations_scores_and_order_hold_for_any_inputs(teams in facts(), planned in 0i32..6) {
            let c = first();
            let out = propose(&c, &teams, planned).unwrap();
            prop_assert_eq!(out.len(), teams.len());
            let ineligible = teams.iter().filter(|t| !t.failed_rules.is_empty()).count();
            let eligible = teams.len() - ineligible;
            let eliminated = out.iter().filter(|r| r.outcome == "eliminated").count();
            // Every ineligible team, plus the planned number of eligible ones (fewer if fewer).
            prop_assert_eq!(eliminated, ineligible + eligible.min(planned as usize));
            for r in &out {
                let total = nano(&r.score);
                prop_assert!((0..=100 * NANO).contains(&total));
                let sum: i128 = r.components.iter().map(|c| nano(&c.points)).sum();
                // The score is the exact total rounded down once; the shown points are each
                // rounded down, so they fall short of it by less than one nano-point each.
                prop_assert!(sum <= total && total - sum < c.len() as i128, "{} {}", sum, total);
                prop_assert_eq!(r.eligible, r.rank.is_some());
                if !r.eligible {
                    prop_assert!(r.reason.as_deref().unwrap().starts_with("ineligible: "));
                }
            }
            // Ranks run 1..=eligible in non-increasing score order; eliminations by rank are
            // the lowest.
            let ranked: Vec<&dto::TeamResult> = out.iter().filter(|r| r.eligible).collect();
            for (i, r) in ranked.iter().enumerate() {
                prop_assert_eq!(r.rank, Some(i as i32 + 1));
                if i > 0 {
                    prop_assert!(nano(&ranked[i - 1].score) >= nano(&r.score));
                }
                let out_by_rank = i >= eligible - eligible.min(planned as usize);
                prop_assert_eq!(r.outcome == "eliminated", out_by_rank);
            }
            // An ineligible team changes nothing for the eligible ones.
            let only: Vec<TeamFacts> =
                teams.iter().filter(|t| t.failed_rules.is_empty()).cloned().collect();
            let alone = propose(&c, &only, planned).unwrap();
            prop_assert_eq!(&out[..alone.len()], &alone[..]);
            // The order of the inputs does not matter.
            let mut rev = teams.clone();
            rev.reverse();
            prop_assert_eq!(propose(&c, &rev, planned).unwrap(), out);
        }
    }
}

#[test]
fn component_kinds_default_to_the_templates_conventions_and_one_panel_out_of_100() {
    let kinds: Vec<ComponentKind> = components(&first_gate())
        .unwrap()
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ComponentKind::Benchmark,
            ComponentKind::Benchmark,
            ComponentKind::Benchmark,
            ComponentKind::ExpertPanel,
            ComponentKind::Other
        ]
    );
    // Named kinds win over the conventions; an unknown one is refused.
    let mut d = first_gate();
    d[0].kind = Some("other".into());
    d[4].kind = Some("benchmark".into());
    let c = components(&d).unwrap();
    assert_eq!(
        (c[0].kind, c[4].kind),
        (ComponentKind::Other, ComponentKind::Benchmark)
    );
    d[1].kind = Some("panel".into());
    let e = components(&d).unwrap_err();
    assert_eq!(e.field, "components[1].kind");
    // Without a kind (a gate stored before kinds): the conventions.
    let mut d = first_gate();
    for c in &mut d {
        c.kind = None;
    }
    assert_eq!(components(&d).unwrap()[3].kind, ComponentKind::ExpertPanel);
    // A second expert panel, or a panel scored of_max out of anything but 100: refused.
    let mut d = first_gate();
    d[4].kind = Some("expert_panel".into());
    let e = components(&d).unwrap_err();
    assert_eq!(e.field, "components[4].kind");
    let mut d = first_gate();
    d[3].max = Some("35".into());
    let e = components(&d).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.rule.contains("100")),
        ("components[3].max", true)
    );
    d[3].normalisation = "min_max".into();
    d[3].max = None;
    assert!(components(&d).is_ok(), "a min-max panel component is fine");
    assert_eq!(
        first_gate()[3].kind.as_deref(),
        Some("expert_panel"),
        "the template names its panel"
    );
}

/// A team reading its own result learns nothing of the others: no eligible count in the
/// rank reason, no tie-break; its own ineligibility grounds stay.
#[test]
fn the_teams_own_view_says_nothing_about_the_other_teams() {
    let teams = vec![
        team(1, ["6", "4", "2", "60", "70"], &[]),
        team(2, ["6", "0", "0", "80", "80"], &[]),
        team(3, ["1", "6", "3", "60", "70"], &[]),
        team(
            4,
            ["9", "9", "9", "90", "90"],
            &["no-data-card: nothing filed"],
        ),
    ];
    let out = propose(&first(), &teams, 2).unwrap();
    let by = |n: u128| {
        out.iter()
            .find(|r| r.consortium_id.0.as_u128() == n)
            .cloned()
            .unwrap()
    };
    // Staff's text: "rank: 2 of 3 eligible teams ..." and a tie-break for A and C.
    assert!(by(3)
        .reason
        .as_deref()
        .unwrap()
        .contains("of 3 eligible teams"));
    assert!(by(3).tie_break.is_some());
    let c = for_the_team(by(3), 2);
    assert_eq!(
        c.reason.as_deref(),
        Some("rank: below the cut; the gate eliminates its 2 lowest-ranked eligible team(s)")
    );
    assert_eq!(c.tie_break, None);
    assert_eq!(
        (c.rank, c.score.as_str()),
        (by(3).rank, by(3).score.as_str())
    );
    let a = for_the_team(by(1), 2);
    assert_eq!((a.reason, a.tie_break), (None, None));
    let d = for_the_team(by(4), 2);
    assert_eq!(d.reason, by(4).reason, "its own grounds");
    assert!(d.reason.as_deref().unwrap().starts_with("ineligible: "));
}
