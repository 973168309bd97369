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

/// A batch of transfers was recorded (in one database transaction): everything it created,
/// in order. Refused transfers are not announced: they changed nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuTransfersRecorded {
    pub batch_id: Uuid,
    pub transfers: Vec<RecordedTransfer>,
    pub recorded_at: DateTime<Utc>,
}

impl DomainEvent for GpuTransfersRecorded {
    const TYPE: &'static str = "GpuTransfersRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "gpu_transfer_batch";
    fn aggregate_id(&self) -> Uuid {
        self.batch_id
    }
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
