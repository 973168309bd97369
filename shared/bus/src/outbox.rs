//! The transactional outbox: events are rows written in the same transaction as the state
//! change that caused them, so a change is never committed without its event nor an event
//! published for a change that rolled back.

use crate::schema::kaip_outbox;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use kaip_contracts::{Actor, DomainEvent, EventEnvelope};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// A service's handle on its outbox: which topic its events go to, and the bell that wakes
/// its relay. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    producer: Arc<str>,
    topic: Arc<str>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// `producer` is the service name; `topic` its (prefixed) event topic.
    pub fn new(producer: &str, topic: String) -> Self {
        Self {
            producer: producer.into(),
            topic: topic.into(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The bell the relay waits on.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs `f` in a transaction; events it enqueues commit with it, and the relay is woken
    /// right after the commit so they are published without waiting for the next poll.
    pub fn transaction<T, E, F>(&self, conn: &mut PgConnection, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection, &mut OutboxTx<'_>) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        let mut enqueued = 0usize;
        let result = conn.transaction(|c| {
            let mut tx = OutboxTx {
                outbox: self,
                enqueued: 0,
            };
            let out = f(c, &mut tx)?;
            enqueued = tx.enqueued;
            Ok(out)
        });
        if result.is_ok() && enqueued > 0 {
            self.wake.notify_one();
        }
        result
    }
}

/// The outbox inside one open transaction.
pub struct OutboxTx<'a> {
    outbox: &'a Outbox,
    enqueued: usize,
}

impl OutboxTx<'_> {
    /// Wraps `event` in an envelope and writes it to the outbox, with the current trace
    /// context as its Kafka headers. Returns the envelope (its id is the event id).
    pub fn publish<E: DomainEvent>(
        &mut self,
        conn: &mut PgConnection,
        actor: Actor,
        event: &E,
    ) -> QueryResult<EventEnvelope> {
        let envelope = EventEnvelope::wrap(&self.outbox.producer, actor, event)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        self.enqueue(conn, &envelope)?;
        Ok(envelope)
    }

    /// Writes an already built envelope.
    pub fn enqueue(
        &mut self,
        conn: &mut PgConnection,
        envelope: &EventEnvelope,
    ) -> QueryResult<()> {
        let payload = serde_json::to_value(envelope)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        let headers = serde_json::to_value(kaip_telemetry::current_trace_headers())
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        diesel::insert_into(kaip_outbox::table)
            .values((
                kaip_outbox::event_id.eq(envelope.id.0),
                kaip_outbox::topic.eq(&*self.outbox.topic),
                kaip_outbox::event_key.eq(envelope.aggregate_id.to_string()),
                kaip_outbox::event_type.eq(&envelope.event_type),
                kaip_outbox::payload.eq(payload),
                kaip_outbox::headers.eq(headers),
            ))
            .execute(conn)?;
        self.enqueued += 1;
        Ok(())
    }
}

/// One claimed, unsent outbox row.
#[derive(Clone, Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = kaip_outbox)]
pub struct PendingEvent {
    pub seq: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub event_key: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub headers: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` unsent events in publication order, locking them for this
/// transaction. Returns nothing if another relay holds the outbox: one relay publishes at
/// a time per database, which keeps each aggregate's events in order.
///
/// A key whose oldest pending event has failed to publish is *blocked*: only that head
/// event is claimed (to be tried again), never the ones behind it, so a later event of an
/// aggregate can never overtake an earlier one. A failing head is retried only after a
/// backoff (`backoff.0` ms, doubled per further consecutive failure, at most `backoff.1`
/// ms), and after the healthy rows, so rows that keep failing neither hammer the broker nor
/// fill the batch and starve the other keys.
///
/// `up_to` limits the claim to rows up to that `seq` (the final drain at shutdown).
pub fn claim_pending(
    conn: &mut PgConnection,
    limit: i64,
    up_to: Option<i64>,
    backoff: (u64, u64),
) -> QueryResult<Vec<PendingEvent>> {
    // A transaction-scoped advisory lock: released by commit or rollback, and by the
    // server if this process dies, so a crashed relay never blocks the next one.
    let locked: bool =
        diesel::select(pg_try_advisory_xact_lock(OUTBOX_LOCK_KEY)).get_result(conn)?;
    if !locked {
        return Ok(Vec::new());
    }
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    diesel::sql_query(
        "SELECT o.seq, o.event_id, o.topic, o.event_key, o.event_type, o.payload, o.headers, \
                o.created_at \
         FROM kaip_outbox o \
         WHERE o.sent_at IS NULL \
           AND ($2::bigint IS NULL OR o.seq <= $2) \
           AND NOT EXISTS (SELECT 1 FROM kaip_outbox h \
                           WHERE h.sent_at IS NULL AND h.last_error IS NOT NULL \
                             AND h.topic = o.topic AND h.event_key = o.event_key \
                             AND h.seq < o.seq) \
           AND (o.last_error IS NULL OR o.last_attempt_at IS NULL \
                OR o.last_attempt_at < now() - LEAST($4::float8, \
                       $3::float8 * power(2, LEAST(GREATEST(o.failures, 1), 31) - 1)) \
                   * interval '1 millisecond') \
         ORDER BY (o.last_error IS NOT NULL), o.seq \
         LIMIT $1 \
         FOR UPDATE OF o SKIP LOCKED",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, _>(up_to)
    .bind::<diesel::sql_types::BigInt, _>(ms(backoff.0))
    .bind::<diesel::sql_types::BigInt, _>(ms(backoff.1))
    .load(conn)
}

/// The highest `seq` committed so far (`None` when the outbox is empty).
pub fn last_seq(conn: &mut PgConnection) -> QueryResult<Option<i64>> {
    kaip_outbox::table
        .select(diesel::dsl::max(kaip_outbox::seq))
        .first(conn)
}

/// The outbox's backlog, for readiness and metrics: a row that keeps failing is visible
/// here, not only in a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, QueryableByName)]
pub struct OutboxStats {
    /// Events not yet acknowledged by the broker.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub pending: i64,
    /// Age of the oldest of them, in whole seconds (0 when none).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub oldest_pending_age_secs: i64,
    /// Pending events whose last publication attempt failed.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub failing: i64,
    /// Pending events that failed at least `stuck_after_attempts` times in a row.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub stuck: i64,
}

/// Reads [`OutboxStats`]; both partial indexes keep it cheap while the backlog is small.
pub fn outbox_stats(
    conn: &mut PgConnection,
    stuck_after_attempts: i32,
) -> QueryResult<OutboxStats> {
    diesel::sql_query(
        "SELECT count(*) AS pending, \
                COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::bigint, 0) \
                    AS oldest_pending_age_secs, \
                count(*) FILTER (WHERE last_error IS NOT NULL) AS failing, \
                count(*) FILTER (WHERE failures >= $1) AS stuck \
         FROM kaip_outbox WHERE sent_at IS NULL",
    )
    .bind::<diesel::sql_types::Integer, _>(stuck_after_attempts)
    .get_result(conn)
}

/// Marks events sent. Call only with events the broker acknowledged.
///
/// `sent_at` is the wall clock at the mark (`clock_timestamp()`), not the start of the
/// relay's transaction (`now()`): an event acknowledged late in a long batch must not look
/// as if it was sent before a `republish_since` cut-off taken while the batch ran.
pub fn mark_sent(conn: &mut PgConnection, seqs: &[i64]) -> QueryResult<usize> {
    diesel::update(kaip_outbox::table.filter(kaip_outbox::seq.eq_any(seqs)))
        .set((
            kaip_outbox::sent_at.eq(clock_timestamp().nullable()),
            kaip_outbox::attempts.eq(saturating_increment(ATTEMPTS_PLUS_ONE)),
            kaip_outbox::last_attempt_at.eq(clock_timestamp().nullable()),
            // A published row no longer blocks its key (see `claim_pending`) nor counts as
            // stuck, even if it is re-queued by `republish_since` later.
            kaip_outbox::failures.eq(0),
            kaip_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

/// Records a failed publication attempt (the event stays pending, blocks its key, and is
/// retried after its backoff).
pub fn mark_failed(conn: &mut PgConnection, seq: i64, error: &str) -> QueryResult<usize> {
    diesel::update(kaip_outbox::table.find(seq))
        .set((
            kaip_outbox::attempts.eq(saturating_increment(ATTEMPTS_PLUS_ONE)),
            kaip_outbox::failures.eq(saturating_increment(FAILURES_PLUS_ONE)),
            kaip_outbox::last_attempt_at.eq(clock_timestamp().nullable()),
            kaip_outbox::last_error.eq(error),
        ))
        .execute(conn)
}

/// `attempts + 1` and `failures + 1`, stuck at int4's maximum instead of failing the
/// relay's transaction with an overflow.
fn saturating_increment(
    sql: &'static str,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Integer> {
    diesel::dsl::sql(sql)
}
const ATTEMPTS_PLUS_ONE: &str = "LEAST(attempts, 2147483646) + 1";
const FAILURES_PLUS_ONE: &str = "LEAST(failures, 2147483646) + 1";

/// Deletes published events older than the retention period.
pub fn purge_sent_before(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(kaip_outbox::table.filter(kaip_outbox::sent_at.lt(cutoff))).execute(conn)
}

/// Puts events published at or after `since` back in the queue, e.g. after the broker lost
/// a topic. Consumers' inboxes make the second delivery harmless.
pub fn republish_since(conn: &mut PgConnection, since: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(kaip_outbox::table.filter(kaip_outbox::sent_at.ge(since)))
        .set(kaip_outbox::sent_at.eq(None::<DateTime<Utc>>))
        .execute(conn)
}

/// Events not yet acknowledged by the broker (for readiness and metrics).
pub fn pending_count(conn: &mut PgConnection) -> QueryResult<i64> {
    kaip_outbox::table
        .filter(kaip_outbox::sent_at.is_null())
        .count()
        .get_result(conn)
}

/// "KAIPOUTB" as a number: the advisory lock that elects the publishing relay.
const OUTBOX_LOCK_KEY: i64 = 0x4B41_4950_4F55_5442;

diesel::define_sql_function! {
    /// The wall clock, unlike `now()` which is frozen at the transaction's start.
    fn clock_timestamp() -> diesel::sql_types::Timestamptz;
}

diesel::define_sql_function! {
    fn pg_try_advisory_xact_lock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}
