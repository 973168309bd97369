//! The consumer's guarantees under stress: shutdown in the middle of a retry, a database
//! outage in the middle of a stream, forged producers, the inbox purge, and the inbox's
//! duplicate check with a handler that is not idempotent on its own.
//!
//! A probe handler (below) records, in the transaction that applies an event, the order in
//! which it applied each aggregate's events, and counts every call outside any transaction:
//! calls minus applications are the redeliveries and retries the inbox absorbed.

use diesel::prelude::*;
use kaip_bus::schema::kaip_inbox;
use kaip_bus::{
    ConsumerSpec, EventConsumer, EventHandler, Handled, HandlerError, Outbox, OutboxTx, PgPool,
};
use kaip_contracts::events::headers;
use kaip_contracts::{topics, Actor, EventEnvelope, EventId, Role};
use kaip_e2e::eventually;
use kaip_service::settings::DatabaseSettings;
use kaip_service::{db, Defaults, ServiceDefinition};
use kaip_testkit::proxy::TcpProxy;
use kaip_testkit::TestContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PROBE: &str = "probe";
const PROBE_DEFAULTS: Defaults = Defaults {
    port: 0,
    database: "kaip_probe",
};

/// How the probe handler treats an event on its first call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstCall {
    Transient,
    Permanent,
}

/// A handler that is not idempotent on its own: it appends a row per application.
#[derive(Default)]
struct Probe {
    calls: Mutex<HashMap<Uuid, u32>>,
    first_call: Mutex<HashMap<Uuid, FirstCall>>,
    /// While set, every `ProbeFlaky` event fails permanently (a deterministic bug).
    broken: AtomicBool,
}

impl Probe {
    fn calls(&self, id: EventId) -> u32 {
        self.calls
            .lock()
            .map(|c| c.get(&id.0).copied().unwrap_or(0))
            .unwrap_or(0)
    }
    fn total_calls(&self) -> u32 {
        self.calls.lock().map(|c| c.values().sum()).unwrap_or(0)
    }
}

impl EventHandler for Probe {
    fn handle(
        &self,
        conn: &mut PgConnection,
        _: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        let call = {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.entry(event.id.0).or_default();
            *n += 1;
            *n
        };
        if call == 1 {
            match self.first_call.lock().expect("lock").get(&event.id.0) {
                Some(FirstCall::Transient) => {
                    return Err(HandlerError::Transient("injected conflict".into()))
                }
                Some(FirstCall::Permanent) => {
                    return Err(HandlerError::Permanent("injected bug".into()))
                }
                None => {}
            }
        }
        match event.event_type.as_str() {
            "ProbeIgnored" => return Ok(Handled::Ignored),
            "ProbeFlaky" if self.broken.load(Ordering::SeqCst) => {
                return Err(HandlerError::Permanent("the handler has a bug".into()))
            }
            _ => {}
        }
        let seq = event.data["seq"].as_i64().unwrap_or(-1);
        diesel::sql_query(
            "INSERT INTO probe_applied (aggregate_id, seq, event_id) VALUES ($1, $2, $3)",
        )
        .bind::<diesel::sql_types::Uuid, _>(event.aggregate_id)
        .bind::<diesel::sql_types::BigInt, _>(seq)
        .bind::<diesel::sql_types::Uuid, _>(event.id.0)
        .execute(conn)?;
        Ok(Handled::Applied)
    }
}

fn probe_event(event_type: &str, aggregate: Uuid, seq: i64) -> EventEnvelope {
    EventEnvelope {
        id: EventId::new(),
        event_type: event_type.into(),
        version: 1,
        occurred_at: chrono::Utc::now(),
        producer: "intake".into(),
        aggregate_type: "probe".into(),
        aggregate_id: aggregate,
        consortium_id: None,
        actor: Actor {
            subject: "test".into(),
            role: Role::System,
        },
        data: serde_json::json!({ "seq": seq }),
    }
}

async fn produce(ctx: &TestContext, e: &EventEnvelope, extra: &[(&str, &str)]) {
    ctx.produce_raw(
        &ctx.topic(topics::INTAKE),
        &e.aggregate_id.to_string(),
        &serde_json::to_vec(e).expect("json"),
        extra,
    )
    .await;
}

/// The probe service's database, created and migrated before the service starts (so the
/// test can seed it), with the probe's own table.
fn probe_database(ctx: &TestContext) -> (PgPool, DatabaseSettings) {
    let settings = ctx.settings(PROBE_DEFAULTS).database;
    ctx.track_database(&settings.name);
    db::ensure_database(&settings).expect("database");
    let pool = db::build_pool(&settings).expect("pool");
    db::migrate(&pool, kaip_bus::MIGRATIONS).expect("migrations");
    diesel::connection::SimpleConnection::batch_execute(
        &mut pool.get().expect("conn"),
        "CREATE TABLE probe_applied (n BIGSERIAL PRIMARY KEY, aggregate_id UUID NOT NULL, \
         seq BIGINT NOT NULL, event_id UUID NOT NULL)",
    )
    .expect("probe table");
    (pool, settings)
}

fn probe_definition(handler: Arc<Probe>) -> ServiceDefinition {
    ServiceDefinition {
        name: PROBE,
        migrations: kaip_bus::MIGRATIONS,
        routes: |_| {},
        consumes: vec![topics::INTAKE],
        handler: Some(handler),
        background: Vec::new(),
    }
}

/// `(aggregate, seq)` in the order the probe applied them.
fn applied(pool: &PgPool) -> Vec<(Uuid, i64)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        aggregate_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
    }
    let Ok(mut conn) = pool.get() else {
        return Vec::new();
    };
    diesel::sql_query("SELECT aggregate_id, seq FROM probe_applied ORDER BY n")
        .load::<Row>(&mut conn)
        .map(|rows| rows.into_iter().map(|r| (r.aggregate_id, r.seq)).collect())
        .unwrap_or_default()
}

fn inbox_outcomes(pool: &PgPool) -> HashMap<Uuid, String> {
    kaip_inbox::table
        .select((kaip_inbox::event_id, kaip_inbox::outcome))
        .load::<(Uuid, String)>(&mut pool.get().expect("conn"))
        .expect("inbox")
        .into_iter()
        .collect()
}

/// Creates the topics with the context's partition count before anything is produced (a
/// broker that creates topics on first use would pick its own).
async fn ensure_topics(ctx: &TestContext) {
    kaip_bus::kafka::ensure_topics(
        &ctx.kafka,
        &[
            ctx.topic(topics::INTAKE),
            ctx.topic(&topics::dead_letter_topic_of(PROBE)),
        ],
    )
    .await
    .expect("topics");
}

/// A consumer run directly (no HTTP, no relay), stopped through its token.
struct RunningConsumer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningConsumer {
    async fn start(ctx: &TestContext, pool: &PgPool, handler: Arc<Probe>) -> Self {
        let consumer = EventConsumer::new(
            &ctx.kafka,
            ConsumerSpec {
                service: PROBE.into(),
                topics: vec![topics::INTAKE.into()],
                handler,
            },
            pool.clone(),
            Outbox::new(PROBE, ctx.topic(&topics::events_topic_of(PROBE))),
            kaip_bus::kafka::producer(&ctx.kafka).expect("producer"),
        )
        .expect("consumer");
        let stop = CancellationToken::new();
        let task = tokio::spawn(consumer.run(stop.clone()));
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the consumer stops in time")
            .expect("the consumer task ends cleanly");
    }
}

/// The probe group's committed offset on partition 0 of the intake topic.
async fn committed_offset(ctx: &TestContext) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let group = ctx.kafka.prefixed(&format!("kaip-{PROBE}"));
    let brokers = ctx.kafka.brokers.clone();
    let topic = ctx.topic(topics::INTAKE);
    tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        let offsets = reader
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        match offsets.find_partition(&topic, 0).map(|p| p.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        }
    })
    .await
    .expect("task")
}

/// Shutdown while an event waits for its retry. Before the fix the loop went on after the
/// interrupted message and an unbiased `select!` could apply and commit the next message of
/// the same partition, so the interrupted one was never applied. Each round gives the old
/// code an even chance to skip; five rounds make a pass by luck a 1-in-32 event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_retry_never_commits_past_the_unapplied_message() {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    // Long enough that shutdown always lands in the wait before the retry.
    ctx.kafka.retry_backoff_ms = 60_000;
    ctx.kafka.retry_backoff_max_ms = 60_000;
    let (pool, _) = probe_database(&ctx);
    ensure_topics(&ctx).await;
    let probe = Arc::new(Probe::default());
    let aggregate = Uuid::new_v4();
    let mut all = Vec::new();
    const ROUNDS: i64 = 5;
    for round in 0..ROUNDS {
        // `doomed` fails once (a serialization conflict), `next` is fine; same partition.
        let doomed = probe_event("Probe", aggregate, 2 * round);
        let next = probe_event("Probe", aggregate, 2 * round + 1);
        probe
            .first_call
            .lock()
            .expect("lock")
            .insert(doomed.id.0, FirstCall::Transient);
        produce(&ctx, &doomed, &[]).await;
        produce(&ctx, &next, &[]).await;
        all.extend([2 * round, 2 * round + 1]);

        let consumer = RunningConsumer::start(&ctx, &pool, probe.clone()).await;
        eventually(Duration::from_secs(60), || async {
            (probe.calls(doomed.id) >= 1).then_some(())
        })
        .await
        .expect("the doomed event reached the handler");
        // The handler failed; the consumer now waits a minute before retrying. Stop it.
        consumer.stop().await;
        // (No commit at all in round 0: nothing before the doomed event.)
        assert_eq!(
            committed_offset(&ctx).await.unwrap_or(0),
            2 * round,
            "round {round}: the group's offset stops at the interrupted message"
        );
        assert_eq!(
            probe.calls(next.id),
            0,
            "round {round}: nothing after it ran"
        );
    }

    // Without retry waits now: everything is applied, once, in order.
    probe.first_call.lock().expect("lock").clear();
    let consumer = RunningConsumer::start(&ctx, &pool, probe.clone()).await;
    let seqs = eventually(Duration::from_secs(60), || async {
        let seqs: Vec<i64> = applied(&pool).into_iter().map(|(_, s)| s).collect();
        (seqs.len() >= all.len()).then_some(seqs)
    })
    .await;
    consumer.stop().await;
    assert_eq!(
        seqs,
        Some(all),
        "every event applied once, in order: none was skipped"
    );
}

/// The outage test: the consuming service's PostgreSQL connection is cut for 30 s in
/// the middle of a stream of events. Before the fix, the event in hand (and the ones after
/// it) were dead-lettered after `max_attempts` and never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_stream_dead_letters_nothing_and_keeps_each_aggregates_order() {
    let mut ctx = TestContext::new();
    // Two attempts: the old code gives up well within the outage.
    ctx.kafka.max_attempts = 2;
    ctx.kafka.retry_backoff_max_ms = 2_000;
    let proxy = TcpProxy::start("127.0.0.1:5432", true).await;
    let (pool, _) = probe_database(&ctx);
    let probe = Arc::new(Probe::default());
    let mut settings = ctx.settings(PROBE_DEFAULTS);
    settings.database.url =
        secrecy::SecretString::from(format!("postgres://postgres@{}", proxy.address()));
    let service = ctx
        .spawn_with(probe_definition(probe.clone()), settings)
        .await;
    service.wait_assigned().await;

    let aggregates: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    const PER_AGGREGATE: i64 = 12;
    let events: Vec<EventEnvelope> = (0..PER_AGGREGATE)
        .flat_map(|seq| {
            aggregates
                .iter()
                .map(move |a| probe_event("Probe", *a, seq))
        })
        .collect();
    let (before, during) = events.split_at(16);
    for e in before {
        produce(&ctx, e, &[]).await;
    }
    eventually(Duration::from_secs(60), || async {
        (applied(&pool).len() >= 8).then_some(())
    })
    .await
    .expect("the stream is flowing");

    proxy.cut();
    let cut_at = std::time::Instant::now();
    for e in during {
        produce(&ctx, e, &[]).await;
    }
    // Readiness reports the outage and the paused partitions while it lasts.
    let http = reqwest::Client::new();
    let ready_url = service.url("/health/ready");
    let report = eventually(Duration::from_secs(25), || async {
        let body: serde_json::Value = http.get(&ready_url).send().await.ok()?.json().await.ok()?;
        let consumer = &body["consumer"];
        (consumer["outage"] == "database"
            && consumer["paused_partitions"]
                .as_array()
                .is_some_and(|p| !p.is_empty()))
        .then_some(body)
    })
    .await;
    assert!(
        report.is_some(),
        "readiness reports the database outage and the paused partitions"
    );
    let outage = Duration::from_secs(30);
    tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
    proxy.restore();

    let done = eventually(Duration::from_secs(90), || async {
        let a = applied(&pool);
        (a.len() >= events.len()).then_some(a)
    })
    .await;
    let dlq = ctx
        .read_topic(&ctx.topic(&topics::dead_letter_topic_of(PROBE)))
        .await;
    assert!(
        dlq.is_empty(),
        "nothing is dead-lettered because of an outage: {:?}",
        dlq.iter()
            .map(|m| m.headers.get(headers::DLQ_ERROR))
            .collect::<Vec<_>>()
    );
    let done = done.expect("every event is applied after the outage");
    assert_eq!(done.len(), events.len(), "each event applied exactly once");
    for a in &aggregates {
        let seqs: Vec<i64> = done
            .iter()
            .filter(|(agg, _)| agg == a)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            seqs,
            (0..PER_AGGREGATE).collect::<Vec<_>>(),
            "aggregate {a}: applied in order, none lost"
        );
    }
    let ready = eventually(Duration::from_secs(30), || async {
        let body: serde_json::Value = http.get(&ready_url).send().await.ok()?.json().await.ok()?;
        (body["consumer"]["outage"].is_null()
            && body["consumer"]["paused_partitions"] == serde_json::json!([]))
        .then_some(())
    })
    .await;
    assert!(ready.is_some(), "the outage clears from readiness");
    service.shutdown().await;
}

/// A `SelectionPublished` that claims to come from scoring but sits on intake's topic is a
/// forgery: it is dead-lettered with an error naming the producer and the topic, and not
/// recorded as processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_producer_does_not_own_the_topic_is_dead_lettered() {
    use kaip_contracts::events::SelectionPublished;
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    let forged = EventEnvelope::wrap(
        "scoring",
        Actor::system("scoring"),
        &SelectionPublished {
            call_id: kaip_contracts::CallId::new(),
            selected: vec![],
            departure: None,
            override_reason: None,
            published_at: chrono::Utc::now(),
            replaces: None,
            team_maxima: None,
        },
    )
    .expect("wraps");
    produce(&ctx, &forged, &[]).await;
    let dlq = ctx.topic(&topics::dead_letter_topic_of("scoring"));
    let dead = eventually(Duration::from_secs(60), || async {
        let msgs = ctx.read_topic(&dlq).await;
        (!msgs.is_empty()).then_some(msgs)
    })
    .await
    .expect("the forged event is dead-lettered");
    let error = &dead[0].headers[headers::DLQ_ERROR];
    assert!(
        error.starts_with("producer:") && error.contains("`scoring`") && error.contains("`intake`"),
        "{error}"
    );
    assert_eq!(
        dead[0].json().map(|j| j["id"].clone()),
        Some(serde_json::json!(forged.id))
    );
    let recorded = kaip_inbox::table
        .filter(kaip_inbox::event_id.eq(forged.id.0))
        .count()
        .get_result::<i64>(&mut scoring.conn())
        .expect("count");
    assert_eq!(recorded, 0, "a forgery is not processed");
}

/// Inbox rows past `kafka.inbox_retention_hours` go; recent ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_purges_inbox_rows_past_their_retention() {
    let ctx = TestContext::new();
    let (pool, _) = probe_database(&ctx);
    let seed = |age_hours: i64| {
        let id = Uuid::new_v4();
        diesel::insert_into(kaip_inbox::table)
            .values((
                kaip_inbox::event_id.eq(id),
                kaip_inbox::event_type.eq("Probe"),
                kaip_inbox::topic.eq("seeded"),
                kaip_inbox::kafka_partition.eq(0),
                kaip_inbox::kafka_offset.eq(0i64),
                kaip_inbox::outcome.eq("applied"),
                kaip_inbox::processed_at
                    .eq(chrono::Utc::now() - chrono::Duration::hours(age_hours)),
            ))
            .execute(&mut pool.get().expect("conn"))
            .expect("seed");
        id
    };
    let retention = ctx.kafka.inbox_retention_hours;
    assert_eq!(retention, 24 * 120, "the default retention is 120 days");
    let old: Vec<Uuid> = (0..3).map(|_| seed(retention + 24)).collect();
    let recent: Vec<Uuid> = (0..2).map(|_| seed(retention - 24)).collect();

    let service = ctx
        .spawn_with(
            probe_definition(Arc::new(Probe::default())),
            ctx.settings(PROBE_DEFAULTS),
        )
        .await;
    let remaining = eventually(Duration::from_secs(30), || async {
        let rows = inbox_outcomes(&pool);
        old.iter().all(|id| !rows.contains_key(id)).then_some(rows)
    })
    .await
    .expect("old inbox rows are purged");
    for id in &recent {
        assert!(remaining.contains_key(id), "a recent row stays");
    }
    service.shutdown().await;
}

/// The inbox, not the handler, makes a redelivery harmless: with a handler that appends a
/// row per call, duplicates interleaved with other aggregates' events are applied once, and
/// the inbox records each event's outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_turns_redeliveries_into_no_ops_for_a_handler_that_is_not_idempotent() {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    let (pool, _) = probe_database(&ctx);
    let probe = Arc::new(Probe::default());
    let service = ctx
        .spawn_with(
            probe_definition(probe.clone()),
            ctx.settings(PROBE_DEFAULTS),
        )
        .await;
    service.wait_assigned().await;
    let (a, b, c) = (
        probe_event("Probe", Uuid::new_v4(), 1),
        probe_event("Probe", Uuid::new_v4(), 2),
        probe_event("Probe", Uuid::new_v4(), 3),
    );
    let ignored = probe_event("ProbeIgnored", Uuid::new_v4(), 4);
    // A, B, A again, ignored, C, B again, ignored again: duplicates among other aggregates.
    for e in [&a, &b, &a, &ignored, &c, &b, &ignored] {
        produce(&ctx, e, &[]).await;
    }
    // A sentinel after them: once it is applied, everything before it was consumed.
    let sentinel = probe_event("Probe", Uuid::new_v4(), 5);
    produce(&ctx, &sentinel, &[]).await;
    eventually(Duration::from_secs(60), || async {
        (probe.calls(sentinel.id) == 1).then_some(())
    })
    .await
    .expect("the sentinel is consumed");

    for e in [&a, &b, &c, &ignored] {
        assert_eq!(probe.calls(e.id), 1, "seq {}: handled once", e.data["seq"]);
    }
    assert_eq!(probe.total_calls(), 5);
    let seqs: Vec<i64> = applied(&pool).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3, 5],
        "each applied once, in delivery order"
    );
    let outcomes = inbox_outcomes(&pool);
    assert_eq!(outcomes.len(), 5);
    for e in [&a, &b, &c, &sentinel] {
        assert_eq!(outcomes[&e.id.0], "applied");
    }
    assert_eq!(outcomes[&ignored.id.0], "ignored");
    service.shutdown().await;
}

/// An event id names one event. A redelivery (the same content under the same id) is a
/// no-op, but another event sent under an id already applied is not dropped in silence: it
/// is dead-lettered as `EVENT_ID_REUSED` and the handler never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_event_under_an_applied_id_is_dead_lettered_not_silently_dropped() {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    let (pool, _) = probe_database(&ctx);
    let probe = Arc::new(Probe::default());
    let service = ctx
        .spawn_with(
            probe_definition(probe.clone()),
            ctx.settings(PROBE_DEFAULTS),
        )
        .await;
    service.wait_assigned().await;
    let first = probe_event("Probe", Uuid::new_v4(), 1);
    // The same envelope sent again a moment later: a redelivery, whatever its time says.
    let mut redelivered = first.clone();
    redelivered.occurred_at = chrono::Utc::now();
    // Another event under the same id: other data.
    let mut reused = first.clone();
    reused.data = serde_json::json!({ "seq": 2 });
    let sentinel = probe_event("Probe", Uuid::new_v4(), 3);
    for e in [&first, &redelivered, &reused, &sentinel] {
        produce(&ctx, e, &[]).await;
    }
    eventually(Duration::from_secs(60), || async {
        (probe.calls(sentinel.id) == 1).then_some(())
    })
    .await
    .expect("the sentinel is consumed");
    assert_eq!(probe.calls(first.id), 1, "the handler saw the id once");
    let seqs: Vec<i64> = applied(&pool).into_iter().map(|(_, s)| s).collect();
    assert_eq!(seqs, vec![1, 3], "the reused id changed nothing");
    let dlq = ctx.topic(&topics::dead_letter_topic_of(PROBE));
    let dead = eventually(Duration::from_secs(60), || async {
        let msgs = ctx.read_topic(&dlq).await;
        (!msgs.is_empty()).then_some(msgs)
    })
    .await
    .expect("the reused id is dead-lettered");
    assert_eq!(dead.len(), 1, "only the reused id, not the redelivery");
    let letter = dead[0].json().expect("envelope");
    assert_eq!(letter["data"]["seq"], 2);
    assert!(
        dead[0].headers[headers::DLQ_ERROR].starts_with("EVENT_ID_REUSED: event_id: "),
        "{:?}",
        dead[0].headers
    );
    service.shutdown().await;
}

/// A dead letter whose handler failed deterministically is replayed after the fix: a dry
/// run moves nothing, the replay applies it once, a second replay is a recorded duplicate,
/// and only an admin may ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_once_after_the_fix_and_a_dry_run_moves_nothing() {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    let (pool, _) = probe_database(&ctx);
    let probe = Arc::new(Probe::default());
    probe.broken.store(true, Ordering::SeqCst);
    let service = ctx
        .spawn_with(
            probe_definition(probe.clone()),
            ctx.settings(PROBE_DEFAULTS),
        )
        .await;
    service.wait_assigned().await;
    // `flaky` hits the bug; `other` fails once for a reason of its own; `fine` is applied.
    let flaky = probe_event("ProbeFlaky", Uuid::new_v4(), 1);
    let other = probe_event("Probe", Uuid::new_v4(), 2);
    probe
        .first_call
        .lock()
        .expect("lock")
        .insert(other.id.0, FirstCall::Permanent);
    let fine = probe_event("Probe", Uuid::new_v4(), 3);
    for e in [&flaky, &other, &fine] {
        produce(&ctx, e, &[]).await;
    }
    let dlq = ctx.topic(&topics::dead_letter_topic_of(PROBE));
    let dead = eventually(Duration::from_secs(60), || async {
        let msgs = ctx.read_topic(&dlq).await;
        (msgs.len() >= 2).then_some(msgs)
    })
    .await
    .expect("two dead letters");
    assert_eq!(dead.len(), 2);
    let flaky_offset: i64 = dead[0].headers[headers::DLQ_ORIGINAL_OFFSET]
        .parse()
        .expect("offset");

    let http = reqwest::Client::new();
    let url = service.url("/admin/dlq/replay");
    let admin = ctx.bearer(Role::Admin, None);
    let post = |auth: String, body: serde_json::Value| {
        let req = http.post(&url).header("authorization", auth).json(&body);
        async move {
            let res = req.send().await.expect("answers");
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.expect("json"))
        }
    };

    // Only an admin; a filter is required.
    let (status, _) = post(
        ctx.bearer(Role::Officer, None),
        serde_json::json!({ "event_ids": [flaky.id], "dry_run": true }),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = post(admin.clone(), serde_json::json!({ "dry_run": true })).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").starts_with("topic:"),
        "{body}"
    );

    // Dry run: lists the flaky event, moves nothing.
    let (status, body) = post(
        admin.clone(),
        serde_json::json!({ "event_ids": [flaky.id], "dry_run": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], 1, "{body}");
    assert_eq!(body["items"][0]["result"], "would_replay");
    assert_eq!(body["items"][0]["event_id"], serde_json::json!(flaky.id));
    assert_eq!(probe.calls(flaky.id), 1, "a dry run calls nothing");

    // The fix, then a replay by topic and offset range (the topic without its prefix).
    probe.broken.store(false, Ordering::SeqCst);
    let (status, body) = post(
        admin.clone(),
        serde_json::json!({
            "topic": topics::INTAKE, "from_offset": flaky_offset, "to_offset": flaky_offset
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["matched"], 1,
        "only the flaky event is in range: {body}"
    );
    assert_eq!(body["items"][0]["result"], "applied", "{body}");
    // Replayed again by id: the inbox turns it into a no-op.
    let (_, body) = post(
        admin.clone(),
        serde_json::json!({ "event_ids": [flaky.id] }),
    )
    .await;
    assert_eq!(body["items"][0]["result"], "duplicate", "{body}");

    let seqs: Vec<i64> = applied(&pool).into_iter().map(|(_, s)| s).collect();
    assert_eq!(seqs, vec![3, 1], "`fine`, then the replayed event, once");
    assert_eq!(
        probe.calls(flaky.id),
        2,
        "the duplicate never reached the handler"
    );
    assert_eq!(inbox_outcomes(&pool)[&flaky.id.0], "applied");
    assert_eq!(probe.calls(other.id), 1, "`other` was not in the filter");
    service.shutdown().await;
}

/// Set (to a JSON configuration) only in the child process the kill test starts.
const KILL_CHILD_ENV: &str = "KAIP_TEST_KILL_CHILD";

/// A handler for the killed process: it records each call on a connection of its own (so
/// the record survives the kill), can hang inside its transaction on one event (where the
/// kill lands), and appends a row per application.
struct KillProbe {
    pool: PgPool,
    hang_on: Option<Uuid>,
}

impl EventHandler for KillProbe {
    fn handle(
        &self,
        conn: &mut PgConnection,
        _: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        let mut own = self
            .pool
            .get()
            .map_err(|e| HandlerError::Unavailable(e.to_string()))?;
        diesel::sql_query("INSERT INTO probe_calls (event_id) VALUES ($1)")
            .bind::<diesel::sql_types::Uuid, _>(event.id.0)
            .execute(&mut own)?;
        diesel::sql_query(
            "INSERT INTO probe_applied (aggregate_id, seq, event_id) VALUES ($1, $2, $3)",
        )
        .bind::<diesel::sql_types::Uuid, _>(event.aggregate_id)
        .bind::<diesel::sql_types::BigInt, _>(event.data["seq"].as_i64().unwrap_or(-1))
        .bind::<diesel::sql_types::Uuid, _>(event.id.0)
        .execute(conn)?;
        if self.hang_on == Some(event.id.0) {
            // Mid-transaction, mid-stream: the test kills the process here.
            std::thread::sleep(Duration::from_secs(600));
        }
        Ok(Handled::Applied)
    }
}

/// Not a test of its own: the consumer process that the kill test starts and SIGKILLs. It
/// does nothing unless that test set `KAIP_TEST_KILL_CHILD`.
#[test]
#[ignore = "run as a child process by a_consumer_killed_mid_stream_redelivers_and_the_inbox_applies_once"]
fn kill_test_child_consumer() {
    let Ok(config) = std::env::var(KILL_CHILD_ENV) else {
        return;
    };
    let config: serde_json::Value = serde_json::from_str(&config).expect("config");
    let text = |k: &str| config[k].as_str().expect("config key").to_owned();
    let mut kafka = kaip_bus::KafkaSettings::local(&kaip_testkit::broker(), &text("prefix"));
    kafka.partitions = Some(1);
    let database = DatabaseSettings {
        url: secrecy::SecretString::from(kaip_testkit::database_url()),
        name: text("database"),
        create_if_missing: false,
        pool_size: 4,
        migration_url: None,
    };
    let pool = db::build_pool(&database).expect("pool");
    let hang_on = config["hang_on"].as_str().map(|s| s.parse().expect("uuid"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let consumer = EventConsumer::new(
            &kafka,
            ConsumerSpec {
                service: PROBE.into(),
                topics: vec![topics::INTAKE.into()],
                handler: Arc::new(KillProbe {
                    pool: pool.clone(),
                    hang_on,
                }),
            },
            pool.clone(),
            Outbox::new(PROBE, kafka.prefixed(&topics::events_topic_of(PROBE))),
            kaip_bus::kafka::producer(&kafka).expect("producer"),
        )
        .expect("consumer");
        // Runs until killed.
        consumer.run(CancellationToken::new()).await;
    });
}

struct ChildConsumer(std::process::Child);

impl ChildConsumer {
    fn start(ctx: &TestContext, database: &str, hang_on: Option<EventId>) -> Self {
        let config = serde_json::json!({
            "prefix": ctx.kafka.topic_prefix,
            "database": database,
            "hang_on": hang_on.map(|id| id.to_string()),
        });
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "consumer_hardening::kill_test_child_consumer",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(KILL_CHILD_ENV, config.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .expect("the child consumer starts");
        Self(child)
    }

    fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }
}

impl Drop for ChildConsumer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn calls_of(pool: &PgPool, id: EventId) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Ok(mut conn) = pool.get() else { return 0 };
    diesel::sql_query("SELECT count(*) AS n FROM probe_calls WHERE event_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id.0)
        .get_result::<N>(&mut conn)
        .map(|r| r.n)
        .unwrap_or(0)
}

/// A consumer process killed with SIGKILL in the middle of a stream, inside the transaction
/// of one event: that event (and any whose offset was not yet committed) is delivered again
/// to the next process, which applies it; the inbox keeps every event applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_stream_redelivers_and_the_inbox_applies_once() {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = Some(1);
    let (pool, settings) = probe_database(&ctx);
    diesel::connection::SimpleConnection::batch_execute(
        &mut pool.get().expect("conn"),
        "CREATE TABLE probe_calls (event_id UUID NOT NULL)",
    )
    .expect("calls table");
    ensure_topics(&ctx).await;
    let aggregate = Uuid::new_v4();
    const N: i64 = 30;
    let events: Vec<EventEnvelope> = (0..N)
        .map(|seq| probe_event("Probe", aggregate, seq))
        .collect();
    for e in &events {
        produce(&ctx, e, &[]).await;
    }
    let victim = events[12].id;

    let child = ChildConsumer::start(&ctx, &settings.name, Some(victim));
    eventually(Duration::from_secs(90), || async {
        (calls_of(&pool, victim) == 1).then_some(())
    })
    .await
    .expect("the child reached the 13th event");
    // Let the auto-commit (every second) catch up with what the child stored: everything
    // before the event in hand, and nothing past it.
    let committed = eventually(Duration::from_secs(30), || async {
        committed_offset(&ctx).await.filter(|&o| o >= 12)
    })
    .await;
    assert_eq!(
        committed,
        Some(12),
        "the offset of the event in hand is not committed"
    );
    child.kill();
    let before: Vec<i64> = applied(&pool).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        before,
        (0..12).collect::<Vec<_>>(),
        "the killed transaction left nothing behind"
    );

    let child = ChildConsumer::start(&ctx, &settings.name, None);
    let after = eventually(Duration::from_secs(90), || async {
        let seqs: Vec<i64> = applied(&pool).into_iter().map(|(_, s)| s).collect();
        (seqs.len() >= N as usize).then_some(seqs)
    })
    .await;
    drop(child);
    assert_eq!(
        after,
        Some((0..N).collect::<Vec<_>>()),
        "every event applied exactly once, in order"
    );
    assert_eq!(
        calls_of(&pool, victim),
        2,
        "the event in hand at the kill was delivered again"
    );
    let outcomes = inbox_outcomes(&pool);
    assert_eq!(outcomes.len(), N as usize);
    assert!(outcomes.values().all(|o| o == "applied"));
}
