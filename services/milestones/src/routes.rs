//! The milestones service's HTTP API (called by the gateway; the caller's token is checked
//! again here). Officers and admins plan, review and run the gates; a consortium user
//! submits evidence for its own team's plan, reads its own plan, and sees its own gate
//! result once the gate is published (nothing of other teams, nothing before).

use crate::error::MilestonesError as E;
use crate::store;
use actix_web::{web, HttpResponse};
use kaip_contracts::dto::milestones as dto;
use kaip_contracts::{ConsortiumId, Role};
use kaip_service::retry::retrying;
use kaip_service::{AppState, Caller, ValidJson};
use serde::Deserialize;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/teams", web::get().to(teams))
        .route("/deliverables", web::post().to(create_deliverable))
        .route("/deliverables", web::get().to(deliverables))
        .route("/plans", web::post().to(create_plan))
        .route("/deliverables/{id}", web::get().to(deliverable))
        .route(
            "/deliverables/{id}/evidence",
            web::post().to(submit_evidence),
        )
        .route(
            "/deliverables/{id}/verdicts",
            web::post().to(record_verdict),
        )
        .route("/gate-templates/first", web::get().to(first_gate_template))
        .route("/gates", web::post().to(create_gate))
        .route("/gates", web::get().to(gates))
        .route("/gates/{key}", web::get().to(gate))
        .route("/gates/{key}/inputs", web::post().to(add_input))
        .route("/gates/{key}/inputs", web::get().to(inputs))
        .route(
            "/gates/{key}/eligibility",
            web::post().to(record_eligibility),
        )
        .route("/gates/{key}/eligibility", web::get().to(eligibility))
        .route("/gates/{key}/proposals", web::post().to(propose))
        .route("/gates/{key}/proposals", web::get().to(proposals))
        .route("/gates/{key}/publish", web::post().to(publish))
        .route("/gates/{key}/decision", web::get().to(decision))
        .route("/gates/{key}/results/{team}", web::get().to(team_result))
        .route("/proposals/{id}", web::get().to(proposal))
        .route("/proposals/{id}/votes", web::post().to(vote))
        .route("/admin/announce", web::post().to(announce));
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

async fn teams(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, E> {
    caller.require(TEAMS, "read selected teams")?;
    let only = own_team(&caller);
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::teams(c, only)).await?))
}

async fn create_deliverable(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::NewDeliverable>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "set a team's plan")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let d = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::create_deliverable(c, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(d))
}

/// Several deliverables of one plan in one transaction: a bad item (its error names
/// `deliverables[i]`) writes none of them.
async fn create_plan(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::NewPlan>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "set a team's plan")?;
    let req = body.into_inner();
    if req.deliverables.is_empty() || req.deliverables.len() > 100 {
        return Err(E::validation("deliverables", "from 1 to 100 deliverables"));
    }
    let items = req.items();
    let actor = caller.actor();
    let ds = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, d)| {
                            store::create_deliverable(c, d, &actor).map_err(|e| match e {
                                E::Common(kaip_service::CommonError::Validation {
                                    field,
                                    rule,
                                }) if field != "phase" => {
                                    E::validation(format!("deliverables[{i}].{field}"), rule)
                                }
                                e => e,
                            })
                        })
                        .collect::<Result<Vec<_>, E>>()
                })
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(ds))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanQuery {
    consortium_id: Option<Uuid>,
    phase: Option<i32>,
    /// Only the deliverables flagged overdue on their current due date.
    #[serde(default)]
    overdue_only: bool,
    /// At most this many (1 to 1000; 1000 without it), by id.
    limit: Option<i64>,
    /// Those after this id (the last one of the previous page).
    after: Option<Uuid>,
}

async fn deliverables(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<PlanQuery>,
) -> Result<HttpResponse, E> {
    caller.require(TEAMS, "read plans")?;
    let q = q.into_inner();
    if let Some(t) = q.consortium_id {
        caller.require_consortium(ConsortiumId(t), "read the plan")?;
    }
    let team = own_team(&caller).or(q.consortium_id);
    let limit = q.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(E::validation("limit", "from 1 to 1000"));
    }
    let filter = store::PlanFilter {
        team,
        phase: q.phase,
        overdue_only: q.overdue_only,
        after: q.after,
        limit,
    };
    Ok(HttpResponse::Ok().json(
        state
            .db(move |c, _| store::deliverables(c, &filter))
            .await?,
    ))
}

async fn deliverable(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, E> {
    caller.require(TEAMS, "read plans")?;
    let id = path.into_inner();
    let team = own_team(&caller);
    let d = state
        .db(move |c, _| {
            let d = store::deliverable(c, id)?;
            // Another team's deliverable is reported as not found, like a missing one.
            if team.is_some_and(|t| t != d.consortium_id.0) {
                return Err(E::DeliverableNotFound(id));
            }
            Ok(d)
        })
        .await?;
    Ok(HttpResponse::Ok().json(d))
}

async fn submit_evidence(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::SubmitEvidence>,
) -> Result<HttpResponse, E> {
    caller.require(&[Role::Consortium], "submit evidence")?;
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let team = own_team(&caller);
    let e = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::submit_evidence(c, id, team, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(e))
}

async fn record_verdict(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::RecordVerdict>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "review deliverables")?;
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let d = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::record_verdict(c, id, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(d))
}

async fn first_gate_template(caller: Caller) -> Result<HttpResponse, E> {
    caller.require(STAFF, "read gate templates")?;
    Ok(HttpResponse::Ok().json(crate::domain::gate::first_gate()))
}

/// Republishes `GateDefined` for every gate and `TeamEliminated` for every published
/// decision's eliminated teams ([`store::announce`]): how a consumer deployed after them, or
/// one that lost them to the topic's retention, catches up. Admin only; safe to repeat.
async fn announce(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, E> {
    caller.require(&[Role::Admin], "announce gates and eliminations")?;
    let actor = caller.actor();
    let n = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, tx| store::announce(c, tx, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(n))
}

async fn create_gate(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<dto::NewGate>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "define gates")?;
    let req = body.into_inner();
    let actor = caller.actor();
    let g = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, tx| {
                    let g = store::create_gate(c, &req, &actor)?;
                    // Scoring learns the key, so a panel names only a gate that exists.
                    tx.publish(c, actor.clone(), &store::gate_defined(&g))?;
                    Ok(g)
                })
            })
        })
        .await
        .map_err(|e| match e {
            // Two officers defining one key at once: the unique key decides.
            e if kaip_service::retry::is_unique_violation(&e) => {
                E::GateExists("(the same key)".into())
            }
            e => e,
        })?;
    Ok(HttpResponse::Created().json(g))
}

/// Gate definitions are programme rules, not team data: every team may read them.
/// A gate as `caller` may read it: the committee (officers' subjects) and who defined it
/// are staff's; a consortium user gets them empty.
fn gate_for(caller: &Caller, mut g: dto::Gate) -> dto::Gate {
    if !STAFF.contains(&caller.role()) {
        g.committee.clear();
        g.created_by.clear();
    }
    g
}

async fn gates(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, E> {
    caller.require(TEAMS, "read gates")?;
    let gs = state.db(move |c, _| store::gates(c)).await?;
    let gs: Vec<dto::Gate> = gs.into_iter().map(|g| gate_for(&caller, g)).collect();
    Ok(HttpResponse::Ok().json(gs))
}

async fn gate(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, E> {
    caller.require(TEAMS, "read gates")?;
    let key = path.into_inner();
    let g = state
        .db(move |c, _| Ok::<_, E>(store::gate_by_key(c, &key)?.dto))
        .await?;
    Ok(HttpResponse::Ok().json(gate_for(&caller, g)))
}

async fn add_input(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ValidJson<dto::GateInput>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "record gate inputs")?;
    let key = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let i = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::add_input(c, &key, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(i))
}

async fn record_eligibility(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ValidJson<dto::EligibilityVerdict>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "record eligibility verdicts")?;
    let key = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let id = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::record_eligibility(c, &key, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id })))
}

/// Inputs and eligibility verdicts are the committee's working papers: staff only.
async fn inputs(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "read gate inputs")?;
    let key = path.into_inner();
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::inputs(c, &key)).await?))
}

async fn eligibility(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "read eligibility verdicts")?;
    let key = path.into_inner();
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::eligibility(c, &key)).await?))
}

async fn propose(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "propose a gate's outcome")?;
    let key = path.into_inner();
    let actor = caller.actor();
    let p = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::propose(c, &key, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(p))
}

async fn proposals(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "read a gate's proposals")?;
    let key = path.into_inner();
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::proposals(c, &key)).await?))
}

async fn proposal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "read a gate's proposals")?;
    let id = path.into_inner();
    Ok(HttpResponse::Ok().json(state.db(move |c, _| store::proposal(c, id)).await?))
}

async fn vote(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<dto::CastVote>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "vote on a gate's proposal")?;
    let id = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let p = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, _| store::vote(c, id, &req, &actor))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(p))
}

async fn publish(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ValidJson<dto::PublishGate>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "publish a gate's decision")?;
    let key = path.into_inner();
    let req = body.into_inner();
    let actor = caller.actor();
    let (d, published) = state
        .db(move |c, outbox| {
            retrying(false, || {
                outbox.transaction(c, |c, tx| store::publish(c, tx, &key, &req, &actor))
            })
        })
        .await?;
    // A retry of the publishing request: the decision, 200 instead of 201.
    Ok(if published {
        HttpResponse::Created().json(d)
    } else {
        HttpResponse::Ok().json(d)
    })
}

async fn decision(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, E> {
    caller.require(STAFF, "read a gate's decision")?;
    let key = path.into_inner();
    let d = state.db(move |c, _| store::decision(c, &key)).await?;
    Ok(HttpResponse::Ok().json(d))
}

/// A team's own result at a gate: only after publication (before it, and for another
/// team, `GATE_NOT_FOUND`-like silence: 404 with RESULT_NOT_PUBLISHED).
async fn team_result(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, E> {
    caller.require(TEAMS, "read gate results")?;
    let (key, team) = path.into_inner();
    caller.require_consortium(ConsortiumId(team), "read the gate result")?;
    let k = key.clone();
    let team_view = !STAFF.contains(&caller.role());
    let r = state
        .db(move |c, _| store::team_result(c, &k, team, team_view))
        .await?;
    match r {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(E::ResultNotPublished(key, team)),
    }
}
