//! Overseas talent: researchers matched to the positions teams open, with the government's matching funds (up to KRW 2bn per team per year, pro-rated).
//!
//! This service starts, creates and migrates its database, creates its topics, joins its
//! consumer group and reports health now; its domain arrives in its own issue. Until then
//! it records the events it consumes in its inbox (see `ServiceDefinition::recording`).

pub mod domain;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};

pub const NAME: &str = "talent";
pub const DEFAULTS: Defaults = Defaults {
    port: 8085,
    database: "kaip_talent",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition::recording(NAME, MIGRATIONS, vec![topics::SCORING, topics::MILESTONES])
}
