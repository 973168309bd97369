//! The portfolio decision. Every proposal, override and publication is a new version (a row
//! of `decision_versions`, append-only); the current decision is the latest version.

use super::STAFF;
use crate::domain::decision::{self as rules, OverrideError};
use crate::domain::{config, selection, Centi};
use crate::error::ScoringError;
use crate::records;
use crate::schema::{calls, decision_versions, evaluation_cases, stage_closures, tie_decisions};
use crate::store::{configured_call, undecided_call};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{DecideTie, Decision, Departure, ProposeSelection};
use kaip_contracts::events::{CallMaxima, SelectedTeam, SelectionPublished};
use kaip_contracts::{CallId, Krw, ProposalId};
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use uuid::Uuid;

#[derive(Queryable, Selectable)]
#[diesel(table_name = decision_versions)]
pub struct VersionRow {
    pub call_id: Uuid,
    pub version: i32,
    pub kind: String,
    pub selected: serde_json::Value,
    pub total_centi: i64,
    pub departure: Option<serde_json::Value>,
    pub override_reason: Option<String>,
    pub waivers: serde_json::Value,
    pub explanation: serde_json::Value,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    pub publishes_version: Option<i32>,
    pub inputs_sha256: Option<String>,
    /// The version's place in the order of records, assigned by the database.
    pub recorded_seq: i64,
}

impl VersionRow {
    pub fn dto(self) -> Decision {
        let published = self.kind == "published";
        Decision {
            call_id: self.call_id.into(),
            version: self.version,
            kind: self.kind,
            selected: serde_json::from_value(self.selected).unwrap_or_default(),
            total_centi: self.total_centi,
            departure: self.departure.and_then(|d| serde_json::from_value(d).ok()),
            override_reason: self.override_reason,
            waivers: serde_json::from_value(self.waivers).unwrap_or_default(),
            explanation: serde_json::from_value(self.explanation).unwrap_or_default(),
            published_at: published.then_some(self.decided_at),
            published_by: published.then(|| self.decided_by.clone()),
            decided_by: self.decided_by,
            decided_at: self.decided_at,
            publishes_version: self.publishes_version,
            inputs_sha256: self.inputs_sha256,
        }
    }
}

/// Every version of a call's decision, oldest first.
pub fn versions(c: &mut PgConnection, call_id: Uuid) -> QueryResult<Vec<VersionRow>> {
    decision_versions::table
        .filter(decision_versions::call_id.eq(call_id))
        .order(decision_versions::version.asc())
        .select(VersionRow::as_select())
        .load(c)
}

/// The current decision: the latest version.
pub fn current(c: &mut PgConnection, call_id: Uuid) -> QueryResult<Option<VersionRow>> {
    decision_versions::table
        .filter(decision_versions::call_id.eq(call_id))
        .order(decision_versions::version.desc())
        .select(VersionRow::as_select())
        .first(c)
        .optional()
}

fn departure_dto(d: selection::Departure) -> Departure {
    Departure {
        promoted: d.promoted.into_iter().map(ProposalId).collect(),
        displaced: d.displaced.into_iter().map(ProposalId).collect(),
        reasons: d.reasons,
    }
}

/// Proposes the portfolio: the exact optimum under the call's constraints, or the officer's
/// override (a reason is required; every rule it breaks must be waived by name; an empty
/// selection is "select nobody"). Each call records a new version, until publication.
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
                let (call, cfg) = undecided_call(c, call_id)?;
                let replacement = call.replacement()?;
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
                let finalists: Vec<_> = records::finalists(c, call_id, last)?
                    .into_iter()
                    .map(|(_, f, _)| f)
                    .collect();
                let ties = records::tie_decisions_of(c, call_id, last)?;
                let (candidates, groups) =
                    rules::candidates(&finalists, &records::domain_ties(&ties));
                let constraints = config::constraints(&cfg);
                let k = cfg.teams as usize;
                let computed = rules::propose(&candidates, k, &constraints);
                let (kind, indices, departure, explanation, reason, waivers) = match req
                    .override_with
                {
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
                        // A replacement call fills the places its gate freed and no more:
                        // no waiver lifts this (`teams` waives the programme's count, not
                        // the gate's places).
                        if let Some(r) = &replacement {
                            if idx.len() > r.places.max(0) as usize {
                                return Err(CommonError::validation(
                                    "override.selected",
                                    format!(
                                        "a replacement call for `{}` selects at most its {} place(s), waiver or not: {} named",
                                        r.gate,
                                        r.places,
                                        idx.len()
                                    ),
                                )
                                .into());
                            }
                        }
                        idx.sort_unstable();
                        let optimum = computed.as_ref().ok().map(|p| p.total);
                        let explanation = rules::check_override(
                            &candidates,
                            k.min(candidates.len()),
                            &idx,
                            &constraints,
                            &o.waivers,
                            optimum,
                        )
                        .map_err(|e| match e {
                            OverrideError::Unwaived { waiver, rule } => {
                                ScoringError::OverrideBreaksRules { waiver, rule }
                            }
                            OverrideError::BadWaiver { index, rule } => {
                                CommonError::validation(format!("override.waivers[{index}]"), rule)
                                    .into()
                            }
                        })?;
                        let departure = selection::explain(
                            &candidates,
                            k.min(candidates.len()),
                            &idx,
                            &constraints,
                        )
                        .map(|d| selection::Departure {
                            reasons: explanation.clone(),
                            ..d
                        });
                        (
                            "override",
                            idx,
                            departure,
                            explanation,
                            Some(o.reason.trim().to_owned()),
                            o.waivers,
                        )
                    }
                    None => {
                        let p = computed.map_err(|e| ScoringError::Selection(e.to_string()))?;
                        let chosen: Vec<Uuid> =
                            p.selected.iter().map(|&i| candidates[i].proposal).collect();
                        let blocking = rules::straddling(&groups, &chosen);
                        if !blocking.is_empty() {
                            return Err(ScoringError::TieUnresolved(super::stages::describe_ties(
                                &blocking,
                                "who is selected",
                            )));
                        }
                        (
                            "proposed",
                            p.selected,
                            p.departure,
                            p.explanation,
                            None,
                            Vec::new(),
                        )
                    }
                };
                let selected: Vec<ProposalId> = indices
                    .iter()
                    .map(|&i| ProposalId(candidates[i].proposal))
                    .collect();
                let total: i64 = indices.iter().map(|&i| candidates[i].score.0).sum();
                let version = current(c, call_id)?.map_or(1, |v| v.version + 1);
                diesel::insert_into(decision_versions::table)
                    .values((
                        decision_versions::call_id.eq(call_id),
                        decision_versions::version.eq(version),
                        decision_versions::kind.eq(kind),
                        decision_versions::selected
                            .eq(serde_json::to_value(&selected).unwrap_or_default()),
                        decision_versions::total_centi.eq(total),
                        decision_versions::departure.eq(departure
                            .map(|d| serde_json::to_value(departure_dto(d)).unwrap_or_default())),
                        decision_versions::override_reason.eq(&reason),
                        decision_versions::waivers
                            .eq(serde_json::to_value(&waivers).unwrap_or_default()),
                        decision_versions::explanation
                            .eq(serde_json::to_value(&explanation).unwrap_or_default()),
                        decision_versions::decided_by.eq(&by),
                        decision_versions::decided_at.eq(Utc::now().trunc_subsecs(6)),
                    ))
                    .execute(c)?;
                current(c, call_id)?
                    .map(VersionRow::dto)
                    .ok_or(ScoringError::Conflict("decision vanished".into()))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}

/// The current decision: ministry staff see it as soon as it is proposed; everyone else
/// once published (and then the publication).
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    let call_id = path.into_inner();
    let decision = state
        .db(move |c, _| Ok::<_, ScoringError>(current(c, call_id)?))
        .await?;
    match decision {
        Some(d) if d.kind == "published" || caller.0.has_any_role(STAFF) => {
            Ok(HttpResponse::Ok().json(d.dto()))
        }
        _ => Err(ScoringError::NotPublished(call_id)),
    }
}

/// Every version of the decision, oldest first (ministry staff).
pub async fn history(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read the decision's history")?;
    let call_id = path.into_inner();
    let rows = state
        .db(move |c, _| {
            crate::store::find_call(c, call_id, false)?;
            Ok::<_, ScoringError>(versions(c, call_id)?)
        })
        .await?;
    let out: Vec<Decision> = rows.into_iter().map(VersionRow::dto).collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Publishes the current proposal: final, recorded as a new version naming the publisher
/// and the digest of the inputs it rests on, and announced with the selected teams'
/// requested resources (the grant services start from this event).
pub async fn publish(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "publish the decision")?;
    let call_id = path.into_inner();
    let actor = caller.actor();
    let by = caller.0.sub.clone();
    let decision = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let (call, cfg) = undecided_call(c, call_id)?;
                let proposed = current(c, call_id)?
                    .ok_or_else(|| ScoringError::Conflict("propose a selection first".into()))?;
                // A replacement call's selection is the committee's: a majority of it must
                // have approved this very version.
                super::committee::require_majority(c, &call, proposed.version)?;
                // The proposal must rest on every input that can still change the decision
                // (settings, the last stage's sheets and tie decisions, a finalist's
                // withdrawal): one recorded after it (in the database's order: the call's
                // row, held here and by every writer of those inputs, orders them) would
                // not be reflected. Nothing is written; the officer proposes again.
                let later = records::inputs_recorded_after(
                    c,
                    call_id,
                    cfg.stages.len() as i32 - 1,
                    proposed.recorded_seq,
                    None,
                )?;
                if !later.is_empty() {
                    return Err(ScoringError::ProposalOutdated {
                        version: proposed.version,
                        later: records::summarise(later, 10),
                    });
                }
                let now = Utc::now().trunc_subsecs(6);
                let last = cfg.stages.len() as i32 - 1;
                let finalists = records::finalists(c, call_id, last)?;
                let ties = records::tie_decisions_of(c, call_id, last)?;
                let (candidates, _) = rules::candidates(
                    &finalists
                        .iter()
                        .map(|(_, f, _)| f.clone())
                        .collect::<Vec<_>>(),
                    &records::domain_ties(&ties),
                );
                // An unreadable stored selection is a fault, never "select nobody" (L-d).
                let selected: Vec<ProposalId> = serde_json::from_value(proposed.selected.clone())
                    .map_err(|e| {
                        CommonError::internal(anyhow::anyhow!(
                            "call {call_id}: selection of version {} does not decode: {e}",
                            proposed.version
                        ))
                    })?;
                // A version proposed before the places bound existed may name more teams
                // than the replacement call's places: never published (L-c).
                if let Some(r) = call.replacement()? {
                    if selected.len() > r.places.max(0) as usize {
                        return Err(CommonError::validation(
                            "override.selected",
                            format!(
                                "a replacement call for `{}` selects at most its {} place(s), waiver or not: version {} names {}; propose again",
                                r.gate,
                                r.places,
                                proposed.version,
                                selected.len()
                            ),
                        )
                        .into());
                    }
                }
                // A proposal withdrawn (or otherwise gone from the finalists) since this
                // selection was proposed cannot be published as selected: the portfolio
                // would be short of a team and might break its constraints. The officer
                // proposes again, with the field as it is now.
                if let Some(gone) = selected
                    .iter()
                    .find(|p| !finalists.iter().any(|(k, _, _)| k.proposal_id == p.0))
                {
                    return Err(ScoringError::Conflict(format!(
                        "proposal {} of version {} is no longer a finalist (withdrawn since the \
                         selection was proposed): propose the selection again before publishing",
                        gone.0, proposed.version
                    )));
                }
                let mut teams = Vec::new();
                for (k, f, _) in &finalists {
                    let chosen = selected.iter().any(|p| p.0 == k.proposal_id);
                    diesel::update(evaluation_cases::table.find(k.id))
                        .set(evaluation_cases::status.eq(if chosen {
                            "selected"
                        } else {
                            "not_selected"
                        }))
                        .execute(c)?;
                    if chosen {
                        let rank = candidates
                            .iter()
                            .position(|x| x.proposal == f.proposal)
                            .map_or(i32::MAX, |i| i as i32 + 1);
                        teams.push((
                            rank,
                            SelectedTeam {
                                proposal_id: k.proposal_id.into(),
                                consortium_id: k.consortium_id.into(),
                                consortium_name: k.consortium_name.clone(),
                                title: k.title.clone(),
                                rank,
                                score_centi: Centi(f.score.0).0,
                                resources: k.resources(),
                            },
                        ));
                    }
                }
                teams.sort_by_key(|(rank, _)| *rank);
                let teams: Vec<SelectedTeam> = teams.into_iter().map(|(_, t)| t).collect();
                let digest = crate::verify::inputs_digest(c, call_id, &cfg)?;
                diesel::insert_into(decision_versions::table)
                    .values((
                        decision_versions::call_id.eq(call_id),
                        decision_versions::version.eq(proposed.version + 1),
                        decision_versions::kind.eq("published"),
                        decision_versions::selected.eq(&proposed.selected),
                        decision_versions::total_centi.eq(proposed.total_centi),
                        decision_versions::departure.eq(&proposed.departure),
                        decision_versions::override_reason.eq(&proposed.override_reason),
                        decision_versions::waivers.eq(&proposed.waivers),
                        decision_versions::explanation.eq(&proposed.explanation),
                        decision_versions::decided_by.eq(&by),
                        decision_versions::decided_at.eq(now),
                        decision_versions::publishes_version.eq(proposed.version),
                        decision_versions::inputs_sha256.eq(&digest),
                    ))
                    .execute(c)?;
                diesel::update(calls::table.find(call_id))
                    .set(calls::published_at.eq(now))
                    .execute(c)?;
                let published = current(c, call_id)?
                    .ok_or(ScoringError::Conflict("decision vanished".into()))?
                    .dto();
                let maxima: (Option<i64>, Option<i64>) = calls::table
                    .find(call_id)
                    .select((calls::max_data_budget_krw, calls::max_talent_funding_krw))
                    .first(c)?;
                let event = SelectionPublished {
                    call_id: CallId(call_id),
                    team_maxima: match maxima {
                        (Some(d), Some(t)) => Some(CallMaxima {
                            data_budget_krw: Krw(d),
                            talent_funding_krw: Krw(t),
                        }),
                        _ => None,
                    },
                    selected: teams,
                    departure: published.departure.clone(),
                    override_reason: published.override_reason.clone(),
                    published_at: now,
                    replaces: call.replacement()?,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok(published)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(decision))
}

/// Records an officer's order for proposals the declared tie-break leaves tied, best first,
/// with the reason: a new row, never changed (a later decision for the same group wins).
/// Closing the stage or proposing the selection uses it.
pub async fn decide_tie(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<DecideTie>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "decide a tie")?;
    let call_id = path.into_inner();
    let req = body.into_inner();
    let by = caller.0.sub.clone();
    let out = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (_, cfg) = undecided_call(c, call_id)?;
                let stages = cfg.stages.len() as i32;
                if !(0..stages).contains(&req.stage) {
                    return Err(CommonError::validation(
                        "stage",
                        format!("must be between 0 and {}", stages - 1),
                    )
                    .into());
                }
                let closed: i64 = stage_closures::table
                    .find((call_id, req.stage))
                    .count()
                    .get_result(c)?;
                if closed > 0 && req.stage < stages - 1 {
                    return Err(ScoringError::Conflict(format!(
                        "stage {} is closed: who advanced is recorded",
                        req.stage
                    )));
                }
                if req.reason.trim().is_empty() {
                    return Err(
                        CommonError::validation("reason", "a tie decision must say why").into(),
                    );
                }
                if req.order.len() < 2 {
                    return Err(CommonError::validation(
                        "order",
                        "names at least two tied proposals, best first",
                    )
                    .into());
                }
                let cases: Vec<Uuid> = evaluation_cases::table
                    .filter(evaluation_cases::call_id.eq(call_id))
                    .select(evaluation_cases::proposal_id)
                    .load(c)?;
                for (i, p) in req.order.iter().enumerate() {
                    if !cases.contains(&p.0) {
                        return Err(CommonError::validation(
                            format!("order[{i}]"),
                            format!("proposal {p} is not a proposal of this call"),
                        )
                        .into());
                    }
                    if req.order[..i].contains(p) {
                        return Err(CommonError::validation(
                            format!("order[{i}]"),
                            "appears twice",
                        )
                        .into());
                    }
                }
                let id = Uuid::now_v7();
                diesel::insert_into(tie_decisions::table)
                    .values((
                        tie_decisions::id.eq(id),
                        tie_decisions::call_id.eq(call_id),
                        tie_decisions::stage.eq(req.stage),
                        tie_decisions::proposals
                            .eq(serde_json::to_value(&req.order).unwrap_or_default()),
                        tie_decisions::reason.eq(req.reason.trim()),
                        tie_decisions::decided_by.eq(&by),
                        tie_decisions::decided_at.eq(Utc::now().trunc_subsecs(6)),
                    ))
                    .execute(c)?;
                let all = records::tie_decisions_of(c, call_id, req.stage)?;
                all.into_iter()
                    .find(|t| t.id == id)
                    .ok_or(ScoringError::Conflict("tie decision vanished".into()))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Every tie decision of a call, per stage, oldest first (ministry staff).
pub async fn ties(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read tie decisions")?;
    let call_id = path.into_inner();
    let out = state
        .db(move |c, _| {
            let (_, cfg) = configured_call(c, call_id, false)?;
            let mut all = Vec::new();
            for stage in 0..cfg.stages.len() as i32 {
                all.extend(records::tie_decisions_of(c, call_id, stage)?);
            }
            Ok::<_, ScoringError>(all)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}
