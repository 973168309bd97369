//! Scoring's expert panels for stage gates: officers define a panel for a gate (the teams,
//! a score sheet of criteria with maximum points, reviewers per team), assign registered
//! reviewers with the conflict-of-interest rules of the proposal stages, reviewers score
//! their assignments with the stage score sheet ([`super::scoring::ScoreSheet`]), and
//! closing the panel announces each team's consensus out of 100 (`GatePanelScored`).

use crate::ids::{CallId, ConsortiumId};
use crate::text::{field, nested, CheckText, Lines, TextViolation};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One criterion of a panel's score sheet: whole points from 0 to `max_points`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelCriterion {
    pub key: String,
    pub name: String,
    pub max_points: i64,
}

/// `POST /panels`: an officer defines the expert panel of a gate (one per gate key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGatePanel {
    /// The gate's key in milestones (`gate-1`).
    pub gate: String,
    /// The call whose selected teams the panel scores.
    pub call_id: CallId,
    /// Replacement calls (intake's, linked to a decided gate) whose selected winners join
    /// the panel beside `call_id`'s teams. Absent: none.
    #[serde(default)]
    pub replacement_call_ids: Option<Vec<CallId>>,
    /// The teams scored: consortia the calls selected and no gate eliminated. Absent: every
    /// such team.
    #[serde(default)]
    pub consortium_ids: Option<Vec<ConsortiumId>>,
    pub criteria: Vec<PanelCriterion>,
    pub reviewers_per_team: u32,
    pub reason: String,
}

/// One team's result of a closed panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelTeamResult {
    pub consortium_id: ConsortiumId,
    /// The consensus out of 100, an exact decimal with at most 4 places (the mean of the
    /// reviewers' totals × 100 / the sheet's maximum, rounded half up at the 4th place).
    pub score: String,
    /// The consensus total in hundredths of a point (the stage consensus: the mean).
    pub total_centi: i64,
    pub per_criterion: BTreeMap<String, i64>,
    pub reviewers: u32,
}

/// A gate's expert panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatePanel {
    pub id: Uuid,
    pub gate: String,
    pub call_id: CallId,
    /// The replacement calls whose winners joined the panel.
    pub replacement_call_ids: Vec<CallId>,
    pub teams: Vec<ConsortiumId>,
    pub criteria: Vec<PanelCriterion>,
    pub reviewers_per_team: u32,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Once voided (only an open panel can be): who, when and why.
    pub voided_by: Option<String>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
    /// Once closed: each team's consensus.
    pub results: Vec<PanelTeamResult>,
}

/// A reviewer kept off a team by a conflict of interest, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelBlocked {
    pub reviewer_id: String,
    pub consortium_id: ConsortiumId,
    pub reason: String,
}

/// `POST /panels/{id}/assignments`' answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelAssignmentReport {
    pub assigned: i64,
    pub blocked: Vec<PanelBlocked>,
}

/// A reviewer's assignment to score one team of a panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelAssignment {
    pub id: Uuid,
    pub panel_id: Uuid,
    pub gate: String,
    pub reviewer_id: String,
    pub consortium_id: ConsortiumId,
    pub consortium_name: String,
    pub scored: bool,
    pub assigned_at: DateTime<Utc>,
    /// The panel's score sheet: what the reviewer scores.
    pub criteria: Vec<PanelCriterion>,
}

/// `POST /panels/{id}/void` and `POST /panel-assignments/{id}/void`: why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidPanel {
    pub reason: String,
}

impl CheckText for VoidPanel {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for PanelCriterion {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "key", &self.key, Lines::Single)?;
        field(at, "name", &self.name, Lines::Single)
    }
}

impl CheckText for NewGatePanel {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "gate", &self.gate, Lines::Single)?;
        nested(at, "criteria", &self.criteria)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}
