//! The event envelope and the typed payloads inside it.
//!
//! Every event on every topic is one JSON [`EventEnvelope`]. Consumers first read the
//! envelope (so that an unknown `type` can be skipped and a malformed message dead-lettered
//! with a precise error), then decode `data` into the payload type registered for
//! `(type, version)`. A breaking change to a payload gets a new `version`; producers may emit
//! both while consumers move over.

use crate::dto::intake::{Member, Portfolio, ResourceRequest};
use crate::ids::{CallId, ConsortiumId, EvaluationCaseId, EventId, Krw, ProposalId};
use crate::role::Role;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The GPU ledger's events (in `events/gpu.rs`).
pub mod gpu;
pub use gpu::*;
/// The data budget's events (in `events/budget.rs`).
pub mod budget;
pub use budget::*;
/// Milestones' events other services react to (in `events/milestones.rs`).
pub mod milestones;
pub use milestones::*;
/// The talent service's events (in `events/talent.rs`).
pub mod talent;
pub use talent::*;
/// Gate inputs delivered by events: scoring's expert panel and benchmark integrations (in
/// `events/gates.rs`).
pub mod gates;
pub use gates::*;

/// Kafka header names. Trace context travels as W3C `traceparent`/`tracestate`.
pub mod headers {
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    pub const EVENT_TYPE: &str = "kaip-event-type";
    /// On a dead-lettered message: why it could not be processed.
    pub const DLQ_ERROR: &str = "kaip-dlq-error";
    pub const DLQ_ORIGINAL_TOPIC: &str = "kaip-dlq-original-topic";
    pub const DLQ_ORIGINAL_PARTITION: &str = "kaip-dlq-original-partition";
    pub const DLQ_ORIGINAL_OFFSET: &str = "kaip-dlq-original-offset";
    pub const DLQ_CONSUMER_GROUP: &str = "kaip-dlq-consumer-group";
    pub const DLQ_ATTEMPTS: &str = "kaip-dlq-attempts";
}

/// Who caused an event: the token subject and role of the person or client, or the
/// platform itself (`role: system`) when a consumer reacts to another event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub subject: String,
    pub role: Role,
}

impl Actor {
    pub fn system(service: &str) -> Self {
        Self {
            subject: format!("service:{service}"),
            role: Role::System,
        }
    }
}

/// The versioned envelope around every event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope<T = serde_json::Value> {
    /// UUIDv7, unique per event: the consumers' idempotency key.
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u16,
    pub occurred_at: DateTime<Utc>,
    /// The service that produced it (`intake`, `scoring`, ...).
    pub producer: String,
    /// What kind of aggregate `aggregate_id` names (`proposal`, `call`, ...).
    pub aggregate_type: String,
    /// The Kafka key: all events of one aggregate are on one partition, in order.
    pub aggregate_id: Uuid,
    /// The consortium the event concerns, if any: used to scope who may see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consortium_id: Option<ConsortiumId>,
    pub actor: Actor,
    pub data: T,
}

/// A typed event payload.
pub trait DomainEvent: Serialize + DeserializeOwned + JsonSchema {
    /// The envelope's `type`, e.g. `ProposalSubmitted`.
    const TYPE: &'static str;
    /// The payload's schema version.
    const VERSION: u16;
    /// The envelope's `aggregate_type`.
    const AGGREGATE_TYPE: &'static str;

    fn aggregate_id(&self) -> Uuid;
    fn consortium_id(&self) -> Option<ConsortiumId> {
        None
    }
}

/// Why an envelope's payload could not be decoded into the type a consumer expected.
#[derive(Debug)]
pub struct PayloadError(pub String);

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PayloadError {}

impl EventEnvelope<serde_json::Value> {
    /// Wraps a typed payload in a fresh envelope (new v7 id, now).
    pub fn wrap<E: DomainEvent>(
        producer: &str,
        actor: Actor,
        event: &E,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: EventId::new(),
            event_type: E::TYPE.to_owned(),
            version: E::VERSION,
            occurred_at: Utc::now(),
            producer: producer.to_owned(),
            aggregate_type: E::AGGREGATE_TYPE.to_owned(),
            aggregate_id: event.aggregate_id(),
            consortium_id: event.consortium_id(),
            actor,
            data: serde_json::to_value(event)?,
        })
    }

    /// True when this envelope carries `E` at the version this build understands.
    pub fn is<E: DomainEvent>(&self) -> bool {
        self.event_type == E::TYPE && self.version == E::VERSION
    }

    /// Decodes the payload as `E`, naming the event and the field at fault on failure.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, PayloadError> {
        if !self.is::<E>() {
            return Err(PayloadError(format!(
                "expected {} v{}, got {} v{}",
                E::TYPE,
                E::VERSION,
                self.event_type,
                self.version
            )));
        }
        serde_json::from_value(self.data.clone()).map_err(|e| {
            PayloadError(format!(
                "{} v{} `data` is invalid: {e}",
                E::TYPE,
                E::VERSION
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------
// intake
// ---------------------------------------------------------------------------------------

/// An officer opened a call for proposals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallOpened {
    pub call_id: CallId,
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// The most the call grants one team per fiscal year (its eligibility rules). Absent
    /// in events from before it was announced; scoring forwards it in `SelectionPublished`.
    #[serde(default)]
    pub team_maxima: Option<CallMaxima>,
    /// Set when the call is a replacement call for the places a stage gate freed. Absent
    /// (`None`) for an ordinary call and in events from before replacement calls existed.
    #[serde(default)]
    pub replaces: Option<Replacement>,
}

/// A replacement call's link to the stage gate whose eliminations freed its places: how
/// many places it fills, the committee whose majority must approve its selection, and the
/// GPUs each winner is offered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    /// The gate's key (as milestones announced it in `GateDecided`, e.g. `gate-1`).
    pub gate: String,
    /// The places the call fills: at least 1, at most the teams the gate eliminated.
    pub places: i32,
    /// The committee's members (token subjects of officers), at least 3, distinct.
    pub committee: Vec<String>,
    /// What the ledger offers each winner when the selection is published.
    #[serde(default)]
    pub award: Option<GpuAward>,
}

/// GPUs a replacement call awards each winner: `count` GPUs of `model` for `period`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuAward {
    pub model: String,
    pub count: i64,
    /// A ledger period, e.g. `2027H1`.
    pub period: String,
}

/// What a call grants each selected team at most per fiscal year: the grant services
/// (data budget, talent) open a team's allowance from it, bounded by their programme's
/// own maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallMaxima {
    /// The call's `eligibility.max_data_budget_krw`.
    pub data_budget_krw: Krw,
    /// The call's `eligibility.max_talent_funding_krw`.
    pub talent_funding_krw: Krw,
}

impl DomainEvent for CallOpened {
    const TYPE: &'static str = "CallOpened";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "call";
    fn aggregate_id(&self) -> Uuid {
        self.call_id.0
    }
}

/// An officer asked to cancel a replacement call intake has not seen decided (it was stuck:
/// no applicant, no majority). The request stays on record with who, when and why. Scoring
/// decides it (`ReplacementCallCancellationDecided`); only a confirmed cancellation frees
/// the gate for a new replacement call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacementCallCancelled {
    pub call_id: CallId,
    /// The gate whose places the call was to fill.
    pub gate: String,
    pub reason: String,
    pub cancelled_by: String,
    pub cancelled_at: DateTime<Utc>,
}

impl DomainEvent for ReplacementCallCancelled {
    const TYPE: &'static str = "ReplacementCallCancelled";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "call";
    fn aggregate_id(&self) -> Uuid {
        self.call_id.0
    }
}

/// Scoring's answer to `ReplacementCallCancelled`. Scoring owns publication, so it decides
/// the cancellation under the call's row lock: confirmed (`cancelled`, the call takes no
/// further step and intake frees its gate) or refused because the selection was already
/// published (intake keeps the gate filled and records the refusal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacementCallCancellationDecided {
    pub call_id: CallId,
    pub gate: String,
    /// `true`: cancelled; `false`: refused (see `refusal`).
    pub cancelled: bool,
    /// Why it was refused (the selection was published first); absent when cancelled.
    pub refusal: Option<String>,
    pub decided_at: DateTime<Utc>,
}

impl DomainEvent for ReplacementCallCancellationDecided {
    const TYPE: &'static str = "ReplacementCallCancellationDecided";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "call";
    fn aggregate_id(&self) -> Uuid {
        self.call_id.0
    }
}

/// A consortium submitted a proposal to an open call. Carries what scoring needs without
/// asking intake: the consortium's members (for conflicts of interest and portfolio
/// categories) and the requested resources (announced with the selection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalSubmitted {
    pub proposal_id: ProposalId,
    pub call_id: CallId,
    pub consortium_id: ConsortiumId,
    pub consortium_name: String,
    pub title: String,
    pub version: i32,
    pub content_hash: String,
    pub members: Vec<Member>,
    pub resources: ResourceRequest,
    /// The track, openness and independence declared with the submitted version (absent
    /// only from events published before proposals declared them).
    #[serde(default)]
    pub portfolio: Option<Portfolio>,
    pub submitted_at: DateTime<Utc>,
}

impl DomainEvent for ProposalSubmitted {
    const TYPE: &'static str = "ProposalSubmitted";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "proposal";
    fn aggregate_id(&self) -> Uuid {
        self.proposal_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A consortium withdrew its submitted proposal before the decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalWithdrawn {
    pub proposal_id: ProposalId,
    pub call_id: CallId,
    pub consortium_id: ConsortiumId,
    pub reason: String,
    pub withdrawn_at: DateTime<Utc>,
}

impl DomainEvent for ProposalWithdrawn {
    const TYPE: &'static str = "ProposalWithdrawn";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "proposal";
    fn aggregate_id(&self) -> Uuid {
        self.proposal_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

// ---------------------------------------------------------------------------------------
// scoring
// ---------------------------------------------------------------------------------------

/// Scoring opened an evaluation case for a submitted proposal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationCaseOpened {
    pub case_id: EvaluationCaseId,
    pub proposal_id: ProposalId,
    pub call_id: CallId,
    pub consortium_id: ConsortiumId,
    pub opened_at: DateTime<Utc>,
}

impl DomainEvent for EvaluationCaseOpened {
    const TYPE: &'static str = "EvaluationCaseOpened";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "proposal";
    /// Keyed by proposal, so a proposal's story stays in order across the scoring topic.
    fn aggregate_id(&self) -> Uuid {
        self.proposal_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// One team of a published selection, with what it asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectedTeam {
    pub proposal_id: ProposalId,
    pub consortium_id: ConsortiumId,
    pub consortium_name: String,
    pub title: String,
    /// 1-based position in the final ranking.
    pub rank: i32,
    /// Consensus score in hundredths of a point.
    pub score_centi: i64,
    pub resources: ResourceRequest,
}

/// The ministry published a call's portfolio decision. An empty `selected` is a valid
/// outcome ("select nobody").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionPublished {
    pub call_id: CallId,
    pub selected: Vec<SelectedTeam>,
    pub departure: Option<crate::dto::scoring::Departure>,
    pub override_reason: Option<String>,
    pub published_at: DateTime<Utc>,
    /// The call's per-team maxima, as intake announced them in `CallOpened`. Optional: a v1
    /// event without it still decodes (`None`), and a call opened before intake announced
    /// them has none; each grant service then keeps its earlier rule (see its README).
    #[serde(default)]
    pub team_maxima: Option<CallMaxima>,
    /// For a replacement call, its link to the gate, its committee and its award, as intake
    /// announced them in `CallOpened` (optional like `team_maxima`).
    #[serde(default)]
    pub replaces: Option<Replacement>,
}

impl DomainEvent for SelectionPublished {
    const TYPE: &'static str = "SelectionPublished";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "call";
    fn aggregate_id(&self) -> Uuid {
        self.call_id.0
    }
}

/// A consortium appealed its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealFiled {
    pub appeal_id: Uuid,
    pub call_id: CallId,
    pub proposal_id: ProposalId,
    pub consortium_id: ConsortiumId,
    pub filed_at: DateTime<Utc>,
}

impl DomainEvent for AppealFiled {
    const TYPE: &'static str = "AppealFiled";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "appeal";
    fn aggregate_id(&self) -> Uuid {
        self.appeal_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// The ministry answered an appeal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealAnswered {
    pub appeal_id: Uuid,
    pub call_id: CallId,
    pub proposal_id: ProposalId,
    pub consortium_id: ConsortiumId,
    pub answered_at: DateTime<Utc>,
}

impl DomainEvent for AppealAnswered {
    const TYPE: &'static str = "AppealAnswered";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "appeal";
    fn aggregate_id(&self) -> Uuid {
        self.appeal_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// Scoring refused a withdrawal that reached it after the call's decision was published:
/// scoring owns the decision, so the proposal keeps its result. Intake restores the
/// proposal and tells its consortium why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRefused {
    pub proposal_id: ProposalId,
    pub call_id: CallId,
    pub consortium_id: ConsortiumId,
    /// Why, for the consortium (e.g. the decision was published first).
    pub reason: String,
    /// The status the proposal keeps in scoring (`selected`, `not_selected`, ...).
    pub case_status: String,
    pub refused_at: DateTime<Utc>,
}

impl DomainEvent for WithdrawalRefused {
    const TYPE: &'static str = "WithdrawalRefused";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "proposal";
    /// Keyed by proposal, after the proposal's other events.
    fn aggregate_id(&self) -> Uuid {
        self.proposal_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submitted() -> ProposalSubmitted {
        ProposalSubmitted {
            proposal_id: ProposalId::new(),
            call_id: CallId::new(),
            consortium_id: ConsortiumId::new(),
            consortium_name: "K-Team".into(),
            title: "Sovereign LLM".into(),
            version: 1,
            content_hash: "00".into(),
            members: Vec::new(),
            resources: ResourceRequest::default(),
            portfolio: None,
            submitted_at: Utc::now(),
        }
    }

    #[test]
    fn envelope_round_trips_and_decodes_its_payload() {
        let event = submitted();
        let actor = Actor {
            subject: "u1".into(),
            role: Role::Consortium,
        };
        let env = EventEnvelope::wrap("intake", actor, &event).unwrap();
        assert_eq!(env.id.0.get_version_num(), 7);
        assert_eq!(env.aggregate_id, event.proposal_id.0);
        assert_eq!(env.consortium_id, Some(event.consortium_id));
        let json = serde_json::to_string(&env).unwrap();
        assert!(json.contains("\"type\":\"ProposalSubmitted\""));
        let back: EventEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.decode::<ProposalSubmitted>().unwrap(), event);
    }

    #[test]
    fn decoding_the_wrong_type_or_bad_data_names_the_problem() {
        let env = EventEnvelope::wrap("intake", Actor::system("intake"), &submitted()).unwrap();
        let err = env.decode::<CallOpened>().unwrap_err();
        assert!(
            err.0
                .contains("expected CallOpened v1, got ProposalSubmitted v1"),
            "{err}"
        );

        let mut broken = env.clone();
        broken.data["title"] = serde_json::json!(42);
        let err = broken.decode::<ProposalSubmitted>().unwrap_err();
        assert!(err.0.contains("`data` is invalid"), "{err}");
    }

    #[test]
    fn envelope_rejects_unknown_fields() {
        let env = EventEnvelope::wrap("intake", Actor::system("intake"), &submitted()).unwrap();
        let mut v = serde_json::to_value(&env).unwrap();
        v["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<EventEnvelope>(v).is_err());
    }
}
