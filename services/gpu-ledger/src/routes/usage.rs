use crate::domain::catalogue::{check_model_code, check_period, period_bounds, period_hours};
use crate::domain::usage;
use crate::error::LedgerError;
use crate::schema::{gpu_models, gpu_usage_reports, ledger_accounts};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::dsl::max;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz};
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

#[derive(QueryableByName)]
struct GrantChange {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    consortium_id: Uuid,
    #[diesel(sql_type = Text)]
    model: String,
    #[diesel(sql_type = Text)]
    period: String,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    gpus: i64,
}

type Line = (Uuid, String, String);

/// A line's changes of posted GPUs: `(from when they count, +granted or -reclaimed)`.
type Changes = Vec<(DateTime<Utc>, i64)>;

/// Every change of teams' posted GPUs (`+` a `single` or `post` crediting the grant account,
/// `-` one debiting it), per team, model and period, summed per the exact moment it takes
/// effect, optionally for one team, model or period. A change takes effect at its transfer's
/// time, except a post of a dated tranche: that takes effect at the tranche's `release_at`
/// (or at the offer's acceptance, when it was dated earlier), never later than the post. The
/// sweeper posts a tranche up to a second or so after its date, and that delay is not the
/// team's.
fn grant_changes(
    c: &mut PgConnection,
    team: Option<Uuid>,
    model: Option<&str>,
    period: Option<&str>,
) -> QueryResult<BTreeMap<Line, Changes>> {
    let rows: Vec<GrantChange> = diesel::sql_query(
        "SELECT a.consortium_id, a.model, a.period, m.at, sum(m.gpus)::int8 AS gpus \
           FROM ledger_accounts a \
           CROSS JOIN LATERAL ( \
                SELECT t.created_at AS at, t.amount AS gpus, t.kind, t.pending_id \
                  FROM ledger_transfers t \
                 WHERE t.credit_account_id = a.id AND t.kind IN ('single', 'post') \
                UNION ALL \
                SELECT t.created_at, -t.amount, t.kind, t.pending_id FROM ledger_transfers t \
                 WHERE t.debit_account_id = a.id AND t.kind IN ('single', 'post')) c \
           CROSS JOIN LATERAL ( \
                SELECT COALESCE(( \
                    SELECT min(LEAST(c.at, GREATEST(g.release_at, x.accepted_at))) \
                      FROM gpu_tranches g \
                      JOIN gpu_offer_acceptances x ON x.offer_id = g.offer_id \
                     WHERE c.kind = 'post' AND g.transfer_id = c.pending_id \
                       AND g.release_at IS NOT NULL), c.at) AS at, c.gpus) m \
          WHERE a.kind = 'grant' AND a.consortium_id IS NOT NULL \
            AND ($1::uuid IS NULL OR a.consortium_id = $1) \
            AND ($2::text IS NULL OR a.model = $2) \
            AND ($3::text IS NULL OR a.period = $3) \
          GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    )
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(team)
    .bind::<Nullable<Text>, _>(model)
    .bind::<Nullable<Text>, _>(period)
    .load(c)?;
    let mut lines: BTreeMap<Line, Changes> = BTreeMap::new();
    for r in rows {
        lines
            .entry((r.consortium_id, r.model, r.period))
            .or_default()
            .push((r.at, r.gpus));
    }
    Ok(lines)
}

/// GPU-hours granted to a line, pro-rated (see [`usage::prorated_hours`]). `None` when it
/// overflows.
fn granted_hours(period: &str, changes: &[(DateTime<Utc>, i64)]) -> Option<i64> {
    let (start, end) = period_bounds(period)?;
    usage::prorated_hours(changes, start, end)
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
    // Under the team's usage lock, not its grant account's: a grant committed beside this
    // report counts for the next one (as a grant always did).
    let changes = grant_changes(
        conn,
        Some(req.consortium_id.0),
        Some(&req.model),
        Some(&req.period),
    )?;
    let line = (req.consortium_id.0, req.model.clone(), req.period.clone());
    let granted = granted_hours(
        &req.period,
        changes.get(&line).map(Vec::as_slice).unwrap_or_default(),
    )
    .ok_or_else(|| LedgerError::validation("gpu_hours", "the granted hours would overflow"))?;
    let a = usage::assess(used, granted);
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

/// Utilisation per team, model and period: granted GPU-hours (each grant's GPUs x the
/// whole hours from when it took effect to the period's end, see [`usage::prorated_hours`]),
/// GPUs held now, used, the ratio and the overrun flag. A consortium user sees its own only.
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
            // One snapshot for the three reads: a batch committed between them would show
            // GPUs held with no hours granted for them (or the reverse).
            let (changes, used, grants) =
                c.build_transaction()
                    .repeatable_read()
                    .read_only()
                    .run(|c| {
                        let changes = grant_changes(c, team, None, q.period.as_deref())?;
                        let used: Vec<(Uuid, String, String, Option<i64>)> = used_q.load(c)?;
                        let grants: Vec<(Option<Uuid>, String, String, i64, i64)> =
                            grants_q.load(c)?;
                        Ok::<_, diesel::result::Error>((changes, used, grants))
                    })?;
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
                    .map(|(line, (gpus, used))| {
                        let granted = granted_hours(
                            &line.2,
                            changes.get(&line).map(Vec::as_slice).unwrap_or_default(),
                        );
                        let a = granted.map(|g| usage::assess(used, g));
                        let (t, model, period) = line;
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
