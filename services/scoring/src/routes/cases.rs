use crate::error::ScoringError;
use crate::schema::{assignments, calls, conflicts, evaluation_cases};
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
                    .filter(assignments::reviewer_id.eq(reviewer.clone()))
                    .filter(assignments::voided_at.is_null())
                    .filter(assignments::conflict_noted_at.is_null())
                    .select(assignments::case_id);
                // A conflict with the consortium hides its cases whatever assignment
                // remains (one in a closed stage is kept, not voided).
                let conflicted = conflicts::table
                    .filter(conflicts::reviewer_id.eq(reviewer))
                    .select(conflicts::consortium_id);
                q = q
                    .filter(evaluation_cases::id.eq_any(mine))
                    .filter(diesel::dsl::not(
                        evaluation_cases::consortium_id.eq_any(conflicted),
                    ));
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
                .filter(assignments::reviewer_id.eq(&reviewer))
                .filter(assignments::voided_at.is_null())
                .filter(assignments::conflict_noted_at.is_null())
                .count()
                .get_result(c)?;
            // A declared conflict with the consortium closes the case to the reviewer, even
            // through an assignment in a closed stage (kept, since that result stands).
            let conflicted: i64 = conflicts::table
                .filter(conflicts::reviewer_id.eq(&reviewer))
                .filter(conflicts::consortium_id.eq(case.consortium_id))
                .count()
                .get_result(c)?;
            Ok::<_, ScoringError>((case, assigned > 0 && conflicted == 0))
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
/// everything). `withdrawn` is the consortium's own act and stays, but at stage 0 too: the
/// stage it left from would tell it how far it had got.
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
        if !published.contains(&k.call_id.0) {
            // Withdrawal and a late case's rejection are not competition results: they
            // stand as they are (a rejection with its reason).
            if k.status != "withdrawn" && k.status != "rejected_late" {
                k.status = NEUTRAL_STATUS.to_owned();
            }
            k.stage = 0;
        }
    }
    Ok(cases)
}

/// Staff reject a case marked `late` (its submission reached evaluation after stage 0 had
/// closed, so it cannot be ranked with its peers), with the reason its consortium reads. A
/// late case is resolved once; any other case is refused by name.
pub async fn resolve_late(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: kaip_service::ValidJson<kaip_contracts::dto::scoring::ResolveLate>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(super::STAFF, "resolve a late case")?;
    let proposal = path.into_inner();
    let reason = body.into_inner().reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(kaip_service::CommonError::validation(
            "reason",
            "must be 1 to 2000 characters",
        )
        .into());
    }
    let by = caller.0.sub.clone();
    let case = state
        .db(move |c, _| {
            c.transaction(|c| {
                let call: Uuid = evaluation_cases::table
                    .filter(evaluation_cases::proposal_id.eq(proposal))
                    .select(evaluation_cases::call_id)
                    .first(c)
                    .optional()?
                    .ok_or_else(|| ScoringError::CaseNotFound(format!("proposal {proposal}")))?;
                // The call's row first (the order every writer takes), then the case's.
                crate::store::lock_calls(c, &[call])?;
                let case: CaseRow = evaluation_cases::table
                    .filter(evaluation_cases::proposal_id.eq(proposal))
                    .select(CaseRow::as_select())
                    .for_update()
                    .first(c)?;
                if case.status != "late" {
                    return Err(ScoringError::Conflict(format!(
                        "the case of proposal {proposal} is {}: only a `late` case can be rejected as late",
                        case.status
                    )));
                }
                diesel::update(evaluation_cases::table.find(case.id))
                    .set((
                        evaluation_cases::status.eq("rejected_late"),
                        evaluation_cases::late_resolution.eq(&reason),
                        evaluation_cases::late_resolved_by.eq(&by),
                        evaluation_cases::late_resolved_at.eq(chrono::Utc::now()),
                    ))
                    .execute(c)?;
                Ok::<_, ScoringError>(
                    evaluation_cases::table
                        .find(case.id)
                        .select(CaseRow::as_select())
                        .first(c)?,
                )
            })
        })
        .await?;
    tracing::info!(proposal_id = %proposal, "late case rejected");
    Ok(HttpResponse::Ok().json(case.dto()))
}
