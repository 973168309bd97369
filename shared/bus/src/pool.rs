//! The connection pool, and how a checkout carries the audit trail's context.
//!
//! A pooled connection is tested when it is checked out (r2d2's `test_on_check_out`). Here
//! that test is `SELECT set_config('kaip.audit', <context>, false)`: the same single round
//! trip that proves the connection alive also sets the context of the work about to run on
//! it ([`checkout`]) or clears the previous user's (any other `pool.get()`). So a request's
//! actor is on the connection for everything it writes, reads included, and never outlives
//! the checkout, at no round trip beyond the liveness test every checkout already paid.

use crate::audit::AuditContext;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, ManageConnection, PooledConnection};
use diesel::sql_types::Text;
use diesel::PgConnection;
use std::cell::RefCell;

/// The connection pool every service uses. Diesel is synchronous: run queries on the
/// blocking pool (`web::block` / `spawn_blocking`), never on a runtime worker.
pub type PgPool = diesel::r2d2::Pool<AuditedManager>;

/// A checked-out connection.
pub type PgPooled = PooledConnection<AuditedManager>;

/// Diesel's connection manager, whose check-out test sets or clears the audit context.
#[derive(Debug)]
pub struct AuditedManager(ConnectionManager<PgConnection>);

impl AuditedManager {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self(ConnectionManager::new(database_url))
    }
}

thread_local! {
    /// The context (as JSON) the next check-out on this thread sets, and whether a
    /// check-out test has set it.
    static NEXT: RefCell<Option<(String, bool)>> = const { RefCell::new(None) };
}

fn set_config(conn: &mut PgConnection, json: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('kaip.audit', $1, false)")
        .bind::<Text, _>(json)
        .execute(conn)
        .map(drop)
}

impl ManageConnection for AuditedManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConnection, Self::Error> {
        self.0.connect()
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        let json = NEXT.with(|next| {
            next.borrow_mut().as_mut().map(|(json, applied)| {
                *applied = true;
                json.clone()
            })
        });
        set_config(conn, json.as_deref().unwrap_or("")).map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        self.0.has_broken(conn)
    }
}

/// Why a connection could not be checked out.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// No connection within the pool's timeout (the database is away, or the pool is
    /// exhausted).
    #[error(transparent)]
    Pool(#[from] diesel::r2d2::PoolError),
    /// The connection was checked out but its audit context could not be set.
    #[error("setting the audit context: {0}")]
    Context(#[from] diesel::result::Error),
}

/// Checks a connection out with `context` set on it (`None`: cleared), for as long as it is
/// held. Falls back to a separate statement if the pool did not test the connection.
pub fn checkout(pool: &PgPool, context: Option<&AuditContext>) -> Result<PgPooled, CheckoutError> {
    let json = context
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let want = json.clone().unwrap_or_default();
    NEXT.with(|next| *next.borrow_mut() = json.map(|j| (j, false)));
    let got = pool.get();
    let applied = NEXT
        .with(|next| next.borrow_mut().take())
        .is_none_or(|(_, applied)| applied);
    let mut conn = got?;
    if !applied {
        // The pool did not test the connection: nothing set the context (nor cleared the
        // last holder's).
        set_config(&mut conn, &want)?;
    }
    Ok(conn)
}
