//! Events of the data budget (`kaip.data-budget.events`), for finance integrations and the
//! gateway. Money is whole KRW; fiscal years are Korean calendar years.

use super::DomainEvent;
use crate::dto::budget::{Category, ProgrammeSettings};
use crate::ids::{CallId, ConsortiumId, Krw};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A selected team's budget for a fiscal year was opened, with its cap and sub-limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataBudgetOpened {
    pub consortium_id: ConsortiumId,
    pub call_id: CallId,
    pub fiscal_year: i32,
    pub cap_krw: Krw,
    pub joint_purchase_limit_krw: Krw,
    pub building_processing_limit_krw: Krw,
    pub opened_at: DateTime<Utc>,
}

impl DomainEvent for DataBudgetOpened {
    const TYPE: &'static str = "DataBudgetOpened";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// An officer adjusted a team-year's cap (a new record; the previous one is kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataBudgetCapAdjusted {
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub seq: i64,
    pub cap_krw: Krw,
    pub joint_purchase_limit_krw: Krw,
    pub building_processing_limit_krw: Krw,
    pub reason: String,
    pub adjusted_at: DateTime<Utc>,
}

impl DomainEvent for DataBudgetCapAdjusted {
    const TYPE: &'static str = "DataBudgetCapAdjusted";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A commitment (purchase order) reserved budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataCommitmentMade {
    pub commitment_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub category: Category,
    pub amount_krw: Krw,
    pub dataset_id: Option<Uuid>,
    pub joint_purchase_id: Option<Uuid>,
    pub made_at: DateTime<Utc>,
}

impl DomainEvent for DataCommitmentMade {
    const TYPE: &'static str = "DataCommitmentMade";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// The part of a commitment not invoiced was cancelled: it is available again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataCommitmentCancelled {
    pub commitment_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub released_krw: Krw,
    pub reason: String,
    pub cancelled_at: DateTime<Utc>,
}

impl DomainEvent for DataCommitmentCancelled {
    const TYPE: &'static str = "DataCommitmentCancelled";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// An invoice consumed (part of) a commitment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataInvoiceRecorded {
    pub invoice_id: Uuid,
    pub commitment_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub amount_krw: Krw,
    pub invoice_no: String,
    pub recorded_at: DateTime<Utc>,
}

impl DomainEvent for DataInvoiceRecorded {
    const TYPE: &'static str = "DataInvoiceRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// The finance system confirmed a payment of an invoice (once per `external_key`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataPaymentConfirmed {
    pub external_key: String,
    pub invoice_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub amount_krw: Krw,
    pub paid_at: DateTime<Utc>,
}

impl DomainEvent for DataPaymentConfirmed {
    const TYPE: &'static str = "DataPaymentConfirmed";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// One team's share of a joint purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitShare {
    pub consortium_id: ConsortiumId,
    pub weight: i64,
    pub amount_krw: Krw,
    pub commitment_id: Uuid,
}

/// A joint purchase was committed for every sharing team, its cost split exact to the won
/// (largest remainder; ties to the team with the lower consortium id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JointPurchaseSplit {
    pub joint_purchase_id: Uuid,
    pub dataset_id: Uuid,
    pub fiscal_year: i32,
    pub total_krw: Krw,
    pub split_rule: String,
    pub shares: Vec<SplitShare>,
    pub made_at: DateTime<Utc>,
}

impl DomainEvent for JointPurchaseSplit {
    const TYPE: &'static str = "JointPurchaseSplit";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "joint_purchase";
    fn aggregate_id(&self) -> Uuid {
        self.joint_purchase_id
    }
}

/// A dataset entered the catalogue with its licence terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetRegistered {
    pub dataset_id: Uuid,
    pub name: String,
    pub provider: String,
    pub licence_terms: String,
    pub registered_at: DateTime<Utc>,
}

impl DomainEvent for DatasetRegistered {
    const TYPE: &'static str = "DatasetRegistered";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "dataset";
    fn aggregate_id(&self) -> Uuid {
        self.dataset_id
    }
}

/// A new version of the data budget programme's configuration (`PUT /programme`), with who
/// set it and why. Existing team-year caps above a lowered maximum were lowered in the same
/// transaction, each announced by a `DataBudgetCapAdjusted` (the programme's sub-limits are
/// the opening ones and do not lower existing caps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataProgrammeConfigured {
    /// The configuration's version (1 is the programme's defaults).
    pub version: i64,
    pub settings: ProgrammeSettings,
    /// The subject of the admin or officer who set it.
    pub set_by: String,
    pub reason: String,
    /// How many team-year caps were lowered to fit the new figures.
    pub caps_lowered: i64,
    pub set_at: DateTime<Utc>,
}

impl DomainEvent for DataProgrammeConfigured {
    const TYPE: &'static str = "DataProgrammeConfigured";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "data_programme";
    /// The programme's configuration is one aggregate (one key, so its versions stay in
    /// order on the topic).
    fn aggregate_id(&self) -> Uuid {
        Uuid::nil()
    }
}
