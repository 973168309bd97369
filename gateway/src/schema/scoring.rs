//! Evaluation: settings, reviewers, assignments, scores, stages, selection, feedback and
//! appeals (the scoring service).

use super::{caller, caller_with, upstream};
use crate::clients::Services;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use kaip_contracts::dto::panels;
use kaip_contracts::dto::scoring as dto;
use kaip_contracts::dto::Page;
use kaip_contracts::{CallId, ConsortiumId, ProposalId, Role};
use std::collections::BTreeMap;
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::Officer];

/// Scoring's case for one proposal.
#[derive(Clone, Debug)]
pub struct EvaluationCase(pub dto::EvaluationCase);

#[Object]
impl EvaluationCase {
    async fn id(&self) -> Uuid {
        self.0.id.0
    }
    async fn proposal_id(&self) -> Uuid {
        self.0.proposal_id.0
    }
    async fn call_id(&self) -> Uuid {
        self.0.call_id.0
    }
    async fn consortium_id(&self) -> Uuid {
        self.0.consortium_id.0
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// `open`, `withdrawn`, `eliminated`, `finalist`, `selected`, `not_selected`, `late`
    /// (its submission reached evaluation after stage 0 closed: staff decide) or
    /// `rejected_late`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Why staff rejected a late case.
    async fn late_resolution(&self) -> Option<&str> {
        self.0.late_resolution.as_deref()
    }
    /// The stage the case is in (0-based).
    async fn stage(&self) -> i32 {
        self.0.stage
    }
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }
}

#[derive(SimpleObject)]
pub struct EvaluationCasePage {
    pub items: Vec<EvaluationCase>,
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "CriterionInput")]
pub struct Criterion {
    pub key: String,
    pub name: String,
    pub max_points: i64,
    pub min_points: Option<i64>,
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "StageInput")]
pub struct Stage {
    pub name: String,
    /// Keep the best N eligible proposals for the next stage (all if null).
    pub keep_top: Option<u32>,
    pub min_total: Option<i64>,
}

/// A slot constraint: `category` is `sme_or_academia_led`, `lead:<org type>` or `includes:<org type>`.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "SlotConstraintInput")]
pub struct SlotConstraint {
    pub category: String,
    pub at_least: Option<u32>,
    pub at_most: Option<u32>,
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "EvaluationConfigInput")]
pub struct EvaluationConfig {
    pub criteria: Vec<Criterion>,
    pub min_total: Option<i64>,
    pub stages: Vec<Stage>,
    pub reviewers_per_proposal: u32,
    pub max_assignments_per_reviewer: u32,
    pub normalise: bool,
    /// In order: `criterion:<key>` or `earlier_submission`.
    pub tie_break: Vec<String>,
    pub teams: u32,
    pub constraints: Vec<SlotConstraint>,
    /// Below this many proposals in a stage, consortia's feedback withholds the anonymised
    /// distribution (at least 6; see the README's competition rules).
    #[graphql(default_with = "dto::DEFAULT_ANONYMITY_MIN_GROUP")]
    pub anonymity_min_group: u32,
}

impl From<dto::EvaluationConfig> for EvaluationConfig {
    fn from(c: dto::EvaluationConfig) -> Self {
        EvaluationConfig {
            criteria: c
                .criteria
                .into_iter()
                .map(|k| Criterion {
                    key: k.key,
                    name: k.name,
                    max_points: k.max_points,
                    min_points: k.min_points,
                })
                .collect(),
            min_total: c.min_total,
            stages: c
                .stages
                .into_iter()
                .map(|s| Stage {
                    name: s.name,
                    keep_top: s.keep_top,
                    min_total: s.min_total,
                })
                .collect(),
            reviewers_per_proposal: c.reviewers_per_proposal,
            max_assignments_per_reviewer: c.max_assignments_per_reviewer,
            normalise: c.normalise,
            tie_break: c.tie_break,
            teams: c.teams,
            constraints: c
                .constraints
                .into_iter()
                .map(|s| SlotConstraint {
                    category: s.category,
                    at_least: s.at_least,
                    at_most: s.at_most,
                })
                .collect(),
            anonymity_min_group: c.anonymity_min_group,
        }
    }
}

impl From<EvaluationConfig> for dto::EvaluationConfig {
    fn from(c: EvaluationConfig) -> Self {
        dto::EvaluationConfig {
            criteria: c
                .criteria
                .into_iter()
                .map(|k| dto::CriterionConfig {
                    key: k.key,
                    name: k.name,
                    max_points: k.max_points,
                    min_points: k.min_points,
                })
                .collect(),
            min_total: c.min_total,
            stages: c
                .stages
                .into_iter()
                .map(|s| dto::StageConfig {
                    name: s.name,
                    keep_top: s.keep_top,
                    min_total: s.min_total,
                })
                .collect(),
            reviewers_per_proposal: c.reviewers_per_proposal,
            max_assignments_per_reviewer: c.max_assignments_per_reviewer,
            normalise: c.normalise,
            tie_break: c.tie_break,
            teams: c.teams,
            constraints: c
                .constraints
                .into_iter()
                .map(|s| dto::SlotConstraint {
                    category: s.category,
                    at_least: s.at_least,
                    at_most: s.at_most,
                })
                .collect(),
            anonymity_min_group: c.anonymity_min_group,
        }
    }
}

#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "ReviewerInput")]
pub struct Reviewer {
    /// The reviewer's token subject.
    pub id: String,
    pub name: String,
    pub organisation: String,
    pub business_registration_number: Option<String>,
    #[graphql(default)]
    pub expertise: Vec<String>,
}

impl From<dto::Reviewer> for Reviewer {
    fn from(r: dto::Reviewer) -> Self {
        Reviewer {
            id: r.id,
            name: r.name,
            organisation: r.organisation,
            business_registration_number: r.business_registration_number,
            expertise: r.expertise,
        }
    }
}

#[derive(SimpleObject)]
pub struct ReviewerPage {
    pub items: Vec<Reviewer>,
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject)]
pub struct BlockedAssignment {
    pub reviewer_id: String,
    pub proposal_id: Uuid,
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct AssignmentReport {
    pub stage: i32,
    pub assigned: i64,
    /// Reviewer-proposal pairs kept apart by a conflict of interest, with the reason.
    pub blocked: Vec<BlockedAssignment>,
}

#[derive(SimpleObject)]
pub struct Assignment {
    pub id: Uuid,
    pub call_id: Uuid,
    pub stage: i32,
    pub reviewer_id: String,
    pub proposal_id: Uuid,
    pub title: String,
    pub scored: bool,
    pub assigned_at: DateTime<Utc>,
    /// Why the assignment no longer counts (a late conflict of interest; its sheet is kept),
    /// if it does not. Reviewers never see their voided assignments.
    pub void_reason: Option<String>,
}

/// One saved version of a call's evaluation settings.
#[derive(SimpleObject)]
pub struct EvaluationConfigVersion {
    pub version: i32,
    pub config: EvaluationConfig,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// One registration of a reviewer's profile.
#[derive(SimpleObject)]
pub struct ReviewerVersion {
    pub version: i32,
    pub name: String,
    pub organisation: String,
    pub business_registration_number: Option<String>,
    pub expertise: Vec<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// One submission of a score sheet (the latest is the current one).
#[derive(SimpleObject)]
pub struct ScoreSheetVersion {
    pub version: i32,
    /// What the reviewer gave, in whole points (a sheet is never in hundredths).
    pub scores: Vec<CriterionPoints>,
    pub comments: Vec<CriterionComment>,
    pub total: i64,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A criterion's score on a reviewer's sheet, in whole points.
#[derive(SimpleObject)]
pub struct CriterionPoints {
    pub criterion: String,
    pub points: i64,
}

#[derive(SimpleObject)]
pub struct CriterionComment {
    pub criterion: String,
    pub comment: String,
}

/// A proposal with fewer counting reviewers than the call needs (`code` is
/// `REVIEWER_SHORTFALL`): register another reviewer and assign the stage again.
#[derive(SimpleObject)]
pub struct ReviewerShortfall {
    pub code: String,
    pub proposal_id: Uuid,
    pub stage: i32,
    pub assigned: i64,
    pub needed: i64,
}

impl From<dto::ReviewerShortfall> for ReviewerShortfall {
    fn from(r: dto::ReviewerShortfall) -> Self {
        Self {
            code: r.code,
            proposal_id: r.proposal_id.0,
            stage: r.stage,
            assigned: r.assigned,
            needed: r.needed,
        }
    }
}

/// What a declared conflict of interest changed.
#[derive(SimpleObject)]
pub struct ConflictReport {
    /// The reviewer's assignments to the consortium's proposals in stages still open, now
    /// void (their sheets kept, no longer counted).
    pub voided: Vec<ConflictedAssignment>,
    /// Reviewers assigned in their place.
    pub replacements: Vec<Replacement>,
    /// Proposals left short of reviewers: nobody eligible remained.
    pub shortfalls: Vec<ReviewerShortfall>,
    /// Assignments in stages already closed, marked with the conflict (their result stands).
    pub noted: Vec<ConflictedAssignment>,
}

#[derive(SimpleObject)]
pub struct ConflictedAssignment {
    pub assignment_id: Uuid,
    pub proposal_id: Uuid,
    pub stage: i32,
    /// Whether the reviewer had scored it when the conflict was recorded.
    pub had_sheet: bool,
}

#[derive(SimpleObject)]
pub struct Replacement {
    pub reviewer_id: String,
    pub proposal_id: Uuid,
    pub stage: i32,
}

impl From<dto::ConflictReport> for ConflictReport {
    fn from(r: dto::ConflictReport) -> Self {
        let assignment = |v: dto::VoidedAssignment| ConflictedAssignment {
            assignment_id: v.assignment_id,
            proposal_id: v.proposal_id.0,
            stage: v.stage,
            had_sheet: v.had_sheet,
        };
        Self {
            voided: r.voided.into_iter().map(assignment).collect(),
            replacements: r
                .replacements
                .into_iter()
                .map(|x| Replacement {
                    reviewer_id: x.reviewer_id,
                    proposal_id: x.proposal_id.0,
                    stage: x.stage,
                })
                .collect(),
            shortfalls: r.shortfalls.into_iter().map(Into::into).collect(),
            noted: r.noted.into_iter().map(assignment).collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct AssignmentPage {
    pub items: Vec<Assignment>,
    pub next_cursor: Option<ID>,
}

#[derive(InputObject)]
pub struct CriterionScoreInput {
    pub criterion: String,
    /// Whole points, 0 to the criterion's maximum.
    pub points: i64,
    #[graphql(default)]
    pub comment: String,
}

#[derive(SimpleObject)]
pub struct ScoreResult {
    pub assignment_id: Uuid,
    pub total: i64,
}

#[derive(SimpleObject, Clone)]
pub struct CriterionScore {
    pub criterion: String,
    /// Hundredths of a point.
    pub centi: i64,
}

fn criterion_scores(m: BTreeMap<String, i64>) -> Vec<CriterionScore> {
    m.into_iter()
        .map(|(criterion, centi)| CriterionScore { criterion, centi })
        .collect()
}

#[derive(SimpleObject)]
pub struct StageResult {
    pub proposal_id: Uuid,
    pub title: String,
    pub position: Option<i32>,
    /// Consensus total in hundredths of a point.
    pub total_centi: i64,
    pub per_criterion: Vec<CriterionScore>,
    pub eligible: bool,
    pub shortfalls: Vec<String>,
    pub advanced: bool,
    /// When tied with the proposal above, the rule that separated them.
    pub tie_broken_by: Option<String>,
}

impl From<dto::StageResult> for StageResult {
    fn from(r: dto::StageResult) -> Self {
        StageResult {
            proposal_id: r.proposal_id.0,
            title: r.title,
            position: r.position,
            total_centi: r.total_centi,
            per_criterion: criterion_scores(r.per_criterion_centi),
            eligible: r.eligible,
            shortfalls: r.shortfalls,
            advanced: r.advanced,
            tie_broken_by: r.tie_broken_by,
        }
    }
}

#[derive(SimpleObject)]
pub struct StageResultPage {
    pub items: Vec<StageResult>,
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject)]
pub struct Departure {
    /// Selected although ranked below the top k.
    pub promoted: Vec<Uuid>,
    /// In the top k by rank but not selected.
    pub displaced: Vec<Uuid>,
    pub reasons: Vec<String>,
}

/// One version of a call's decision: every proposal, override and publication is kept.
#[derive(SimpleObject)]
pub struct Decision {
    pub call_id: Uuid,
    /// 1, 2, ... per call; the current decision is the latest.
    pub version: i32,
    /// `proposed` (the computed portfolio), `override` or `published`.
    pub kind: String,
    pub selected: Vec<Uuid>,
    pub total_centi: i64,
    /// Null when the selection is exactly the top k by rank.
    pub departure: Option<Departure>,
    pub override_reason: Option<String>,
    /// The rules an override breaks by the officer's explicit choice.
    pub waivers: Vec<String>,
    /// What the decision does, computed from it (never free text).
    pub explanation: Vec<String>,
    /// Who made this version and when (for a publication: the publisher).
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub published_by: Option<String>,
    /// For a publication, the version it made final.
    pub publishes_version: Option<i32>,
    /// For a publication, SHA-256 of the recorded inputs (`make verify-decision` checks it).
    pub inputs_sha256: Option<String>,
}

impl From<dto::Decision> for Decision {
    fn from(d: dto::Decision) -> Self {
        Decision {
            call_id: d.call_id.0,
            version: d.version,
            kind: d.kind,
            selected: d.selected.into_iter().map(|p| p.0).collect(),
            total_centi: d.total_centi,
            departure: d.departure.map(|x| Departure {
                promoted: x.promoted.into_iter().map(|p| p.0).collect(),
                displaced: x.displaced.into_iter().map(|p| p.0).collect(),
                reasons: x.reasons,
            }),
            override_reason: d.override_reason,
            waivers: d.waivers,
            explanation: d.explanation,
            decided_by: d.decided_by,
            decided_at: d.decided_at,
            published_at: d.published_at,
            published_by: d.published_by,
            publishes_version: d.publishes_version,
            inputs_sha256: d.inputs_sha256,
        }
    }
}

#[derive(InputObject)]
pub struct SelectionOverrideInput {
    /// The teams chosen instead (empty: select nobody).
    pub selected: Vec<Uuid>,
    pub reason: String,
    /// Each rule of the call the override breaks, named explicitly: `teams` (another number
    /// of teams than the settings'), `at_least:<category>`, `at_most:<category>`. An
    /// override breaking a rule it does not waive is refused (`OVERRIDE_BREAKS_RULES`).
    #[graphql(default)]
    pub waivers: Vec<String>,
}

/// An officer's order for proposals the declared tie-break leaves tied.
#[derive(SimpleObject)]
pub struct TieDecision {
    pub id: Uuid,
    pub call_id: Uuid,
    pub stage: i32,
    /// Best first.
    pub order: Vec<Uuid>,
    pub reason: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
}

impl From<dto::TieDecision> for TieDecision {
    fn from(t: dto::TieDecision) -> Self {
        TieDecision {
            id: t.id,
            call_id: t.call_id.0,
            stage: t.stage,
            order: t.order.into_iter().map(|p| p.0).collect(),
            reason: t.reason,
            decided_by: t.decided_by,
            decided_at: t.decided_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct Distribution {
    pub criterion: String,
    pub count: i64,
    pub min_centi: i64,
    pub median_centi: i64,
    pub max_centi: i64,
    pub mean_centi: i64,
}

#[derive(SimpleObject)]
pub struct StageFeedback {
    pub stage: i32,
    pub stage_name: String,
    pub position: Option<i32>,
    pub total_centi: i64,
    pub per_criterion: Vec<CriterionScore>,
    pub advanced: bool,
    /// Over all proposals of the stage, anonymised; empty when withheld.
    pub distribution: Vec<Distribution>,
    /// Why the distribution is withheld (too few proposals to stay anonymous), if it is.
    pub distribution_withheld: Option<String>,
}

#[derive(SimpleObject)]
pub struct Feedback {
    pub proposal_id: Uuid,
    pub status: String,
    pub stages: Vec<StageFeedback>,
}

#[derive(SimpleObject)]
pub struct Appeal {
    pub id: Uuid,
    pub call_id: Uuid,
    pub proposal_id: Uuid,
    pub consortium_id: Uuid,
    pub grounds: String,
    pub filed_at: DateTime<Utc>,
    pub answer: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
}

impl From<dto::Appeal> for Appeal {
    fn from(a: dto::Appeal) -> Self {
        Appeal {
            id: a.id,
            call_id: a.call_id.0,
            proposal_id: a.proposal_id.0,
            consortium_id: a.consortium_id.0,
            grounds: a.grounds,
            filed_at: a.filed_at,
            answer: a.answer,
            answered_at: a.answered_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct AppealPage {
    pub items: Vec<Appeal>,
    pub next_cursor: Option<ID>,
}

/// A criterion of a gate panel's score sheet.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "PanelCriterionInput")]
pub struct PanelCriterion {
    pub key: String,
    pub name: String,
    /// Whole points, at least 1.
    pub max_points: i64,
}

#[derive(InputObject)]
pub struct GatePanelInput {
    /// The gate's key in milestones (`gate-1`).
    pub gate: String,
    pub call_id: Uuid,
    /// Replacement calls whose selected winners join the panel; absent: none.
    pub replacement_call_ids: Option<Vec<Uuid>>,
    /// Teams the calls selected and no gate eliminated; absent: all of them (an eliminated
    /// team named is refused).
    pub consortium_ids: Option<Vec<Uuid>>,
    pub criteria: Vec<PanelCriterion>,
    pub reviewers_per_team: u32,
    pub reason: String,
}

/// One team's result of a closed gate panel.
#[derive(SimpleObject)]
pub struct PanelTeamResult {
    pub consortium_id: Uuid,
    /// Out of 100, an exact decimal string with at most 4 places (rounded half up).
    pub score: String,
    /// The consensus total in hundredths of a point.
    pub total_centi: i64,
    pub per_criterion: Vec<CriterionScore>,
    pub reviewers: u32,
}

/// A gate's expert panel (scoring), whose results milestones takes as the gate's
/// expert-panel input.
#[derive(SimpleObject)]
pub struct GatePanel {
    pub id: Uuid,
    pub gate: String,
    pub call_id: Uuid,
    pub replacement_call_ids: Vec<Uuid>,
    pub teams: Vec<Uuid>,
    pub criteria: Vec<PanelCriterion>,
    pub reviewers_per_team: u32,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Once voided (an open panel only): who, when, why. It then publishes nothing.
    pub voided_by: Option<String>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
    pub results: Vec<PanelTeamResult>,
}

impl From<panels::GatePanel> for GatePanel {
    fn from(p: panels::GatePanel) -> Self {
        Self {
            id: p.id,
            gate: p.gate,
            call_id: p.call_id.0,
            replacement_call_ids: p.replacement_call_ids.into_iter().map(|c| c.0).collect(),
            teams: p.teams.into_iter().map(|t| t.0).collect(),
            criteria: p
                .criteria
                .into_iter()
                .map(|c| PanelCriterion {
                    key: c.key,
                    name: c.name,
                    max_points: c.max_points,
                })
                .collect(),
            reviewers_per_team: p.reviewers_per_team,
            reason: p.reason,
            created_by: p.created_by,
            created_at: p.created_at,
            closed_by: p.closed_by,
            closed_at: p.closed_at,
            voided_by: p.voided_by,
            voided_at: p.voided_at,
            void_reason: p.void_reason,
            results: p
                .results
                .into_iter()
                .map(|r| PanelTeamResult {
                    consortium_id: r.consortium_id.0,
                    score: r.score,
                    total_centi: r.total_centi,
                    per_criterion: criterion_scores(r.per_criterion),
                    reviewers: r.reviewers,
                })
                .collect(),
        }
    }
}

/// A reviewer-team pair a conflict of interest kept apart, with the reason.
#[derive(SimpleObject)]
pub struct PanelBlocked {
    pub reviewer_id: String,
    pub consortium_id: Uuid,
    pub reason: String,
}

#[derive(SimpleObject)]
pub struct PanelAssignmentReport {
    pub assigned: i64,
    pub blocked: Vec<PanelBlocked>,
}

/// A reviewer's assignment to score one team of a gate panel.
#[derive(SimpleObject)]
pub struct PanelAssignment {
    pub id: Uuid,
    pub panel_id: Uuid,
    pub gate: String,
    pub reviewer_id: String,
    pub consortium_id: Uuid,
    pub consortium_name: String,
    pub scored: bool,
    pub assigned_at: DateTime<Utc>,
    /// The panel's score sheet: what the reviewer scores.
    pub criteria: Vec<PanelCriterion>,
}

/// A page of panel assignments.
#[derive(SimpleObject)]
pub struct PanelAssignmentPage {
    pub items: Vec<PanelAssignment>,
    pub next_cursor: Option<ID>,
}

/// A voided panel assignment: who, when, why.
#[derive(SimpleObject)]
pub struct PanelAssignmentVoid {
    pub assignment_id: Uuid,
    pub panel_id: Uuid,
    pub reason: String,
    pub voided_by: String,
    pub voided_at: DateTime<Utc>,
}

impl From<panels::PanelAssignment> for PanelAssignment {
    fn from(a: panels::PanelAssignment) -> Self {
        Self {
            id: a.id,
            panel_id: a.panel_id,
            gate: a.gate,
            reviewer_id: a.reviewer_id,
            consortium_id: a.consortium_id.0,
            consortium_name: a.consortium_name,
            scored: a.scored,
            assigned_at: a.assigned_at,
            criteria: a
                .criteria
                .into_iter()
                .map(|c| PanelCriterion {
                    key: c.key,
                    name: c.name,
                    max_points: c.max_points,
                })
                .collect(),
        }
    }
}

fn paging(first: Option<i32>, after: Option<&ID>, extra: &[(&str, String)]) -> String {
    crate::clients::page_query(first, after.map(|a| a.as_str()), extra)
}

fn path_segment(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.' || *c == '@')
        .collect()
}

#[derive(Default)]
pub struct ScoringQuery;

#[Object]
impl ScoringQuery {
    /// Evaluation cases: all for ministry staff, a consortium's own, a reviewer's assigned.
    async fn evaluation_cases(
        &self,
        ctx: &Context<'_>,
        call_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<EvaluationCasePage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .evaluation_cases(
                &authed.token,
                call_id.map(CallId),
                first,
                after.as_ref().map(|a| a.as_str()),
            )
            .await
            .map_err(upstream)?;
        Ok(EvaluationCasePage {
            items: page.items.into_iter().map(EvaluationCase).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// The evaluation case of a proposal.
    async fn evaluation_case(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
    ) -> async_graphql::Result<EvaluationCase> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .evaluation_case_of(&authed.token, ProposalId(proposal_id))
            .await
            .map(EvaluationCase)
            .map_err(upstream)
    }

    /// The seeded programme's settings (40/30/30, 15 → 10 → 5), as a starting point.
    async fn default_evaluation_config(&self) -> EvaluationConfig {
        dto::EvaluationConfig::sovereign_ai_default().into()
    }

    async fn evaluation_config(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<EvaluationConfig> {
        let authed = caller(ctx)?;
        let c: dto::EvaluationConfig = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/calls/{call_id}/evaluation"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(c.into())
    }

    async fn reviewers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<ReviewerPage> {
        let authed = caller_with(ctx, STAFF, "list reviewers")?;
        let page: Page<dto::Reviewer> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/reviewers{}", paging(first, after.as_ref(), &[])),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(ReviewerPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// A reviewer's own assignments; ministry staff see everyone's.
    async fn assignments(
        &self,
        ctx: &Context<'_>,
        call_id: Option<Uuid>,
        stage: Option<i32>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<AssignmentPage> {
        let authed = caller(ctx)?;
        let mut extra = Vec::new();
        if let Some(c) = call_id {
            extra.push(("call_id", c.to_string()));
        }
        if let Some(s) = stage {
            extra.push(("stage", s.to_string()));
        }
        let page: Page<dto::Assignment> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/assignments{}", paging(first, after.as_ref(), &extra)),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(AssignmentPage {
            items: page
                .items
                .into_iter()
                .map(|a| Assignment {
                    id: a.id,
                    call_id: a.call_id.0,
                    stage: a.stage,
                    reviewer_id: a.reviewer_id,
                    proposal_id: a.proposal_id.0,
                    title: a.title,
                    scored: a.scored,
                    assigned_at: a.assigned_at,
                    void_reason: a.void_reason,
                })
                .collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// A closed stage's results, best first (ministry staff).
    async fn stage_results(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        stage: i32,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<StageResultPage> {
        let authed = caller_with(ctx, STAFF, "read stage results")?;
        let page: Page<dto::StageResult> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!(
                    "/calls/{call_id}/stages/{stage}/results{}",
                    paging(first, after.as_ref(), &[])
                ),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(StageResultPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// The portfolio decision: staff see the proposal; everyone else once published.
    async fn selection(&self, ctx: &Context<'_>, call_id: Uuid) -> async_graphql::Result<Decision> {
        let authed = caller(ctx)?;
        let d: dto::Decision = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/calls/{call_id}/selection"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(d.into())
    }

    /// Every version of a call's decision, oldest first: each proposal, override and
    /// publication with who, when and why (ministry staff).
    async fn selection_history(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<Vec<Decision>> {
        let authed = caller_with(ctx, STAFF, "read the decision's history")?;
        let rows: Vec<dto::Decision> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/calls/{call_id}/selection/history"),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The officers' tie decisions of a call, per stage, oldest first (ministry staff).
    async fn tie_decisions(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<Vec<TieDecision>> {
        let authed = caller_with(ctx, STAFF, "read tie decisions")?;
        let rows: Vec<dto::TieDecision> = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/calls/{call_id}/ties"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// After publication: the caller's consortium's scores per criterion and the anonymised distribution.
    async fn feedback(&self, ctx: &Context<'_>, call_id: Uuid) -> async_graphql::Result<Feedback> {
        let authed = caller(ctx)?;
        let f: dto::Feedback = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/calls/{call_id}/feedback"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(Feedback {
            proposal_id: f.proposal_id.0,
            status: f.status,
            stages: f
                .stages
                .into_iter()
                .map(|s| StageFeedback {
                    stage: s.stage,
                    stage_name: s.stage_name,
                    position: s.position,
                    total_centi: s.total_centi,
                    per_criterion: criterion_scores(s.per_criterion_centi),
                    advanced: s.advanced,
                    distribution: s
                        .distribution
                        .into_iter()
                        .map(|d| Distribution {
                            criterion: d.criterion,
                            count: d.count,
                            min_centi: d.min_centi,
                            median_centi: d.median_centi,
                            max_centi: d.max_centi,
                            mean_centi: d.mean_centi,
                        })
                        .collect(),
                    distribution_withheld: s.distribution_withheld,
                })
                .collect(),
        })
    }

    /// Every saved version of a call's evaluation settings, oldest first (ministry staff).
    async fn evaluation_config_versions(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<Vec<EvaluationConfigVersion>> {
        let authed = caller_with(ctx, STAFF, "read the history of evaluation settings")?;
        let rows: Vec<dto::EvaluationConfigVersion> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/calls/{call_id}/evaluation/versions"),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(rows
            .into_iter()
            .map(|v| EvaluationConfigVersion {
                version: v.version,
                config: v.config.into(),
                recorded_by: v.recorded_by,
                recorded_at: v.recorded_at,
            })
            .collect())
    }

    /// Every registration of a reviewer's profile, oldest first (ministry staff).
    async fn reviewer_versions(
        &self,
        ctx: &Context<'_>,
        reviewer_id: String,
    ) -> async_graphql::Result<Vec<ReviewerVersion>> {
        let authed = caller_with(ctx, STAFF, "read a reviewer's history")?;
        let rows: Vec<dto::ReviewerVersion> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/reviewers/{}/versions", path_segment(&reviewer_id)),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(rows
            .into_iter()
            .map(|v| ReviewerVersion {
                version: v.version,
                name: v.name,
                organisation: v.organisation,
                business_registration_number: v.business_registration_number,
                expertise: v.expertise,
                recorded_by: v.recorded_by,
                recorded_at: v.recorded_at,
            })
            .collect())
    }

    /// Every submission of an assignment's score sheet, oldest first: ministry staff, and
    /// the reviewer while the assignment counts.
    async fn score_sheet_versions(
        &self,
        ctx: &Context<'_>,
        assignment_id: Uuid,
    ) -> async_graphql::Result<Vec<ScoreSheetVersion>> {
        let authed = caller(ctx)?;
        let rows: Vec<dto::ScoreSheetVersion> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/assignments/{assignment_id}/sheets"),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(rows
            .into_iter()
            .map(|v| ScoreSheetVersion {
                version: v.version,
                scores: v
                    .scores
                    .into_iter()
                    .map(|(criterion, points)| CriterionPoints { criterion, points })
                    .collect(),
                comments: v
                    .comments
                    .into_iter()
                    .map(|(criterion, comment)| CriterionComment { criterion, comment })
                    .collect(),
                total: v.total,
                recorded_by: v.recorded_by,
                recorded_at: v.recorded_at,
            })
            .collect())
    }

    /// Proposals short of reviewers in the stage they are in (ministry staff): what a late
    /// conflict of interest left unfilled.
    async fn reviewer_shortfalls(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<Vec<ReviewerShortfall>> {
        let authed = caller_with(ctx, STAFF, "read reviewer shortfalls")?;
        let rows: Vec<dto::ReviewerShortfall> = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/calls/{call_id}/shortfalls"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(ReviewerShortfall::from).collect())
    }

    async fn appeals(
        &self,
        ctx: &Context<'_>,
        call_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<AppealPage> {
        let authed = caller(ctx)?;
        let extra: Vec<(&str, String)> = call_id
            .map(|c| ("call_id", c.to_string()))
            .into_iter()
            .collect();
        let page: Page<dto::Appeal> = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/appeals{}", paging(first, after.as_ref(), &extra)),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(AppealPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }
    /// A gate's expert panel with its teams' results once closed (staff).
    async fn gate_panel(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<GatePanel> {
        let authed = caller_with(ctx, STAFF, "read a gate's expert panel")?;
        let p: panels::GatePanel = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/panels/{id}"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(p.into())
    }

    /// Gate panel assignments with their panel's criteria: a reviewer's own; staff see
    /// everyone's (or one panel's). Paged: `first` (1..=100, default 100), `after` the
    /// previous page's `nextCursor`.
    async fn panel_assignments(
        &self,
        ctx: &Context<'_>,
        panel_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<PanelAssignmentPage> {
        let authed = caller(ctx)?;
        let extra: Vec<(&str, String)> = panel_id
            .map(|p| ("panel_id", p.to_string()))
            .into_iter()
            .collect();
        let q = paging(first, after.as_ref(), &extra);
        let page: Page<panels::PanelAssignment> = ctx
            .data::<Services>()?
            .scoring
            .get(&format!("/panel-assignments{q}"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(PanelAssignmentPage {
            items: page.items.into_iter().map(PanelAssignment::from).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }
}

#[derive(Default)]
pub struct ScoringMutation;

#[Object]
impl ScoringMutation {
    /// Sets a call's evaluation settings (until reviewers are assigned).
    async fn configure_evaluation(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        input: EvaluationConfig,
    ) -> async_graphql::Result<EvaluationConfig> {
        let authed = caller_with(ctx, STAFF, "configure an evaluation")?;
        let body: dto::EvaluationConfig = input.into();
        let c: dto::EvaluationConfig = ctx
            .data::<Services>()?
            .scoring
            .put(
                &format!("/calls/{call_id}/evaluation"),
                &body,
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(c.into())
    }

    async fn register_reviewer(
        &self,
        ctx: &Context<'_>,
        input: Reviewer,
    ) -> async_graphql::Result<Reviewer> {
        let authed = caller_with(ctx, STAFF, "register reviewers")?;
        let body = dto::RegisterReviewer {
            id: input.id,
            name: input.name,
            organisation: input.organisation,
            business_registration_number: input.business_registration_number,
            expertise: input.expertise,
        };
        let r: dto::Reviewer = ctx
            .data::<Services>()?
            .scoring
            .post("/reviewers", &body, Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(r.into())
    }

    /// Records a conflict of interest between a reviewer and a consortium (by the reviewer, or
    /// staff), and answers what it changed: assignments voided or marked, replacements,
    /// shortfalls.
    async fn declare_conflict(
        &self,
        ctx: &Context<'_>,
        reviewer_id: String,
        consortium_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<ConflictReport> {
        let authed = caller(ctx)?;
        let body = dto::DeclareConflict {
            consortium_id: ConsortiumId(consortium_id),
            reason,
        };
        let path = format!("/reviewers/{}/conflicts", path_segment(&reviewer_id));
        let report: dto::ConflictReport = ctx
            .data::<Services>()?
            .scoring
            .post(&path, &body, Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(report.into())
    }

    /// Assigns reviewers to every open proposal of a stage, keeping conflicted reviewers off.
    async fn assign_reviewers(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        stage: i32,
    ) -> async_graphql::Result<AssignmentReport> {
        let authed = caller_with(ctx, STAFF, "assign reviewers")?;
        let r: dto::AssignmentReport = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/stages/{stage}/assignments"),
                &serde_json::json!({}),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(AssignmentReport {
            stage: r.stage,
            assigned: r.assigned,
            blocked: r
                .blocked
                .into_iter()
                .map(|b| BlockedAssignment {
                    reviewer_id: b.reviewer_id,
                    proposal_id: b.proposal_id.0,
                    reason: b.reason,
                })
                .collect(),
        })
    }

    /// A reviewer scores one of their assignments, criterion by criterion.
    async fn score_proposal(
        &self,
        ctx: &Context<'_>,
        assignment_id: Uuid,
        scores: Vec<CriterionScoreInput>,
    ) -> async_graphql::Result<ScoreResult> {
        let authed = caller_with(ctx, &[Role::Reviewer], "score proposals")?;
        let mut sheet = dto::ScoreSheet {
            scores: BTreeMap::new(),
            comments: BTreeMap::new(),
        };
        for s in scores {
            if !s.comment.is_empty() {
                sheet.comments.insert(s.criterion.clone(), s.comment);
            }
            sheet.scores.insert(s.criterion, s.points);
        }
        #[derive(serde::Deserialize)]
        struct Out {
            assignment_id: Uuid,
            total: i64,
        }
        let o: Out = ctx
            .data::<Services>()?
            .scoring
            .put(
                &format!("/assignments/{assignment_id}/scores"),
                &sheet,
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(ScoreResult {
            assignment_id: o.assignment_id,
            total: o.total,
        })
    }

    /// Closes a stage: consensus, minimums, ranking with tie-break, who advances.
    async fn close_stage(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        stage: i32,
    ) -> async_graphql::Result<Vec<StageResult>> {
        let authed = caller_with(ctx, STAFF, "close a stage")?;
        let rows: Vec<dto::StageResult> = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/stages/{stage}/close"),
                &serde_json::json!({}),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Proposes the portfolio (the exact optimum under the constraints), or records an override.
    async fn propose_selection(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        override_with: Option<SelectionOverrideInput>,
    ) -> async_graphql::Result<Decision> {
        let authed = caller_with(ctx, STAFF, "select the portfolio")?;
        let body = dto::ProposeSelection {
            override_with: override_with.map(|o| dto::SelectionOverride {
                selected: o.selected.into_iter().map(ProposalId).collect(),
                reason: o.reason,
                waivers: o.waivers,
            }),
        };
        let d: dto::Decision = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/selection"),
                &body,
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(d.into())
    }

    /// Records the order of proposals the declared tie-break leaves tied at a stage, best
    /// first, with the reason (a new record; the one recorded last for the same group
    /// prevails). Closing a stage or proposing the selection is refused (`TIE_UNRESOLVED`)
    /// while an unresolved tie decides who advances or is selected. A decision recorded
    /// after the current proposal means proposing again before publishing.
    async fn decide_tie(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        stage: i32,
        order: Vec<Uuid>,
        reason: String,
    ) -> async_graphql::Result<TieDecision> {
        let authed = caller_with(ctx, STAFF, "decide a tie")?;
        let body = dto::DecideTie {
            stage,
            order: order.into_iter().map(ProposalId).collect(),
            reason,
        };
        let t: dto::TieDecision = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/ties"),
                &body,
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(t.into())
    }

    /// Publishes the decision: final, and announced to the grant services. Refused
    /// (`PROPOSAL_OUTDATED`, naming the records) when an input that can still change the
    /// decision (a tie decision or score sheet of the last stage, a finalist's withdrawal,
    /// the settings) was recorded after the proposal: propose the selection again.
    async fn publish_selection(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<Decision> {
        let authed = caller_with(ctx, STAFF, "publish the decision")?;
        let d: dto::Decision = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/selection/publish"),
                &serde_json::json!({}),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(d.into())
    }

    async fn file_appeal(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        proposal_id: Uuid,
        grounds: String,
    ) -> async_graphql::Result<Appeal> {
        let authed = caller_with(ctx, &[Role::Consortium], "file an appeal")?;
        let body = dto::FileAppeal {
            proposal_id: ProposalId(proposal_id),
            grounds,
        };
        let a: dto::Appeal = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/appeals"),
                &body,
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(a.into())
    }

    /// Rejects a case marked `late` (its submission reached evaluation after stage 0 had
    /// closed, so it cannot be ranked with its peers) with the reason its consortium reads
    /// (ministry staff).
    async fn reject_late_case(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<EvaluationCase> {
        let authed = caller_with(ctx, STAFF, "resolve a late case")?;
        let k: dto::EvaluationCase = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/proposals/{proposal_id}/case/late-resolution"),
                &dto::ResolveLate { reason },
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(EvaluationCase(k))
    }

    async fn answer_appeal(
        &self,
        ctx: &Context<'_>,
        appeal_id: Uuid,
        answer: String,
    ) -> async_graphql::Result<Appeal> {
        let authed = caller_with(ctx, STAFF, "answer appeals")?;
        let a: dto::Appeal = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/appeals/{appeal_id}/answer"),
                &dto::AnswerAppeal { answer },
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(a.into())
    }
    /// Defines a gate's expert panel (one per gate): the call's selected teams (all, or
    /// those named), the score sheet's criteria, reviewers per team.
    async fn define_gate_panel(
        &self,
        ctx: &Context<'_>,
        input: GatePanelInput,
    ) -> async_graphql::Result<GatePanel> {
        let authed = caller_with(ctx, STAFF, "define a gate's expert panel")?;
        let body = panels::NewGatePanel {
            gate: input.gate,
            call_id: CallId(input.call_id),
            replacement_call_ids: input
                .replacement_call_ids
                .map(|v| v.into_iter().map(CallId).collect()),
            consortium_ids: input
                .consortium_ids
                .map(|v| v.into_iter().map(ConsortiumId).collect()),
            criteria: input
                .criteria
                .into_iter()
                .map(|c| panels::PanelCriterion {
                    key: c.key,
                    name: c.name,
                    max_points: c.max_points,
                })
                .collect(),
            reviewers_per_team: input.reviewers_per_team,
            reason: input.reason,
        };
        let p: panels::GatePanel = ctx
            .data::<Services>()?
            .scoring
            .post("/panels", &body, Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(p.into())
    }

    /// Assigns registered reviewers to a panel's teams, never a conflicted pair (reported).
    async fn assign_panel_reviewers(
        &self,
        ctx: &Context<'_>,
        panel_id: Uuid,
    ) -> async_graphql::Result<PanelAssignmentReport> {
        let authed = caller_with(ctx, STAFF, "assign a panel's reviewers")?;
        let r: panels::PanelAssignmentReport = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/panels/{panel_id}/assignments"),
                &serde_json::json!({}),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(PanelAssignmentReport {
            assigned: r.assigned,
            blocked: r
                .blocked
                .into_iter()
                .map(|b| PanelBlocked {
                    reviewer_id: b.reviewer_id,
                    consortium_id: b.consortium_id.0,
                    reason: b.reason,
                })
                .collect(),
        })
    }

    /// A reviewer scores one of their panel assignments (the stage sheet's rules).
    async fn score_panel_team(
        &self,
        ctx: &Context<'_>,
        assignment_id: Uuid,
        scores: Vec<CriterionScoreInput>,
    ) -> async_graphql::Result<ScoreResult> {
        let authed = caller_with(ctx, &[Role::Reviewer], "score a gate panel's team")?;
        let mut sheet = dto::ScoreSheet {
            scores: BTreeMap::new(),
            comments: BTreeMap::new(),
        };
        for s in scores {
            if !s.comment.is_empty() {
                sheet.comments.insert(s.criterion.clone(), s.comment);
            }
            sheet.scores.insert(s.criterion, s.points);
        }
        #[derive(serde::Deserialize)]
        struct Out {
            assignment_id: Uuid,
            total: i64,
        }
        let o: Out = ctx
            .data::<Services>()?
            .scoring
            .put(
                &format!("/panel-assignments/{assignment_id}/scores"),
                &sheet,
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(ScoreResult {
            assignment_id: o.assignment_id,
            total: o.total,
        })
    }

    /// Closes a gate's panel: each team's consensus out of 100, announced to milestones
    /// (`GatePanelScored`). Closing again changes and publishes nothing.
    async fn close_gate_panel(
        &self,
        ctx: &Context<'_>,
        panel_id: Uuid,
    ) -> async_graphql::Result<GatePanel> {
        let authed = caller_with(ctx, STAFF, "close a gate's expert panel")?;
        let p: panels::GatePanel = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/panels/{panel_id}/close"),
                &serde_json::json!({}),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(p.into())
    }

    /// Voids an open gate panel with a reason (recorded with who and when): it takes no
    /// more sheets and publishes nothing, and the gate may get a new panel. A closed panel
    /// is refused (`PANEL_CLOSED`).
    async fn void_gate_panel(
        &self,
        ctx: &Context<'_>,
        panel_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<GatePanel> {
        let authed = caller_with(ctx, STAFF, "void a gate's expert panel")?;
        let p: panels::GatePanel = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/panels/{panel_id}/void"),
                &panels::VoidPanel { reason },
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(p.into())
    }

    /// Takes a reviewer's assignment off its panel with a reason (recorded once): its
    /// sheets no longer count; assigning again tops its team up with another reviewer.
    async fn void_panel_assignment(
        &self,
        ctx: &Context<'_>,
        assignment_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<PanelAssignmentVoid> {
        let authed = caller_with(ctx, STAFF, "void a panel assignment")?;
        #[derive(serde::Deserialize)]
        struct Out {
            assignment_id: Uuid,
            panel_id: Uuid,
            reason: String,
            voided_by: String,
            voided_at: DateTime<Utc>,
        }
        let o: Out = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/panel-assignments/{assignment_id}/void"),
                &panels::VoidPanel { reason },
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(PanelAssignmentVoid {
            assignment_id: o.assignment_id,
            panel_id: o.panel_id,
            reason: o.reason,
            voided_by: o.voided_by,
            voided_at: o.voided_at,
        })
    }
}
