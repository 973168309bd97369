//! The inputs of a stage gate that other producers deliver to milestones: scoring's expert
//! panel (`GatePanelScored`, on `kaip.scoring.events`) and benchmark results from an
//! integration (`BenchmarkResultReported`, on the benchmarks' own topic
//! [`crate::topics::BENCHMARKS`]). Milestones records each as a gate input with its source,
//! idempotent by event id; what it cannot take is dead-lettered with a code.

use super::DomainEvent;
use crate::ids::ConsortiumId;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A gate's expert panel in scoring closed: one team's consensus, out of 100. Milestones
/// records it as an `expert_panel` input of the gate's expert-panel component with
/// `source_ref = panel_id`. Keyed by the panel (one per gate), so a gate's scores stay in
/// order on one partition. Not shown to consortia (no `consortium_id` on the envelope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatePanelScored {
    /// The gate's key in milestones (`gate-1`).
    pub gate: String,
    pub consortium_id: ConsortiumId,
    pub panel_id: Uuid,
    /// The consensus out of 100: an exact decimal string with at most 4 places.
    pub score: String,
    /// How many reviewers' sheets the consensus is the mean of.
    pub reviewers: u32,
    pub scored_at: DateTime<Utc>,
}

impl DomainEvent for GatePanelScored {
    const TYPE: &'static str = "GatePanelScored";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gate_panel";
    fn aggregate_id(&self) -> Uuid {
        self.panel_id
    }
}

/// An integration (a benchmark runner, producer `benchmarks`) reports a team's result on
/// a benchmark component of a gate. Milestones records it as an `integration` input with
/// `source_ref = run_id`, after the checks of `POST /gates/{key}/inputs` (the component
/// exists and is a benchmark one, the value is within its `max`, the gate is not
/// published). Keyed by the team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkResultReported {
    /// The gate's key (`gate-1`).
    pub gate: String,
    pub consortium_id: ConsortiumId,
    /// The gate's component the result is for (e.g. `benchmark-global`).
    pub component: String,
    /// An exact decimal string, at most 4 places (e.g. `"71.25"`).
    pub value: String,
    /// The runner's id of the run (1 to 200 characters): the input's `source_ref`. The same
    /// run reported again with the same value changes nothing; with another value it is
    /// dead-lettered.
    pub run_id: String,
    /// The benchmark(s) run, e.g. `KMMLU 5-shot`.
    pub benchmark: String,
    /// Anything else worth keeping about the run (harness version, settings).
    #[serde(default)]
    pub details: String,
    pub measured_at: DateTime<Utc>,
}

impl DomainEvent for BenchmarkResultReported {
    const TYPE: &'static str = "BenchmarkResultReported";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
}
