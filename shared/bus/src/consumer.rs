//! Idempotent event consumers.
//!
//! Each message is processed in one database transaction that records its event id in the
//! inbox and applies the handler's effects (including any events the handler emits through
//! the outbox). The offset is stored only after that transaction commits, so a crash
//! redelivers the message and the inbox turns the redelivery into a no-op.
//!
//! Three kinds of failure are told apart:
//!
//! * **Contract violations and deterministic handler failures** (a malformed envelope, a
//!   payload that breaks the contract, an event whose `producer` does not own the topic it
//!   came on, a constraint the handler's write breaks) go to the service's dead-letter topic
//!   with the error, and the consumer carries on.
//! * **Transient failures while the database answers** (serialization failure, deadlock, an
//!   unclassified database error) are retried `kafka.max_attempts` times with backoff, then
//!   dead-lettered: a failure that repeats while everything is up is the event's doing.
//! * **Outages** (the database unreachable, the pool timing out, the broker refusing the
//!   dead letter) are not the event's fault. The consumer pauses its partitions (it keeps
//!   polling, so it keeps its group membership), reports the outage in readiness and retries
//!   the same message with a capped backoff (`kafka.retry_backoff_max_ms`) for as long as
//!   the outage lasts. Nothing is dead-lettered because of an outage.
//!
//! The rule behind every path: a consumer never stores an offset past a message that it
//! has not applied or dead-lettered. Shutdown during a retry stops the loop (the message is
//! redelivered next time), and messages received while the partitions were paused are
//! rewound before consumption resumes.

use crate::outbox::{Outbox, OutboxTx};
use crate::schema::kaip_inbox;
use crate::settings::KafkaSettings;
use crate::PgPool;
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use kaip_contracts::events::{headers, PayloadError};
use kaip_contracts::EventEnvelope;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What a handler did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The event changed this service's state.
    Applied,
    /// The event is of no interest to this service (recorded, nothing else).
    Ignored,
}

/// Why a handler could not process an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Retrying cannot help (the event breaks the contract or a domain rule): dead-letter now.
    #[error("{0}")]
    Permanent(String),
    /// Might succeed on a retry although everything is up (serialisation conflict,
    /// deadlock): retried `kafka.max_attempts` times, then dead-lettered.
    #[error("{0}")]
    Transient(String),
    /// A dependency is unreachable (database down, pool exhausted, connection lost): not the
    /// event's fault. Retried for as long as it lasts and never dead-lettered.
    #[error("{0}")]
    Unavailable(String),
}

impl From<diesel::result::Error> for HandlerError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::Error as E;
        let text = e.to_string();
        match &e {
            // Diesel reports SQLSTATE class 08 (connection exception), a connection libpq
            // marks bad (e.g. 57P01 admin shutdown, the server gone) and a failed send as
            // these two kinds. A read-only transaction means a failover is under way.
            E::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction,
                _,
            )
            | E::BrokenTransactionManager => HandlerError::Unavailable(text),
            // The database answers but cannot do the work for now: a lock held past
            // `lock_timeout` (55P03, e.g. by a migration), a statement cancelled by its
            // timeout (57014), the server shutting down or starting (57P01/57P03), no disk
            // or memory left (class 53). Diesel reports these as `Unknown`, so they are told
            // by PostgreSQL's message. Not the event's fault: wait them out.
            E::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_resource_outage(info.message()) =>
            {
                HandlerError::Unavailable(text)
            }
            E::DatabaseError(
                DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation,
                _,
            )
            | E::SerializationError(_)
            | E::DeserializationError(_)
            | E::QueryBuilderError(_) => HandlerError::Permanent(text),
            // Serialization failures, deadlocks (which diesel reports as `Unknown`), unique
            // violations (a race with a concurrent writer) and anything unclassified: a
            // bounded number of retries. The consumer checks that the database answers
            // before it counts such an attempt, so an outage reported in an unexpected way
            // is still treated as an outage.
            _ => HandlerError::Transient(text),
        }
    }
}

/// PostgreSQL's messages for a server that answers but cannot do the work for now.
fn is_resource_outage(message: &str) -> bool {
    const OUTAGES: [&str; 8] = [
        "canceling statement due to lock timeout",
        "canceling statement due to statement timeout",
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "could not extend file",
        "No space left on device",
        "out of memory",
    ];
    OUTAGES.iter().any(|m| message.contains(m))
}

impl From<PayloadError> for HandlerError {
    fn from(e: PayloadError) -> Self {
        HandlerError::Permanent(e.0)
    }
}

/// A service's reaction to events. Runs inside the transaction that records the event in
/// the inbox; whatever it writes (state, outbox events) commits or rolls back with it.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut PgConnection,
        outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError>;
}

/// The outcome of offering one event to [`process_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Ignored,
    /// Already in the inbox: a redelivery; nothing changed.
    Duplicate,
}

/// Where an event came from, recorded in the inbox.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub trace_id: Option<String>,
}

/// Records `event` in the inbox and applies `handler`, in one transaction, with the event's
/// actor and data as the audit trail's context.
pub fn process_event(
    pool: &PgPool,
    outbox: &Outbox,
    handler: &dyn EventHandler,
    event: &EventEnvelope,
    delivery: &Delivery,
) -> Result<Outcome, HandlerError> {
    let mut conn = pool
        .get()
        .map_err(|e| HandlerError::Unavailable(format!("database pool: {e}")))?;
    let audit = crate::audit::AuditContext::for_event(event, delivery.trace_id.clone());
    let digest = content_digest(event);
    let outcome = outbox.transaction(&mut conn, |c, tx| {
        // What the audit trail records about the effects below (transaction-local: gone
        // at commit or rollback, so it never outlives this event).
        crate::audit::set_context(c, &audit, true)?;
        let inserted = diesel::insert_into(kaip_inbox::table)
            .values((
                kaip_inbox::event_id.eq(event.id.0),
                kaip_inbox::event_type.eq(&event.event_type),
                kaip_inbox::topic.eq(&delivery.topic),
                kaip_inbox::kafka_partition.eq(delivery.partition),
                kaip_inbox::kafka_offset.eq(delivery.offset),
                kaip_inbox::trace_id.eq(&delivery.trace_id),
                kaip_inbox::outcome.eq("applied"),
                kaip_inbox::payload_sha256.eq(&digest),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        if inserted == 0 {
            // A redelivery says exactly what the first delivery said. Another event under
            // an id already used (a producer or integration reusing ids) is not a
            // duplicate to drop in silence: it is refused, and so dead-lettered, by name.
            let first: Option<Vec<u8>> = kaip_inbox::table
                .find(event.id.0)
                .select(kaip_inbox::payload_sha256)
                .first(c)?;
            return match first {
                Some(first) if first != digest => Err(HandlerError::Permanent(format!(
                    "EVENT_ID_REUSED: event_id: {} was already applied to another event \
                     (this one is a `{}` whose content differs); an id names one event only",
                    event.id, event.event_type
                ))),
                _ => Ok(Outcome::Duplicate),
            };
        }
        match handler.handle(c, tx, event)? {
            Handled::Applied => Ok(Outcome::Applied),
            Handled::Ignored => {
                diesel::update(kaip_inbox::table.find(event.id.0))
                    .set(kaip_inbox::outcome.eq("ignored"))
                    .execute(c)?;
                Ok(Outcome::Ignored)
            }
        }
    });
    if matches!(outcome, Ok(Outcome::Applied)) {
        // The effects' `AuditRecorded` export was written by the database: publish it now
        // rather than at the relay's next poll.
        outbox.wake_handle().notify_one();
    }
    outcome
}

/// SHA-256 over what an event says: its type, version, producer, aggregate and data
/// (`serde_json` maps are sorted, so the same event always gives the same digest). The
/// envelope's time and actor are left out: they describe the sending, not the event.
pub fn content_digest(event: &EventEnvelope) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::json!([
        event.event_type,
        event.version,
        event.producer,
        event.aggregate_type,
        event.aggregate_id,
        event.consortium_id,
        event.data,
    ]);
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

/// Whether the database answers right now (a fresh check, not the pool's cached view).
pub fn database_answers(pool: &PgPool) -> bool {
    pool.get_timeout(Duration::from_secs(5))
        .ok()
        .and_then(|mut c| diesel::sql_query("SELECT 1").execute(&mut c).ok())
        .is_some()
}

/// Checks that an event was produced by the service whose topic it came on: `kaip.<producer>.events`
/// after the deployment prefix, and that this producer is the one the catalogue names for
/// its type. A mismatch is a forgery or a misrouted event, never a reason to act on it:
/// whoever may write to one topic (an operator integration on its own topic, say) must not
/// be able to send another service's decisions (a `TeamEliminated`) on it.
pub fn check_producer(
    prefix: &str,
    topic: &str,
    producer: &str,
    event_type: &str,
) -> Result<(), String> {
    let owner = topic
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix("kaip."))
        .and_then(|t| t.strip_suffix(".events"));
    match owner {
        Some(owner) if owner == producer => match catalogued_producer(event_type) {
            Some(only) if only != producer => Err(format!(
                "event_type: `{event_type}` is produced by `{only}` only, not by `{producer}`"
            )),
            _ => Ok(()),
        },
        Some(owner) => Err(format!(
            "producer: event claims producer `{producer}` but came on topic `{topic}`, which only `{owner}` produces to"
        )),
        None => Err(format!(
            "producer: topic `{topic}` is not an event topic (`{prefix}kaip.<producer>.events`)"
        )),
    }
}

/// The producer the event catalogue names for `event_type`; `None` for a type it does not
/// list (a newer producer's, left to the handler to ignore) or one any service produces.
fn catalogued_producer(event_type: &str) -> Option<&'static str> {
    static PRODUCERS: std::sync::OnceLock<HashMap<&'static str, &'static str>> =
        std::sync::OnceLock::new();
    PRODUCERS
        .get_or_init(|| {
            kaip_contracts::catalogue::events()
                .into_iter()
                .filter(|spec| spec.producer != kaip_contracts::catalogue::ANY_SERVICE)
                .map(|spec| (spec.event_type, spec.producer))
                .collect()
        })
        .get(event_type)
        .copied()
}

/// Deletes inbox rows processed before `older_than`, in batches so that no transaction
/// holds many locks. Returns how many rows went.
pub fn purge_inbox(
    conn: &mut PgConnection,
    older_than: chrono::DateTime<chrono::Utc>,
) -> QueryResult<usize> {
    const BATCH: i64 = 5_000;
    let mut total = 0;
    loop {
        let n = diesel::sql_query(
            "DELETE FROM kaip_inbox WHERE event_id IN \
               (SELECT event_id FROM kaip_inbox WHERE processed_at < $1 LIMIT $2)",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(older_than)
        .bind::<diesel::sql_types::BigInt, _>(BATCH)
        .execute(conn)?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// How often the consumer task purges the inbox.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

async fn purge_inbox_periodically(
    pool: PgPool,
    retention: chrono::Duration,
    shutdown: CancellationToken,
) {
    loop {
        let pool2 = pool.clone();
        let purged = tokio::task::spawn_blocking(move || {
            let mut conn = pool2.get().map_err(|e| e.to_string())?;
            purge_inbox(&mut conn, chrono::Utc::now() - retention).map_err(|e| e.to_string())
        })
        .await;
        match purged {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(purged = n, "inbox rows past their retention purged"),
            Ok(Err(e)) => tracing::warn!(error = %e, "inbox purge failed; retrying later"),
            Err(e) => tracing::warn!(error = %e, "inbox purge task failed"),
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PURGE_EVERY) => {}
        }
    }
}

/// Tracks the partitions the consumer holds and its lag, for readiness and for tests that
/// must not publish before the group has settled.
pub struct AssignmentTracker {
    assigned: Arc<AtomicUsize>,
    lag: Arc<AtomicI64>,
    state: Arc<Mutex<StatusState>>,
}

impl ClientContext for AssignmentTracker {
    /// librdkafka's periodic statistics carry each assigned partition's lag (high watermark
    /// minus the consumer's position); summing them costs nothing per readiness probe.
    fn stats(&self, stats: Statistics) {
        let mut total = 0i64;
        let mut known = false;
        for topic in stats.topics.values() {
            for (id, p) in &topic.partitions {
                if *id >= 0 && p.consumer_lag >= 0 {
                    total = total.saturating_add(p.consumer_lag);
                    known = true;
                }
            }
        }
        self.lag
            .store(if known { total } else { -1 }, Ordering::SeqCst);
        // A broker outage is otherwise cleared only when a message arrives: on a quiet topic
        // readiness would go on reporting an outage that ended. The statistics say when
        // librdkafka is connected again; if fetching still fails, the next error sets it.
        if brokers_back(&stats) {
            if let Ok(mut s) = self.state.lock() {
                if s.outage.map(|o| o.kind) == Some(OutageKind::Broker) {
                    s.outage = None;
                }
            }
        }
    }
}

/// Whether the statistics show the consumer connected: at least one cluster broker up, and
/// every broker leading a partition the consumer knows of up.
fn brokers_back(stats: &Statistics) -> bool {
    let up: BTreeSet<i32> = stats
        .brokers
        .values()
        .filter(|b| b.nodeid >= 0 && b.state == "UP")
        .map(|b| b.nodeid)
        .collect();
    !up.is_empty()
        && stats
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter(|(id, _)| **id >= 0)
            .all(|(_, p)| p.leader < 0 || up.contains(&p.leader))
}

impl ConsumerContext for AssignmentTracker {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.assigned.store(tpl.count(), Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), "consumer assigned partitions");
            }
            Rebalance::Revoke(_) => {
                self.assigned.store(0, Ordering::SeqCst);
                // Revoked partitions are no longer paused (or ours).
                if let Ok(mut s) = self.state.lock() {
                    s.paused.clear();
                }
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "consumer rebalance error"),
        }
    }
}

/// What a service consumes and how it reacts.
pub struct ConsumerSpec {
    /// The consuming service's name: it names the group and the dead-letter topic.
    pub service: String,
    /// Unprefixed topics to subscribe to.
    pub topics: Vec<String>,
    pub handler: Arc<dyn EventHandler>,
}

/// What stops a consumer from making progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutageKind {
    /// The database does not answer (or the pool cannot hand out a connection).
    Database,
    /// The broker does not answer (consuming, or taking a dead letter).
    Broker,
}

impl OutageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutageKind::Database => "database",
            OutageKind::Broker => "broker",
        }
    }
}

/// An outage the consumer is waiting out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    pub kind: OutageKind,
    pub since: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Default)]
struct StatusState {
    outage: Option<Outage>,
    /// `topic/partition` of every partition paused while an event is retried.
    paused: Vec<String>,
}

/// A running consumer's shared state, for readiness.
#[derive(Clone, Debug)]
pub struct ConsumerStatus {
    pub assigned: Arc<AtomicUsize>,
    lag: Arc<AtomicI64>,
    state: Arc<Mutex<StatusState>>,
}

impl Default for ConsumerStatus {
    fn default() -> Self {
        Self {
            assigned: Arc::default(),
            lag: Arc::new(AtomicI64::new(-1)),
            state: Arc::default(),
        }
    }
}

impl ConsumerStatus {
    pub fn assigned_partitions(&self) -> usize {
        self.assigned.load(Ordering::SeqCst)
    }

    /// Messages on the assigned partitions not yet consumed, from librdkafka's last
    /// statistics (every few seconds); `None` until the first report.
    pub fn lag(&self) -> Option<i64> {
        let lag = self.lag.load(Ordering::SeqCst);
        (lag >= 0).then_some(lag)
    }

    /// The outage the consumer is waiting out, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.state.lock().ok().and_then(|s| s.outage)
    }

    /// Partitions paused while an event is retried, as `topic/partition`.
    pub fn paused_partitions(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.paused.clone())
            .unwrap_or_default()
    }

    fn set_outage(&self, kind: OutageKind) {
        if let Ok(mut s) = self.state.lock() {
            if s.outage.map(|o| o.kind) != Some(kind) {
                s.outage = Some(Outage {
                    kind,
                    since: chrono::Utc::now(),
                });
            }
        }
    }

    fn clear_outage(&self, kind: Option<OutageKind>) {
        if let Ok(mut s) = self.state.lock() {
            if kind.is_none() || s.outage.map(|o| o.kind) == kind {
                s.outage = None;
            }
        }
    }

    fn set_paused(&self, paused: &BTreeSet<(String, i32)>) {
        if let Ok(mut s) = self.state.lock() {
            s.paused = paused.iter().map(|(t, p)| format!("{t}/{p}")).collect();
        }
    }
}

/// What the loop holds back while it retries one event: the partitions it paused, and the
/// messages librdkafka had already handed over for them (processed next, in order, so that
/// none is skipped).
#[derive(Default)]
struct Held {
    paused: BTreeSet<(String, i32)>,
    pending: std::collections::VecDeque<rdkafka::message::OwnedMessage>,
}

/// Why an attempt failed, once classified.
enum Failure {
    /// Not the event's fault: wait it out, however long.
    Outage(String),
    /// Counts towards `max_attempts`.
    Retry(String),
}

/// How long a stopping consumer may take to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// One service's consumer loop.
pub struct EventConsumer {
    consumer: StreamConsumer<AssignmentTracker>,
    pool: PgPool,
    outbox: Outbox,
    producer: FutureProducer,
    handler: Arc<dyn EventHandler>,
    group_id: String,
    dlq_topic: String,
    topic_prefix: String,
    max_attempts: u32,
    retry_backoff_ms: u64,
    retry_backoff_max_ms: u64,
    inbox_retention: chrono::Duration,
    status: ConsumerStatus,
}

impl EventConsumer {
    pub fn new(
        settings: &KafkaSettings,
        spec: ConsumerSpec,
        pool: PgPool,
        outbox: Outbox,
        producer: FutureProducer,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let status = ConsumerStatus::default();
        let group_id = settings.prefixed(&format!("kaip-{}", spec.service));
        let consumer: StreamConsumer<AssignmentTracker> = crate::kafka::consumer_config(settings)
            .set("group.id", &group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                settings.session_timeout_ms.to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (settings.session_timeout_ms / 3).to_string(),
            )
            .set("enable.partition.eof", "false")
            // Feeds the lag in readiness.
            .set("statistics.interval.ms", "5000")
            .create_with_context(AssignmentTracker {
                assigned: status.assigned.clone(),
                lag: status.lag.clone(),
                state: status.state.clone(),
            })?;
        let topics: Vec<String> = spec.topics.iter().map(|t| settings.prefixed(t)).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs)?;
        Ok(Self {
            consumer,
            pool,
            outbox,
            producer,
            handler: spec.handler,
            group_id,
            dlq_topic: settings
                .prefixed(&kaip_contracts::topics::dead_letter_topic_of(&spec.service)),
            topic_prefix: settings.topic_prefix.clone(),
            max_attempts: settings.max_attempts,
            retry_backoff_ms: settings.retry_backoff_ms,
            retry_backoff_max_ms: settings.retry_backoff_max_ms,
            inbox_retention: settings.inbox_retention(),
            status,
        })
    }

    pub fn status(&self) -> ConsumerStatus {
        self.status.clone()
    }

    /// Consumes until `shutdown`. The message in hand is finished first unless it is
    /// waiting for a retry; then stored offsets are committed and the consumer leaves its
    /// group. Also purges the inbox past its retention, from a task of its own.
    pub async fn run(self, shutdown: CancellationToken) {
        // Detached: it ends at the next shutdown check, and must not hold up the exit.
        drop(tokio::spawn(purge_inbox_periodically(
            self.pool.clone(),
            self.inbox_retention,
            shutdown.clone(),
        )));
        let mut held = Held::default();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Messages handed over while the partitions were paused come first, in order.
            if let Some(msg) = held.pending.pop_front() {
                if !self.still_assigned(&msg) {
                    continue;
                }
                if !self.finish(&msg, &shutdown, &mut held).await {
                    break;
                }
                continue;
            }
            // Biased: once shutdown is asked for, no further message is started.
            let msg = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                msg = self.consumer.recv() => msg,
            };
            match msg {
                Ok(msg) => {
                    self.status.clear_outage(Some(OutageKind::Broker));
                    if !self.finish(&msg, &shutdown, &mut held).await {
                        break;
                    }
                }
                Err(e) => {
                    if is_broker_outage(&e) {
                        self.status.set_outage(OutageKind::Broker);
                    }
                    tracing::warn!(error = %e, "consumer error");
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit is the usual reason: not a problem.
            tracing::debug!(error = %e, "final offset commit");
        }
        self.consumer.unsubscribe();
        tracing::info!(group = %self.group_id, "consumer stopped");
        // Closing leaves the group, which librdkafka may wait on indefinitely if the broker
        // does not answer. Bound it: past the limit the session timeout retires the member,
        // and the process must still be able to exit.
        let group = self.group_id.clone();
        let consumer = self.consumer;
        let closing = tokio::task::spawn_blocking(move || drop(consumer));
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!(%group, "consumer did not leave its group in time; the broker will expire it");
        }
    }

    /// Handles one message to the end and stores its offset; then resumes whatever was
    /// paused meanwhile. Returns false when shutdown interrupted it: the caller must stop
    /// without consuming anything further (the message is redelivered next time).
    async fn finish<M: Message>(
        &self,
        msg: &M,
        shutdown: &CancellationToken,
        held: &mut Held,
    ) -> bool
    where
        M::Headers: Headers,
    {
        if !self.handle_message(msg, shutdown, held).await {
            return false;
        }
        if let Err(e) = self
            .consumer
            .store_offset(msg.topic(), msg.partition(), msg.offset())
        {
            // The partition was revoked meanwhile: its next owner starts from the last
            // commit and the inbox absorbs the repeat.
            tracing::warn!(error = %e, "could not store offset");
        }
        if !held.paused.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in std::mem::take(&mut held.paused) {
                tpl.add_partition(&topic, partition);
            }
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::debug!(error = %e, "resuming partitions (some were revoked)");
            }
            self.status.set_paused(&held.paused);
            tracing::info!(partitions = tpl.count(), "consumption resumed");
        }
        self.status.clear_outage(Some(OutageKind::Database));
        true
    }

    /// Processes one message; returns whether it was applied or dead-lettered (false only
    /// when shutdown interrupted a wait, so the message is redelivered next time).
    async fn handle_message<M: Message>(
        &self,
        msg: &M,
        shutdown: &CancellationToken,
        held: &mut Held,
    ) -> bool
    where
        M::Headers: Headers,
    {
        let hdrs = header_map(msg);
        let span = tracing::info_span!(
            "kafka.consume",
            otel.kind = "consumer",
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            event_type = tracing::field::Empty,
            event_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        kaip_telemetry::set_parent_from_headers(&span, &hdrs);
        let delivery = Delivery {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            trace_id: kaip_telemetry::trace_id_of(&span),
        };
        async {
            let envelope = match msg.payload().map(serde_json::from_slice::<EventEnvelope>) {
                None => {
                    return self
                        .dead_letter(msg, "message has no payload", 1, shutdown, held)
                        .await
                }
                Some(Err(e)) => {
                    let error = format!("malformed event envelope: {e}");
                    return self.dead_letter(msg, &error, 1, shutdown, held).await;
                }
                Some(Ok(env)) => env,
            };
            let span = tracing::Span::current();
            span.record("event_type", envelope.event_type.as_str());
            span.record("event_id", envelope.id.to_string().as_str());
            if let Err(error) = check_producer(
                &self.topic_prefix,
                msg.topic(),
                &envelope.producer,
                &envelope.event_type,
            ) {
                return self.dead_letter(msg, &error, 1, shutdown, held).await;
            }

            let mut attempt = 1u32;
            let mut outage_waits = 0u32;
            loop {
                let failure = match self.process(&envelope, &delivery).await {
                    Ok(outcome) => {
                        tracing::Span::current().record("outcome", format!("{outcome:?}").as_str());
                        tracing::debug!(?outcome, "event processed");
                        return true;
                    }
                    Err(HandlerError::Permanent(e)) => {
                        return self.dead_letter(msg, &e, attempt, shutdown, held).await;
                    }
                    Err(HandlerError::Unavailable(e)) => Failure::Outage(e),
                    // Only count the attempt if the database answers: otherwise this is an
                    // outage that surfaced as an unclassified error.
                    Err(HandlerError::Transient(e)) if self.database_answers().await => {
                        Failure::Retry(e)
                    }
                    Err(HandlerError::Transient(e)) => Failure::Outage(e),
                };
                match failure {
                    Failure::Outage(e) => {
                        self.status.set_outage(OutageKind::Database);
                        let backoff = self.backoff(outage_waits);
                        tracing::warn!(error = %e, ?backoff, "database unavailable; partitions paused, retrying the same event");
                        if !self.wait(backoff, shutdown, held).await {
                            return false;
                        }
                        outage_waits = outage_waits.saturating_add(1);
                    }
                    Failure::Retry(e) if attempt >= self.max_attempts => {
                        let error = format!("gave up after {attempt} attempts: {e}");
                        return self.dead_letter(msg, &error, attempt, shutdown, held).await;
                    }
                    Failure::Retry(e) => {
                        let backoff = self.backoff(attempt - 1);
                        tracing::warn!(attempt, error = %e, ?backoff, "event failed; retrying");
                        if !self.wait(backoff, shutdown, held).await {
                            return false;
                        }
                        attempt += 1;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One attempt at [`process_event`], on the blocking pool.
    async fn process(
        &self,
        envelope: &EventEnvelope,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        let pool = self.pool.clone();
        let outbox = self.outbox.clone();
        let handler = self.handler.clone();
        let env = envelope.clone();
        let del = delivery.clone();
        let work_span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            work_span.in_scope(|| process_event(&pool, &outbox, handler.as_ref(), &env, &del))
        })
        .await
        .unwrap_or_else(|e| {
            Err(HandlerError::Transient(format!(
                "handler panicked or was cancelled: {e}"
            )))
        })
    }

    async fn database_answers(&self) -> bool {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || database_answers(&pool))
            .await
            .unwrap_or(false)
    }

    /// `retry_backoff_ms · 2^n`, at most `retry_backoff_max_ms`; never overflows.
    fn backoff(&self, n: u32) -> Duration {
        let factor = 1u64.checked_shl(n).unwrap_or(u64::MAX);
        Duration::from_millis(
            self.retry_backoff_ms
                .saturating_mul(factor)
                .min(self.retry_backoff_max_ms),
        )
    }

    /// Waits `duration` with every assigned partition paused, polling meanwhile so the
    /// consumer keeps its group membership (and serves rebalances). A message handed over
    /// meanwhile is kept, in order, to be processed after the one in hand: storing a later
    /// offset first would skip it. Returns false if shutdown came first.
    async fn wait(
        &self,
        duration: Duration,
        shutdown: &CancellationToken,
        held: &mut Held,
    ) -> bool {
        self.pause_assigned(held);
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(deadline) => return true,
                msg = self.consumer.recv() => match msg {
                    Ok(m) => {
                        let m = m.detach();
                        self.pause_one(held, m.topic(), m.partition());
                        held.pending.push_back(m);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "consumer error while paused");
                        let pause = tokio::time::Instant::now() + Duration::from_millis(100);
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => return false,
                            _ = tokio::time::sleep_until(pause.min(deadline)) => {}
                        }
                    }
                },
            }
        }
    }

    /// Pauses the whole current assignment. Always the whole of it, and again on every
    /// wait: a partition revoked and assigned again during a rebalance comes back unpaused.
    fn pause_assigned(&self, held: &mut Held) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        if assignment.count() == 0 {
            return;
        }
        for e in assignment.elements() {
            held.paused.insert((e.topic().to_owned(), e.partition()));
        }
        if let Err(e) = self.consumer.pause(&assignment) {
            tracing::warn!(error = %e, "could not pause partitions");
        }
        self.status.set_paused(&held.paused);
    }

    fn pause_one(&self, held: &mut Held, topic: &str, partition: i32) {
        held.paused.insert((topic.to_owned(), partition));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(error = %e, "could not pause partition");
        }
        self.status.set_paused(&held.paused);
    }

    /// Whether the consumer still holds `msg`'s partition. A message held back while its
    /// partition was revoked belongs to the partition's new owner (which starts from the
    /// last commit, at or before it): processing it here too could reorder its aggregate.
    fn still_assigned(&self, msg: &rdkafka::message::OwnedMessage) -> bool {
        self.consumer.assignment().is_ok_and(|a| {
            a.elements()
                .iter()
                .any(|e| e.topic() == msg.topic() && e.partition() == msg.partition())
        })
    }

    /// Sends the message to the dead-letter topic with the error. Keeps trying until the
    /// broker takes it (an event is never dropped; a broker outage is waited out with the
    /// partitions paused), unless shutting down.
    async fn dead_letter<M: Message>(
        &self,
        msg: &M,
        error: &str,
        attempts: u32,
        shutdown: &CancellationToken,
        held: &mut Held,
    ) -> bool
    where
        M::Headers: Headers,
    {
        tracing::error!(
            error,
            topic = msg.topic(),
            offset = msg.offset(),
            "dead-lettering event"
        );
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let attempts = attempts.to_string();
        let mut waits = 0u32;
        loop {
            let mut hdrs = OwnedHeaders::new();
            if let Some(original) = msg.headers() {
                for h in original.iter() {
                    hdrs = hdrs.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
            let hdrs = hdrs
                .insert(Header {
                    key: headers::DLQ_ERROR,
                    value: Some(error),
                })
                .insert(Header {
                    key: headers::DLQ_ORIGINAL_TOPIC,
                    value: Some(msg.topic()),
                })
                .insert(Header {
                    key: headers::DLQ_ORIGINAL_PARTITION,
                    value: Some(&partition),
                })
                .insert(Header {
                    key: headers::DLQ_ORIGINAL_OFFSET,
                    value: Some(&offset),
                })
                .insert(Header {
                    key: headers::DLQ_CONSUMER_GROUP,
                    value: Some(&self.group_id),
                })
                .insert(Header {
                    key: headers::DLQ_ATTEMPTS,
                    value: Some(&attempts),
                });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.dlq_topic).headers(hdrs);
            if let Some(key) = msg.key() {
                record = record.key(key);
            }
            if let Some(payload) = msg.payload() {
                record = record.payload(payload);
            }
            match self
                .producer
                .send(record, Timeout::After(Duration::from_secs(30)))
                .await
            {
                Ok(_) => {
                    self.status.clear_outage(Some(OutageKind::Broker));
                    return true;
                }
                Err((e, _)) => {
                    self.status.set_outage(OutageKind::Broker);
                    let backoff = self.backoff(waits);
                    tracing::error!(error = %e, ?backoff, "could not dead-letter event; retrying");
                    if !self.wait(backoff, shutdown, held).await {
                        return false;
                    }
                    waits = waits.saturating_add(1);
                }
            }
        }
    }
}

/// Errors that say the broker is unreachable (as opposed to a problem with one message).
fn is_broker_outage(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::NetworkException
                | C::RequestTimedOut
                | C::OperationTimedOut
                | C::Resolve
                | C::BrokerNotAvailable
        )
    )
}

/// A message's headers as UTF-8 strings (non-UTF-8 values are skipped).
pub fn header_map<M: Message>(msg: &M) -> HashMap<String, String>
where
    M::Headers: Headers,
{
    let mut map = HashMap::new();
    if let Some(hs) = msg.headers() {
        for h in hs.iter() {
            if let Some(v) = h.value.and_then(|v| std::str::from_utf8(v).ok()) {
                map.insert(h.key.to_owned(), v.to_owned());
            }
        }
    }
    map
}

/// Records every event in the inbox and changes nothing else. Services whose domain is
/// not built yet run it, so that their group membership, offsets, inbox and dead-letter
/// path are live (and observable) before their first real handler lands.
pub struct RecordOnly;

impl EventHandler for RecordOnly {
    fn handle(
        &self,
        _: &mut PgConnection,
        _: &mut OutboxTx<'_>,
        _: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        Ok(Handled::Ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with(brokers: &[(i32, &str)], leaders: &[i32]) -> Statistics {
        let mut stats = Statistics::default();
        for (id, state) in brokers {
            stats.brokers.insert(
                format!("b{id}"),
                rdkafka::statistics::Broker {
                    nodeid: *id,
                    state: (*state).into(),
                    ..Default::default()
                },
            );
        }
        let mut topic = rdkafka::statistics::Topic::default();
        for (i, leader) in leaders.iter().enumerate() {
            topic.partitions.insert(
                i as i32,
                rdkafka::statistics::Partition {
                    partition: i as i32,
                    leader: *leader,
                    ..Default::default()
                },
            );
        }
        stats.topics.insert("t".into(), topic);
        stats
    }

    #[test]
    fn a_broker_outage_ends_when_the_statistics_show_the_brokers_up_without_a_message() {
        let status = ConsumerStatus::default();
        let tracker = AssignmentTracker {
            assigned: status.assigned.clone(),
            lag: status.lag.clone(),
            state: status.state.clone(),
        };
        status.set_outage(OutageKind::Broker);
        // Still down, or only the bootstrap entry (-1) up, or a partition's leader down.
        for stats in [
            stats_with(&[(1, "DOWN")], &[1]),
            stats_with(&[(-1, "UP"), (1, "CONNECT")], &[1]),
            stats_with(&[(1, "UP"), (2, "DOWN")], &[1, 2]),
        ] {
            tracker.stats(stats);
            assert_eq!(status.outage().map(|o| o.kind), Some(OutageKind::Broker));
        }
        tracker.stats(stats_with(&[(-1, "UP"), (1, "UP"), (2, "UP")], &[1, 2]));
        assert_eq!(status.outage(), None, "the broker is back");

        // A database outage is not the broker's to clear.
        status.set_outage(OutageKind::Database);
        tracker.stats(stats_with(&[(1, "UP")], &[1]));
        assert_eq!(status.outage().map(|o| o.kind), Some(OutageKind::Database));
    }

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn classify(kind: DatabaseErrorKind, message: &'static str) -> HandlerError {
        diesel::result::Error::DatabaseError(kind, Box::new(Info(message))).into()
    }

    #[test]
    fn a_database_that_answers_but_cannot_work_is_an_outage_not_a_poison_event() {
        for message in [
            "canceling statement due to lock timeout",
            "canceling statement due to statement timeout",
            "could not extend file \"base/16384/2619\": No space left on device",
            "out of memory",
            "the database system is shutting down",
        ] {
            assert!(
                matches!(
                    classify(DatabaseErrorKind::Unknown, message),
                    HandlerError::Unavailable(_)
                ),
                "{message}"
            );
        }
        // A deadlock or a serialization failure happens while everything is up: a bounded
        // number of retries, then the dead letter.
        assert!(matches!(
            classify(DatabaseErrorKind::Unknown, "deadlock detected"),
            HandlerError::Transient(_)
        ));
        assert!(matches!(
            classify(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access due to concurrent update"
            ),
            HandlerError::Transient(_)
        ));
        assert!(matches!(
            classify(
                DatabaseErrorKind::CheckViolation,
                "violates check constraint"
            ),
            HandlerError::Permanent(_)
        ));
        assert!(matches!(
            classify(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection"
            ),
            HandlerError::Unavailable(_)
        ));
    }

    #[test]
    fn an_event_must_come_on_its_producers_topic() {
        assert_eq!(
            check_producer("t1.", "t1.kaip.intake.events", "intake", "CallOpened"),
            Ok(())
        );
        assert_eq!(
            check_producer("", "kaip.gpu-ledger.events", "gpu-ledger", "GpuGranted"),
            Ok(())
        );
        let err =
            check_producer("t1.", "t1.kaip.intake.events", "scoring", "CallOpened").unwrap_err();
        assert!(err.starts_with("producer:"), "{err}");
        assert!(
            err.contains("`scoring`") && err.contains("`intake`"),
            "{err}"
        );
        // Another deployment's topic, or not an event topic at all.
        assert!(check_producer("t1.", "t2.kaip.intake.events", "intake", "CallOpened").is_err());
        assert!(check_producer("", "kaip.intake.dlq", "intake", "CallOpened").is_err());
    }

    #[test]
    fn a_producer_may_send_only_the_event_types_the_catalogue_gives_it() {
        // An operator integration may write to its own topic, but not milestones' decisions.
        let err =
            check_producer("", "kaip.operators.events", "operators", "TeamEliminated").unwrap_err();
        assert!(
            err.starts_with("event_type:") && err.contains("`milestones`"),
            "{err}"
        );
        assert!(
            check_producer("", "kaip.operators.events", "operators", "GpuUsageReported").is_ok()
        );
        assert!(check_producer("", "kaip.intake.events", "intake", "SelectionPublished").is_err());
        assert!(check_producer("", "kaip.scoring.events", "scoring", "SelectionPublished").is_ok());
        // A type the catalogue does not list is left to the handler (which ignores it).
        assert!(check_producer("", "kaip.intake.events", "intake", "SomethingNewer").is_ok());
    }

    #[test]
    fn connection_failures_are_outages_and_constraint_violations_are_permanent() {
        use diesel::result::Error as E;
        let db = |kind| E::DatabaseError(kind, Box::new(String::from("x")));
        for kind in [
            DatabaseErrorKind::ClosedConnection,
            DatabaseErrorKind::UnableToSendCommand,
        ] {
            assert!(matches!(
                HandlerError::from(db(kind)),
                HandlerError::Unavailable(_)
            ));
        }
        assert!(matches!(
            HandlerError::from(E::BrokenTransactionManager),
            HandlerError::Unavailable(_)
        ));
        assert!(matches!(
            HandlerError::from(db(DatabaseErrorKind::SerializationFailure)),
            HandlerError::Transient(_)
        ));
        assert!(matches!(
            HandlerError::from(db(DatabaseErrorKind::CheckViolation)),
            HandlerError::Permanent(_)
        ));
    }
}
