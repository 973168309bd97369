//! The data budget: each selected team's data money per fiscal year (KST calendar years),
//! up to a cap from the call with sub-limits per category; joint purchases split across the
//! teams that share them, exact to the won; spending never exceeds the cap.
//!
//! - `domain`: the rules as plain functions (fiscal years, the largest-remainder split,
//!   room under the cap and sub-limits with optional carry-over, validation).
//! - `store`: the programme's configuration, budgets and their figures, the locks
//!   (every budget row of a team, in (consortium, year) order) and [`kaip_service::retry::retrying`].
//! - `spend`: commitments, joint purchases (all or nothing), cancellations, invoices,
//!   payments (idempotent by finance's key), cap adjustments, the data catalogue.
//! - `routes`: the HTTP API the gateway and finance integrations call, with the caller's
//!   token checked again here.
//! - `consumer`: budgets opened by `SelectionPublished`; eliminations from milestones.
//!
//! Every record is immutable (database triggers refuse UPDATE, DELETE and TRUNCATE) and in
//! the audit trail; every change writes its event to the outbox in the same transaction.

pub mod consumer;
pub mod domain;
pub mod error;
pub mod routes;
pub mod schema;
pub mod spend;
pub mod store;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};
use std::sync::Arc;

pub const NAME: &str = "data-budget";
pub const DEFAULTS: Defaults = Defaults {
    port: 8084,
    database: "kaip_data_budget",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition {
        name: NAME,
        migrations: MIGRATIONS,
        routes: routes::configure,
        consumes: vec![topics::SCORING, topics::MILESTONES],
        handler: Some(Arc::new(consumer::BudgetEvents)),
        background: Vec::new(),
    }
}
