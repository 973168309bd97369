//! What every K-AIP integration test needs, against the real PostgreSQL and the real
//! Kafka-protocol broker:
//!
//! * a [`TestContext`] with its own topic prefix, consumer groups and database names, so
//!   tests run in parallel on one broker and one server without seeing each other;
//! * services started in-process on port 0 ([`TestContext::spawn`]), whose databases are
//!   dropped when the test ends;
//! * tokens for every role, and raw Kafka access for injecting and inspecting messages.
//!
//! The broker is `KAIP_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`); `make test` starts
//! one when none is configured. PostgreSQL is `KAIP_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432`).

pub mod fixtures;
pub mod idp;
pub mod intake;
pub mod proxy;

use anyhow::Context as _;
use diesel::{Connection, PgConnection};
use kaip_auth::{dev, DevTokenMinter};
use kaip_bus::{KafkaSettings, OutboxSettings, PgPool};
use kaip_contracts::{ConsortiumId, Role};
use kaip_service::settings::{DatabaseSettings, ServerSettings};
use kaip_service::{Application, Defaults, ServiceDefinition, Settings, StopHandle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use secrecy::SecretString;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub fn broker() -> String {
    std::env::var("KAIP_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn database_url() -> String {
    std::env::var("KAIP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// One test's slice of the shared infrastructure.
pub struct TestContext {
    /// Short and unique: prefixes topics and groups, and names databases.
    pub id: String,
    pub kafka: KafkaSettings,
    databases: Mutex<Vec<String>>,
    minter: DevTokenMinter,
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    pub fn new() -> Self {
        kaip_telemetry::init_for_tests();
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut kafka = KafkaSettings::local(&broker(), &format!("{id}."));
        kafka.retry_backoff_ms = 50;
        kafka.max_attempts = 3;
        let minter = DevTokenMinter::new(&dev::settings(), dev::SECRET)
            .unwrap_or_else(|e| panic!("dev auth settings are valid: {e}"));
        Self {
            id,
            kafka,
            databases: Mutex::new(Vec::new()),
            minter,
        }
    }

    /// The settings a service gets in this test: port 0, its own database, this test's prefix.
    pub fn settings(&self, defaults: Defaults) -> Settings {
        let name = format!(
            "kaip_{}_{}",
            self.id,
            defaults.database.trim_start_matches("kaip_")
        );
        Settings {
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 0,
                workers: 1,
                shutdown_timeout_secs: 5,
            },
            database: DatabaseSettings {
                url: SecretString::from(database_url()),
                name,
                create_if_missing: true,
                pool_size: 4,
                migration_url: None,
            },
            kafka: self.kafka.clone(),
            outbox: OutboxSettings::default(),
            auth: dev::settings(),
        }
    }

    /// Builds and starts a service in-process; its database is dropped with the context.
    pub async fn spawn(&self, def: ServiceDefinition, defaults: Defaults) -> TestService {
        let settings = self.settings(defaults);
        self.spawn_with(def, settings).await
    }

    /// As [`spawn`](Self::spawn), with adjusted settings.
    pub async fn spawn_with(&self, def: ServiceDefinition, settings: Settings) -> TestService {
        let db = settings.database.name.clone();
        self.track_database(&db);
        let name = def.name;
        let app = Application::build(def, settings)
            .await
            .unwrap_or_else(|e| panic!("{name} failed to start: {e:#}"));
        let port = app.port();
        let pool = app.pool();
        let consumer = app.consumer_status();
        let stop = app.stop_handle();
        let task = tokio::spawn(async move { app.run_until_stopped().await });
        let service = TestService {
            name,
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            pool,
            database: db,
            stop,
            task: Some(task),
            consumer,
        };
        service.wait_ready().await;
        service
    }

    /// Remembers a database to drop when the test ends.
    pub fn track_database(&self, name: &str) {
        if let Ok(mut dbs) = self.databases.lock() {
            if !dbs.iter().any(|d| d == name) {
                dbs.push(name.to_owned());
            }
        }
    }

    /// A valid bearer token for `role`.
    pub fn token(&self, role: Role, consortium: Option<ConsortiumId>) -> String {
        self.minter
            .mint(&format!("test-{role}"), role, consortium, 3600)
    }

    /// A valid bearer header for a named subject (e.g. a reviewer registered by that id).
    pub fn bearer_for(
        &self,
        subject: &str,
        role: Role,
        consortium: Option<ConsortiumId>,
    ) -> String {
        format!(
            "Bearer {}",
            self.minter.mint(subject, role, consortium, 3600)
        )
    }

    /// `Authorization` header value for `role`.
    pub fn bearer(&self, role: Role, consortium: Option<ConsortiumId>) -> String {
        format!("Bearer {}", self.token(role, consortium))
    }

    /// `Authorization` header value for an `integration` token holding `scopes`.
    pub fn integration_bearer(&self, subject: &str, scopes: &[&str]) -> String {
        format!(
            "Bearer {}",
            self.minter.mint_integration(subject, scopes, 3600)
        )
    }

    /// The development minter this context's tokens come from.
    pub fn minter(&self) -> &DevTokenMinter {
        &self.minter
    }

    /// `Authorization` values that must be refused, each with the code the refusal must
    /// carry: no token, a forged signature, expired, not yet valid, another audience,
    /// another issuer, `alg: none`. Each would otherwise be a valid token for `role`.
    pub fn bad_bearers(&self, role: Role) -> Vec<(&'static str, Option<String>)> {
        let minter_with = |f: &dyn Fn(&mut kaip_auth::AuthSettings), key: &str| {
            let mut s = dev::settings();
            f(&mut s);
            DevTokenMinter::new(&s, key).unwrap_or_else(|e| panic!("minter: {e}"))
        };
        let now = chrono::Utc::now().timestamp();
        let subject = format!("test-{role}");
        let forged = minter_with(&|_| {}, "a-forger-s-own-secret-of-sufficient-length")
            .mint(&subject, role, None, 3600);
        let expired = self.minter.mint(&subject, role, None, -600);
        let mut early = self.minter.claims(&subject, role, None, 3600);
        early.nbf = Some(now + 600);
        let early = self.minter.sign(&early);
        let audience = minter_with(&|s| s.audience = "another-platform".into(), dev::SECRET)
            .mint(&subject, role, None, 3600);
        let issuer = minter_with(
            &|s| s.issuer = "https://idp.elsewhere.example".into(),
            dev::SECRET,
        )
        .mint(&subject, role, None, 3600);
        let b64 = |v: &serde_json::Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let claims = serde_json::to_value(self.minter.claims(&subject, role, None, 3600))
            .unwrap_or_default();
        let unsigned = format!(
            "{}.{}.",
            b64(&serde_json::json!({ "alg": "none", "typ": "JWT" })),
            b64(&claims)
        );
        vec![
            ("UNAUTHENTICATED", None),
            ("TOKEN_INVALID_SIGNATURE", Some(forged)),
            ("TOKEN_EXPIRED", Some(expired)),
            ("TOKEN_NOT_YET_VALID", Some(early)),
            ("TOKEN_INVALID_AUDIENCE", Some(audience)),
            ("TOKEN_INVALID_ISSUER", Some(issuer)),
            ("TOKEN_ALGORITHM_NOT_ALLOWED", Some(unsigned)),
        ]
        .into_iter()
        .map(|(code, t)| (code, t.map(|t| format!("Bearer {t}"))))
        .collect()
    }

    /// A topic name with this test's prefix.
    pub fn topic(&self, name: &str) -> String {
        self.kafka.prefixed(name)
    }

    /// A producer for injecting raw messages (malformed events, duplicates).
    pub fn raw_producer(&self) -> FutureProducer {
        kaip_bus::kafka::producer(&self.kafka).unwrap_or_else(|e| panic!("producer: {e}"))
    }

    /// Sends raw bytes to a (prefixed) topic and waits for the acknowledgement.
    pub async fn produce_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) {
        let producer = self.raw_producer();
        let mut hdrs = OwnedHeaders::new();
        for (k, v) in headers {
            hdrs = hdrs.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        producer
            .send(
                FutureRecord::to(topic)
                    .key(key)
                    .payload(payload)
                    .headers(hdrs),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
    }

    /// Every message currently in a (prefixed) topic, read from the beginning.
    pub async fn read_topic(&self, topic: &str) -> Vec<RawMessage> {
        let topic = topic.to_owned();
        let brokers = self.kafka.brokers.clone();
        tokio::task::spawn_blocking(move || read_all(&brokers, &topic))
            .await
            .unwrap_or_else(|e| panic!("reading topic: {e}"))
            .unwrap_or_else(|e| panic!("reading topic: {e:#}"))
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        let dbs = self.databases.lock().map(|d| d.clone()).unwrap_or_default();
        if dbs.is_empty() {
            return;
        }
        // Dropping a database is best effort: a leftover one is harmless and unique.
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) = PgConnection::establish(&format!("{}/postgres", database_url()))
            {
                for db in dbs {
                    let _ = diesel::RunQueryDsl::execute(
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")),
                        &mut admin,
                    );
                }
            }
        })
        .join();
    }
}

/// A service running in-process for a test.
pub struct TestService {
    pub name: &'static str,
    pub base_url: String,
    pub port: u16,
    pub pool: PgPool,
    pub database: String,
    stop: StopHandle,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    consumer: Option<kaip_bus::ConsumerStatus>,
}

impl TestService {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = self.url("/health/ready");
        eventually(Duration::from_secs(30), || async {
            let res = client.get(&url).send().await.ok()?;
            res.status().is_success().then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{} never became ready", self.name));
    }

    /// Waits until the service's consumer holds partitions (its group has settled), so
    /// events published next are consumed by this instance.
    pub async fn wait_assigned(&self) {
        let Some(status) = self.consumer.clone() else {
            return;
        };
        eventually(Duration::from_secs(60), || {
            let status = status.clone();
            async move { (status.assigned_partitions() > 0).then_some(()) }
        })
        .await
        .unwrap_or_else(|| panic!("{}'s consumer was never assigned partitions", self.name));
    }

    /// Graceful stop: drains requests, finishes the message in hand, flushes the producer.
    pub async fn shutdown(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(60), task).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("{} did not stop cleanly: {other:?}", self.name),
            }
        }
    }

    /// A connection to this service's own database, for assertions.
    pub fn conn(&self) -> kaip_bus::PgPooled {
        self.pool
            .get()
            .unwrap_or_else(|e| panic!("{} database: {e}", self.name))
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Polls `check` until it yields `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message as read back from a topic.
#[derive(Clone, Debug)]
pub struct RawMessage {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl RawMessage {
    pub fn json(&self) -> Option<serde_json::Value> {
        self.payload
            .as_deref()
            .and_then(|p| serde_json::from_slice(p).ok())
    }
}

fn read_all(brokers: &str, topic: &str) -> anyhow::Result<Vec<RawMessage>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating reader")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .context("metadata")?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    let mut ends = HashMap::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .context("watermarks")?;
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
                remaining += high - low;
                ends.insert(p.id(), high);
            }
        }
    }
    let mut out = Vec::new();
    if remaining == 0 {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while remaining > 0 && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.context("reading")?;
        let mut headers = HashMap::new();
        if let Some(hs) = msg.headers() {
            for h in hs.iter() {
                if let Some(v) = h.value.and_then(|v| std::str::from_utf8(v).ok()) {
                    headers.insert(h.key.to_owned(), v.to_owned());
                }
            }
        }
        if ends
            .get(&msg.partition())
            .is_some_and(|&end| msg.offset() < end)
        {
            remaining -= 1;
        }
        out.push(RawMessage {
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            headers,
            partition: msg.partition(),
            offset: msg.offset(),
        });
    }
    Ok(out)
}
