//! The audit trail across every service (`auditTrail`), for admins and officers.
//!
//! Each service serves its own trail (`GET /audit`) in its commit order (`sequence`: an entry
//! can never appear behind a cursor already handed out, even if its transaction began
//! earlier); the gateway asks all six with the same filter and merges their pages by time,
//! each service's entries staying in their order. The cursor holds, per service, the
//! sequence of the last entry returned from it; each service is asked for exactly what
//! follows that, so pages neither skip nor repeat.
//! A service that cannot answer fails the whole query (with its code and the service's
//! name): an auditor must never be handed a trail with a silent gap.

use super::{caller_with, upstream};
use crate::clients::{Services, UpstreamError};
use async_graphql::{Context, ErrorExtensions, Json, Object, SimpleObject, ID};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use kaip_contracts::audit as dto;
use kaip_contracts::Role;

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
    /// Its place in its service's commit order (pages follow it).
    pub sequence: super::gpu::Int64,
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
            sequence: super::gpu::Int64(e.sequence),
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

/// Where a page ended: per service, the sequence of the last entry returned from it
/// (services not named have returned nothing yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Position {
    after: std::collections::BTreeMap<String, i64>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Position {
    fn encode(&self) -> ID {
        let raw: Vec<String> = self
            .after
            .iter()
            .map(|(service, sequence)| format!("{service}={sequence}"))
            .collect();
        ID(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("v2|{}", raw.join(";"))),
        )
    }

    fn decode(cursor: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let body = raw.strip_prefix("v2|")?;
        let mut after = std::collections::BTreeMap::new();
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let (service, sequence) = part.split_once('=')?;
            let sequence: i64 = sequence.parse().ok().filter(|s| *s >= 0)?;
            if service.is_empty() || after.insert(service.to_owned(), sequence).is_some() {
                return None;
            }
        }
        Some(Self { after })
    }

    /// The service-level cursor: what follows the last entry returned from `service`.
    fn after_in(&self, service: &str) -> Option<String> {
        self.after.get(service).map(i64::to_string)
    }
}

/// Merges the services' pages (each in its commit order) by time, keeping each service's
/// order, up to `limit` entries; advances `position` past what it returns. True if any
/// service has entries left over.
fn merge(
    pages: Vec<(&'static str, Vec<dto::AuditEntry>)>,
    limit: usize,
    position: &mut Position,
) -> (Vec<(dto::AuditEntry, &'static str)>, bool) {
    let mut streams: Vec<(&'static str, std::collections::VecDeque<dto::AuditEntry>)> = pages
        .into_iter()
        .map(|(service, items)| (service, items.into()))
        .collect();
    let mut out = Vec::new();
    while out.len() < limit {
        let next = streams
            .iter()
            .enumerate()
            .filter_map(|(i, (service, items))| items.front().map(|e| ((e.at, *service), i)))
            .min();
        let Some((_, i)) = next else { break };
        let (service, items) = &mut streams[i];
        let entry = items.pop_front().expect("a head was found");
        position.after.insert((*service).to_owned(), entry.sequence);
        out.push((entry, *service));
    }
    let left = streams.iter().any(|(_, items)| !items.is_empty());
    (out, left)
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
            if let Some(after) = position.as_ref().and_then(|p| p.after_in(client.name())) {
                query.push(format!("after={after}"));
            }
            let path = format!("/audit?{}", query.join("&"));
            async move {
                let page: Result<dto::AuditPage, UpstreamError> =
                    client.get(&path, Some(&authed.token)).await;
                (client.name(), page)
            }
        });
        let mut pages = Vec::new();
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
            pages.push((service, page.items));
        }
        let mut position = position.unwrap_or_default();
        let (entries, left) = merge(pages, limit as usize, &mut position);
        let next_cursor = (more || left).then(|| position.encode());
        Ok(AuditTrailPage {
            items: entries.into_iter().map(AuditEntry::from).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn entry(sequence: i64, at: &str) -> dto::AuditEntry {
        dto::AuditEntry {
            id: Uuid::now_v7(),
            sequence,
            service: String::new(),
            at: DateTime::parse_from_rfc3339(at)
                .expect("time")
                .with_timezone(&Utc),
            actor_subject: "a".into(),
            actor_role: "officer".into(),
            trace_id: None,
            operation: "op".into(),
            input: serde_json::Value::Null,
            changes: Vec::new(),
            change_count: 0,
        }
    }

    #[test]
    fn a_cursor_round_trips_and_selects_what_follows_in_each_service() {
        let mut p = Position::default();
        p.after.insert("intake".into(), 12);
        p.after.insert("scoring".into(), 0);
        assert_eq!(Position::decode(p.encode().as_str()), Some(p.clone()));
        assert_eq!(
            Position::decode(Position::default().encode().as_str()),
            Some(Position::default())
        );
        assert_eq!(Position::decode("not a cursor"), None);
        for bad in [
            "v2|intake=x",
            "v2|intake=-1",
            "v2|intake=1;intake=2",
            "v1|intake=1",
        ] {
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bad);
            assert_eq!(Position::decode(&encoded), None, "{bad}");
        }
        assert_eq!(p.after_in("intake").as_deref(), Some("12"));
        assert_eq!(p.after_in("gpu-ledger"), None);
    }

    #[test]
    fn the_merge_keeps_each_services_commit_order_and_advances_only_past_what_it_returns() {
        // Intake's second commit began (its `at`) before its first: commit order wins.
        let intake = vec![
            entry(5, "2026-11-29T01:00:02Z"),
            entry(7, "2026-11-29T01:00:01Z"),
            entry(9, "2026-11-29T01:00:05Z"),
        ];
        let scoring = vec![entry(3, "2026-11-29T01:00:03Z")];
        let mut position = Position::default();
        let (page, left) = merge(
            vec![("intake", intake), ("scoring", scoring)],
            3,
            &mut position,
        );
        let got: Vec<(&str, i64)> = page.iter().map(|(e, s)| (*s, e.sequence)).collect();
        assert_eq!(got, vec![("intake", 5), ("intake", 7), ("scoring", 3)]);
        assert!(left, "intake's 9 is left for the next page");
        assert_eq!(position.after_in("intake").as_deref(), Some("7"));
        assert_eq!(position.after_in("scoring").as_deref(), Some("3"));
        assert_eq!(encode("proposals:a b&c+d"), "proposals%3Aa%20b%26c%2Bd");
    }
}
