//! JSON bodies of the services' HTTP APIs (the gateway is their only caller).

use crate::ids::{CallId, ConsortiumId, EvaluationCaseId, ProposalId};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OpenCall {
        pub title: String,
        pub opens_at: DateTime<Utc>,
        pub closes_at: DateTime<Utc>,
        #[serde(default)]
        pub eligibility: EligibilityRules,
        /// Document kinds every submission must carry (e.g. `proposal`, `budget`).
        #[serde(default)]
        pub required_documents: Vec<String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Call {
        pub id: CallId,
        pub title: String,
        pub opens_at: DateTime<Utc>,
        pub closes_at: DateTime<Utc>,
        pub eligibility: EligibilityRules,
        pub required_documents: Vec<String>,
        pub decided_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
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
    }

    /// `PUT /proposals/{id}`: a new version of a draft.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UpdateDraft {
        pub title: String,
        pub summary: String,
        #[serde(default)]
        pub resources: ResourceRequest,
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
        pub documents: Vec<Document>,
        pub submitted_at: Option<DateTime<Utc>>,
        pub content_hash: Option<String>,
    }
}

pub mod scoring {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct EvaluationCase {
        pub id: EvaluationCaseId,
        pub proposal_id: ProposalId,
        pub call_id: CallId,
        pub consortium_id: ConsortiumId,
        pub status: String,
        pub opened_at: DateTime<Utc>,
    }
}

/// `GET /health/ready`: each dependency's state, so an operator sees which one is down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub broker: String,
    /// Partitions the service's consumer currently holds (0 while its group is joining).
    pub assigned_partitions: usize,
}
