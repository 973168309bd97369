//! The outbox relay: publishes committed events to Kafka and marks them sent only after
//! the broker acknowledged them. A relay that dies between the acknowledgement and the mark
//! leaves the events pending; the next relay publishes them again and the consumers' inboxes
//! drop the duplicates. That is the at-least-once half of exactly-once effects.

use crate::outbox::{claim_pending, mark_failed, mark_sent, purge_sent_before, PendingEvent};
use crate::settings::OutboxSettings;
use crate::PgPool;
use futures::future::join_all;
use kaip_contracts::events::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::collections::HashMap;
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
}

/// The relay of one service process.
pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    wake: Arc<Notify>,
    settings: OutboxSettings,
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
        }
    }

    /// Publishes until `shutdown`, then drains what is pending and flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_purge = tokio::time::Instant::now();
        loop {
            let more = match self.publish_pending().await {
                Ok(n) => n as i64 >= self.settings.batch_size,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: publishing failed; will retry");
                    false
                }
            };
            if last_purge.elapsed() > Duration::from_secs(600) {
                last_purge = tokio::time::Instant::now();
                self.purge().await;
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval()) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Last chance for events committed by requests that were drained before us.
        if let Err(e) = self.publish_pending().await {
            tracing::warn!(error = %e, "outbox relay: final drain failed; events stay pending");
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            producer.flush(Timeout::After(Duration::from_secs(10)))
        })
        .await;
        tracing::info!("outbox relay stopped");
    }

    /// Publishes one batch; returns how many events the broker acknowledged.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        let pool = self.pool.clone();
        let producer = self.producer.clone();
        let limit = self.settings.batch_size;
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<usize, RelayError> {
            let mut conn = pool.get()?;
            let acked = diesel::Connection::transaction(&mut *conn, |c| {
                let events = claim_pending(c, limit)?;
                if events.is_empty() {
                    return Ok::<_, diesel::result::Error>(0);
                }
                let results = handle.block_on(publish(&producer, &events));
                let mut acked = Vec::with_capacity(results.len());
                for (event, result) in events.iter().zip(results) {
                    match result {
                        Ok(()) => acked.push(event.seq),
                        Err(e) => {
                            tracing::warn!(event_id = %event.event_id, error = %e, "broker refused event");
                            mark_failed(c, event.seq, &e)?;
                        }
                    }
                }
                mark_sent(c, &acked)?;
                Ok(acked.len())
            })?;
            Ok(acked)
        })
        .await?
    }

    async fn purge(&self) {
        let pool = self.pool.clone();
        let cutoff = chrono::Utc::now() - chrono::Duration::hours(self.settings.retention_hours);
        let result = tokio::task::spawn_blocking(move || -> Result<usize, RelayError> {
            Ok(purge_sent_before(&mut *pool.get()?, cutoff)?)
        })
        .await;
        match result {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(purged = n, "outbox: purged published events past retention")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "outbox: purge failed"),
            Err(e) => tracing::warn!(error = %e, "outbox: purge task failed"),
            _ => {}
        }
    }
}

/// Sends `events` in order and waits for each acknowledgement. Each send runs in a span
/// that continues the trace of the request that wrote the event, and that span's context
/// travels in the message headers to the consumer.
pub async fn publish(
    producer: &FutureProducer,
    events: &[PendingEvent],
) -> Vec<Result<(), String>> {
    let sends = events.iter().map(|event| {
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
        async move {
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
            producer
                .send(record, Timeout::After(Duration::from_secs(30)))
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.to_string())
        }
        .instrument(span)
    });
    join_all(sends).await
}
