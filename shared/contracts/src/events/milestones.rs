//! Events of the milestones service (`kaip.milestones.events`): a gate's published decision
//! and its eliminations (the GPU ledger, data budget and talent react to them), and the
//! overdue flag of a deliverable.

use super::DomainEvent;
use crate::ids::ConsortiumId;
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A stage gate's published decision: who passed (their tranches waiting on this gate are
/// released) and who was eliminated (each also gets a `TeamEliminated`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateDecided {
    pub gate_id: Uuid,
    /// The gate's key, as offers name it in `release_gate` (e.g. `gate-1`).
    pub gate: String,
    pub passed: Vec<ConsortiumId>,
    pub eliminated: Vec<ConsortiumId>,
    pub decided_at: DateTime<Utc>,
}

impl DomainEvent for GateDecided {
    const TYPE: &'static str = "GateDecided";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gate";
    fn aggregate_id(&self) -> Uuid {
        self.gate_id
    }
}

/// An officer defined a stage gate: its key (what a panel in scoring names, as `gate`),
/// phase and date. Scoring records the keys it has seen so a gate's expert panel is created
/// only for a gate milestones knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateDefined {
    pub gate_id: Uuid,
    /// The gate's key (`gate-1`).
    pub gate: String,
    pub phase: i32,
    pub gate_date: NaiveDate,
    pub defined_at: DateTime<Utc>,
    /// Whether the gate has an `expert_panel` component: only then can a panel's scores
    /// (`GatePanelScored`) be recorded, so scoring refuses a panel for a gate without one.
    pub expert_panel: bool,
}

impl DomainEvent for GateDefined {
    const TYPE: &'static str = "GateDefined";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gate";
    fn aggregate_id(&self) -> Uuid {
        self.gate_id
    }
}

/// One grant of the gate's reallocation plan: `count` GPUs of `model` for `period`, to a
/// surviving team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reallocation {
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub count: i64,
}

/// A team was eliminated at a gate, with the reason and the plan for its GPUs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamEliminated {
    pub gate_id: Uuid,
    pub gate: String,
    pub consortium_id: ConsortiumId,
    /// `ineligible: ...` or `rank: ...`.
    pub reason: String,
    pub reallocation: Vec<Reallocation>,
    pub decided_at: DateTime<Utc>,
}

impl DomainEvent for TeamEliminated {
    const TYPE: &'static str = "TeamEliminated";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A deliverable passed its due date (the end of that day in KST) without evidence: flagged
/// once per deliverable and due date (a revision's new due date can be flagged again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneOverdue {
    pub deliverable_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub phase: i32,
    pub title: String,
    pub due_date: NaiveDate,
    pub flagged_at: DateTime<Utc>,
}

impl DomainEvent for MilestoneOverdue {
    const TYPE: &'static str = "MilestoneOverdue";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "deliverable";
    fn aggregate_id(&self) -> Uuid {
        self.deliverable_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}
