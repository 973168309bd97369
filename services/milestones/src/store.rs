//! The milestones service's rows and the transactions that change them. Each request's
//! work runs in one transaction with its events (the outbox); the domain functions decide.
//!
//! Nothing is updated or deleted: evidence versions, verdicts, gate inputs, eligibility
//! verdicts, proposals and votes are new rows, and "the current one" is the latest.
//!
//! Concurrency:
//! - evidence and verdicts lock their deliverable's row (`FOR UPDATE`), so two submissions
//!   get versions 1 and 2, and a verdict sees the evidence committed before it;
//! - every change to a gate (input, eligibility verdict, proposal, vote) takes the gate's
//!   row `FOR SHARE` and publishing takes it `FOR UPDATE`, so nothing lands on a gate
//!   once its decision is committed, and a vote racing the publication either counts or is
//!   refused; the decision's primary key (one per gate) holds even against a bug;
//! - a vote is one row per proposal and member (primary key): two concurrent votes by one
//!   member record one and refuse the other.

use crate::domain::gate::{self, Component, ComponentKind, Normalisation, TeamFacts, INPUT_SCALE};
use crate::domain::{decimal, Invalid};
use crate::error::MilestonesError as E;
use crate::schema::*;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_bus::OutboxTx;
use kaip_contracts::dto::milestones as dto;
use kaip_contracts::events::{GateDecided, Reallocation, SelectionPublished, TeamEliminated};
use kaip_contracts::gpu_rules::{check_model_code, check_period, period_start};
use kaip_contracts::{Actor, ConsortiumId};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text(field: &str, s: &str, max: usize) -> Result<(), E> {
    if s.trim().is_empty() || s.len() > max {
        return Err(E::validation(field, format!("1 to {max} bytes, not blank")));
    }
    Ok(())
}

fn date_in_range(field: &str, d: NaiveDate) -> Result<(), E> {
    let lo = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
    let hi = NaiveDate::from_ymd_opt(2100, 12, 31).unwrap_or_default();
    if d < lo || d > hi {
        return Err(E::validation(field, "a date from 2000-01-01 to 2100-12-31"));
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, E> {
    serde_json::to_value(v).map_err(|e| E::Common(kaip_service::CommonError::internal(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, E> {
    serde_json::from_value(v).map_err(|e| E::Common(kaip_service::CommonError::internal(e)))
}

// ---------------------------------------------------------------------------------------
// What the consumer learns
// ---------------------------------------------------------------------------------------

/// Learns the teams a call selected. Idempotent: a team already known keeps its first
/// record (a redelivery or a replay changes nothing).
pub fn record_selection(c: &mut PgConnection, ev: &SelectionPublished) -> QueryResult<usize> {
    let mut n = 0;
    for t in &ev.selected {
        n += diesel::insert_into(ms_teams::table)
            .values((
                ms_teams::consortium_id.eq(t.consortium_id.0),
                ms_teams::call_id.eq(ev.call_id.0),
                ms_teams::proposal_id.eq(t.proposal_id.0),
                ms_teams::consortium_name.eq(&t.consortium_name),
                ms_teams::selected_at.eq(ev.published_at),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
    }
    Ok(n)
}

#[derive(serde::Serialize)]
pub struct Team {
    pub consortium_id: ConsortiumId,
    pub call_id: Uuid,
    pub proposal_id: Uuid,
    pub consortium_name: String,
    pub selected_at: DateTime<Utc>,
    /// The gate that eliminated the team, once published.
    pub eliminated_at_gate: Option<String>,
}

pub fn teams(c: &mut PgConnection, only: Option<Uuid>) -> Result<Vec<Team>, E> {
    let mut q = ms_teams::table
        .select((
            ms_teams::consortium_id,
            ms_teams::call_id,
            ms_teams::proposal_id,
            ms_teams::consortium_name,
            ms_teams::selected_at,
        ))
        .order((ms_teams::selected_at, ms_teams::consortium_id))
        .into_boxed();
    if let Some(t) = only {
        q = q.filter(ms_teams::consortium_id.eq(t));
    }
    let rows: Vec<(Uuid, Uuid, Uuid, String, DateTime<Utc>)> = q.load(c)?;
    let eliminated = eliminated_teams(c)?;
    Ok(rows
        .into_iter()
        .map(|r| Team {
            consortium_id: ConsortiumId(r.0),
            call_id: r.1,
            proposal_id: r.2,
            consortium_name: r.3,
            selected_at: r.4,
            eliminated_at_gate: eliminated.get(&r.0).cloned(),
        })
        .collect())
}

fn require_team(c: &mut PgConnection, team: Uuid) -> Result<(), E> {
    let n: i64 = ms_teams::table.find(team).count().get_result(c)?;
    if n == 0 {
        return Err(E::TeamNotSelected(team));
    }
    Ok(())
}

/// Team → the key of the published gate that eliminated it.
fn eliminated_teams(c: &mut PgConnection) -> Result<BTreeMap<Uuid, String>, E> {
    let rows: Vec<(String, serde_json::Value)> = ms_decisions::table
        .inner_join(ms_gates::table.on(ms_gates::id.eq(ms_decisions::gate_id)))
        .select((ms_gates::key, ms_decisions::eliminated))
        .load(c)?;
    let mut out = BTreeMap::new();
    for (key, v) in rows {
        let list: Vec<dto::EliminatedTeam> = from_json(v)?;
        for t in list {
            out.insert(t.consortium_id.0, key.clone());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Plans, evidence, verdicts
// ---------------------------------------------------------------------------------------

pub const MAX_TEXT: usize = 10_000;

pub fn create_deliverable(
    c: &mut PgConnection,
    req: &dto::NewDeliverable,
    actor: &Actor,
) -> Result<dto::Deliverable, E> {
    if !(1..=100).contains(&req.phase) {
        return Err(E::validation("phase", "a whole number from 1 to 100"));
    }
    text("title", &req.title, 200)?;
    if req.description.len() > MAX_TEXT {
        return Err(E::validation(
            "description",
            format!("at most {MAX_TEXT} bytes"),
        ));
    }
    text("acceptance_criteria", &req.acceptance_criteria, MAX_TEXT)?;
    date_in_range("due_date", req.due_date)?;
    require_team(c, req.consortium_id.0)?;
    let id = req.id.unwrap_or_else(Uuid::now_v7);
    let n = diesel::insert_into(ms_deliverables::table)
        .values((
            ms_deliverables::id.eq(id),
            ms_deliverables::consortium_id.eq(req.consortium_id.0),
            ms_deliverables::phase.eq(req.phase),
            ms_deliverables::title.eq(req.title.trim()),
            ms_deliverables::description.eq(req.description.trim()),
            ms_deliverables::acceptance_criteria.eq(req.acceptance_criteria.trim()),
            ms_deliverables::due_date.eq(req.due_date),
            ms_deliverables::created_by.eq(&actor.subject),
            ms_deliverables::created_role.eq(actor.role.as_str()),
            ms_deliverables::created_at.eq(now()),
        ))
        .on_conflict(ms_deliverables::id)
        .do_nothing()
        .execute(c)?;
    if n == 0 {
        // A retry (or a racing twin, committed before this insert returned): the same
        // fields are the same deliverable; other fields under the same id are refused.
        let same: (Uuid, i32, String, String, String, NaiveDate) = ms_deliverables::table
            .find(id)
            .select((
                ms_deliverables::consortium_id,
                ms_deliverables::phase,
                ms_deliverables::title,
                ms_deliverables::description,
                ms_deliverables::acceptance_criteria,
                ms_deliverables::due_date,
            ))
            .first(c)?;
        if same
            != (
                req.consortium_id.0,
                req.phase,
                req.title.trim().to_owned(),
                req.description.trim().to_owned(),
                req.acceptance_criteria.trim().to_owned(),
                req.due_date,
            )
        {
            return Err(E::DeliverableIdConflict(id));
        }
    }
    deliverable(c, id)
}

type DeliverableRow = (
    Uuid,
    Uuid,
    i32,
    String,
    String,
    String,
    NaiveDate,
    String,
    DateTime<Utc>,
);

fn deliverable_cols() -> (
    ms_deliverables::id,
    ms_deliverables::consortium_id,
    ms_deliverables::phase,
    ms_deliverables::title,
    ms_deliverables::description,
    ms_deliverables::acceptance_criteria,
    ms_deliverables::due_date,
    ms_deliverables::created_by,
    ms_deliverables::created_at,
) {
    (
        ms_deliverables::id,
        ms_deliverables::consortium_id,
        ms_deliverables::phase,
        ms_deliverables::title,
        ms_deliverables::description,
        ms_deliverables::acceptance_criteria,
        ms_deliverables::due_date,
        ms_deliverables::created_by,
        ms_deliverables::created_at,
    )
}

type EvidenceRow = (
    Uuid,
    Uuid,
    i32,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i32>,
    String,
    String,
    DateTime<Utc>,
);

fn evidence_of(c: &mut PgConnection, deliverable: Uuid) -> QueryResult<Vec<dto::Evidence>> {
    let rows: Vec<EvidenceRow> = ms_evidence::table
        .filter(ms_evidence::deliverable_id.eq(deliverable))
        .order(ms_evidence::version)
        .select((
            ms_evidence::id,
            ms_evidence::deliverable_id,
            ms_evidence::version,
            ms_evidence::kind,
            ms_evidence::note,
            ms_evidence::doc_name,
            ms_evidence::doc_sha256,
            ms_evidence::doc_size_bytes,
            ms_evidence::url,
            ms_evidence::benchmark,
            ms_evidence::value_units,
            ms_evidence::value_scale,
            ms_evidence::content_sha256,
            ms_evidence::submitted_by,
            ms_evidence::submitted_at,
        ))
        .load(c)?;
    Ok(rows.into_iter().map(evidence_dto).collect())
}

fn evidence_dto(r: EvidenceRow) -> dto::Evidence {
    let document = match (r.5, r.6, r.7) {
        (Some(name), Some(sha256), Some(size_bytes)) => Some(dto::EvidenceDocument {
            name,
            sha256,
            size_bytes,
        }),
        _ => None,
    };
    let benchmark = match (r.9, r.10, r.11) {
        (Some(name), Some(units), Some(scale)) => Some(dto::BenchmarkResult {
            name,
            value: decimal::format(units.into(), scale.max(0).unsigned_abs()),
        }),
        _ => None,
    };
    dto::Evidence {
        id: r.0,
        deliverable_id: r.1,
        version: r.2,
        kind: r.3,
        note: r.4,
        document,
        url: r.8,
        benchmark,
        content_sha256: r.12,
        submitted_by: r.13,
        submitted_at: r.14,
    }
}

type VerdictRow = (
    Uuid,
    String,
    Option<i32>,
    String,
    String,
    Option<NaiveDate>,
    String,
    DateTime<Utc>,
);

fn verdicts_of(c: &mut PgConnection, deliverable: Uuid) -> QueryResult<Vec<dto::Verdict>> {
    let rows: Vec<VerdictRow> = ms_verdicts::table
        .filter(ms_verdicts::deliverable_id.eq(deliverable))
        .order(ms_verdicts::seq)
        .select((
            ms_verdicts::id,
            ms_verdicts::verdict,
            ms_verdicts::evidence_version,
            ms_verdicts::reason,
            ms_verdicts::comments,
            ms_verdicts::new_due_date,
            ms_verdicts::decided_by,
            ms_verdicts::decided_at,
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| dto::Verdict {
            id: r.0,
            verdict: r.1,
            evidence_version: r.2,
            reason: r.3,
            comments: r.4,
            new_due_date: r.5,
            decided_by: r.6,
            decided_at: r.7,
        })
        .collect())
}

/// The status a deliverable's history gives: the latest verdict, unless the team
/// submitted new evidence after a revision was asked for.
pub fn status(evidence: &[dto::Evidence], verdicts: &[dto::Verdict]) -> &'static str {
    let latest_version = evidence.iter().map(|e| e.version).max();
    match verdicts.last() {
        Some(v) if v.verdict == "approved" => "approved",
        Some(v) if v.verdict == "rejected" => "rejected",
        Some(v) => {
            if latest_version > v.evidence_version {
                "submitted"
            } else {
                "revision"
            }
        }
        None if latest_version.is_some() => "submitted",
        None => "open",
    }
}

fn deliverable_dto(c: &mut PgConnection, r: DeliverableRow) -> QueryResult<dto::Deliverable> {
    let evidence = evidence_of(c, r.0)?;
    let verdicts = verdicts_of(c, r.0)?;
    let current = verdicts
        .iter()
        .rev()
        .find_map(|v| v.new_due_date)
        .unwrap_or(r.6);
    let overdue: i64 = ms_overdue::table
        .filter(ms_overdue::deliverable_id.eq(r.0))
        .filter(ms_overdue::due_date.eq(current))
        .count()
        .get_result(c)?;
    Ok(dto::Deliverable {
        id: r.0,
        consortium_id: ConsortiumId(r.1),
        phase: r.2,
        title: r.3,
        description: r.4,
        acceptance_criteria: r.5,
        due_date: r.6,
        current_due_date: current,
        status: status(&evidence, &verdicts).to_owned(),
        overdue: overdue > 0,
        evidence,
        verdicts,
        created_by: r.7,
        created_at: r.8,
    })
}

pub fn deliverable(c: &mut PgConnection, id: Uuid) -> Result<dto::Deliverable, E> {
    let r: DeliverableRow = ms_deliverables::table
        .find(id)
        .select(deliverable_cols())
        .first(c)
        .optional()?
        .ok_or(E::DeliverableNotFound(id))?;
    Ok(deliverable_dto(c, r)?)
}

/// A team's plan (or every team's, for staff), optionally of one phase.
/// Which deliverables [`deliverables`] lists: a page of them, by id.
#[derive(Clone, Debug)]
pub struct PlanFilter {
    pub team: Option<Uuid>,
    pub phase: Option<i32>,
    /// Only those flagged overdue on their current due date (the latest verdict's new due
    /// date, else the planned one), decided here in SQL so a page holds only them.
    pub overdue_only: bool,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub fn deliverables(c: &mut PgConnection, f: &PlanFilter) -> Result<Vec<dto::Deliverable>, E> {
    let mut q = ms_deliverables::table
        .select(deliverable_cols())
        .order(ms_deliverables::id)
        .into_boxed();
    if let Some(t) = f.team {
        q = q.filter(ms_deliverables::consortium_id.eq(t));
    }
    if let Some(p) = f.phase {
        q = q.filter(ms_deliverables::phase.eq(p));
    }
    if let Some(a) = f.after {
        q = q.filter(ms_deliverables::id.gt(a));
    }
    if f.overdue_only {
        // The same rule as `deliverable_dto`'s flag: a row in ms_overdue for the current
        // due date.
        q = q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "EXISTS (SELECT 1 FROM ms_overdue o WHERE o.deliverable_id = ms_deliverables.id \
             AND o.due_date = COALESCE((SELECT v.new_due_date FROM ms_verdicts v \
             WHERE v.deliverable_id = ms_deliverables.id AND v.new_due_date IS NOT NULL \
             ORDER BY v.seq DESC LIMIT 1), ms_deliverables.due_date))",
        ));
    }
    let rows: Vec<DeliverableRow> = q.limit(f.limit).load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| deliverable_dto(c, r))
        .collect::<QueryResult<_>>()?)
}

/// The deliverable's row, locked until commit; its team.
fn lock_deliverable(c: &mut PgConnection, id: Uuid) -> Result<Uuid, E> {
    ms_deliverables::table
        .find(id)
        .select(ms_deliverables::consortium_id)
        .for_update()
        .first(c)
        .optional()?
        .ok_or(E::DeliverableNotFound(id))
}

/// Checks a submission and returns what is stored: (kind, doc, url, benchmark (name,
/// units, scale)).
type Checked = (
    &'static str,
    Option<dto::EvidenceDocument>,
    Option<String>,
    Option<(String, i64, i32)>,
);

pub fn check_evidence(req: &dto::SubmitEvidence) -> Result<Checked, Invalid> {
    if req.note.len() > MAX_TEXT {
        return Err(Invalid::new("note", format!("at most {MAX_TEXT} bytes")));
    }
    let only = |want: &str| -> Result<(), Invalid> {
        for (name, present) in [
            ("document", req.document.is_some()),
            ("url", req.url.is_some()),
            ("benchmark", req.benchmark.is_some()),
        ] {
            if name == want && !present {
                return Err(Invalid::new(name, format!("required for kind {want}")));
            }
            if name != want && present {
                return Err(Invalid::new(name, format!("not allowed with kind {want}")));
            }
        }
        Ok(())
    };
    match req.kind.as_str() {
        "document" => {
            only("document")?;
            let d = req
                .document
                .clone()
                .unwrap_or_else(|| dto::EvidenceDocument {
                    name: String::new(),
                    sha256: String::new(),
                    size_bytes: 0,
                });
            if d.name.trim().is_empty() || d.name.len() > 255 {
                return Err(Invalid::new("document.name", "1 to 255 bytes, not blank"));
            }
            if d.sha256.len() != 64
                || !d
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(Invalid::new(
                    "document.sha256",
                    "the SHA-256 of the document: 64 lowercase hex digits",
                ));
            }
            if !(1..=10_000_000_000).contains(&d.size_bytes) {
                return Err(Invalid::new("document.size_bytes", "from 1 byte to 10 GB"));
            }
            Ok(("document", Some(d), None, None))
        }
        "link" => {
            only("url")?;
            let u = req.url.clone().unwrap_or_default();
            if !(u.starts_with("https://") || u.starts_with("http://"))
                || u.len() > 2000
                || u.contains(char::is_whitespace)
            {
                return Err(Invalid::new(
                    "url",
                    "an http(s) URL of at most 2000 bytes without spaces",
                ));
            }
            Ok(("link", None, Some(u), None))
        }
        "benchmark" => {
            only("benchmark")?;
            let b = req.benchmark.clone().unwrap_or(dto::BenchmarkResult {
                name: String::new(),
                value: String::new(),
            });
            if b.name.trim().is_empty() || b.name.len() > 200 {
                return Err(Invalid::new("benchmark.name", "1 to 200 bytes, not blank"));
            }
            let scale = decimal::scale_of(&b.value);
            let units = decimal::parse("benchmark.value", &b.value, scale.min(6))?;
            Ok((
                "benchmark",
                None,
                None,
                Some((b.name.trim().to_owned(), units, scale as i32)),
            ))
        }
        _ => Err(Invalid::new("kind", "one of document, link, benchmark")),
    }
}

/// A new version of a deliverable's evidence, by the team whose plan it is.
pub fn submit_evidence(
    c: &mut PgConnection,
    id: Uuid,
    team: Option<Uuid>,
    req: &dto::SubmitEvidence,
    actor: &Actor,
) -> Result<dto::Evidence, E> {
    let (kind, doc, url, bench) = check_evidence(req)?;
    let owner = lock_deliverable(c, id)?;
    if team.is_some_and(|t| t != owner) {
        // The same answer as for a deliverable that does not exist (and as reading it):
        // a team learns nothing of another team's plan, not even that an id is in use.
        return Err(E::DeliverableNotFound(id));
    }
    let d = deliverable(c, id)?;
    if d.status == "approved" || d.status == "rejected" {
        return Err(E::DeliverableClosed(id, d.status));
    }
    let version = d.evidence.iter().map(|e| e.version).max().unwrap_or(0) + 1;
    let at = now();
    let content = serde_json::json!({
        "deliverable_id": id,
        "version": version,
        "kind": kind,
        "note": req.note.trim(),
        "document": doc.as_ref().map(|d| (&d.name, &d.sha256, d.size_bytes)),
        "url": url,
        "benchmark": bench,
    });
    let ev_id = Uuid::now_v7();
    diesel::insert_into(ms_evidence::table)
        .values((
            ms_evidence::id.eq(ev_id),
            ms_evidence::deliverable_id.eq(id),
            ms_evidence::version.eq(version),
            ms_evidence::kind.eq(kind),
            ms_evidence::note.eq(req.note.trim()),
            ms_evidence::doc_name.eq(doc.as_ref().map(|d| d.name.trim())),
            ms_evidence::doc_sha256.eq(doc.as_ref().map(|d| d.sha256.as_str())),
            ms_evidence::doc_size_bytes.eq(doc.as_ref().map(|d| d.size_bytes)),
            ms_evidence::url.eq(url.as_deref()),
            ms_evidence::benchmark.eq(bench.as_ref().map(|b| b.0.as_str())),
            ms_evidence::value_units.eq(bench.as_ref().map(|b| b.1)),
            ms_evidence::value_scale.eq(bench.as_ref().map(|b| b.2)),
            ms_evidence::content_sha256.eq(sha256_hex(content.to_string().as_bytes())),
            ms_evidence::submitted_by.eq(&actor.subject),
            ms_evidence::submitted_role.eq(actor.role.as_str()),
            ms_evidence::submitted_at.eq(at),
        ))
        .execute(c)?;
    deliverable(c, id)?
        .evidence
        .into_iter()
        .find(|e| e.id == ev_id)
        .ok_or(E::EvidenceNotFound(ev_id))
}

/// An officer's verdict: approve (evidence submitted since the last verdict), ask for a
/// revision (with a new due date) or reject; always with a reason.
pub fn record_verdict(
    c: &mut PgConnection,
    id: Uuid,
    req: &dto::RecordVerdict,
    actor: &Actor,
) -> Result<dto::Deliverable, E> {
    if !matches!(req.verdict.as_str(), "approved" | "revision" | "rejected") {
        return Err(E::validation(
            "verdict",
            "one of approved, revision, rejected",
        ));
    }
    if req.reason.trim().is_empty() {
        return Err(E::VerdictReasonRequired);
    }
    if req.reason.len() > MAX_TEXT || req.comments.len() > MAX_TEXT {
        return Err(E::validation(
            "reason",
            format!("reason and comments at most {MAX_TEXT} bytes each"),
        ));
    }
    match (req.verdict.as_str(), req.new_due_date) {
        ("revision", None) => {
            return Err(E::validation(
                "new_due_date",
                "required when asking for a revision",
            ))
        }
        ("revision", Some(d)) => date_in_range("new_due_date", d)?,
        (_, Some(_)) => {
            return Err(E::validation(
                "new_due_date",
                "only when asking for a revision",
            ))
        }
        _ => {}
    }
    if req.verdict == "approved" && req.evidence_version.is_none() {
        return Err(E::validation(
            "evidence_version",
            "required to approve: the evidence version the approval is about",
        ));
    }
    lock_deliverable(c, id)?;
    let d = deliverable(c, id)?;
    if d.status == "approved" || d.status == "rejected" {
        return Err(E::DeliverableClosed(id, d.status));
    }
    if req.verdict == "approved" && d.status != "submitted" {
        return Err(E::EvidenceRequired(id));
    }
    // Under the deliverable's lock: no new version can arrive between this check and the
    // verdict.
    let latest = d.evidence.iter().map(|e| e.version).max();
    if let Some(named) = req.evidence_version {
        if Some(named) != latest {
            return Err(E::EvidenceNotLatest(id, named, latest.unwrap_or(0)));
        }
    }
    diesel::insert_into(ms_verdicts::table)
        .values((
            ms_verdicts::id.eq(Uuid::now_v7()),
            ms_verdicts::deliverable_id.eq(id),
            ms_verdicts::verdict.eq(&req.verdict),
            ms_verdicts::evidence_version.eq(latest),
            ms_verdicts::reason.eq(req.reason.trim()),
            ms_verdicts::comments.eq(req.comments.trim()),
            ms_verdicts::new_due_date.eq(req.new_due_date),
            ms_verdicts::decided_by.eq(&actor.subject),
            ms_verdicts::decided_role.eq(actor.role.as_str()),
            ms_verdicts::decided_at.eq(now()),
        ))
        .execute(c)?;
    deliverable(c, id)
}

// ---------------------------------------------------------------------------------------
// Gates
// ---------------------------------------------------------------------------------------

pub struct GateRow {
    pub id: Uuid,
    pub key: String,
    pub planned: i32,
    pub rules: Vec<String>,
    pub committee: Vec<String>,
    pub components: Vec<Component>,
    pub dto: dto::Gate,
}

type GateCols = (
    Uuid,
    String,
    i32,
    NaiveDate,
    i32,
    Vec<String>,
    Vec<String>,
    String,
    String,
    DateTime<Utc>,
);

pub const MAX_RULES: usize = 20;
pub const MAX_COMMITTEE: usize = 25;
/// The smallest committee: a majority of it is at least two people.
pub const MIN_COMMITTEE: usize = 3;

pub fn create_gate(
    c: &mut PgConnection,
    req: &dto::NewGate,
    actor: &Actor,
) -> Result<dto::Gate, E> {
    let key_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
    };
    if !key_ok(&req.key) {
        return Err(E::validation(
            "key",
            "1 to 63 of a-z, 0-9 and '-', e.g. gate-1",
        ));
    }
    if !(1..=100).contains(&req.phase) {
        return Err(E::validation("phase", "a whole number from 1 to 100"));
    }
    date_in_range("gate_date", req.gate_date)?;
    if !(0..=100).contains(&req.planned_eliminations) {
        return Err(E::validation(
            "planned_eliminations",
            "a whole number from 0 to 100",
        ));
    }
    if req.eligibility_rules.len() > MAX_RULES {
        return Err(E::validation(
            "eligibility_rules",
            format!("at most {MAX_RULES} rules"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, r) in req.eligibility_rules.iter().enumerate() {
        if !key_ok(r) || !seen.insert(r) {
            return Err(E::validation(
                format!("eligibility_rules[{i}]"),
                "a rule name of 1 to 63 of a-z, 0-9 and '-', each once (e.g. built-from-scratch)",
            ));
        }
    }
    if req.committee.is_empty() || req.committee.len() > MAX_COMMITTEE {
        return Err(E::validation(
            "committee",
            format!("1 to {MAX_COMMITTEE} officers"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, m) in req.committee.iter().enumerate() {
        if m.trim().is_empty() || m.len() > 200 || m.trim() != m || !seen.insert(m) {
            return Err(E::validation(
                format!("committee[{i}]"),
                "an officer's subject, 1 to 200 bytes without surrounding spaces, each once",
            ));
        }
    }
    // Publishing needs more than half of the committee: with three or more distinct members
    // that is at least two people, so no officer eliminates a team alone.
    if seen.len() < MIN_COMMITTEE {
        return Err(E::CommitteeTooSmall(seen.len(), MIN_COMMITTEE));
    }
    text("reason", &req.reason, MAX_TEXT)?;
    let defs = req.components.clone().unwrap_or_else(gate::first_gate);
    let components = gate::components(&defs)?;
    gate::check_weights(&components).map_err(E::GateWeights)?;
    let exists: i64 = ms_gates::table
        .filter(ms_gates::key.eq(&req.key))
        .count()
        .get_result(c)?;
    if exists > 0 {
        return Err(E::GateExists(req.key.clone()));
    }
    let id = Uuid::now_v7();
    diesel::insert_into(ms_gates::table)
        .values((
            ms_gates::id.eq(id),
            ms_gates::key.eq(&req.key),
            ms_gates::phase.eq(req.phase),
            ms_gates::gate_date.eq(req.gate_date),
            ms_gates::planned_eliminations.eq(req.planned_eliminations),
            ms_gates::eligibility_rules.eq(&req.eligibility_rules),
            ms_gates::committee.eq(&req.committee),
            ms_gates::reason.eq(req.reason.trim()),
            ms_gates::created_by.eq(&actor.subject),
            ms_gates::created_role.eq(actor.role.as_str()),
            ms_gates::created_at.eq(now()),
        ))
        .execute(c)?;
    for (i, comp) in components.iter().enumerate() {
        let (norm, max) = match comp.normalisation {
            Normalisation::MinMax => ("min_max", None),
            Normalisation::OfMax(m) => ("of_max", Some(m)),
        };
        diesel::insert_into(ms_gate_components::table)
            .values((
                ms_gate_components::gate_id.eq(id),
                ms_gate_components::key.eq(&comp.key),
                ms_gate_components::grp.eq(&comp.group),
                ms_gate_components::label.eq(&comp.label),
                ms_gate_components::weight.eq(comp.weight),
                ms_gate_components::normalisation.eq(norm),
                ms_gate_components::max_units.eq(max),
                ms_gate_components::ord.eq(i as i32),
                ms_gate_components::kind.eq(comp.kind.as_str()),
            ))
            .execute(c)?;
    }
    Ok(gate_by_key(c, &req.key)?.dto)
}

fn gate_from(c: &mut PgConnection, r: GateCols) -> Result<GateRow, E> {
    type ComponentCols = (
        String,
        String,
        String,
        i32,
        String,
        Option<i64>,
        Option<String>,
    );
    let rows: Vec<ComponentCols> = ms_gate_components::table
        .filter(ms_gate_components::gate_id.eq(r.0))
        .order(ms_gate_components::ord)
        .select((
            ms_gate_components::key,
            ms_gate_components::grp,
            ms_gate_components::label,
            ms_gate_components::weight,
            ms_gate_components::normalisation,
            ms_gate_components::max_units,
            ms_gate_components::kind,
        ))
        .load(c)?;
    let components: Vec<Component> = rows
        .into_iter()
        .map(|(key, group, label, weight, norm, max, kind)| Component {
            kind: kind
                .as_deref()
                .and_then(ComponentKind::parse)
                .unwrap_or_else(|| ComponentKind::implied(&key, &group)),
            key,
            group,
            label,
            weight,
            normalisation: match (norm.as_str(), max) {
                ("of_max", Some(m)) => Normalisation::OfMax(m),
                _ => Normalisation::MinMax,
            },
        })
        .collect();
    Ok(GateRow {
        id: r.0,
        key: r.1.clone(),
        planned: r.4,
        rules: r.5.clone(),
        committee: r.6.clone(),
        dto: dto::Gate {
            id: r.0,
            key: r.1,
            phase: r.2,
            gate_date: r.3,
            planned_eliminations: r.4,
            eligibility_rules: r.5,
            committee: r.6,
            components: components.iter().map(Component::to_dto).collect(),
            reason: r.7,
            created_by: r.8,
            created_at: r.9,
        },
        components,
    })
}

fn gate_cols() -> (
    ms_gates::id,
    ms_gates::key,
    ms_gates::phase,
    ms_gates::gate_date,
    ms_gates::planned_eliminations,
    ms_gates::eligibility_rules,
    ms_gates::committee,
    ms_gates::reason,
    ms_gates::created_by,
    ms_gates::created_at,
) {
    (
        ms_gates::id,
        ms_gates::key,
        ms_gates::phase,
        ms_gates::gate_date,
        ms_gates::planned_eliminations,
        ms_gates::eligibility_rules,
        ms_gates::committee,
        ms_gates::reason,
        ms_gates::created_by,
        ms_gates::created_at,
    )
}

pub fn gate_by_key(c: &mut PgConnection, key: &str) -> Result<GateRow, E> {
    let r: GateCols = ms_gates::table
        .filter(ms_gates::key.eq(key))
        .select(gate_cols())
        .first(c)
        .optional()?
        .ok_or_else(|| E::GateNotFound(key.to_owned()))?;
    gate_from(c, r)
}

pub fn gates(c: &mut PgConnection) -> Result<Vec<dto::Gate>, E> {
    let rows: Vec<GateCols> = ms_gates::table
        .select(gate_cols())
        .order((ms_gates::phase, ms_gates::key))
        .load(c)?;
    rows.into_iter().map(|r| Ok(gate_from(c, r)?.dto)).collect()
}

/// The gate's row, locked (`FOR SHARE` for a change on the gate, `FOR UPDATE` to publish),
/// refused once the gate is published.
fn lock_open_gate(c: &mut PgConnection, key: &str, exclusive: bool) -> Result<GateRow, E> {
    let q = ms_gates::table
        .filter(ms_gates::key.eq(key))
        .select(gate_cols());
    let r: Option<GateCols> = if exclusive {
        q.for_update().first(c).optional()?
    } else {
        q.for_share().first(c).optional()?
    };
    let r = r.ok_or_else(|| E::GateNotFound(key.to_owned()))?;
    let published: Option<DateTime<Utc>> = ms_decisions::table
        .find(r.0)
        .select(ms_decisions::decided_at)
        .first(c)
        .optional()?;
    if let Some(at) = published {
        return Err(E::GatePublished(r.1, at));
    }
    gate_from(c, r)
}

/// The teams a gate assesses: the selected teams no earlier published gate eliminated.
fn teams_at_gate(c: &mut PgConnection) -> Result<Vec<Uuid>, E> {
    let eliminated = eliminated_teams(c)?;
    let all: Vec<Uuid> = ms_teams::table
        .select(ms_teams::consortium_id)
        .order(ms_teams::consortium_id)
        .load(c)?;
    Ok(all
        .into_iter()
        .filter(|t| !eliminated.contains_key(t))
        .collect())
}

fn require_team_at_gate(c: &mut PgConnection, team: Uuid) -> Result<(), E> {
    require_team(c, team)?;
    if let Some(gate) = eliminated_teams(c)?.get(&team) {
        return Err(E::validation(
            "consortium_id",
            format!("team {team} was eliminated at {gate}"),
        ));
    }
    Ok(())
}

pub fn add_input(
    c: &mut PgConnection,
    key: &str,
    req: &dto::GateInput,
    actor: &Actor,
) -> Result<dto::InputUsed, E> {
    if !matches!(
        req.source.as_str(),
        "entered" | "imported" | "expert_panel" | "evidence"
    ) {
        return Err(E::validation(
            "source",
            "one of entered, imported, expert_panel, evidence",
        ));
    }
    if req.source_ref.len() > 500 {
        return Err(E::validation("source_ref", "at most 500 bytes"));
    }
    if matches!(req.source.as_str(), "expert_panel" | "imported")
        && req.source_ref.trim().is_empty()
    {
        return Err(E::validation(
            "source_ref",
            "required for expert_panel (the panel) and imported (the file or system)",
        ));
    }
    text("reason", &req.reason, MAX_TEXT)?;
    let g = lock_open_gate(c, key, false)?;
    let comp = g
        .components
        .iter()
        .find(|x| x.key == req.component)
        .ok_or_else(|| {
            let keys: Vec<&str> = g.components.iter().map(|x| x.key.as_str()).collect();
            E::validation(
                "component",
                format!("one of the gate's components: {}", keys.join(", ")),
            )
        })?
        .clone();
    require_team_at_gate(c, req.consortium_id.0)?;
    let (value, source_ref) = match (&req.value, req.evidence_id, req.source.as_str()) {
        (Some(v), None, s) if s != "evidence" => (
            decimal::parse("value", v, INPUT_SCALE)?,
            req.source_ref.trim().to_owned(),
        ),
        (None, Some(ev), "evidence") => (evidence_value(c, ev, req.consortium_id.0)?, ev.to_string()),
        _ => {
            return Err(E::validation(
                "value",
                "give either value (with source entered, imported or expert_panel) or evidence_id (with source evidence)",
            ))
        }
    };
    insert_input(
        c,
        &g,
        &comp,
        req.consortium_id,
        value,
        &req.source,
        &source_ref,
        req.reason.trim(),
        None,
        actor,
    )
}

/// The last step of every input, by REST or by event: the value within the component's
/// `max` (`of_max`), then the row. The caller holds the open gate's row and has checked
/// the team and the component.
#[allow(clippy::too_many_arguments)]
fn insert_input(
    c: &mut PgConnection,
    g: &GateRow,
    comp: &Component,
    team: ConsortiumId,
    value: i64,
    source: &str,
    source_ref: &str,
    reason: &str,
    measured_at: Option<DateTime<Utc>>,
    actor: &Actor,
) -> Result<dto::InputUsed, E> {
    if let Normalisation::OfMax(m) = comp.normalisation {
        if value > m {
            return Err(E::validation(
                "value",
                format!(
                    "at most {} (component {} is scored out of it)",
                    decimal::format(m.into(), INPUT_SCALE),
                    comp.key
                ),
            ));
        }
    }
    let id = Uuid::now_v7();
    diesel::insert_into(ms_gate_inputs::table)
        .values((
            ms_gate_inputs::id.eq(id),
            ms_gate_inputs::gate_id.eq(g.id),
            ms_gate_inputs::consortium_id.eq(team.0),
            ms_gate_inputs::component.eq(&comp.key),
            ms_gate_inputs::value_e4.eq(value),
            ms_gate_inputs::source.eq(source),
            ms_gate_inputs::source_ref.eq(source_ref),
            ms_gate_inputs::reason.eq(reason),
            ms_gate_inputs::entered_by.eq(&actor.subject),
            ms_gate_inputs::entered_role.eq(actor.role.as_str()),
            ms_gate_inputs::entered_at.eq(now()),
            ms_gate_inputs::measured_at.eq(measured_at),
        ))
        .execute(c)?;
    Ok(dto::InputUsed {
        input_id: id,
        consortium_id: team,
        component: comp.key.clone(),
        value: decimal::format(value.into(), INPUT_SCALE),
        source: source.to_owned(),
        source_ref: source_ref.to_owned(),
    })
}

/// A gate input delivered by an event (scoring's expert panel, a benchmark integration).
pub struct EventInput<'a> {
    pub gate: &'a str,
    pub team: ConsortiumId,
    /// The component: `None` for the gate's expert-panel component.
    pub component: Option<&'a str>,
    /// Where the value is read from in the event (`score`, `value`), for error messages.
    pub value_field: &'a str,
    pub value: &'a str,
    pub source: &'a str,
    pub source_ref: &'a str,
    pub reason: String,
    /// When the value was measured (a benchmark run): a report measured before the latest
    /// one recorded for the same gate, team and component is refused (`GATE_INPUT_STALE`).
    pub measured_at: Option<DateTime<Utc>>,
}

/// The advisory-lock class of "a gate input delivered by event" (one gate, team and
/// component): two deliveries for it (two replicas, a DLQ replay beside the live
/// consumer) are checked and recorded one after the other, so the second sees the first.
const EVENT_INPUT_LOCK_CLASS: i32 = 0x6d73_6769;

fn lock_event_input(
    c: &mut PgConnection,
    gate: Uuid,
    team: Uuid,
    component: &str,
) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<diesel::sql_types::Integer, _>(EVENT_INPUT_LOCK_CLASS)
        .bind::<diesel::sql_types::Text, _>(format!("{gate}/{team}/{component}"))
        .execute(c)
        .map(drop)
}

/// Records an input delivered by an event with the checks of `POST /gates/{key}/inputs`:
/// the gate open, the team assessed at it, the component (the gate's `expert_panel` one,
/// or the named one, which must be a `benchmark` component), the value within its `max`.
/// The same delivery again (same source, `source_ref`, team and component, e.g. a
/// runner's retry in a new envelope) with the same value records nothing (`Ok(None)`);
/// with another value it is refused (`GATE_INPUT_CONFLICT`): the first record stands.
/// A result measured before the latest one recorded for the same gate, team and component
/// (a dead-lettered run replayed late) is refused (`GATE_INPUT_STALE`). A transaction-scoped
/// lock on (gate, team, component) makes these checks hold under concurrent deliveries.
/// A panel's score lands only on an expert-panel component out of 100 (or min-max).
/// Every input is a new row, so the proposal-staleness rule applies as to any input.
pub fn add_event_input(
    c: &mut PgConnection,
    ev: &EventInput<'_>,
    actor: &Actor,
) -> Result<Option<dto::InputUsed>, E> {
    let g = lock_open_gate(c, ev.gate, false)?;
    let comp = match ev.component {
        None => g
            .components
            .iter()
            .find(|x| x.kind == ComponentKind::ExpertPanel)
            .ok_or_else(|| {
                E::validation(
                    "gate",
                    format!("gate {} has no expert_panel component", g.key),
                )
            })?,
        Some(key) => {
            let comp = g.components.iter().find(|x| x.key == key).ok_or_else(|| {
                let keys: Vec<&str> = g.components.iter().map(|x| x.key.as_str()).collect();
                E::validation(
                    "component",
                    format!("one of the gate's components: {}", keys.join(", ")),
                )
            })?;
            if comp.kind != ComponentKind::Benchmark {
                let keys: Vec<&str> = g
                    .components
                    .iter()
                    .filter(|x| x.kind == ComponentKind::Benchmark)
                    .map(|x| x.key.as_str())
                    .collect();
                return Err(E::validation(
                    "component",
                    format!(
                        "{} is a {} component, not a benchmark one (benchmark components: {})",
                        comp.key,
                        comp.kind.as_str(),
                        keys.join(", ")
                    ),
                ));
            }
            comp
        }
    }
    .clone();
    if comp.kind == ComponentKind::ExpertPanel {
        // A gate stored before kinds took its panel component by convention, without the
        // "out of 100" check of `POST /gates`: a panel's score on another scale is refused.
        if let Normalisation::OfMax(m) = comp.normalisation {
            if m != 100 * 10i64.pow(INPUT_SCALE) {
                return Err(E::validation(
                    "gate",
                    format!(
                        "the expert_panel component {} of gate {} is of_max {}, not 100: a panel's score (out of 100) cannot land on it",
                        comp.key,
                        g.key,
                        decimal::format(m.into(), INPUT_SCALE)
                    ),
                ));
            }
        }
    }
    require_team_at_gate(c, ev.team.0)?;
    let value = decimal::parse(ev.value_field, ev.value, INPUT_SCALE)?;
    lock_event_input(c, g.id, ev.team.0, &comp.key)?;
    let earlier: Option<i64> = ms_gate_inputs::table
        .filter(ms_gate_inputs::gate_id.eq(g.id))
        .filter(ms_gate_inputs::consortium_id.eq(ev.team.0))
        .filter(ms_gate_inputs::component.eq(&comp.key))
        .filter(ms_gate_inputs::source.eq(ev.source))
        .filter(ms_gate_inputs::source_ref.eq(ev.source_ref))
        .order(ms_gate_inputs::seq.desc())
        .select(ms_gate_inputs::value_e4)
        .first(c)
        .optional()?;
    match earlier {
        Some(v) if v == value => return Ok(None),
        Some(v) => {
            return Err(E::GateInputConflict(format!(
                "{}: {} {} already recorded {} for team {} on {}; this delivery says {}",
                ev.value_field,
                ev.source,
                ev.source_ref,
                decimal::format(v.into(), INPUT_SCALE),
                ev.team.0,
                comp.key,
                ev.value
            )))
        }
        None => {}
    }
    if let Some(at) = ev.measured_at {
        let latest: Option<DateTime<Utc>> = ms_gate_inputs::table
            .filter(ms_gate_inputs::gate_id.eq(g.id))
            .filter(ms_gate_inputs::consortium_id.eq(ev.team.0))
            .filter(ms_gate_inputs::component.eq(&comp.key))
            .filter(ms_gate_inputs::source.eq(ev.source))
            .select(diesel::dsl::max(ms_gate_inputs::measured_at))
            .first(c)?;
        if let Some(latest) = latest.filter(|l| *l > at) {
            return Err(E::GateInputStale(format!(
                "measured_at: {} {} was measured at {at}, before the latest {} result recorded for team {} on {} (measured at {latest}): the newer result stands",
                ev.source, ev.source_ref, ev.source, ev.team.0, comp.key
            )));
        }
    }
    insert_input(
        c,
        &g,
        &comp,
        ev.team,
        value,
        ev.source,
        ev.source_ref,
        &ev.reason,
        ev.measured_at,
        actor,
    )
    .map(Some)
}

/// The value of an approved benchmark evidence of `team`, in units of 10^-4.
fn evidence_value(c: &mut PgConnection, id: Uuid, team: Uuid) -> Result<i64, E> {
    type Row = (Uuid, i32, String, Option<i64>, Option<i32>);
    let r: Option<Row> = ms_evidence::table
        .find(id)
        .select((
            ms_evidence::deliverable_id,
            ms_evidence::version,
            ms_evidence::kind,
            ms_evidence::value_units,
            ms_evidence::value_scale,
        ))
        .first(c)
        .optional()?;
    let (deliverable_id, version, kind, units, scale) = r.ok_or(E::EvidenceNotFound(id))?;
    let d = deliverable(c, deliverable_id)?;
    if d.consortium_id.0 != team {
        return Err(E::EvidenceNotUsable(
            id,
            "it is another team's evidence".into(),
        ));
    }
    if kind != "benchmark" {
        return Err(E::EvidenceNotUsable(
            id,
            format!("it is a {kind}, not a benchmark result"),
        ));
    }
    let approved = d
        .verdicts
        .last()
        .filter(|v| v.verdict == "approved")
        .and_then(|v| v.evidence_version);
    if approved != Some(version) {
        return Err(E::EvidenceNotUsable(
            id,
            "only the version an officer approved counts".into(),
        ));
    }
    let (Some(units), Some(scale)) = (units, scale) else {
        return Err(E::EvidenceNotUsable(id, "it has no value".into()));
    };
    decimal::rescale(units, scale.max(0).unsigned_abs(), INPUT_SCALE)
        .ok_or_else(|| E::EvidenceNotUsable(id, "its value has more than 4 decimal places".into()))
}

pub fn record_eligibility(
    c: &mut PgConnection,
    key: &str,
    req: &dto::EligibilityVerdict,
    actor: &Actor,
) -> Result<Uuid, E> {
    if req.grounds.trim().is_empty() {
        return Err(E::GroundsRequired);
    }
    if req.grounds.len() > MAX_TEXT {
        return Err(E::validation(
            "grounds",
            format!("at most {MAX_TEXT} bytes"),
        ));
    }
    let g = lock_open_gate(c, key, false)?;
    if !g.rules.contains(&req.rule) {
        return Err(E::validation(
            "rule",
            format!(
                "one of the gate's eligibility rules: {}",
                g.rules.join(", ")
            ),
        ));
    }
    require_team_at_gate(c, req.consortium_id.0)?;
    let id = Uuid::now_v7();
    diesel::insert_into(ms_eligibility::table)
        .values((
            ms_eligibility::id.eq(id),
            ms_eligibility::gate_id.eq(g.id),
            ms_eligibility::consortium_id.eq(req.consortium_id.0),
            ms_eligibility::rule.eq(&req.rule),
            ms_eligibility::eligible.eq(req.eligible),
            ms_eligibility::grounds.eq(req.grounds.trim()),
            ms_eligibility::decided_by.eq(&actor.subject),
            ms_eligibility::decided_role.eq(actor.role.as_str()),
            ms_eligibility::decided_at.eq(now()),
        ))
        .execute(c)?;
    Ok(id)
}

/// Every input recorded for gate `key`, oldest first (corrections included).
pub fn inputs(c: &mut PgConnection, key: &str) -> Result<Vec<dto::RecordedInput>, E> {
    let g = gate_by_key(c, key)?;
    type Row = (
        Uuid,
        Uuid,
        String,
        i64,
        String,
        String,
        String,
        String,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = ms_gate_inputs::table
        .filter(ms_gate_inputs::gate_id.eq(g.id))
        .order(ms_gate_inputs::seq)
        .select((
            ms_gate_inputs::id,
            ms_gate_inputs::consortium_id,
            ms_gate_inputs::component,
            ms_gate_inputs::value_e4,
            ms_gate_inputs::source,
            ms_gate_inputs::source_ref,
            ms_gate_inputs::reason,
            ms_gate_inputs::entered_by,
            ms_gate_inputs::entered_at,
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| dto::RecordedInput {
            id: r.0,
            consortium_id: ConsortiumId(r.1),
            component: r.2,
            value: decimal::format(r.3.into(), INPUT_SCALE),
            source: r.4,
            source_ref: r.5,
            reason: r.6,
            entered_by: r.7,
            entered_at: r.8,
        })
        .collect())
}

/// Every eligibility verdict recorded for gate `key`, oldest first.
pub fn eligibility(c: &mut PgConnection, key: &str) -> Result<Vec<dto::RecordedEligibility>, E> {
    let g = gate_by_key(c, key)?;
    type Row = (Uuid, Uuid, String, bool, String, String, DateTime<Utc>);
    let rows: Vec<Row> = ms_eligibility::table
        .filter(ms_eligibility::gate_id.eq(g.id))
        .order(ms_eligibility::seq)
        .select((
            ms_eligibility::id,
            ms_eligibility::consortium_id,
            ms_eligibility::rule,
            ms_eligibility::eligible,
            ms_eligibility::grounds,
            ms_eligibility::decided_by,
            ms_eligibility::decided_at,
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| dto::RecordedEligibility {
            id: r.0,
            consortium_id: ConsortiumId(r.1),
            rule: r.2,
            eligible: r.3,
            grounds: r.4,
            decided_by: r.5,
            decided_at: r.6,
        })
        .collect())
}

/// What a proposal of gate `g` is computed from now: each team's facts, the inputs used
/// and the eligibility verdicts used (the latest of each).
type Gathered = (Vec<TeamFacts>, Vec<dto::InputUsed>, Vec<Uuid>);

fn gather(c: &mut PgConnection, g: &GateRow) -> Result<Gathered, E> {
    let teams = teams_at_gate(c)?;
    type InputRow = (Uuid, Uuid, String, i64, String, String);
    let inputs: Vec<InputRow> = ms_gate_inputs::table
        .filter(ms_gate_inputs::gate_id.eq(g.id))
        .order(ms_gate_inputs::seq)
        .select((
            ms_gate_inputs::id,
            ms_gate_inputs::consortium_id,
            ms_gate_inputs::component,
            ms_gate_inputs::value_e4,
            ms_gate_inputs::source,
            ms_gate_inputs::source_ref,
        ))
        .load(c)?;
    // The latest per team and component (rows come in order: later ones replace).
    let mut latest: BTreeMap<(Uuid, String), InputRow> = BTreeMap::new();
    for r in inputs {
        latest.insert((r.1, r.2.clone()), r);
    }
    let verdicts: Vec<(Uuid, Uuid, String, bool, String)> = ms_eligibility::table
        .filter(ms_eligibility::gate_id.eq(g.id))
        .order(ms_eligibility::seq)
        .select((
            ms_eligibility::id,
            ms_eligibility::consortium_id,
            ms_eligibility::rule,
            ms_eligibility::eligible,
            ms_eligibility::grounds,
        ))
        .load(c)?;
    let mut rulings: BTreeMap<(Uuid, String), (Uuid, bool, String)> = BTreeMap::new();
    for (id, team, rule, ok, grounds) in verdicts {
        rulings.insert((team, rule), (id, ok, grounds));
    }
    let mut facts = Vec::new();
    let mut used = Vec::new();
    let mut eligibility = Vec::new();
    for t in &teams {
        let mut failed = Vec::new();
        for rule in &g.rules {
            let (id, ok, grounds) = rulings
                .get(&(*t, rule.clone()))
                .ok_or_else(|| E::EligibilityMissing(*t, rule.clone()))?;
            eligibility.push(*id);
            if !ok {
                failed.push(format!("{rule}: {grounds}"));
            }
        }
        let mut values = BTreeMap::new();
        for comp in &g.components {
            // An ineligible team is out whatever its score: it need not have every input.
            let Some(r) = latest.get(&(*t, comp.key.clone())) else {
                if failed.is_empty() {
                    return Err(E::GateInputMissing(*t, comp.key.clone()));
                }
                continue;
            };
            values.insert(comp.key.clone(), r.3);
            used.push(dto::InputUsed {
                input_id: r.0,
                consortium_id: ConsortiumId(*t),
                component: comp.key.clone(),
                value: decimal::format(r.3.into(), INPUT_SCALE),
                source: r.4.clone(),
                source_ref: r.5.clone(),
            });
        }
        facts.push(TeamFacts {
            team: ConsortiumId(*t),
            values,
            failed_rules: failed,
        });
    }
    Ok((facts, used, eligibility))
}

/// Computes the gate's proposal from the latest inputs and eligibility verdicts, and
/// records it with every input it used.
pub fn propose(c: &mut PgConnection, key: &str, actor: &Actor) -> Result<dto::Proposal, E> {
    let g = lock_open_gate(c, key, false)?;
    let (facts, used, eligibility) = gather(c, &g)?;
    let results = gate::propose(&g.components, &facts, g.planned)
        .map_err(|m| E::GateInputMissing(m.team.0, m.component))?;
    let outcome = dto::ProposalOutcome {
        teams: results,
        inputs: used,
        eligibility,
    };
    let id = Uuid::now_v7();
    diesel::insert_into(ms_proposals::table)
        .values((
            ms_proposals::id.eq(id),
            ms_proposals::gate_id.eq(g.id),
            ms_proposals::outcome.eq(json(&outcome)?),
            ms_proposals::proposed_by.eq(&actor.subject),
            ms_proposals::proposed_role.eq(actor.role.as_str()),
            ms_proposals::proposed_at.eq(now()),
        ))
        .execute(c)?;
    proposal(c, id)
}

pub fn proposal(c: &mut PgConnection, id: Uuid) -> Result<dto::Proposal, E> {
    let r: (Uuid, Uuid, serde_json::Value, String, DateTime<Utc>) = ms_proposals::table
        .find(id)
        .select((
            ms_proposals::id,
            ms_proposals::gate_id,
            ms_proposals::outcome,
            ms_proposals::proposed_by,
            ms_proposals::proposed_at,
        ))
        .first(c)
        .optional()?
        .ok_or(E::ProposalNotFound(id))?;
    let committee: Vec<String> = ms_gates::table
        .find(r.1)
        .select(ms_gates::committee)
        .first(c)?;
    let latest: Option<Uuid> = ms_proposals::table
        .filter(ms_proposals::gate_id.eq(r.1))
        .order(ms_proposals::seq.desc())
        .select(ms_proposals::id)
        .first(c)
        .optional()?;
    let votes: Vec<(String, bool, String, DateTime<Utc>)> = ms_votes::table
        .filter(ms_votes::proposal_id.eq(id))
        .order((ms_votes::voted_at, ms_votes::member))
        .select((
            ms_votes::member,
            ms_votes::approve,
            ms_votes::reason,
            ms_votes::voted_at,
        ))
        .load(c)?;
    let approvals = votes.iter().filter(|v| v.1).count();
    Ok(dto::Proposal {
        id: r.0,
        gate_id: r.1,
        outcome: from_json(r.2)?,
        votes: votes
            .into_iter()
            .map(|v| dto::Vote {
                member: v.0,
                approve: v.1,
                reason: v.2,
                voted_at: v.3,
            })
            .collect(),
        approvals: i32::try_from(approvals).unwrap_or(i32::MAX),
        committee_size: i32::try_from(committee.len()).unwrap_or(i32::MAX),
        current: latest == Some(r.0),
        proposed_by: r.3,
        proposed_at: r.4,
    })
}

pub fn proposals(c: &mut PgConnection, key: &str) -> Result<Vec<dto::Proposal>, E> {
    let g = gate_by_key(c, key)?;
    let ids: Vec<Uuid> = ms_proposals::table
        .filter(ms_proposals::gate_id.eq(g.id))
        .order(ms_proposals::seq)
        .select(ms_proposals::id)
        .load(c)?;
    ids.into_iter().map(|id| proposal(c, id)).collect()
}

fn gate_key_of_proposal(c: &mut PgConnection, id: Uuid) -> Result<String, E> {
    ms_proposals::table
        .inner_join(ms_gates::table.on(ms_gates::id.eq(ms_proposals::gate_id)))
        .filter(ms_proposals::id.eq(id))
        .select(ms_gates::key)
        .first(c)
        .optional()?
        .ok_or(E::ProposalNotFound(id))
}

/// Refuses unless `id` is the gate's latest proposal.
fn require_current(c: &mut PgConnection, gate: Uuid, id: Uuid) -> Result<(), E> {
    let latest: Option<Uuid> = ms_proposals::table
        .filter(ms_proposals::gate_id.eq(gate))
        .order(ms_proposals::seq.desc())
        .select(ms_proposals::id)
        .first(c)
        .optional()?;
    match latest {
        Some(l) if l == id => Ok(()),
        Some(l) => Err(E::ProposalSuperseded(id, l)),
        None => Err(E::ProposalNotFound(id)),
    }
}

/// A committee member's vote on the gate's current proposal: once, with a reason.
pub fn vote(
    c: &mut PgConnection,
    id: Uuid,
    req: &dto::CastVote,
    actor: &Actor,
) -> Result<dto::Proposal, E> {
    text("reason", &req.reason, MAX_TEXT)?;
    let key = gate_key_of_proposal(c, id)?;
    let g = lock_open_gate(c, &key, false)?;
    if !g.committee.contains(&actor.subject) {
        return Err(E::NotOnCommittee(actor.subject.clone(), key));
    }
    require_current(c, g.id, id)?;
    let n = diesel::insert_into(ms_votes::table)
        .values((
            ms_votes::proposal_id.eq(id),
            ms_votes::member.eq(&actor.subject),
            ms_votes::approve.eq(req.approve),
            ms_votes::reason.eq(req.reason.trim()),
            ms_votes::voted_at.eq(now()),
        ))
        .on_conflict_do_nothing()
        .execute(c)?;
    if n == 0 {
        return Err(E::AlreadyVoted(actor.subject.clone(), id));
    }
    proposal(c, id)
}

pub const MAX_GPUS: i64 = 1_000_000;

/// Publishes the gate's current proposal once a majority of the committee approved it:
/// the decision (with the reallocation plan and the next phase's targets), `GateDecided`
/// and one `TeamEliminated` per eliminated team, in one transaction. The second value is
/// `true` when this call published; a retry of the request that published (same proposal,
/// reason, plan and targets) gets the decision back with `false` and publishes nothing.
pub fn publish(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    key: &str,
    req: &dto::PublishGate,
    actor: &Actor,
) -> Result<(dto::Decision, bool), E> {
    text("reason", &req.reason, MAX_TEXT)?;
    if req.next_targets.len() > 50 {
        return Err(E::validation("next_targets", "at most 50 targets"));
    }
    for (i, t) in req.next_targets.iter().enumerate() {
        text(&format!("next_targets[{i}].benchmark"), &t.benchmark, 200)?;
        text(&format!("next_targets[{i}].target"), &t.target, 2000)?;
    }
    let g = match lock_open_gate(c, key, true) {
        Ok(g) => g,
        Err(E::GatePublished(gate, at)) => {
            // The gate row is locked: the decision read here is the only one there will be.
            if let Some(d) = decision(c, key)? {
                if same_publication(&d, req) {
                    return Ok((d, false));
                }
            }
            return Err(E::GatePublished(gate, at));
        }
        Err(e) => return Err(e),
    };
    let p = proposal(c, req.proposal_id)?;
    if p.gate_id != g.id {
        return Err(E::ProposalNotFound(req.proposal_id));
    }
    require_current(c, g.id, p.id)?;
    // The committee approved these inputs and verdicts: a later correction needs a new
    // proposal (and a new vote).
    let stale = match gather(c, &g) {
        Ok((_, used, eligibility)) => {
            let now_ids: BTreeSet<Uuid> = used.iter().map(|u| u.input_id).collect();
            let then_ids: BTreeSet<Uuid> = p.outcome.inputs.iter().map(|u| u.input_id).collect();
            now_ids != then_ids || eligibility != p.outcome.eligibility
        }
        // The gate's facts no longer make a proposal: stale. Anything else (the database
        // failing) is reported as what it is, not as a stale proposal.
        Err(E::GateInputMissing(..) | E::EligibilityMissing(..)) => true,
        Err(e) => return Err(e),
    };
    if stale {
        return Err(E::ProposalStale(p.id));
    }
    // More than half of the whole committee (not of those who voted).
    if i64::from(p.approvals) * 2 <= i64::from(p.committee_size) {
        return Err(E::NoMajority(p.approvals, p.committee_size, p.id));
    }
    let passed: Vec<ConsortiumId> = p
        .outcome
        .teams
        .iter()
        .filter(|t| t.outcome == "continues")
        .map(|t| t.consortium_id)
        .collect();
    let out: Vec<(ConsortiumId, String)> = p
        .outcome
        .teams
        .iter()
        .filter(|t| t.outcome == "eliminated")
        .map(|t| (t.consortium_id, t.reason.clone().unwrap_or_default()))
        .collect();
    let decided_at = now();
    let mut plans: BTreeMap<Uuid, Vec<Reallocation>> = BTreeMap::new();
    for (i, plan) in req.reallocations.iter().enumerate() {
        let at = format!("reallocations[{i}]");
        if !out.iter().any(|(t, _)| *t == plan.consortium_id) {
            return Err(E::validation(
                format!("{at}.consortium_id"),
                "a team the proposal eliminates",
            ));
        }
        if plans.contains_key(&plan.consortium_id.0) {
            return Err(E::validation(
                format!("{at}.consortium_id"),
                "one plan per eliminated team",
            ));
        }
        if plan.reallocation.len() > 100 {
            return Err(E::validation(
                format!("{at}.reallocation"),
                "at most 100 grants",
            ));
        }
        for (j, r) in plan.reallocation.iter().enumerate() {
            let at = format!("{at}.reallocation[{j}]");
            if !passed.contains(&r.consortium_id) {
                return Err(E::validation(
                    format!("{at}.consortium_id"),
                    "a team that continues (only survivors receive GPUs)",
                ));
            }
            // The ledger's own rules: a plan it would refuse when it applies it would leave
            // the eliminated team's grants open, so it is refused here, before anything is
            // published.
            check_model_code(&r.model).map_err(|e| E::validation(format!("{at}.model"), e.rule))?;
            check_period(&r.period).map_err(|e| E::validation(format!("{at}.period"), e.rule))?;
            // The ledger reclaims and regrants only periods that have not started.
            if period_start(&r.period).is_some_and(|start| start <= decided_at) {
                return Err(E::validation(
                    format!("{at}.period"),
                    format!(
                        "a period that starts after the decision (`{}` has already started; the ledger reallocates only future periods)",
                        r.period
                    ),
                ));
            }
            if !(1..=MAX_GPUS).contains(&r.count) {
                return Err(E::validation(
                    format!("{at}.count"),
                    format!("a whole number of GPUs from 1 to {MAX_GPUS}"),
                ));
            }
        }
        plans.insert(plan.consortium_id.0, plan.reallocation.clone());
    }
    let eliminated: Vec<dto::EliminatedTeam> = out
        .iter()
        .map(|(t, reason)| dto::EliminatedTeam {
            consortium_id: *t,
            reason: reason.clone(),
            reallocation: plans.get(&t.0).cloned().unwrap_or_default(),
        })
        .collect();
    let at = decided_at;
    diesel::insert_into(ms_decisions::table)
        .values((
            ms_decisions::gate_id.eq(g.id),
            ms_decisions::proposal_id.eq(p.id),
            ms_decisions::passed.eq(passed.iter().map(|t| t.0).collect::<Vec<_>>()),
            ms_decisions::eliminated.eq(json(&eliminated)?),
            ms_decisions::next_targets.eq(json(&req.next_targets)?),
            ms_decisions::approvals.eq(p.approvals),
            ms_decisions::committee.eq(p.committee_size),
            ms_decisions::reason.eq(req.reason.trim()),
            ms_decisions::decided_by.eq(&actor.subject),
            ms_decisions::decided_role.eq(actor.role.as_str()),
            ms_decisions::decided_at.eq(at),
        ))
        .execute(c)?;
    tx.publish(
        c,
        actor.clone(),
        &GateDecided {
            gate_id: g.id,
            gate: g.key.clone(),
            passed: passed.clone(),
            eliminated: eliminated.iter().map(|e| e.consortium_id).collect(),
            decided_at: at,
        },
    )?;
    for e in &eliminated {
        tx.publish(
            c,
            actor.clone(),
            &TeamEliminated {
                gate_id: g.id,
                gate: g.key.clone(),
                consortium_id: e.consortium_id,
                reason: e.reason.clone(),
                reallocation: e.reallocation.clone(),
                decided_at: at,
            },
        )?;
    }
    let d = decision(c, key)?.ok_or_else(|| E::GateNotFound(key.to_owned()))?;
    Ok((d, true))
}

/// Whether `req` is the request that published `d`: the same proposal, reason, targets and
/// reallocation plan (a repeat with anything different is refused, not silently accepted).
fn same_publication(d: &dto::Decision, req: &dto::PublishGate) -> bool {
    let planned: BTreeMap<Uuid, &Vec<Reallocation>> = req
        .reallocations
        .iter()
        .map(|p| (p.consortium_id.0, &p.reallocation))
        .collect();
    let published: BTreeMap<Uuid, &Vec<Reallocation>> = d
        .eliminated
        .iter()
        .filter(|e| !e.reallocation.is_empty())
        .map(|e| (e.consortium_id.0, &e.reallocation))
        .collect();
    d.proposal_id == req.proposal_id
        && d.reason == req.reason.trim()
        && d.next_targets == req.next_targets
        && planned.len() == req.reallocations.len()
        && planned
            .into_iter()
            .filter(|(_, r)| !r.is_empty())
            .collect::<BTreeMap<_, _>>()
            == published
}

pub fn decision(c: &mut PgConnection, key: &str) -> Result<Option<dto::Decision>, E> {
    let g = gate_by_key(c, key)?;
    type Row = (
        Uuid,
        Vec<Uuid>,
        serde_json::Value,
        serde_json::Value,
        i32,
        i32,
        String,
        String,
        DateTime<Utc>,
    );
    let r: Option<Row> = ms_decisions::table
        .find(g.id)
        .select((
            ms_decisions::proposal_id,
            ms_decisions::passed,
            ms_decisions::eliminated,
            ms_decisions::next_targets,
            ms_decisions::approvals,
            ms_decisions::committee,
            ms_decisions::reason,
            ms_decisions::decided_by,
            ms_decisions::decided_at,
        ))
        .first(c)
        .optional()?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(dto::Decision {
        gate_id: g.id,
        gate: g.key,
        proposal_id: r.0,
        passed: r.1.into_iter().map(ConsortiumId).collect(),
        eliminated: from_json(r.2)?,
        next_targets: from_json(r.3)?,
        approvals: r.4,
        committee_size: r.5,
        reason: r.6,
        decided_by: r.7,
        decided_at: r.8,
    }))
}

/// What a team sees of a gate: nothing before publication; afterwards its own result
/// (score, components, rank, outcome and reason), the decision's date and targets.
#[derive(serde::Serialize)]
pub struct TeamGateResult {
    pub gate: String,
    pub decided_at: DateTime<Utc>,
    pub result: dto::TeamResult,
    pub next_targets: Vec<dto::NextTarget>,
}

///
/// `team_view`: as the team itself may read it ([`gate::for_the_team`]: nothing about the
/// other teams); staff read the full text.
pub fn team_result(
    c: &mut PgConnection,
    key: &str,
    team: Uuid,
    team_view: bool,
) -> Result<Option<TeamGateResult>, E> {
    let Some(d) = decision(c, key)? else {
        return Ok(None);
    };
    let p = proposal(c, d.proposal_id)?;
    let planned: i32 = ms_gates::table
        .find(p.gate_id)
        .select(ms_gates::planned_eliminations)
        .first(c)?;
    Ok(p.outcome
        .teams
        .into_iter()
        .find(|t| t.consortium_id.0 == team)
        .map(|r| {
            if team_view {
                gate::for_the_team(r, planned)
            } else {
                r
            }
        })
        .map(|result| TeamGateResult {
            gate: d.gate,
            decided_at: d.decided_at,
            result,
            next_targets: d.next_targets,
        }))
}

/// What `POST /admin/announce` republished.
#[derive(serde::Serialize)]
pub struct Announced {
    pub gates: usize,
    pub eliminations: usize,
}

/// Republishes what other services learn from milestones and may have missed (gates
/// defined, or decisions published, before a consumer existed, or whose events left the
/// topic's retention): one `GateDefined` per gate and one `TeamEliminated` per eliminated
/// team of every published decision, from the rows (nothing is written but the outbox).
/// Idempotent for every consumer: scoring inserts with `ON CONFLICT DO NOTHING`, and the
/// ledger, data budget and talent record an elimination once per team and gate.
pub fn announce(
    c: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    actor: &Actor,
) -> Result<Announced, E> {
    let gates = gates(c)?;
    for g in &gates {
        tx.publish(c, actor.clone(), &gate_defined(g))?;
    }
    let decided: Vec<(Uuid, String, serde_json::Value, DateTime<Utc>)> = ms_decisions::table
        .inner_join(ms_gates::table.on(ms_gates::id.eq(ms_decisions::gate_id)))
        .select((
            ms_gates::id,
            ms_gates::key,
            ms_decisions::eliminated,
            ms_decisions::decided_at,
        ))
        .order((ms_gates::phase, ms_gates::key))
        .load(c)?;
    let mut eliminations = 0;
    for (gate_id, key, eliminated, decided_at) in decided {
        let eliminated: Vec<dto::EliminatedTeam> = from_json(eliminated)?;
        for e in eliminated {
            tx.publish(
                c,
                actor.clone(),
                &TeamEliminated {
                    gate_id,
                    gate: key.clone(),
                    consortium_id: e.consortium_id,
                    reason: e.reason,
                    reallocation: e.reallocation,
                    decided_at,
                },
            )?;
            eliminations += 1;
        }
    }
    Ok(Announced {
        gates: gates.len(),
        eliminations,
    })
}

/// The `GateDefined` of a gate (at its definition, and again at an announce).
pub fn gate_defined(g: &dto::Gate) -> kaip_contracts::events::GateDefined {
    kaip_contracts::events::GateDefined {
        gate_id: g.id,
        gate: g.key.clone(),
        phase: g.phase,
        gate_date: g.gate_date,
        defined_at: g.created_at,
        expert_panel: g
            .components
            .iter()
            .any(|x| x.kind.as_deref() == Some(ComponentKind::ExpertPanel.as_str())),
    }
}
