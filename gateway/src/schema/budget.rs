//! The data budget (`services/data-budget`): each selected team's budget per fiscal year
//! with its figures by category, commitments, joint purchases split exact to the won,
//! licences, the monthly burn and the programme's total.
//!
//! Money is the [`Krw`] scalar (a string of digits: GraphQL `Int` is 32-bit). The service
//! enforces who sees what (a consortium user only its own team); the gateway checks roles
//! first and refuses a consortium user naming another team outright.

use super::gpu::own_team_only;
use super::money::Krw;
use super::{caller_with, upstream};
use crate::clients::Services;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use kaip_contracts::dto::budget as dto;
use kaip_contracts::{ConsortiumId, Role};
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::Officer];
const STAFF_OR_TEAM: &[Role] = &[Role::Admin, Role::Officer, Role::Consortium];

/// What a commitment spends, each with its sub-limit under the team's cap.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "DataCategory")]
pub enum Category {
    JointPurchase,
    BuildingProcessing,
}

impl From<dto::Category> for Category {
    fn from(c: dto::Category) -> Self {
        match c {
            dto::Category::JointPurchase => Self::JointPurchase,
            dto::Category::BuildingProcessing => Self::BuildingProcessing,
        }
    }
}

impl From<Category> for dto::Category {
    fn from(c: Category) -> Self {
        match c {
            Category::JointPurchase => Self::JointPurchase,
            Category::BuildingProcessing => Self::BuildingProcessing,
        }
    }
}

/// The figures of a budget or of one of its categories. `committed` counts every
/// commitment not cancelled (invoiced ones included); `available` is what a new commitment
/// may still take.
#[derive(SimpleObject)]
#[graphql(name = "DataFigures")]
pub struct Figures {
    pub limit_krw: Krw,
    pub committed_krw: Krw,
    pub invoiced_krw: Krw,
    pub paid_krw: Krw,
    pub available_krw: Krw,
}

impl From<dto::Figures> for Figures {
    fn from(f: dto::Figures) -> Self {
        Self {
            limit_krw: f.limit_krw.into(),
            committed_krw: f.committed_krw.into(),
            invoiced_krw: f.invoiced_krw.into(),
            paid_krw: f.paid_krw.into(),
            available_krw: f.available_krw.into(),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "DataCategoryFigures")]
pub struct CategoryFigures {
    pub category: Category,
    pub figures: Figures,
}

fn categories(cs: Vec<dto::CategoryFigures>) -> Vec<CategoryFigures> {
    cs.into_iter()
        .map(|c| CategoryFigures {
            category: c.category.into(),
            figures: c.figures.into(),
        })
        .collect()
}

/// One version of a team-year's cap (the opening one, then officers' adjustments).
#[derive(SimpleObject)]
#[graphql(name = "DataCapRecord")]
pub struct CapRecord {
    pub seq: String,
    pub cap_krw: Krw,
    pub joint_purchase_limit_krw: Krw,
    pub building_processing_limit_krw: Krw,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
    pub reason: String,
}

/// A selected team's data budget for one fiscal year (a Korean calendar year).
#[derive(SimpleObject)]
pub struct DataBudget {
    pub consortium_id: Uuid,
    pub consortium_name: String,
    pub call_id: Uuid,
    pub fiscal_year: i32,
    pub carried_over_krw: Krw,
    pub total: Figures,
    pub categories: Vec<CategoryFigures>,
    pub caps: Vec<CapRecord>,
    /// The gate at which the team was eliminated: it commits nothing new.
    pub eliminated_at_gate: Option<String>,
}

impl From<dto::Budget> for DataBudget {
    fn from(b: dto::Budget) -> Self {
        Self {
            consortium_id: b.consortium_id.0,
            consortium_name: b.consortium_name,
            call_id: b.call_id.0,
            fiscal_year: b.fiscal_year,
            carried_over_krw: b.carried_over_krw.into(),
            total: b.total.into(),
            categories: categories(b.categories),
            caps: b
                .caps
                .into_iter()
                .map(|c| CapRecord {
                    seq: c.seq.to_string(),
                    cap_krw: c.cap_krw.into(),
                    joint_purchase_limit_krw: c.joint_purchase_limit_krw.into(),
                    building_processing_limit_krw: c.building_processing_limit_krw.into(),
                    set_by: c.set_by,
                    set_at: c.set_at,
                    reason: c.reason,
                })
                .collect(),
            eliminated_at_gate: b.eliminated_at_gate,
        }
    }
}

/// A purchase order that reserves budget; invoices consume it, a cancellation releases
/// what was not invoiced.
#[derive(SimpleObject)]
pub struct DataCommitment {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub fiscal_year: i32,
    pub category: Category,
    pub amount_krw: Krw,
    pub invoiced_krw: Krw,
    pub cancelled_krw: Krw,
    pub paid_krw: Krw,
    /// `open`, `invoiced` or `cancelled`.
    pub status: String,
    pub dataset_id: Option<Uuid>,
    pub joint_purchase_id: Option<Uuid>,
    pub made_by: String,
    pub made_at: DateTime<Utc>,
    pub reason: String,
}

impl From<dto::Commitment> for DataCommitment {
    fn from(c: dto::Commitment) -> Self {
        Self {
            id: c.id,
            consortium_id: c.consortium_id.0,
            fiscal_year: c.fiscal_year,
            category: c.category.into(),
            amount_krw: c.amount_krw.into(),
            invoiced_krw: c.invoiced_krw.into(),
            cancelled_krw: c.cancelled_krw.into(),
            paid_krw: c.paid_krw.into(),
            status: match c.status {
                dto::CommitmentStatus::Open => "open",
                dto::CommitmentStatus::Invoiced => "invoiced",
                dto::CommitmentStatus::Cancelled => "cancelled",
            }
            .to_owned(),
            dataset_id: c.dataset_id,
            joint_purchase_id: c.joint_purchase_id,
            made_by: c.made_by,
            made_at: c.made_at,
            reason: c.reason,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "DataShare")]
pub struct Share {
    pub consortium_id: Uuid,
    pub weight: String,
    pub amount_krw: Krw,
    pub commitment_id: Uuid,
}

/// A dataset bought by several teams, its cost split exact to the won (largest remainder;
/// ties to the lower consortium id).
#[derive(SimpleObject)]
pub struct DataJointPurchase {
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

impl From<dto::JointPurchase> for DataJointPurchase {
    fn from(j: dto::JointPurchase) -> Self {
        Self {
            id: j.id,
            dataset_id: j.dataset_id,
            fiscal_year: j.fiscal_year,
            total_krw: j.total_krw.into(),
            split_rule: j.split_rule,
            shares: j
                .shares
                .into_iter()
                .map(|s| Share {
                    consortium_id: s.consortium_id.0,
                    weight: s.weight.to_string(),
                    amount_krw: s.amount_krw.into(),
                    commitment_id: s.commitment_id,
                })
                .collect(),
            made_by: j.made_by,
            made_at: j.made_at,
            reason: j.reason,
        }
    }
}

/// A dataset in the catalogue with its licence terms.
#[derive(SimpleObject)]
pub struct Dataset {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub licence_terms: String,
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
}

impl From<dto::Dataset> for Dataset {
    fn from(d: dto::Dataset) -> Self {
        Self {
            id: d.id,
            name: d.name,
            provider: d.provider,
            licence_terms: d.licence_terms,
            registered_by: d.registered_by,
            registered_at: d.registered_at,
        }
    }
}

/// A team's licence to a dataset it bought; it outlives the team's elimination.
#[derive(SimpleObject)]
pub struct DataLicence {
    pub dataset_id: Uuid,
    pub dataset_name: String,
    pub licence_terms: String,
    pub consortium_id: Uuid,
    pub commitment_id: Uuid,
    pub granted_at: DateTime<Utc>,
}

impl From<dto::Licence> for DataLicence {
    fn from(l: dto::Licence) -> Self {
        Self {
            dataset_id: l.dataset_id,
            dataset_name: l.dataset_name,
            licence_terms: l.licence_terms,
            consortium_id: l.consortium_id.0,
            commitment_id: l.commitment_id,
            granted_at: l.granted_at,
        }
    }
}

/// Invoiced and paid in one month (`YYYY-MM`, KST).
#[derive(SimpleObject)]
pub struct DataMonthlyBurn {
    pub month: String,
    pub invoiced_krw: Krw,
    pub paid_krw: Krw,
}

/// The programme's total across teams for one fiscal year.
#[derive(SimpleObject)]
pub struct DataProgrammeTotal {
    pub fiscal_year: i32,
    pub teams: i32,
    pub total: Figures,
    pub categories: Vec<CategoryFigures>,
}

#[derive(InputObject)]
pub struct CommitDataBudgetInput {
    /// Chosen by the client: a repeat with the same fields answers the original.
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub fiscal_year: i32,
    pub category: Category,
    pub amount_krw: Krw,
    pub dataset_id: Option<Uuid>,
    pub reason: String,
}

/// One team's part: a weight, or an amount (then every share names one and they sum to
/// the total), or neither on every share (equal split).
#[derive(InputObject)]
pub struct DataShareInput {
    pub consortium_id: Uuid,
    pub weight: Option<i32>,
    pub amount_krw: Option<Krw>,
}

#[derive(InputObject)]
pub struct JointDataPurchaseInput {
    pub id: Uuid,
    pub dataset_id: Uuid,
    pub fiscal_year: i32,
    pub total_krw: Krw,
    pub shares: Vec<DataShareInput>,
    pub reason: String,
}

#[derive(InputObject)]
pub struct AdjustDataCapInput {
    pub consortium_id: Uuid,
    pub fiscal_year: i32,
    pub cap_krw: Krw,
    pub joint_purchase_limit_krw: Krw,
    pub building_processing_limit_krw: Krw,
    pub reason: String,
}

#[derive(InputObject)]
pub struct RegisterDatasetInput {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub licence_terms: String,
}

fn team_and_year(team: Option<Uuid>, year: Option<i32>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(t) = team {
        q.push(("consortium_id", t.to_string()));
    }
    if let Some(y) = year {
        q.push(("fiscal_year", y.to_string()));
    }
    q
}

#[derive(Default)]
pub struct BudgetQuery;

#[Object]
impl BudgetQuery {
    /// Data budgets per team and fiscal year with cap, committed, invoiced, paid and
    /// available, in total and by category: staff any team's; a consortium user its own.
    async fn data_budgets(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
        fiscal_year: Option<i32>,
    ) -> async_graphql::Result<Vec<DataBudget>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read data budgets")?;
        let team = own_team_only(ctx, consortium_id, "read the data budgets")?;
        let rows = ctx
            .data::<Services>()?
            .data_budgets(&authed.token, &team_and_year(team, fiscal_year))
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Commitments (purchase orders) with what was invoiced, cancelled and paid.
    async fn data_commitments(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
        fiscal_year: Option<i32>,
    ) -> async_graphql::Result<Vec<DataCommitment>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read data commitments")?;
        let team = own_team_only(ctx, consortium_id, "read the data commitments")?;
        let rows = ctx
            .data::<Services>()?
            .data_commitments(&authed.token, &team_and_year(team, fiscal_year))
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Money invoiced and paid per month (KST): one team's, or the programme's for staff.
    async fn data_budget_burn(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
        fiscal_year: Option<i32>,
    ) -> async_graphql::Result<Vec<DataMonthlyBurn>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read the data budget's burn")?;
        let team = own_team_only(ctx, consortium_id, "read the data budget's burn")?;
        let rows = ctx
            .data::<Services>()?
            .data_burn(&authed.token, &team_and_year(team, fiscal_year))
            .await
            .map_err(upstream)?;
        Ok(rows
            .into_iter()
            .map(|m| DataMonthlyBurn {
                month: m.month,
                invoiced_krw: m.invoiced_krw.into(),
                paid_krw: m.paid_krw.into(),
            })
            .collect())
    }

    /// The programme's total across teams for a fiscal year (staff).
    async fn data_budget_total(
        &self,
        ctx: &Context<'_>,
        fiscal_year: i32,
    ) -> async_graphql::Result<DataProgrammeTotal> {
        let authed = caller_with(ctx, STAFF, "read the programme's data budget total")?;
        let t = ctx
            .data::<Services>()?
            .data_total(&authed.token, fiscal_year)
            .await
            .map_err(upstream)?;
        Ok(DataProgrammeTotal {
            fiscal_year: t.fiscal_year,
            teams: i32::try_from(t.teams).unwrap_or(i32::MAX),
            total: t.total.into(),
            categories: categories(t.categories),
        })
    }

    /// The data catalogue.
    async fn datasets(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Dataset>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read the data catalogue")?;
        let rows = ctx
            .data::<Services>()?
            .datasets(&authed.token)
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Licences teams hold to the data they bought (kept after elimination).
    async fn data_licences(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
    ) -> async_graphql::Result<Vec<DataLicence>> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "read data licences")?;
        let team = own_team_only(ctx, consortium_id, "read the data licences")?;
        let rows = ctx
            .data::<Services>()?
            .data_licences(&authed.token, &team_and_year(team, None))
            .await
            .map_err(upstream)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct BudgetMutation;

#[Object]
impl BudgetMutation {
    /// A commitment (purchase order) against a team-year's budget: staff, or a consortium
    /// user for its own team. Refused with `INSUFFICIENT_BUDGET` (naming the shortfall)
    /// when it does not fit the cap or the category's sub-limit.
    async fn commit_data_budget(
        &self,
        ctx: &Context<'_>,
        input: CommitDataBudgetInput,
    ) -> async_graphql::Result<DataCommitment> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "commit data budget")?;
        own_team_only(ctx, Some(input.consortium_id), "commit the data budget")?;
        let body = dto::MakeCommitment {
            id: input.id,
            consortium_id: ConsortiumId(input.consortium_id),
            fiscal_year: input.fiscal_year,
            category: input.category.into(),
            amount_krw: input.amount_krw.into(),
            dataset_id: input.dataset_id,
            reason: input.reason,
        };
        let c = ctx
            .data::<Services>()?
            .commit_data(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(c.into())
    }

    /// Cancels what a commitment has not invoiced (staff, or the team itself).
    async fn cancel_data_commitment(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        reason: String,
    ) -> async_graphql::Result<DataCommitment> {
        let authed = caller_with(ctx, STAFF_OR_TEAM, "cancel a data commitment")?;
        let c = ctx
            .data::<Services>()?
            .cancel_data_commitment(&authed.token, id, &dto::CancelCommitment { reason })
            .await
            .map_err(upstream)?;
        Ok(c.into())
    }

    /// A joint purchase (staff): committed for every sharing team or for none.
    async fn make_joint_data_purchase(
        &self,
        ctx: &Context<'_>,
        input: JointDataPurchaseInput,
    ) -> async_graphql::Result<DataJointPurchase> {
        let authed = caller_with(ctx, STAFF, "make a joint data purchase")?;
        let body = dto::MakeJointPurchase {
            id: input.id,
            dataset_id: input.dataset_id,
            fiscal_year: input.fiscal_year,
            total_krw: input.total_krw.into(),
            shares: input
                .shares
                .into_iter()
                .map(|s| dto::ShareSpec {
                    consortium_id: ConsortiumId(s.consortium_id),
                    weight: s.weight.map(i64::from),
                    amount_krw: s.amount_krw.map(Into::into),
                })
                .collect(),
            reason: input.reason,
        };
        let j = ctx
            .data::<Services>()?
            .joint_data_purchase(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(j.into())
    }

    /// An officer's adjustment of a team-year's cap, kept as a new record with the reason.
    async fn adjust_data_budget_cap(
        &self,
        ctx: &Context<'_>,
        input: AdjustDataCapInput,
    ) -> async_graphql::Result<DataBudget> {
        let authed = caller_with(ctx, STAFF, "adjust a data budget cap")?;
        let body = dto::AdjustCap {
            cap_krw: input.cap_krw.into(),
            joint_purchase_limit_krw: input.joint_purchase_limit_krw.into(),
            building_processing_limit_krw: input.building_processing_limit_krw.into(),
            reason: input.reason,
        };
        let b = ctx
            .data::<Services>()?
            .adjust_data_cap(&authed.token, input.consortium_id, input.fiscal_year, &body)
            .await
            .map_err(upstream)?;
        Ok(b.into())
    }

    /// Enters a dataset in the catalogue (staff). Idempotent by `id`.
    async fn register_dataset(
        &self,
        ctx: &Context<'_>,
        input: RegisterDatasetInput,
    ) -> async_graphql::Result<Dataset> {
        let authed = caller_with(ctx, STAFF, "register a dataset")?;
        let body = dto::RegisterDataset {
            id: input.id,
            name: input.name,
            provider: input.provider,
            licence_terms: input.licence_terms,
        };
        let d = ctx
            .data::<Services>()?
            .register_dataset(&authed.token, &body)
            .await
            .map_err(upstream)?;
        Ok(d.into())
    }
}
