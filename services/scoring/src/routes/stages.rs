use super::STAFF;
use crate::domain::ranking::{self, ReviewerTotal, Standing};
use crate::domain::{config, Centi};
use crate::error::ScoringError;
use crate::schema::{assignments, evaluation_cases, score_sheets, stage_closures, stage_results};
use crate::store::{configured_call, CaseRow};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::StageResult;
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A proposal's consensus total, consensus per criterion, and why it is ineligible (if it is).
type Verdict = (Centi, BTreeMap<String, Centi>, Vec<String>);

/// Closes a stage: consensus per proposal (normalised if configured), minimums, ranking with
/// the declared tie-break, and who advances. Every assignment must have been scored.
pub async fn close(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, i32)>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "close a stage")?;
    let (call_id, stage) = path.into_inner();
    let by = caller.0.sub.clone();
    let results = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (_, cfg) = configured_call(c, call_id, true)?;
                let stages = cfg.stages.len() as i32;
                if !(0..stages).contains(&stage) {
                    return Err(CommonError::validation(
                        "stage",
                        format!("must be between 0 and {}", stages - 1),
                    )
                    .into());
                }
                let closed: Vec<i32> = stage_closures::table
                    .filter(stage_closures::call_id.eq(call_id))
                    .select(stage_closures::stage)
                    .load(c)?;
                if closed.contains(&stage) {
                    return Err(ScoringError::Conflict(format!(
                        "stage {stage} is already closed"
                    )));
                }
                if stage > 0 && !closed.contains(&(stage - 1)) {
                    return Err(ScoringError::Conflict(format!(
                        "stage {} must be closed first",
                        stage - 1
                    )));
                }
                let cases: Vec<CaseRow> = evaluation_cases::table
                    .filter(evaluation_cases::call_id.eq(call_id))
                    .filter(evaluation_cases::stage.eq(stage))
                    .filter(evaluation_cases::status.eq("open"))
                    .select(CaseRow::as_select())
                    .load(c)?;
                let sheets: Vec<(Uuid, String, Option<serde_json::Value>, Option<i32>)> =
                    assignments::table
                        .left_join(score_sheets::table)
                        .filter(assignments::call_id.eq(call_id))
                        .filter(assignments::stage.eq(stage))
                        // Sheets a late conflict of interest voided are kept, not counted.
                        .filter(assignments::voided_at.is_null())
                        .select((
                            assignments::case_id,
                            assignments::reviewer_id,
                            score_sheets::scores.nullable(),
                            score_sheets::total.nullable(),
                        ))
                        .load(c)?;
                let open_ids: Vec<Uuid> = cases.iter().map(|k| k.id).collect();
                let sheets: Vec<_> = sheets
                    .into_iter()
                    .filter(|s| open_ids.contains(&s.0))
                    .collect();
                let missing = sheets.iter().filter(|s| s.3.is_none()).count();
                if missing > 0 {
                    return Err(ScoringError::StageIncomplete(format!(
                        "{missing} assignment(s) of stage {stage} are not scored yet"
                    )));
                }
                if let Some(k) = cases.iter().find(|k| !sheets.iter().any(|s| s.0 == k.id)) {
                    return Err(ScoringError::StageIncomplete(format!(
                        "proposal {} has no reviewers assigned in stage {stage}",
                        k.proposal_id
                    )));
                }
                let need = cfg.reviewers_per_proposal as usize;
                if let Some((k, n)) = cases
                    .iter()
                    .map(|k| (k, sheets.iter().filter(|s| s.0 == k.id).count()))
                    .find(|(_, n)| *n < need)
                {
                    return Err(ScoringError::StageIncomplete(format!(
                        "proposal {} has {n} of the {need} reviewers it needs in stage {stage} (a conflict of interest voided the others): register another reviewer and assign stage {stage} again",
                        k.proposal_id
                    )));
                }

                let totals: Vec<ReviewerTotal> = sheets
                    .iter()
                    .map(|(case, reviewer, _, total)| ReviewerTotal {
                        reviewer: reviewer.clone(),
                        proposal: *case,
                        total: i64::from(total.unwrap_or(0)),
                    })
                    .collect();
                let normalised = if cfg.normalise {
                    ranking::normalise(&totals)
                } else {
                    totals.iter().map(|t| Centi::from_points(t.total)).collect()
                };
                let rubric = config::rubric(&cfg);
                let stage_cfg = &cfg.stages[stage as usize];
                let mut standings = Vec::new();
                let mut verdicts: BTreeMap<Uuid, Verdict> = BTreeMap::new();
                for k in &cases {
                    let mine: Vec<Centi> = totals
                        .iter()
                        .zip(&normalised)
                        .filter(|(t, _)| t.proposal == k.id)
                        .map(|(_, n)| *n)
                        .collect();
                    let total = ranking::consensus(&mine).unwrap_or_default();
                    let mut per: BTreeMap<String, Centi> = BTreeMap::new();
                    for crit in &rubric.criteria {
                        let points: Vec<Centi> = sheets
                            .iter()
                            .filter(|s| s.0 == k.id)
                            .filter_map(|s| s.2.as_ref()?.get(&crit.key)?.as_i64())
                            .map(Centi::from_points)
                            .collect();
                        per.insert(
                            crit.key.clone(),
                            ranking::consensus(&points).unwrap_or_default(),
                        );
                    }
                    let mut shortfalls = rubric.shortfalls(&per, total);
                    if let Some(min) = stage_cfg.min_total {
                        if total < Centi::from_points(min) {
                            shortfalls.push(format!(
                                "total {total} is below this stage's threshold of {min}"
                            ));
                        }
                    }
                    if shortfalls.is_empty() {
                        standings.push(Standing {
                            proposal: k.id,
                            total,
                            per_criterion: per.clone(),
                            submitted_at: k.submitted_at,
                        });
                    }
                    verdicts.insert(k.id, (total, per, shortfalls));
                }
                let ranked = ranking::rank(&standings, &config::tie_break(&cfg));
                let keep = stage_cfg.keep_top.map_or(usize::MAX, |n| n as usize);
                let last = stage == stages - 1;
                let mut out = Vec::new();
                for k in &cases {
                    let (total, per, shortfalls) = &verdicts[&k.id];
                    let placed = ranked.iter().find(|r| r.proposal == k.id);
                    let position = placed.map(|r| r.position as i32);
                    let advanced = placed.is_some_and(|r| r.position <= keep);
                    let tie = placed.and_then(|r| r.tie_broken_by.clone());
                    diesel::insert_into(stage_results::table)
                        .values((
                            stage_results::call_id.eq(call_id),
                            stage_results::stage.eq(stage),
                            stage_results::case_id.eq(k.id),
                            stage_results::position.eq(position),
                            stage_results::total_centi.eq(total.0),
                            stage_results::per_criterion
                                .eq(serde_json::to_value(per).unwrap_or_default()),
                            stage_results::eligible.eq(shortfalls.is_empty()),
                            stage_results::shortfalls
                                .eq(serde_json::to_value(shortfalls).unwrap_or_default()),
                            stage_results::advanced.eq(advanced),
                            stage_results::tie_broken_by.eq(&tie),
                        ))
                        .execute(c)?;
                    let (next_stage, status) = match (advanced, last) {
                        (true, false) => (stage + 1, "open"),
                        (true, true) => (stage, "finalist"),
                        (false, _) => (stage, "eliminated"),
                    };
                    diesel::update(evaluation_cases::table.find(k.id))
                        .set((
                            evaluation_cases::stage.eq(next_stage),
                            evaluation_cases::status.eq(status),
                        ))
                        .execute(c)?;
                    out.push(StageResult {
                        proposal_id: k.proposal_id.into(),
                        title: k.title.clone(),
                        position,
                        total_centi: total.0,
                        per_criterion_centi: per.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
                        eligible: shortfalls.is_empty(),
                        shortfalls: shortfalls.clone(),
                        advanced,
                        tie_broken_by: tie,
                    });
                }
                diesel::insert_into(stage_closures::table)
                    .values((
                        stage_closures::call_id.eq(call_id),
                        stage_closures::stage.eq(stage),
                        stage_closures::closed_by.eq(&by),
                    ))
                    .execute(c)?;
                out.sort_by_key(|r| (r.position.is_none(), r.position));
                Ok::<_, ScoringError>(out)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(results))
}

pub type ResultRow = (
    Uuid,
    String,
    Option<i32>,
    i64,
    serde_json::Value,
    bool,
    serde_json::Value,
    bool,
    Option<String>,
);

/// A closed stage's results, best first (ministry staff), a page at a time: `after` is the
/// proposal id of the last result of the previous page.
pub async fn results(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, i32)>,
    query: web::Query<kaip_contracts::dto::PageQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read stage results")?;
    let (call_id, stage) = path.into_inner();
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let rows = state
        .db(move |c, _| load_results(c, call_id, stage))
        .await?;
    // Results are ordered by position, not by id: the cursor is the last proposal shown.
    let start = match page.after {
        Some(after) => rows
            .iter()
            .position(|r| r.proposal_id.0 == after)
            .map(|i| i + 1)
            .ok_or_else(|| {
                ScoringError::from(CommonError::validation(
                    "after",
                    "is not a proposal of these results",
                ))
            })?,
        None => 0,
    };
    let rest: Vec<StageResult> = rows
        .into_iter()
        .skip(start)
        .take(page.limit as usize + 1)
        .collect();
    Ok(HttpResponse::Ok().json(page.finish(rest, |r: &StageResult| r.proposal_id.0)))
}

pub fn load_results(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
) -> Result<Vec<StageResult>, ScoringError> {
    let rows: Vec<ResultRow> = stage_results::table
        .inner_join(evaluation_cases::table)
        .filter(stage_results::call_id.eq(call_id))
        .filter(stage_results::stage.eq(stage))
        .select((
            evaluation_cases::proposal_id,
            evaluation_cases::title,
            stage_results::position,
            stage_results::total_centi,
            stage_results::per_criterion,
            stage_results::eligible,
            stage_results::shortfalls,
            stage_results::advanced,
            stage_results::tie_broken_by,
        ))
        .load(c)?;
    let mut out: Vec<StageResult> = rows
        .into_iter()
        .map(
            |(proposal, title, position, total, per, eligible, shortfalls, advanced, tie)| {
                StageResult {
                    proposal_id: proposal.into(),
                    title,
                    position,
                    total_centi: total,
                    per_criterion_centi: serde_json::from_value(per).unwrap_or_default(),
                    eligible,
                    shortfalls: serde_json::from_value(shortfalls).unwrap_or_default(),
                    advanced,
                    tie_broken_by: tie,
                }
            },
        )
        .collect();
    out.sort_by_key(|r| (r.position.is_none(), r.position));
    Ok(out)
}
