use super::STAFF;
use crate::error::LedgerError;
use crate::grants;
use actix_web::{web, HttpResponse};
use kaip_contracts::dto::gpu::{AcceptOffer, MakeOffer};
use kaip_contracts::Role;
use kaip_service::{AppState, Caller, ValidJson};
use uuid::Uuid;

/// The team a consortium user may act for; `None` for staff (any team).
fn own_team(caller: &Caller) -> Option<Uuid> {
    (caller.role() == Role::Consortium).then(|| {
        caller
            .0
            .consortium_id
            .map(|c| c.0)
            .unwrap_or_else(Uuid::nil)
    })
}

/// Teams selected by published calls (what they asked for): staff see all, a consortium
/// user its own.
pub async fn teams(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read selected teams",
    )?;
    let only = own_team(&caller);
    let teams = state.db(move |c, _| grants::teams(c, only)).await?;
    Ok(HttpResponse::Ok().json(teams))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwardsQuery {
    /// Only the awards still owed (no offer made since the refusal).
    #[serde(default)]
    owed: bool,
}

/// Replacement awards the ledger could not offer when the selection arrived, with the
/// refusal's code: what staff still owe a winner (an officer offers it by hand).
pub async fn awards(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<AwardsQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "read owed replacement awards")?;
    let owed = query.owed;
    let list = state
        .db(move |c, _| grants::award_refusals(c, owed))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

pub async fn make(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<MakeOffer>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "make GPU offers")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let offer = state
        .db(move |c, outbox| {
            crate::store::retrying(true, || {
                outbox.transaction(c, |c, tx| grants::make_offer(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(offer))
}

pub async fn accept(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<AcceptOffer>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "accept GPU offers",
    )?;
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let only = own_team(&caller);
    let offer = state
        .db(move |c, outbox| {
            crate::store::retrying(true, || {
                outbox.transaction(c, |c, tx| {
                    grants::accept_offer(c, tx, id, req.option, &req.reason, &actor, only)
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(offer))
}

pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read GPU offers",
    )?;
    let id = path.into_inner();
    let offer = state.db(move |c, _| grants::offer_view(c, id)).await?;
    if own_team(&caller).is_some_and(|t| t != offer.consortium_id.0) {
        return Err(LedgerError::OfferNotFound(id));
    }
    Ok(HttpResponse::Ok().json(offer))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferQuery {
    consortium_id: Option<Uuid>,
}

/// The latest 100 offers, newest first: a consortium user's own only.
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<OfferQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read GPU offers",
    )?;
    let team = own_team(&caller).or(query.consortium_id);
    let offers = state
        .db(move |c, _| {
            grants::offer_ids(c, team)?
                .into_iter()
                .map(|id| grants::offer_view(c, id))
                .collect::<Result<Vec<_>, LedgerError>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(offers))
}
