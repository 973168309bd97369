//! The published event catalogue: every event type with its topic, its JSON Schema (the
//! whole envelope, with `data` typed), and an AsyncAPI 3.0 document describing the topics.
//!
//! Both are generated from the Rust types, checked in under `shared/contracts/schemas/` and
//! `shared/contracts/asyncapi.json` (a test fails when they drift: `make snapshots` accepts a
//! deliberate change), and served by the gateway at `/events/asyncapi.json` and
//! `/events/schemas/<file>` for integrators.

use crate::audit::AuditRecorded;
use crate::events::{
    AppealAnswered, AppealFiled, BenchmarkResultReported, CallOpened, DataBudgetCapAdjusted,
    DataBudgetOpened, DataCommitmentCancelled, DataCommitmentMade, DataInvoiceRecorded,
    DataPaymentConfirmed, DataProgrammeConfigured, DatasetRegistered, DomainEvent,
    EvaluationCaseOpened, EventEnvelope, GateDecided, GateDefined, GatePanelScored,
    GpuAccountOpened, GpuGrantClosed, GpuGranted, GpuModelFactorSet, GpuOfferExpired, GpuOfferMade,
    GpuSupplierRecorded, GpuSupplyEndRecorded, GpuTrancheReleased, GpuTransfersRecorded,
    GpuUsageRecorded, GpuUsageReported, JointPurchaseSplit, MilestoneOverdue, ProposalSubmitted,
    ProposalWithdrawn, ReplacementCallCancellationDecided, ReplacementCallCancelled,
    SelectionPublished, TalentFundingStopped, TalentFundsClaimed, TalentFundsPaid, TalentHireEnded,
    TalentHired, TalentMatchDeclined, TalentMatchProposed, TalentPositionOpened,
    TalentResearcherErased, TeamEliminated, WithdrawalRefused,
};
use crate::topics;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

/// One event type as published.
pub struct EventSpec {
    pub topic: &'static str,
    pub producer: &'static str,
    pub event_type: &'static str,
    pub version: u16,
    pub summary: &'static str,
    schema: fn() -> Value,
}

impl EventSpec {
    /// `ProposalSubmitted.v1.json`
    pub fn file_name(&self) -> String {
        format!("{}.v{}.json", self.event_type, self.version)
    }

    /// The JSON Schema of the whole message (envelope with typed `data`).
    pub fn schema(&self) -> Value {
        (self.schema)()
    }
}

fn envelope_schema<E: DomainEvent>() -> Value {
    // Draft 7 with every subschema inlined: each file stands alone and embeds unchanged in
    // the AsyncAPI document.
    let mut settings = SchemaSettings::draft07();
    settings.inline_subschemas = true;
    let generator = settings.into_generator();
    let schema = generator.into_root_schema_for::<EventEnvelope<E>>();
    let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "title".into(),
            json!(format!("{} v{}", E::TYPE, E::VERSION)),
        );
        obj.insert(
            "$id".into(),
            json!(format!(
                "https://kaip.example/events/schemas/{}.v{}.json",
                E::TYPE,
                E::VERSION
            )),
        );
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("type".into(), json!({ "const": E::TYPE }));
            props.insert("version".into(), json!({ "const": E::VERSION }));
        }
    }
    value
}

fn spec<E: DomainEvent>(
    topic: &'static str,
    producer: &'static str,
    summary: &'static str,
) -> EventSpec {
    EventSpec {
        topic,
        producer,
        event_type: E::TYPE,
        version: E::VERSION,
        summary,
        schema: envelope_schema::<E>,
    }
}

/// Every event K-AIP publishes. A new event type is added here, or it is not published.
pub fn events() -> Vec<EventSpec> {
    vec![
        spec::<CallOpened>(
            topics::INTAKE,
            "intake",
            "An officer opened a call for proposals.",
        ),
        spec::<ReplacementCallCancelled>(
            topics::INTAKE,
            "intake",
            "An officer asked to cancel a replacement call intake has not seen decided; scoring decides it.",
        ),
        spec::<ProposalSubmitted>(
            topics::INTAKE,
            "intake",
            "A consortium submitted a proposal to an open call.",
        ),
        spec::<ProposalWithdrawn>(topics::INTAKE, "intake", "A consortium withdrew its proposal before the decision."),
        spec::<EvaluationCaseOpened>(topics::SCORING, "scoring", "Scoring opened the evaluation case of a submitted proposal."),
        spec::<SelectionPublished>(
            topics::SCORING,
            "scoring",
            "The ministry published a call's portfolio: the selected teams and their requested resources.",
        ),
        spec::<AppealFiled>(topics::SCORING, "scoring", "A consortium appealed its result."),
        spec::<AppealAnswered>(topics::SCORING, "scoring", "The ministry answered an appeal."),
        spec::<WithdrawalRefused>(
            topics::SCORING,
            "scoring",
            "Scoring refused a withdrawal that reached it after the decision was published; the proposal keeps its result.",
        ),
        spec::<ReplacementCallCancellationDecided>(
            topics::SCORING,
            "scoring",
            "Scoring confirmed a replacement call's cancellation, or refused it because the selection was published first.",
        ),
        spec::<GatePanelScored>(topics::SCORING, "scoring", "A gate's expert panel closed: one team's consensus out of 100 (at most 4 places); milestones records it as the gate's expert-panel input, source_ref = panel_id."),
        spec::<AuditRecorded>(
            AUDIT_CHANNEL_ADDRESS,
            ANY_SERVICE,
            "An audited operation: who, when, the trace, the operation and its input, and every row it wrote before and after (each service, on its own audit topic).",
        ),
        spec::<GpuAccountOpened>(topics::GPU_LEDGER, "gpu-ledger", "A ledger account was opened: a source of GPUs, a pool, a team's grant or usage."),
        spec::<GpuTransfersRecorded>(topics::GPU_LEDGER, "gpu-ledger", "Part of a batch of GPU transfers recorded in one transaction: one ledger's (model, period) transfers, in order, keyed by the ledger."),
        spec::<GpuSupplierRecorded>(topics::GPU_LEDGER, "gpu-ledger", "A consortium started or stopped supplying GPUs; while it supplies it receives no grant."),
        spec::<GpuSupplyEndRecorded>(topics::GPU_LEDGER, "gpu-ledger", "An officer recorded when a consortium's supplying of GPUs ends (possibly in the future; a later record corrects it): grants are possible from then."),
        spec::<GpuModelFactorSet>(topics::GPU_LEDGER, "gpu-ledger", "A GPU model was added or its H100-equivalence factor changed."),
        spec::<GpuOfferMade>(topics::GPU_LEDGER, "gpu-ledger", "An officer offered a selected team GPUs, in one or more forms of equal H100-eq, reserved until it expires."),
        spec::<GpuOfferExpired>(topics::GPU_LEDGER, "gpu-ledger", "An offer lapsed unaccepted: the sweeper expired its reservations and every option's GPUs went back to the pools (once per offer)."),
        spec::<GpuGranted>(topics::GPU_LEDGER, "gpu-ledger", "A team accepted an offer's option: due tranches granted, later ones reserved, the other options released."),
        spec::<GpuTrancheReleased>(topics::GPU_LEDGER, "gpu-ledger", "A reserved tranche was released to its team, on its date or at the gate it waited for."),
        spec::<GpuGrantClosed>(topics::GPU_LEDGER, "gpu-ledger", "An eliminated team's grants were closed and its future capacity reallocated, in one linked chain."),
        spec::<GpuUsageRecorded>(topics::GPU_LEDGER, "gpu-ledger", "A GPU operator reported GPU-hours a team used; overruns of the granted hours are flagged."),
        spec::<DataProgrammeConfigured>(topics::DATA_BUDGET, "data-budget", "An admin or officer set a new version of the data budget programme's configuration, with a reason; caps above a lowered maximum were lowered with it."),
        spec::<GpuUsageReported>(topics::OPERATORS, topics::OPERATORS_PRODUCER, "A GPU operator reported GPU-hours a team used, on the operators' own topic; the ledger records it as through its API, idempotent by report_id."),
        spec::<BenchmarkResultReported>(topics::BENCHMARKS, topics::BENCHMARKS_PRODUCER, "A benchmark runner reported a team's result for a benchmark component of a gate, on the benchmarks' own topic; milestones records it as an `integration` input (source_ref = run_id), or dead-letters it with the code."),
        spec::<DataBudgetOpened>(topics::DATA_BUDGET, "data-budget", "A selected team's data budget for a fiscal year was opened with its cap and category sub-limits."),
        spec::<DataBudgetCapAdjusted>(topics::DATA_BUDGET, "data-budget", "An officer adjusted a team-year's cap within the programme's maximum, with a reason (a new record)."),
        spec::<DataCommitmentMade>(topics::DATA_BUDGET, "data-budget", "A commitment (purchase order) reserved data budget."),
        spec::<DataCommitmentCancelled>(topics::DATA_BUDGET, "data-budget", "The part of a commitment not invoiced was cancelled and released."),
        spec::<DataInvoiceRecorded>(topics::DATA_BUDGET, "data-budget", "An invoice consumed (part of) a commitment."),
        spec::<DataPaymentConfirmed>(topics::DATA_BUDGET, "data-budget", "The finance system confirmed a payment of an invoice (idempotent by its external key)."),
        spec::<JointPurchaseSplit>(topics::DATA_BUDGET, "data-budget", "A dataset bought jointly was committed for every sharing team, split exact to the won."),
        spec::<DatasetRegistered>(topics::DATA_BUDGET, "data-budget", "A dataset entered the data catalogue with its licence terms."),
        spec::<TalentPositionOpened>(topics::TALENT, "talent", "A team opened a position for overseas researchers (without its salary band)."),
        spec::<TalentMatchProposed>(topics::TALENT, "talent", "A matching round proposed a researcher (pseudonymous id) for a position, with the fit components and each side's rank of the other."),
        spec::<TalentMatchDeclined>(topics::TALENT, "talent", "A team declined a proposed match (the reason, personal, is not published: always empty)."),
        spec::<TalentHired>(topics::TALENT, "talent", "A team hired a researcher (pseudonymous id): dates and the match ratio, never the salary."),
        spec::<TalentFundsClaimed>(topics::TALENT, "talent", "A team claimed the government's share of one month of a hire, pro-rated by days."),
        spec::<TalentFundsPaid>(topics::TALENT, "talent", "A claim was paid, up to the team's annual cap; the reason when it was clipped."),
        spec::<TalentFundingStopped>(topics::TALENT, "talent", "An eliminated team's talent funding stops after the elimination's month."),
        spec::<TalentHireEnded>(topics::TALENT, "talent", "A hire ended before its agreed end date (by the team, an officer, or the team's elimination at the end of that month, KST): the researcher is free for a hire starting after it, and no later month is funded."),
        spec::<TalentResearcherErased>(topics::TALENT, "talent", "A researcher's profile was erased on request; funding records keep the pseudonymous id and the amounts."),
        spec::<GateDefined>(topics::MILESTONES, "milestones", "An officer defined a stage gate (key, phase, date); scoring creates a gate's expert panel only for a key it has seen here."),
        spec::<GateDecided>(topics::MILESTONES, "milestones", "A stage gate's decision: who passed and who was eliminated."),
        spec::<TeamEliminated>(topics::MILESTONES, "milestones", "A team was eliminated at a gate, with the reason and the reallocation plan for its GPUs."),
        spec::<MilestoneOverdue>(topics::MILESTONES, "milestones", "A deliverable passed its due date (end of the day, KST) without evidence; flagged once per deliverable and due date."),
    ]
}

/// The audit topics' address in the AsyncAPI document: one per service.
pub const AUDIT_CHANNEL_ADDRESS: &str = "kaip.{service}.audit";
/// [`EventSpec::producer`] of an event every service produces.
pub const ANY_SERVICE: &str = "*";

/// The AsyncAPI 3.0 document for all event topics.
pub fn asyncapi() -> Value {
    let specs = events();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let add_message = |messages: &mut Map<String, Value>, s: &EventSpec| {
        let id = format!("{}.v{}", s.event_type, s.version);
        messages.insert(
            id.clone(),
            json!({
                "name": s.event_type,
                "title": format!("{} v{}", s.event_type, s.version),
                "summary": s.summary,
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "traceparent": { "type": "string", "description": "W3C trace context of the request that caused the event" },
                        "tracestate": { "type": "string" },
                        "kaip-event-type": { "type": "string", "const": s.event_type }
                    }
                },
                "payload": s.schema(),
            }),
        );
        id
    };
    for topic in topics::ALL_EVENT_TOPICS
        .into_iter()
        .chain(topics::INBOUND_TOPICS)
    {
        let inbound = topics::INBOUND_TOPICS.contains(&topic);
        let in_topic: Vec<&EventSpec> = specs.iter().filter(|s| s.topic == topic).collect();
        let producer = topic
            .trim_start_matches("kaip.")
            .trim_end_matches(".events");
        let mut refs = Map::new();
        for s in &in_topic {
            let id = add_message(&mut messages, s);
            refs.insert(
                id.clone(),
                json!({ "$ref": format!("#/components/messages/{id}") }),
            );
        }
        channels.insert(
            producer.to_owned(),
            json!({
                "address": topic,
                "description": if inbound {
                    format!("Events produced by integrations outside the platform ({producer}), keyed by aggregate id (a deployment may prefix the name); consumed by the services, which dead-letter what they cannot take.")
                } else {
                    format!("Events produced by the {producer} service, keyed by aggregate id (a deployment may prefix the name).")
                },
                "messages": refs,
            }),
        );
        operations.insert(
            format!("{producer}.publish"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{producer}") },
                "summary": if inbound {
                    format!("{producer} publish with envelope producer `{producer}` (at least once; the consumer deduplicates by envelope id and by the report's own id).")
                } else {
                    format!("{producer} publishes through its transactional outbox (at least once; consumers deduplicate by envelope id).")
                },
            }),
        );
    }
    // The audit trail: one topic per service, read by archives, never by the services.
    let mut refs = Map::new();
    for s in specs.iter().filter(|s| s.topic == AUDIT_CHANNEL_ADDRESS) {
        let id = add_message(&mut messages, s);
        refs.insert(
            id.clone(),
            json!({ "$ref": format!("#/components/messages/{id}") }),
        );
    }
    let services: Vec<&str> = topics::ALL_EVENT_TOPICS
        .iter()
        .map(|t| t.trim_start_matches("kaip.").trim_end_matches(".events"))
        .collect();
    channels.insert(
        "audit".to_owned(),
        json!({
            "address": AUDIT_CHANNEL_ADDRESS,
            "description": "Each service's audit trail (`AuditRecorded`, one per audited transaction), keyed by operation id, for archives outside the platform (a deployment may prefix the name). Written in the same transaction as the change it records.",
            "parameters": { "service": { "enum": services, "description": "The service whose trail this is." } },
            "messages": refs,
        }),
    );
    operations.insert(
        "audit.publish".to_owned(),
        json!({
            "action": "send",
            "channel": { "$ref": "#/channels/audit" },
            "summary": "Every service publishes its audit trail through its transactional outbox (at least once; deduplicate by envelope id or operation_id).",
        }),
    );
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "K-AIP events",
            "version": "1.0.0",
            "description": "Every event of the K-AIP platform: a versioned JSON envelope (id is a UUIDv7 and the idempotency key) whose `data` is typed by `type` and `version`."
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages },
    })
}
