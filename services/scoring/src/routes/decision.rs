use super::STAFF;
use crate::domain::selection::{self, Candidate};
use crate::domain::{assign, config, Centi};
use crate::error::ScoringError;
use crate::schema::{calls, decisions, evaluation_cases, stage_closures, stage_results};
use crate::store::{configured_call, CaseRow};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{Decision, Departure, ProposeSelection};
use kaip_contracts::events::{SelectedTeam, SelectionPublished};
use kaip_contracts::{CallId, ProposalId};
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use uuid::Uuid;

/// The finalists in final-stage rank order, with their scores and positions.
fn finalists(
    c: &mut PgConnection,
    call_id: Uuid,
    last_stage: i32,
) -> Result<Vec<(CaseRow, Centi, i32)>, ScoringError> {
    let rows: Vec<(CaseRow, i64, Option<i32>)> = evaluation_cases::table
        .inner_join(stage_results::table)
        .filter(evaluation_cases::call_id.eq(call_id))
        .filter(stage_results::stage.eq(last_stage))
        .filter(stage_results::advanced.eq(true))
        .filter(evaluation_cases::status.eq_any(["finalist", "selected", "not_selected"]))
        .select((
            CaseRow::as_select(),
            stage_results::total_centi,
            stage_results::position,
        ))
        .load(c)?;
    let mut out: Vec<(CaseRow, Centi, i32)> = rows
        .into_iter()
        .map(|(k, t, p)| (k, Centi(t), p.unwrap_or(i32::MAX)))
        .collect();
    out.sort_by_key(|(_, _, p)| *p);
    Ok(out)
}

type DecisionRow = (
    Uuid,
    serde_json::Value,
    i64,
    Option<serde_json::Value>,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn load_decision(c: &mut PgConnection, call_id: Uuid) -> Result<Option<Decision>, ScoringError> {
    let row: Option<DecisionRow> = decisions::table
        .find(call_id)
        .select((
            decisions::call_id,
            decisions::selected,
            decisions::total_centi,
            decisions::departure,
            decisions::override_reason,
            decisions::decided_by,
            decisions::decided_at,
            decisions::published_at,
        ))
        .first(c)
        .optional()?;
    Ok(row.map(
        |(call, selected, total, departure, reason, by, at, published)| Decision {
            call_id: call.into(),
            selected: serde_json::from_value(selected).unwrap_or_default(),
            total_centi: total,
            departure: departure.and_then(|d| serde_json::from_value(d).ok()),
            override_reason: reason,
            decided_by: by,
            decided_at: at,
            published_at: published,
        },
    ))
}

/// Proposes the portfolio: the exact optimum under the call's constraints, or the officer's
/// override (a reason is required; an empty selection is "select nobody"). Can be redone
/// until published.
pub async fn propose(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<ProposeSelection>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "select the portfolio")?;
    let call_id = path.into_inner();
    let req = body.into_inner();
    let by = caller.0.sub.clone();
    let decision = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (call, cfg) = configured_call(c, call_id, true)?;
                if call.published_at.is_some() {
                    return Err(ScoringError::Conflict(
                        "the decision is published and final".into(),
                    ));
                }
                let last = cfg.stages.len() as i32 - 1;
                let closed: i64 = stage_closures::table
                    .find((call_id, last))
                    .count()
                    .get_result(c)?;
                if closed == 0 {
                    return Err(ScoringError::Conflict(format!(
                        "close the last stage ({}) before selecting",
                        cfg.stages[last as usize].name
                    )));
                }
                let finalists = finalists(c, call_id, last)?;
                let candidates: Vec<Candidate> = finalists
                    .iter()
                    .map(|(k, score, _)| Candidate {
                        proposal: k.proposal_id,
                        score: *score,
                        categories: assign::categories(&k.members()),
                    })
                    .collect();
                let constraints = config::constraints(&cfg);
                let k = cfg.teams as usize;
                let (indices, override_reason) = match req.override_with {
                    Some(o) => {
                        if o.reason.trim().is_empty() {
                            return Err(CommonError::validation(
                                "override.reason",
                                "an override must say why",
                            )
                            .into());
                        }
                        let mut idx = Vec::new();
                        for (i, p) in o.selected.iter().enumerate() {
                            let at = candidates
                                .iter()
                                .position(|c| c.proposal == p.0)
                                .ok_or_else(|| {
                                    ScoringError::from(CommonError::validation(
                                        format!("override.selected[{i}]"),
                                        format!("proposal {p} is not a finalist"),
                                    ))
                                })?;
                            if idx.contains(&at) {
                                return Err(CommonError::validation(
                                    format!("override.selected[{i}]"),
                                    "appears twice",
                                )
                                .into());
                            }
                            idx.push(at);
                        }
                        idx.sort_unstable();
                        (idx, Some(o.reason.trim().to_owned()))
                    }
                    None => {
                        let chosen =
                            selection::select(&candidates, k.min(candidates.len()), &constraints)
                                .map_err(|e| ScoringError::Selection(e.to_string()))?;
                        let idx = chosen
                            .selected
                            .iter()
                            .filter_map(|p| candidates.iter().position(|c| c.proposal == *p))
                            .collect();
                        (idx, None)
                    }
                };
                let departure = selection::explain(
                    &candidates,
                    k.min(candidates.len()),
                    &indices,
                    &constraints,
                )
                .map(|d| Departure {
                    promoted: d.promoted.into_iter().map(ProposalId).collect(),
                    displaced: d.displaced.into_iter().map(ProposalId).collect(),
                    reasons: d.reasons,
                });
                let selected: Vec<ProposalId> = indices
                    .iter()
                    .map(|&i| ProposalId(candidates[i].proposal))
                    .collect();
                let total: i64 = indices.iter().map(|&i| candidates[i].score.0).sum();
                let values = (
                    decisions::selected.eq(serde_json::to_value(&selected).unwrap_or_default()),
                    decisions::total_centi.eq(total),
                    decisions::departure.eq(departure
                        .as_ref()
                        .map(|d| serde_json::to_value(d).unwrap_or_default())),
                    decisions::override_reason.eq(&override_reason),
                    decisions::decided_by.eq(&by),
                    decisions::decided_at.eq(Utc::now()),
                );
                diesel::insert_into(decisions::table)
                    .values((decisions::call_id.eq(call_id), values.clone()))
                    .on_conflict(decisions::call_id)
                    .do_update()
                    .set(values)
                    .execute(c)?;
                load_decision(c, call_id)?.ok_or(ScoringError::Conflict("decision vanished".into()))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}

/// The decision: ministry staff see it as soon as it is proposed; everyone else once published.
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    let call_id = path.into_inner();
    let decision = state.db(move |c, _| load_decision(c, call_id)).await?;
    match decision {
        Some(d) if d.published_at.is_some() || caller.0.has_any_role(STAFF) => {
            Ok(HttpResponse::Ok().json(d))
        }
        _ => Err(ScoringError::NotPublished(call_id)),
    }
}

/// Publishes the proposed decision: final, announced with the selected teams' requested
/// resources (the grant services start from this event).
pub async fn publish(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "publish the decision")?;
    let call_id = path.into_inner();
    let actor = caller.actor();
    let decision = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let (call, cfg) = configured_call(c, call_id, true)?;
                if call.published_at.is_some() {
                    return Err(ScoringError::Conflict(
                        "the decision is already published".into(),
                    ));
                }
                let decision = load_decision(c, call_id)?
                    .ok_or_else(|| ScoringError::Conflict("propose a selection first".into()))?;
                let now = Utc::now().trunc_subsecs(6);
                let last = cfg.stages.len() as i32 - 1;
                let finalists = finalists(c, call_id, last)?;
                let mut teams = Vec::new();
                for (k, score, position) in &finalists {
                    let chosen = decision.selected.iter().any(|p| p.0 == k.proposal_id);
                    diesel::update(evaluation_cases::table.find(k.id))
                        .set(evaluation_cases::status.eq(if chosen {
                            "selected"
                        } else {
                            "not_selected"
                        }))
                        .execute(c)?;
                    if chosen {
                        teams.push(SelectedTeam {
                            proposal_id: k.proposal_id.into(),
                            consortium_id: k.consortium_id.into(),
                            consortium_name: k.consortium_name.clone(),
                            title: k.title.clone(),
                            rank: *position,
                            score_centi: score.0,
                            resources: k.resources(),
                        });
                    }
                }
                diesel::update(decisions::table.find(call_id))
                    .set(decisions::published_at.eq(now))
                    .execute(c)?;
                diesel::update(calls::table.find(call_id))
                    .set(calls::published_at.eq(now))
                    .execute(c)?;
                let event = SelectionPublished {
                    call_id: CallId(call_id),
                    selected: teams,
                    departure: decision.departure.clone(),
                    override_reason: decision.override_reason.clone(),
                    published_at: now,
                };
                tx.publish(c, actor.clone(), &event)?;
                load_decision(c, call_id)?.ok_or(ScoringError::Conflict("decision vanished".into()))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}
