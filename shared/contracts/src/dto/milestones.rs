//! The milestones service's HTTP bodies: plans of deliverables, evidence, verdicts, and
//! stage gates (definition, inputs, eligibility, proposals, votes, the published decision).
//!
//! Exact numbers only: benchmark values and gate inputs travel as decimal strings
//! (`"87.25"`), kept as integers; gate scores are strings of nano-points rounded down
//! (see the service's README).

use crate::events::Reallocation;
use crate::ids::ConsortiumId;
use crate::text::{field, list, nested, CheckText, Lines, TextViolation};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /deliverables`: an officer adds a deliverable to a team's plan for a phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeliverable {
    /// The client's id for the deliverable, so a retry creates nothing twice: the same id
    /// with the same fields returns the existing deliverable, with other fields is
    /// `DELIVERABLE_ID_CONFLICT`. Absent: a new id (a retry then duplicates).
    #[serde(default)]
    pub id: Option<Uuid>,
    pub consortium_id: ConsortiumId,
    pub phase: i32,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub acceptance_criteria: String,
    pub due_date: NaiveDate,
}

/// One deliverable of a [`NewPlan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanItem {
    /// As [`NewDeliverable::id`].
    #[serde(default)]
    pub id: Option<Uuid>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub acceptance_criteria: String,
    pub due_date: NaiveDate,
}

/// `POST /plans`: several deliverables of one team's plan for a phase, all or none (a bad
/// item, named `deliverables[i].<field>`, writes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    pub consortium_id: ConsortiumId,
    pub phase: i32,
    pub deliverables: Vec<PlanItem>,
}

impl NewPlan {
    /// The plan's items as single deliverables.
    pub fn items(&self) -> Vec<NewDeliverable> {
        self.deliverables
            .iter()
            .map(|d| NewDeliverable {
                id: d.id,
                consortium_id: self.consortium_id,
                phase: self.phase,
                title: d.title.clone(),
                description: d.description.clone(),
                acceptance_criteria: d.acceptance_criteria.clone(),
                due_date: d.due_date,
            })
            .collect()
    }
}

/// A document of the evidence: its name, SHA-256 (lowercase hex) and size, as for
/// proposal documents; the bytes live in the document store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceDocument {
    pub name: String,
    pub sha256: String,
    pub size_bytes: i64,
}

/// A benchmark result: the benchmark's name and its value as an exact decimal string
/// (at most 6 decimal places, e.g. `"87.25"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkResult {
    pub name: String,
    pub value: String,
}

/// `POST /deliverables/{id}/evidence`: a new version of a deliverable's evidence, by the
/// team. `kind` is `document`, `link` or `benchmark`, and the matching field is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitEvidence {
    pub kind: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub document: Option<EvidenceDocument>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub benchmark: Option<BenchmarkResult>,
}

/// `POST /deliverables/{id}/verdicts`: `approved`, `revision` (with `new_due_date`) or
/// `rejected`, always with a reason. An approval names the evidence version the officer
/// reviewed (`evidence_version`), which must still be the latest: an approval never covers
/// evidence submitted after the officer looked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordVerdict {
    pub verdict: String,
    pub reason: String,
    #[serde(default)]
    pub comments: String,
    #[serde(default)]
    pub new_due_date: Option<NaiveDate>,
    /// The evidence version the verdict is about: required to approve; when given with
    /// another verdict, it must also be the latest.
    #[serde(default)]
    pub evidence_version: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub id: Uuid,
    pub deliverable_id: Uuid,
    pub version: i32,
    pub kind: String,
    pub note: String,
    pub document: Option<EvidenceDocument>,
    pub url: Option<String>,
    pub benchmark: Option<BenchmarkResult>,
    /// SHA-256 over the version's content (a receipt the team can keep).
    pub content_sha256: String,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub id: Uuid,
    pub verdict: String,
    /// The latest evidence version when the verdict was given.
    pub evidence_version: Option<i32>,
    pub reason: String,
    pub comments: String,
    pub new_due_date: Option<NaiveDate>,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliverable {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub phase: i32,
    pub title: String,
    pub description: String,
    pub acceptance_criteria: String,
    /// As planned.
    pub due_date: NaiveDate,
    /// The latest revision's new due date, or the planned one.
    pub current_due_date: NaiveDate,
    /// `open`, `submitted`, `approved`, `revision` or `rejected`.
    pub status: String,
    /// Flagged overdue for its current due date.
    pub overdue: bool,
    pub evidence: Vec<Evidence>,
    pub verdicts: Vec<Verdict>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A gate's weighted component. `normalisation`: `min_max` (the best team gets the whole
/// weight, the lowest none) or `of_max` (value / `max` × weight; `max` a decimal string).
/// `kind` says which inputs arrive by event: `benchmark` (an integration's
/// `BenchmarkResultReported` may name it), `expert_panel` (scoring's `GatePanelScored`
/// lands on it; at most one per gate) or `other`. Absent on a new gate: `benchmark` in the
/// group `benchmarks`, `expert_panel` for the key `expert-panel`, `other` otherwise; always
/// present in answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateComponent {
    pub key: String,
    pub group: String,
    pub label: String,
    pub weight: i32,
    pub normalisation: String,
    #[serde(default)]
    pub max: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// `POST /gates`: a gate. Without `components`, the first gate's template (benchmarks 40 =
/// national 10 + global common 20 + team-chosen 10, expert panel 35, user evaluation 25).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGate {
    pub key: String,
    pub phase: i32,
    pub gate_date: NaiveDate,
    pub planned_eliminations: i32,
    pub eligibility_rules: Vec<String>,
    /// The committee: officers' subjects (token `sub`).
    pub committee: Vec<String>,
    #[serde(default)]
    pub components: Option<Vec<GateComponent>>,
    pub reason: String,
}

/// `POST /gates/{id}/inputs`: a team's value for a component. Either `value` (a decimal
/// string, at most 4 places) or `evidence_id` (an approved benchmark evidence of the team).
/// `source`: `entered`, `imported`, `expert_panel` (the panel's consensus score; name the
/// panel in `source_ref`) or `evidence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateInput {
    pub consortium_id: ConsortiumId,
    pub component: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub evidence_id: Option<Uuid>,
    pub source: String,
    #[serde(default)]
    pub source_ref: String,
    pub reason: String,
}

/// `GET /gates/{key}/inputs`: every input recorded for a gate, oldest first (a correction is
/// a later row for the same team and component; the latest counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedInput {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub component: String,
    /// A decimal string (at most 4 places).
    pub value: String,
    pub source: String,
    pub source_ref: String,
    pub reason: String,
    pub entered_by: String,
    pub entered_at: DateTime<Utc>,
}

/// `GET /gates/{key}/eligibility`: every eligibility verdict recorded for a gate, oldest
/// first (the latest per team and rule counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEligibility {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub rule: String,
    pub eligible: bool,
    pub grounds: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

/// `POST /gates/{id}/eligibility`: an officer's verdict on one rule for one team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityVerdict {
    pub consortium_id: ConsortiumId,
    pub rule: String,
    pub eligible: bool,
    pub grounds: String,
}

/// `POST /proposals/{id}/votes`: a committee member's vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastVote {
    pub approve: bool,
    pub reason: String,
}

/// Where an eliminated team's GPUs go (the ledger applies it in one linked chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EliminatedPlan {
    pub consortium_id: ConsortiumId,
    pub reallocation: Vec<Reallocation>,
}

/// A target for the next phase, e.g. benchmark `global-common`, target `>= 95% of the best
/// recent global models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextTarget {
    pub benchmark: String,
    pub target: String,
}

/// `POST /gates/{id}/publish`: publishes the approved proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishGate {
    pub proposal_id: Uuid,
    #[serde(default)]
    pub reallocations: Vec<EliminatedPlan>,
    #[serde(default)]
    pub next_targets: Vec<NextTarget>,
    pub reason: String,
}

/// One team's component: its input and the points it earned (nano-points, rounded down).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentScore {
    pub key: String,
    /// The input, a decimal string.
    pub value: String,
    /// Points earned, a decimal string with 9 places (rounded down).
    pub points: String,
}

/// One team's result in a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamResult {
    pub consortium_id: ConsortiumId,
    /// Each component's input and points, in the gate's order (an ineligible team's missing
    /// input is absent and earns nothing).
    pub components: Vec<ComponentScore>,
    /// The gate score: the exact sum of the components' points rounded down to 9 decimal
    /// places (ranks compare the exact scores; the shown points are each rounded down, so
    /// they may add up to a few billionths less).
    pub score: String,
    pub eligible: bool,
    /// 1 = best among the eligible teams; none for an ineligible team.
    pub rank: Option<i32>,
    /// `continues` or `eliminated`.
    pub outcome: String,
    /// `ineligible: ...` or `rank: ...` for an eliminated team.
    pub reason: Option<String>,
    /// Set when the team's score equals another eligible team's: how the tie was broken.
    pub tie_break: Option<String>,
}

/// An input a proposal used (so the decision can be recomputed from what is recorded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputUsed {
    pub input_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub component: String,
    pub value: String,
    pub source: String,
    pub source_ref: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub member: String,
    pub approve: bool,
    pub reason: String,
    pub voted_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalOutcome {
    pub teams: Vec<TeamResult>,
    pub inputs: Vec<InputUsed>,
    /// The eligibility verdicts used (their ids).
    pub eligibility: Vec<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: Uuid,
    pub gate_id: Uuid,
    #[serde(flatten)]
    pub outcome: ProposalOutcome,
    pub votes: Vec<Vote>,
    pub approvals: i32,
    pub committee_size: i32,
    /// The gate's latest proposal (only it can be published).
    pub current: bool,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EliminatedTeam {
    pub consortium_id: ConsortiumId,
    pub reason: String,
    pub reallocation: Vec<Reallocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub gate_id: Uuid,
    pub gate: String,
    pub proposal_id: Uuid,
    pub passed: Vec<ConsortiumId>,
    pub eliminated: Vec<EliminatedTeam>,
    pub next_targets: Vec<NextTarget>,
    pub approvals: i32,
    pub committee_size: i32,
    pub reason: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub id: Uuid,
    pub key: String,
    pub phase: i32,
    pub gate_date: NaiveDate,
    pub planned_eliminations: i32,
    pub eligibility_rules: Vec<String>,
    pub committee: Vec<String>,
    pub components: Vec<GateComponent>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl CheckText for NewDeliverable {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "title", &self.title, Lines::Single)?;
        field(at, "description", &self.description, Lines::Multi)?;
        field(
            at,
            "acceptance_criteria",
            &self.acceptance_criteria,
            Lines::Multi,
        )
    }
}

impl CheckText for PlanItem {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "title", &self.title, Lines::Single)?;
        field(at, "description", &self.description, Lines::Multi)?;
        field(
            at,
            "acceptance_criteria",
            &self.acceptance_criteria,
            Lines::Multi,
        )
    }
}

impl CheckText for NewPlan {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        nested(at, "deliverables", &self.deliverables)
    }
}

impl CheckText for EvidenceDocument {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "name", &self.name, Lines::Single)?;
        field(at, "sha256", &self.sha256, Lines::Single)
    }
}

impl CheckText for BenchmarkResult {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "name", &self.name, Lines::Single)?;
        field(at, "value", &self.value, Lines::Single)
    }
}

impl CheckText for SubmitEvidence {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "kind", &self.kind, Lines::Single)?;
        field(at, "note", &self.note, Lines::Multi)?;
        if let Some(d) = &self.document {
            nested(at, "document", std::slice::from_ref(d))?;
        }
        if let Some(u) = &self.url {
            field(at, "url", u, Lines::Single)?;
        }
        if let Some(b) = &self.benchmark {
            nested(at, "benchmark", std::slice::from_ref(b))?;
        }
        Ok(())
    }
}

impl CheckText for RecordVerdict {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "verdict", &self.verdict, Lines::Single)?;
        field(at, "reason", &self.reason, Lines::Multi)?;
        field(at, "comments", &self.comments, Lines::Multi)
    }
}

impl CheckText for GateComponent {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "key", &self.key, Lines::Single)?;
        field(at, "group", &self.group, Lines::Single)?;
        field(at, "label", &self.label, Lines::Single)?;
        field(at, "normalisation", &self.normalisation, Lines::Single)?;
        if let Some(m) = &self.max {
            field(at, "max", m, Lines::Single)?;
        }
        if let Some(k) = &self.kind {
            field(at, "kind", k, Lines::Single)?;
        }
        Ok(())
    }
}

impl CheckText for NewGate {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "key", &self.key, Lines::Single)?;
        list(
            at,
            "eligibility_rules",
            &self.eligibility_rules,
            Lines::Single,
        )?;
        list(at, "committee", &self.committee, Lines::Single)?;
        if let Some(c) = &self.components {
            nested(at, "components", c)?;
        }
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for GateInput {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "component", &self.component, Lines::Single)?;
        if let Some(v) = &self.value {
            field(at, "value", v, Lines::Single)?;
        }
        field(at, "source", &self.source, Lines::Single)?;
        field(at, "source_ref", &self.source_ref, Lines::Single)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for EligibilityVerdict {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "rule", &self.rule, Lines::Single)?;
        field(at, "grounds", &self.grounds, Lines::Multi)
    }
}

impl CheckText for CastVote {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for Reallocation {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "model", &self.model, Lines::Single)?;
        field(at, "period", &self.period, Lines::Single)
    }
}

impl CheckText for EliminatedPlan {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        nested(at, "reallocation", &self.reallocation)
    }
}

impl CheckText for NextTarget {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "benchmark", &self.benchmark, Lines::Single)?;
        field(at, "target", &self.target, Lines::Multi)
    }
}

impl CheckText for PublishGate {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        nested(at, "reallocations", &self.reallocations)?;
        nested(at, "next_targets", &self.next_targets)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}
