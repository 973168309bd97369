use super::*;
use chrono::Duration;
use proptest::prelude::*;

fn h100() -> Ledger {
    Ledger {
        model: "H100".into(),
        period: "2026H1".into(),
    }
}

fn b200() -> Ledger {
    Ledger {
        model: "B200".into(),
        period: "2026H1".into(),
    }
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const SOURCE: u128 = 1;
const POOL: u128 = 2;
const TEAM_A: u128 = 3;
const TEAM_B: u128 = 4;
const OTHER_POOL: u128 = 5;
const CAPPED: u128 = 6;
const CONSORTIUM_A: u128 = 100;
const CONSORTIUM_B: u128 = 101;

fn account(n: u128, ledger: Ledger, kind: AccountKind, consortium: Option<u128>) -> Account {
    Account {
        id: id(n),
        ledger,
        kind,
        consortium: consortium.map(id),
        debits_must_not_exceed_credits: kind == AccountKind::Pool,
        credits_must_not_exceed_debits: false,
        balance: Balance::default(),
    }
}

/// A source, a pool holding 10 H100s, two teams' grants, a B200 pool, and an account that
/// may not take more than it gave.
fn book() -> Book {
    let mut b = Book::default();
    for a in [
        account(SOURCE, h100(), AccountKind::Source, None),
        account(POOL, h100(), AccountKind::Pool, None),
        account(TEAM_A, h100(), AccountKind::Grant, Some(CONSORTIUM_A)),
        account(TEAM_B, h100(), AccountKind::Grant, Some(CONSORTIUM_B)),
        account(OTHER_POOL, b200(), AccountKind::Pool, None),
    ] {
        b.accounts.insert(a.id, a);
    }
    let mut capped = account(CAPPED, h100(), AccountKind::Usage, None);
    capped.credits_must_not_exceed_debits = true;
    b.accounts.insert(capped.id, capped);
    let r = apply(&mut b, &[single(900, SOURCE, POOL, 10)], now(), "seed");
    assert_eq!(r.results, vec![Ok(Outcome::Created)]);
    b
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn req(n: u128, kind: Kind, debit: u128, credit: u128, amount: i64) -> TransferRequest {
    TransferRequest {
        id: id(n),
        debit_account: id(debit),
        credit_account: id(credit),
        amount,
        kind,
        pending_id: None,
        timeout_at: None,
        linked: false,
        code: "grant".into(),
        reason: "test".into(),
    }
}

fn single(n: u128, debit: u128, credit: u128, amount: i64) -> TransferRequest {
    req(n, Kind::Single, debit, credit, amount)
}

fn pending(
    n: u128,
    debit: u128,
    credit: u128,
    amount: i64,
    timeout: Option<i64>,
) -> TransferRequest {
    TransferRequest {
        timeout_at: timeout.map(|s| now() + Duration::seconds(s)),
        ..req(n, Kind::Pending, debit, credit, amount)
    }
}

fn resolve(n: u128, kind: Kind, pending: u128, amount: i64) -> TransferRequest {
    TransferRequest {
        pending_id: Some(id(pending)),
        ..req(n, kind, 0, 0, amount)
    }
}

fn linked(mut r: TransferRequest) -> TransferRequest {
    r.linked = true;
    r
}

fn bal(b: &Book, n: u128) -> Balance {
    b.accounts[&id(n)].balance
}

fn one(b: &mut Book, r: TransferRequest) -> Result<Outcome, TransferError> {
    one_at(b, r, now())
}

fn one_at(b: &mut Book, r: TransferRequest, at: DateTime<Utc>) -> Result<Outcome, TransferError> {
    let out = apply(b, &[r], at, "officer-1");
    assert_eq!(out.results.len(), 1);
    assert_eq!(
        out.created.len(),
        usize::from(out.results[0] == Ok(Outcome::Created))
    );
    out.results[0].clone()
}

/// The invariants every test ends with.
fn check(b: &Book) {
    for a in b.accounts.values() {
        assert!(a.within_limits(), "{a:?}");
    }
    for (ledger, sums) in ledger_sums(b.accounts.values()) {
        assert_eq!(sums, (0, 0), "{ledger:?} does not balance");
    }
}

#[test]
fn a_single_transfer_moves_capacity_and_the_ledger_balances() {
    let mut b = book();
    assert_eq!(
        one(&mut b, single(10, POOL, TEAM_A, 4)),
        Ok(Outcome::Created)
    );
    assert_eq!(bal(&b, POOL).available(), 6);
    assert_eq!(bal(&b, TEAM_A).credits_posted, 4);
    assert_eq!(bal(&b, SOURCE).net_posted(), -10);
    let t = &b.transfers[&id(10)];
    assert_eq!((t.created_by.as_str(), t.created_at), ("officer-1", now()));
    check(&b);
}

#[test]
fn a_pool_never_gives_more_than_it_holds() {
    let mut b = book();
    assert_eq!(
        one(&mut b, single(10, POOL, TEAM_A, 11)),
        Err(TransferError::ExceedsCredits)
    );
    assert_eq!(bal(&b, POOL).available(), 10, "a refusal changes nothing");
    assert!(!b.transfers.contains_key(&id(10)));
    assert_eq!(
        one(&mut b, single(11, POOL, TEAM_A, 10)),
        Ok(Outcome::Created)
    );
    assert_eq!(
        one(&mut b, single(12, POOL, TEAM_B, 1)),
        Err(TransferError::ExceedsCredits)
    );
    check(&b);
}

#[test]
fn pending_transfers_reserve_capacity_until_voided() {
    let mut b = book();
    assert_eq!(
        one(&mut b, pending(10, POOL, TEAM_A, 6, Some(60))),
        Ok(Outcome::Created)
    );
    assert_eq!(bal(&b, POOL).available(), 4);
    assert_eq!(bal(&b, TEAM_A).credits_pending, 6);
    assert_eq!(
        one(&mut b, single(11, POOL, TEAM_B, 5)),
        Err(TransferError::ExceedsCredits),
        "reserved GPUs cannot be promised twice"
    );
    assert_eq!(
        one(&mut b, resolve(12, Kind::Void, 10, 0)),
        Ok(Outcome::Created)
    );
    assert_eq!(bal(&b, POOL).available(), 10);
    assert_eq!(bal(&b, TEAM_A), Balance::default());
    assert_eq!(
        one(&mut b, single(11, POOL, TEAM_B, 5)),
        Ok(Outcome::Created)
    );
    check(&b);
}

#[test]
fn posting_completes_all_or_part_of_a_pending_transfer() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 6, None)).unwrap();
    assert_eq!(
        one(&mut b, resolve(11, Kind::Post, 10, 7)),
        Err(TransferError::ExceedsPendingTransferAmount)
    );
    assert_eq!(
        one(&mut b, resolve(11, Kind::Post, 10, 4)),
        Ok(Outcome::Created)
    );
    assert_eq!(bal(&b, TEAM_A).credits_posted, 4);
    assert_eq!(bal(&b, TEAM_A).credits_pending, 0);
    assert_eq!(
        bal(&b, POOL).available(),
        6,
        "the other 2 went back to the pool"
    );
    assert_eq!(b.transfers[&id(11)].amount, 4);
    one(&mut b, pending(20, POOL, TEAM_B, 3, None)).unwrap();
    assert_eq!(
        one(&mut b, resolve(21, Kind::Post, 20, 0)),
        Ok(Outcome::Created)
    );
    assert_eq!(b.transfers[&id(21)].amount, 3, "0 posts the whole amount");
    assert_eq!(bal(&b, TEAM_B).credits_posted, 3);
    check(&b);
}

#[test]
fn a_pending_transfer_resolves_once() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 2, None)).unwrap();
    one(&mut b, pending(20, POOL, TEAM_A, 2, None)).unwrap();
    one(&mut b, resolve(11, Kind::Post, 10, 0)).unwrap();
    one(&mut b, resolve(21, Kind::Void, 20, 0)).unwrap();
    let before = b.accounts.clone();
    for (n, kind, p, e) in [
        (
            12,
            Kind::Post,
            10,
            TransferError::PendingTransferAlreadyPosted,
        ),
        (
            13,
            Kind::Void,
            10,
            TransferError::PendingTransferAlreadyPosted,
        ),
        (
            22,
            Kind::Post,
            20,
            TransferError::PendingTransferAlreadyVoided,
        ),
        (
            23,
            Kind::Void,
            20,
            TransferError::PendingTransferAlreadyVoided,
        ),
    ] {
        assert_eq!(one(&mut b, resolve(n, kind, p, 0)), Err(e));
    }
    assert_eq!(b.accounts, before);
    check(&b);
}

#[test]
fn pending_transfers_expire_at_their_timeout() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 6, Some(60))).unwrap();
    let later = now() + Duration::seconds(60);
    assert_eq!(
        one(&mut b, resolve(11, Kind::Expire, 10, 0)),
        Err(TransferError::PendingTransferNotExpired)
    );
    for kind in [Kind::Post, Kind::Void] {
        assert_eq!(
            one_at(&mut b, resolve(12, kind, 10, 0), later),
            Err(TransferError::PendingTransferExpired),
            "{kind:?} at the timeout itself"
        );
    }
    assert_eq!(
        bal(&b, POOL).available(),
        4,
        "still reserved until the expiry is recorded"
    );
    assert_eq!(
        one_at(&mut b, resolve(13, Kind::Expire, 10, 6), later),
        Ok(Outcome::Created)
    );
    assert_eq!(bal(&b, POOL).available(), 10);
    assert_eq!(
        one_at(&mut b, resolve(14, Kind::Expire, 10, 0), later),
        Err(TransferError::PendingTransferExpired)
    );
    // A pending transfer without a timeout never expires.
    one(&mut b, pending(20, POOL, TEAM_A, 1, None)).unwrap();
    assert_eq!(
        one_at(
            &mut b,
            resolve(21, Kind::Expire, 20, 0),
            now() + Duration::days(3650)
        ),
        Err(TransferError::PendingTransferNotExpired)
    );
    check(&b);
}

#[test]
fn timeouts_belong_to_pending_transfers_in_the_future() {
    let mut b = book();
    assert_eq!(
        one(&mut b, pending(10, POOL, TEAM_A, 1, Some(0))),
        Err(TransferError::TimeoutInThePast)
    );
    assert_eq!(
        one(&mut b, pending(10, POOL, TEAM_A, 1, Some(-1))),
        Err(TransferError::TimeoutInThePast)
    );
    let mut s = single(11, POOL, TEAM_A, 1);
    s.timeout_at = Some(now() + Duration::seconds(5));
    assert_eq!(
        one(&mut b, s),
        Err(TransferError::TimeoutReservedForPending)
    );
    one(&mut b, pending(12, POOL, TEAM_A, 1, None)).unwrap();
    let mut p = resolve(13, Kind::Post, 12, 0);
    p.timeout_at = Some(now() + Duration::seconds(5));
    assert_eq!(
        one(&mut b, p),
        Err(TransferError::TimeoutReservedForPending)
    );
    check(&b);
}

#[test]
fn a_repeat_with_the_same_fields_returns_the_original_result() {
    let mut b = book();
    one(&mut b, single(10, POOL, TEAM_A, 4)).unwrap();
    assert_eq!(
        one(&mut b, single(10, POOL, TEAM_A, 4)),
        Ok(Outcome::Exists)
    );
    assert_eq!(bal(&b, TEAM_A).credits_posted, 4, "applied once");
    // Even when the pool could no longer afford it: the original result stands.
    one(&mut b, single(11, POOL, TEAM_B, 6)).unwrap();
    assert_eq!(
        one(&mut b, single(10, POOL, TEAM_A, 4)),
        Ok(Outcome::Exists)
    );
    // A post repeated with the defaults it was first given.
    one(&mut b, single(12, TEAM_B, POOL, 6)).unwrap();
    one(&mut b, pending(13, POOL, TEAM_B, 5, None)).unwrap();
    one(&mut b, resolve(14, Kind::Post, 13, 0)).unwrap();
    assert_eq!(
        one(&mut b, resolve(14, Kind::Post, 13, 0)),
        Ok(Outcome::Exists)
    );
    let mut explicit = resolve(14, Kind::Post, 13, 5);
    explicit.debit_account = id(POOL);
    explicit.credit_account = id(TEAM_B);
    assert_eq!(one(&mut b, explicit), Ok(Outcome::Exists));
    check(&b);
}

#[test]
fn a_repeat_with_different_fields_is_refused_naming_the_field() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 4, Some(60))).unwrap();
    let base = pending(10, POOL, TEAM_A, 4, Some(60));
    let cases: Vec<(TransferRequest, &str)> = vec![
        (
            TransferRequest {
                amount: 5,
                ..base.clone()
            },
            "amount",
        ),
        (
            TransferRequest {
                credit_account: id(TEAM_B),
                ..base.clone()
            },
            "credit_account",
        ),
        (
            TransferRequest {
                debit_account: id(SOURCE),
                ..base.clone()
            },
            "debit_account",
        ),
        (
            TransferRequest {
                kind: Kind::Single,
                timeout_at: None,
                ..base.clone()
            },
            "kind",
        ),
        (
            TransferRequest {
                timeout_at: Some(now() + Duration::seconds(61)),
                ..base.clone()
            },
            "timeout_at",
        ),
        (
            TransferRequest {
                code: "offer".into(),
                ..base.clone()
            },
            "code",
        ),
        (
            TransferRequest {
                reason: "another".into(),
                ..base.clone()
            },
            "reason",
        ),
    ];
    for (r, field) in cases {
        assert_eq!(
            one(&mut b, r),
            Err(TransferError::ExistsWithDifferentFields(field))
        );
    }
    // `linked` is a field too: a linked repeat, closed by a fresh transfer.
    let out = apply(
        &mut b,
        &[linked(base.clone()), single(11, POOL, TEAM_B, 1)],
        now(),
        "x",
    );
    assert_eq!(
        out.results,
        vec![
            Err(TransferError::ExistsWithDifferentFields("linked")),
            Err(TransferError::LinkedEventFailed)
        ]
    );
    assert_eq!(bal(&b, TEAM_A).credits_pending, 4);
    assert_eq!(bal(&b, TEAM_B), Balance::default());
    let err = TransferError::ExistsWithDifferentFields("amount");
    assert!(err.to_string().contains("`amount`"), "{err}");
    check(&b);
}

#[test]
fn the_same_id_twice_in_one_batch_applies_once() {
    let mut b = book();
    let out = apply(
        &mut b,
        &[
            single(10, POOL, TEAM_A, 3),
            single(10, POOL, TEAM_A, 3),
            single(10, POOL, TEAM_A, 2),
        ],
        now(),
        "x",
    );
    assert_eq!(
        out.results,
        vec![
            Ok(Outcome::Created),
            Ok(Outcome::Exists),
            Err(TransferError::ExistsWithDifferentFields("amount"))
        ]
    );
    assert_eq!(out.created.len(), 1);
    assert_eq!(bal(&b, TEAM_A).credits_posted, 3);
}

#[test]
fn a_linked_chain_applies_all_or_nothing() {
    let mut b = book();
    one(&mut b, pending(5, POOL, TEAM_A, 2, None)).unwrap();
    let before = b.clone();
    let out = apply(
        &mut b,
        &[
            linked(single(10, POOL, TEAM_A, 3)),
            linked(resolve(11, Kind::Post, 5, 0)),
            single(12, POOL, TEAM_B, 6), // 10 - 3 - 2 = 5 left: refused
            single(13, POOL, TEAM_B, 1), // its own chain: applies
        ],
        now(),
        "x",
    );
    assert_eq!(
        out.results,
        vec![
            Err(TransferError::LinkedEventFailed),
            Err(TransferError::LinkedEventFailed),
            Err(TransferError::ExceedsCredits),
            Ok(Outcome::Created),
        ]
    );
    assert_eq!(
        out.created.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![id(13)]
    );
    assert_eq!(out.touched, [id(POOL), id(TEAM_B)].into_iter().collect());
    assert_eq!(
        bal(&b, TEAM_A),
        bal(&before, TEAM_A),
        "the chain left no trace"
    );
    assert!(!b.transfers.contains_key(&id(10)) && !b.transfers.contains_key(&id(11)));
    assert!(
        !b.resolved.contains_key(&id(5)),
        "the post was undone: still pending"
    );
    // The same chain, now affordable, applies with the same ids.
    let out = apply(
        &mut b,
        &[
            linked(single(10, POOL, TEAM_A, 3)),
            linked(resolve(11, Kind::Post, 5, 0)),
            single(12, POOL, TEAM_B, 4),
        ],
        now(),
        "x",
    );
    assert!(
        out.results.iter().all(|r| r == &Ok(Outcome::Created)),
        "{:?}",
        out.results
    );
    assert_eq!(bal(&b, POOL).available(), 0);
    check(&b);
}

#[test]
fn a_chain_failing_at_its_first_transfer_skips_the_rest() {
    let mut b = book();
    let out = apply(
        &mut b,
        &[
            linked(single(10, POOL, TEAM_A, 11)),
            single(11, POOL, TEAM_A, 1),
        ],
        now(),
        "x",
    );
    assert_eq!(
        out.results,
        vec![
            Err(TransferError::ExceedsCredits),
            Err(TransferError::LinkedEventFailed)
        ]
    );
    assert!(out.created.is_empty() && out.touched.is_empty());
}

#[test]
fn an_open_chain_applies_nothing() {
    let mut b = book();
    let before = b.accounts.clone();
    let out = apply(
        &mut b,
        &[
            single(9, POOL, TEAM_A, 1),
            linked(single(10, POOL, TEAM_A, 1)),
            linked(single(11, POOL, TEAM_B, 1)),
        ],
        now(),
        "x",
    );
    assert_eq!(
        out.results,
        vec![
            Ok(Outcome::Created),
            Err(TransferError::LinkedEventFailed),
            Err(TransferError::LinkedEventChainOpen)
        ]
    );
    assert_eq!(bal(&b, TEAM_A).credits_posted, 1);
    assert_eq!(bal(&b, TEAM_B), before[&id(TEAM_B)].balance);
}

#[test]
fn malformed_transfers_are_refused_with_their_code() {
    let mut b = book();
    one(&mut b, single(50, POOL, TEAM_A, 1)).unwrap();
    let mut nil = single(1, POOL, TEAM_A, 1);
    nil.id = Uuid::nil();
    let cases: Vec<(TransferRequest, TransferError)> = vec![
        (nil, TransferError::IdMustNotBeZero),
        (
            TransferRequest {
                reason: " \n".into(),
                ..single(10, POOL, TEAM_A, 1)
            },
            TransferError::ReasonRequired,
        ),
        (
            TransferRequest {
                code: "".into(),
                ..single(10, POOL, TEAM_A, 1)
            },
            TransferError::InvalidCode,
        ),
        (
            TransferRequest {
                code: "Grant".into(),
                ..single(10, POOL, TEAM_A, 1)
            },
            TransferError::InvalidCode,
        ),
        (
            TransferRequest {
                code: "a".repeat(33),
                ..single(10, POOL, TEAM_A, 1)
            },
            TransferError::InvalidCode,
        ),
        (
            single(10, POOL, TEAM_A, 0),
            TransferError::AmountMustBePositive,
        ),
        (
            single(10, POOL, TEAM_A, -1),
            TransferError::AmountMustBePositive,
        ),
        (
            pending(10, POOL, TEAM_A, i64::MIN, None),
            TransferError::AmountMustBePositive,
        ),
        (
            single(10, POOL, POOL, 1),
            TransferError::AccountsMustBeDifferent,
        ),
        (
            TransferRequest {
                pending_id: Some(id(50)),
                ..single(10, POOL, TEAM_A, 1)
            },
            TransferError::PendingIdMustBeZero,
        ),
        (
            req(10, Kind::Post, 0, 0, 0),
            TransferError::PendingIdRequired,
        ),
        (
            req(10, Kind::Void, 0, 0, 0),
            TransferError::PendingIdRequired,
        ),
        (
            resolve(10, Kind::Void, 10, 0),
            TransferError::PendingIdMustBeDifferent,
        ),
        (
            resolve(10, Kind::Post, 10, -1),
            TransferError::PendingIdMustBeDifferent,
        ),
        (
            resolve(10, Kind::Post, 999, -1),
            TransferError::AmountMustBePositive,
        ),
        (
            single(10, 77, TEAM_A, 1),
            TransferError::DebitAccountNotFound,
        ),
        (
            single(10, POOL, 77, 1),
            TransferError::CreditAccountNotFound,
        ),
        (
            single(10, POOL, OTHER_POOL, 1),
            TransferError::AccountsMustHaveTheSameLedger,
        ),
        (
            resolve(10, Kind::Post, 999, 0),
            TransferError::PendingTransferNotFound,
        ),
        (
            resolve(10, Kind::Post, 50, 0),
            TransferError::PendingTransferNotPending,
        ),
    ];
    let before = b.clone();
    for (r, e) in cases {
        assert_eq!(one(&mut b, r.clone()), Err(e.clone()), "{r:?}");
        assert_eq!(b.accounts, before.accounts);
        assert_eq!(b.transfers.len(), before.transfers.len());
    }
}

#[test]
fn a_resolution_must_match_its_pending_transfer() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 4, None)).unwrap();
    let mut wrong_debit = resolve(11, Kind::Post, 10, 0);
    wrong_debit.debit_account = id(SOURCE);
    let mut wrong_credit = resolve(11, Kind::Void, 10, 0);
    wrong_credit.credit_account = id(TEAM_B);
    let cases = [
        (
            wrong_debit,
            TransferError::PendingTransferHasDifferentDebitAccount,
        ),
        (
            wrong_credit,
            TransferError::PendingTransferHasDifferentCreditAccount,
        ),
        (
            resolve(11, Kind::Void, 10, 3),
            TransferError::PendingTransferHasDifferentAmount,
        ),
    ];
    for (r, e) in cases {
        assert_eq!(one(&mut b, r), Err(e));
    }
    assert_eq!(
        one(&mut b, resolve(11, Kind::Void, 10, 4)),
        Ok(Outcome::Created)
    );
    check(&b);
}

#[test]
fn a_supplier_cannot_receive_a_grant_while_it_supplies() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 2, None)).unwrap();
    one(&mut b, pending(11, POOL, TEAM_A, 2, None)).unwrap();
    b.suppliers.insert(id(CONSORTIUM_A), Supply::Ongoing);
    let e = TransferError::SupplierCannotReceiveGrant(None);
    assert_eq!(one(&mut b, single(20, POOL, TEAM_A, 1)), Err(e.clone()));
    assert_eq!(
        one(&mut b, pending(21, POOL, TEAM_A, 1, None)),
        Err(e.clone())
    );
    assert_eq!(
        one(&mut b, resolve(22, Kind::Post, 10, 0)),
        Err(e.clone()),
        "nor accept an earlier offer"
    );
    assert!(
        e.to_string().contains("supplier-no-grant"),
        "names the rule"
    );
    // Releasing what it was offered is fine; another team is not affected.
    assert_eq!(
        one(&mut b, resolve(23, Kind::Void, 11, 0)),
        Ok(Outcome::Created)
    );
    assert_eq!(
        one(&mut b, single(24, POOL, TEAM_B, 1)),
        Ok(Outcome::Created)
    );
    // Capacity it gives back (grant to pool) is not a grant it receives.
    b.suppliers.clear();
    one(&mut b, single(25, POOL, TEAM_A, 1)).unwrap();
    b.suppliers.insert(id(CONSORTIUM_A), Supply::Ongoing);
    assert_eq!(
        one(&mut b, single(26, TEAM_A, POOL, 1)),
        Ok(Outcome::Created)
    );
    // Once supplying ends, grants are possible again.
    b.suppliers.clear();
    assert_eq!(
        one(&mut b, resolve(22, Kind::Post, 10, 0)),
        Ok(Outcome::Created)
    );
    check(&b);
}

#[test]
fn a_supplier_whose_end_is_recorded_receives_grants_from_that_time_not_before() {
    let mut b = book();
    let end = now() + Duration::hours(6);
    b.suppliers.insert(id(CONSORTIUM_A), Supply::EndsAt(end));
    let before = end - Duration::microseconds(1);
    let refused = one_at(&mut b, single(30, POOL, TEAM_A, 1), before);
    assert_eq!(
        refused,
        Err(TransferError::SupplierCannotReceiveGrant(Some(end)))
    );
    let text = refused.unwrap_err().to_string();
    assert!(text.contains("supplier-no-grant"), "names the rule: {text}");
    assert!(
        text.contains(&end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "names the end: {text}"
    );
    // From the recorded end on (the time of the grant decides, not of the record).
    assert_eq!(
        one_at(&mut b, single(31, POOL, TEAM_A, 1), end),
        Ok(Outcome::Created)
    );
    // An end already past when recorded refuses nothing; an ongoing supply names no end.
    b.suppliers
        .insert(id(CONSORTIUM_A), Supply::EndsAt(now() - Duration::days(1)));
    assert_eq!(
        one(&mut b, single(32, POOL, TEAM_A, 1)),
        Ok(Outcome::Created)
    );
    b.suppliers.insert(id(CONSORTIUM_A), Supply::Ongoing);
    let e = one(&mut b, single(33, POOL, TEAM_A, 1)).unwrap_err();
    assert!(
        e.to_string().contains("no end of supplying is recorded"),
        "{e}"
    );
    check(&b);
}

#[test]
fn credits_may_be_capped_by_debits() {
    let mut b = book();
    assert_eq!(
        one(&mut b, single(10, POOL, CAPPED, 1)),
        Err(TransferError::ExceedsDebits)
    );
    one(&mut b, single(11, CAPPED, TEAM_A, 2)).unwrap();
    assert_eq!(
        one(&mut b, pending(12, POOL, CAPPED, 2, None)),
        Ok(Outcome::Created)
    );
    assert_eq!(
        one(&mut b, single(13, POOL, CAPPED, 1)),
        Err(TransferError::ExceedsDebits),
        "pending credits count"
    );
    check(&b);
}

#[test]
fn totals_that_would_overflow_are_refused() {
    let mut b = book();
    b.accounts
        .get_mut(&id(SOURCE))
        .unwrap()
        .balance
        .debits_posted = i64::MAX;
    b.accounts
        .get_mut(&id(TEAM_A))
        .unwrap()
        .balance
        .credits_posted = i64::MAX - 10;
    assert_eq!(
        one(&mut b, single(10, SOURCE, TEAM_B, 1)),
        Err(TransferError::Overflow)
    );
    assert_eq!(
        one(&mut b, single(11, TEAM_B, TEAM_A, 11)),
        Err(TransferError::Overflow)
    );
}

#[test]
fn replaying_the_transfers_gives_the_balances() {
    let mut b = book();
    one(&mut b, pending(10, POOL, TEAM_A, 3, Some(10))).unwrap();
    one(&mut b, pending(11, POOL, TEAM_B, 3, None)).unwrap();
    one(&mut b, resolve(12, Kind::Post, 11, 2)).unwrap();
    one_at(
        &mut b,
        resolve(13, Kind::Expire, 10, 0),
        now() + Duration::seconds(11),
    )
    .unwrap();
    one(&mut b, single(14, TEAM_B, POOL, 1)).unwrap();
    let mut all: Vec<&Transfer> = b.transfers.values().collect();
    all.sort_by_key(|t| t.id); // ids here are in the order they were applied
    let replayed = replay(all);
    for a in b.accounts.values() {
        assert_eq!(
            replayed.get(&a.id).copied().unwrap_or_default(),
            a.balance,
            "{:?}",
            a.kind
        );
    }
    check(&b);
}

#[test]
fn codes_are_stable_distinct_and_shouted() {
    use TransferError::*;
    let all = [
        IdMustNotBeZero,
        ExistsWithDifferentFields("x"),
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
        SupplierCannotReceiveGrant(None),
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
    ];
    let codes: std::collections::HashSet<&str> = all.iter().map(TransferError::code).collect();
    assert_eq!(codes.len(), all.len());
    for e in &all {
        assert!(e.code().chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        assert!(!e.to_string().is_empty());
    }
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
    }
    for k in AccountKind::ALL {
        assert_eq!(AccountKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(Kind::parse("posted"), None);
    assert_eq!(AccountKind::parse("Pool"), None);
}

// ---------------------------------------------------------------------------------------
// Property: whatever a workload of random batches does, every ledger sums to zero, no
// account breaks its limits, each chain applied whole or not at all, refusals changed
// nothing, and replaying the recorded transfers gives the balances.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Single {
        debit: usize,
        credit: usize,
        amount: i64,
    },
    Pending {
        debit: usize,
        credit: usize,
        amount: i64,
        timeout: Option<i64>,
    },
    Resolve {
        kind: u8,
        of: usize,
        amount: i64,
    },
    Repeat {
        of: usize,
        tweak: bool,
    },
    Supplier {
        team: usize,
        on: bool,
    },
    Tick {
        seconds: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..8usize, 0..8usize, -1..8i64).prop_map(|(debit, credit, amount)| Op::Single {
            debit,
            credit,
            amount
        }),
        (
            0..8usize,
            0..8usize,
            0..8i64,
            proptest::option::of(-5..60i64)
        )
            .prop_map(|(debit, credit, amount, timeout)| Op::Pending {
                debit,
                credit,
                amount,
                timeout
            }),
        (0..3u8, 0..64usize, 0..5i64).prop_map(|(kind, of, amount)| Op::Resolve {
            kind,
            of,
            amount
        }),
        (0..64usize, any::<bool>()).prop_map(|(of, tweak)| Op::Repeat { of, tweak }),
        (0..2usize, any::<bool>()).prop_map(|(team, on)| Op::Supplier { team, on }),
        (0..40i64).prop_map(|seconds| Op::Tick { seconds }),
    ]
}

/// Accounts 0-3 are ledger H100 (source, pool, team A, team B), 4-7 B200 likewise.
fn sim_book() -> Book {
    let mut b = Book::default();
    for (i, ledger) in [h100(), b200()].into_iter().enumerate() {
        let base = i as u128 * 4;
        for a in [
            account(base + 1, ledger.clone(), AccountKind::Source, None),
            account(base + 2, ledger.clone(), AccountKind::Pool, None),
            account(
                base + 3,
                ledger.clone(),
                AccountKind::Grant,
                Some(CONSORTIUM_A),
            ),
            account(
                base + 4,
                ledger.clone(),
                AccountKind::Grant,
                Some(CONSORTIUM_B),
            ),
        ] {
            b.accounts.insert(a.id, a);
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_workload_keeps_the_ledger_balanced(
        batches in proptest::collection::vec(
            proptest::collection::vec((op(), any::<bool>()), 1..12), 1..12)
    ) {
        let mut b = sim_book();
        // Fund both pools so that limits bite sometimes and not always.
        let seed = apply(&mut b, &[single(1_000_000, 1, 2, 12), single(1_000_001, 5, 6, 6)], now(), "seed");
        prop_assert!(seed.results.iter().all(|r| r.is_ok()));
        let mut recorded: Vec<Transfer> = seed.created;
        let mut sent: Vec<TransferRequest> = Vec::new();
        let mut pendings: Vec<u128> = Vec::new();
        let mut clock = now();
        let mut next = 1u128;
        for batch in batches {
            let mut reqs = Vec::new();
            for (op, link) in batch {
                next += 1;
                let acct = |i: usize| (i as u128) + 1;
                let r = match op {
                    Op::Single { debit, credit, amount } => single(next, acct(debit), acct(credit), amount),
                    Op::Pending { debit, credit, amount, timeout } => {
                        pendings.push(next);
                        TransferRequest {
                            timeout_at: timeout.map(|s| clock + Duration::seconds(s)),
                            ..pending(next, acct(debit), acct(credit), amount, None)
                        }
                    }
                    Op::Resolve { kind, of, amount } => {
                        let Some(p) = pendings.get(of % pendings.len().max(1)).copied() else { continue };
                        let kind = [Kind::Post, Kind::Void, Kind::Expire][kind as usize];
                        resolve(next, kind, p, amount)
                    }
                    Op::Repeat { of, tweak } => {
                        let Some(mut r) = sent.get(of % sent.len().max(1)).cloned() else { continue };
                        if tweak { r.reason.push('!'); }
                        r
                    }
                    Op::Supplier { team, on } => {
                        let c = id([CONSORTIUM_A, CONSORTIUM_B][team]);
                        if on { b.suppliers.insert(c, Supply::Ongoing); } else { b.suppliers.remove(&c); }
                        continue;
                    }
                    Op::Tick { seconds } => { clock += Duration::seconds(seconds); continue; }
                };
                reqs.push(TransferRequest { linked: link, ..r });
            }
            if reqs.is_empty() { continue; }
            let before = b.accounts.clone();
            let out = apply(&mut b, &reqs, clock, "sim");
            prop_assert_eq!(out.results.len(), reqs.len());
            // Chains are all or nothing.
            let mut start = 0;
            while start < reqs.len() {
                let mut end = start;
                while end < reqs.len() && reqs[end].linked { end += 1; }
                let end = end.min(reqs.len() - 1);
                let oks = out.results[start..=end].iter().filter(|r| r.is_ok()).count();
                prop_assert!(oks == 0 || oks == end - start + 1, "chain {start}..={end}: {:?}", &out.results[start..=end]);
                start = end + 1;
            }
            let created = out.results.iter().filter(|r| **r == Ok(Outcome::Created)).count();
            prop_assert_eq!(created, out.created.len());
            for id in b.accounts.keys() {
                if !out.touched.contains(id) {
                    prop_assert_eq!(b.accounts[id].balance, before[id].balance);
                }
            }
            for a in b.accounts.values() {
                prop_assert!(a.within_limits(), "{:?}", a);
            }
            for (ledger, sums) in ledger_sums(b.accounts.values()) {
                prop_assert_eq!(sums, (0, 0), "{:?}", ledger);
            }
            // A pool's net position: what can be promised is exactly what the sources hold
            // in it less what teams hold and what is reserved.
            for pool in b.accounts.values().filter(|a| a.kind == AccountKind::Pool) {
                let p = pool_position(pool, b.accounts.values());
                prop_assert_eq!(p.held - p.granted - p.reserved, p.available, "{:?}", p);
                prop_assert!(p.available >= 0, "{:?}", p);
            }
            recorded.extend(out.created);
            sent.extend(reqs);
        }
        let replayed = replay(&recorded);
        for a in b.accounts.values() {
            prop_assert_eq!(replayed.get(&a.id).copied().unwrap_or_default(), a.balance);
        }
    }
}

#[test]
fn a_pools_position_is_net_of_what_went_back() {
    let mut b = sim_book();
    // 10 GPUs from the source; 6 to team A, 2 of them reclaimed; 1 returned to the source;
    // 3 reserved for team B.
    let out = apply(
        &mut b,
        &[
            single(101, 1, 2, 10),
            single(102, 2, 3, 6),
            single(103, 3, 2, 2),
            single(104, 2, 1, 1),
            pending(105, 2, 4, 3, None),
        ],
        now(),
        "test",
    );
    assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
    let pool = &b.accounts[&id(2)];
    assert_eq!(
        pool_position(pool, b.accounts.values()),
        PoolPosition {
            held: 9,
            granted: 4,
            reserved: 3,
            available: 2
        }
    );
    // Gross flows would have said held 12 (10 + 2 back), granted 7 (6 + 1 to the source).
    assert_eq!(
        (pool.balance.credits_posted, pool.balance.debits_posted),
        (12, 7)
    );
}
