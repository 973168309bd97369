//! The ledger through its HTTP API, against the real PostgreSQL and broker: concurrency at
//! the pool's last GPUs, immutability enforced by the database, idempotency, balances as
//! of a past time, expiry by the sweeper with two replicas, the supplier rule, consortium
//! scoping, coded refusals, and a seeded randomised concurrent workload after which the
//! invariants hold.

use chrono::SubsecRound;
use kaip_contracts::dto::gpu::{Account, BalanceAsOf, PoolLine, TransfersResult};
use kaip_contracts::{ConsortiumId, Role};
use kaip_testkit::{eventually, TestContext, TestService};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const MODEL: &str = "H100";
const PERIOD: &str = "2026H1";

struct Ledger {
    http: reqwest::Client,
    svc: TestService,
    officer: String,
}

impl Ledger {
    async fn start(ctx: &TestContext) -> Self {
        let svc = spawn(ctx, None).await;
        Self {
            http: reqwest::Client::new(),
            svc,
            officer: ctx.bearer(Role::Officer, None),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.svc.url(path))
            .header("Authorization", bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, &self.officer, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, &self.officer, None)
            .await
    }

    async fn open(&self, kind: &str, consortium: Option<Uuid>) -> Uuid {
        let id = Uuid::now_v7();
        let mut body = json!({
            "id": id, "model": MODEL, "period": PERIOD, "kind": kind,
            "name": format!("{kind} {id}"), "reason": "test",
        });
        if let Some(c) = consortium {
            body["consortium_id"] = json!(c);
        }
        if kind == "source" {
            body["source_type"] = json!("leased");
        }
        let (s, b) = self.post("/accounts", body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        id
    }

    /// A pool holding `gpus`, fed by a leased source.
    async fn pool(&self, gpus: i64) -> Uuid {
        let source = self.open("source", None).await;
        let pool = self.open("pool", None).await;
        let r = self
            .transfers(vec![
                json!({"id": Uuid::now_v7(), "debit_account": source, "credit_account": pool,
                "amount": gpus, "kind": "single", "code": "capacity", "reason": "lease signed"}),
            ])
            .await;
        assert_eq!(r.created, 1, "{r:?}");
        pool
    }

    async fn transfers(&self, ts: Vec<Value>) -> TransfersResult {
        let (s, b) = self.post("/transfers", json!({ "transfers": ts })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        serde_json::from_value(b).expect("result")
    }

    async fn account(&self, id: Uuid) -> Account {
        let (s, b) = self.get(&format!("/accounts/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        serde_json::from_value(b).expect("account")
    }

    async fn invariants(&self) -> Value {
        let (s, b) = self.get("/invariants").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }
}

async fn spawn(ctx: &TestContext, database: Option<&str>) -> TestService {
    let mut settings = ctx.settings(kaip_gpu_ledger::DEFAULTS);
    // Real contention: several HTTP workers and connections (a few: the PostgreSQL server
    // is shared by every test running at once).
    settings.server.workers = 4;
    settings.database.pool_size = 6;
    if let Some(db) = database {
        settings.database.name = db.to_owned();
    }
    ctx.spawn_with(kaip_gpu_ledger::definition(), settings)
        .await
}

fn transfer(debit: Uuid, credit: Uuid, amount: i64, kind: &str) -> Value {
    json!({"id": Uuid::now_v7(), "debit_account": debit, "credit_account": credit,
        "amount": amount, "kind": kind, "code": "grant", "reason": "test"})
}

fn status_of(r: &TransfersResult, i: usize) -> (&str, Option<&str>) {
    (r.results[i].status.as_str(), r.results[i].code.as_deref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_for_the_last_ten_gpus_exactly_ten_succeed() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(110).await;
    let first = l.open("grant", Some(Uuid::now_v7())).await;
    assert_eq!(
        l.transfers(vec![transfer(pool, first, 100, "single")])
            .await
            .created,
        1
    );

    let mut teams = Vec::new();
    for _ in 0..50 {
        teams.push(l.open("grant", Some(Uuid::now_v7())).await);
    }
    let requests = teams.iter().enumerate().map(|(i, team)| {
        // Half immediate grants, half offers (reservations): both draw on the same GPUs.
        let kind = if i % 2 == 0 { "single" } else { "pending" };
        let body = json!({ "transfers": [transfer(pool, *team, 1, kind)] });
        let req = l
            .http
            .post(l.svc.url("/transfers"))
            .header("Authorization", &l.officer)
            .json(&body);
        async move {
            let res = req.send().await.expect("request");
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<TransfersResult>().await.expect("result")
        }
    });
    let results = futures::future::join_all(requests).await;
    let created = results.iter().filter(|r| r.created == 1).count();
    assert_eq!(created, 10, "exactly the last 10 GPUs were handed out");
    for r in results.iter().filter(|r| r.created == 0) {
        assert_eq!(
            status_of(r, 0),
            ("refused", Some("EXCEEDS_CREDITS")),
            "{r:?}"
        );
        assert!(r.results[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("debits must not exceed credits"));
    }
    let p = l.account(pool).await;
    assert_eq!(p.balance.credits_posted, 110);
    assert_eq!(p.balance.debits_posted + p.balance.debits_pending, 110);
    let inv = l.invariants().await;
    assert_eq!(inv["ok"], true, "{inv:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_and_history_cannot_be_changed_in_the_database() {
    use diesel::RunQueryDsl;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(5).await;
    let mut conn = l.svc.conn();
    for sql in [
        "UPDATE ledger_transfers SET amount = amount + 1",
        "DELETE FROM ledger_transfers",
        "TRUNCATE ledger_transfers CASCADE",
        "UPDATE ledger_balance_history SET credits_posted = 0",
        "DELETE FROM ledger_balance_history",
        "UPDATE gpu_model_factors SET h100_factor = 3",
        "DELETE FROM gpu_model_factors",
        "DELETE FROM ledger_accounts",
        "UPDATE ledger_accounts SET kind = 'source'",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).expect_err(sql);
        assert!(err.to_string().contains("refused"), "{sql}: {err}");
    }
    // The limits hold in the database itself, whatever the code above it does.
    let err = diesel::sql_query(format!(
        "UPDATE ledger_accounts SET debits_posted = credits_posted + 1 WHERE id = '{pool}'"
    ))
    .execute(&mut conn)
    .expect_err("a pool over-allocated by hand");
    assert!(
        err.to_string().contains("debits_must_not_exceed_credits"),
        "{err}"
    );
    assert_eq!(l.account(pool).await.balance.credits_posted, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_transfer_returns_the_original_result_and_a_different_one_is_refused() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    let t = transfer(pool, team, 4, "single");
    assert_eq!(
        status_of(&l.transfers(vec![t.clone()]).await, 0),
        ("created", None)
    );
    assert_eq!(
        status_of(&l.transfers(vec![t.clone()]).await, 0),
        ("exists", None)
    );
    let mut changed = t.clone();
    changed["amount"] = json!(5);
    let r = l.transfers(vec![changed]).await;
    assert_eq!(
        status_of(&r, 0),
        ("refused", Some("EXISTS_WITH_DIFFERENT_FIELDS"))
    );
    assert!(r.results[0]
        .message
        .as_deref()
        .unwrap_or("")
        .contains("`amount`"));
    assert_eq!(
        l.account(team).await.balance.credits_posted,
        4,
        "applied once"
    );

    // The same repeated concurrently: one creates, the others see it.
    let fresh = transfer(pool, team, 1, "single");
    let all = futures::future::join_all((0..8).map(|_| l.transfers(vec![fresh.clone()]))).await;
    let created = all.iter().filter(|r| r.created == 1).count();
    assert_eq!(created, 1, "{all:?}");
    assert!(
        all.iter().all(|r| r.results[0].status != "refused"),
        "{all:?}"
    );
    assert_eq!(l.account(team).await.balance.credits_posted, 5);

    // An account repeated: the same answer; with another field, refused.
    let id = Uuid::now_v7();
    let body = json!({"id": id, "model": MODEL, "period": "2026H2", "kind": "pool", "name": "p", "reason": "r"});
    assert_eq!(
        l.post("/accounts", body.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(l.post("/accounts", body.clone()).await.0, StatusCode::OK);
    let mut other = body.clone();
    other["name"] = json!("q");
    let (s, b) = l.post("/accounts", other).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("ACCOUNT_EXISTS_WITH_DIFFERENT_FIELDS")
        )
    );
    let mut second = body;
    second["id"] = json!(Uuid::now_v7());
    let (s, b) = l.post("/accounts", second).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("ACCOUNT_CONFLICT")),
        "one pool per model and period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_chain_over_http_is_all_or_nothing_and_pending_transfers_post_or_void() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let (a, b) = (
        l.open("grant", Some(Uuid::now_v7())).await,
        l.open("grant", Some(Uuid::now_v7())).await,
    );
    let offer = transfer(pool, a, 6, "pending");
    let offer_id = offer["id"].clone();
    assert_eq!(l.transfers(vec![offer]).await.created, 1);
    // Accept (post) and give B 5 more in one chain: 4 left, so the chain fails whole.
    let mut post = json!({"id": Uuid::now_v7(), "kind": "post", "pending_id": offer_id, "code": "grant", "reason": "accepted", "linked": true});
    let r = l
        .transfers(vec![post.clone(), transfer(pool, b, 5, "single")])
        .await;
    assert_eq!(status_of(&r, 0), ("refused", Some("LINKED_EVENT_FAILED")));
    assert_eq!(status_of(&r, 1), ("refused", Some("EXCEEDS_CREDITS")));
    assert_eq!(
        l.account(a).await.balance.credits_pending,
        6,
        "the post was not kept"
    );
    post["linked"] = json!(true);
    let r = l
        .transfers(vec![post, transfer(pool, b, 4, "single")])
        .await;
    assert_eq!(r.created, 2, "{r:?}");
    assert_eq!(l.account(a).await.balance.credits_posted, 6);
    let void = json!({"id": Uuid::now_v7(), "kind": "void", "pending_id": offer_id, "code": "grant", "reason": "x"});
    let r = l.transfers(vec![void]).await;
    assert_eq!(
        status_of(&r, 0),
        ("refused", Some("PENDING_TRANSFER_ALREADY_POSTED"))
    );
    let (s, page) = l.get(&format!("/transfers?account={a}&limit=1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let next = page["next_cursor"].as_str().expect("a second page");
    let (_, page2) = l
        .get(&format!("/transfers?account={a}&limit=1&after={next}"))
        .await;
    assert_eq!(page2["items"][0]["kind"], "post");
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, posts) = l.get("/transfers?kind=post").await;
    assert_eq!(posts["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_can_be_read_as_of_any_past_time() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    let t0 = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    l.transfers(vec![transfer(pool, team, 3, "single")]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t1 = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    l.transfers(vec![transfer(pool, team, 4, "single")]).await;
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        let l = &l;
        async move {
            let q = t
                .map(|t| format!("?as_of={}", t.to_rfc3339().replace('+', "%2B")))
                .unwrap_or_default();
            let (s, b) = l.get(&format!("/accounts/{team}/balance{q}")).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            serde_json::from_value::<BalanceAsOf>(b).expect("balance")
        }
    };
    assert_eq!(at(Some(t0)).await.net_posted, 0);
    assert_eq!(at(Some(t1)).await.net_posted, 3);
    let now = at(None).await;
    assert_eq!((now.net_posted, now.net_posted_h100_eq.0), (7, 7));
    let (_, pools) = l.get("/pools?period=2026H1").await;
    let pools: Vec<PoolLine> = serde_json::from_value(pools).expect("pools");
    assert_eq!(pools.len(), 1);
    assert_eq!(
        (pools[0].held, pools[0].granted, pools[0].available),
        (10, 7, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaccepted_reservations_expire_once_with_two_replicas_sweeping() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let replica = spawn(&ctx, Some(&l.svc.database)).await;
    let pool = l.pool(10).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    let timeout = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut offers = Vec::new();
    for _ in 0..5 {
        let mut t = transfer(pool, team, 2, "pending");
        t["timeout_at"] = json!(timeout);
        offers.push(t);
    }
    assert_eq!(l.transfers(offers.clone()).await.created, 5);
    let full = l.transfers(vec![transfer(pool, team, 1, "single")]).await;
    assert_eq!(status_of(&full, 0), ("refused", Some("EXCEEDS_CREDITS")));
    // Accepting after the timeout is refused even before the sweeper gets there.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = json!({"id": Uuid::now_v7(), "kind": "post", "pending_id": offers[0]["id"], "code": "grant", "reason": "late"});
    let r = l.transfers(vec![late]).await;
    assert!(
        matches!(
            r.results[0].code.as_deref(),
            Some("PENDING_TRANSFER_EXPIRED")
        ),
        "{r:?}"
    );
    let back = eventually(Duration::from_secs(20), || async {
        let p = l.account(pool).await;
        (p.balance.debits_pending == 0).then_some(p)
    })
    .await
    .expect("the sweeper released the reservations");
    assert_eq!(back.balance.debits_posted, 0);
    tokio::time::sleep(Duration::from_millis(2500)).await; // both replicas swept again
    let (_, expiries) = l.get("/transfers?kind=expire").await;
    let items = expiries["items"].as_array().expect("items");
    assert_eq!(items.len(), 5, "one expiry per reservation: {expiries:#}");
    assert!(items
        .iter()
        .all(|t| t["created_by"] == "service:gpu-ledger" && t["created_role"] == "system"));
    assert_eq!(l.invariants().await["ok"], true);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_receives_no_grant_until_it_stops_supplying() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let consortium = Uuid::now_v7();
    let team = l.open("grant", Some(consortium)).await;
    let offer = transfer(pool, team, 2, "pending");
    assert_eq!(l.transfers(vec![offer.clone()]).await.created, 1);
    let (s, _) = l
        .post("/suppliers", json!({"consortium_id": consortium, "supplying": true, "reason": "leases 64 H100 to the programme"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let r = l.transfers(vec![transfer(pool, team, 1, "single")]).await;
    assert_eq!(
        status_of(&r, 0),
        ("refused", Some("SUPPLIER_CANNOT_RECEIVE_GRANT"))
    );
    assert!(r.results[0]
        .message
        .as_deref()
        .unwrap_or("")
        .contains("supplier-no-grant"));
    let accept = json!({"id": Uuid::now_v7(), "kind": "post", "pending_id": offer["id"], "code": "grant", "reason": "accept"});
    let r = l.transfers(vec![accept.clone()]).await;
    assert_eq!(
        status_of(&r, 0),
        ("refused", Some("SUPPLIER_CANNOT_RECEIVE_GRANT"))
    );
    let (s, _) = l
        .post("/suppliers", json!({"consortium_id": consortium, "supplying": false, "reason": "lease ended 2026-03-31"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(l.transfers(vec![accept]).await.created, 1);
    let (_, history) = l.get(&format!("/suppliers/{consortium}")).await;
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(2),
        "both records kept"
    );
    assert_eq!(history[0]["supplying"], false);
    let (s, b) = l
        .post(
            "/suppliers",
            json!({"consortium_id": consortium, "supplying": true, "reason": " "}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dated_end_of_supplying_refuses_grants_before_it_names_it_and_admits_them_from_then() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let consortium = Uuid::now_v7();
    let team = l.open("grant", Some(consortium)).await;
    let record = |body: Value| l.post("/suppliers", body);
    let (s, _) = record(json!({"consortium_id": consortium, "supplying": true, "reason": "leases 64 H100 to the programme"})).await;
    assert_eq!(s, StatusCode::CREATED);
    // A start carries no end date; an end date must be sane. Neither is recorded.
    let far = chrono::Utc::now() + chrono::Duration::days(366 * 30);
    for (body, rule) in [
        (
            json!({"consortium_id": consortium, "supplying": true, "ends_at": far, "reason": "x"}),
            "supplying: false",
        ),
        (
            json!({"consortium_id": consortium, "supplying": false, "ends_at": far, "reason": "x"}),
            "days of now",
        ),
    ] {
        let (s, b) = record(body).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
            "{b}"
        );
        let m = b["message"].as_str().unwrap_or("");
        assert!(m.starts_with("ends_at") && m.contains(rule), "{m}");
    }
    // The lease ends in a year: refused now, naming the rule and the date.
    let year = (chrono::Utc::now() + chrono::Duration::days(365)).trunc_subsecs(0);
    let (s, b) = record(json!({"consortium_id": consortium, "supplying": false, "ends_at": year, "reason": "the lease ends in a year"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let year_text = year.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let r = l.transfers(vec![transfer(pool, team, 1, "single")]).await;
    assert_eq!(
        status_of(&r, 0),
        ("refused", Some("SUPPLIER_CANNOT_RECEIVE_GRANT"))
    );
    let m = r.results[0].message.as_deref().unwrap_or("");
    assert!(
        m.contains("supplier-no-grant") && m.contains(&year_text),
        "{m}"
    );
    // Corrected (a new record): it ends in three seconds. Refused until then, naming the
    // corrected date; from then the grant goes through.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (s, b) = record(json!({"consortium_id": consortium, "supplying": false, "ends_at": soon, "reason": "lease ended early by agreement"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        b["ends_at"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()),
        Some(Some(soon.trunc_subsecs(6)))
    );
    let r = l.transfers(vec![transfer(pool, team, 1, "single")]).await;
    assert_eq!(
        status_of(&r, 0),
        ("refused", Some("SUPPLIER_CANNOT_RECEIVE_GRANT"))
    );
    let m = r.results[0].message.as_deref().unwrap_or("");
    assert!(!m.contains(&year_text), "the correction is in force: {m}");
    tokio::time::sleep(
        (soon - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200),
    )
    .await;
    assert_eq!(
        l.transfers(vec![transfer(pool, team, 1, "single")])
            .await
            .created,
        1
    );
    // Every record kept, newest first, the dates with them.
    let (_, history) = l.get(&format!("/suppliers/{consortium}")).await;
    let h = history.as_array().expect("records");
    assert_eq!(h.len(), 3, "{history:#}");
    assert!(
        h[1]["ends_at"].is_string() && h[2]["ends_at"].is_null(),
        "{history:#}"
    );
    // Announced as a dated end, not as "stopped now".
    let types = eventually(Duration::from_secs(30), || async {
        let types: Vec<String> = ledger_events(&ctx)
            .await
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        (types
            .iter()
            .filter(|t| *t == "GpuSupplyEndRecorded")
            .count()
            == 2)
            .then_some(types)
    })
    .await
    .expect("two GpuSupplyEndRecorded");
    assert_eq!(
        types.iter().filter(|t| *t == "GpuSupplierRecorded").count(),
        1,
        "{types:?}"
    );
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_are_reported_by_source_in_units_and_h100_eq() {
    use kaip_contracts::dto::gpu::PoolBySource;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let account = |model: &str, kind: &str, source_type: Option<&str>| {
        let id = Uuid::now_v7();
        let mut body = json!({"id": id, "model": model, "period": "2027H1", "kind": kind,
            "name": format!("{kind} {model} {}", source_type.unwrap_or("")), "reason": "capacity"});
        if let Some(t) = source_type {
            body["source_type"] = json!(t);
        }
        (id, body)
    };
    let mut ids = Vec::new();
    for (model, kind, t) in [
        ("H100", "pool", None),
        ("H100", "source", Some("leased")),
        ("H100", "source", Some("government")),
        ("B200", "pool", None),
        ("B200", "source", Some("leased")),
    ] {
        let (id, body) = account(model, kind, t);
        let (s, b) = l.post("/accounts", body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        ids.push(id);
    }
    let capacity = |from: Uuid, to: Uuid, n: i64| {
        json!({"id": Uuid::now_v7(), "debit_account": from, "credit_account": to,
            "amount": n, "kind": "single", "code": "capacity", "reason": "installed"})
    };
    let mut coming = capacity(ids[4], ids[3], 16);
    coming["kind"] = json!("pending");
    let r = l
        .transfers(vec![
            capacity(ids[1], ids[0], 300),
            capacity(ids[2], ids[0], 200),
            capacity(ids[0], ids[1], 44), // part of the lease handed back
            capacity(ids[4], ids[3], 100),
            coming,
        ])
        .await;
    assert_eq!(r.created, 5, "{r:?}");
    let (s, b) = l.get("/pools/sources?period=2027H1").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let report: Vec<PoolBySource> = serde_json::from_value(b).expect("report");
    let h100 = report.iter().find(|p| p.model == "H100").expect("H100");
    assert_eq!(h100.pool_account, ids[0]);
    assert_eq!(
        (h100.supplied, h100.leased, h100.government, h100.available),
        (456, 256, 200, 456)
    );
    assert_eq!(h100.supplied_h100_eq.0, 456);
    let by: Vec<(Uuid, i64)> = h100
        .sources
        .iter()
        .map(|s| (s.source_account, s.supplied))
        .collect();
    assert_eq!(by, [(ids[1], 256), (ids[2], 200)]);
    assert!(
        h100.sources.iter().all(|s| s.name.is_some()),
        "staff see the names"
    );
    let b200 = report.iter().find(|p| p.model == "B200").expect("B200");
    assert_eq!(
        (
            b200.supplied,
            b200.supplied_h100_eq.0,
            b200.leased_h100_eq.0
        ),
        (100, 200, 200)
    );
    assert_eq!((b200.government, b200.sources[0].pending), (0, 16));
    // A consortium user sees the pools' figures, not the sources' names; an integration
    // nothing; a bad filter is named.
    let team = ctx.bearer(Role::Consortium, Some(ConsortiumId::new()));
    let (s, b) = l
        .call(reqwest::Method::GET, "/pools/sources", &team, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let seen: Vec<PoolBySource> = serde_json::from_value(b).expect("report");
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .flat_map(|p| &p.sources)
            .all(|s| s.name.is_none()),
        "{seen:?}"
    );
    assert_eq!(seen.iter().map(|p| p.supplied_h100_eq.0).sum::<i64>(), 656);
    let ops = ctx.bearer(Role::Integration, None);
    let (s, _) = l
        .call(reqwest::Method::GET, "/pools/sources", &ops, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = l.get("/pools/sources?period=2027H3").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_consortia_see_and_do_only_what_they_may() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let (mine, theirs) = (ConsortiumId::new(), ConsortiumId::new());
    let my_grant = l.open("grant", Some(mine.0)).await;
    let their_grant = l.open("grant", Some(theirs.0)).await;
    l.transfers(vec![
        transfer(pool, my_grant, 1, "single"),
        transfer(pool, their_grant, 1, "single"),
    ])
    .await;
    let me = ctx.bearer(Role::Consortium, Some(mine));
    let get = |path: String, who: String| {
        let l = &l;
        async move { l.call(reqwest::Method::GET, &path, &who, None).await }
    };
    assert_eq!(
        get(format!("/accounts/{my_grant}"), me.clone()).await.0,
        StatusCode::OK
    );
    let (s, b) = get(format!("/accounts/{their_grant}"), me.clone()).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("ACCOUNT_NOT_FOUND"))
    );
    let (s, _) = get(format!("/accounts/{their_grant}/balance"), me.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = get(format!("/transfers?account={their_grant}"), me.clone()).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("ACCOUNT_NOT_FOUND"))
    );
    let (s, b) = get(format!("/transfers?account={my_grant}"), me.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["items"].as_array().map(Vec::len), Some(1));
    let (_, list) = get("/accounts".into(), me.clone()).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "only its own: {list:#}"
    );
    let (s, b) = l
        .call(
            reqwest::Method::POST,
            "/transfers",
            &me,
            Some(json!({"transfers": [transfer(pool, my_grant, 1, "single")]})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
    );
    let reviewer = ctx.bearer(Role::Reviewer, None);
    assert_eq!(
        get("/pools".into(), reviewer).await.0,
        StatusCode::FORBIDDEN
    );
    let operator = ctx.integration_bearer("gpu-operator", &["events:gpu-ledger"]);
    let (s, _) = l
        .call(
            reqwest::Method::POST,
            "/transfers",
            &operator,
            Some(json!({"transfers": [transfer(pool, my_grant, 1, "single")]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (code, bad) in ctx.bad_bearers(Role::Officer) {
        let mut req = l.http.get(l.svc.url("/pools"));
        if let Some(b) = bad {
            req = req.header("Authorization", b);
        }
        let res = req.send().await.expect("request");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["code"], code);
    }
    assert_eq!(
        l.account(pool).await.balance.debits_posted,
        2,
        "nothing moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_by_name_and_changes_nothing() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"id": Uuid::now_v7(), "model": MODEL, "period": "2026H3", "kind": "pool", "name": "p", "reason": "r"}),
            "period",
        ),
        (
            json!({"id": Uuid::now_v7(), "model": "h100", "period": PERIOD, "kind": "pool", "name": "p", "reason": "r"}),
            "model",
        ),
        (
            json!({"id": Uuid::now_v7(), "model": MODEL, "period": PERIOD, "kind": "grant", "name": "p", "reason": "r"}),
            "consortium_id",
        ),
        (
            json!({"id": Uuid::now_v7(), "model": MODEL, "period": PERIOD, "kind": "source", "name": "p", "reason": "r"}),
            "source_type",
        ),
        (
            json!({"id": Uuid::now_v7(), "model": MODEL, "period": PERIOD, "kind": "pool", "name": "p", "reason": " "}),
            "reason",
        ),
        (
            json!({"id": Uuid::now_v7(), "model": MODEL, "period": PERIOD, "kind": "pool", "name": "p\u{0}", "reason": "r"}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (s, b) = l.post("/accounts", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["code"], "VALIDATION_FAILED");
        assert!(
            b["message"].as_str().unwrap_or("").starts_with(field),
            "{field}: {b}"
        );
    }
    let (s, b) = l.post("/accounts", json!({"id": Uuid::now_v7(), "model": "X999", "period": PERIOD, "kind": "pool", "name": "p", "reason": "r"})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("GPU_MODEL_NOT_FOUND"))
    );
    let (s, b) = l.post("/transfers", json!({"transfers": []})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    let mut t = transfer(pool, team, 1, "single");
    t["reason"] = json!("bad\u{7}");
    let (s, b) = l.post("/transfers", json!({"transfers": [t]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("transfers[0].reason"),
        "{b}"
    );
    let mut t = transfer(pool, team, 1, "single");
    t["amount"] = json!("1");
    let (s, b) = l.post("/transfers", json!({"transfers": [t]})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_BODY"))
    );
    let r = l
        .transfers(vec![
            transfer(pool, team, 0, "single"),
            transfer(pool, team, i64::MAX, "single"),
            transfer(pool, Uuid::now_v7(), 1, "single"),
        ])
        .await;
    let codes: Vec<_> = r
        .results
        .iter()
        .map(|x| x.code.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        codes,
        [
            "AMOUNT_MUST_BE_POSITIVE",
            "EXCEEDS_CREDITS",
            "CREDIT_ACCOUNT_NOT_FOUND"
        ]
    );
    assert!(r.results[2]
        .message
        .as_deref()
        .unwrap_or("")
        .starts_with("transfers[2].credit_account"));
    let (s, b) = l
        .call(
            reqwest::Method::PUT,
            "/models/B200",
            &l.officer,
            Some(json!({"name": "B200", "h100_factor": 0, "reason": "r"})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    assert_eq!(l.account(team).await.balance, Default::default());
    let (_, models) = l.get("/models").await;
    assert_eq!(models.as_array().map(Vec::len), Some(2));
    assert!(models
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["code"] == "B200" && m["h100_factor"] == 2));
    assert_eq!(l.invariants().await["ok"], true);
}

/// A small, seeded generator (splitmix64): the workload is reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Offers (some expiring), accepts, voids, returns, and eliminations (a linked chain that
/// voids a team's reservations, returns its posted capacity to the pool and grants it to a
/// survivor), from 8 concurrent clients. Afterwards every ledger sums to zero, no account
/// breaks its limits, and replaying the transfers gives today's balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_random_concurrent_workload_keeps_every_invariant() {
    let seed: u64 = std::env::var("KAIP_LEDGER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
    println!("ledger workload seed: {seed} (KAIP_LEDGER_SEED={seed} reproduces the operations; their interleaving is the scheduler's)");
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(200).await;
    let mut teams = Vec::new();
    for _ in 0..6 {
        teams.push(l.open("grant", Some(Uuid::now_v7())).await);
    }
    let teams = std::sync::Arc::new(teams);
    let l = std::sync::Arc::new(l);
    let clients = (0..8u64).map(|client| {
        let l = l.clone();
        let teams = teams.clone();
        async move {
            let mut rng = Rng(seed ^ (client.wrapping_mul(0x2545_f491_4f6c_dd1d)));
            let mut pendings: Vec<Value> = Vec::new();
            let mut outcomes = 0usize;
            for _ in 0..25 {
                let team = teams[rng.below(teams.len() as u64) as usize];
                let batch = match rng.below(6) {
                    0 | 1 => {
                        let mut t = transfer(pool, team, 1 + rng.below(12) as i64, "pending");
                        if rng.below(2) == 0 {
                            t["timeout_at"] = json!(chrono::Utc::now() + chrono::Duration::milliseconds(200 + rng.below(1500) as i64));
                        }
                        pendings.push(t.clone());
                        vec![t]
                    }
                    2 if !pendings.is_empty() => {
                        let p = pendings.swap_remove(rng.below(pendings.len() as u64) as usize);
                        let kind = if rng.below(3) == 0 { "void" } else { "post" };
                        vec![json!({"id": Uuid::now_v7(), "kind": kind, "pending_id": p["id"], "code": "grant", "reason": "decided"})]
                    }
                    3 => vec![transfer(pool, team, 1 + rng.below(6) as i64, "single")],
                    4 => vec![transfer(team, pool, 1 + rng.below(4) as i64, "single")],
                    _ => {
                        // Elimination: one linked chain. Void the team's open reservations,
                        // return what it holds, grant the survivor the same.
                        let a = l.account(team).await;
                        let survivor = teams[(rng.below(teams.len() as u64 - 1) as usize + 1 + teams.iter().position(|t| *t == team).unwrap_or(0)) % teams.len()];
                        let mut chain: Vec<Value> = pendings
                            .iter()
                            .filter(|p| p["credit_account"] == json!(team))
                            .map(|p| json!({"id": Uuid::now_v7(), "kind": "void", "pending_id": p["id"], "code": "reclaim", "reason": "eliminated", "linked": true}))
                            .collect();
                        let held = a.balance.credits_posted - a.balance.debits_posted;
                        if held > 0 {
                            let mut back = transfer(team, pool, held, "single");
                            back["linked"] = json!(true);
                            back["code"] = json!("reclaim");
                            chain.push(back);
                            let mut on = transfer(pool, survivor, held, "single");
                            on["code"] = json!("reallocate");
                            chain.push(on);
                        } else if let Some(last) = chain.last_mut() {
                            last["linked"] = json!(false);
                        }
                        if chain.is_empty() {
                            continue;
                        }
                        chain
                    }
                };
                let r = l.transfers(batch.clone()).await;
                // A chain is all or nothing.
                let ok = r.results.iter().filter(|x| x.status != "refused").count();
                assert!(ok == 0 || ok == batch.len(), "seed {seed}: a chain applied in part: {r:?}");
                outcomes += r.created;
            }
            outcomes
        }
    });
    let created: usize = futures::future::join_all(clients).await.into_iter().sum();
    assert!(
        created > 50,
        "seed {seed}: the workload did too little ({created} transfers)"
    );
    // Reservations time out within 1.7 s of their offer; the sweeper passes every second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let settled = l.invariants().await;
    assert_eq!(settled["ok"], true, "seed {seed}: {settled:#}");
    let (_, overdue) = l.get("/transfers?kind=expire&limit=100").await;
    println!(
        "seed {seed}: {} expiries recorded",
        overdue["items"].as_array().map(Vec::len).unwrap_or(0)
    );
    println!("seed {seed}: {created} transfers; {settled}");
    for (ledger, sums) in settled["ledger_sums"].as_object().expect("sums") {
        assert_eq!(
            sums,
            &json!([0, 0]),
            "seed {seed}: {ledger} does not sum to zero"
        );
    }
    assert_eq!(
        settled["accounts_differing_from_replay"],
        json!([]),
        "seed {seed}"
    );
    // Every batch was announced on the broker, through the outbox.
    let topic = ctx.topic(kaip_contracts::topics::GPU_LEDGER);
    let announced = eventually(Duration::from_secs(30), || async {
        let n: usize = ctx
            .read_topic(&topic)
            .await
            .iter()
            .filter_map(|m| m.json())
            .filter(|e| e["type"] == "GpuTransfersRecorded")
            .map(|e| e["data"]["transfers"].as_array().map(Vec::len).unwrap_or(0))
            .sum();
        (n as u64 >= settled["transfers"].as_u64().unwrap_or(u64::MAX)).then_some(n)
    })
    .await;
    assert!(
        announced.is_some(),
        "seed {seed}: not every transfer reached the topic"
    );
}

// ---------------------------------------------------------------------------------------
// Offers, tranches and elimination, driven by the events the ledger consumes from the
// broker (scoring's SelectionPublished, milestones' GateDecided and TeamEliminated).
// ---------------------------------------------------------------------------------------

async fn publish<E: kaip_contracts::DomainEvent>(
    ctx: &TestContext,
    producer: &str,
    topic: &str,
    event: &E,
) {
    let env = kaip_contracts::EventEnvelope::wrap(
        producer,
        kaip_contracts::Actor::system(producer),
        event,
    )
    .expect("wrap");
    let payload = serde_json::to_vec(&env).expect("json");
    ctx.produce_raw(
        &ctx.topic(topic),
        &env.aggregate_id.to_string(),
        &payload,
        &[("kaip-event-type", E::TYPE)],
    )
    .await;
}

async fn select(ctx: &TestContext, l: &Ledger, teams: &[ConsortiumId]) -> kaip_contracts::CallId {
    use kaip_contracts::dto::intake::{GpuRequest, ResourceRequest};
    use kaip_contracts::events::{SelectedTeam, SelectionPublished};
    let call = kaip_contracts::CallId::new();
    let selected = teams
        .iter()
        .enumerate()
        .map(|(i, t)| SelectedTeam {
            proposal_id: kaip_contracts::ProposalId::new(),
            consortium_id: *t,
            consortium_name: format!("Team {i}"),
            title: format!("Model {i}"),
            rank: i as i32 + 1,
            score_centi: 8000 - i as i64,
            resources: ResourceRequest {
                gpus: vec![GpuRequest {
                    model: "B200".into(),
                    count: 512,
                }],
                ..Default::default()
            },
        })
        .collect();
    l.svc.wait_assigned().await;
    publish(
        ctx,
        "scoring",
        kaip_contracts::topics::SCORING,
        &SelectionPublished {
            call_id: call,
            selected,
            departure: None,
            override_reason: None,
            published_at: chrono::Utc::now(),
            replaces: None,
            team_maxima: None,
        },
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        let (_, b) = l.get("/teams").await;
        (b.as_array().map(Vec::len) == Some(teams.len())).then_some(())
    })
    .await
    .expect("the ledger learned the selection");
    call
}

/// Opens a pool of `model` for `period` holding `gpus`.
async fn pool_of(l: &Ledger, model: &str, period: &str, gpus: i64) -> Uuid {
    let mut ids = Vec::new();
    for kind in ["source", "pool"] {
        let id = Uuid::now_v7();
        let mut body = json!({"id": id, "model": model, "period": period, "kind": kind, "name": format!("{kind} {model} {period}"), "reason": "capacity"});
        if kind == "source" {
            body["source_type"] = json!("government");
        }
        let (s, b) = l.post("/accounts", body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        ids.push(id);
    }
    let r = l
        .transfers(vec![json!({"id": Uuid::now_v7(), "debit_account": ids[0], "credit_account": ids[1], "amount": gpus, "kind": "single", "code": "capacity", "reason": "installed"})])
        .await;
    assert_eq!(r.created, 1);
    ids[1]
}

async fn pools(l: &Ledger) -> Vec<PoolLine> {
    let (_, p) = l.get("/pools").await;
    serde_json::from_value(p).expect("pools")
}

fn offer_body(
    team: ConsortiumId,
    call: kaip_contracts::CallId,
    expires_in: i64,
    options: Value,
) -> Value {
    json!({"id": Uuid::now_v7(), "consortium_id": team, "call_id": call,
        "expires_at": chrono::Utc::now() + chrono::Duration::seconds(expires_in),
        "options": options, "reason": "selected in the 2026 call"})
}

/// Offers `team` one option of `gpus` B200 for `period`, released at `release_at`, and
/// accepts it: the tranche waits, reserved, for its date. The offer's id and the answer to
/// the acceptance.
async fn accept_dated_tranche(
    l: &Ledger,
    team: ConsortiumId,
    call: kaip_contracts::CallId,
    period: &str,
    gpus: i64,
    release_at: &impl serde::Serialize,
) -> (String, Value) {
    let (s, o) = l
        .post(
            "/offers",
            offer_body(team, call, 3600, json!([{"model": "B200", "tranches": [{"period": period, "count": gpus, "release_at": release_at}]}])),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let offer = o["id"].as_str().expect("id").to_owned();
    let (s, a) = l
        .post(&format!("/offers/{offer}/accept"), json!({"option": 0}))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["tranches"][0]["status"], "reserved", "{a}");
    (offer, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_in_two_forms_is_accepted_in_one_and_the_other_goes_back() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (team, other) = (ConsortiumId::new(), ConsortiumId::new());
    let call = select(&ctx, &l, &[team, other]).await;
    let b200 = pool_of(&l, "B200", "2027H1", 600).await;
    let h100 = pool_of(&l, "H100", "2027H1", 1100).await;
    pool_of(&l, "B200", "2027H2", 100).await;
    // 512 B200 or 1,024 H100 (one offer of 1,024 H100-eq), plus a B200 tranche at gate-1.
    let options = json!([
        {"model": "B200", "tranches": [{"period": "2027H1", "count": 448}, {"period": "2027H2", "count": 64, "release_gate": "gate-1"}]},
        {"model": "H100", "tranches": [{"period": "2027H1", "count": 1024}]}
    ]);
    let body = offer_body(team, call, 3600, options.clone());
    let (s, offer) = l.post("/offers", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{offer}");
    assert_eq!(
        (offer["status"].as_str(), offer["h100_eq"].as_i64()),
        (Some("open"), Some(1024))
    );
    let reserved: i64 = pools(&l).await.iter().map(|p| p.reserved).sum();
    assert_eq!(reserved, 448 + 64 + 1024, "both forms reserved while open");
    assert_eq!(
        l.post("/offers", body.clone()).await.0,
        StatusCode::CREATED,
        "a repeat answers the offer"
    );
    let mut changed = body.clone();
    changed["reason"] = json!("another");
    let (s, b) = l.post("/offers", changed).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("OFFER_EXISTS_WITH_DIFFERENT_FIELDS")
        )
    );

    // Another consortium can neither see nor accept it.
    let id = offer["id"].as_str().expect("id").to_owned();
    let theirs = ctx.bearer(Role::Consortium, Some(other));
    let (s, b) = l
        .call(
            reqwest::Method::POST,
            &format!("/offers/{id}/accept"),
            &theirs,
            Some(json!({"option": 0})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("OFFER_NOT_FOUND"))
    );
    let (s, _) = l
        .call(
            reqwest::Method::GET,
            &format!("/offers/{id}"),
            &theirs,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let mine = ctx.bearer(Role::Consortium, Some(team));
    let (s, b) = l
        .call(
            reqwest::Method::POST,
            &format!("/offers/{id}/accept"),
            &mine,
            Some(json!({"option": 2})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );
    let (s, accepted) = l
        .call(
            reqwest::Method::POST,
            &format!("/offers/{id}/accept"),
            &mine,
            Some(json!({"option": 0, "reason": "B200 suits our stack"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["tranches"][0]["status"], "released");
    assert_eq!(accepted["tranches"][1]["status"], "reserved");
    let (s, b) = l
        .call(
            reqwest::Method::POST,
            &format!("/offers/{id}/accept"),
            &mine,
            Some(json!({"option": 1})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("OFFER_ALREADY_ACCEPTED"))
    );
    let p = pools(&l).await;
    let line = |acct: Uuid| {
        p.iter()
            .find(|x| x.pool_account == acct)
            .cloned()
            .expect("line")
    };
    assert_eq!((line(b200).granted, line(b200).available), (448, 152));
    assert_eq!(
        (line(h100).reserved, line(h100).available),
        (0, 1100),
        "the H100 form went back"
    );
    assert_eq!(line(b200).available_h100_eq.0, 304);
    let (_, own) = l.call(reqwest::Method::GET, "/offers", &mine, None).await;
    assert_eq!(own.as_array().map(Vec::len), Some(1));
    let (_, none) = l.call(reqwest::Method::GET, "/offers", &theirs, None).await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_that_cannot_be_made_or_accepted_are_refused_with_their_code() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (team, supplier) = (ConsortiumId::new(), ConsortiumId::new());
    let call = select(&ctx, &l, &[team, supplier]).await;
    pool_of(&l, "H100", "2027H1", 100).await;
    let one =
        |count: i64| json!([{"model": "H100", "tranches": [{"period": "2027H1", "count": count}]}]);
    let cases = [
        (
            offer_body(ConsortiumId::new(), call, 60, one(10)),
            StatusCode::NOT_FOUND,
            "TEAM_NOT_SELECTED",
            "",
        ),
        (
            offer_body(
                team,
                call,
                60,
                json!([{"model": "B200", "tranches": [{"period": "2027H1", "count": 1}]}]),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "POOL_NOT_FOUND",
            "options[0].tranches[0]",
        ),
        (
            offer_body(team, call, 60, one(101)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "EXCEEDS_CREDITS",
            "options[0].tranches[0]",
        ),
        (
            offer_body(team, call, -1, one(10)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            "expires_at",
        ),
        (
            offer_body(
                team,
                call,
                60,
                json!([{"model": "H100", "tranches": [{"period": "2027H1", "count": 2}]}, {"model": "B200", "tranches": [{"period": "2027H1", "count": 2}]}]),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            "options[1]",
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, b) = l.post("/offers", body).await;
        assert_eq!((s, b["code"].as_str()), (status, Some(code)), "{b}");
        assert!(
            b["message"].as_str().unwrap_or("").starts_with(field),
            "{field}: {b}"
        );
    }
    // The supplier rule, named.
    l.post(
        "/suppliers",
        json!({"consortium_id": supplier, "supplying": true, "reason": "supplies H100"}),
    )
    .await;
    let (s, b) = l
        .post("/offers", offer_body(supplier, call, 60, one(10)))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("SUPPLIER_CANNOT_RECEIVE_GRANT")
        ),
        "{b}"
    );
    // An offer that expires: refused at acceptance, its reservation released by the sweeper.
    let (s, offer) = l.post("/offers", offer_body(team, call, 2, one(100))).await;
    assert_eq!(s, StatusCode::CREATED, "{offer}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let id = offer["id"].as_str().expect("id");
    let (s, b) = l
        .post(&format!("/offers/{id}/accept"), json!({"option": 0}))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("OFFER_EXPIRED"))
    );
    eventually(Duration::from_secs(20), || async {
        let (_, p) = l.get("/pools").await;
        (p[0]["available"] == 100).then_some(())
    })
    .await
    .expect("the expired offer's GPUs are back in the pool");
    let (_, o) = l.get(&format!("/offers/{id}")).await;
    assert_eq!(o["status"], "expired");
    assert_eq!(l.invariants().await["ok"], true);
}

/// The `type`s and `data` of every event the ledger published so far.
async fn ledger_events(ctx: &TestContext) -> Vec<(String, Value)> {
    let topic = ctx.topic(kaip_contracts::topics::GPU_LEDGER);
    ctx.read_topic(&topic)
        .await
        .iter()
        .filter_map(|m| m.json())
        .filter_map(|e| Some((e["type"].as_str()?.to_owned(), e["data"].clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaccepted_offer_expires_announced_once_with_two_replicas_sweeping() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let replica = spawn(&ctx, Some(&l.svc.database)).await;
    let team = ConsortiumId::new();
    let call = select(&ctx, &l, &[team]).await;
    pool_of(&l, "H100", "2027H1", 100).await;
    pool_of(&l, "B200", "2027H1", 50).await;
    let forms = json!([
        {"model": "H100", "tranches": [{"period": "2027H1", "count": 40}]},
        {"model": "B200", "tranches": [{"period": "2027H1", "count": 20}]},
    ]);
    // One offer lapses; another, accepted in time, must not be announced as expired.
    let (s, lapsed) = l
        .post("/offers", offer_body(team, call, 2, forms.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lapsed}");
    let (s, taken) = l.post("/offers", offer_body(team, call, 3, forms)).await;
    assert_eq!(s, StatusCode::CREATED, "{taken}");
    let taken_id = taken["id"].as_str().expect("id").to_owned();
    let (s, b) = l
        .post(&format!("/offers/{taken_id}/accept"), json!({"option": 1}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let lapsed_id = lapsed["id"].as_str().expect("id").to_owned();
    let expired = eventually(Duration::from_secs(30), || async {
        let events = ledger_events(&ctx).await;
        events
            .into_iter()
            .find(|(t, _)| t == "GpuOfferExpired")
            .map(|(_, d)| d)
    })
    .await
    .expect("GpuOfferExpired published");
    assert_eq!(expired["offer_id"], lapsed_id.as_str(), "{expired:#}");
    assert_eq!(expired["consortium_id"], json!(team), "{expired:#}");
    assert_eq!(expired["h100_eq"], 40);
    let returned = expired["returned"].as_array().expect("returned");
    let mut back: Vec<(String, i64)> = returned
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap_or("").to_owned(),
                r["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    back.sort();
    assert_eq!(back, [("B200".to_owned(), 20), ("H100".to_owned(), 40)]);
    let at =
        |k: &str| chrono::DateTime::parse_from_rfc3339(expired[k].as_str().unwrap_or("")).expect(k);
    assert!(at("expired_at") >= at("expires_at"), "{expired:#}");
    // Both replicas swept several more times: still one announcement, for that offer only.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The announcement above is on the topic for good, so a read that misses it is one the
    // broker answered short (a reader gives up after 20 s under load, or sees no watermarks
    // yet): read again until it is there, then count.
    let all: Vec<Value> = eventually(Duration::from_secs(60), || async {
        let all: Vec<Value> = ledger_events(&ctx)
            .await
            .into_iter()
            .filter(|(t, _)| t == "GpuOfferExpired")
            .map(|(_, d)| d)
            .collect();
        all.iter()
            .any(|d| d["offer_id"] == lapsed_id.as_str())
            .then_some(all)
    })
    .await
    .expect("the announcement is still on the topic");
    assert_eq!(all.len(), 1, "{all:#?}");
    let (_, o) = l.get(&format!("/offers/{lapsed_id}")).await;
    assert_eq!(o["status"], "expired");
    // The pools hold what the accepted offer did not take.
    let by_model: Vec<(String, i64)> = pools(&l)
        .await
        .into_iter()
        .map(|p| (p.model, p.available))
        .collect();
    assert!(by_model.contains(&("H100".to_owned(), 100)), "{by_model:?}");
    assert!(by_model.contains(&("B200".to_owned(), 30)), "{by_model:?}");
    assert_eq!(l.invariants().await["ok"], true);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_releases_survivors_tranches_and_an_elimination_reallocates_in_one_chain() {
    // Two half years that have not started on any day the test runs: an elimination takes
    // back only future capacity.
    let (h1, h2) = future_halves();
    use kaip_contracts::events::{GateDecided, Reallocation, TeamEliminated};
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (survivor, eliminated) = (ConsortiumId::new(), ConsortiumId::new());
    let call = select(&ctx, &l, &[survivor, eliminated]).await;
    pool_of(&l, "B200", &h1, 1000).await;
    pool_of(&l, "B200", &h2, 1000).await;
    let dated = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut offers = Vec::new();
    for team in [survivor, eliminated] {
        let options = json!([{"model": "B200", "tranches": [
            {"period": h1, "count": 256},
            {"period": h2, "count": 128, "release_gate": "gate-1"}
        ]}]);
        let (s, o) = l
            .post("/offers", offer_body(team, call, 3600, options))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let id = o["id"].as_str().expect("id").to_owned();
        let (s, a) = l
            .post(&format!("/offers/{id}/accept"), json!({"option": 0}))
            .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        offers.push(id);
    }
    // A dated tranche for the survivor, released by the sweeper when its date comes.
    let (_, o) = l
        .post("/offers", offer_body(survivor, call, 3600, json!([{"model": "B200", "tranches": [{"period": h2, "count": 32, "release_at": dated}]}])))
        .await;
    let dated_offer = o["id"].as_str().expect("id").to_owned();
    let (_, a) = l
        .post(
            &format!("/offers/{dated_offer}/accept"),
            json!({"option": 0}),
        )
        .await;
    assert_eq!(a["tranches"][0]["status"], "reserved", "{a}");
    let released = eventually(Duration::from_secs(20), || async {
        let (_, o) = l.get(&format!("/offers/{dated_offer}")).await;
        (o["tranches"][0]["status"] == "released").then_some(())
    })
    .await;
    assert!(
        released.is_some(),
        "the dated tranche was released on its date"
    );

    let gate = Uuid::now_v7();
    let decided_at = chrono::Utc::now();
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &GateDecided {
            gate_id: gate,
            gate: "gate-1".into(),
            passed: vec![survivor],
            eliminated: vec![eliminated],
            decided_at,
        },
    )
    .await;
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &TeamEliminated {
            gate_id: gate,
            gate: "gate-1".into(),
            consortium_id: eliminated,
            reason: "rank: lowest gate score".into(),
            reallocation: vec![
                Reallocation {
                    consortium_id: survivor,
                    model: "B200".into(),
                    period: h1.clone(),
                    count: 256,
                },
                Reallocation {
                    consortium_id: survivor,
                    model: "B200".into(),
                    period: h2.clone(),
                    count: 128,
                },
            ],
            decided_at,
        },
    )
    .await;
    let (_, o) = eventually(Duration::from_secs(60), || async {
        let (_, a) = l.get(&format!("/offers/{}", offers[0])).await;
        let (_, b) = l.get(&format!("/offers/{}", offers[1])).await;
        (a["tranches"][1]["status"] == "released" && b["tranches"][1]["status"] == "closed")
            .then_some((a, b))
    })
    .await
    .expect("the gate released the survivor's tranche and the elimination closed the other's");
    assert_eq!(
        o["tranches"][0]["status"], "released",
        "what the eliminated team was granted stays on record"
    );
    let grants = |team: ConsortiumId| {
        let l = &l;
        async move {
            let (_, page) = l
                .get(&format!("/accounts?consortium_id={team}&kind=grant"))
                .await;
            let accounts: Vec<Account> =
                serde_json::from_value(page["items"].clone()).expect("accounts");
            accounts
                .iter()
                .map(|a| a.balance.credits_posted - a.balance.debits_posted)
                .sum::<i64>()
        }
    };
    // The first half has not started at the decision: all of the eliminated team's capacity is future
    // capacity and went back to the pools, then to the survivor as the plan said.
    assert_eq!(grants(eliminated).await, 0);
    assert_eq!(grants(survivor).await, 256 + 128 + 32 + 256 + 128);
    let (_, p) = l.get("/pools").await;
    let pools: Vec<PoolLine> = serde_json::from_value(p).expect("pools");
    assert!(pools.iter().all(|p| p.reserved == 0), "{pools:?}");
    // Net positions: the 256 that came back and went out again count once, with the survivor
    // (gross flows said 2,256 held).
    assert_eq!(pools.iter().map(|p| p.held).sum::<i64>(), 2000);
    assert_eq!(
        pools.iter().map(|p| p.granted).sum::<i64>(),
        256 + 128 + 32 + 256 + 128
    );
    assert_eq!(
        pools.iter().map(|p| p.available).sum::<i64>(),
        2000 - (256 + 128 + 32 + 256 + 128)
    );
    let inv = l.invariants().await;
    assert_eq!(inv["ok"], true, "{inv:#}");
    // Announced through the outbox, and applied once.
    let topic = ctx.topic(kaip_contracts::topics::GPU_LEDGER);
    let types = eventually(Duration::from_secs(30), || async {
        let types: Vec<String> = ctx
            .read_topic(&topic)
            .await
            .iter()
            .filter_map(|m| m.json())
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect();
        types.iter().any(|t| t == "GpuGrantClosed").then_some(types)
    })
    .await
    .expect("GpuGrantClosed published");
    for t in [
        "GpuOfferMade",
        "GpuGranted",
        "GpuTrancheReleased",
        "GpuTransfersRecorded",
        "GpuAccountOpened",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    assert_eq!(types.iter().filter(|t| *t == "GpuGrantClosed").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elimination_plan_the_pools_cannot_honour_changes_nothing_and_is_dead_lettered() {
    // A half year that has not started on any day the test runs: the eliminated team's GPUs
    // for it come back to the pool (and are one short of the plan).
    let (h1, _) = future_halves();
    use kaip_contracts::events::{Reallocation, TeamEliminated};
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (survivor, eliminated) = (ConsortiumId::new(), ConsortiumId::new());
    let call = select(&ctx, &l, &[survivor, eliminated]).await;
    pool_of(&l, "B200", &h1, 300).await;
    let (_, o) = l
        .post(
            "/offers",
            offer_body(
                eliminated,
                call,
                3600,
                json!([{"model": "B200", "tranches": [{"period": h1, "count": 256}]}]),
            ),
        )
        .await;
    let id = o["id"].as_str().expect("id").to_owned();
    assert_eq!(
        l.post(&format!("/offers/{id}/accept"), json!({"option": 0}))
            .await
            .0,
        StatusCode::OK
    );
    let before = l.get("/pools").await.1;
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &TeamEliminated {
            gate_id: Uuid::now_v7(),
            gate: "gate-1".into(),
            consortium_id: eliminated,
            reason: "ineligible: not built from scratch".into(),
            // 256 come back, 44 are free: 301 is one too many.
            reallocation: vec![Reallocation {
                consortium_id: survivor,
                model: "B200".into(),
                period: h1.clone(),
                count: 301,
            }],
            decided_at: chrono::Utc::now(),
        },
    )
    .await;
    let dlq = ctx.topic(&kaip_contracts::topics::dead_letter_topic_of("gpu-ledger"));
    let letter = eventually(Duration::from_secs(60), || async {
        ctx.read_topic(&dlq).await.into_iter().next()
    })
    .await
    .expect("dead-lettered");
    let error = letter
        .headers
        .get("kaip-dlq-error")
        .cloned()
        .unwrap_or_default();
    assert!(error.contains("EXCEEDS_CREDITS"), "{error}");
    assert_eq!(l.get("/pools").await.1, before, "nothing moved");
    let (_, o) = l.get(&format!("/offers/{id}")).await;
    assert_eq!(o["tranches"][0]["status"], "released");
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_report_usage_idempotently_and_overruns_are_flagged() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    // A period that has not started (the next half year, from today's date): a grant counts
    // its whole length (a grant made during a period counts the hours left, see
    // a_mid_period_grant_counts_the_hours_left).
    let (period, start, end) = next_half();
    let full = (end - start).num_hours();
    assert!(full == 4_344 || full == 4_416, "{period}: {full} h");
    let period = period.as_str();
    let pool = pool_of(&l, MODEL, period, 10).await;
    let (team, other) = (ConsortiumId::new(), ConsortiumId::new());
    let grant = open_grant(&l, team, MODEL, period).await;
    open_grant(&l, other, MODEL, period).await;
    assert_eq!(
        l.transfers(vec![transfer(pool, grant, 1, "single")])
            .await
            .created,
        1
    );
    let operator = ctx.integration_bearer("operator-kisti", &[kaip_auth::scopes::WRITE_GPU_USAGE]);
    let report = |id: Uuid, hours: i64| json!({"id": id, "consortium_id": team, "model": MODEL, "period": period, "gpu_hours": hours, "note": "March"});
    let send = |bearer: String, body: Value| {
        let l = &l;
        async move {
            l.call(reqwest::Method::POST, "/usage", &bearer, Some(body))
                .await
        }
    };
    // 1 H100 for a first half is 181 days x 24 h = 4,344 GPU-hours (a second half 4,416).
    let first = Uuid::now_v7();
    let (s, r) = send(operator.clone(), report(first, full - 344)).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (
            r["granted_hours"].as_i64(),
            r["used_hours"].as_i64(),
            r["overrun"].as_bool()
        ),
        (Some(full), Some(full - 344), Some(false))
    );
    let (s, again) = send(operator.clone(), report(first, full - 344)).await;
    assert_eq!(
        (s, &again),
        (StatusCode::OK, &r),
        "a retry answers the original report"
    );
    let (s, b) = send(operator.clone(), report(first, full - 343)).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("USAGE_REPORT_EXISTS_WITH_DIFFERENT_FIELDS")
        )
    );
    let (s, r) = send(operator.clone(), report(Uuid::now_v7(), 345)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        (r["used_hours"].as_i64(), r["overrun"].as_bool()),
        (Some(full + 1), Some(true)),
        "one hour over: flagged"
    );
    // Refused: no scope, the wrong role, bad input.
    let unscoped = ctx.integration_bearer("operator-x", &["events:gpu-ledger"]);
    let (s, b) = send(unscoped, report(Uuid::now_v7(), 1)).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
    );
    let (s, _) = send(
        ctx.bearer(Role::Consortium, Some(team)),
        report(Uuid::now_v7(), 1),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (body, field) in [
        (
            json!({"id": Uuid::now_v7(), "consortium_id": team, "model": MODEL, "period": PERIOD, "gpu_hours": 0}),
            "gpu_hours",
        ),
        (
            json!({"id": Uuid::now_v7(), "consortium_id": team, "model": MODEL, "period": "2026H9", "gpu_hours": 1}),
            "period",
        ),
        (
            json!({"id": Uuid::now_v7(), "consortium_id": team, "model": MODEL, "period": PERIOD, "gpu_hours": 1, "note": "a\u{1b}[31m"}),
            "note",
        ),
    ] {
        let (s, b) = send(operator.clone(), body).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
            "{b}"
        );
        assert!(
            b["message"].as_str().unwrap_or("").starts_with(field),
            "{field}: {b}"
        );
    }
    // Utilisation: the team sees its own line, flagged; staff see every team.
    let (_, mine) = l
        .call(
            reqwest::Method::GET,
            "/utilisation",
            &ctx.bearer(Role::Consortium, Some(team)),
            None,
        )
        .await;
    let mine = mine.as_array().cloned().unwrap_or_default();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        (
            mine[0]["used_hours"].as_i64(),
            mine[0]["utilisation_permille"].as_i64(),
            mine[0]["overrun"].as_bool()
        ),
        (Some(full + 1), Some(1000), Some(true))
    );
    let (_, all) = l.get(&format!("/utilisation?period={period}")).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    let (_, theirs) = l
        .call(
            reqwest::Method::GET,
            "/utilisation",
            &ctx.bearer(Role::Consortium, Some(other)),
            None,
        )
        .await;
    assert_eq!(theirs[0]["used_hours"], 0);
}

async fn open_grant(l: &Ledger, team: ConsortiumId, model: &str, period: &str) -> Uuid {
    let id = Uuid::now_v7();
    let (s, b) = l
        .post(
            "/accounts",
            json!({"id": id, "model": model, "period": period, "kind": "grant",
                "consortium_id": team, "name": format!("grant {id}"), "reason": "test"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    id
}

/// A half year `year`H`half` (KST): its name, start and end (UTC).
fn half(
    year: i32,
    half: u32,
) -> (
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    use chrono::TimeZone;
    let kst = chrono::FixedOffset::east_opt(9 * 3600).expect("KST");
    let at = |y: i32, m: u32| {
        kst.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .expect("a KST date")
            .with_timezone(&chrono::Utc)
    };
    if half == 1 {
        (format!("{year}H1"), at(year, 1), at(year, 7))
    } else {
        (format!("{year}H2"), at(year, 7), at(year + 1, 1))
    }
}

/// The half year running now (KST), e.g. `2026H2`, with its start and end.
fn running_half() -> (
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    running_half_at(chrono::Utc::now())
}

/// The half year (KST) running at `at`, with its start and end.
fn running_half_at(
    at: chrono::DateTime<chrono::Utc>,
) -> (
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    use chrono::Datelike;
    let kst = at.with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("KST"));
    half(kst.year(), if kst.month() <= 6 { 1 } else { 2 })
}

/// The period running now (KST), e.g. `2026H2`, and when it ends.
fn current_half() -> (String, chrono::DateTime<chrono::Utc>) {
    let (period, _, end) = running_half();
    (period, end)
}

/// The half year after the one running now (KST), which has not started on any day the
/// tests run, with its start and end.
fn next_half() -> (
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    let (period, _, _) = running_half();
    let year: i32 = period[..4].parse().expect("year");
    if period.ends_with("H1") {
        half(year, 2)
    } else {
        half(year + 1, 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_period_grant_counts_the_hours_left() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (period, end) = current_half();
    if end - chrono::Utc::now() < chrono::Duration::hours(2) {
        // The last hours of a half year: too few hours are left for a grant made now to be
        // told from one more (and none at all in the last), so there is nothing to check.
        eprintln!("skipped: {period} ends at {end}");
        return;
    }
    let full_hours = if period.ends_with("H1") { 4_344 } else { 4_416 };
    let pool = pool_of(&l, MODEL, &period, 10).await;
    let team = ConsortiumId::new();
    let grant = open_grant(&l, team, MODEL, &period).await;
    // 3 GPUs granted now, part-way through the running half year.
    let t = transfer(pool, grant, 3, "single");
    assert_eq!(l.transfers(vec![t.clone()]).await.created, 1);
    let created_at = |id: &str| {
        let l = &l;
        let id = id.to_owned();
        async move {
            let (_, recorded) = l.get(&format!("/transfers/{id}")).await;
            serde_json::from_value::<chrono::DateTime<chrono::Utc>>(recorded["created_at"].clone())
                .expect("created_at")
        }
    };
    let at = created_at(t["id"].as_str().unwrap()).await;
    let micros = |from: chrono::DateTime<chrono::Utc>| {
        i128::from((end - from).num_microseconds().expect("micros"))
    };
    const HOUR: i128 = 3_600_000_000;
    // Whole hours from the grant to the period's end.
    let hours_left = (end - at).num_seconds() / 3600;
    assert!(
        hours_left < full_hours,
        "the grant is made during {period}: {hours_left} h left of {full_hours}"
    );
    // 3 GPUs x the exact time left, floored once to whole GPU-hours.
    let granted = i64::try_from(3 * micros(at) / HOUR).expect("hours");
    assert!(granted >= 3 * hours_left && granted < 3 * (hours_left + 1));
    let operator = ctx.integration_bearer("operator-kisti", &[kaip_auth::scopes::WRITE_GPU_USAGE]);
    let report = |hours: i64| {
        json!({"id": Uuid::now_v7(), "consortium_id": team, "model": MODEL,
        "period": period, "gpu_hours": hours, "note": "since the grant"})
    };
    // Up to the pro-rated hours: not an overrun (it would be one hour more, below).
    let (s, r) = l
        .call(
            reqwest::Method::POST,
            "/usage",
            &operator,
            Some(report(granted)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (
            r["granted_hours"].as_i64(),
            r["used_hours"].as_i64(),
            r["overrun"].as_bool()
        ),
        (Some(granted), Some(granted), Some(false)),
        "3 GPUs x {hours_left} h, not x {full_hours} h"
    );
    // One hour past them: an overrun, though far below 3 x the whole period's hours.
    let (s, r) = l
        .call(reqwest::Method::POST, "/usage", &operator, Some(report(1)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        (
            r["granted_hours"].as_i64(),
            r["used_hours"].as_i64(),
            r["overrun"].as_bool()
        ),
        (Some(granted), Some(granted + 1), Some(true))
    );
    assert!(granted + 1 < 3 * full_hours);
    let (_, lines) = l.get(&format!("/utilisation?period={period}")).await;
    assert_eq!(
        (
            lines[0]["granted_gpus"].as_i64(),
            lines[0]["granted_hours"].as_i64(),
            lines[0]["overrun"].as_bool()
        ),
        (Some(3), Some(granted), Some(true)),
        "{lines}"
    );
    // A reclaim of 1 GPU now takes off the hours it will not be held.
    let back_id = Uuid::now_v7();
    let back = l
        .transfers(vec![json!({"id": back_id, "debit_account": grant,
        "credit_account": pool, "amount": 1, "kind": "single", "code": "reclaim",
        "reason": "test"})])
        .await;
    assert_eq!(back.created, 1, "{back:?}");
    let back_at = created_at(&back_id.to_string()).await;
    let (_, lines) = l.get(&format!("/utilisation?period={period}")).await;
    let after = lines[0]["granted_hours"].as_i64().unwrap_or_default();
    // 3 GPUs from the grant, less 1 from the reclaim, floored once.
    let expected = i64::try_from((3 * micros(at) - micros(back_at)) / HOUR).expect("hours");
    assert_eq!(after, expected, "{lines}");
    assert!(after < granted && after >= granted - hours_left - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acceptances_of_one_offer_grant_it_once() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let team = ConsortiumId::new();
    let call = select(&ctx, &l, &[team]).await;
    pool_of(&l, "B200", "2027H1", 512).await;
    pool_of(&l, "H100", "2027H1", 1024).await;
    let options = json!([
        {"model": "B200", "tranches": [{"period": "2027H1", "count": 512}]},
        {"model": "H100", "tranches": [{"period": "2027H1", "count": 1024}]}
    ]);
    let (s, offer) = l
        .post("/offers", offer_body(team, call, 3600, options))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{offer}");
    let id = offer["id"].as_str().expect("id").to_owned();
    let mine = ctx.bearer(Role::Consortium, Some(team));
    let attempts = (0..10).map(|i| {
        let (l, mine, id) = (&l, mine.clone(), id.clone());
        async move {
            l.call(
                reqwest::Method::POST,
                &format!("/offers/{id}/accept"),
                &mine,
                Some(json!({"option": i % 2})),
            )
            .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{answers:?}");
    for (s, b) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*s, b["code"].as_str()),
            (StatusCode::CONFLICT, Some("OFFER_ALREADY_ACCEPTED"))
        );
    }
    let granted: i64 = pools(&l).await.iter().map(|p| p.granted).sum();
    let reserved: i64 = pools(&l).await.iter().map(|p| p.reserved).sum();
    assert!(
        granted == 512 || granted == 1024,
        "one form granted: {granted}"
    );
    assert_eq!(reserved, 0, "the other form went back");
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_is_announced_in_ordered_parts_under_the_broker_message_limit() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let n = kaip_contracts::dto::gpu::MAX_BATCH;
    let pool = l.pool(n as i64).await;
    let grant = l.open("grant", Some(Uuid::now_v7())).await;
    // Half pending, each pending posted right after it in the same batch.
    let mut ts = Vec::with_capacity(n);
    while ts.len() < n {
        let p = Uuid::now_v7();
        ts.push(
            json!({"id": p, "debit_account": pool, "credit_account": grant,
            "amount": 1, "kind": "pending", "code": "grant", "reason": "test"}),
        );
        ts.push(
            json!({"id": Uuid::now_v7(), "debit_account": pool, "credit_account": grant,
            "amount": 1, "kind": "post", "pending_id": p, "code": "grant", "reason": "test"}),
        );
    }
    let r = l.transfers(ts.clone()).await;
    assert_eq!(r.created as usize, n, "{:?}", &r.results[..2]);
    let topic = ctx.topic(kaip_contracts::topics::GPU_LEDGER);
    let want_key = kaip_contracts::events::ledger_key(MODEL, PERIOD).to_string();
    let parts = eventually(Duration::from_secs(60), || async {
        let msgs = ctx.read_topic(&topic).await;
        let parts: Vec<(usize, Option<Vec<u8>>, Value)> = msgs
            .iter()
            .filter_map(|m| {
                let e = m.json()?;
                (e["type"] == "GpuTransfersRecorded"
                    && e["data"]["transfers"].as_array()?.len() > 1)
                    .then(|| (m.payload.as_ref().map_or(0, Vec::len), m.key.clone(), e))
            })
            .collect();
        let total: usize = parts
            .iter()
            .map(|(_, _, e)| e["data"]["transfers"].as_array().map_or(0, Vec::len))
            .sum();
        (total >= n).then_some(parts)
    })
    .await
    .expect("every transfer of the batch reached the topic");
    assert!(parts.len() > 1, "one event for {n} transfers");
    let mut seen: Vec<Value> = Vec::new();
    for (i, (bytes, key, e)) in parts.iter().enumerate() {
        assert!(*bytes < 1_000_000, "part {i} is {bytes} bytes");
        assert_eq!(key.as_deref(), Some(want_key.as_bytes()), "part {i} key");
        assert_eq!(e["data"]["part"], json!(i + 1));
        assert_eq!(e["data"]["parts"], json!(parts.len()));
        seen.extend(e["data"]["transfers"].as_array().unwrap().iter().cloned());
    }
    // In order: every post after its pending, every transfer once.
    let ids: Vec<&Value> = seen.iter().map(|t| &t["id"]).collect();
    let sent: Vec<&Value> = ts.iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_records_refuse_truncate_and_delete() {
    use diesel::RunQueryDsl;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let mut conn = l.svc.conn();
    for table in [
        "gpu_offers",
        "gpu_offer_reservations",
        "gpu_offer_acceptances",
        "gpu_tranches",
        "gpu_eliminations",
        "gpu_model_factors",
        "gpu_supplier_records",
        "gpu_usage_reports",
        "gpu_award_refusals",
    ] {
        let count = |conn: &mut diesel::PgConnection| -> i64 {
            diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
                .get_result::<Count>(conn)
                .expect("count")
                .n
        };
        let before = count(&mut conn);
        // With CASCADE the trigger is what refuses it (without, a referenced table's foreign
        // keys refuse it first; a table no one references reaches the trigger).
        let sql = format!("TRUNCATE {table} CASCADE");
        let err = diesel::sql_query(&sql).execute(&mut conn).expect_err(&sql);
        assert!(
            err.to_string()
                .contains(&format!("TRUNCATE on {table} refused")),
            "{sql}: {err}"
        );
        let sql = format!("TRUNCATE {table}");
        diesel::sql_query(&sql).execute(&mut conn).expect_err(&sql);
        if before > 0 {
            let sql = format!("DELETE FROM {table}");
            let err = diesel::sql_query(&sql).execute(&mut conn).expect_err(&sql);
            assert!(
                err.to_string()
                    .contains(&format!("DELETE on {table} refused")),
                "{sql}: {err}"
            );
        }
        assert_eq!(count(&mut conn), before, "{table} changed");
    }
    let mut conn = l.svc.conn();
    assert!(
        diesel::sql_query("SELECT count(*) AS n FROM gpu_model_factors")
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
            > 0,
        "the seeded factors are there to refuse a DELETE of"
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweepers_expiries_are_audited_as_the_service_and_its_operation() {
    use diesel::RunQueryDsl;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(4).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    let mut t = transfer(pool, team, 2, "pending");
    t["timeout_at"] = json!(chrono::Utc::now() + chrono::Duration::milliseconds(500));
    assert_eq!(l.transfers(vec![t.clone()]).await.created, 1);
    eventually(Duration::from_secs(20), || async {
        (l.account(pool).await.balance.debits_pending == 0).then_some(())
    })
    .await
    .expect("the sweeper expired the reservation");
    #[derive(diesel::QueryableByName, Debug)]
    struct Op {
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor_sub: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor_role: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        operation: String,
    }
    let mut conn = l.svc.conn();
    let ops: Vec<Op> = diesel::sql_query(format!(
        "SELECT DISTINCT o.actor_sub, o.actor_role, o.operation FROM audit_changes c \
         JOIN audit_operations o ON o.id = c.operation_id \
         WHERE c.table_name = 'ledger_transfers' AND c.after->>'pending_id' = '{}'",
        t["id"].as_str().unwrap()
    ))
    .load(&mut conn)
    .expect("audit");
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].actor_sub, "service:gpu-ledger", "{ops:?}");
    assert_eq!(ops[0].actor_role, "system", "{ops:?}");
    assert_eq!(ops[0].operation, "sweeper:expire", "{ops:?}");
}

/// The audit trail records a batch's transfers with one statement (a statement-level
/// trigger over the INSERT's rows), and records exactly what the row trigger did: one change
/// per transfer, in order, under the request's one operation, with the row as `after` and
/// every id it references as an entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_transfers_are_audited_row_by_row_in_one_operation() {
    use diesel::RunQueryDsl;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(10).await;
    let (a, b) = (
        l.open("grant", Some(Uuid::now_v7())).await,
        l.open("grant", Some(Uuid::now_v7())).await,
    );
    let batch = vec![
        transfer(pool, a, 2, "single"),
        transfer(pool, b, 3, "pending"),
        transfer(pool, a, 0, "single"), // refused: AMOUNT_MUST_BE_POSITIVE, not recorded
        transfer(pool, b, 1, "single"),
    ];
    let r = l.transfers(batch.clone()).await;
    assert_eq!(r.created, 3, "{r:?}");
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Change {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        operation: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor_role: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        key_is_the_id: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        after_is_the_row: bool,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        entity_ids: Vec<String>,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        want_ids: Vec<String>,
    }
    let ids: Vec<String> = batch
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let mut conn = l.svc.conn();
    let changes: Vec<Change> = diesel::sql_query(format!(
        "SELECT t.id::text AS id, o.operation, o.actor_role, c.action, \
                c.row_key = jsonb_build_object('id', t.id) AS key_is_the_id, \
                c.after = to_jsonb(t) AND c.before IS NULL AS after_is_the_row, \
                c.entity_ids, \
                ARRAY(SELECT DISTINCT v FROM unnest(ARRAY[t.id::text, t.debit_account_id::text, \
                      t.credit_account_id::text]) v ORDER BY v) AS want_ids \
           FROM audit_changes c \
           JOIN audit_operations o ON o.id = c.operation_id \
           JOIN ledger_transfers t ON t.id::text = c.row_key->>'id' \
          WHERE c.table_name = 'ledger_transfers' AND t.id::text IN ('{}') \
          ORDER BY c.seq",
        ids.join("', '")
    ))
    .load(&mut conn)
    .expect("audit");
    let recorded: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        recorded,
        vec![ids[0].as_str(), ids[1].as_str(), ids[3].as_str()],
        "one change per created transfer, in the batch's order"
    );
    for c in &changes {
        assert_eq!(
            (
                c.operation.as_str(),
                c.actor_role.as_str(),
                c.action.as_str()
            ),
            ("POST /transfers", "officer", "insert"),
            "{c:?}"
        );
        assert!(c.key_is_the_id && c.after_is_the_row, "{c:?}");
        let mut got = c.entity_ids.clone();
        got.sort();
        assert_eq!(got, c.want_ids, "the transfer's id and its accounts' ids");
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let ops: Count = diesel::sql_query(format!(
        "SELECT count(DISTINCT c.operation_id) AS n FROM audit_changes c \
          WHERE c.table_name = 'ledger_transfers' AND c.row_key->>'id' IN ('{}')",
        ids.join("', '")
    ))
    .get_result(&mut conn)
    .expect("operations");
    assert_eq!(ops.n, 1, "the batch is one operation");
    // A post names its pending too: the pending's id is among its entity ids.
    let post_id = Uuid::now_v7();
    let r = l
        .transfers(vec![
            json!({"id": post_id, "kind": "post", "pending_id": ids[1],
            "code": "grant", "reason": "accepted"}),
        ])
        .await;
    assert_eq!(r.created, 1, "{r:?}");
    #[derive(diesel::QueryableByName, Debug)]
    struct Posted {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        after_is_the_row: bool,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
        entity_ids: Vec<String>,
    }
    let posted: Posted = diesel::sql_query(format!(
        "SELECT c.after = to_jsonb(t) AND c.before IS NULL AS after_is_the_row, c.entity_ids \
           FROM audit_changes c JOIN ledger_transfers t ON t.id::text = c.row_key->>'id' \
          WHERE c.table_name = 'ledger_transfers' AND t.id = '{post_id}'"
    ))
    .get_result(&mut conn)
    .expect("the post's change");
    assert!(posted.after_is_the_row, "{posted:?}");
    let mut got = posted.entity_ids.clone();
    got.sort();
    let mut want = vec![
        post_id.to_string(),
        ids[1].clone(),
        pool.to_string(),
        b.to_string(),
    ];
    want.sort();
    want.dedup();
    assert_eq!(got, want, "the post, its pending and the accounts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_passed_before_acceptance_or_while_supplying_still_releases_its_tranche() {
    use kaip_contracts::events::GateDecided;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (late, supplier) = (ConsortiumId::new(), ConsortiumId::new());
    let call = select(&ctx, &l, &[late, supplier]).await;
    pool_of(&l, "B200", "2027H1", 1000).await;
    pool_of(&l, "B200", "2027H2", 1000).await;
    let options = || {
        json!([{"model": "B200", "tranches": [
            {"period": "2027H1", "count": 16},
            {"period": "2027H2", "count": 8, "release_gate": "gate-7"}
        ]}])
    };
    // The supplier accepts before the gate, then starts supplying GPUs.
    let (s, o) = l
        .post("/offers", offer_body(supplier, call, 3600, options()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let supplier_offer = o["id"].as_str().expect("id").to_owned();
    let (s, a) = l
        .post(
            &format!("/offers/{supplier_offer}/accept"),
            json!({"option": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, b) = l
        .post(
            "/suppliers",
            json!({"consortium_id": supplier, "supplying": true, "reason": "leases 64 H100"}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    // The late team's offer is made, and the gate passes, before it accepts.
    let (s, o) = l
        .post("/offers", offer_body(late, call, 3600, options()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let late_offer = o["id"].as_str().expect("id").to_owned();
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &GateDecided {
            gate_id: Uuid::now_v7(),
            gate: "gate-7".into(),
            passed: vec![late, supplier],
            eliminated: vec![],
            decided_at: chrono::Utc::now(),
        },
    )
    .await;
    let mut conn = l.svc.conn();
    eventually(Duration::from_secs(60), || {
        use diesel::RunQueryDsl;
        let n = diesel::sql_query("SELECT count(*) AS n FROM gpu_gate_passes")
            .get_result::<Count>(&mut conn)
            .map(|c| c.n)
            .unwrap_or(0);
        async move { (n == 2).then_some(()) }
    })
    .await
    .expect("the gate's outcome was stored");
    let (s, a) = l
        .post(
            &format!("/offers/{late_offer}/accept"),
            json!({"option": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let status = |id: String| {
        let l = &l;
        async move {
            let (_, o) = l.get(&format!("/offers/{id}")).await;
            o["tranches"][1]["status"].as_str().unwrap_or("").to_owned()
        }
    };
    eventually(Duration::from_secs(20), || async {
        (status(late_offer.clone()).await == "released").then_some(())
    })
    .await
    .expect("a tranche accepted after its gate passed is released");
    // The supplier's tranche waits, visibly reserved, until it stops supplying.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(supplier_offer.clone()).await, "reserved");
    let (s, b) = l
        .post(
            "/suppliers",
            json!({"consortium_id": supplier, "supplying": false, "reason": "lease ended"}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    eventually(Duration::from_secs(20), || async {
        (status(supplier_offer.clone()).await == "released").then_some(())
    })
    .await
    .expect("the refused release is retried once supplying ends");
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_totals_follow_recording_order_not_a_replicas_clock() {
    use diesel::RunQueryDsl;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let team = ConsortiumId::new();
    // A report recorded by a replica whose clock ran an hour ahead.
    let mut conn = l.svc.conn();
    diesel::sql_query(format!(
        "INSERT INTO gpu_usage_reports (id, consortium_id, model, period, gpu_hours, used_before, \
         granted_hours, overrun, note, reported_by, reported_role, reported_at) VALUES \
         ('{}', '{}', '{MODEL}', '{PERIOD}', 10, 0, 0, true, 'skewed', 'operator', 'integration', \
         now() + interval '1 hour')",
        Uuid::now_v7(),
        team.0
    ))
    .execute(&mut conn)
    .expect("the skewed replica's report");
    let operator = ctx.integration_bearer("operator-kisti", &[kaip_auth::scopes::WRITE_GPU_USAGE]);
    let mut used = Vec::new();
    for hours in [5, 7] {
        let body = json!({"id": Uuid::now_v7(), "consortium_id": team, "model": MODEL,
            "period": PERIOD, "gpu_hours": hours, "note": "April"});
        let (s, r) = l
            .call(reqwest::Method::POST, "/usage", &operator, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        used.push(r["used_hours"].as_i64());
    }
    assert_eq!(used, [Some(15), Some(22)], "no hours dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eliminated_team_gets_no_offer_nor_acceptance_and_its_open_offer_shows_voided() {
    use kaip_contracts::events::TeamEliminated;
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let team = ConsortiumId::new();
    let call = select(&ctx, &l, &[team]).await;
    pool_of(&l, "B200", "2027H1", 1000).await;
    let options = || json!([{"model": "B200", "tranches": [{"period": "2027H1", "count": 16}]}]);
    let (s, o) = l
        .post("/offers", offer_body(team, call, 3600, options()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let open = o["id"].as_str().expect("id").to_owned();
    l.svc.wait_assigned().await;
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &TeamEliminated {
            gate_id: Uuid::now_v7(),
            gate: "gate-2".into(),
            consortium_id: team,
            reason: "lowest gate score".into(),
            reallocation: vec![],
            decided_at: chrono::Utc::now(),
        },
    )
    .await;
    let status = eventually(Duration::from_secs(60), || async {
        let (_, o) = l.get(&format!("/offers/{open}")).await;
        (o["status"] != "open").then_some(o["status"].clone())
    })
    .await
    .expect("the elimination voided the open offer");
    assert_eq!(status, "voided");
    let (s, b) = l
        .post("/offers", offer_body(team, call, 3600, options()))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("TEAM_ELIMINATED")),
        "{b}"
    );
    let (s, b) = l
        .post(&format!("/offers/{open}/accept"), json!({"option": 0}))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("TEAM_ELIMINATED")),
        "{b}"
    );
    let reserved: i64 = pools(&l).await.iter().map(|p| p.reserved).sum();
    assert_eq!(reserved, 0, "nothing reserved for an eliminated team");
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_get_the_original_or_a_coded_refusal_never_a_500() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let team = ConsortiumId::new();
    let call = select(&ctx, &l, &[team]).await;
    pool_of(&l, "B200", "2027H1", 1000).await;
    // One offer, sent 8 times at once.
    let offer = offer_body(
        team,
        call,
        3600,
        json!([{"model": "B200", "tranches": [{"period": "2027H1", "count": 8}]}]),
    );
    let answers = futures::future::join_all((0..8).map(|_| l.post("/offers", offer.clone()))).await;
    for (s, b) in &answers {
        assert!(
            *s == StatusCode::CREATED || *s == StatusCode::OK,
            "{s}: {b}"
        );
        assert_eq!(b["id"], offer["id"], "{b}");
    }
    let reserved: i64 = pools(&l).await.iter().map(|p| p.reserved).sum();
    assert_eq!(reserved, 8, "reserved once");
    // One account, sent 8 times at once.
    let id = Uuid::now_v7();
    let account = json!({"id": id, "model": MODEL, "period": PERIOD, "kind": "grant",
        "consortium_id": Uuid::now_v7(), "name": "twin", "reason": "test"});
    let answers =
        futures::future::join_all((0..8).map(|_| l.post("/accounts", account.clone()))).await;
    for (s, b) in &answers {
        assert!(
            *s == StatusCode::CREATED || *s == StatusCode::OK,
            "{s}: {b}"
        );
        assert_eq!(b["id"], json!(id), "{b}");
    }
    // One usage report id, sent for 8 different teams at once: one recorded, the rest refused.
    let operator = ctx.integration_bearer("operator-kisti", &[kaip_auth::scopes::WRITE_GPU_USAGE]);
    let rid = Uuid::now_v7();
    let answers = futures::future::join_all((0..8).map(|_| {
        let body = json!({"id": rid, "consortium_id": ConsortiumId::new(), "model": MODEL,
            "period": PERIOD, "gpu_hours": 3, "note": "retry"});
        let operator = operator.clone();
        let l = &l;
        async move {
            l.call(reqwest::Method::POST, "/usage", &operator, Some(body))
                .await
        }
    }))
    .await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (s, b) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(
            b["code"], "USAGE_REPORT_EXISTS_WITH_DIFFERENT_FIELDS",
            "{s}: {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_award_the_pool_cannot_honour_leaves_the_winner_selected_for_an_officer_to_offer(
) {
    use kaip_contracts::events::{GpuAward, Replacement, SelectedTeam, SelectionPublished};
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    l.svc.wait_assigned().await;
    let (winner, call) = (ConsortiumId::new(), kaip_contracts::CallId::new());
    pool_of(&l, "B200", "2027H1", 500).await;
    let ev = SelectionPublished {
        call_id: call,
        selected: vec![SelectedTeam {
            proposal_id: kaip_contracts::ProposalId::new(),
            consortium_id: winner,
            consortium_name: "Gaon".into(),
            title: "Gaon LM".into(),
            rank: 1,
            score_centi: 7_800,
            resources: Default::default(),
        }],
        departure: None,
        override_reason: None,
        published_at: chrono::Utc::now(),
        team_maxima: None,
        replaces: Some(Replacement {
            gate: "gate-1".into(),
            places: 1,
            committee: vec!["a".into(), "b".into(), "c".into()],
            award: Some(GpuAward {
                model: "B200".into(),
                count: 768,
                period: "2027H1".into(),
            }),
        }),
    };
    let env = kaip_contracts::EventEnvelope::wrap(
        "scoring",
        kaip_contracts::Actor::system("scoring"),
        &ev,
    )
    .expect("wrap");
    ctx.produce_raw(
        &ctx.topic(kaip_contracts::topics::SCORING),
        &env.aggregate_id.to_string(),
        &serde_json::to_vec(&env).expect("json"),
        &[("kaip-event-type", "SelectionPublished")],
    )
    .await;
    // 500 in the pool, 768 awarded: the award is not offered, but the selection is
    // recorded (nothing dead-lettered), so the winner is a selected team.
    eventually(Duration::from_secs(60), || async {
        let (_, b) = l.get("/teams").await;
        b.as_array()?
            .iter()
            .any(|t| t["consortium_id"] == json!(winner))
            .then_some(())
    })
    .await
    .expect("the winner is recorded as selected");
    assert_eq!(l.get("/offers").await.1, json!([]));
    let dlq = ctx.topic(&kaip_contracts::topics::dead_letter_topic_of("gpu-ledger"));
    assert!(
        ctx.read_topic(&dlq).await.is_empty(),
        "an award the pool cannot honour does not dead-letter the selection"
    );
    // The refusal is kept for staff: the award is still owed, with the ledger's code.
    let (s, owed) = l.get("/awards?owed=true").await;
    assert_eq!(s, StatusCode::OK, "{owed}");
    let owed = owed.as_array().expect("list").clone();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0]["call_id"], json!(call));
    assert_eq!(owed[0]["consortium_id"], json!(winner));
    assert_eq!(owed[0]["code"], "EXCEEDS_CREDITS", "{owed:?}");
    assert_eq!(
        (owed[0]["model"].as_str(), owed[0]["count"].as_i64()),
        (Some("B200"), Some(768))
    );
    assert!(owed[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(owed[0]["owed"], true);
    {
        use diesel::RunQueryDsl;
        let sql = "UPDATE gpu_award_refusals SET code = 'FORGOTTEN'";
        let err = diesel::sql_query(sql)
            .execute(&mut l.svc.conn())
            .expect_err(sql);
        assert!(err.to_string().contains("refused"), "{err}");
    }
    let (s, b) = l
        .call(
            reqwest::Method::GET,
            "/awards",
            &ctx.bearer(Role::Consortium, Some(winner)),
            None,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
        "{b}"
    );

    // The officer offers what the pool holds: the winner is selected, so the offer is
    // allowed (before, TEAM_NOT_SELECTED).
    let body = offer_body(
        winner,
        call,
        3600,
        json!([{"model": "B200", "tranches": [{"period": "2027H1", "count": 500}]}]),
    );
    let (s, offer) = l.post("/offers", body).await;
    assert_eq!(s, StatusCode::CREATED, "{offer}");
    let (_, offers) = l.get("/offers").await;
    let offers = offers.as_array().expect("list");
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(offers[0]["consortium_id"], json!(winner));
    assert_eq!(offers[0]["options"][0]["tranches"][0]["count"], 500);
    // Offered by hand, not accepted: still owed (an offer settles nothing by itself).
    let (_, owed) = l.get("/awards?owed=true").await;
    assert_eq!(
        (
            owed[0]["owed"].as_bool(),
            owed[0]["offered"].as_i64(),
            owed[0]["accepted"].as_i64()
        ),
        (Some(true), Some(500), Some(0)),
        "{owed}"
    );
    // The team accepts through the normal flow.
    let (s, a) = l
        .call(
            reqwest::Method::POST,
            &format!("/offers/{}/accept", offers[0]["id"].as_str().expect("id")),
            &ctx.bearer(Role::Consortium, Some(winner)),
            Some(json!({"option": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["tranches"][0]["status"], "released", "{a}");
    // Accepted, but 500 of 768: still owed, the counts shown; the refusal stays on record.
    let (_, all) = l.get("/awards").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (
            all[0]["owed"].as_bool(),
            all[0]["offered"].as_i64(),
            all[0]["accepted"].as_i64()
        ),
        (Some(true), Some(500), Some(500)),
        "{all}"
    );
    assert_eq!(
        l.get("/awards?owed=true").await.1.as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(l.invariants().await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dated_tranche_counts_from_its_date_not_from_when_the_sweeper_posts_it() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (period, end) = current_half();
    if end - chrono::Utc::now() < chrono::Duration::hours(1) {
        eprintln!("skipped: {period} ends at {end}");
        return;
    }
    let team = ConsortiumId::new();
    let call = select(&ctx, &l, &[team]).await;
    pool_of(&l, "B200", &period, 1000).await;
    // 400 GPUs dated a few seconds ahead, on a whole second a multiple of 9 s before the
    // period's end: 400 x that time is a whole number of GPU-hours, so the sweeper's delay
    // (its post comes after the date, by up to a second) would show as one hour less.
    let gpus: i64 = 400;
    let ahead = (end - (chrono::Utc::now() + chrono::Duration::seconds(3))).num_seconds();
    let dated = end - chrono::Duration::seconds(ahead - ahead % 9);
    let exact = gpus * (end - dated).num_seconds() / 3600;
    assert_eq!(exact * 3600, gpus * (end - dated).num_seconds());
    let (offer, _) = accept_dated_tranche(&l, team, call, &period, gpus, &dated).await;
    eventually(Duration::from_secs(30), || async {
        let (_, o) = l.get(&format!("/offers/{offer}")).await;
        (o["tranches"][0]["status"] == "released").then_some(())
    })
    .await
    .expect("the sweeper released the tranche on its date");
    let (_, lines) = l
        .get(&format!(
            "/utilisation?period={period}&consortium_id={team}"
        ))
        .await;
    assert_eq!(
        (
            lines[0]["granted_gpus"].as_i64(),
            lines[0]["granted_hours"].as_i64()
        ),
        (Some(gpus), Some(exact)),
        "{gpus} GPUs from {dated}: {lines}"
    );
}

/// The next half year and the one after it (see [`next_half`]).
fn future_halves() -> (String, String) {
    let (first, _, end) = next_half();
    let (second, _, _) = running_half_at(end);
    (first, second)
}

/// The sweeper reads the open reservations (`ledger_open_pending`), kept in step with the
/// transfers by the database in the same transaction, not every pending transfer ever
/// recorded: its query reads the transfers only to skip a row already resolved (by the
/// unique index on `pending_id`), a reservation is in the table exactly while it is open, a
/// stale row (resolved, left by hand) is never due and is removed by the next pass, and
/// `GET /invariants` reports a table that differs from the replayed transfers. Timeouts are
/// seconds ahead and every wait is measured from them, so a slow request or a busy machine
/// changes how long the test runs, not what it sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_reads_only_the_open_reservations_which_follow_the_transfers() {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Open {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        timeout_at: Option<chrono::DateTime<chrono::Utc>>,
    }
    fn open(conn: &mut diesel::PgConnection) -> Vec<Open> {
        diesel::sql_query(
            "SELECT pending_id::text AS id, timeout_at FROM ledger_open_pending ORDER BY pending_id",
        )
        .load(conn)
        .expect("open reservations")
    }
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    fn due(conn: &mut diesel::PgConnection) -> Vec<Uuid> {
        diesel::sql_query(kaip_gpu_ledger::sweeper::DUE)
            .bind::<diesel::sql_types::BigInt, _>(1000)
            .load::<Id>(conn)
            .expect("due")
            .into_iter()
            .map(|d| d.id)
            .collect()
    }
    /// Sleeps until `at` (client clock; the server shares it) plus `margin`.
    async fn until(at: chrono::DateTime<chrono::Utc>, margin: Duration) {
        let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left + margin).await;
    }
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let pool = l.pool(20).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    // The test's connection is the test server's superuser (the service's login role here):
    // in the production layout the login role may only read the table (see
    // `the_login_role_only_reads_the_open_reservations`).
    let mut conn = l.svc.conn();

    // The due query reads the open reservations (and their partial index), and the
    // transfers only by the unique index on `pending_id`, whatever the history holds.
    #[derive(diesel::QueryableByName)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text)]
        plan: String,
    }
    diesel::sql_query(
        "CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$ \
         DECLARE line text; plan text := ''; \
         BEGIN FOR line IN EXECUTE 'EXPLAIN ' || q LOOP plan := plan || line || E'\\n'; END LOOP; \
         RETURN plan; END $$",
    )
    .execute(&mut conn)
    .expect("plan function");
    let plan: Plan = diesel::sql_query("SELECT pg_temp.plan_of($1) AS plan")
        .bind::<diesel::sql_types::Text, _>(kaip_gpu_ledger::sweeper::DUE.replace("$1", "1000"))
        .get_result(&mut conn)
        .expect("plan");
    let on_transfers: Vec<&str> = plan
        .plan
        .lines()
        .filter(|l| l.contains(" on ledger_transfers"))
        .collect();
    assert!(
        plan.plan.contains("ledger_open_pending")
            && !on_transfers.is_empty()
            && on_transfers
                .iter()
                .all(|l| l.contains("using ledger_transfers_resolved_once")),
        "{}",
        plan.plan
    );

    // Four reservations: one held open (an hour), one posted and one voided in later
    // batches, one posted in its own batch, one the sweeper expires (5 s ahead: the
    // batch is refused only if its request takes longer than that).
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).trunc_subsecs(6);
    let mut held = transfer(pool, team, 1, "pending");
    held["timeout_at"] = json!(later);
    let posted = transfer(pool, team, 2, "pending");
    let voided = transfer(pool, team, 3, "pending");
    let same_batch = transfer(pool, team, 1, "pending");
    let mut expiring = transfer(pool, team, 4, "pending");
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(5);
    expiring["timeout_at"] = json!(expires_at);
    let resolve = |kind: &str, p: &Value| {
        json!({"id": Uuid::now_v7(), "kind": kind, "pending_id": p["id"], "code": "grant",
            "reason": "test"})
    };
    let r = l
        .transfers(vec![
            held.clone(),
            posted.clone(),
            voided.clone(),
            expiring.clone(),
            same_batch.clone(),
            resolve("post", &same_batch),
        ])
        .await;
    assert_eq!(r.created, 6, "{r:?}");
    let ids = |ts: &[&Value]| {
        let mut v: Vec<String> = ts
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // Read before its timeout, the expiring one is certainly still open (the sweeper goes
    // by the database's clock, which is this machine's).
    let before_timeout = chrono::Utc::now() < expires_at;
    let now_open: Vec<String> = open(&mut conn).into_iter().map(|o| o.id).collect();
    if before_timeout {
        assert_eq!(
            now_open,
            ids(&[&held, &posted, &voided, &expiring]),
            "open after the batch"
        );
    } else {
        assert!(
            now_open == ids(&[&held, &posted, &voided, &expiring])
                || now_open == ids(&[&held, &posted, &voided]),
            "open after the batch: {now_open:?}"
        );
    }
    let r = l
        .transfers(vec![resolve("post", &posted), resolve("void", &voided)])
        .await;
    assert_eq!(r.created, 2, "{r:?}");
    until(expires_at, Duration::ZERO).await;
    eventually(Duration::from_secs(30), || async {
        let mut c = l.svc.conn();
        (open(&mut c).len() == 1).then_some(())
    })
    .await
    .expect("the sweeper expired the due reservation");
    assert_eq!(
        open(&mut conn),
        vec![Open {
            id: held["id"].as_str().unwrap().to_owned(),
            timeout_at: Some(later)
        }],
        "only the reservation still open, with its timeout"
    );
    let inv = l.invariants().await;
    assert_eq!(inv["ok"], true, "{inv}");
    assert_eq!(
        inv["open_pending_differing_from_replay"],
        json!([]),
        "{inv}"
    );

    // A stale row (its reservation was posted; put back by hand, due) is never due: in one
    // transaction, so the sweeper cannot remove it first. Committed, the next pass removes it
    // and records nothing for it.
    let stale = format!(
        "INSERT INTO ledger_open_pending (pending_id, timeout_at) VALUES ('{}', now() - interval '1 minute')",
        posted["id"].as_str().unwrap()
    );
    let posted_id: Uuid = serde_json::from_value(posted["id"].clone()).expect("uuid");
    conn.transaction::<(), diesel::result::Error, _>(|c| {
        diesel::sql_query(&stale).execute(c)?;
        assert_eq!(
            due(c),
            Vec::<Uuid>::new(),
            "a resolved reservation is never due"
        );
        Err(diesel::result::Error::RollbackTransaction)
    })
    .expect_err("rolled back");
    diesel::sql_query(&stale)
        .execute(&mut conn)
        .expect("stale row");
    eventually(Duration::from_secs(30), || async {
        let mut c = l.svc.conn();
        (open(&mut c).len() == 1).then_some(())
    })
    .await
    .expect("the sweeper removed the resolved row");
    let (_, expiries) = l
        .get(&format!("/transfers?account={pool}&kind=expire"))
        .await;
    assert!(
        !expiries.to_string().contains(&posted_id.to_string()),
        "a posted reservation expired: {expiries}"
    );

    // A table out of step with the transfers is reported, and the sweeper goes by the
    // table: a due reservation missing from it is not expired. Its timeout is 10 s ahead,
    // so its row is removed long before the sweeper could expire it, and the check waits for
    // passes after that timeout.
    let mut lost = transfer(pool, team, 1, "pending");
    let lost_at = chrono::Utc::now() + chrono::Duration::seconds(10);
    lost["timeout_at"] = json!(lost_at);
    assert_eq!(l.transfers(vec![lost.clone()]).await.created, 1);
    let n = diesel::sql_query(format!(
        "DELETE FROM ledger_open_pending WHERE pending_id IN ('{}', '{}')",
        lost["id"].as_str().unwrap(),
        held["id"].as_str().unwrap()
    ))
    .execute(&mut conn)
    .expect("delete");
    assert!(
        chrono::Utc::now() < lost_at,
        "removed before its timeout: the sweeper could not have expired it"
    );
    assert_eq!(n, 2);
    // Three passes (one a second) after its timeout.
    until(lost_at, 3 * kaip_gpu_ledger::sweeper::INTERVAL).await;
    let (_, by_pending) = l
        .get(&format!("/transfers?account={pool}&kind=expire"))
        .await;
    assert!(
        !by_pending
            .to_string()
            .contains(lost["id"].as_str().unwrap()),
        "expired though not open: {by_pending}"
    );
    let inv = l.invariants().await;
    assert_eq!(inv["ok"], false, "{inv}");
    let mut want = ids(&[&held, &lost]);
    want.sort();
    let mut got: Vec<String> =
        serde_json::from_value(inv["open_pending_differing_from_replay"].clone()).expect("ids");
    got.sort();
    assert_eq!(got, want, "{inv}");
}

/// In the production role layout (the owner migrates, the login role serves) the login role
/// may read `ledger_open_pending` but not write it, nor call the trigger's function, even
/// after a DBA's default privileges gave it DML on every new table; the service still opens,
/// resolves and expires reservations (the trigger and the sweeper's pruning run as the
/// table's owner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_role_only_reads_the_open_reservations() {
    use diesel::{Connection, RunQueryDsl};
    fn with_user(url: &str, user: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let host = rest.split_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{user}@{host}")
    }
    fn exec(conn: &mut diesel::PgConnection, sql: &str) {
        diesel::sql_query(sql)
            .execute(conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let ctx = TestContext::new();
    let (owner, login) = (format!("{}_owner", ctx.id), format!("{}_login", ctx.id));
    let mut settings = ctx.settings(kaip_gpu_ledger::DEFAULTS);
    let db = settings.database.name.clone();
    ctx.track_database(&db);
    let server = kaip_testkit::database_url();
    let mut dba = diesel::PgConnection::establish(&format!("{server}/postgres")).expect("server");
    exec(&mut dba, &format!("CREATE ROLE {owner} LOGIN"));
    exec(&mut dba, &format!("CREATE ROLE {login} LOGIN"));
    exec(&mut dba, &format!("CREATE DATABASE \"{db}\" OWNER {owner}"));
    let mut dba_db = diesel::PgConnection::establish(&format!("{server}/{db}")).expect("db");
    exec(&mut dba_db, &format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {login}"));
    exec(&mut dba_db, &format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {login}"));
    settings.database.url = secrecy::SecretString::from(with_user(&server, &login));
    settings.database.migration_url = Some(secrecy::SecretString::from(with_user(&server, &owner)));
    settings.database.create_if_missing = false;
    let svc = ctx
        .spawn_with(kaip_gpu_ledger::definition(), settings)
        .await;
    let l = Ledger {
        http: reqwest::Client::new(),
        svc,
        officer: ctx.bearer(Role::Officer, None),
    };
    let pool = l.pool(10).await;
    let team = l.open("grant", Some(Uuid::now_v7())).await;
    let kept = transfer(pool, team, 1, "pending");
    let mut expiring = transfer(pool, team, 2, "pending");
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(5);
    expiring["timeout_at"] = json!(expires_at);
    let posted = transfer(pool, team, 3, "pending");
    let r = l
        .transfers(vec![kept.clone(), expiring.clone(), posted.clone()])
        .await;
    assert_eq!(r.created, 3, "{r:?}");
    let r = l
        .transfers(vec![json!({"id": Uuid::now_v7(), "kind": "post",
            "pending_id": posted["id"], "code": "grant", "reason": "test"})])
        .await;
    assert_eq!(r.created, 1, "{r:?}");

    let mut as_login =
        diesel::PgConnection::establish(&format!("{}/{db}", with_user(&server, &login)))
            .expect("the login role connects");
    let count = |c: &mut diesel::PgConnection| {
        diesel::sql_query("SELECT count(*) AS n FROM ledger_open_pending")
            .get_result::<Count>(c)
            .expect("the login role reads")
            .n
    };
    assert!(count(&mut as_login) >= 1, "kept is open");
    for sql in [
        format!(
            "INSERT INTO ledger_open_pending (pending_id, timeout_at) VALUES ('{}', now())",
            posted["id"].as_str().unwrap()
        ),
        "UPDATE ledger_open_pending SET timeout_at = now()".to_owned(),
        "DELETE FROM ledger_open_pending".to_owned(),
        "TRUNCATE ledger_open_pending".to_owned(),
        "SELECT gpu_ledger_track_open_pending()".to_owned(),
        "SELECT gpu_ledger_open_pending_lockdown()".to_owned(),
    ] {
        let err = diesel::sql_query(&sql)
            .execute(&mut as_login)
            .map(|n| panic!("{sql}: must be refused, but it changed {n} rows"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{sql}: {err}"
        );
    }
    // Pruning is open to it, and removes only what is resolved: nothing here.
    assert_eq!(
        diesel::sql_query("SELECT gpu_ledger_prune_open_pending() AS n")
            .get_result::<Count>(&mut as_login)
            .expect("prune")
            .n,
        0
    );
    // The service, as the login role, expires the due reservation.
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left).await;
    eventually(Duration::from_secs(30), || async {
        let mut c =
            diesel::PgConnection::establish(&format!("{}/{db}", with_user(&server, &login)))
                .ok()?;
        (count(&mut c) == 1).then_some(())
    })
    .await
    .expect("the sweeper expired the due reservation as the login role");
    let inv = l.invariants().await;
    assert_eq!(inv["ok"], true, "{inv}");
}

/// `GET /pools` reports net positions: GPUs a team gave back count neither as held again
/// nor as granted, capacity returned to a source leaves what is held, and what is
/// available stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_held_and_granted_are_net_of_what_went_back() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let source = l.open("source", None).await;
    let pool = l.open("pool", None).await;
    let (a, b) = (
        l.open("grant", Some(Uuid::now_v7())).await,
        l.open("grant", Some(Uuid::now_v7())).await,
    );
    let mut reclaim = transfer(a, pool, 2, "single");
    reclaim["code"] = json!("reclaim");
    let mut back_to_source = transfer(pool, source, 1, "single");
    back_to_source["code"] = json!("capacity");
    let r = l
        .transfers(vec![
            transfer(source, pool, 10, "single"),
            transfer(pool, a, 6, "single"),
            reclaim,
            back_to_source,
            transfer(pool, b, 3, "pending"),
        ])
        .await;
    assert_eq!(r.created, 5, "{r:?}");
    let line = pools(&l)
        .await
        .into_iter()
        .find(|p| p.pool_account == pool)
        .expect("the pool");
    // Gross flows said held 12 (10 in, 2 back from the team) and granted 7 (6 out, 1 back
    // to the source).
    assert_eq!(
        (line.held, line.granted, line.reserved, line.available),
        (9, 4, 3, 2),
        "{line:?}"
    );
    assert_eq!(line.held - line.granted - line.reserved, line.available);
    let acct = l.account(pool).await;
    assert_eq!(
        line.available,
        acct.balance.credits_posted - acct.balance.debits_posted - acct.balance.debits_pending,
        "available is the pool's own balance"
    );
    assert_eq!(
        (
            l.account(a).await.balance.credits_posted - l.account(a).await.balance.debits_posted,
            line.held_h100_eq.0,
            line.available_h100_eq.0
        ),
        (4, 9, 2),
        "team A holds 4; H100 is the unit"
    );
}

/// A tranche dated exactly at a period's start (midnight KST) counts the whole period's
/// hours in `GET /utilisation` when the team holds it from that start: accepted before the
/// period, posted (here by staff, as the sweeper would at the date) before the period
/// begins, it counts its GPUs x every hour of the period, not the time from its post to the
/// period's end (more than the period) nor less. The period is the half year after the one
/// running, so the test holds on any day it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tranche_dated_at_its_periods_start_counts_the_whole_period() {
    let ctx = TestContext::new();
    let l = Ledger::start(&ctx).await;
    let (period, start, end) = next_half();
    // 4,344 h (4,368 in a leap year) for an H1, 4,416 h for an H2.
    let whole_hours = (end - start).num_hours();
    assert!(
        [4_344, 4_368, 4_416].contains(&whole_hours),
        "{period}: {start} to {end}"
    );
    let team = ConsortiumId::new();
    let call = select(&ctx, &l, &[team]).await;
    pool_of(&l, "B200", &period, 100).await;
    let gpus: i64 = 8;
    // The date as an officer writes it: midnight in Seoul.
    let kst = chrono::FixedOffset::east_opt(9 * 3600).expect("KST");
    let dated = start.with_timezone(&kst).to_rfc3339();
    assert!(dated.ends_with("T00:00:00+09:00"), "{dated}");
    let (_, a) = accept_dated_tranche(&l, team, call, &period, gpus, &dated).await;
    let release_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(a["tranches"][0]["release_at"].clone()).expect("release_at");
    assert_eq!(release_at, start, "dated exactly at the period's start");
    let utilisation = || async {
        let (s, lines) = l
            .get(&format!(
                "/utilisation?period={period}&consortium_id={team}"
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{lines}");
        lines
    };
    // Reserved, not yet held: nothing granted.
    let lines = utilisation().await;
    assert!(
        lines.as_array().is_none_or(|ls| ls
            .iter()
            .all(|x| x["granted_hours"].as_i64().unwrap_or(0) == 0)),
        "{lines}"
    );
    // Posted now, before the period: held from its first hour.
    let tranche = a["tranches"][0]["transfer_id"].clone();
    let r = l
        .transfers(vec![
            json!({"id": Uuid::now_v7(), "kind": "post", "pending_id": tranche,
            "code": "tranche", "reason": "released for the period"}),
        ])
        .await;
    assert_eq!(r.created, 1, "{r:?}");
    let lines = utilisation().await;
    assert_eq!(
        (
            lines[0]["granted_gpus"].as_i64(),
            lines[0]["granted_hours"].as_i64()
        ),
        (Some(gpus), Some(gpus * whole_hours)),
        "{gpus} GPUs x {whole_hours} h of {period}: {lines}"
    );
}
