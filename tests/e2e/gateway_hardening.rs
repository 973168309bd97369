//! The gateway under abuse and load, against the real services: per-item fields batched
//! into one call per field, wide operations refused before they reach a service, a call
//! budget, the batch reads' authorization, and 64 officers at once without a failure.

use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::load::{run_load, seed_call};
use kaip_e2e::{apply, error_code, open_call, Platform};
use kaip_gateway::clients::Services;
use kaip_gateway::settings::{GatewayLimits, GatewayServer, GatewaySettings, ServiceUrls};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A second gateway on the platform's services, with its own limits and a handle on its
/// service clients (whose counter shows how many calls a query made).
struct Gateway {
    url: String,
    services: Services,
    stop: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn gateway(p: &Platform, limits: GatewayLimits) -> Gateway {
    let settings = GatewaySettings {
        server: GatewayServer {
            host: "127.0.0.1".into(),
            port: 0,
            workers: 1,
            shutdown_timeout_secs: 1,
            upstream_timeout_ms: 10_000,
        },
        services: ServiceUrls {
            intake: p.intake.base_url.clone(),
            scoring: p.scoring.base_url.clone(),
            gpu_ledger: p.others[0].base_url.clone(),
            data_budget: p.others[1].base_url.clone(),
            talent: p.others[2].base_url.clone(),
            milestones: p.others[3].base_url.clone(),
        },
        kafka: p.ctx.kafka.clone(),
        auth: kaip_auth::dev::settings(),
        limits,
    };
    let app = kaip_gateway::Application::build(settings)
        .await
        .expect("gateway starts");
    let g = Gateway {
        url: format!("http://127.0.0.1:{}/graphql", app.port()),
        services: app.services(),
        stop: app.shutdown_token(),
    };
    tokio::spawn(app.run_until_stopped());
    g
}

async fn post(url: &str, token: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .header("authorization", token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("gateway answers")
        .json()
        .await
        .expect("JSON")
}

/// `n` aliases of the query: every proposal of the call with its versions and case.
fn aliased(n: usize) -> String {
    let one = "proposals(callId: $call, first: 100) { items { id versions { version } evaluationCase { id } } }";
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: {one}")).collect();
    format!("query($call: UUID!) {{ {} }}", fields.join(" "))
}

/// Service calls the gateway made while `f` ran.
async fn calls_during<F: std::future::Future<Output = Value>>(g: &Gateway, f: F) -> (Value, u64) {
    let before = g.services.calls_made();
    let body = f.await;
    (body, g.services.calls_made() - before)
}

const PROPOSALS: usize = 30;

/// Threads of this process named `name` (each test runs in a process of its own).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_item_fields_are_batched_and_wide_operations_refused_before_any_call() {
    let p = Platform::start().await;
    let call_id = seed_call(&p, PROPOSALS).await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let g = gateway(&p, GatewayLimits::default()).await;
    let vars = json!({ "call": call_id });

    // One list, then one call for all the versions and one for all the cases: 3, not 61.
    let (body, calls) = calls_during(&g, post(&g.url, &officer, &aliased(1), vars.clone())).await;
    assert!(body["errors"].is_null(), "{body}");
    let items = body["data"]["a0"]["items"].as_array().expect("items");
    assert_eq!(items.len(), PROPOSALS);
    for item in items {
        assert_eq!(item["versions"], json!([{ "version": 1 }]), "{item}");
        assert!(item["evaluationCase"]["id"].is_string(), "{item}");
    }
    assert_eq!(
        calls, 3,
        "service calls for one list with two per-item fields"
    );
    // The batches were sent without waiting on a timer: async-graphql's default 1 ms
    // batching delay (a timer thread of async-io's, since its tokio timer is not enabled)
    // added 1-2 ms and two thread hand-offs to every such request.
    assert_eq!(
        threads_named("async-io"),
        0,
        "a loader waited on async-io's timer thread"
    );

    // Ten aliases: each list is a call; the per-item fields stay batched and cached.
    let (body, calls) = calls_during(&g, post(&g.url, &officer, &aliased(10), vars.clone())).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["a9"]["items"].as_array().map(Vec::len),
        Some(PROPOSALS)
    );
    assert!(
        calls <= 10 + 2 * 10,
        "ten aliases made {calls} service calls (per-item calls would be {})",
        10 + 10 * 2 * PROPOSALS
    );

    // The eighty aliases never reach a service.
    let (body, calls) = calls_during(&g, post(&g.url, &officer, &aliased(80), vars.clone())).await;
    assert_eq!(error_code(&body), Some("TOO_MANY_ROOT_FIELDS"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(calls, 0);

    // Nor do too many mutations in one request.
    let mutations: Vec<String> = (0..6)
        .map(|i| format!("m{i}: createProgramme(name: \"P{i}\", fiscalYear: 2026) {{ id }}"))
        .collect();
    let (body, calls) = calls_during(
        &g,
        post(
            &g.url,
            &officer,
            &format!("mutation {{ {} }}", mutations.join(" ")),
            json!({}),
        ),
    )
    .await;
    assert_eq!(error_code(&body), Some("TOO_MANY_ROOT_MUTATIONS"), "{body}");
    assert_eq!(calls, 0);

    // A request that needs more calls than its budget is stopped with a code.
    let tight = gateway(
        &p,
        GatewayLimits {
            max_service_calls: 2,
            ..GatewayLimits::default()
        },
    )
    .await;
    let (body, calls) = calls_during(&tight, post(&tight.url, &officer, &aliased(1), vars)).await;
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["extensions"]["code"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(codes.contains(&"BUDGET_EXCEEDED"), "{body}");
    assert!(calls <= 2, "{calls} calls were made on a budget of 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_reads_keep_the_single_reads_authorization_and_cap() {
    let p = Platform::start().await;
    let call_id = open_call(&p, 24).await;
    let (a, b) = (ConsortiumId::new(), ConsortiumId::new());
    let mut ids = Vec::new();
    for c in [a, b] {
        let receipt = apply(&p, c, &call_id, "A model").await;
        ids.push(
            receipt["data"]["submitProposal"]["proposalId"]
                .as_str()
                .unwrap_or_else(|| panic!("{receipt}"))
                .to_owned(),
        );
    }
    let officer = p.ctx.bearer(Role::Officer, None);
    let lead_a = p.ctx.bearer(Role::Consortium, Some(a));
    kaip_e2e::eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($call: UUID!) { evaluationCases(callId: $call) { items { id } } }",
                json!({ "call": call_id }),
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

    let http = reqwest::Client::new();
    let get = |url: String, token: String| {
        let http = http.clone();
        async move {
            let res = http
                .get(url)
                .header("authorization", token)
                .send()
                .await
                .expect("service answers");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("JSON"))
        }
    };
    let both = ids.join(",");
    let versions = |token: &str| {
        get(
            format!("{}/proposals/versions?ids={both}", p.intake.base_url),
            token.to_owned(),
        )
    };
    let cases = |token: &str| {
        get(
            format!("{}/cases?proposal_ids={both}", p.scoring.base_url),
            token.to_owned(),
        )
    };
    let proposal_ids = |v: &Value, key: &str| -> Vec<String> {
        v.as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r[key].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    let (status, body) = versions(&officer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proposal_ids(&body, "proposal_id").len(), 2, "{body}");
    let (status, body) = versions(&lead_a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        proposal_ids(&body, "proposal_id"),
        vec![ids[0].clone()],
        "only its own"
    );
    let (status, body) = cases(&officer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        proposal_ids(&body["items"], "proposal_id").len(),
        2,
        "{body}"
    );
    let (status, body) = cases(&lead_a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        proposal_ids(&body["items"], "proposal_id"),
        vec![ids[0].clone()],
        "only its own"
    );
    // A reviewer with no assignment sees no case; no token is no read at all.
    let (_, body) = cases(&p.ctx.bearer(Role::Reviewer, None)).await;
    assert_eq!(body["items"], json!([]), "{body}");
    let (status, _) = get(
        format!("{}/proposals/versions?ids={both}", p.intake.base_url),
        String::new(),
    )
    .await;
    assert_eq!(status, 401);

    // At most 100 ids per call, each a UUID; the error names the parameter.
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let (status, body) = get(
        format!(
            "{}/proposals/versions?ids={}",
            p.intake.base_url,
            many.join(",")
        ),
        officer.clone(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains("ids"),
        "{body}"
    );
    let (status, body) = get(
        format!("{}/cases?proposal_ids={},nope", p.scoring.base_url, ids[0]),
        officer.clone(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("proposal_ids"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_officers_at_once_all_get_every_proposal_with_its_case() {
    let p = Platform::start().await;
    let call_id = seed_call(&p, PROPOSALS).await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let report = tokio::time::timeout(
        Duration::from_secs(180),
        run_load(&p.gateway_url, &officer, &call_id, 64, 5, PROPOSALS),
    )
    .await
    .expect("the load finished within 3 minutes");
    println!("64 officers x 5 requests: {}", report.summary());
    assert_eq!(
        report.failures, 0,
        "failed requests, e.g. {:?}",
        report.reasons
    );
    assert_eq!(report.latencies.len(), 64 * 5);
}

/// Sends `GET /health/live` on `conn` and returns the status line, or `None` if the
/// service closed the connection.
async fn live_on(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /health/live HTTP/1.1\r\nhost: kaip\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("the service answers or closes within 10 s")
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_keeps_an_idle_connection_longer_than_the_gateway_pools_it() {
    // The gateway drops pooled connections idle for half the services' keep-alive; a
    // service that closed them sooner (actix's default 5 s) raced the gateway's reuse and
    // failed that request with SERVICE_UNAVAILABLE.
    let ctx = kaip_testkit::TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", intake.port))
        .await
        .expect("connects");
    assert_eq!(live_on(&mut conn).await.as_deref(), Some("HTTP/1.1 200 OK"));
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        live_on(&mut conn).await.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "the connection, idle for 7 s, was closed by the service"
    );
    intake.shutdown().await;
}
