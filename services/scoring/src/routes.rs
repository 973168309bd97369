//! Scoring's HTTP API.

use crate::error::ScoringError;
use crate::schema::evaluation_cases;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::EvaluationCase;
use kaip_contracts::Role;
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller};
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/cases", web::get().to(list_cases))
        .route("/cases/{id}", web::get().to(get_case))
        .route(
            "/proposals/{proposal_id}/case",
            web::get().to(case_of_proposal),
        );
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = evaluation_cases)]
struct CaseRow {
    id: Uuid,
    proposal_id: Uuid,
    call_id: Uuid,
    consortium_id: Uuid,
    status: String,
    opened_at: DateTime<Utc>,
}

impl From<CaseRow> for EvaluationCase {
    fn from(r: CaseRow) -> Self {
        EvaluationCase {
            id: r.id.into(),
            proposal_id: r.proposal_id.into(),
            call_id: r.call_id.into(),
            consortium_id: r.consortium_id.into(),
            status: r.status,
            opened_at: r.opened_at,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseQuery {
    call_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

/// Ministry staff list all cases; a consortium user lists its own.
async fn list_cases(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<CaseQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "list evaluation cases",
    )?;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let only = (caller.role() == Role::Consortium)
        .then_some(caller.0.consortium_id)
        .flatten();
    let call_id = query.call_id;
    let result = state
        .db(move |c, _| {
            let mut q = evaluation_cases::table
                .select(CaseRow::as_select())
                .order(evaluation_cases::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(evaluation_cases::id.gt(after));
            }
            if let Some(call) = call_id {
                q = q.filter(evaluation_cases::call_id.eq(call));
            }
            if let Some(consortium) = only {
                q = q.filter(evaluation_cases::consortium_id.eq(consortium.0));
            }
            let rows = q.load(c)?;
            Ok::<_, ScoringError>(page.finish(
                rows.into_iter().map(EvaluationCase::from).collect(),
                |e: &EvaluationCase| e.id.0,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// How a case is looked up.
#[derive(Clone, Copy, Debug)]
enum Lookup {
    Case(Uuid),
    Proposal(Uuid),
}

async fn get_case(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    find_case(caller, state, Lookup::Case(path.into_inner())).await
}

async fn case_of_proposal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    find_case(caller, state, Lookup::Proposal(path.into_inner())).await
}

async fn find_case(
    caller: Caller,
    state: web::Data<AppState>,
    lookup: Lookup,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read evaluation cases",
    )?;
    let what = match lookup {
        Lookup::Case(id) => format!("case {id}"),
        Lookup::Proposal(id) => format!("proposal {id}"),
    };
    let missing = what.clone();
    let case = state
        .db(move |c, _| {
            let q = evaluation_cases::table
                .select(CaseRow::as_select())
                .into_boxed();
            let q = match lookup {
                Lookup::Case(id) => q.filter(evaluation_cases::id.eq(id)),
                Lookup::Proposal(id) => q.filter(evaluation_cases::proposal_id.eq(id)),
            };
            q.first(c)
                .optional()?
                .map(EvaluationCase::from)
                .ok_or(ScoringError::CaseNotFound(missing))
        })
        .await?;
    // Another consortium's case is reported as absent: its existence is not theirs to learn.
    if !caller.0.may_access_consortium(case.consortium_id) {
        return Err(ScoringError::CaseNotFound(what));
    }
    Ok(HttpResponse::Ok().json(case))
}
