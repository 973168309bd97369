use super::STAFF;
use crate::domain::decision::{self, Finalist};
use crate::domain::{config, stage};
use crate::error::ScoringError;
use crate::records;
use crate::schema::{evaluation_cases, stage_closures, stage_results};
use crate::store::{configured_call, CaseRow};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::StageResult;
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError};
use uuid::Uuid;

/// The refusal's words for unresolved ties that would decide `what`.
pub(crate) fn describe_ties(groups: &[Vec<Uuid>], what: &str) -> String {
    let list: Vec<String> = groups
        .iter()
        .map(|g| g.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", "))
        .map(|g| format!("[{g}]"))
        .collect();
    format!(
        "proposals {} are tied on the total and on every declared tie-break, and their order \
         decides {what}: an officer must record the order (decideTie) first",
        list.join(" and ")
    )
}

/// Closes a stage: consensus per proposal (normalised if configured, on one basis for totals
/// and criteria), minimums, ranking with the declared tie-break and the officers' tie
/// decisions, and who advances. Every assignment must have been scored, and no unresolved
/// tie may decide who advances (or, at the last stage, who the rules select).
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
                let (call, cfg) = configured_call(c, call_id, true)?;
                call.not_cancelled()?;
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
                    .order(evaluation_cases::id.asc())
                    .select(CaseRow::as_select())
                    .load(c)?;
                let open_ids: Vec<Uuid> = cases.iter().map(|k| k.id).collect();
                let sheets = records::stage_sheets(c, call_id, stage, &open_ids)?;
                let missing = sheets.iter().filter(|s| s.total.is_none()).count();
                if missing > 0 {
                    return Err(ScoringError::StageIncomplete(format!(
                        "{missing} assignment(s) of stage {stage} are not scored yet"
                    )));
                }
                if let Some(k) = cases
                    .iter()
                    .find(|k| !sheets.iter().any(|s| s.case_id == k.id))
                {
                    return Err(ScoringError::StageIncomplete(format!(
                        "proposal {} has no reviewers assigned in stage {stage}",
                        k.proposal_id
                    )));
                }
                let need = cfg.reviewers_per_proposal as usize;
                if let Some((k, n)) = cases
                    .iter()
                    .map(|k| (k, sheets.iter().filter(|s| s.case_id == k.id).count()))
                    .find(|(_, n)| *n < need)
                {
                    return Err(ScoringError::StageIncomplete(format!(
                        "proposal {} has {n} of the {need} reviewers it needs in stage {stage} (a conflict of interest voided the others): register another reviewer and assign stage {stage} again",
                        k.proposal_id
                    )));
                }
                let ties = records::tie_decisions_of(c, call_id, stage)?;
                let outcomes = stage::evaluate(
                    &cfg,
                    stage as usize,
                    &records::entries(&cases),
                    &records::domain_sheets(&sheets, &cases),
                    &records::domain_ties(&ties),
                );
                let last = stage == stages - 1;
                // An unresolved tie may not decide who advances or, at the last stage, who the
                // rules would select: the officer records the order first.
                let blocking = if last {
                    let finalists: Vec<Finalist> = outcomes
                        .iter()
                        .filter(|o| o.advanced)
                        .filter_map(|o| {
                            let k = cases.iter().find(|k| k.proposal_id == o.proposal)?;
                            Some((
                                o.position,
                                Finalist {
                                    proposal: o.proposal,
                                    score: o.total,
                                    categories: k.categories(),
                                    unresolved_with: o.unresolved_with.clone(),
                                },
                            ))
                        })
                        .collect::<std::collections::BTreeMap<_, _>>()
                        .into_values()
                        .collect();
                    let (candidates, groups) = decision::candidates(&finalists, &[]);
                    match decision::propose(
                        &candidates,
                        cfg.teams as usize,
                        &config::constraints(&cfg),
                    ) {
                        Ok(p) => {
                            let chosen: Vec<Uuid> =
                                p.selected.iter().map(|&i| candidates[i].proposal).collect();
                            decision::straddling(&groups, &chosen)
                        }
                        // No portfolio keeps the rules: proposing will say so.
                        Err(_) => Vec::new(),
                    }
                } else {
                    stage::ties_affecting(&outcomes, |p| {
                        outcomes.iter().any(|o| o.proposal == p && o.advanced)
                    })
                };
                if !blocking.is_empty() {
                    return Err(ScoringError::TieUnresolved(describe_ties(
                        &blocking,
                        if last {
                            "who the rules select"
                        } else {
                            "who advances"
                        },
                    )));
                }
                let mut out = Vec::new();
                for (k, o) in cases.iter().zip(&outcomes) {
                    diesel::insert_into(stage_results::table)
                        .values((
                            stage_results::call_id.eq(call_id),
                            stage_results::stage.eq(stage),
                            stage_results::case_id.eq(k.id),
                            stage_results::position.eq(o.position),
                            stage_results::total_centi.eq(o.total.0),
                            stage_results::per_criterion
                                .eq(serde_json::to_value(&o.per_criterion).unwrap_or_default()),
                            stage_results::eligible.eq(o.shortfalls.is_empty()),
                            stage_results::shortfalls
                                .eq(serde_json::to_value(&o.shortfalls).unwrap_or_default()),
                            stage_results::advanced.eq(o.advanced),
                            stage_results::tie_broken_by.eq(&o.tie_broken_by),
                            stage_results::unresolved_with
                                .eq(serde_json::to_value(&o.unresolved_with).unwrap_or_default()),
                        ))
                        .execute(c)?;
                    let (next_stage, status) = match (o.advanced, last) {
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
                        position: o.position,
                        total_centi: o.total.0,
                        per_criterion_centi: o
                            .per_criterion
                            .iter()
                            .map(|(k, v)| (k.clone(), v.0))
                            .collect(),
                        eligible: o.shortfalls.is_empty(),
                        shortfalls: o.shortfalls.clone(),
                        advanced: o.advanced,
                        tie_broken_by: o.tie_broken_by.clone(),
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
