use super::STAFF;
use crate::domain::{assign, config};
use crate::error::ScoringError;
use crate::schema::{
    assignments, blocked_assignments, calls, conflicts, evaluation_cases, reviewers, score_sheets,
    stage_closures,
};
use crate::store::{configured_call, find_call, CaseRow};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{
    Assignment, AssignmentReport, BlockedAssignment, DeclareConflict, EvaluationConfig,
    RegisterReviewer, Reviewer, ScoreSheet,
};
use kaip_contracts::dto::PageQuery;
use kaip_contracts::Role;
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Sets a call's evaluation settings; allowed until its first assignment.
pub async fn configure(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<EvaluationConfig>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "configure an evaluation")?;
    let call_id = path.into_inner();
    let cfg = body.into_inner();
    config::validate(&cfg)?;
    let saved = cfg.clone();
    state
        .db(move |c, _| {
            c.transaction(|c| {
                find_call(c, call_id, true)?;
                let started: i64 = assignments::table
                    .filter(assignments::call_id.eq(call_id))
                    .count()
                    .get_result(c)?;
                if started > 0 {
                    return Err(ScoringError::Conflict(
                        "reviewers are already assigned: the settings can no longer change".into(),
                    ));
                }
                diesel::update(calls::table.find(call_id))
                    .set(calls::config.eq(serde_json::to_value(&cfg).unwrap_or_default()))
                    .execute(c)?;
                Ok::<_, ScoringError>(())
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(saved))
}

pub async fn get_config(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Reviewer,
            Role::Consortium,
            Role::Integration,
        ],
        "read evaluation settings",
    )?;
    caller.require_scope(
        kaip_auth::scopes::READ_EVALUATION,
        "read evaluation settings",
    )?;
    let call_id = path.into_inner();
    let (_, cfg) = state
        .db(move |c, _| configured_call(c, call_id, false))
        .await?;
    Ok(HttpResponse::Ok().json(cfg))
}

pub async fn register_reviewer(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<RegisterReviewer>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "register reviewers")?;
    let r = body.into_inner();
    for (field, value) in [
        ("id", &r.id),
        ("name", &r.name),
        ("organisation", &r.organisation),
    ] {
        if value.trim().is_empty() || value.len() > 200 {
            return Err(CommonError::validation(field, "must be 1 to 200 characters").into());
        }
    }
    let saved = r.clone();
    state
        .db(move |c, _| {
            diesel::insert_into(reviewers::table)
                .values((
                    reviewers::id.eq(&r.id),
                    reviewers::name.eq(r.name.trim()),
                    reviewers::organisation.eq(r.organisation.trim()),
                    reviewers::brn.eq(&r.business_registration_number),
                    reviewers::expertise.eq(serde_json::to_value(&r.expertise).unwrap_or_default()),
                ))
                .on_conflict(reviewers::id)
                .do_update()
                .set((
                    reviewers::name.eq(r.name.trim()),
                    reviewers::organisation.eq(r.organisation.trim()),
                    reviewers::brn.eq(&r.business_registration_number),
                    reviewers::expertise.eq(serde_json::to_value(&r.expertise).unwrap_or_default()),
                ))
                .execute(c)?;
            Ok::<_, ScoringError>(())
        })
        .await?;
    Ok(HttpResponse::Ok().json(Reviewer {
        id: saved.id,
        name: saved.name,
        organisation: saved.organisation,
        business_registration_number: saved.business_registration_number,
        expertise: saved.expertise,
    }))
}

type ReviewerRow = (String, String, String, Option<String>, serde_json::Value);

pub async fn list_reviewers(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "list reviewers")?;
    let page = PageRequest::parse(query.limit, None)?;
    let after = query.after.clone();
    let result = state
        .db(move |c, _| {
            let mut q = reviewers::table
                .select((
                    reviewers::id,
                    reviewers::name,
                    reviewers::organisation,
                    reviewers::brn,
                    reviewers::expertise,
                ))
                .order(reviewers::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = after {
                q = q.filter(reviewers::id.gt(after));
            }
            let rows: Vec<ReviewerRow> = q.load(c)?;
            let more = rows.len() as i64 > page.limit;
            let items: Vec<Reviewer> = rows
                .into_iter()
                .take(page.limit as usize)
                .map(|(id, name, organisation, brn, expertise)| Reviewer {
                    id,
                    name,
                    organisation,
                    business_registration_number: brn,
                    expertise: serde_json::from_value(expertise).unwrap_or_default(),
                })
                .collect();
            let next_cursor = if more {
                items.last().map(|r| r.id.clone())
            } else {
                None
            };
            Ok::<_, ScoringError>(kaip_contracts::dto::Page { items, next_cursor })
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// A reviewer declares a conflict with a consortium (or an officer records one for them).
pub async fn declare_conflict(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ValidJson<DeclareConflict>,
) -> Result<HttpResponse, ScoringError> {
    let reviewer = path.into_inner();
    kaip_contracts::text::check("id", &reviewer, kaip_contracts::text::Lines::Single).map_err(
        |v| CommonError::validation(format!("reviewer {} (in the path)", v.field), v.rule),
    )?;
    let is_self = caller.role() == Role::Reviewer && caller.0.sub == reviewer;
    if !is_self {
        caller.require(STAFF, "record another reviewer's conflict")?;
    }
    let req = body.into_inner();
    if req.reason.trim().is_empty() {
        return Err(CommonError::validation("reason", "must not be empty").into());
    }
    let by = caller.0.sub.clone();
    state
        .db(move |c, _| {
            c.transaction(|c| {
                let exists: i64 = reviewers::table.find(&reviewer).count().get_result(c)?;
                if exists == 0 {
                    return Err(ScoringError::ReviewerNotFound(reviewer.clone()));
                }
                diesel::insert_into(conflicts::table)
                    .values((
                        conflicts::reviewer_id.eq(&reviewer),
                        conflicts::consortium_id.eq(req.consortium_id.0),
                        conflicts::reason.eq(req.reason.trim()),
                        conflicts::declared_by.eq(&by),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                // A conflict declared late also removes unscored assignments it now forbids.
                let cases = evaluation_cases::table
                    .filter(evaluation_cases::consortium_id.eq(req.consortium_id.0))
                    .select(evaluation_cases::id);
                let scored = score_sheets::table.select(score_sheets::assignment_id);
                diesel::delete(
                    assignments::table
                        .filter(assignments::reviewer_id.eq(&reviewer))
                        .filter(assignments::case_id.eq_any(cases))
                        .filter(assignments::id.ne_all(scored)),
                )
                .execute(c)?;
                Ok::<_, ScoringError>(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Assigns reviewers to every open case of a stage, keeping conflicted reviewers off and
/// recording why.
pub async fn assign(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, i32)>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "assign reviewers")?;
    let (call_id, stage) = path.into_inner();
    let report = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (_, cfg) = configured_call(c, call_id, true)?;
                if stage < 0 || stage as usize >= cfg.stages.len() {
                    return Err(CommonError::validation(
                        "stage",
                        format!("must be between 0 and {}", cfg.stages.len() - 1),
                    )
                    .into());
                }
                let closed: i64 = stage_closures::table
                    .find((call_id, stage))
                    .count()
                    .get_result(c)?;
                if closed > 0 {
                    return Err(ScoringError::Conflict(format!("stage {stage} is closed")));
                }
                let already: Vec<Uuid> = assignments::table
                    .filter(assignments::call_id.eq(call_id))
                    .filter(assignments::stage.eq(stage))
                    .select(assignments::case_id)
                    .distinct()
                    .load(c)?;
                let cases: Vec<CaseRow> = evaluation_cases::table
                    .filter(evaluation_cases::call_id.eq(call_id))
                    .filter(evaluation_cases::stage.eq(stage))
                    .filter(evaluation_cases::status.eq("open"))
                    .order(evaluation_cases::id.asc())
                    .select(CaseRow::as_select())
                    .load::<CaseRow>(c)?
                    .into_iter()
                    .filter(|k| !already.contains(&k.id))
                    .collect();
                let infos: Vec<assign::CaseInfo> = cases
                    .iter()
                    .map(|k| assign::CaseInfo {
                        case_id: k.id,
                        proposal_id: k.proposal_id,
                        consortium_id: k.consortium_id,
                        members: k.members(),
                    })
                    .collect();
                let pool: Vec<assign::ReviewerInfo> = reviewers::table
                    .order(reviewers::id.asc())
                    .select((reviewers::id, reviewers::organisation, reviewers::brn))
                    .load::<(String, String, Option<String>)>(c)?
                    .into_iter()
                    .map(|(id, organisation, brn)| assign::ReviewerInfo {
                        id,
                        organisation,
                        brn,
                    })
                    .collect();
                let declared: BTreeMap<(String, Uuid), String> = conflicts::table
                    .select((
                        conflicts::reviewer_id,
                        conflicts::consortium_id,
                        conflicts::reason,
                    ))
                    .load::<(String, Uuid, String)>(c)?
                    .into_iter()
                    .map(|(r, k, reason)| ((r, k), reason))
                    .collect();
                let existing: BTreeMap<String, usize> = assignments::table
                    .filter(assignments::call_id.eq(call_id))
                    .filter(assignments::stage.eq(stage))
                    .group_by(assignments::reviewer_id)
                    .select((assignments::reviewer_id, diesel::dsl::count_star()))
                    .load::<(String, i64)>(c)?
                    .into_iter()
                    .map(|(r, n)| (r, n as usize))
                    .collect();
                let plan = assign::plan(
                    &infos,
                    &pool,
                    &declared,
                    &existing,
                    cfg.reviewers_per_proposal as usize,
                    cfg.max_assignments_per_reviewer as usize,
                )
                .map_err(ScoringError::Conflict)?;
                for (reviewer, case) in &plan.assign {
                    diesel::insert_into(assignments::table)
                        .values((
                            assignments::id.eq(Uuid::now_v7()),
                            assignments::call_id.eq(call_id),
                            assignments::stage.eq(stage),
                            assignments::reviewer_id.eq(reviewer),
                            assignments::case_id.eq(case),
                        ))
                        .execute(c)?;
                }
                let proposal_of: BTreeMap<Uuid, Uuid> =
                    cases.iter().map(|k| (k.id, k.proposal_id)).collect();
                let mut blocked = Vec::new();
                for (reviewer, case, reason) in plan.blocked {
                    diesel::insert_into(blocked_assignments::table)
                        .values((
                            blocked_assignments::call_id.eq(call_id),
                            blocked_assignments::stage.eq(stage),
                            blocked_assignments::reviewer_id.eq(&reviewer),
                            blocked_assignments::case_id.eq(case),
                            blocked_assignments::reason.eq(&reason),
                        ))
                        .on_conflict_do_nothing()
                        .execute(c)?;
                    blocked.push(BlockedAssignment {
                        reviewer_id: reviewer,
                        proposal_id: proposal_of[&case].into(),
                        reason,
                    });
                }
                Ok::<_, ScoringError>(AssignmentReport {
                    stage,
                    assigned: plan.assign.len() as i64,
                    blocked,
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentQuery {
    call_id: Option<Uuid>,
    stage: Option<i32>,
    limit: Option<i64>,
    after: Option<String>,
}

type AssignmentRow = (
    Uuid,
    Uuid,
    i32,
    String,
    Uuid,
    String,
    chrono::DateTime<chrono::Utc>,
    Option<Uuid>,
);

/// A reviewer's own assignments; ministry staff see everyone's.
pub async fn list_assignments(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<AssignmentQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Reviewer],
        "list assignments",
    )?;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let mine = (caller.role() == Role::Reviewer).then(|| caller.0.sub.clone());
    let (call_id, stage) = (query.call_id, query.stage);
    let result = state
        .db(move |c, _| {
            let mut q = assignments::table
                .inner_join(evaluation_cases::table)
                .left_join(score_sheets::table)
                .select((
                    assignments::id,
                    assignments::call_id,
                    assignments::stage,
                    assignments::reviewer_id,
                    evaluation_cases::proposal_id,
                    evaluation_cases::title,
                    assignments::assigned_at,
                    score_sheets::assignment_id.nullable(),
                ))
                .order(assignments::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(assignments::id.gt(after));
            }
            if let Some(r) = mine {
                q = q.filter(assignments::reviewer_id.eq(r));
            }
            if let Some(call) = call_id {
                q = q.filter(assignments::call_id.eq(call));
            }
            if let Some(s) = stage {
                q = q.filter(assignments::stage.eq(s));
            }
            let rows: Vec<AssignmentRow> = q.load(c)?;
            let items: Vec<Assignment> = rows
                .into_iter()
                .map(
                    |(id, call, stage, reviewer, proposal, title, at, sheet)| Assignment {
                        id,
                        call_id: call.into(),
                        stage,
                        reviewer_id: reviewer,
                        proposal_id: proposal.into(),
                        title,
                        scored: sheet.is_some(),
                        assigned_at: at,
                    },
                )
                .collect();
            Ok::<_, ScoringError>(page.finish(items, |a: &Assignment| a.id))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// A reviewer scores one of their own assignments (again, until the stage closes).
pub async fn score(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<ScoreSheet>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(&[Role::Reviewer], "score proposals")?;
    let id = path.into_inner();
    let sheet = body.into_inner();
    let reviewer = caller.0.sub.clone();
    let total = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (call_id, stage, owner): (Uuid, i32, String) = assignments::table
                    .find(id)
                    .select((
                        assignments::call_id,
                        assignments::stage,
                        assignments::reviewer_id,
                    ))
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::AssignmentNotFound(id))?;
                // Someone else's assignment does not exist, as far as this reviewer knows.
                if owner != reviewer {
                    return Err(ScoringError::AssignmentNotFound(id));
                }
                let closed: i64 = stage_closures::table
                    .find((call_id, stage))
                    .count()
                    .get_result(c)?;
                if closed > 0 {
                    return Err(ScoringError::Conflict(format!(
                        "stage {stage} is closed: scores can no longer change"
                    )));
                }
                let (_, cfg) = configured_call(c, call_id, false)?;
                let total = config::rubric(&cfg).check_sheet(&sheet.scores)?;
                for key in sheet.comments.keys() {
                    if !sheet.scores.contains_key(key) {
                        return Err(CommonError::validation(
                            format!("comments.{key}"),
                            "is not a criterion of this rubric",
                        )
                        .into());
                    }
                }
                let scores = serde_json::to_value(&sheet.scores).unwrap_or_default();
                let comments = serde_json::to_value(&sheet.comments).unwrap_or_default();
                diesel::insert_into(score_sheets::table)
                    .values((
                        score_sheets::assignment_id.eq(id),
                        score_sheets::scores.eq(&scores),
                        score_sheets::comments.eq(&comments),
                        score_sheets::total.eq(total as i32),
                    ))
                    .on_conflict(score_sheets::assignment_id)
                    .do_update()
                    .set((
                        score_sheets::scores.eq(&scores),
                        score_sheets::comments.eq(&comments),
                        score_sheets::total.eq(total as i32),
                        score_sheets::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(c)?;
                Ok::<_, ScoringError>(total)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "assignment_id": id, "total": total })))
}
