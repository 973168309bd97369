//! The GPU grant ledger: a national pool of GPUs by model, grants released in tranches, never over-allocated; reallocated when a stage gate eliminates a team.
//!
//! This service starts, creates and migrates its database, creates its topics, joins its
//! consumer group and reports health now; its domain arrives in its own issue. Until then
//! it records the events it consumes in its inbox (see `ServiceDefinition::recording`).

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};

pub const NAME: &str = "gpu-ledger";
pub const DEFAULTS: Defaults = Defaults {
    port: 8083,
    database: "kaip_gpu_ledger",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition::recording(NAME, MIGRATIONS, vec![topics::SCORING, topics::MILESTONES])
}
