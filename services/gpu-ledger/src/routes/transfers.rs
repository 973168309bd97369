use super::STAFF;
use crate::domain::ledger::{self, Outcome, TransferRequest};
use crate::error::LedgerError;
use crate::routes::accounts::visible;
use crate::schema::{ledger_accounts, ledger_transfers};
use crate::store::{self, kind_domain, AccountRow, TransferRow};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::dto::gpu::{
    CreateTransfers, NewTransfer, TransferKind, TransferResult, TransfersResult, MAX_BATCH,
};
use kaip_contracts::Role;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn request(t: &NewTransfer) -> TransferRequest {
    TransferRequest {
        id: t.id,
        debit_account: t.debit_account.unwrap_or(Uuid::nil()),
        credit_account: t.credit_account.unwrap_or(Uuid::nil()),
        amount: t.amount,
        kind: kind_domain(t.kind),
        pending_id: t.pending_id,
        timeout_at: t.timeout_at,
        linked: t.linked,
        code: t.code.clone(),
        reason: t.reason.clone(),
    }
}

/// Applies a batch in one database transaction and answers one result per transfer.
/// Officers and admins move capacity; an `expire` is the sweeper's, but staff may record
/// one too (it is refused before the timeout).
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<CreateTransfers>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "record GPU transfers")?;
    let batch = body.into_inner().transfers;
    if batch.is_empty() || batch.len() > MAX_BATCH {
        return Err(LedgerError::validation(
            "transfers",
            format!("1 to {MAX_BATCH} transfers per batch"),
        ));
    }
    let requests: Vec<TransferRequest> = batch.iter().map(request).collect();
    let actor = caller.actor();
    let applied = state
        .db(move |c, outbox| {
            store::retrying(true, || {
                outbox.transaction(c, |c, tx| {
                    let applied = store::apply_batch(c, tx, &requests, &actor)?;
                    // Staff may expire an offer's reservation by hand: announced as the
                    // sweeper's would be, as the staff member's decision. (The offer rows
                    // are locked after the pools here, the other way round from the
                    // sweeper: a collision is a deadlock that `retrying` runs again.)
                    crate::grants::announce_expired_offers(c, tx, &applied.created, &actor)?;
                    Ok::<_, LedgerError>(applied)
                })
            })
        })
        .await?;
    let results: Vec<TransferResult> = batch
        .iter()
        .zip(applied.results.iter())
        .enumerate()
        .map(|(index, (t, r))| match r {
            Ok(o) => TransferResult {
                index,
                id: t.id,
                status: o.as_str().to_owned(),
                code: None,
                message: None,
            },
            Err(e) => TransferResult {
                index,
                id: t.id,
                status: "refused".to_owned(),
                code: Some(e.code().to_owned()),
                message: Some(format!("transfers[{index}].{e}")),
            },
        })
        .collect();
    let created = applied
        .results
        .iter()
        .filter(|r| **r == Ok(Outcome::Created))
        .count();
    Ok(HttpResponse::Ok().json(TransfersResult { results, created }))
}

pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read transfers",
    )?;
    let id = path.into_inner();
    let (t, debit, credit) = state
        .db(move |c, _| {
            let t: TransferRow = ledger_transfers::table
                .find(id)
                .select(TransferRow::as_select())
                .first(c)
                .optional()?
                .ok_or(LedgerError::TransferNotFound(id))?;
            let debit = store::find_account(c, t.debit_account_id)?;
            let credit = store::find_account(c, t.credit_account_id)?;
            Ok::<_, LedgerError>((t, debit, credit))
        })
        .await?;
    if !visible(&caller, &debit) && !visible(&caller, &credit) {
        return Err(LedgerError::TransferNotFound(id));
    }
    Ok(HttpResponse::Ok().json(t.dto()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferQuery {
    /// Transfers debiting or crediting this account.
    account: Option<Uuid>,
    kind: Option<TransferKind>,
    code: Option<String>,
    /// Only transfers recorded at or after / before these times.
    from: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
    /// The `next_cursor` of the previous page (a sequence number).
    after: Option<String>,
}

#[derive(Serialize)]
struct TransferPage {
    items: Vec<kaip_contracts::dto::gpu::Transfer>,
    next_cursor: Option<String>,
}

/// Transfers in the order they were recorded, filtered and paged. A consortium user must
/// name one of its own accounts.
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<TransferQuery>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "list transfers",
    )?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(kaip_service::pagination::DEFAULT_LIMIT);
    if !(1..=kaip_service::pagination::MAX_LIMIT).contains(&limit) {
        return Err(LedgerError::validation(
            "limit",
            format!(
                "must be between 1 and {}",
                kaip_service::pagination::MAX_LIMIT
            ),
        ));
    }
    let after: Option<i64> = q
        .after
        .as_deref()
        .map(|a| {
            a.parse::<i64>().map_err(|_| {
                LedgerError::validation("after", "is not a cursor from a previous page")
            })
        })
        .transpose()?;
    if caller.role() == Role::Consortium && q.account.is_none() {
        return Err(LedgerError::validation(
            "account",
            "a consortium user lists the transfers of one of its own accounts",
        ));
    }
    let page = state
        .db(move |c, _| {
            if let Some(acct) = q.account {
                let row: AccountRow = store::find_account(c, acct)?;
                if !visible(&caller, &row) {
                    return Err(LedgerError::AccountNotFound(acct));
                }
            }
            let mut query = ledger_transfers::table
                .select(TransferRow::as_select())
                .order(ledger_transfers::seq.asc())
                .limit(limit + 1)
                .into_boxed();
            if let Some(a) = after {
                query = query.filter(ledger_transfers::seq.gt(a));
            }
            if let Some(acct) = q.account {
                query = query.filter(
                    ledger_transfers::debit_account_id
                        .eq(acct)
                        .or(ledger_transfers::credit_account_id.eq(acct)),
                );
            }
            if let Some(k) = q.kind {
                query = query.filter(ledger_transfers::kind.eq(kind_domain(k).as_str()));
            }
            if let Some(code) = q.code {
                query = query.filter(ledger_transfers::code.eq(code));
            }
            if let Some(from) = q.from {
                query = query.filter(ledger_transfers::created_at.ge(from));
            }
            if let Some(until) = q.until {
                query = query.filter(ledger_transfers::created_at.lt(until));
            }
            let mut rows: Vec<TransferRow> = query.load(c)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let next_cursor = more
                .then(|| rows.last().map(|r| r.seq.to_string()))
                .flatten();
            Ok::<_, LedgerError>(TransferPage {
                items: rows.iter().map(TransferRow::dto).collect(),
                next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The ledger's invariants, checked from the database: per model and period the accounts
/// sum to zero; every account within its limits; replaying every transfer in recorded
/// order gives each account's totals. Staff only; reads everything (an audit, not a query
/// for every page view).
#[derive(Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
pub struct Invariants {
    pub transfers: usize,
    pub accounts: usize,
    /// `model/period` -> (net posted, net pending): zero when balanced.
    pub ledger_sums: BTreeMap<String, (i64, i64)>,
    pub unbalanced_ledgers: Vec<String>,
    pub accounts_breaking_limits: Vec<Uuid>,
    pub accounts_differing_from_replay: Vec<Uuid>,
    /// Pending transfers on which the open reservations the sweeper reads
    /// (`ledger_open_pending`) and the replayed transfers disagree.
    pub open_pending_differing_from_replay: Vec<Uuid>,
    pub ok: bool,
}

pub async fn invariants(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, LedgerError> {
    caller.require(STAFF, "check the ledger's invariants")?;
    let report = state
        .db(|c, _| {
            // One snapshot for both reads: no batch commits between them.
            c.build_transaction()
                .repeatable_read()
                .read_only()
                .run(|c| {
                    let accounts: Vec<AccountRow> = ledger_accounts::table
                        .select(AccountRow::as_select())
                        .load(c)?;
                    let transfers: Vec<TransferRow> = ledger_transfers::table
                        .order(ledger_transfers::seq.asc())
                        .select(TransferRow::as_select())
                        .load(c)?;
                    let domain: Vec<ledger::Account> =
                        accounts.iter().map(AccountRow::domain).collect();
                    let replayed = ledger::replay(
                        transfers
                            .iter()
                            .map(TransferRow::domain)
                            .collect::<Vec<_>>()
                            .iter(),
                    );
                    let sums = ledger::ledger_sums(domain.iter());
                    let ledger_sums: BTreeMap<String, (i64, i64)> = sums
                        .iter()
                        .map(|(l, (p, q))| {
                            (
                                format!("{}/{}", l.model, l.period),
                                (
                                    i64::try_from(*p).unwrap_or(i64::MAX),
                                    i64::try_from(*q).unwrap_or(i64::MAX),
                                ),
                            )
                        })
                        .collect();
                    let unbalanced_ledgers: Vec<String> = ledger_sums
                        .iter()
                        .filter(|(_, s)| **s != (0, 0))
                        .map(|(k, _)| k.clone())
                        .collect();
                    let accounts_breaking_limits: Vec<Uuid> = domain
                        .iter()
                        .filter(|a| !a.within_limits())
                        .map(|a| a.id)
                        .collect();
                    let accounts_differing_from_replay: Vec<Uuid> = domain
                        .iter()
                        .filter(|a| replayed.get(&a.id).copied().unwrap_or_default() != a.balance)
                        .map(|a| a.id)
                        .collect();
                    let open_pending_differing_from_replay =
                        store::open_pending_differences(&transfers, &store::open_pending(c)?);
                    let ok = unbalanced_ledgers.is_empty()
                        && accounts_breaking_limits.is_empty()
                        && accounts_differing_from_replay.is_empty()
                        && open_pending_differing_from_replay.is_empty();
                    Ok::<_, diesel::result::Error>(Invariants {
                        transfers: transfers.len(),
                        accounts: accounts.len(),
                        ledger_sums,
                        unbalanced_ledgers,
                        accounts_breaking_limits,
                        accounts_differing_from_replay,
                        open_pending_differing_from_replay,
                        ok,
                    })
                })
                .map_err(|e| LedgerError::Common(CommonError::from(e)))
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}
