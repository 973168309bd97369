//! Flags overdue deliverables: a deliverable whose current due date (the latest revision's
//! new date, or the planned one) has ended in KST, that is not approved or rejected, and
//! that got no evidence by the end of that day since the last verdict. Each flag emits
//! `MilestoneOverdue` once per deliverable and due date. A team a published gate
//! eliminated owes nothing more: its deliverables are never flagged after the decision.
//!
//! Runs in every replica: each pass takes a transaction-scoped advisory lock and skips if
//! another replica holds it, and the flag's primary key (deliverable, due date) with
//! `ON CONFLICT DO NOTHING` decides who emits, so even two passes that raced would emit
//! once (the event is written in the same transaction as the flag).

use crate::error::MilestonesError;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Date, Integer, Text, Timestamptz};
use kaip_bus::Outbox;
use kaip_contracts::events::MilestoneOverdue;
use kaip_contracts::{Actor, ConsortiumId};
use kaip_service::{AppState, BackgroundTask};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a replica looks for overdue deliverables.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Flags per pass (one transaction).
pub const BATCH: i64 = 500;
const LOCK_KEY: i64 = 0x6d73_5f6f_7665_7264; // "ms_overd"

pub fn task() -> BackgroundTask {
    Arc::new(|state: AppState, stop: CancellationToken| {
        Box::pin(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(INTERVAL) => {}
                }
                let pool = state.pool.clone();
                let outbox = state.outbox.clone();
                let pass = tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get().map_err(|e| e.to_string())?;
                    sweep(&mut conn, &outbox).map_err(|e| format!("{e:?}"))
                })
                .await;
                match pass {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(flagged = n, "overdue deliverables flagged")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "overdue sweep failed; retried next pass")
                    }
                    Err(e) => tracing::warn!(error = %e, "overdue sweep task failed"),
                }
            }
        })
    })
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    consortium_id: Uuid,
    #[diesel(sql_type = Integer)]
    phase: i32,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Date)]
    due_date: NaiveDate,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// The deliverables overdue at `now`, not yet flagged for their current due date.
const OVERDUE: &str = "
WITH cur AS (
    SELECT d.id, d.consortium_id, d.phase, d.title,
           COALESCE(rv.new_due_date, d.due_date) AS due_date,
           lv.verdict AS last_verdict,
           COALESCE(lv.evidence_version, 0) AS seen_version
    FROM ms_deliverables d
    LEFT JOIN LATERAL (
        SELECT v.new_due_date FROM ms_verdicts v
        WHERE v.deliverable_id = d.id AND v.verdict = 'revision'
        ORDER BY v.seq DESC LIMIT 1) rv ON true
    LEFT JOIN LATERAL (
        SELECT v.verdict, v.evidence_version FROM ms_verdicts v
        WHERE v.deliverable_id = d.id
        ORDER BY v.seq DESC LIMIT 1) lv ON true
)
SELECT cur.id, cur.consortium_id, cur.phase, cur.title, cur.due_date
FROM cur
WHERE ((cur.due_date + 1)::timestamp AT TIME ZONE 'Asia/Seoul') <= $1
  AND (cur.last_verdict IS NULL OR cur.last_verdict = 'revision')
  AND NOT EXISTS (
      SELECT 1 FROM ms_evidence e
      WHERE e.deliverable_id = cur.id AND e.version > cur.seen_version
        AND e.submitted_at < ((cur.due_date + 1)::timestamp AT TIME ZONE 'Asia/Seoul'))
  AND NOT EXISTS (
      SELECT 1 FROM ms_overdue o WHERE o.deliverable_id = cur.id AND o.due_date = cur.due_date)
  AND NOT EXISTS (
      SELECT 1 FROM ms_decisions dd, jsonb_array_elements(dd.eliminated) el
      WHERE el->>'consortium_id' = cur.consortium_id::text)
ORDER BY cur.due_date, cur.id
LIMIT $2";

/// One pass at the current time. Returns how many deliverables it flagged.
pub fn sweep(conn: &mut PgConnection, outbox: &Outbox) -> Result<usize, MilestonesError> {
    sweep_at(conn, outbox, Utc::now().trunc_subsecs(6))
}

/// One pass as of `at` (tests name the moment).
pub fn sweep_at(
    conn: &mut PgConnection,
    outbox: &Outbox,
    at: DateTime<Utc>,
) -> Result<usize, MilestonesError> {
    outbox.transaction(conn, |c, tx| -> Result<usize, MilestonesError> {
        let got: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
            .bind::<BigInt, _>(LOCK_KEY)
            .get_result(c)?;
        if !got.locked {
            return Ok(0);
        }
        let due: Vec<Due> = diesel::sql_query(OVERDUE)
            .bind::<Timestamptz, _>(at)
            .bind::<BigInt, _>(BATCH)
            .load(c)?;
        if due.is_empty() {
            return Ok(0);
        }
        audit(c)?;
        let actor = Actor::system(crate::NAME);
        let mut flagged = 0;
        for d in due {
            use crate::schema::ms_overdue as o;
            let n = diesel::insert_into(o::table)
                .values((
                    o::deliverable_id.eq(d.id),
                    o::due_date.eq(d.due_date),
                    o::flagged_at.eq(at),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            if n == 0 {
                continue;
            }
            tx.publish(
                c,
                actor.clone(),
                &MilestoneOverdue {
                    deliverable_id: d.id,
                    consortium_id: ConsortiumId(d.consortium_id),
                    phase: d.phase,
                    title: d.title,
                    due_date: d.due_date,
                    flagged_at: at,
                },
            )?;
            flagged += 1;
        }
        Ok(flagged)
    })
}

/// Sets the audit trail's context for the rest of the pass's transaction.
fn audit(conn: &mut PgConnection) -> Result<(), MilestonesError> {
    let ctx = kaip_bus::audit::AuditContext {
        actor_sub: format!("service:{}", crate::NAME),
        actor_role: kaip_contracts::Role::System.to_string(),
        trace_id: None,
        operation: "sweeper:overdue".to_owned(),
        input: serde_json::json!({}),
        traceparent: None,
    };
    kaip_bus::audit::set_context(conn, &ctx, true)?;
    Ok(())
}
