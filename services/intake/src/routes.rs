//! Intake's HTTP API (called by the gateway, with the caller's token).

use crate::domain::{self, Window};
use crate::error::IntakeError;
use crate::schema::{calls, proposals};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use kaip_contracts::dto::intake::{Call, OpenCall, Proposal, SubmitProposal};
use kaip_contracts::dto::PageQuery;
use kaip_contracts::events::{CallOpened, ProposalSubmitted};
use kaip_contracts::{CallId, ConsortiumId, ProposalId, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/calls", web::post().to(open_call))
        .route("/calls", web::get().to(list_calls))
        .route("/calls/{id}", web::get().to(get_call))
        .route("/proposals", web::post().to(submit_proposal))
        .route("/proposals", web::get().to(list_proposals))
        .route("/proposals/{id}", web::get().to(get_proposal));
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = calls)]
struct CallRow {
    id: Uuid,
    title: String,
    opens_at: DateTime<Utc>,
    closes_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl From<CallRow> for Call {
    fn from(r: CallRow) -> Self {
        Call {
            id: r.id.into(),
            title: r.title,
            opens_at: r.opens_at,
            closes_at: r.closes_at,
            created_at: r.created_at,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = proposals)]
struct ProposalRow {
    id: Uuid,
    call_id: Uuid,
    consortium_id: Uuid,
    title: String,
    summary: String,
    submitted_at: DateTime<Utc>,
}

impl From<ProposalRow> for Proposal {
    fn from(r: ProposalRow) -> Self {
        Proposal {
            id: r.id.into(),
            call_id: r.call_id.into(),
            consortium_id: r.consortium_id.into(),
            title: r.title,
            summary: r.summary,
            submitted_at: r.submitted_at,
        }
    }
}

const STAFF: &[Role] = &[Role::Admin, Role::Officer];

async fn open_call(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<OpenCall>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(STAFF, "open a call")?;
    let req = body.into_inner();
    domain::validate_open_call(&req, Utc::now())?;
    let actor = caller.actor();
    let call = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let id = CallId::new();
                let row: CallRow = diesel::insert_into(calls::table)
                    .values((
                        calls::id.eq(id.0),
                        calls::title.eq(req.title.trim()),
                        calls::opens_at.eq(req.opens_at),
                        calls::closes_at.eq(req.closes_at),
                        calls::created_by.eq(&actor.subject),
                    ))
                    .returning(CallRow::as_returning())
                    .get_result(c)?;
                let event = CallOpened {
                    call_id: id,
                    title: row.title.clone(),
                    opens_at: row.opens_at,
                    closes_at: row.closes_at,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok::<_, IntakeError>(Call::from(row))
            })
        })
        .await?;
    tracing::info!(call_id = %call.id, "call opened");
    Ok(HttpResponse::Created().json(call))
}

async fn list_calls(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, IntakeError> {
    // Calls are public to every authenticated role.
    let _ = caller;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let result = state
        .db(move |c, _| {
            let mut q = calls::table
                .select(CallRow::as_select())
                .order(calls::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(calls::id.gt(after));
            }
            let rows = q.load(c)?;
            Ok::<_, IntakeError>(
                page.finish(rows.into_iter().map(Call::from).collect(), |r: &Call| {
                    r.id.0
                }),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

async fn get_call(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = CallId(path.into_inner());
    let call = state
        .db(move |c, _| {
            calls::table
                .find(id.0)
                .select(CallRow::as_select())
                .first(c)
                .optional()?
                .map(Call::from)
                .ok_or(IntakeError::CallNotFound(id))
        })
        .await?;
    Ok(HttpResponse::Ok().json(call))
}

async fn submit_proposal(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<SubmitProposal>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(&[Role::Consortium], "submit a proposal")?;
    let consortium: ConsortiumId = caller.0.consortium_id.ok_or_else(|| {
        IntakeError::from(kaip_auth::AuthError::InvalidClaims(
            "consortium_id is required".into(),
        ))
    })?;
    let req = body.into_inner();
    domain::validate_submission(&req)?;
    let actor = caller.actor();
    let proposal = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                // Lock the call row so a deadline change cannot race the window check.
                let call: Option<CallRow> = calls::table
                    .find(req.call_id.0)
                    .select(CallRow::as_select())
                    .for_share()
                    .first(c)
                    .optional()?;
                let call = call.ok_or(IntakeError::CallNotFound(req.call_id))?;
                match domain::window(call.opens_at, call.closes_at, Utc::now()) {
                    Window::NotYetOpen => return Err(IntakeError::CallNotOpen(req.call_id)),
                    Window::Closed => return Err(IntakeError::CallClosed(req.call_id)),
                    Window::Open => {}
                }
                let id = ProposalId::new();
                let row: ProposalRow = diesel::insert_into(proposals::table)
                    .values((
                        proposals::id.eq(id.0),
                        proposals::call_id.eq(req.call_id.0),
                        proposals::consortium_id.eq(consortium.0),
                        proposals::title.eq(req.title.trim()),
                        proposals::summary.eq(&req.summary),
                        proposals::submitted_by.eq(&actor.subject),
                    ))
                    .returning(ProposalRow::as_returning())
                    .get_result(c)
                    .map_err(|e| match e {
                        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                            IntakeError::AlreadySubmitted(req.call_id)
                        }
                        other => other.into(),
                    })?;
                let event = ProposalSubmitted {
                    proposal_id: id,
                    call_id: req.call_id,
                    consortium_id: consortium,
                    title: row.title.clone(),
                    submitted_at: row.submitted_at,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok(Proposal::from(row))
            })
        })
        .await?;
    tracing::info!(proposal_id = %proposal.id, consortium_id = %consortium, "proposal submitted");
    Ok(HttpResponse::Created().json(proposal))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalQuery {
    call_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

async fn list_proposals(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ProposalQuery>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Consortium,
            Role::Integration,
        ],
        "list proposals",
    )?;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    // A consortium user sees only its own consortium's proposals.
    let only = (caller.role() == Role::Consortium)
        .then_some(caller.0.consortium_id)
        .flatten();
    let call_id = query.call_id;
    let result = state
        .db(move |c, _| {
            let mut q = proposals::table
                .select(ProposalRow::as_select())
                .order(proposals::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(proposals::id.gt(after));
            }
            if let Some(call) = call_id {
                q = q.filter(proposals::call_id.eq(call));
            }
            if let Some(consortium) = only {
                q = q.filter(proposals::consortium_id.eq(consortium.0));
            }
            let rows = q.load(c)?;
            Ok::<_, IntakeError>(page.finish(
                rows.into_iter().map(Proposal::from).collect(),
                |p: &Proposal| p.id.0,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

async fn get_proposal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = ProposalId(path.into_inner());
    let proposal = state
        .db(move |c, _| {
            proposals::table
                .find(id.0)
                .select(ProposalRow::as_select())
                .first(c)
                .optional()?
                .map(Proposal::from)
                .ok_or(IntakeError::ProposalNotFound(id))
        })
        .await?;
    // Another consortium's proposal is reported as absent, not forbidden: its existence is
    // not theirs to learn.
    if !caller.0.may_access_consortium(proposal.consortium_id) {
        return Err(IntakeError::ProposalNotFound(id));
    }
    Ok(HttpResponse::Ok().json(proposal))
}
