//! The data budget: up to a per-team annual cap (KRW 15bn by default), joint purchases split across the teams that share them; spending never exceeds the cap.
//!
//! This service starts, creates and migrates its database, creates its topics, joins its
//! consumer group and reports health now; its domain arrives in its own issue. Until then
//! it records the events it consumes in its inbox (see `ServiceDefinition::recording`).

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};

pub const NAME: &str = "data-budget";
pub const DEFAULTS: Defaults = Defaults {
    port: 8084,
    database: "kaip_data_budget",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition::recording(NAME, MIGRATIONS, vec![topics::SCORING, topics::MILESTONES])
}
