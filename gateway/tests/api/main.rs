//! The gateway on its own (services unreachable): authentication, the console, the schema.

use kaip_auth::{dev, DevTokenMinter};
use kaip_contracts::Role;
use kaip_gateway::settings::{GatewayServer, GatewaySettings, ServiceUrls};
use kaip_testkit::TestContext;
use serde_json::{json, Value};

struct Gateway {
    url: String,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn spawn(ctx: &TestContext) -> Gateway {
    // Nothing listens on port 9: every service call fails fast with SERVICE_UNAVAILABLE.
    let nowhere = "http://127.0.0.1:9".to_string();
    let settings = GatewaySettings {
        server: GatewayServer {
            host: "127.0.0.1".into(),
            port: 0,
            workers: 1,
            shutdown_timeout_secs: 1,
            upstream_timeout_ms: 2000,
        },
        services: ServiceUrls {
            intake: nowhere.clone(),
            scoring: nowhere.clone(),
            gpu_ledger: nowhere.clone(),
            data_budget: nowhere.clone(),
            talent: nowhere.clone(),
            milestones: nowhere,
        },
        kafka: ctx.kafka.clone(),
        auth: dev::settings(),
    };
    let app = kaip_gateway::Application::build(settings)
        .await
        .expect("gateway starts");
    let gateway = Gateway {
        url: format!("http://127.0.0.1:{}", app.port()),
        stop: app.shutdown_token(),
    };
    tokio::spawn(app.run_until_stopped());
    gateway
}

async fn me(g: &Gateway, authorization: Option<&str>) -> Value {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", g.url))
        .json(&json!({ "query": "{ me { subject role } }" }));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send()
        .await
        .expect("gateway answers")
        .json()
        .await
        .expect("json")
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

fn b64url(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_each_with_its_code() {
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let minter = |f: &dyn Fn(&mut kaip_auth::AuthSettings)| {
        let mut s = dev::settings();
        f(&mut s);
        DevTokenMinter::new(&s, dev::SECRET).expect("minter")
    };

    let good = me(&g, Some(&ctx.bearer(Role::Officer, None))).await;
    assert_eq!(good["data"]["me"]["role"], "officer", "{good}");

    assert_eq!(code(&me(&g, None).await), "UNAUTHENTICATED");
    let expired = DevTokenMinter::new(&dev::settings(), dev::SECRET)
        .expect("minter")
        .mint("u", Role::Officer, None, -300);
    assert_eq!(
        code(&me(&g, Some(&format!("Bearer {expired}"))).await),
        "TOKEN_EXPIRED"
    );
    let other_issuer = minter(&|s| s.issuer = "https://elsewhere.example".into()).mint(
        "u",
        Role::Officer,
        None,
        60,
    );
    assert_eq!(
        code(&me(&g, Some(&format!("Bearer {other_issuer}"))).await),
        "TOKEN_INVALID_ISSUER"
    );
    let other_audience =
        minter(&|s| s.audience = "another-platform".into()).mint("u", Role::Officer, None, 60);
    assert_eq!(
        code(&me(&g, Some(&format!("Bearer {other_audience}"))).await),
        "TOKEN_INVALID_AUDIENCE"
    );
    let other_key =
        DevTokenMinter::new(&dev::settings(), "a-different-key-of-sufficient-length-000")
            .expect("minter")
            .mint("u", Role::Officer, None, 60);
    assert_eq!(
        code(&me(&g, Some(&format!("Bearer {other_key}"))).await),
        "TOKEN_INVALID_SIGNATURE"
    );
    let claims = DevTokenMinter::new(&dev::settings(), dev::SECRET)
        .expect("minter")
        .claims("u", Role::Admin, None, 60);
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(serde_json::to_string(&claims).expect("json").as_bytes())
    );
    assert_eq!(
        code(&me(&g, Some(&format!("Bearer {unsigned}"))).await),
        "TOKEN_ALGORITHM_NOT_ALLOWED"
    );
    assert_eq!(
        code(&me(&g, Some("Bearer not-a-jwt")).await),
        "TOKEN_MALFORMED"
    );

    // A service that cannot be reached is reported as such, with a code.
    let body: Value = reqwest::Client::new()
        .post(format!("{}/graphql", g.url))
        .header("authorization", ctx.bearer(Role::Officer, None))
        .json(&json!({ "query": "{ calls { items { id } } }" }))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(code(&body), "SERVICE_UNAVAILABLE", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_by_the_gateway_with_no_external_assets() {
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/", g.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    let html = res.text().await.expect("html");
    assert!(html.contains("K-AIP"), "the console page");
    for asset in ["/console/console.js", "/console/console.css"] {
        assert!(html.contains(asset), "the page loads {asset}");
        let res = http
            .get(format!("{}{asset}", g.url))
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), 200, "{asset} is served");
        let body = res.text().await.expect("text");
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{asset} loads nothing from elsewhere"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page references no other host"
    );
    // Schema introspection, which the console's browser uses, works without a token.
    let body: Value = http
        .post(format!("{}/graphql", g.url))
        .json(&json!({ "query": "{ __schema { queryType { name } } }" }))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "QueryRoot");

    // The event contracts are published beside the GraphQL schema.
    let doc: Value = http
        .get(format!("{}/events/asyncapi.json", g.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["intake"]["address"], "kaip.intake.events");
    assert!(
        doc["components"]["messages"]["ProposalSubmitted.v1"]["payload"]["properties"]["data"]
            .is_object()
    );
    let res = http
        .get(format!(
            "{}/events/schemas/EvaluationCaseOpened.v1.json",
            g.url
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), 200);
    let res = http
        .get(format!("{}/events/schemas/Nope.v9.json", g.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), 404);
    let sdl = http
        .get(format!("{}/schema.graphql", g.url))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        sdl.contains("submitProposal(proposalId: UUID!, idempotencyKey: String!): Receipt!"),
        "{sdl}"
    );
}

#[test]
fn the_published_schema_matches_the_checked_in_snapshot() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let current = kaip_gateway::schema::sdl();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &current).expect("write snapshot");
    }
    let snapshot = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        snapshot == current,
        "the GraphQL schema changed: review the difference and run `make snapshots` to accept it"
    );
}

fn chromium() -> String {
    if let Ok(path) = std::env::var("KAIP_CHROMIUM") {
        return path;
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "this test drives a real browser: apt-get install chromium (or set KAIP_CHROMIUM)"
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser_without_the_internet() {
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let url = format!("{}/", g.url);
    let profile = std::env::temp_dir().join(format!("kaip-chromium-{}", ctx.id));
    let dom = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&url)
            .output()
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("browser task");
    // The schema browser is filled by the console's script from an introspection query: if
    // the script or the page depended on anything off this gateway, these would be missing.
    assert!(
        dom.contains("openCall(input: OpenCallInput!): Call!"),
        "schema not rendered:\n{dom}"
    );
    assert!(
        dom.contains("events(types: [String!], aggregateId: UUID): Event!"),
        "subscriptions listed"
    );
    assert!(dom.contains("not signed in"), "the token state is shown");
    // The examples come from /console/examples.json (also checked by graphql-js).
    assert!(
        dom.contains("4. Draft a proposal (consortium)</option>"),
        "examples listed"
    );
}
