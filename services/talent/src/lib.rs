//! Overseas talent: researchers matched to the positions teams open, and the government's
//! matching funds (up to KRW 2bn per team per fiscal year, at a match ratio by the lead
//! company's size and openness, pro-rated by days).
//!
//! - `domain`: the rules as plain functions (fit score, deferred acceptance, pro-rating,
//!   match ratios, the annual cap).
//! - `store`: the rows and the transactions (locks, the cap under concurrent claims).
//! - `routes`: the HTTP API the gateway calls, with the caller's token checked again here.
//! - `consumer`: what it learns from intake (proposals' lead and openness), scoring (the
//!   selected teams) and milestones (eliminations).
//!
//! Personal data (researchers' names, contacts, countries; hires' pay) is kept in two tables
//! the audit trail does not record, travels in request fields named `personal` (never
//! recorded as input) and never leaves in an event.

pub mod consumer;
pub mod domain;
pub mod error;
pub mod routes;
pub mod schema;
pub mod store;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_contracts::topics;
use kaip_service::{Defaults, ServiceDefinition};
use std::sync::Arc;

pub const NAME: &str = "talent";
pub const DEFAULTS: Defaults = Defaults {
    port: 8085,
    database: "kaip_talent",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub fn definition() -> ServiceDefinition {
    ServiceDefinition {
        name: NAME,
        migrations: MIGRATIONS,
        routes: routes::configure,
        consumes: vec![topics::INTAKE, topics::SCORING, topics::MILESTONES],
        handler: Some(Arc::new(consumer::TalentEvents)),
        background: vec![],
    }
}
