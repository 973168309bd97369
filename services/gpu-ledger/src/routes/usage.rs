use crate::domain::catalogue::{check_model_code, check_period, period_hours};
use crate::domain::usage;
use crate::error::LedgerError;
use crate::schema::{gpu_models, gpu_usage_reports, ledger_accounts};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::dsl::max;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use kaip_bus::OutboxTx;
use kaip_contracts::dto::gpu::{ReportUsage, UsageReport, Utilisation};
use kaip_contracts::events::GpuUsageRecorded;
use kaip_contracts::{Actor, ConsortiumId, Role};
use kaip_service::{AppState, Caller, ValidJson};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The advisory-lock class of "a team's usage of a model in a period": reports for it are
/// serialised, so each sees the one before it.
const USAGE_LOCK_CLASS: i32 = 0x6770_7532;

type ReportRow = (
    Uuid,
    Uuid,
    String,
    String,
    i64,
    i64,
    i64,
    bool,
    String,
    String,
    DateTime<Utc>,
);

fn report_dto(r: ReportRow) -> UsageReport {
    UsageReport {
        id: r.0,
        consortium_id: ConsortiumId(r.1),
        model: r.2,
        period: r.3,
        gpu_hours: r.4,
        used_hours: r.5 + r.4,
        granted_hours: r.6,
        overrun: r.7,
        note: r.8,
        reported_by: r.9,
        reported_at: r.10,
    }
}

fn find_report(c: &mut PgConnection, id: Uuid) -> QueryResult<Option<ReportRow>> {
    gpu_usage_reports::table
        .find(id)
        .select((
            gpu_usage_reports::id,
            gpu_usage_reports::consortium_id,
            gpu_usage_reports::model,
            gpu_usage_reports::period,
            gpu_usage_reports::gpu_hours,
            gpu_usage_reports::used_before,
            gpu_usage_reports::granted_hours,
            gpu_usage_reports::overrun,
            gpu_usage_reports::note,
            gpu_usage_reports::reported_by,
            gpu_usage_reports::reported_at,
        ))
        .first(c)
        .optional()
}

/// GPUs a team holds (posted) of a model for a period.
fn granted_gpus(c: &mut PgConnection, team: Uuid, model: &str, period: &str) -> QueryResult<i64> {
    let row: Option<(i64, i64)> = ledger_accounts::table
        .filter(ledger_accounts::kind.eq("grant"))
        .filter(ledger_accounts::consortium_id.eq(team))
        .filter(ledger_accounts::model.eq(model))
        .filter(ledger_accounts::period.eq(period))
        .select((
            ledger_accounts::credits_posted,
            ledger_accounts::debits_posted,
        ))
        .first(c)
        .optional()?;
    Ok(row.map_or(0, |(c, d)| c - d))
}

/// A GPU operator (integration token with `write:gpu-usage`) or staff reports GPU-hours a
/// team used. Idempotent by the report's id; an overrun is recorded and flagged.
pub async fn report(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<ReportUsage>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Integration],
        "report GPU usage",
    )?;
    caller.require_scope(kaip_auth::scopes::WRITE_GPU_USAGE, "report GPU usage")?;
    let req = body.into_inner();
    check_report(&req)?;
    let actor = caller.actor();
    let (report, created) = state
        .db(move |c, outbox| {
            // Two reports with one id for different teams hold different locks: the loser's
            // rerun finds the winner's row and gets the coded refusal, not a 500.
            crate::store::retrying(true, || {
                outbox.transaction(c, |c, tx| record(c, tx, &req, &actor))
            })
        })
        .await?;
    Ok(if created {
        HttpResponse::Created().json(report)
    } else {
        HttpResponse::Ok().json(report)
    })
}

/// The report's own rules, before any I/O.
pub fn check_report(req: &ReportUsage) -> Result<(), LedgerError> {
    if req.id.is_nil() {
        return Err(LedgerError::validation("id", "must not be the nil UUID"));
    }
    check_model_code(&req.model)?;
    check_period(&req.period)?;
    if period_hours(&req.period).is_none() {
        return Err(LedgerError::validation("period", "has no length"));
    }
    if req.gpu_hours <= 0 {
        return Err(LedgerError::validation(
            "gpu_hours",
            "a positive whole number of GPU-hours",
        ));
    }
    Ok(())
}

/// Records a usage report in the caller's transaction: the one path for `POST /usage` and
/// for the operators' topic (`GpuUsageReported`, see [`crate::consumer`]). Returns the
/// report and whether this call recorded it (false: a repeat with the same fields, which
/// answers the original). A repeat with different fields is refused
/// (`USAGE_REPORT_EXISTS_WITH_DIFFERENT_FIELDS`).
pub fn record(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &ReportUsage,
    actor: &Actor,
) -> Result<(UsageReport, bool), LedgerError> {
    check_report(req)?;
    let hours = period_hours(&req.period)
        .ok_or_else(|| LedgerError::validation("period", "has no length"))?;
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<Integer, _>(USAGE_LOCK_CLASS)
        .bind::<Integer, _>(crate::store::supplier_lock_key(req.consortium_id.0))
        .execute(conn)?;
    if let Some(existing) = find_report(conn, req.id)? {
        let same = existing.1 == req.consortium_id.0
            && existing.2 == req.model
            && existing.3 == req.period
            && existing.4 == req.gpu_hours
            && existing.8 == req.note.trim();
        return if same {
            Ok((report_dto(existing), false))
        } else {
            Err(LedgerError::Transfer {
                code: "USAGE_REPORT_EXISTS_WITH_DIFFERENT_FIELDS",
                message: "id: a usage report with this id exists with different fields; a retry must carry the same fields".into(),
            })
        };
    }
    let known: i64 = gpu_models::table
        .find(&req.model)
        .count()
        .get_result(conn)?;
    if known == 0 {
        return Err(LedgerError::ModelNotFound(req.model.clone()));
    }
    let before: Option<i64> = gpu_usage_reports::table
        .filter(gpu_usage_reports::consortium_id.eq(req.consortium_id.0))
        .filter(gpu_usage_reports::model.eq(&req.model))
        .filter(gpu_usage_reports::period.eq(&req.period))
        .select(gpu_usage_reports::used_before + gpu_usage_reports::gpu_hours)
        // The last recorded (a sequence, under the team's lock above), never
        // the latest by a replica's clock.
        .order(gpu_usage_reports::seq.desc())
        .first(conn)
        .optional()?;
    let before = before.unwrap_or(0);
    let used = usage::add(before, req.gpu_hours)
        .ok_or_else(|| LedgerError::validation("gpu_hours", "the total would overflow"))?;
    let gpus = granted_gpus(conn, req.consortium_id.0, &req.model, &req.period)?;
    let a = usage::assess(used, gpus, hours)
        .ok_or_else(|| LedgerError::validation("gpu_hours", "the total would overflow"))?;
    let now = Utc::now().trunc_subsecs(6);
    diesel::insert_into(gpu_usage_reports::table)
        .values((
            gpu_usage_reports::id.eq(req.id),
            gpu_usage_reports::consortium_id.eq(req.consortium_id.0),
            gpu_usage_reports::model.eq(&req.model),
            gpu_usage_reports::period.eq(&req.period),
            gpu_usage_reports::gpu_hours.eq(req.gpu_hours),
            gpu_usage_reports::used_before.eq(before),
            gpu_usage_reports::granted_hours.eq(a.granted_hours),
            gpu_usage_reports::overrun.eq(a.overrun),
            gpu_usage_reports::note.eq(req.note.trim()),
            gpu_usage_reports::reported_by.eq(&actor.subject),
            gpu_usage_reports::reported_role.eq(actor.role.as_str()),
            gpu_usage_reports::reported_at.eq(now),
        ))
        .execute(conn)?;
    if a.overrun {
        tracing::warn!(consortium = %req.consortium_id, model = %req.model, period = %req.period,
            used = a.used_hours, granted = a.granted_hours, "GPU usage overrun");
    }
    tx.publish(
        conn,
        actor.clone(),
        &GpuUsageRecorded {
            report_id: req.id,
            consortium_id: req.consortium_id,
            model: req.model.clone(),
            period: req.period.clone(),
            gpu_hours: req.gpu_hours,
            used_hours: a.used_hours,
            granted_hours: a.granted_hours,
            overrun: a.overrun,
            reported_at: now,
        },
    )?;
    let row = find_report(conn, req.id)?.ok_or_else(|| LedgerError::Transfer {
        code: "INTERNAL",
        message: "report vanished".into(),
    })?;
    Ok((report_dto(row), true))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilisationQuery {
    consortium_id: Option<Uuid>,
    period: Option<String>,
}

/// Utilisation per team, model and period: granted GPU-hours (GPUs held x the period's
/// hours), used, the ratio and the overrun flag. A consortium user sees its own only.
pub async fn utilisation(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<UtilisationQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read GPU utilisation",
    )?;
    let q = query.into_inner();
    if let Some(p) = &q.period {
        check_period(p)?;
    }
    let team = match caller.role() {
        Role::Consortium => Some(
            caller
                .0
                .consortium_id
                .map(|c| c.0)
                .unwrap_or_else(Uuid::nil),
        ),
        _ => q.consortium_id,
    };
    let lines = state
        .db(move |c, _| {
            let mut used_q = gpu_usage_reports::table
                .group_by((
                    gpu_usage_reports::consortium_id,
                    gpu_usage_reports::model,
                    gpu_usage_reports::period,
                ))
                .select((
                    gpu_usage_reports::consortium_id,
                    gpu_usage_reports::model,
                    gpu_usage_reports::period,
                    // Each report keeps the running total: the largest is the latest.
                    max(gpu_usage_reports::used_before + gpu_usage_reports::gpu_hours),
                ))
                .into_boxed();
            let mut grants_q = ledger_accounts::table
                .filter(ledger_accounts::kind.eq("grant"))
                .select((
                    ledger_accounts::consortium_id,
                    ledger_accounts::model,
                    ledger_accounts::period,
                    ledger_accounts::credits_posted,
                    ledger_accounts::debits_posted,
                ))
                .into_boxed();
            if let Some(t) = team {
                used_q = used_q.filter(gpu_usage_reports::consortium_id.eq(t));
                grants_q = grants_q.filter(ledger_accounts::consortium_id.eq(t));
            }
            if let Some(p) = &q.period {
                used_q = used_q.filter(gpu_usage_reports::period.eq(p.clone()));
                grants_q = grants_q.filter(ledger_accounts::period.eq(p.clone()));
            }
            let used: Vec<(Uuid, String, String, Option<i64>)> = used_q.load(c)?;
            let grants: Vec<(Option<Uuid>, String, String, i64, i64)> = grants_q.load(c)?;
            let mut lines: BTreeMap<(Uuid, String, String), (i64, i64)> = BTreeMap::new();
            for (t, m, p, cr, db) in grants {
                if let Some(t) = t {
                    lines.entry((t, m, p)).or_default().0 = cr - db;
                }
            }
            for (t, m, p, h) in used {
                lines.entry((t, m, p)).or_default().1 = h.unwrap_or(0);
            }
            Ok::<_, LedgerError>(
                lines
                    .into_iter()
                    .map(|((t, model, period), (gpus, used))| {
                        let hours = period_hours(&period).unwrap_or(0);
                        let a = usage::assess(used, gpus, hours);
                        Utilisation {
                            consortium_id: ConsortiumId(t),
                            model,
                            period,
                            granted_gpus: gpus,
                            granted_hours: a.map_or(i64::MAX, |a| a.granted_hours),
                            used_hours: used,
                            utilisation_permille: a.and_then(|a| a.utilisation_permille),
                            overrun: a.is_none_or(|a| a.overrun),
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(lines))
}
