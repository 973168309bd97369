//! The budget's HTTP API (called by the gateway and by finance integrations, with the
//! caller's token checked again here). Consortium users see and commit for their own team
//! only; officers and admins run the budget; finance integrations need the
//! `write:data-finance` scope to record invoices and confirm payments. Every read is one
//! REPEATABLE READ READ ONLY transaction ([`store::report`]).

use crate::error::BudgetError;
use crate::{spend, store};
use actix_web::{web, HttpResponse};
use kaip_auth::AuthError;
use kaip_contracts::dto::budget as dto;
use kaip_contracts::Role;
use kaip_service::retry::retrying;
use kaip_service::{AppState, Caller, ValidJson};
use serde::Deserialize;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/programme", web::get().to(get_programme))
        .route("/programme", web::put().to(set_programme))
        .route("/budgets", web::get().to(list_budgets))
        .route("/budgets/{team}/{year}", web::get().to(get_budget))
        .route("/budgets/{team}/{year}/cap", web::post().to(adjust_cap))
        .route("/commitments", web::post().to(commit))
        .route("/commitments", web::get().to(list_commitments))
        .route("/commitments/{id}", web::get().to(get_commitment))
        .route("/commitments/{id}/cancel", web::post().to(cancel))
        .route("/joint-purchases", web::post().to(joint_purchase))
        .route("/joint-purchases/{id}", web::get().to(get_joint_purchase))
        .route("/invoices", web::post().to(invoice))
        .route("/invoices/{id}", web::get().to(get_invoice))
        .route("/payments", web::post().to(payment))
        .route("/datasets", web::post().to(register_dataset))
        .route("/datasets", web::get().to(list_datasets))
        .route("/licences", web::get().to(licences))
        .route("/burn", web::get().to(burn))
        .route("/total", web::get().to(total));
}

/// Ministry staff: they run the budget.
const STAFF: &[Role] = &[Role::Admin, Role::Officer];
/// Who may read a team's budget (a consortium user its own).
const READERS: &[Role] = &[Role::Admin, Role::Officer, Role::Consortium];
/// Who may record invoices and payments: staff, and finance integrations with the scope.
const FINANCE: &[Role] = &[Role::Admin, Role::Officer, Role::Integration];

/// The team a consortium user may see or act for; `None` for everyone else (any team).
fn own_team(caller: &Caller) -> store::OnlyTeam {
    (caller.role() == Role::Consortium).then(|| {
        caller
            .0
            .consortium_id
            .map(|c| c.0)
            .unwrap_or_else(Uuid::nil)
    })
}

/// The team filter of a read: a consortium user's own team whatever it asked for.
fn scoped(caller: &Caller, asked: Option<Uuid>) -> Result<Option<Uuid>, BudgetError> {
    match own_team(caller) {
        Some(own) if asked.is_some_and(|a| a != own) => Err(AuthError::Forbidden {
            role: caller.role(),
            action: "read the data budget of another consortium".into(),
        }
        .into()),
        Some(own) => Ok(Some(own)),
        None => Ok(asked),
    }
}

fn finance(caller: &Caller, action: &str) -> Result<(), BudgetError> {
    caller.require(FINANCE, action)?;
    caller.require_scope(kaip_auth::scopes::WRITE_DATA_FINANCE, action)?;
    Ok(())
}

async fn get_programme(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read the data budget programme")?;
    let p = state
        .db(|c, _| store::report(c, |c| Ok(store::programme(c)?)))
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

async fn set_programme(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::SetProgramme>,
) -> Result<HttpResponse, BudgetError> {
    // Programme configuration belongs to ministry staff, as everywhere else (intake's
    // programmes and calls, the ledger's catalogue, talent's terms).
    caller.require(STAFF, "configure the data budget programme")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let p = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| store::set_programme(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetQuery {
    consortium_id: Option<Uuid>,
    fiscal_year: Option<i32>,
}

async fn list_budgets(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<BudgetQuery>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read data budgets")?;
    let team = scoped(&caller, query.consortium_id)?;
    let year = query.fiscal_year;
    let b = state
        .db(move |c, _| store::report(c, |c| store::budget_views(c, team, year)))
        .await?;
    Ok(HttpResponse::Ok().json(b))
}

async fn get_budget(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, i32)>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read data budgets")?;
    let (team, year) = path.into_inner();
    let team = scoped(&caller, Some(team))?.unwrap_or(team);
    let b = state
        .db(move |c, _| {
            store::report(c, |c| {
                store::budget_views(c, Some(team), Some(year))?
                    .into_iter()
                    .next()
                    .ok_or(BudgetError::BudgetNotFound(
                        "fiscal_year".into(),
                        team,
                        year,
                    ))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(b))
}

async fn adjust_cap(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, i32)>,
    body: ValidJson<dto::AdjustCap>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(STAFF, "adjust data budget caps")?;
    let (team, year) = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let b = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| {
                    spend::adjust_cap(c, tx, team, year, &req, &actor)
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(b))
}

async fn commit(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::MakeCommitment>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "commit data budget")?;
    let req = body.into_inner();
    caller.require_consortium(req.consortium_id, "commit data budget")?;
    let actor = caller.actor();
    let c = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| spend::make_commitment(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(c))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamQuery {
    consortium_id: Option<Uuid>,
    fiscal_year: Option<i32>,
}

async fn list_commitments(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<TeamQuery>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read data commitments")?;
    let team = scoped(&caller, query.consortium_id)?;
    let year = query.fiscal_year;
    let cs = state
        .db(move |c, _| {
            store::report(c, |c| {
                Ok(store::commitments(c, team, year, None, None)?
                    .iter()
                    .map(store::CommitmentRow::dto)
                    .collect::<Vec<_>>())
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(cs))
}

async fn get_commitment(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read data commitments")?;
    let id = path.into_inner();
    let only = own_team(&caller);
    let c = state
        .db(move |c, _| store::report(c, |c| spend::commitment_view(c, id, only)))
        .await?;
    Ok(HttpResponse::Ok().json(c))
}

async fn cancel(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::CancelCommitment>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "cancel data commitments")?;
    let id = path.into_inner();
    let req = body.into_inner();
    let only = own_team(&caller);
    let actor = caller.actor();
    let c = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| spend::cancel(c, tx, id, &req, &actor, only))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(c))
}

async fn joint_purchase(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::MakeJointPurchase>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(STAFF, "make joint data purchases")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let j = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| spend::make_joint_purchase(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(j))
}

async fn get_joint_purchase(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read joint data purchases")?;
    let id = path.into_inner();
    // A sharing team sees the dataset and its own share, never the others' (nor the total,
    // from which they would follow).
    if let Some(team) = own_team(&caller) {
        let j = state
            .db(move |c, _| store::report(c, |c| spend::own_joint_share(c, id, team)))
            .await?;
        return Ok(HttpResponse::Ok().json(j));
    }
    let j = state
        .db(move |c, _| store::report(c, |c| spend::joint_view(c, id)))
        .await?;
    Ok(HttpResponse::Ok().json(j))
}

async fn invoice(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::RecordInvoice>,
) -> Result<HttpResponse, BudgetError> {
    finance(&caller, "record data invoices")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let i = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| spend::record_invoice(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(i))
}

async fn get_invoice(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read data invoices")?;
    let id = path.into_inner();
    let i = state
        .db(move |c, _| store::report(c, |c| spend::invoice_view(c, id)))
        .await?;
    if own_team(&caller).is_some_and(|t| t != i.consortium_id.0) {
        return Err(BudgetError::not_found(
            "INVOICE_NOT_FOUND",
            format!("invoice {id} does not exist"),
        ));
    }
    Ok(HttpResponse::Ok().json(i))
}

/// 201 for a new payment, 200 for a repeat of one already confirmed.
async fn payment(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::ConfirmPayment>,
) -> Result<HttpResponse, BudgetError> {
    finance(&caller, "confirm data payments")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let (p, new) = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| spend::confirm_payment(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(if new {
        HttpResponse::Created().json(p)
    } else {
        HttpResponse::Ok().json(p)
    })
}

async fn register_dataset(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::RegisterDataset>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(STAFF, "register datasets")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let d = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| spend::register_dataset(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(d))
}

async fn list_datasets(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read the data catalogue")?;
    let d = state
        .db(|c, _| store::report(c, |c| Ok(spend::list_datasets(c)?)))
        .await?;
    Ok(HttpResponse::Ok().json(d))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenceQuery {
    consortium_id: Option<Uuid>,
}

async fn licences(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<LicenceQuery>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read data licences")?;
    let team = scoped(&caller, query.consortium_id)?;
    let l = state
        .db(move |c, _| store::report(c, |c| spend::licences(c, team)))
        .await?;
    Ok(HttpResponse::Ok().json(l))
}

async fn burn(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<TeamQuery>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(READERS, "read the data budget's monthly burn")?;
    let team = scoped(&caller, query.consortium_id)?;
    let year = query.fiscal_year;
    let b = state
        .db(move |c, _| store::report(c, |c| store::monthly_burn(c, team, year)))
        .await?;
    Ok(HttpResponse::Ok().json(b))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearQuery {
    fiscal_year: i32,
}

async fn total(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<YearQuery>,
) -> Result<HttpResponse, BudgetError> {
    caller.require(STAFF, "read the programme's data budget total")?;
    let year = query.fiscal_year;
    let t = state
        .db(move |c, _| store::report(c, |c| store::programme_total(c, year)))
        .await?;
    Ok(HttpResponse::Ok().json(t))
}
