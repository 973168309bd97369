//! Events of the GPU ledger (`kaip.gpu-ledger.events`). Amounts are whole GPUs of the
//! named model; H100-equivalents are derived by the model's factor.

use super::DomainEvent;
use crate::dto::gpu::{AccountKind, TransferKind};
use crate::ids::ConsortiumId;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An account was opened: a source of capacity, a pool, a team's grant or usage account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuAccountOpened {
    pub account_id: Uuid,
    pub model: String,
    pub period: String,
    pub kind: AccountKind,
    pub consortium_id: Option<ConsortiumId>,
    pub name: String,
    pub reason: String,
    pub opened_at: DateTime<Utc>,
}

impl DomainEvent for GpuAccountOpened {
    const TYPE: &'static str = "GpuAccountOpened";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_account";
    fn aggregate_id(&self) -> Uuid {
        self.account_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        self.consortium_id
    }
}

/// One transfer as announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordedTransfer {
    pub id: Uuid,
    pub kind: TransferKind,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: i64,
    pub model: String,
    pub period: String,
    pub pending_id: Option<Uuid>,
    pub code: String,
}

/// Part of a batch of transfers recorded in one database transaction: the transfers it
/// created in one ledger (one model and period), in order. Refused transfers are not
/// announced: they changed nothing.
///
/// A batch is announced in `parts` events (`part` = 1..=`parts`, all with its `batch_id`):
/// one or more per ledger it touched, each kept well under the broker's message size limit.
/// The Kafka key is `ledger_key`, a fixed id of the (model, period) ledger, so every event of
/// one ledger is on one partition, in commit order: a consumer always sees a pending transfer
/// before the post or void that resolves it, and an account's transfers in order (a transfer
/// never crosses ledgers). There is no order between different ledgers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuTransfersRecorded {
    pub batch_id: Uuid,
    /// The (model, period) ledger's fixed id: [`ledger_key`].
    pub ledger_key: Uuid,
    /// This event's place among the batch's events, from 1.
    pub part: u32,
    /// How many events announce the batch.
    pub parts: u32,
    pub transfers: Vec<RecordedTransfer>,
    pub recorded_at: DateTime<Utc>,
}

impl DomainEvent for GpuTransfersRecorded {
    const TYPE: &'static str = "GpuTransfersRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_ledger";
    fn aggregate_id(&self) -> Uuid {
        self.ledger_key
    }
}

/// The fixed id of the ledger of one GPU model and period (a 128-bit FNV-1a hash of both):
/// the same on every replica and every release, so it can key the ledger's events.
pub fn ledger_key(model: &str, period: &str) -> Uuid {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for b in model.bytes().chain([0u8]).chain(period.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    Uuid::from_u128(h)
}

/// An officer recorded that a consortium started or stopped supplying GPUs to the
/// programme. While it supplies it can receive no grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuSupplierRecorded {
    pub consortium_id: ConsortiumId,
    pub supplying: bool,
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

impl DomainEvent for GpuSupplierRecorded {
    const TYPE: &'static str = "GpuSupplierRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// An officer recorded WHEN a consortium's supplying of GPUs ends (possibly in the future,
/// or a correction of an earlier date: the latest record is in force). Until `ends_at` it
/// still receives no grant; from then it may. (A stop without a date is announced as
/// [`GpuSupplierRecorded`] with `supplying: false`, as before.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuSupplyEndRecorded {
    pub consortium_id: ConsortiumId,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

impl DomainEvent for GpuSupplyEndRecorded {
    const TYPE: &'static str = "GpuSupplyEndRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A GPU model was added or its H100-equivalence factor changed (a new version).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuModelFactorSet {
    pub model: String,
    pub name: String,
    pub h100_factor: i64,
    pub reason: String,
    pub recorded_at: DateTime<Utc>,
}

impl DomainEvent for GpuModelFactorSet {
    const TYPE: &'static str = "GpuModelFactorSet";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_model";
    /// Keyed by a name-based UUID of the model code, so a model's versions stay in order.
    fn aggregate_id(&self) -> Uuid {
        model_key(&self.model)
    }
}

/// A stable UUID for a model code (FNV-1a, 128 bits): the Kafka key of its events.
pub fn model_key(code: &str) -> Uuid {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for b in "kaip:gpu-model:".bytes().chain(code.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    Uuid::from_u128(h)
}

/// One tranche as announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnouncedTranche {
    pub model: String,
    pub period: String,
    pub count: i64,
    pub release_at: Option<DateTime<Utc>>,
    pub release_gate: Option<String>,
}

/// An officer offered a selected team GPUs: one offer of `h100_eq` H100-equivalents in
/// one or more forms (options), reserved in the pools until `expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuOfferMade {
    pub offer_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub call_id: crate::ids::CallId,
    pub h100_eq: i64,
    /// Per option, its tranches.
    pub options: Vec<Vec<AnnouncedTranche>>,
    pub expires_at: DateTime<Utc>,
    pub reason: String,
}

impl DomainEvent for GpuOfferMade {
    const TYPE: &'static str = "GpuOfferMade";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_offer";
    fn aggregate_id(&self) -> Uuid {
        self.offer_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// The team accepted an option: its due tranches are granted (posted), the later ones
/// stay reserved for it, the other options went back to the pools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuGranted {
    pub offer_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub option: u32,
    pub released: Vec<AnnouncedTranche>,
    pub reserved: Vec<AnnouncedTranche>,
    pub accepted_at: DateTime<Utc>,
}

impl DomainEvent for GpuGranted {
    const TYPE: &'static str = "GpuGranted";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_offer";
    fn aggregate_id(&self) -> Uuid {
        self.offer_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A reserved tranche was released to its team: on its date, or because the team passed
/// the gate it waited for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuTrancheReleased {
    pub offer_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub tranche: AnnouncedTranche,
    /// `date` or `gate:<key>`.
    pub trigger: String,
    pub released_at: DateTime<Utc>,
}

impl DomainEvent for GpuTrancheReleased {
    const TYPE: &'static str = "GpuTrancheReleased";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_offer";
    fn aggregate_id(&self) -> Uuid {
        self.offer_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// Capacity moved by a reallocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MovedCapacity {
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub count: i64,
}

/// An eliminated team's grants were closed in one linked chain: its reservations voided,
/// its capacity for future periods returned to the pools, and the plan's grants made to
/// the survivors. What it already used stays with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuGrantClosed {
    pub consortium_id: ConsortiumId,
    pub gate_id: Uuid,
    /// Reservations voided (future tranches, open offers).
    pub voided: Vec<MovedCapacity>,
    /// Posted capacity for future periods returned to the pools.
    pub returned: Vec<MovedCapacity>,
    /// Grants to survivors, as the plan said.
    pub reallocated: Vec<MovedCapacity>,
    pub closed_at: DateTime<Utc>,
}

impl DomainEvent for GpuGrantClosed {
    const TYPE: &'static str = "GpuGrantClosed";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A GPU operator reported GPU-hours a team used. `overrun` is true when the team has now
/// used more than it was granted for the period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuUsageRecorded {
    pub report_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub gpu_hours: i64,
    pub used_hours: i64,
    pub granted_hours: i64,
    pub overrun: bool,
    pub reported_at: DateTime<Utc>,
}

impl DomainEvent for GpuUsageRecorded {
    const TYPE: &'static str = "GpuUsageRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// One reservation of an expired offer, as it went back to its pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnedReservation {
    pub option: u32,
    pub tranche: u32,
    pub model: String,
    pub period: String,
    pub count: i64,
    /// The pending transfer that reserved it; the sweeper's expiry names it.
    pub transfer_id: Uuid,
}

/// An offer its team did not accept before `expires_at` lapsed: the sweeper recorded the
/// expiry of every reservation it still held, and these GPUs went back to their pools.
/// Announced once per offer, in the transaction that expired its last reservation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuOfferExpired {
    pub offer_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub call_id: crate::ids::CallId,
    /// What the offer was worth (every option is worth the same).
    pub h100_eq: i64,
    /// Every reservation of every option, returned to its pool.
    pub returned: Vec<ReturnedReservation>,
    pub expires_at: DateTime<Utc>,
    /// When the sweeper recorded the expiry (at or after `expires_at`).
    pub expired_at: DateTime<Utc>,
}

impl DomainEvent for GpuOfferExpired {
    const TYPE: &'static str = "GpuOfferExpired";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_offer";
    fn aggregate_id(&self) -> Uuid {
        self.offer_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A GPU operator's report of GPU-hours a team used, produced by the operator on its own
/// topic ([`crate::topics::OPERATORS`]). The ledger records it exactly as `POST /usage`:
/// idempotent by `report_id` (a repeat with the same fields changes nothing; with different
/// fields it is dead-lettered with `USAGE_REPORT_EXISTS_WITH_DIFFERENT_FIELDS`), and
/// answered by the ledger's `GpuUsageRecorded`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuUsageReported {
    /// Chosen by the operator: the report's idempotency key (also across the API).
    pub report_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub model: String,
    pub period: String,
    pub gpu_hours: i64,
    #[serde(default)]
    pub note: String,
}

impl DomainEvent for GpuUsageReported {
    const TYPE: &'static str = "GpuUsageReported";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}
