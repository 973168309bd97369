//! The GPU ledger's HTTP bodies. GPU amounts are whole GPUs (`i64`); H100-equivalents are
//! derived from them by the model's integer factor and never stored.

use crate::ids::{ConsortiumId, H100Eq};
use crate::text::{field, CheckText, Lines, TextViolation};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Single moves at once; pending reserves until posted, voided or expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Single,
    Pending,
    Post,
    Void,
    Expire,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Source,
    Pool,
    Grant,
    Usage,
}

/// Where a source's GPUs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    Leased,
    Government,
}

/// One transfer of a `POST /transfers` batch. For post, void and expire, the accounts and
/// the amount may be left out: they are the pending transfer's (amount 0 posts it all).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// Chosen by the client: a repeat with the same fields returns the original result.
    pub id: Uuid,
    #[serde(default)]
    pub debit_account: Option<Uuid>,
    #[serde(default)]
    pub credit_account: Option<Uuid>,
    #[serde(default)]
    pub amount: i64,
    pub kind: TransferKind,
    #[serde(default)]
    pub pending_id: Option<Uuid>,
    #[serde(default)]
    pub timeout_at: Option<DateTime<Utc>>,
    /// Links this transfer to the next: the chain applies all or nothing.
    #[serde(default)]
    pub linked: bool,
    /// What the movement is: `capacity`, `offer`, `grant`, `usage`, `reclaim`, ...
    pub code: String,
    /// Why (required).
    pub reason: String,
}

/// `POST /transfers`: up to [`MAX_BATCH`] transfers, applied in one database transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTransfers {
    pub transfers: Vec<NewTransfer>,
}

/// The most transfers one batch may carry.
pub const MAX_BATCH: usize = 8190;

/// One transfer's result, in the batch's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferResult {
    pub index: usize,
    pub id: Uuid,
    /// `created`, `exists` (a repeat: the original result) or `refused`.
    pub status: String,
    /// For a refusal: its stable code (`EXCEEDS_CREDITS`, `LINKED_EVENT_FAILED`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For a refusal: the field and the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransfersResult {
    pub results: Vec<TransferResult>,
    /// How many transfers this call created.
    pub created: usize,
}

/// A recorded transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The order transfers were recorded in.
    pub seq: i64,
    pub id: Uuid,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: i64,
    pub kind: TransferKind,
    pub pending_id: Option<Uuid>,
    pub timeout_at: Option<DateTime<Utc>>,
    pub linked: bool,
    pub code: String,
    pub reason: String,
    pub created_by: String,
    pub created_role: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /accounts`. The id is the client's: a repeat with the same fields returns the
/// account, with other fields it is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccount {
    pub id: Uuid,
    pub model: String,
    pub period: String,
    pub kind: AccountKind,
    /// Required for grant and usage accounts, refused for others.
    #[serde(default)]
    pub consortium_id: Option<ConsortiumId>,
    /// Required for sources, refused for others.
    #[serde(default)]
    pub source_type: Option<SourceType>,
    /// The programme phase the capacity serves, e.g. `phase-1`.
    #[serde(default)]
    pub phase: Option<String>,
    pub name: String,
    pub reason: String,
}

/// An account's four running totals, in whole GPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub model: String,
    pub period: String,
    pub kind: AccountKind,
    pub consortium_id: Option<ConsortiumId>,
    pub source_type: Option<SourceType>,
    pub phase: Option<String>,
    pub name: String,
    pub debits_must_not_exceed_credits: bool,
    pub credits_must_not_exceed_debits: bool,
    pub balance: Balance,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub reason: String,
}

/// `GET /accounts/{id}/balance?as_of=`: the totals after the last batch recorded at or
/// before `as_of` (all zero before the first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAsOf {
    pub account_id: Uuid,
    pub as_of: DateTime<Utc>,
    pub balance: Balance,
    /// Posted credits minus posted debits, in the model's units and in H100-eq.
    pub net_posted: i64,
    pub net_posted_h100_eq: H100Eq,
    pub h100_factor: i64,
}

/// A GPU model and its current H100-equivalence factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuModel {
    pub code: String,
    pub name: String,
    pub h100_factor: i64,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    pub reason: String,
}

/// `PUT /models/{code}`: adds a model or records a new factor (a new version; the old
/// one stays on record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetGpuModel {
    pub name: String,
    pub h100_factor: i64,
    pub reason: String,
}

/// `POST /suppliers`: a consortium starts (or stops) supplying GPUs to the programme.
/// A stop may say when supplying ends (`ends_at`, possibly in the future): until then the
/// consortium still receives no grant. Without it, supplying ends when recorded. A start
/// carries no end date. A corrected date is a new record; the latest is in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSupplier {
    pub consortium_id: ConsortiumId,
    pub supplying: bool,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplierRecord {
    pub seq: i64,
    pub consortium_id: ConsortiumId,
    pub supplying: bool,
    /// When supplying ends, for a stop recorded with a date (absent: when recorded).
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    pub reason: String,
}

/// One line of the pool report: a model in a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLine {
    pub model: String,
    pub period: String,
    pub pool_account: Uuid,
    pub phase: Option<String>,
    pub h100_factor: i64,
    /// Capacity the sources hold in the pool now: what they supplied (posted), less what
    /// went back to them. Net: GPUs a team gave back are not counted again.
    pub held: i64,
    /// What teams hold now: posted to their grant (and usage) accounts, less what they
    /// gave back or was reclaimed.
    pub granted: i64,
    /// Reserved by pending transfers (offers, future tranches).
    pub reserved: i64,
    /// What can still be promised: held - granted - reserved (exactly: the pool's posted
    /// balance less its reservations).
    pub available: i64,
    pub held_h100_eq: H100Eq,
    pub available_h100_eq: H100Eq,
}

/// One source of capacity of a pool: a lease or government-owned hardware, for the pool's
/// model and period (the period it is available in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSourceLine {
    pub source_account: Uuid,
    /// The source account's name (staff only: a lease's name may be commercial).
    pub name: Option<String>,
    pub source_type: SourceType,
    pub phase: Option<String>,
    /// What it supplied, posted: its debits less what was returned to it.
    pub supplied: i64,
    pub supplied_h100_eq: H100Eq,
    /// Capacity on its way (pending transfers from it, not yet posted).
    pub pending: i64,
}

/// `GET /pools/sources`: one pool (a model in a period) broken down by its sources, with
/// the totals per source type, in the model's units and in H100-eq (integers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolBySource {
    pub model: String,
    pub period: String,
    pub pool_account: Uuid,
    pub phase: Option<String>,
    pub h100_factor: i64,
    pub sources: Vec<PoolSourceLine>,
    /// Everything the sources supplied (posted).
    pub supplied: i64,
    pub supplied_h100_eq: H100Eq,
    pub leased: i64,
    pub leased_h100_eq: H100Eq,
    pub government: i64,
    pub government_h100_eq: H100Eq,
    /// What the pool can still promise (as in the pool report).
    pub available: i64,
    pub available_h100_eq: H100Eq,
}

impl CheckText for NewTransfer {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "code", &self.code, Lines::Single)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for CreateTransfers {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        crate::text::nested(at, "transfers", &self.transfers)
    }
}

impl CheckText for OpenAccount {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "model", &self.model, Lines::Single)?;
        field(at, "period", &self.period, Lines::Single)?;
        if let Some(p) = &self.phase {
            field(at, "phase", p, Lines::Single)?;
        }
        field(at, "name", &self.name, Lines::Single)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for SetGpuModel {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "name", &self.name, Lines::Single)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for RecordSupplier {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

/// One tranche of an offer's option: `count` GPUs of the option's model for `period`,
/// released on `release_at` (at acceptance when it is past) or when the team passes the
/// gate `release_gate` (a milestones `GateDecided`), whichever the offer names. Neither:
/// released at acceptance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrancheSpec {
    pub period: String,
    pub count: i64,
    #[serde(default)]
    pub release_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub release_gate: Option<String>,
}

/// One form of an offer: a model and its tranches. All options of an offer are worth the
/// same H100-eq ("512 B200 or 1,024 H100").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferOption {
    pub model: String,
    pub tranches: Vec<TrancheSpec>,
}

/// `POST /offers`: an officer offers a selected team GPUs. Every tranche of every option is
/// reserved in the pool (pending, until `expires_at`) in one linked chain: the offer is
/// made whole or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakeOffer {
    /// Chosen by the client: a repeat answers the offer.
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub call_id: crate::ids::CallId,
    pub expires_at: DateTime<Utc>,
    pub options: Vec<OfferOption>,
    pub reason: String,
}

/// `POST /offers/{id}/accept`: the team picks one option; the others are released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptOffer {
    pub option: usize,
    #[serde(default)]
    pub reason: String,
}

/// A tranche of an accepted offer and where it stands (derived from the ledger).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tranche {
    pub index: i32,
    pub model: String,
    pub period: String,
    pub count: i64,
    pub h100_eq: H100Eq,
    pub release_at: Option<DateTime<Utc>>,
    pub release_gate: Option<String>,
    /// The pending transfer that holds it (posted when released).
    pub transfer_id: Uuid,
    /// `reserved`, `released` or `closed` (voided: the team was eliminated).
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub call_id: crate::ids::CallId,
    pub expires_at: DateTime<Utc>,
    pub h100_eq: H100Eq,
    pub options: Vec<OfferOption>,
    /// `open`, `accepted`, `expired` or `voided` (its reservations were voided before it was
    /// accepted: the team was eliminated).
    pub status: String,
    pub accepted_option: Option<usize>,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub tranches: Vec<Tranche>,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub reason: String,
}

/// A replacement award the ledger could not offer when the selection arrived (`GET
/// /awards`): the refusal's code and message, and whether it is still owed (until offers
/// the team accepted for the call cover the award's count in its model).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardRefusal {
    pub call_id: crate::ids::CallId,
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub count: i64,
    pub code: String,
    pub message: String,
    pub refused_at: DateTime<Utc>,
    /// GPUs of the award's model offered to the team for the call (each offer's largest
    /// option), accepted or not.
    #[serde(default)]
    pub offered: i64,
    /// GPUs of the award's model in the options the team accepted.
    #[serde(default)]
    pub accepted: i64,
    /// Until accepted offers cover `count`.
    pub owed: bool,
}

/// A team selected by a published call, as the ledger learned it from `SelectionPublished`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedTeam {
    pub call_id: crate::ids::CallId,
    pub consortium_id: ConsortiumId,
    pub consortium_name: String,
    pub title: String,
    /// What it asked for: model and count.
    pub requested: Vec<crate::dto::intake::GpuRequest>,
    pub requested_h100_eq: Option<H100Eq>,
    pub selected_at: DateTime<Utc>,
}

/// `POST /usage`: a GPU operator reports GPU-hours a team used. The id is the operator's:
/// a retry with the same fields answers the original report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportUsage {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub gpu_hours: i64,
    #[serde(default)]
    pub note: String,
}

/// A recorded usage report and where it left the team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub gpu_hours: i64,
    /// GPU-hours used in the period after this report.
    pub used_hours: i64,
    /// GPU-hours granted for the period when it was recorded: each grant's GPUs x the whole
    /// hours from when it took effect to the period's end (pro-rated; reclaims take off theirs).
    pub granted_hours: i64,
    /// Used past what was granted: flagged, never silently accepted.
    pub overrun: bool,
    pub note: String,
    pub reported_by: String,
    pub reported_at: DateTime<Utc>,
}

/// A team's utilisation of one model in one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utilisation {
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub granted_gpus: i64,
    pub granted_hours: i64,
    pub used_hours: i64,
    /// Used / granted, in thousandths (absent when nothing is granted).
    pub utilisation_permille: Option<i64>,
    pub overrun: bool,
}

impl CheckText for ReportUsage {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "model", &self.model, Lines::Single)?;
        field(at, "period", &self.period, Lines::Single)?;
        field(at, "note", &self.note, Lines::Multi)
    }
}

impl CheckText for TrancheSpec {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "period", &self.period, Lines::Single)?;
        if let Some(g) = &self.release_gate {
            field(at, "release_gate", g, Lines::Single)?;
        }
        Ok(())
    }
}

impl CheckText for OfferOption {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "model", &self.model, Lines::Single)?;
        crate::text::nested(at, "tranches", &self.tranches)
    }
}

impl CheckText for MakeOffer {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        crate::text::nested(at, "options", &self.options)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for AcceptOffer {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}
