//! The scoring service. It reacts to intake's `ProposalSubmitted` by opening an evaluation
//! case (and announcing it with `EvaluationCaseOpened`); rubrics, reviewers, scores and
//! portfolio selection build on these cases.

pub mod consumer;
pub mod domain;
pub mod error;
pub mod records;
pub mod routes;
pub mod schema;
pub mod store;
pub mod verify;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};
use std::sync::Arc;

pub const NAME: &str = "scoring";
pub const DEFAULTS: Defaults = Defaults {
    port: 8082,
    database: "kaip_scoring",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition {
        name: NAME,
        migrations: MIGRATIONS,
        routes: routes::configure,
        consumes: vec![topics::INTAKE, topics::MILESTONES],
        handler: Some(Arc::new(consumer::IntakeEvents)),
        background: Vec::new(),
    }
}
