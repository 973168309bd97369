use super::STAFF;
use crate::domain::catalogue::{check_model_code, check_period, h100_eq};
use crate::domain::ledger::AccountKind;
use crate::error::LedgerError;
use crate::schema::{gpu_models, ledger_accounts, ledger_balance_history};
use crate::store::{self, account_kind_domain, source_type_str, AccountRow};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::gpu::{BalanceAsOf, OpenAccount};
use kaip_contracts::events::GpuAccountOpened;
use kaip_contracts::{H100Eq, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, ValidJson};
use uuid::Uuid;

/// The first field in which a repeated `OpenAccount` differs from the account.
fn differing_field(a: &AccountRow, r: &OpenAccount) -> Option<&'static str> {
    if a.model != r.model {
        return Some("model");
    }
    if a.period != r.period {
        return Some("period");
    }
    if a.kind() != account_kind_domain(r.kind) {
        return Some("kind");
    }
    if a.consortium_id != r.consortium_id.map(|c| c.0) {
        return Some("consortium_id");
    }
    if a.source_type.as_deref() != r.source_type.map(source_type_str) {
        return Some("source_type");
    }
    if a.phase.as_deref() != r.phase.as_deref().map(str::trim) {
        return Some("phase");
    }
    if a.name != r.name.trim() {
        return Some("name");
    }
    if a.reason != r.reason.trim() {
        return Some("reason");
    }
    None
}

fn validate(r: &OpenAccount) -> Result<(), LedgerError> {
    if r.id.is_nil() {
        return Err(LedgerError::validation("id", "must not be the nil UUID"));
    }
    check_model_code(&r.model)?;
    check_period(&r.period)?;
    let kind = account_kind_domain(r.kind);
    let team = matches!(kind, AccountKind::Grant | AccountKind::Usage);
    match (team, r.consortium_id) {
        (true, None) => {
            return Err(LedgerError::validation(
                "consortium_id",
                "a grant or usage account belongs to a consortium",
            ))
        }
        (false, Some(_)) => {
            return Err(LedgerError::validation(
                "consortium_id",
                "only grant and usage accounts belong to a consortium",
            ))
        }
        _ => {}
    }
    match (kind == AccountKind::Source, r.source_type) {
        (true, None) => {
            return Err(LedgerError::validation(
                "source_type",
                "a source is `leased` or `government`",
            ))
        }
        (false, Some(_)) => {
            return Err(LedgerError::validation(
                "source_type",
                "only a source has a source type",
            ))
        }
        _ => {}
    }
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(LedgerError::validation("name", "1-200 characters"));
    }
    if let Some(p) = &r.phase {
        if p.trim().is_empty() || p.chars().count() > 64 {
            return Err(LedgerError::validation(
                "phase",
                "1-64 characters when given",
            ));
        }
    }
    if r.reason.trim().is_empty() {
        return Err(LedgerError::validation(
            "reason",
            "say why the account is opened",
        ));
    }
    Ok(())
}

/// Opens an account. Pools and grants may never give more than they hold (their debits
/// must not exceed their credits); sources and usage have no limit. One pool per model and
/// period; one grant and one usage account per team, model and period.
pub async fn open(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<OpenAccount>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "open ledger accounts")?;
    let req = body.into_inner();
    validate(&req)?;
    let actor = caller.actor();
    let (row, created) = state
        .db(move |c, outbox| {
            // A concurrent twin (same id) that wins the insert: the rerun finds it and
            // answers as a repeat.
            store::retrying(true, || outbox.transaction(c, |c, tx| {
                if let Some(existing) = ledger_accounts::table
                    .find(req.id)
                    .select(AccountRow::as_select())
                    .first(c)
                    .optional()?
                {
                    return match differing_field(&existing, &req) {
                        None => Ok((existing, false)),
                        Some(f) => Err(LedgerError::AccountExistsWithDifferentFields(f)),
                    };
                }
                let known: i64 = gpu_models::table
                    .find(&req.model)
                    .count()
                    .get_result(c)?;
                if known == 0 {
                    return Err(LedgerError::ModelNotFound(req.model.clone()));
                }
                let kind = account_kind_domain(req.kind);
                if matches!(kind, AccountKind::Pool | AccountKind::Grant | AccountKind::Usage) {
                    let mut q = ledger_accounts::table
                        .filter(ledger_accounts::model.eq(&req.model))
                        .filter(ledger_accounts::period.eq(&req.period))
                        .filter(ledger_accounts::kind.eq(kind.as_str()))
                        .select(ledger_accounts::id)
                        .into_boxed();
                    if let Some(team) = req.consortium_id {
                        q = q.filter(ledger_accounts::consortium_id.eq(team.0));
                    }
                    if let Some(other) = q.first::<Uuid>(c).optional()? {
                        if other == req.id {
                            // A twin with this id committed after the read above: answer
                            // as a repeat.
                            let existing = ledger_accounts::table
                                .find(req.id)
                                .select(AccountRow::as_select())
                                .first(c)?;
                            return match differing_field(&existing, &req) {
                                None => Ok((existing, false)),
                                Some(f) => Err(LedgerError::AccountExistsWithDifferentFields(f)),
                            };
                        }
                        return Err(LedgerError::AccountConflict(format!(
                            "kind: a {} account for {} {}{} exists already: {other}",
                            kind.as_str(),
                            req.model,
                            req.period,
                            req.consortium_id
                                .map(|t| format!(" and consortium {t}"))
                                .unwrap_or_default()
                        )));
                    }
                }
                let now = Utc::now().trunc_subsecs(6);
                let limited = matches!(kind, AccountKind::Pool | AccountKind::Grant);
                let row = diesel::insert_into(ledger_accounts::table)
                    .values((
                        ledger_accounts::id.eq(req.id),
                        ledger_accounts::model.eq(&req.model),
                        ledger_accounts::period.eq(&req.period),
                        ledger_accounts::kind.eq(kind.as_str()),
                        ledger_accounts::consortium_id.eq(req.consortium_id.map(|t| t.0)),
                        ledger_accounts::source_type.eq(req.source_type.map(source_type_str)),
                        ledger_accounts::phase.eq(req.phase.as_deref().map(str::trim)),
                        ledger_accounts::name.eq(req.name.trim()),
                        ledger_accounts::debits_must_not_exceed_credits.eq(limited),
                        ledger_accounts::credits_must_not_exceed_debits.eq(false),
                        ledger_accounts::created_by.eq(&actor.subject),
                        ledger_accounts::created_at.eq(now),
                        ledger_accounts::reason.eq(req.reason.trim()),
                    ))
                    .returning(AccountRow::as_returning())
                    .get_result(c)?;
                tx.publish(
                    c,
                    actor.clone(),
                    &GpuAccountOpened {
                        account_id: row.id,
                        model: row.model.clone(),
                        period: row.period.clone(),
                        kind: req.kind,
                        consortium_id: req.consortium_id,
                        name: row.name.clone(),
                        reason: row.reason.clone(),
                        opened_at: now,
                    },
                )?;
                Ok((row, true))
            }))
        })
        .await
        .map_err(|e| {
            // A concurrent twin won the unique index: say which rule, not "internal".
            if store::is_unique_violation(&e) {
                LedgerError::AccountConflict(
                    "kind: an account of this kind for this model, period (and team) was opened concurrently; read it and use it".into(),
                )
            } else {
                e
            }
        })?;
    Ok(if created {
        HttpResponse::Created().json(row.dto())
    } else {
        HttpResponse::Ok().json(row.dto())
    })
}

/// Reads an account: staff any, a consortium user only its own (others are "not found").
pub(crate) fn visible(caller: &Caller, a: &AccountRow) -> bool {
    match caller.role() {
        Role::Admin | Role::Officer => true,
        Role::Consortium => {
            a.consortium_id.is_some() && a.consortium_id == caller.0.consortium_id.map(|c| c.0)
        }
        _ => false,
    }
}

pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read ledger accounts",
    )?;
    let id = path.into_inner();
    let row = state.db(move |c, _| store::find_account(c, id)).await?;
    if !visible(&caller, &row) {
        return Err(LedgerError::AccountNotFound(id));
    }
    Ok(HttpResponse::Ok().json(row.dto()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    model: Option<String>,
    period: Option<String>,
    kind: Option<kaip_contracts::dto::gpu::AccountKind>,
    consortium_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

/// Lists accounts (by id); a consortium user sees only its own team's.
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "list ledger accounts",
    )?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.after.as_deref())?;
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
    let page = state
        .db(move |c, _| {
            let mut query = ledger_accounts::table
                .select(AccountRow::as_select())
                .order(ledger_accounts::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                query = query.filter(ledger_accounts::id.gt(after));
            }
            if let Some(m) = q.model {
                query = query.filter(ledger_accounts::model.eq(m));
            }
            if let Some(p) = q.period {
                query = query.filter(ledger_accounts::period.eq(p));
            }
            if let Some(k) = q.kind {
                query = query.filter(ledger_accounts::kind.eq(account_kind_domain(k).as_str()));
            }
            if let Some(t) = team {
                query = query.filter(ledger_accounts::consortium_id.eq(t));
            }
            let rows: Vec<AccountRow> = query.load(c)?;
            Ok::<_, LedgerError>(page.finish(rows, |a| a.id))
        })
        .await?;
    let out = kaip_contracts::dto::Page {
        items: page.items.iter().map(AccountRow::dto).collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
    };
    Ok(HttpResponse::Ok().json(out))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    as_of: Option<DateTime<Utc>>,
}

/// The account's totals as of a time (now by default): those after the last batch that
/// touched it at or before then.
pub async fn balance(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    query: web::Query<AsOfQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read balances",
    )?;
    let id = path.into_inner();
    let as_of = query.as_of.unwrap_or_else(Utc::now);
    let (row, hist, factor) = state
        .db(move |c, _| {
            let row = store::find_account(c, id)?;
            #[allow(clippy::type_complexity)]
            let hist: Option<(i64, i64, i64, i64)> = ledger_balance_history::table
                .filter(ledger_balance_history::account_id.eq(id))
                .filter(ledger_balance_history::at.le(as_of))
                .order((
                    ledger_balance_history::at.desc(),
                    ledger_balance_history::transfer_seq.desc(),
                ))
                .select((
                    ledger_balance_history::debits_pending,
                    ledger_balance_history::debits_posted,
                    ledger_balance_history::credits_pending,
                    ledger_balance_history::credits_posted,
                ))
                .first(c)
                .optional()?;
            let factor = store::factors(c)?.get(&row.model).copied().unwrap_or(1);
            Ok::<_, LedgerError>((row, hist, factor))
        })
        .await?;
    if !visible(&caller, &row) {
        return Err(LedgerError::AccountNotFound(id));
    }
    let (dp, dpo, cp, cpo) = hist.unwrap_or_default();
    let balance = kaip_contracts::dto::gpu::Balance {
        debits_pending: dp,
        debits_posted: dpo,
        credits_pending: cp,
        credits_posted: cpo,
    };
    let net = cpo - dpo;
    Ok(HttpResponse::Ok().json(BalanceAsOf {
        account_id: id,
        as_of,
        balance,
        net_posted: net,
        net_posted_h100_eq: h100_eq(net, factor).unwrap_or(H100Eq(i64::MAX)),
        h100_factor: factor,
    }))
}
