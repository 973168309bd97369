//! A gate's expert panel after the first gate (issue #11), over the real broker:
//! - scoring learns gate keys from milestones' `GateDefined`: a panel for a key it has not
//!   seen is refused `GATE_NOT_FOUND` naming the gate (it may not have arrived yet);
//! - a team milestones eliminated (`TeamEliminated`) is left out by default and refused when
//!   named; a replacement call's winner joins the panel beside the first call's teams;
//! - a panel is voided with a reason (a new row; nothing more is taken or published) and a
//!   new panel made for the gate; a closed panel cannot be voided;
//! - a reviewer's assignments carry the panel's criteria; staff list every assignment in
//!   pages with a cursor;
//! - a conflict declared after scoring takes the reviewer's sheet out of the count.

use crate::gate_inputs::{get, post, put};
use crate::replacement::{self, COMMITTEE};
use kaip_contracts::events::TeamEliminated;
use kaip_contracts::{DomainEvent, Role};
use kaip_e2e::{eventually, OrgType, Platform};
use kaip_testkit::TestService;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

fn count(svc: &TestService, sql: &str) -> i64 {
    replacement::count(svc, sql)
}

fn code(s: StatusCode, b: &Value) -> (StatusCode, Option<&str>) {
    (s, b["code"].as_str())
}

fn sheet(progress: i64, plan: i64) -> Value {
    json!({"scores": {"progress": progress, "plan": plan}, "comments": {}})
}

/// Staff's assignments of `panel`: (assignment id, reviewer, team).
async fn assignments(p: &Platform, officer: &str, panel: &str) -> Vec<(String, String, String)> {
    let (s, b) = get(
        &p.scoring,
        &format!("/panel-assignments?panel_id={panel}"),
        officer,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().expect("id").to_owned(),
                a["reviewer_id"].as_str().expect("reviewer").to_owned(),
                a["consortium_id"].as_str().expect("team").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_later_gates_panel_takes_replacement_winners_leaves_eliminated_teams_out_and_can_be_voided(
) {
    let p = Platform::start().await;
    p.intake.wait_assigned().await;
    for s in &p.others {
        s.wait_assigned().await;
    }
    let ms = &p.others[3];
    let officer = p.ctx.bearer_for("officer-1", Role::Officer, None);

    // A real selection: three proposals, the top two (c0, c1) selected.
    let call_id = kaip_e2e::open_call(&p, 2).await;
    let leads = [
        OrgType::LargeEnterprise,
        OrgType::Sme,
        OrgType::LargeEnterprise,
    ];
    let (consortia, ids) = crate::decisions::field(&p, &call_id, &leads).await;
    let stage_reviewers = ["gp-1", "gp-2"];
    crate::decisions::configure(&p, &call_id, &stage_reviewers, |c| {
        c["teams"] = json!(2);
        c["constraints"] = json!([]);
    })
    .await;
    crate::decisions::score(&p, &call_id, &stage_reviewers, &ids, |_, i| {
        (30 - 5 * i as i64, 20, 20)
    })
    .await;
    for q in [
        "mutation($c: UUID!) { closeStage(callId: $c, stage: 0) { proposalId } }",
        "mutation($c: UUID!) { proposeSelection(callId: $c) { version } }",
        "mutation($c: UUID!) { publishSelection(callId: $c) { version } }",
    ] {
        let body = p.graphql(Some(&officer), q, json!({ "c": call_id })).await;
        assert!(body["errors"].is_null(), "{q}: {body}");
    }
    let (c0, c1) = (consortia[0], consortia[1]);

    let criteria = json!([
        {"key": "progress", "name": "Progress against targets", "max_points": 20},
        {"key": "plan", "name": "Plan for the next stage", "max_points": 15},
    ]);
    let panel_body = |gate: &str, replacements: Value, teams: Value| {
        json!({"gate": gate, "call_id": call_id, "replacement_call_ids": replacements,
               "consortium_ids": teams, "criteria": criteria, "reviewers_per_team": 2,
               "reason": "gate 2 panel"})
    };

    // Lists past their caps are refused before anything is read, naming the field.
    let many_calls: Vec<String> = (0..21).map(|_| Uuid::now_v7().to_string()).collect();
    let many_teams: Vec<String> = (0..201).map(|_| Uuid::now_v7().to_string()).collect();
    for (body, field) in [
        (
            panel_body("gate-2", json!(many_calls), Value::Null),
            "replacement_call_ids",
        ),
        (
            panel_body("gate-2", Value::Null, json!(many_teams)),
            "consortium_ids",
        ),
    ] {
        let (s, b) = post(&p.scoring, "/panels", &officer, body).await;
        assert_eq!(
            code(s, &b),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
            "{b}"
        );
        assert!(
            b["message"].as_str().unwrap_or("").starts_with(field),
            "{b}"
        );
    }
    // 3. A gate milestones has not announced: refused, naming the gate, nothing written.
    let (s, b) = post(
        &p.scoring,
        "/panels",
        &officer,
        panel_body("gate-2", Value::Null, Value::Null),
    )
    .await;
    assert_eq!(
        code(s, &b),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("GATE_NOT_FOUND")),
        "{b}"
    );
    let msg = b["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("gate:") && msg.contains("gate-2") && msg.contains("not have arrived yet"),
        "{b}"
    );
    assert_eq!(count(&p.scoring, "SELECT count(*) FROM gate_panels"), 0);

    // Gate 1 eliminated c1: milestones' GateDecided (intake opens a replacement call for
    // the place) and TeamEliminated (scoring leaves c1 out of later panels).
    // One decision: the elimination carries the decision's gate id and time.
    let decided = replacement::decide_gate(&p, "gate-1", &[c1]).await;
    let eliminated = TeamEliminated {
        gate_id: decided.gate_id,
        gate: decided.gate.clone(),
        consortium_id: c1,
        reason: "rank: last".into(),
        reallocation: vec![],
        decided_at: decided.decided_at,
    };
    let env = kaip_contracts::EventEnvelope::wrap(
        "milestones",
        kaip_contracts::Actor::system("milestones"),
        &eliminated,
    )
    .expect("wrap");
    p.ctx
        .produce_raw(
            &p.ctx.topic(kaip_contracts::topics::MILESTONES),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[("kaip-event-type", TeamEliminated::TYPE)],
        )
        .await;
    eventually(Duration::from_secs(60), || async {
        (count(&p.scoring, "SELECT count(*) FROM eliminated_teams") == 1).then_some(())
    })
    .await
    .expect("scoring learnt the elimination");

    // A replacement call for the place, decided by its committee: one winner.
    let (s, rc) = replacement::post(
        &p.intake,
        "/calls",
        &officer,
        replacement::replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{rc}");
    let rc_id = rc["id"].as_str().expect("id").to_owned();
    let applicants = replacement::review(&p, &rc_id, "pn").await;
    let winner = applicants[0].1;
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { version } }",
            json!({ "c": rc_id }),
        )
        .await;
    let v = replacement::ok(&body)["proposeSelection"]["version"]
        .as_i64()
        .expect("version");
    replacement::vote(&p, &rc_id, v, COMMITTEE[0], true).await;
    replacement::vote(&p, &rc_id, v, COMMITTEE[1], true).await;
    let (s, b) = post(
        &p.scoring,
        &format!("/calls/{rc_id}/selection/publish"),
        &officer,
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Milestones defines gate 2; scoring learns it from GateDefined.
    let (s, g) = post(
        ms,
        "/gates",
        &officer,
        json!({"key": "gate-2", "phase": 2, "gate_date": "2027-12-30", "planned_eliminations": 1,
               "eligibility_rules": [], "committee": ["officer-a", "officer-b", "officer-c"],
               "reason": "second stage gate"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    eventually(Duration::from_secs(60), || async {
        (count(
            &p.scoring,
            "SELECT count(*) FROM known_gates WHERE gate = 'gate-2'",
        ) == 1)
            .then_some(())
    })
    .await
    .expect("scoring learnt gate-2");

    // 1. The first call is not a replacement call; naming the eliminated c1 is refused.
    let (s, b) = post(
        &p.scoring,
        "/panels",
        &officer,
        panel_body("gate-2", json!([call_id]), Value::Null),
    )
    .await;
    assert_eq!(
        code(s, &b),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("replacement_call_ids[0]"),
        "{b}"
    );
    let (s, b) = post(
        &p.scoring,
        "/panels",
        &officer,
        panel_body("gate-2", json!([rc_id]), json!([c0, c1])),
    )
    .await;
    assert_eq!(
        code(s, &b),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    let msg = b["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("consortium_ids[1]") && msg.contains("eliminated at gate gate-1"),
        "{b}"
    );
    assert_eq!(count(&p.scoring, "SELECT count(*) FROM gate_panels"), 0);
    // By default: c0 and the replacement call's winner, not c1.
    let (s, panel) = post(
        &p.scoring,
        "/panels",
        &officer,
        panel_body("gate-2", json!([rc_id]), Value::Null),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{panel}");
    let teams: BTreeSet<String> = serde_json::from_value(panel["teams"].clone()).expect("teams");
    assert_eq!(
        teams,
        [c0.0.to_string(), winner.0.to_string()]
            .into_iter()
            .collect()
    );
    assert_eq!(panel["replacement_call_ids"], json!([rc_id]));
    let first = panel["id"].as_str().expect("id").to_owned();

    for i in 1..=4 {
        let id = format!("pn-{i}");
        let (s, b) = post(
            &p.scoring,
            "/reviewers",
            &officer,
            json!({"id": id, "name": id, "organisation": format!("Panel Institute {i}"),
                   "expertise": ["LLM"]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, r) = post(
        &p.scoring,
        &format!("/panels/{first}/assignments"),
        &officer,
        json!({}),
    )
    .await;
    assert_eq!(
        (s, r["assigned"].as_i64()),
        (StatusCode::OK, Some(4)),
        "{r}"
    );

    // 4. A reviewer's own assignments carry the panel's criteria.
    let listed = assignments(&p, &officer, &first).await;
    let (a0, r0, _) = listed[0].clone();
    let token0 = p.ctx.bearer_for(&r0, Role::Reviewer, None);
    let (s, mine) = get(&p.scoring, "/panel-assignments", &token0).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let items = mine["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{mine}");
    assert!(items.iter().all(|a| a["criteria"] == criteria), "{mine}");
    let (s, b) = put(
        &p.scoring,
        &format!("/panel-assignments/{a0}/scores"),
        &token0,
        sheet(10, 10),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // 2. Void the open panel: a reason is required; recorded once with who and when.
    let void = format!("/panels/{first}/void");
    let (s, b) = post(&p.scoring, &void, &officer, json!({"reason": "  "})).await;
    assert_eq!(
        code(s, &b),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    assert_eq!(
        count(&p.scoring, "SELECT count(*) FROM gate_panel_voids"),
        0
    );
    let reviewer0 = p.ctx.bearer_for("pn-1", Role::Reviewer, None);
    let (s, _) = post(&p.scoring, &void, &reviewer0, json!({"reason": "no"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, voided) = post(
        &p.scoring,
        &void,
        &officer,
        json!({"reason": "the panel left out a winner"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{voided}");
    assert_eq!(
        (voided["voided_by"].as_str(), voided["void_reason"].as_str()),
        (Some("officer-1"), Some("the panel left out a winner"))
    );
    let (s, again) = post(&p.scoring, &void, &officer, json!({"reason": "again"})).await;
    assert_eq!(
        (s, &again["voided_at"], again["void_reason"].as_str()),
        (
            StatusCode::OK,
            &voided["voided_at"],
            Some("the panel left out a winner")
        )
    );
    // The voided panel takes no sheet, assignment or close, and leaves the listings.
    let (s, b) = put(
        &p.scoring,
        &format!("/panel-assignments/{a0}/scores"),
        &token0,
        sheet(11, 11),
    )
    .await;
    assert_eq!(
        code(s, &b),
        (StatusCode::CONFLICT, Some("PANEL_VOIDED")),
        "{b}"
    );
    for path in [
        format!("/panels/{first}/close"),
        format!("/panels/{first}/assignments"),
    ] {
        let (s, b) = post(&p.scoring, &path, &officer, json!({})).await;
        assert_eq!(
            code(s, &b),
            (StatusCode::CONFLICT, Some("PANEL_VOIDED")),
            "{path}: {b}"
        );
    }
    assert!(assignments(&p, &officer, &first).await.is_empty());
    let (_, mine) = get(&p.scoring, "/panel-assignments", &token0).await;
    assert_eq!(mine["items"], json!([]), "{mine}");
    assert_eq!(
        count(
            &p.scoring,
            &format!("SELECT count(*) FROM kaip_outbox WHERE event_key = '{first}'")
        ),
        0
    );
    // Its rows stay; a new panel for the same gate is made.
    assert_eq!(count(&p.scoring, "SELECT count(*) FROM gate_panels"), 1);
    let (s, panel) = post(
        &p.scoring,
        "/panels",
        &officer,
        panel_body("gate-2", json!([rc_id]), Value::Null),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{panel}");
    let second = panel["id"].as_str().expect("id").to_owned();
    assert_ne!(second, first);
    let mut other = panel_body("gate-2", json!([rc_id]), Value::Null);
    other["reason"] = json!("a third panel");
    let (s, b) = post(&p.scoring, "/panels", &officer, other).await;
    assert_eq!(code(s, &b), (StatusCode::CONFLICT, Some("PANEL_EXISTS")));
    let (s, r) = post(
        &p.scoring,
        &format!("/panels/{second}/assignments"),
        &officer,
        json!({}),
    )
    .await;
    assert_eq!(
        (s, r["assigned"].as_i64()),
        (StatusCode::OK, Some(4)),
        "{r}"
    );

    // 5. Staff list every assignment (no panel_id) in pages: one a page, by the cursor.
    let (s, b) = get(&p.scoring, "/panel-assignments?limit=0", &officer).await;
    assert_eq!(
        code(s, &b),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    assert!(
        b["message"].as_str().unwrap_or("").starts_with("limit"),
        "{b}"
    );
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/panel-assignments?limit=1&after={a}"),
            None => "/panel-assignments?limit=1".to_owned(),
        };
        let (s, page) = get(&p.scoring, &path, &officer).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 1, "{page}");
        seen.extend(
            items
                .iter()
                .map(|a| a["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 8, "the cursor goes round: {seen:?}");
    }
    let listed = assignments(&p, &officer, &second).await;
    let mut expected: Vec<String> = listed.iter().map(|a| a.0.clone()).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every assignment of the live panel, once");

    // 6. A late conflict: a reviewer scores, then declares a conflict with that team. The
    // assignment leaves their listing, takes no sheet, and does not count at the close.
    let (late_a, late_r, late_t) = listed[0].clone();
    let late_token = p.ctx.bearer_for(&late_r, Role::Reviewer, None);
    let path = format!("/panel-assignments/{late_a}/scores");
    let (s, b) = put(&p.scoring, &path, &late_token, sheet(20, 15)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &p.scoring,
        &format!("/reviewers/{late_r}/conflicts"),
        &late_token,
        json!({"consortium_id": late_t, "reason": "joined the team's lead as an adviser"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, mine) = get(&p.scoring, "/panel-assignments", &late_token).await;
    assert!(
        mine["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|a| a["id"] != late_a.as_str()),
        "{mine}"
    );
    let (s, b) = put(&p.scoring, &path, &late_token, sheet(19, 15)).await;
    assert_eq!(
        code(s, &b),
        (StatusCode::CONFLICT, Some("STATE_CONFLICT")),
        "{b}"
    );
    // Everyone else scores 10 + 5; the team is one sheet short until topped up.
    let score_all = |listed: Vec<(String, String, String)>| {
        let p = &p;
        let late_a = late_a.clone();
        async move {
            for (a, r, _) in listed {
                if a == late_a {
                    continue;
                }
                let token = p.ctx.bearer_for(&r, Role::Reviewer, None);
                let (s, b) = put(
                    &p.scoring,
                    &format!("/panel-assignments/{a}/scores"),
                    &token,
                    sheet(10, 5),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{b}");
            }
        }
    };
    score_all(listed.clone()).await;
    let close = format!("/panels/{second}/close");
    let (s, b) = post(&p.scoring, &close, &officer, json!({})).await;
    assert_eq!(
        code(s, &b),
        (StatusCode::CONFLICT, Some("STAGE_INCOMPLETE")),
        "{b}"
    );
    let (s, r) = post(
        &p.scoring,
        &format!("/panels/{second}/assignments"),
        &officer,
        json!({}),
    )
    .await;
    assert_eq!(
        (s, r["assigned"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{r}"
    );
    let refill: Vec<_> = assignments(&p, &officer, &second)
        .await
        .into_iter()
        .filter(|a| !listed.iter().any(|l| l.0 == a.0))
        .collect();
    assert_eq!(refill.len(), 1);
    assert_ne!(refill[0].1, late_r);
    score_all(refill).await;
    let (s, closed) = post(&p.scoring, &close, &officer, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    // Both teams: 15 and 15 of 35 = 42.8571, the late sheet (35 of 35) not counted.
    for r in closed["results"].as_array().expect("results") {
        assert_eq!(
            (r["score"].as_str(), r["reviewers"].as_i64()),
            (Some("42.8571"), Some(2)),
            "{closed}"
        );
    }
    assert_eq!(
        count(
            &p.scoring,
            &format!("SELECT count(*) FROM gate_panel_counted WHERE assignment_id = '{late_a}'")
        ),
        0
    );
    assert_eq!(
        count(
            &p.scoring,
            &format!("SELECT count(*) FROM kaip_outbox WHERE event_key = '{second}' AND event_type = 'GatePanelScored'")
        ),
        2
    );
    // Milestones recorded both scores as gate-2's expert-panel inputs, the replacement
    // winner's too (nothing dead-lettered).
    eventually(Duration::from_secs(60), || async {
        (count(
            ms,
            &format!(
                "SELECT count(*) FROM ms_gate_inputs i JOIN ms_gates g ON g.id = i.gate_id
                 WHERE g.key = 'gate-2' AND i.source = 'expert_panel'
                   AND i.consortium_id IN ('{}', '{}')",
                c0.0, winner.0
            ),
        ) == 2)
            .then_some(())
    })
    .await
    .expect("milestones recorded the panel's scores for c0 and the replacement winner");
    // A closed panel has published its scores: it cannot be voided.
    let (s, b) = post(
        &p.scoring,
        &format!("/panels/{second}/void"),
        &officer,
        json!({"reason": "too late"}),
    )
    .await;
    assert_eq!(
        code(s, &b),
        (StatusCode::CONFLICT, Some("PANEL_CLOSED")),
        "{b}"
    );
    assert_eq!(
        count(&p.scoring, "SELECT count(*) FROM gate_panel_voids"),
        1
    );
    // 7. The same through GraphQL: refusals keep their codes; a third gate's panel is
    // defined, assigned, listed with its criteria, an assignment and the panel voided.
    let gql = |q: &'static str, vars: Value| {
        let officer = officer.clone();
        let p = &p;
        async move { p.graphql(Some(&officer), q, vars).await }
    };
    let void_panel = "mutation($p: UUID!, $r: String!) { voidGatePanel(panelId: $p, reason: $r) { id voidedBy voidReason } }";
    let void_assignment = "mutation($a: UUID!, $r: String!) { voidPanelAssignment(assignmentId: $a, reason: $r) { assignmentId panelId voidedBy reason } }";
    let body = gql(void_panel, json!({"p": second, "r": "too late"})).await;
    assert_eq!(kaip_e2e::error_code(&body), Some("PANEL_CLOSED"), "{body}");
    let body = gql(void_assignment, json!({"a": a0, "r": "unavailable"})).await;
    assert_eq!(kaip_e2e::error_code(&body), Some("PANEL_VOIDED"), "{body}");
    let (s, g) = post(
        ms,
        "/gates",
        &officer,
        json!({"key": "gate-3", "phase": 3, "gate_date": "2028-06-30", "planned_eliminations": 0,
               "eligibility_rules": [], "committee": ["officer-a", "officer-b", "officer-c"],
               "reason": "third stage gate"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    eventually(Duration::from_secs(60), || async {
        (count(
            &p.scoring,
            "SELECT count(*) FROM known_gates WHERE gate = 'gate-3'",
        ) == 1)
            .then_some(())
    })
    .await
    .expect("scoring learnt gate-3");
    // c0, a survivor, also won the replacement call (intake does not refuse it): two
    // selected cases, the newer one with a member from Panel Institute 1. The panel staffs
    // c0 once, and never with pn-1 (conflicted through the newer proposal's member).
    {
        let mut conn = p.scoring.conn();
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!(
                "INSERT INTO evaluation_cases (id, proposal_id, call_id, consortium_id, title,
                     status, opened_at, consortium_name, members, resources, stage,
                     submitted_at, portfolio, recorded_seq)
                 SELECT gen_random_uuid(), gen_random_uuid(), '{rc_id}', consortium_id, title,
                     'selected', now(), consortium_name,
                     members || jsonb_build_array(jsonb_set(members->0, '{{name}}',
                         '\"Panel Institute 1\"')),
                     resources, stage, now(), portfolio, recorded_seq
                 FROM evaluation_cases WHERE consortium_id = '{}' AND call_id = '{call_id}'",
                c0.0
            )),
            &mut conn,
        )
        .expect("c0's replacement case");
    }
    let body = gql(
        "mutation($i: GatePanelInput!) { defineGatePanel(input: $i) { id teams replacementCallIds } }",
        json!({"i": {"gate": "gate-3", "callId": call_id, "replacementCallIds": [rc_id],
                     "criteria": [{"key": "progress", "name": "Progress", "maxPoints": 10}],
                     "reviewersPerTeam": 1, "reason": "gate 3 panel"}}),
    )
    .await;
    let defined = &replacement::ok(&body)["defineGatePanel"];
    let third = defined["id"].as_str().expect("id").to_owned();
    assert_eq!(defined["teams"].as_array().map(Vec::len), Some(2), "{body}");
    let body = gql(
        "mutation($p: UUID!) { assignPanelReviewers(panelId: $p) { assigned } }",
        json!({"p": third}),
    )
    .await;
    assert_eq!(
        replacement::ok(&body)["assignPanelReviewers"]["assigned"],
        2
    );
    assert_eq!(
        count(
            &p.scoring,
            &format!(
                "SELECT count(*) FROM gate_panel_assignments WHERE panel_id = '{third}'
                 AND consortium_id = '{}' AND reviewer_id = 'pn-1'",
                c0.0
            )
        ),
        0,
        "pn-1's organisation is a member of c0's newer proposal"
    );
    let body = gql(
        "query($p: UUID!) { panelAssignments(panelId: $p, first: 1) { items { id criteria { key maxPoints } } nextCursor } }",
        json!({"p": third}),
    )
    .await;
    let page = &replacement::ok(&body)["panelAssignments"];
    assert_eq!(
        page["items"][0]["criteria"],
        json!([{"key": "progress", "maxPoints": 10}]),
        "{body}"
    );
    assert!(page["nextCursor"].is_string(), "a second page: {body}");
    let one = page["items"][0]["id"].as_str().expect("id").to_owned();
    let body = gql(void_assignment, json!({"a": one, "r": "unavailable"})).await;
    assert_eq!(
        replacement::ok(&body)["voidPanelAssignment"]["voidedBy"],
        "officer-1"
    );
    // An elimination that arrives after the panel exists (gate 2 eliminates c0): the panel
    // takes no more assignments and no close (its score would be dead-lettered), naming
    // the team and the gate; nothing is written.
    let late = TeamEliminated {
        gate_id: Uuid::now_v7(),
        gate: "gate-2".into(),
        consortium_id: c0,
        reason: "rank: last".into(),
        reallocation: vec![],
        decided_at: chrono::Utc::now(),
    };
    let env = kaip_contracts::EventEnvelope::wrap(
        "milestones",
        kaip_contracts::Actor::system("milestones"),
        &late,
    )
    .expect("wrap");
    p.ctx
        .produce_raw(
            &p.ctx.topic(kaip_contracts::topics::MILESTONES),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[("kaip-event-type", TeamEliminated::TYPE)],
        )
        .await;
    eventually(Duration::from_secs(60), || async {
        (count(&p.scoring, "SELECT count(*) FROM eliminated_teams") == 2).then_some(())
    })
    .await
    .expect("scoring learnt c0's elimination");
    let before = (
        count(&p.scoring, "SELECT count(*) FROM gate_panel_assignments"),
        count(&p.scoring, "SELECT count(*) FROM gate_panel_closures"),
        count(&p.scoring, "SELECT count(*) FROM kaip_outbox"),
    );
    for action in ["assignments", "close"] {
        let (s, b) = post(
            &p.scoring,
            &format!("/panels/{third}/{action}"),
            &officer,
            json!({}),
        )
        .await;
        assert_eq!(
            code(s, &b),
            (StatusCode::CONFLICT, Some("STATE_CONFLICT")),
            "{action}: {b}"
        );
        let msg = b["message"].as_str().unwrap_or("");
        assert!(
            msg.contains(&c0.0.to_string()) && msg.contains("gate-2") && msg.contains("void"),
            "{action}: {b}"
        );
    }
    assert_eq!(
        (
            count(&p.scoring, "SELECT count(*) FROM gate_panel_assignments"),
            count(&p.scoring, "SELECT count(*) FROM gate_panel_closures"),
            count(&p.scoring, "SELECT count(*) FROM kaip_outbox"),
        ),
        before
    );
    let body = gql(void_panel, json!({"p": third, "r": "the gate was merged"})).await;
    let voided = &replacement::ok(&body)["voidGatePanel"];
    assert_eq!(
        (voided["voidedBy"].as_str(), voided["voidReason"].as_str()),
        (Some("officer-1"), Some("the gate was merged"))
    );
    assert_eq!(
        count(&p.scoring, "SELECT count(*) FROM gate_panel_voids"),
        2
    );

    // Concurrent creates for one gate (its panel voided): the advisory lock on the key
    // lets exactly one through; the others are PANEL_EXISTS.
    let results = futures::future::join_all((0..4).map(|i| {
        let mut body = panel_body("gate-3", json!([rc_id]), Value::Null);
        body["reason"] = json!(format!("gate 3 panel, attempt {i}"));
        post(&p.scoring, "/panels", &officer, body)
    }))
    .await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != StatusCode::CREATED)
            .all(|(s, b)| code(*s, b) == (StatusCode::CONFLICT, Some("PANEL_EXISTS"))),
        "{results:?}"
    );
    assert_eq!(
        count(
            &p.scoring,
            "SELECT count(*) FROM gate_panels g WHERE gate = 'gate-3'
             AND NOT EXISTS (SELECT 1 FROM gate_panel_voids v WHERE v.panel_id = g.id)"
        ),
        1
    );

    // 8. What milestones could never record is refused at create, naming the field: a gate
    // with no expert_panel component (gate-9), a gate already decided (gate-2: its
    // TeamEliminated above), and a replacement call for a place freed at a gate that is not
    // before the panel's (gate-1, announced here with a later phase than gate-3's).
    let produce = |env: kaip_contracts::EventEnvelope| {
        let p = &p;
        async move {
            p.ctx
                .produce_raw(
                    &p.ctx.topic(kaip_contracts::topics::MILESTONES),
                    &env.aggregate_id.to_string(),
                    &serde_json::to_vec(&env).expect("json"),
                    &[("kaip-event-type", &env.event_type)],
                )
                .await
        }
    };
    for (key, phase, expert_panel) in [("gate-9", 9, false), ("gate-1", 5, true)] {
        let ev = kaip_contracts::events::GateDefined {
            gate_id: Uuid::now_v7(),
            gate: key.into(),
            phase,
            gate_date: chrono::NaiveDate::from_ymd_opt(2029, 6, 30).expect("date"),
            defined_at: chrono::Utc::now(),
            expert_panel,
        };
        produce(
            kaip_contracts::EventEnvelope::wrap(
                "milestones",
                kaip_contracts::Actor::system("milestones"),
                &ev,
            )
            .expect("wrap"),
        )
        .await;
    }
    eventually(Duration::from_secs(60), || async {
        (count(
            &p.scoring,
            "SELECT count(*) FROM known_gates WHERE gate IN ('gate-1', 'gate-9')",
        ) == 2)
            .then_some(())
    })
    .await
    .expect("scoring learnt gate-1 and gate-9");
    let panels_before = count(&p.scoring, "SELECT count(*) FROM gate_panels");
    for (body, field, says) in [
        (
            panel_body("gate-9", Value::Null, Value::Null),
            "gate",
            "no expert_panel component",
        ),
        (
            panel_body("gate-2", Value::Null, Value::Null),
            "gate",
            "decision was published",
        ),
        (
            panel_body("gate-3", json!([rc_id]), Value::Null),
            "replacement_call_ids[0]",
            "not a gate before gate-3",
        ),
    ] {
        let (s, b) = post(&p.scoring, "/panels", &officer, body).await;
        assert_eq!(
            code(s, &b),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
            "{b}"
        );
        let msg = b["message"].as_str().unwrap_or("");
        assert!(msg.starts_with(field) && msg.contains(says), "{b}");
    }
    assert_eq!(
        count(&p.scoring, "SELECT count(*) FROM gate_panels"),
        panels_before
    );
}

/// Milestones' announce (`POST /admin/announce`) republishes a gate's `GateDefined` and a
/// decision's `TeamEliminated` as new events: scoring records each once, the repeats are
/// no-ops, and a repeat with a different gate id for a known key changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_records_announced_gates_and_eliminations_once() {
    let ctx = kaip_testkit::TestContext::new();
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    let gate_id = Uuid::now_v7();
    let defined = kaip_contracts::events::GateDefined {
        gate_id,
        gate: "gate-1".into(),
        phase: 1,
        gate_date: chrono::NaiveDate::from_ymd_opt(2026, 6, 30).expect("date"),
        defined_at: chrono::Utc::now(),
        expert_panel: true,
    };
    let eliminated = TeamEliminated {
        gate_id,
        gate: "gate-1".into(),
        consortium_id: kaip_contracts::ConsortiumId::new(),
        reason: "rank: last".into(),
        reallocation: vec![],
        decided_at: chrono::Utc::now(),
    };
    let other_id = kaip_contracts::events::GateDefined {
        gate_id: Uuid::now_v7(),
        ..defined.clone()
    };
    let topic = ctx.topic(kaip_contracts::topics::MILESTONES);
    let actor = kaip_contracts::Actor::system("milestones");
    let envs = [
        kaip_contracts::EventEnvelope::wrap("milestones", actor.clone(), &defined),
        kaip_contracts::EventEnvelope::wrap("milestones", actor.clone(), &eliminated),
        // The announce, twice: new event ids, the same data (one with another gate id).
        kaip_contracts::EventEnvelope::wrap("milestones", actor.clone(), &defined),
        kaip_contracts::EventEnvelope::wrap("milestones", actor.clone(), &eliminated),
        kaip_contracts::EventEnvelope::wrap("milestones", actor.clone(), &other_id),
        kaip_contracts::EventEnvelope::wrap("milestones", actor, &eliminated),
    ];
    for env in envs {
        let env = env.expect("wrap");
        ctx.produce_raw(
            &topic,
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[("kaip-event-type", &env.event_type)],
        )
        .await;
    }
    eventually(Duration::from_secs(60), || async {
        (count(
            &scoring,
            "SELECT count(*) FROM kaip_inbox WHERE topic LIKE '%milestones%'",
        ) == 6)
            .then_some(())
    })
    .await
    .expect("scoring processed all six");
    assert_eq!(
        count(
            &scoring,
            &format!(
                "SELECT count(*) FROM known_gates WHERE gate = 'gate-1' AND gate_id = '{gate_id}'"
            )
        ),
        1
    );
    assert_eq!(count(&scoring, "SELECT count(*) FROM known_gates"), 1);
    assert_eq!(count(&scoring, "SELECT count(*) FROM eliminated_teams"), 1);
}
