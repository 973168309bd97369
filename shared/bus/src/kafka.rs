//! Kafka clients configured the one way K-AIP uses them.

use crate::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Producer defaults, chosen for latency: an event is sent as soon as the relay hands it
/// over (`linger.ms` 0; a batch handed over at once still travels in few requests, since
/// messages queue while a request is in flight). `kafka.client` overrides any of them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] =
    &[("linger.ms", "0"), ("message.timeout.ms", "30000")];

/// Consumer defaults. `fetch.wait.max.ms` is the one that matters: a broker that does not
/// answer a parked fetch when data arrives (Tansu) holds every fetch that long, so the
/// librdkafka default of 500 ms put about 250 ms on every hop. A real Kafka broker answers
/// at once, and production may raise it (see the README) to spare idle fetches.
/// `topic.metadata.refresh.interval.ms` (librdkafka: 5 minutes) bounds how long a
/// subscription to a topic that does not exist yet (a service started while the broker was
/// away creates its topics later) waits before it is noticed.
/// `kafka.client` overrides any of them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "5"),
    ("topic.metadata.refresh.interval.ms", "10000"),
];

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

/// `infra/topics.yaml`, embedded at build time: the topics a deployment has and how they
/// are configured.
pub const TOPICS_FILE: &str = include_str!("../../../infra/topics.yaml");

/// One topic of [`TOPICS_FILE`], its defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Unprefixed.
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs (`retention.ms`, `cleanup.policy`, `min.insync.replicas`, ...).
    pub configs: BTreeMap<String, String>,
}

/// Parses the topics file's shape: a `defaults:` map and a `topics:` list of maps, with
/// `key: value` lines, two-space indents and `#` comments. Any key other than `name`,
/// `partitions` and `replication_factor` is a topic config, with `_` read as `.`.
pub fn parse_topics(text: &str) -> Result<Vec<TopicSpec>, String> {
    #[derive(PartialEq)]
    enum Section {
        None,
        Defaults,
        Topics,
    }
    let mut section = Section::None;
    let mut defaults: BTreeMap<String, String> = BTreeMap::new();
    let mut raw: Vec<BTreeMap<String, String>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: &str| format!("topics file line {}: {what}", n + 1);
        if !line.starts_with(' ') {
            section = match line {
                "defaults:" => Section::Defaults,
                "topics:" => Section::Topics,
                other => return Err(at(&format!("unknown section `{other}`"))),
            };
            continue;
        }
        let trimmed = line.trim_start();
        let (starts_item, entry) = match trimmed.strip_prefix("- ") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let (key, value) = entry
            .split_once(':')
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .ok_or_else(|| at("expected `key: value`"))?;
        if key.is_empty() || value.is_empty() {
            return Err(at("expected `key: value`"));
        }
        match section {
            Section::Defaults if !starts_item => {
                defaults.insert(key, value);
            }
            Section::Topics if starts_item => raw.push(BTreeMap::from([(key, value)])),
            Section::Topics => raw
                .last_mut()
                .ok_or_else(|| at("a topic's key before its `- name:`"))?
                .extend([(key, value)]),
            _ => return Err(at("unexpected line")),
        }
    }
    raw.into_iter()
        .map(|fields| {
            let mut merged = defaults.clone();
            merged.extend(fields);
            let name = merged
                .remove("name")
                .ok_or("topics file: a topic without a name")?;
            let number = |merged: &mut BTreeMap<String, String>, key: &str| {
                merged
                    .remove(key)
                    .unwrap_or_else(|| "1".into())
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("topics file: {name}.{key} must be a whole number >= 1"))
            };
            let partitions = number(&mut merged, "partitions")?;
            let replication_factor = number(&mut merged, "replication_factor")?;
            let configs = merged
                .into_iter()
                .map(|(k, v)| (k.replace('_', "."), v))
                .collect();
            Ok(TopicSpec {
                name,
                partitions,
                replication_factor,
                configs,
            })
        })
        .collect()
}

/// The embedded file's entry for `name` (unprefixed).
pub fn topic_spec(name: &str) -> Result<Option<TopicSpec>, String> {
    static PARSED: OnceLock<Result<Vec<TopicSpec>, String>> = OnceLock::new();
    let specs = PARSED.get_or_init(|| parse_topics(TOPICS_FILE)).as_ref()?;
    Ok(specs.iter().find(|t| t.name == name).cloned())
}

/// The longest `retention.ms` the embedded file gives any topic, in milliseconds (`None`
/// when no topic sets one). A retention of -1 (kept forever) is reported as `i64::MAX`.
pub fn longest_retention_ms() -> Result<Option<i64>, String> {
    static PARSED: OnceLock<Result<Vec<TopicSpec>, String>> = OnceLock::new();
    let specs = PARSED.get_or_init(|| parse_topics(TOPICS_FILE)).as_ref()?;
    let mut longest = None;
    for spec in specs {
        if let Some(raw) = spec.configs.get("retention.ms") {
            let ms: i64 = raw.parse().map_err(|_| {
                format!("{}: retention.ms `{raw}` is not a whole number", spec.name)
            })?;
            let ms = if ms < 0 { i64::MAX } else { ms };
            longest = Some(longest.map_or(ms, |l: i64| l.max(ms)));
        }
    }
    Ok(longest)
}

/// Partitions and replication of a topic this process creates that the file does not list
/// (and no cap is set): the file's own defaults.
const UNLISTED_PARTITIONS: i32 = 3;
const UNLISTED_REPLICATION: i32 = 3;

/// How this process creates `topic` (prefixed): the file's counts, capped by
/// `kafka.partitions` / `kafka.replication_factor` when those are set (a local one-broker
/// setup; a warning says so when a cap lowers the file's value), and its configs, with
/// `min.insync.replicas` capped by the replication (more would refuse every `acks=all`
/// write). A topic the file does not list gets the caps (or 3 and 3) and no configs.
pub fn creation_spec(settings: &KafkaSettings, topic: &str) -> Result<TopicSpec, String> {
    let unprefixed = topic.strip_prefix(&settings.topic_prefix).unwrap_or(topic);
    let Some(mut spec) = topic_spec(unprefixed)? else {
        tracing::warn!(%topic, "topic not in infra/topics.yaml; created with defaults");
        return Ok(TopicSpec {
            name: topic.to_owned(),
            partitions: settings.partitions.unwrap_or(UNLISTED_PARTITIONS),
            replication_factor: settings.replication_factor.unwrap_or(UNLISTED_REPLICATION),
            configs: BTreeMap::new(),
        });
    };
    spec.name = topic.to_owned();
    spec.partitions = capped(
        topic,
        "kafka.partitions",
        spec.partitions,
        settings.partitions,
    );
    spec.replication_factor = capped(
        topic,
        "kafka.replication_factor",
        spec.replication_factor,
        settings.replication_factor,
    );
    if let Some(isr) = spec.configs.get_mut("min.insync.replicas") {
        let capped = isr
            .parse::<i32>()
            .unwrap_or(1)
            .clamp(1, spec.replication_factor);
        *isr = capped.to_string();
    }
    Ok(spec)
}

/// `file` lowered to `cap` when one is set, with a warning when that changes it: a cap meant
/// for a local broker must not silently weaken a production topic.
fn capped(topic: &str, key: &str, file: i32, cap: Option<i32>) -> i32 {
    match cap {
        Some(cap) if cap < file => {
            tracing::warn!(
                %topic,
                setting = key,
                file,
                cap,
                "a setting lowers the count infra/topics.yaml asks for (fine for a local \
                 broker; in production unset it)"
            );
            cap
        }
        _ => file,
    }
}

/// What a CreateTopics answer means for start-up: `exists` is asked only when the client
/// was refused, so a locked-down cluster whose topics were made from the file starts.
fn judge_creation(
    topic: &str,
    code: RDKafkaErrorCode,
    exists: impl FnOnce() -> Result<bool, KafkaError>,
) -> Result<(), TopicError> {
    match code {
        RDKafkaErrorCode::TopicAlreadyExists => Ok(()),
        code if is_unavailable_code(code) => Err(TopicError::Unavailable(format!(
            "could not create topic {topic}: the cluster is not (fully) there ({code:?})"
        ))),
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => match exists() {
            Ok(true) => {
                tracing::info!(%topic, ?code, "may not create topics; the topic exists");
                Ok(())
            }
            Ok(false) => Err(TopicError::Refused(format!(
                "topic {topic} does not exist and this client may not create it ({code:?}): \
                 create it from infra/topics.yaml"
            ))),
            // The metadata question went unanswered: an outage, not a "no".
            Err(e) => Err(TopicError::Unavailable(format!(
                "topic {topic}: may not create it ({code:?}) and could not check that it \
                 exists: {e}"
            ))),
        },
        other => Err(TopicError::Refused(format!(
            "could not create topic {topic}: {other:?}"
        ))),
    }
}

/// Whether `topic` exists, from the broker's metadata for that one topic. Give it a
/// client with `allow.auto.create.topics=false`, or the question creates the topic.
pub fn topic_exists(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<bool, KafkaError> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}

/// Why topics could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Refused(String),
    /// The broker did not answer in time for one of the topics.
    #[error("{0}")]
    Unavailable(String),
}

impl TopicError {
    /// The broker is away or did not answer (down, unreachable, timed out): worth trying
    /// again later, unlike a refusal (a bad topics file, an authorization failure on a
    /// topic that does not exist).
    pub fn is_unavailable(&self) -> bool {
        match self {
            TopicError::Unavailable(_) => true,
            TopicError::Kafka(KafkaError::AdminOp(code)) => is_unavailable_code(*code),
            _ => false,
        }
    }
}

/// Per-topic answers that mean "the broker is not there (yet)", not "no".
fn is_unavailable_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::NotController
            | RDKafkaErrorCode::LeaderNotAvailable
            // A cluster coming back broker by broker has too few brokers for the factor yet.
            | RDKafkaErrorCode::InvalidReplicationFactor
    )
}

/// Creates `topics` (already prefixed) if they do not exist, configured from
/// [`TOPICS_FILE`]. Existing topics are left alone. A client that may not create topics
/// is fine as long as they exist.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[String]) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> = base_config(settings).create()?;
    let specs = topics
        .iter()
        .map(|t| creation_spec(settings, t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TopicError::Refused)?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication_factor),
                ),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    // Bounded: without a request timeout an absent broker holds the caller for librdkafka's
    // socket timeout (a minute).
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new_topics, &opts).await?;
    for result in results {
        if let Err((topic, code)) = result {
            let checker = settings.clone();
            let name = topic.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                judge_creation(&name, code, || {
                    topic_exists(
                        &base_config(&checker)
                            .set("allow.auto.create.topics", "false")
                            .create()?,
                        &name,
                    )
                })
            })
            .await
            .map_err(|e| TopicError::Refused(format!("topic check task: {e}")))?;
            if let Err(e) = verdict {
                tracing::error!(%topic, ?code, "{e}");
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_topics_file_parses_with_its_defaults_applied() {
        let specs = parse_topics(TOPICS_FILE).expect("parses");
        let intake_dlq = specs
            .iter()
            .find(|t| t.name == "kaip.intake.dlq")
            .expect("intake's DLQ is listed");
        assert_eq!(intake_dlq.partitions, 1);
        assert_eq!(intake_dlq.replication_factor, 3);
        assert_eq!(intake_dlq.configs["retention.ms"], "7776000000");
        assert_eq!(intake_dlq.configs["cleanup.policy"], "delete");
        assert_eq!(intake_dlq.configs["min.insync.replicas"], "2");
        let events = specs
            .iter()
            .find(|t| t.name == "kaip.intake.events")
            .expect("listed");
        assert_eq!(events.partitions, 6);
        assert_eq!(events.configs["retention.ms"], "2592000000");
    }

    #[test]
    fn a_malformed_topics_file_is_refused_with_its_line() {
        let err = parse_topics("topics:\n  - name: a\n    partitions: many\n").unwrap_err();
        assert!(err.contains("a.partitions"), "{err}");
        let err = parse_topics("topics:\n    partitions: 3\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = parse_topics("topicz:\n").unwrap_err();
        assert!(err.contains("unknown section"), "{err}");
    }

    #[test]
    fn created_topics_are_capped_by_the_settings() {
        let mut settings = KafkaSettings::local("b:9092", "p.");
        settings.partitions = Some(3);
        settings.replication_factor = Some(1);
        let spec = creation_spec(&settings, "p.kaip.scoring.events").expect("spec");
        assert_eq!(spec.name, "p.kaip.scoring.events");
        assert_eq!((spec.partitions, spec.replication_factor), (3, 1));
        assert_eq!(spec.configs["min.insync.replicas"], "1");
        assert_eq!(spec.configs["retention.ms"], "2592000000");
        settings.partitions = Some(12);
        settings.replication_factor = Some(3);
        let spec = creation_spec(&settings, "p.kaip.scoring.events").expect("spec");
        assert_eq!((spec.partitions, spec.replication_factor), (6, 3));
        assert_eq!(spec.configs["min.insync.replicas"], "2");
    }

    #[test]
    fn without_caps_topics_get_the_files_counts() {
        // A production configuration that sets neither key.
        let mut settings = KafkaSettings::local("b:9092", "p.");
        settings.partitions = None;
        settings.replication_factor = None;
        let spec = creation_spec(&settings, "p.kaip.scoring.events").expect("spec");
        assert_eq!((spec.partitions, spec.replication_factor), (6, 3));
        assert_eq!(spec.configs["min.insync.replicas"], "2");
        // And a configuration file without them deserialises to no caps.
        let parsed: KafkaSettings =
            serde_json::from_value(serde_json::json!({ "brokers": "b:9092" })).expect("parses");
        assert_eq!((parsed.partitions, parsed.replication_factor), (None, None));
    }

    #[test]
    fn a_refused_creation_is_fine_only_if_the_topic_exists() {
        use RDKafkaErrorCode::*;
        assert!(judge_creation("t", TopicAlreadyExists, || unreachable!()).is_ok());
        assert!(judge_creation("t", TopicAuthorizationFailed, || Ok(true)).is_ok());
        assert!(judge_creation("t", ClusterAuthorizationFailed, || Ok(true)).is_ok());
        let err = judge_creation("t", TopicAuthorizationFailed, || Ok(false)).unwrap_err();
        assert!(!err.is_unavailable(), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("does not exist") && err.contains("infra/topics.yaml"),
            "{err}"
        );
        // An unanswered check, or a cluster still coming back, is an outage to wait out.
        let err = judge_creation("t", TopicAuthorizationFailed, || {
            Err(KafkaError::MetadataFetch(BrokerTransportFailure))
        })
        .unwrap_err();
        assert!(
            err.is_unavailable() && err.to_string().contains("could not check"),
            "{err}"
        );
        let err = judge_creation("t", InvalidReplicationFactor, || unreachable!()).unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        let err = judge_creation("t", InvalidConfig, || unreachable!()).unwrap_err();
        assert!(!err.is_unavailable(), "{err}");
        // A client-side failure (a bad setting) is not an outage; a timeout is.
        assert!(!TopicError::Kafka(KafkaError::AdminOpCreation("bad".into())).is_unavailable());
        assert!(!TopicError::Kafka(KafkaError::AdminOp(UnsupportedFeature)).is_unavailable());
        assert!(TopicError::Kafka(KafkaError::AdminOp(OperationTimedOut)).is_unavailable());
    }
}
