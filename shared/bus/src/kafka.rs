//! Kafka clients configured the one way K-AIP uses them.

use crate::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Producer defaults, chosen for latency: an event is sent as soon as the relay hands it
/// over (`linger.ms` 0; a batch handed over at once still travels in few requests, since
/// messages queue while a request is in flight). `kafka.client` overrides any of them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[("linger.ms", "0"), ("message.timeout.ms", "30000")];

/// Consumer defaults. `fetch.wait.max.ms` is the one that matters: a broker that does not
/// answer a parked fetch when data arrives (Tansu) holds every fetch that long, so the
/// librdkafka default of 500 ms put about 250 ms on every hop. A real Kafka broker answers
/// at once, and production may raise it (see the README) to spare idle fetches.
/// `kafka.client` overrides any of them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[("fetch.wait.max.ms", "5")];

/// `bootstrap.servers`, then `defaults`, then the deployment's `kafka.client` properties.
fn config_with(settings: &KafkaSettings, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.brokers);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in &settings.client {
        cfg.set(k, v);
    }
    cfg
}

/// Admin and other clients.
pub(crate) fn base_config(settings: &KafkaSettings) -> ClientConfig {
    config_with(settings, &[])
}

/// Consumers (services' groups and the gateway's feed).
pub(crate) fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    config_with(settings, CONSUMER_DEFAULTS)
}

/// An idempotent producer: retries never duplicate or reorder a partition's messages.
/// Idempotence and `acks=all` are not overridable: the outbox's guarantees rest on them.
pub fn producer(settings: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    config_with(settings, PRODUCER_DEFAULTS)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
}

/// Creates `topics` (already prefixed) if they do not exist. Existing topics are left alone.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[String]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base_config(settings).create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new_topics, &opts).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(%topic, ?code, "could not create topic");
                })
            }
        }
    }
    Ok(())
}
