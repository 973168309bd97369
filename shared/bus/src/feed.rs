//! The gateway's live view of all events, for GraphQL subscriptions.
//!
//! Every gateway replica must see every event (each serves its own WebSocket clients), so
//! the feed does not join a consumer group: it assigns itself all partitions of the event
//! topics, starting at their current end, and fans messages out on a broadcast channel.
//! Subscribers that fall behind lose the oldest events rather than slowing the feed.

use crate::consumer::header_map;
use crate::settings::KafkaSettings;
use kaip_contracts::EventEnvelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One event as the feed saw it.
#[derive(Clone, Debug)]
pub struct FeedEvent {
    pub topic: String,
    pub envelope: EventEnvelope,
    /// Kafka headers, trace context included.
    pub headers: HashMap<String, String>,
}

/// Subscribe here for live events.
#[derive(Clone, Debug)]
pub struct EventFeed {
    tx: broadcast::Sender<Arc<FeedEvent>>,
}

impl EventFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.tx.subscribe()
    }
}

/// Assigns the feed to the current end of `topics` (unprefixed) and starts it. Returns once
/// the feed is positioned: every event produced after this returns will be seen.
pub async fn start_feed(
    settings: &KafkaSettings,
    topics: &[&str],
    shutdown: CancellationToken,
) -> Result<EventFeed, KafkaError> {
    let consumer: StreamConsumer = crate::kafka::consumer_config(settings)
        .set(
            "group.id",
            settings.prefixed(&format!("kaip-gateway-feed-{}", uuid::Uuid::now_v7())),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let topics: Vec<String> = topics.iter().map(|t| settings.prefixed(t)).collect();
    let consumer = Arc::new(consumer);
    let positioned = {
        let consumer = consumer.clone();
        tokio::task::spawn_blocking(move || position_at_end(consumer.as_ref(), &topics))
            .await
            .map_err(|_| KafkaError::Canceled)??
    };
    consumer.assign(&positioned)?;
    let (tx, _) = broadcast::channel(1024);
    let feed = EventFeed { tx: tx.clone() };
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                msg = consumer.recv() => msg,
            };
            match msg {
                Ok(msg) => {
                    let Some(envelope) = msg
                        .payload()
                        .and_then(|p| serde_json::from_slice::<EventEnvelope>(p).ok())
                    else {
                        // Not ours to dead-letter: the consuming services do that.
                        tracing::debug!(
                            topic = msg.topic(),
                            offset = msg.offset(),
                            "feed skipped a malformed event"
                        );
                        continue;
                    };
                    let event = FeedEvent {
                        topic: msg.topic().to_owned(),
                        envelope,
                        headers: header_map(&msg),
                    };
                    // No subscribers is fine.
                    let _ = tx.send(Arc::new(event));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event feed error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        tracing::info!("event feed stopped");
    });
    Ok(feed)
}

fn position_at_end<C: Consumer>(
    consumer: &C,
    topics: &[String],
) -> Result<TopicPartitionList, KafkaError> {
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
            }
        }
    }
    Ok(tpl)
}
