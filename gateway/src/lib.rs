//! The K-AIP gateway: the one door for people and API clients.
//!
//! * `POST /graphql`: queries and mutations, authenticated by a bearer JWT that is verified
//!   here and forwarded to the services, which verify it again;
//! * `GET /graphql` (WebSocket, `graphql-transport-ws`): subscriptions fed from Kafka, the
//!   token given in the `connection_init` payload;
//! * `GET /`: the GraphQL console, self-contained (no CDN: ministry networks are often cut
//!   off from the internet);
//! * `GET /schema.graphql`, `GET /events/asyncapi.json`, `GET /events/schemas/<file>`: the
//!   published contracts;
//! * `GET /health/live`, `GET /health/ready`.

pub mod clients;
pub mod console;
pub mod limits;
pub mod loaders;
pub mod schema;
pub mod settings;
pub mod ws;

use actix_web::dev::Server;
use actix_web::{guard, web, App, HttpRequest, HttpResponse, HttpServer, Responder};
use anyhow::Context as _;
use async_graphql_actix_web::GraphQLResponse;
use futures::StreamExt;
use kaip_auth::TokenVerifier;
use schema::{Authed, GatewaySchema, RequestAuth};
use settings::{GatewayLimits, GatewaySettings};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A built, not yet running, gateway.
pub struct Application {
    port: u16,
    server: Server,
    shutdown: CancellationToken,
    feed_stop: CancellationToken,
    services: clients::Services,
}

impl Application {
    pub async fn build(settings: GatewaySettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let verifier = TokenVerifier::new(&settings.auth)?;
        let services = clients::Services::with_limits(
            &settings.services,
            Duration::from_millis(settings.server.upstream_timeout_ms),
            settings.limits.max_in_flight_per_service,
        )?;
        // The feed needs the topics to exist; creating them is idempotent, and lets the
        // gateway start before the services do.
        // The audit topics too: integrators with `events:audit` may subscribe to the trail.
        let feed_topics: Vec<&str> = kaip_contracts::topics::ALL_EVENT_TOPICS
            .iter()
            .chain(kaip_contracts::topics::ALL_AUDIT_TOPICS.iter())
            .copied()
            .collect();
        let topics: Vec<String> = feed_topics
            .iter()
            .map(|t| settings.kafka.prefixed(t))
            .collect();
        kaip_bus::kafka::ensure_topics(&settings.kafka, &topics)
            .await
            .with_context(|| {
                format!(
                    "creating topics on kafka.brokers = {}",
                    settings.kafka.brokers
                )
            })?;
        let feed_stop = CancellationToken::new();
        let feed = kaip_bus::start_feed(&settings.kafka, &feed_topics, feed_stop.clone())
            .await
            .context("starting the event feed")?;
        let schema = web::Data::new(schema::build(services.clone(), feed, &settings.limits));
        let verifier = web::Data::new(verifier);
        let all_services = services.clone();
        // One connection pool per HTTP worker (see `Services::with_own_connections`); the
        // factory below runs once per worker and takes the next one.
        let timeout = Duration::from_millis(settings.server.upstream_timeout_ms);
        let per_worker: Vec<web::Data<clients::Services>> = (0..settings.server.workers)
            .map(|_| {
                services
                    .with_own_connections(timeout, settings.limits.max_in_flight_per_service)
                    .map(web::Data::new)
            })
            .collect::<anyhow::Result<_>>()?;
        let next_worker = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let limits = web::Data::new(settings.limits.clone());
        let readiness = web::Data::new(ReadinessCache::default());

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            let i = next_worker.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let services = per_worker[i % per_worker.len()].clone();
            App::new()
                .app_data(schema.clone())
                .app_data(verifier.clone())
                .app_data(services)
                .app_data(limits.clone())
                .app_data(readiness.clone())
                .service(
                    web::resource("/graphql")
                        .route(web::post().to(graphql))
                        .route(
                            web::get()
                                .guard(guard::Header("upgrade", "websocket"))
                                .to(graphql_ws),
                        )
                        .route(web::get().to(console::index)),
                )
                .route("/", web::get().to(console::index))
                .route("/console/{file}", web::get().to(console::asset))
                .route("/schema.graphql", web::get().to(sdl))
                .route("/events/asyncapi.json", web::get().to(asyncapi))
                .route("/events/schemas/{file}", web::get().to(event_schema))
                .route("/health/live", web::get().to(live))
                .route("/health/ready", web::get().to(ready))
        })
        .listen(listener)?
        .workers(settings.server.workers)
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .disable_signals()
        .run();
        Ok(Self {
            port,
            server,
            shutdown: CancellationToken::new(),
            feed_stop,
            services: all_services,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The gateway's service clients (their call counter shows a query's fan-out).
    pub fn services(&self) -> clients::Services {
        self.services.clone()
    }

    /// Cancelling this token stops the gateway gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let result = tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            _ = terminate() => None,
            _ = self.shutdown.cancelled() => None,
            r = &mut server => Some(r),
        };
        if result.is_none() {
            handle.stop(true).await;
            let _ = server.await;
        }
        self.feed_stop.cancel();
        match result {
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

async fn terminate() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await
}

fn trace_carrier(req: &HttpRequest) -> HashMap<String, String> {
    ["traceparent", "tracestate"]
        .iter()
        .filter_map(|k| {
            Some((
                k.to_string(),
                req.headers().get(*k)?.to_str().ok()?.to_owned(),
            ))
        })
        .collect()
}

pub(crate) async fn authenticate(verifier: &TokenVerifier, header: Option<&str>) -> RequestAuth {
    RequestAuth(verifier.authenticate(header).await.map(|claims| {
        let token = header
            .and_then(|h| h.trim().split_once(' ').map(|(_, t)| t.trim().to_owned()))
            .unwrap_or_default();
        Authed { claims, token }
    }))
}

/// A GraphQL error response outside the schema's execution (body refused, timeout).
fn error_response(
    status: actix_web::http::StatusCode,
    code: &str,
    message: String,
) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

fn too_large(limit: usize) -> HttpResponse {
    let mut res = error_response(
        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("the request body is larger than {limit} bytes (limits.max_body_bytes)"),
    );
    // The rest of the body is never read: the connection cannot be reused.
    res.head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    res
}

/// Reads a request body of at most `limit` bytes within `deadline`. A `Content-Length` over
/// the limit is refused before a byte is read; a chunked (or lying) body is refused as soon
/// as the bytes received pass the limit, so memory never holds more than `limit` of it. A
/// body that has not fully arrived by the deadline (a client that declares a length and
/// sends nothing, or drips it) gets 408 `REQUEST_TIMEOUT`, so it cannot hold the connection.
async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    deadline: Duration,
) -> Result<web::Bytes, HttpResponse> {
    let declared = match req.headers().get(actix_web::http::header::CONTENT_LENGTH) {
        Some(v) => match v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return Err(error_response(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "INVALID_BODY",
                    "Content-Length is not a number".into(),
                ))
            }
        },
        None => None,
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    // What the client declares is not reserved up front (a client could declare the limit
    // and send nothing): memory grows with the bytes that arrive.
    match tokio::time::timeout(deadline, read_body(payload, limit)).await {
        Ok(read) => read,
        Err(_) => {
            let mut res = error_response(
                actix_web::http::StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!(
                    "the request body did not arrive within {} ms (limits.request_timeout_ms)",
                    deadline.as_millis()
                ),
            );
            // The rest of the body may still come: the connection cannot be reused.
            res.head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
            Err(res)
        }
    }
}

/// Reads the body into blocks of at most [`BODY_BLOCK`] bytes, joined once at the end, so
/// memory holds at most `limit` of it and a block while it arrives: a body refused at the
/// limit was never copied twice. Not a buffer that doubles as bytes arrive, which holds the old and the new copy
/// at each step (with mimalloc, whose freed large buffers stay committed for a moment,
/// refusing one 50 MiB body that way raised the process's peak by more than 20 MiB), and
/// not the chunks themselves, which pin the connection's read buffers. A body of one
/// chunk, the usual GraphQL request, is not copied at all.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, HttpResponse> {
    let mut body = BodyBlocks::default();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error_response(
                actix_web::http::StatusCode::BAD_REQUEST,
                "INVALID_BODY",
                format!("reading the request body: {e}"),
            )
        })?;
        if body.len + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.push(chunk);
    }
    Ok(body.finish())
}

/// The largest block a multi-chunk body is copied into.
const BODY_BLOCK: usize = 256 << 10;

/// A body as it arrives: its first chunk kept as it is, or, from the second on, copied into
/// blocks of 16 KiB doubling up to [`BODY_BLOCK`] (never reallocated).
#[derive(Default)]
struct BodyBlocks {
    first: Option<web::Bytes>,
    blocks: Vec<Vec<u8>>,
    len: usize,
}

impl BodyBlocks {
    fn push(&mut self, chunk: web::Bytes) {
        self.len += chunk.len();
        if self.first.is_none() && self.blocks.is_empty() {
            self.first = Some(chunk);
            return;
        }
        if let Some(first) = self.first.take() {
            self.append(&first);
        }
        self.append(&chunk);
    }

    fn append(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.blocks.last().is_none_or(|b| b.len() == b.capacity()) {
                // 16 KiB, then doubling up to BODY_BLOCK: a small body in two chunks (or a
                // client that sends two bytes and stalls) does not hold a whole block.
                let size = self
                    .blocks
                    .last()
                    .map_or(16 << 10, |b| (b.capacity() * 2).min(BODY_BLOCK));
                self.blocks.push(Vec::with_capacity(size));
            }
            let Some(block) = self.blocks.last_mut() else {
                return;
            };
            let n = (block.capacity() - block.len()).min(data.len());
            block.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
    }

    /// The body in one buffer. Each block is freed as soon as it is copied, so an accepted
    /// body needs its size and one block, not twice its size.
    fn finish(mut self) -> web::Bytes {
        if let Some(only) = self.first {
            return only;
        }
        if self.blocks.len() == 1 {
            return web::Bytes::from(self.blocks.pop().unwrap_or_default());
        }
        let mut body = web::BytesMut::with_capacity(self.len);
        for block in self.blocks {
            body.extend_from_slice(&block);
        }
        body.freeze()
    }
}

async fn graphql(
    schema: web::Data<GatewaySchema>,
    verifier: web::Data<TokenVerifier>,
    services: web::Data<clients::Services>,
    limits: web::Data<GatewayLimits>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let deadline = Duration::from_millis(limits.request_timeout_ms);
    let body = match read_limited(&req, payload, limits.max_body_bytes, deadline).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                actix_web::http::StatusCode::BAD_REQUEST,
                "INVALID_BODY",
                format!("the body must be a GraphQL request in JSON: {e}"),
            )
        }
    };
    drop(body);
    let span = tracing::info_span!(
        "graphql.request",
        otel.kind = "server",
        operation = tracing::field::Empty
    );
    kaip_telemetry::set_parent_from_headers(&span, &trace_carrier(&req));
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let auth = authenticate(&verifier, header).await;
    if let Some(op) = &request.operation_name {
        span.record("operation", op.as_str());
    }
    // Every service call of this request draws on one budget, and per-item fields are
    // batched by loaders that carry the caller's token and live only for this request.
    let budget = Arc::new(clients::CallBudget::new(limits.max_service_calls));
    let per_request = services.for_request(budget);
    let token = match &auth.0 {
        Ok(authed) => authed.token.clone(),
        Err(_) => String::new(),
    };
    request = request
        .data(loaders::Loaders::new(per_request.clone(), token))
        .data(per_request)
        .data(auth);
    let trace_id = kaip_telemetry::trace_id_of(&span);
    let mut response =
        match tokio::time::timeout(deadline, schema.execute(request).instrument(span)).await {
            Ok(response) => response,
            Err(_) => {
                let mut error = async_graphql::ServerError::new(
                    format!(
                        "the request took longer than {} ms (limits.request_timeout_ms) and was \
                         stopped; a mutation in it may or may not have been applied",
                        limits.request_timeout_ms
                    ),
                    None,
                );
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "TIMEOUT");
                async_graphql::Response::from_errors(vec![error])
            }
        };
    with_default_codes(&mut response.errors);
    let mut out = GraphQLResponse::from(response).customize();
    if let Some(trace_id) = trace_id {
        out = out.insert_header(("x-trace-id", trace_id));
    }
    out.respond_to(&req).map_into_boxed_body()
}

/// Every error carries `extensions.code`. Errors raised by resolvers already have one
/// (from the service or the auth check); those raised by async-graphql itself while parsing
/// and validating the operation (a malformed UUID, an unknown field) are the client's input.
fn with_default_codes(errors: &mut [async_graphql::ServerError]) {
    for error in errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", "BAD_USER_INPUT");
        }
    }
}

async fn graphql_ws(
    schema: web::Data<GatewaySchema>,
    verifier: web::Data<TokenVerifier>,
    limits: web::Data<GatewayLimits>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    ws::start(
        schema.get_ref().clone(),
        verifier.get_ref().clone(),
        limits.get_ref().clone(),
        &req,
        payload,
    )
}

/// The token of a WebSocket connection: `{"Authorization": "Bearer ..."}` (either case),
/// or `{"token": "..."}`.
pub(crate) fn connection_token(payload: &serde_json::Value) -> Option<String> {
    let obj = payload.as_object()?;
    if let Some(v) = obj
        .get("Authorization")
        .or_else(|| obj.get("authorization"))
        .and_then(|v| v.as_str())
    {
        return Some(v.to_owned());
    }
    obj.get("token")
        .and_then(|v| v.as_str())
        .map(|t| format!("Bearer {t}"))
}

async fn sdl() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(schema::sdl())
}

/// The AsyncAPI document of every event topic, for integrators.
async fn asyncapi() -> HttpResponse {
    HttpResponse::Ok().json(kaip_contracts::catalogue::asyncapi())
}

/// One event's JSON Schema, e.g. `/events/schemas/ProposalSubmitted.v1.json`.
async fn event_schema(file: web::Path<String>) -> HttpResponse {
    match kaip_contracts::catalogue::events()
        .into_iter()
        .find(|s| s.file_name() == *file)
    {
        Some(spec) => HttpResponse::Ok()
            .content_type("application/schema+json")
            .json(spec.schema()),
        None => HttpResponse::NotFound().json(kaip_contracts::ErrorBody::new(
            "EVENT_SCHEMA_NOT_FOUND",
            format!("no published event schema named `{file}`; see /events/asyncapi.json"),
        )),
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "live" }))
}

/// How long the gateway reuses its services' readiness answers, so that probes (which
/// anyone may send) do not fan out to every service on each request.
const READINESS_CACHE: Duration = Duration::from_millis(1500);

/// Each service's readiness answer (or why it gave none).
type ServiceChecks = Vec<(&'static str, Result<kaip_contracts::dto::Readiness, String>)>;

/// The last fan-out and when it was made. The lock is held during a fan-out, so concurrent
/// probes wait for that one instead of starting their own.
#[derive(Default)]
struct ReadinessCache {
    last: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<ServiceChecks>)>>,
}

impl ReadinessCache {
    async fn get(&self, services: &clients::Services) -> std::sync::Arc<ServiceChecks> {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = &*last {
            if at.elapsed() < READINESS_CACHE {
                return checks.clone();
            }
        }
        let checks = std::sync::Arc::new(
            futures::future::join_all(
                services
                    .all
                    .iter()
                    .map(|c| async move { (c.name(), c.readiness().await) }),
            )
            .await,
        );
        *last = Some((std::time::Instant::now(), checks.clone()));
        checks
    }
}

/// Ready when every service reports ready; the body says which is not. Anonymous probes
/// get `ready` and each service's labels only (no counts, no timestamps, no errors); an
/// admin's token gets each service's full answer and why a service is unreachable
/// (addresses and transport errors are internals). Answers are reused for
/// [`READINESS_CACHE`].
async fn ready(
    services: web::Data<clients::Services>,
    cache: web::Data<ReadinessCache>,
    verifier: web::Data<TokenVerifier>,
    req: HttpRequest,
) -> HttpResponse {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let is_admin = verifier
        .verify_header(header)
        .is_ok_and(|c| c.has_any_role(&[kaip_contracts::Role::Admin]));
    let checks = cache.get(&services).await;
    let mut all_ready = true;
    let mut report = serde_json::Map::new();
    for (name, result) in checks.iter() {
        let value = match result {
            Ok(r) => {
                all_ready &= r.ready;
                if is_admin {
                    serde_json::to_value(r).unwrap_or_default()
                } else {
                    serde_json::json!({
                        "ready": r.ready,
                        "database": r.database,
                        "broker": r.broker,
                    })
                }
            }
            Err(e) if is_admin => {
                all_ready = false;
                serde_json::json!({ "ready": false, "status": "unreachable", "error": e })
            }
            Err(_) => {
                all_ready = false;
                serde_json::json!({ "ready": false, "status": "unreachable" })
            }
        };
        report.insert((*name).to_owned(), value);
    }
    let body = serde_json::json!({ "ready": all_ready, "services": report });
    if all_ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::{BodyBlocks, BODY_BLOCK};
    use actix_web::web::Bytes;

    /// Any chunking of a body, across block boundaries or not, comes back byte for byte.
    #[test]
    fn body_blocks_put_any_chunking_back_together() {
        let body: Vec<u8> = (0..(2 * BODY_BLOCK + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for size in [
            1,
            7,
            4096,
            10_007,
            BODY_BLOCK - 1,
            BODY_BLOCK,
            BODY_BLOCK + 1,
            body.len(),
        ] {
            let mut blocks = BodyBlocks::default();
            for chunk in body.chunks(size) {
                blocks.push(Bytes::copy_from_slice(chunk));
            }
            assert_eq!(blocks.len, body.len(), "chunks of {size}");
            assert_eq!(blocks.finish().as_ref(), &body[..], "chunks of {size}");
        }
        // A small body in two chunks: one block, handed over without a copy.
        let mut small = BodyBlocks::default();
        small.push(Bytes::from_static(b"{\"query\":"));
        small.push(Bytes::from_static(b"\"{ a }\"}"));
        assert_eq!(small.blocks.len(), 1);
        assert_eq!(small.blocks[0].capacity(), 16 << 10);
        assert_eq!(small.finish().as_ref(), b"{\"query\":\"{ a }\"}");
        assert!(BodyBlocks::default().finish().is_empty());
    }
}
