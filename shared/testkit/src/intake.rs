//! Driving the intake service over HTTP, as the gateway would, for tests below the gateway.

use crate::fixtures;
use kaip_contracts::dto::intake::OrgType;
use kaip_contracts::{ConsortiumId, Role};
use serde_json::{json, Value};

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> Value {
    let res = http
        .request(method, &url)
        .header("authorization", token)
        .json(&body)
        .send()
        .await
        .expect("intake answers");
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// Opens a call that is open now and closes in an hour, as an officer; returns its id.
pub async fn open_call(ctx: &crate::TestContext, base: &str) -> String {
    let now = chrono::Utc::now();
    let body = call(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        format!("{base}/calls"),
        &ctx.bearer(Role::Officer, None),
        json!({ "title": "Test call", "opens_at": now - chrono::Duration::minutes(1), "closes_at": now + chrono::Duration::hours(1) }),
    )
    .await;
    body["id"].as_str().expect("call id").to_owned()
}

/// Registers a fresh consortium (eligible under the default rules), drafts a proposal to
/// `call_id` and submits it. Returns the proposal id.
pub async fn apply(ctx: &crate::TestContext, base: &str, call_id: &str, title: &str) -> String {
    let http = reqwest::Client::new();
    let consortium = ConsortiumId::new();
    let token = ctx.bearer(Role::Consortium, Some(consortium));
    let seed = (consortium.0.as_u128() % 100_000_000) as u32;
    let members =
        serde_json::to_value(fixtures::members(seed, OrgType::LargeEnterprise)).expect("json");
    call(
        &http,
        reqwest::Method::PUT,
        format!("{base}/consortia/{consortium}"),
        &token,
        json!({ "name": format!("{title} consortium"), "members": members }),
    )
    .await;
    let draft = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/proposals"),
        &token,
        json!({ "call_id": call_id, "title": title, "summary": "s", "portfolio": crate::fixtures::portfolio() }),
    )
    .await;
    let id = draft["id"].as_str().expect("proposal id").to_owned();
    call(
        &http,
        reqwest::Method::POST,
        format!("{base}/proposals/{id}/submit"),
        &token,
        json!({ "idempotency_key": format!("submit-{id}") }),
    )
    .await;
    id
}
