//! Scoring's rows and the queries its handlers share.

use crate::domain::assign;
use crate::error::ScoringError;
use crate::schema::{calls, evaluation_cases};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use kaip_bus::JsonbText;
use kaip_contracts::dto::intake::{Member, Portfolio, ResourceRequest};
use kaip_contracts::dto::scoring::{EvaluationCase, EvaluationConfig};
use uuid::Uuid;

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = evaluation_cases)]
pub struct CaseRow {
    pub id: Uuid,
    pub proposal_id: Uuid,
    pub call_id: Uuid,
    pub consortium_id: Uuid,
    pub title: String,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub consortium_name: String,
    /// The JSON columns are read as text and decoded once into their types (see
    /// [`JsonbText`]): a list of cases reads hundreds of them.
    pub members: JsonbText,
    pub resources: JsonbText,
    pub stage: i32,
    pub submitted_at: DateTime<Utc>,
    pub portfolio: Option<JsonbText>,
    pub late_resolution: Option<String>,
}

impl CaseRow {
    pub fn members(&self) -> Vec<Member> {
        self.members.decode_or_default("evaluation_cases.members")
    }

    pub fn portfolio(&self) -> Option<Portfolio> {
        self.portfolio
            .as_ref()
            .and_then(|v| v.decode_or_default("evaluation_cases.portfolio"))
    }

    /// The portfolio categories the case belongs to: its members' and its track's.
    pub fn categories(&self) -> std::collections::BTreeSet<String> {
        let mut out = crate::domain::assign::categories(&self.members());
        out.extend(crate::domain::assign::track_categories(
            self.portfolio().as_ref(),
        ));
        out
    }

    pub fn resources(&self) -> ResourceRequest {
        self.resources
            .decode_or_default("evaluation_cases.resources")
    }

    pub fn dto(&self) -> EvaluationCase {
        EvaluationCase {
            id: self.id.into(),
            proposal_id: self.proposal_id.into(),
            call_id: self.call_id.into(),
            consortium_id: self.consortium_id.into(),
            title: self.title.clone(),
            status: self.status.clone(),
            stage: self.stage,
            opened_at: self.opened_at,
            late_resolution: self.late_resolution.clone(),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = calls)]
pub struct CallRow {
    pub id: Uuid,
    pub title: String,
    pub closes_at: DateTime<Utc>,
    pub config: Option<serde_json::Value>,
    pub published_at: Option<DateTime<Utc>>,
    pub replaces: Option<serde_json::Value>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl CallRow {
    /// Refuses any further step of a call intake cancelled.
    pub fn not_cancelled(&self) -> Result<(), ScoringError> {
        match self.cancelled_at {
            Some(at) => Err(ScoringError::CallCancelled(self.id, at)),
            None => Ok(()),
        }
    }

    /// The call's link to a gate, if it is a replacement call. A stored link that does not
    /// decode is an internal error (logged), never read as "an ordinary call": that would
    /// switch the committee's majority off.
    pub fn replacement(&self) -> Result<Option<kaip_contracts::events::Replacement>, ScoringError> {
        self.replaces
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                kaip_service::CommonError::internal(anyhow::anyhow!(
                    "call {}: stored `replaces` does not decode: {e}",
                    self.id
                ))
                .into()
            })
    }
}

pub fn find_call(c: &mut PgConnection, id: Uuid, lock: bool) -> Result<CallRow, ScoringError> {
    let q = calls::table.find(id).select(CallRow::as_select());
    let row = if lock {
        q.for_update().first(c).optional()?
    } else {
        q.first(c).optional()?
    };
    row.ok_or(ScoringError::CallNotFound(id))
}

/// Locks the rows of `ids` (FOR UPDATE) in id order, the one order every handler that
/// locks several calls takes, so two of them never wait on each other. A call's row is the
/// lock that orders assignment, conflicts, scoring and closing its stages: whoever holds it
/// sees the others' work whole or not at all.
pub fn lock_calls(c: &mut PgConnection, ids: &[Uuid]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    calls::table
        .filter(calls::id.eq_any(ids))
        .order(calls::id.asc())
        .select(calls::id)
        .for_update()
        .load::<Uuid>(c)?;
    Ok(())
}

/// The call and its evaluation settings (which must exist).
pub fn configured_call(
    c: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<(CallRow, EvaluationConfig), ScoringError> {
    let call = find_call(c, id, lock)?;
    // Every step that locks the call changes it: a cancelled call takes none (L-a).
    if lock {
        call.not_cancelled()?;
    }
    let config = call
        .config
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or(ScoringError::NotConfigured(id))?;
    Ok((call, config))
}

/// The call locked for a decision (proposing, publishing, ordering a tie), with its
/// settings: refused once the decision is published, which is final.
pub fn undecided_call(
    c: &mut PgConnection,
    id: Uuid,
) -> Result<(CallRow, EvaluationConfig), ScoringError> {
    let (call, config) = configured_call(c, id, true)?;
    call.not_cancelled()?;
    if call.published_at.is_some() {
        return Err(ScoringError::Conflict(
            "the decision is published and final".into(),
        ));
    }
    Ok((call, config))
}

pub fn cases_of_call(c: &mut PgConnection, call: Uuid) -> QueryResult<Vec<CaseRow>> {
    evaluation_cases::table
        .filter(evaluation_cases::call_id.eq(call))
        .order(evaluation_cases::id.asc())
        .select(CaseRow::as_select())
        .load(c)
}

pub fn find_case_by_proposal(
    c: &mut PgConnection,
    proposal: Uuid,
) -> Result<CaseRow, ScoringError> {
    evaluation_cases::table
        .filter(evaluation_cases::proposal_id.eq(proposal))
        .select(CaseRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ScoringError::CaseNotFound(format!("proposal {proposal}")))
}

/// The reviewer pool, the declared conflicts and what `stage` of `call` already has, planned
/// for `cases` (see [`assign::plan`]).
pub fn plan_assignments(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
    config: &EvaluationConfig,
    cases: &[CaseRow],
) -> QueryResult<assign::Plan> {
    use crate::schema::assignments;
    let infos: Vec<assign::CaseInfo> = cases
        .iter()
        .map(|k| assign::CaseInfo {
            case_id: k.id,
            proposal_id: k.proposal_id,
            consortium_id: k.consortium_id,
            members: k.members(),
        })
        .collect();
    // FOR SHARE: a conflict being declared (or a profile being changed) holds its reviewer's
    // row until it commits, so the conflicts and organisations read below are the ones it
    // wrote; and once this has the rows, the declaration waits and then sees this plan's
    // assignments. Callers hold the call's row first (the order declarations take too).
    let (pool, declared) = reviewer_pool(c, true)?;
    let rows: Vec<(String, Uuid, bool)> = assignments::table
        .filter(assignments::call_id.eq(call_id))
        .filter(assignments::stage.eq(stage))
        .select((
            assignments::reviewer_id,
            assignments::case_id,
            assignments::voided_at.is_null(),
        ))
        .load(c)?;
    let mut existing = assign::Existing::default();
    for (reviewer, case, counts) in rows {
        if counts {
            *existing.load.entry(reviewer.clone()).or_default() += 1;
            *existing.active.entry(case).or_default() += 1;
        }
        existing.on_case.entry(case).or_default().insert(reviewer);
    }
    Ok(assign::plan(
        &infos,
        &pool,
        &declared,
        &existing,
        config.reviewers_per_proposal as usize,
        config.max_assignments_per_reviewer as usize,
    ))
}

/// Every registered reviewer (organisation and registration number) in id order, and the
/// declared conflicts by (reviewer, consortium) with their reason: what the conflict rules
/// of [`assign::plan`] read. `lock` reads the reviewers `FOR SHARE`, so a conflict or a
/// profile being changed commits first (a plan, a sheet, a close); a read-only listing
/// takes no lock.
pub fn reviewer_pool(c: &mut PgConnection, lock: bool) -> QueryResult<assign::Pool> {
    use crate::schema::{conflicts, reviewers};
    let q = reviewers::table.order(reviewers::id.asc()).select((
        reviewers::id,
        reviewers::organisation,
        reviewers::brn,
    ));
    let rows: Vec<(String, String, Option<String>)> = if lock {
        q.for_share().load(c)?
    } else {
        q.load(c)?
    };
    let pool = rows
        .into_iter()
        .map(|(id, organisation, brn)| assign::ReviewerInfo {
            id,
            organisation,
            brn,
        })
        .collect();
    let declared = conflicts::table
        .select((
            conflicts::reviewer_id,
            conflicts::consortium_id,
            conflicts::reason,
        ))
        .load::<(String, Uuid, String)>(c)?
        .into_iter()
        .map(|(r, k, reason)| ((r, k), reason))
        .collect();
    Ok((pool, declared))
}

/// Writes a plan's assignments and the pairs it kept apart (with the reason).
pub fn apply_plan(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
    plan: &assign::Plan,
) -> QueryResult<()> {
    use crate::schema::{assignments, blocked_assignments};
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
    for (reviewer, case, reason) in &plan.blocked {
        diesel::insert_into(blocked_assignments::table)
            .values((
                blocked_assignments::call_id.eq(call_id),
                blocked_assignments::stage.eq(stage),
                blocked_assignments::reviewer_id.eq(reviewer),
                blocked_assignments::case_id.eq(case),
                blocked_assignments::reason.eq(reason),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
    }
    Ok(())
}

/// Whether `stage` of `call` is closed.
pub fn stage_closed(c: &mut PgConnection, call_id: Uuid, stage: i32) -> QueryResult<bool> {
    use crate::schema::stage_closures;
    let n: i64 = stage_closures::table
        .find((call_id, stage))
        .count()
        .get_result(c)?;
    Ok(n > 0)
}

/// Whether `stage` of `call` has started: reviewers were assigned to it.
pub fn stage_started(c: &mut PgConnection, call_id: Uuid, stage: i32) -> QueryResult<bool> {
    use crate::schema::assignments;
    let n: i64 = assignments::table
        .filter(assignments::call_id.eq(call_id))
        .filter(assignments::stage.eq(stage))
        .count()
        .get_result(c)?;
    Ok(n > 0)
}
