//! A replacement call end to end against the real PostgreSQL and broker: milestones'
//! `GateDecided` frees two places; intake refuses a replacement call for a gate it has not
//! seen decided, more places than freed, too small a committee, a second open one, and an
//! application from a team the gate eliminated (each coded, nothing written); two teams
//! apply to a call for one place, are reviewed in a single stage, the committee votes
//! (non-member, second vote and no majority refused, nothing written), the selection is
//! published and the ledger offers the winner 768 B200, which it accepts; milestones and
//! the data budget take the winner on too. A second replacement call for the place still
//! free selects nobody: published with no team, and no offer appears.

use diesel::prelude::*;
use kaip_contracts::events::GateDecided;
use kaip_contracts::{ConsortiumId, DomainEvent, Role};
use kaip_e2e::{error_code, eventually, Platform};
use kaip_testkit::TestService;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

pub(crate) const COMMITTEE: [&str; 3] = ["officer-kim", "officer-lee", "officer-park"];

async fn rest(
    svc: &TestService,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, svc.url(path))
        .header("Authorization", bearer);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn post(
    svc: &TestService,
    path: &str,
    bearer: &str,
    body: Value,
) -> (StatusCode, Value) {
    rest(svc, reqwest::Method::POST, path, bearer, Some(body)).await
}

async fn get(svc: &TestService, path: &str, bearer: &str) -> (StatusCode, Value) {
    rest(svc, reqwest::Method::GET, path, bearer, None).await
}

pub(crate) fn count(svc: &TestService, sql: &str) -> i64 {
    let mut c = svc.conn();
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "({sql})"
    )))
    .get_result(&mut c)
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Row counts of `tables` (plus the outbox and the audit trail): what "nothing written"
/// compares.
fn footprint(svc: &TestService, tables: &[&str]) -> Vec<i64> {
    tables
        .iter()
        .chain(["kaip_outbox", "audit_changes"].iter())
        .map(|t| count(svc, &format!("SELECT count(*) FROM {t}")))
        .collect()
}

const INTAKE_TABLES: &[&str] = &[
    "calls",
    "proposals",
    "decided_gates",
    "call_cancellations",
    "selected_teams",
];
const SCORING_TABLES: &[&str] = &["committee_votes", "decision_versions"];

/// Refused with `status` and `code`, and nothing written in `svc`'s database.
async fn refused(
    svc: &TestService,
    tables: &[&str],
    path: &str,
    bearer: &str,
    body: Value,
    status: StatusCode,
    code: &str,
) -> Value {
    let before = footprint(svc, tables);
    let (s, b) = post(svc, path, bearer, body).await;
    assert_eq!((s, b["code"].as_str()), (status, Some(code)), "{path}: {b}");
    assert_eq!(
        footprint(svc, tables),
        before,
        "{path}: {code} wrote something"
    );
    b
}

pub(crate) fn ok(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]
}

pub(crate) fn replacement_call(gate: &str, places: i32, committee: &[&str]) -> Value {
    let now = chrono::Utc::now();
    json!({
        "title": format!("Replacement call for {gate}"),
        "opens_at": now - chrono::Duration::minutes(1),
        "closes_at": now + chrono::Duration::hours(2),
        "replaces": {"gate": gate, "places": places, "committee": committee,
                     "award": {"model": "B200", "count": 768, "period": "2027H1"}},
    })
}

fn ledger(p: &Platform) -> &TestService {
    &p.others[0]
}
fn budget(p: &Platform) -> &TestService {
    &p.others[1]
}
fn milestones(p: &Platform) -> &TestService {
    &p.others[3]
}

fn envelope(ev: &GateDecided) -> (String, Vec<u8>) {
    let env = kaip_contracts::EventEnvelope::wrap(
        "milestones",
        kaip_contracts::Actor::system("milestones"),
        ev,
    )
    .expect("wrap");
    (
        env.aggregate_id.to_string(),
        serde_json::to_vec(&env).expect("json"),
    )
}

async fn produce(p: &Platform, key: &str, payload: &[u8]) {
    p.ctx
        .produce_raw(
            &p.ctx.topic(kaip_contracts::topics::MILESTONES),
            key,
            payload,
            &[("kaip-event-type", GateDecided::TYPE)],
        )
        .await;
}

/// Milestones decides `gate`, eliminating `eliminated`; waits until intake recorded it.
pub(crate) async fn decide_gate(
    p: &Platform,
    gate: &str,
    eliminated: &[ConsortiumId],
) -> GateDecided {
    let ev = GateDecided {
        gate_id: Uuid::now_v7(),
        gate: gate.into(),
        passed: vec![ConsortiumId::new(), ConsortiumId::new()],
        eliminated: eliminated.to_vec(),
        decided_at: chrono::Utc::now(),
    };
    let (key, payload) = envelope(&ev);
    produce(p, &key, &payload).await;
    eventually(Duration::from_secs(60), || async {
        (count(
            &p.intake,
            &format!(
                "SELECT count(*) FROM decided_gates WHERE gate_id = '{}'",
                ev.gate_id
            ),
        ) == 1)
            .then_some(())
    })
    .await
    .expect("intake learned the gate's decision");
    ev
}

/// `gate-1` decided, eliminating `eliminated`; then redelivered (the same envelope, and a
/// new envelope for the same gate id naming other teams, as a republication with a bug
/// would): neither changes what intake recorded. A marker event produced after them on
/// the same partition proves both were consumed before the check.
async fn gate_decided(p: &Platform, eliminated: &[ConsortiumId]) {
    let ev = decide_gate(p, "gate-1", eliminated).await;
    let recorded = |p: &Platform| {
        let mut c = p.intake.conn();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
            "(SELECT eliminated::text || ' ' || learned_at::text FROM decided_gates WHERE gate_id = '{}')",
            ev.gate_id
        )))
        .get_result::<String>(&mut c)
        .expect("recorded")
    };
    let before = recorded(p);
    let (key, payload) = envelope(&ev);
    produce(p, &key, &payload).await;
    let mut other = ev.clone();
    other.eliminated = vec![
        ConsortiumId::new(),
        ConsortiumId::new(),
        ConsortiumId::new(),
    ];
    other.decided_at = chrono::Utc::now();
    produce(p, &key, &envelope(&other).1).await;
    let marker = GateDecided {
        gate_id: Uuid::now_v7(),
        gate: "gate-marker".into(),
        passed: vec![],
        eliminated: vec![],
        decided_at: chrono::Utc::now(),
    };
    produce(p, &key, &envelope(&marker).1).await;
    eventually(Duration::from_secs(60), || async {
        (count(
            &p.intake,
            &format!(
                "SELECT count(*) FROM decided_gates WHERE gate_id = '{}'",
                marker.gate_id
            ),
        ) == 1)
            .then_some(())
    })
    .await
    .expect("intake consumed the redeliveries and the marker after them");
    assert_eq!(
        recorded(p),
        before,
        "a redelivered GateDecided changed the recorded decision"
    );
    assert_eq!(
        count(
            &p.intake,
            "SELECT count(*) FROM decided_gates WHERE gate = 'gate-1'"
        ),
        1
    );
}

/// Opens the B200 2027H1 pool with `amount` GPUs from a government source.
async fn open_pool(p: &Platform, amount: i64) {
    let officer = p.ctx.bearer(Role::Officer, None);
    let mut ids = Vec::new();
    for kind in ["source", "pool"] {
        let id = Uuid::now_v7();
        let mut body = json!({"id": id, "model": "B200", "period": "2027H1", "kind": kind,
                              "name": format!("{kind} B200 2027H1"), "reason": "capacity"});
        if kind == "source" {
            body["source_type"] = json!("government");
        }
        let (s, b) = post(ledger(p), "/accounts", &officer, body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        ids.push(id);
    }
    let (s, b) = post(
        ledger(p),
        "/transfers",
        &officer,
        json!({"transfers": [{"id": Uuid::now_v7(), "debit_account": ids[0], "credit_account": ids[1],
                              "amount": amount, "kind": "single", "code": "capacity", "reason": "installed"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// Two teams apply to `call_id`; one stage with three reviewers; the first scores 80, the
/// second 70. Returns (proposal id, consortium) best first.
pub(crate) async fn review(p: &Platform, call_id: &str, tag: &str) -> Vec<(String, ConsortiumId)> {
    let officer = p.ctx.bearer(Role::Officer, None);
    let mut applicants = Vec::new();
    for i in 0..2 {
        let team = ConsortiumId::new();
        let receipt = kaip_e2e::apply(p, team, call_id, &format!("Model {tag}{i}")).await;
        let id = ok(&receipt)["submitProposal"]["proposalId"]
            .as_str()
            .expect("submitted")
            .to_owned();
        applicants.push((id, team));
    }
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($c: UUID!) { evaluationCases(callId: $c, first: 10) { items { id } } }",
                json!({ "c": call_id }),
            )
            .await;
        (body["data"]["evaluationCases"]["items"]
            .as_array()
            .map(Vec::len)
            == Some(2))
        .then_some(())
    })
    .await
    .expect("scoring opened both cases");
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }", json!({})).await;
    let mut config = ok(&body)["defaultEvaluationConfig"].clone();
    config["stages"] = json!([{ "name": "presentation", "keepTop": null, "minTotal": null }]);
    config["reviewersPerProposal"] = json!(3);
    config["constraints"] = json!([]);
    let configure = "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams } }";
    // The programme's five teams are refused: a replacement call selects its places.
    config["teams"] = json!(5);
    let body = p
        .graphql(
            Some(&officer),
            configure,
            json!({ "c": call_id, "i": config }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(body.to_string().contains("teams"), "{body}");
    config["teams"] = json!(1);
    ok(&p
        .graphql(
            Some(&officer),
            configure,
            json!({ "c": call_id, "i": config }),
        )
        .await);
    let reviewers = [
        format!("rev-{tag}-a"),
        format!("rev-{tag}-b"),
        format!("rev-{tag}-c"),
    ];
    for r in &reviewers {
        ok(&p
            .graphql(Some(&officer), "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": r, "organisation": format!("Institute {r}"), "expertise": ["LLM"] } }))
            .await);
    }
    kaip_e2e::pass_deadline(p, call_id).await;
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(ok(&body)["assignReviewers"]["assigned"], 6, "{body}");
    let index_of: HashMap<&str, usize> = applicants
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    // Reviewers registered for an earlier call may be assigned too: each scores what the
    // officer sees assigned to them.
    let body = p
        .graphql(Some(&officer), "query($c: UUID!) { assignments(callId: $c, stage: 0, first: 100) { items { id proposalId reviewerId } } }", json!({ "c": call_id }))
        .await;
    let items = ok(&body)["assignments"]["items"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(items.len(), 6, "{body}");
    for a in &items {
        let token = p.ctx.bearer_for(
            a["reviewerId"].as_str().expect("reviewer"),
            Role::Reviewer,
            None,
        );
        let q: i64 = if index_of[a["proposalId"].as_str().expect("id")] == 0 {
            80
        } else {
            70
        };
        let sheet = json!([
            { "criterion": "technology", "points": q * 4 / 10 },
            { "criterion": "strategy", "points": q * 3 / 10 },
            { "criterion": "ecosystem", "points": q - q * 4 / 10 - q * 3 / 10 },
        ]);
        let body = p
            .graphql(Some(&token), "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }", json!({ "a": a["id"], "s": sheet }))
            .await;
        assert_eq!(ok(&body)["scoreProposal"]["total"], q, "{body}");
    }
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { closeStage(callId: $c, stage: 0) { proposalId position } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(
        ok(&body)["closeStage"][0]["proposalId"],
        applicants[0].0.as_str()
    );
    applicants
}

pub(crate) async fn vote(
    p: &Platform,
    call_id: &str,
    version: i64,
    member: &str,
    approve: bool,
) -> Value {
    let token = p.ctx.bearer_for(member, Role::Officer, None);
    let (s, b) = post(
        &p.scoring,
        &format!("/calls/{call_id}/selection/votes"),
        &token,
        json!({"version": version, "approve": approve, "reason": format!("{member}: read the reviews")}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_opens_a_replacement_call_the_committee_decides_and_the_winner_is_offered_768_b200()
{
    let p = Platform::start().await;
    p.intake.wait_assigned().await;
    for s in &p.others {
        s.wait_assigned().await;
    }
    let officer = p.ctx.bearer(Role::Officer, None);
    let eliminated = [ConsortiumId::new(), ConsortiumId::new()];
    let intake = &p.intake;

    // Before milestones decided the gate, intake refuses a call replacing it.
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
        StatusCode::CONFLICT,
        "GATE_NOT_DECIDED",
    )
    .await;
    gate_decided(&p, &eliminated).await;
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-2", 1, &COMMITTEE),
        StatusCode::CONFLICT,
        "GATE_NOT_DECIDED",
    )
    .await;
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 3, &COMMITTEE),
        StatusCode::UNPROCESSABLE_ENTITY,
        "PLACES_EXCEED_FREED",
    )
    .await;
    assert!(
        b["message"].as_str().expect("message").contains("freed 2"),
        "{b}"
    );
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 0, &COMMITTEE),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    assert!(b.to_string().contains("replaces.places"), "{b}");
    // Three names, two people: not a committee of three.
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call(
            "gate-1",
            1,
            &["officer-kim", "officer-lee", " officer-kim "],
        ),
        StatusCode::UNPROCESSABLE_ENTITY,
        "COMMITTEE_TOO_SMALL",
    )
    .await;
    // More names than four committees, even if only three distinct: refused before the
    // list is de-duplicated.
    let repeated: Vec<&str> = COMMITTEE.iter().copied().cycle().take(61).collect();
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &repeated),
        StatusCode::UNPROCESSABLE_ENTITY,
        "COMMITTEE_TOO_LARGE",
    )
    .await;
    // Sixteen distinct members: more than a committee may have.
    let sixteen: Vec<String> = (0..16).map(|i| format!("officer-{i}")).collect();
    let sixteen: Vec<&str> = sixteen.iter().map(String::as_str).collect();
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &sixteen),
        StatusCode::UNPROCESSABLE_ENTITY,
        "COMMITTEE_TOO_LARGE",
    )
    .await;
    assert!(
        b["message"]
            .as_str()
            .expect("message")
            .contains("at most 15"),
        "{b}"
    );
    // The award's model and period by the ledger's rules: a typo is refused at once.
    for (field, value, name) in [
        ("model", "b200", "replaces.award.model"),
        ("period", "2027H3", "replaces.award.period"),
    ] {
        let mut body = replacement_call("gate-1", 1, &COMMITTEE);
        body["replaces"]["award"][field] = json!(value);
        let b = refused(
            intake,
            INTAKE_TABLES,
            "/calls",
            &officer,
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        )
        .await;
        assert!(b.to_string().contains(name), "{b}");
    }
    let consortium = p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new()));
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &consortium,
        replacement_call("gate-1", 1, &COMMITTEE),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;

    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    assert_eq!(call["replaces"]["places"], 1);
    assert_eq!(call["replaces"]["award"]["count"], 768);
    let call_id = call["id"].as_str().expect("id").to_owned();
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
        StatusCode::CONFLICT,
        "REPLACEMENT_CALL_EXISTS",
    )
    .await;

    // A team the gate eliminated may not come back through the replacement call.
    kaip_e2e::register(&p, eliminated[0], kaip_e2e::OrgType::LargeEnterprise).await;
    let team = p.ctx.bearer(Role::Consortium, Some(eliminated[0]));
    refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &team,
        json!({"call_id": call_id, "title": "Back again", "summary": "We were eliminated"}),
        StatusCode::FORBIDDEN,
        "ELIMINATED_AT_GATE",
    )
    .await;
    // Eliminated at another gate (gate-0): refused too, naming that gate; and a consortium
    // registered afresh with a member of it (the same BRN), under a new id.
    let earlier = ConsortiumId::new();
    decide_gate(&p, "gate-0", &[earlier]).await;
    kaip_e2e::register(&p, earlier, kaip_e2e::OrgType::LargeEnterprise).await;
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(earlier)),
        json!({"call_id": call_id, "title": "Back again", "summary": "Eliminated earlier"}),
        StatusCode::FORBIDDEN,
        "ELIMINATED_AT_GATE",
    )
    .await;
    assert!(
        b["message"]
            .as_str()
            .expect("message")
            .contains("gate `gate-0`"),
        "{b}"
    );
    let again = register_like(&p, earlier).await;
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(again)),
        json!({"call_id": call_id, "title": "New name", "summary": "Same members"}),
        StatusCode::FORBIDDEN,
        "ELIMINATED_AT_GATE",
    )
    .await;
    // Matched as the same consortium registered again, without naming the other one.
    let m = b["message"].as_str().expect("message");
    assert!(m.contains("registered again: the same lead"), "{b}");
    assert!(
        !m.contains(&earlier.0.to_string()),
        "leaks the other consortium: {b}"
    );

    open_pool(&p, 1000).await;
    let applicants = review(&p, &call_id, "w").await;
    let winner = applicants[0].1;
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { version selected } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"]["selected"],
        json!([applicants[0].0])
    );
    let read = ok(&body)["proposeSelection"]["version"]
        .as_i64()
        .expect("version");
    // The officer proposes again while a member reads version `read`: the member's vote
    // names what they read, so it cannot count for the new version they never saw.
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { version selected } }",
            json!({ "c": call_id }),
        )
        .await;
    let v = ok(&body)["proposeSelection"]["version"]
        .as_i64()
        .expect("version");
    assert!(v > read, "{body}");
    let b = refused(
        &p.scoring,
        SCORING_TABLES,
        &format!("/calls/{call_id}/selection/votes"),
        &p.ctx.bearer_for(COMMITTEE[0], Role::Officer, None),
        json!({"version": read, "approve": true, "reason": "read version one"}),
        StatusCode::CONFLICT,
        "VOTE_VERSION_STALE",
    )
    .await;
    assert!(
        b["message"]
            .as_str()
            .expect("message")
            .contains(&format!("current proposal is version {v}")),
        "{b}"
    );

    // The committee: nobody has voted, so no majority; a non-member may not vote.
    let publish = format!("/calls/{call_id}/selection/publish");
    let votes = format!("/calls/{call_id}/selection/votes");
    refused(
        &p.scoring,
        SCORING_TABLES,
        &publish,
        &officer,
        json!(null),
        StatusCode::CONFLICT,
        "NO_MAJORITY",
    )
    .await;
    refused(
        &p.scoring,
        SCORING_TABLES,
        &votes,
        &p.ctx.bearer_for("officer-choi", Role::Officer, None),
        json!({"version": v, "approve": true, "reason": "looks good"}),
        StatusCode::FORBIDDEN,
        "NOT_ON_COMMITTEE",
    )
    .await;
    let kim = p.ctx.bearer_for(COMMITTEE[0], Role::Officer, None);
    refused(
        &p.scoring,
        SCORING_TABLES,
        &votes,
        &kim,
        json!({"version": v, "approve": true, "reason": "  "}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    vote(&p, &call_id, v, COMMITTEE[0], true).await;
    refused(
        &p.scoring,
        SCORING_TABLES,
        &votes,
        &kim,
        json!({"version": v, "approve": false, "reason": "changed my mind"}),
        StatusCode::CONFLICT,
        "ALREADY_VOTED",
    )
    .await;
    vote(&p, &call_id, v, COMMITTEE[1], false).await;
    let b = refused(
        &p.scoring,
        SCORING_TABLES,
        &publish,
        &officer,
        json!(null),
        StatusCode::CONFLICT,
        "NO_MAJORITY",
    )
    .await;
    assert!(
        b["message"]
            .as_str()
            .expect("message")
            .contains("1 approvals of a committee of 3"),
        "{b}"
    );
    let tally = vote(&p, &call_id, v, COMMITTEE[2], true).await;
    assert_eq!(
        (tally["approvals"].as_i64(), tally["needed"].as_i64()),
        (Some(2), Some(2)),
        "{tally}"
    );
    assert_eq!(tally["votes"].as_array().map(Vec::len), Some(3));
    assert_eq!(tally["current_version"], v, "{tally}");
    assert_eq!(
        tally["current_selected"],
        json!([applicants[0].0]),
        "the tally shows what the counted version selects"
    );
    // The stored selection is re-checked at publication: unreadable is an internal error
    // (never "select nobody"), and more teams than places (a version proposed before the
    // bound) is refused. Written behind the append-only trigger, then put back.
    let rewrite = |selected: String| {
        format!(
            "ALTER TABLE decision_versions DISABLE TRIGGER decision_versions_append_only; \
             UPDATE decision_versions SET selected = '{selected}'::jsonb WHERE call_id = '{call_id}' AND version = {v}; \
             ALTER TABLE decision_versions ENABLE TRIGGER decision_versions_append_only;"
        )
    };
    for (selected, status, code) in [
        (
            "\"garbage\"".to_string(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
        ),
        (
            json!([applicants[0].0, applicants[1].0]).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
    ] {
        diesel::connection::SimpleConnection::batch_execute(
            &mut p.scoring.conn(),
            &rewrite(selected),
        )
        .expect("rewrite the stored selection");
        refused(
            &p.scoring,
            SCORING_TABLES,
            &publish,
            &officer,
            json!(null),
            status,
            code,
        )
        .await;
    }
    diesel::connection::SimpleConnection::batch_execute(
        &mut p.scoring.conn(),
        &rewrite(json!([applicants[0].0]).to_string()),
    )
    .expect("put the stored selection back");
    let (s, published) = post(&p.scoring, &publish, &officer, json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{published}");
    assert_eq!(published["kind"], "published");

    // The ledger offers the winner the award; the winner accepts through the normal flow.
    let winner_token = p.ctx.bearer(Role::Consortium, Some(winner));
    let offer = eventually(Duration::from_secs(60), || async {
        let (_, b) = get(ledger(&p), "/offers", &winner_token).await;
        b.as_array()?.first().cloned()
    })
    .await
    .expect("the ledger offered the winner its award");
    assert_eq!(offer["consortium_id"], json!(winner));
    assert_eq!(offer["call_id"], call_id.as_str());
    assert_eq!(offer["options"][0]["model"], "B200");
    assert_eq!(offer["options"][0]["tranches"][0]["count"], 768);
    assert_eq!(offer["h100_eq"], 1536, "{offer}");
    let (s, a) = post(
        ledger(&p),
        &format!("/offers/{}/accept", offer["id"].as_str().expect("id")),
        &winner_token,
        json!({"option": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        count(
            ledger(&p),
            &format!("SELECT count(*) FROM gpu_offers WHERE call_id = '{call_id}'")
        ),
        1,
        "only the winner is offered"
    );
    // The other grant services take the winner on from the same event.
    eventually(Duration::from_secs(60), || async {
        let (_, b) = get(milestones(&p), "/teams", &officer).await;
        b.as_array()?
            .iter()
            .any(|t| t["consortium_id"] == json!(winner))
            .then_some(())
    })
    .await
    .expect("milestones knows the winner");
    eventually(Duration::from_secs(60), || async {
        (count(
            budget(&p),
            &format!(
                "SELECT count(*) FROM budgets WHERE consortium_id = '{}'",
                winner.0
            ),
        ) > 0)
            .then_some(())
    })
    .await
    .expect("the data budget opened the winner's budget");

    // Intake learns the call was decided (one place filled): a second replacement call
    // may fill the one place still free, not two.
    eventually(Duration::from_secs(60), || async {
        let (_, b) = get(intake, &format!("/calls/{call_id}"), &officer).await;
        (!b["decided_at"].is_null()).then_some(())
    })
    .await
    .expect("intake learned the decision");
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 2, &COMMITTEE),
        StatusCode::UNPROCESSABLE_ENTITY,
        "PLACES_EXCEED_FREED",
    )
    .await;

    // The second call: the committee selects nobody. Published with no team; no offer.
    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let second = call["id"].as_str().expect("id").to_owned();
    let finalists = review(&p, &second, "n").await;
    // Waiving `teams` does not let the override select more than the call's one place.
    let b = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!, $o: SelectionOverrideInput) { proposeSelection(callId: $c, overrideWith: $o) { version selected } }",
            json!({ "c": second, "o": { "selected": [finalists[0].0, finalists[1].0], "reason": "both are good", "waivers": ["teams"] } }),
        )
        .await;
    assert_eq!(error_code(&b), Some("VALIDATION_FAILED"), "{b}");
    assert!(b.to_string().contains("override.selected"), "{b}");
    assert!(b.to_string().contains("at most its 1 place"), "{b}");
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!, $o: SelectionOverrideInput) { proposeSelection(callId: $c, overrideWith: $o) { version selected } }",
            json!({ "c": second, "o": { "selected": [], "reason": "neither meets the bar the gate set", "waivers": ["teams"] } }),
        )
        .await;
    assert_eq!(ok(&body)["proposeSelection"]["selected"], json!([]));
    let v = ok(&body)["proposeSelection"]["version"]
        .as_i64()
        .expect("version");
    vote(&p, &second, v, COMMITTEE[0], true).await;
    vote(&p, &second, v, COMMITTEE[2], true).await;
    let (s, published) = post(
        &p.scoring,
        &format!("/calls/{second}/selection/publish"),
        &officer,
        json!(null),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{published}");
    assert_eq!(published["selected"], json!([]));
    eventually(Duration::from_secs(60), || async {
        let (_, b) = get(intake, &format!("/calls/{second}"), &officer).await;
        (!b["decided_at"].is_null()).then_some(())
    })
    .await
    .expect("intake learned the empty decision");
    // The ledger consumed it (the event is in its inbox) and made no offer.
    let event_id: Uuid = {
        let mut c = p.scoring.conn();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Uuid>(&format!(
            "(SELECT event_id FROM kaip_outbox WHERE event_type = 'SelectionPublished' AND event_key = '{second}')"
        )))
        .get_result(&mut c)
        .expect("scoring published the empty selection")
    };
    eventually(Duration::from_secs(60), || async {
        (count(
            ledger(&p),
            &format!("SELECT count(*) FROM kaip_inbox WHERE event_id = '{event_id}'"),
        ) == 1)
            .then_some(())
    })
    .await
    .expect("the ledger consumed the empty selection");
    assert_eq!(
        count(
            ledger(&p),
            &format!("SELECT count(*) FROM gpu_offers WHERE call_id = '{second}'")
        ),
        0,
        "selecting nobody offers nothing"
    );
    assert_eq!(count(ledger(&p), "SELECT count(*) FROM gpu_offers"), 1);
    // The place is still free: nobody filled it.
    let (s, b) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let third = b["id"].as_str().expect("id").to_owned();

    // The first call's winner survives (selected, not eliminated): it holds a place, so it
    // may not apply again, nor may a consortium registered afresh with its members.
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &winner_token,
        json!({"call_id": third, "title": "Another place", "summary": "We won one already"}),
        StatusCode::FORBIDDEN,
        "ALREADY_HOLDS_PLACE",
    )
    .await;
    assert!(
        b["message"].as_str().expect("message").contains(&call_id),
        "{b}"
    );
    let alias = register_like(&p, winner).await;
    refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(alias)),
        json!({"call_id": third, "title": "Another place", "summary": "Same members"}),
        StatusCode::FORBIDDEN,
        "ALREADY_HOLDS_PLACE",
    )
    .await;

    // A team drafts while it may, then a gate eliminates it: its submission is refused.
    let late = ConsortiumId::new();
    kaip_e2e::register(&p, late, kaip_e2e::OrgType::LargeEnterprise).await;
    let late_token = p.ctx.bearer(Role::Consortium, Some(late));
    let (s, d) = post(
        intake,
        "/proposals",
        &late_token,
        json!({"call_id": third, "title": "Late", "summary": "Drafted before gate-2"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    decide_gate(&p, "gate-2", &[late]).await;
    let b = refused(
        intake,
        INTAKE_TABLES,
        &format!("/proposals/{}/submit", d["id"].as_str().expect("id")),
        &late_token,
        json!({"idempotency_key": "late-1"}),
        StatusCode::FORBIDDEN,
        "ELIMINATED_AT_GATE",
    )
    .await;
    assert!(
        b["message"]
            .as_str()
            .expect("message")
            .contains("gate `gate-2`"),
        "{b}"
    );
}

/// Registers a new consortium with the same members (the same BRNs) as `like`, as
/// `kaip_e2e::register` registered it; returns the new id.
async fn register_like(p: &Platform, like: ConsortiumId) -> ConsortiumId {
    let seed = (like.0.as_u128() % 100_000_000) as u32;
    let id = ConsortiumId::new();
    let token = p.ctx.bearer(Role::Consortium, Some(id));
    let input = json!({ "name": format!("Renamed {seed}"),
                        "members": kaip_e2e::member_inputs(seed, kaip_e2e::OrgType::LargeEnterprise) });
    let body = p
        .graphql(
            Some(&token),
            kaip_e2e::REGISTER,
            json!({ "id": id, "input": input }),
        )
        .await;
    ok(&body);
    id
}

fn scoring_knows(p: &Platform, call: &str, condition: &str) -> bool {
    count(
        &p.scoring,
        &format!("SELECT count(*) FROM calls WHERE id = '{call}' AND {condition}"),
    ) == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_replacement_call_is_cancelled_on_record_and_its_gate_is_free_again() {
    let p = Platform::start().await;
    p.intake.wait_assigned().await;
    p.scoring.wait_assigned().await;
    let officer = p.ctx.bearer_for("officer-kim", Role::Officer, None);
    let intake = &p.intake;
    let eliminated = [ConsortiumId::new(), ConsortiumId::new()];
    decide_gate(&p, "gate-1", &eliminated).await;

    let (s, ordinary) = post(
        intake,
        "/calls",
        &officer,
        json!({"title": "An ordinary call", "opens_at": chrono::Utc::now() - chrono::Duration::minutes(1),
               "closes_at": chrono::Utc::now() + chrono::Duration::hours(2)}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{ordinary}");
    let ordinary = ordinary["id"].as_str().expect("id").to_owned();
    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 2, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let stuck = call["id"].as_str().expect("id").to_owned();
    let cancel = |id: &str| format!("/calls/{id}/cancel");

    // Only a replacement call, by staff, with a reason.
    refused(
        intake,
        INTAKE_TABLES,
        &cancel(&ordinary),
        &officer,
        json!({"reason": "not needed"}),
        StatusCode::CONFLICT,
        "NOT_A_REPLACEMENT_CALL",
    )
    .await;
    refused(
        intake,
        INTAKE_TABLES,
        &cancel(&stuck),
        &officer,
        json!({"reason": "   "}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    refused(
        intake,
        INTAKE_TABLES,
        &cancel(&stuck),
        &p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new())),
        json!({"reason": "we would like it gone"}),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;

    let (s, c) = post(
        intake,
        &cancel(&stuck),
        &officer,
        json!({"reason": "No applicant by the deadline"}),
    )
    .await;
    // Asked, not yet decided: scoring owns publication and answers.
    assert_eq!(s, StatusCode::ACCEPTED, "{c}");
    assert_eq!(
        (
            c["gate"].as_str(),
            c["cancelled_by"].as_str(),
            c["reason"].as_str()
        ),
        (
            Some("gate-1"),
            Some("officer-kim"),
            Some("No applicant by the deadline")
        ),
        "{c}"
    );
    // On record, never deleted: the call is still there, marked once scoring confirmed,
    // with the cancellation row.
    eventually(Duration::from_secs(60), || async {
        let (_, shown) = get(intake, &format!("/calls/{stuck}"), &officer).await;
        (!shown["cancelled_at"].is_null()).then_some(())
    })
    .await
    .expect("scoring confirmed the cancellation");
    assert_eq!(
        count(
            intake,
            &format!("SELECT count(*) FROM call_cancellations WHERE call_id = '{stuck}' AND confirmed_at IS NOT NULL AND refused_at IS NULL")
        ),
        1
    );
    assert_eq!(
        count(
            intake,
            &format!("SELECT count(*) FROM call_cancellations WHERE call_id = '{stuck}' AND cancelled_by = 'officer-kim'")
        ),
        1
    );
    refused(
        intake,
        INTAKE_TABLES,
        &cancel(&stuck),
        &officer,
        json!({"reason": "again"}),
        StatusCode::CONFLICT,
        "CALL_CANCELLED",
    )
    .await;
    refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new())),
        json!({"call_id": stuck, "title": "Late", "summary": "Too late"}),
        StatusCode::CONFLICT,
        "CALL_CANCELLED",
    )
    .await;

    // Scoring learns it and refuses the cancelled call's later steps; an ordinary call has
    // no committee to vote.
    eventually(Duration::from_secs(60), || async {
        (scoring_knows(&p, &stuck, "cancelled_at IS NOT NULL")
            && scoring_knows(&p, &ordinary, "true"))
        .then_some(())
    })
    .await
    .expect("scoring learned the cancellation");
    // A submission that overtook the cancellation (keyed by proposal, another partition)
    // opens no case for the cancelled call.
    let mut late = kaip_testkit::fixtures::proposal_submitted("Raced the cancellation");
    late.call_id = kaip_contracts::CallId(stuck.parse().expect("uuid"));
    let env = kaip_contracts::EventEnvelope::wrap(
        "intake",
        kaip_contracts::Actor::system("intake"),
        &late,
    )
    .expect("wrap");
    p.ctx
        .produce_raw(
            &p.ctx.topic(kaip_contracts::topics::INTAKE),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[(
                "kaip-event-type",
                kaip_contracts::events::ProposalSubmitted::TYPE,
            )],
        )
        .await;
    eventually(Duration::from_secs(60), || async {
        (count(
            &p.scoring,
            &format!(
                "SELECT count(*) FROM kaip_inbox WHERE event_id = '{}'",
                env.id.0
            ),
        ) == 1)
            .then_some(())
    })
    .await
    .expect("scoring consumed the late submission");
    assert_eq!(
        count(
            &p.scoring,
            &format!("SELECT count(*) FROM evaluation_cases WHERE call_id = '{stuck}'")
        ),
        0,
        "a cancelled call opens no case"
    );
    // Nor any evaluation step: assigning reviewers, closing a stage.
    for step in ["assignments", "close"] {
        refused(
            &p.scoring,
            SCORING_TABLES,
            &format!("/calls/{stuck}/stages/0/{step}"),
            &officer,
            json!(null),
            StatusCode::CONFLICT,
            "CALL_CANCELLED",
        )
        .await;
    }
    let kim = p.ctx.bearer_for(COMMITTEE[0], Role::Officer, None);
    let vote_body = json!({"version": 1, "approve": true, "reason": "fine"});
    refused(
        &p.scoring,
        SCORING_TABLES,
        &format!("/calls/{stuck}/selection/votes"),
        &kim,
        vote_body.clone(),
        StatusCode::CONFLICT,
        "CALL_CANCELLED",
    )
    .await;
    refused(
        &p.scoring,
        SCORING_TABLES,
        &format!("/calls/{ordinary}/selection/votes"),
        &kim,
        vote_body.clone(),
        StatusCode::CONFLICT,
        "NOT_A_REPLACEMENT_CALL",
    )
    .await;

    // The gate is free: a new replacement call opens (the partial unique index let go),
    // and is cancelled through the gateway in turn.
    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 2, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!, $r: String!) { cancelReplacementCall(callId: $c, reason: $r) { callId gate cancelledBy } }",
            json!({ "c": call["id"], "r": "The committee was reconstituted" }),
        )
        .await;
    assert_eq!(
        ok(&body)["cancelReplacementCall"]["cancelledBy"],
        "officer-kim"
    );
    let second = call["id"].as_str().expect("id").to_owned();
    eventually(Duration::from_secs(60), || async {
        (count(
            intake,
            &format!(
                "SELECT count(*) FROM calls WHERE id = '{second}' AND cancelled_at IS NOT NULL"
            ),
        ) == 1)
            .then_some(())
    })
    .await
    .expect("scoring confirmed the second cancellation");
    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 2, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let live = call["id"].as_str().expect("id").to_owned();

    // An unreadable stored link is an internal error, never an ordinary call: the
    // eliminated team is not let in, and the committee is not switched off.
    let corrupt =
        format!("UPDATE calls SET replaces = '{{\"gate\": 5}}'::jsonb WHERE id = '{live}'");
    diesel::sql_query(&corrupt)
        .execute(&mut intake.conn())
        .expect("corrupt intake's link");
    let (s, b) = get(intake, &format!("/calls/{live}"), &officer).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL")),
        "{b}"
    );
    refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(eliminated[0])),
        json!({"call_id": live, "title": "Back", "summary": "through a corrupt link"}),
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        scoring_knows(&p, &live, "replaces IS NOT NULL").then_some(())
    })
    .await
    .expect("scoring knows the live call");
    diesel::sql_query(&corrupt)
        .execute(&mut p.scoring.conn())
        .expect("corrupt scoring's link");
    refused(
        &p.scoring,
        SCORING_TABLES,
        &format!("/calls/{live}/selection/votes"),
        &kim,
        vote_body,
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
    )
    .await;
}

/// Scoring owns publication, so it decides a cancellation. Here scoring published the call
/// while intake had not heard of it yet (its consumer lagging): the officer's cancellation is
/// accepted as a request only, the gate stays locked (no second call for the same places),
/// scoring refuses it with the reason, intake records the refusal, and the call is never
/// marked cancelled on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancellation_of_a_call_scoring_already_published_is_refused_and_the_gate_stays_filled() {
    let p = Platform::start().await;
    p.intake.wait_assigned().await;
    p.scoring.wait_assigned().await;
    let officer = p.ctx.bearer_for("officer-kim", Role::Officer, None);
    let intake = &p.intake;
    decide_gate(&p, "gate-1", &[ConsortiumId::new()]).await;
    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let id = call["id"].as_str().expect("id").to_owned();
    eventually(Duration::from_secs(60), || async {
        scoring_knows(&p, &id, "true").then_some(())
    })
    .await
    .expect("scoring knows the call");
    // Scoring published the selection; its `SelectionPublished` has not reached intake.
    diesel::sql_query(format!(
        "UPDATE calls SET published_at = now() WHERE id = '{id}'"
    ))
    .execute(&mut p.scoring.conn())
    .expect("published in scoring");

    let (s, c) = post(
        intake,
        &format!("/calls/{id}/cancel"),
        &officer,
        json!({"reason": "No applicant, we think"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{c}");
    // Until scoring answers the gate stays locked: no second call for the same place.
    // (Scoring's answer may land meanwhile, so only the calls are counted here; the full
    // footprint is checked below, once it has.)
    let calls_before = count(intake, "SELECT count(*) FROM calls");
    let (s, b) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("REPLACEMENT_CALL_EXISTS")),
        "{b}"
    );
    assert_eq!(count(intake, "SELECT count(*) FROM calls"), calls_before);
    eventually(Duration::from_secs(60), || async {
        (count(
            intake,
            &format!("SELECT count(*) FROM call_cancellations WHERE call_id = '{id}' AND refused_at IS NOT NULL AND refusal LIKE '%published%' AND confirmed_at IS NULL"),
        ) == 1)
            .then_some(())
    })
    .await
    .expect("intake recorded scoring's refusal");
    assert_eq!(
        count(
            intake,
            &format!("SELECT count(*) FROM calls WHERE id = '{id}' AND cancelled_at IS NULL")
        ),
        1,
        "the refused cancellation must not free the gate"
    );
    assert!(scoring_knows(
        &p,
        &id,
        "cancelled_at IS NULL AND published_at IS NOT NULL"
    ));
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
        StatusCode::CONFLICT,
        "REPLACEMENT_CALL_EXISTS",
    )
    .await;
    // A second request is refused at once: the call has one cancellation on record.
    refused(
        intake,
        INTAKE_TABLES,
        &format!("/calls/{id}/cancel"),
        &officer,
        json!({"reason": "again"}),
        StatusCode::CONFLICT,
        "CALL_CANCELLED",
    )
    .await;
}

/// A selection published before intake recorded selected teams (the programme's main call,
/// months before any gate) leaves intake unable to tell a survivor from a newcomer: until it
/// knows every decided call's teams, a replacement call neither opens nor takes a draft
/// (`SELECTIONS_UNKNOWN`), nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacement_calls_wait_while_a_decided_calls_selection_is_unknown() {
    let p = Platform::start().await;
    p.intake.wait_assigned().await;
    let officer = p.ctx.bearer_for("officer-kim", Role::Officer, None);
    let intake = &p.intake;
    decide_gate(&p, "gate-1", &[ConsortiumId::new(), ConsortiumId::new()]).await;
    let (s, call) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-1", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let live = call["id"].as_str().expect("id").to_owned();
    // The main call, decided (3 selected) before intake recorded whom it selected.
    let main = Uuid::now_v7();
    diesel::sql_query(format!(
        "INSERT INTO calls (id, title, opens_at, closes_at, created_by, eligibility, required_documents, decided_at, filled) \
         VALUES ('{main}', 'Main call', now() - interval '300 days', now() - interval '200 days', 'officer-kim', '{{}}'::jsonb, '[]'::jsonb, now() - interval '150 days', 3)"
    ))
    .execute(&mut intake.conn())
    .expect("a call decided before the deploy");
    let newcomer = ConsortiumId::new();
    let b = refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(newcomer)),
        json!({"call_id": live, "title": "New", "summary": "a newcomer or a survivor?"}),
        StatusCode::CONFLICT,
        "SELECTIONS_UNKNOWN",
    )
    .await;
    assert!(
        b["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&main.to_string()),
        "{b}"
    );
    decide_gate(&p, "gate-2", &[ConsortiumId::new()]).await;
    refused(
        intake,
        INTAKE_TABLES,
        "/calls",
        &officer,
        replacement_call("gate-2", 1, &COMMITTEE),
        StatusCode::CONFLICT,
        "SELECTIONS_UNKNOWN",
    )
    .await;
    // Once intake knows whom it selected (here written as a replay would), both proceed.
    for _ in 0..3 {
        diesel::sql_query(format!(
            "INSERT INTO selected_teams (call_id, consortium_id, selected_at) VALUES ('{main}', '{}', now())",
            Uuid::now_v7()
        ))
        .execute(&mut intake.conn())
        .expect("selection recorded");
    }
    let (s, b) = post(
        intake,
        "/calls",
        &officer,
        replacement_call("gate-2", 1, &COMMITTEE),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        intake,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(newcomer)),
        json!({"call_id": live, "title": "New", "summary": "a newcomer"}),
    )
    .await;
    assert_ne!(b["code"].as_str(), Some("SELECTIONS_UNKNOWN"), "{s} {b}");
}

/// Eliminations from another programme's gates do not bar an applicant: only this call's
/// gate, and earlier gates' eliminations of teams this programme selected, count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_eliminated_in_another_programme_may_apply_to_a_replacement_call() {
    let p = Platform::start().await;
    p.intake.wait_assigned().await;
    let officer = p.ctx.bearer_for("officer-kim", Role::Officer, None);
    let intake = &p.intake;
    let (s, prog) = post(
        intake,
        "/programmes",
        &officer,
        json!({"name": "K-AIP 2026", "fiscal_year": 2026}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{prog}");
    // Eliminated in the 2025 programme (never selected in this one).
    let elsewhere = ConsortiumId::new();
    kaip_e2e::register(&p, elsewhere, kaip_e2e::OrgType::LargeEnterprise).await;
    decide_gate(&p, "gate-2025", &[elsewhere]).await;
    decide_gate(&p, "gate-1", &[ConsortiumId::new()]).await;
    let mut body = replacement_call("gate-1", 1, &COMMITTEE);
    body["programme_id"] = prog["id"].clone();
    let (s, call) = post(intake, "/calls", &officer, body).await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let (s, b) = post(
        intake,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(elsewhere)),
        json!({"call_id": call["id"], "title": "A new programme", "summary": "a fresh start"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // A stored member list that does not decode is an internal error, never an empty
    // list that would switch the re-registration check off.
    diesel::sql_query(format!(
        "UPDATE consortium_versions SET members = '{{\"lead\": 1}}'::jsonb WHERE consortium_id = '{}'",
        elsewhere.0
    ))
    .execute(&mut intake.conn())
    .expect("corrupt the stored members");
    refused(
        intake,
        INTAKE_TABLES,
        "/proposals",
        &p.ctx.bearer(Role::Consortium, Some(elsewhere)),
        json!({"call_id": call["id"], "title": "Again", "summary": "with corrupt members"}),
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
    )
    .await;
    // Nor are a call's stored eligibility rules read as the defaults when they do not decode.
    diesel::sql_query(format!(
        "UPDATE calls SET eligibility = '\"garbage\"'::jsonb WHERE id = '{}'",
        call["id"].as_str().expect("id")
    ))
    .execute(&mut intake.conn())
    .expect("corrupt the stored rules");
    let (s, b) = get(
        intake,
        &format!("/calls/{}", call["id"].as_str().expect("id")),
        &officer,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL")),
        "{b}"
    );
}
