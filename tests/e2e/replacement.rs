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

const INTAKE_TABLES: &[&str] = &["calls", "proposals", "decided_gates"];
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

pub(crate) async fn gate_decided(p: &Platform, eliminated: &[ConsortiumId]) {
    let ev = GateDecided {
        gate_id: Uuid::now_v7(),
        gate: "gate-1".into(),
        passed: vec![ConsortiumId::new(), ConsortiumId::new()],
        eliminated: eliminated.to_vec(),
        decided_at: chrono::Utc::now(),
    };
    let env = kaip_contracts::EventEnvelope::wrap(
        "milestones",
        kaip_contracts::Actor::system("milestones"),
        &ev,
    )
    .expect("wrap");
    let payload = serde_json::to_vec(&env).expect("json");
    // Twice: a redelivery changes nothing.
    for _ in 0..2 {
        p.ctx
            .produce_raw(
                &p.ctx.topic(kaip_contracts::topics::MILESTONES),
                &env.aggregate_id.to_string(),
                &payload,
                &[("kaip-event-type", GateDecided::TYPE)],
            )
            .await;
    }
    eventually(Duration::from_secs(60), || async {
        (count(&p.intake, "SELECT count(*) FROM decided_gates") == 1).then_some(())
    })
    .await
    .expect("intake learned the gate's decision");
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
    review(&p, &second, "n").await;
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
}
