//! The outbox relay: publishes committed events to Kafka and marks them sent only after
//! the broker acknowledged them. A relay that dies between the acknowledgement and the mark
//! leaves the events pending; the next relay publishes them again and the consumers' inboxes
//! drop the duplicates. That is the at-least-once half of exactly-once effects.
//!
//! Order per key: within a key, an event is handed to the producer only once the previous
//! one's delivery report came back OK (keys proceed in parallel), so a refusal reported late
//! cannot let a later event of the key reach the topic first. The first failure of a key
//! holds the rest of that key for the batch: they are not sent. The failed row stays pending
//! with its error and blocks its key (see [`claim_pending`]) until it goes through, retried
//! after a backoff that grows with its failures; [`outbox_stats`](crate::outbox::outbox_stats)
//! counts it for readiness and metrics.

use crate::outbox::{
    claim_pending, last_seq, mark_failed, mark_sent, purge_sent_before, PendingEvent,
};
use crate::settings::OutboxSettings;
use crate::PgPool;
use futures::future::join_all;
use kaip_contracts::events::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("relay task: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("relay interrupted by an injected fault at {0:?}")]
    Injected(FaultPoint),
}

/// Points in the real publication path where a test can make the relay "crash".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The broker acknowledged the batch; the rows are not marked sent yet.
    AfterAck,
}

/// Decides, at each [`FaultPoint`], whether the relay dies there. Returning `true` aborts
/// the batch exactly as a crash would: the claiming transaction rolls back, so the rows
/// stay pending although the broker holds them.
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> bool + Send + Sync>;

/// What happened to one event handed to [`publish_in_order`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// The broker acknowledged it.
    Acked,
    /// The producer or the broker refused it.
    Failed(String),
    /// Not sent: an earlier event of the same key failed in this batch.
    Held,
}

/// How long the relay keeps draining after the stop before it gives up (the rows stay
/// pending for the next relay).
pub const FINAL_DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// The relay of one service process.
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    wake: Arc<Notify>,
    settings: OutboxSettings,
    fault: Option<FaultHook>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        producer: FutureProducer,
        wake: Arc<Notify>,
        settings: OutboxSettings,
    ) -> Self {
        Self {
            pool,
            producer,
            wake,
            settings,
            fault: None,
        }
    }

    /// Installs a fault-injection hook (tests crash the real relay with it).
    pub fn with_fault_hook(mut self, hook: FaultHook) -> Self {
        self.fault = Some(hook);
        self
    }

    /// Publishes until `shutdown`, then drains what is pending and flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_purge = tokio::time::Instant::now();
        loop {
            // Go round again at once while a pass made progress: a pass can stop short of
            // the backlog (a full batch, or keys that were blocked until this pass).
            let more = match self.publish_pending().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: publishing failed; will retry");
                    false
                }
            };
            if last_purge.elapsed() > self.settings.purge_interval() {
                last_purge = tokio::time::Instant::now();
                self.purge().await;
            }
            if more && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval()) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Last chance for events committed by requests (and by the consumer's last message)
        // that were drained before us. Only up to the last row committed when the stop
        // arrived, and within a deadline: other replicas keep committing, and the rows after
        // the mark are theirs to publish.
        match tokio::time::timeout(FINAL_DRAIN_DEADLINE, self.final_drain()).await {
            Ok(()) => {}
            Err(_) => tracing::warn!(
                deadline_secs = FINAL_DRAIN_DEADLINE.as_secs(),
                "outbox relay: final drain cut short by its deadline; events stay pending"
            ),
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            producer.flush(Timeout::After(Duration::from_secs(10)))
        })
        .await;
        tracing::info!("outbox relay stopped");
    }

    /// Publishes what was committed up to the moment it is called, batch by batch.
    async fn final_drain(&self) {
        let pool = self.pool.clone();
        let mark = tokio::task::spawn_blocking(move || -> Result<Option<i64>, RelayError> {
            Ok(last_seq(&mut *pool.get()?)?)
        })
        .await;
        let up_to = match mark {
            Ok(Ok(Some(seq))) => seq,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbox relay: final drain failed; events stay pending");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay: final drain failed; events stay pending");
                return;
            }
        };
        loop {
            match self.publish_batch(Some(up_to)).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: final drain failed; events stay pending");
                    break;
                }
            }
        }
    }

    /// Publishes one batch; returns how many events the broker acknowledged and were
    /// marked sent.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        self.publish_batch(None).await
    }

    /// One batch of the rows up to `up_to` (all when `None`).
    async fn publish_batch(&self, up_to: Option<i64>) -> Result<usize, RelayError> {
        let pool = self.pool.clone();
        let producer = self.producer.clone();
        let limit = self.settings.batch_size;
        let fault = self.fault.clone();
        let backoff = (
            self.settings.retry_backoff_ms,
            self.settings.retry_backoff_max_ms,
        );
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<usize, RelayError> {
            let mut conn = pool.get()?;
            diesel::Connection::transaction(&mut *conn, |c| {
                let events = claim_pending(c, limit, up_to, backoff)?;
                if events.is_empty() {
                    return Ok(0);
                }
                let outcomes = handle.block_on(publish_in_order(&producer, &events));
                if fault.as_ref().is_some_and(|f| f(FaultPoint::AfterAck)) {
                    return Err(RelayError::Injected(FaultPoint::AfterAck));
                }
                let settled = settle(&events, &outcomes);
                for (seq, error) in &settled.failed {
                    mark_failed(c, *seq, error)?;
                }
                mark_sent(c, &settled.acked)?;
                Ok(settled.acked.len())
            })
        })
        .await?
    }

    /// Deletes published events past the retention period; returns how many.
    pub async fn purge_expired(&self) -> Result<usize, RelayError> {
        let pool = self.pool.clone();
        let cutoff = chrono::Utc::now() - chrono::Duration::hours(self.settings.retention_hours);
        tokio::task::spawn_blocking(move || -> Result<usize, RelayError> {
            Ok(purge_sent_before(&mut *pool.get()?, cutoff)?)
        })
        .await?
    }

    async fn purge(&self) {
        match self.purge_expired().await {
            Ok(n) if n > 0 => {
                tracing::info!(purged = n, "outbox: purged published events past retention")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox: purge failed"),
        }
    }
}

/// The rows to mark after a batch.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settled {
    acked: Vec<i64>,
    failed: Vec<(i64, String)>,
}

/// Walks a batch in `seq` order: once an event of a key failed or was held, no later event
/// of that key is marked sent. [`publish_in_order`] never sends past a key's failure, so
/// this is a second guard, not the mechanism that keeps the order.
fn settle(events: &[PendingEvent], outcomes: &[SendOutcome]) -> Settled {
    let mut blocked: HashSet<(&str, &str)> = HashSet::new();
    let mut out = Settled::default();
    for (event, outcome) in events.iter().zip(outcomes) {
        let key = (event.topic.as_str(), event.event_key.as_str());
        match outcome {
            SendOutcome::Acked if !blocked.contains(&key) => out.acked.push(event.seq),
            SendOutcome::Acked => {
                tracing::warn!(event_id = %event.event_id, "acknowledged after an earlier event of its key failed; left pending to keep the key's order");
            }
            SendOutcome::Failed(e) => {
                tracing::warn!(event_id = %event.event_id, error = %e, "broker refused event; its key waits for it");
                out.failed.push((event.seq, e.clone()));
                blocked.insert(key);
            }
            SendOutcome::Held => {
                blocked.insert(key);
            }
        }
    }
    out
}

/// Sends `events` and waits for their acknowledgements, keeping each key's order on the
/// topic. Within a key, an event is handed to the producer only after the previous one's
/// delivery report came back OK: a refusal reported late (the broker refuses A1 after the
/// producer already took A2) can then never put A2 on the topic before A1. The first failure
/// of a key holds the rest of that key for this batch. Keys are independent and proceed in
/// parallel. Each send runs in a span that continues the trace of the request that wrote the
/// event, and that span's context travels in the message headers to the consumer.
pub async fn publish_in_order(
    producer: &FutureProducer,
    events: &[PendingEvent],
) -> Vec<SendOutcome> {
    publish_by_key(events, |event| send_one(producer, event)).await
}

/// The ordering of [`publish_in_order`], over any `send` (one event, to its delivery
/// report): per-key chains awaited one event after the other, keys in parallel.
async fn publish_by_key<'a, S, F>(events: &'a [PendingEvent], send: S) -> Vec<SendOutcome>
where
    S: Fn(&'a PendingEvent) -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    // Chains in order of their first event; each chain in `seq` order (the batch's order).
    let mut chain_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let key = (event.topic.as_str(), event.event_key.as_str());
        let c = *chain_of.entry(key).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[c].push(i);
    }
    let send = &send;
    let runs = chains.into_iter().map(|chain| async move {
        let mut out = Vec::with_capacity(chain.len());
        let mut failed = false;
        for i in chain {
            if failed {
                out.push((i, SendOutcome::Held));
                continue;
            }
            match send(&events[i]).await {
                Ok(()) => out.push((i, SendOutcome::Acked)),
                Err(e) => {
                    failed = true;
                    out.push((i, SendOutcome::Failed(e)));
                }
            }
        }
        out
    });
    let mut outcomes = vec![SendOutcome::Held; events.len()];
    for (i, outcome) in join_all(runs).await.into_iter().flatten() {
        outcomes[i] = outcome;
    }
    outcomes
}

/// Hands one event to the producer and waits for its delivery report.
async fn send_one(producer: &FutureProducer, event: &PendingEvent) -> Result<(), String> {
    let span = tracing::info_span!(
        "outbox.publish",
        otel.kind = "producer",
        event_id = %event.event_id,
        event_type = %event.event_type,
        topic = %event.topic,
    );
    let stored: HashMap<String, String> =
        serde_json::from_value(event.headers.clone()).unwrap_or_default();
    kaip_telemetry::set_parent_from_headers(&span, &stored);
    let enqueued = span.in_scope(|| {
        let trace = kaip_telemetry::current_trace_headers();
        let mut hdrs = OwnedHeaders::new().insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(event.event_type.as_str()),
        });
        for (k, v) in &trace {
            hdrs = hdrs.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let payload = serde_json::to_vec(&event.payload).unwrap_or_default();
        let record = FutureRecord::to(&event.topic)
            .key(&event.event_key)
            .payload(&payload)
            .headers(hdrs);
        // Enqueueing does not wait for the broker; refusals known locally (too large,
        // queue full, unknown topic already known) come back here at once.
        producer.send_result(record).map_err(|(e, _)| e.to_string())
    });
    match enqueued?.instrument(span).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("producer dropped the delivery".into()),
    }
}

/// [`publish_in_order`] as plain results (held events count as failures).
pub async fn publish(
    producer: &FutureProducer,
    events: &[PendingEvent],
) -> Vec<Result<(), String>> {
    publish_in_order(producer, events)
        .await
        .into_iter()
        .map(|o| match o {
            SendOutcome::Acked => Ok(()),
            SendOutcome::Failed(e) => Err(e),
            SendOutcome::Held => Err("held: an earlier event of its key failed".into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, key: &str) -> PendingEvent {
        PendingEvent {
            seq,
            event_id: uuid::Uuid::now_v7(),
            topic: "t".into(),
            event_key: key.into(),
            event_type: "E".into(),
            payload: serde_json::Value::Null,
            headers: serde_json::Value::Null,
            created_at: chrono::Utc::now(),
        }
    }

    /// A fake producer: logs each hand-over and each delivery report; the events in `refuse`
    /// are refused, late (after a delay, as a broker's refusal comes back).
    fn fake_send<'a>(
        log: &'a std::sync::Mutex<Vec<String>>,
        refuse: &'a [i64],
    ) -> impl Fn(
        &PendingEvent,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>> {
        move |event: &PendingEvent| {
            let seq = event.seq;
            log.lock().unwrap().push(format!("send {seq}"));
            Box::pin(async move {
                // Event 1 answers last by a wide margin, even on a loaded machine.
                tokio::time::sleep(Duration::from_millis(if seq == 1 { 300 } else { 5 })).await;
                let refused = refuse.contains(&seq);
                log.lock().unwrap().push(format!("report {seq}"));
                if refused {
                    Err("boom".to_owned())
                } else {
                    Ok(())
                }
            })
        }
    }

    #[tokio::test]
    async fn a_late_failure_stops_its_key_before_the_next_event_is_sent() {
        let events = [
            event(1, "a"),
            event(2, "b"),
            event(3, "a"),
            event(4, "b"),
            event(5, "a"),
        ];
        let log = std::sync::Mutex::new(Vec::new());
        let outcomes = publish_by_key(&events, fake_send(&log, &[1])).await;
        assert_eq!(
            outcomes,
            vec![
                SendOutcome::Failed("boom".into()),
                SendOutcome::Acked,
                SendOutcome::Held,
                SendOutcome::Acked,
                SendOutcome::Held,
            ]
        );
        let log = log.into_inner().unwrap();
        // A1 was refused late: A2 and A3 were never handed to the producer, so neither can
        // be on the topic before A1.
        assert!(!log.contains(&"send 3".to_owned()), "{log:?}");
        assert!(!log.contains(&"send 5".to_owned()), "{log:?}");
        // Key b did not wait for key a.
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(pos("report 4") < pos("report 1"), "{log:?}");
        let s = settle(&events, &outcomes);
        assert_eq!(s.acked, vec![2, 4]);
        assert_eq!(s.failed, vec![(1, "boom".to_owned())]);
    }

    #[tokio::test]
    async fn a_key_waits_for_each_report_before_its_next_send() {
        let events = [event(1, "a"), event(2, "a"), event(3, "a")];
        let log = std::sync::Mutex::new(Vec::new());
        let outcomes = publish_by_key(&events, fake_send(&log, &[])).await;
        assert_eq!(outcomes, vec![SendOutcome::Acked; 3]);
        assert_eq!(
            log.into_inner().unwrap(),
            ["send 1", "report 1", "send 2", "report 2", "send 3", "report 3"]
        );
    }

    #[test]
    fn a_held_event_blocks_later_ones_of_its_key() {
        let events = [event(1, "a"), event(2, "a")];
        let outcomes = [SendOutcome::Held, SendOutcome::Acked];
        assert!(settle(&events, &outcomes).acked.is_empty());
    }
}
