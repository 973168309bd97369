//! The audit trail's context: who is acting, in which trace, doing what with which input.
//!
//! The trail itself is written by the database (migration `audit_trail`): a trigger on each
//! opted-in domain table records every row change, in the same transaction, together with
//! the context the process set on the connection (`kaip.audit`). So handlers write nothing
//! and cannot forget to; a change made with no context is still recorded, as `unknown`.
//! The HTTP path (kaip-service's `AppState::db`) sets it for the session and clears it
//! after the request's work; the consumer ([`crate::consumer::process_event`]) sets it for
//! the transaction that applies an event.

use diesel::prelude::*;
use diesel::sql_types::Text;
use kaip_contracts::EventEnvelope;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What the trigger records about the operation (see the migration for the field names).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditContext {
    pub actor_sub: String,
    pub actor_role: String,
    pub trace_id: Option<String>,
    /// `POST /proposals/{id}/submit`, `event:ProposalSubmitted`, ...
    pub operation: String,
    /// Already [`redact`]ed.
    pub input: Value,
    /// W3C `traceparent`, copied onto the exported `AuditRecorded` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl AuditContext {
    /// The context of a consumed event: its actor, `event:<type>`, its data.
    pub fn for_event(event: &EventEnvelope, trace_id: Option<String>) -> Self {
        Self {
            actor_sub: event.actor.subject.clone(),
            actor_role: event.actor.role.to_string(),
            trace_id,
            operation: format!("event:{}", event.event_type),
            input: redact(serde_json::json!({
                "event_id": event.id.0,
                "type": event.event_type,
                "version": event.version,
                "producer": event.producer,
                "aggregate_id": event.aggregate_id,
                "data": event.data,
            })),
            traceparent: current_traceparent(),
        }
    }
}

/// The current span's W3C `traceparent`, if any.
pub fn current_traceparent() -> Option<String> {
    kaip_telemetry::current_trace_headers().remove("traceparent")
}

/// Sets the context on `conn`: for the current transaction only (`local`), or for the
/// session until [`clear_context`].
pub fn set_context(conn: &mut PgConnection, ctx: &AuditContext, local: bool) -> QueryResult<()> {
    let json = serde_json::to_string(ctx)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::sql_query(if local {
        "SELECT set_config('kaip.audit', $1, true)"
    } else {
        "SELECT set_config('kaip.audit', $1, false)"
    })
    .bind::<Text, _>(json)
    .execute(conn)
    .map(drop)
}

/// Removes a session context, so that a pooled connection never carries one request's
/// actor into the next user's work.
pub fn clear_context(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('kaip.audit', '', false)")
        .execute(conn)
        .map(drop)
}

/// Tells this database's trail which service it belongs to and where its `AuditRecorded`
/// events go (the prefixed audit topic). Run at start, after the migrations.
pub fn configure(conn: &mut PgConnection, service: &str, topic: &str) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO kaip_audit_settings (id, service, topic) VALUES (true, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET service = EXCLUDED.service, topic = EXCLUDED.topic \
         WHERE (kaip_audit_settings.service, kaip_audit_settings.topic) \
               IS DISTINCT FROM (EXCLUDED.service, EXCLUDED.topic)",
    )
    .bind::<Text, _>(service)
    .bind::<Text, _>(topic)
    .execute(conn)
    .map(drop)
}

/// Leaves every role but the trail's owner read-only on the trail (migration
/// `audit_hardening`): run by the owner at each start, after the migrations, so that a grant
/// made since (default privileges on new tables, a DBA's `GRANT ALL`) does not stay.
pub fn lockdown(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT kaip_audit_lockdown()")
        .execute(conn)
        .map(drop)
}

/// Strings longer than this are recorded as their digest.
pub const MAX_RECORDED_STRING_BYTES: usize = 16 * 1024;

/// Keys whose values are never recorded (credentials), whatever their size.
const SECRET_KEYS: [&str; 7] = [
    "password",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "authorization",
    "api_key",
];

/// Keys whose values are personal data (a researcher's name and contact, a hire's pay: see
/// `kaip_contracts::dto::talent`): the trail records ids, not names or salaries, so the
/// whole value is replaced by `"[personal data]"`.
const PERSONAL_KEYS: [&str; 1] = ["personal"];

/// The input as recorded: credentials replaced by `"[redacted]"`, personal data by
/// `"[personal data]"`, and long strings (document
/// bytes travel base64-encoded) by `{"redacted": true, "sha256": <hex>, "bytes": <n>}`.
/// For a `*_base64` field the digest and size are those of the decoded bytes, so they match
/// what the service stores (e.g. a document's `sha256`).
pub fn redact(value: Value) -> Value {
    redact_at(None, value)
}

fn redact_at(key: Option<&str>, value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let v = if SECRET_KEYS.contains(&lower.as_str()) {
                        Value::String("[redacted]".into())
                    } else if PERSONAL_KEYS.contains(&lower.as_str()) {
                        Value::String("[personal data]".into())
                    } else {
                        redact_at(Some(&lower), v)
                    };
                    (k, v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redact_at(key, v)).collect()),
        Value::String(s) if s.len() > MAX_RECORDED_STRING_BYTES => {
            use base64::Engine as _;
            let decoded = key
                .filter(|k| k.ends_with("base64"))
                .and_then(|_| base64::engine::general_purpose::STANDARD.decode(&s).ok());
            let bytes = decoded.unwrap_or_else(|| s.into_bytes());
            let digest = Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "redacted": true, "sha256": hex, "bytes": bytes.len() })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn personal_data_is_never_recorded() {
        let out = redact(json!({
            "researcher_id": "r-1",
            "personal": { "name": "Dr Example", "contact": "x@example.org" },
            "nested": [{ "Personal": { "monthly_salary_krw": "9100000" } }],
        }));
        assert_eq!(out["researcher_id"], "r-1");
        assert_eq!(out["personal"], "[personal data]");
        assert_eq!(out["nested"][0]["Personal"], "[personal data]");
    }

    #[test]
    fn credentials_and_long_values_are_replaced_by_their_digest() {
        use base64::Engine as _;
        let doc = vec![7u8; 40_000];
        let encoded = base64::engine::general_purpose::STANDARD.encode(&doc);
        let long_text = "x".repeat(MAX_RECORDED_STRING_BYTES + 1);
        let out = redact(json!({
            "filename": "plan.pdf",
            "content_base64": encoded,
            "nested": [{ "Token": "abc", "note": long_text }],
            "count": 3,
        }));
        assert_eq!(out["filename"], "plan.pdf");
        assert_eq!(out["count"], 3);
        let expected: String = Sha256::digest(&doc)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            out["content_base64"],
            json!({ "redacted": true, "sha256": expected, "bytes": 40_000 })
        );
        assert_eq!(out["nested"][0]["Token"], "[redacted]");
        assert_eq!(
            out["nested"][0]["note"]["bytes"],
            MAX_RECORDED_STRING_BYTES + 1
        );
        assert_eq!(out["nested"][0]["note"]["redacted"], true);
        // A value at the limit is recorded as it is.
        let edge = "y".repeat(MAX_RECORDED_STRING_BYTES);
        assert_eq!(redact(json!({ "s": edge.clone() }))["s"], json!(edge));
    }
}
