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
use std::collections::{HashMap, HashSet};
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

/// How often the feed looks for partitions added to its topics since it started.
pub const PARTITION_REFRESH: Duration = Duration::from_secs(5);

/// Assigns the feed to the current end of `topics` (unprefixed) and starts it. Returns once
/// the feed is positioned: every event produced after this returns will be seen, including
/// on partitions added later (noticed within [`PARTITION_REFRESH`], read from their start).
pub async fn start_feed(
    settings: &KafkaSettings,
    topics: &[&str],
    shutdown: CancellationToken,
) -> Result<EventFeed, KafkaError> {
    start_feed_with(settings, topics, shutdown, PARTITION_REFRESH).await
}

/// [`start_feed`] with the partition refresh interval.
pub async fn start_feed_with(
    settings: &KafkaSettings,
    topics: &[&str],
    shutdown: CancellationToken,
    refresh: Duration,
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
        let topics = topics.clone();
        tokio::task::spawn_blocking(move || position_at_end(consumer.as_ref(), &topics))
            .await
            .map_err(|_| KafkaError::Canceled)??
    };
    consumer.assign(&positioned)?;
    let mut known: HashSet<(String, i32)> = positioned
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    let (tx, _) = broadcast::channel(1024);
    let feed = EventFeed { tx: tx.clone() };
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(refresh);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    assign_new_partitions(&consumer, &topics, &mut known).await;
                    continue;
                }
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

/// Adds partitions created since the feed started, from their beginning: everything on
/// them was produced after the feed was positioned.
async fn assign_new_partitions(
    consumer: &Arc<StreamConsumer>,
    topics: &[String],
    known: &mut HashSet<(String, i32)>,
) {
    let found = {
        let consumer = consumer.clone();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, i32)>, KafkaError> {
            let mut found = Vec::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
                for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
                    found.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
                }
            }
            Ok(found)
        })
        .await
    };
    let found = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "feed: partition refresh failed; next time");
            return;
        }
        Err(_) => return,
    };
    let mut added = TopicPartitionList::new();
    for (topic, partition) in found {
        if !known.contains(&(topic.clone(), partition))
            && added
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .is_ok()
        {
            known.insert((topic, partition));
        }
    }
    if added.count() > 0 {
        match consumer.incremental_assign(&added) {
            Ok(()) => tracing::info!(partitions = added.count(), "feed: new partitions assigned"),
            Err(e) => {
                tracing::warn!(error = %e, "feed: could not assign new partitions; next time");
                for e in added.elements() {
                    known.remove(&(e.topic().to_owned(), e.partition()));
                }
            }
        }
    }
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
