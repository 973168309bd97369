//! The double-entry core, modelled on TigerBeetle's data model.
//!
//! - Every movement of GPU capacity is a [`Transfer`] of whole GPUs from a debit account to
//!   a credit account of the same [`Ledger`] (one GPU model in one period). Each transfer
//!   adds its amount to one account's debits and another's credits, so for every ledger the
//!   accounts' balances sum to zero ([`ledger_sums`]).
//! - Transfers are immutable: posting or voiding a pending transfer is a new transfer that
//!   names it (`pending_id`); so is the expiry of one (an explicit [`Kind::Expire`] record
//!   made by the sweeper, so the ledger says when and by whom capacity came back).
//! - Ids are chosen by the client: repeating a transfer with the same fields answers
//!   [`Outcome::Exists`] (the original result); with different fields it is refused
//!   ([`TransferError::ExistsWithDifferentFields`], naming the first field that differs).
//! - A run of transfers flagged `linked` plus the next one is a chain: all of it applies or
//!   none of it does.
//! - Limits: an account flagged `debits_must_not_exceed_credits` (a pool) can never promise
//!   more than it holds: `debits_pending + debits_posted <= credits_posted`, pending debits
//!   included, so two offers can never reserve the same GPU.
//!
//! [`apply`] decides a whole batch against a [`Book`] (the accounts and transfers the batch
//! touches, as the store locked and loaded them) and records what it created; [`replay`]
//! recomputes balances from transfers alone.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use uuid::Uuid;

/// One GPU model in one period: transfers never cross ledgers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ledger {
    pub model: String,
    pub period: String,
}

/// What an account stands for. The kind does not change the arithmetic; it lets the rules
/// that are about grants (the supplier rule) find them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// Where capacity comes from (a lease, government-owned hardware): its debits are the
    /// capacity put into the programme. It has no limit and its balance is negative.
    Source,
    /// The national pool of one model and period: can never give more than it holds.
    Pool,
    /// A team's grant.
    Grant,
    /// GPU capacity consumed (usage reported by operators).
    Usage,
}

impl AccountKind {
    pub const ALL: [AccountKind; 4] = [
        AccountKind::Source,
        AccountKind::Pool,
        AccountKind::Grant,
        AccountKind::Usage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Source => "source",
            AccountKind::Pool => "pool",
            AccountKind::Grant => "grant",
            AccountKind::Usage => "usage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An account's four running totals, all whole GPUs and never negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Balance {
    pub debits_pending: i64,
    pub debits_posted: i64,
    pub credits_pending: i64,
    pub credits_posted: i64,
}

impl Balance {
    /// What a pool can still promise: held minus given minus reserved.
    pub fn available(&self) -> i128 {
        self.credits_posted as i128 - self.debits_posted as i128 - self.debits_pending as i128
    }

    /// Posted credits minus posted debits.
    pub fn net_posted(&self) -> i128 {
        self.credits_posted as i128 - self.debits_posted as i128
    }

    /// Pending credits minus pending debits.
    pub fn net_pending(&self) -> i128 {
        self.credits_pending as i128 - self.debits_pending as i128
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub ledger: Ledger,
    pub kind: AccountKind,
    /// The team a grant or usage account belongs to.
    pub consortium: Option<Uuid>,
    pub debits_must_not_exceed_credits: bool,
    pub credits_must_not_exceed_debits: bool,
    pub balance: Balance,
}

impl Account {
    /// Does this balance respect the account's own limits? (The store also has these as
    /// CHECK constraints: a bug here could not commit a breach.)
    pub fn within_limits(&self) -> bool {
        let b = &self.balance;
        let non_negative = b.debits_pending >= 0
            && b.debits_posted >= 0
            && b.credits_pending >= 0
            && b.credits_posted >= 0;
        let debits_ok = !self.debits_must_not_exceed_credits
            || (b.debits_pending as i128 + b.debits_posted as i128) <= b.credits_posted as i128;
        let credits_ok = !self.credits_must_not_exceed_debits
            || (b.credits_pending as i128 + b.credits_posted as i128) <= b.debits_posted as i128;
        non_negative && debits_ok && credits_ok
    }
}

/// The four kinds of transfer (TigerBeetle's flags, as one enum: they exclude each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Moves capacity at once.
    Single,
    /// Reserves capacity until posted, voided or expired (`timeout_at`, if any).
    Pending,
    /// Completes a pending transfer (all of it, or part: the rest is released).
    Post,
    /// Cancels a pending transfer before its timeout.
    Void,
    /// Records that a pending transfer timed out (only after `timeout_at`).
    Expire,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Single,
        Kind::Pending,
        Kind::Post,
        Kind::Void,
        Kind::Expire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Single => "single",
            Kind::Pending => "pending",
            Kind::Post => "post",
            Kind::Void => "void",
            Kind::Expire => "expire",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Post, void and expire resolve a pending transfer.
    pub fn resolves(self) -> bool {
        matches!(self, Kind::Post | Kind::Void | Kind::Expire)
    }
}

/// A transfer as a client asks for it. For post, void and expire the accounts may be left
/// nil and the amount 0: they are taken from the pending transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRequest {
    pub id: Uuid,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: i64,
    pub kind: Kind,
    pub pending_id: Option<Uuid>,
    pub timeout_at: Option<DateTime<Utc>>,
    /// Links this transfer to the next one in the batch: all or nothing.
    pub linked: bool,
    /// What the movement is (`capacity`, `offer`, `grant`, `usage`, `reclaim`, ...).
    pub code: String,
    /// Why: the ledger is a record the ministry defends on appeal.
    pub reason: String,
}

/// A transfer as recorded: the request with the accounts and amount resolved, when it was
/// applied and by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: Uuid,
    pub debit_account: Uuid,
    pub credit_account: Uuid,
    pub amount: i64,
    pub kind: Kind,
    pub pending_id: Option<Uuid>,
    pub timeout_at: Option<DateTime<Utc>>,
    pub linked: bool,
    pub code: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A transfer that applied, or was applied before with the same fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Exists,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Exists => "exists",
        }
    }
}

/// Why one transfer was refused. Each has a stable code (TigerBeetle's names where they
/// exist); a refused transfer changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    IdMustNotBeZero,
    ExistsWithDifferentFields(&'static str),
    ReasonRequired,
    InvalidCode,
    AmountMustBePositive,
    AccountsMustBeDifferent,
    PendingIdMustBeZero,
    PendingIdRequired,
    PendingIdMustBeDifferent,
    TimeoutReservedForPending,
    TimeoutInThePast,
    DebitAccountNotFound,
    CreditAccountNotFound,
    AccountsMustHaveTheSameLedger,
    /// The end of supplying when one is recorded (a grant is possible from then).
    SupplierCannotReceiveGrant(Option<DateTime<Utc>>),
    ExceedsCredits,
    ExceedsDebits,
    Overflow,
    PendingTransferNotFound,
    PendingTransferNotPending,
    PendingTransferHasDifferentDebitAccount,
    PendingTransferHasDifferentCreditAccount,
    PendingTransferHasDifferentAmount,
    ExceedsPendingTransferAmount,
    PendingTransferAlreadyPosted,
    PendingTransferAlreadyVoided,
    PendingTransferExpired,
    PendingTransferNotExpired,
    LinkedEventFailed,
    LinkedEventChainOpen,
}

impl TransferError {
    pub fn code(&self) -> &'static str {
        use TransferError::*;
        match self {
            IdMustNotBeZero => "ID_MUST_NOT_BE_ZERO",
            ExistsWithDifferentFields(_) => "EXISTS_WITH_DIFFERENT_FIELDS",
            ReasonRequired => "REASON_REQUIRED",
            InvalidCode => "INVALID_TRANSFER_CODE",
            AmountMustBePositive => "AMOUNT_MUST_BE_POSITIVE",
            AccountsMustBeDifferent => "ACCOUNTS_MUST_BE_DIFFERENT",
            PendingIdMustBeZero => "PENDING_ID_MUST_BE_ZERO",
            PendingIdRequired => "PENDING_ID_REQUIRED",
            PendingIdMustBeDifferent => "PENDING_ID_MUST_BE_DIFFERENT",
            TimeoutReservedForPending => "TIMEOUT_RESERVED_FOR_PENDING_TRANSFER",
            TimeoutInThePast => "TIMEOUT_IN_THE_PAST",
            DebitAccountNotFound => "DEBIT_ACCOUNT_NOT_FOUND",
            CreditAccountNotFound => "CREDIT_ACCOUNT_NOT_FOUND",
            AccountsMustHaveTheSameLedger => "ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER",
            SupplierCannotReceiveGrant(_) => "SUPPLIER_CANNOT_RECEIVE_GRANT",
            ExceedsCredits => "EXCEEDS_CREDITS",
            ExceedsDebits => "EXCEEDS_DEBITS",
            Overflow => "OVERFLOW",
            PendingTransferNotFound => "PENDING_TRANSFER_NOT_FOUND",
            PendingTransferNotPending => "PENDING_TRANSFER_NOT_PENDING",
            PendingTransferHasDifferentDebitAccount => {
                "PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT"
            }
            PendingTransferHasDifferentCreditAccount => {
                "PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT"
            }
            PendingTransferHasDifferentAmount => "PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT",
            ExceedsPendingTransferAmount => "EXCEEDS_PENDING_TRANSFER_AMOUNT",
            PendingTransferAlreadyPosted => "PENDING_TRANSFER_ALREADY_POSTED",
            PendingTransferAlreadyVoided => "PENDING_TRANSFER_ALREADY_VOIDED",
            PendingTransferExpired => "PENDING_TRANSFER_EXPIRED",
            PendingTransferNotExpired => "PENDING_TRANSFER_NOT_EXPIRED",
            LinkedEventFailed => "LINKED_EVENT_FAILED",
            LinkedEventChainOpen => "LINKED_EVENT_CHAIN_OPEN",
        }
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TransferError::*;
        let text = match self {
            IdMustNotBeZero => "id: must not be the nil UUID".to_owned(),
            ExistsWithDifferentFields(field) => format!(
                "id: a transfer with this id exists with a different `{field}`; a repeat must carry the same fields (choose a new id for a new transfer)"
            ),
            ReasonRequired => "reason: every transfer must say why".to_owned(),
            InvalidCode => "code: 1-32 lowercase letters, digits or `_`".to_owned(),
            AmountMustBePositive => "amount: must be a positive whole number of GPUs".to_owned(),
            AccountsMustBeDifferent => {
                "credit_account: must differ from debit_account".to_owned()
            }
            PendingIdMustBeZero => {
                "pending_id: only a post, void or expire names a pending transfer".to_owned()
            }
            PendingIdRequired => "pending_id: a post, void or expire must name the pending transfer".to_owned(),
            PendingIdMustBeDifferent => "pending_id: must differ from the transfer's own id".to_owned(),
            TimeoutReservedForPending => "timeout_at: only a pending transfer has a timeout".to_owned(),
            TimeoutInThePast => "timeout_at: must be in the future".to_owned(),
            DebitAccountNotFound => "debit_account: no such account".to_owned(),
            CreditAccountNotFound => "credit_account: no such account".to_owned(),
            AccountsMustHaveTheSameLedger => "credit_account: must be of the same GPU model and period as debit_account".to_owned(),
            SupplierCannotReceiveGrant(None) => "credit_account: the consortium is recorded as a GPU supplier to the programme and cannot receive a GPU grant while it supplies (rule: supplier-no-grant; no end of supplying is recorded)".to_owned(),
            SupplierCannotReceiveGrant(Some(end)) => format!("credit_account: the consortium is recorded as a GPU supplier to the programme and cannot receive a GPU grant while it supplies (rule: supplier-no-grant; supplying ends at {}, grants are possible from then)", end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            ExceedsCredits => "amount: the debit account cannot give more GPUs than it holds (rule: debits must not exceed credits, pending reservations included)".to_owned(),
            ExceedsDebits => "amount: the credit account cannot take more GPUs than it gave (rule: credits must not exceed debits)".to_owned(),
            Overflow => "amount: the account's totals would overflow".to_owned(),
            PendingTransferNotFound => "pending_id: no such transfer".to_owned(),
            PendingTransferNotPending => "pending_id: that transfer is not a pending transfer".to_owned(),
            PendingTransferHasDifferentDebitAccount => "debit_account: differs from the pending transfer's".to_owned(),
            PendingTransferHasDifferentCreditAccount => "credit_account: differs from the pending transfer's".to_owned(),
            PendingTransferHasDifferentAmount => "amount: a void or expiry releases the whole pending amount (give 0 or that amount)".to_owned(),
            ExceedsPendingTransferAmount => "amount: exceeds the pending transfer's amount".to_owned(),
            PendingTransferAlreadyPosted => "pending_id: that transfer is already posted".to_owned(),
            PendingTransferAlreadyVoided => "pending_id: that transfer is already voided".to_owned(),
            PendingTransferExpired => "pending_id: that transfer has expired".to_owned(),
            PendingTransferNotExpired => "pending_id: that transfer has not reached its timeout".to_owned(),
            LinkedEventFailed => "another transfer of its linked chain was refused, so none of the chain applied".to_owned(),
            LinkedEventChainOpen => "linked: the batch's last transfer is linked to nothing; close the chain".to_owned(),
        };
        f.write_str(&text)
    }
}

impl std::error::Error for TransferError {}

/// What [`apply`] may read and change: the accounts a batch names (the store holds their
/// rows locked), the existing transfers it refers to (those with the batch's ids and the
/// pending transfers it resolves), which of those pending transfers are already resolved,
/// and the consortia that currently supply GPUs.
#[derive(Clone, Debug, Default)]
pub struct Book {
    pub accounts: HashMap<Uuid, Account>,
    pub transfers: HashMap<Uuid, Transfer>,
    pub resolved: HashMap<Uuid, Kind>,
    pub suppliers: HashMap<Uuid, Supply>,
}

/// A consortium's supplier status as its latest record states it (consortia with no record,
/// or whose latest record ended supplying without a date, are not in [`Book::suppliers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supply {
    /// Supplying, no end recorded.
    Ongoing,
    /// Supplying until this time (recorded by the officer, possibly in the future).
    EndsAt(DateTime<Utc>),
}

impl Supply {
    /// Whether the consortium supplies at `at`: a grant at `at` is refused while it does,
    /// naming the end when one is recorded.
    pub fn refuses_grant_at(self, at: DateTime<Utc>) -> Option<TransferError> {
        match self {
            Supply::Ongoing => Some(TransferError::SupplierCannotReceiveGrant(None)),
            Supply::EndsAt(end) if at < end => {
                Some(TransferError::SupplierCannotReceiveGrant(Some(end)))
            }
            Supply::EndsAt(_) => None,
        }
    }
}

/// What a batch did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// One per request, in order.
    pub results: Vec<Result<Outcome, TransferError>>,
    /// The transfers to record, in order.
    pub created: Vec<Transfer>,
    /// The accounts whose balances changed.
    pub touched: BTreeSet<Uuid>,
}

enum Undo {
    Balance(Uuid, Balance),
    Transfer(Uuid),
    Resolved(Uuid),
}

/// Applies a batch, transfer by transfer, each chain all or nothing. Every transfer applied
/// is stamped `now` and `actor`. Refused transfers change nothing; see [`Applied`].
pub fn apply(
    book: &mut Book,
    batch: &[TransferRequest],
    now: DateTime<Utc>,
    actor: &str,
) -> Applied {
    let mut applied = Applied {
        results: Vec::with_capacity(batch.len()),
        ..Applied::default()
    };
    let mut start = 0;
    while start < batch.len() {
        // A chain: linked transfers up to and including the first unlinked one.
        let mut end = start;
        while end < batch.len() && batch[end].linked {
            end += 1;
        }
        if end == batch.len() {
            // Open chain: nothing of it applies.
            for i in start..batch.len() {
                applied.results.push(Err(if i + 1 == batch.len() {
                    TransferError::LinkedEventChainOpen
                } else {
                    TransferError::LinkedEventFailed
                }));
            }
            break;
        }
        let chain = &batch[start..=end];
        let mut undo = Vec::new();
        let created_before = applied.created.len();
        let mut results = Vec::with_capacity(chain.len());
        let mut failed = None;
        for (i, req) in chain.iter().enumerate() {
            match apply_one(book, req, now, actor, &mut undo, &mut applied.created) {
                Ok(o) => results.push(Ok(o)),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        match failed {
            None => {
                for u in &undo {
                    if let Undo::Balance(id, _) = u {
                        applied.touched.insert(*id);
                    }
                }
                applied.results.extend(results);
            }
            Some((at, error)) => {
                for u in undo.into_iter().rev() {
                    match u {
                        Undo::Balance(id, old) => {
                            if let Some(a) = book.accounts.get_mut(&id) {
                                a.balance = old;
                            }
                        }
                        Undo::Transfer(id) => {
                            book.transfers.remove(&id);
                        }
                        Undo::Resolved(id) => {
                            book.resolved.remove(&id);
                        }
                    }
                }
                applied.created.truncate(created_before);
                for i in 0..chain.len() {
                    applied.results.push(Err(if i == at {
                        error.clone()
                    } else {
                        TransferError::LinkedEventFailed
                    }));
                }
            }
        }
        start = end + 1;
    }
    applied
}

/// Is `code` a transfer code: 1-32 of `a-z`, `0-9`, `_`?
pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 32
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The first field in which a repeat differs from the recorded transfer. For post, void and
/// expire, nil accounts and a zero amount mean "as the pending transfer", as when it was
/// first applied.
fn differing_field(t: &Transfer, r: &TransferRequest) -> Option<&'static str> {
    let defaulted = r.kind.resolves();
    if t.kind != r.kind {
        return Some("kind");
    }
    if t.debit_account != r.debit_account && !(defaulted && r.debit_account.is_nil()) {
        return Some("debit_account");
    }
    if t.credit_account != r.credit_account && !(defaulted && r.credit_account.is_nil()) {
        return Some("credit_account");
    }
    if t.amount != r.amount && !(defaulted && r.amount == 0) {
        return Some("amount");
    }
    if t.pending_id != r.pending_id {
        return Some("pending_id");
    }
    if t.timeout_at != r.timeout_at {
        return Some("timeout_at");
    }
    if t.linked != r.linked {
        return Some("linked");
    }
    if t.code != r.code {
        return Some("code");
    }
    if t.reason != r.reason {
        return Some("reason");
    }
    None
}

fn set_balance(book: &mut Book, id: Uuid, new: Balance, undo: &mut Vec<Undo>) {
    if let Some(a) = book.accounts.get_mut(&id) {
        undo.push(Undo::Balance(id, a.balance));
        a.balance = new;
    }
}

fn apply_one(
    book: &mut Book,
    r: &TransferRequest,
    now: DateTime<Utc>,
    actor: &str,
    undo: &mut Vec<Undo>,
    created: &mut Vec<Transfer>,
) -> Result<Outcome, TransferError> {
    use TransferError as E;
    if r.id.is_nil() {
        return Err(E::IdMustNotBeZero);
    }
    if let Some(existing) = book.transfers.get(&r.id) {
        return match differing_field(existing, r) {
            None => Ok(Outcome::Exists),
            Some(field) => Err(E::ExistsWithDifferentFields(field)),
        };
    }
    if r.reason.trim().is_empty() {
        return Err(E::ReasonRequired);
    }
    if !valid_code(&r.code) {
        return Err(E::InvalidCode);
    }
    let transfer = match r.kind {
        Kind::Single | Kind::Pending => {
            if r.pending_id.is_some() {
                return Err(E::PendingIdMustBeZero);
            }
            if r.amount <= 0 {
                return Err(E::AmountMustBePositive);
            }
            if r.debit_account == r.credit_account {
                return Err(E::AccountsMustBeDifferent);
            }
            match (r.kind, r.timeout_at) {
                (Kind::Single, Some(_)) => return Err(E::TimeoutReservedForPending),
                (Kind::Pending, Some(t)) if t <= now => return Err(E::TimeoutInThePast),
                _ => {}
            }
            let debit = book
                .accounts
                .get(&r.debit_account)
                .ok_or(E::DebitAccountNotFound)?;
            let credit = book
                .accounts
                .get(&r.credit_account)
                .ok_or(E::CreditAccountNotFound)?;
            if debit.ledger != credit.ledger {
                return Err(E::AccountsMustHaveTheSameLedger);
            }
            check_supplier(book, credit, now)?;
            let (mut d, mut c) = (debit.balance, credit.balance);
            let add = |v: i64| v.checked_add(r.amount).ok_or(E::Overflow);
            if r.kind == Kind::Single {
                d.debits_posted = add(d.debits_posted)?;
                c.credits_posted = add(c.credits_posted)?;
            } else {
                d.debits_pending = add(d.debits_pending)?;
                c.credits_pending = add(c.credits_pending)?;
            }
            check_limits(debit, &d, credit, &c)?;
            set_balance(book, r.debit_account, d, undo);
            set_balance(book, r.credit_account, c, undo);
            Transfer {
                id: r.id,
                debit_account: r.debit_account,
                credit_account: r.credit_account,
                amount: r.amount,
                kind: r.kind,
                pending_id: None,
                timeout_at: r.timeout_at,
                linked: r.linked,
                code: r.code.clone(),
                reason: r.reason.clone(),
                created_by: actor.to_owned(),
                created_at: now,
            }
        }
        Kind::Post | Kind::Void | Kind::Expire => {
            let pending_id = r.pending_id.ok_or(E::PendingIdRequired)?;
            if pending_id == r.id {
                return Err(E::PendingIdMustBeDifferent);
            }
            if r.timeout_at.is_some() {
                return Err(E::TimeoutReservedForPending);
            }
            if r.amount < 0 {
                return Err(E::AmountMustBePositive);
            }
            let p = book
                .transfers
                .get(&pending_id)
                .ok_or(E::PendingTransferNotFound)?;
            if p.kind != Kind::Pending {
                return Err(E::PendingTransferNotPending);
            }
            if !r.debit_account.is_nil() && r.debit_account != p.debit_account {
                return Err(E::PendingTransferHasDifferentDebitAccount);
            }
            if !r.credit_account.is_nil() && r.credit_account != p.credit_account {
                return Err(E::PendingTransferHasDifferentCreditAccount);
            }
            match book.resolved.get(&pending_id) {
                Some(Kind::Post) => return Err(E::PendingTransferAlreadyPosted),
                Some(Kind::Void) => return Err(E::PendingTransferAlreadyVoided),
                Some(_) => return Err(E::PendingTransferExpired),
                None => {}
            }
            let expired = p.timeout_at.is_some_and(|t| t <= now);
            match r.kind {
                Kind::Expire if !expired => return Err(E::PendingTransferNotExpired),
                Kind::Post | Kind::Void if expired => return Err(E::PendingTransferExpired),
                _ => {}
            }
            let amount = match r.kind {
                Kind::Post if r.amount > p.amount => return Err(E::ExceedsPendingTransferAmount),
                Kind::Post if r.amount == 0 => p.amount,
                Kind::Post => r.amount,
                _ if r.amount != 0 && r.amount != p.amount => {
                    return Err(E::PendingTransferHasDifferentAmount)
                }
                _ => p.amount,
            };
            let (pending_amount, debit_id, credit_id) =
                (p.amount, p.debit_account, p.credit_account);
            let debit = book
                .accounts
                .get(&debit_id)
                .ok_or(E::DebitAccountNotFound)?;
            let credit = book
                .accounts
                .get(&credit_id)
                .ok_or(E::CreditAccountNotFound)?;
            if r.kind == Kind::Post {
                check_supplier(book, credit, now)?;
            }
            let (mut d, mut c) = (debit.balance, credit.balance);
            d.debits_pending -= pending_amount;
            c.credits_pending -= pending_amount;
            if r.kind == Kind::Post {
                d.debits_posted = d.debits_posted.checked_add(amount).ok_or(E::Overflow)?;
                c.credits_posted = c.credits_posted.checked_add(amount).ok_or(E::Overflow)?;
            }
            check_limits(debit, &d, credit, &c)?;
            set_balance(book, debit_id, d, undo);
            set_balance(book, credit_id, c, undo);
            book.resolved.insert(pending_id, r.kind);
            undo.push(Undo::Resolved(pending_id));
            Transfer {
                id: r.id,
                debit_account: debit_id,
                credit_account: credit_id,
                amount,
                kind: r.kind,
                pending_id: Some(pending_id),
                timeout_at: None,
                linked: r.linked,
                code: r.code.clone(),
                reason: r.reason.clone(),
                created_by: actor.to_owned(),
                created_at: now,
            }
        }
    };
    book.transfers.insert(transfer.id, transfer.clone());
    undo.push(Undo::Transfer(transfer.id));
    created.push(transfer);
    Ok(Outcome::Created)
}

/// The supplier rule, compared against `now`: the time of the grant (the batch's time,
/// taken under the supplier locks).
fn check_supplier(book: &Book, credit: &Account, now: DateTime<Utc>) -> Result<(), TransferError> {
    match (credit.kind, credit.consortium) {
        (AccountKind::Grant, Some(c)) => match book.suppliers.get(&c) {
            Some(s) => s.refuses_grant_at(now).map_or(Ok(()), Err),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn check_limits(
    debit: &Account,
    d: &Balance,
    credit: &Account,
    c: &Balance,
) -> Result<(), TransferError> {
    if debit.debits_must_not_exceed_credits
        && d.debits_pending as i128 + d.debits_posted as i128 > d.credits_posted as i128
    {
        return Err(TransferError::ExceedsCredits);
    }
    if credit.credits_must_not_exceed_debits
        && c.credits_pending as i128 + c.credits_posted as i128 > c.debits_posted as i128
    {
        return Err(TransferError::ExceedsDebits);
    }
    Ok(())
}

/// Balances recomputed from transfers alone, in the order they were recorded: what the
/// accounts' running totals must equal.
pub fn replay<'a>(transfers: impl IntoIterator<Item = &'a Transfer>) -> HashMap<Uuid, Balance> {
    let mut balances: HashMap<Uuid, Balance> = HashMap::new();
    let mut pending: HashMap<Uuid, i64> = HashMap::new();
    for t in transfers {
        match t.kind {
            Kind::Single => {
                balances.entry(t.debit_account).or_default().debits_posted += t.amount;
                balances.entry(t.credit_account).or_default().credits_posted += t.amount;
            }
            Kind::Pending => {
                pending.insert(t.id, t.amount);
                balances.entry(t.debit_account).or_default().debits_pending += t.amount;
                balances
                    .entry(t.credit_account)
                    .or_default()
                    .credits_pending += t.amount;
            }
            Kind::Post | Kind::Void | Kind::Expire => {
                let held = t
                    .pending_id
                    .and_then(|p| pending.remove(&p))
                    .unwrap_or_default();
                let d = balances.entry(t.debit_account).or_default();
                d.debits_pending -= held;
                if t.kind == Kind::Post {
                    d.debits_posted += t.amount;
                }
                let c = balances.entry(t.credit_account).or_default();
                c.credits_pending -= held;
                if t.kind == Kind::Post {
                    c.credits_posted += t.amount;
                }
            }
        }
    }
    balances
}

/// Per ledger: the sum over its accounts of (posted credits - posted debits) and of (pending
/// credits - pending debits). Double entry makes both zero for every ledger.
pub fn ledger_sums<'a>(
    accounts: impl IntoIterator<Item = &'a Account>,
) -> BTreeMap<Ledger, (i128, i128)> {
    let mut sums: BTreeMap<Ledger, (i128, i128)> = BTreeMap::new();
    for a in accounts {
        let s = sums.entry(a.ledger.clone()).or_default();
        s.0 += a.balance.net_posted();
        s.1 += a.balance.net_pending();
    }
    sums
}

/// What a pool's model and period stand at now, in GPUs (see [`pool_position`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolPosition {
    /// Capacity the sources hold in the programme now: what they put in, less what went
    /// back to them (their net posted debits).
    pub held: i64,
    /// What teams hold now: posted to their grant and usage accounts, less what they gave
    /// back or was reclaimed (their net posted credits).
    pub granted: i64,
    /// The pool's open reservations (pending debits: offers, tranches not yet released).
    pub reserved: i64,
    /// What can still be promised: the pool's posted balance less its reservations, which
    /// is held - granted - reserved (double entry, one pool per model and period).
    pub available: i64,
}

/// The position of `pool` from the current totals of its ledger's accounts (`accounts` may
/// hold others: only the pool's ledger counts). Net, not gross: 6 GPUs granted of which 2
/// were reclaimed are 4 granted, and the pool's held capacity does not count the 2 again.
/// Every ledger sums to zero, so the pool's posted balance is exactly what the sources put
/// in less what the teams hold, and `available` stays the pool's own figure.
pub fn pool_position<'a>(
    pool: &Account,
    accounts: impl IntoIterator<Item = &'a Account>,
) -> PoolPosition {
    let (mut held, mut granted) = (0i128, 0i128);
    for a in accounts.into_iter().filter(|a| a.ledger == pool.ledger) {
        match a.kind {
            AccountKind::Source => held -= a.balance.net_posted(),
            AccountKind::Grant | AccountKind::Usage => granted += a.balance.net_posted(),
            AccountKind::Pool => {}
        }
    }
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    let reserved = pool.balance.debits_pending;
    PoolPosition {
        held: clamp(held),
        granted: clamp(granted),
        reserved,
        available: clamp(pool.balance.net_posted() - i128::from(reserved)),
    }
}

#[cfg(test)]
mod tests;
