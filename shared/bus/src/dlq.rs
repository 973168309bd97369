//! Replaying dead letters once the cause is fixed.
//!
//! The service's dead-letter topic is read with a group-less consumer, from each partition's
//! low to its high watermark at the time of the request. Each message that matches the
//! filter (original topic and offset range, or event ids) is handed to [`process_event`]:
//! the same handler, in the same transaction as the inbox record.
//!
//! Why re-process here rather than re-produce to the original topic: the original topic
//! belongs to the producing service and every consuming service reads it, so a re-produced
//! event would reach all of them (out of order with respect to its aggregate's later events)
//! and mix replays with the producer's own stream. Re-processing touches only this
//! service, and it is safe with several replicas replaying at once: the inbox's primary key
//! serialises them, so whichever commits first applies the event and the others see a
//! duplicate. A dead letter stays on the DLQ after a replay (Kafka topics are append-only);
//! replaying it again is a recorded no-op.

use crate::consumer::{check_producer, header_map, process_event, Delivery, Outcome};
use crate::settings::KafkaSettings;
use crate::{EventHandler, Outbox, PgPool};
use kaip_contracts::events::headers;
use kaip_contracts::EventEnvelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// At most this many event ids per request.
pub const MAX_EVENT_IDS: usize = 1000;

/// `POST /admin/dlq/replay`: what to move back into processing. Filters combine with AND;
/// at least `topic` or `event_ids` is required.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The topic the events were consumed from (`kaip-dlq-original-topic`), with or
    /// without the deployment prefix.
    #[serde(default)]
    pub topic: Option<String>,
    /// Original partition (needs `topic`).
    #[serde(default)]
    pub partition: Option<i32>,
    /// First original offset to replay, inclusive (needs `topic`).
    #[serde(default)]
    pub from_offset: Option<i64>,
    /// Last original offset to replay, inclusive (needs `topic`).
    #[serde(default)]
    pub to_offset: Option<i64>,
    #[serde(default)]
    pub event_ids: Vec<Uuid>,
    /// List what would be replayed; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A request that cannot be served: the field and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error("reading the dead-letter topic: {0}")]
    Broker(String),
}

fn invalid(field: &'static str, rule: &str) -> ReplayError {
    ReplayError::Invalid {
        field,
        rule: rule.to_owned(),
    }
}

impl ReplayRequest {
    pub fn validate(&self) -> Result<(), ReplayError> {
        if self.topic.is_none() && self.event_ids.is_empty() {
            return Err(invalid(
                "topic",
                "give the original topic (with an optional offset range) or event_ids",
            ));
        }
        if let Some(t) = &self.topic {
            if t.trim().is_empty() || t.chars().any(char::is_control) {
                return Err(invalid("topic", "must be a topic name"));
            }
        } else if self.partition.is_some() || self.from_offset.is_some() || self.to_offset.is_some()
        {
            return Err(invalid(
                "topic",
                "required with partition, from_offset or to_offset",
            ));
        }
        if self.partition.is_some_and(|p| p < 0) {
            return Err(invalid("partition", "must be 0 or more"));
        }
        if self.from_offset.is_some_and(|o| o < 0) {
            return Err(invalid("from_offset", "must be 0 or more"));
        }
        if let (Some(from), Some(to)) = (self.from_offset, self.to_offset) {
            if to < from {
                return Err(invalid("to_offset", "must not be before from_offset"));
            }
        }
        if self.to_offset.is_some_and(|o| o < 0) {
            return Err(invalid("to_offset", "must be 0 or more"));
        }
        if self.event_ids.len() > MAX_EVENT_IDS {
            return Err(ReplayError::Invalid {
                field: "event_ids",
                rule: format!("at most {MAX_EVENT_IDS} per request"),
            });
        }
        Ok(())
    }

    fn matches(&self, prefix: &str, letter: &DeadLetter) -> bool {
        if !self.event_ids.is_empty()
            && !letter
                .event_id
                .is_some_and(|id| self.event_ids.contains(&id))
        {
            return false;
        }
        if let Some(topic) = &self.topic {
            let Some(original) = &letter.original_topic else {
                return false;
            };
            if original != topic && *original != format!("{prefix}{topic}") {
                return false;
            }
            if self.partition.is_some() && self.partition != letter.original_partition {
                return false;
            }
            let offset = letter.original_offset.unwrap_or(-1);
            if self.from_offset.is_some_and(|f| offset < f)
                || self.to_offset.is_some_and(|t| offset > t)
            {
                return false;
            }
        }
        true
    }
}

/// One dead letter the request matched, and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayItem {
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    /// Why it was dead-lettered.
    pub dead_letter_error: Option<String>,
    /// `would_replay` (dry run), `applied`, `ignored`, `duplicate` (already applied: the
    /// inbox made the replay a no-op) or `failed`.
    pub result: String,
    /// Why a replay failed (the event stays on the DLQ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub matched: usize,
    pub items: Vec<ReplayItem>,
}

struct DeadLetter {
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
    original_topic: Option<String>,
    original_partition: Option<i32>,
    original_offset: Option<i64>,
    error: Option<String>,
    envelope: Option<EventEnvelope>,
    event_id: Option<Uuid>,
}

/// Replays one service's dead letters through its own handler.
#[derive(Clone)]
pub struct DlqReplayer {
    settings: KafkaSettings,
    dlq_topic: String,
    pool: PgPool,
    outbox: Outbox,
    handler: Arc<dyn EventHandler>,
}

impl DlqReplayer {
    pub fn new(
        settings: &KafkaSettings,
        service: &str,
        pool: PgPool,
        outbox: Outbox,
        handler: Arc<dyn EventHandler>,
    ) -> Self {
        Self {
            dlq_topic: settings.prefixed(&kaip_contracts::topics::dead_letter_topic_of(service)),
            settings: settings.clone(),
            pool,
            outbox,
            handler,
        }
    }

    /// Lists (dry run) or replays the dead letters `request` matches, in DLQ order.
    pub async fn replay(&self, request: &ReplayRequest) -> Result<ReplayReport, ReplayError> {
        request.validate()?;
        let settings = self.settings.clone();
        let topic = self.dlq_topic.clone();
        let req = request.clone();
        let letters = tokio::task::spawn_blocking(move || {
            read_matching(&settings, &topic, |l| {
                req.matches(&settings.topic_prefix, l)
            })
        })
        .await
        .map_err(|e| ReplayError::Broker(e.to_string()))??;

        let mut items = Vec::with_capacity(letters.len());
        for letter in letters {
            let (result, failure) = if request.dry_run {
                ("would_replay".to_owned(), None)
            } else {
                match self.reprocess(&letter).await {
                    Ok(outcome) => (
                        match outcome {
                            Outcome::Applied => "applied",
                            Outcome::Ignored => "ignored",
                            Outcome::Duplicate => "duplicate",
                        }
                        .to_owned(),
                        None,
                    ),
                    Err(e) => ("failed".to_owned(), Some(e)),
                }
            };
            tracing::info!(
                dry_run = request.dry_run,
                event_id = ?letter.event_id,
                dlq_offset = letter.offset,
                %result,
                "dead letter replay"
            );
            items.push(ReplayItem {
                dlq_partition: letter.partition,
                dlq_offset: letter.offset,
                original_topic: letter.original_topic,
                original_partition: letter.original_partition,
                original_offset: letter.original_offset,
                event_id: letter.event_id,
                event_type: letter.envelope.map(|e| e.event_type),
                dead_letter_error: letter.error,
                result,
                failure,
            });
        }
        Ok(ReplayReport {
            dry_run: request.dry_run,
            matched: items.len(),
            items,
        })
    }

    async fn reprocess(&self, letter: &DeadLetter) -> Result<Outcome, String> {
        let envelope = match (&letter.envelope, &letter.payload) {
            (Some(env), _) => env.clone(),
            (None, None) => return Err("the dead letter has no payload".into()),
            (None, Some(bytes)) => {
                return Err(match serde_json::from_slice::<EventEnvelope>(bytes) {
                    Err(e) => format!("malformed event envelope: {e}"),
                    Ok(_) => "unreadable event envelope".into(),
                })
            }
        };
        let topic = letter
            .original_topic
            .clone()
            .ok_or("the dead letter has no original topic header")?;
        check_producer(
            &self.settings.topic_prefix,
            &topic,
            &envelope.producer,
            &envelope.event_type,
        )?;
        let delivery = Delivery {
            topic,
            partition: letter.original_partition.unwrap_or(-1),
            offset: letter.original_offset.unwrap_or(-1),
            trace_id: None,
        };
        let (pool, outbox, handler) =
            (self.pool.clone(), self.outbox.clone(), self.handler.clone());
        tokio::task::spawn_blocking(move || {
            process_event(&pool, &outbox, handler.as_ref(), &envelope, &delivery)
        })
        .await
        .map_err(|e| format!("handler panicked: {e}"))?
        .map_err(|e| e.to_string())
    }
}

/// Reads `topic` from the low to the high watermark of each partition (as of now) and keeps
/// the messages `keep` accepts.
fn read_matching(
    settings: &KafkaSettings,
    topic: &str,
    keep: impl Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, ReplayError> {
    let broker = |e: rdkafka::error::KafkaError| ReplayError::Broker(e.to_string());
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.brokers);
    for (k, v) in &settings.client {
        cfg.set(k, v);
    }
    // Never joins the group (partitions are assigned, not subscribed) nor commits. Prefixed
    // like every group, so infra/kafka-acls.yaml's `kaip-dlq-replay-` pattern covers it.
    let consumer: BaseConsumer = cfg
        .set(
            "group.id",
            settings.prefixed(&format!("kaip-dlq-replay-{}", Uuid::new_v4())),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(broker)?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(broker)?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(broker)?;
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
                    .map_err(broker)?;
                ends.insert(p.id(), high);
            }
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).map_err(broker)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(ReplayError::Broker(
                "timed out before reaching the end of the dead-letter topic".into(),
            ));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.map_err(broker)?;
        let (partition, offset) = (msg.partition(), msg.offset());
        let Some(&end) = ends.get(&partition) else {
            continue;
        };
        if offset + 1 >= end {
            ends.remove(&partition);
        }
        if offset >= end {
            continue;
        }
        let hdrs = header_map(&msg);
        let envelope = msg
            .payload()
            .and_then(|p| serde_json::from_slice::<EventEnvelope>(p).ok());
        let letter = DeadLetter {
            partition,
            offset,
            payload: msg.payload().map(<[u8]>::to_vec),
            original_topic: hdrs.get(headers::DLQ_ORIGINAL_TOPIC).cloned(),
            original_partition: hdrs
                .get(headers::DLQ_ORIGINAL_PARTITION)
                .and_then(|v| v.parse().ok()),
            original_offset: hdrs
                .get(headers::DLQ_ORIGINAL_OFFSET)
                .and_then(|v| v.parse().ok()),
            error: hdrs.get(headers::DLQ_ERROR).cloned(),
            event_id: envelope.as_ref().map(|e| e.id.0),
            envelope,
        };
        if keep(&letter) {
            out.push(letter);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: ReplayRequest) -> &'static str {
        match r.validate() {
            Err(ReplayError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_replay_request_names_the_field_it_breaks() {
        assert_eq!(field(ReplayRequest::default()), "topic");
        let topic = Some("kaip.intake.events".to_owned());
        assert_eq!(
            field(ReplayRequest {
                from_offset: Some(1),
                ..Default::default()
            }),
            "topic"
        );
        assert_eq!(
            field(ReplayRequest {
                topic: topic.clone(),
                from_offset: Some(5),
                to_offset: Some(4),
                ..Default::default()
            }),
            "to_offset"
        );
        assert_eq!(
            field(ReplayRequest {
                topic: topic.clone(),
                from_offset: Some(-1),
                ..Default::default()
            }),
            "from_offset"
        );
        assert_eq!(
            field(ReplayRequest {
                topic: topic.clone(),
                partition: Some(-1),
                ..Default::default()
            }),
            "partition"
        );
        assert_eq!(
            field(ReplayRequest {
                event_ids: vec![Uuid::nil(); MAX_EVENT_IDS + 1],
                ..Default::default()
            }),
            "event_ids"
        );
        assert!(ReplayRequest {
            topic,
            from_offset: Some(4),
            to_offset: Some(4),
            ..Default::default()
        }
        .validate()
        .is_ok());
    }
}
