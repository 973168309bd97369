//! Milestones and stage gates: each team's deliverables per phase, evidence and approvals, overdue flags, and the gate scores that eliminate the weakest.
//!
//! This service starts, creates and migrates its database, creates its topics, joins its
//! consumer group and reports health now; its domain arrives in its own issue. Until then
//! it records the events it consumes in its inbox (see `ServiceDefinition::recording`).

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};

pub const NAME: &str = "milestones";
pub const DEFAULTS: Defaults = Defaults {
    port: 8086,
    database: "kaip_milestones",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition::recording(NAME, MIGRATIONS, vec![topics::SCORING, topics::GPU_LEDGER])
}
