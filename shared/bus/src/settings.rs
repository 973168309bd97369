use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[kafka]`: how a process reaches the broker. Production points `brokers` at a real
/// cluster and passes security settings through `client`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list.
    pub brokers: String,
    /// Prepended to every topic and consumer group, so several stacks can share a broker.
    #[serde(default)]
    pub topic_prefix: String,
    /// Consumer group session timeout. Tansu's group join waits about half of it: 6000 locally.
    #[serde(default = "defaults::session_timeout_ms")]
    pub session_timeout_ms: u32,
    /// Caps the partitions of topics this process creates. Absent: `infra/topics.yaml`'s
    /// counts as they are (production); a local one-broker setup sets it.
    #[serde(default)]
    pub partitions: Option<i32>,
    /// Caps the replication of topics this process creates. Absent: `infra/topics.yaml`'s
    /// (production); a local one-broker setup sets 1.
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// How many times a consumer tries an event that fails transiently (serialization
    /// failure, deadlock, an unclassified database error while the database answers) before
    /// dead-lettering it. Outages (database or broker unreachable) do not count: they are
    /// retried for as long as they last.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles each time up to `retry_backoff_max_ms`.
    #[serde(default = "defaults::retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// The longest a consumer waits between two retries (of an outage in particular).
    #[serde(default = "defaults::retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    /// Inbox rows older than this are purged. It must exceed the longest time after which
    /// an event can still be redelivered (the topics' retention), or a very late redelivery
    /// would be applied a second time.
    #[serde(default = "defaults::inbox_retention_hours")]
    pub inbox_retention_hours: i64,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.mechanism`).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

/// `[outbox]`: the relay's pace and the retention of published events.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// The relay is woken as soon as this process commits an event; this interval only
    /// bounds how late it notices events committed by other replicas or left by a crash.
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: i64,
    /// Published events are kept this long so they can be republished.
    #[serde(default = "defaults::retention_hours")]
    pub retention_hours: i64,
    /// How often the relay deletes published events past the retention.
    #[serde(default = "defaults::purge_interval_secs")]
    pub purge_interval_secs: u64,
    /// A pending event that failed this many times in a row counts as stuck (readiness,
    /// metrics). Sends that went through do not count.
    #[serde(default = "defaults::stuck_after_attempts")]
    pub stuck_after_attempts: i32,
    /// A row whose publication failed is retried after this backoff, doubled for each
    /// further consecutive failure...
    #[serde(default = "defaults::outbox_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// ...up to this.
    #[serde(default = "defaults::retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: defaults::poll_interval_ms(),
            batch_size: defaults::batch_size(),
            retention_hours: defaults::retention_hours(),
            purge_interval_secs: defaults::purge_interval_secs(),
            stuck_after_attempts: defaults::stuck_after_attempts(),
            retry_backoff_ms: defaults::outbox_retry_backoff_ms(),
            retry_backoff_max_ms: defaults::retry_backoff_max_ms(),
        }
    }
}

impl OutboxSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs(self.purge_interval_secs.max(1))
    }

    /// Checks every value at start; the error names the key and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size < 1 {
            return Err(format!(
                "outbox.batch_size: must be at least 1 (got {})",
                self.batch_size
            ));
        }
        if self.batch_size > 10_000 {
            return Err(format!(
                "outbox.batch_size: must be at most 10000 (got {}): one batch is one transaction",
                self.batch_size
            ));
        }
        // An hour and up: the purge computes `now - retention` in chrono, which must not
        // overflow, and a retention of 0 would delete events before they can be republished.
        if !(1..=24 * 365 * 10).contains(&self.retention_hours) {
            return Err(format!(
                "outbox.retention_hours: must be greater than 0 and at most 87600 (got {})",
                self.retention_hours
            ));
        }
        if !(10..=3_600_000).contains(&self.poll_interval_ms) {
            return Err(format!(
                "outbox.poll_interval_ms: must be between 10 and 3600000 (got {})",
                self.poll_interval_ms
            ));
        }
        if !(1..=86_400).contains(&self.purge_interval_secs) {
            return Err(format!(
                "outbox.purge_interval_secs: must be between 1 and 86400 (got {})",
                self.purge_interval_secs
            ));
        }
        if self.stuck_after_attempts < 1 {
            return Err(format!(
                "outbox.stuck_after_attempts: must be at least 1 (got {})",
                self.stuck_after_attempts
            ));
        }
        if !(1..=3_600_000).contains(&self.retry_backoff_ms) {
            return Err(format!(
                "outbox.retry_backoff_ms: must be between 1 and 3600000 (got {})",
                self.retry_backoff_ms
            ));
        }
        if !(self.retry_backoff_ms..=3_600_000).contains(&self.retry_backoff_max_ms) {
            return Err(format!(
                "outbox.retry_backoff_max_ms: must be between outbox.retry_backoff_ms ({}) and \
                 3600000 (got {})",
                self.retry_backoff_ms, self.retry_backoff_max_ms
            ));
        }
        Ok(())
    }
}

/// Partitions per topic in a local setup (`KafkaSettings::local`, `infra/local/run.sh`).
pub const LOCAL_PARTITIONS: i32 = 3;

impl KafkaSettings {
    /// Settings for a local one-broker setup (tests, `make run`): topics capped to
    /// [`LOCAL_PARTITIONS`] partitions and one replica.
    pub fn local(brokers: &str, topic_prefix: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            session_timeout_ms: defaults::session_timeout_ms(),
            partitions: Some(LOCAL_PARTITIONS),
            replication_factor: Some(1),
            max_attempts: defaults::max_attempts(),
            retry_backoff_ms: defaults::retry_backoff_ms(),
            retry_backoff_max_ms: defaults::retry_backoff_max_ms(),
            inbox_retention_hours: defaults::inbox_retention_hours(),
            client: BTreeMap::new(),
        }
    }

    pub fn retry_backoff_max(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_max_ms)
    }

    pub fn inbox_retention(&self) -> chrono::Duration {
        chrono::Duration::hours(
            self.inbox_retention_hours
                .clamp(1, MAX_INBOX_RETENTION_HOURS),
        )
    }

    /// `name` with the deployment prefix.
    pub fn prefixed(&self, name: &str) -> String {
        kaip_contracts::topics::prefixed(&self.topic_prefix, name)
    }

    /// Checks values that librdkafka would otherwise reject later with a vaguer message.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers: must name at least one host:port".into());
        }
        if self.partitions.is_some_and(|p| p < 1) {
            return Err("kafka.partitions: must be at least 1".into());
        }
        if self.replication_factor.is_some_and(|r| r < 1) {
            return Err("kafka.replication_factor: must be at least 1".into());
        }
        if self.max_attempts < 1 {
            return Err("kafka.max_attempts: must be at least 1".into());
        }
        if self.retry_backoff_ms < 1 {
            return Err("kafka.retry_backoff_ms: must be at least 1".into());
        }
        if !(self.retry_backoff_ms..=MAX_BACKOFF_MS).contains(&self.retry_backoff_max_ms) {
            return Err(format!(
                "kafka.retry_backoff_max_ms: must be between kafka.retry_backoff_ms ({}) and {MAX_BACKOFF_MS}",
                self.retry_backoff_ms
            ));
        }
        if !(1..=MAX_INBOX_RETENTION_HOURS).contains(&self.inbox_retention_hours) {
            return Err(format!(
                "kafka.inbox_retention_hours: must be greater than 0 and at most {MAX_INBOX_RETENTION_HOURS}"
            ));
        }
        // The inbox is what turns a redelivery (a group whose offsets expired, a DLQ replay)
        // into a no-op: it must outlive every message that can still be delivered, which
        // Kafka keeps for the topic's retention plus up to a log segment's age.
        let longest = crate::kafka::longest_retention_ms()?.unwrap_or(0);
        let needed = (longest / 3_600_000).saturating_add(SEGMENT_SLACK_HOURS);
        if self.inbox_retention_hours <= needed {
            return Err(format!(
                "kafka.inbox_retention_hours: must be more than {needed} (the longest topic retention in infra/topics.yaml, {} h, plus {SEGMENT_SLACK_HOURS} h for log segments); a shorter inbox would let a late redelivery or a dead-letter replay apply an event twice",
                longest / 3_600_000
            ));
        }
        if self.max_attempts > MAX_ATTEMPTS {
            return Err(format!(
                "kafka.max_attempts: must be at most {MAX_ATTEMPTS}"
            ));
        }
        if !(1000..=300_000).contains(&self.session_timeout_ms) {
            return Err("kafka.session_timeout_ms: must be between 1000 and 300000".into());
        }
        Ok(())
    }
}

/// An hour: a longer wait between retries only delays recovery.
const MAX_BACKOFF_MS: u64 = 3_600_000;
/// Ten years, which keeps the retention far inside chrono's range.
const MAX_INBOX_RETENTION_HOURS: i64 = 24 * 365 * 10;
/// How much longer than `retention.ms` Kafka may keep a message: a log segment is deleted
/// whole, once its newest message is past retention (`segment.ms` defaults to 7 days).
const SEGMENT_SLACK_HOURS: i64 = 24 * 7;
/// Retrying a failure that repeats while everything is up more often than this only delays
/// the dead letter.
const MAX_ATTEMPTS: u32 = 100;

mod defaults {
    pub fn session_timeout_ms() -> u32 {
        6000
    }
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn retry_backoff_ms() -> u64 {
        200
    }
    pub fn retry_backoff_max_ms() -> u64 {
        30_000
    }
    pub fn inbox_retention_hours() -> i64 {
        // Longer than the dead-letter topics' 90 days plus a week of log segments.
        24 * 120
    }
    pub fn poll_interval_ms() -> u64 {
        1000
    }
    pub fn batch_size() -> i64 {
        200
    }
    pub fn retention_hours() -> i64 {
        24 * 7
    }
    pub fn purge_interval_secs() -> u64 {
        600
    }
    pub fn stuck_after_attempts() -> i32 {
        5
    }
    pub fn outbox_retry_backoff_ms() -> u64 {
        500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> KafkaSettings {
        KafkaSettings::local("127.0.0.1:9092", "")
    }

    #[test]
    fn the_inbox_outlives_every_message_that_can_still_be_delivered() {
        // The DLQs keep letters 90 days: an inbox that forgot sooner would let a replay
        // apply an event a second time.
        let longest_hours = crate::kafka::longest_retention_ms().unwrap().unwrap() / 3_600_000;
        assert_eq!(longest_hours, 90 * 24);
        let mut s = local();
        assert!(s.inbox_retention_hours > longest_hours + SEGMENT_SLACK_HOURS);
        s.inbox_retention_hours = longest_hours + SEGMENT_SLACK_HOURS;
        let err = s.validate().unwrap_err();
        assert!(
            err.starts_with("kafka.inbox_retention_hours: must be more than 2328"),
            "{err}"
        );
        s.inbox_retention_hours += 1;
        assert_eq!(s.validate(), Ok(()));
        s.max_attempts = MAX_ATTEMPTS + 1;
        assert!(s.validate().unwrap_err().starts_with("kafka.max_attempts:"));
    }

    #[test]
    fn consumer_settings_are_validated_by_name() {
        assert_eq!(local().validate(), Ok(()));
        let mut s = local();
        s.retry_backoff_max_ms = s.retry_backoff_ms - 1;
        assert!(s
            .validate()
            .unwrap_err()
            .starts_with("kafka.retry_backoff_max_ms:"));
        s.retry_backoff_max_ms = MAX_BACKOFF_MS + 1;
        assert!(s
            .validate()
            .unwrap_err()
            .starts_with("kafka.retry_backoff_max_ms:"));
        s.retry_backoff_max_ms = MAX_BACKOFF_MS;
        assert_eq!(s.validate(), Ok(()));
        let mut s = local();
        s.retry_backoff_ms = 0;
        assert!(s
            .validate()
            .unwrap_err()
            .starts_with("kafka.retry_backoff_ms:"));
        for bad in [0, -1, i64::MIN, MAX_INBOX_RETENTION_HOURS + 1, i64::MAX] {
            let mut s = local();
            s.inbox_retention_hours = bad;
            assert!(
                s.validate()
                    .unwrap_err()
                    .starts_with("kafka.inbox_retention_hours:"),
                "{bad}"
            );
        }
        let mut s = local();
        s.inbox_retention_hours = MAX_INBOX_RETENTION_HOURS;
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.inbox_retention().num_hours(), MAX_INBOX_RETENTION_HOURS);
    }
}
