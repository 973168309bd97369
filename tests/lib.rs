//! The whole platform, in-process, for end-to-end tests: six services and the gateway on
//! port 0, each service with its own database, all on this test's topic prefix, against the
//! real PostgreSQL and the real broker.

pub mod load;
pub mod seed;

use futures::{SinkExt, StreamExt};
pub use kaip_contracts::dto::intake::{MemberRole, OrgType};
use kaip_gateway::settings::{GatewayServer, GatewaySettings, ServiceUrls};
use kaip_testkit::{TestContext, TestService};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

pub use kaip_testkit::eventually;

/// A `ProposalSubmitted` with `title`, as intake emits it.
pub fn submitted(title: &str) -> kaip_contracts::events::ProposalSubmitted {
    kaip_testkit::fixtures::proposal_submitted(title)
}

/// `event` in the envelope intake's outbox gives it, from a consortium's lead.
pub fn envelope(
    event: &kaip_contracts::events::ProposalSubmitted,
) -> kaip_contracts::EventEnvelope {
    kaip_contracts::EventEnvelope::wrap(
        "intake",
        kaip_contracts::Actor {
            subject: "lead".into(),
            role: kaip_contracts::Role::Consortium,
        },
        event,
    )
    .expect("wraps")
}

/// A test context whose topics have one partition: every message of a topic is then
/// consumed in the order it was produced.
pub fn single_partition_context() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    ctx
}

/// A test gateway's settings: loopback on a free port, one worker, the test's broker
/// prefix, development auth and default limits, in front of `services`.
pub fn gateway_settings(ctx: &TestContext, services: ServiceUrls) -> GatewaySettings {
    GatewaySettings {
        server: GatewayServer {
            host: "127.0.0.1".into(),
            port: 0,
            workers: 1,
            shutdown_timeout_secs: 5,
            upstream_timeout_ms: 10_000,
        },
        services,
        kafka: ctx.kafka.clone(),
        auth: kaip_auth::dev::settings(),
        limits: Default::default(),
    }
}

/// Every service at `url` (one stand-in, or an address that refuses connections).
pub fn all_services_at(url: &str) -> ServiceUrls {
    ServiceUrls {
        intake: url.into(),
        scoring: url.into(),
        gpu_ledger: url.into(),
        data_budget: url.into(),
        talent: url.into(),
        milestones: url.into(),
    }
}

pub struct Platform {
    pub ctx: TestContext,
    pub intake: TestService,
    pub scoring: TestService,
    pub others: Vec<TestService>,
    pub gateway_url: String,
    gateway_stop: CancellationToken,
    http: reqwest::Client,
}

impl Platform {
    pub async fn start() -> Self {
        let ctx = TestContext::new();
        let intake = ctx
            .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
            .await;
        let scoring = ctx
            .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
            .await;
        let gpu = ctx
            .spawn(kaip_gpu_ledger::definition(), kaip_gpu_ledger::DEFAULTS)
            .await;
        let data = ctx
            .spawn(kaip_data_budget::definition(), kaip_data_budget::DEFAULTS)
            .await;
        let talent = ctx
            .spawn(kaip_talent::definition(), kaip_talent::DEFAULTS)
            .await;
        let milestones = ctx
            .spawn(kaip_milestones::definition(), kaip_milestones::DEFAULTS)
            .await;
        let settings = gateway_settings(
            &ctx,
            ServiceUrls {
                intake: intake.base_url.clone(),
                scoring: scoring.base_url.clone(),
                gpu_ledger: gpu.base_url.clone(),
                data_budget: data.base_url.clone(),
                talent: talent.base_url.clone(),
                milestones: milestones.base_url.clone(),
            },
        );
        let gateway = kaip_gateway::Application::build(settings)
            .await
            .expect("gateway starts");
        let gateway_url = format!("http://127.0.0.1:{}", gateway.port());
        let gateway_stop = gateway.shutdown_token();
        tokio::spawn(gateway.run_until_stopped());
        // Events published before scoring's group settles would still be consumed (the
        // group starts from the earliest offset), but waiting keeps timings predictable.
        scoring.wait_assigned().await;
        Self {
            ctx,
            intake,
            scoring,
            others: vec![gpu, data, talent, milestones],
            gateway_url,
            gateway_stop,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs a GraphQL operation; returns the response body and its `x-trace-id`.
    pub async fn graphql_with(
        &self,
        authorization: Option<&str>,
        extra_headers: &[(&str, &str)],
        query: &str,
        variables: Value,
    ) -> (Value, Option<String>) {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.gateway_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("gateway answers");
        let trace = res
            .headers()
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (res.json().await.expect("gateway answers JSON"), trace)
    }

    pub async fn graphql(
        &self,
        authorization: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        self.graphql_with(authorization, &[], query, variables)
            .await
            .0
    }

    /// Opens a subscription over WebSocket; returns once the server acknowledged it.
    pub async fn subscribe(&self, authorization: &str, query: &str) -> Subscription {
        let (mut ws, ack) = self.connect_ws(authorization).await;
        let ack = ack.expect("connection answered");
        assert_eq!(ack["type"], "connection_ack", "connection refused: {ack}");
        let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
        ws.send(Message::text(sub.to_string()))
            .await
            .expect("send subscribe");
        Subscription { ws }
    }

    /// The gateway's WebSocket answer to a connection_init with `authorization`.
    pub async fn ws_connection_answer(&self, authorization: &str) -> Value {
        self.connect_ws(authorization)
            .await
            .1
            .unwrap_or(Value::Null)
    }

    /// Opens a `graphql-transport-ws` connection and sends `connection_init` with the token;
    /// returns the socket and the server's first answer.
    async fn connect_ws(&self, authorization: &str) -> (Ws, Option<Value>) {
        let url = format!("{}/graphql", self.gateway_url.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connects");
        let init =
            json!({ "type": "connection_init", "payload": { "Authorization": authorization } });
        ws.send(Message::text(init.to_string()))
            .await
            .expect("send init");
        let answer = next_json(&mut ws).await;
        (ws, answer)
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.gateway_stop.cancel();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(
                    json!({ "type": "close", "reason": frame.map(|f| f.reason.to_string()) }),
                )
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// A live GraphQL subscription.
pub struct Subscription {
    ws: Ws,
}

impl Subscription {
    /// The next event's `data.events` payload (fails the test after 60 s of silence).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let msg = next_json(&mut self.ws).await.expect("an event within 60 s");
            match msg["type"].as_str() {
                Some("next") => return msg["payload"]["data"]["events"].clone(),
                Some("ping") => {
                    let _ = self
                        .ws
                        .send(Message::text(json!({ "type": "pong" }).to_string()))
                        .await;
                }
                _ => panic!("unexpected subscription message: {msg}"),
            }
        }
    }

    /// The next message of any kind (used to observe errors).
    pub async fn next_message(&mut self) -> Value {
        next_json(&mut self.ws).await.unwrap_or(Value::Null)
    }
}

/// `extensions.code` of the first GraphQL error.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

pub const OPEN_CALL: &str = "mutation($input: OpenCallInput!) { openCall(input: $input) { id title opensAt closesAt closesAtKst } }";
pub const REGISTER: &str =
    "mutation($id: UUID!, $input: RegisterConsortiumInput!) { registerConsortium(id: $id, input: $input) { id name members { name orgType role businessRegistrationNumber } } }";
pub const CREATE: &str = "mutation($input: ProposalInput!) { createProposal(input: $input) { id status version consortiumId } }";
pub const SUBMIT: &str =
    "mutation($id: UUID!, $key: String!) { submitProposal(proposalId: $id, idempotencyKey: $key) { proposalId version contentHash submittedAt } }";

/// Registers `consortium` with a lead of `lead` type and a university partner (eligible
/// under the default rules).
pub async fn register(
    p: &Platform,
    consortium: kaip_contracts::ConsortiumId,
    lead: OrgType,
) -> Value {
    let seed = (consortium.0.as_u128() % 100_000_000) as u32;
    let token = p
        .ctx
        .bearer(kaip_contracts::Role::Consortium, Some(consortium));
    let input =
        json!({ "name": format!("Consortium {seed}"), "members": member_inputs(seed, lead) });
    let body = p
        .graphql(
            Some(&token),
            REGISTER,
            json!({ "id": consortium, "input": input }),
        )
        .await;
    assert!(body["errors"].is_null(), "register failed: {body}");
    body
}

/// The testkit's eligible members (a `lead` plus a university partner) as GraphQL input.
pub fn member_inputs(seed: u32, lead: OrgType) -> Vec<Value> {
    kaip_testkit::fixtures::members(seed, lead)
        .into_iter()
        .map(|m| {
            json!({
                "name": m.name,
                "orgType": m.org_type.as_str().to_uppercase(),
                "businessRegistrationNumber": m.business_registration_number,
                "role": if m.role == MemberRole::Lead { "LEAD" } else { "PARTNER" },
            })
        })
        .collect()
}

/// A general-track, open (weights and code, Apache-2.0), from-scratch declaration as
/// GraphQL input.
pub fn portfolio_input() -> Value {
    json!({
        "track": { "kind": "GENERAL" },
        "openness": { "releases": ["WEIGHTS", "CODE"], "licence": "Apache-2.0" },
        "independence": { "fromScratch": true, "buildsOn": [] },
    })
}

/// Drafts a proposal for `consortium` (already registered) and returns its id.
pub async fn draft(
    p: &Platform,
    consortium: kaip_contracts::ConsortiumId,
    call_id: &str,
    title: &str,
) -> String {
    let token = p
        .ctx
        .bearer(kaip_contracts::Role::Consortium, Some(consortium));
    let body = p.graphql(Some(&token), CREATE, json!({ "input": { "callId": call_id, "title": title, "summary": "A model built from scratch", "portfolio": portfolio_input() } })).await;
    body["data"]["createProposal"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createProposal failed: {body}"))
        .to_owned()
}

/// Registers a consortium, drafts and submits a proposal; returns the GraphQL body of the
/// submission (its receipt).
pub async fn apply(
    p: &Platform,
    consortium: kaip_contracts::ConsortiumId,
    call_id: &str,
    title: &str,
) -> Value {
    register(p, consortium, OrgType::LargeEnterprise).await;
    let id = draft(p, consortium, call_id, title).await;
    let token = p
        .ctx
        .bearer(kaip_contracts::Role::Consortium, Some(consortium));
    p.graphql(
        Some(&token),
        SUBMIT,
        json!({ "id": id, "key": format!("submit-{id}") }),
    )
    .await
}

/// Opens a call that is open now and closes in `hours`; returns its id.
pub async fn open_call(p: &Platform, hours: i64) -> String {
    let now = chrono::Utc::now();
    let body = p
        .graphql(
            Some(&p.ctx.bearer(kaip_contracts::Role::Officer, None)),
            OPEN_CALL,
            json!({ "input": {
                "title": "Sovereign AI Foundation Model 2026",
                "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "closesAt": (now + chrono::Duration::hours(hours)).to_rfc3339(),
            }}),
        )
        .await;
    body["data"]["openCall"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("openCall failed: {body}"))
        .to_owned()
}

/// Moves `call_id`'s deadline into the past where intake and scoring keep it: the moment
/// submissions have closed, without racing the wall clock (the API cannot open a call that
/// has already closed). Evaluation (stage 0) starts only after the deadline. Waits until
/// scoring knows the call.
pub async fn pass_deadline(p: &Platform, call_id: &str) {
    use diesel::prelude::*;
    let call: uuid::Uuid = call_id.parse().expect("a call id");
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let moved = diesel::update(kaip_intake::schema::calls::table.find(call))
        .set(kaip_intake::schema::calls::closes_at.eq(past))
        .execute(&mut p.intake.conn())
        .expect("move intake's deadline");
    assert_eq!(moved, 1, "intake knows call {call_id}");
    eventually(Duration::from_secs(60), || async {
        let moved = diesel::update(kaip_scoring::schema::calls::table.find(call))
            .set(kaip_scoring::schema::calls::closes_at.eq(past))
            .execute(&mut p.scoring.conn())
            .ok()?;
        (moved == 1).then_some(())
    })
    .await
    .expect("scoring knows the call");
}

/// The milestones service's tables, its outbox and its audit trail: what "changes nothing"
/// compares for a refused milestones request.
pub const MILESTONES_TABLES: [&str; 14] = [
    "ms_teams",
    "ms_deliverables",
    "ms_evidence",
    "ms_verdicts",
    "ms_overdue",
    "ms_gates",
    "ms_gate_components",
    "ms_gate_inputs",
    "ms_eligibility",
    "ms_proposals",
    "ms_votes",
    "ms_decisions",
    "kaip_outbox",
    "audit_changes",
];

/// The row count of each of `tables` in `svc`'s database.
pub fn row_counts(svc: &TestService, tables: &[&str]) -> Vec<i64> {
    use diesel::prelude::*;
    let mut c = svc.conn();
    tables
        .iter()
        .map(|t| {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                "(SELECT count(*) FROM {t})"
            )))
            .get_result(&mut c)
            .unwrap_or_else(|e| panic!("count {t}: {e}"))
        })
        .collect()
}
