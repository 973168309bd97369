//! Expert panels for stage gates (issue #11): the reviewers, conflicts of interest and score
//! sheets of the proposal stages, applied to the teams a call (and its replacement calls)
//! selected.
//!
//! - `POST /panels` (staff): the panel of a gate (one per gate key that is not voided; the
//!   key must be one milestones announced with `GateDefined`), its teams (the selected
//!   consortia of the call and of replacement calls, all or some, never one a gate
//!   eliminated), its score sheet and reviewers per team.
//! - `POST /panels/{id}/void` (staff): an open panel voided with a reason (a row of its own);
//!   it then takes nothing and publishes nothing, and the gate may get a new panel.
//! - `POST /panels/{id}/assignments` (staff): assigns registered reviewers with
//!   [`assign::plan`], the stages' planner: a reviewer of a consortium member's organisation
//!   (name or registration number) or with a declared conflict is never assigned to that
//!   team, and the pair is reported. Run again, it tops up teams that lost a reviewer to a
//!   conflict declared since.
//! - `GET /panel-assignments` (a reviewer: their own; staff: everyone's) and
//!   `PUT /panel-assignments/{id}/scores` (the reviewer it is assigned to): the stage score
//!   sheet and its checks (whole points per criterion, every criterion once, comments on
//!   criteria); each submission is a new version.
//! - `POST /panels/{id}/close` (staff): each team's consensus out of 100
//!   ([`panel::consensus`]) and one `GatePanelScored` per team through the outbox, in the
//!   closing transaction. Closing a closed panel answers the panel and publishes nothing.
//!
//! Consortia see nothing of panels. Locks: the panel's row (`FOR UPDATE` to assign and
//! close, `FOR SHARE` to score), so a sheet is saved wholly before the close or refused
//! after it. A conflict declared after an assignment takes the pair out: its sheet is
//! refused and does not count at the close (assigning again refills the team).

use super::STAFF;
use crate::domain::assign::{self, CaseInfo, Pool};
use crate::domain::panel;
use crate::domain::ranking::Sheet;
use crate::error::ScoringError;
use crate::schema::{
    eliminated_teams, evaluation_cases, gate_panel_assignment_voids, gate_panel_assignments,
    gate_panel_blocked, gate_panel_closures, gate_panel_counted, gate_panel_results,
    gate_panel_sheets, gate_panel_voids, gate_panels, known_gates,
};
use crate::store::{self, find_call, CaseRow};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_bus::JsonbText;
use kaip_contracts::dto::panels::{
    GatePanel, NewGatePanel, PanelAssignment, PanelAssignmentReport, PanelBlocked, PanelCriterion,
    PanelTeamResult, VoidPanel,
};
use kaip_contracts::dto::scoring::ScoreSheet;
use kaip_contracts::events::GatePanelScored;
use kaip_contracts::{CallId, ConsortiumId, Role};
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The most reviewers a panel asks per team.
pub const MAX_REVIEWERS_PER_TEAM: u32 = 20;

type PanelCols = (
    Uuid,
    String,
    Uuid,
    Vec<Uuid>,
    serde_json::Value,
    i32,
    String,
    String,
    DateTime<Utc>,
    Vec<Uuid>,
);

struct PanelRow {
    id: Uuid,
    gate: String,
    call_id: Uuid,
    teams: Vec<Uuid>,
    criteria: Vec<PanelCriterion>,
    reviewers_per_team: i32,
    reason: String,
    created_by: String,
    created_at: DateTime<Utc>,
    replacement_calls: Vec<Uuid>,
}

impl PanelRow {
    /// The calls whose selected teams the panel scores: its call and replacement calls.
    fn calls(&self) -> Vec<Uuid> {
        let mut out = vec![self.call_id];
        out.extend(self.replacement_calls.iter().copied());
        out
    }

    fn from_cols(r: PanelCols) -> Result<Self, ScoringError> {
        let criteria = serde_json::from_value(r.4).map_err(|e| {
            CommonError::internal(anyhow::anyhow!("stored criteria of panel {}: {e}", r.0))
        })?;
        Ok(Self {
            id: r.0,
            gate: r.1,
            call_id: r.2,
            teams: r.3,
            criteria,
            reviewers_per_team: r.5,
            reason: r.6,
            created_by: r.7,
            created_at: r.8,
            replacement_calls: r.9,
        })
    }
}

fn panel_cols() -> (
    gate_panels::id,
    gate_panels::gate,
    gate_panels::call_id,
    gate_panels::teams,
    gate_panels::criteria,
    gate_panels::reviewers_per_team,
    gate_panels::reason,
    gate_panels::created_by,
    gate_panels::created_at,
    gate_panels::replacement_calls,
) {
    (
        gate_panels::id,
        gate_panels::gate,
        gate_panels::call_id,
        gate_panels::teams,
        gate_panels::criteria,
        gate_panels::reviewers_per_team,
        gate_panels::reason,
        gate_panels::created_by,
        gate_panels::created_at,
        gate_panels::replacement_calls,
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    None,
    Share,
    Update,
}

fn find_panel(c: &mut PgConnection, id: Uuid, lock: Lock) -> Result<PanelRow, ScoringError> {
    let q = gate_panels::table.find(id).select(panel_cols());
    let row: Option<PanelCols> = match lock {
        Lock::None => q.first(c).optional()?,
        Lock::Share => q.for_share().first(c).optional()?,
        Lock::Update => q.for_update().first(c).optional()?,
    };
    PanelRow::from_cols(row.ok_or(ScoringError::PanelNotFound(id))?)
}

fn closure(c: &mut PgConnection, id: Uuid) -> QueryResult<Option<(String, DateTime<Utc>)>> {
    gate_panel_closures::table
        .find(id)
        .select((
            gate_panel_closures::closed_by,
            gate_panel_closures::closed_at,
        ))
        .first(c)
        .optional()
}

type VoidRecord = (String, String, DateTime<Utc>);

/// The panel's void, if it was voided: (reason, by, at).
fn void_of(c: &mut PgConnection, id: Uuid) -> QueryResult<Option<VoidRecord>> {
    gate_panel_voids::table
        .find(id)
        .select((
            gate_panel_voids::reason,
            gate_panel_voids::voided_by,
            gate_panel_voids::voided_at,
        ))
        .first(c)
        .optional()
}

/// Refuses a closed (`PANEL_CLOSED`) or voided (`PANEL_VOIDED`) panel: what assigning,
/// scoring and voiding an assignment need.
fn ensure_open(c: &mut PgConnection, p: &PanelRow) -> Result<(), ScoringError> {
    if let Some((_, at)) = closure(c, p.id)? {
        return Err(ScoringError::PanelClosed(p.gate.clone(), at));
    }
    if let Some((_, _, at)) = void_of(c, p.id)? {
        return Err(ScoringError::PanelVoided(p.id, p.gate.clone(), at));
    }
    Ok(())
}

fn panel_dto(c: &mut PgConnection, p: PanelRow) -> Result<GatePanel, ScoringError> {
    let closed = closure(c, p.id)?;
    let void = void_of(c, p.id)?;
    let rows: Vec<(Uuid, i64, i64, serde_json::Value, i32)> = gate_panel_results::table
        .filter(gate_panel_results::panel_id.eq(p.id))
        .order(gate_panel_results::consortium_id.asc())
        .select((
            gate_panel_results::consortium_id,
            gate_panel_results::score_e4,
            gate_panel_results::total_centi,
            gate_panel_results::per_criterion,
            gate_panel_results::reviewers,
        ))
        .load(c)?;
    Ok(GatePanel {
        id: p.id,
        gate: p.gate,
        call_id: CallId(p.call_id),
        replacement_call_ids: p.replacement_calls.into_iter().map(CallId).collect(),
        teams: p.teams.into_iter().map(ConsortiumId).collect(),
        criteria: p.criteria,
        reviewers_per_team: p.reviewers_per_team.max(0) as u32,
        reason: p.reason,
        created_by: p.created_by,
        created_at: p.created_at,
        closed_by: closed.as_ref().map(|(by, _)| by.clone()),
        closed_at: closed.map(|(_, at)| at),
        voided_by: void.as_ref().map(|(_, by, _)| by.clone()),
        voided_at: void.as_ref().map(|(_, _, at)| *at),
        void_reason: void.map(|(why, _, _)| why),
        results: rows
            .into_iter()
            .map(|(team, e4, centi, per, n)| PanelTeamResult {
                consortium_id: ConsortiumId(team),
                score: panel::format_e4(e4),
                total_centi: centi,
                per_criterion: serde_json::from_value(per).unwrap_or_default(),
                reviewers: n.max(0) as u32,
            })
            .collect(),
    })
}

/// The selected cases of the panel's teams in its calls, one per team: each team's members,
/// for the conflict rules. The case id stands for the team in [`assign::plan`]. A team
/// selected by two of the panel's calls (a survivor who also won a replacement call) is
/// one case, the newest, whose members are every member of all its cases: it is staffed
/// once, and a reviewer conflicted with a member of either proposal never scores it.
fn team_cases(c: &mut PgConnection, p: &PanelRow) -> QueryResult<Vec<CaseRow>> {
    let rows: Vec<CaseRow> = evaluation_cases::table
        .filter(evaluation_cases::call_id.eq_any(p.calls()))
        .filter(evaluation_cases::consortium_id.eq_any(&p.teams))
        .filter(evaluation_cases::status.eq("selected"))
        .order((
            evaluation_cases::opened_at.asc(),
            evaluation_cases::id.asc(),
        ))
        .select(CaseRow::as_select())
        .load(c)?;
    let mut members: BTreeMap<Uuid, Vec<serde_json::Value>> = BTreeMap::new();
    let mut newest: BTreeMap<Uuid, CaseRow> = BTreeMap::new();
    for k in rows {
        let all = members.entry(k.consortium_id).or_default();
        let mine: Vec<serde_json::Value> = k.members.decode_or_default("evaluation_cases.members");
        for m in mine {
            if !all.contains(&m) {
                all.push(m);
            }
        }
        newest.insert(k.consortium_id, k);
    }
    let mut out: Vec<CaseRow> = newest
        .into_values()
        .map(|mut k| {
            let all = members.remove(&k.consortium_id).unwrap_or_default();
            k.members = JsonbText::encode(&all)
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
            Ok(k)
        })
        .collect::<QueryResult<_>>()?;
    out.sort_by_key(|k| k.id);
    Ok(out)
}

fn case_info(k: &CaseRow) -> CaseInfo {
    CaseInfo {
        case_id: k.id,
        proposal_id: k.proposal_id,
        consortium_id: k.consortium_id,
        members: k.members(),
    }
}

/// Why `reviewer` may not score `team` now, if they may not (the stages' rule).
fn conflict_now(pool: &Pool, cases: &[CaseRow], reviewer: &str, team: Uuid) -> Option<String> {
    let info = pool.0.iter().find(|r| r.id == reviewer)?;
    let case = cases.iter().find(|k| k.consortium_id == team)?;
    assign::conflict(info, &case_info(case), &pool.1)
}

/// A team of the panel eliminated at another gate since the panel was made (or whose
/// `TeamEliminated` arrived after it): milestones would dead-letter its score, so the panel
/// takes no assignment and no close until it is voided and made again without the team.
fn ensure_none_eliminated(c: &mut PgConnection, p: &PanelRow) -> Result<(), ScoringError> {
    let hit: Option<(Uuid, String)> = eliminated_teams::table
        .filter(eliminated_teams::consortium_id.eq_any(&p.teams))
        .filter(eliminated_teams::gate.ne(&p.gate))
        .order((
            eliminated_teams::decided_at.asc(),
            eliminated_teams::consortium_id.asc(),
        ))
        .select((eliminated_teams::consortium_id, eliminated_teams::gate))
        .first(c)
        .optional()?;
    match hit {
        Some((team, gate)) => Err(ScoringError::Conflict(format!(
            "teams: team {team} of panel {} was eliminated at gate {gate} after the panel was made; its score cannot be recorded: void this panel and create a new one (it leaves the team out)",
            p.id
        ))),
        None => Ok(()),
    }
}

/// The panel's voided assignments (they neither count nor take sheets).
fn voided(c: &mut PgConnection, panel: Uuid) -> QueryResult<BTreeSet<Uuid>> {
    Ok(gate_panel_assignment_voids::table
        .inner_join(
            gate_panel_assignments::table
                .on(gate_panel_assignments::id.eq(gate_panel_assignment_voids::assignment_id)),
        )
        .filter(gate_panel_assignments::panel_id.eq(panel))
        .select(gate_panel_assignment_voids::assignment_id)
        .load::<Uuid>(c)?
        .into_iter()
        .collect())
}

/// A panel's replacement calls and named teams, at most (the programme has five places).
const MAX_REPLACEMENT_CALLS: usize = 20;
const MAX_PANEL_TEAMS: usize = 200;

fn is_gate_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `POST /panels`: an officer defines a gate's expert panel. The same request again by
/// the same officer (a retry after a lost answer) answers the panel with 200.
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<NewGatePanel>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "define a gate's expert panel")?;
    let req = body.into_inner();
    if !is_gate_key(&req.gate) {
        return Err(CommonError::validation(
            "gate",
            "the gate's key in milestones: 1 to 63 of a-z, 0-9 and '-', e.g. gate-1",
        )
        .into());
    }
    if !(1..=MAX_REVIEWERS_PER_TEAM).contains(&req.reviewers_per_team) {
        return Err(CommonError::validation(
            "reviewers_per_team",
            format!("a whole number from 1 to {MAX_REVIEWERS_PER_TEAM}"),
        )
        .into());
    }
    check_reason(&req.reason)?;
    if req.criteria.len() > 20 {
        return Err(CommonError::validation("criteria", "at most 20 criteria").into());
    }
    // Each entry costs a query inside the create's transaction (under the gate's lock).
    if req
        .replacement_call_ids
        .as_ref()
        .is_some_and(|v| v.len() > MAX_REPLACEMENT_CALLS)
    {
        return Err(CommonError::validation(
            "replacement_call_ids",
            format!("at most {MAX_REPLACEMENT_CALLS} replacement calls"),
        )
        .into());
    }
    if req
        .consortium_ids
        .as_ref()
        .is_some_and(|v| v.len() > MAX_PANEL_TEAMS)
    {
        return Err(CommonError::validation(
            "consortium_ids",
            format!("at most {MAX_PANEL_TEAMS} teams"),
        )
        .into());
    }
    for (i, c) in req.criteria.iter().enumerate() {
        if c.name.trim().is_empty() || c.name.len() > 200 {
            return Err(CommonError::validation(
                format!("criteria[{i}].name"),
                "1 to 200 bytes, not blank",
            )
            .into());
        }
        if c.max_points > 1000 {
            return Err(CommonError::validation(
                format!("criteria[{i}].max_points"),
                "at most 1000",
            )
            .into());
        }
    }
    panel::rubric(&req.criteria).validate()?;
    let by = caller.0.sub.clone();
    let out = state
        .db(move |c, _| {
            c.transaction(|c| {
                // Milestones announces every gate it defines: a key it never announced is
                // refused here, not dead-lettered with every score at the close.
                let Some((phase, has_panel)) = known_gates::table
                    .find(&req.gate)
                    .select((known_gates::phase, known_gates::expert_panel))
                    .first::<(i32, Option<bool>)>(c)
                    .optional()?
                else {
                    return Err(ScoringError::GateUnknown(req.gate.clone()));
                };
                // Milestones records a panel's scores only on a gate with an `expert_panel`
                // component, and only before the gate's decision is published.
                if has_panel == Some(false) {
                    return Err(CommonError::validation(
                        "gate",
                        format!("gate {} has no expert_panel component in milestones: its panel's scores could not be recorded", req.gate),
                    )
                    .into());
                }
                if let Some(at) = crate::schema::decided_known_gates::table
                    .find(&req.gate)
                    .select(crate::schema::decided_known_gates::decided_at)
                    .first::<DateTime<Utc>>(c)
                    .optional()?
                {
                    return Err(CommonError::validation(
                        "gate",
                        format!("gate {}'s decision was published at {at}: a panel's scores can no longer be recorded", req.gate),
                    )
                    .into());
                }
                let call = find_call(c, req.call_id.0, false)?;
                if call.published_at.is_none() {
                    return Err(ScoringError::NotPublished(req.call_id.0));
                }
                // Replacement calls: published, linked to a gate, each once.
                let mut extra: Vec<Uuid> = Vec::new();
                for (i, rc) in req.replacement_call_ids.iter().flatten().enumerate() {
                    let at = format!("replacement_call_ids[{i}]");
                    let Some(r) = crate::schema::calls::table
                        .find(rc.0)
                        .select(crate::store::CallRow::as_select())
                        .first(c)
                        .optional()?
                    else {
                        return Err(CommonError::validation(at, format!("call {} is not known to scoring", rc.0)).into());
                    };
                    // An unreadable stored link is an internal error, never "not a replacement".
                    let Some(from) = r.replacement()? else {
                        return Err(CommonError::validation(
                            at,
                            format!("call {} is not a replacement call (intake opens those for places a gate freed)", rc.0),
                        )
                        .into());
                    };
                    if r.published_at.is_none() {
                        return Err(CommonError::validation(
                            at,
                            format!("call {}'s selection is not published yet", rc.0),
                        )
                        .into());
                    }
                    // A replacement call fills a place an earlier gate freed: its gate is
                    // not this panel's, nor (where scoring knows its phase) a later one.
                    {
                        let from_phase: Option<i32> = known_gates::table
                            .find(&from.gate)
                            .select(known_gates::phase)
                            .first(c)
                            .optional()?;
                        if from.gate == req.gate || from_phase.is_some_and(|f| f >= phase) {
                            return Err(CommonError::validation(
                                at,
                                format!(
                                    "call {} replaces a place freed at gate {}, which is not a gate before {}",
                                    rc.0, from.gate, req.gate
                                ),
                            )
                            .into());
                        }
                    }
                    if rc.0 == req.call_id.0 || extra.contains(&rc.0) {
                        return Err(CommonError::validation(at, "appears twice (or is call_id)").into());
                    }
                    extra.push(rc.0);
                }
                let mut calls = vec![req.call_id.0];
                calls.extend(extra.iter().copied());
                let selected: BTreeSet<Uuid> = evaluation_cases::table
                    .filter(evaluation_cases::call_id.eq_any(&calls))
                    .filter(evaluation_cases::status.eq("selected"))
                    .select(evaluation_cases::consortium_id)
                    .load::<Uuid>(c)?
                    .into_iter()
                    .collect();
                // Teams an earlier gate eliminated (milestones' TeamEliminated), and where.
                let eliminated: BTreeMap<Uuid, String> = eliminated_teams::table
                    .filter(eliminated_teams::consortium_id.eq_any(selected.iter().copied().collect::<Vec<_>>()))
                    .order(eliminated_teams::decided_at.asc())
                    .select((eliminated_teams::consortium_id, eliminated_teams::gate))
                    .load::<(Uuid, String)>(c)?
                    .into_iter()
                    .collect();
                let teams: Vec<Uuid> = match &req.consortium_ids {
                    None => selected
                        .iter()
                        .copied()
                        .filter(|t| !eliminated.contains_key(t))
                        .collect(),
                    Some(ids) => {
                        let mut seen = BTreeSet::new();
                        for (i, t) in ids.iter().enumerate() {
                            if !selected.contains(&t.0) {
                                return Err(CommonError::validation(
                                    format!("consortium_ids[{i}]"),
                                    format!(
                                        "{} is not a team call {} (or a replacement call named) selected",
                                        t.0, req.call_id.0
                                    ),
                                )
                                .into());
                            }
                            if let Some(gate) = eliminated.get(&t.0) {
                                return Err(CommonError::validation(
                                    format!("consortium_ids[{i}]"),
                                    format!(
                                        "{} was eliminated at gate {gate}: a panel scores only teams still in the programme",
                                        t.0
                                    ),
                                )
                                .into());
                            }
                            if !seen.insert(t.0) {
                                return Err(CommonError::validation(
                                    format!("consortium_ids[{i}]"),
                                    "appears twice",
                                )
                                .into());
                            }
                        }
                        ids.iter().map(|t| t.0).collect()
                    }
                };
                if teams.is_empty() {
                    return Err(CommonError::validation(
                        "consortium_ids",
                        "a panel scores at least one selected team not eliminated",
                    )
                    .into());
                }
                // One panel per gate that is not voided: creating and voiding a gate's
                // panel take this lock on the key, one after the other.
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('gate_panel:' || $1))")
                    .bind::<diesel::sql_types::Text, _>(&req.gate)
                    .execute(c)?;
                let live: Option<Uuid> = gate_panels::table
                    .filter(gate_panels::gate.eq(&req.gate))
                    .filter(diesel::dsl::not(diesel::dsl::exists(
                        gate_panel_voids::table
                            .filter(gate_panel_voids::panel_id.eq(gate_panels::id)),
                    )))
                    .select(gate_panels::id)
                    .first(c)
                    .optional()?;
                if let Some(existing) = live {
                    // A retry of the request that made it (a lost 201) gets the panel; any
                    // other definition of the gate's panel is refused.
                    let p = find_panel(c, existing, Lock::None)?;
                    let same = p.call_id == req.call_id.0
                        && p.replacement_calls == extra
                        && p.teams == teams
                        && serde_json::to_value(&p.criteria).ok()
                            == serde_json::to_value(&req.criteria).ok()
                        && p.reviewers_per_team == req.reviewers_per_team as i32
                        && p.reason == req.reason.trim()
                        && p.created_by == by;
                    if !same {
                        return Err(ScoringError::PanelExists(req.gate.clone()));
                    }
                    return Ok((false, panel_dto(c, p)?));
                }
                let id = Uuid::now_v7();
                diesel::insert_into(gate_panels::table)
                    .values((
                        gate_panels::id.eq(id),
                        gate_panels::gate.eq(&req.gate),
                        gate_panels::call_id.eq(req.call_id.0),
                        gate_panels::replacement_calls.eq(&extra),
                        gate_panels::teams.eq(&teams),
                        gate_panels::criteria
                            .eq(serde_json::to_value(&req.criteria).unwrap_or_default()),
                        gate_panels::reviewers_per_team.eq(req.reviewers_per_team as i32),
                        gate_panels::reason.eq(req.reason.trim()),
                        gate_panels::created_by.eq(&by),
                        gate_panels::created_at.eq(Utc::now().trunc_subsecs(6)),
                    ))
                    .execute(c)?;
                let p = find_panel(c, id, Lock::None)?;
                Ok((true, panel_dto(c, p)?))
            })
        })
        .await?;
    Ok(if out.0 {
        HttpResponse::Created().json(out.1)
    } else {
        HttpResponse::Ok().json(out.1)
    })
}

/// `GET /panels/{id}` (staff).
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "read a gate's expert panel")?;
    let id = path.into_inner();
    let out = state
        .db(move |c, _| {
            let p = find_panel(c, id, Lock::None)?;
            panel_dto(c, p)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /panels/{id}/assignments` (staff): assigns reviewers to every team until it has
/// the panel's `reviewers_per_team` that count, never a conflicted pair (reported).
pub async fn assign(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "assign a panel's reviewers")?;
    let id = path.into_inner();
    let by = caller.0.sub.clone();
    let report = state
        .db(move |c, _| {
            c.transaction(|c| {
                let p = find_panel(c, id, Lock::Update)?;
                ensure_open(c, &p)?;
                ensure_none_eliminated(c, &p)?;
                let cases = team_cases(c, &p)?;
                let pool = store::reviewer_pool(c, true)?;
                let team_of: BTreeMap<Uuid, Uuid> =
                    cases.iter().map(|k| (k.id, k.consortium_id)).collect();
                let case_of: BTreeMap<Uuid, Uuid> =
                    cases.iter().map(|k| (k.consortium_id, k.id)).collect();
                // What the panel has: each reviewer's load, the reviewers already on a team
                // (never put on it twice) and how many of them still count (no conflict).
                // A voided assignment counts no more, and its reviewer is not put back on
                // the team.
                let gone = voided(c, id)?;
                let rows: Vec<(Uuid, String, Uuid)> = gate_panel_assignments::table
                    .filter(gate_panel_assignments::panel_id.eq(id))
                    .select((
                        gate_panel_assignments::id,
                        gate_panel_assignments::reviewer_id,
                        gate_panel_assignments::consortium_id,
                    ))
                    .load(c)?;
                let mut existing = assign::Existing::default();
                for (assignment, reviewer, team) in rows {
                    let Some(&case) = case_of.get(&team) else {
                        continue;
                    };
                    if !gone.contains(&assignment)
                        && conflict_now(&pool, &cases, &reviewer, team).is_none()
                    {
                        *existing.load.entry(reviewer.clone()).or_default() += 1;
                        *existing.active.entry(case).or_default() += 1;
                    }
                    existing.on_case.entry(case).or_default().insert(reviewer);
                }
                let infos: Vec<CaseInfo> = cases.iter().map(case_info).collect();
                let plan = assign::plan(
                    &infos,
                    &pool.0,
                    &pool.1,
                    &existing,
                    p.reviewers_per_team as usize,
                    usize::MAX,
                );
                if let Some(&(case, got, needed)) = plan.shortfalls.first() {
                    return Err(ScoringError::Conflict(format!(
                        "team {} can get only {got} of the {needed} reviewers it needs (conflicts of interest): register more reviewers",
                        team_of[&case]
                    )));
                }
                let now = Utc::now().trunc_subsecs(6);
                for (reviewer, case) in &plan.assign {
                    diesel::insert_into(gate_panel_assignments::table)
                        .values((
                            gate_panel_assignments::id.eq(Uuid::now_v7()),
                            gate_panel_assignments::panel_id.eq(id),
                            gate_panel_assignments::reviewer_id.eq(reviewer),
                            gate_panel_assignments::consortium_id.eq(team_of[case]),
                            gate_panel_assignments::assigned_by.eq(&by),
                            gate_panel_assignments::assigned_at.eq(now),
                        ))
                        .execute(c)?;
                }
                let mut blocked = Vec::new();
                for (reviewer, case, reason) in plan.blocked {
                    diesel::insert_into(gate_panel_blocked::table)
                        .values((
                            gate_panel_blocked::panel_id.eq(id),
                            gate_panel_blocked::reviewer_id.eq(&reviewer),
                            gate_panel_blocked::consortium_id.eq(team_of[&case]),
                            gate_panel_blocked::reason.eq(&reason),
                        ))
                        .on_conflict_do_nothing()
                        .execute(c)?;
                    blocked.push(PanelBlocked {
                        reviewer_id: reviewer,
                        consortium_id: ConsortiumId(team_of[&case]),
                        reason,
                    });
                }
                Ok::<_, ScoringError>(PanelAssignmentReport {
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
    panel_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

/// The default page of `GET /panel-assignments` (at most [`kaip_service::pagination::MAX_LIMIT`]).
pub const ASSIGNMENTS_PAGE: i64 = 100;

type AssignmentRow = (Uuid, Uuid, String, String, Uuid, DateTime<Utc>);

/// `GET /panel-assignments`: a reviewer's own assignments (those a conflict has not taken
/// them off); staff see everyone's, or one panel's with `panel_id`. Paged by the
/// assignment's id (`limit` 1..=100, default 100; `after` = the previous page's
/// `next_cursor`). Voided assignments and the assignments of a voided panel are left out.
/// Each carries its panel's score sheet (`criteria`).
pub async fn list_assignments(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<AssignmentQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Reviewer],
        "list panel assignments",
    )?;
    let query = query.into_inner();
    let page = kaip_service::pagination::PageRequest::parse(
        Some(query.limit.unwrap_or(ASSIGNMENTS_PAGE)),
        query.after.as_deref(),
    )?;
    let mine = (caller.role() == Role::Reviewer).then(|| caller.0.sub.clone());
    let panel_id = query.panel_id;
    let out = state
        .db(move |c, _| {
            let mut q = gate_panel_assignments::table
                .inner_join(gate_panels::table)
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    gate_panel_assignment_voids::table.filter(
                        gate_panel_assignment_voids::assignment_id.eq(gate_panel_assignments::id),
                    ),
                )))
                .filter(diesel::dsl::not(diesel::dsl::exists(
                    gate_panel_voids::table
                        .filter(gate_panel_voids::panel_id.eq(gate_panel_assignments::panel_id)),
                )))
                .select((
                    gate_panel_assignments::id,
                    gate_panel_assignments::panel_id,
                    gate_panels::gate,
                    gate_panel_assignments::reviewer_id,
                    gate_panel_assignments::consortium_id,
                    gate_panel_assignments::assigned_at,
                ))
                .order(gate_panel_assignments::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(r) = &mine {
                q = q.filter(gate_panel_assignments::reviewer_id.eq(r.clone()));
            }
            if let Some(p) = panel_id {
                q = q.filter(gate_panel_assignments::panel_id.eq(p));
            }
            if let Some(after) = page.after {
                q = q.filter(gate_panel_assignments::id.gt(after));
            }
            let rows: Vec<AssignmentRow> = q.load(c)?;
            // The cursor follows the rows read, before a reviewer's conflicted ones are
            // left out (a page may then be shorter than `limit`, never skip a row).
            let rows = page.finish(rows, |r| r.0);
            let pool = if mine.is_some() {
                Some(store::reviewer_pool(c, false)?)
            } else {
                None
            };
            let mut panels: BTreeMap<Uuid, (PanelRow, Vec<CaseRow>)> = BTreeMap::new();
            let mut out = Vec::with_capacity(rows.items.len());
            for (id, panel_id, gate, reviewer, team, at) in rows.items {
                let (p, cases) = match panels.entry(panel_id) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let p = find_panel(c, panel_id, Lock::None)?;
                        let cases = team_cases(c, &p)?;
                        e.insert((p, cases))
                    }
                };
                let case = cases.iter().find(|k| k.consortium_id == team);
                if let (Some(pool), Some(k)) = (&pool, case) {
                    if conflict_now(pool, std::slice::from_ref(k), &reviewer, team).is_some() {
                        continue;
                    }
                }
                let scored: i64 = gate_panel_sheets::table
                    .filter(gate_panel_sheets::assignment_id.eq(id))
                    .count()
                    .get_result(c)?;
                out.push(PanelAssignment {
                    id,
                    panel_id,
                    gate,
                    reviewer_id: reviewer,
                    consortium_id: ConsortiumId(team),
                    consortium_name: case.map(|k| k.consortium_name.clone()).unwrap_or_default(),
                    scored: scored > 0,
                    assigned_at: at,
                    criteria: p.criteria.clone(),
                });
            }
            Ok::<_, ScoringError>(kaip_contracts::dto::Page {
                items: out,
                next_cursor: rows.next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /panels/{id}/void` (staff): voids an open panel with the reason, recorded once
/// with who and when (the panel's rows stay). A voided panel takes no assignment, sheet or
/// close and publishes nothing; its gate may get a new panel (`POST /panels`). A closed
/// panel cannot be voided (`PANEL_CLOSED`): it has published `GatePanelScored` and
/// milestones has recorded its scores, which are corrected there (a new input). Voiding a
/// voided panel answers it as it is.
pub async fn void_panel(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<VoidPanel>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "void a gate's expert panel")?;
    let id = path.into_inner();
    let req = body.into_inner();
    check_reason(&req.reason)?;
    let by = caller.0.sub.clone();
    let out = state
        .db(move |c, _| {
            c.transaction(|c| {
                let gate: String = gate_panels::table
                    .find(id)
                    .select(gate_panels::gate)
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::PanelNotFound(id))?;
                // The key's lock (as create takes it), then the panel's row, exclusive: as
                // an assignment or the close.
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('gate_panel:' || $1))")
                    .bind::<diesel::sql_types::Text, _>(&gate)
                    .execute(c)?;
                let p = find_panel(c, id, Lock::Update)?;
                if let Some((_, at)) = closure(c, id)? {
                    return Err(ScoringError::PanelClosed(p.gate, at));
                }
                diesel::insert_into(gate_panel_voids::table)
                    .values((
                        gate_panel_voids::panel_id.eq(id),
                        gate_panel_voids::reason.eq(req.reason.trim()),
                        gate_panel_voids::voided_by.eq(&by),
                        gate_panel_voids::voided_at.eq(Utc::now().trunc_subsecs(6)),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                panel_dto(c, p)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// `PUT /panel-assignments/{id}/scores`: the reviewer scores one of their own assignments
/// (again, until the panel closes), checked as a stage's sheet is.
pub async fn score(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<ScoreSheet>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(&[Role::Reviewer], "score a gate panel's team")?;
    let id = path.into_inner();
    let sheet = body.into_inner();
    let reviewer = caller.0.sub.clone();
    let out = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (panel_id, owner, team): (Uuid, String, Uuid) = gate_panel_assignments::table
                    .find(id)
                    .select((
                        gate_panel_assignments::panel_id,
                        gate_panel_assignments::reviewer_id,
                        gate_panel_assignments::consortium_id,
                    ))
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::AssignmentNotFound(id))?;
                // Someone else's assignment does not exist, as far as this reviewer knows.
                if owner != reviewer {
                    return Err(ScoringError::AssignmentNotFound(id));
                }
                // The panel's row, shared: the close (exclusive) waits for this sheet or
                // this waits for the close and is refused.
                let p = find_panel(c, panel_id, Lock::Share)?;
                ensure_open(c, &p)?;
                if voided(c, panel_id)?.contains(&id) {
                    return Err(ScoringError::Conflict(
                        "this assignment was voided by staff: it takes no sheet".into(),
                    ));
                }
                let cases = team_cases(c, &p)?;
                let pool = store::reviewer_pool(c, true)?;
                if let Some(why) = conflict_now(&pool, &cases, &reviewer, team) {
                    return Err(ScoringError::Conflict(format!(
                        "you can no longer score this team: {why}"
                    )));
                }
                let rubric = panel::rubric(&p.criteria);
                let total = rubric.check_sheet(&sheet.scores)?;
                rubric.check_comments(&sheet.comments)?;
                // The assignment's row, locked: a resubmission is the next version.
                gate_panel_assignments::table
                    .find(id)
                    .select(gate_panel_assignments::id)
                    .for_update()
                    .first::<Uuid>(c)?;
                let last: Option<i32> = gate_panel_sheets::table
                    .filter(gate_panel_sheets::assignment_id.eq(id))
                    .select(diesel::dsl::max(gate_panel_sheets::version))
                    .first(c)?;
                let version = last.unwrap_or(0) + 1;
                diesel::insert_into(gate_panel_sheets::table)
                    .values((
                        gate_panel_sheets::assignment_id.eq(id),
                        gate_panel_sheets::version.eq(version),
                        gate_panel_sheets::scores
                            .eq(serde_json::to_value(&sheet.scores).unwrap_or_default()),
                        gate_panel_sheets::comments
                            .eq(serde_json::to_value(&sheet.comments).unwrap_or_default()),
                        gate_panel_sheets::total.eq(total as i32),
                        gate_panel_sheets::recorded_by.eq(&reviewer),
                    ))
                    .execute(c)?;
                Ok::<_, ScoringError>(serde_json::json!({
                    "assignment_id": id,
                    "version": version,
                    "total": total,
                }))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /panels/{id}/close` (staff): every team's consensus, recorded with the closure,
/// and one `GatePanelScored` per team in the same transaction. Every counting assignment
/// must be scored and every team must have `reviewers_per_team` counting sheets
/// (`STAGE_INCOMPLETE` otherwise, naming the team). A closed panel is answered as it is,
/// and nothing is published again.
pub async fn close(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "close a gate's expert panel")?;
    let id = path.into_inner();
    let actor = caller.actor();
    let by = caller.0.sub.clone();
    let out = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let p = find_panel(c, id, Lock::Update)?;
                if closure(c, id)?.is_some() {
                    return panel_dto(c, p);
                }
                // A voided panel publishes nothing, ever.
                ensure_open(c, &p)?;
                ensure_none_eliminated(c, &p)?;
                let cases = team_cases(c, &p)?;
                let pool = store::reviewer_pool(c, true)?;
                let rows: Vec<(Uuid, String, Uuid)> = gate_panel_assignments::table
                    .filter(gate_panel_assignments::panel_id.eq(id))
                    .order(gate_panel_assignments::id.asc())
                    .select((
                        gate_panel_assignments::id,
                        gate_panel_assignments::reviewer_id,
                        gate_panel_assignments::consortium_id,
                    ))
                    .load(c)?;
                let gone = voided(c, id)?;
                let mut sheets = Vec::new();
                let mut counted = Vec::new();
                for (assignment, reviewer, team) in rows {
                    if gone.contains(&assignment)
                        || conflict_now(&pool, &cases, &reviewer, team).is_some()
                    {
                        continue;
                    }
                    let latest: Option<(i32, serde_json::Value)> = gate_panel_sheets::table
                        .filter(gate_panel_sheets::assignment_id.eq(assignment))
                        .order(gate_panel_sheets::version.desc())
                        .select((gate_panel_sheets::version, gate_panel_sheets::scores))
                        .first(c)
                        .optional()?;
                    let Some((version, scores)) = latest else {
                        return Err(ScoringError::StageIncomplete(format!(
                            "team {team}: reviewer {reviewer} has not scored it yet"
                        )));
                    };
                    counted.push((assignment, team, version));
                    sheets.push(Sheet {
                        reviewer,
                        proposal: team,
                        scores: serde_json::from_value(scores).unwrap_or_default(),
                    });
                }
                let rubric = panel::rubric(&p.criteria);
                let results = panel::consensus(&rubric, &sheets);
                let needed = p.reviewers_per_team.max(1) as u32;
                for team in &p.teams {
                    let got = results.get(team).map_or(0, |r| r.reviewers);
                    if got < needed {
                        return Err(ScoringError::StageIncomplete(format!(
                            "team {team} has {got} of the {needed} scored sheets the panel needs: assign and score first"
                        )));
                    }
                }
                let now = Utc::now().trunc_subsecs(6);
                diesel::insert_into(gate_panel_closures::table)
                    .values((
                        gate_panel_closures::panel_id.eq(id),
                        gate_panel_closures::closed_by.eq(&by),
                        gate_panel_closures::closed_at.eq(now),
                    ))
                    .execute(c)?;
                for (assignment, team, version) in &counted {
                    diesel::insert_into(gate_panel_counted::table)
                        .values((
                            gate_panel_counted::panel_id.eq(id),
                            gate_panel_counted::assignment_id.eq(assignment),
                            gate_panel_counted::consortium_id.eq(team),
                            gate_panel_counted::version.eq(version),
                        ))
                        .execute(c)?;
                }
                for team in &p.teams {
                    let r = &results[team];
                    let per: BTreeMap<&String, i64> =
                        r.per_criterion.iter().map(|(k, v)| (k, v.0)).collect();
                    diesel::insert_into(gate_panel_results::table)
                        .values((
                            gate_panel_results::panel_id.eq(id),
                            gate_panel_results::consortium_id.eq(team),
                            gate_panel_results::score_e4.eq(r.score_e4),
                            gate_panel_results::total_centi.eq(r.total.0),
                            gate_panel_results::per_criterion
                                .eq(serde_json::to_value(per).unwrap_or_default()),
                            gate_panel_results::reviewers.eq(r.reviewers as i32),
                        ))
                        .execute(c)?;
                    tx.publish(
                        c,
                        actor.clone(),
                        &GatePanelScored {
                            gate: p.gate.clone(),
                            consortium_id: ConsortiumId(*team),
                            panel_id: id,
                            score: panel::format_e4(r.score_e4),
                            reviewers: r.reviewers,
                            scored_at: now,
                        },
                    )?;
                }
                panel_dto(c, p)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoidAssignment {
    reason: String,
}

impl kaip_contracts::text::CheckText for VoidAssignment {
    fn check_text_at(&self, at: &str) -> Result<(), kaip_contracts::text::TextViolation> {
        kaip_contracts::text::field(
            at,
            "reason",
            &self.reason,
            kaip_contracts::text::Lines::Multi,
        )
    }
}

/// `POST /panel-assignments/{id}/void` (staff): takes an assignment off its panel (a
/// reviewer who cannot score), with the reason, recorded once. Its sheets no longer count
/// and it takes no more; assigning again tops its team up with another reviewer. Refused
/// once the panel is closed; voiding a voided assignment answers the first record.
pub async fn void_assignment(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<VoidAssignment>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "void a panel assignment")?;
    let id = path.into_inner();
    let req = body.into_inner();
    check_reason(&req.reason)?;
    let by = caller.0.sub.clone();
    let out = state
        .db(move |c, _| {
            c.transaction(|c| {
                let panel_id: Uuid = gate_panel_assignments::table
                    .find(id)
                    .select(gate_panel_assignments::panel_id)
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::AssignmentNotFound(id))?;
                // The panel's row, exclusive: as an assignment or the close.
                let p = find_panel(c, panel_id, Lock::Update)?;
                ensure_open(c, &p)?;
                diesel::insert_into(gate_panel_assignment_voids::table)
                    .values((
                        gate_panel_assignment_voids::assignment_id.eq(id),
                        gate_panel_assignment_voids::reason.eq(req.reason.trim()),
                        gate_panel_assignment_voids::voided_by.eq(&by),
                        gate_panel_assignment_voids::voided_at.eq(Utc::now().trunc_subsecs(6)),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                let (reason, voided_by, voided_at): (String, String, DateTime<Utc>) =
                    gate_panel_assignment_voids::table
                        .find(id)
                        .select((
                            gate_panel_assignment_voids::reason,
                            gate_panel_assignment_voids::voided_by,
                            gate_panel_assignment_voids::voided_at,
                        ))
                        .first(c)?;
                Ok::<_, ScoringError>(serde_json::json!({
                    "assignment_id": id,
                    "panel_id": panel_id,
                    "reason": reason,
                    "voided_by": voided_by,
                    "voided_at": voided_at,
                }))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// A panel decision's reason (create, void, void an assignment): 1 to 10,000 bytes, not blank.
fn check_reason(reason: &str) -> Result<(), ScoringError> {
    if reason.trim().is_empty() || reason.len() > 10_000 {
        return Err(CommonError::validation("reason", "1 to 10000 bytes, not blank").into());
    }
    Ok(())
}
