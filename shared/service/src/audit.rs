//! The audit trail, as every service serves it.
//!
//! Recording needs no code in handlers: the database's triggers record each change to an
//! opted-in table (kaip-bus's `audit_trail` migration; a service's migration calls
//! `SELECT kaip_audit_table('<table>')`), and this module supplies the context they
//! record. A middleware opens a per-request scope with the operation (method and route
//! pattern) and path; the [`Caller`](crate::Caller) extractor adds the actor and
//! [`ValidJson`](crate::ValidJson) the (redacted) body; [`AppState::db`](crate::AppState::db)
//! sets it on the connection for a state-changing request's work and clears it afterwards.
//!
//! `GET /audit` (admins and officers) pages the trail oldest first; see [`list`].

use crate::caller::Caller;
use crate::error::CommonError;
use crate::AppState;
use actix_web::dev::ServiceRequest;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz};
use kaip_bus::audit::AuditContext;
use kaip_contracts::audit::{AuditChange, AuditEntry, AuditPage, MAX_CHANGES_PER_ENTRY};
use kaip_contracts::Role;
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// What one request has told the trail so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestAudit {
    operation: String,
    path: String,
    /// GET, HEAD and OPTIONS are not expected to change anything (the outbox is not woken
    /// after them); their context is set all the same.
    mutating: bool,
    actor: Option<(String, String)>,
    body: Option<Value>,
}

tokio::task_local! {
    static REQUEST: Arc<Mutex<RequestAudit>>;
}

/// Runs the rest of the request (`call` starts it, the returned future finishes it) inside
/// its audit scope.
pub(crate) fn scoped<F, Fut>(
    req: ServiceRequest,
    call: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<Mutex<RequestAudit>>, Fut>
where
    F: FnOnce(ServiceRequest) -> Fut,
    Fut: Future,
{
    let method = req.method().clone();
    let pattern = req
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let cell = Arc::new(Mutex::new(RequestAudit {
        operation: format!("{method} {pattern}"),
        path: req.path().to_owned(),
        mutating: !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS"),
        actor: None,
        body: None,
    }));
    let fut = REQUEST.sync_scope(cell.clone(), || call(req));
    REQUEST.scope(cell, fut)
}

fn with_request(f: impl FnOnce(&mut RequestAudit)) {
    let _ = REQUEST.try_with(|cell| {
        if let Ok(mut r) = cell.lock() {
            f(&mut r);
        }
    });
}

/// The authenticated caller (from the `Caller` extractor).
pub(crate) fn note_actor(claims: &kaip_auth::Claims) {
    with_request(|r| r.actor = Some((claims.sub.clone(), claims.role.to_string())));
}

/// The request body (from `ValidJson`), redacted before it is kept.
pub(crate) fn note_body(body: Value) {
    with_request(|r| r.body = Some(kaip_bus::audit::redact(body)));
}

/// Marks top-level fields of the current request's recorded body as personal data: the trail
/// records them as `"[personal data]"` (on top of [`kaip_bus::audit::redact`], which does
/// so for every `personal` key). For a handler whose body carries personal data under
/// other names (a researcher's skills, the reason for an erasure). Call it before the
/// request's database work; outside a request it does nothing.
pub fn personal_fields(fields: &[&str]) {
    with_request(|r| {
        if let Some(Value::Object(body)) = r.body.as_mut() {
            for f in fields {
                if let Some(v) = body.get_mut(*f) {
                    if !v.is_null() {
                        *v = Value::String("[personal data]".into());
                    }
                }
            }
        }
    });
}

/// The context to set for database work done now, and whether the work may change state:
/// the request's (a read's too, so that a write made while serving a read is still
/// attributed to its caller), or the service itself for work outside any request.
pub(crate) fn context_for_db(service: &str) -> (Option<AuditContext>, bool) {
    let trace_id = kaip_telemetry::trace_id_of(&tracing::Span::current());
    let request = REQUEST.try_with(|cell| cell.lock().map(|r| r.clone()).ok());
    match request {
        Ok(Some(r)) => {
            let (actor_sub, actor_role) = r
                .actor
                .unwrap_or_else(|| ("anonymous".to_owned(), "anonymous".to_owned()));
            let context = AuditContext {
                actor_sub,
                actor_role,
                trace_id,
                operation: r.operation,
                input: serde_json::json!({ "path": r.path, "body": r.body }),
                traceparent: kaip_bus::audit::current_traceparent(),
            };
            (Some(context), r.mutating)
        }
        Ok(None) => (None, true),
        Err(_) => (
            Some(AuditContext {
                actor_sub: format!("service:{service}"),
                actor_role: Role::System.to_string(),
                trace_id,
                operation: "background".to_owned(),
                input: Value::Object(Default::default()),
                traceparent: kaip_bus::audit::current_traceparent(),
            }),
            true,
        ),
    }
}

/// A validated `GET /audit` query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// A table name, a primary key value, or `<table>:<key>`.
    pub entity: Option<String>,
    /// A token subject.
    pub actor: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    /// The `sequence` of the last entry of the previous page.
    pub after: Option<i64>,
    pub limit: i64,
}

const MAX_FILTER_CHARS: usize = 200;

fn text_param(field: &str, value: String) -> Result<String, CommonError> {
    if value.is_empty() || value.chars().count() > MAX_FILTER_CHARS {
        return Err(CommonError::validation(
            field,
            format!("must be 1 to {MAX_FILTER_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(CommonError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value)
}

fn time_param(field: &str, value: &str) -> Result<DateTime<Utc>, CommonError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CommonError::validation(field, "must be an RFC 3339 date-time"))
}

/// A page cursor: the `sequence` of the page's last entry.
pub fn cursor(sequence: i64) -> String {
    sequence.to_string()
}

impl AuditFilter {
    /// Parses the query string's pairs; unknown or repeated keys are refused by name.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, CommonError> {
        let mut filter = AuditFilter {
            limit: crate::pagination::DEFAULT_LIMIT,
            ..Default::default()
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in pairs {
            if seen.contains(&key) {
                return Err(CommonError::validation(key, "must be given at most once"));
            }
            seen.push(key.clone());
            match key.as_str() {
                "entity" => filter.entity = Some(text_param("entity", value)?),
                "actor" => filter.actor = Some(text_param("actor", value)?),
                "from" => filter.from = Some(time_param("from", &value)?),
                "to" => filter.to = Some(time_param("to", &value)?),
                "limit" => {
                    let limit: i64 = value
                        .parse()
                        .map_err(|_| CommonError::validation("limit", "must be a whole number"))?;
                    filter.limit = crate::pagination::PageRequest::parse(Some(limit), None)?.limit;
                }
                "after" => {
                    let sequence =
                        value
                            .parse::<i64>()
                            .ok()
                            .filter(|s| *s >= 0)
                            .ok_or_else(|| {
                                CommonError::validation(
                                    "after",
                                    "is not a cursor from a previous page",
                                )
                            })?;
                    filter.after = Some(sequence);
                }
                other => return Err(CommonError::validation(
                    other,
                    "is not a filter of the audit trail (entity, actor, from, to, after, limit)",
                )),
            }
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if to < from {
                return Err(CommonError::validation("to", "must not be before `from`"));
            }
        }
        Ok(filter)
    }

    /// `<table>:<key>` when `entity` has that shape.
    fn table_and_key(&self) -> (Option<String>, Option<String>) {
        let Some(entity) = &self.entity else {
            return (None, None);
        };
        match entity.split_once(':') {
            Some((table, key))
                if !table.is_empty()
                    && !key.is_empty()
                    && table
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                (Some(table.to_owned()), Some(key.to_owned()))
            }
            _ => (None, None),
        }
    }
}

#[derive(QueryableByName)]
struct OperationRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    service: String,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    actor_sub: String,
    #[diesel(sql_type = Text)]
    actor_role: String,
    #[diesel(sql_type = Nullable<Text>)]
    trace_id: Option<String>,
    #[diesel(sql_type = Text)]
    operation: String,
    #[diesel(sql_type = Jsonb)]
    input: Value,
    #[diesel(sql_type = BigInt)]
    sequence: i64,
    #[diesel(sql_type = BigInt)]
    change_count: i64,
}

#[derive(QueryableByName)]
struct ChangeRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    operation_id: Uuid,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Jsonb)]
    row_key: Value,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    before: Option<Value>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    after: Option<Value>,
}

#[derive(QueryableByName)]
struct Settled {
    #[diesel(sql_type = BigInt)]
    settled: i64,
}

/// Reads one page of the trail in commit order (by `sequence`).
///
/// Only operations up to the highest sequence whose transaction has finished are read, so
/// an operation still committing can never appear later behind a cursor already handed out.
pub fn read_page(conn: &mut PgConnection, filter: &AuditFilter) -> QueryResult<AuditPage> {
    // A statement of its own, outside any transaction: the commit-order lock it takes for
    // an instant is gone when it returns, before the reads below (each of which then sees
    // every commit up to the horizon).
    let settled: Settled =
        diesel::sql_query("SELECT kaip_audit_settled() AS settled").get_result(conn)?;
    read_settled(conn, filter, settled.settled)
}

fn read_settled(
    conn: &mut PgConnection,
    filter: &AuditFilter,
    settled: i64,
) -> QueryResult<AuditPage> {
    let (table, key) = filter.table_and_key();
    let ops: Vec<OperationRow> = diesel::sql_query(
        "SELECT o.id, o.service, o.at, o.actor_sub, o.actor_role, o.trace_id, o.operation, \
                o.input, k.sequence, \
                (SELECT count(*) FROM audit_changes c WHERE c.operation_id = o.id) AS change_count \
         FROM audit_commits k JOIN audit_operations o ON o.id = k.operation_id \
         WHERE k.sequence <= $1 \
           AND ($2::bigint IS NULL OR k.sequence > $2) \
           AND ($3::text IS NULL OR o.actor_sub = $3) \
           AND ($4::timestamptz IS NULL OR o.at >= $4) \
           AND ($5::timestamptz IS NULL OR o.at < $5) \
           AND ($6::text IS NULL OR o.id IN ( \
                 SELECT c.operation_id FROM audit_changes c \
                 WHERE c.table_name = $6 OR c.entity_ids @> ARRAY[$6] \
                    OR (c.table_name = $7 AND EXISTS ( \
                          SELECT 1 FROM jsonb_each_text(c.row_key) k WHERE k.value = $8)))) \
         ORDER BY k.sequence \
         LIMIT $9",
    )
    .bind::<BigInt, _>(settled)
    .bind::<Nullable<BigInt>, _>(filter.after)
    .bind::<Nullable<Text>, _>(&filter.actor)
    .bind::<Nullable<Timestamptz>, _>(filter.from)
    .bind::<Nullable<Timestamptz>, _>(filter.to)
    .bind::<Nullable<Text>, _>(&filter.entity)
    .bind::<Nullable<Text>, _>(table)
    .bind::<Nullable<Text>, _>(key)
    .bind::<BigInt, _>(filter.limit + 1)
    .load(conn)?;
    let more = ops.len() as i64 > filter.limit;
    let ops: Vec<OperationRow> = ops.into_iter().take(filter.limit as usize).collect();
    let ids: Vec<Uuid> = ops.iter().map(|o| o.id).collect();
    let changes: Vec<ChangeRow> = if ids.is_empty() {
        Vec::new()
    } else {
        diesel::sql_query(
            "SELECT operation_id, table_name, row_key, action, before, after FROM ( \
               SELECT c.*, row_number() OVER (PARTITION BY c.operation_id ORDER BY c.seq) AS n \
               FROM audit_changes c WHERE c.operation_id = ANY($1)) x \
             WHERE n <= $2 ORDER BY operation_id, seq",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<BigInt, _>(MAX_CHANGES_PER_ENTRY)
        .load(conn)?
    };
    let next_cursor = more
        .then(|| ops.last().map(|o| cursor(o.sequence)))
        .flatten();
    let items = ops
        .into_iter()
        .map(|o| AuditEntry {
            changes: changes
                .iter()
                .filter(|c| c.operation_id == o.id)
                .map(|c| AuditChange {
                    table: c.table_name.clone(),
                    key: c.row_key.clone(),
                    action: c.action.clone(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                })
                .collect(),
            id: o.id,
            sequence: o.sequence,
            service: o.service,
            at: o.at,
            actor_subject: o.actor_sub,
            actor_role: o.actor_role,
            trace_id: o.trace_id,
            operation: o.operation,
            input: o.input,
            change_count: o.change_count,
        })
        .collect();
    Ok(AuditPage { items, next_cursor })
}

/// `GET /audit?entity=&actor=&from=&to=&after=&limit=`: admins and officers.
///
/// `entity` matches an operation that changed a row of that table (`proposals`), a row
/// whose primary key or references (`id`, `*_id` columns) hold that value (a proposal's id
/// matches the proposal, its versions and documents, and its evaluation case in scoring),
/// or the row of that table with that primary key (`proposals:<id>`). `from` is
/// inclusive, `to` exclusive; `limit` 1-100 (20); `after` is the previous page's cursor.
pub(crate) async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, CommonError> {
    caller.require(&[Role::Admin, Role::Officer], "read the audit trail")?;
    // Parsed here rather than by the `Query` extractor, so a malformed query string gets a
    // coded error too.
    let pairs =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string()).map_err(|e| {
            CommonError::validation("query", format!("is not a valid query string: {e}"))
        })?;
    let filter = AuditFilter::parse(pairs.into_inner())?;
    let page = state
        .db(move |c, _| read_page(c, &filter).map_err(CommonError::from))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field_of(e: CommonError) -> String {
        match e {
            CommonError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn filters_are_parsed_and_bad_ones_refused_by_name() {
        let long = "x".repeat(201);
        let f = AuditFilter::parse(pairs(&[
            ("entity", "proposals:abc"),
            ("actor", "officer-1"),
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-01-02T00:00:00+09:00"),
            ("after", &cursor(42)),
            ("limit", "100"),
        ]))
        .expect("valid");
        assert_eq!(f.limit, 100);
        assert_eq!(f.after, Some(42));
        assert_eq!(
            f.table_and_key(),
            (Some("proposals".into()), Some("abc".into()))
        );
        assert_eq!(AuditFilter::parse(Vec::new()).expect("empty").limit, 20);
        // A bare key or table is not split.
        let f = AuditFilter::parse(pairs(&[("entity", "service:intake")])).expect("valid");
        assert_eq!(
            f.table_and_key(),
            (Some("service".into()), Some("intake".into()))
        );
        let f = AuditFilter::parse(pairs(&[("entity", "Dev-Reviewer")])).expect("valid");
        assert_eq!(f.table_and_key(), (None, None));

        for (bad, field) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "101")], "limit"),
            (vec![("limit", "x")], "limit"),
            (vec![("from", "yesterday")], "from"),
            (vec![("after", "nope")], "after"),
            (
                vec![(
                    "after",
                    "2026-01-01T00:00:00Z,01a225b2-bb60-7f57-a4a3-139ee7403470",
                )],
                "after",
            ),
            (vec![("after", "-1")], "after"),
            (vec![("entity", "")], "entity"),
            (vec![("actor", "a\u{0}b")], "actor"),
            (vec![("entity", long.as_str())], "entity"),
            (vec![("secret", "1")], "secret"),
            (vec![("actor", "a"), ("actor", "b")], "actor"),
            (
                vec![
                    ("from", "2026-01-02T00:00:00Z"),
                    ("to", "2026-01-01T00:00:00Z"),
                ],
                "to",
            ),
        ] {
            let err = AuditFilter::parse(pairs(&bad)).expect_err("refused");
            assert_eq!(field_of(err), field, "{bad:?}");
        }
    }
}
