//! The ledger's rows, and the one way transfers are written: [`apply_batch`].
//!
//! Concurrency: a batch locks every account it touches (`SELECT ... ORDER BY id FOR
//! UPDATE`, so two lone batches lock in the same order), then reads
//! what the decision depends on (existing ids, whether a pending transfer is resolved,
//! supplier status) *after* the locks, lets [`ledger::apply`] decide, and writes the new
//! transfers, totals and history before committing. Two batches drawing on one pool are
//! therefore serialised on the pool's row; the CHECK constraints on `ledger_accounts`
//! repeat the limits, so even a bug in the domain could not commit an over-allocation.
//!
//! A transaction that takes locks more than once (an elimination, which locks its set and
//! then applies a batch that may lock more; two offers opening one team's grant accounts)
//! can still deadlock with another: PostgreSQL aborts one of them (40P01). The request
//! paths therefore run their transaction through [`retrying`], which repeats it a bounded
//! number of times on a deadlock or a serialization failure (and, where the caller says so,
//! on a unique violation: a racing writer of the same id); the consumer retries them too.

use crate::domain::ledger::{self, Account, AccountKind, Applied, Balance, Book, Kind, Ledger};
use crate::error::LedgerError;
use crate::schema::{
    gpu_model_factors, gpu_models, gpu_supplier_records, ledger_accounts, ledger_balance_history,
    ledger_transfers,
};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use kaip_bus::OutboxTx;
use kaip_contracts::dto::gpu as dto;
use kaip_contracts::events::{GpuTransfersRecorded, RecordedTransfer};
use kaip_contracts::{Actor, ConsortiumId};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = ledger_accounts)]
pub struct AccountRow {
    pub id: Uuid,
    pub model: String,
    pub period: String,
    pub kind: String,
    pub consortium_id: Option<Uuid>,
    pub source_type: Option<String>,
    pub phase: Option<String>,
    pub name: String,
    pub debits_must_not_exceed_credits: bool,
    pub credits_must_not_exceed_debits: bool,
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub reason: String,
}

pub fn account_kind_dto(k: AccountKind) -> dto::AccountKind {
    match k {
        AccountKind::Source => dto::AccountKind::Source,
        AccountKind::Pool => dto::AccountKind::Pool,
        AccountKind::Grant => dto::AccountKind::Grant,
        AccountKind::Usage => dto::AccountKind::Usage,
    }
}

pub fn account_kind_domain(k: dto::AccountKind) -> AccountKind {
    match k {
        dto::AccountKind::Source => AccountKind::Source,
        dto::AccountKind::Pool => AccountKind::Pool,
        dto::AccountKind::Grant => AccountKind::Grant,
        dto::AccountKind::Usage => AccountKind::Usage,
    }
}

pub fn kind_dto(k: Kind) -> dto::TransferKind {
    match k {
        Kind::Single => dto::TransferKind::Single,
        Kind::Pending => dto::TransferKind::Pending,
        Kind::Post => dto::TransferKind::Post,
        Kind::Void => dto::TransferKind::Void,
        Kind::Expire => dto::TransferKind::Expire,
    }
}

pub fn kind_domain(k: dto::TransferKind) -> Kind {
    match k {
        dto::TransferKind::Single => Kind::Single,
        dto::TransferKind::Pending => Kind::Pending,
        dto::TransferKind::Post => Kind::Post,
        dto::TransferKind::Void => Kind::Void,
        dto::TransferKind::Expire => Kind::Expire,
    }
}

pub fn source_type_str(s: dto::SourceType) -> &'static str {
    match s {
        dto::SourceType::Leased => "leased",
        dto::SourceType::Government => "government",
    }
}

fn source_type_dto(s: &str) -> Option<dto::SourceType> {
    match s {
        "leased" => Some(dto::SourceType::Leased),
        "government" => Some(dto::SourceType::Government),
        _ => None,
    }
}

impl AccountRow {
    /// The row's kind; the table's CHECK constraint admits no other.
    pub fn kind(&self) -> AccountKind {
        AccountKind::parse(&self.kind).unwrap_or(AccountKind::Usage)
    }

    pub fn balance(&self) -> Balance {
        Balance {
            debits_pending: self.debits_pending,
            debits_posted: self.debits_posted,
            credits_pending: self.credits_pending,
            credits_posted: self.credits_posted,
        }
    }

    pub fn domain(&self) -> Account {
        Account {
            id: self.id,
            ledger: Ledger {
                model: self.model.clone(),
                period: self.period.clone(),
            },
            kind: self.kind(),
            consortium: self.consortium_id,
            debits_must_not_exceed_credits: self.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: self.credits_must_not_exceed_debits,
            balance: self.balance(),
        }
    }

    pub fn dto(&self) -> dto::Account {
        dto::Account {
            id: self.id,
            model: self.model.clone(),
            period: self.period.clone(),
            kind: account_kind_dto(self.kind()),
            consortium_id: self.consortium_id.map(ConsortiumId),
            source_type: self.source_type.as_deref().and_then(source_type_dto),
            phase: self.phase.clone(),
            name: self.name.clone(),
            debits_must_not_exceed_credits: self.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: self.credits_must_not_exceed_debits,
            balance: balance_dto(self.balance()),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            reason: self.reason.clone(),
        }
    }
}

pub fn balance_dto(b: Balance) -> dto::Balance {
    dto::Balance {
        debits_pending: b.debits_pending,
        debits_posted: b.debits_posted,
        credits_pending: b.credits_pending,
        credits_posted: b.credits_posted,
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = ledger_transfers)]
pub struct TransferRow {
    pub seq: i64,
    pub id: Uuid,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub amount: i64,
    pub kind: String,
    pub pending_id: Option<Uuid>,
    pub timeout_at: Option<DateTime<Utc>>,
    pub linked: bool,
    pub code: String,
    pub reason: String,
    pub created_by: String,
    pub created_role: String,
    pub created_at: DateTime<Utc>,
}

impl TransferRow {
    pub fn kind(&self) -> Kind {
        Kind::parse(&self.kind).unwrap_or(Kind::Single)
    }

    pub fn domain(&self) -> ledger::Transfer {
        ledger::Transfer {
            id: self.id,
            debit_account: self.debit_account_id,
            credit_account: self.credit_account_id,
            amount: self.amount,
            kind: self.kind(),
            pending_id: self.pending_id,
            timeout_at: self.timeout_at,
            linked: self.linked,
            code: self.code.clone(),
            reason: self.reason.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
        }
    }

    pub fn dto(&self) -> dto::Transfer {
        dto::Transfer {
            seq: self.seq,
            id: self.id,
            debit_account: self.debit_account_id,
            credit_account: self.credit_account_id,
            amount: self.amount,
            kind: kind_dto(self.kind()),
            pending_id: self.pending_id,
            timeout_at: self.timeout_at,
            linked: self.linked,
            code: self.code.clone(),
            reason: self.reason.clone(),
            created_by: self.created_by.clone(),
            created_role: self.created_role.clone(),
            created_at: self.created_at,
        }
    }
}

#[derive(QueryableByName)]
struct MaxSeq {
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = ledger_balance_history)]
struct HistoryRow {
    account_id: Uuid,
    transfer_seq: i64,
    at: DateTime<Utc>,
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
}

/// Rows per INSERT statement: PostgreSQL allows 65,535 bind parameters per statement.
const INSERT_CHUNK: usize = 4000;

/// The advisory-lock class of "a consortium's supplier status": grants take it shared,
/// recording a status change takes it exclusively, so a grant never slips past a supplier
/// record committed beside it.
const SUPPLIER_LOCK_CLASS: i32 = 0x6770_7531;
const TEAM_LOCK_CLASS: i32 = 0x6770_7533;

/// Serialises a team's offers, acceptances and elimination (a transaction-scoped lock, taken
/// before any row lock): an offer or acceptance sees an elimination that committed before it,
/// and an elimination sees every offer and grant account committed before it.
pub fn lock_team(conn: &mut PgConnection, team: Uuid) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<Integer, _>(TEAM_LOCK_CLASS)
        .bind::<Integer, _>(supplier_lock_key(team))
        .execute(conn)
        .map(drop)
}

/// A 32-bit key for a consortium's supplier lock (collisions only serialise more).
pub fn supplier_lock_key(consortium: Uuid) -> i32 {
    let v = consortium.as_u128();
    ((v as u32) ^ ((v >> 32) as u32) ^ ((v >> 64) as u32) ^ ((v >> 96) as u32)) as i32
}

pub fn lock_supplier_status(
    conn: &mut PgConnection,
    consortium: Uuid,
    exclusive: bool,
) -> QueryResult<()> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock($1, $2)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1, $2)"
    };
    diesel::sql_query(sql)
        .bind::<Integer, _>(SUPPLIER_LOCK_CLASS)
        .bind::<Integer, _>(supplier_lock_key(consortium))
        .execute(conn)
        .map(drop)
}

/// Takes the shared supplier lock of every consortium in `teams` with one statement (a
/// batch granting to 64 teams made 64 round trips, each under the pool's row lock), in key
/// order, as [`lock_supplier_status`] would one by one.
pub fn lock_suppliers_shared(conn: &mut PgConnection, teams: &[Uuid]) -> QueryResult<()> {
    if teams.is_empty() {
        return Ok(());
    }
    let keys: Vec<i32> = teams
        .iter()
        .map(|t| supplier_lock_key(*t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    diesel::sql_query(
        "SELECT count(pg_advisory_xact_lock_shared($1, k)) \
           FROM (SELECT k FROM unnest($2::int4[]) AS k ORDER BY k) AS keys",
    )
    .bind::<Integer, _>(SUPPLIER_LOCK_CLASS)
    .bind::<Array<Integer>, _>(keys)
    .execute(conn)
    .map(drop)
}

/// The supplier status of the consortia among `candidates` whose latest record (by `seq`:
/// a correction is a later record) says they supply, or that their supplying ends at a
/// recorded time. The caller compares it with the time of its grant (see
/// [`ledger::Supply::refuses_grant_at`]), under the consortia's supplier locks.
pub fn current_suppliers(
    conn: &mut PgConnection,
    candidates: &[Uuid],
) -> QueryResult<HashMap<Uuid, ledger::Supply>> {
    if candidates.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, bool, Option<DateTime<Utc>>)> = gpu_supplier_records::table
        .filter(gpu_supplier_records::consortium_id.eq_any(candidates))
        .order((
            gpu_supplier_records::consortium_id,
            gpu_supplier_records::seq.desc(),
        ))
        .distinct_on(gpu_supplier_records::consortium_id)
        .select((
            gpu_supplier_records::consortium_id,
            gpu_supplier_records::supplying,
            gpu_supplier_records::ends_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(c, supplying, ends_at)| match (supplying, ends_at) {
            (true, _) => Some((c, ledger::Supply::Ongoing)),
            (false, Some(end)) => Some((c, ledger::Supply::EndsAt(end))),
            // Ended when recorded (a record without a date, as before dates existed).
            (false, None) => None,
        })
        .collect())
}

/// Applies a batch inside the caller's transaction (see the module's notes on locking) and
/// announces what it created in `GpuTransfersRecorded` events (see [`announcements`]). Refused transfers change
/// nothing and are only reported in the result.
pub fn apply_batch(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    requests: &[ledger::TransferRequest],
    actor: &Actor,
) -> Result<Applied, LedgerError> {
    // PostgreSQL keeps microseconds: a repeat must compare equal to what was stored.
    let requests: Vec<ledger::TransferRequest> = requests
        .iter()
        .map(|r| ledger::TransferRequest {
            timeout_at: r.timeout_at.map(|t| t.trunc_subsecs(6)),
            ..r.clone()
        })
        .collect();
    let mut book = Book::default();
    // 1. The pending transfers named (immutable rows: safe to read before the locks).
    let pending_ids: Vec<Uuid> = requests.iter().filter_map(|r| r.pending_id).collect();
    let pendings: Vec<TransferRow> = if pending_ids.is_empty() {
        Vec::new()
    } else {
        ledger_transfers::table
            .filter(ledger_transfers::id.eq_any(&pending_ids))
            .select(TransferRow::as_select())
            .load(conn)?
    };
    // 2. Lock every account involved, in id order.
    let mut account_ids: BTreeSet<Uuid> = BTreeSet::new();
    for r in &requests {
        for id in [r.debit_account, r.credit_account] {
            if !id.is_nil() {
                account_ids.insert(id);
            }
        }
    }
    for p in &pendings {
        account_ids.insert(p.debit_account_id);
        account_ids.insert(p.credit_account_id);
    }
    let ids: Vec<Uuid> = account_ids.into_iter().collect();
    let accounts: Vec<AccountRow> = ledger_accounts::table
        .filter(ledger_accounts::id.eq_any(&ids))
        .order(ledger_accounts::id.asc())
        .for_update()
        .select(AccountRow::as_select())
        .load(conn)?;
    let grant_teams: Vec<Uuid> = accounts
        .iter()
        .filter(|a| a.kind() == AccountKind::Grant)
        .filter_map(|a| a.consortium_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    lock_suppliers_shared(conn, &grant_teams)?;
    // 3. Under the locks: what exists, what is resolved, who supplies.
    let batch_ids: Vec<Uuid> = requests.iter().map(|r| r.id).collect();
    let existing: Vec<TransferRow> = ledger_transfers::table
        .filter(ledger_transfers::id.eq_any(&batch_ids))
        .select(TransferRow::as_select())
        .load(conn)?;
    let resolved: Vec<(Option<Uuid>, String)> = if pending_ids.is_empty() {
        Vec::new()
    } else {
        ledger_transfers::table
            .filter(ledger_transfers::pending_id.eq_any(&pending_ids))
            .select((ledger_transfers::pending_id, ledger_transfers::kind))
            .load(conn)?
    };
    book.suppliers = current_suppliers(conn, &grant_teams)?;
    for a in &accounts {
        book.accounts.insert(a.id, a.domain());
    }
    for t in pendings.iter().chain(existing.iter()) {
        book.transfers.insert(t.id, t.domain());
    }
    for (p, k) in resolved {
        if let (Some(p), Some(k)) = (p, Kind::parse(&k)) {
            book.resolved.insert(p, k);
        }
    }
    let models: HashMap<Uuid, (String, String)> = accounts
        .iter()
        .map(|a| (a.id, (a.model.clone(), a.period.clone())))
        .collect();

    // 4. Decide, at the database's time under the locks, not a replica's clock: a grant's
    // time sets the GPU-hours it counts and is compared with a reclaim's from another replica.
    let now: DateTime<Utc> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
        "clock_timestamp()",
    ))
    .get_result(conn)?;
    let applied = ledger::apply(&mut book, &requests, now, &actor.subject);
    if applied.created.is_empty() {
        return Ok(applied);
    }

    // 5. Write: transfers, totals, history, the event.
    let role = actor.role.as_str();
    // One statement from arrays, whatever the batch's size: a VALUES list of 1,000 rows is
    // 13,000 bind parameters to parse and plan, under the pool's row lock.
    let created = &applied.created;
    let last_seq: Option<i64> = diesel::sql_query(
        "WITH ins AS (INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, \
             amount, kind, pending_id, timeout_at, linked, code, reason, created_by, \
             created_role, created_at) \
           SELECT v.id, v.debit, v.credit, v.amount, v.kind, v.pending_id, v.timeout_at, \
                  v.linked, v.code, v.reason, v.created_by, $12, v.created_at \
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], \
                         $6::uuid[], $7::timestamptz[], $8::bool[], $9::text[], $10::text[], \
                         $11::text[], $13::timestamptz[]) WITH ORDINALITY \
                  AS v(id, debit, credit, amount, kind, pending_id, timeout_at, linked, code, \
                       reason, created_by, created_at, ord) \
            ORDER BY v.ord \
           RETURNING seq) \
         SELECT max(seq) AS seq FROM ins",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(created.iter().map(|t| t.id).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Uuid>, _>(
        created.iter().map(|t| t.debit_account).collect::<Vec<_>>(),
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(
        created.iter().map(|t| t.credit_account).collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(created.iter().map(|t| t.amount).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(created.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(
        created.iter().map(|t| t.pending_id).collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(
        created.iter().map(|t| t.timeout_at).collect::<Vec<_>>(),
    )
    .bind::<Array<Bool>, _>(created.iter().map(|t| t.linked).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(created.iter().map(|t| t.code.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        created
            .iter()
            .map(|t| t.reason.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        created
            .iter()
            .map(|t| t.created_by.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Text, _>(role)
    .bind::<Array<Timestamptz>, _>(created.iter().map(|t| t.created_at).collect::<Vec<_>>())
    .get_result::<MaxSeq>(conn)?
    .seq;
    let last_seq = last_seq.unwrap_or(0);
    let touched: Vec<&Account> = applied
        .touched
        .iter()
        .filter_map(|id| book.accounts.get(id))
        .collect();
    let col = |f: fn(&Balance) -> i64| touched.iter().map(|a| f(&a.balance)).collect::<Vec<i64>>();
    diesel::sql_query(
        "UPDATE ledger_accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, \
         credits_pending = v.cp, credits_posted = v.cpo \
         FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) AS v(id, dp, dpo, cp, cpo) \
         WHERE a.id = v.id",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(touched.iter().map(|a| a.id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(col(|b| b.debits_pending))
    .bind::<Array<BigInt>, _>(col(|b| b.debits_posted))
    .bind::<Array<BigInt>, _>(col(|b| b.credits_pending))
    .bind::<Array<BigInt>, _>(col(|b| b.credits_posted))
    .execute(conn)?;
    let history: Vec<HistoryRow> = touched
        .iter()
        .map(|a| HistoryRow {
            account_id: a.id,
            transfer_seq: last_seq,
            at: now,
            debits_pending: a.balance.debits_pending,
            debits_posted: a.balance.debits_posted,
            credits_pending: a.balance.credits_pending,
            credits_posted: a.balance.credits_posted,
        })
        .collect();
    for chunk in history.chunks(INSERT_CHUNK) {
        diesel::insert_into(ledger_balance_history::table)
            .values(chunk)
            .execute(conn)?;
    }
    let recorded: Vec<RecordedTransfer> = applied
        .created
        .iter()
        .map(|t| {
            let (model, period) = models.get(&t.debit_account).cloned().unwrap_or_default();
            RecordedTransfer {
                id: t.id,
                kind: kind_dto(t.kind),
                debit_account: t.debit_account,
                credit_account: t.credit_account,
                amount: t.amount,
                model,
                period,
                pending_id: t.pending_id,
                code: t.code.clone(),
            }
        })
        .collect();
    let events = announcements(Uuid::now_v7(), recorded, now, EVENT_TRANSFER_BYTES)?;
    for event in &events {
        tx.publish(conn, actor.clone(), event)?;
    }
    Ok(applied)
}

/// The most bytes of transfers (as JSON) one `GpuTransfersRecorded` carries: a quarter of
/// Kafka's default 1,000,000-byte message limit, leaving room for the envelope and headers.
pub const EVENT_TRANSFER_BYTES: usize = 250_000;

/// Splits what a batch created into its announcements: grouped by ledger (model, period),
/// each group in creation order, cut into events of at most `max_bytes` of transfers (one
/// transfer larger than that still gets an event of its own). Keyed by the ledger, so order
/// per ledger, and so per account, is kept on the broker.
pub fn announcements(
    batch_id: Uuid,
    transfers: Vec<RecordedTransfer>,
    recorded_at: chrono::DateTime<Utc>,
    max_bytes: usize,
) -> Result<Vec<GpuTransfersRecorded>, LedgerError> {
    // Ledgers in order of their first transfer; transfers in order within each.
    let mut ledgers: Vec<(Uuid, Vec<RecordedTransfer>)> = Vec::new();
    for t in transfers {
        let key = kaip_contracts::events::ledger_key(&t.model, &t.period);
        match ledgers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ts)) => ts.push(t),
            None => ledgers.push((key, vec![t])),
        }
    }
    let mut chunks: Vec<(Uuid, Vec<RecordedTransfer>)> = Vec::new();
    for (key, ts) in ledgers {
        let mut current: Vec<RecordedTransfer> = Vec::new();
        let mut bytes = 0usize;
        for t in ts {
            let size = serde_json::to_vec(&t)
                .map_err(|e| LedgerError::Common(kaip_service::CommonError::Internal(e.into())))?
                .len()
                + 1;
            if !current.is_empty() && bytes + size > max_bytes {
                chunks.push((key, std::mem::take(&mut current)));
                bytes = 0;
            }
            bytes += size;
            current.push(t);
        }
        if !current.is_empty() {
            chunks.push((key, current));
        }
    }
    let parts = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(i, (ledger_key, transfers))| GpuTransfersRecorded {
            batch_id,
            ledger_key,
            part: u32::try_from(i + 1).unwrap_or(u32::MAX),
            parts,
            transfers,
            recorded_at,
        })
        .collect())
}

pub use kaip_service::retry::{is_unique_violation, retrying};

/// The open reservations as `ledger_open_pending` holds them: pending transfer and timeout.
pub fn open_pending(conn: &mut PgConnection) -> QueryResult<Vec<(Uuid, Option<DateTime<Utc>>)>> {
    use crate::schema::ledger_open_pending as o;
    o::table.select((o::pending_id, o::timeout_at)).load(conn)
}

/// The pending transfers on which `open` (see [`open_pending`]) and the transfers disagree:
/// replayed, a reservation is open when no post, void or expiry names it, and it keeps its
/// timeout. Each differing pending id once, in order (one missing, one held though resolved
/// or unknown, or one with another timeout).
pub fn open_pending_differences(
    transfers: &[TransferRow],
    open: &[(Uuid, Option<DateTime<Utc>>)],
) -> Vec<Uuid> {
    let resolved: BTreeSet<Uuid> = transfers.iter().filter_map(|t| t.pending_id).collect();
    let want: HashMap<Uuid, Option<DateTime<Utc>>> = transfers
        .iter()
        .filter(|t| t.kind() == Kind::Pending && !resolved.contains(&t.id))
        .map(|t| (t.id, t.timeout_at))
        .collect();
    let held: HashMap<Uuid, Option<DateTime<Utc>>> = open.iter().copied().collect();
    let mut differing: BTreeSet<Uuid> = want
        .iter()
        .filter(|(id, timeout)| held.get(id) != Some(timeout))
        .map(|(id, _)| *id)
        .collect();
    differing.extend(held.keys().filter(|id| !want.contains_key(id)));
    differing.into_iter().collect()
}

pub fn find_account(conn: &mut PgConnection, id: Uuid) -> Result<AccountRow, LedgerError> {
    ledger_accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(LedgerError::AccountNotFound(id))
}

/// The current H100-equivalence factor of every model.
pub fn factors(conn: &mut PgConnection) -> QueryResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = gpu_model_factors::table
        .order((gpu_model_factors::model, gpu_model_factors::seq.desc()))
        .distinct_on(gpu_model_factors::model)
        .select((gpu_model_factors::model, gpu_model_factors::h100_factor))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Every model with its current factor and the record that set it.
pub fn models(conn: &mut PgConnection) -> QueryResult<Vec<dto::GpuModel>> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, String, i64, String, DateTime<Utc>, String)> = gpu_models::table
        .inner_join(gpu_model_factors::table)
        .order((gpu_models::code, gpu_model_factors::seq.desc()))
        .distinct_on(gpu_models::code)
        .select((
            gpu_models::code,
            gpu_models::name,
            gpu_model_factors::h100_factor,
            gpu_model_factors::recorded_by,
            gpu_model_factors::recorded_at,
            gpu_model_factors::reason,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(code, name, h100_factor, recorded_by, recorded_at, reason)| dto::GpuModel {
                code,
                name,
                h100_factor,
                recorded_by,
                recorded_at,
                reason,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaip_contracts::dto::gpu::TransferKind;

    fn recorded(model: &str, period: &str, pending_id: Option<Uuid>) -> RecordedTransfer {
        RecordedTransfer {
            id: Uuid::now_v7(),
            kind: TransferKind::Pending,
            debit_account: Uuid::now_v7(),
            credit_account: Uuid::now_v7(),
            amount: i64::MAX,
            model: model.into(),
            period: period.into(),
            pending_id,
            code: "c".repeat(64),
        }
    }

    #[test]
    fn a_full_batch_is_announced_in_events_under_the_broker_limit_keyed_by_ledger() {
        let now = Utc::now();
        let batch = Uuid::now_v7();
        let mut ts: Vec<RecordedTransfer> = (0..8_190)
            .map(|i| {
                if i % 3 == 0 {
                    recorded("B200", "2026H2", Some(Uuid::now_v7()))
                } else {
                    recorded("H100", "2026H1", Some(Uuid::now_v7()))
                }
            })
            .collect();
        ts[0].pending_id = None;
        let events = announcements(batch, ts.clone(), now, EVENT_TRANSFER_BYTES).unwrap();
        assert!(events.len() > 2, "{} events", events.len());
        let parts = events.len() as u32;
        for (i, e) in events.iter().enumerate() {
            let env =
                kaip_contracts::EventEnvelope::wrap("gpu-ledger", Actor::system("gpu-ledger"), e)
                    .unwrap();
            let bytes = serde_json::to_vec(&env).unwrap().len();
            assert!(bytes < 500_000, "event {i} is {bytes} bytes");
            assert_eq!((e.part, e.parts, e.batch_id), (i as u32 + 1, parts, batch));
            assert!(e
                .transfers
                .iter()
                .all(|t| kaip_contracts::events::ledger_key(&t.model, &t.period) == e.ledger_key));
            assert_eq!(env.aggregate_id, e.ledger_key);
        }
        // Every transfer once, and each ledger's transfers in their order.
        for (model, period) in [("B200", "2026H2"), ("H100", "2026H1")] {
            let want: Vec<Uuid> = ts
                .iter()
                .filter(|t| t.model == model && t.period == period)
                .map(|t| t.id)
                .collect();
            let got: Vec<Uuid> = events
                .iter()
                .flat_map(|e| e.transfers.iter())
                .filter(|t| t.model == model && t.period == period)
                .map(|t| t.id)
                .collect();
            assert_eq!(got, want, "{model} {period}");
        }
        assert_ne!(
            kaip_contracts::events::ledger_key("H100", "2026H1"),
            kaip_contracts::events::ledger_key("H1002", "026H1")
        );
    }
}
