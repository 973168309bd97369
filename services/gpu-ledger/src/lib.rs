//! The GPU grant ledger: the national pool of GPUs by model and period as a double-entry
//! ledger (TigerBeetle's model on PostgreSQL) that can never be over-allocated.
//!
//! - `domain`: the rules as plain functions ([`domain::ledger::apply`] decides a batch).
//! - `store`: locks the accounts a batch touches (in id order; a transaction that
//!   still deadlocks is retried, see [`store::retrying`]),
//!   runs the domain, writes the transfers, the new totals and their history, and the
//!   batch's event, in one transaction.
//! - `routes`: the HTTP API the gateway calls, with the caller's token checked again here.
//! - `sweeper`: records the expiry of pending transfers past their timeout, safely from
//!   several replicas at once.
//!
//! It consumes scoring's and milestones' topics into its inbox (offers from
//! `SelectionPublished` and reallocation on elimination build on that; see the README), and
//! the GPU operators' own topic (usage reports, recorded as `POST /usage` records them).

pub mod consumer;
pub mod domain;
pub mod error;
pub mod grants;
pub mod routes;
pub mod schema;
pub mod store;
pub mod sweeper;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};
use std::sync::Arc;

pub const NAME: &str = "gpu-ledger";
pub const DEFAULTS: Defaults = Defaults {
    port: 8083,
    database: "kaip_gpu_ledger",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition {
        name: NAME,
        migrations: MIGRATIONS,
        routes: routes::configure,
        consumes: vec![topics::SCORING, topics::MILESTONES, topics::OPERATORS],
        handler: Some(Arc::new(consumer::LedgerEvents)),
        background: vec![sweeper::task()],
    }
}
