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
pub mod schema;
pub mod settings;

use actix_web::dev::Server;
use actix_web::{guard, web, App, HttpRequest, HttpResponse, HttpServer, Responder};
use anyhow::Context as _;
use async_graphql_actix_web::{GraphQLRequest, GraphQLResponse, GraphQLSubscription};
use kaip_auth::TokenVerifier;
use schema::{Authed, GatewaySchema, RequestAuth};
use settings::GatewaySettings;
use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A built, not yet running, gateway.
pub struct Application {
    port: u16,
    server: Server,
    shutdown: CancellationToken,
    feed_stop: CancellationToken,
}

impl Application {
    pub async fn build(settings: GatewaySettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let verifier = TokenVerifier::new(&settings.auth)?;
        let services = clients::Services::new(
            &settings.services,
            Duration::from_millis(settings.server.upstream_timeout_ms),
        )?;
        // The feed needs the topics to exist; creating them is idempotent, and lets the
        // gateway start before the services do.
        let topics: Vec<String> = kaip_contracts::topics::ALL_EVENT_TOPICS
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
        let feed = kaip_bus::start_feed(
            &settings.kafka,
            &kaip_contracts::topics::ALL_EVENT_TOPICS,
            feed_stop.clone(),
        )
        .await
        .context("starting the event feed")?;
        let schema = web::Data::new(schema::build(services.clone(), feed));
        let verifier = web::Data::new(verifier);
        let services = web::Data::new(services);
        let readiness = web::Data::new(ReadinessCache::default());

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(schema.clone())
                .app_data(verifier.clone())
                .app_data(services.clone())
                .app_data(readiness.clone())
                // GraphQL bodies carry base64 documents: as large as the services accept.
                .app_data(web::PayloadConfig::new(kaip_service::app::MAX_BODY_BYTES))
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
        })
    }

    pub fn port(&self) -> u16 {
        self.port
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

fn authenticate(verifier: &TokenVerifier, header: Option<&str>) -> RequestAuth {
    RequestAuth(verifier.verify_header(header).map(|claims| {
        let token = header
            .and_then(|h| h.trim().split_once(' ').map(|(_, t)| t.trim().to_owned()))
            .unwrap_or_default();
        Authed { claims, token }
    }))
}

async fn graphql(
    schema: web::Data<GatewaySchema>,
    verifier: web::Data<TokenVerifier>,
    req: HttpRequest,
    gql: GraphQLRequest,
) -> impl Responder {
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
    let auth = authenticate(&verifier, header);
    let mut request = gql.into_inner();
    if let Some(op) = &request.operation_name {
        span.record("operation", op.as_str());
    }
    request = request.data(auth);
    let trace_id = kaip_telemetry::trace_id_of(&span);
    let mut response = schema.execute(request).instrument(span).await;
    with_default_codes(&mut response.errors);
    let mut out = GraphQLResponse::from(response).customize();
    if let Some(trace_id) = trace_id {
        out = out.insert_header(("x-trace-id", trace_id));
    }
    out
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
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let verifier = verifier.get_ref().clone();
    GraphQLSubscription::new(schema.get_ref().clone())
        .on_connection_init(move |value| {
            let verifier = verifier.clone();
            async move {
                let header = connection_token(&value);
                match authenticate(&verifier, header.as_deref()) {
                    RequestAuth(Ok(authed)) => {
                        let mut data = async_graphql::Data::default();
                        data.insert(RequestAuth(Ok(authed)));
                        Ok(data)
                    }
                    RequestAuth(Err(e)) => Err(schema::auth_error(&e)),
                }
            }
        })
        .start(&req, payload)
}

/// The token of a WebSocket connection: `{"Authorization": "Bearer ..."}` (either case),
/// or `{"token": "..."}`.
fn connection_token(payload: &serde_json::Value) -> Option<String> {
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
