//! Bad input and bad callers get a clear error with a stable code, and change nothing.

use diesel::prelude::*;
use kaip_bus::schema::kaip_outbox;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{
    apply, draft, error_code, member_inputs, open_call, register, OrgType, Platform, CREATE,
    OPEN_CALL, REGISTER, SUBMIT,
};
use serde_json::json;

fn outbox_rows(p: &Platform) -> i64 {
    kaip_outbox::table
        .count()
        .get_result(&mut p.intake.conn())
        .expect("count")
}

fn message(body: &serde_json::Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
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
    let ok = apply(&p, consortium, &call_id, "First").await;
    assert!(ok["errors"].is_null(), "{ok}");
    let proposal_id = ok["data"]["submitProposal"]["proposalId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (outbox_before, proposals_before) = (outbox_rows(&p), proposals(&p));

    // A call whose deadline precedes its opening.
    let now = chrono::Utc::now();
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "title": "Backwards", "opensAt": now.to_rfc3339(), "closesAt": (now - chrono::Duration::hours(1)).to_rfc3339() } }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("closes_at: must be after opens_at"),
        "{body}"
    );

    // An empty title.
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "title": "  ", "opensAt": now.to_rfc3339(), "closesAt": (now + chrono::Duration::hours(1)).to_rfc3339() } }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
    assert!(message(&body).starts_with("title:"), "{body}");

    // A consortium may not open calls.
    let body = p
        .graphql(Some(&lead), OPEN_CALL, json!({ "input": { "title": "Mine", "opensAt": now.to_rfc3339(), "closesAt": (now + chrono::Duration::hours(1)).to_rfc3339() } }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // An unknown call.
    let body = p
        .graphql(
            Some(&lead),
            CREATE,
            json!({ "input": { "callId": uuid::Uuid::now_v7(), "title": "Lost", "summary": "s" } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CALL_NOT_FOUND"), "{body}");

    // A second proposal to the same call.
    let body = p
        .graphql(
            Some(&lead),
            CREATE,
            json!({ "input": { "callId": call_id, "title": "Again", "summary": "s" } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_ALREADY_EXISTS"), "{body}");

    // A repeated submission with another idempotency key.
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "id": proposal_id, "key": "another-key" }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("PROPOSAL_ALREADY_SUBMITTED"),
        "{body}"
    );

    // A submitted proposal is no longer a draft.
    let body = p
        .graphql(Some(&lead), "mutation($id: UUID!) { updateProposal(id: $id, input: { title: \"x\", summary: \"y\" }) { id } }", json!({ "id": proposal_id }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_NOT_A_DRAFT"), "{body}");

    // A malformed id never reaches a service.
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "id": "not-a-uuid", "key": "k" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");

    // A registration number with a wrong check digit.
    let body = p
        .graphql(
            Some(&lead),
            REGISTER,
            json!({ "id": consortium, "input": { "name": "Typo", "members": [{ "name": "Lead", "orgType": "SME", "businessRegistrationNumber": "123-45-67890", "role": "LEAD" }] } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("members[0].business_registration_number"),
        "{body}"
    );

    // A consortium cannot register another consortium.
    let body = p
        .graphql(
            Some(&lead),
            REGISTER,
            json!({ "id": ConsortiumId::new(), "input": { "name": "Other", "members": [] } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // Another consortium cannot read this consortium's proposal.
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

    // Scoring does not know an unknown call either.
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned } }",
            json!({ "c": uuid::Uuid::now_v7() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CALL_NOT_FOUND"), "{body}");

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
async fn eligibility_documents_and_withdrawal() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let now = chrono::Utc::now();
    let body = p
        .graphql(
            Some(&officer),
            OPEN_CALL,
            json!({ "input": {
                "title": "Strict",
                "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "closesAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
                "eligibility": { "minUniversityMembers": 2, "allowedLeadTypes": ["SME", "STARTUP"] },
                "requiredDocuments": ["proposal"],
            }}),
        )
        .await;
    let call_id = body["data"]["openCall"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();

    // A large-enterprise lead with one university: two failures, both named; nothing sent.
    let big = ConsortiumId::new();
    register(&p, big, OrgType::LargeEnterprise).await;
    let id = draft(&p, big, &call_id, "Too big").await;
    let token = p.ctx.bearer(Role::Consortium, Some(big));
    let events_before = outbox_rows(&p);
    let body = p
        .graphql(Some(&token), SUBMIT, json!({ "id": id, "key": "k" }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_NOT_ELIGIBLE"), "{body}");
    let msg = message(&body);
    assert!(
        msg.contains("at least 2 university member(s); it has 1"),
        "{msg}"
    );
    assert!(
        msg.contains("the lead is a large_enterprise; this call allows sme, startup leads"),
        "{msg}"
    );
    assert!(
        msg.contains("the required document `proposal` is missing"),
        "{msg}"
    );
    assert_eq!(outbox_rows(&p), events_before);

    // An SME lead; the document is uploaded with its hash; the second university is added.
    let sme = ConsortiumId::new();
    register(&p, sme, OrgType::Sme).await;
    let token = p.ctx.bearer(Role::Consortium, Some(sme));
    let seed = (sme.0.as_u128() % 100_000_000) as u32;
    let mut members = member_inputs(seed, OrgType::Sme);
    members.push(json!({ "name": "Second University", "orgType": "UNIVERSITY", "businessRegistrationNumber": kaip_testkit::fixtures::brn(seed + 500_000), "role": "PARTNER" }));
    let body = p
        .graphql(
            Some(&token),
            REGISTER,
            json!({ "id": sme, "input": { "name": "SME team", "members": members } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let id = draft(&p, sme, &call_id, "Lean model").await;
    let body = p
        .graphql(
            Some(&token),
            "mutation($id: UUID!) { uploadDocument(proposalId: $id, kind: \"proposal\", filename: \"plan.pdf\", contentBase64: \"YWJj\") { documents { kind sha256 sizeBytes } } }",
            json!({ "id": id }),
        )
        .await;
    let doc = &body["data"]["uploadDocument"]["documents"][0];
    assert_eq!(
        doc["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "{body}"
    );
    assert_eq!(doc["sizeBytes"], 3);
    let body = p
        .graphql(Some(&token), "mutation($id: UUID!) { updateProposal(id: $id, input: { title: \"Lean model v2\", summary: \"better\", resources: { gpus: [{ model: \"H100\", count: 500 }], dataBudgetKrw: \"5000000000\" } }) { version resources { dataBudgetKrw gpus { model count } } } }", json!({ "id": id }))
        .await;
    assert_eq!(body["data"]["updateProposal"]["version"], 2, "{body}");
    assert_eq!(
        body["data"]["updateProposal"]["resources"]["dataBudgetKrw"], "5000000000",
        "money is a `Krw` string in GraphQL"
    );
    // Documents of a few megabytes go through the gateway; one over the limit is refused by name.
    let upload = "mutation($id: UUID!, $c: String!) { uploadDocument(proposalId: $id, kind: \"annex\", filename: \"annex.bin\", contentBase64: $c) { documents { kind sizeBytes } } }";
    use base64::Engine;
    let big = vec![7u8; 3 * 1024 * 1024];
    let body = p
        .graphql(
            Some(&token),
            upload,
            json!({ "id": id, "c": base64::engine::general_purpose::STANDARD.encode(&big) }),
        )
        .await;
    assert!(body["errors"].is_null(), "{}", message(&body));
    let sizes: Vec<i64> = body["data"]["uploadDocument"]["documents"]
        .as_array()
        .expect("docs")
        .iter()
        .filter_map(|d| d["sizeBytes"].as_i64())
        .collect();
    assert!(sizes.contains(&(3 * 1024 * 1024)), "{sizes:?}");
    let too_big = vec![7u8; 5 * 1024 * 1024 + 1];
    let body = p
        .graphql(
            Some(&token),
            upload,
            json!({ "id": id, "c": base64::engine::general_purpose::STANDARD.encode(&too_big) }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("VALIDATION_FAILED"),
        "{}",
        message(&body)
    );
    assert!(
        message(&body).contains("the limit is 5242880 bytes"),
        "{}",
        message(&body)
    );

    let body = p
        .graphql(Some(&token), SUBMIT, json!({ "id": id, "key": "sme-1" }))
        .await;
    assert_eq!(body["data"]["submitProposal"]["version"], 2, "{body}");

    // Both versions are kept.
    let body = p
        .graphql(
            Some(&token),
            "query($id: UUID!) { proposal(id: $id) { versions { version title } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        body["data"]["proposal"]["versions"],
        json!([{ "version": 1, "title": "Lean model" }, { "version": 2, "title": "Lean model v2" }]),
        "{body}"
    );

    // Withdrawal before the decision.
    let body = p
        .graphql(Some(&token), "mutation($id: UUID!) { withdrawProposal(proposalId: $id, reason: \"merged with another team\") { status } }", json!({ "id": id }))
        .await;
    assert_eq!(
        body["data"]["withdrawProposal"]["status"], "withdrawn",
        "{body}"
    );
    let body = p
        .graphql(Some(&token), "mutation($id: UUID!) { withdrawProposal(proposalId: $id, reason: \"again\") { status } }", json!({ "id": id }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_NOT_SUBMITTED"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_after_the_deadline_is_refused() {
    let p = Platform::start().await;
    // A draft made in time...
    let call_id = open_call(&p, 1).await;
    let consortium = ConsortiumId::new();
    register(&p, consortium, OrgType::Sme).await;
    let id = draft(&p, consortium, &call_id, "Late").await;
    // ... is not submitted in time. The deadline passes by moving it into the past where
    // intake keeps it (the API cannot open a call that has already closed): no race against
    // a few seconds of wall clock, however slow the machine.
    {
        use kaip_intake::schema::calls;
        let call: uuid::Uuid = call_id.parse().expect("uuid");
        let moved = diesel::update(calls::table.find(call))
            .set(calls::closes_at.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
            .execute(&mut p.intake.conn())
            .expect("move the deadline");
        assert_eq!(moved, 1);
    }
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    let events = outbox_rows(&p);
    let body = p
        .graphql(Some(&lead), SUBMIT, json!({ "id": id, "key": "late" }))
        .await;
    assert_eq!(error_code(&body), Some("CALL_CLOSED"), "{body}");
    let body = p
        .graphql(
            Some(&lead),
            "query($id: UUID!) { proposal(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["proposal"]["status"], "draft");
    assert_eq!(outbox_rows(&p), events, "no event");
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
