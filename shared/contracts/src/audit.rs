//! The audit trail's contracts: what `GET /audit` returns on every service, and the
//! `AuditRecorded` event each service exports on its audit topic (`kaip.<service>.audit`).
//!
//! Both are written by the database (see kaip-bus's `audit_trail` migration): one entry per
//! audited transaction, with who (token subject and role), when, the trace, the operation
//! (`POST /proposals/{id}/submit`, `event:ProposalSubmitted`, or `sql` for a change made
//! outside the platform) with its input, and every domain row it wrote, before and after.
//! Large or secret values (document bytes, base64 bodies) are recorded as
//! `{"redacted": true, "sha256": ..., "bytes": ...}`.

use crate::events::DomainEvent;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One row an audited operation wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditChange {
    /// The table (e.g. `proposals`).
    pub table: String,
    /// The row's primary key, `{column: value}` (empty for `truncate`).
    pub key: serde_json::Value,
    /// `insert`, `update`, `delete` or `truncate`.
    pub action: String,
    /// The row before the change (`update`, `delete`), as JSON.
    pub before: Option<serde_json::Value>,
    /// The row after the change (`insert`, `update`), as JSON.
    pub after: Option<serde_json::Value>,
}

/// One audited operation (one database transaction of a request or of a consumed event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UUIDv7 of the operation.
    pub id: Uuid,
    /// Its place in the service's commit order: increasing, with gaps (a transaction that
    /// failed at commit leaves one). Pages follow it.
    pub sequence: i64,
    pub service: String,
    /// When its first change was written (the database's clock).
    pub at: DateTime<Utc>,
    pub actor_subject: String,
    /// The token's role, `system` for the platform's own reactions, `unknown` for a change
    /// made directly in the database.
    pub actor_role: String,
    pub trace_id: Option<String>,
    pub operation: String,
    pub input: serde_json::Value,
    /// At most [`MAX_CHANGES_PER_ENTRY`] of its changes, in the order they were written.
    pub changes: Vec<AuditChange>,
    /// How many changes it made in all.
    pub change_count: i64,
}

/// Changes listed per entry in `GET /audit`; an entry with more says so in `change_count`.
pub const MAX_CHANGES_PER_ENTRY: i64 = 200;

/// A page of the trail, in commit order. `next_cursor` is the last entry's `sequence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// An audited operation, exported for archives outside the platform. Published on
/// `kaip.<service>.audit` (never on the services' event topics), keyed by operation id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRecorded {
    pub operation_id: Uuid,
    pub service: String,
    pub at: DateTime<Utc>,
    pub actor_subject: String,
    /// As in the trail; the envelope's `actor.role` is `system` when this is `unknown`.
    pub actor_role: String,
    pub trace_id: Option<String>,
    pub operation: String,
    /// The request body or event data, secrets and large values replaced by their digest.
    pub input: serde_json::Value,
    pub changes: Vec<AuditChange>,
    /// True when part of the record was too large for a message: a change over ~350 kB
    /// carries its table, key and action only, an input over ~350 kB is empty. The full
    /// record is in `auditTrail`.
    pub changes_truncated: bool,
    /// The operation's place in its service's commit order (as `auditTrail` pages it).
    #[serde(default)]
    pub sequence: Option<i64>,
    /// An operation too large for one message is exported as several events (same
    /// operation id and key, consecutive on its partition), each with some of its changes
    /// in order: this is part `part` (1-based) of `parts`.
    #[serde(default = "one")]
    pub part: i32,
    /// How many events the operation was exported as (1 for nearly all).
    #[serde(default = "one")]
    pub parts: i32,
}

fn one() -> i32 {
    1
}

impl DomainEvent for AuditRecorded {
    const TYPE: &'static str = "AuditRecorded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "audit_operation";
    fn aggregate_id(&self) -> Uuid {
        self.operation_id
    }
}
