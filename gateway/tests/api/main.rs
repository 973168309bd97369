//! The gateway on its own (services unreachable): authentication, the console, the schema.

use kaip_auth::{dev, DevTokenMinter};
use kaip_contracts::Role;
use kaip_gateway::settings::{GatewayLimits, GatewayServer, GatewaySettings, ServiceUrls};
use kaip_testkit::TestContext;
use serde_json::{json, Value};

struct Gateway {
    url: String,
    stop: tokio_util::sync::CancellationToken,
}

impl Gateway {
    /// The port it listens on, for tests that speak raw HTTP over TCP.
    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn spawn(ctx: &TestContext) -> Gateway {
    spawn_with(ctx, GatewayLimits::default()).await
}

async fn spawn_with(ctx: &TestContext, limits: GatewayLimits) -> Gateway {
    // Nothing listens on port 9: every service call fails fast with SERVICE_UNAVAILABLE.
    spawn_on(ctx, limits, "http://127.0.0.1:9").await
}

async fn spawn_on(ctx: &TestContext, limits: GatewayLimits, intake: &str) -> Gateway {
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
            intake: intake.to_owned(),
            scoring: nowhere.clone(),
            gpu_ledger: nowhere.clone(),
            data_budget: nowhere.clone(),
            talent: nowhere.clone(),
            milestones: nowhere,
        },
        kafka: ctx.kafka.clone(),
        auth: dev::settings(),
        limits,
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

// ---- the body limit ----

/// A `/proc/self/status` figure in KiB (`VmHWM`: the peak resident set; `VmRSS`: now).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// POSTs a `total`-byte body to `/graphql` over a raw socket, 64 KiB at a time from one
/// reused buffer (so the client holds no copy), while reading the answer. Returns the HTTP
/// status and how many body bytes had been written when the answer arrived. (The server
/// may go on reading and discarding the rest for a while before it closes, so that the
/// client sees the answer; what matters is that it answered first and kept nothing.)
async fn post_huge(port: u16, total: usize, chunked: bool) -> (u16, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let (mut rd, mut wr) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {total}")
    };
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let progress = sent.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let block = vec![b'a'; 64 << 10];
        let mut done = 0usize;
        while done < total {
            let n = block.len().min(total - done);
            if chunked {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            wr.write_all(&block[..n]).await?;
            if chunked {
                wr.write_all(b"\r\n").await?;
            }
            done += n;
            progress.store(done, Ordering::SeqCst);
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let sent_when_answered = sent.load(Ordering::SeqCst);
    writer.abort();
    assert!(read.is_ok(), "no answer within 60 s");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, sent_when_answered)
}

/// A body within the limit that arrives in many chunks (spanning several of the gateway's
/// copy blocks, with chunk boundaries inside the JSON) is put back together byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_in_many_chunks_is_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let port = g.port();
    // 700 KiB of JSON, sent in chunks of 10,007 bytes (a prime: boundaries land anywhere).
    // Most of it is an operation name of numbered words that matches no operation: the
    // answer echoes it, so a chunk lost, repeated or out of order changes what comes back.
    let name: String = (0..70_000).map(|i| format!("w{i:07}_")).collect();
    let body =
        format!("{{\"query\": \"query A {{ __typename }}\", \"operationName\": \"{name}\"}}");
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let (mut rd, mut wr) = stream.into_split();
    let head = "POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    wr.write_all(head.as_bytes()).await.expect("head");
    for part in body.as_bytes().chunks(10_007) {
        wr.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await
            .expect("chunk size");
        wr.write_all(part).await.expect("chunk");
        wr.write_all(b"\r\n").await.expect("chunk end");
    }
    wr.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        rd.read_to_end(&mut answer),
    )
    .await
    .expect("an answer within 30 s")
    .expect("reads");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(300)]
    );
    let json = &text[text.find("\r\n\r\n").expect("head ends") + 4..];
    let answer: Value = serde_json::from_str(json).expect("a JSON answer");
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("\"{name}\"")),
        "the operation name came back altered: {}",
        &message[..message.len().min(300)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_body_gets_413_without_being_read_whole() {
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let port = g.port();
    // Warm up the request path so that its one-off allocations are in the baseline.
    let _ = me(&g, None).await;
    let (status, _) = post_huge(port, 1 << 20, true).await;
    assert_ne!(status, 413, "a 1 MiB body is within the limit");
    let before = proc_status_kib("VmHWM:");
    const TOTAL: usize = 50 << 20;
    for chunked in [false, true] {
        let (status, sent) = post_huge(port, TOTAL, chunked).await;
        assert_eq!(status, 413, "chunked = {chunked}");
        assert!(
            sent < TOTAL / 2,
            "chunked = {chunked}: the server answered only after {sent} of {TOTAL} bytes"
        );
    }
    let growth_mib = (proc_status_kib("VmHWM:").saturating_sub(before)) / 1024;
    assert!(
        growth_mib < 16,
        "peak memory grew by {growth_mib} MiB while refusing two 50 MiB bodies"
    );
    // The refusal is coded, for an anonymous client as for any other.
    let res = reqwest::Client::new()
        .post(format!("{}/graphql", g.url))
        .header("content-length", (9usize << 20).to_string())
        .body(vec![b' '; 9 << 20])
        .send()
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
        let body: Value = res.json().await.expect("json");
        assert_eq!(code(&body), "PAYLOAD_TOO_LARGE", "{body}");
    }
}

// ---- subscriptions ----

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(g: &Gateway) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/graphql", g.url.replace("http://", "ws://"))
        .into_client_request()
        .expect("ws request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("ws connects")
        .0
}

async fn ws_send(ws: &mut Ws, v: Value) {
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .expect("ws send");
}

/// The next text message as JSON, or the close frame as `{"type":"close","code","reason"}`.
async fn ws_next(ws: &mut Ws, within: std::time::Duration) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).expect("json"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((0, String::new()));
                return json!({ "type": "close", "code": code, "reason": reason });
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return json!({ "type": "gone", "detail": format!("{other:?}") }),
            Err(_) => return json!({ "type": "silence" }),
        }
    }
}

async fn ws_init(ws: &mut Ws, token: &str) {
    ws_send(
        ws,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    let ack = ws_next(ws, std::time::Duration::from_secs(10)).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
}

fn subscribe(id: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { events { id type } }" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_initialises_is_closed_with_4408() {
    let ctx = TestContext::new();
    let g = spawn_with(
        &ctx,
        GatewayLimits {
            ws_init_timeout_ms: 300,
            ..GatewayLimits::default()
        },
    )
    .await;
    let mut ws = ws_connect(&g).await;
    let msg = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
    assert_eq!(msg["type"], "close", "{msg}");
    assert_eq!(msg["code"], 4408, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_per_socket_are_capped_with_a_code() {
    let ctx = TestContext::new();
    let g = spawn_with(
        &ctx,
        GatewayLimits {
            ws_max_subscriptions: 2,
            ..GatewayLimits::default()
        },
    )
    .await;
    let mut ws = ws_connect(&g).await;
    ws_init(&mut ws, &ctx.token(Role::Officer, None)).await;
    for id in ["1", "2", "3"] {
        ws_send(&mut ws, subscribe(id)).await;
    }
    let refusal = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["id"], "3", "{refusal}");
    assert_eq!(
        refusal["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{refusal}"
    );
    // The connection and its two subscriptions carry on; completing one frees a place.
    ws_send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    ws_send(&mut ws, subscribe("4")).await;
    ws_send(&mut ws, json!({ "type": "ping" })).await;
    loop {
        let msg = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
        match msg["type"].as_str() {
            Some("complete") => assert_eq!(msg["id"], "1", "{msg}"),
            Some("pong") => break,
            _ => panic!("expected id 1 completed and id 4 accepted, got {msg}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_with_a_coded_close_when_its_token_expires() {
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let token = DevTokenMinter::new(&dev::settings(), dev::SECRET)
        .expect("minter")
        .mint("short-lived", Role::Officer, None, 2);
    let mut ws = ws_connect(&g).await;
    ws_init(&mut ws, &token).await;
    ws_send(&mut ws, subscribe("1")).await;
    let error = ws_next(&mut ws, std::time::Duration::from_secs(15)).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "1", "{error}");
    assert_eq!(
        error["payload"][0]["extensions"]["code"], "TOKEN_EXPIRED",
        "{error}"
    );
    let close = ws_next(&mut ws, std::time::Duration::from_secs(5)).await;
    assert_eq!(close["type"], "close", "{close}");
    assert_eq!(close["code"], 4401, "{close}");
    assert_eq!(close["reason"], "TOKEN_EXPIRED", "{close}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_mutations_over_the_socket_are_refused_with_a_code() {
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let mut ws = ws_connect(&g).await;
    ws_init(&mut ws, &ctx.token(Role::Officer, None)).await;
    // Over the socket these would run without the request's call budget, deadline and
    // loaders: they belong on POST /graphql.
    let refused = [
        ("q", json!({ "query": "{ me { subject role } }" })),
        (
            "m",
            json!({ "query": "mutation { submitProposal(proposalId: \"00000000-0000-0000-0000-000000000001\", idempotencyKey: \"k\") { id } }" }),
        ),
        (
            "named",
            json!({
                "query": "subscription S { events { id } } query Q { me { subject } }",
                "operationName": "Q"
            }),
        ),
    ];
    for (id, payload) in &refused {
        ws_send(
            &mut ws,
            json!({ "id": id, "type": "subscribe", "payload": payload }),
        )
        .await;
        let msg = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
        assert_eq!(msg["type"], "error", "{id}: {msg}");
        assert_eq!(msg["id"], *id, "{msg}");
        assert_eq!(
            msg["payload"][0]["extensions"]["code"], "SUBSCRIPTIONS_ONLY",
            "{msg}"
        );
    }
    // A document that does not parse is refused too, with the client's-input code.
    ws_send(
        &mut ws,
        json!({ "id": "bad", "type": "subscribe", "payload": { "query": "subscription {" } }),
    )
    .await;
    let msg = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(
        msg["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{msg}"
    );
    // Subscriptions, also selected by name from a mixed document, carry on.
    ws_send(&mut ws, subscribe("s1")).await;
    ws_send(
        &mut ws,
        json!({ "id": "s2", "type": "subscribe", "payload": {
            "query": "query Q { me { subject } } subscription S { events { id } }",
            "operationName": "S"
        } }),
    )
    .await;
    ws_send(&mut ws, json!({ "type": "ping" })).await;
    let msg = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
    assert_eq!(
        msg["type"], "pong",
        "the subscriptions were accepted: {msg}"
    );
    // The subscription is active: completing it is answered.
    ws_send(&mut ws, json!({ "id": "s1", "type": "complete" })).await;
    let msg = ws_next(&mut ws, std::time::Duration::from_secs(10)).await;
    assert_eq!(msg["type"], "complete", "{msg}");
    assert_eq!(msg["id"], "s1", "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_messages_is_closed_with_4429_not_left_hanging() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let mut ws = ws_connect(&g).await;
    // connection_init and 40 more messages at once: async-graphql takes none of them in
    // while it handles the init, and each ping it takes stops it until its pong is out.
    let init = json!({
        "type": "connection_init",
        "payload": { "Authorization": ctx.bearer(Role::Officer, None) }
    });
    ws.feed(Message::text(init.to_string()))
        .await
        .expect("feed");
    for _ in 0..40 {
        ws.feed(Message::text(json!({ "type": "ping" }).to_string()))
            .await
            .expect("feed");
    }
    ws.flush().await.expect("flush");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = ws_next(&mut ws, left).await;
        match msg["type"].as_str() {
            Some("connection_ack" | "pong") => continue,
            _ => {
                assert_eq!(msg["type"], "close", "{msg}");
                assert_eq!(msg["code"], 4429, "{msg}");
                assert_eq!(msg["reason"], "too many messages", "{msg}");
                break;
            }
        }
    }
}

/// A raw WebSocket client frame (masked with a zero key, which leaves the payload as is).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_its_socket_forever() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctx = TestContext::new();
    let g = spawn(&ctx).await;
    let port = g.port();
    // A small receive buffer, so that the server's answers back up soon.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connects");
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(
        b"GET /graphql HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
    )
    .await
    .expect("upgrade sent");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        rd.read_exact(&mut byte).await.expect("upgrade answer");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let init = json!({
        "type": "connection_init",
        "payload": { "Authorization": ctx.bearer(Role::Officer, None) }
    });
    wr.write_all(&ws_frame(0x1, init.to_string().as_bytes()))
        .await
        .expect("init sent");
    // Pings, each answered with a pong that this client does not read, until the server
    // stops taking them in (its answers have filled the buffers between us).
    let ping = ws_frame(0x9, &[b'p'; 125]);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 256)
        .collect();
    let mut sent = 0usize;
    let stalled_at = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(2), wr.write_all(&batch)).await {
            Ok(Ok(())) => sent += batch.len(),
            Ok(Err(e)) => panic!("write failed after {sent} bytes: {e}"),
            Err(_) => break tokio::time::Instant::now(),
        }
        assert!(sent < 512 << 20, "the server never stopped taking pings in");
    };
    // Past the server's send timeout (5 s) and its bounded close (5 s more).
    tokio::time::sleep_until(stalled_at + std::time::Duration::from_secs(11)).await;
    // Now read: what the server had queued, then the end of the connection, rather than a
    // socket that carries on (before, its task waited on the send for as long as the
    // client did not read, and then went on as if nothing had happened).
    let mut buf = vec![0u8; 64 << 10];
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server still holds the socket of a client that stopped reading (sent {sent} bytes)"
    );
}

// ---- the request deadline ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_stopped_with_timeout() {
    let ctx = TestContext::new();
    // A service that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let g = spawn_on(
        &ctx,
        GatewayLimits {
            request_timeout_ms: 300,
            ..GatewayLimits::default()
        },
        &silent_url,
    )
    .await;
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
    // Not SERVICE_UNAVAILABLE: the request's own deadline (300 ms) came before the
    // upstream call's (2 s).
    assert_eq!(code(&body), "TIMEOUT", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctx = TestContext::new();
    let g = spawn_with(
        &ctx,
        GatewayLimits {
            request_timeout_ms: 300,
            ..GatewayLimits::default()
        },
    )
    .await;
    let port = g.port();
    // Declares a body within the limit and sends none of it, keeping the socket open.
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    socket
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Content-Length: 1000000\r\n\r\n",
        )
        .await
        .expect("head sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer (nor close) within 10 s: {text:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    let body: Value = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_else(|| panic!("a JSON body in {text:?}"));
    assert_eq!(code(&body), "REQUEST_TIMEOUT", "{body}");
}
