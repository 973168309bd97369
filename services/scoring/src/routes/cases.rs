use crate::error::ScoringError;
use crate::schema::{assignments, calls, evaluation_cases};
use crate::store::CaseRow;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::EvaluationCase;
use kaip_contracts::Role;
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller};
use uuid::Uuid;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    call_id: Option<Uuid>,
    /// Only the cases of these proposals (comma-separated, at most `MAX_BATCH_IDS`): the
    /// gateway batches `Proposal.evaluationCase` through this.
    proposal_ids: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

/// Ministry staff list all cases; a consortium user its own; a reviewer those assigned.
pub async fn list_cases(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<CaseQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium, Role::Reviewer],
        "list evaluation cases",
    )?;
    let proposal_ids = query
        .proposal_ids
        .as_deref()
        .map(|raw| {
            kaip_service::pagination::parse_ids(
                "proposal_ids",
                raw,
                kaip_contracts::dto::intake::MAX_BATCH_IDS,
            )
        })
        .transpose()?;
    // A proposal has at most one case, so a batch fits one page whatever `limit` says.
    let limit = match &proposal_ids {
        Some(ids) => Some(ids.len() as i64),
        None => query.limit,
    };
    let page = PageRequest::parse(limit, query.after.as_deref())?;
    let only = (caller.role() == Role::Consortium)
        .then_some(caller.0.consortium_id)
        .flatten();
    let reviewer = (caller.role() == Role::Reviewer).then(|| caller.0.sub.clone());
    let consortium = caller.role() == Role::Consortium;
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
            if let Some(ids) = proposal_ids {
                q = q.filter(evaluation_cases::proposal_id.eq_any(ids));
            }
            if let Some(consortium) = only {
                q = q.filter(evaluation_cases::consortium_id.eq(consortium.0));
            }
            if let Some(reviewer) = reviewer {
                let mine = assignments::table
                    .filter(assignments::reviewer_id.eq(reviewer))
                    .filter(assignments::voided_at.is_null())
                    .select(assignments::case_id);
                q = q.filter(evaluation_cases::id.eq_any(mine));
            }
            let rows: Vec<CaseRow> = q.load(c)?;
            let mut items: Vec<EvaluationCase> = rows.iter().map(CaseRow::dto).collect();
            if consortium {
                items = as_consortium_sees(c, items)?;
            }
            Ok::<_, ScoringError>(page.finish(items, |e: &EvaluationCase| e.id.0))
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

pub async fn get_case(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    find_case(caller, state, Lookup::Case(path.into_inner())).await
}

pub async fn case_of_proposal(
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
        &[Role::Admin, Role::Officer, Role::Consortium, Role::Reviewer],
        "read evaluation cases",
    )?;
    let what = match lookup {
        Lookup::Case(id) => format!("case {id}"),
        Lookup::Proposal(id) => format!("proposal {id}"),
    };
    let missing = what.clone();
    let reviewer = caller.0.sub.clone();
    let (case, assigned) = state
        .db(move |c, _| {
            let q = evaluation_cases::table
                .select(CaseRow::as_select())
                .into_boxed();
            let q = match lookup {
                Lookup::Case(id) => q.filter(evaluation_cases::id.eq(id)),
                Lookup::Proposal(id) => q.filter(evaluation_cases::proposal_id.eq(id)),
            };
            let case = q
                .first(c)
                .optional()?
                .ok_or(ScoringError::CaseNotFound(missing))?;
            let assigned: i64 = assignments::table
                .filter(assignments::case_id.eq(case.id))
                .filter(assignments::reviewer_id.eq(reviewer))
                .filter(assignments::voided_at.is_null())
                .count()
                .get_result(c)?;
            Ok::<_, ScoringError>((case, assigned > 0))
        })
        .await?;
    // A case the caller may not see is reported as absent: its existence is not theirs to
    // learn. Reviewers see only what they were assigned (never a conflicted proposal).
    let visible = match caller.role() {
        Role::Reviewer => assigned,
        _ => caller.0.may_access_consortium(case.consortium_id.into()),
    };
    if !visible {
        return Err(ScoringError::CaseNotFound(what));
    }
    let mut dto = case.dto();
    if caller.role() == Role::Consortium {
        dto = state
            .db(move |c, _| as_consortium_sees(c, vec![dto]))
            .await?
            .remove(0);
    }
    Ok(HttpResponse::Ok().json(dto))
}

/// What a case looks like to a consortium before its call's decision is published: results
/// reach consortia at publication, together, so until then every case still in the
/// competition reads `under_review` at stage 0, whichever stages have closed (staff see
/// everything). `withdrawn` is the consortium's own act and stays.
pub const NEUTRAL_STATUS: &str = "under_review";

fn as_consortium_sees(
    c: &mut PgConnection,
    mut cases: Vec<EvaluationCase>,
) -> Result<Vec<EvaluationCase>, ScoringError> {
    let ids: Vec<Uuid> = cases.iter().map(|k| k.call_id.0).collect();
    let published: Vec<Uuid> = calls::table
        .filter(calls::id.eq_any(&ids))
        .filter(calls::published_at.is_not_null())
        .select(calls::id)
        .load(c)?;
    for k in &mut cases {
        if !published.contains(&k.call_id.0) && k.status != "withdrawn" {
            k.status = NEUTRAL_STATUS.to_owned();
            k.stage = 0;
        }
    }
    Ok(cases)
}
