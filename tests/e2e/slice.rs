//! The vertical slice: an officer opens a call, a consortium submits a proposal, intake
//! commits it with `ProposalSubmitted`, scoring opens an evaluation case, the officer reads
//! it through the gateway and sees the events on a subscription.

use diesel::prelude::*;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{apply, draft, eventually, open_call, register, OrgType, Platform, SUBMIT};
use serde_json::json;
use std::time::Duration;

const CASE_OF: &str =
    "query($id: UUID!) { proposal(id: $id) { id title evaluationCase { id proposalId status } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_sees_a_submission_become_an_evaluation_case_through_the_gateway() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    let call_id = open_call(&p, 24).await;

    let mut officer_events = p
        .subscribe(&officer, r#"subscription { events(types: ["ProposalSubmitted", "EvaluationCaseOpened"]) { id type producer aggregateId consortiumId data traceId } }"#)
        .await;

    register(&p, consortium, OrgType::LargeEnterprise).await;
    let proposal_id = draft(&p, consortium, &call_id, "HyperCLOVA-K").await;
    let body = p
        .graphql(
            Some(&lead),
            "query($id: UUID!) { proposal(id: $id) { consortiumId status } }",
            json!({ "id": proposal_id }),
        )
        .await;
    assert_eq!(
        body["data"]["proposal"]["consortiumId"],
        consortium.to_string(),
        "the consortium comes from the token"
    );
    assert_eq!(body["data"]["proposal"]["status"], "draft");
    let body = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "id": proposal_id, "key": "k-1" }),
        )
        .await;
    let receipt = &body["data"]["submitProposal"];
    assert_eq!(receipt["proposalId"], proposal_id, "{body}");
    assert_eq!(
        receipt["contentHash"].as_str().map(str::len),
        Some(64),
        "a SHA-256 receipt"
    );
    // Submitting again with the same key returns the same receipt.
    let again = p
        .graphql(
            Some(&lead),
            SUBMIT,
            json!({ "id": proposal_id, "key": "k-1" }),
        )
        .await;
    assert_eq!(again["data"]["submitProposal"], *receipt);

    // Intake committed the proposal and its event together, and the relay published it.
    let mut conn = p.intake.conn();
    let (event_type, sent): (String, Option<chrono::DateTime<chrono::Utc>>) =
        eventually(Duration::from_secs(30), || {
            let row = kaip_bus::schema::kaip_outbox::table
                .filter(kaip_bus::schema::kaip_outbox::event_key.eq(&proposal_id))
                .select((
                    kaip_bus::schema::kaip_outbox::event_type,
                    kaip_bus::schema::kaip_outbox::sent_at,
                ))
                .first::<(String, Option<chrono::DateTime<chrono::Utc>>)>(&mut conn)
                .ok()
                .filter(|(_, sent)| sent.is_some());
            async move { row }
        })
        .await
        .expect("the ProposalSubmitted outbox row is marked sent");
    assert_eq!(event_type, "ProposalSubmitted");
    assert!(sent.is_some());

    // The officer reads the case through the gateway once scoring has opened it.
    let case = eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(Some(&officer), CASE_OF, json!({ "id": proposal_id }))
            .await;
        let case = body["data"]["proposal"]["evaluationCase"].clone();
        (!case.is_null()).then_some(case)
    })
    .await
    .expect("scoring opens an evaluation case for the proposal");
    assert_eq!(case["proposalId"], proposal_id);
    assert_eq!(case["status"], "open");

    // ... and saw both events live. They come from two topics, so the feed may deliver
    // them in either order (order is guaranteed per aggregate within a topic).
    let mut received = [
        officer_events.next_event().await,
        officer_events.next_event().await,
    ];
    received.sort_by_key(|e| e["type"].as_str().map(str::to_owned));
    let (opened, submitted) = (&received[0], &received[1]);
    assert_eq!(submitted["type"], "ProposalSubmitted");
    assert_eq!(submitted["producer"], "intake");
    assert_eq!(submitted["aggregateId"], proposal_id);
    assert_eq!(submitted["data"]["title"], "HyperCLOVA-K");
    assert_eq!(opened["type"], "EvaluationCaseOpened");
    assert_eq!(opened["producer"], "scoring");
    assert_eq!(opened["aggregateId"], proposal_id);
    assert_eq!(opened["data"]["case_id"], case["id"]);
    // Scoring's event continues the trace of the consortium's request.
    assert!(submitted["traceId"].is_string());
    assert_eq!(submitted["traceId"], opened["traceId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_id_of_the_graphql_request_reaches_the_consuming_service() {
    let p = Platform::start().await;
    let call_id = open_call(&p, 24).await;
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    register(&p, consortium, OrgType::Sme).await;
    let proposal_id = draft(&p, consortium, &call_id, "Traced").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");

    let (body, returned) = p
        .graphql_with(
            Some(&lead),
            &[("traceparent", &traceparent)],
            SUBMIT,
            json!({ "id": proposal_id, "key": "traced" }),
        )
        .await;
    assert!(
        body["data"]["submitProposal"]["contentHash"].is_string(),
        "{body}"
    );
    assert_eq!(
        returned.as_deref(),
        Some(trace_id),
        "the gateway continues the caller's trace"
    );

    // The scoring service recorded the trace id with the event it processed.
    let pool = p.scoring.pool.clone();
    let seen: String = eventually(Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            use kaip_bus::schema::kaip_inbox::dsl::*;
            // This test submits exactly one proposal.
            let mut conn = pool.get().ok()?;
            kaip_inbox
                .filter(event_type.eq("ProposalSubmitted"))
                .select(trace_id)
                .first::<Option<String>>(&mut conn)
                .ok()
                .flatten()
        }
    })
    .await
    .expect("scoring processed the event");
    assert_eq!(seen, trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consortium_subscription_sees_only_its_own_events() {
    let p = Platform::start().await;
    let call_id = open_call(&p, 24).await;
    let (a, b) = (ConsortiumId::new(), ConsortiumId::new());
    let token_b = p.ctx.bearer(Role::Consortium, Some(b));
    let mut b_events = p
        .subscribe(
            &token_b,
            r#"subscription { events(types: ["ProposalSubmitted"]) { type consortiumId } }"#,
        )
        .await;

    for (consortium, title) in [(a, "A's model"), (b, "B's model")] {
        let body = apply(&p, consortium, &call_id, title).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    // A submitted first, yet the first event B receives is its own.
    let first = b_events.next_event().await;
    assert_eq!(first["consortiumId"], b.to_string());

    // A WebSocket whose connection_init carries a bad token is refused with the code.
    let expired =
        kaip_auth::DevTokenMinter::new(&kaip_auth::dev::settings(), kaip_auth::dev::SECRET)
            .expect("minter")
            .mint("u", Role::Officer, None, -300);
    let answer = p.ws_connection_answer(&format!("Bearer {expired}")).await;
    assert_ne!(answer["type"], "connection_ack", "{answer}");
    assert!(answer.to_string().contains("expired"), "{answer}");

    // Reviewers may not subscribe at all.
    let reviewer = p.ctx.bearer(Role::Reviewer, None);
    let mut sub = p
        .subscribe(&reviewer, "subscription { events { type } }")
        .await;
    let msg = sub.next_message().await;
    assert_eq!(msg["payload"]["data"], serde_json::Value::Null, "{msg}");
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{msg}"
    );
}
