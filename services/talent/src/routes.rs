//! The talent service's HTTP API (called by the gateway; the caller's token is checked
//! again here). Teams (consortium users) act for their own team only; officers and admins
//! run rounds and see everything; an integration with `write:researchers` (a recruiting
//! agency) registers researchers.

use crate::domain::funds::FundTerms;
use crate::domain::matching::FitWeights;
use crate::error::TalentError;
use crate::store::{self, HireRequest};
use actix_web::{web, HttpResponse};
use kaip_contracts::dto::talent as dto;
use kaip_contracts::text::{field, CheckText, Lines, TextViolation};
use kaip_contracts::{ConsortiumId, Role};
use kaip_service::retry::retrying;
use kaip_service::{AppState, Caller, ValidJson};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/terms", web::get().to(get_terms))
        .route("/terms", web::put().to(set_terms))
        .route("/teams", web::get().to(teams))
        .route("/teams/{id}/terms", web::put().to(set_team_terms))
        .route("/teams/{id}/report/{year}", web::get().to(report))
        .route("/positions", web::post().to(open_position))
        .route("/positions", web::get().to(positions))
        .route("/positions/{id}", web::get().to(position))
        .route("/researchers", web::post().to(register))
        .route("/researchers", web::get().to(researchers))
        .route("/researchers/{id}", web::get().to(researcher))
        .route("/researchers/{id}/erase", web::post().to(erase))
        .route("/rounds", web::post().to(run_round))
        .route("/rounds/{id}", web::get().to(round))
        .route("/matches", web::get().to(matches))
        .route("/matches/{id}/accept", web::post().to(accept))
        .route("/matches/{id}/decline", web::post().to(decline))
        .route("/hires", web::post().to(create_hire))
        .route("/hires", web::get().to(hires))
        .route("/hires/{id}", web::get().to(hire))
        .route("/hires/{id}/end", web::post().to(end_hire))
        .route("/claims", web::post().to(claim))
        .route("/claims", web::get().to(claims));
}

const STAFF: &[Role] = &[Role::Admin, Role::Officer];
const TEAMS: &[Role] = &[Role::Admin, Role::Officer, Role::Consortium];

/// The team a consortium user acts for; `None` for staff (any team).
fn own_team(caller: &Caller) -> Option<Uuid> {
    (caller.role() == Role::Consortium).then(|| {
        caller
            .0
            .consortium_id
            .map(|c| c.0)
            .unwrap_or_else(Uuid::nil)
    })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    pub fund_terms: FundTerms,
    pub fit_weights: FitWeights,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTerms {
    pub fund_terms: FundTerms,
    pub fit_weights: FitWeights,
    pub reason: String,
}

impl CheckText for SetTerms {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

async fn get_terms(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read the talent programme's terms")?;
    let (fund_terms, fit_weights) = state.db(|c, _| store::terms(c)).await?;
    Ok(HttpResponse::Ok().json(Terms {
        fund_terms,
        fit_weights,
    }))
}

/// A new version of the programme's terms (the earlier ones are kept).
async fn set_terms(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<SetTerms>,
) -> Result<HttpResponse, TalentError> {
    caller.require(STAFF, "set the talent programme's terms")?;
    let req = body.into_inner();
    req.fund_terms.check()?;
    let w = req.fit_weights;
    for (name, v) in [
        ("fit_weights.per_skill", w.per_skill),
        ("fit_weights.same_field", w.same_field),
        ("fit_weights.seniority_exact", w.seniority_exact),
        ("fit_weights.seniority_step", w.seniority_step),
    ] {
        if !(0..=1_000_000).contains(&v) {
            return Err(TalentError::validation(
                name,
                "a whole number of points from 0 to 1000000",
            ));
        }
    }
    if req.reason.trim().is_empty() {
        return Err(TalentError::validation("reason", "must not be empty"));
    }
    let actor = caller.actor();
    state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, _| {
                    use crate::schema::talent_terms as t;
                    use diesel::prelude::*;
                    let last: Option<i32> =
                        t::table.select(diesel::dsl::max(t::version)).first(c)?;
                    diesel::insert_into(t::table)
                        .values((
                            t::version.eq(last.unwrap_or(0) + 1),
                            t::fund_terms.eq(serde_json::to_value(&req.fund_terms)
                                .map_err(kaip_service::CommonError::internal)?),
                            t::fit_weights.eq(serde_json::to_value(req.fit_weights)
                                .map_err(kaip_service::CommonError::internal)?),
                            t::set_by.eq(&actor.subject),
                            t::set_role.eq(actor.role.as_str()),
                            t::set_at.eq(chrono::Utc::now()),
                            t::reason.eq(req.reason.trim()),
                        ))
                        .execute(c)?;
                    Ok::<_, TalentError>(())
                })
            })
        })
        .await?;
    get_terms(caller, state).await
}

async fn teams(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read selected teams")?;
    let only = own_team(&caller);
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::teams(c, only)).await?))
}

async fn set_team_terms(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::SetTeamTerms>,
) -> Result<HttpResponse, TalentError> {
    caller.require(STAFF, "record a team's company size and openness")?;
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let team = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::set_team_terms(c, id, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(team))
}

async fn report(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, i32)>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read a team's talent report")?;
    let (team, year) = path.into_inner();
    caller.require_consortium(ConsortiumId(team), "read the talent report")?;
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::report(c, team, year)).await?))
}

async fn open_position(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::OpenPosition>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "open positions")?;
    let req = body.into_inner();
    caller.require_consortium(req.consortium_id, "open positions")?;
    let actor = caller.actor();
    let p = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, tx| store::open_position(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamQuery {
    consortium_id: Option<Uuid>,
}

async fn positions(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<TeamQuery>,
) -> Result<HttpResponse, TalentError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Consortium,
            Role::Integration,
        ],
        "read positions",
    )?;
    if caller.role() == Role::Integration {
        caller.require_scope(kaip_auth::scopes::WRITE_RESEARCHERS, "read positions")?;
    }
    let viewer = viewer(&caller);
    let team = q.into_inner().consortium_id;
    Ok(HttpResponse::Ok().json(
        state
            .db(move |c, _| store::positions(c, team, viewer))
            .await?,
    ))
}

/// Whose salary bands a caller sees: staff all (`None`), a team its own, others none.
fn viewer(caller: &Caller) -> Option<Uuid> {
    match caller.role() {
        Role::Admin | Role::Officer => None,
        Role::Consortium => own_team(caller),
        _ => Some(Uuid::nil()),
    }
}

async fn position(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, TalentError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Consortium,
            Role::Integration,
        ],
        "read positions",
    )?;
    if caller.role() == Role::Integration {
        caller.require_scope(kaip_auth::scopes::WRITE_RESEARCHERS, "read positions")?;
    }
    let viewer = viewer(&caller);
    let id = path.into_inner();
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::position(c, id, viewer)).await?))
}

async fn register(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::RegisterResearcher>,
) -> Result<HttpResponse, TalentError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Consortium,
            Role::Integration,
        ],
        "register researchers",
    )?;
    caller.require_scope(kaip_auth::scopes::WRITE_RESEARCHERS, "register researchers")?;
    // The profile describes one person: the trail records ids, not profiles.
    kaip_service::audit::personal_fields(&["skills", "field", "seniority", "available_from"]);
    let req = body.into_inner();
    let actor = caller.actor();
    let team = own_team(&caller);
    let r = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::register_researcher(c, &req, &actor, team))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(r))
}

async fn researchers(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read researchers")?;
    let team = own_team(&caller);
    let list = state
        .db(move |c, _| {
            store::researcher_ids(c, team)?
                .into_iter()
                .map(|id| store::researcher(c, id, team))
                .collect::<Result<Vec<_>, TalentError>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn researcher(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read researchers")?;
    let id = path.into_inner();
    let team = own_team(&caller);
    let r = state
        .db(move |c, _| {
            // Another team's researcher is reported as not found, like a missing one.
            if let Some(t) = team {
                if !store::visible_to_team(c, id, t)? {
                    return Err(TalentError::ResearcherNotFound(id));
                }
            }
            store::researcher(c, id, team)
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

async fn erase(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::EraseResearcher>,
) -> Result<HttpResponse, TalentError> {
    caller.require(STAFF, "erase researchers' profiles")?;
    // Why a person asked to be erased is about that person.
    kaip_service::audit::personal_fields(&["reason"]);
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let r = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, tx| {
                    store::erase_researcher(c, tx, id, &req.reason, &actor)
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

async fn run_round(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::RunRound>,
) -> Result<HttpResponse, TalentError> {
    caller.require(STAFF, "run matching rounds")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let r = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, tx| store::run_round(c, tx, &req.note, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(r))
}

async fn round(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read matching rounds")?;
    let id = path.into_inner();
    let team = own_team(&caller);
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::round(c, id, team)).await?))
}

async fn matches(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read proposed matches")?;
    let team = own_team(&caller);
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::matches(c, team)).await?))
}

async fn accept(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::AcceptMatch>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "accept proposed matches")?;
    let id = path.into_inner();
    let req = body.into_inner();
    store::check_hire_fields(req.start_date, req.end_date, &req.personal)?;
    let actor = caller.actor();
    let team = own_team(&caller);
    let h = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| {
                    store::accept_match(c, tx, id, &req, &actor, team)
                })
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(h))
}

async fn decline(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::DeclineMatch>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "decline proposed matches")?;
    // Why a team declined a person is about that person.
    kaip_service::audit::personal_fields(&["reason"]);
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let team = own_team(&caller);
    let m = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| {
                    store::decline_match(c, tx, id, &req.reason, &actor, team)
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

async fn create_hire(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::CreateHire>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "hire researchers")?;
    let req = body.into_inner();
    store::check_hire_fields(req.start_date, req.end_date, &req.personal)?;
    let actor = caller.actor();
    let team = own_team(&caller);
    let h = state
        .db(move |c, outbox| {
            let hr = HireRequest {
                researcher_id: req.researcher_id,
                position_id: req.position_id,
                start_date: req.start_date,
                end_date: req.end_date,
                pay: req.personal,
                match_id: None,
            };
            retrying(true, || {
                outbox.transaction(c, |c, tx| store::create_hire(c, tx, &hr, &actor, team))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(h))
}

async fn hires(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read hires")?;
    let team = own_team(&caller);
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::hires(c, team)).await?))
}

async fn hire(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read hires")?;
    let id = path.into_inner();
    let team = own_team(&caller);
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::hire(c, id, team)).await?))
}

/// Ends a hire before its end date: the team (its own hires) or an officer.
async fn end_hire(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::EndHire>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "end hires")?;
    // Why a hire ended may be about the person (a resignation, health).
    kaip_service::audit::personal_fields(&["reason"]);
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let team = own_team(&caller);
    let h = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| store::end_hire(c, tx, id, &req, &actor, team))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(h))
}

async fn claim(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::ClaimMonth>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "claim matching funds")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let team = own_team(&caller);
    let cl = state
        .db(move |c, outbox| {
            retrying(true, || {
                outbox.transaction(c, |c, tx| store::claim(c, tx, &req, &actor, team))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(cl))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimQuery {
    hire_id: Option<Uuid>,
    consortium_id: Option<Uuid>,
}

async fn claims(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<ClaimQuery>,
) -> Result<HttpResponse, TalentError> {
    caller.require(TEAMS, "read claims")?;
    let q = q.into_inner();
    let team = own_team(&caller).or(q.consortium_id);
    Ok(HttpResponse::Ok().json(
        state
            .db(move |c, _| store::claims(c, team, q.hire_id))
            .await?,
    ))
}
