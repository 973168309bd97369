use super::STAFF;
use crate::domain::catalogue::{
    check_factor, check_model_code, check_period, h100_eq, source_totals, SourceBalance,
};
use crate::domain::ledger;
use crate::error::LedgerError;
use crate::schema::{gpu_model_factors, gpu_models, gpu_supplier_records, ledger_accounts};
use crate::store;
use actix_web::{web, HttpResponse};
use chrono::{SubsecRound, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::gpu::{
    PoolBySource, PoolLine, PoolSourceLine, RecordSupplier, SetGpuModel, SourceType, SupplierRecord,
};
use kaip_contracts::events::{GpuModelFactorSet, GpuSupplierRecorded, GpuSupplyEndRecorded};
use kaip_contracts::{ConsortiumId, H100Eq, Role};
use kaip_service::{AppState, Caller, ValidJson};
use uuid::Uuid;

pub async fn list_models(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Consortium,
            Role::Integration,
        ],
        "read the GPU catalogue",
    )?;
    let models = state
        .db(|c, _| Ok::<_, LedgerError>(store::models(c)?))
        .await?;
    Ok(HttpResponse::Ok().json(models))
}

/// Adds a model or records a new factor for it: a new version, the old one kept.
pub async fn set_model(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: ValidJson<SetGpuModel>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "change the GPU catalogue")?;
    let code = path.into_inner();
    let req = body.into_inner();
    check_model_code(&code)?;
    check_factor(req.h100_factor)?;
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(LedgerError::validation("name", "1-100 characters"));
    }
    if req.reason.trim().is_empty() {
        return Err(LedgerError::validation(
            "reason",
            "say why the factor is set",
        ));
    }
    let actor = caller.actor();
    let models = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let now = Utc::now().trunc_subsecs(6);
                diesel::insert_into(gpu_models::table)
                    .values((gpu_models::code.eq(&code), gpu_models::name.eq(&name)))
                    .on_conflict(gpu_models::code)
                    .do_nothing()
                    .execute(c)?;
                diesel::insert_into(gpu_model_factors::table)
                    .values((
                        gpu_model_factors::model.eq(&code),
                        gpu_model_factors::h100_factor.eq(req.h100_factor),
                        gpu_model_factors::recorded_by.eq(&actor.subject),
                        gpu_model_factors::recorded_at.eq(now),
                        gpu_model_factors::reason.eq(req.reason.trim()),
                    ))
                    .execute(c)?;
                tx.publish(
                    c,
                    actor.clone(),
                    &GpuModelFactorSet {
                        model: code.clone(),
                        name: name.clone(),
                        h100_factor: req.h100_factor,
                        reason: req.reason.trim().to_owned(),
                        recorded_at: now,
                    },
                )?;
                Ok::<_, LedgerError>(store::models(c)?)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(models))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolQuery {
    period: Option<String>,
    model: Option<String>,
}

/// The pools by model and period: held, granted, reserved, available, in units and H100-eq.
/// Net positions (see [`ledger::PoolPosition`]): what the sources hold in the programme
/// now and what teams hold now, so GPUs a team gave back count in neither.
pub async fn pools(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PoolQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read the GPU pools",
    )?;
    let PoolQuery { period, model } = query.into_inner();
    if let Some(p) = &period {
        check_period(p)?;
    }
    if let Some(m) = &model {
        check_model_code(m)?;
    }
    let lines = state
        .db(move |c, _| {
            let factors = store::factors(c)?;
            // Every account of the pools' ledgers: a pool's position is net of what went back,
            // read from its sources' and teams' totals (see `ledger::pool_position`).
            let mut q = ledger_accounts::table
                .select(store::AccountRow::as_select())
                .order((
                    ledger_accounts::period,
                    ledger_accounts::model,
                    ledger_accounts::id,
                ))
                .into_boxed();
            if let Some(p) = period {
                q = q.filter(ledger_accounts::period.eq(p));
            }
            if let Some(m) = model {
                q = q.filter(ledger_accounts::model.eq(m));
            }
            let rows: Vec<store::AccountRow> = q.load(c)?;
            let accounts: Vec<ledger::Account> =
                rows.iter().map(store::AccountRow::domain).collect();
            let lines: Vec<PoolLine> = rows
                .iter()
                .zip(&accounts)
                .filter(|(a, _)| a.kind == "pool")
                .map(|(a, pool)| {
                    let factor = factors.get(&a.model).copied().unwrap_or(1);
                    let ledger::PoolPosition {
                        held,
                        granted,
                        reserved,
                        available,
                    } = ledger::pool_position(pool, &accounts);
                    PoolLine {
                        model: a.model.clone(),
                        period: a.period.clone(),
                        pool_account: a.id,
                        phase: a.phase.clone(),
                        h100_factor: factor,
                        held,
                        granted,
                        reserved,
                        available,
                        held_h100_eq: h100_eq(held, factor).unwrap_or(H100Eq(i64::MAX)),
                        available_h100_eq: h100_eq(available, factor).unwrap_or(H100Eq(i64::MAX)),
                    }
                })
                .collect();
            Ok::<_, LedgerError>(lines)
        })
        .await?;
    Ok(HttpResponse::Ok().json(lines))
}

/// The pools broken down by source: what each lease and each government-owned source
/// supplied to each (model, period), the totals by source type, in units and H100-eq.
/// Staff, and consortium users (the pools carry no team's grants), who do not see the
/// sources' names.
pub async fn pools_by_source(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PoolQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read the GPU pools by source",
    )?;
    let names = caller.role() != Role::Consortium;
    let PoolQuery { period, model } = query.into_inner();
    if let Some(p) = &period {
        check_period(p)?;
    }
    if let Some(m) = &model {
        check_model_code(m)?;
    }
    let lines = state
        .db(move |c, _| {
            let factors = store::factors(c)?;
            let mut q = ledger_accounts::table
                .filter(ledger_accounts::kind.eq_any(["pool", "source"]))
                .select(store::AccountRow::as_select())
                .order((
                    ledger_accounts::period,
                    ledger_accounts::model,
                    ledger_accounts::created_at,
                    ledger_accounts::id,
                ))
                .into_boxed();
            if let Some(p) = period {
                q = q.filter(ledger_accounts::period.eq(p));
            }
            if let Some(m) = model {
                q = q.filter(ledger_accounts::model.eq(m));
            }
            let rows = q.load(c)?;
            let lines: Vec<PoolBySource> = rows
                .iter()
                .filter(|a| a.kind == "pool")
                .map(|pool| {
                    let factor = factors.get(&pool.model).copied().unwrap_or(1);
                    let sources: Vec<&store::AccountRow> = rows
                        .iter()
                        .filter(|a| {
                            a.kind == "source" && a.model == pool.model && a.period == pool.period
                        })
                        .collect();
                    let balances: Vec<SourceBalance> = sources
                        .iter()
                        .map(|a| SourceBalance {
                            id: a.id,
                            name: a.name.clone(),
                            leased: a.source_type.as_deref() == Some("leased"),
                            phase: a.phase.clone(),
                            debits_posted: a.debits_posted,
                            credits_posted: a.credits_posted,
                            debits_pending: a.debits_pending,
                        })
                        .collect();
                    let t = source_totals(&balances, factor);
                    let available = pool.credits_posted - pool.debits_posted - pool.debits_pending;
                    PoolBySource {
                        model: pool.model.clone(),
                        period: pool.period.clone(),
                        pool_account: pool.id,
                        phase: pool.phase.clone(),
                        h100_factor: factor,
                        sources: balances
                            .iter()
                            .zip(&t.per_source)
                            .map(|(b, (units, eq))| PoolSourceLine {
                                source_account: b.id,
                                name: names.then(|| b.name.clone()),
                                source_type: if b.leased {
                                    SourceType::Leased
                                } else {
                                    SourceType::Government
                                },
                                phase: b.phase.clone(),
                                supplied: *units,
                                supplied_h100_eq: *eq,
                                pending: b.debits_pending,
                            })
                            .collect(),
                        supplied: t.supplied.0,
                        supplied_h100_eq: t.supplied.1,
                        leased: t.leased.0,
                        leased_h100_eq: t.leased.1,
                        government: t.government.0,
                        government_h100_eq: t.government.1,
                        available,
                        available_h100_eq: h100_eq(available, factor).unwrap_or(H100Eq(i64::MAX)),
                    }
                })
                .collect();
            Ok::<_, LedgerError>(lines)
        })
        .await?;
    Ok(HttpResponse::Ok().json(lines))
}

type SupplierRow = (
    i64,
    Uuid,
    bool,
    Option<chrono::DateTime<Utc>>,
    String,
    chrono::DateTime<Utc>,
    String,
);

fn supplier_dto(
    (seq, consortium_id, supplying, ends_at, recorded_by, recorded_at, reason): SupplierRow,
) -> SupplierRecord {
    SupplierRecord {
        seq,
        consortium_id: ConsortiumId(consortium_id),
        supplying,
        ends_at,
        recorded_by,
        recorded_at,
        reason,
    }
}

/// How far from now an end of supplying may be dated: a contract's end, not a typo's.
const SUPPLY_END_WINDOW_DAYS: i64 = 366 * 20;

/// Records that a consortium starts or stops supplying GPUs, a stop possibly with the time
/// supplying ends (a correction of that time is a new record). Taken under the consortium's
/// exclusive supplier lock: a grant in flight finishes first, a grant after sees it, and
/// compares the end with its own time.
pub async fn record_supplier(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<RecordSupplier>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "record a GPU supplier")?;
    let req = body.into_inner();
    if req.reason.trim().is_empty() {
        return Err(LedgerError::validation(
            "reason",
            "say why (the contract, the end of it)",
        ));
    }
    let ends_at = req.ends_at.map(|t| t.trunc_subsecs(6));
    if let Some(end) = ends_at {
        if req.supplying {
            return Err(LedgerError::validation(
                "ends_at",
                "only the end of supplying carries a date: record it with `supplying: false`",
            ));
        }
        let window = chrono::Duration::days(SUPPLY_END_WINDOW_DAYS);
        let now = Utc::now();
        if end < now - window || end > now + window {
            return Err(LedgerError::validation(
                "ends_at",
                format!("within {SUPPLY_END_WINDOW_DAYS} days of now"),
            ));
        }
    }
    let actor = caller.actor();
    let record = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                store::lock_supplier_status(c, req.consortium_id.0, true)?;
                let now = Utc::now().trunc_subsecs(6);
                let row = diesel::insert_into(gpu_supplier_records::table)
                    .values((
                        gpu_supplier_records::consortium_id.eq(req.consortium_id.0),
                        gpu_supplier_records::supplying.eq(req.supplying),
                        gpu_supplier_records::ends_at.eq(ends_at),
                        gpu_supplier_records::recorded_by.eq(&actor.subject),
                        gpu_supplier_records::recorded_at.eq(now),
                        gpu_supplier_records::reason.eq(req.reason.trim()),
                    ))
                    .returning(SUPPLIER_COLUMNS)
                    .get_result(c)?;
                match ends_at {
                    // A dated end has its own event: `GpuSupplierRecorded` keeps its shape
                    // and its meaning (a stop without a date ends now).
                    Some(end) => tx
                        .publish(
                            c,
                            actor.clone(),
                            &GpuSupplyEndRecorded {
                                consortium_id: req.consortium_id,
                                ends_at: end,
                                reason: req.reason.trim().to_owned(),
                                recorded_at: now,
                            },
                        )
                        .map(drop)?,
                    None => tx
                        .publish(
                            c,
                            actor.clone(),
                            &GpuSupplierRecorded {
                                consortium_id: req.consortium_id,
                                supplying: req.supplying,
                                reason: req.reason.trim().to_owned(),
                                recorded_at: now,
                            },
                        )
                        .map(drop)?,
                }
                Ok::<_, LedgerError>(supplier_dto(row))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(record))
}

const SUPPLIER_COLUMNS: (
    gpu_supplier_records::seq,
    gpu_supplier_records::consortium_id,
    gpu_supplier_records::supplying,
    gpu_supplier_records::ends_at,
    gpu_supplier_records::recorded_by,
    gpu_supplier_records::recorded_at,
    gpu_supplier_records::reason,
) = (
    gpu_supplier_records::seq,
    gpu_supplier_records::consortium_id,
    gpu_supplier_records::supplying,
    gpu_supplier_records::ends_at,
    gpu_supplier_records::recorded_by,
    gpu_supplier_records::recorded_at,
    gpu_supplier_records::reason,
);

/// A consortium's supplier records, newest first (staff, or the consortium itself).
pub async fn supplier_history(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read supplier records",
    )?;
    let consortium = path.into_inner();
    caller.require_consortium(ConsortiumId(consortium), "read supplier records")?;
    let rows = state
        .db(move |c, _| {
            Ok::<_, LedgerError>(
                gpu_supplier_records::table
                    .filter(gpu_supplier_records::consortium_id.eq(consortium))
                    .order(gpu_supplier_records::seq.desc())
                    .select(SUPPLIER_COLUMNS)
                    .load(c)?,
            )
        })
        .await?;
    let out: Vec<SupplierRecord> = rows.into_iter().map(supplier_dto).collect();
    Ok(HttpResponse::Ok().json(out))
}
