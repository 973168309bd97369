//! Idempotent event consumers.
//!
//! Each message is processed in one database transaction that records its event id in the
//! inbox and applies the handler's effects (including any events the handler emits through
//! the outbox). The offset is stored only after that transaction commits, so a crash
//! redelivers the message and the inbox turns the redelivery into a no-op. Messages that
//! cannot be processed (a malformed envelope, a payload that breaks the contract, or a
//! transient failure that outlasts the retries) go to the service's dead-letter topic with
//! the error, and the consumer carries on.

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
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Might succeed later (database unavailable, serialisation conflict): retry, then dead-letter.
    #[error("{0}")]
    Transient(String),
}

impl From<diesel::result::Error> for HandlerError {
    fn from(e: diesel::result::Error) -> Self {
        match &e {
            diesel::result::Error::DatabaseError(
                DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::ForeignKeyViolation,
                _,
            )
            | diesel::result::Error::SerializationError(_)
            | diesel::result::Error::DeserializationError(_) => {
                HandlerError::Permanent(e.to_string())
            }
            _ => HandlerError::Transient(e.to_string()),
        }
    }
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

/// Records `event` in the inbox and applies `handler`, in one transaction.
pub fn process_event(
    pool: &PgPool,
    outbox: &Outbox,
    handler: &dyn EventHandler,
    event: &EventEnvelope,
    delivery: &Delivery,
) -> Result<Outcome, HandlerError> {
    let mut conn = pool
        .get()
        .map_err(|e| HandlerError::Transient(format!("database pool: {e}")))?;
    outbox.transaction(&mut conn, |c, tx| {
        let inserted = diesel::insert_into(kaip_inbox::table)
            .values((
                kaip_inbox::event_id.eq(event.id.0),
                kaip_inbox::event_type.eq(&event.event_type),
                kaip_inbox::topic.eq(&delivery.topic),
                kaip_inbox::kafka_partition.eq(delivery.partition),
                kaip_inbox::kafka_offset.eq(delivery.offset),
                kaip_inbox::trace_id.eq(&delivery.trace_id),
                kaip_inbox::outcome.eq("applied"),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        if inserted == 0 {
            return Ok(Outcome::Duplicate);
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
    })
}

/// Tracks how many partitions the consumer holds, for readiness and for tests that must
/// not publish before the group has settled.
pub struct AssignmentTracker {
    assigned: Arc<AtomicUsize>,
}

impl ClientContext for AssignmentTracker {}

impl ConsumerContext for AssignmentTracker {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.assigned.store(tpl.count(), Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), "consumer assigned partitions");
            }
            Rebalance::Revoke(_) => self.assigned.store(0, Ordering::SeqCst),
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

/// A running consumer's shared state.
#[derive(Clone, Debug, Default)]
pub struct ConsumerStatus {
    pub assigned: Arc<AtomicUsize>,
}

impl ConsumerStatus {
    pub fn assigned_partitions(&self) -> usize {
        self.assigned.load(Ordering::SeqCst)
    }
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
    max_attempts: u32,
    retry_backoff: Duration,
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
            .create_with_context(AssignmentTracker {
                assigned: status.assigned.clone(),
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
            max_attempts: settings.max_attempts,
            retry_backoff: Duration::from_millis(settings.retry_backoff_ms),
            status,
        })
    }

    pub fn status(&self) -> ConsumerStatus {
        self.status.clone()
    }

    /// Consumes until `shutdown`. The message in hand is finished first; then stored offsets
    /// are committed and the consumer leaves its group.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = self.consumer.recv() => msg,
            };
            match msg {
                Ok(msg) => {
                    if self.handle_message(&msg, &shutdown).await {
                        if let Err(e) = self.consumer.store_offset_from_message(&msg) {
                            tracing::warn!(error = %e, "could not store offset");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
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

    /// Processes one message; returns whether its offset may be stored (false only when
    /// shutdown interrupted the retries, so the message is redelivered next time).
    async fn handle_message(
        &self,
        msg: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> bool {
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
                        .dead_letter(msg, "message has no payload", 1, shutdown)
                        .await
                }
                Some(Err(e)) => {
                    let error = format!("malformed event envelope: {e}");
                    return self.dead_letter(msg, &error, 1, shutdown).await;
                }
                Some(Ok(env)) => env,
            };
            let span = tracing::Span::current();
            span.record("event_type", envelope.event_type.as_str());
            span.record("event_id", envelope.id.to_string().as_str());

            let mut attempt = 1u32;
            loop {
                let pool = self.pool.clone();
                let outbox = self.outbox.clone();
                let handler = self.handler.clone();
                let env = envelope.clone();
                let del = delivery.clone();
                let work_span = tracing::Span::current();
                let result = tokio::task::spawn_blocking(move || {
                    work_span
                        .in_scope(|| process_event(&pool, &outbox, handler.as_ref(), &env, &del))
                })
                .await
                .unwrap_or_else(|e| {
                    Err(HandlerError::Transient(format!(
                        "handler panicked or was cancelled: {e}"
                    )))
                });
                match result {
                    Ok(outcome) => {
                        tracing::Span::current().record("outcome", format!("{outcome:?}").as_str());
                        tracing::debug!(?outcome, "event processed");
                        return true;
                    }
                    Err(HandlerError::Permanent(e)) => {
                        return self.dead_letter(msg, &e, attempt, shutdown).await;
                    }
                    Err(HandlerError::Transient(e)) if attempt >= self.max_attempts => {
                        let error = format!("gave up after {attempt} attempts: {e}");
                        return self.dead_letter(msg, &error, attempt, shutdown).await;
                    }
                    Err(HandlerError::Transient(e)) => {
                        let backoff = self.retry_backoff * 2u32.saturating_pow(attempt - 1);
                        tracing::warn!(attempt, error = %e, ?backoff, "event failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return false,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        attempt += 1;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Sends the message to the dead-letter topic with the error. Keeps trying until the
    /// broker takes it (an event is never dropped), unless shutting down.
    async fn dead_letter(
        &self,
        msg: &BorrowedMessage<'_>,
        error: &str,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::error!(
            error,
            topic = msg.topic(),
            offset = msg.offset(),
            "dead-lettering event"
        );
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let attempts = attempts.to_string();
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
                Ok(_) => return true,
                Err((e, _)) => {
                    tracing::error!(error = %e, "could not dead-letter event; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
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
