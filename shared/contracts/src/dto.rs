//! JSON bodies of the services' HTTP APIs (the gateway is their only caller).

use crate::ids::{CallId, ConsortiumId, EvaluationCaseId, ProposalId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A page of a list. Every list endpoint pages: `limit` (1..=100, default 20) and an
/// opaque `after` cursor from the previous page's `next_cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub after: Option<String>,
}

/// The GPU ledger's bodies (in `dto/gpu.rs`).
pub mod gpu;
/// The milestones service's bodies (in `dto/milestones.rs`).
pub mod milestones;
/// Scoring's expert panels for stage gates (in `dto/panels.rs`).
pub mod panels;
/// The talent service's bodies (in `dto/talent.rs`).
pub mod talent;

/// The data budget's bodies (in `dto/budget.rs`).
pub mod budget;

pub mod intake {
    use super::*;
    use crate::ids::Krw;

    /// What kind of organisation a consortium member is.
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
    )]
    #[serde(rename_all = "snake_case")]
    pub enum OrgType {
        LargeEnterprise,
        MidSize,
        Sme,
        Startup,
        University,
        ResearchInstitute,
    }

    impl OrgType {
        pub fn as_str(&self) -> &'static str {
            match self {
                OrgType::LargeEnterprise => "large_enterprise",
                OrgType::MidSize => "mid_size",
                OrgType::Sme => "sme",
                OrgType::Startup => "startup",
                OrgType::University => "university",
                OrgType::ResearchInstitute => "research_institute",
            }
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum MemberRole {
        Lead,
        Partner,
    }

    /// One organisation in a consortium.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Member {
        pub name: String,
        pub org_type: OrgType,
        /// Korean business registration number, `123-45-67890` (checksum verified).
        pub business_registration_number: String,
        pub role: MemberRole,
    }

    /// `PUT /consortia/{id}`: a consortium's profile (the lead and its partners).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RegisterConsortium {
        pub name: String,
        pub members: Vec<Member>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Consortium {
        pub id: ConsortiumId,
        pub name: String,
        pub members: Vec<Member>,
        pub updated_at: DateTime<Utc>,
        /// The profile's version: each registration is a new one, earlier ones are kept.
        #[serde(default)]
        pub version: i32,
    }

    /// Who may apply to a call.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EligibilityRules {
        /// At least this many university members (the lead or partners).
        #[serde(default = "one")]
        pub min_university_members: u32,
        /// Lead organisation types allowed; empty means any.
        #[serde(default)]
        pub allowed_lead_types: Vec<OrgType>,
        /// The most a proposal may request from the data budget, per year.
        #[serde(default = "default_data_cap")]
        pub max_data_budget_krw: Krw,
        /// The most a proposal may request in overseas-talent matching funds, per year.
        #[serde(default = "default_talent_cap")]
        pub max_talent_funding_krw: Krw,
    }

    fn one() -> u32 {
        1
    }
    fn default_data_cap() -> Krw {
        Krw(15_000_000_000)
    }
    fn default_talent_cap() -> Krw {
        Krw(2_000_000_000)
    }

    impl Default for EligibilityRules {
        fn default() -> Self {
            Self {
                min_university_members: one(),
                allowed_lead_types: Vec::new(),
                max_data_budget_krw: default_data_cap(),
                max_talent_funding_krw: default_talent_cap(),
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct GpuRequest {
        /// e.g. `H100`, `B200`.
        pub model: String,
        pub count: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TalentPosition {
        pub title: String,
        pub field: String,
        pub seniority: String,
        pub count: i64,
    }

    /// The resources a proposal requests.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ResourceRequest {
        #[serde(default)]
        pub gpus: Vec<GpuRequest>,
        #[serde(default)]
        pub data_budget_krw: Krw,
        #[serde(default)]
        pub talent_funding_krw: Krw,
        #[serde(default)]
        pub talent_positions: Vec<TalentPosition>,
    }

    /// The programme's portfolio track a proposal applies for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum TrackKind {
        General,
        IndustrySpecialised,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Track {
        pub kind: TrackKind,
        /// For an industry-specialised track: the industry, a key of lower-case letters,
        /// digits and underscores (`bio`, `materials`, `manufacturing`); none otherwise.
        #[serde(default)]
        pub industry: Option<String>,
    }

    /// What a team will release openly.
    #[derive(
        Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
    )]
    #[serde(rename_all = "snake_case")]
    pub enum Artefact {
        Weights,
        Data,
        Code,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Openness {
        /// Released artefacts, each at most once (empty: nothing is released).
        #[serde(default)]
        pub releases: Vec<Artefact>,
        /// The licence of what is released (e.g. `Apache-2.0`); required when anything is.
        #[serde(default)]
        pub licence: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Independence {
        /// Trained from scratch (no external model's weights).
        pub from_scratch: bool,
        /// The external models or weights it builds on: none when trained from scratch, at
        /// least one otherwise.
        #[serde(default)]
        pub builds_on: Vec<String>,
    }

    /// What a proposal declares for the portfolio: its track, its openness and its
    /// independence. Versioned with the proposal, required to submit, carried by
    /// `ProposalSubmitted`; slot constraints can name the track.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Portfolio {
        pub track: Track,
        pub openness: Openness,
        pub independence: Independence,
    }

    /// `POST /programmes`: a programme the ministry runs in a fiscal year.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateProgramme {
        pub name: String,
        /// Korean fiscal years are calendar years.
        pub fiscal_year: i32,
        #[serde(default)]
        pub description: String,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Programme {
        pub id: Uuid,
        pub name: String,
        pub fiscal_year: i32,
        pub description: String,
        pub created_at: DateTime<Utc>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OpenCall {
        /// The programme the call belongs to.
        #[serde(default)]
        pub programme_id: Option<Uuid>,
        pub title: String,
        pub opens_at: DateTime<Utc>,
        pub closes_at: DateTime<Utc>,
        #[serde(default)]
        pub eligibility: EligibilityRules,
        /// Document kinds every submission must carry (e.g. `proposal`, `budget`).
        #[serde(default)]
        pub required_documents: Vec<String>,
        /// Makes the call a replacement call for places a decided gate freed.
        #[serde(default)]
        pub replaces: Option<crate::events::Replacement>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Call {
        pub id: CallId,
        pub programme_id: Option<Uuid>,
        pub title: String,
        pub opens_at: DateTime<Utc>,
        pub closes_at: DateTime<Utc>,
        pub eligibility: EligibilityRules,
        pub required_documents: Vec<String>,
        pub decided_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        /// Set for a replacement call.
        #[serde(default)]
        pub replaces: Option<crate::events::Replacement>,
        /// When an officer cancelled this replacement call (see `POST /calls/{id}/cancel`).
        #[serde(default)]
        pub cancelled_at: Option<DateTime<Utc>>,
    }

    /// `POST /calls/{id}/cancel`: why a stuck replacement call is cancelled (required).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CancelCall {
        pub reason: String,
    }

    /// A replacement call's cancellation, as recorded: who, when, why.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CallCancellation {
        pub call_id: CallId,
        pub gate: String,
        pub reason: String,
        pub cancelled_by: String,
        pub cancelled_at: DateTime<Utc>,
    }

    /// `POST /proposals`: a new draft, or (with `submit: true`) a draft submitted at once.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DraftProposal {
        pub call_id: CallId,
        pub title: String,
        pub summary: String,
        #[serde(default)]
        pub resources: ResourceRequest,
        /// Required before submission.
        #[serde(default)]
        pub portfolio: Option<Portfolio>,
    }

    /// `PUT /proposals/{id}`: a new version of a draft.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UpdateDraft {
        pub title: String,
        pub summary: String,
        #[serde(default)]
        pub resources: ResourceRequest,
        #[serde(default)]
        pub portfolio: Option<Portfolio>,
    }

    /// `PUT /proposals/{id}/documents/{kind}`: a document, base64-encoded.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UploadDocument {
        pub filename: String,
        pub content_base64: String,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Document {
        pub kind: String,
        pub filename: String,
        /// SHA-256 of the content, hex.
        pub sha256: String,
        pub size_bytes: i64,
        pub uploaded_at: DateTime<Utc>,
    }

    /// `POST /proposals/{id}/submit`. Repeating a submission with the same key returns the
    /// same receipt; a different key is refused.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Submit {
        pub idempotency_key: String,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Withdraw {
        pub reason: String,
    }

    /// One saved version of a proposal.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ProposalVersion {
        pub version: i32,
        pub title: String,
        pub summary: String,
        pub resources: ResourceRequest,
        #[serde(default)]
        pub portfolio: Option<Portfolio>,
        pub created_at: DateTime<Utc>,
    }

    /// The versions of one proposal, in a batch answer (`GET /proposals/versions?ids=`).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ProposalVersions {
        pub proposal_id: ProposalId,
        pub versions: Vec<ProposalVersion>,
    }

    /// Most ids one batch read accepts (`?ids=` / `?proposal_ids=`): one page's worth.
    pub const MAX_BATCH_IDS: usize = 100;

    /// Proof of submission for the consortium.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Receipt {
        pub proposal_id: ProposalId,
        pub version: i32,
        /// SHA-256 over the submitted version and its documents' hashes.
        pub content_hash: String,
        pub submitted_at: DateTime<Utc>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Proposal {
        pub id: ProposalId,
        pub call_id: CallId,
        pub consortium_id: ConsortiumId,
        /// `draft`, `submitted` or `withdrawn`.
        pub status: String,
        pub version: i32,
        pub title: String,
        pub summary: String,
        pub resources: ResourceRequest,
        #[serde(default)]
        pub portfolio: Option<Portfolio>,
        pub documents: Vec<Document>,
        pub submitted_at: Option<DateTime<Utc>>,
        pub content_hash: Option<String>,
        /// The consortium's withdrawal, if it withdrew (kept when scoring refused it).
        #[serde(default)]
        pub withdrawal: Option<Withdrawal>,
        /// Why scoring refused the withdrawal, if it did: the decision was published first
        /// and stands, so the proposal is `submitted` again with its result.
        #[serde(default)]
        pub withdrawal_refusal: Option<WithdrawalRefusal>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Withdrawal {
        pub reason: String,
        pub withdrawn_at: DateTime<Utc>,
        /// The token subject who withdrew it (absent for withdrawals recorded before this
        /// was kept).
        pub withdrawn_by: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WithdrawalRefusal {
        pub reason: String,
        pub refused_at: DateTime<Utc>,
    }

    /// One version of a consortium's profile (`GET /consortia/{id}/versions`).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConsortiumVersion {
        pub version: i32,
        pub name: String,
        pub members: Vec<Member>,
        pub recorded_by: String,
        pub recorded_at: DateTime<Utc>,
    }
    // Text hygiene (see `crate::text`): every text field of every request body, each
    // single- or multi-line. A new text field belongs here too.
    use crate::text::{field, list, nested, CheckText, Lines, TextViolation};

    impl CheckText for Member {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "name", &self.name, Lines::Single)?;
            field(
                at,
                "business_registration_number",
                &self.business_registration_number,
                Lines::Single,
            )
        }
    }

    impl CheckText for RegisterConsortium {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "name", &self.name, Lines::Single)?;
            nested(at, "members", &self.members)
        }
    }

    impl CheckText for GpuRequest {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "model", &self.model, Lines::Single)
        }
    }

    impl CheckText for TalentPosition {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "title", &self.title, Lines::Single)?;
            field(at, "field", &self.field, Lines::Single)?;
            field(at, "seniority", &self.seniority, Lines::Single)
        }
    }

    impl CheckText for ResourceRequest {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            nested(at, "gpus", &self.gpus)?;
            nested(at, "talent_positions", &self.talent_positions)
        }
    }

    impl CheckText for CreateProgramme {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "name", &self.name, Lines::Single)?;
            field(at, "description", &self.description, Lines::Multi)
        }
    }

    impl CheckText for OpenCall {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "title", &self.title, Lines::Single)?;
            list(
                at,
                "required_documents",
                &self.required_documents,
                Lines::Single,
            )?;
            if let Some(r) = &self.replaces {
                let at = crate::text::join(at, "replaces");
                field(&at, "gate", &r.gate, Lines::Single)?;
                list(&at, "committee", &r.committee, Lines::Single)?;
                if let Some(a) = &r.award {
                    let at = crate::text::join(&at, "award");
                    field(&at, "model", &a.model, Lines::Single)?;
                    field(&at, "period", &a.period, Lines::Single)?;
                }
            }
            Ok(())
        }
    }

    impl CheckText for Portfolio {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            if let Some(industry) = &self.track.industry {
                field(at, "track.industry", industry, Lines::Single)?;
            }
            if let Some(licence) = &self.openness.licence {
                field(at, "openness.licence", licence, Lines::Single)?;
            }
            list(
                at,
                "independence.builds_on",
                &self.independence.builds_on,
                Lines::Single,
            )
        }
    }

    impl CheckText for DraftProposal {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "title", &self.title, Lines::Single)?;
            field(at, "summary", &self.summary, Lines::Multi)?;
            if let Some(p) = &self.portfolio {
                p.check_text_at(&crate::text::join(at, "portfolio"))?;
            }
            self.resources
                .check_text_at(&crate::text::join(at, "resources"))
        }
    }

    impl CheckText for UpdateDraft {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "title", &self.title, Lines::Single)?;
            field(at, "summary", &self.summary, Lines::Multi)?;
            if let Some(p) = &self.portfolio {
                p.check_text_at(&crate::text::join(at, "portfolio"))?;
            }
            self.resources
                .check_text_at(&crate::text::join(at, "resources"))
        }
    }

    impl CheckText for UploadDocument {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "filename", &self.filename, Lines::Single)?;
            field(at, "content_base64", &self.content_base64, Lines::Single)
        }
    }

    impl CheckText for Submit {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "idempotency_key", &self.idempotency_key, Lines::Single)
        }
    }

    impl CheckText for Withdraw {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)
        }
    }

    impl CheckText for CancelCall {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)
        }
    }
}

pub mod scoring {
    use super::*;
    use crate::ids::ConsortiumId;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct EvaluationCase {
        pub id: EvaluationCaseId,
        pub proposal_id: ProposalId,
        pub call_id: CallId,
        pub consortium_id: ConsortiumId,
        pub title: String,
        /// `open`, `withdrawn`, `eliminated`, `finalist`, `selected`, `not_selected`, `late`
        /// (its submission reached evaluation after stage 0 closed) or `rejected_late`.
        pub status: String,
        /// The stage the case is in (0-based index into the call's stages).
        pub stage: i32,
        pub opened_at: DateTime<Utc>,
        /// Why staff rejected a `late` case (its consortium reads it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub late_resolution: Option<String>,
    }

    /// `POST /proposals/{id}/case/late-resolution`: staff reject a `late` case.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ResolveLate {
        pub reason: String,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CriterionConfig {
        pub key: String,
        pub name: String,
        pub max_points: i64,
        #[serde(default)]
        pub min_points: Option<i64>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct StageConfig {
        pub name: String,
        /// Keep the best N eligible proposals for the next stage (all if absent).
        #[serde(default)]
        pub keep_top: Option<u32>,
        /// Keep only proposals whose consensus total reaches this many points.
        #[serde(default)]
        pub min_total: Option<i64>,
    }

    /// A slot constraint on the portfolio: `category` is one of `lead:<org type>`,
    /// `includes:<org type>` or `sme_or_academia_led`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SlotConstraint {
        pub category: String,
        #[serde(default)]
        pub at_least: Option<u32>,
        #[serde(default)]
        pub at_most: Option<u32>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EvaluationConfig {
        pub criteria: Vec<CriterionConfig>,
        #[serde(default)]
        pub min_total: Option<i64>,
        pub stages: Vec<StageConfig>,
        pub reviewers_per_proposal: u32,
        pub max_assignments_per_reviewer: u32,
        /// Z-score normalisation of each reviewer's totals against harsh or lenient reviewers.
        #[serde(default)]
        pub normalise: bool,
        /// In order: `criterion:<key>` (higher first) or `earlier_submission` (only if the
        /// call announces it: it is not merit). Empty: the criteria in their order. A tie the
        /// rules leave is settled by a recorded officer decision.
        #[serde(default)]
        pub tie_break: Vec<String>,
        /// How many teams the portfolio selects.
        pub teams: u32,
        #[serde(default)]
        pub constraints: Vec<SlotConstraint>,
        /// Below this many proposals in a stage, consortia's feedback withholds the
        /// anonymised score distribution: with five or fewer, it would reveal competitors'
        /// scores.
        #[serde(default = "default_anonymity_min_group")]
        pub anonymity_min_group: u32,
    }

    /// The smallest group whose anonymised distribution consortia see, unless a call says
    /// otherwise.
    pub const DEFAULT_ANONYMITY_MIN_GROUP: u32 = 6;

    fn default_anonymity_min_group() -> u32 {
        DEFAULT_ANONYMITY_MIN_GROUP
    }

    impl EvaluationConfig {
        /// The seeded programme's settings: technology 40, strategy 30, ecosystem 30; written
        /// review keeping 10, then presentations; three reviewers per proposal; five teams,
        /// at least one SME- or academia-led.
        pub fn sovereign_ai_default() -> Self {
            let c = |key: &str, name: &str, max| CriterionConfig {
                key: key.into(),
                name: name.into(),
                max_points: max,
                min_points: None,
            };
            EvaluationConfig {
                criteria: vec![
                    c("technology", "Model technology & development", 40),
                    c("strategy", "Development goals & strategy", 30),
                    c("ecosystem", "Ecosystem impact & contribution plan", 30),
                ],
                min_total: None,
                stages: vec![
                    StageConfig {
                        name: "written review".into(),
                        keep_top: Some(10),
                        min_total: None,
                    },
                    StageConfig {
                        name: "presentation".into(),
                        keep_top: None,
                        min_total: None,
                    },
                ],
                reviewers_per_proposal: 3,
                max_assignments_per_reviewer: 10,
                normalise: true,
                tie_break: vec![
                    "criterion:technology".into(),
                    "criterion:strategy".into(),
                    "criterion:ecosystem".into(),
                ],
                teams: 5,
                constraints: vec![SlotConstraint {
                    category: "sme_or_academia_led".into(),
                    at_least: Some(1),
                    at_most: None,
                }],
                anonymity_min_group: DEFAULT_ANONYMITY_MIN_GROUP,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RegisterReviewer {
        /// The reviewer's token subject.
        pub id: String,
        pub name: String,
        pub organisation: String,
        /// The organisation's business registration number, when it has one.
        #[serde(default)]
        pub business_registration_number: Option<String>,
        #[serde(default)]
        pub expertise: Vec<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reviewer {
        pub id: String,
        pub name: String,
        pub organisation: String,
        pub business_registration_number: Option<String>,
        pub expertise: Vec<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DeclareConflict {
        pub consortium_id: ConsortiumId,
        pub reason: String,
    }

    /// One saved version of a call's evaluation settings.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EvaluationConfigVersion {
        pub version: i32,
        pub config: EvaluationConfig,
        pub recorded_by: String,
        pub recorded_at: DateTime<Utc>,
    }

    /// One registration of a reviewer's profile.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReviewerVersion {
        pub version: i32,
        pub name: String,
        pub organisation: String,
        pub business_registration_number: Option<String>,
        pub expertise: Vec<String>,
        pub recorded_by: String,
        pub recorded_at: DateTime<Utc>,
    }

    /// One submission of a score sheet: a resubmitted sheet is a new version, and the
    /// current sheet is the latest.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ScoreSheetVersion {
        pub version: i32,
        pub scores: BTreeMap<String, i64>,
        pub comments: BTreeMap<String, String>,
        pub total: i64,
        pub recorded_by: String,
        pub recorded_at: DateTime<Utc>,
    }

    /// What a declared conflict changed: the reviewer's assignments it voided (sheets kept,
    /// no longer counted), the replacements assigned, and proposals left short of reviewers.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConflictReport {
        pub voided: Vec<VoidedAssignment>,
        pub replacements: Vec<Replacement>,
        pub shortfalls: Vec<ReviewerShortfall>,
        /// The reviewer's assignments in stages already closed, marked with the conflict
        /// (not voided: a closed stage's result stands, and the record shows the conflict).
        #[serde(default)]
        pub noted: Vec<VoidedAssignment>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct VoidedAssignment {
        pub assignment_id: Uuid,
        pub proposal_id: ProposalId,
        pub stage: i32,
        /// Whether the reviewer had scored it (the sheet is kept, void).
        pub had_sheet: bool,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Replacement {
        pub reviewer_id: String,
        pub proposal_id: ProposalId,
        pub stage: i32,
    }

    /// A proposal with fewer counting reviewers than the call's `reviewers_per_proposal`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReviewerShortfall {
        /// Always `REVIEWER_SHORTFALL`.
        pub code: String,
        pub proposal_id: ProposalId,
        pub stage: i32,
        pub assigned: i64,
        pub needed: i64,
    }

    impl ReviewerShortfall {
        pub const CODE: &'static str = "REVIEWER_SHORTFALL";

        pub fn new(proposal_id: ProposalId, stage: i32, assigned: i64, needed: i64) -> Self {
            Self {
                code: Self::CODE.to_owned(),
                proposal_id,
                stage,
                assigned,
                needed,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BlockedAssignment {
        pub reviewer_id: String,
        pub proposal_id: ProposalId,
        pub reason: String,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AssignmentReport {
        pub stage: i32,
        pub assigned: i64,
        pub blocked: Vec<BlockedAssignment>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Assignment {
        pub id: Uuid,
        pub call_id: CallId,
        pub stage: i32,
        pub reviewer_id: String,
        pub proposal_id: ProposalId,
        pub title: String,
        pub scored: bool,
        pub assigned_at: DateTime<Utc>,
        /// Why the assignment no longer counts (a late conflict of interest), if it does not.
        #[serde(default)]
        pub void_reason: Option<String>,
    }

    /// A reviewer's sheet: whole points per criterion, and a comment per criterion.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScoreSheet {
        pub scores: BTreeMap<String, i64>,
        #[serde(default)]
        pub comments: BTreeMap<String, String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StageResult {
        pub proposal_id: ProposalId,
        pub title: String,
        pub position: Option<i32>,
        /// Consensus total in hundredths of a point.
        pub total_centi: i64,
        pub per_criterion_centi: BTreeMap<String, i64>,
        pub eligible: bool,
        pub shortfalls: Vec<String>,
        pub advanced: bool,
        pub tie_broken_by: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SelectionOverride {
        pub selected: Vec<ProposalId>,
        pub reason: String,
        /// Each rule of the call the override breaks, named explicitly: `teams` (a number of
        /// teams other than the settings'), `at_least:<category>`, `at_most:<category>`.
        #[serde(default)]
        pub waivers: Vec<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ProposeSelection {
        #[serde(default, rename = "override")]
        pub override_with: Option<SelectionOverride>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    pub struct Departure {
        pub promoted: Vec<ProposalId>,
        pub displaced: Vec<ProposalId>,
        pub reasons: Vec<String>,
    }

    /// One version of a call's decision. Every proposal, override and publication is its
    /// own version; the current decision is the latest.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Decision {
        pub call_id: CallId,
        /// 1, 2, ... per call.
        pub version: i32,
        /// `proposed` (the computed portfolio), `override` or `published`.
        pub kind: String,
        /// In rank order.
        pub selected: Vec<ProposalId>,
        pub total_centi: i64,
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
        /// For a publication, SHA-256 of the recorded inputs it rests on.
        pub inputs_sha256: Option<String>,
    }

    /// `POST /calls/{id}/selection/votes`: a committee member's vote on a replacement call's
    /// current proposed selection, with the reason. Once per member and version.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CastVote {
        /// The decision version the member read and votes on; refused
        /// (`VOTE_VERSION_STALE`) unless it is still the current proposal, so a vote never
        /// counts for a selection its member did not see.
        pub version: i32,
        pub approve: bool,
        pub reason: String,
    }

    /// A committee member's vote, as recorded (never changed).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CommitteeVote {
        pub id: Uuid,
        pub call_id: CallId,
        /// The decision version voted on.
        pub version: i32,
        pub voter: String,
        pub approve: bool,
        pub reason: String,
        pub voted_at: DateTime<Utc>,
    }

    /// `GET /calls/{id}/selection/votes`: a replacement call's committee and every vote
    /// recorded, with where the current proposal stands.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CommitteeTally {
        pub call_id: CallId,
        pub gate: String,
        pub committee: Vec<String>,
        /// Approvals a publication needs: a majority of the committee.
        pub needed: i32,
        /// The current proposal's version (none yet proposed: `None`).
        pub current_version: Option<i32>,
        /// What the current version selects, in rank order (empty when none is proposed).
        pub current_selected: Vec<ProposalId>,
        /// Approvals of the current version.
        pub approvals: i32,
        /// Every vote on every version, oldest first.
        pub votes: Vec<CommitteeVote>,
    }

    /// `POST /calls/{id}/ties`: the order of proposals the declared tie-break leaves tied,
    /// best first, with the reason. Recorded as a new row, never changed.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DecideTie {
        pub stage: i32,
        pub order: Vec<ProposalId>,
        pub reason: String,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct TieDecision {
        pub id: Uuid,
        pub call_id: CallId,
        pub stage: i32,
        pub order: Vec<ProposalId>,
        pub reason: String,
        pub decided_by: String,
        pub decided_at: DateTime<Utc>,
    }

    /// Per criterion over all proposals of a stage, without naming any of them.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Distribution {
        pub criterion: String,
        pub count: i64,
        pub min_centi: i64,
        pub median_centi: i64,
        pub max_centi: i64,
        pub mean_centi: i64,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct StageFeedback {
        pub stage: i32,
        pub stage_name: String,
        pub position: Option<i32>,
        pub total_centi: i64,
        pub per_criterion_centi: BTreeMap<String, i64>,
        pub advanced: bool,
        pub distribution: Vec<Distribution>,
        /// Why `distribution` is empty, when it is withheld (too few proposals to stay
        /// anonymous).
        #[serde(default)]
        pub distribution_withheld: Option<String>,
    }

    /// What a consortium sees after publication.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Feedback {
        pub proposal_id: ProposalId,
        pub status: String,
        pub stages: Vec<StageFeedback>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FileAppeal {
        pub proposal_id: ProposalId,
        pub grounds: String,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AnswerAppeal {
        pub answer: String,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Appeal {
        pub id: Uuid,
        pub call_id: CallId,
        pub proposal_id: ProposalId,
        pub consortium_id: ConsortiumId,
        pub grounds: String,
        pub filed_at: DateTime<Utc>,
        pub answer: Option<String>,
        pub answered_at: Option<DateTime<Utc>>,
    }
    // Text hygiene (see `crate::text`), as for intake's bodies.
    use crate::text::{field, list, nested, CheckText, Lines, TextViolation};

    impl CheckText for CriterionConfig {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "key", &self.key, Lines::Single)?;
            field(at, "name", &self.name, Lines::Single)
        }
    }

    impl CheckText for StageConfig {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "name", &self.name, Lines::Single)
        }
    }

    impl CheckText for SlotConstraint {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "category", &self.category, Lines::Single)
        }
    }

    impl CheckText for EvaluationConfig {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            nested(at, "criteria", &self.criteria)?;
            nested(at, "stages", &self.stages)?;
            list(at, "tie_break", &self.tie_break, Lines::Single)?;
            nested(at, "constraints", &self.constraints)
        }
    }

    impl CheckText for RegisterReviewer {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "id", &self.id, Lines::Single)?;
            field(at, "name", &self.name, Lines::Single)?;
            field(at, "organisation", &self.organisation, Lines::Single)?;
            if let Some(brn) = &self.business_registration_number {
                field(at, "business_registration_number", brn, Lines::Single)?;
            }
            list(at, "expertise", &self.expertise, Lines::Single)
        }
    }

    impl CheckText for DeclareConflict {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)
        }
    }

    impl CheckText for ScoreSheet {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            // The maps' keys are criterion keys: single-line, named by their position.
            for (i, key) in self.scores.keys().enumerate() {
                field(
                    at,
                    &format!("scores[{i}] (its criterion key)"),
                    key,
                    Lines::Single,
                )?;
            }
            for (i, (key, comment)) in self.comments.iter().enumerate() {
                field(
                    at,
                    &format!("comments[{i}] (its criterion key)"),
                    key,
                    Lines::Single,
                )?;
                field(at, &format!("comments.{key}"), comment, Lines::Multi)?;
            }
            Ok(())
        }
    }

    impl CheckText for SelectionOverride {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)?;
            list(at, "waivers", &self.waivers, Lines::Single)
        }
    }

    impl CheckText for CastVote {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)
        }
    }

    impl CheckText for DecideTie {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)
        }
    }

    impl CheckText for ProposeSelection {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            match &self.override_with {
                Some(o) => o.check_text_at(&crate::text::join(at, "override")),
                None => Ok(()),
            }
        }
    }

    impl CheckText for FileAppeal {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "grounds", &self.grounds, Lines::Multi)
        }
    }

    impl CheckText for ResolveLate {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "reason", &self.reason, Lines::Multi)
        }
    }

    impl CheckText for AnswerAppeal {
        fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
            field(at, "answer", &self.answer, Lines::Multi)
        }
    }
}

/// `GET /health/ready`: each dependency's state, so an operator sees which one is down.
/// Only coarse labels and numbers: the underlying errors are in `details`, for admins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// False only when the service cannot serve: its database is unreachable. A broker
    /// outage does not make it unready (the outbox buffers events; that is its point).
    pub ready: bool,
    /// `ok` or `unavailable`.
    pub database: String,
    /// `ok`, `unavailable` or `unknown` (not checked yet), from a background check every few
    /// seconds: a probe never asks the broker itself.
    pub broker: String,
    /// When `broker` was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_checked_at: Option<DateTime<Utc>>,
    /// Partitions the service's consumer currently holds (0 while its group is joining).
    pub assigned_partitions: usize,
    /// The outbox's backlog, as a background task last counted it every few seconds
    /// (absent before its first count and while counting fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<OutboxReadiness>,
    /// The underlying errors, by dependency: only for an admin's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<std::collections::BTreeMap<String, String>>,
    /// The consumer's progress; absent for a service that consumes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerReadiness>,
}

/// What holds a service's consumer back. Only coarse labels: no internal error text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerReadiness {
    /// `database` or `broker` while the consumer waits out an outage (it retries the same
    /// event, never dead-letters it because of an outage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_since: Option<DateTime<Utc>>,
    /// `topic/partition` of each partition paused meanwhile.
    #[serde(default)]
    pub paused_partitions: Vec<String>,
    /// Messages not yet consumed on the assigned partitions (librdkafka's last statistics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
}

/// Events waiting for the broker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxReadiness {
    /// Events not yet acknowledged by the broker.
    pub pending: i64,
    /// Age of the oldest of them, in seconds.
    pub oldest_pending_age_secs: i64,
    /// Pending events whose last publication attempt failed (they hold back their key).
    pub failing: i64,
    /// Pending events that failed `outbox.stuck_after_attempts` times or more in a row
    /// (sends that went through, e.g. before a republication, do not count).
    pub stuck: i64,
}
