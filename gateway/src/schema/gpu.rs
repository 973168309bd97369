//! The GPU ledger (`services/gpu-ledger`): the pool by model, source and period, offers and
//! grants, transfers, balances as of a time, utilisation, and the officers' mutations.
//!
//! GPU counts, H100-equivalents and GPU-hours are `i64` in the ledger; GraphQL `Int` is
//! 32-bit, so they travel as the [`Int64`] scalar (a string of digits, like `Krw`).
//! H100-eq is always derived by the ledger (units x the model's integer factor).
//!
//! The service enforces who sees what (a consortium user only its own team); the gateway
//! checks roles first, and refuses a consortium user naming another team outright rather
//! than relying on the service to narrow the answer.

use super::{auth_error, caller, caller_with, upstream};
use crate::clients::Services;
use async_graphql::{
    Context, Enum, InputObject, InputValueError, InputValueResult, Object, Scalar, ScalarType,
    SimpleObject, Value, ID,
};
use chrono::{DateTime, Utc};
use kaip_auth::AuthError;
use kaip_contracts::dto::gpu as dto;
use kaip_contracts::{CallId, ConsortiumId, Role};
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::Officer];
const STAFF_OR_TEAM: &[Role] = &[Role::Admin, Role::Officer, Role::Consortium];

/// A 64-bit integer (whole GPUs, H100-equivalents, GPU-hours), written as a string of
/// decimal digits with an optional leading `-`: `"1024"`. GraphQL `Int` is 32-bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Int64(pub i64);

/// Parses a 64-bit integer as the scalar accepts it; the error is the rule it broke.
pub fn parse_int64(s: &str) -> Result<i64, &'static str> {
    const FORMAT: &str = "must be a whole number as a string of decimal digits with an optional leading `-`, e.g. \"1024\" (no `+`, spaces, separators, decimal point, exponent or leading zeros)";
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return Err(FORMAT);
    }
    s.parse::<i64>()
        .map_err(|_| "must be between -9223372036854775808 and 9223372036854775807")
}

/// A 64-bit integer (whole GPUs, H100-equivalents, GPU-hours) as a string of decimal digits
/// with an optional leading `-`, e.g. `"1024"`; no `+`, spaces, separators, decimal point,
/// exponent or leading zeros. Whether a negative value makes sense is the field's rule.
#[Scalar(name = "Int64")]
impl ScalarType for Int64 {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(s) = &value else {
            return Err(InputValueError::custom(
                "a 64-bit quantity is a string of digits, e.g. \"1024\", not a number",
            )
            .with_extension("code", "BAD_USER_INPUT"));
        };
        parse_int64(s)
            .map(Int64)
            .map_err(|rule| InputValueError::custom(rule).with_extension("code", "BAD_USER_INPUT"))
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if parse_int64(s).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "GpuAccountKind")]
pub enum AccountKind {
    Source,
    Pool,
    Grant,
    Usage,
}

impl From<dto::AccountKind> for AccountKind {
    fn from(k: dto::AccountKind) -> Self {
        match k {
            dto::AccountKind::Source => Self::Source,
            dto::AccountKind::Pool => Self::Pool,
            dto::AccountKind::Grant => Self::Grant,
            dto::AccountKind::Usage => Self::Usage,
        }
    }
}

impl From<AccountKind> for dto::AccountKind {
    fn from(k: AccountKind) -> Self {
        match k {
            AccountKind::Source => Self::Source,
            AccountKind::Pool => Self::Pool,
            AccountKind::Grant => Self::Grant,
            AccountKind::Usage => Self::Usage,
        }
    }
}

impl AccountKind {
    fn wire(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Pool => "pool",
            Self::Grant => "grant",
            Self::Usage => "usage",
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "GpuTransferKind")]
pub enum TransferKind {
    Single,
    Pending,
    Post,
    Void,
    Expire,
}

impl From<dto::TransferKind> for TransferKind {
    fn from(k: dto::TransferKind) -> Self {
        match k {
            dto::TransferKind::Single => Self::Single,
            dto::TransferKind::Pending => Self::Pending,
            dto::TransferKind::Post => Self::Post,
            dto::TransferKind::Void => Self::Void,
            dto::TransferKind::Expire => Self::Expire,
        }
    }
}

impl From<TransferKind> for dto::TransferKind {
    fn from(k: TransferKind) -> Self {
        match k {
            TransferKind::Single => Self::Single,
            TransferKind::Pending => Self::Pending,
            TransferKind::Post => Self::Post,
            TransferKind::Void => Self::Void,
            TransferKind::Expire => Self::Expire,
        }
    }
}

impl TransferKind {
    fn wire(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Pending => "pending",
            Self::Post => "post",
            Self::Void => "void",
            Self::Expire => "expire",
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "GpuSourceType")]
pub enum SourceType {
    Leased,
    Government,
}

impl From<dto::SourceType> for SourceType {
    fn from(k: dto::SourceType) -> Self {
        match k {
            dto::SourceType::Leased => Self::Leased,
            dto::SourceType::Government => Self::Government,
        }
    }
}

impl From<SourceType> for dto::SourceType {
    fn from(k: SourceType) -> Self {
        match k {
            SourceType::Leased => Self::Leased,
            SourceType::Government => Self::Government,
        }
    }
}

/// A GPU model and its current H100-equivalence factor (an integer; H100 = 1).
#[derive(SimpleObject)]
pub struct GpuModel {
    pub code: String,
    pub name: String,
    pub h100_factor: Int64,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    pub reason: String,
}

impl From<dto::GpuModel> for GpuModel {
    fn from(m: dto::GpuModel) -> Self {
        Self {
            code: m.code,
            name: m.name,
            h100_factor: Int64(m.h100_factor),
            recorded_by: m.recorded_by,
            recorded_at: m.recorded_at,
            reason: m.reason,
        }
    }
}

/// One model in one period: what the pool held, granted, reserved and has available.
#[derive(SimpleObject)]
pub struct GpuPool {
    pub model: String,
    pub period: String,
    pub pool_account: Uuid,
    pub phase: Option<String>,
    pub h100_factor: Int64,
    /// Capacity the sources hold in the pool now: what they supplied, less what went back to them.
    pub held: Int64,
    /// What teams hold now: granted to them, less what they gave back or was reclaimed.
    pub granted: Int64,
    /// Reserved by pending transfers (open offers, future tranches).
    pub reserved: Int64,
    /// What can still be promised: held - granted - reserved.
    pub available: Int64,
    pub held_h100_eq: Int64,
    pub available_h100_eq: Int64,
}

impl From<dto::PoolLine> for GpuPool {
    fn from(p: dto::PoolLine) -> Self {
        Self {
            model: p.model,
            period: p.period,
            pool_account: p.pool_account,
            phase: p.phase,
            h100_factor: Int64(p.h100_factor),
            held: Int64(p.held),
            granted: Int64(p.granted),
            reserved: Int64(p.reserved),
            available: Int64(p.available),
            held_h100_eq: Int64(p.held_h100_eq.0),
            available_h100_eq: Int64(p.available_h100_eq.0),
        }
    }
}

/// One source of a pool: a lease or government-owned hardware for the pool's model and
/// period (the period it is available in).
#[derive(SimpleObject)]
pub struct GpuPoolSource {
    pub source_account: Uuid,
    /// The source's name (staff only; null for consortium users).
    pub name: Option<String>,
    pub source_type: SourceType,
    pub phase: Option<String>,
    /// What it supplied, posted (less what was returned to it).
    pub supplied: Int64,
    pub supplied_h100_eq: Int64,
    /// Capacity on its way (pending, not yet posted).
    pub pending: Int64,
}

/// One pool (a model in a period) broken down by source, with the totals per source type
/// in the model's units and in H100-eq.
#[derive(SimpleObject)]
pub struct GpuPoolBySource {
    pub model: String,
    pub period: String,
    pub pool_account: Uuid,
    pub phase: Option<String>,
    pub h100_factor: Int64,
    pub sources: Vec<GpuPoolSource>,
    pub supplied: Int64,
    pub supplied_h100_eq: Int64,
    pub leased: Int64,
    pub leased_h100_eq: Int64,
    pub government: Int64,
    pub government_h100_eq: Int64,
    pub available: Int64,
    pub available_h100_eq: Int64,
}

impl From<dto::PoolBySource> for GpuPoolBySource {
    fn from(p: dto::PoolBySource) -> Self {
        Self {
            model: p.model,
            period: p.period,
            pool_account: p.pool_account,
            phase: p.phase,
            h100_factor: Int64(p.h100_factor),
            sources: p
                .sources
                .into_iter()
                .map(|s| GpuPoolSource {
                    source_account: s.source_account,
                    name: s.name,
                    source_type: s.source_type.into(),
                    phase: s.phase,
                    supplied: Int64(s.supplied),
                    supplied_h100_eq: Int64(s.supplied_h100_eq.0),
                    pending: Int64(s.pending),
                })
                .collect(),
            supplied: Int64(p.supplied),
            supplied_h100_eq: Int64(p.supplied_h100_eq.0),
            leased: Int64(p.leased),
            leased_h100_eq: Int64(p.leased_h100_eq.0),
            government: Int64(p.government),
            government_h100_eq: Int64(p.government_h100_eq.0),
            available: Int64(p.available),
            available_h100_eq: Int64(p.available_h100_eq.0),
        }
    }
}

/// An account's four running totals, in whole GPUs.
#[derive(SimpleObject)]
pub struct GpuBalance {
    pub debits_pending: Int64,
    pub debits_posted: Int64,
    pub credits_pending: Int64,
    pub credits_posted: Int64,
}

impl From<dto::Balance> for GpuBalance {
    fn from(b: dto::Balance) -> Self {
        Self {
            debits_pending: Int64(b.debits_pending),
            debits_posted: Int64(b.debits_posted),
            credits_pending: Int64(b.credits_pending),
            credits_posted: Int64(b.credits_posted),
        }
    }
}

/// An account of one ledger (a model in a period): a source, the pool, a team's grant, usage.
#[derive(SimpleObject)]
pub struct GpuAccount {
    pub id: Uuid,
    pub model: String,
    pub period: String,
    pub kind: AccountKind,
    pub consortium_id: Option<Uuid>,
    pub source_type: Option<SourceType>,
    pub phase: Option<String>,
    pub name: String,
    pub debits_must_not_exceed_credits: bool,
    pub credits_must_not_exceed_debits: bool,
    pub balance: GpuBalance,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub reason: String,
}

impl From<dto::Account> for GpuAccount {
    fn from(a: dto::Account) -> Self {
        Self {
            id: a.id,
            model: a.model,
            period: a.period,
            kind: a.kind.into(),
            consortium_id: a.consortium_id.map(|c| c.0),
            source_type: a.source_type.map(Into::into),
            phase: a.phase,
            name: a.name,
            debits_must_not_exceed_credits: a.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
            balance: a.balance.into(),
            created_by: a.created_by,
            created_at: a.created_at,
            reason: a.reason,
        }
    }
}

#[derive(SimpleObject)]
pub struct GpuAccountPage {
    pub items: Vec<GpuAccount>,
    pub next_cursor: Option<ID>,
}

/// An account's totals after the last batch recorded at or before `asOf`.
#[derive(SimpleObject)]
pub struct GpuBalanceAsOf {
    pub account_id: Uuid,
    pub as_of: DateTime<Utc>,
    pub balance: GpuBalance,
    /// Posted credits minus posted debits, in the model's units.
    pub net_posted: Int64,
    pub net_posted_h100_eq: Int64,
    pub h100_factor: Int64,
}

/// A recorded transfer (never updated or deleted).
#[derive(SimpleObject)]
pub struct GpuTransfer {
    /// The order transfers were recorded in.
    pub seq: Int64,
    pub id: Uuid,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: Int64,
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

impl From<dto::Transfer> for GpuTransfer {
    fn from(t: dto::Transfer) -> Self {
        Self {
            seq: Int64(t.seq),
            id: t.id,
            debit_account: t.debit_account,
            credit_account: t.credit_account,
            amount: Int64(t.amount),
            kind: t.kind.into(),
            pending_id: t.pending_id,
            timeout_at: t.timeout_at,
            linked: t.linked,
            code: t.code,
            reason: t.reason,
            created_by: t.created_by,
            created_role: t.created_role,
            created_at: t.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct GpuTransferPage {
    pub items: Vec<GpuTransfer>,
    pub next_cursor: Option<ID>,
}

/// One tranche of an offer's option (input and output share the shape).
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(name = "GpuTrancheSpec", input_name = "GpuTrancheSpecInput")]
pub struct TrancheSpec {
    pub period: String,
    pub count: Int64,
    /// Released on this date (at acceptance when past) ...
    pub release_at: Option<DateTime<Utc>>,
    /// ... or when the team passes this gate.
    pub release_gate: Option<String>,
}

/// One form of an offer: a model and its tranches.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(name = "GpuOfferOption", input_name = "GpuOfferOptionInput")]
pub struct OfferOption {
    pub model: String,
    pub tranches: Vec<TrancheSpec>,
}

impl From<dto::OfferOption> for OfferOption {
    fn from(o: dto::OfferOption) -> Self {
        Self {
            model: o.model,
            tranches: o
                .tranches
                .into_iter()
                .map(|t| TrancheSpec {
                    period: t.period,
                    count: Int64(t.count),
                    release_at: t.release_at,
                    release_gate: t.release_gate,
                })
                .collect(),
        }
    }
}

impl From<OfferOption> for dto::OfferOption {
    fn from(o: OfferOption) -> Self {
        Self {
            model: o.model,
            tranches: o
                .tranches
                .into_iter()
                .map(|t| dto::TrancheSpec {
                    period: t.period,
                    count: t.count.0,
                    release_at: t.release_at,
                    release_gate: t.release_gate,
                })
                .collect(),
        }
    }
}

/// A tranche of an accepted offer and where it stands.
#[derive(SimpleObject)]
pub struct GpuTranche {
    pub index: i32,
    pub model: String,
    pub period: String,
    pub count: Int64,
    pub h100_eq: Int64,
    pub release_at: Option<DateTime<Utc>>,
    pub release_gate: Option<String>,
    pub transfer_id: Uuid,
    /// `reserved`, `released` or `closed`.
    pub status: String,
}

/// An offer of GPUs to a selected team; once accepted, its tranches are the team's grant.
#[derive(SimpleObject)]
pub struct GpuOffer {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub call_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub h100_eq: Int64,
    pub options: Vec<OfferOption>,
    /// `open`, `accepted`, `expired` or `voided` (the team was eliminated before accepting).
    pub status: String,
    /// Index into `options`.
    pub accepted_option: Option<i32>,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub tranches: Vec<GpuTranche>,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub reason: String,
}

impl From<dto::Offer> for GpuOffer {
    fn from(o: dto::Offer) -> Self {
        Self {
            id: o.id,
            consortium_id: o.consortium_id.0,
            call_id: o.call_id.0,
            expires_at: o.expires_at,
            h100_eq: Int64(o.h100_eq.0),
            options: o.options.into_iter().map(Into::into).collect(),
            status: o.status,
            accepted_option: o
                .accepted_option
                .map(|i| i32::try_from(i).unwrap_or(i32::MAX)),
            accepted_by: o.accepted_by,
            accepted_at: o.accepted_at,
            tranches: o
                .tranches
                .into_iter()
                .map(|t| GpuTranche {
                    index: t.index,
                    model: t.model,
                    period: t.period,
                    count: Int64(t.count),
                    h100_eq: Int64(t.h100_eq.0),
                    release_at: t.release_at,
                    release_gate: t.release_gate,
                    transfer_id: t.transfer_id,
                    status: t.status,
                })
                .collect(),
            made_by: o.made_by,
            made_at: o.made_at,
            reason: o.reason,
        }
    }
}

#[derive(SimpleObject)]
pub struct GpuRequested {
    pub model: String,
    pub count: Int64,
}

/// A team selected by a published call, with the GPUs it asked for.
#[derive(SimpleObject)]
pub struct GpuSelectedTeam {
    pub call_id: Uuid,
    pub consortium_id: Uuid,
    pub consortium_name: String,
    pub title: String,
    pub requested: Vec<GpuRequested>,
    pub requested_h100_eq: Option<Int64>,
    pub selected_at: DateTime<Utc>,
}

impl From<dto::SelectedTeam> for GpuSelectedTeam {
    fn from(t: dto::SelectedTeam) -> Self {
        Self {
            call_id: t.call_id.0,
            consortium_id: t.consortium_id.0,
            consortium_name: t.consortium_name,
            title: t.title,
            requested: t
                .requested
                .into_iter()
                .map(|r| GpuRequested {
                    model: r.model,
                    count: Int64(r.count),
                })
                .collect(),
            requested_h100_eq: t.requested_h100_eq.map(|h| Int64(h.0)),
            selected_at: t.selected_at,
        }
    }
}

/// A team's utilisation of one model in one period.
#[derive(SimpleObject)]
pub struct GpuUtilisation {
    pub consortium_id: Uuid,
    pub model: String,
    pub period: String,
    pub granted_gpus: Int64,
    pub granted_hours: Int64,
    pub used_hours: Int64,
    /// Used / granted in thousandths (null when nothing is granted).
    pub utilisation_permille: Option<Int64>,
    /// Used past what was granted: flagged, never silently accepted.
    pub overrun: bool,
}

impl From<dto::Utilisation> for GpuUtilisation {
    fn from(u: dto::Utilisation) -> Self {
        Self {
            consortium_id: u.consortium_id.0,
            model: u.model,
            period: u.period,
            granted_gpus: Int64(u.granted_gpus),
            granted_hours: Int64(u.granted_hours),
            used_hours: Int64(u.used_hours),
            utilisation_permille: u.utilisation_permille.map(Int64),
            overrun: u.overrun,
        }
    }
}

#[derive(SimpleObject)]
pub struct GpuSupplierRecord {
    pub seq: Int64,
    pub consortium_id: Uuid,
    pub supplying: bool,
    /// When supplying ends, for a stop recorded with a date (null: when it was recorded).
    pub ends_at: Option<DateTime<Utc>>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
    pub reason: String,
}

impl From<dto::SupplierRecord> for GpuSupplierRecord {
    fn from(r: dto::SupplierRecord) -> Self {
        Self {
            seq: Int64(r.seq),
            consortium_id: r.consortium_id.0,
            supplying: r.supplying,
            ends_at: r.ends_at,
            recorded_by: r.recorded_by,
            recorded_at: r.recorded_at,
            reason: r.reason,
        }
    }
}

#[derive(SimpleObject)]
pub struct GpuUsageReport {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub model: String,
    pub period: String,
    pub gpu_hours: Int64,
    /// GPU-hours used in the period after this report.
    pub used_hours: Int64,
    pub granted_hours: Int64,
    /// Used past what was granted (recorded and flagged).
    pub overrun: bool,
    pub note: String,
    pub reported_by: String,
    pub reported_at: DateTime<Utc>,
}

impl From<dto::UsageReport> for GpuUsageReport {
    fn from(r: dto::UsageReport) -> Self {
        Self {
            id: r.id,
            consortium_id: r.consortium_id.0,
            model: r.model,
            period: r.period,
            gpu_hours: Int64(r.gpu_hours),
            used_hours: Int64(r.used_hours),
            granted_hours: Int64(r.granted_hours),
            overrun: r.overrun,
            note: r.note,
            reported_by: r.reported_by,
            reported_at: r.reported_at,
        }
    }
}

/// One transfer's result in a batch: `created`, `exists` or `refused` (with its code).
#[derive(SimpleObject)]
pub struct GpuTransferResult {
    pub index: i32,
    pub id: Uuid,
    pub status: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(SimpleObject)]
pub struct GpuTransfersResult {
    pub results: Vec<GpuTransferResult>,
    pub created: i32,
}

#[derive(InputObject)]
pub struct MakeGpuOfferInput {
    /// Chosen by the client: a repeat with the same fields answers the offer.
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub call_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// All worth the same H100-eq ("512 B200 or 1,024 H100").
    pub options: Vec<OfferOption>,
    pub reason: String,
}

#[derive(InputObject)]
pub struct ReportGpuUsageInput {
    /// Chosen by the operator: a retry with the same fields answers the original report.
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub model: String,
    pub period: String,
    pub gpu_hours: Int64,
    #[graphql(default)]
    pub note: String,
}

#[derive(InputObject)]
pub struct OpenGpuAccountInput {
    pub id: Uuid,
    pub model: String,
    pub period: String,
    pub kind: AccountKind,
    /// Required for grant and usage accounts.
    pub consortium_id: Option<Uuid>,
    /// Required for sources.
    pub source_type: Option<SourceType>,
    pub phase: Option<String>,
    pub name: String,
    pub reason: String,
}

#[derive(InputObject)]
pub struct GpuTransferInput {
    pub id: Uuid,
    pub debit_account: Option<Uuid>,
    pub credit_account: Option<Uuid>,
    /// Whole GPUs; for post, void and expire `"0"` means the pending transfer's amount.
    #[graphql(default)]
    pub amount: Int64,
    pub kind: TransferKind,
    pub pending_id: Option<Uuid>,
    pub timeout_at: Option<DateTime<Utc>>,
    /// Ties this transfer to the next: the chain applies all or nothing.
    #[graphql(default)]
    pub linked: bool,
    pub code: String,
    pub reason: String,
}

/// A consortium user may name only its own team; staff any.
pub(super) fn own_team_only(
    ctx: &Context<'_>,
    consortium_id: Option<Uuid>,
    action: &str,
) -> async_graphql::Result<Option<Uuid>> {
    let authed = caller(ctx)?;
    if authed.claims.role != Role::Consortium {
        return Ok(consortium_id);
    }
    let own = authed.claims.consortium_id.map(|c| c.0);
    match consortium_id {
        Some(asked) if Some(asked) != own => Err(auth_error(&AuthError::Forbidden {
            role: Role::Consortium,
            action: format!("{action} of another consortium"),
        })),
        _ => Ok(own),
    }
}

fn next(cursor: Option<String>) -> Option<ID> {
    cursor.map(ID)
}

#[derive(Default)]
pub struct GpuQuery;

#[Object]
impl GpuQuery {
    /// The GPU catalogue: each model's current H100-equivalence factor.
    async fn gpu_models(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<GpuModel>> {
        let authed = caller_with(
            ctx,
            &[
                Role::Admin,
                Role::Officer,
                Role::Consortium,
                Role::Integration,
            ],
            "read the GPU catalogue",
        )?;
        let rows = ctx
            .data::<Services>()?
            .gpu_models(&authed.token)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The pool by model and period (and the phase its capacity serves): held, granted,
    /// reserved and available, in units and H100-eq. Staff and consortium users.
    async fn gpu_pools(
        &self,
        ctx: &Context<'_>,
        period: Option<String>,
        model: Option<String>,
    ) -> async_graphql::Result<Vec<GpuPool>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read the GPU pools")?;
        let mut q = Vec::new();
        if let Some(p) = period {
            q.push(("period", p));
        }
        if let Some(m) = model {
            q.push(("model", m));
        }
        let rows = ctx
            .data::<Services>()?
            .gpu_pools(&authed.token, &q)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The pool by model, source and period: what each lease and each government-owned
    /// source supplied to each pool, and the totals by source type, in units and H100-eq.
    /// Staff and consortium users (who see no source names and no team's grants).
    async fn gpu_pool_sources(
        &self,
        ctx: &Context<'_>,
        period: Option<String>,
        model: Option<String>,
    ) -> async_graphql::Result<Vec<GpuPoolBySource>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read the GPU pools by source")?;
        let mut q = Vec::new();
        if let Some(p) = period {
            q.push(("period", p));
        }
        if let Some(m) = model {
            q.push(("model", m));
        }
        let rows = ctx
            .data::<Services>()?
            .gpu_pool_sources(&authed.token, &q)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Teams selected by published calls, with the GPUs they asked for (staff; a team its own).
    async fn gpu_selected_teams(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<GpuSelectedTeam>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read the selected teams")?;
        let rows = ctx
            .data::<Services>()?
            .gpu_teams(&authed.token)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The latest offers (and, once accepted, the grants' tranches), newest first: staff
    /// any team's (or one team's); a consortium user only its own.
    async fn gpu_offers(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
    ) -> async_graphql::Result<Vec<GpuOffer>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read GPU offers")?;
        let team = own_team_only(ctx, consortium_id, "read the GPU offers")?;
        let q: Vec<(&str, String)> = team
            .map(|t| ("consortium_id", t.to_string()))
            .into_iter()
            .collect();
        let rows = ctx
            .data::<Services>()?
            .gpu_offers(&authed.token, &q)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// One offer (`OFFER_NOT_FOUND` for another consortium's).
    async fn gpu_offer(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<GpuOffer> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read a GPU offer")?;
        let o = ctx
            .data::<Services>()?
            .gpu_offer(&authed.token, id)
            .await
            .map_err(upstream)?;
        Ok(o.into())
    }

    /// Accounts by model, period, kind and team; a consortium user sees its own only.
    #[allow(clippy::too_many_arguments)]
    async fn gpu_accounts(
        &self,
        ctx: &Context<'_>,
        model: Option<String>,
        period: Option<String>,
        kind: Option<AccountKind>,
        consortium_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<GpuAccountPage> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read GPU accounts")?;
        let team = own_team_only(ctx, consortium_id, "read the GPU accounts")?;
        let mut q = Vec::new();
        if let Some(m) = model {
            q.push(("model", m));
        }
        if let Some(p) = period {
            q.push(("period", p));
        }
        if let Some(k) = kind {
            q.push(("kind", k.wire().to_owned()));
        }
        if let Some(t) = team {
            q.push(("consortium_id", t.to_string()));
        }
        if let Some(f) = first {
            q.push(("limit", f.to_string()));
        }
        if let Some(a) = after {
            q.push(("after", a));
        }
        let page = ctx
            .data::<Services>()?
            .gpu_accounts(&authed.token, &q)
            .await
            .map_err(upstream)?;
        Ok(GpuAccountPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: next(page.next_cursor),
        })
    }

    /// One account (staff; the owning consortium).
    async fn gpu_account(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<GpuAccount> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read a GPU account")?;
        let a = ctx
            .data::<Services>()?
            .gpu_account(&authed.token, id)
            .await
            .map_err(upstream)?;
        Ok(a.into())
    }

    /// An account's balance as of a time (now when omitted).
    async fn gpu_balance(
        &self,
        ctx: &Context<'_>,
        account_id: Uuid,
        as_of: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<GpuBalanceAsOf> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read a GPU balance")?;
        let b = ctx
            .data::<Services>()?
            .gpu_balance(&authed.token, account_id, as_of.unwrap_or_else(Utc::now))
            .await
            .map_err(upstream)?;
        Ok(GpuBalanceAsOf {
            account_id: b.account_id,
            as_of: b.as_of,
            balance: b.balance.into(),
            net_posted: Int64(b.net_posted),
            net_posted_h100_eq: Int64(b.net_posted_h100_eq.0),
            h100_factor: Int64(b.h100_factor),
        })
    }

    /// Transfers in the order they were recorded, filtered and paged. A consortium user
    /// must name one of its own accounts.
    #[allow(clippy::too_many_arguments)]
    async fn gpu_transfers(
        &self,
        ctx: &Context<'_>,
        account: Option<Uuid>,
        kind: Option<TransferKind>,
        code: Option<String>,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<GpuTransferPage> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "list GPU transfers")?;
        let mut q = Vec::new();
        if let Some(a) = account {
            q.push(("account", a.to_string()));
        }
        if let Some(k) = kind {
            q.push(("kind", k.wire().to_owned()));
        }
        if let Some(c) = code {
            q.push(("code", c));
        }
        if let Some(f) = from {
            q.push(("from", f.to_rfc3339()));
        }
        if let Some(u) = until {
            q.push(("until", u.to_rfc3339()));
        }
        if let Some(f) = first {
            q.push(("limit", f.to_string()));
        }
        if let Some(a) = after {
            q.push(("after", a));
        }
        let page = ctx
            .data::<Services>()?
            .gpu_transfers(&authed.token, &q)
            .await
            .map_err(upstream)?;
        Ok(GpuTransferPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: next(page.next_cursor),
        })
    }

    /// Utilisation per team, model and period; a consortium user sees its own only.
    async fn gpu_utilisation(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
        period: Option<String>,
    ) -> async_graphql::Result<Vec<GpuUtilisation>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read GPU utilisation")?;
        let team = own_team_only(ctx, consortium_id, "read the GPU utilisation")?;
        let mut q = Vec::new();
        if let Some(t) = team {
            q.push(("consortium_id", t.to_string()));
        }
        if let Some(p) = period {
            q.push(("period", p));
        }
        let rows = ctx
            .data::<Services>()?
            .gpu_utilisation(&authed.token, &q)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// A consortium's supplier records, oldest first (staff; the consortium its own).
    async fn gpu_supplier_history(
        &self,
        ctx: &Context<'_>,
        consortium_id: Uuid,
    ) -> async_graphql::Result<Vec<GpuSupplierRecord>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read supplier records")?;
        own_team_only(ctx, Some(consortium_id), "read the supplier records")?;
        let rows = ctx
            .data::<Services>()?
            .gpu_supplier_history(&authed.token, ConsortiumId(consortium_id))
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct GpuMutation;

#[Object]
impl GpuMutation {
    /// Offers a selected team GPUs (staff): every tranche of every option is reserved in the
    /// pool until `expiresAt`, whole or not at all.
    async fn make_gpu_offer(
        &self,
        ctx: &Context<'_>,
        input: MakeGpuOfferInput,
    ) -> async_graphql::Result<GpuOffer> {
        let authed = caller_with(ctx, STAFF, "make a GPU offer")?;
        let body = dto::MakeOffer {
            id: input.id,
            consortium_id: ConsortiumId(input.consortium_id),
            call_id: CallId(input.call_id),
            expires_at: input.expires_at,
            options: input.options.into_iter().map(Into::into).collect(),
            reason: input.reason,
        };
        let o = ctx
            .data::<Services>()?
            .make_gpu_offer(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(o.into())
    }

    /// The team accepts one option of its offer (its consortium's token only); the other
    /// options are released and tranches due now are granted.
    async fn accept_gpu_offer(
        &self,
        ctx: &Context<'_>,
        offer_id: Uuid,
        option: u32,
        #[graphql(default)] reason: String,
    ) -> async_graphql::Result<GpuOffer> {
        let authed = caller_with(ctx, &[Role::Consortium], "accept a GPU offer")?;
        let body = dto::AcceptOffer {
            option: option as usize,
            reason,
        };
        let o = ctx
            .data::<Services>()?
            .accept_gpu_offer(&authed.token, offer_id, &body)
            .await
            .map_err(upstream)?;
        Ok(o.into())
    }

    /// Records that a consortium starts (`supplying: true`) or stops supplying GPUs to the
    /// programme (staff). While it supplies it cannot receive a grant. A stop may say when
    /// supplying ends (`endsAt`, possibly in the future): grants are refused until then and
    /// possible from then. A corrected date is a new record; the latest is in force.
    async fn record_gpu_supplier(
        &self,
        ctx: &Context<'_>,
        consortium_id: Uuid,
        supplying: bool,
        ends_at: Option<DateTime<Utc>>,
        reason: String,
    ) -> async_graphql::Result<GpuSupplierRecord> {
        let authed = caller_with(ctx, STAFF, "record a GPU supplier")?;
        let body = dto::RecordSupplier {
            consortium_id: ConsortiumId(consortium_id),
            supplying,
            ends_at,
            reason,
        };
        let r = ctx
            .data::<Services>()?
            .record_gpu_supplier(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(r.into())
    }

    /// Reports GPU-hours a team used (GPU operators' integration tokens with the
    /// `write:gpu-usage` scope, or staff). Idempotent by `id`; an overrun is flagged.
    async fn report_gpu_usage(
        &self,
        ctx: &Context<'_>,
        input: ReportGpuUsageInput,
    ) -> async_graphql::Result<GpuUsageReport> {
        let authed = caller_with(
            ctx,
            &[Role::Admin, Role::Officer, Role::Integration],
            "report GPU usage",
        )?;
        if !authed.claims.has_scope(kaip_auth::scopes::WRITE_GPU_USAGE) {
            return Err(auth_error(&AuthError::Forbidden {
                role: authed.claims.role,
                action: format!(
                    "report GPU usage without the `{}` scope",
                    kaip_auth::scopes::WRITE_GPU_USAGE
                ),
            }));
        }
        let body = dto::ReportUsage {
            id: input.id,
            consortium_id: ConsortiumId(input.consortium_id),
            model: input.model,
            period: input.period,
            gpu_hours: input.gpu_hours.0,
            note: input.note,
        };
        let r = ctx
            .data::<Services>()?
            .report_gpu_usage(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(r.into())
    }

    /// Opens an account (staff): a source, a pool, a team's grant or usage account.
    /// Idempotent by `id`.
    async fn open_gpu_account(
        &self,
        ctx: &Context<'_>,
        input: OpenGpuAccountInput,
    ) -> async_graphql::Result<GpuAccount> {
        let authed = caller_with(ctx, STAFF, "open a GPU account")?;
        let body = dto::OpenAccount {
            id: input.id,
            model: input.model,
            period: input.period,
            kind: input.kind.into(),
            consortium_id: input.consortium_id.map(ConsortiumId),
            source_type: input.source_type.map(Into::into),
            phase: input.phase,
            name: input.name,
            reason: input.reason,
        };
        let a = ctx
            .data::<Services>()?
            .open_gpu_account(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(a.into())
    }

    /// Records a batch of transfers in one transaction (staff); one result per transfer,
    /// a refusal with its code (`EXCEEDS_CREDITS`, `LINKED_EVENT_FAILED`, ...).
    async fn create_gpu_transfers(
        &self,
        ctx: &Context<'_>,
        transfers: Vec<GpuTransferInput>,
    ) -> async_graphql::Result<GpuTransfersResult> {
        let authed = caller_with(ctx, STAFF, "record GPU transfers")?;
        let body = dto::CreateTransfers {
            transfers: transfers
                .into_iter()
                .map(|t| dto::NewTransfer {
                    id: t.id,
                    debit_account: t.debit_account,
                    credit_account: t.credit_account,
                    amount: t.amount.0,
                    kind: t.kind.into(),
                    pending_id: t.pending_id,
                    timeout_at: t.timeout_at,
                    linked: t.linked,
                    code: t.code,
                    reason: t.reason,
                })
                .collect(),
        };
        let r = ctx
            .data::<Services>()?
            .create_gpu_transfers(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(GpuTransfersResult {
            results: r
                .results
                .into_iter()
                .map(|x| GpuTransferResult {
                    index: i32::try_from(x.index).unwrap_or(i32::MAX),
                    id: x.id,
                    status: x.status,
                    code: x.code,
                    message: x.message,
                })
                .collect(),
            created: i32::try_from(r.created).unwrap_or(i32::MAX),
        })
    }

    /// Adds a GPU model or records a new H100-equivalence factor (staff; a new version).
    async fn set_gpu_model(
        &self,
        ctx: &Context<'_>,
        code: String,
        name: String,
        h100_factor: Int64,
        reason: String,
    ) -> async_graphql::Result<GpuModel> {
        let authed = caller_with(ctx, STAFF, "set a GPU model")?;
        let body = dto::SetGpuModel {
            name,
            h100_factor: h100_factor.0,
            reason,
        };
        let m = ctx
            .data::<Services>()?
            .set_gpu_model(&authed.token, &code, &body)
            .await
            .map_err(upstream)?;
        Ok(m.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_is_a_canonical_digit_string_within_i64() {
        assert_eq!(parse_int64("1024"), Ok(1024));
        assert_eq!(parse_int64("-3"), Ok(-3));
        assert_eq!(parse_int64("9223372036854775807"), Ok(i64::MAX));
        for bad in ["", "-", "+1", "01", "-0", "1.5", "1e3", " 1", "1,024"] {
            assert!(parse_int64(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_int64("9223372036854775808").is_err());
        assert!(!<Int64 as ScalarType>::is_valid(&Value::Number(5.into())));
        assert_eq!(
            Int64(1 << 40).to_value(),
            Value::String("1099511627776".into())
        );
    }
}
