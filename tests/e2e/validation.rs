//! Bad input and bad callers get a clear error with a stable code, and change nothing.

use diesel::prelude::*;
use kaip_bus::schema::kaip_outbox;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{error_code, open_call, Platform, OPEN_CALL, SUBMIT};
use serde_json::json;

fn outbox_rows(p: &Platform) -> i64 {
    kaip_outbox::table
        .count()
        .get_result(&mut p.intake.conn())
        .expect("count")
}

fn proposals(p: &Platform) -> i64 {
    kaip_intake::schema::proposals::table
        .count()
        .get_result(&mut p.intake.conn())
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_by_name_and_change_nothing() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    let call_id = open_call(&p, 24).await;
    let ok = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "input": { "callId": call_id, "title": "First", "summary": "s" } }),
        )
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
    let (outbox_before, proposals_before) = (outbox_rows(&p), proposals(&p));

    // A call whose deadline precedes its opening.
    let now = chrono::Utc::now();
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "title": "Backwards", "opensAt": now.to_rfc3339(), "closesAt": (now - chrono::Duration::hours(1)).to_rfc3339() } }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("closes_at: must be after opens_at"),
        "{body}"
    );

    // An empty title.
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "title": "  ", "opensAt": now.to_rfc3339(), "closesAt": (now + chrono::Duration::hours(1)).to_rfc3339() } }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("title:"),
        "{body}"
    );

    // A consortium may not open calls.
    let body = p
        .graphql(Some(&lead), OPEN_CALL, json!({ "input": { "title": "Mine", "opensAt": now.to_rfc3339(), "closesAt": (now + chrono::Duration::hours(1)).to_rfc3339() } }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // An unknown call.
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "input": { "callId": uuid::Uuid::now_v7(), "title": "Lost", "summary": "s" } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CALL_NOT_FOUND"), "{body}");

    // A repeated submission.
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "input": { "callId": call_id, "title": "Again", "summary": "s" } }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("PROPOSAL_ALREADY_SUBMITTED"),
        "{body}"
    );

    // A malformed id never reaches a service.
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "input": { "callId": "not-a-uuid", "title": "x", "summary": "s" } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("SubmitProposalInput"),
        "{body}"
    );

    // Another consortium cannot read this consortium's proposal.
    let proposal_id = ok["data"]["submitProposal"]["id"].as_str().expect("id");
    let other = p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new()));
    let body = p
        .graphql(
            Some(&other),
            "query($id: UUID!) { proposal(id: $id) { id } }",
            json!({ "id": proposal_id }),
        )
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_NOT_FOUND"), "{body}");
    let body = p
        .graphql(Some(&other), "{ proposals { items { id } } }", json!({}))
        .await;
    assert_eq!(body["data"]["proposals"]["items"], json!([]), "{body}");

    // A page size out of range.
    let body = p
        .graphql(
            Some(&officer),
            "{ calls(first: 0) { items { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");

    assert_eq!(outbox_rows(&p), outbox_before, "no event was written");
    assert_eq!(proposals(&p), proposals_before, "no proposal was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_after_the_deadline_is_refused() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let now = chrono::Utc::now();
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "title": "Short", "opensAt": (now - chrono::Duration::hours(1)).to_rfc3339(), "closesAt": (now + chrono::Duration::seconds(2)).to_rfc3339() } }))
        .await;
    let call_id = body["data"]["openCall"]["id"]
        .as_str()
        .expect("call")
        .to_owned();
    let closes = chrono::DateTime::parse_from_rfc3339(
        body["data"]["openCall"]["closesAt"]
            .as_str()
            .expect("closesAt"),
    )
    .expect("time");
    // Wait out the deadline (the call's own clock, not a guess).
    while chrono::Utc::now() <= closes {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let lead = p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new()));
    let before = proposals(&p);
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "input": { "callId": call_id, "title": "Late", "summary": "s" } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CALL_CLOSED"), "{body}");
    assert_eq!(proposals(&p), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_check_the_token_again_behind_the_gateway() {
    let p = Platform::start().await;
    let http = reqwest::Client::new();
    let res = http
        .get(p.intake.url("/calls"))
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["code"], "UNAUTHENTICATED");

    let lead = p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new()));
    let now = chrono::Utc::now();
    let res = http
        .post(p.intake.url("/calls"))
        .header("authorization", &lead)
        .json(&json!({ "title": "Sneaky", "opens_at": now, "closes_at": now + chrono::Duration::hours(1) }))
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["code"], "FORBIDDEN");
    assert_eq!(body["message"], "role `consortium` may not open a call");

    let res = http
        .post(p.intake.url("/calls"))
        .header("authorization", p.ctx.bearer(Role::Officer, None))
        .json(&json!({ "title": "Typo", "opens_at": now, "closes_at": now, "extra": 1 }))
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["code"], "INVALID_BODY");
    assert!(
        body["message"].as_str().unwrap_or("").contains("extra"),
        "{body}"
    );

    // Every service is up, migrated and ready behind the gateway.
    let health = p
        .graphql(
            Some(&p.ctx.bearer(Role::Admin, None)),
            "{ platformHealth { service ready database broker } }",
            json!({}),
        )
        .await;
    let services = health["data"]["platformHealth"].as_array().expect("list");
    assert_eq!(services.len(), 6);
    for s in services {
        assert_eq!(s["ready"], true, "{s}");
        assert_eq!(s["database"], "ok");
    }
}
