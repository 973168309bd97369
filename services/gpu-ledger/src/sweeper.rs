//! Records the expiry of pending transfers past their timeout (an unaccepted offer's
//! reservation goes back to the pool). Runs in every replica: each pass takes a
//! transaction-scoped advisory lock and skips if another replica holds it, and each expiry
//! has an id derived from its pending transfer, so even two passes that raced would record
//! one expiry (the second answers `exists`). An offer whose last reservation expires is
//! announced (`GpuOfferExpired`) in the same transaction, once. The same pass releases
//! tranches whose date has come.

use crate::domain::ledger::{Kind, TransferRequest};
use crate::error::LedgerError;
use crate::store;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use kaip_bus::Outbox;
use kaip_contracts::Actor;
use kaip_service::{AppState, BackgroundTask};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a replica looks for expired reservations.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Expiries recorded per pass (one batch, one transaction).
pub const BATCH: i64 = 1000;
const LOCK_KEY: i64 = 0x6770_755f_7377_6565; // "gpu_swee"

/// The id of the expiry of `pending`: fixed, so replicas agree on it.
pub fn expiry_id(pending: Uuid) -> Uuid {
    Uuid::from_u128(pending.as_u128() ^ 0x5eed_0000_0000_4000_8000_0000_0000_e4e1)
}

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
                        tracing::info!(transfers = n, "expiries and releases recorded")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "expiry sweep failed; retried next pass")
                    }
                    Err(e) => tracing::warn!(error = %e, "expiry sweep task failed"),
                }
            }
        })
    })
}

/// The open reservations past their timeout, oldest first, at most `$1`. Read from
/// `ledger_open_pending` (the pending transfers not yet resolved, kept by a trigger in the
/// transaction of every transfer that opens or resolves one), so a pass costs what is open,
/// not the history of every reservation ever resolved; its partial index on `timeout_at`
/// finds the due ones in order. A row whose pending transfer has a resolution (a table out
/// of step, see [`PRUNE`]) is skipped, so it never yields a repeat expiry nor takes a place
/// in the LIMIT: a scalar subquery per due row, which PostgreSQL runs as a lookup in the
/// unique index on `pending_id` and never turns into a join (a `NOT EXISTS` became a hash
/// anti-join reading every transfer when the planner thought the table small).
pub const DUE: &str = "SELECT o.pending_id AS id, o.timeout_at FROM ledger_open_pending o \
     WHERE o.timeout_at <= now() \
       AND (SELECT true FROM ledger_transfers r WHERE r.pending_id = o.pending_id) IS NULL \
     ORDER BY o.timeout_at LIMIT $1";

/// Deletes the due open rows whose pending transfer is resolved (the trigger deletes them
/// with the resolution, so none unless the table was edited by hand), as the table's owner:
/// the login role may only read `ledger_open_pending`. Run before [`DUE`] in each pass.
pub const PRUNE: &str = "SELECT gpu_ledger_prune_open_pending() AS pruned";

#[derive(QueryableByName)]
struct Pruned {
    #[diesel(sql_type = BigInt)]
    pruned: i64,
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    timeout_at: chrono::DateTime<chrono::Utc>,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// One pass: releases due tranches, then records up to [`BATCH`] expiries. Returns how many
/// transfers it created.
///
/// Two transactions, each applying one batch: a batch locks its accounts in id order, but
/// two batches in one transaction would lock two sets one after the other, an order another
/// transaction could cross (a deadlock).
pub fn sweep(conn: &mut PgConnection, outbox: &Outbox) -> Result<usize, LedgerError> {
    let released = outbox.transaction(conn, |c, tx| -> Result<usize, LedgerError> {
        if !try_lock(c)? {
            return Ok(0);
        }
        audit(c, "sweeper:release")?;
        crate::grants::release_due(c, tx)
    })?;
    let expired = outbox.transaction(conn, |c, tx| -> Result<usize, LedgerError> {
        if !try_lock(c)? {
            return Ok(0);
        }
        let pruned: Pruned = diesel::sql_query(PRUNE).get_result(c)?;
        if pruned.pruned > 0 {
            tracing::warn!(
                rows = pruned.pruned,
                "open reservations already resolved removed (ledger_open_pending was out of step)"
            );
        }
        let due: Vec<Due> = diesel::sql_query(DUE).bind::<BigInt, _>(BATCH).load(c)?;
        if due.is_empty() {
            return Ok(0);
        }
        let requests: Vec<TransferRequest> = due
            .iter()
            .map(|d| TransferRequest {
                id: expiry_id(d.id),
                debit_account: Uuid::nil(),
                credit_account: Uuid::nil(),
                amount: 0,
                kind: Kind::Expire,
                pending_id: Some(d.id),
                timeout_at: None,
                linked: false,
                code: "expiry".into(),
                reason: format!("timed out at {}", d.timeout_at.to_rfc3339()),
            })
            .collect();
        audit(c, "sweeper:expire")?;
        // Offers before pools, as an acceptance locks them: see `lock_offers_reserving`.
        let pendings: Vec<Uuid> = due.iter().map(|d| d.id).collect();
        crate::grants::lock_offers_reserving(c, &pendings)?;
        let system = Actor::system(crate::NAME);
        let applied = store::apply_batch(c, tx, &requests, &system)?;
        crate::grants::announce_expired_offers(c, tx, &applied.created, &system)?;
        for (r, d) in applied.results.iter().zip(&due) {
            if let Err(e) = r {
                tracing::warn!(pending = %d.id, code = e.code(), "expiry not recorded");
            }
        }
        Ok(applied.created.len())
    })?;
    Ok(released + expired)
}

/// One sweeping replica at a time: a transaction-scoped advisory lock, skipped if held.
fn try_lock(conn: &mut PgConnection) -> Result<bool, LedgerError> {
    let got: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(conn)?;
    Ok(got.locked)
}

/// Sets the audit trail's context for the rest of the pass's transaction (a connection from
/// the pool carries none: without this the sweeper's changes were recorded as `unknown`).
fn audit(conn: &mut PgConnection, operation: &str) -> Result<(), LedgerError> {
    let ctx = kaip_bus::audit::AuditContext {
        actor_sub: format!("service:{}", crate::NAME),
        actor_role: kaip_contracts::Role::System.to_string(),
        trace_id: None,
        operation: operation.to_owned(),
        input: serde_json::json!({}),
        traceparent: None,
    };
    kaip_bus::audit::set_context(conn, &ctx, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_ids_are_fixed_distinct_and_never_the_pending_id() {
        let p = Uuid::now_v7();
        assert_eq!(expiry_id(p), expiry_id(p));
        assert_ne!(expiry_id(p), p);
        assert_ne!(expiry_id(p), expiry_id(Uuid::now_v7()));
        assert_eq!(
            expiry_id(expiry_id(p)),
            p,
            "a bijection: no two pendings share one"
        );
    }
}
