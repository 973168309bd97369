//! The intake service: calls for proposals and consortia's submissions.
//!
//! Every state change commits with its event (`CallOpened`, `ProposalSubmitted`) through
//! the outbox; scoring and the gateway react to those events.

pub mod consumer;
pub mod domain;
pub mod error;
pub mod portfolio;
pub mod replacement;
pub mod routes;
pub mod schema;
pub mod store;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaip_service::{Defaults, ServiceDefinition};

pub const NAME: &str = "intake";
pub const DEFAULTS: Defaults = Defaults {
    port: 8081,
    database: "kaip_intake",
};
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Intake produces the call and proposal events, learns from scoring when a call is decided,
/// and from milestones which gates were decided (for replacement calls).
pub fn definition() -> ServiceDefinition {
    ServiceDefinition {
        name: NAME,
        migrations: MIGRATIONS,
        routes: routes::configure,
        consumes: vec![
            kaip_contracts::topics::SCORING,
            kaip_contracts::topics::MILESTONES,
        ],
        handler: Some(std::sync::Arc::new(consumer::ScoringEvents)),
        background: Vec::new(),
    }
}
