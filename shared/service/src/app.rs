//! The one way a K-AIP service starts and stops.
//!
//! `Application::build` does everything that can fail at start (configuration, database,
//! migrations, topics, Kafka clients, binding the port) so a misconfigured service dies
//! immediately with a precise message. `run_until_stopped` serves until SIGINT/SIGTERM or
//! [`StopHandle::stop`], then shuts down in order: the HTTP server drains in-flight
//! requests, the consumer finishes the message in hand and commits, the relay publishes
//! what those requests committed and the producer flushes.

use crate::caller::Caller;
use crate::db;
use crate::error::CommonError;
use crate::settings::Settings;
use actix_web::dev::{Server, Service as _};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use diesel_migrations::EmbeddedMigrations;
use kaip_auth::TokenVerifier;
use kaip_bus::{ConsumerSpec, ConsumerStatus, EventConsumer, EventHandler, Outbox, PgPool, Relay};
use kaip_contracts::dto::{OutboxReadiness, Readiness};
use kaip_contracts::{topics, Role};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long shutdown waits for the consumer to finish its message, commit and leave.
const CONSUMER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a service keeps an idle HTTP connection open. Its only caller is the gateway,
/// which keeps its connections to the services for less than this (half of it): a pooled
/// connection that the service closes just as the gateway reuses it fails that request
/// with `SERVICE_UNAVAILABLE`. With actix's default of 5 s, a gateway idle for 5 s met
/// exactly that race (seen in `make bench` when its one-officer phase outlasted 5 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// Largest JSON body a service accepts (documents travel base64-encoded inside).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// What makes one service different from another.
pub struct ServiceDefinition {
    /// Short name: `intake`, `scoring`, ... It names the topic, the group and the DLQ.
    pub name: &'static str,
    pub migrations: EmbeddedMigrations,
    /// The service's own routes.
    pub routes: fn(&mut web::ServiceConfig),
    /// Topics consumed (unprefixed) and the reaction to them.
    pub consumes: Vec<&'static str>,
    pub handler: Option<Arc<dyn EventHandler>>,
    /// The service's own background work (a scheduled sweep, say), started with the server
    /// and stopped before the relay's last pass, so the events it commits leave with it.
    /// Several replicas run it at once: each task must be safe for that.
    pub background: Vec<BackgroundTask>,
}

/// A background task: given the service's state (pool and outbox), runs until the token is
/// cancelled.
pub type BackgroundTask = Arc<
    dyn Fn(AppState, CancellationToken) -> futures::future::BoxFuture<'static, ()> + Send + Sync,
>;

impl ServiceDefinition {
    /// A service whose domain is not built yet: it owns and migrates its database, creates
    /// its topics, joins its consumer group and records what it consumes in its inbox
    /// ([`kaip_bus::RecordOnly`]), so offsets, idempotency and dead-lettering are live from
    /// the first day. Its own routes arrive with its domain.
    pub fn recording(
        name: &'static str,
        migrations: EmbeddedMigrations,
        consumes: Vec<&'static str>,
    ) -> Self {
        Self {
            name,
            migrations,
            routes: |_| {},
            consumes,
            handler: Some(Arc::new(kaip_bus::RecordOnly)),
            background: Vec::new(),
        }
    }
}

impl ServiceDefinition {
    /// The topics (unprefixed) the service creates at start if missing: its events, its
    /// audit trail's export, and if
    /// it consumes, its dead-letter topic and what it consumes. Each is in
    /// `infra/topics.yaml`, which configures them.
    pub fn topics_created(&self) -> Vec<String> {
        let mut topics = vec![
            topics::events_topic_of(self.name),
            topics::audit_topic_of(self.name),
        ];
        if self.handler.is_some() {
            topics.push(topics::dead_letter_topic_of(self.name));
            topics.extend(self.consumes.iter().map(|t| t.to_string()));
        }
        topics
    }
}

/// Shared with every request handler as `web::Data<AppState>`.
#[derive(Clone)]
pub struct AppState {
    pub service: &'static str,
    pub pool: PgPool,
    pub outbox: Outbox,
}

impl AppState {
    /// Runs blocking database work off the async workers.
    ///
    /// The audit trail's context (actor, trace, operation, input: see [`crate::audit`]) is
    /// on the connection for the duration of `f`, so whatever `f` writes to an audited table
    /// is recorded with it (a read that writes included), and a pooled connection never
    /// carries it into another request: the next check-out replaces or clears it.
    pub async fn db<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut diesel::PgConnection, &Outbox) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<CommonError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let outbox = self.outbox.clone();
        let span = tracing::Span::current();
        let (audit, mutating) = crate::audit::context_for_db(self.service);
        web::block(move || {
            let _entered = span.enter();
            // The context goes onto the connection with the check-out's liveness test (one
            // round trip); the next check-out replaces or clears it.
            let mut conn = kaip_bus::checkout(&pool, audit.as_ref())
                .map_err(|e| E::from(CommonError::from(e)))?;
            let result = f(&mut conn, &outbox);
            if result.is_ok() && mutating {
                // Anything audited left an `AuditRecorded` export in the outbox (written by
                // the database): publish it now rather than at the relay's next poll.
                outbox.wake_handle().notify_one();
            }
            result
        })
        .await
        .map_err(|e| E::from(CommonError::from(e)))?
    }
}

struct Health {
    pool: PgPool,
    /// The broker's state as the background check last saw it.
    broker: Arc<BrokerWatch>,
    /// The outbox's backlog as the background task last counted it.
    outbox: Arc<OutboxWatch>,
    consumer: Option<ConsumerStatus>,
    /// Why the service's topics are not created yet (the broker was away at start).
    topics: Arc<TopicWatch>,
}

/// Whether the service's topics are known to exist: `Some(why not)` while the broker that
/// was away at start has not answered the creation yet.
#[derive(Default)]
struct TopicWatch {
    pending: std::sync::Mutex<Option<String>>,
}

impl TopicWatch {
    fn get(&self) -> Option<String> {
        self.pending.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn set(&self, why: Option<String>) {
        if let Ok(mut g) = self.pending.lock() {
            *g = why;
        }
    }

    /// Creates the topics once the broker answers, backing off up to 30 s, until `stop`,
    /// then opens `ready`. A refusal (not an absence: the cluster answered "no") is logged
    /// as an error, shown in readiness and `/metrics`, and tried again at the longest
    /// interval: it needs an operator, and the service keeps serving meanwhile.
    async fn run(
        self: Arc<Self>,
        kafka: kaip_bus::KafkaSettings,
        topics: Vec<String>,
        ready: tokio::sync::watch::Sender<bool>,
        stop: CancellationToken,
    ) {
        const LONGEST: Duration = Duration::from_secs(30);
        let mut delay = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                r = kaip_bus::kafka::ensure_topics(&kafka, &topics) => r,
            };
            match attempt {
                Ok(()) => {
                    tracing::info!("the broker answered: topics created");
                    self.set(None);
                    let _ = ready.send(true);
                    return;
                }
                Err(e) if e.is_unavailable() => {
                    self.set(Some(e.to_string()));
                    delay = (delay * 2).min(LONGEST);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the service's topics cannot be created");
                    self.set(Some(e.to_string()));
                    delay = LONGEST;
                }
            }
        }
    }
}

/// How often the background task counts the outbox's backlog. Probes and scrapes read the
/// cached count: counting pending rows per probe would put a query proportional to the
/// backlog on the database exactly when it is under pressure.
const OUTBOX_STATS_INTERVAL: Duration = Duration::from_secs(2);
/// How long a probe waits for a database connection before calling the database down.
const PROBE_DB_TIMEOUT: Duration = Duration::from_secs(1);

/// The last outbox count: `None` before the first (or after a failed one).
#[derive(Default)]
struct OutboxWatch {
    last: std::sync::Mutex<Option<kaip_bus::outbox::OutboxStats>>,
}

impl OutboxWatch {
    fn get(&self) -> Option<kaip_bus::outbox::OutboxStats> {
        self.last.lock().map(|g| *g).unwrap_or(None)
    }

    /// Counts until `stop`.
    async fn run(
        self: Arc<Self>,
        pool: PgPool,
        stuck_after_attempts: i32,
        stop: CancellationToken,
    ) {
        loop {
            let p = pool.clone();
            let stats = tokio::task::spawn_blocking(move || {
                let mut conn = p.get().map_err(|e| e.to_string())?;
                kaip_bus::outbox::outbox_stats(&mut conn, stuck_after_attempts)
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("outbox stats task: {e}")));
            if let Err(e) = &stats {
                tracing::warn!(error = %e, "outbox stats unavailable");
            }
            if let Ok(mut g) = self.last.lock() {
                *g = stats.ok();
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(OUTBOX_STATS_INTERVAL) => {}
            }
        }
    }
}

/// The probes' database check: a connection within [`PROBE_DB_TIMEOUT`] and `SELECT 1`.
async fn database_check(pool: PgPool) -> Result<(), String> {
    web::block(move || -> Result<(), String> {
        let mut conn = pool
            .get_timeout(PROBE_DB_TIMEOUT)
            .map_err(|e| e.to_string())?;
        diesel::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), &mut conn)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
}

/// How often the background check asks the broker for the service's own topic's metadata.
/// Probes read the cached answer: a probe never waits on the broker, and a fleet of probes
/// does not turn into a metadata storm.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(3);
const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A broker check's result and when it was made.
type BrokerCheck = (Result<(), String>, chrono::DateTime<chrono::Utc>);

/// The last broker check: `None` before the first.
#[derive(Default)]
struct BrokerWatch {
    last: std::sync::Mutex<Option<BrokerCheck>>,
}

impl BrokerWatch {
    fn get(&self) -> Option<BrokerCheck> {
        self.last.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn set(&self, result: Result<(), String>) {
        if let Ok(mut g) = self.last.lock() {
            *g = Some((result, chrono::Utc::now()));
        }
    }

    /// Checks until `stop`: one topic's metadata (the service's own), from the producer's
    /// client, so no connection is opened per check.
    async fn run(
        self: Arc<Self>,
        producer: rdkafka::producer::FutureProducer,
        topic: String,
        stop: CancellationToken,
    ) {
        loop {
            let producer = producer.clone();
            let topic = topic.clone();
            let result = tokio::task::spawn_blocking(move || {
                use rdkafka::producer::Producer;
                let metadata = producer
                    .client()
                    .fetch_metadata(Some(&topic), BROKER_CHECK_TIMEOUT)
                    .map_err(|e| e.to_string())?;
                match metadata.topics().first().and_then(|t| t.error()) {
                    Some(e) => Err(format!("topic {topic}: {:?}", e)),
                    None => Ok(()),
                }
            })
            .await
            .unwrap_or_else(|e| Err(format!("broker check task: {e}")));
            if let Err(e) = &result {
                tracing::warn!(error = %e, "broker unavailable; the outbox buffers events meanwhile");
            }
            self.set(result);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(BROKER_CHECK_INTERVAL) => {}
            }
        }
    }
}

/// A built, not yet running, service.
pub struct Application {
    name: &'static str,
    port: u16,
    server: Server,
    relay: Relay,
    broker: Arc<BrokerWatch>,
    outbox_watch: Arc<OutboxWatch>,
    stuck_after_attempts: i32,
    producer: rdkafka::producer::FutureProducer,
    own_topic: String,
    consumer: Option<EventConsumer>,
    shutdown: CancellationToken,
    status: Option<ConsumerStatus>,
    pool: PgPool,
    state: AppState,
    background: Vec<BackgroundTask>,
    topic_watch: Arc<TopicWatch>,
    /// The topics still to create (and with which settings) when the broker was away.
    pending_topics: Option<(kaip_bus::KafkaSettings, Vec<String>)>,
}

/// Stops a running [`Application`] from elsewhere (tests, an embedding process).
#[derive(Clone)]
pub struct StopHandle {
    token: CancellationToken,
}

impl StopHandle {
    pub fn stop(&self) {
        self.token.cancel();
    }
}

impl Application {
    pub async fn build(def: ServiceDefinition, settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let verifier = TokenVerifier::new(&settings.auth)?;

        let created = def.topics_created();
        let db_settings = settings.database.clone();
        let migrations = def.migrations;
        let kafka = settings.kafka.clone();
        let own_topic = topics::events_topic_of(def.name);
        // Where the database exports this service's audit trail (the prefixed topic), set by
        // the migrating role, which also leaves the login role read-only on the trail.
        let (service, audit_topic) = (def.name, kafka.prefixed(&topics::audit_topic_of(def.name)));
        let pool = tokio::task::spawn_blocking(move || {
            db::prepare(&db_settings, migrations, |conn| {
                kaip_bus::audit::configure(conn, service, &audit_topic)?;
                kaip_bus::audit::lockdown(conn)
            })
        })
        .await?
        .context("preparing the database")?;
        let needed: Vec<String> = created.iter().map(|t| kafka.prefixed(t)).collect();
        // A broker that is away at start is an outage like any later one: the service
        // serves, its outbox buffers, and the topics are created when the broker answers
        // (a replica restarted during an outage would otherwise crash-loop). A refusal
        // (a bad topics file, no right to create a missing topic) still stops the start.
        let topic_watch = Arc::new(TopicWatch::default());
        let pending_topics = match kaip_bus::kafka::ensure_topics(&kafka, &needed).await {
            Ok(()) => None,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    error = %e,
                    brokers = %kafka.brokers,
                    "the broker is away at start; serving, buffering events in the outbox, \
                     and creating the topics when it answers"
                );
                topic_watch.set(Some(e.to_string()));
                Some((kafka.clone(), needed))
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("creating topics on kafka.brokers = {}", kafka.brokers)
                })
            }
        };
        let producer = kaip_bus::kafka::producer(&kafka).context("creating the Kafka producer")?;

        let outbox = Outbox::new(def.name, kafka.prefixed(&own_topic));
        let relay = Relay::new(
            pool.clone(),
            producer.clone(),
            outbox.wake_handle(),
            settings.outbox.clone(),
        );
        let replayer = def.handler.as_ref().map(|handler| {
            kaip_bus::dlq::DlqReplayer::new(
                &kafka,
                def.name,
                pool.clone(),
                outbox.clone(),
                handler.clone(),
            )
        });
        let consumer = match def.handler {
            Some(handler) => Some(
                EventConsumer::new(
                    &kafka,
                    ConsumerSpec {
                        service: def.name.to_owned(),
                        topics: def.consumes.iter().map(|t| t.to_string()).collect(),
                        handler,
                    },
                    pool.clone(),
                    outbox.clone(),
                    producer.clone(),
                )
                .context("creating the Kafka consumer")?,
            ),
            None => None,
        };
        let status = consumer.as_ref().map(EventConsumer::status);

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();

        let plain_state = AppState {
            service: def.name,
            pool: pool.clone(),
            outbox,
        };
        let state = web::Data::new(plain_state.clone());
        let broker = Arc::new(BrokerWatch::default());
        let outbox_watch = Arc::new(OutboxWatch::default());
        let health = web::Data::new(Health {
            pool: pool.clone(),
            broker: broker.clone(),
            outbox: outbox_watch.clone(),
            consumer: status.clone(),
            topics: topic_watch.clone(),
        });
        let verifier = web::Data::new(verifier);
        let replayer = web::Data::new(replayer);
        let routes = def.routes;
        let server = HttpServer::new(move || {
            App::new()
                // Inside the tracing span below: the audit scope of the request.
                .wrap_fn(|req, srv| crate::audit::scoped(req, |req| srv.call(req)))
                .wrap_fn(|req, srv| {
                    let span = tracing::info_span!(
                        "http.request",
                        otel.kind = "server",
                        http.method = %req.method(),
                        http.target = %req.path(),
                        http.status = tracing::field::Empty,
                    );
                    let carrier: HashMap<String, String> = ["traceparent", "tracestate"]
                        .iter()
                        .filter_map(|k| {
                            let v = req.headers().get(*k)?.to_str().ok()?;
                            Some((k.to_string(), v.to_owned()))
                        })
                        .collect();
                    kaip_telemetry::set_parent_from_headers(&span, &carrier);
                    let fut = srv.call(req);
                    let record = span.clone();
                    async move {
                        let res = fut.await;
                        if let Ok(r) = &res {
                            record.record("http.status", r.status().as_u16());
                        }
                        res
                    }
                    .instrument(span)
                })
                .app_data(state.clone())
                .app_data(health.clone())
                .app_data(verifier.clone())
                .app_data(replayer.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_BODY_BYTES)
                        .error_handler(|err, _| {
                            let message = format!("request body: {err}");
                            actix_web::error::InternalError::from_response(
                                err,
                                crate::error::error_response(
                                    actix_web::http::StatusCode::BAD_REQUEST,
                                    "INVALID_BODY",
                                    message,
                                ),
                            )
                            .into()
                        }),
                )
                .route("/health/live", web::get().to(live))
                .route("/health/ready", web::get().to(ready))
                .route("/metrics", web::get().to(metrics))
                .route("/admin/outbox", web::get().to(outbox_status))
                .route("/admin/outbox/republish", web::post().to(outbox_republish))
                .route("/admin/dlq/replay", web::post().to(dlq_replay))
                .route("/audit", web::get().to(crate::audit::list))
                .configure(routes)
        })
        .keep_alive(KEEP_ALIVE)
        .listen(listener)?
        .workers(settings.server.workers)
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .disable_signals()
        .run();

        tracing::info!(service = def.name, port, "service built");
        Ok(Self {
            name: def.name,
            port,
            server,
            relay,
            broker,
            outbox_watch,
            stuck_after_attempts: settings.outbox.stuck_after_attempts,
            producer,
            own_topic: kafka.prefixed(&own_topic),
            consumer,
            shutdown: CancellationToken::new(),
            status,
            pool,
            state: plain_state,
            background: def.background,
            topic_watch,
            pending_topics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    pub fn consumer_status(&self) -> Option<ConsumerStatus> {
        self.status.clone()
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            token: self.shutdown.clone(),
        }
    }

    /// Serves until a signal or [`StopHandle::stop`], then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            name,
            server,
            relay,
            consumer,
            shutdown,
            broker,
            outbox_watch,
            stuck_after_attempts,
            producer,
            own_topic,
            pool,
            state,
            background,
            topic_watch,
            pending_topics,
            ..
        } = self;
        let server_handle = server.handle();
        let mut server_task = tokio::spawn(server);
        // The bus tasks get their own tokens so that the HTTP server drains first, then the
        // consumer, then the relay (which publishes what both committed).
        let consumer_stop = CancellationToken::new();
        let relay_stop = CancellationToken::new();
        // Until the topics exist (the broker was away at start), nothing asks the broker
        // about them: a producer's request for an unknown topic makes a broker with
        // auto-creation create it with its own defaults (one partition, a week's retention).
        // The relay and the broker check wait; the outbox buffers meanwhile.
        let (topics_ready, topics_ready_rx) = tokio::sync::watch::channel(pending_topics.is_none());
        let after_topics = |stop: CancellationToken| {
            let mut ready = topics_ready_rx.clone();
            async move {
                tokio::select! {
                    r = ready.wait_for(|ready| *ready) => r.is_ok(),
                    _ = stop.cancelled() => false,
                }
            }
        };
        let relay_task: JoinHandle<()> = tokio::spawn({
            let (stop, ready) = (relay_stop.clone(), after_topics(relay_stop.clone()));
            async move {
                if ready.await {
                    relay.run(stop).await;
                }
            }
        });
        let consumer_task: Option<JoinHandle<()>> =
            consumer.map(|c| tokio::spawn(c.run(consumer_stop.clone())));
        let background_tasks: Vec<JoinHandle<()>> = background
            .iter()
            .map(|task| tokio::spawn(task(state.clone(), consumer_stop.clone())))
            .collect();
        if pending_topics.is_some() {
            broker.set(Err(
                "the broker was away at start; its topics are not created yet".into(),
            ));
        }
        let broker_task = tokio::spawn({
            let (stop, ready) = (relay_stop.clone(), after_topics(relay_stop.clone()));
            async move {
                if ready.await {
                    broker.run(producer, own_topic, stop).await;
                }
            }
        });
        let topics_task = pending_topics.map(|(kafka, topics)| {
            tokio::spawn(topic_watch.run(kafka, topics, topics_ready, relay_stop.clone()))
        });
        let outbox_task =
            tokio::spawn(outbox_watch.run(pool, stuck_after_attempts, relay_stop.clone()));

        let server_result = tokio::select! {
            _ = shutdown_signal() => { tracing::info!(service = name, "signal received; shutting down"); None }
            _ = shutdown.cancelled() => None,
            r = &mut server_task => Some(r),
        };
        if server_result.is_none() {
            server_handle.stop(true).await;
            let _ = server_task.await;
        }
        // The consumer finishes the message in hand and commits it (with any events its
        // handler emitted) before the relay's final pass, so those events leave with us.
        consumer_stop.cancel();
        if let Some(task) = consumer_task {
            // The consumer finishes its message, commits and leaves its group; with the
            // broker away the commit alone may wait for librdkafka's request timeout. Bound
            // it: what was not committed is redelivered, and the inbox makes that harmless.
            if tokio::time::timeout(CONSUMER_STOP_TIMEOUT, task)
                .await
                .is_err()
            {
                tracing::warn!(
                    service = name,
                    "the consumer did not stop in time; its last offsets may be redelivered"
                );
            }
        }
        for task in background_tasks {
            if tokio::time::timeout(CONSUMER_STOP_TIMEOUT, task)
                .await
                .is_err()
            {
                tracing::warn!(service = name, "a background task did not stop in time");
            }
        }
        relay_stop.cancel();
        let _ = relay_task.await;
        let _ = broker_task.await;
        if let Some(task) = topics_task {
            // It stops at once: its waits and its creation attempt both watch the token.
            let _ = tokio::time::timeout(CONSUMER_STOP_TIMEOUT, task).await;
        }
        let _ = outbox_task.await;
        tracing::info!(service = name, "stopped");
        match server_result {
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "live" }))
}

/// Readiness: unready only when the database is unreachable (a `SELECT 1` within a second).
/// The broker's state and the outbox's backlog are the background tasks' cached values.
/// Anonymous callers (probes) get labels and numbers; an admin's token also gets the
/// underlying errors.
async fn ready(health: web::Data<Health>, caller: Option<Caller>) -> HttpResponse {
    let database = database_check(health.pool.clone()).await;
    let stats = health.outbox.get();
    let broker = health.broker.get();
    let mut details = std::collections::BTreeMap::new();
    if let Err(e) = &database {
        details.insert("database".to_owned(), e.clone());
    }
    if let Some((Err(e), _)) = &broker {
        details.insert("broker".to_owned(), e.clone());
    }
    if let Some(why) = health.topics.get() {
        details.insert("topics".to_owned(), why);
    }
    let is_admin = caller.is_some_and(|c| c.0.has_any_role(&[Role::Admin]));
    let body = Readiness {
        ready: database.is_ok(),
        database: if database.is_ok() {
            "ok"
        } else {
            "unavailable"
        }
        .to_owned(),
        broker: match &broker {
            None => "unknown",
            Some((Ok(()), _)) => "ok",
            Some((Err(_), _)) => "unavailable",
        }
        .to_owned(),
        broker_checked_at: broker.as_ref().map(|(_, at)| *at),
        assigned_partitions: health
            .consumer
            .as_ref()
            .map_or(0, ConsumerStatus::assigned_partitions),
        consumer: health.consumer.as_ref().map(consumer_readiness),
        outbox: stats.map(|s| OutboxReadiness {
            pending: s.pending,
            oldest_pending_age_secs: s.oldest_pending_age_secs,
            failing: s.failing,
            stuck: s.stuck,
        }),
        details: is_admin.then_some(details),
    };
    if body.ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The consumer's outage, paused partitions and lag, for the readiness body.
fn consumer_readiness(status: &ConsumerStatus) -> kaip_contracts::dto::ConsumerReadiness {
    let outage = status.outage();
    kaip_contracts::dto::ConsumerReadiness {
        outage: outage.map(|o| o.kind.as_str().to_owned()),
        outage_since: outage.map(|o| o.since),
        paused_partitions: status.paused_partitions(),
        lag: status.lag(),
    }
}

/// `GET /metrics`: the backbone's state in the Prometheus text format. Numbers only, so
/// it is open like the probes.
async fn metrics(health: web::Data<Health>) -> HttpResponse {
    let database_up = database_check(health.pool.clone()).await.is_ok();
    let stats = health.outbox.get();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: i64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    };
    gauge(
        "kaip_database_up",
        "1 if the service's database answered this scrape.",
        i64::from(database_up),
    );
    let broker_up = matches!(health.broker.get(), Some((Ok(()), _)));
    gauge(
        "kaip_broker_up",
        "1 if the last background broker check succeeded.",
        i64::from(broker_up),
    );
    gauge(
        "kaip_topics_ready",
        "0 while the service's topics wait for a broker that was away at start.",
        i64::from(health.topics.get().is_none()),
    );
    // The background task's last count (absent before the first, or when it failed).
    if let Some(s) = stats {
        gauge(
            "kaip_outbox_pending",
            "Outbox events not yet acknowledged by the broker.",
            s.pending,
        );
        gauge(
            "kaip_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox event.",
            s.oldest_pending_age_secs,
        );
        gauge(
            "kaip_outbox_failing",
            "Pending outbox events whose last publication failed.",
            s.failing,
        );
        gauge(
            "kaip_outbox_stuck",
            "Pending outbox events that failed outbox.stuck_after_attempts times or more in a row.",
            s.stuck,
        );
    }
    if let Some(c) = &health.consumer {
        gauge(
            "kaip_consumer_assigned_partitions",
            "Partitions the service's consumer holds.",
            c.assigned_partitions() as i64,
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

async fn outbox_status(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, CommonError> {
    caller.require(&[Role::Admin], "inspect the outbox")?;
    let pending = state
        .db(|c, _| kaip_bus::outbox::pending_count(c).map_err(CommonError::from))
        .await?;
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({ "service": state.service, "pending": pending })),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Republish {
    since: chrono::DateTime<chrono::Utc>,
}

/// Re-queues events published since `since` (after a broker lost data). Admin only.
async fn outbox_republish(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<Republish>,
) -> Result<HttpResponse, CommonError> {
    caller.require(&[Role::Admin], "republish events")?;
    let since = body.since;
    let requeued = state
        .db(move |c, outbox| {
            let n = kaip_bus::outbox::republish_since(c, since).map_err(CommonError::from)?;
            if n > 0 {
                outbox.wake_handle().notify_one();
            }
            Ok::<_, CommonError>(n)
        })
        .await?;
    tracing::warn!(requeued, %since, actor = %caller.0.sub, "outbox events re-queued for publication");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "requeued": requeued })))
}

/// Moves dead letters back into processing through the service's own handler (or lists
/// them with `dry_run`). Admin only. See [`kaip_bus::dlq`].
async fn dlq_replay(
    caller: Caller,
    replayer: web::Data<Option<kaip_bus::dlq::DlqReplayer>>,
    body: web::Json<kaip_bus::dlq::ReplayRequest>,
) -> Result<HttpResponse, CommonError> {
    use kaip_bus::dlq::ReplayError;
    caller.require(&[Role::Admin], "replay dead letters")?;
    let Some(replayer) = replayer.as_ref() else {
        return Err(CommonError::validation(
            "service",
            "consumes no events, so it has no dead-letter topic",
        ));
    };
    let report = replayer.replay(&body).await.map_err(|e| match e {
        ReplayError::Invalid { field, rule } => CommonError::validation(field, rule),
        e @ ReplayError::Broker(_) => CommonError::internal(e),
    })?;
    let replayed: Vec<String> = report
        .items
        .iter()
        .map(|i| match i.event_id {
            Some(id) => format!("{id}:{}", i.result),
            None => format!("dlq-offset-{}:{}", i.dlq_offset, i.result),
        })
        .collect();
    tracing::warn!(
        actor = %caller.0.sub,
        dry_run = report.dry_run,
        matched = report.matched,
        ?replayed,
        "dead letters replayed"
    );
    Ok(HttpResponse::Ok().json(report))
}
