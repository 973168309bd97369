//! Milestones and stage gates (`services/milestones`): each selected team's plan of
//! deliverables, the evidence its consortium submits and officers' verdicts (with the
//! overdue flag), and the stage gates: definition, inputs, eligibility verdicts, proposals
//! with the committee's votes, the published decision and a team's own result.
//!
//! Officers and admins plan, review and run the gates. A consortium user reads its own plan
//! (with its evidence and verdicts), submits evidence for it, reads the gate definitions, and
//! its own result once a gate is published; nothing of another team. The service enforces
//! all of it with the caller's token; the gateway checks roles first and refuses a
//! consortium user naming another team outright. No type here resolves a nested field by
//! calling a service: every object is what the service returned for this caller, so nothing
//! leaks through nesting.
//!
//! Exact numbers only: benchmark values, gate inputs and scores are decimal strings (the
//! service keeps them as integers); GPU counts in a reallocation plan are `Int64`.

use super::gpu::{own_team_only, Int64};
use super::{caller_with, upstream, Authed};
use crate::clients::Services;
use async_graphql::{Context, ErrorExtensions, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use kaip_contracts::dto::milestones as dto;
use kaip_contracts::events::Reallocation;
use kaip_contracts::{ConsortiumId, Role};
use serde::Deserialize;
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::Officer];
const STAFF_OR_TEAM: &[Role] = &[Role::Admin, Role::Officer, Role::Consortium];

/// The services' milestones client: one line per call.
impl Services {
    async fn ms_get<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> async_graphql::Result<T> {
        self.milestones
            .get(path, Some(token))
            .await
            .map_err(upstream)
    }

    async fn ms_post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: &B,
    ) -> async_graphql::Result<T> {
        self.milestones
            .post(path, body, Some(token))
            .await
            .map_err(upstream)
    }
}

/// A gate key as a path segment. Keys are `a-z`, `0-9` and `-` (the service's rule when a
/// gate is defined), so anything else names no gate: answered `GATE_NOT_FOUND` here rather
/// than sent, so that no `/`, `?` or `..` can address another route.
fn seg(key: &str) -> async_graphql::Result<&str> {
    let ok = !key.is_empty()
        && key.len() <= 63
        && !key.starts_with('-')
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(key)
    } else {
        Err(async_graphql::Error::new(format!("no gate {key:?}"))
            .extend_with(|_, e| e.set("code", "GATE_NOT_FOUND")))
    }
}

// ---- objects ----

/// A selected team as milestones knows it.
#[derive(SimpleObject, Deserialize)]
pub struct MilestoneTeam {
    pub consortium_id: Uuid,
    pub call_id: Uuid,
    pub proposal_id: Uuid,
    pub consortium_name: String,
    pub selected_at: DateTime<Utc>,
    /// The gate that eliminated the team, once published.
    pub eliminated_at_gate: Option<String>,
}

#[derive(SimpleObject)]
pub struct EvidenceDocument {
    pub name: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pub size_bytes: Int64,
}

/// A benchmark result; `value` is an exact decimal string (at most 6 places).
#[derive(SimpleObject)]
pub struct BenchmarkResult {
    pub name: String,
    pub value: String,
}

/// One version of a deliverable's evidence (a new submission is a new version).
#[derive(SimpleObject)]
pub struct DeliverableEvidence {
    pub id: Uuid,
    pub deliverable_id: Uuid,
    pub version: i32,
    /// `document`, `link` or `benchmark`.
    pub kind: String,
    pub note: String,
    pub document: Option<EvidenceDocument>,
    pub url: Option<String>,
    pub benchmark: Option<BenchmarkResult>,
    /// SHA-256 over what was submitted: the team's receipt.
    pub content_sha256: String,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
}

impl From<dto::Evidence> for DeliverableEvidence {
    fn from(e: dto::Evidence) -> Self {
        Self {
            id: e.id,
            deliverable_id: e.deliverable_id,
            version: e.version,
            kind: e.kind,
            note: e.note,
            document: e.document.map(|d| EvidenceDocument {
                name: d.name,
                sha256: d.sha256,
                size_bytes: Int64(d.size_bytes),
            }),
            url: e.url,
            benchmark: e.benchmark.map(|b| BenchmarkResult {
                name: b.name,
                value: b.value,
            }),
            content_sha256: e.content_sha256,
            submitted_by: e.submitted_by,
            submitted_at: e.submitted_at,
        }
    }
}

/// An officer's verdict on a deliverable; every verdict is kept.
#[derive(SimpleObject)]
pub struct DeliverableVerdict {
    pub id: Uuid,
    /// `approved`, `revision` or `rejected`.
    pub verdict: String,
    /// The evidence version the verdict is about.
    pub evidence_version: Option<i32>,
    pub reason: String,
    pub comments: String,
    /// A revision's new due date.
    pub new_due_date: Option<NaiveDate>,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

impl From<dto::Verdict> for DeliverableVerdict {
    fn from(v: dto::Verdict) -> Self {
        Self {
            id: v.id,
            verdict: v.verdict,
            evidence_version: v.evidence_version,
            reason: v.reason,
            comments: v.comments,
            new_due_date: v.new_due_date,
            decided_by: v.decided_by,
            decided_at: v.decided_at,
        }
    }
}

/// A deliverable of a team's plan, with all its evidence versions and verdicts.
#[derive(SimpleObject)]
pub struct Deliverable {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub phase: i32,
    pub title: String,
    pub description: String,
    pub acceptance_criteria: String,
    /// As planned.
    pub due_date: NaiveDate,
    /// The latest revision's new due date, or the planned one.
    pub current_due_date: NaiveDate,
    /// `open`, `submitted`, `revision`, `approved` or `rejected`.
    pub status: String,
    /// Flagged overdue for its current due date.
    pub overdue: bool,
    pub evidence: Vec<DeliverableEvidence>,
    pub verdicts: Vec<DeliverableVerdict>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<dto::Deliverable> for Deliverable {
    fn from(d: dto::Deliverable) -> Self {
        Self {
            id: d.id,
            consortium_id: d.consortium_id.0,
            phase: d.phase,
            title: d.title,
            description: d.description,
            acceptance_criteria: d.acceptance_criteria,
            due_date: d.due_date,
            current_due_date: d.current_due_date,
            status: d.status,
            overdue: d.overdue,
            evidence: d.evidence.into_iter().map(Into::into).collect(),
            verdicts: d.verdicts.into_iter().map(Into::into).collect(),
            created_by: d.created_by,
            created_at: d.created_at,
        }
    }
}

/// A gate's weighted component.
#[derive(SimpleObject)]
pub struct GateComponent {
    pub key: String,
    /// E.g. `benchmarks` (national + global + team-chosen).
    pub group: String,
    pub label: String,
    /// Whole points; a gate's weights sum to 100.
    pub weight: i32,
    /// `min_max` (the best eligible team gets the whole weight) or `of_max`.
    pub normalisation: String,
    /// For `of_max`: the value that earns the whole weight (a decimal string).
    pub max: Option<String>,
    /// What feeds it by event: `benchmark` (integration results), `expert_panel` (scoring's
    /// panel; at most one per gate) or `other`. Absent: group `benchmarks` is `benchmark`,
    /// key `expert-panel` is `expert_panel`.
    pub kind: Option<String>,
}

impl From<dto::GateComponent> for GateComponent {
    fn from(c: dto::GateComponent) -> Self {
        Self {
            key: c.key,
            group: c.group,
            label: c.label,
            weight: c.weight,
            normalisation: c.normalisation,
            max: c.max,
            kind: c.kind,
        }
    }
}

/// A page of deliverables, by id.
#[derive(SimpleObject)]
pub struct DeliverablePage {
    pub items: Vec<Deliverable>,
    /// The `after` of the next page; null on the last one.
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject)]
pub struct Gate {
    pub id: Uuid,
    /// E.g. `gate-1`: the name the ledger's tranches use in `releaseGate`.
    pub key: String,
    pub phase: i32,
    pub gate_date: NaiveDate,
    pub planned_eliminations: i32,
    pub eligibility_rules: Vec<String>,
    /// The committee: officers' token subjects (staff only: null for a consortium user).
    pub committee: Option<Vec<String>>,
    pub components: Vec<GateComponent>,
    pub reason: String,
    /// Who defined the gate (staff only: null for a consortium user).
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Gate {
    /// The gate as `a` may read it: committee and author are staff's.
    fn for_caller(g: dto::Gate, a: &Authed) -> Self {
        let mut g = Gate::from(g);
        if !a.claims.has_any_role(STAFF) {
            g.committee = None;
            g.created_by = None;
        }
        g
    }
}

impl From<dto::Gate> for Gate {
    fn from(g: dto::Gate) -> Self {
        Self {
            id: g.id,
            key: g.key,
            phase: g.phase,
            gate_date: g.gate_date,
            planned_eliminations: g.planned_eliminations,
            eligibility_rules: g.eligibility_rules,
            committee: Some(g.committee),
            components: g.components.into_iter().map(Into::into).collect(),
            reason: g.reason,
            created_by: Some(g.created_by),
            created_at: g.created_at,
        }
    }
}

/// An input as a proposal used it (or as just recorded).
#[derive(SimpleObject)]
pub struct GateInputUsed {
    pub input_id: Uuid,
    pub consortium_id: Uuid,
    pub component: String,
    /// A decimal string (at most 4 places).
    pub value: String,
    /// `entered`, `imported`, `expert_panel` or `evidence`.
    pub source: String,
    pub source_ref: String,
}

impl From<dto::InputUsed> for GateInputUsed {
    fn from(i: dto::InputUsed) -> Self {
        Self {
            input_id: i.input_id,
            consortium_id: i.consortium_id.0,
            component: i.component,
            value: i.value,
            source: i.source,
            source_ref: i.source_ref,
        }
    }
}

/// An input recorded for a gate (corrections are later records; the latest counts).
#[derive(SimpleObject)]
pub struct GateInputRecord {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub component: String,
    pub value: String,
    pub source: String,
    pub source_ref: String,
    pub reason: String,
    pub entered_by: String,
    pub entered_at: DateTime<Utc>,
}

impl From<dto::RecordedInput> for GateInputRecord {
    fn from(i: dto::RecordedInput) -> Self {
        Self {
            id: i.id,
            consortium_id: i.consortium_id.0,
            component: i.component,
            value: i.value,
            source: i.source,
            source_ref: i.source_ref,
            reason: i.reason,
            entered_by: i.entered_by,
            entered_at: i.entered_at,
        }
    }
}

/// An eligibility verdict recorded for a gate (the latest per team and rule counts).
#[derive(SimpleObject)]
pub struct GateEligibilityRecord {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub rule: String,
    pub eligible: bool,
    pub grounds: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

impl From<dto::RecordedEligibility> for GateEligibilityRecord {
    fn from(e: dto::RecordedEligibility) -> Self {
        Self {
            id: e.id,
            consortium_id: e.consortium_id.0,
            rule: e.rule,
            eligible: e.eligible,
            grounds: e.grounds,
            decided_by: e.decided_by,
            decided_at: e.decided_at,
        }
    }
}

/// One component of a team's score: its input and the points it earned.
#[derive(SimpleObject)]
pub struct GateComponentScore {
    pub key: String,
    pub value: String,
    /// Points earned, 9 decimal places, rounded down.
    pub points: String,
}

/// A team's result in a proposal (and, once published, in the decision).
#[derive(SimpleObject)]
pub struct GateTeamResult {
    pub consortium_id: Uuid,
    pub components: Vec<GateComponentScore>,
    /// The exact score rounded down to 9 places (ranks compare exact scores).
    pub score: String,
    pub eligible: bool,
    /// 1 = best among the eligible teams; none for an ineligible team.
    pub rank: Option<i32>,
    /// `continues` or `eliminated`.
    pub outcome: String,
    /// `ineligible: ...` or `rank: ...` for an eliminated team.
    pub reason: Option<String>,
    pub tie_break: Option<String>,
}

impl From<dto::TeamResult> for GateTeamResult {
    fn from(t: dto::TeamResult) -> Self {
        Self {
            consortium_id: t.consortium_id.0,
            components: t
                .components
                .into_iter()
                .map(|c| GateComponentScore {
                    key: c.key,
                    value: c.value,
                    points: c.points,
                })
                .collect(),
            score: t.score,
            eligible: t.eligible,
            rank: t.rank,
            outcome: t.outcome,
            reason: t.reason,
            tie_break: t.tie_break,
        }
    }
}

#[derive(SimpleObject)]
pub struct GateVote {
    pub member: String,
    pub approve: bool,
    pub reason: String,
    pub voted_at: DateTime<Utc>,
}

/// A proposed outcome with the inputs and eligibility verdicts it used, and its votes.
#[derive(SimpleObject)]
pub struct GateProposal {
    pub id: Uuid,
    pub gate_id: Uuid,
    pub teams: Vec<GateTeamResult>,
    pub inputs: Vec<GateInputUsed>,
    /// The eligibility verdicts used (their ids).
    pub eligibility: Vec<Uuid>,
    pub votes: Vec<GateVote>,
    pub approvals: i32,
    pub committee_size: i32,
    /// The gate's latest proposal (only it can be voted on or published).
    pub current: bool,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
}

impl From<dto::Proposal> for GateProposal {
    fn from(p: dto::Proposal) -> Self {
        Self {
            id: p.id,
            gate_id: p.gate_id,
            teams: p.outcome.teams.into_iter().map(Into::into).collect(),
            inputs: p.outcome.inputs.into_iter().map(Into::into).collect(),
            eligibility: p.outcome.eligibility,
            votes: p
                .votes
                .into_iter()
                .map(|v| GateVote {
                    member: v.member,
                    approve: v.approve,
                    reason: v.reason,
                    voted_at: v.voted_at,
                })
                .collect(),
            approvals: p.approvals,
            committee_size: p.committee_size,
            current: p.current,
            proposed_by: p.proposed_by,
            proposed_at: p.proposed_at,
        }
    }
}

/// Where an eliminated team's GPUs go: a survivor, a model, a period and a count.
#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "GateReallocationInput")]
pub struct GateReallocation {
    pub consortium_id: Uuid,
    pub model: String,
    pub period: String,
    pub count: Int64,
}

impl From<Reallocation> for GateReallocation {
    fn from(r: Reallocation) -> Self {
        Self {
            consortium_id: r.consortium_id.0,
            model: r.model,
            period: r.period,
            count: Int64(r.count),
        }
    }
}

#[derive(SimpleObject)]
pub struct GateEliminatedTeam {
    pub consortium_id: Uuid,
    pub reason: String,
    pub reallocation: Vec<GateReallocation>,
}

/// A target for the next phase.
#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "GateNextTargetInput")]
pub struct GateNextTarget {
    pub benchmark: String,
    pub target: String,
}

/// A gate's published decision (one per gate, never overwritten).
#[derive(SimpleObject)]
pub struct GateDecision {
    pub gate_id: Uuid,
    pub gate: String,
    pub proposal_id: Uuid,
    pub passed: Vec<Uuid>,
    pub eliminated: Vec<GateEliminatedTeam>,
    pub next_targets: Vec<GateNextTarget>,
    pub approvals: i32,
    pub committee_size: i32,
    pub reason: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

fn targets(ts: Vec<dto::NextTarget>) -> Vec<GateNextTarget> {
    ts.into_iter()
        .map(|t| GateNextTarget {
            benchmark: t.benchmark,
            target: t.target,
        })
        .collect()
}

impl From<dto::Decision> for GateDecision {
    fn from(d: dto::Decision) -> Self {
        Self {
            gate_id: d.gate_id,
            gate: d.gate,
            proposal_id: d.proposal_id,
            passed: d.passed.into_iter().map(|c| c.0).collect(),
            eliminated: d
                .eliminated
                .into_iter()
                .map(|e| GateEliminatedTeam {
                    consortium_id: e.consortium_id.0,
                    reason: e.reason,
                    reallocation: e.reallocation.into_iter().map(Into::into).collect(),
                })
                .collect(),
            next_targets: targets(d.next_targets),
            approvals: d.approvals,
            committee_size: d.committee_size,
            reason: d.reason,
            decided_by: d.decided_by,
            decided_at: d.decided_at,
        }
    }
}

/// What a team sees of a published gate: its own result and the next phase's targets.
#[derive(SimpleObject)]
pub struct GateResult {
    pub gate: String,
    pub decided_at: DateTime<Utc>,
    pub result: GateTeamResult,
    pub next_targets: Vec<GateNextTarget>,
}

/// The service's answer for a team's result.
#[derive(Deserialize)]
struct TeamGateResult {
    gate: String,
    decided_at: DateTime<Utc>,
    result: dto::TeamResult,
    next_targets: Vec<dto::NextTarget>,
}

// ---- inputs ----

#[derive(InputObject)]
pub struct PlanDeliverableInput {
    /// The client's id for the deliverable (a fresh UUID): a retry with the same id and
    /// fields returns the existing deliverable and creates nothing; the same id with other
    /// fields is `DELIVERABLE_ID_CONFLICT`.
    pub id: Uuid,
    pub title: String,
    #[graphql(default)]
    pub description: String,
    pub acceptance_criteria: String,
    pub due_date: NaiveDate,
}

#[derive(InputObject)]
pub struct EvidenceDocumentInput {
    pub name: String,
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    pub sha256: String,
    pub size_bytes: Int64,
}

#[derive(InputObject)]
pub struct BenchmarkResultInput {
    pub name: String,
    /// An exact decimal string, at most 6 places, e.g. `"87.25"`.
    pub value: String,
}

/// A new evidence version: `kind` is `document`, `link` or `benchmark`, with its field.
#[derive(InputObject)]
pub struct SubmitEvidenceInput {
    pub kind: String,
    #[graphql(default)]
    pub note: String,
    pub document: Option<EvidenceDocumentInput>,
    pub url: Option<String>,
    pub benchmark: Option<BenchmarkResultInput>,
}

/// `approved` (name the `evidenceVersion` reviewed), `revision` (with `comments` and a
/// `newDueDate`) or `rejected`; always with a reason.
#[derive(InputObject)]
pub struct RecordVerdictInput {
    pub verdict: String,
    pub reason: String,
    #[graphql(default)]
    pub comments: String,
    pub new_due_date: Option<NaiveDate>,
    pub evidence_version: Option<i32>,
}

#[derive(InputObject)]
pub struct GateComponentInput {
    pub key: String,
    pub group: String,
    pub label: String,
    pub weight: i32,
    /// `min_max` or `of_max` (with `max`).
    pub normalisation: String,
    pub max: Option<String>,
    /// `benchmark`, `expert_panel` (at most one; `of_max` only with `max` 100) or `other`;
    /// absent: decided by the template's naming (see `GateComponent.kind`).
    pub kind: Option<String>,
}

/// A gate. Without `components`, the first gate's template (see `firstGateTemplate`).
#[derive(InputObject)]
pub struct CreateGateInput {
    pub key: String,
    pub phase: i32,
    pub gate_date: NaiveDate,
    pub planned_eliminations: i32,
    pub eligibility_rules: Vec<String>,
    /// Officers' token subjects, at least 3 distinct.
    pub committee: Vec<String>,
    pub components: Option<Vec<GateComponentInput>>,
    pub reason: String,
}

/// A team's value for a component: `value` (a decimal string, at most 4 places) with source
/// `entered`, `imported` or `expert_panel`, or `evidenceId` (the team's approved benchmark
/// evidence) with source `evidence`.
#[derive(InputObject)]
pub struct GateInputInput {
    pub consortium_id: Uuid,
    pub component: String,
    pub value: Option<String>,
    pub evidence_id: Option<Uuid>,
    pub source: String,
    #[graphql(default)]
    pub source_ref: String,
    pub reason: String,
}

#[derive(InputObject)]
pub struct GateEligibilityInput {
    pub consortium_id: Uuid,
    pub rule: String,
    pub eligible: bool,
    pub grounds: String,
}

#[derive(InputObject)]
pub struct GateEliminatedPlanInput {
    /// The eliminated team.
    pub consortium_id: Uuid,
    pub reallocation: Vec<GateReallocation>,
}

#[derive(InputObject)]
pub struct PublishGateInput {
    pub proposal_id: Uuid,
    #[graphql(default)]
    pub reallocations: Vec<GateEliminatedPlanInput>,
    #[graphql(default)]
    pub next_targets: Vec<GateNextTarget>,
    pub reason: String,
}

// ---- queries ----

#[derive(Default)]
pub struct MilestonesQuery;

#[Object]
impl MilestonesQuery {
    /// The selected teams milestones knows (a team sees its own), with the gate that
    /// eliminated each.
    async fn milestone_teams(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<MilestoneTeam>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read selected teams")?;
        ctx.data::<Services>()?.ms_get(&a.token, "/teams").await
    }

    /// Plans: deliverables with their evidence, verdicts and overdue flag, filtered by team
    /// and phase (`overdueOnly` keeps the flagged ones, decided by the service before
    /// paging). A team sees its own plan only. Pages by id: `first` (1 to 500, 100 by
    /// default) and `after` (the previous page's `nextCursor`, null on the last page).
    async fn deliverables(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
        phase: Option<i32>,
        #[graphql(default)] overdue_only: bool,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<DeliverablePage> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read plans")?;
        let team = own_team_only(ctx, consortium_id, "read the plan")?;
        let first = first.unwrap_or(100);
        if !(1..=500).contains(&first) {
            return Err(async_graphql::Error::new("first: from 1 to 500")
                .extend_with(|_, e| e.set("code", "VALIDATION_FAILED")));
        }
        let mut q = vec![format!("limit={}", first + 1)];
        if let Some(t) = team {
            q.push(format!("consortium_id={t}"));
        }
        if let Some(p) = phase {
            q.push(format!("phase={p}"));
        }
        if overdue_only {
            q.push("overdue_only=true".to_owned());
        }
        if let Some(c) = after {
            let c: Uuid = c.parse().map_err(|_| {
                async_graphql::Error::new("after: a cursor from nextCursor")
                    .extend_with(|_, e| e.set("code", "VALIDATION_FAILED"))
            })?;
            q.push(format!("after={c}"));
        }
        let path = format!("/deliverables?{}", q.join("&"));
        let mut v: Vec<dto::Deliverable> = ctx.data::<Services>()?.ms_get(&a.token, &path).await?;
        let more = v.len() > first as usize;
        v.truncate(first as usize);
        let next_cursor = more
            .then(|| v.last().map(|d| ID(d.id.to_string())))
            .flatten();
        Ok(DeliverablePage {
            items: v.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }

    /// One deliverable (another team's reads as `DELIVERABLE_NOT_FOUND`).
    async fn deliverable(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Deliverable> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read plans")?;
        let d: dto::Deliverable = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/deliverables/{id}"))
            .await?;
        Ok(d.into())
    }

    /// The first gate's components (officers): benchmarks 40 (national 10, global 20,
    /// team-chosen 10), expert panel 35, user evaluation 25.
    async fn first_gate_template(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<GateComponent>> {
        let a = caller_with(ctx, STAFF, "read gate templates")?;
        let v: Vec<dto::GateComponent> = ctx
            .data::<Services>()?
            .ms_get(&a.token, "/gate-templates/first")
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Gate definitions (programme rules: every team may read them).
    async fn gates(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Gate>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read gates")?;
        let v: Vec<dto::Gate> = ctx.data::<Services>()?.ms_get(&a.token, "/gates").await?;
        Ok(v.into_iter().map(|g| Gate::for_caller(g, a)).collect())
    }

    async fn gate(&self, ctx: &Context<'_>, key: String) -> async_graphql::Result<Gate> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read gates")?;
        let g: dto::Gate = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/gates/{}", seg(&key)?))
            .await?;
        Ok(Gate::for_caller(g, a))
    }

    /// Every input recorded for a gate, oldest first (officers).
    async fn gate_inputs(
        &self,
        ctx: &Context<'_>,
        gate: String,
    ) -> async_graphql::Result<Vec<GateInputRecord>> {
        let a = caller_with(ctx, STAFF, "read gate inputs")?;
        let v: Vec<dto::RecordedInput> = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/gates/{}/inputs", seg(&gate)?))
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Every eligibility verdict recorded for a gate, oldest first (officers).
    async fn gate_eligibility(
        &self,
        ctx: &Context<'_>,
        gate: String,
    ) -> async_graphql::Result<Vec<GateEligibilityRecord>> {
        let a = caller_with(ctx, STAFF, "read eligibility verdicts")?;
        let v: Vec<dto::RecordedEligibility> = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/gates/{}/eligibility", seg(&gate)?))
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// A gate's proposals with their votes, oldest first (officers).
    async fn gate_proposals(
        &self,
        ctx: &Context<'_>,
        gate: String,
    ) -> async_graphql::Result<Vec<GateProposal>> {
        let a = caller_with(ctx, STAFF, "read a gate's proposals")?;
        let v: Vec<dto::Proposal> = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/gates/{}/proposals", seg(&gate)?))
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    async fn gate_proposal(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<GateProposal> {
        let a = caller_with(ctx, STAFF, "read a gate's proposals")?;
        let p: dto::Proposal = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/proposals/{id}"))
            .await?;
        Ok(p.into())
    }

    /// A gate's published decision (officers); null before publication.
    async fn gate_decision(
        &self,
        ctx: &Context<'_>,
        gate: String,
    ) -> async_graphql::Result<Option<GateDecision>> {
        let a = caller_with(ctx, STAFF, "read a gate's decision")?;
        let d: Option<dto::Decision> = ctx
            .data::<Services>()?
            .ms_get(&a.token, &format!("/gates/{}/decision", seg(&gate)?))
            .await?;
        Ok(d.map(Into::into))
    }

    /// A team's own result at a published gate (`RESULT_NOT_PUBLISHED` before); a team
    /// cannot ask for another team's.
    async fn gate_result(
        &self,
        ctx: &Context<'_>,
        gate: String,
        consortium_id: Uuid,
    ) -> async_graphql::Result<GateResult> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read gate results")?;
        own_team_only(ctx, Some(consortium_id), "read the gate result")?;
        let r: TeamGateResult = ctx
            .data::<Services>()?
            .ms_get(
                &a.token,
                &format!("/gates/{}/results/{consortium_id}", seg(&gate)?),
            )
            .await?;
        Ok(GateResult {
            gate: r.gate,
            decided_at: r.decided_at,
            result: r.result.into(),
            next_targets: targets(r.next_targets),
        })
    }
}

// ---- mutations ----

#[derive(Default)]
pub struct MilestonesMutation;

#[Object]
impl MilestonesMutation {
    /// Sets a team's plan for a phase (officers): its deliverables, all or none (a bad one,
    /// named `deliverables[i].<field>`, writes nothing). Again for the same phase adds to it.
    async fn create_plan(
        &self,
        ctx: &Context<'_>,
        consortium_id: Uuid,
        phase: i32,
        deliverables: Vec<PlanDeliverableInput>,
    ) -> async_graphql::Result<Vec<Deliverable>> {
        let a = caller_with(ctx, STAFF, "set a team's plan")?;
        let body = dto::NewPlan {
            consortium_id: ConsortiumId(consortium_id),
            phase,
            deliverables: deliverables
                .into_iter()
                .map(|d| dto::PlanItem {
                    id: Some(d.id),
                    title: d.title,
                    description: d.description,
                    acceptance_criteria: d.acceptance_criteria,
                    due_date: d.due_date,
                })
                .collect(),
        };
        let v: Vec<dto::Deliverable> = ctx
            .data::<Services>()?
            .ms_post(&a.token, "/plans", &body)
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Adds one deliverable to a team's plan (officers).
    async fn add_deliverable(
        &self,
        ctx: &Context<'_>,
        consortium_id: Uuid,
        phase: i32,
        deliverable: PlanDeliverableInput,
    ) -> async_graphql::Result<Deliverable> {
        let a = caller_with(ctx, STAFF, "set a team's plan")?;
        let body = dto::NewDeliverable {
            id: Some(deliverable.id),
            consortium_id: ConsortiumId(consortium_id),
            phase,
            title: deliverable.title,
            description: deliverable.description,
            acceptance_criteria: deliverable.acceptance_criteria,
            due_date: deliverable.due_date,
        };
        let d: dto::Deliverable = ctx
            .data::<Services>()?
            .ms_post(&a.token, "/deliverables", &body)
            .await?;
        Ok(d.into())
    }

    /// A new version of a deliverable's evidence (the team's consortium users only; another
    /// team's deliverable: `DELIVERABLE_NOT_FOUND`, as for one that does not exist).
    async fn submit_evidence(
        &self,
        ctx: &Context<'_>,
        deliverable_id: Uuid,
        input: SubmitEvidenceInput,
    ) -> async_graphql::Result<DeliverableEvidence> {
        let a = caller_with(ctx, &[Role::Consortium], "submit evidence")?;
        let body = dto::SubmitEvidence {
            kind: input.kind,
            note: input.note,
            document: input.document.map(|d| dto::EvidenceDocument {
                name: d.name,
                sha256: d.sha256,
                size_bytes: d.size_bytes.0,
            }),
            url: input.url,
            benchmark: input.benchmark.map(|b| dto::BenchmarkResult {
                name: b.name,
                value: b.value,
            }),
        };
        let e: dto::Evidence = ctx
            .data::<Services>()?
            .ms_post(
                &a.token,
                &format!("/deliverables/{deliverable_id}/evidence"),
                &body,
            )
            .await?;
        Ok(e.into())
    }

    /// An officer's verdict on a deliverable; returns the deliverable with all verdicts.
    async fn record_verdict(
        &self,
        ctx: &Context<'_>,
        deliverable_id: Uuid,
        input: RecordVerdictInput,
    ) -> async_graphql::Result<Deliverable> {
        let a = caller_with(ctx, STAFF, "review deliverables")?;
        let body = dto::RecordVerdict {
            verdict: input.verdict,
            reason: input.reason,
            comments: input.comments,
            new_due_date: input.new_due_date,
            evidence_version: input.evidence_version,
        };
        let d: dto::Deliverable = ctx
            .data::<Services>()?
            .ms_post(
                &a.token,
                &format!("/deliverables/{deliverable_id}/verdicts"),
                &body,
            )
            .await?;
        Ok(d.into())
    }

    /// Defines a stage gate (officers and admins); weights must sum to 100 (`GATE_WEIGHTS`).
    async fn create_gate(
        &self,
        ctx: &Context<'_>,
        input: CreateGateInput,
    ) -> async_graphql::Result<Gate> {
        let a = caller_with(ctx, STAFF, "define gates")?;
        let body = dto::NewGate {
            key: input.key,
            phase: input.phase,
            gate_date: input.gate_date,
            planned_eliminations: input.planned_eliminations,
            eligibility_rules: input.eligibility_rules,
            committee: input.committee,
            components: input.components.map(|cs| {
                cs.into_iter()
                    .map(|c| dto::GateComponent {
                        key: c.key,
                        group: c.group,
                        label: c.label,
                        weight: c.weight,
                        normalisation: c.normalisation,
                        max: c.max,
                        kind: c.kind,
                    })
                    .collect()
            }),
            reason: input.reason,
        };
        let g: dto::Gate = ctx
            .data::<Services>()?
            .ms_post(&a.token, "/gates", &body)
            .await?;
        Ok(g.into())
    }

    /// Records a team's value for one of the gate's components (officers); a later input
    /// for the same team and component supersedes it.
    async fn record_gate_input(
        &self,
        ctx: &Context<'_>,
        gate: String,
        input: GateInputInput,
    ) -> async_graphql::Result<GateInputUsed> {
        let a = caller_with(ctx, STAFF, "record gate inputs")?;
        let body = dto::GateInput {
            consortium_id: ConsortiumId(input.consortium_id),
            component: input.component,
            value: input.value,
            evidence_id: input.evidence_id,
            source: input.source,
            source_ref: input.source_ref,
            reason: input.reason,
        };
        let i: dto::InputUsed = ctx
            .data::<Services>()?
            .ms_post(&a.token, &format!("/gates/{}/inputs", seg(&gate)?), &body)
            .await?;
        Ok(i.into())
    }

    /// Records an eligibility verdict for a team on one of the gate's rules, with grounds
    /// (officers); returns the verdict's id.
    async fn record_gate_eligibility(
        &self,
        ctx: &Context<'_>,
        gate: String,
        input: GateEligibilityInput,
    ) -> async_graphql::Result<Uuid> {
        #[derive(Deserialize)]
        struct Created {
            id: Uuid,
        }
        let a = caller_with(ctx, STAFF, "record eligibility verdicts")?;
        let body = dto::EligibilityVerdict {
            consortium_id: ConsortiumId(input.consortium_id),
            rule: input.rule,
            eligible: input.eligible,
            grounds: input.grounds,
        };
        let c: Created = ctx
            .data::<Services>()?
            .ms_post(
                &a.token,
                &format!("/gates/{}/eligibility", seg(&gate)?),
                &body,
            )
            .await?;
        Ok(c.id)
    }

    /// Proposes the gate's outcome from the latest inputs and eligibility verdicts
    /// (officers): the ineligible and the planned number of lowest-ranked teams go.
    async fn propose_gate_outcome(
        &self,
        ctx: &Context<'_>,
        gate: String,
    ) -> async_graphql::Result<GateProposal> {
        let a = caller_with(ctx, STAFF, "propose a gate's outcome")?;
        let p: dto::Proposal = ctx
            .data::<Services>()?
            .ms_post(&a.token, &format!("/gates/{}/proposals", seg(&gate)?), &())
            .await?;
        Ok(p.into())
    }

    /// A committee member's vote on the gate's current proposal (`NOT_ON_COMMITTEE`,
    /// `ALREADY_VOTED`, `PROPOSAL_SUPERSEDED`).
    async fn vote_on_gate_proposal(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
        approve: bool,
        reason: String,
    ) -> async_graphql::Result<GateProposal> {
        let a = caller_with(ctx, STAFF, "vote on a gate's proposal")?;
        let p: dto::Proposal = ctx
            .data::<Services>()?
            .ms_post(
                &a.token,
                &format!("/proposals/{proposal_id}/votes"),
                &dto::CastVote { approve, reason },
            )
            .await?;
        Ok(p.into())
    }

    /// Publishes the approved proposal (`NO_MAJORITY` without more than half the committee)
    /// with the reallocation plan and the next phase's targets. The same request again
    /// returns the decision and publishes nothing.
    async fn publish_gate(
        &self,
        ctx: &Context<'_>,
        gate: String,
        input: PublishGateInput,
    ) -> async_graphql::Result<GateDecision> {
        let a = caller_with(ctx, STAFF, "publish a gate's decision")?;
        let body = dto::PublishGate {
            proposal_id: input.proposal_id,
            reallocations: input
                .reallocations
                .into_iter()
                .map(|p| dto::EliminatedPlan {
                    consortium_id: ConsortiumId(p.consortium_id),
                    reallocation: p
                        .reallocation
                        .into_iter()
                        .map(|r| Reallocation {
                            consortium_id: ConsortiumId(r.consortium_id),
                            model: r.model,
                            period: r.period,
                            count: r.count.0,
                        })
                        .collect(),
                })
                .collect(),
            next_targets: input
                .next_targets
                .into_iter()
                .map(|t| dto::NextTarget {
                    benchmark: t.benchmark,
                    target: t.target,
                })
                .collect(),
            reason: input.reason,
        };
        let d: dto::Decision = ctx
            .data::<Services>()?
            .ms_post(&a.token, &format!("/gates/{}/publish", seg(&gate)?), &body)
            .await?;
        Ok(d.into())
    }
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn only_a_well_formed_gate_key_reaches_a_path() {
        assert_eq!(seg("gate-1").ok(), Some("gate-1"));
        for bad in [
            "",
            "..",
            "gate-1/publish",
            "gate-1?x=1",
            "Gate-1",
            "-gate",
            "게이트",
        ] {
            assert!(seg(bad).is_err(), "{bad:?}");
        }
        assert!(seg(&"g".repeat(64)).is_err());
    }
}
