//! The data budget's records, and the one way money is reserved: lock, decide, write.
//!
//! Concurrency: every operation that can move a team's figures first locks the team's
//! budget rows (`SELECT ... ORDER BY consortium_id, fiscal_year FOR UPDATE`; all of the
//! team's years, because with carry-over a year's room depends on the years before), then
//! reads the figures *after* the lock (READ COMMITTED takes a new snapshot per statement,
//! so it sees what the previous holder committed), lets [`crate::domain`] decide and
//! writes. A joint purchase locks the budgets of all its teams in one statement, in that
//! same order, so two joint purchases never wait on each other in a cycle; a transaction
//! that still fails with a deadlock or serialization failure is run again by [`kaip_service::retry::retrying`].

use crate::domain::{self, Cap, Committed, Year};
use crate::error::BudgetError;
use crate::schema::{
    budget_caps, budget_eliminations, budget_programme_settings, budget_teams, budgets,
};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use kaip_bus::OutboxTx;
use kaip_contracts::dto::budget::{self as dto, Category, ProgrammeSettings};
use kaip_contracts::events::{
    DataBudgetCapAdjusted, DataBudgetOpened, DataProgrammeConfigured, GateDecided,
    SelectionPublished, TeamEliminated,
};
use kaip_contracts::{Actor, CallId, ConsortiumId, Krw};
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

// ---------------------------------------------------------------------------------------
// The programme's configuration
// ---------------------------------------------------------------------------------------

type ProgrammeRow = (
    i64,
    i64,
    i64,
    i64,
    bool,
    i32,
    i32,
    String,
    DateTime<Utc>,
    String,
);

pub fn programme(conn: &mut PgConnection) -> QueryResult<dto::Programme> {
    let r: ProgrammeRow = budget_programme_settings::table
        .order(budget_programme_settings::seq.desc())
        .select((
            budget_programme_settings::seq,
            budget_programme_settings::max_cap_krw,
            budget_programme_settings::joint_purchase_limit_krw,
            budget_programme_settings::building_processing_limit_krw,
            budget_programme_settings::carry_over,
            budget_programme_settings::first_year,
            budget_programme_settings::last_year,
            budget_programme_settings::set_by,
            budget_programme_settings::set_at,
            budget_programme_settings::reason,
        ))
        .first(conn)?;
    Ok(dto::Programme {
        version: r.0,
        settings: ProgrammeSettings {
            max_cap_krw: Krw(r.1),
            joint_purchase_limit_krw: Krw(r.2),
            building_processing_limit_krw: Krw(r.3),
            carry_over: r.4,
            first_year: r.5,
            last_year: r.6,
        },
        set_by: r.7,
        set_at: r.8,
        reason: r.9,
    })
}

/// A new version of the programme's configuration (the previous ones are kept), applied
/// to the budgets already open, all or nothing:
///
/// - Serialised against everything that reads it: it takes the settings table in SHARE ROW
///   EXCLUSIVE mode (one writer; a selection being opened holds SHARE and finishes first),
///   then every budget row FOR UPDATE in (consortium, year) order, the locks commitments,
///   joint purchases, cap adjustments and eliminations take, which read the settings only
///   after their own locks: so each of them runs wholly before this or sees the new version.
/// - From the current fiscal year on, every cap above a lowered maximum is lowered to it (a
///   new cap record with this reason and a `DataBudgetCapAdjusted`); closed years keep theirs.
/// - Refused with `PROGRAMME_BELOW_COMMITTED` if any team would then be over its cap or a
///   sub-limit (a lower maximum, or carry-over turned off): the message names the team, the
///   year and the shortfall.
/// - The years may grow but not drop a year in which budgets are open
///   (`PROGRAMME_YEARS_IN_USE`); each team still in the programme gets budgets for the
///   years added after its last, opened by the rule it was selected under.
pub fn set_programme(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::SetProgramme,
    actor: &Actor,
) -> Result<dto::Programme, BudgetError> {
    domain::validate_programme(&req.settings)?;
    domain::reason("reason", &req.reason)?;
    diesel::sql_query("LOCK TABLE budget_programme_settings IN SHARE ROW EXCLUSIVE MODE")
        .execute(conn)?;
    let all: Vec<Uuid> = budget_teams::table
        .select(budget_teams::consortium_id)
        .load(conn)?;
    lock_budgets(conn, &all)?;
    let s = &req.settings;
    let (lo, hi): (Option<i32>, Option<i32>) = budgets::table
        .select((
            diesel::dsl::min(budgets::fiscal_year),
            diesel::dsl::max(budgets::fiscal_year),
        ))
        .first(conn)?;
    if let Some(lo) = lo.filter(|lo| s.first_year > *lo) {
        return Err(BudgetError::invalid(
            "PROGRAMME_YEARS_IN_USE",
            "settings.first_year",
            format!("budgets are open for fiscal year {lo}: the programme's years cannot drop it"),
        ));
    }
    if let Some(hi) = hi.filter(|hi| s.last_year < *hi) {
        return Err(BudgetError::invalid(
            "PROGRAMME_YEARS_IN_USE",
            "settings.last_year",
            format!("budgets are open for fiscal year {hi}: the programme's years cannot drop it"),
        ));
    }
    let at = now();
    let reason = req.reason.trim();
    let current = domain::fiscal_year(at);
    let mut lowered = 0i64;
    for team in &all {
        let years = years_of(conn, *team)?;
        let changed = domain::caps_under(&years, s, current).map_err(|short| {
            BudgetError::ProgrammeBelowCommitted {
                team: *team,
                year: short.year,
                limit: match short.category {
                    None => "its cap".to_owned(),
                    Some(c) => format!("its {} sub-limit", c.as_str()),
                },
                shortfall: short.shortfall,
            }
        })?;
        for (year, cap) in changed {
            let seq = insert_cap(conn, *team, year, cap, actor, reason, at)?;
            tx.publish(
                conn,
                actor.clone(),
                &DataBudgetCapAdjusted {
                    consortium_id: ConsortiumId(*team),
                    fiscal_year: year,
                    seq,
                    cap_krw: Krw(cap.total),
                    joint_purchase_limit_krw: Krw(cap.joint_purchase),
                    building_processing_limit_krw: Krw(cap.building_processing),
                    reason: reason.to_owned(),
                    adjusted_at: at,
                },
            )?;
            lowered += 1;
        }
    }
    diesel::insert_into(budget_programme_settings::table)
        .values((
            budget_programme_settings::max_cap_krw.eq(s.max_cap_krw.0),
            budget_programme_settings::joint_purchase_limit_krw.eq(s.joint_purchase_limit_krw.0),
            budget_programme_settings::building_processing_limit_krw
                .eq(s.building_processing_limit_krw.0),
            budget_programme_settings::carry_over.eq(s.carry_over),
            budget_programme_settings::first_year.eq(s.first_year),
            budget_programme_settings::last_year.eq(s.last_year),
            budget_programme_settings::set_by.eq(&actor.subject),
            budget_programme_settings::set_at.eq(at),
            budget_programme_settings::reason.eq(reason),
        ))
        .execute(conn)?;
    // Years added at the end: every team still in the programme gets them.
    if let Some(hi) = hi.filter(|hi| s.last_year > *hi) {
        let teams: Vec<TeamRow> = budget_teams::table
            .select(TeamRow::as_select())
            .load(conn)?;
        for t in teams {
            let has_budget: i64 = budgets::table
                .filter(budgets::consortium_id.eq(t.consortium_id))
                .count()
                .get_result(conn)?;
            if has_budget == 0 || eliminated_at(conn, t.consortium_id)?.is_some() {
                continue;
            }
            let Some(cap) = domain::opening_cap(t.requested_krw, t.call_max_krw, s) else {
                continue;
            };
            let last: Option<i32> = budgets::table
                .filter(budgets::consortium_id.eq(t.consortium_id))
                .select(diesel::dsl::max(budgets::fiscal_year))
                .first(conn)?;
            let from = last.map_or(hi, |l| l.max(hi)) + 1;
            open_budgets(
                conn,
                tx,
                &t,
                from..=s.last_year,
                cap,
                actor,
                &format!("opened when the programme's years were extended: {reason}"),
                at,
            )?;
        }
    }
    let p = programme(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &DataProgrammeConfigured {
            version: p.version,
            settings: p.settings.clone(),
            set_by: p.set_by.clone(),
            reason: p.reason.clone(),
            caps_lowered: lowered,
            set_at: p.set_at,
        },
    )?;
    Ok(p)
}

/// A selected team as the budget keeps it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = budget_teams)]
pub struct TeamRow {
    pub consortium_id: Uuid,
    pub call_id: Uuid,
    pub requested_krw: i64,
    pub call_max_krw: Option<i64>,
}

/// Opens `years` of one team's budget with `cap`, each with its cap record and event.
#[allow(clippy::too_many_arguments)]
fn open_budgets(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    t: &TeamRow,
    years: std::ops::RangeInclusive<i32>,
    cap: Cap,
    actor: &Actor,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<usize, BudgetError> {
    let mut opened = 0;
    for year in years {
        diesel::insert_into(budgets::table)
            .values((
                budgets::consortium_id.eq(t.consortium_id),
                budgets::fiscal_year.eq(year),
                budgets::call_id.eq(t.call_id),
                budgets::opened_at.eq(at),
            ))
            .execute(conn)?;
        insert_cap(conn, t.consortium_id, year, cap, actor, reason, at)?;
        tx.publish(
            conn,
            actor.clone(),
            &DataBudgetOpened {
                consortium_id: ConsortiumId(t.consortium_id),
                call_id: CallId(t.call_id),
                fiscal_year: year,
                cap_krw: Krw(cap.total),
                joint_purchase_limit_krw: Krw(cap.joint_purchase),
                building_processing_limit_krw: Krw(cap.building_processing),
                opened_at: at,
            },
        )?;
        opened += 1;
    }
    Ok(opened)
}

// ---------------------------------------------------------------------------------------
// Selection and elimination (from the events consumed)
// ---------------------------------------------------------------------------------------

/// Opens a budget for every fiscal year of the programme from the selection's year on, for
/// each selected team, with its opening cap ([`domain::opening_cap`]: the call's maximum
/// when the event carries it). A second delivery changes nothing. Holds the settings table
/// in SHARE mode, so a programme change waits for it (and then applies to these budgets).
pub fn record_selection(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    ev: &SelectionPublished,
    actor: &Actor,
) -> Result<usize, BudgetError> {
    diesel::sql_query("LOCK TABLE budget_programme_settings IN SHARE MODE").execute(conn)?;
    let p = programme(conn)?.settings;
    let first = domain::fiscal_year(ev.published_at).max(p.first_year);
    // A negative maximum (intake refuses one; a forged or broken event) grants nothing,
    // like a zero, rather than failing the whole selection on the column's CHECK.
    let call_max = ev.team_maxima.map(|m| m.data_budget_krw.0.max(0));
    let at = now();
    let mut opened = 0;
    for t in &ev.selected {
        let inserted = diesel::insert_into(budget_teams::table)
            .values((
                budget_teams::consortium_id.eq(t.consortium_id.0),
                budget_teams::call_id.eq(ev.call_id.0),
                budget_teams::proposal_id.eq(t.proposal_id.0),
                budget_teams::consortium_name.eq(&t.consortium_name),
                budget_teams::requested_krw.eq(t.resources.data_budget_krw.0),
                budget_teams::selected_at.eq(ev.published_at),
                budget_teams::call_max_krw.eq(call_max),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if inserted == 0 {
            // Selected before (a replay, or by an earlier call): its budgets stand.
            continue;
        }
        let Some(cap) = domain::opening_cap(t.resources.data_budget_krw.0, call_max, &p) else {
            // The call grants no data budget.
            continue;
        };
        let reason = match call_max {
            Some(m) => format!(
                "opened from the published selection of call {}, whose per-team maximum is KRW {m}",
                ev.call_id.0
            ),
            None => format!(
                "opened from the published selection of call {} (no call maximum: the team's request)",
                ev.call_id.0
            ),
        };
        let team = TeamRow {
            consortium_id: t.consortium_id.0,
            call_id: ev.call_id.0,
            requested_krw: t.resources.data_budget_krw.0,
            call_max_krw: call_max,
        };
        opened += open_budgets(
            conn,
            tx,
            &team,
            first..=p.last_year,
            cap,
            actor,
            &reason,
            at,
        )?;
    }
    Ok(opened)
}

fn insert_cap(
    conn: &mut PgConnection,
    team: Uuid,
    year: i32,
    cap: Cap,
    actor: &Actor,
    reason: &str,
    at: DateTime<Utc>,
) -> QueryResult<i64> {
    diesel::insert_into(budget_caps::table)
        .values((
            budget_caps::consortium_id.eq(team),
            budget_caps::fiscal_year.eq(year),
            budget_caps::cap_krw.eq(cap.total),
            budget_caps::joint_purchase_limit_krw.eq(cap.joint_purchase),
            budget_caps::building_processing_limit_krw.eq(cap.building_processing),
            budget_caps::set_by.eq(&actor.subject),
            budget_caps::set_role.eq(actor.role.to_string()),
            budget_caps::set_at.eq(at),
            budget_caps::reason.eq(reason.trim()),
        ))
        .returning(budget_caps::seq)
        .get_result(conn)
}

/// Records an elimination (once per gate and team), under the team's budget locks so a
/// commitment in flight either committed before it or sees it.
pub fn eliminate(
    conn: &mut PgConnection,
    gate_id: Uuid,
    gate: &str,
    team: Uuid,
    reason: &str,
    decided_at: DateTime<Utc>,
) -> QueryResult<usize> {
    lock_budgets(conn, &[team])?;
    diesel::insert_into(budget_eliminations::table)
        .values((
            budget_eliminations::gate_id.eq(gate_id),
            budget_eliminations::consortium_id.eq(team),
            budget_eliminations::gate.eq(gate),
            budget_eliminations::reason.eq(reason),
            budget_eliminations::decided_at.eq(decided_at),
            budget_eliminations::applied_at.eq(now()),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
}

pub fn team_eliminated(conn: &mut PgConnection, ev: &TeamEliminated) -> QueryResult<usize> {
    eliminate(
        conn,
        ev.gate_id,
        &ev.gate,
        ev.consortium_id.0,
        &ev.reason,
        ev.decided_at,
    )
}

pub fn gate_decided(conn: &mut PgConnection, ev: &GateDecided) -> QueryResult<usize> {
    let mut n = 0;
    let mut teams: Vec<Uuid> = ev.eliminated.iter().map(|c| c.0).collect();
    teams.sort();
    for t in teams {
        n += eliminate(
            conn,
            ev.gate_id,
            &ev.gate,
            t,
            &format!("eliminated at {}", ev.gate),
            ev.decided_at,
        )?;
    }
    Ok(n)
}

/// The gate at which `team` was eliminated, if it was.
pub fn eliminated_at(conn: &mut PgConnection, team: Uuid) -> QueryResult<Option<String>> {
    budget_eliminations::table
        .filter(budget_eliminations::consortium_id.eq(team))
        .order(budget_eliminations::applied_at)
        .select(budget_eliminations::gate)
        .first(conn)
        .optional()
}

// ---------------------------------------------------------------------------------------
// Locks and figures
// ---------------------------------------------------------------------------------------

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = SqlUuid)]
    consortium_id: Uuid,
}

/// Locks every budget row of `teams`, in (consortium, year) order. Returns the teams that
/// have budgets.
pub fn lock_budgets(conn: &mut PgConnection, teams: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    let rows: Vec<Locked> = diesel::sql_query(
        "SELECT consortium_id FROM budgets WHERE consortium_id = ANY($1) \
         ORDER BY consortium_id, fiscal_year FOR UPDATE",
    )
    .bind::<Array<SqlUuid>, _>(teams)
    .load(conn)?;
    let mut out: Vec<Uuid> = rows.into_iter().map(|r| r.consortium_id).collect();
    out.dedup();
    Ok(out)
}

/// A commitment with what happened to it since.
#[derive(QueryableByName, Clone, Debug)]
pub struct CommitmentRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub consortium_id: Uuid,
    #[diesel(sql_type = Integer)]
    pub fiscal_year: i32,
    #[diesel(sql_type = Text)]
    pub category: String,
    #[diesel(sql_type = BigInt)]
    pub amount_krw: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub dataset_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub joint_purchase_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub joint_weight: Option<i64>,
    #[diesel(sql_type = Text)]
    pub made_by: String,
    #[diesel(sql_type = Timestamptz)]
    pub made_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = BigInt)]
    pub invoiced: i64,
    #[diesel(sql_type = BigInt)]
    pub released: i64,
    #[diesel(sql_type = BigInt)]
    pub paid: i64,
}

impl CommitmentRow {
    pub fn category(&self) -> Category {
        // The table's CHECK admits no other value.
        Category::parse(&self.category).unwrap_or(Category::BuildingProcessing)
    }

    /// Not cancelled: counts against the budget.
    pub fn committed(&self) -> i64 {
        self.amount_krw - self.released
    }

    pub fn dto(&self) -> dto::Commitment {
        let status = if self.released > 0 {
            dto::CommitmentStatus::Cancelled
        } else if self.invoiced >= self.amount_krw {
            dto::CommitmentStatus::Invoiced
        } else {
            dto::CommitmentStatus::Open
        };
        dto::Commitment {
            id: self.id,
            consortium_id: ConsortiumId(self.consortium_id),
            fiscal_year: self.fiscal_year,
            category: self.category(),
            amount_krw: Krw(self.amount_krw),
            invoiced_krw: Krw(self.invoiced),
            cancelled_krw: Krw(self.released),
            paid_krw: Krw(self.paid),
            status,
            dataset_id: self.dataset_id,
            joint_purchase_id: self.joint_purchase_id,
            made_by: self.made_by.clone(),
            made_at: self.made_at,
            reason: self.reason.clone(),
        }
    }
}

const COMMITMENTS_SQL: &str = "\
SELECT c.id, c.consortium_id, c.fiscal_year, c.category, c.amount_krw, c.dataset_id,
       c.joint_purchase_id, c.joint_weight, c.made_by, c.made_at, c.reason,
       coalesce((SELECT sum(i.amount_krw) FROM budget_invoices i WHERE i.commitment_id = c.id), 0)::bigint AS invoiced,
       coalesce((SELECT x.released_krw FROM budget_cancellations x WHERE x.commitment_id = c.id), 0)::bigint AS released,
       coalesce((SELECT sum(p.amount_krw) FROM budget_payments p JOIN budget_invoices i ON i.id = p.invoice_id
                 WHERE i.commitment_id = c.id), 0)::bigint AS paid
FROM budget_commitments c
WHERE ($1::uuid IS NULL OR c.consortium_id = $1)
  AND ($2::int IS NULL OR c.fiscal_year = $2)
  AND ($3::uuid IS NULL OR c.id = $3)
  AND ($4::uuid IS NULL OR c.joint_purchase_id = $4)
ORDER BY c.consortium_id, c.fiscal_year, c.made_at, c.id";

/// Commitments filtered by team, year, id and joint purchase.
pub fn commitments(
    conn: &mut PgConnection,
    team: Option<Uuid>,
    year: Option<i32>,
    id: Option<Uuid>,
    joint: Option<Uuid>,
) -> QueryResult<Vec<CommitmentRow>> {
    diesel::sql_query(COMMITMENTS_SQL)
        .bind::<Nullable<SqlUuid>, _>(team)
        .bind::<Nullable<Integer>, _>(year)
        .bind::<Nullable<SqlUuid>, _>(id)
        .bind::<Nullable<SqlUuid>, _>(joint)
        .load(conn)
}

/// Every budget row with its current cap, optionally of one team.
#[allow(clippy::type_complexity)]
fn budget_rows(
    conn: &mut PgConnection,
    team: Option<Uuid>,
) -> QueryResult<Vec<(Uuid, i32, Uuid, Cap)>> {
    let mut q = budgets::table
        .order((budgets::consortium_id, budgets::fiscal_year))
        .select((
            budgets::consortium_id,
            budgets::fiscal_year,
            budgets::call_id,
        ))
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(budgets::consortium_id.eq(t));
    }
    let rows: Vec<(Uuid, i32, Uuid)> = q.load(conn)?;
    let caps = current_caps(conn, team)?;
    Ok(rows
        .into_iter()
        .filter_map(|(t, y, call)| caps.get(&(t, y)).map(|c| (t, y, call, *c)))
        .collect())
}

/// The latest cap record of each team-year.
fn current_caps(
    conn: &mut PgConnection,
    team: Option<Uuid>,
) -> QueryResult<BTreeMap<(Uuid, i32), Cap>> {
    let mut q = budget_caps::table
        .order((
            budget_caps::consortium_id,
            budget_caps::fiscal_year,
            budget_caps::seq.desc(),
        ))
        .distinct_on((budget_caps::consortium_id, budget_caps::fiscal_year))
        .select((
            budget_caps::consortium_id,
            budget_caps::fiscal_year,
            budget_caps::cap_krw,
            budget_caps::joint_purchase_limit_krw,
            budget_caps::building_processing_limit_krw,
        ))
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(budget_caps::consortium_id.eq(t));
    }
    let rows: Vec<(Uuid, i32, i64, i64, i64)> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(t, y, total, jp, bp)| {
            (
                (t, y),
                Cap {
                    total,
                    joint_purchase: jp,
                    building_processing: bp,
                },
            )
        })
        .collect())
}

/// The years of one team as the domain's room check needs them.
pub fn years_of(conn: &mut PgConnection, team: Uuid) -> QueryResult<Vec<Year>> {
    let rows = budget_rows(conn, Some(team))?;
    let cs = commitments(conn, Some(team), None, None, None)?;
    Ok(years_from(&rows, &cs, team))
}

fn years_from(rows: &[(Uuid, i32, Uuid, Cap)], cs: &[CommitmentRow], team: Uuid) -> Vec<Year> {
    rows.iter()
        .filter(|r| r.0 == team)
        .map(|(_, y, _, cap)| {
            let mut committed = Committed::default();
            for c in cs
                .iter()
                .filter(|c| c.consortium_id == team && c.fiscal_year == *y)
            {
                *committed.0.entry(c.category()).or_insert(0) += c.committed();
            }
            Year {
                year: *y,
                cap: *cap,
                committed,
            }
        })
        .collect()
}

/// Who a consortium user is (their own team); `None` for staff.
pub type OnlyTeam = Option<Uuid>;

/// The budgets (with figures) matching the filters.
pub fn budget_views(
    conn: &mut PgConnection,
    team: Option<Uuid>,
    year: Option<i32>,
) -> Result<Vec<dto::Budget>, BudgetError> {
    let p = programme(conn)?.settings;
    let rows = budget_rows(conn, team)?;
    let cs = commitments(conn, team, None, None, None)?;
    let names: BTreeMap<Uuid, String> = budget_teams::table
        .select((budget_teams::consortium_id, budget_teams::consortium_name))
        .load::<(Uuid, String)>(conn)?
        .into_iter()
        .collect();
    let mut cap_history: BTreeMap<(Uuid, i32), Vec<dto::CapRecord>> = BTreeMap::new();
    {
        let mut q = budget_caps::table.order(budget_caps::seq).into_boxed();
        if let Some(t) = team {
            q = q.filter(budget_caps::consortium_id.eq(t));
        }
        #[allow(clippy::type_complexity)]
        let recs: Vec<(i64, Uuid, i32, i64, i64, i64, String, DateTime<Utc>, String)> = q
            .select((
                budget_caps::seq,
                budget_caps::consortium_id,
                budget_caps::fiscal_year,
                budget_caps::cap_krw,
                budget_caps::joint_purchase_limit_krw,
                budget_caps::building_processing_limit_krw,
                budget_caps::set_by,
                budget_caps::set_at,
                budget_caps::reason,
            ))
            .load(conn)?;
        for r in recs {
            cap_history
                .entry((r.1, r.2))
                .or_default()
                .push(dto::CapRecord {
                    seq: r.0,
                    cap_krw: Krw(r.3),
                    joint_purchase_limit_krw: Krw(r.4),
                    building_processing_limit_krw: Krw(r.5),
                    set_by: r.6,
                    set_at: r.7,
                    reason: r.8,
                });
        }
    }
    let mut eliminated: BTreeMap<Uuid, String> = BTreeMap::new();
    for (t, g) in budget_eliminations::table
        .order(budget_eliminations::applied_at.desc())
        .select((
            budget_eliminations::consortium_id,
            budget_eliminations::gate,
        ))
        .load::<(Uuid, String)>(conn)?
    {
        eliminated.insert(t, g);
    }
    let mut out = Vec::new();
    let mut teams: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    teams.dedup();
    for t in teams {
        let years = years_from(&rows, &cs, t);
        let rooms = domain::rooms(&years, p.carry_over);
        for (_, y, call, cap) in rows.iter().filter(|r| r.0 == t) {
            if year.is_some_and(|want| want != *y) {
                continue;
            }
            let room = rooms.get(y).cloned().unwrap_or_default();
            let mine: Vec<&CommitmentRow> = cs
                .iter()
                .filter(|c| c.consortium_id == t && c.fiscal_year == *y)
                .collect();
            // Exact sums (i128): a figure beyond an i64 is a coded refusal, not a panic.
            let figures = |cat: Option<Category>,
                           limit: i64,
                           available: i64|
             -> Result<dto::Figures, BudgetError> {
                let sel = mine
                    .iter()
                    .filter(|c| cat.is_none_or(|k| c.category() == k));
                let (mut committed, mut invoiced, mut paid) = (0i128, 0i128, 0i128);
                for c in sel {
                    committed += i128::from(c.amount_krw) - i128::from(c.released);
                    invoiced += i128::from(c.invoiced);
                    paid += i128::from(c.paid);
                }
                Ok(dto::Figures {
                    limit_krw: Krw(limit),
                    committed_krw: Krw(domain::krw_total("committed_krw", committed)?),
                    invoiced_krw: Krw(domain::krw_total("invoiced_krw", invoiced)?),
                    paid_krw: Krw(domain::krw_total("paid_krw", paid)?),
                    available_krw: Krw(available.max(0)),
                })
            };
            let mut categories = Vec::new();
            for c in Category::ALL {
                categories.push(dto::CategoryFigures {
                    category: c,
                    figures: figures(Some(c), cap.limit(c), room.of(c))?,
                });
            }
            out.push(dto::Budget {
                consortium_id: ConsortiumId(t),
                consortium_name: names.get(&t).cloned().unwrap_or_default(),
                call_id: CallId(*call),
                fiscal_year: *y,
                carried_over_krw: Krw(room.carried_total),
                total: figures(None, cap.total, room.total)?,
                categories,
                caps: cap_history.remove(&(t, *y)).unwrap_or_default(),
                eliminated_at_gate: eliminated.get(&t).cloned(),
            });
        }
    }
    Ok(out)
}

/// Sums budgets' figures (the programme's total across teams), exactly: in `i128`, and a
/// total beyond an `i64` is refused with `TOTAL_OUT_OF_RANGE` naming the figure (it cannot
/// be shown as a KRW figure; no silent saturation, no panic).
pub fn programme_total(
    conn: &mut PgConnection,
    year: i32,
) -> Result<dto::ProgrammeTotal, BudgetError> {
    let budgets = budget_views(conn, None, Some(year))?;
    fn sum<'a>(
        name: &str,
        figures: impl Iterator<Item = &'a dto::Figures> + Clone,
    ) -> Result<dto::Figures, BudgetError> {
        let total = |what: &str, get: fn(&dto::Figures) -> i64| {
            let exact: i128 = figures.clone().map(|f| i128::from(get(f))).sum();
            domain::krw_total(&format!("{name}.{what}"), exact).map(Krw)
        };
        Ok(dto::Figures {
            limit_krw: total("limit_krw", |f| f.limit_krw.0)?,
            committed_krw: total("committed_krw", |f| f.committed_krw.0)?,
            invoiced_krw: total("invoiced_krw", |f| f.invoiced_krw.0)?,
            paid_krw: total("paid_krw", |f| f.paid_krw.0)?,
            available_krw: total("available_krw", |f| f.available_krw.0)?,
        })
    }
    let total = sum("total", budgets.iter().map(|b| &b.total))?;
    let mut cats = Vec::new();
    for (i, c) in Category::ALL.into_iter().enumerate() {
        cats.push(dto::CategoryFigures {
            category: c,
            figures: sum(
                &format!("categories.{}", c.as_str()),
                budgets
                    .iter()
                    .filter_map(move |b| b.categories.get(i).map(|c| &c.figures)),
            )?,
        });
    }
    Ok(dto::ProgrammeTotal {
        fiscal_year: year,
        teams: budgets.len() as i64,
        total,
        categories: cats,
    })
}

/// Runs a report in one REPEATABLE READ READ ONLY transaction: every query of it reads the
/// same snapshot, so its figures agree with each other (a commitment or a cap adjustment
/// committed while it runs is in none of them or, on the next read, in all of them).
pub fn report<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, BudgetError>,
) -> Result<T, BudgetError> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(f)
}

#[derive(QueryableByName)]
struct Dated {
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = Integer)]
    kind: i32,
}

/// Invoiced and paid per KST month, for one team or the programme, optionally one year.
pub fn monthly_burn(
    conn: &mut PgConnection,
    team: Option<Uuid>,
    year: Option<i32>,
) -> Result<Vec<dto::MonthlyBurn>, BudgetError> {
    let rows: Vec<Dated> = diesel::sql_query(
        "SELECT i.recorded_at AS at, i.amount_krw AS amount, 0 AS kind \
         FROM budget_invoices i JOIN budget_commitments c ON c.id = i.commitment_id \
         WHERE ($1::uuid IS NULL OR c.consortium_id = $1) AND ($2::int IS NULL OR c.fiscal_year = $2) \
         UNION ALL \
         SELECT p.paid_at, p.amount_krw, 1 FROM budget_payments p \
         JOIN budget_invoices i ON i.id = p.invoice_id JOIN budget_commitments c ON c.id = i.commitment_id \
         WHERE ($1::uuid IS NULL OR c.consortium_id = $1) AND ($2::int IS NULL OR c.fiscal_year = $2)",
    )
    .bind::<Nullable<SqlUuid>, _>(team)
    .bind::<Nullable<Integer>, _>(year)
    .load(conn)?;
    let mut months: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for r in rows {
        let m = months.entry(domain::kst_month(r.at)).or_default();
        if r.kind == 0 {
            m.0 += i128::from(r.amount);
        } else {
            m.1 += i128::from(r.amount);
        }
    }
    let mut out = Vec::new();
    for (month, (i, p)) in months {
        out.push(dto::MonthlyBurn {
            invoiced_krw: Krw(domain::krw_total(&format!("{month}.invoiced_krw"), i)?),
            paid_krw: Krw(domain::krw_total(&format!("{month}.paid_krw"), p)?),
            month,
        });
    }
    Ok(out)
}
