//! The talent service's rows and the transactions that change them. Each request's work
//! runs in one transaction with its events (the outbox); the domain functions decide.
//!
//! Concurrency:
//! - a hire locks its position's row, then the researcher's row (`FOR UPDATE`, always in
//!   that order), then counts the position's active hires and looks for the researcher's
//!   active hire; the partial unique index `talent_hires_one_active` holds the rule even so;
//! - a claim locks its team-year row (created if missing) for the rest of its transaction,
//!   so two claims of one team and year are paid one after the other and each sees what
//!   the other paid; the row's CHECK holds the cap even against a bug; it then takes the
//!   team's row `FOR SHARE` and re-reads the elimination, while an elimination takes the
//!   team's row `FOR UPDATE`, so a claim racing an elimination is refused or commits first;
//! - a round takes a transaction-level advisory lock, so two rounds run one at a time.
//!
//! Requests retry on a deadlock or serialization failure ([`kaip_service::retry::retrying`]).

use crate::domain::funds::{self, CompanySize, FundTerms, Month, OpennessLevel};
use crate::domain::matching::{self, FitWeights};
use crate::error::TalentError;
use crate::schema::*;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::Integer;
use kaip_bus::OutboxTx;
use kaip_contracts::dto::talent as dto;
use kaip_contracts::events::{
    ProposalSubmitted, SelectionPublished, TalentFundingStopped, TalentFundsClaimed,
    TalentFundsPaid, TalentHireEnded, TalentHired, TalentMatchDeclined, TalentMatchProposed,
    TalentPositionOpened, TalentResearcherErased,
};
use kaip_contracts::{Actor, CallId, ConsortiumId, Krw, ProposalId};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// Advisory-lock class of matching rounds (one at a time).
const ROUND_LOCK_CLASS: i32 = 0x7461_6c01;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

// ---------------------------------------------------------------------------------------
// Terms
// ---------------------------------------------------------------------------------------

/// The programme terms in force: the latest recorded version, or the defaults.
pub fn terms(c: &mut PgConnection) -> Result<(FundTerms, FitWeights), TalentError> {
    let row: Option<(serde_json::Value, serde_json::Value)> = talent_terms::table
        .order(talent_terms::version.desc())
        .select((talent_terms::fund_terms, talent_terms::fit_weights))
        .first(c)
        .optional()?;
    match row {
        None => Ok((FundTerms::default(), FitWeights::default())),
        Some((f, w)) => Ok((
            serde_json::from_value(f).map_err(kaip_service::CommonError::internal)?,
            serde_json::from_value(w).map_err(kaip_service::CommonError::internal)?,
        )),
    }
}

// ---------------------------------------------------------------------------------------
// What the consumer learns
// ---------------------------------------------------------------------------------------

/// Keeps the lead's type and the declared openness of a submitted proposal (its latest
/// version). A redelivery changes nothing.
pub fn record_proposal(c: &mut PgConnection, ev: &ProposalSubmitted) -> QueryResult<usize> {
    use kaip_contracts::dto::intake::MemberRole;
    let lead = ev
        .members
        .iter()
        .find(|m| m.role == MemberRole::Lead)
        .map(|m| m.org_type.as_str().to_owned());
    let releases: Vec<String> = ev
        .portfolio
        .as_ref()
        .map(|p| {
            p.openness
                .releases
                .iter()
                .map(|a| {
                    serde_json::to_value(a)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    // Events of one proposal share a partition (keyed by its id), so they arrive in order;
    // an older version arriving again (a replay) changes nothing.
    let known: Option<i32> = talent_proposals::table
        .find(ev.proposal_id.0)
        .select(talent_proposals::version)
        .first(c)
        .optional()?;
    if known.is_some_and(|v| v >= ev.version) {
        return Ok(0);
    }
    diesel::insert_into(talent_proposals::table)
        .values((
            talent_proposals::proposal_id.eq(ev.proposal_id.0),
            talent_proposals::consortium_id.eq(ev.consortium_id.0),
            talent_proposals::version.eq(ev.version),
            talent_proposals::lead_org_type.eq(&lead),
            talent_proposals::releases.eq(&releases),
            talent_proposals::submitted_at.eq(ev.submitted_at),
        ))
        .on_conflict(talent_proposals::proposal_id)
        .do_update()
        .set((
            talent_proposals::version.eq(ev.version),
            talent_proposals::lead_org_type.eq(&lead),
            talent_proposals::releases.eq(&releases),
            talent_proposals::submitted_at.eq(ev.submitted_at),
        ))
        .execute(c)
}

/// Learns the selected teams and the talent funding each requested. Idempotent.
pub fn record_selection(c: &mut PgConnection, ev: &SelectionPublished) -> QueryResult<usize> {
    let mut n = 0;
    for t in &ev.selected {
        n += diesel::insert_into(talent_teams::table)
            .values((
                talent_teams::consortium_id.eq(t.consortium_id.0),
                talent_teams::call_id.eq(ev.call_id.0),
                talent_teams::proposal_id.eq(t.proposal_id.0),
                talent_teams::consortium_name.eq(&t.consortium_name),
                talent_teams::requested_krw.eq(t.resources.talent_funding_krw.0.max(0)),
                talent_teams::selected_at.eq(ev.published_at),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
    }
    Ok(n)
}

/// Records an elimination (the first one counts) and announces the stop. Returns whether
/// anything changed.
pub fn eliminate(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    team: ConsortiumId,
    gate: &str,
    reason: &str,
    decided_at: DateTime<Utc>,
    actor: &Actor,
) -> QueryResult<bool> {
    // The team's row, held until commit: a claim of this team takes it `FOR SHARE` and
    // re-reads the elimination under it, so a claim racing this elimination either commits
    // before it or sees it.
    talent_teams::table
        .find(team.0)
        .select(talent_teams::consortium_id)
        .for_update()
        .first::<Uuid>(c)
        .optional()?;
    let at = now();
    let n = diesel::insert_into(talent_eliminations::table)
        .values((
            talent_eliminations::consortium_id.eq(team.0),
            talent_eliminations::gate.eq(gate),
            talent_eliminations::reason.eq(reason),
            talent_eliminations::decided_at.eq(decided_at),
            talent_eliminations::recorded_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(c)?;
    if n == 0 {
        return Ok(false);
    }
    tx.publish(
        c,
        actor.clone(),
        &TalentFundingStopped {
            consortium_id: team,
            gate: gate.to_owned(),
            eliminated_at: decided_at,
            last_funded_month: Month::of(funds::kst_date(decided_at)).to_string(),
            stopped_at: at,
        },
    )?;
    // The team's hires end with the last funded month: each one running past it (and not
    // ended already on or before that day) is ended on that month's last day, freeing its
    // researcher after it. A hire that was to start later is ended before it starts:
    // nothing of it is funded. A hire ended earlier on a later day keeps that record and
    // gets a second one, by the elimination (the earliest end counts).
    let last = Month::of(funds::kst_date(decided_at)).last_day();
    let running: Vec<(Uuid, Uuid, Uuid)> = talent_hires::table
        .filter(talent_hires::consortium_id.eq(team.0))
        .filter(talent_hires::end_date.gt(last))
        .order(talent_hires::id)
        .select((
            talent_hires::id,
            talent_hires::researcher_id,
            talent_hires::position_id,
        ))
        .for_update()
        .load(c)?;
    let reason = format!(
        "the team was eliminated at {gate}: funding stops after {}",
        Month::of(last)
    );
    for (id, researcher, position) in running {
        if hire_end(c, id)?.is_some_and(|e| e.0 <= last) {
            continue; // ended before (by the team or an officer), within the funded months
        }
        record_end(
            c,
            tx,
            id,
            (team.0, researcher, position),
            last,
            "elimination",
            &reason,
            actor,
        )?;
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------

pub struct TeamInfo {
    pub dto: dto::Team,
    pub size: Option<CompanySize>,
    pub openness: Option<OpennessLevel>,
    pub eliminated_on: Option<NaiveDate>,
    pub eliminated_gate: Option<String>,
}

type TeamRow = (Uuid, Uuid, Uuid, String, i64, DateTime<Utc>);

fn team_info(c: &mut PgConnection, row: TeamRow, terms: &FundTerms) -> QueryResult<TeamInfo> {
    let (team, call, proposal, name, requested, selected_at) = row;
    let officer: Option<(String, String)> = talent_team_terms::table
        .filter(talent_team_terms::consortium_id.eq(team))
        .order(talent_team_terms::seq.desc())
        .select((talent_team_terms::company_size, talent_team_terms::openness))
        .first(c)
        .optional()?;
    let (size, openness, source) = match officer {
        Some((s, o)) => (
            CompanySize::parse(&s),
            OpennessLevel::parse(&o),
            Some("officer"),
        ),
        None => {
            let p: Option<(Option<String>, Vec<String>)> = talent_proposals::table
                .find(proposal)
                .select((talent_proposals::lead_org_type, talent_proposals::releases))
                .first(c)
                .optional()?;
            match p {
                Some((Some(lead), releases)) => {
                    let org: Option<kaip_contracts::dto::intake::OrgType> =
                        serde_json::from_value(serde_json::Value::String(lead)).ok();
                    let arts: Vec<kaip_contracts::dto::intake::Artefact> = releases
                        .into_iter()
                        .filter_map(|r| serde_json::from_value(serde_json::Value::String(r)).ok())
                        .collect();
                    (
                        org.map(CompanySize::of_org_type),
                        Some(OpennessLevel::of_releases(&arts)),
                        Some("proposal"),
                    )
                }
                _ => (None, None, None),
            }
        }
    };
    let elim: Option<(String, DateTime<Utc>)> = talent_eliminations::table
        .find(team)
        .select((talent_eliminations::gate, talent_eliminations::decided_at))
        .first(c)
        .optional()?;
    let ratio = match (size, openness) {
        (Some(s), Some(o)) => terms.ratio(s, o),
        _ => None,
    };
    Ok(TeamInfo {
        dto: dto::Team {
            consortium_id: ConsortiumId(team),
            call_id: CallId(call),
            proposal_id: ProposalId(proposal),
            consortium_name: name,
            selected_at,
            annual_cap_krw: Krw(requested.min(terms.annual_cap_krw)),
            company_size: size.map(|s| s.as_str().to_owned()),
            openness: openness.map(|o| o.as_str().to_owned()),
            terms_source: source.map(str::to_owned),
            ratio_bp: ratio,
            eliminated_at: elim.as_ref().map(|e| e.1),
        },
        size,
        openness,
        eliminated_on: elim.as_ref().map(|e| funds::kst_date(e.1)),
        eliminated_gate: elim.map(|e| e.0),
    })
}

fn team_query() -> talent_teams::BoxedQuery<
    'static,
    diesel::pg::Pg,
    (
        diesel::sql_types::Uuid,
        diesel::sql_types::Uuid,
        diesel::sql_types::Uuid,
        diesel::sql_types::Text,
        diesel::sql_types::BigInt,
        diesel::sql_types::Timestamptz,
    ),
> {
    talent_teams::table
        .select((
            talent_teams::consortium_id,
            talent_teams::call_id,
            talent_teams::proposal_id,
            talent_teams::consortium_name,
            talent_teams::requested_krw,
            talent_teams::selected_at,
        ))
        .into_boxed()
}

/// A team's cap for fiscal year `fy`: the lesser of what it requested and the programme's
/// annual cap, pro-rated by its days in the programme that year (funds::prorated_cap).
pub fn year_cap(t: &TeamInfo, terms: &FundTerms, fy: i32) -> i64 {
    funds::prorated_cap(
        t.dto.annual_cap_krw.0.min(terms.annual_cap_krw),
        fy,
        funds::kst_date(t.dto.selected_at),
        t.eliminated_on,
    )
}

pub fn team(c: &mut PgConnection, team: Uuid) -> Result<TeamInfo, TalentError> {
    let row: Option<TeamRow> = team_query()
        .filter(talent_teams::consortium_id.eq(team))
        .first(c)
        .optional()?;
    let row = row.ok_or(TalentError::TeamNotSelected(team))?;
    let (terms, _) = terms(c)?;
    Ok(team_info(c, row, &terms)?)
}

pub fn teams(c: &mut PgConnection, only: Option<Uuid>) -> Result<Vec<dto::Team>, TalentError> {
    let mut q = team_query().order(talent_teams::selected_at);
    if let Some(t) = only {
        q = q.filter(talent_teams::consortium_id.eq(t));
    }
    let rows: Vec<TeamRow> = q.load(c)?;
    let (terms, _) = terms(c)?;
    rows.into_iter()
        .map(|r| Ok(team_info(c, r, &terms)?.dto))
        .collect()
}

pub fn set_team_terms(
    c: &mut PgConnection,
    team_id: Uuid,
    req: &dto::SetTeamTerms,
    actor: &Actor,
) -> Result<dto::Team, TalentError> {
    let size = CompanySize::parse(&req.company_size).ok_or_else(|| {
        TalentError::validation("company_size", "one of large, mid_size, small, academic")
    })?;
    let openness = OpennessLevel::parse(&req.openness).ok_or_else(|| {
        TalentError::validation("openness", "one of closed, partial, open_weights")
    })?;
    if req.reason.trim().is_empty() {
        return Err(TalentError::validation("reason", "must not be empty"));
    }
    team(c, team_id)?;
    diesel::insert_into(talent_team_terms::table)
        .values((
            talent_team_terms::id.eq(Uuid::now_v7()),
            talent_team_terms::consortium_id.eq(team_id),
            talent_team_terms::company_size.eq(size.as_str()),
            talent_team_terms::openness.eq(openness.as_str()),
            talent_team_terms::reason.eq(req.reason.trim()),
            talent_team_terms::set_by.eq(&actor.subject),
            talent_team_terms::set_role.eq(actor.role.as_str()),
            talent_team_terms::set_at.eq(now()),
        ))
        .execute(c)?;
    Ok(team(c, team_id)?.dto)
}

// ---------------------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------------------

/// Bounds on what a request may carry (matching cost and row sizes).
pub const MAX_SKILLS: usize = 50;
pub const MAX_PREFERENCES: usize = 20;
pub const MAX_COUNT: i32 = 1_000;

fn check_key_list(field: &str, items: &[String]) -> Result<(), TalentError> {
    if items.len() > MAX_SKILLS {
        return Err(TalentError::validation(
            field,
            format!("at most {MAX_SKILLS} entries"),
        ));
    }
    for (i, s) in items.iter().enumerate() {
        if s.trim().is_empty() || s.len() > 100 {
            return Err(TalentError::validation(
                format!("{field}[{i}]"),
                "1 to 100 bytes, not blank",
            ));
        }
    }
    Ok(())
}

fn check_seniority(s: &str) -> Result<i64, TalentError> {
    matching::seniority_level(s).ok_or_else(|| {
        TalentError::validation("seniority", "one of junior, mid, senior, lead, principal")
    })
}

fn check_short(field: &str, s: &str) -> Result<(), TalentError> {
    if s.trim().is_empty() || s.len() > 200 {
        return Err(TalentError::validation(field, "1 to 200 bytes, not blank"));
    }
    Ok(())
}

type PositionRow = (
    Uuid,
    Uuid,
    String,
    String,
    Vec<String>,
    String,
    i32,
    i64,
    i64,
    String,
    DateTime<Utc>,
);

fn position_cols() -> (
    talent_positions::id,
    talent_positions::consortium_id,
    talent_positions::title,
    talent_positions::field,
    talent_positions::required_skills,
    talent_positions::seniority,
    talent_positions::count,
    talent_positions::band_min_krw,
    talent_positions::band_max_krw,
    talent_positions::opened_by,
    talent_positions::opened_at,
) {
    (
        talent_positions::id,
        talent_positions::consortium_id,
        talent_positions::title,
        talent_positions::field,
        talent_positions::required_skills,
        talent_positions::seniority,
        talent_positions::count,
        talent_positions::band_min_krw,
        talent_positions::band_max_krw,
        talent_positions::opened_by,
        talent_positions::opened_at,
    )
}

/// A hire's real period: (hire, researcher, position, start, last day), the last day being
/// the earlier of its agreed end date and the day it was ended on (the earliest recorded
/// end, if several). A hire holds its place and its researcher over this whole period, and
/// until its last day has passed: ending a hire with a later `ended_on` frees nothing today.
type Period = (Uuid, Uuid, Uuid, NaiveDate, NaiveDate);

/// The real periods of the hires of one position and/or one researcher (`None`: any).
fn periods(
    c: &mut PgConnection,
    position: Option<Uuid>,
    researcher: Option<Uuid>,
) -> QueryResult<Vec<Period>> {
    let mut q = talent_hires::table
        .left_join(talent_hire_ends::table.on(talent_hire_ends::hire_id.eq(talent_hires::id)))
        .select((
            talent_hires::id,
            talent_hires::researcher_id,
            talent_hires::position_id,
            talent_hires::start_date,
            talent_hires::end_date,
            talent_hire_ends::ended_on.nullable(),
        ))
        .order(talent_hires::id)
        .into_boxed();
    if let Some(p) = position {
        q = q.filter(talent_hires::position_id.eq(p));
    }
    if let Some(r) = researcher {
        q = q.filter(talent_hires::researcher_id.eq(r));
    }
    let rows: Vec<(Uuid, Uuid, Uuid, NaiveDate, NaiveDate, Option<NaiveDate>)> = q.load(c)?;
    let mut out: Vec<Period> = Vec::new();
    for (id, r, p, start, end, ended_on) in rows {
        let last = ended_on.map_or(end, |e| e.min(end));
        match out.last_mut() {
            Some(prev) if prev.0 == id => prev.4 = prev.4.min(last),
            _ => out.push((id, r, p, start, last)),
        }
    }
    Ok(out)
}

/// Whether two date ranges (inclusive) share a day.
fn overlaps(a: (NaiveDate, NaiveDate), b: (NaiveDate, NaiveDate)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// The most of `periods` holding a place on one day of `from ..= to`.
fn peak<'a>(periods: impl IntoIterator<Item = &'a Period>, from: NaiveDate, to: NaiveDate) -> i64 {
    let mut days: Vec<(NaiveDate, i64)> = Vec::new();
    for p in periods {
        let (a, b) = (p.3.max(from), p.4.min(to));
        if a > b {
            continue;
        }
        days.push((a, 1));
        if let Some(after) = b.succ_opt() {
            days.push((after, -1));
        }
    }
    // On one day a period ending the day before (-1) sorts before one starting (+1).
    days.sort();
    let (mut held, mut most) = (0i64, 0i64);
    for (_, d) in days {
        held += d;
        most = most.max(held);
    }
    most
}

/// The places of a position its hires hold from today (KST) on: the most of them holding it
/// on one day from today, so a hire starting later counts, and one following another on the
/// same place does not count twice.
fn filled(c: &mut PgConnection, position: Uuid) -> QueryResult<i64> {
    let today = funds::kst_date(now());
    Ok(peak(
        &periods(c, Some(position), None)?,
        today,
        NaiveDate::MAX,
    ))
}

/// `viewer`: `None` for staff; a team sees another team's position without its band.
fn position_dto(
    c: &mut PgConnection,
    r: PositionRow,
    viewer: Option<Uuid>,
) -> QueryResult<dto::Position> {
    let filled = filled(c, r.0)?;
    let own = viewer.is_none_or(|v| v == r.1);
    Ok(dto::Position {
        id: r.0,
        consortium_id: ConsortiumId(r.1),
        title: r.2,
        field: r.3,
        required_skills: r.4,
        seniority: r.5,
        count: r.6,
        filled: i32::try_from(filled).unwrap_or(i32::MAX),
        salary_band: own.then_some(dto::SalaryBand {
            min_monthly_krw: Krw(r.7),
            max_monthly_krw: Krw(r.8),
        }),
        opened_by: r.9,
        opened_at: r.10,
    })
}

pub fn open_position(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::OpenPosition,
    actor: &Actor,
) -> Result<dto::Position, TalentError> {
    check_short("title", &req.title)?;
    check_short("field", &req.field)?;
    check_key_list("required_skills", &req.required_skills)?;
    check_seniority(&req.seniority)?;
    if !(1..=MAX_COUNT).contains(&req.count) {
        return Err(TalentError::validation(
            "count",
            format!("a whole number of places from 1 to {MAX_COUNT}"),
        ));
    }
    let b = req.salary_band;
    if b.min_monthly_krw.0 < 0 {
        return Err(TalentError::validation(
            "salary_band.min_monthly_krw",
            "must not be negative",
        ));
    }
    if b.max_monthly_krw.0 < b.min_monthly_krw.0 {
        return Err(TalentError::validation(
            "salary_band.max_monthly_krw",
            "must not be below min_monthly_krw",
        ));
    }
    let t = team(c, req.consortium_id.0)?;
    if let Some(gate) = t.eliminated_gate {
        return Err(TalentError::FundingStopped(
            gate,
            t.eliminated_on.unwrap_or_default(),
            "the elimination".into(),
        ));
    }
    let id = Uuid::now_v7();
    let at = now();
    let skills: Vec<String> = req
        .required_skills
        .iter()
        .map(|s| s.trim().to_owned())
        .collect();
    diesel::insert_into(talent_positions::table)
        .values((
            talent_positions::id.eq(id),
            talent_positions::consortium_id.eq(req.consortium_id.0),
            talent_positions::title.eq(req.title.trim()),
            talent_positions::field.eq(req.field.trim()),
            talent_positions::required_skills.eq(&skills),
            talent_positions::seniority.eq(&req.seniority),
            talent_positions::count.eq(req.count),
            talent_positions::band_min_krw.eq(b.min_monthly_krw.0),
            talent_positions::band_max_krw.eq(b.max_monthly_krw.0),
            talent_positions::opened_by.eq(&actor.subject),
            talent_positions::opened_role.eq(actor.role.as_str()),
            talent_positions::opened_at.eq(at),
        ))
        .execute(c)?;
    tx.publish(
        c,
        actor.clone(),
        &TalentPositionOpened {
            position_id: id,
            consortium_id: req.consortium_id,
            title: req.title.trim().to_owned(),
            field: req.field.trim().to_owned(),
            required_skills: skills,
            seniority: req.seniority.clone(),
            count: req.count,
            opened_at: at,
        },
    )?;
    position(c, id, None)
}

pub fn position(
    c: &mut PgConnection,
    id: Uuid,
    viewer: Option<Uuid>,
) -> Result<dto::Position, TalentError> {
    let r: PositionRow = talent_positions::table
        .find(id)
        .select(position_cols())
        .first(c)
        .optional()?
        .ok_or(TalentError::PositionNotFound(id))?;
    Ok(position_dto(c, r, viewer)?)
}

/// Positions are not personal data: every role that may read them sees them all (so an
/// agency can tell researchers what is open), the salary band only for the team's own.
pub fn positions(
    c: &mut PgConnection,
    team: Option<Uuid>,
    viewer: Option<Uuid>,
) -> Result<Vec<dto::Position>, TalentError> {
    let mut q = talent_positions::table
        .select(position_cols())
        .order(talent_positions::opened_at)
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(talent_positions::consortium_id.eq(t));
    }
    let rows: Vec<PositionRow> = q.limit(500).load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| position_dto(c, r, viewer))
        .collect::<QueryResult<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Researchers
// ---------------------------------------------------------------------------------------

type ResearcherRow = (
    Uuid,
    Vec<String>,
    String,
    String,
    Option<NaiveDate>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// May `team` (a consortium user; `None` = staff or the registering integration) see this
/// researcher? Staff may; a team only if the researcher applied to one of its positions,
/// was matched to it, or was registered by it.
pub fn visible_to_team(c: &mut PgConnection, researcher: Uuid, team: Uuid) -> QueryResult<bool> {
    let applied: i64 = talent_applications::table
        .inner_join(talent_positions::table)
        .filter(talent_applications::researcher_id.eq(researcher))
        .filter(talent_positions::consortium_id.eq(team))
        .count()
        .get_result(c)?;
    if applied > 0 {
        return Ok(true);
    }
    let matched: i64 = talent_matches::table
        .filter(talent_matches::researcher_id.eq(researcher))
        .filter(talent_matches::consortium_id.eq(team))
        .count()
        .get_result(c)?;
    if matched > 0 {
        return Ok(true);
    }
    let registered: i64 = talent_researchers::table
        .filter(talent_researchers::id.eq(researcher))
        .filter(talent_researchers::registered_consortium.eq(team))
        .count()
        .get_result(c)?;
    Ok(registered > 0)
}

/// A researcher's profile. `team`: a consortium user's team (`None` for staff and the
/// registering integration): its preferences then list only that team's positions, so a
/// team never learns which other teams' positions a researcher applied to.
pub fn researcher(
    c: &mut PgConnection,
    id: Uuid,
    team: Option<Uuid>,
) -> Result<dto::Researcher, TalentError> {
    let r: ResearcherRow = talent_researchers::table
        .find(id)
        .select((
            talent_researchers::id,
            talent_researchers::skills,
            talent_researchers::field,
            talent_researchers::seniority,
            talent_researchers::available_from,
            talent_researchers::registered_by,
            talent_researchers::registered_at,
            talent_researchers::erased_at,
        ))
        .first(c)
        .optional()?
        .ok_or(TalentError::ResearcherNotFound(id))?;
    let personal: Option<(String, String)> = talent_researcher_personal::table
        .find(id)
        .select((
            talent_researcher_personal::name,
            talent_researcher_personal::contact,
        ))
        .first(c)
        .optional()?;
    let mut q = talent_applications::table
        .inner_join(talent_positions::table)
        .filter(talent_applications::researcher_id.eq(id))
        .order(talent_applications::rank)
        .select(talent_applications::position_id)
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(talent_positions::consortium_id.eq(t));
    }
    let preferences: Vec<Uuid> = q.load(c)?;
    Ok(dto::Researcher {
        id: r.0,
        skills: r.1,
        field: r.2,
        seniority: r.3,
        available_from: r.4,
        preferences,
        personal: personal.map(|(name, contact)| dto::ResearcherPersonal { name, contact }),
        registered_by: r.5,
        registered_at: r.6,
        erased_at: r.7,
    })
}

/// The researchers a viewer may see: all for staff, those visible to a team for a team.
pub fn researcher_ids(c: &mut PgConnection, team: Option<Uuid>) -> QueryResult<Vec<Uuid>> {
    match team {
        None => talent_researchers::table
            .order(talent_researchers::registered_at)
            .select(talent_researchers::id)
            .limit(500)
            .load(c),
        Some(t) => {
            let mut ids: BTreeSet<Uuid> = talent_applications::table
                .inner_join(talent_positions::table)
                .filter(talent_positions::consortium_id.eq(t))
                .select(talent_applications::researcher_id)
                .load::<Uuid>(c)?
                .into_iter()
                .collect();
            ids.extend(
                talent_matches::table
                    .filter(talent_matches::consortium_id.eq(t))
                    .select(talent_matches::researcher_id)
                    .load::<Uuid>(c)?,
            );
            ids.extend(
                talent_researchers::table
                    .filter(talent_researchers::registered_consortium.eq(t))
                    .select(talent_researchers::id)
                    .load::<Uuid>(c)?,
            );
            Ok(ids.into_iter().take(500).collect())
        }
    }
}

pub fn register_researcher(
    c: &mut PgConnection,
    req: &dto::RegisterResearcher,
    actor: &Actor,
    registered_consortium: Option<Uuid>,
) -> Result<dto::Researcher, TalentError> {
    check_key_list("skills", &req.skills)?;
    check_short("field", &req.field)?;
    check_seniority(&req.seniority)?;
    check_short("personal.name", &req.personal.name)?;
    check_short("personal.contact", &req.personal.contact)?;
    if req.preferences.len() > MAX_PREFERENCES {
        return Err(TalentError::validation(
            "preferences",
            format!("at most {MAX_PREFERENCES} positions"),
        ));
    }
    for (i, p) in req.preferences.iter().enumerate() {
        if req.preferences[..i].contains(p) {
            return Err(TalentError::validation(
                format!("preferences[{i}]"),
                "each position at most once",
            ));
        }
        let known: i64 = talent_positions::table.find(p).count().get_result(c)?;
        if known == 0 {
            return Err(TalentError::validation(
                format!("preferences[{i}]"),
                format!("position {p} does not exist"),
            ));
        }
    }
    let id = Uuid::now_v7();
    let skills: Vec<String> = req.skills.iter().map(|s| s.trim().to_owned()).collect();
    diesel::insert_into(talent_researchers::table)
        .values((
            talent_researchers::id.eq(id),
            talent_researchers::skills.eq(&skills),
            talent_researchers::field.eq(req.field.trim()),
            talent_researchers::seniority.eq(&req.seniority),
            talent_researchers::available_from.eq(Some(req.available_from)),
            talent_researchers::registered_by.eq(&actor.subject),
            talent_researchers::registered_role.eq(actor.role.as_str()),
            talent_researchers::registered_consortium.eq(registered_consortium),
            talent_researchers::registered_at.eq(now()),
        ))
        .execute(c)?;
    diesel::insert_into(talent_researcher_personal::table)
        .values((
            talent_researcher_personal::researcher_id.eq(id),
            talent_researcher_personal::name.eq(req.personal.name.trim()),
            talent_researcher_personal::contact.eq(req.personal.contact.trim()),
        ))
        .execute(c)?;
    for (i, p) in req.preferences.iter().enumerate() {
        diesel::insert_into(talent_applications::table)
            .values((
                talent_applications::researcher_id.eq(id),
                talent_applications::position_id.eq(p),
                talent_applications::rank.eq(i as i32 + 1),
            ))
            .execute(c)?;
    }
    researcher(c, id, registered_consortium)
}

/// Erases a profile on the researcher's request: name and contact deleted, the
/// profile blanked, applications kept (they are ids); hires, claims and payments keep the
/// id and the amounts, so the books still balance.
pub fn erase_researcher(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    id: Uuid,
    reason: &str,
    actor: &Actor,
) -> Result<dto::Researcher, TalentError> {
    if reason.trim().is_empty() {
        return Err(TalentError::validation("reason", "must not be empty"));
    }
    let erased: Option<Option<DateTime<Utc>>> = talent_researchers::table
        .find(id)
        .select(talent_researchers::erased_at)
        .for_update()
        .first(c)
        .optional()?;
    match erased {
        None => return Err(TalentError::ResearcherNotFound(id)),
        Some(Some(_)) => return researcher(c, id, None),
        Some(None) => {}
    }
    let at = now();
    diesel::delete(talent_researcher_personal::table.find(id)).execute(c)?;
    diesel::update(talent_researchers::table.find(id))
        .set((
            talent_researchers::skills.eq(Vec::<String>::new()),
            talent_researchers::field.eq(""),
            talent_researchers::seniority.eq(""),
            talent_researchers::available_from.eq(None::<NaiveDate>),
            talent_researchers::erased_at.eq(Some(at)),
            talent_researchers::erased_by.eq(Some(&actor.subject)),
            talent_researchers::erase_reason.eq(Some(reason.trim())),
        ))
        .execute(c)?;
    tx.publish(
        c,
        actor.clone(),
        &TalentResearcherErased {
            researcher_id: id,
            erased_at: at,
        },
    )?;
    researcher(c, id, None)
}

// ---------------------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------------------

type MatchRow = (
    Uuid,
    Uuid,
    Uuid,
    Uuid,
    Uuid,
    i64,
    i64,
    i64,
    i64,
    i32,
    i32,
    i32,
);

fn match_cols() -> (
    talent_matches::id,
    talent_matches::round_id,
    talent_matches::researcher_id,
    talent_matches::position_id,
    talent_matches::consortium_id,
    talent_matches::fit_skills,
    talent_matches::fit_field,
    talent_matches::fit_seniority,
    talent_matches::fit_total,
    talent_matches::researcher_rank,
    talent_matches::position_rank,
    talent_matches::applicants,
) {
    (
        talent_matches::id,
        talent_matches::round_id,
        talent_matches::researcher_id,
        talent_matches::position_id,
        talent_matches::consortium_id,
        talent_matches::fit_skills,
        talent_matches::fit_field,
        talent_matches::fit_seniority,
        talent_matches::fit_total,
        talent_matches::researcher_rank,
        talent_matches::position_rank,
        talent_matches::applicants,
    )
}

type AnswerRow = (Uuid, bool, String, Option<Uuid>, String, DateTime<Utc>);

/// The round run last: only its unanswered proposals can still be answered.
fn latest_round(c: &mut PgConnection) -> QueryResult<Option<Uuid>> {
    talent_rounds::table
        .order((talent_rounds::run_at.desc(), talent_rounds::id.desc()))
        .select(talent_rounds::id)
        .first(c)
        .optional()
}

fn match_dtos(c: &mut PgConnection, rows: Vec<MatchRow>) -> QueryResult<Vec<dto::MatchProposal>> {
    let latest = latest_round(c)?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let answers: HashMap<Uuid, AnswerRow> = talent_match_answers::table
        .filter(talent_match_answers::match_id.eq_any(&ids))
        .select((
            talent_match_answers::match_id,
            talent_match_answers::accepted,
            talent_match_answers::reason,
            talent_match_answers::hire_id,
            talent_match_answers::answered_by,
            talent_match_answers::answered_at,
        ))
        .load::<AnswerRow>(c)?
        .into_iter()
        .map(|a| (a.0, a))
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let a = answers.get(&r.0);
            dto::MatchProposal {
                id: r.0,
                round_id: r.1,
                researcher_id: r.2,
                position_id: r.3,
                consortium_id: ConsortiumId(r.4),
                fit: dto::FitScore {
                    skills: r.5,
                    field: r.6,
                    seniority: r.7,
                    total: r.8,
                },
                researcher_rank: r.9,
                position_rank: r.10,
                applicants: r.11,
                status: match a {
                    None if latest.is_some_and(|l| l != r.1) => "expired",
                    None => "proposed",
                    Some(a) if a.1 => "accepted",
                    Some(_) => "declined",
                }
                .to_owned(),
                answered_by: a.map(|a| a.4.clone()),
                answered_at: a.map(|a| a.5),
                answer_reason: a.map(|a| a.2.clone()),
                hire_id: a.and_then(|a| a.3),
            }
        })
        .collect())
}

/// Runs a matching round: the open places of the teams still funded, and every researcher
/// who is not erased and holds no active hire, with their applications in order, less the
/// pairs a team declined. The proposals of earlier rounds that were never answered expire
/// with it (they show `expired` and can no longer be answered): a round holds the rounds'
/// advisory lock exclusively and an answer holds it shared, so an answer either commits
/// before the round (and the round sees it) or sees the round.
pub fn run_round(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    note: &str,
    actor: &Actor,
) -> Result<dto::Round, TalentError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind::<Integer, _>(ROUND_LOCK_CLASS)
        .execute(c)?;
    let (_, weights) = terms(c)?;
    let eliminated: Vec<Uuid> = talent_eliminations::table
        .select(talent_eliminations::consortium_id)
        .load(c)?;
    let rows: Vec<(Uuid, Uuid, String, Vec<String>, String, i32)> = talent_positions::table
        .filter(talent_positions::consortium_id.ne_all(&eliminated))
        .order(talent_positions::id)
        .select((
            talent_positions::id,
            talent_positions::consortium_id,
            talent_positions::field,
            talent_positions::required_skills,
            talent_positions::seniority,
            talent_positions::count,
        ))
        .load(c)?;
    // A hire holds its place and its researcher until its real last day has passed.
    let today = funds::kst_date(now());
    let held: Vec<Period> = periods(c, None, None)?
        .into_iter()
        .filter(|p| p.4 >= today)
        .collect();
    // A pair a team declined is never proposed again (the researcher may still be proposed
    // to the team's other positions, and to other teams').
    let declined: BTreeSet<(Uuid, Uuid)> = talent_matches::table
        .inner_join(
            talent_match_answers::table.on(talent_match_answers::match_id.eq(talent_matches::id)),
        )
        .filter(talent_match_answers::accepted.eq(false))
        .select((talent_matches::researcher_id, talent_matches::position_id))
        .load::<(Uuid, Uuid)>(c)?
        .into_iter()
        .collect();
    let mut by_position: HashMap<Uuid, Vec<Period>> = HashMap::new();
    for p in &held {
        by_position.entry(p.2).or_default().push(*p);
    }
    let taken: HashMap<Uuid, usize> = by_position
        .iter()
        .map(|(p, ps)| {
            (
                *p,
                usize::try_from(peak(ps, today, NaiveDate::MAX)).unwrap_or(0),
            )
        })
        .collect();
    let hired: BTreeSet<Uuid> = held.iter().map(|p| p.1).collect();
    let mut positions = Vec::new();
    let mut owner = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (id, team, field, skills, seniority, count) in rows {
        let left = usize::try_from(count)
            .unwrap_or(0)
            .saturating_sub(taken.get(&id).copied().unwrap_or(0));
        if left == 0 {
            continue;
        }
        index.insert(id, positions.len());
        owner.push(team);
        positions.push(matching::Position {
            id,
            field,
            required_skills: skills.into_iter().collect(),
            seniority: matching::seniority_level(&seniority).unwrap_or(0),
            count: left,
        });
    }
    let rrows: Vec<(Uuid, Vec<String>, String, String)> = talent_researchers::table
        .filter(talent_researchers::erased_at.is_null())
        .order(talent_researchers::id)
        .select((
            talent_researchers::id,
            talent_researchers::skills,
            talent_researchers::field,
            talent_researchers::seniority,
        ))
        .load(c)?;
    let apps: Vec<(Uuid, Uuid)> = talent_applications::table
        .order((
            talent_applications::researcher_id,
            talent_applications::rank,
        ))
        .select((
            talent_applications::researcher_id,
            talent_applications::position_id,
        ))
        .load(c)?;
    let mut prefs: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (r, p) in apps {
        if declined.contains(&(r, p)) {
            continue;
        }
        if let Some(&i) = index.get(&p) {
            prefs.entry(r).or_default().push(i);
        }
    }
    let researchers: Vec<matching::Researcher> = rrows
        .into_iter()
        .filter(|r| !hired.contains(&r.0))
        .map(|(id, skills, field, seniority)| matching::Researcher {
            id,
            field,
            skills: skills.into_iter().collect(),
            seniority: matching::seniority_level(&seniority).unwrap_or(0),
            preferences: prefs.remove(&id).unwrap_or_default(),
        })
        .collect();
    let proposals = matching::deferred_acceptance(&positions, &researchers, &weights);
    let round_id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(talent_rounds::table)
        .values((
            talent_rounds::id.eq(round_id),
            talent_rounds::note.eq(note.trim()),
            talent_rounds::positions.eq(positions.len() as i32),
            talent_rounds::researchers.eq(researchers.len() as i32),
            talent_rounds::run_by.eq(&actor.subject),
            talent_rounds::run_role.eq(actor.role.as_str()),
            talent_rounds::run_at.eq(at),
        ))
        .execute(c)?;
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    for chunk in proposals.chunks(500) {
        let mut values = Vec::with_capacity(chunk.len());
        let mut events = Vec::with_capacity(chunk.len());
        for p in chunk {
            let id = Uuid::now_v7();
            let r = &researchers[p.researcher];
            let pos = &positions[p.position];
            let team = owner[p.position];
            values.push((
                talent_matches::id.eq(id),
                talent_matches::round_id.eq(round_id),
                talent_matches::researcher_id.eq(r.id),
                talent_matches::position_id.eq(pos.id),
                talent_matches::consortium_id.eq(team),
                talent_matches::fit_skills.eq(p.fit.skills),
                talent_matches::fit_field.eq(p.fit.field),
                talent_matches::fit_seniority.eq(p.fit.seniority),
                talent_matches::fit_total.eq(p.fit.total),
                talent_matches::researcher_rank.eq(to_i32(p.researcher_rank)),
                talent_matches::position_rank.eq(to_i32(p.position_rank)),
                talent_matches::applicants.eq(to_i32(p.applicants)),
                talent_matches::proposed_at.eq(at),
            ));
            events.push(TalentMatchProposed {
                match_id: id,
                round_id,
                researcher_id: r.id,
                position_id: pos.id,
                consortium_id: ConsortiumId(team),
                fit_skills: p.fit.skills,
                fit_field: p.fit.field,
                fit_seniority: p.fit.seniority,
                fit_total: p.fit.total,
                researcher_rank: to_i32(p.researcher_rank),
                position_rank: to_i32(p.position_rank),
                proposed_at: at,
            });
        }
        diesel::insert_into(talent_matches::table)
            .values(values)
            .execute(c)?;
        for e in &events {
            tx.publish(c, actor.clone(), e)?;
        }
    }
    round(c, round_id, None)
}

/// A round with its proposals (a team's own only, for a team).
pub fn round(
    c: &mut PgConnection,
    id: Uuid,
    team: Option<Uuid>,
) -> Result<dto::Round, TalentError> {
    let r: (Uuid, String, i32, i32, String, DateTime<Utc>) = talent_rounds::table
        .find(id)
        .select((
            talent_rounds::id,
            talent_rounds::note,
            talent_rounds::positions,
            talent_rounds::researchers,
            talent_rounds::run_by,
            talent_rounds::run_at,
        ))
        .first(c)
        .optional()?
        .ok_or(TalentError::RoundNotFound(id))?;
    let mut q = talent_matches::table
        .filter(talent_matches::round_id.eq(id))
        .select(match_cols())
        .order((talent_matches::position_id, talent_matches::position_rank))
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(talent_matches::consortium_id.eq(t));
    }
    let rows: Vec<MatchRow> = q.load(c)?;
    Ok(dto::Round {
        id: r.0,
        note: r.1,
        positions: r.2,
        researchers: r.3,
        run_by: r.4,
        run_at: r.5,
        proposals: match_dtos(c, rows)?,
    })
}

pub fn matches(
    c: &mut PgConnection,
    team: Option<Uuid>,
) -> Result<Vec<dto::MatchProposal>, TalentError> {
    let mut q = talent_matches::table
        .select(match_cols())
        .order(talent_matches::proposed_at.desc())
        .limit(500)
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(talent_matches::consortium_id.eq(t));
    }
    let rows: Vec<MatchRow> = q.load(c)?;
    Ok(match_dtos(c, rows)?)
}

fn find_match(c: &mut PgConnection, id: Uuid, team: Option<Uuid>) -> Result<MatchRow, TalentError> {
    let r: MatchRow = talent_matches::table
        .find(id)
        .select(match_cols())
        .first(c)
        .optional()?
        .ok_or(TalentError::MatchNotFound(id))?;
    if team.is_some_and(|t| t != r.4) {
        return Err(TalentError::MatchNotFound(id));
    }
    Ok(r)
}

/// Refuses an answer to a proposal of a round that is no longer the latest (it expired when
/// the next round ran). Takes the rounds' advisory lock shared until commit, so no round
/// starts between this check and the answer's commit.
///
/// The caller must hold the lock already ([`hold_rounds_shared`]), taken before the
/// position's row: a round holds the advisory lock and then needs the position's row (its
/// matches' foreign key), so an answer taking them the other way round could deadlock.
fn check_not_expired(c: &mut PgConnection, id: Uuid, round: Uuid) -> Result<(), TalentError> {
    match latest_round(c)? {
        Some(l) if l != round => Err(TalentError::MatchExpired(id, l)),
        _ => Ok(()),
    }
}

/// Takes the rounds' advisory lock shared until commit (an answer takes it before any row).
fn hold_rounds_shared(c: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock_shared($1, 0)")
        .bind::<Integer, _>(ROUND_LOCK_CLASS)
        .execute(c)?;
    Ok(())
}

fn answered(c: &mut PgConnection, id: Uuid) -> QueryResult<Option<bool>> {
    talent_match_answers::table
        .find(id)
        .select(talent_match_answers::accepted)
        .first(c)
        .optional()
}

pub fn accept_match(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    id: Uuid,
    req: &dto::AcceptMatch,
    actor: &Actor,
    team: Option<Uuid>,
) -> Result<dto::Hire, TalentError> {
    // The rounds' lock first, then the position's row (a round takes them in this order).
    hold_rounds_shared(c)?;
    let m = find_match(c, id, team)?;
    // The position's row serialises answers to its matches (and hires on it).
    lock_position(c, m.3)?;
    if let Some(a) = answered(c, id)? {
        return Err(TalentError::MatchAlreadyAnswered(
            id,
            if a { "accepted" } else { "declined" },
        ));
    }
    check_not_expired(c, id, m.1)?;
    let hire = create_hire(
        c,
        tx,
        &HireRequest {
            researcher_id: m.2,
            position_id: m.3,
            start_date: req.start_date,
            end_date: req.end_date,
            pay: req.personal,
            match_id: Some(id),
        },
        actor,
        team,
    )?;
    diesel::insert_into(talent_match_answers::table)
        .values((
            talent_match_answers::match_id.eq(id),
            talent_match_answers::accepted.eq(true),
            talent_match_answers::reason.eq("hired"),
            talent_match_answers::hire_id.eq(Some(hire.id)),
            talent_match_answers::answered_by.eq(&actor.subject),
            talent_match_answers::answered_role.eq(actor.role.as_str()),
            talent_match_answers::answered_at.eq(now()),
        ))
        .execute(c)?;
    Ok(hire)
}

pub fn decline_match(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    id: Uuid,
    reason: &str,
    actor: &Actor,
    team: Option<Uuid>,
) -> Result<dto::MatchProposal, TalentError> {
    if reason.trim().is_empty() {
        return Err(TalentError::validation("reason", "must not be empty"));
    }
    // The rounds' lock first, then the position's row (a round takes them in this order).
    hold_rounds_shared(c)?;
    let m = find_match(c, id, team)?;
    lock_position(c, m.3)?;
    if let Some(a) = answered(c, id)? {
        return Err(TalentError::MatchAlreadyAnswered(
            id,
            if a { "accepted" } else { "declined" },
        ));
    }
    check_not_expired(c, id, m.1)?;
    let at = now();
    diesel::insert_into(talent_match_answers::table)
        .values((
            talent_match_answers::match_id.eq(id),
            talent_match_answers::accepted.eq(false),
            talent_match_answers::reason.eq(reason.trim()),
            talent_match_answers::answered_by.eq(&actor.subject),
            talent_match_answers::answered_role.eq(actor.role.as_str()),
            talent_match_answers::answered_at.eq(at),
        ))
        .execute(c)?;
    tx.publish(
        c,
        actor.clone(),
        &TalentMatchDeclined {
            match_id: id,
            consortium_id: ConsortiumId(m.4),
            // The reason is personal: kept in talent_match_answers, never published.
            reason: String::new(),
            declined_at: at,
        },
    )?;
    let row = find_match(c, id, None)?;
    Ok(match_dtos(c, vec![row])?.remove(0))
}

// ---------------------------------------------------------------------------------------
// Hires
// ---------------------------------------------------------------------------------------

pub struct HireRequest {
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub pay: dto::HirePay,
    pub match_id: Option<Uuid>,
}

/// Locks a position's row (it serialises hires on it), or says it does not exist.
/// Returns its team, count and salary band (min, max).
fn lock_position(c: &mut PgConnection, id: Uuid) -> Result<(Uuid, i32, i64, i64), TalentError> {
    talent_positions::table
        .find(id)
        .select((
            talent_positions::consortium_id,
            talent_positions::count,
            talent_positions::band_min_krw,
            talent_positions::band_max_krw,
        ))
        .for_update()
        .first(c)
        .optional()?
        .ok_or(TalentError::PositionNotFound(id))
}

/// Checks the request's own fields (no I/O): pay and dates.
pub fn check_hire_fields(
    start: NaiveDate,
    end: NaiveDate,
    pay: &dto::HirePay,
) -> Result<(), TalentError> {
    if pay.monthly_salary_krw.0 < 0 {
        return Err(TalentError::validation(
            "personal.monthly_salary_krw",
            "must not be negative",
        ));
    }
    if pay.monthly_living_allowance_krw.0 < 0 {
        return Err(TalentError::validation(
            "personal.monthly_living_allowance_krw",
            "must not be negative",
        ));
    }
    if pay
        .monthly_salary_krw
        .0
        .checked_add(pay.monthly_living_allowance_krw.0)
        .is_none()
    {
        return Err(TalentError::validation("personal", "the monthly salary and living allowance together must fit in a signed 64-bit KRW amount"));
    }
    if end < start {
        return Err(TalentError::validation(
            "end_date",
            "must not be before start_date",
        ));
    }
    Ok(())
}

pub fn create_hire(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &HireRequest,
    actor: &Actor,
    team_only: Option<Uuid>,
) -> Result<dto::Hire, TalentError> {
    check_hire_fields(req.start_date, req.end_date, &req.pay)?;
    let (team_id, count, band_min, band_max) = lock_position(c, req.position_id)?;
    if team_only.is_some_and(|t| t != team_id) {
        return Err(TalentError::PositionNotFound(req.position_id));
    }
    let salary = req.pay.monthly_salary_krw.0;
    if salary < band_min || salary > band_max {
        return Err(TalentError::validation(
            "personal.monthly_salary_krw",
            format!(
                "must be within the position's salary band (KRW {band_min} to {band_max} a month)"
            ),
        ));
    }
    let erased: Option<Option<DateTime<Utc>>> = talent_researchers::table
        .find(req.researcher_id)
        .select(talent_researchers::erased_at)
        .for_update()
        .first(c)
        .optional()?;
    match erased {
        None => return Err(TalentError::ResearcherNotFound(req.researcher_id)),
        Some(Some(_)) => return Err(TalentError::ResearcherErased(req.researcher_id)),
        Some(None) => {}
    }
    if req.match_id.is_none() {
        let applied: i64 = talent_applications::table
            .find((req.researcher_id, req.position_id))
            .count()
            .get_result(c)?;
        if applied == 0 {
            return Err(TalentError::NotAnApplicant(
                req.researcher_id,
                req.position_id,
            ));
        }
    }
    let t = team(c, team_id)?;
    let selected_on = funds::kst_date(t.dto.selected_at);
    if req.start_date < selected_on {
        return Err(TalentError::HireBeforeSelection(
            req.start_date,
            selected_on,
        ));
    }
    if let (Some(gate), Some(on)) = (&t.eliminated_gate, t.eliminated_on) {
        if Month::of(req.start_date) > Month::of(on) {
            return Err(TalentError::FundingStopped(
                gate.clone(),
                on,
                Month::of(on).to_string(),
            ));
        }
        // A hire recorded after the elimination stops with the funding too.
        let last = Month::of(on).last_day();
        if req.end_date > last {
            return Err(TalentError::validation(
                "end_date",
                format!(
                    "must not be after {last}: the team was eliminated at {gate} on {on} and \
                     its funding stops after {}",
                    Month::of(on)
                ),
            ));
        }
    }
    // A hire whose real last day has passed no longer holds its researcher: its `active`
    // flag (which the unique index `talent_hires_one_active` reads) is cleared now (the
    // researcher's row is locked above, so this is the only writer of their hires).
    let today = funds::kst_date(now());
    let mine = periods(c, None, Some(req.researcher_id))?;
    let past: Vec<Uuid> = mine.iter().filter(|p| p.4 < today).map(|p| p.0).collect();
    diesel::update(talent_hires::table.filter(talent_hires::id.eq_any(&past)))
        .set(talent_hires::active.eq(false))
        .execute(c)?;
    // One hire at a time: refused while another still holds the researcher (its real last
    // day has not passed), or if the new one would start on or before the last day of an
    // earlier one (no day is funded twice).
    for (h, _, _, _, last) in &mine {
        if *last >= today || *last >= req.start_date {
            return Err(TalentError::ResearcherAlreadyHired(req.researcher_id, *h));
        }
    }
    // The places: the position's hires whose real periods share a day with the new one's
    // dates, whenever that is (a backdated hire counts the hires of its past days too).
    let taken = periods(c, Some(req.position_id), None)?
        .iter()
        .filter(|p| overlaps((p.3, p.4), (req.start_date, req.end_date)))
        .count();
    if i64::try_from(taken).unwrap_or(i64::MAX) >= i64::from(count) {
        return Err(TalentError::PositionFilled(req.position_id, count));
    }
    let (terms, _) = terms(c)?;
    let ratio = match (t.size, t.openness) {
        (Some(s), Some(o)) => terms.ratio(s, o),
        _ => None,
    }
    .ok_or(TalentError::TeamTermsUnknown(team_id))?;
    let id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(talent_hires::table)
        .values((
            talent_hires::id.eq(id),
            talent_hires::researcher_id.eq(req.researcher_id),
            talent_hires::position_id.eq(req.position_id),
            talent_hires::consortium_id.eq(team_id),
            talent_hires::match_id.eq(req.match_id),
            talent_hires::start_date.eq(req.start_date),
            talent_hires::end_date.eq(req.end_date),
            talent_hires::active.eq(req.end_date >= today),
            talent_hires::ratio_bp.eq(ratio),
            talent_hires::hired_by.eq(&actor.subject),
            talent_hires::hired_role.eq(actor.role.as_str()),
            talent_hires::hired_at.eq(at),
        ))
        .execute(c)?;
    diesel::insert_into(talent_hire_pay::table)
        .values((
            talent_hire_pay::hire_id.eq(id),
            talent_hire_pay::monthly_salary_krw.eq(req.pay.monthly_salary_krw.0),
            talent_hire_pay::monthly_living_krw.eq(req.pay.monthly_living_allowance_krw.0),
        ))
        .execute(c)?;
    tx.publish(
        c,
        actor.clone(),
        &TalentHired {
            hire_id: id,
            researcher_id: req.researcher_id,
            position_id: req.position_id,
            consortium_id: ConsortiumId(team_id),
            match_id: req.match_id,
            start_date: req.start_date,
            end_date: req.end_date,
            ratio_bp: ratio,
            hired_at: at,
        },
    )?;
    hire(c, id, None)
}

type HireRow = (
    Uuid,
    Uuid,
    Uuid,
    Uuid,
    Option<Uuid>,
    NaiveDate,
    NaiveDate,
    i64,
    String,
    DateTime<Utc>,
);

fn hire_cols() -> (
    talent_hires::id,
    talent_hires::researcher_id,
    talent_hires::position_id,
    talent_hires::consortium_id,
    talent_hires::match_id,
    talent_hires::start_date,
    talent_hires::end_date,
    talent_hires::ratio_bp,
    talent_hires::hired_by,
    talent_hires::hired_at,
) {
    (
        talent_hires::id,
        talent_hires::researcher_id,
        talent_hires::position_id,
        talent_hires::consortium_id,
        talent_hires::match_id,
        talent_hires::start_date,
        talent_hires::end_date,
        talent_hires::ratio_bp,
        talent_hires::hired_by,
        talent_hires::hired_at,
    )
}

/// A hire's end before its end date, if it was ended: (last day, cause, reason). The
/// earliest counts when there are two (ended by the team or an officer on a day after its
/// team's elimination month, then by the elimination at that month's last day).
fn hire_end(c: &mut PgConnection, id: Uuid) -> QueryResult<Option<(NaiveDate, String, String)>> {
    talent_hire_ends::table
        .filter(talent_hire_ends::hire_id.eq(id))
        .order((talent_hire_ends::ended_on, talent_hire_ends::ended_at))
        .select((
            talent_hire_ends::ended_on,
            talent_hire_ends::cause,
            talent_hire_ends::reason,
        ))
        .first(c)
        .optional()
}

fn hire_dto(c: &mut PgConnection, r: HireRow) -> QueryResult<dto::Hire> {
    let end = hire_end(c, r.0)?;
    let last_day = end.as_ref().map_or(r.6, |e| e.0.min(r.6));
    // Held until its real last day has passed, even when ended with a later `ended_on`.
    let active = last_day >= funds::kst_date(now());
    let pay: Option<(i64, i64)> = talent_hire_pay::table
        .find(r.0)
        .select((
            talent_hire_pay::monthly_salary_krw,
            talent_hire_pay::monthly_living_krw,
        ))
        .first(c)
        .optional()?;
    Ok(dto::Hire {
        id: r.0,
        researcher_id: r.1,
        position_id: r.2,
        consortium_id: ConsortiumId(r.3),
        match_id: r.4,
        start_date: r.5,
        end_date: r.6,
        ratio_bp: r.7,
        personal: pay.map(|(s, l)| dto::HirePay {
            monthly_salary_krw: Krw(s),
            monthly_living_allowance_krw: Krw(l),
        }),
        hired_by: r.8,
        hired_at: r.9,
        ended_on: end.as_ref().map(|e| e.0),
        end_cause: end.as_ref().map(|e| e.1.clone()),
        end_reason: end.map(|e| e.2),
        active,
    })
}

/// Ends a hire before its agreed end date: by the team (`team_only`, its own hires only)
/// or by an officer. The hire's row is locked (a claim takes it `FOR SHARE`), so a claim
/// either commits first (and the end may not come before what it covered) or sees the end.
pub fn end_hire(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    id: Uuid,
    req: &dto::EndHire,
    actor: &Actor,
    team_only: Option<Uuid>,
) -> Result<dto::Hire, TalentError> {
    if req.reason.trim().is_empty() {
        return Err(TalentError::validation("reason", "must not be empty"));
    }
    let h: Option<(Uuid, Uuid, Uuid, NaiveDate, NaiveDate)> = talent_hires::table
        .find(id)
        .select((
            talent_hires::consortium_id,
            talent_hires::researcher_id,
            talent_hires::position_id,
            talent_hires::start_date,
            talent_hires::end_date,
        ))
        .for_update()
        .first(c)
        .optional()?;
    let (team, researcher, position, start, end) = h.ok_or(TalentError::HireNotFound(id))?;
    if team_only.is_some_and(|t| t != team) {
        return Err(TalentError::HireNotFound(id));
    }
    if let Some((on, cause, _)) = hire_end(c, id)? {
        return Err(TalentError::HireAlreadyEnded(id, on, cause));
    }
    if req.ended_on < start {
        return Err(TalentError::validation(
            "ended_on",
            format!("must not be before the hire's start_date ({start})"),
        ));
    }
    if req.ended_on >= end {
        return Err(TalentError::validation(
            "ended_on",
            format!(
                "must be before the hire's agreed end_date ({end}); the hire ends by itself then"
            ),
        ));
    }
    let claimed: Option<String> = talent_claims::table
        .filter(talent_claims::hire_id.eq(id))
        .select(diesel::dsl::max(talent_claims::month))
        .first(c)?;
    if let Some(m) = claimed.as_deref().and_then(Month::parse) {
        let covered_to = m.last_day().min(end);
        if req.ended_on < covered_to {
            return Err(TalentError::validation(
                "ended_on",
                format!(
                    "must not be before {covered_to}: {m} was already claimed through that day"
                ),
            ));
        }
    }
    let cause = if actor.role == kaip_contracts::Role::Consortium {
        "team"
    } else {
        "officer"
    };
    record_end(
        c,
        tx,
        id,
        (team, researcher, position),
        req.ended_on,
        cause,
        req.reason.trim(),
        actor,
    )?;
    hire(c, id, None)
}

/// Writes a hire's end, frees its researcher and place, and announces it.
#[allow(clippy::too_many_arguments)]
fn record_end(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    id: Uuid,
    (team, researcher, position): (Uuid, Uuid, Uuid),
    ended_on: NaiveDate,
    cause: &str,
    reason: &str,
    actor: &Actor,
) -> QueryResult<()> {
    let at = now();
    diesel::insert_into(talent_hire_ends::table)
        .values((
            talent_hire_ends::hire_id.eq(id),
            talent_hire_ends::ended_on.eq(ended_on),
            talent_hire_ends::cause.eq(cause),
            talent_hire_ends::reason.eq(reason),
            talent_hire_ends::ended_by.eq(&actor.subject),
            talent_hire_ends::ended_role.eq(actor.role.as_str()),
            talent_hire_ends::ended_at.eq(at),
        ))
        .execute(c)?;
    // The researcher and the place stay held until the real last day has passed: the
    // `active` flag is cleared only when that day is already past (else by the
    // researcher's next hire, once it has passed).
    if ended_on < funds::kst_date(at) {
        diesel::update(talent_hires::table.find(id))
            .set(talent_hires::active.eq(false))
            .execute(c)?;
    }
    tx.publish(
        c,
        actor.clone(),
        &TalentHireEnded {
            hire_id: id,
            researcher_id: researcher,
            position_id: position,
            consortium_id: ConsortiumId(team),
            ended_on,
            cause: cause.to_owned(),
            ended_at: at,
        },
    )?;
    Ok(())
}

/// A hire: a team sees only its own (another's is "not found"), with the pay.
pub fn hire(c: &mut PgConnection, id: Uuid, team: Option<Uuid>) -> Result<dto::Hire, TalentError> {
    let r: HireRow = talent_hires::table
        .find(id)
        .select(hire_cols())
        .first(c)
        .optional()?
        .ok_or(TalentError::HireNotFound(id))?;
    if team.is_some_and(|t| t != r.3) {
        return Err(TalentError::HireNotFound(id));
    }
    Ok(hire_dto(c, r)?)
}

pub fn hires(c: &mut PgConnection, team: Option<Uuid>) -> Result<Vec<dto::Hire>, TalentError> {
    let mut q = talent_hires::table
        .select(hire_cols())
        .order(talent_hires::hired_at)
        .limit(500)
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(talent_hires::consortium_id.eq(t));
    }
    let rows: Vec<HireRow> = q.load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| hire_dto(c, r))
        .collect::<QueryResult<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------

pub fn claim(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::ClaimMonth,
    actor: &Actor,
    team_only: Option<Uuid>,
) -> Result<dto::Claim, TalentError> {
    let month = Month::parse(&req.month)
        .ok_or_else(|| TalentError::validation("month", "a calendar month as YYYY-MM"))?;
    let today = funds::kst_date(now());
    if !funds::month_started(month, today) {
        return Err(TalentError::validation(
            "month",
            format!(
                "must have started in KST (today is {today}); a month is claimed once it has begun"
            ),
        ));
    }
    let h = hire(c, req.hire_id, team_only)?;
    if funds::covered_days(month, h.start_date, h.end_date) == 0 {
        return Err(TalentError::MonthOutsideHire(
            req.month.clone(),
            h.start_date,
            h.end_date,
        ));
    }
    let t = team(c, h.consortium_id.0)?;
    if !funds::funded_after_elimination(month, t.eliminated_on) {
        let on = t.eliminated_on.unwrap_or_default();
        return Err(TalentError::FundingStopped(
            t.eliminated_gate.unwrap_or_default(),
            on,
            Month::of(on).to_string(),
        ));
    }
    let fy = month.year;
    let (terms, _) = terms(c)?;
    let cap = year_cap(&t, &terms, fy);
    // The team-year row, created at the cap in force, then locked until commit: every claim
    // of this team and year waits here for the one before it.
    diesel::insert_into(talent_team_years::table)
        .values((
            talent_team_years::consortium_id.eq(h.consortium_id.0),
            talent_team_years::fiscal_year.eq(fy),
            talent_team_years::cap_krw.eq(cap),
        ))
        .on_conflict_do_nothing()
        .execute(c)?;
    let (row_cap, paid_before, claimed_before): (i64, i64, i64) = talent_team_years::table
        .find((h.consortium_id.0, fy))
        .select((
            talent_team_years::cap_krw,
            talent_team_years::paid_krw,
            talent_team_years::claimed_krw,
        ))
        .for_update()
        .first(c)?;
    // Then the team's row `FOR SHARE` (an elimination takes it `FOR UPDATE`), and the
    // elimination read again under it: one recorded meanwhile is seen here, one recorded
    // later waits for this claim to commit.
    talent_teams::table
        .find(h.consortium_id.0)
        .select(talent_teams::consortium_id)
        .for_share()
        .first::<Uuid>(c)?;
    let elim: Option<(String, DateTime<Utc>)> = talent_eliminations::table
        .find(h.consortium_id.0)
        .select((talent_eliminations::gate, talent_eliminations::decided_at))
        .first(c)
        .optional()?;
    let eliminated_on = elim.as_ref().map(|e| funds::kst_date(e.1));
    if !funds::funded_after_elimination(month, eliminated_on) {
        let on = eliminated_on.unwrap_or_default();
        return Err(TalentError::FundingStopped(
            elim.map(|e| e.0).unwrap_or_default(),
            on,
            Month::of(on).to_string(),
        ));
    }
    // The year's cap, pro-rated with the elimination read under the lock (an elimination
    // since the row was made shortens the year). What was already paid is never taken
    // back: the cap is never set below it.
    let year_cap = funds::prorated_cap(
        t.dto.annual_cap_krw.0.min(terms.annual_cap_krw),
        fy,
        funds::kst_date(t.dto.selected_at),
        eliminated_on,
    )
    .max(paid_before);
    if year_cap != row_cap {
        diesel::update(talent_team_years::table.find((h.consortium_id.0, fy)))
            .set(talent_team_years::cap_krw.eq(year_cap))
            .execute(c)?;
    }
    // Then the hire's row `FOR SHARE` (ending a hire takes it `FOR UPDATE`), and its end
    // read under it: a month after the hire's last day is outside the hire.
    talent_hires::table
        .find(h.id)
        .select(talent_hires::id)
        .for_share()
        .first::<Uuid>(c)?;
    let last_day = hire_end(c, h.id)?.map_or(h.end_date, |e| e.0.min(h.end_date));
    if funds::covered_days(month, h.start_date, last_day) == 0 {
        return Err(TalentError::MonthOutsideHire(
            req.month.clone(),
            h.start_date,
            last_day,
        ));
    }
    let existing: Option<Uuid> = talent_claims::table
        .filter(talent_claims::hire_id.eq(h.id))
        .filter(talent_claims::month.eq(month.to_string()))
        .select(talent_claims::id)
        .first(c)
        .optional()?;
    if let Some(e) = existing {
        return Err(TalentError::MonthAlreadyClaimed(month.to_string(), e));
    }
    let pay = h.personal.ok_or(TalentError::HireNotFound(h.id))?;
    let share = funds::month_share(
        month,
        h.start_date,
        last_day,
        pay.monthly_salary_krw.0,
        pay.monthly_living_allowance_krw.0,
        h.ratio_bp,
    )
    .ok_or_else(|| {
        TalentError::validation(
            "month",
            "the month's share does not fit in a signed 64-bit KRW amount",
        )
    })?;
    // The year's claimed total must fit the books (i64): refused with a code, not a 500.
    let claimed_total = claimed_before
        .checked_add(share.share_krw)
        .ok_or(TalentError::ClaimTotalOutOfRange(fy))?;
    let payment = funds::pay_within_cap(share.share_krw, paid_before, year_cap, fy);
    let id = Uuid::now_v7();
    let at = now();
    diesel::insert_into(talent_claims::table)
        .values((
            talent_claims::id.eq(id),
            talent_claims::hire_id.eq(h.id),
            talent_claims::researcher_id.eq(h.researcher_id),
            talent_claims::consortium_id.eq(h.consortium_id.0),
            talent_claims::month.eq(month.to_string()),
            talent_claims::fiscal_year.eq(fy),
            talent_claims::days_covered.eq(share.days_covered as i32),
            talent_claims::days_in_month.eq(share.days_in_month as i32),
            talent_claims::ratio_bp.eq(h.ratio_bp),
            talent_claims::claimed_krw.eq(share.share_krw),
            talent_claims::paid_krw.eq(payment.paid_krw),
            talent_claims::cap_reason.eq(&payment.reason),
            talent_claims::claimed_by.eq(&actor.subject),
            talent_claims::claimed_role.eq(actor.role.as_str()),
            talent_claims::claimed_at.eq(at),
        ))
        .execute(c)?;
    let year_paid = paid_before + payment.paid_krw;
    diesel::update(talent_team_years::table.find((h.consortium_id.0, fy)))
        .set((
            talent_team_years::paid_krw.eq(year_paid),
            talent_team_years::claimed_krw.eq(claimed_total),
        ))
        .execute(c)?;
    tx.publish(
        c,
        actor.clone(),
        &TalentFundsClaimed {
            claim_id: id,
            hire_id: h.id,
            researcher_id: h.researcher_id,
            consortium_id: h.consortium_id,
            month: month.to_string(),
            fiscal_year: fy,
            days_covered: share.days_covered as i32,
            days_in_month: share.days_in_month as i32,
            ratio_bp: h.ratio_bp,
            claimed_krw: Krw(share.share_krw),
            claimed_at: at,
        },
    )?;
    tx.publish(
        c,
        actor.clone(),
        &TalentFundsPaid {
            claim_id: id,
            hire_id: h.id,
            consortium_id: h.consortium_id,
            fiscal_year: fy,
            claimed_krw: Krw(share.share_krw),
            paid_krw: Krw(payment.paid_krw),
            cap_reason: payment.reason.clone(),
            year_paid_krw: Krw(year_paid),
            year_cap_krw: Krw(year_cap),
            paid_at: at,
        },
    )?;
    Ok(dto::Claim {
        id,
        hire_id: h.id,
        researcher_id: h.researcher_id,
        consortium_id: h.consortium_id,
        month: month.to_string(),
        fiscal_year: fy,
        days_covered: share.days_covered as i32,
        days_in_month: share.days_in_month as i32,
        ratio_bp: h.ratio_bp,
        claimed_krw: Krw(share.share_krw),
        paid_krw: Krw(payment.paid_krw),
        cap_reason: payment.reason,
        claimed_by: actor.subject.clone(),
        claimed_at: at,
    })
}

type ClaimRow = (
    Uuid,
    Uuid,
    Uuid,
    Uuid,
    String,
    i32,
    i32,
    i32,
    i64,
    i64,
    i64,
    Option<String>,
    String,
    DateTime<Utc>,
);

pub fn claims(
    c: &mut PgConnection,
    team: Option<Uuid>,
    hire: Option<Uuid>,
) -> Result<Vec<dto::Claim>, TalentError> {
    let mut q = talent_claims::table
        .select((
            talent_claims::id,
            talent_claims::hire_id,
            talent_claims::researcher_id,
            talent_claims::consortium_id,
            talent_claims::month,
            talent_claims::fiscal_year,
            talent_claims::days_covered,
            talent_claims::days_in_month,
            talent_claims::ratio_bp,
            talent_claims::claimed_krw,
            talent_claims::paid_krw,
            talent_claims::cap_reason,
            talent_claims::claimed_by,
            talent_claims::claimed_at,
        ))
        .order(talent_claims::claimed_at)
        .limit(1000)
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(talent_claims::consortium_id.eq(t));
    }
    if let Some(h) = hire {
        q = q.filter(talent_claims::hire_id.eq(h));
    }
    let rows: Vec<ClaimRow> = q.load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| dto::Claim {
            id: r.0,
            hire_id: r.1,
            researcher_id: r.2,
            consortium_id: ConsortiumId(r.3),
            month: r.4,
            fiscal_year: r.5,
            days_covered: r.6,
            days_in_month: r.7,
            ratio_bp: r.8,
            claimed_krw: Krw(r.9),
            paid_krw: Krw(r.10),
            cap_reason: r.11,
            claimed_by: r.12,
            claimed_at: r.13,
        })
        .collect())
}

/// Per team and fiscal year: positions open and filled, hires, funds claimed, paid and
/// remaining, exact in KRW.
pub fn report(
    c: &mut PgConnection,
    team_id: Uuid,
    fy: i32,
) -> Result<dto::TeamYearReport, TalentError> {
    let t = team(c, team_id)?;
    let (terms, _) = terms(c)?;
    let positions: Vec<(Uuid, i32)> = talent_positions::table
        .filter(talent_positions::consortium_id.eq(team_id))
        .select((talent_positions::id, talent_positions::count))
        .load(c)?;
    let first = NaiveDate::from_ymd_opt(fy, 1, 1)
        .ok_or_else(|| TalentError::validation("year", "a calendar year"))?;
    let last = NaiveDate::from_ymd_opt(fy, 12, 31)
        .ok_or_else(|| TalentError::validation("year", "a calendar year"))?;
    // Over the fiscal year, from the hires' real periods (not today's state): a hire counts
    // if its real period shares a day with the year (a hire ended before it started has
    // none); a position's places filled are the most of its hires holding it on one day
    // of the year.
    let mut places_open = 0i64;
    let mut places_filled = 0i64;
    let mut hires = 0i64;
    for (p, count) in &positions {
        let ps = periods(c, Some(*p), None)?;
        hires += ps
            .iter()
            .filter(|h| overlaps((h.3, h.4), (first, last)))
            .count() as i64;
        let f = peak(&ps, first, last);
        places_filled += f;
        places_open += (i64::from(*count) - f).max(0);
    }
    let year: Option<(i64, i64, i64)> = talent_team_years::table
        .find((team_id, fy))
        .select((
            talent_team_years::cap_krw,
            talent_team_years::claimed_krw,
            talent_team_years::paid_krw,
        ))
        .first(c)
        .optional()?;
    // The cap as a claim now would set it (pro-rated for a partial year, never below
    // what was paid).
    let (_, claimed, paid) = year.unwrap_or((0, 0, 0));
    let cap = year_cap(&t, &terms, fy).max(paid);
    Ok(dto::TeamYearReport {
        consortium_id: ConsortiumId(team_id),
        fiscal_year: fy,
        positions_open: positions.len() as i64,
        places_open,
        places_filled,
        hires,
        claimed_krw: Krw(claimed),
        paid_krw: Krw(paid),
        cap_krw: Krw(cap),
        remaining_krw: Krw(cap - paid),
    })
}
