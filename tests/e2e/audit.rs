//! The audit trail: recorded by each service's database in the same transaction as the
//! change, append-only, queryable across services through the gateway, and exported as
//! `AuditRecorded` on each service's audit topic, all against real PostgreSQL and Kafka.

use super::audit_hardening::{exec, refused};
use diesel::prelude::*;
use diesel::sql_types::Text;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{draft, error_code, eventually, open_call, register, OrgType, Platform, SUBMIT};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    j: String,
}

/// Runs `sql` (a SELECT) and returns its rows as a JSON array.
pub(crate) fn rows(conn: &mut PgConnection, sql: &str) -> Vec<Value> {
    let row: JsonRow = diesel::sql_query(format!(
        "SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]'::jsonb)::text AS j FROM ({sql}) x"
    ))
    .get_result(conn)
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match serde_json::from_str(&row.j).expect("json") {
        Value::Array(items) => items,
        other => panic!("not an array: {other}"),
    }
}

/// The operations recorded in a service's database (oldest first), each with its changes.
fn operations(conn: &mut PgConnection, filter: &str) -> Vec<Value> {
    rows(
        conn,
        &format!(
            "SELECT o.*, (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.seq), '[]'::jsonb) \
                          FROM audit_changes c WHERE c.operation_id = o.id) AS changes \
             FROM audit_operations o WHERE {filter} ORDER BY o.at, o.id"
        ),
    )
}

fn count_operations(conn: &mut PgConnection) -> usize {
    rows(conn, "SELECT id FROM audit_operations").len()
}

const TRAIL: &str = "query($entity: String, $actor: String, $from: DateTime, $to: DateTime, $first: Int, $after: ID) { auditTrail(entity: $entity, actor: $actor, from: $from, to: $to, first: $first, after: $after) { items { id service at actorSubject actorRole traceId operation input changeCount changes { table key action before after } } nextCursor } }";

async fn trail(p: &Platform, token: &str, vars: Value) -> Value {
    p.graphql(Some(token), TRAIL, vars).await
}

fn items(body: &Value) -> Vec<Value> {
    assert!(body["errors"].is_null(), "auditTrail failed: {body}");
    body["data"]["auditTrail"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A consortium registered and a proposal drafted; returns (consortium, proposal, lead's bearer).
async fn drafted(p: &Platform, call: &str, lead: &str) -> (ConsortiumId, String, String) {
    let consortium = ConsortiumId::new();
    register(p, consortium, OrgType::LargeEnterprise).await;
    let proposal = draft(p, consortium, call, "Audited foundation model").await;
    let bearer = p.ctx.bearer_for(lead, Role::Consortium, Some(consortium));
    (consortium, proposal, bearer)
}

async fn submit(p: &Platform, bearer: &str, proposal: &str, trace_id: &str) {
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let (body, _) = p
        .graphql_with(
            Some(bearer),
            &[("traceparent", &traceparent)],
            SUBMIT,
            json!({ "id": proposal, "key": format!("audit-{proposal}") }),
        )
        .await;
    assert!(body["errors"].is_null(), "submit failed: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_and_the_event_it_causes_are_recorded_with_actor_trace_input_and_rows() {
    let p = Platform::start().await;
    let call = open_call(&p, 2).await;
    let (_, proposal, lead) = drafted(&p, &call, "lead-audit").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4737";
    submit(&p, &lead, &proposal, trace_id).await;

    // Intake: one operation for the submission, with who, trace, input and the row's
    // before and after.
    let mut intake = p.intake.conn();
    let ops = operations(&mut intake, "o.operation = 'POST /proposals/{id}/submit'");
    assert_eq!(ops.len(), 1, "{ops:#?}");
    let op = &ops[0];
    assert_eq!(op["service"], "intake");
    assert_eq!(op["actor_sub"], "lead-audit");
    assert_eq!(op["actor_role"], "consortium");
    assert_eq!(op["trace_id"], trace_id);
    assert_eq!(op["input"]["path"], format!("/proposals/{proposal}/submit"));
    assert_eq!(
        op["input"]["body"]["idempotency_key"],
        format!("audit-{proposal}")
    );
    let change = op["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["table_name"] == "proposals")
        .unwrap_or_else(|| panic!("no change of proposals: {op:#}"));
    assert_eq!(change["action"], "update");
    assert_eq!(change["row_key"], json!({ "id": proposal }));
    assert_eq!(change["before"]["status"], "draft");
    assert_eq!(change["after"]["status"], "submitted");
    assert!(change["before"]["submitted_at"].is_null());
    assert!(change["after"]["submitted_at"].is_string());

    // The same transaction: the proposal row's current version was written by the very
    // transaction that wrote the operation.
    let xmin = rows(
        &mut intake,
        &format!("SELECT xmin::text::bigint AS tx FROM proposals WHERE id = '{proposal}'"),
    );
    assert_eq!(
        xmin[0]["tx"].as_i64().expect("xmin"),
        op["txid"].as_i64().expect("txid") % (1i64 << 32),
        "the trail row and the change were committed by different transactions"
    );

    // Scoring: the consumed ProposalSubmitted is recorded with the event's actor, the
    // request's trace, the event data as input, and the case it opened.
    let event_op = eventually(WAIT, || {
        let pool = p.scoring.pool.clone();
        let proposal = proposal.clone();
        async move {
            let mut c = pool.get().ok()?;
            operations(&mut c, "o.operation = 'event:ProposalSubmitted'")
                .into_iter()
                .find(|o| o["input"]["data"]["proposal_id"] == proposal.as_str())
        }
    })
    .await
    .expect("scoring recorded the event it consumed");
    assert_eq!(event_op["service"], "scoring");
    assert_eq!(event_op["actor_sub"], "lead-audit");
    assert_eq!(event_op["actor_role"], "consortium");
    assert_eq!(event_op["trace_id"], trace_id);
    assert_eq!(event_op["input"]["producer"], "intake");
    assert_eq!(event_op["input"]["type"], "ProposalSubmitted");
    let case = event_op["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["table_name"] == "evaluation_cases")
        .unwrap_or_else(|| panic!("no case opened: {event_op:#}"));
    assert_eq!(case["action"], "insert");
    assert!(case["before"].is_null());
    assert_eq!(case["after"]["proposal_id"], proposal.as_str());

    // A refused request leaves no trail: editing a submitted proposal.
    let before = count_operations(&mut intake);
    let body = p
        .graphql(
            Some(&lead),
            "mutation($id: UUID!) { updateProposal(id: $id, input: { title: \"Changed\", summary: \"After submission\" }) { id } }",
            json!({ "id": proposal }),
        )
        .await;
    assert!(body["errors"].is_array(), "the edit was refused: {body}");
    assert_eq!(count_operations(&mut intake), before);
    let title = rows(
        &mut intake,
        &format!("SELECT title FROM proposals WHERE id = '{proposal}'"),
    );
    assert_eq!(title[0]["title"], "Audited foundation model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_is_queried_across_services_by_entity_actor_and_time_in_pages() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer_for("officer-audit", Role::Officer, None);
    let call = open_call(&p, 2).await;
    let (consortium, proposal, lead) = drafted(&p, &call, "lead-trail").await;
    submit(&p, &lead, &proposal, "5bf92f3577b34da6a3ce929d0e0e4738").await;

    // Everything about the proposal, in every service: drafted and submitted in intake, its
    // case opened in scoring, the lead's terms noted by talent (both consumers of the
    // submission; which of the two commits first varies).
    let about = eventually(WAIT, || {
        let vars = json!({ "entity": proposal });
        let (p, officer) = (&p, &officer);
        async move {
            let found = items(&trail(p, officer, vars).await);
            (found.iter().any(|e| e["service"] == "scoring")
                && found.iter().any(|e| e["service"] == "talent"))
            .then_some(found)
        }
    })
    .await
    .expect("the consumed event's entries appear");
    let ops: Vec<(&str, &str)> = about
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap_or(""),
                e["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ops[..2],
        [
            ("intake", "POST /proposals"),
            ("intake", "POST /proposals/{id}/submit"),
        ],
        "{about:#?}"
    );
    let mut consumers = ops[2..].to_vec();
    consumers.sort();
    assert_eq!(
        consumers,
        vec![
            ("scoring", "event:ProposalSubmitted"),
            ("talent", "event:ProposalSubmitted"),
        ],
        "{about:#?}"
    );
    for e in &about {
        assert!(
            e["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .any(|c| c.to_string().contains(&proposal)),
            "{e:#}"
        );
    }
    let ats: Vec<&str> = about
        .iter()
        .map(|e| e["at"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = ats.clone();
    sorted.sort();
    assert_eq!(ats, sorted, "oldest first");

    // `<table>:<key>`: only the proposal row itself (not the case in scoring).
    let exact = items(
        &trail(
            &p,
            &officer,
            json!({ "entity": format!("proposals:{proposal}") }),
        )
        .await,
    );
    assert_eq!(exact.len(), 2, "{exact:#?}");
    assert!(exact.iter().all(|e| e["service"] == "intake"));
    // A table name: every proposal written (only this one here).
    let table = items(&trail(&p, &officer, json!({ "entity": "consortium_versions" })).await);
    assert_eq!(table.len(), 1, "{table:#?}");
    assert_eq!(table[0]["operation"], "PUT /consortia/{id}");
    assert!(table[0]["changes"]
        .to_string()
        .contains(&consortium.to_string()));

    // By actor: the lead submitted (intake), and scoring acted on the lead's event.
    let by_lead = items(&trail(&p, &officer, json!({ "actor": "lead-trail" })).await);
    assert_eq!(by_lead.len(), 3, "{by_lead:#?}");
    assert!(by_lead.iter().all(|e| e["actorSubject"] == "lead-trail"));
    assert_eq!(by_lead[0]["operation"], "POST /proposals/{id}/submit");
    assert_eq!(by_lead[0]["traceId"], "5bf92f3577b34da6a3ce929d0e0e4738");
    let mut acted: Vec<&str> = by_lead[1..]
        .iter()
        .map(|e| e["service"].as_str().unwrap_or(""))
        .collect();
    acted.sort();
    assert_eq!(acted, ["scoring", "talent"], "{by_lead:#?}");
    let by_nobody = items(&trail(&p, &officer, json!({ "actor": "nobody" })).await);
    assert!(by_nobody.is_empty());

    // By time: from is inclusive, to exclusive.
    let submitted_at = about[1]["at"].as_str().expect("at");
    let from = items(
        &trail(
            &p,
            &officer,
            json!({ "entity": proposal, "from": submitted_at }),
        )
        .await,
    );
    assert_eq!(from.len(), 3, "{from:#?}");
    assert_eq!(from[0]["operation"], "POST /proposals/{id}/submit");
    let to = items(
        &trail(
            &p,
            &officer,
            json!({ "entity": proposal, "to": submitted_at }),
        )
        .await,
    );
    assert_eq!(to.len(), 1, "{to:#?}");
    assert_eq!(to[0]["operation"], "POST /proposals");

    // Pages of one entry walk the whole merged trail exactly once, in the same order.
    let all = items(&trail(&p, &officer, json!({ "first": 100 })).await);
    assert!(all.len() >= 5, "{all:#?}");
    let mut walked: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = trail(&p, &officer, json!({ "first": 1, "after": after })).await;
        let page = items(&body);
        assert!(page.len() <= 1);
        walked.extend(page);
        match body["data"]["auditTrail"]["nextCursor"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
        assert!(walked.len() <= all.len(), "paging does not end");
    }
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|e| format!("{}/{}", e["service"], e["id"]))
            .collect()
    };
    assert_eq!(ids(&walked), ids(&all));

    // Other roles are refused with a code, before any entry is read.
    let integration = p.ctx.integration_bearer(
        "archive",
        &["events:audit", "read:proposals", "read:consortia"],
    );
    for token in [
        lead.clone(),
        p.ctx.bearer(Role::Reviewer, None),
        integration,
    ] {
        let body = trail(&p, &token, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        assert!(body["data"].is_null() || body["data"]["auditTrail"].is_null());
    }
    // Each service refuses them too, called directly.
    let res = reqwest::Client::new()
        .get(p.intake.url("/audit"))
        .header("authorization", &lead)
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status(), 403);
    for (query, field) in [
        ("from=%ZZ", "from"),
        ("limit=5&limit=6", "limit"),
        ("since=2026-01-01T00:00:00Z", "since"),
    ] {
        let res = reqwest::Client::new()
            .get(p.scoring.url(&format!("/audit?{query}")))
            .header("authorization", &officer)
            .send()
            .await
            .expect("scoring answers");
        assert_eq!(res.status(), 422, "{query}");
        let body: Value = res.json().await.expect("a coded error");
        assert_eq!(body["code"], "VALIDATION_FAILED", "{body}");
        assert!(
            body["message"].as_str().unwrap_or("").starts_with(field),
            "{body}"
        );
    }
    // Bad arguments are refused by name.
    for (vars, field) in [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "after": "not-a-cursor" }), "after"),
    ] {
        let body = trail(&p, &officer, vars).await;
        assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
        assert!(body.to_string().contains(field), "{body}");
    }
    let body = trail(
        &p,
        &officer,
        json!({ "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_is_exported_on_each_services_audit_topic_and_no_consumer_sees_it() {
    let p = Platform::start().await;
    let archive = p.ctx.integration_bearer("archive", &["events:audit"]);
    let mut feed = p
        .subscribe(
            &archive,
            r#"subscription { events(types: ["AuditRecorded"]) { type producer aggregateId data traceId } }"#,
        )
        .await;
    let call = open_call(&p, 2).await;
    let (_, proposal, lead) = drafted(&p, &call, "lead-export").await;
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4739";
    submit(&p, &lead, &proposal, trace_id).await;

    let validator = {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/contracts/schemas/AuditRecorded.v1.json"
        ))
        .expect("published schema");
        let schema: Value = serde_json::from_str(&text).expect("json");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .with_format("uuid", |s| uuid::Uuid::try_parse(s).is_ok())
            .build(&schema)
            .expect("valid schema")
    };
    let topic = p.ctx.topic("kaip.intake.audit");
    let submitted = eventually(WAIT, || {
        let (ctx, topic) = (&p.ctx, topic.clone());
        async move {
            ctx.read_topic(&topic).await.into_iter().find(|m| {
                m.json()
                    .is_some_and(|v| v["data"]["operation"] == "POST /proposals/{id}/submit")
            })
        }
    })
    .await
    .expect("the submission's AuditRecorded is on intake's audit topic");
    let event = submitted.json().expect("json");
    let errors: Vec<String> = validator
        .iter_errors(&event)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{event:#}");
    let envelope: kaip_contracts::EventEnvelope =
        serde_json::from_value(event.clone()).expect("an envelope");
    let data: kaip_contracts::audit::AuditRecorded = envelope.decode().expect("AuditRecorded");
    assert_eq!(envelope.producer, "intake");
    assert_eq!(envelope.actor.subject, "lead-export");
    assert_eq!(envelope.actor.role, Role::Consortium);
    assert_eq!(data.trace_id.as_deref(), Some(trace_id));
    assert!(!data.changes_truncated);
    assert!(data
        .changes
        .iter()
        .any(|c| c.table == "proposals"
            && c.after.as_ref().is_some_and(|a| a["status"] == "submitted")));
    assert_eq!(
        submitted.key.as_deref(),
        Some(data.operation_id.to_string().as_bytes()),
        "keyed by operation id"
    );
    assert!(submitted
        .headers
        .get("traceparent")
        .is_some_and(|tp| tp.contains(trace_id)));
    // It matches the recorded operation.
    let recorded = operations(
        &mut p.intake.conn(),
        &format!("o.id = '{}'", data.operation_id),
    );
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["operation"], "POST /proposals/{id}/submit");

    // Scoring exports what it did with the event on its own audit topic.
    let scoring_topic = p.ctx.topic("kaip.scoring.audit");
    eventually(WAIT, || {
        let (ctx, topic) = (&p.ctx, scoring_topic.clone());
        async move {
            ctx.read_topic(&topic).await.into_iter().find(|m| {
                m.json()
                    .is_some_and(|v| v["data"]["operation"] == "event:ProposalSubmitted")
            })
        }
    })
    .await
    .expect("scoring's AuditRecorded is on its audit topic");

    // Never on the events topics, and no service's consumer received one.
    let events = p.ctx.read_topic(&p.ctx.topic("kaip.intake.events")).await;
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|m| m.json().is_some_and(|v| v["type"] != "AuditRecorded")));
    for service in [&p.scoring, &p.intake] {
        let seen = rows(
            &mut service.conn(),
            "SELECT event_id FROM kaip_inbox WHERE event_type = 'AuditRecorded'",
        );
        assert!(seen.is_empty(), "{} consumed the trail", service.name);
    }

    // An integration holding `events:audit` receives the trail in its subscription.
    let pushed = tokio::time::timeout(WAIT, feed.next_event())
        .await
        .expect("an AuditRecorded pushed");
    assert_eq!(pushed["type"], "AuditRecorded", "{pushed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_own_connection_cannot_update_delete_or_truncate_the_trail() {
    let ctx = kaip_testkit::TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let mut conn = intake.conn();
    // A change made outside the platform is recorded too, as `unknown`.
    diesel::sql_query(
        "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
         VALUES (gen_random_uuid(), 'Made in psql', 2026, '', 'dba')",
    )
    .execute(&mut conn)
    .expect("insert");
    let ops = operations(&mut conn, "true");
    assert_eq!(ops.len(), 1, "{ops:#?}");
    assert_eq!(ops[0]["actor_sub"], "db:postgres");
    assert_eq!(ops[0]["actor_role"], "unknown");
    assert_eq!(ops[0]["operation"], "sql");
    assert_eq!(ops[0]["changes"][0]["after"]["name"], "Made in psql");

    for sql in [
        "UPDATE audit_operations SET actor_sub = 'someone else'",
        "DELETE FROM audit_operations",
        "UPDATE audit_changes SET after = NULL",
        "DELETE FROM audit_changes",
        "TRUNCATE audit_changes",
        "TRUNCATE audit_operations CASCADE",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let after = operations(&mut conn, "true");
    assert_eq!(after, ops, "the trail is unchanged");

    // With the production role layout it cannot even try: see
    // audit_hardening::the_trail_cannot_be_forged_or_disabled_by_the_login_role.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_actor_never_leaks_into_another_on_a_pool_of_one() {
    let ctx = kaip_testkit::TestContext::new();
    let mut settings = ctx.settings(kaip_intake::DEFAULTS);
    settings.database.pool_size = 1;
    let intake = ctx.spawn_with(kaip_intake::definition(), settings).await;
    let http = reqwest::Client::new();
    let create = |subject: &str, name: &str| {
        http.post(intake.url("/programmes"))
            .header(
                "authorization",
                ctx.bearer_for(subject, Role::Officer, None),
            )
            .json(&json!({ "name": name, "fiscal_year": 2026, "description": "" }))
            .send()
    };
    // Concurrent requests of two officers through the one connection.
    let mut pending = Vec::new();
    for i in 0..4 {
        pending.push(create("officer-a", &format!("A{i}")));
        pending.push(create("officer-b", &format!("B{i}")));
    }
    for res in futures::future::join_all(pending).await {
        let res = res.expect("intake answers");
        assert!(res.status().is_success(), "{}", res.status());
    }
    // A request refused by the database (a programme's name and year are unique), then a
    // write outside any request, on the same connection: neither is officer-c's.
    let refused = create("officer-c", "A0").await.expect("answers");
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let mut conn = intake.conn();
    diesel::sql_query(
        "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
         VALUES (gen_random_uuid(), 'Z', 2026, '', 'dba')",
    )
    .execute(&mut conn)
    .expect("insert");

    let ops = operations(&mut conn, "true");
    assert_eq!(ops.len(), 9, "{ops:#?}");
    for op in &ops {
        let name = op["changes"][0]["after"]["name"].as_str().expect("a name");
        let expected = match name.chars().next() {
            Some('A') => "officer-a",
            Some('B') => "officer-b",
            _ => "db:postgres",
        };
        assert_eq!(op["actor_sub"], expected, "{op:#}");
        if expected == "db:postgres" {
            assert_eq!(op["actor_role"], "unknown");
            assert_eq!(op["operation"], "sql");
        } else {
            assert_eq!(op["actor_role"], "officer");
            assert_eq!(op["operation"], "POST /programmes");
            assert_eq!(op["input"]["body"]["name"], name);
        }
    }
    drop(conn);
    intake.shutdown().await;
}

/// Tables of the backbone itself (the outbox, inbox and trail) and derived tables that
/// are recomputable from audited rows: everything else a service creates is a domain table
/// and must be in the trail. A new table that is neither fails this test.
const NOT_AUDITED: &[(&str, &str)] = &[
    ("__diesel_schema_migrations", "diesel's own bookkeeping"),
    (
        "kaip_outbox",
        "the backbone's outbox: its events are the audited changes' consequence",
    ),
    (
        "kaip_inbox",
        "the backbone's inbox: which events were applied, not state",
    ),
    (
        "kaip_audit_settings",
        "the trail's own settings (service name, topic)",
    ),
    ("audit_operations", "the trail itself"),
    ("audit_changes", "the trail itself"),
    ("audit_commits", "the trail itself (its commit order)"),
    (
        "talent_researcher_personal",
        "personal data (PIPA: researchers' names, contacts, countries): the trail records ids, \
         not names; every write to it goes with an audited talent_researchers write in the \
         same transaction, so who changed which researcher, when, is still recorded",
    ),
    (
        "talent_hire_pay",
        "personal data (PIPA: salaries and living allowances): the trail records ids, not \
         salaries; it is written only with its audited talent_hires row",
    ),
    (
        "ledger_balance_history",
        "derived: every row follows from an audited ledger_transfers row (replay recomputes it)",
    ),
    (
        "ledger_open_pending",
        "derived: the pending ledger_transfers rows no audited transfer resolves yet, kept by \
         a trigger on them (GET /invariants compares it with the replayed transfers)",
    ),
];

#[tokio::test]
async fn every_domain_table_of_every_service_is_in_the_trail() {
    let ctx = kaip_testkit::TestContext::new();
    let services = [
        ctx.spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
            .await,
        ctx.spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
            .await,
        ctx.spawn(kaip_gpu_ledger::definition(), kaip_gpu_ledger::DEFAULTS)
            .await,
        ctx.spawn(kaip_data_budget::definition(), kaip_data_budget::DEFAULTS)
            .await,
        ctx.spawn(kaip_talent::definition(), kaip_talent::DEFAULTS)
            .await,
        ctx.spawn(kaip_milestones::definition(), kaip_milestones::DEFAULTS)
            .await,
    ];
    let mut checked = 0;
    for service in &services {
        let mut conn = service.conn();
        let tables = rows(
            &mut conn,
            "SELECT c.relname AS name, EXISTS (SELECT 1 FROM pg_trigger t \
                 WHERE t.tgrelid = c.oid AND t.tgname = 'kaip_audit') AS audited \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        );
        assert!(
            tables.iter().any(|t| t["name"] == "kaip_outbox"),
            "the query sees the service's tables: {tables:?}"
        );
        for table in tables {
            let name = table["name"].as_str().expect("name");
            let exempt = NOT_AUDITED.iter().any(|(t, _)| *t == name);
            assert_eq!(
                table["audited"].as_bool(),
                Some(!exempt),
                "table `{name}`: a domain table must call kaip_audit_table in a migration \
                 (or be listed, with the reason, in NOT_AUDITED)"
            );
            checked += usize::from(!exempt);
        }
    }
    // intake 9, scoring 17, the ledger 12 when this was written: growth is fine, a drop is not.
    assert!(checked >= 38, "only {checked} domain tables checked");
}

/// The trail's per-statement mode (`kaip_audit_table(t, ..., per_statement => true)`)
/// records an INSERT with one statement, and records exactly what the row trigger records:
/// for twin tables with redacted and personal columns, the same changes (key, entity ids,
/// action, before, after) in the same order, under one operation per statement. Re-running
/// the opt-in, with or without the flag, leaves one set of triggers (an update is recorded
/// once), and the ledger's transfers use this mode instead of their former copy of it.
#[tokio::test]
async fn the_per_statement_mode_records_what_the_row_trigger_does_and_reruns_keep_one_set() {
    let ctx = kaip_testkit::TestContext::new();
    let ledger = ctx
        .spawn(kaip_gpu_ledger::definition(), kaip_gpu_ledger::DEFAULTS)
        .await;
    let mut conn = ledger.conn();
    const LISTS: &str = "ARRAY['doc', 'secret'], ARRAY['name', 'salary', 'tags']";
    for t in ["probe_by_row", "probe_by_statement"] {
        exec(
            &mut conn,
            &format!(
                "CREATE TABLE {t} (id uuid PRIMARY KEY, team_id uuid, doc bytea, secret text, \
                 name text, salary bigint, tags text[], note text, n text)"
            ),
        );
    }
    exec(
        &mut conn,
        &format!("SELECT kaip_audit_table('probe_by_row', {LISTS})"),
    );
    exec(
        &mut conn,
        &format!("SELECT kaip_audit_table('probe_by_statement', {LISTS}, per_statement => true)"),
    );
    // Three rows, inserted in an order that is not the key's, with values to redact, to hide
    // and NULLs (and a column named like the trigger's row alias); then a statement that
    // inserts nothing.
    let mut ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
    ids.reverse();
    let team = uuid::Uuid::now_v7();
    let values = format!(
        "('{}', '{team}', '\\x0102ff'::bytea, repeat('s', 20000), 'Kim Minji', 91000000, \
           ARRAY['a', 'b'], 'first', 'n1'), \
         ('{}', NULL, NULL, NULL, NULL, NULL, NULL, 'second', NULL), \
         ('{}', '{team}', ''::bytea, 'short secret', '', 0, '{{}}', NULL, 'n3')",
        ids[0], ids[1], ids[2]
    );
    for t in ["probe_by_row", "probe_by_statement"] {
        exec(
            &mut conn,
            &format!(
                "INSERT INTO {t} (id, team_id, doc, secret, name, salary, tags, note, n) VALUES {values}"
            ),
        );
        exec(
            &mut conn,
            &format!("INSERT INTO {t} SELECT * FROM {t} WHERE false"),
        );
    }
    let changes = |conn: &mut PgConnection, t: &str| {
        rows(
            conn,
            &format!(
                "SELECT row_key, entity_ids, action, before, after FROM audit_changes \
                  WHERE table_name = '{t}' ORDER BY seq"
            ),
        )
    };
    let by_row = changes(&mut conn, "probe_by_row");
    let by_statement = changes(&mut conn, "probe_by_statement");
    assert_eq!(by_row.len(), 3, "{by_row:#?}");
    assert_eq!(by_statement, by_row, "the same record, row for row");
    // What that record is: the key in insert order, references as entities, redacted and
    // personal columns masked (a NULL stays NULL), the rest as written.
    let keys: Vec<Value> = by_statement
        .iter()
        .map(|c| c["row_key"]["id"].clone())
        .collect();
    assert_eq!(keys, ids.iter().map(|i| json!(i)).collect::<Vec<_>>());
    let first = &by_statement[0];
    assert_eq!(first["action"], "insert");
    assert_eq!(first["before"], Value::Null);
    let mut entities: Vec<String> =
        serde_json::from_value(first["entity_ids"].clone()).expect("ids");
    entities.sort();
    let mut want = vec![ids[0].to_string(), team.to_string()];
    want.sort();
    assert_eq!(entities, want);
    let after = &first["after"];
    assert_eq!(after["doc"]["redacted"], true, "{after}");
    assert_eq!(after["secret"]["bytes"], 20000, "{after}");
    for col in ["name", "salary", "tags"] {
        assert_eq!(after[col], "[personal data]", "{col}: {after}");
    }
    assert_eq!(
        (&after["note"], &after["n"]),
        (&json!("first"), &json!("n1"))
    );
    let second = &by_statement[1]["after"];
    for col in ["doc", "secret", "name", "salary", "tags"] {
        assert_eq!(second[col], Value::Null, "{col}: {second}");
    }
    let ops = rows(
        &mut conn,
        "SELECT table_name, count(DISTINCT operation_id) AS n FROM audit_changes \
          WHERE table_name LIKE 'probe_by_%' GROUP BY table_name ORDER BY table_name",
    );
    assert_eq!(
        ops,
        vec![
            json!({"table_name": "probe_by_row", "n": 1}),
            json!({"table_name": "probe_by_statement", "n": 1})
        ],
        "one operation per INSERT, none for the one that inserted nothing"
    );

    let triggers = |conn: &mut PgConnection, t: &str| {
        rows(
            conn,
            &format!(
                "SELECT t.tgname AS name, t.tgtype & 1 = 1 AS per_row, p.proname AS function \
                   FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
                  WHERE t.tgrelid = '{t}'::regclass AND t.tgname LIKE 'kaip_audit%' \
                  ORDER BY t.tgname"
            ),
        )
    };
    let per_statement = vec![
        json!({"name": "kaip_audit", "per_row": false, "function": "kaip_audit_statement"}),
        json!({"name": "kaip_audit_changes", "per_row": true, "function": "kaip_audit_row"}),
        json!({"name": "kaip_audit_truncate", "per_row": false, "function": "kaip_audit_row"}),
    ];
    let per_row = vec![
        json!({"name": "kaip_audit", "per_row": true, "function": "kaip_audit_row"}),
        json!({"name": "kaip_audit_truncate", "per_row": false, "function": "kaip_audit_row"}),
    ];
    assert_eq!(triggers(&mut conn, "probe_by_statement"), per_statement);
    assert_eq!(triggers(&mut conn, "probe_by_row"), per_row);
    // Re-run, without the flag (the mode is kept) and with it: still one set.
    for call in [
        format!("SELECT kaip_audit_table('probe_by_statement', {LISTS})"),
        format!("SELECT kaip_audit_table('probe_by_statement', {LISTS}, per_statement => true)"),
    ] {
        exec(&mut conn, &call);
        assert_eq!(
            triggers(&mut conn, "probe_by_statement"),
            per_statement,
            "{call}"
        );
    }
    exec(
        &mut conn,
        &format!("SELECT kaip_audit_table('probe_by_row', {LISTS})"),
    );
    assert_eq!(triggers(&mut conn, "probe_by_row"), per_row);
    // An update and a delete are recorded once each, masked like an insert.
    for t in ["probe_by_row", "probe_by_statement"] {
        exec(
            &mut conn,
            &format!(
                "UPDATE {t} SET name = 'Lee', note = 'changed' WHERE id = '{}'",
                ids[0]
            ),
        );
        exec(
            &mut conn,
            &format!("DELETE FROM {t} WHERE id = '{}'", ids[1]),
        );
    }
    let by_row = changes(&mut conn, "probe_by_row");
    let by_statement = changes(&mut conn, "probe_by_statement");
    assert_eq!(by_statement, by_row);
    let actions: Vec<&str> = by_statement
        .iter()
        .map(|c| c["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["insert", "insert", "insert", "update", "delete"]);
    assert_eq!(by_statement[3]["after"]["name"], "[personal data]");
    // And back to the row trigger when asked.
    exec(
        &mut conn,
        &format!("SELECT kaip_audit_table('probe_by_statement', {LISTS}, per_statement => false)"),
    );
    assert_eq!(triggers(&mut conn, "probe_by_statement"), per_row);

    // The ledger's transfers: the shared mode, its former copy gone, kept by a re-run.
    assert_eq!(triggers(&mut conn, "ledger_transfers"), per_statement);
    assert_eq!(
        rows(
            &mut conn,
            "SELECT proname FROM pg_proc WHERE proname = 'gpu_ledger_audit_inserts'"
        ),
        Vec::<Value>::new()
    );
    exec(&mut conn, "SELECT kaip_audit_table('ledger_transfers')");
    assert_eq!(triggers(&mut conn, "ledger_transfers"), per_statement);
}

/// The per-statement mode is refused where it would record something else than the row
/// trigger: a partitioned table (its statement trigger names the parent, the row trigger
/// each partition), a partition (its statement trigger misses the rows inserted through the
/// parent) and a table with inheritance children. A table that becomes one after opting in
/// has its inserts refused until it goes back to the row trigger. (PostgreSQL itself allows
/// such triggers on all of them.)
#[tokio::test]
async fn the_per_statement_mode_is_refused_on_partitioned_and_inherited_tables() {
    let ctx = kaip_testkit::TestContext::new();
    let ledger = ctx
        .spawn(kaip_gpu_ledger::definition(), kaip_gpu_ledger::DEFAULTS)
        .await;
    let mut conn = ledger.conn();
    for sql in [
        "CREATE TABLE probe_parted (id int PRIMARY KEY, note text) PARTITION BY RANGE (id)",
        "CREATE TABLE probe_part PARTITION OF probe_parted FOR VALUES FROM (0) TO (100)",
        "CREATE TABLE probe_parent (id int PRIMARY KEY, note text)",
        "CREATE TABLE probe_child (id int PRIMARY KEY) INHERITS (probe_parent)",
        "CREATE TABLE probe_plain (id int PRIMARY KEY, note text)",
    ] {
        exec(&mut conn, sql);
    }
    for t in ["probe_parted", "probe_part", "probe_parent"] {
        let err = refused(
            &mut conn,
            &format!("SELECT kaip_audit_table('{t}', per_statement => true)"),
        );
        assert!(
            err.contains(t) && err.contains("partition") && err.contains("inheritance"),
            "{t}: {err}"
        );
        let triggers = rows(
            &mut conn,
            &format!("SELECT tgname FROM pg_trigger WHERE tgrelid = '{t}'::regclass AND tgname LIKE 'kaip_audit%'"),
        );
        assert_eq!(triggers, Vec::<Value>::new(), "{t}: nothing created");
    }
    // A child of its own (an inheritance child, not a partition) records what the row
    // trigger would: allowed.
    exec(
        &mut conn,
        "SELECT kaip_audit_table('probe_child', per_statement => true)",
    );
    // A table opted in that gets a child later: its inserts are refused, and a re-run of the
    // opt-in without the flag (which keeps the mode) too, until it goes back to rows.
    exec(
        &mut conn,
        "SELECT kaip_audit_table('probe_plain', per_statement => true)",
    );
    exec(&mut conn, "INSERT INTO probe_plain VALUES (1, 'recorded')");
    exec(
        &mut conn,
        "CREATE TABLE probe_plain_child () INHERITS (probe_plain)",
    );
    let err = refused(&mut conn, "INSERT INTO probe_plain VALUES (2, 'refused')");
    assert!(
        err.contains("probe_plain") && err.contains("per_statement => false"),
        "{err}"
    );
    let err = refused(&mut conn, "SELECT kaip_audit_table('probe_plain')");
    assert!(err.contains("probe_plain"), "{err}");
    exec(
        &mut conn,
        "SELECT kaip_audit_table('probe_plain', per_statement => false)",
    );
    exec(&mut conn, "INSERT INTO probe_plain VALUES (3, 'by row')");
    let recorded = rows(
        &mut conn,
        "SELECT row_key FROM audit_changes WHERE table_name = 'probe_plain' ORDER BY seq",
    );
    assert_eq!(
        recorded,
        vec![json!({"row_key": {"id": 1}}), json!({"row_key": {"id": 3}})]
    );
}
