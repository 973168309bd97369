//! Topic names. One topic per producing service, keyed by aggregate id; one dead-letter
//! topic per consuming service. A deployment-wide prefix (`KAIP_KAFKA__TOPIC_PREFIX`) lets
//! several stacks (or parallel tests) share one broker.

pub const INTAKE: &str = "kaip.intake.events";
pub const SCORING: &str = "kaip.scoring.events";
pub const GPU_LEDGER: &str = "kaip.gpu-ledger.events";
pub const DATA_BUDGET: &str = "kaip.data-budget.events";
pub const TALENT: &str = "kaip.talent.events";
pub const MILESTONES: &str = "kaip.milestones.events";

/// GPU operators' own topic: the usage reports they produce (`GpuUsageReported`, envelope
/// producer [`OPERATORS_PRODUCER`]), which the ledger consumes as it takes `POST /usage`.
/// No service publishes to it. It is named like a service's topic (`kaip.<producer>.events`)
/// so that the consumers' producer check holds for it unchanged: an envelope on it claiming
/// another producer, or one claiming `operators` on another topic, is dead-lettered.
pub const OPERATORS: &str = "kaip.operators.events";
/// The `producer` of the envelopes on [`OPERATORS`].
pub const OPERATORS_PRODUCER: &str = "operators";

/// Benchmark runners' own topic: the results they report for a gate's benchmark components
/// (`BenchmarkResultReported`, envelope producer [`BENCHMARKS_PRODUCER`]), which milestones
/// consumes as gate inputs with source `integration`. Named like a service's topic for the
/// same producer check as [`OPERATORS`].
pub const BENCHMARKS: &str = "kaip.benchmarks.events";
/// The `producer` of the envelopes on [`BENCHMARKS`].
pub const BENCHMARKS_PRODUCER: &str = "benchmarks";

/// Topics that integrations outside the platform produce to (not in [`ALL_EVENT_TOPICS`]:
/// no service publishes to them, and they have no audit topic).
pub const INBOUND_TOPICS: [&str; 2] = [OPERATORS, BENCHMARKS];

/// Every service's event topic, in the order services are listed in the design.
pub const ALL_EVENT_TOPICS: [&str; 6] =
    [INTAKE, SCORING, GPU_LEDGER, DATA_BUDGET, TALENT, MILESTONES];

/// Every service's audit topic (see [`audit_topic_of`]).
pub const ALL_AUDIT_TOPICS: [&str; 6] = [
    "kaip.intake.audit",
    "kaip.scoring.audit",
    "kaip.gpu-ledger.audit",
    "kaip.data-budget.audit",
    "kaip.talent.audit",
    "kaip.milestones.audit",
];

/// The topic a service exports its audit trail to (`AuditRecorded`). Apart from its
/// events topic, so the services' consumers never see the trail; archives read it.
pub fn audit_topic_of(service: &str) -> String {
    format!("kaip.{service}.audit")
}

/// The event topic a service produces to.
pub fn events_topic_of(service: &str) -> String {
    format!("kaip.{service}.events")
}

/// The dead-letter topic of a consuming service: events it could not process, with the error.
pub fn dead_letter_topic_of(service: &str) -> String {
    format!("kaip.{service}.dlq")
}

/// Applies a deployment prefix to a topic or group name. An empty prefix leaves it as is.
pub fn prefixed(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_service_convention() {
        assert_eq!(events_topic_of("intake"), INTAKE);
        assert_eq!(dead_letter_topic_of("scoring"), "kaip.scoring.dlq");
        assert_eq!(prefixed("t1.", INTAKE), "t1.kaip.intake.events");
        assert_eq!(prefixed("", INTAKE), INTAKE);
        assert_eq!(events_topic_of(OPERATORS_PRODUCER), OPERATORS);
        assert!(!ALL_EVENT_TOPICS.contains(&OPERATORS));
        assert_eq!(events_topic_of(BENCHMARKS_PRODUCER), BENCHMARKS);
        assert!(!ALL_EVENT_TOPICS.contains(&BENCHMARKS));
        for (topic, events) in ALL_AUDIT_TOPICS.iter().zip(ALL_EVENT_TOPICS) {
            let service = events
                .trim_start_matches("kaip.")
                .trim_end_matches(".events");
            assert_eq!(*topic, audit_topic_of(service));
        }
    }
}
