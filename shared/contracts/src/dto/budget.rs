//! The data budget's HTTP bodies. Money is whole KRW ([`Krw`], an `i64`); fiscal years are
//! Korean calendar years (the boundary is midnight KST).

use crate::ids::{CallId, ConsortiumId, Krw};
use crate::text::{field, CheckText, Lines, TextViolation};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a commitment spends: each category has its own sub-limit under the team's cap.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Data bought jointly with other teams (about KRW 10bn a year by default).
    JointPurchase,
    /// Building and processing the team's own data (KRW 3-5bn a year by default).
    BuildingProcessing,
}

impl Category {
    pub const ALL: [Category; 2] = [Category::JointPurchase, Category::BuildingProcessing];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::JointPurchase => "joint_purchase",
            Category::BuildingProcessing => "building_processing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The programme's configuration, as one version of it (`PUT /programme` adds a version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeSettings {
    /// The most any team may have per fiscal year; an officer's adjustment stays within it.
    pub max_cap_krw: Krw,
    /// The sub-limit of joint purchases per team-year, at opening.
    pub joint_purchase_limit_krw: Krw,
    /// The sub-limit of building and processing per team-year, at opening.
    pub building_processing_limit_krw: Krw,
    /// Whether money unspent in a fiscal year is available the next year.
    pub carry_over: bool,
    /// The programme's first and last fiscal years (inclusive).
    pub first_year: i32,
    pub last_year: i32,
}

/// `PUT /programme`: a new version of the programme's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetProgramme {
    pub settings: ProgrammeSettings,
    pub reason: String,
}

/// The programme's configuration in force, with who set it, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Programme {
    pub version: i64,
    #[serde(flatten)]
    pub settings: ProgrammeSettings,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
    pub reason: String,
}

/// `POST /budgets/{consortium_id}/{year}/cap`: an officer's adjustment, kept as a new record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustCap {
    pub cap_krw: Krw,
    pub joint_purchase_limit_krw: Krw,
    pub building_processing_limit_krw: Krw,
    pub reason: String,
}

/// One version of a team-year's cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CapRecord {
    pub seq: i64,
    pub cap_krw: Krw,
    pub joint_purchase_limit_krw: Krw,
    pub building_processing_limit_krw: Krw,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
    pub reason: String,
}

/// The figures of one category (or of the whole budget) of a team-year. `committed`
/// counts every commitment not cancelled (invoiced ones included); `available` is what a
/// new commitment may still take.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Figures {
    pub limit_krw: Krw,
    pub committed_krw: Krw,
    pub invoiced_krw: Krw,
    pub paid_krw: Krw,
    pub available_krw: Krw,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CategoryFigures {
    pub category: Category,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A team's budget for one fiscal year, with its figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Budget {
    pub consortium_id: ConsortiumId,
    pub consortium_name: String,
    pub call_id: CallId,
    pub fiscal_year: i32,
    /// Carried over from the previous fiscal year (0 unless the programme carries over).
    pub carried_over_krw: Krw,
    pub total: Figures,
    pub categories: Vec<CategoryFigures>,
    pub caps: Vec<CapRecord>,
    /// The gate at which the team was eliminated, if it was: it commits nothing new.
    pub eliminated_at_gate: Option<String>,
}

/// `POST /commitments`: a purchase order that reserves budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeCommitment {
    /// Chosen by the client: a repeat with the same fields answers the original.
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub category: Category,
    pub amount_krw: Krw,
    /// The dataset bought, if any: the team then holds its licence.
    #[serde(default)]
    pub dataset_id: Option<Uuid>,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommitmentStatus {
    /// Reserved, not (wholly) invoiced.
    Open,
    /// Invoiced in full.
    Invoiced,
    /// The part not invoiced was cancelled.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Commitment {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub category: Category,
    pub amount_krw: Krw,
    pub invoiced_krw: Krw,
    pub cancelled_krw: Krw,
    pub paid_krw: Krw,
    pub status: CommitmentStatus,
    pub dataset_id: Option<Uuid>,
    pub joint_purchase_id: Option<Uuid>,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub reason: String,
}

/// `POST /commitments/{id}/cancel`: releases what is not invoiced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelCommitment {
    pub reason: String,
}

/// `POST /invoices`: an invoice against a commitment consumes (part of) it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordInvoice {
    /// Chosen by the client: a repeat with the same fields answers the original.
    pub id: Uuid,
    pub commitment_id: Uuid,
    pub amount_krw: Krw,
    /// The supplier's invoice number.
    pub invoice_no: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Invoice {
    pub id: Uuid,
    pub commitment_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub amount_krw: Krw,
    pub paid_krw: Krw,
    pub invoice_no: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// `POST /payments`: the finance system confirms a payment of an invoice. Idempotent by
/// `external_key` (finance's own id): a repeat answers the original, a repeat with other
/// fields is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPayment {
    pub external_key: String,
    pub invoice_id: Uuid,
    pub amount_krw: Krw,
    pub paid_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Payment {
    pub external_key: String,
    pub invoice_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub amount_krw: Krw,
    pub paid_at: DateTime<Utc>,
    pub confirmed_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// One team's part of a joint purchase: a weight (shares split by weight, exact to the
/// won), or an explicit amount (every share then names one, and they must sum to the
/// total). With neither on every share, the cost splits equally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareSpec {
    pub consortium_id: ConsortiumId,
    #[serde(default)]
    pub weight: Option<i64>,
    #[serde(default)]
    pub amount_krw: Option<Krw>,
}

/// `POST /joint-purchases`: a dataset bought by several teams, committed for all of them
/// or for none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeJointPurchase {
    pub id: Uuid,
    pub dataset_id: Uuid,
    pub fiscal_year: i32,
    pub total_krw: Krw,
    pub shares: Vec<ShareSpec>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Share {
    pub consortium_id: ConsortiumId,
    pub weight: i64,
    pub amount_krw: Krw,
    /// The commitment that reserves this share.
    pub commitment_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JointPurchase {
    pub id: Uuid,
    pub dataset_id: Uuid,
    pub fiscal_year: i32,
    pub total_krw: Krw,
    /// `equal`, `weighted` or `explicit`.
    pub split_rule: String,
    pub shares: Vec<Share>,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub reason: String,
}

/// `GET /joint-purchases/{id}` as a consortium user sees it: the dataset and its own share
/// only. Neither the other teams' shares nor the total (from which, less its own share, the
/// others' amounts would follow) are shown to a sharing team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OwnJointShare {
    pub joint_purchase_id: Uuid,
    pub dataset_id: Uuid,
    pub fiscal_year: i32,
    /// `equal`, `weighted` or `explicit`.
    pub split_rule: String,
    pub share: Share,
    pub made_at: DateTime<Utc>,
}

/// `POST /datasets`: a dataset in the catalogue with its licence terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDataset {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub licence_terms: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Dataset {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub licence_terms: String,
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
}

/// A team's licence to a dataset, held from the commitment that bought it; it outlives the
/// team's elimination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Licence {
    pub dataset_id: Uuid,
    pub dataset_name: String,
    pub licence_terms: String,
    pub consortium_id: ConsortiumId,
    pub commitment_id: Uuid,
    pub granted_at: DateTime<Utc>,
}

/// Money invoiced and paid in one month (KST), for a team or the programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MonthlyBurn {
    /// `YYYY-MM` in KST.
    pub month: String,
    pub invoiced_krw: Krw,
    pub paid_krw: Krw,
}

/// The programme's total across teams for one fiscal year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProgrammeTotal {
    pub fiscal_year: i32,
    pub teams: i64,
    pub total: Figures,
    pub categories: Vec<CategoryFigures>,
}

impl CheckText for SetProgramme {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for AdjustCap {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for MakeCommitment {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for CancelCommitment {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for RecordInvoice {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "invoice_no", &self.invoice_no, Lines::Single)
    }
}

impl CheckText for ConfirmPayment {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "external_key", &self.external_key, Lines::Single)
    }
}

impl CheckText for MakeJointPurchase {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for RegisterDataset {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "name", &self.name, Lines::Single)?;
        field(at, "provider", &self.provider, Lines::Single)?;
        field(at, "licence_terms", &self.licence_terms, Lines::Multi)
    }
}
