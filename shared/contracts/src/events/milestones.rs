//! Events of the milestones service (`kaip.milestones.events`) that other services react
//! to. The milestones service is still a skeleton: these are the contracts it will
//! produce, defined here so the GPU ledger (and data budget, talent) can consume them.

use super::DomainEvent;
use crate::ids::ConsortiumId;
use chrono::{DateTime, Utc};
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
