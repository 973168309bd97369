use super::*;
use crate::domain::ledger::{
    apply, Account, AccountKind, Balance, Book, Ledger, Outcome, TransferError,
};
use chrono::Duration;
use kaip_contracts::dto::gpu::TrancheSpec;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn factors() -> HashMap<String, i64> {
    [("H100".to_owned(), 1), ("B200".to_owned(), 2)]
        .into_iter()
        .collect()
}

fn tranche(period: &str, count: i64) -> TrancheSpec {
    TrancheSpec {
        period: period.into(),
        count,
        release_at: None,
        release_gate: None,
    }
}

fn option(model: &str, tranches: Vec<TrancheSpec>) -> OfferOption {
    OfferOption {
        model: model.into(),
        tranches,
    }
}

/// "512 B200 or 1,024 H100", in two tranches each.
fn offer() -> Vec<OfferOption> {
    vec![
        option("B200", vec![tranche("2026H1", 256), tranche("2026H2", 256)]),
        option("H100", vec![tranche("2026H1", 512), tranche("2026H2", 512)]),
    ]
}

fn check(options: &[OfferOption]) -> Result<i64, Refusal> {
    validate(
        options,
        &factors(),
        now() + Duration::days(14),
        "selected",
        now(),
    )
}

#[test]
fn an_offer_in_two_forms_is_worth_the_same_in_each() {
    assert_eq!(check(&offer()), Ok(1024));
    let mut uneven = offer();
    uneven[1].tranches[1].count = 511;
    let e = check(&uneven).unwrap_err();
    assert_eq!(e.field, "options[1]");
    assert!(
        e.rule.contains("1023") && e.rule.contains("1024"),
        "{}",
        e.rule
    );
}

#[test]
fn offers_are_refused_by_field_and_rule() {
    let with = |f: &dyn Fn(&mut Vec<OfferOption>)| {
        let mut o = offer();
        f(&mut o);
        check(&o).unwrap_err().field
    };
    assert_eq!(with(&|o| o.clear()), "options");
    assert_eq!(
        with(&|o| {
            let x = o[0].clone();
            o.extend([x.clone(), x.clone(), x]);
        }),
        "options"
    );
    assert_eq!(
        with(&|o| {
            let x = o[0].clone();
            o.push(x);
        }),
        "options[2].model"
    );
    assert_eq!(with(&|o| o[1].model = "X999".into()), "options[1].model");
    assert_eq!(with(&|o| o[1].model = "h100".into()), "options[1].model");
    assert_eq!(with(&|o| o[1].model = "B200".into()), "options[1].model");
    assert_eq!(with(&|o| o[0].tranches.clear()), "options[0].tranches");
    assert_eq!(
        with(&|o| o[0].tranches = vec![tranche("2026", 1); 13]),
        "options[0].tranches"
    );
    assert_eq!(
        with(&|o| o[0].tranches[1].period = "2026H1".into()),
        "options[0].tranches[1].period"
    );
    assert_eq!(
        with(&|o| o[0].tranches[1].period = "26H2".into()),
        "options[0].tranches[1].period"
    );
    assert_eq!(
        with(&|o| o[0].tranches[0].count = 0),
        "options[0].tranches[0].count"
    );
    assert_eq!(
        with(&|o| o[0].tranches[0].count = -5),
        "options[0].tranches[0].count"
    );
    assert_eq!(
        with(&|o| o[0].tranches[0].count = MAX_COUNT + 1),
        "options[0].tranches[0].count"
    );
    assert_eq!(
        with(&|o| o[0].tranches[0].count = i64::MAX),
        "options[0].tranches[0].count"
    );
    assert_eq!(
        with(&|o| {
            o[0].tranches[0].release_at = Some(now());
            o[0].tranches[0].release_gate = Some("gate-1".into());
        }),
        "options[0].tranches[0].release_gate"
    );
    assert_eq!(
        with(&|o| o[0].tranches[0].release_gate = Some("Gate 1".into())),
        "options[0].tranches[0].release_gate"
    );
    let e = validate(&offer(), &factors(), now(), "r", now()).unwrap_err();
    assert_eq!(e.field, "expires_at");
    let e = validate(&offer(), &factors(), now() + Duration::days(1), " ", now()).unwrap_err();
    assert_eq!(e.field, "reason");
    assert!(valid_gate("gate-1") && !valid_gate("") && !valid_gate(&"g".repeat(65)));
}

#[test]
fn derived_ids_are_stable_and_distinct() {
    let base = Uuid::now_v7();
    assert_eq!(derived_id(base, "accept", 1), derived_id(base, "accept", 1));
    assert_ne!(derived_id(base, "accept", 1), derived_id(base, "accept", 2));
    assert_ne!(
        derived_id(base, "accept", 1),
        derived_id(base, "eliminate", 1)
    );
    assert_ne!(
        derived_id(base, "accept", 1),
        derived_id(Uuid::now_v7(), "accept", 1)
    );
}

#[test]
fn tranches_are_due_without_a_condition_or_after_their_date() {
    assert!(due(None, None, now()));
    assert!(due(Some(now()), None, now()));
    assert!(!due(Some(now() + Duration::seconds(1)), None, now()));
    assert!(!due(None, Some("gate-1"), now()));
}

const SOURCE_B: u128 = 1;
const POOL_B: u128 = 2;
const SOURCE_H: u128 = 3;
const POOL_H: u128 = 4;
const TEAM_B: u128 = 5;
const TEAM_H: u128 = 6;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn acct(n: u128, model: &str, kind: AccountKind) -> Account {
    Account {
        id: id(n),
        ledger: Ledger {
            model: model.into(),
            period: "2026H1".into(),
        },
        kind,
        consortium: (kind == AccountKind::Grant).then(|| id(100)),
        debits_must_not_exceed_credits: matches!(kind, AccountKind::Pool | AccountKind::Grant),
        credits_must_not_exceed_debits: false,
        balance: Balance::default(),
    }
}

/// Pools of 300 B200 and 600 H100 (one period, for the arithmetic), an offer of 256 B200
/// now + 44 B200 at gate-1, or 512 H100 now + 88 H100 at gate-1, reserved.
fn offered() -> (Book, Vec<Reservation>) {
    let mut book = Book::default();
    for a in [
        acct(SOURCE_B, "B200", AccountKind::Source),
        acct(POOL_B, "B200", AccountKind::Pool),
        acct(SOURCE_H, "H100", AccountKind::Source),
        acct(POOL_H, "H100", AccountKind::Pool),
        acct(TEAM_B, "B200", AccountKind::Grant),
        acct(TEAM_H, "H100", AccountKind::Grant),
    ] {
        book.accounts.insert(a.id, a);
    }
    let fund = |n: u128, d: u128, c: u128, amount: i64| TransferRequest {
        id: id(n),
        debit_account: id(d),
        credit_account: id(c),
        amount,
        kind: Kind::Single,
        pending_id: None,
        timeout_at: None,
        linked: false,
        code: "capacity".into(),
        reason: "lease".into(),
    };
    let r = apply(
        &mut book,
        &[
            fund(900, SOURCE_B, POOL_B, 300),
            fund(901, SOURCE_H, POOL_H, 600),
        ],
        now(),
        "seed",
    );
    assert!(r.results.iter().all(|x| x.is_ok()));
    let mut reservations = Vec::new();
    let mut chain = Vec::new();
    for (option, pool, team, counts) in [
        (0, POOL_B, TEAM_B, [256, 44]),
        (1, POOL_H, TEAM_H, [512, 88]),
    ] {
        for (tranche, count) in counts.into_iter().enumerate() {
            let transfer_id = id(1000 + option as u128 * 10 + tranche as u128);
            reservations.push(Reservation {
                option,
                tranche,
                transfer_id,
                pool: id(pool),
                grant: id(team),
                count,
                release_at: None,
                release_gate: (tranche == 1).then(|| "gate-1".to_owned()),
            });
            chain.push(TransferRequest {
                id: transfer_id,
                debit_account: id(pool),
                credit_account: id(team),
                amount: count,
                kind: Kind::Pending,
                pending_id: None,
                timeout_at: Some(now() + Duration::days(14)),
                linked: true,
                code: "offer".into(),
                reason: "offer".into(),
            });
        }
    }
    chain.last_mut().unwrap().linked = false;
    let r = apply(&mut book, &chain, now(), "officer");
    assert!(
        r.results.iter().all(|x| *x == Ok(Outcome::Created)),
        "{:?}",
        r.results
    );
    (book, reservations)
}

#[test]
fn accepting_posts_the_due_tranches_keeps_the_later_ones_and_releases_the_other_form() {
    let (mut book, reservations) = offered();
    assert_eq!(book.accounts[&id(POOL_B)].balance.available(), 0);
    let offer = Uuid::now_v7();
    let (chain, held) = accept(&reservations, 0, offer, "we take B200", now());
    let r = apply(&mut book, &chain, now(), "team");
    assert!(
        r.results.iter().all(|x| *x == Ok(Outcome::Created)),
        "{:?}",
        r.results
    );
    assert_eq!(held.len(), 2);
    assert_eq!(
        (held[0].0, held[0].1, held[0].2),
        (0, id(1000), true),
        "tranche 0 posted in place"
    );
    assert!(!held[1].2, "tranche 1 waits for gate-1");
    let team = book.accounts[&id(TEAM_B)].balance;
    assert_eq!((team.credits_posted, team.credits_pending), (256, 44));
    assert_eq!(
        book.transfers[&held[1].1].timeout_at, None,
        "the kept reservation does not expire"
    );
    assert_eq!(
        book.accounts[&id(TEAM_H)].balance,
        Balance::default(),
        "the H100 form went back"
    );
    assert_eq!(book.accounts[&id(POOL_H)].balance.available(), 600);
    // Released at the gate.
    let r = apply(
        &mut book,
        &[release(held[1].1, "gate:gate-1")],
        now(),
        "system",
    );
    assert_eq!(r.results, vec![Ok(Outcome::Created)]);
    assert_eq!(book.accounts[&id(TEAM_B)].balance.credits_posted, 300);
    // Accepting twice makes the same transfers: they exist already.
    let (again, _) = accept(&reservations, 0, offer, "we take B200", now());
    let r = apply(&mut book, &again, now(), "team");
    assert!(
        r.results.iter().all(|x| *x == Ok(Outcome::Exists)),
        "{:?}",
        r.results
    );
}

#[test]
fn an_expired_offer_cannot_be_accepted_and_nothing_moves() {
    let (mut book, reservations) = offered();
    let later = now() + Duration::days(15);
    let before = book.accounts.clone();
    let (chain, _) = accept(&reservations, 1, Uuid::now_v7(), "too late", later);
    let r = apply(&mut book, &chain, later, "team");
    assert!(
        r.results
            .contains(&Err(TransferError::PendingTransferExpired)),
        "{:?}",
        r.results
    );
    assert!(r.created.is_empty());
    assert_eq!(book.accounts, before);
}

#[test]
fn elimination_voids_reservations_returns_future_capacity_and_grants_survivors_in_one_chain() {
    let (mut book, reservations) = offered();
    let (chain, held) = accept(&reservations, 0, Uuid::now_v7(), "B200", now());
    assert!(apply(&mut book, &chain, now(), "team")
        .results
        .iter()
        .all(|x| x.is_ok()));
    // The team's B200 grant is for 2026H1; pretend a second grant for 2026H2 (future).
    let mut future = acct(7, "B200", AccountKind::Grant);
    future.ledger.period = "2026H1".into(); // same ledger as the pool, for the arithmetic
    future.balance.credits_posted = 0;
    book.accounts.insert(future.id, future);
    let survivor = acct(8, "B200", AccountKind::Grant);
    book.accounts.insert(
        survivor.id,
        Account {
            consortium: Some(id(200)),
            ..survivor
        },
    );
    let grants = vec![TeamGrant {
        account: id(TEAM_B),
        pool: Some(id(POOL_B)),
        period: "2026H1".into(),
        available: 256,
    }];
    let open = vec![OpenReservation {
        transfer_id: held[1].1,
        timeout_at: None,
    }];
    let gate = Uuid::now_v7();
    let decided = now();
    // 2026H1 has started at the decision: the 256 posted stay with the team (used).
    let plan = vec![PlannedGrant {
        pool: id(POOL_B),
        grant: id(8),
        count: 44,
    }];
    let chain = eliminate(&open, &grants, &plan, gate, "rank: lowest", decided, now());
    assert_eq!(chain.len(), 2);
    assert!(chain[0].linked && !chain[1].linked);
    let r = apply(&mut book, &chain, now(), "system");
    assert!(
        r.results.iter().all(|x| *x == Ok(Outcome::Created)),
        "{:?}",
        r.results
    );
    assert_eq!(book.accounts[&id(TEAM_B)].balance.credits_pending, 0);
    assert_eq!(
        book.accounts[&id(TEAM_B)].balance.credits_posted,
        256,
        "used capacity stays"
    );
    assert_eq!(book.accounts[&id(8)].balance.credits_posted, 44);

    // Decided before the period started: the posted capacity goes back and on.
    let (mut book, reservations) = offered();
    let (chain, _) = accept(&reservations, 0, Uuid::now_v7(), "B200", now());
    assert!(apply(&mut book, &chain, now(), "team")
        .results
        .iter()
        .all(|x| x.is_ok()));
    book.accounts.insert(
        id(8),
        Account {
            consortium: Some(id(200)),
            ..acct(8, "B200", AccountKind::Grant)
        },
    );
    let early = period_start("2026H1").unwrap() - Duration::days(1);
    let plan = vec![PlannedGrant {
        pool: id(POOL_B),
        grant: id(8),
        count: 300,
    }];
    let grants = vec![TeamGrant {
        account: id(TEAM_B),
        pool: Some(id(POOL_B)),
        period: "2026H1".into(),
        available: 256,
    }];
    let open: Vec<OpenReservation> = book
        .transfers
        .values()
        .filter(|t| {
            t.kind == Kind::Pending
                && t.credit_account == id(TEAM_B)
                && !book.resolved.contains_key(&t.id)
        })
        .map(|t| OpenReservation {
            transfer_id: t.id,
            timeout_at: t.timeout_at,
        })
        .collect();
    assert_eq!(open.len(), 1);
    // Too generous a plan (301): the whole chain is refused and nothing moves.
    let before = book.accounts.clone();
    let greedy = vec![PlannedGrant {
        count: 301,
        ..plan[0].clone()
    }];
    let r = apply(
        &mut book,
        &eliminate(&open, &grants, &greedy, gate, "x", early, now()),
        now(),
        "system",
    );
    assert!(r.created.is_empty(), "{:?}", r.results);
    assert_eq!(book.accounts, before);
    let r = apply(
        &mut book,
        &eliminate(&open, &grants, &plan, gate, "x", early, now()),
        now(),
        "system",
    );
    assert!(
        r.results.iter().all(|x| *x == Ok(Outcome::Created)),
        "{:?}",
        r.results
    );
    assert_eq!(
        book.accounts[&id(TEAM_B)].balance.credits_posted
            - book.accounts[&id(TEAM_B)].balance.debits_posted,
        0
    );
    assert_eq!(book.accounts[&id(8)].balance.credits_posted, 300);
    assert_eq!(book.accounts[&id(POOL_B)].balance.available(), 0);
}

#[test]
fn an_expired_reservation_is_recorded_as_expired_when_eliminating() {
    let t = Uuid::now_v7();
    let chain = eliminate(
        &[OpenReservation {
            transfer_id: t,
            timeout_at: Some(now() - Duration::seconds(1)),
        }],
        &[],
        &[],
        Uuid::now_v7(),
        "x",
        now(),
        now(),
    );
    assert_eq!(chain.len(), 1);
    assert_eq!((chain[0].kind, chain[0].linked), (Kind::Expire, false));
    assert!(eliminate(&[], &[], &[], Uuid::now_v7(), "x", now(), now()).is_empty());
}
