use super::STAFF;
use crate::domain::{assign, config};
use crate::error::ScoringError;
use crate::schema::{
    assignments, calls, conflicts, evaluation_cases, evaluation_config_versions, reviewer_versions,
    reviewers, score_sheet_versions, score_sheets, stage_closures,
};
use crate::store::{
    apply_plan, configured_call, find_call, lock_calls, plan_assignments, stage_closed, CaseRow,
};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{
    Assignment, AssignmentReport, BlockedAssignment, ConflictReport, DeclareConflict,
    EvaluationConfig, EvaluationConfigVersion, RegisterReviewer, Replacement, Reviewer,
    ReviewerShortfall, ReviewerVersion, ScoreSheet, ScoreSheetVersion, VoidedAssignment,
};
use kaip_contracts::dto::PageQuery;
use kaip_contracts::Role;
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The smallest `anonymity_min_group` a call may set.
///
/// Six. A consortium sees min, median (an actual value), max and mean (so the sum) of a
/// stage's totals, and knows its own. Of the n totals, min, median, max and its own are
/// known; the sum pins the rest down when one is left: n - 4 <= 1. With five, a consortium
/// whose total is not shown learns the other hidden one exactly (sum minus the four); with
/// three or four every total is learnt. From six up, at least two totals stay hidden behind
/// one equation.
pub const MIN_ANONYMITY_GROUP: u32 = 6;

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
    if cfg.anonymity_min_group < MIN_ANONYMITY_GROUP {
        return Err(CommonError::validation(
            "anonymity_min_group",
            format!("must be at least {MIN_ANONYMITY_GROUP}: with fewer proposals, a consortium can work out its competitors' scores from the distribution"),
        )
        .into());
    }
    let saved = cfg.clone();
    let by = caller.0.sub.clone();
    state
        .db(move |c, _| {
            c.transaction(|c| {
                let call = find_call(c, call_id, true)?;
                call.not_cancelled()?;
                // A replacement call fills the places its gate freed, not the programme's
                // number of teams.
                if let Some(r) = call.replacement()? {
                    if i64::from(cfg.teams) != i64::from(r.places) {
                        return Err(CommonError::validation(
                            "teams",
                            format!(
                                "a replacement call for `{}` selects its {} place(s): teams must be {}",
                                r.gate, r.places, r.places
                            ),
                        )
                        .into());
                    }
                }
                let started: i64 = assignments::table
                    .filter(assignments::call_id.eq(call_id))
                    .count()
                    .get_result(c)?;
                if started > 0 {
                    return Err(ScoringError::Conflict(
                        "reviewers are already assigned: the settings can no longer change".into(),
                    ));
                }
                let value = serde_json::to_value(&cfg).unwrap_or_default();
                // The call's row is locked: versions of one call are numbered in turn.
                let last: Option<i32> = evaluation_config_versions::table
                    .filter(evaluation_config_versions::call_id.eq(call_id))
                    .select(diesel::dsl::max(evaluation_config_versions::version))
                    .first(c)?;
                diesel::insert_into(evaluation_config_versions::table)
                    .values((
                        evaluation_config_versions::call_id.eq(call_id),
                        evaluation_config_versions::version.eq(last.unwrap_or(0) + 1),
                        evaluation_config_versions::config.eq(&value),
                        evaluation_config_versions::recorded_by.eq(&by),
                    ))
                    .execute(c)?;
                diesel::update(calls::table.find(call_id))
                    .set(calls::config.eq(&value))
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
    let mut r = body.into_inner();
    for (field, value) in [
        ("id", &r.id),
        ("name", &r.name),
        ("organisation", &r.organisation),
    ] {
        if value.trim().is_empty() || value.len() > 200 {
            return Err(CommonError::validation(field, "must be 1 to 200 characters").into());
        }
    }
    // Compared with consortium members' numbers, so normalised by the same rule.
    r.business_registration_number = match r.business_registration_number.as_deref() {
        None => None,
        Some(raw) if raw.trim().is_empty() => None,
        Some(raw) => Some(kaip_contracts::brn::normalise(raw.trim()).ok_or_else(|| {
            CommonError::validation("business_registration_number", kaip_contracts::brn::RULE)
        })?),
    };
    let saved = r.clone();
    let by = caller.0.sub.clone();
    let report = state
        .db(move |c, _| {
            c.transaction(|c| {
                // Lock order as in `declare_conflict`: the calls the reviewer is assigned in,
                // then (by the upsert) the reviewer's row.
                let locked: Vec<Uuid> = assignments::table
                    .filter(assignments::reviewer_id.eq(&r.id))
                    .select(assignments::call_id)
                    .distinct()
                    .load(c)?;
                lock_calls(c, &locked)?;
                diesel::insert_into(reviewers::table)
                    .values((
                        reviewers::id.eq(&r.id),
                        reviewers::name.eq(r.name.trim()),
                        reviewers::organisation.eq(r.organisation.trim()),
                        reviewers::brn.eq(&r.business_registration_number),
                        reviewers::expertise
                            .eq(serde_json::to_value(&r.expertise).unwrap_or_default()),
                    ))
                    .on_conflict(reviewers::id)
                    .do_update()
                    .set((
                        reviewers::name.eq(r.name.trim()),
                        reviewers::organisation.eq(r.organisation.trim()),
                        reviewers::brn.eq(&r.business_registration_number),
                        reviewers::expertise
                            .eq(serde_json::to_value(&r.expertise).unwrap_or_default()),
                    ))
                    .execute(c)?;
                // The upsert holds the reviewer's row: re-registrations are numbered in turn.
                let last: Option<i32> = reviewer_versions::table
                    .filter(reviewer_versions::reviewer_id.eq(&r.id))
                    .select(diesel::dsl::max(reviewer_versions::version))
                    .first(c)?;
                diesel::insert_into(reviewer_versions::table)
                    .values((
                        reviewer_versions::reviewer_id.eq(&r.id),
                        reviewer_versions::version.eq(last.unwrap_or(0) + 1),
                        reviewer_versions::name.eq(r.name.trim()),
                        reviewer_versions::organisation.eq(r.organisation.trim()),
                        reviewer_versions::brn.eq(&r.business_registration_number),
                        reviewer_versions::expertise
                            .eq(serde_json::to_value(&r.expertise).unwrap_or_default()),
                        reviewer_versions::recorded_by.eq(&by),
                    ))
                    .execute(c)?;
                // A new organisation or number can make the reviewer a member of a
                // consortium they are assigned to: the same void-and-refill as a declared
                // conflict. With the reviewer's row held, no plan adds assignments of theirs
                // now; one committed while the upsert waited is in a call not locked above,
                // taken here (a rare wait PostgreSQL resolves by aborting one side).
                let now_in: Vec<Uuid> = assignments::table
                    .filter(assignments::reviewer_id.eq(&r.id))
                    .select(assignments::call_id)
                    .distinct()
                    .load(c)?;
                let extra: Vec<Uuid> = now_in.into_iter().filter(|k| !locked.contains(k)).collect();
                lock_calls(c, &extra)?;
                let info = assign::ReviewerInfo {
                    id: r.id.clone(),
                    organisation: r.organisation.trim().to_owned(),
                    brn: r.business_registration_number.clone(),
                };
                let held: Vec<(Uuid, CaseRow)> = assignments::table
                    .inner_join(evaluation_cases::table)
                    .filter(assignments::reviewer_id.eq(&r.id))
                    .filter(assignments::voided_at.is_null())
                    .filter(assignments::conflict_noted_at.is_null())
                    .order(assignments::id.asc())
                    .select((assignments::id, CaseRow::as_select()))
                    .load(c)?;
                let none = BTreeMap::new();
                let targets: Vec<(Uuid, String)> = held
                    .into_iter()
                    .filter_map(|(id, k)| {
                        let case = assign::CaseInfo {
                            case_id: k.id,
                            proposal_id: k.proposal_id,
                            consortium_id: k.consortium_id,
                            members: k.members(),
                        };
                        assign::conflict(&info, &case, &none).map(|why| {
                            (
                                id,
                                format!("conflict of interest on re-registration: {why}"),
                            )
                        })
                    })
                    .collect();
                void_and_refill(c, &targets, &by)
            })
        })
        .await?;
    if !(report.voided.is_empty() && report.noted.is_empty()) {
        tracing::warn!(reviewer = %saved.id, voided = report.voided.len(), noted = report.noted.len(), "re-registration made the reviewer conflicted: assignments taken off");
    }
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
///
/// Declared late, it voids the reviewer's assignments to that consortium's proposals in every
/// stage still open (their sheets are kept, with the reason, who and when: they no longer
/// count, and the reviewer can no longer read or score the case), and assigns replacements so
/// each proposal keeps its `reviewers_per_proposal`; where nobody eligible remains, the
/// answer names the shortfall (and closing the stage refuses until it is filled). In a stage
/// already closed the assignment is marked with the conflict, not voided: the result stands,
/// and the record shows it.
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
    let report = state
        .db(move |c, _| {
            c.transaction(|c| {
                // Lock order (as `assign`, `close`, `score` and a new case's stage 0): the
                // calls first, then the reviewer. Holding every call the consortium has a
                // case in, nothing assigns, scores or closes there until the conflict is
                // recorded and its voids and replacements are written; holding the
                // reviewer's row, a plan for a call whose case this cannot see yet (still
                // being opened) waits for this and then reads the conflict.
                let calls_of: Vec<Uuid> = evaluation_cases::table
                    .filter(evaluation_cases::consortium_id.eq(req.consortium_id.0))
                    .select(evaluation_cases::call_id)
                    .distinct()
                    .load(c)?;
                lock_calls(c, &calls_of)?;
                reviewers::table
                    .find(&reviewer)
                    .select(reviewers::id)
                    .for_update()
                    .first::<String>(c)
                    .optional()?
                    .ok_or_else(|| ScoringError::ReviewerNotFound(reviewer.clone()))?;
                diesel::insert_into(conflicts::table)
                    .values((
                        conflicts::reviewer_id.eq(&reviewer),
                        conflicts::consortium_id.eq(req.consortium_id.0),
                        conflicts::reason.eq(req.reason.trim()),
                        conflicts::declared_by.eq(&by),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                let targets: Vec<(Uuid, String)> = assignments::table
                    .inner_join(evaluation_cases::table)
                    .filter(assignments::reviewer_id.eq(&reviewer))
                    .filter(evaluation_cases::consortium_id.eq(req.consortium_id.0))
                    .filter(assignments::voided_at.is_null())
                    .select(assignments::id)
                    .order(assignments::id.asc())
                    .load::<Uuid>(c)?
                    .into_iter()
                    .map(|id| {
                        (
                            id,
                            format!("conflict of interest declared: {}", req.reason.trim()),
                        )
                    })
                    .collect();
                void_and_refill(c, &targets, &by)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Takes the counting assignments `targets` (id, why) off their cases: in a stage not yet
/// closed each is voided and its case refilled (see [`declare_conflict`]); in a closed stage
/// it is marked with the reason instead, since that stage's sheets were the record when it
/// closed and its result stands. The caller holds the rows of every call concerned (and so
/// reads `had_sheet` and the closures as they are).
pub(crate) fn void_and_refill(
    c: &mut PgConnection,
    targets: &[(Uuid, String)],
    by: &str,
) -> Result<ConflictReport, ScoringError> {
    let mut report = ConflictReport::default();
    let mut refill: BTreeMap<(Uuid, i32), Vec<Uuid>> = BTreeMap::new();
    let now = chrono::Utc::now();
    for (id, reason) in targets {
        let (case, call, stage, proposal, sheet): (Uuid, Uuid, i32, Uuid, Option<Uuid>) =
            assignments::table
                .inner_join(evaluation_cases::table)
                .left_join(score_sheets::table)
                .filter(assignments::id.eq(id))
                .filter(assignments::voided_at.is_null())
                .select((
                    assignments::case_id,
                    assignments::call_id,
                    assignments::stage,
                    evaluation_cases::proposal_id,
                    score_sheets::assignment_id.nullable(),
                ))
                .first(c)?;
        let entry = VoidedAssignment {
            assignment_id: *id,
            proposal_id: proposal.into(),
            stage,
            had_sheet: sheet.is_some(),
        };
        if stage_closed(c, call, stage)? {
            let marked = diesel::update(assignments::table.find(id))
                .filter(assignments::conflict_noted_at.is_null())
                .set((
                    assignments::conflict_note.eq(reason),
                    assignments::conflict_noted_at.eq(now),
                    assignments::conflict_noted_by.eq(by),
                ))
                .execute(c)?;
            if marked > 0 {
                report.noted.push(entry);
            }
            continue;
        }
        diesel::update(assignments::table.find(id))
            .set((
                assignments::voided_at.eq(now),
                assignments::voided_by.eq(by),
                assignments::void_reason.eq(reason),
            ))
            .execute(c)?;
        report.voided.push(entry);
        refill.entry((call, stage)).or_default().push(case);
    }
    for ((call, stage), case_ids) in refill {
        let (_, cfg) = configured_call(c, call, true)?;
        // Only cases still in this stage: one that has moved on (or left) is not refilled
        // here, and nothing is ever assigned into a stage that has closed.
        let cases: Vec<CaseRow> = evaluation_cases::table
            .filter(evaluation_cases::id.eq_any(&case_ids))
            .filter(evaluation_cases::status.eq("open"))
            .filter(evaluation_cases::stage.eq(stage))
            .order(evaluation_cases::id.asc())
            .select(CaseRow::as_select())
            .load(c)?;
        let plan = plan_assignments(c, call, stage, &cfg, &cases)?;
        apply_plan(c, call, stage, &plan)?;
        let proposal_of: BTreeMap<Uuid, Uuid> =
            cases.iter().map(|k| (k.id, k.proposal_id)).collect();
        for (r, case) in &plan.assign {
            report.replacements.push(Replacement {
                reviewer_id: r.clone(),
                proposal_id: proposal_of[case].into(),
                stage,
            });
        }
        for (case, got, needed) in &plan.shortfalls {
            report.shortfalls.push(ReviewerShortfall::new(
                proposal_of[case].into(),
                stage,
                *got as i64,
                *needed as i64,
            ));
        }
    }
    Ok(report)
}

/// Proposals of a call short of the reviewers they need in the stage they are in (staff):
/// what a late conflict left unfilled, until more reviewers are registered and assigned.
pub async fn shortfalls(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read reviewer shortfalls")?;
    let call_id = path.into_inner();
    let out = state
        .db(move |c, _| {
            let (_, cfg) = configured_call(c, call_id, false)?;
            let need = i64::from(cfg.reviewers_per_proposal);
            let cases = crate::store::cases_of_call(c, call_id)?;
            let mut out = Vec::new();
            for k in cases.iter().filter(|k| k.status == "open") {
                if !crate::store::stage_started(c, call_id, k.stage)?
                    || stage_closed(c, call_id, k.stage)?
                {
                    continue;
                }
                let have: i64 = assignments::table
                    .filter(assignments::case_id.eq(k.id))
                    .filter(assignments::stage.eq(k.stage))
                    .filter(assignments::voided_at.is_null())
                    .count()
                    .get_result(c)?;
                if have < need {
                    out.push(ReviewerShortfall::new(
                        k.proposal_id.into(),
                        k.stage,
                        have,
                        need,
                    ));
                }
            }
            Ok::<_, ScoringError>(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Assigns reviewers to every open case of a stage, keeping conflicted reviewers off and
/// recording why. Stage 0 waits for the call's deadline: every proposal is in before the
/// first reviewer is. Run again, it tops up cases that arrived or lost reviewers since.
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
                let (call, cfg) = configured_call(c, call_id, true)?;
                call.not_cancelled()?;
                if stage < 0 || stage as usize >= cfg.stages.len() {
                    return Err(CommonError::validation(
                        "stage",
                        format!("must be between 0 and {}", cfg.stages.len() - 1),
                    )
                    .into());
                }
                if stage == 0 && chrono::Utc::now() < call.closes_at {
                    return Err(ScoringError::SubmissionsOpen {
                        call: call_id,
                        closes_at: call.closes_at,
                    });
                }
                if stage_closed(c, call_id, stage)? {
                    return Err(ScoringError::Conflict(format!("stage {stage} is closed")));
                }
                let cases: Vec<CaseRow> = evaluation_cases::table
                    .filter(evaluation_cases::call_id.eq(call_id))
                    .filter(evaluation_cases::stage.eq(stage))
                    .filter(evaluation_cases::status.eq("open"))
                    .order(evaluation_cases::id.asc())
                    .select(CaseRow::as_select())
                    .load::<CaseRow>(c)?;
                let plan = plan_assignments(c, call_id, stage, &cfg, &cases)?;
                let proposal_of: BTreeMap<Uuid, Uuid> =
                    cases.iter().map(|k| (k.id, k.proposal_id)).collect();
                if let Some(&(case, got, needed)) = plan.shortfalls.first() {
                    return Err(ScoringError::Conflict(assign::shortfall_message(
                        proposal_of[&case],
                        got,
                        needed,
                        cfg.max_assignments_per_reviewer as usize,
                    )));
                }
                apply_plan(c, call_id, stage, &plan)?;
                let blocked = plan
                    .blocked
                    .into_iter()
                    .map(|(reviewer, case, reason)| BlockedAssignment {
                        reviewer_id: reviewer,
                        proposal_id: proposal_of[&case].into(),
                        reason,
                    })
                    .collect();
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
    Option<String>,
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
                    assignments::void_reason,
                ))
                .order(assignments::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(assignments::id.gt(after));
            }
            if let Some(r) = mine {
                // A voided assignment is no longer the reviewer's to see or score.
                q = q
                    .filter(assignments::reviewer_id.eq(r))
                    .filter(assignments::voided_at.is_null())
                    .filter(assignments::conflict_noted_at.is_null());
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
                    |(id, call, stage, reviewer, proposal, title, at, sheet, void)| Assignment {
                        id,
                        call_id: call.into(),
                        stage,
                        reviewer_id: reviewer,
                        proposal_id: proposal.into(),
                        title,
                        scored: sheet.is_some(),
                        assigned_at: at,
                        void_reason: void,
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
                // The call's row first, shared (as `close` takes it, exclusively, before it
                // reads the sheets; and `declare_conflict` before it voids): a sheet is
                // saved wholly before the stage closes or refused after, and never written
                // to an assignment a conflict is voiding.
                let call_of: Uuid = assignments::table
                    .find(id)
                    .select(assignments::call_id)
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::AssignmentNotFound(id))?;
                calls::table
                    .find(call_of)
                    .select(calls::id)
                    .for_share()
                    .first::<Uuid>(c)?;
                let (call_id, stage, owner, voided): (Uuid, i32, String, bool) = assignments::table
                    .find(id)
                    .select((
                        assignments::call_id,
                        assignments::stage,
                        assignments::reviewer_id,
                        assignments::voided_at.is_not_null(),
                    ))
                    .for_update()
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::AssignmentNotFound(id))?;
                // Someone else's assignment does not exist, as far as this reviewer knows;
                // nor does one a conflict of interest voided.
                if owner != reviewer || voided {
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
                let (call, cfg) = configured_call(c, call_id, false)?;
                call.not_cancelled()?;
                let rubric = config::rubric(&cfg);
                let total = rubric.check_sheet(&sheet.scores)?;
                rubric.check_comments(&sheet.comments)?;
                let scores = serde_json::to_value(&sheet.scores).unwrap_or_default();
                let comments = serde_json::to_value(&sheet.comments).unwrap_or_default();
                // The assignment's row is locked: a resubmission is the next version.
                let last: Option<i32> = score_sheet_versions::table
                    .filter(score_sheet_versions::assignment_id.eq(id))
                    .select(diesel::dsl::max(score_sheet_versions::version))
                    .first(c)?;
                diesel::insert_into(score_sheet_versions::table)
                    .values((
                        score_sheet_versions::assignment_id.eq(id),
                        score_sheet_versions::version.eq(last.unwrap_or(0) + 1),
                        score_sheet_versions::scores.eq(&scores),
                        score_sheet_versions::comments.eq(&comments),
                        score_sheet_versions::total.eq(total as i32),
                        score_sheet_versions::recorded_by.eq(&reviewer),
                    ))
                    .execute(c)?;
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

/// Every saved version of a call's evaluation settings, oldest first (ministry staff).
pub async fn config_versions(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read the history of evaluation settings")?;
    let call_id = path.into_inner();
    let out = state
        .db(move |c, _| {
            find_call(c, call_id, false)?;
            let rows: Vec<(
                i32,
                serde_json::Value,
                String,
                chrono::DateTime<chrono::Utc>,
            )> = evaluation_config_versions::table
                .filter(evaluation_config_versions::call_id.eq(call_id))
                .order(evaluation_config_versions::version.asc())
                .select((
                    evaluation_config_versions::version,
                    evaluation_config_versions::config,
                    evaluation_config_versions::recorded_by,
                    evaluation_config_versions::recorded_at,
                ))
                .load(c)?;
            let mut out = Vec::with_capacity(rows.len());
            for (version, config, recorded_by, recorded_at) in rows {
                let config: EvaluationConfig = serde_json::from_value(config).map_err(|e| {
                    CommonError::internal(anyhow::anyhow!("stored settings version {version}: {e}"))
                })?;
                out.push(EvaluationConfigVersion {
                    version,
                    config,
                    recorded_by,
                    recorded_at,
                });
            }
            Ok::<_, ScoringError>(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

type ReviewerVersionRow = (
    i32,
    String,
    String,
    Option<String>,
    serde_json::Value,
    String,
    chrono::DateTime<chrono::Utc>,
);

/// Every registration of a reviewer's profile, oldest first (ministry staff).
pub async fn reviewer_history(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read a reviewer's history")?;
    let reviewer = path.into_inner();
    let out = state
        .db(move |c, _| {
            let rows: Vec<ReviewerVersionRow> = reviewer_versions::table
                .filter(reviewer_versions::reviewer_id.eq(&reviewer))
                .order(reviewer_versions::version.asc())
                .select((
                    reviewer_versions::version,
                    reviewer_versions::name,
                    reviewer_versions::organisation,
                    reviewer_versions::brn,
                    reviewer_versions::expertise,
                    reviewer_versions::recorded_by,
                    reviewer_versions::recorded_at,
                ))
                .load(c)?;
            if rows.is_empty() {
                return Err(ScoringError::ReviewerNotFound(reviewer));
            }
            Ok::<_, ScoringError>(
                rows.into_iter()
                    .map(
                        |(
                            version,
                            name,
                            organisation,
                            brn,
                            expertise,
                            recorded_by,
                            recorded_at,
                        )| {
                            ReviewerVersion {
                                version,
                                name,
                                organisation,
                                business_registration_number: brn,
                                expertise: serde_json::from_value(expertise).unwrap_or_default(),
                                recorded_by,
                                recorded_at,
                            }
                        },
                    )
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

type SheetVersionRow = (
    i32,
    serde_json::Value,
    serde_json::Value,
    i32,
    String,
    chrono::DateTime<chrono::Utc>,
);

/// Every submission of an assignment's score sheet, oldest first: ministry staff, and the
/// reviewer it is assigned to while it counts.
pub async fn sheet_versions(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Reviewer],
        "read a score sheet's history",
    )?;
    let id = path.into_inner();
    let reviewer = (caller.role() == Role::Reviewer).then(|| caller.0.sub.clone());
    let out = state
        .db(move |c, _| {
            let (owner, voided): (String, bool) = assignments::table
                .find(id)
                .select((
                    assignments::reviewer_id,
                    assignments::voided_at
                        .is_not_null()
                        .or(assignments::conflict_noted_at.is_not_null()),
                ))
                .first(c)
                .optional()?
                .ok_or(ScoringError::AssignmentNotFound(id))?;
            if reviewer.is_some_and(|r| r != owner || voided) {
                return Err(ScoringError::AssignmentNotFound(id));
            }
            let rows: Vec<SheetVersionRow> = score_sheet_versions::table
                .filter(score_sheet_versions::assignment_id.eq(id))
                .order(score_sheet_versions::version.asc())
                .select((
                    score_sheet_versions::version,
                    score_sheet_versions::scores,
                    score_sheet_versions::comments,
                    score_sheet_versions::total,
                    score_sheet_versions::recorded_by,
                    score_sheet_versions::recorded_at,
                ))
                .load(c)?;
            Ok::<_, ScoringError>(
                rows.into_iter()
                    .map(
                        |(version, scores, comments, total, recorded_by, recorded_at)| {
                            ScoreSheetVersion {
                                version,
                                scores: serde_json::from_value(scores).unwrap_or_default(),
                                comments: serde_json::from_value(comments).unwrap_or_default(),
                                total: i64::from(total),
                                recorded_by,
                                recorded_at,
                            }
                        },
                    )
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}
