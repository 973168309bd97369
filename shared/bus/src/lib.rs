//! The K-AIP event backbone.
//!
//! * [`outbox`]: events are written in the same transaction as the state change;
//! * [`relay`]: publishes them and marks them sent only after the broker acknowledged;
//! * [`consumer`]: idempotent consumers with an inbox, bounded retries and a dead-letter topic;
//! * [`dlq`]: replaying dead letters through the same handler once the cause is fixed;
//! * [`feed`]: the gateway's group-less view of all events, for subscriptions;
//! * [`kafka`]: producer and topic bootstrap;
//! * [`audit`]: the context the audit trail's database triggers record (who, what, trace).
//!
//! Together they give exactly-once *effects* over an at-least-once broker: nothing is lost,
//! and a duplicate delivery changes nothing.

pub mod audit;
pub mod consumer;
pub mod dlq;
pub mod feed;
pub mod jsonb;
pub mod kafka;
pub mod outbox;
pub mod pool;
pub mod relay;
pub mod schema;
pub mod settings;

pub use consumer::{
    ConsumerSpec, ConsumerStatus, EventConsumer, EventHandler, Handled, HandlerError, Outcome,
    RecordOnly,
};
pub use feed::{start_feed, start_feed_with, EventFeed, FeedEvent};
pub use jsonb::JsonbText;
pub use outbox::{Outbox, OutboxTx};
pub use relay::Relay;
pub use settings::{KafkaSettings, OutboxSettings};

use diesel_migrations::{embed_migrations, EmbeddedMigrations};

pub use pool::{checkout, AuditedManager, CheckoutError, PgPool, PgPooled};

/// The outbox and inbox tables and the audit trail; every service runs these before its own
/// migrations.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
