//! Milestones and stage gates: each team's plan of deliverables per phase, the evidence
//! its consortium submits (versioned, hashed), officers' verdicts, overdue flags, and the
//! stage gates whose published decisions eliminate teams (`GateDecided`,
//! `TeamEliminated`: the GPU ledger, data budget and talent react to them).
//!
//! - `domain`: the rules as plain functions (exact decimals; the gate's weights,
//!   normalisation, exact score, ranking, eliminations).
//! - `store`: the rows and the transactions (locks; nothing updated, every decision a row).
//! - `routes`: the HTTP API the gateway calls, with the caller's token checked again here.
//! - `consumer`: what it learns from scoring (the selected teams, the gates' expert panels)
//!   and from benchmark integrations (results for gates' benchmark components).
//! - `sweeper`: the background check that flags overdue deliverables (`MilestoneOverdue`).

pub mod consumer;
pub mod domain;
pub mod error;
pub mod routes;
pub mod schema;
pub mod store;
pub mod sweeper;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};
use std::sync::Arc;

pub const NAME: &str = "milestones";
pub const DEFAULTS: Defaults = Defaults {
    port: 8086,
    database: "kaip_milestones",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition {
        name: NAME,
        migrations: MIGRATIONS,
        routes: routes::configure,
        consumes: vec![topics::SCORING, topics::BENCHMARKS],
        handler: Some(Arc::new(consumer::MilestonesEvents)),
        background: vec![sweeper::task()],
    }
}
