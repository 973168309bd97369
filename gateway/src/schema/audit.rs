//! The audit trail across every service (`auditTrail`), for admins and officers.
//!
//! Each service serves its own trail (`GET /audit`, oldest first by `(at, id)`); the gateway
//! asks all six with the same filter and merges their pages by `(at, service, id)`. The
//! cursor names the last entry returned; from it each service is asked for exactly the
//! entries that come after it in the merged order, so pages neither skip nor repeat.
//! A service that cannot answer fails the whole query (with its code and the service's
//! name): an auditor must never be handed a trail with a silent gap.

use super::{caller_with, upstream};
use crate::clients::{Services, UpstreamError};
use async_graphql::{Context, ErrorExtensions, Json, Object, SimpleObject, ID};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use kaip_contracts::audit as dto;
use kaip_contracts::Role;
use uuid::Uuid;

/// One row an audited operation wrote.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditChange {
    /// The table, e.g. `proposals`.
    pub table: String,
    /// The row's primary key, `{column: value}`.
    pub key: Json<serde_json::Value>,
    /// `insert`, `update`, `delete` or `truncate`.
    pub action: String,
    /// The row before (update, delete). Document bytes appear as their sha256 and size.
    pub before: Option<Json<serde_json::Value>>,
    /// The row after (insert, update).
    pub after: Option<Json<serde_json::Value>>,
}

/// One audited operation: a request's (or a consumed event's) transaction in one service.
#[derive(SimpleObject, Clone, Debug)]
pub struct AuditEntry {
    pub id: ID,
    pub service: String,
    pub at: DateTime<Utc>,
    /// The token subject; `service:<name>` for the platform itself; `db:<user>` for a change
    /// made directly in the database.
    pub actor_subject: String,
    /// `admin`, `officer`, `reviewer`, `consortium`, `integration`, `system`, or `unknown`.
    pub actor_role: String,
    /// The W3C trace id of the request (the gateway's `x-trace-id`).
    pub trace_id: Option<String>,
    /// `POST /proposals/{id}/submit`, `event:ProposalSubmitted`, `sql`, ...
    pub operation: String,
    /// `{path, body}` of a request or the event's envelope fields and data; secrets and
    /// large values (document bytes) replaced by their digest.
    pub input: Json<serde_json::Value>,
    /// The rows written, in order (at most 200; see `changeCount`).
    pub changes: Vec<AuditChange>,
    pub change_count: i32,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuditTrailPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<ID>,
}

impl From<(dto::AuditEntry, &'static str)> for AuditEntry {
    fn from((e, service): (dto::AuditEntry, &'static str)) -> Self {
        AuditEntry {
            id: ID(e.id.to_string()),
            service: service.to_owned(),
            at: e.at,
            actor_subject: e.actor_subject,
            actor_role: e.actor_role,
            trace_id: e.trace_id,
            operation: e.operation,
            input: Json(e.input),
            changes: e
                .changes
                .into_iter()
                .map(|c| AuditChange {
                    table: c.table,
                    key: Json(c.key),
                    action: c.action,
                    before: c.before.map(Json),
                    after: c.after.map(Json),
                })
                .collect(),
            change_count: i32::try_from(e.change_count).unwrap_or(i32::MAX),
        }
    }
}

/// Where a page ended in the merged order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    at: DateTime<Utc>,
    service: String,
    id: Uuid,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Position {
    fn encode(&self) -> ID {
        let raw = format!("{}|{}|{}", rfc3339(self.at), self.service, self.id);
        ID(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }

    fn decode(cursor: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(3, '|');
        let at = DateTime::parse_from_rfc3339(parts.next()?).ok()?;
        let service = parts.next()?.to_owned();
        let id = Uuid::parse_str(parts.next()?).ok()?;
        Some(Self {
            at: at.with_timezone(&Utc),
            service,
            id,
        })
    }

    /// The service-level cursor that selects, in `service`, exactly the entries after this
    /// position in the merged `(at, service, id)` order.
    fn after_in(&self, service: &str) -> String {
        let id = match service.cmp(self.service.as_str()) {
            std::cmp::Ordering::Equal => self.id,
            // Earlier services: only strictly later times.
            std::cmp::Ordering::Less => Uuid::max(),
            // Later services: the same time too.
            std::cmp::Ordering::Greater => Uuid::nil(),
        };
        format!("{},{id}", rfc3339(self.at))
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn invalid(field: &str, rule: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!("{field}: {rule}"))
        .extend_with(|_, e| e.set("code", "VALIDATION_FAILED"))
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit trail of every service, oldest first (admins and officers). `entity` is a
    /// table name (`proposals`), an id (matching rows keyed by it or referencing it: a
    /// proposal's id finds the proposal, its versions and documents, and its evaluation
    /// case), or `<table>:<primary key>`; `actor` a token subject; `from` inclusive, `to`
    /// exclusive. `first` 1-100 (20). One call per service.
    #[allow(clippy::too_many_arguments)]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        entity: Option<String>,
        actor: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<AuditTrailPage> {
        let authed = caller_with(ctx, &[Role::Admin, Role::Officer], "read the audit trail")?;
        let limit = first.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(invalid("first", "must be between 1 and 100"));
        }
        let position = after
            .as_ref()
            .map(|a| {
                Position::decode(a.as_str())
                    .ok_or_else(|| invalid("after", "is not a cursor from a previous page"))
            })
            .transpose()?;
        let mut common: Vec<String> = vec![format!("limit={limit}")];
        if let Some(entity) = &entity {
            common.push(format!("entity={}", encode(entity)));
        }
        if let Some(actor) = &actor {
            common.push(format!("actor={}", encode(actor)));
        }
        if let Some(from) = from {
            common.push(format!("from={}", encode(&rfc3339(from))));
        }
        if let Some(to) = to {
            common.push(format!("to={}", encode(&rfc3339(to))));
        }
        let services = ctx.data::<Services>()?;
        let calls = services.all.iter().map(|client| {
            let mut query = common.clone();
            if let Some(p) = &position {
                query.push(format!("after={}", encode(&p.after_in(client.name()))));
            }
            let path = format!("/audit?{}", query.join("&"));
            async move {
                let page: Result<dto::AuditPage, UpstreamError> =
                    client.get(&path, Some(&authed.token)).await;
                (client.name(), page)
            }
        });
        let mut entries: Vec<(dto::AuditEntry, &'static str)> = Vec::new();
        let mut more = false;
        for (service, page) in futures::future::join_all(calls).await {
            let page = page.map_err(|e| {
                upstream(UpstreamError {
                    message: format!(
                        "the {service} service's audit trail could not be read, so the trail \
                         would be incomplete: {}",
                        e.message
                    ),
                    code: e.code,
                })
            })?;
            more |= page.next_cursor.is_some();
            entries.extend(page.items.into_iter().map(|e| (e, service)));
        }
        entries.sort_by(|(a, sa), (b, sb)| (a.at, *sa, a.id).cmp(&(b.at, *sb, b.id)));
        let limit = limit as usize;
        more |= entries.len() > limit;
        entries.truncate(limit);
        let next_cursor = if more {
            entries.last().map(|(e, service)| {
                Position {
                    at: e.at,
                    service: (*service).to_owned(),
                    id: e.id,
                }
                .encode()
            })
        } else {
            None
        };
        Ok(AuditTrailPage {
            items: entries.into_iter().map(AuditEntry::from).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_selects_what_follows_in_each_service() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T01:02:03.456789Z")
            .expect("time")
            .with_timezone(&Utc);
        let id = Uuid::now_v7();
        let p = Position {
            at,
            service: "intake".into(),
            id,
        };
        assert_eq!(Position::decode(p.encode().as_str()), Some(p.clone()));
        assert_eq!(Position::decode("not a cursor"), None);
        assert_eq!(
            p.after_in("intake"),
            format!("2026-11-29T01:02:03.456789Z,{id}")
        );
        // "gpu-ledger" < "intake" < "scoring".
        assert_eq!(
            p.after_in("gpu-ledger"),
            "2026-11-29T01:02:03.456789Z,ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
        assert_eq!(
            p.after_in("scoring"),
            "2026-11-29T01:02:03.456789Z,00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(encode("proposals:a b&c+d"), "proposals%3Aa%20b%26c%2Bd");
    }
}
