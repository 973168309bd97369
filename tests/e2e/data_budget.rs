//! The data budget against the real PostgreSQL and broker: budgets opened by scoring's
//! `SelectionPublished` (replays change nothing), 50 concurrent commitments at the boundary
//! of a sub-limit and of the cap, the exact three-way split, all-or-nothing joint
//! purchases, elimination from milestones' events, the reports, finance's idempotent
//! payments, consortium scoping, and every bad input coded with nothing written.

use diesel::prelude::*;
use kaip_contracts::dto::intake::ResourceRequest;
use kaip_contracts::events::{CallMaxima, SelectedTeam, SelectionPublished, TeamEliminated};
use kaip_contracts::{topics, CallId, ConsortiumId, DomainEvent, Krw, ProposalId, Role};
use kaip_testkit::{eventually, TestContext, TestService};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// The fiscal year of now in KST (the programme's default years are 2026..=2030).
fn this_year() -> i32 {
    kaip_data_budget::domain::fiscal_year(chrono::Utc::now())
}

struct Budget {
    ctx: TestContext,
    http: reqwest::Client,
    svc: TestService,
    officer: String,
}

impl Budget {
    async fn start() -> Self {
        let ctx = TestContext::new();
        let mut settings = ctx.settings(kaip_data_budget::DEFAULTS);
        // Real contention, with few connections (the server is shared by every test).
        settings.server.workers = 4;
        settings.database.pool_size = 6;
        let svc = ctx
            .spawn_with(kaip_data_budget::definition(), settings)
            .await;
        let officer = ctx.bearer(Role::Officer, None);
        Self {
            ctx,
            http: reqwest::Client::new(),
            svc,
            officer,
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

    async fn post_as(&self, bearer: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, bearer, Some(body))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(&self.officer, path, body).await
    }

    async fn get_as(&self, bearer: &str, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, bearer, None).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(&self.officer, path).await
    }

    async fn publish<E: DomainEvent>(&self, producer: &str, topic: &str, event: &E) {
        let env = kaip_contracts::EventEnvelope::wrap(
            producer,
            kaip_contracts::Actor::system(producer),
            event,
        )
        .expect("wrap");
        self.publish_envelope(topic, &env).await;
    }

    async fn publish_envelope(&self, topic: &str, env: &kaip_contracts::EventEnvelope) {
        let payload = serde_json::to_vec(env).expect("json");
        self.ctx
            .produce_raw(
                &self.ctx.topic(topic),
                &env.aggregate_id.to_string(),
                &payload,
                &[("kaip-event-type", env.event_type.as_str())],
            )
            .await;
    }

    /// Publishes a selection of `teams` (each asking for `requested` KRW, 0: none) and
    /// waits until their budgets for this year are open.
    async fn select(&self, teams: &[(ConsortiumId, i64)]) -> SelectionPublished {
        let ev = selection(teams);
        self.svc.wait_assigned().await;
        self.publish("scoring", topics::SCORING, &ev).await;
        self.wait_budgets(teams.len()).await;
        ev
    }

    async fn wait_budgets(&self, n: usize) {
        let year = this_year();
        eventually(Duration::from_secs(60), || async {
            let (_, b) = self.get(&format!("/budgets?fiscal_year={year}")).await;
            (b.as_array().map(Vec::len) == Some(n)).then_some(())
        })
        .await
        .expect("the budget learned the selection");
    }

    async fn budget(&self, team: ConsortiumId) -> Value {
        let (s, b) = self
            .get(&format!("/budgets/{}/{}", team.0, this_year()))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    async fn set_cap(&self, team: ConsortiumId, cap: i64, jp: i64, bp: i64) {
        let (s, b) = self
            .post(
                &format!("/budgets/{}/{}/cap", team.0, this_year()),
                json!({"cap_krw": cap, "joint_purchase_limit_krw": jp,
                       "building_processing_limit_krw": bp, "reason": "test boundary"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    async fn dataset(&self, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        let (s, b) = self
            .post(
                "/datasets",
                json!({"id": id, "name": name, "provider": "NIA",
                       "licence_terms": "research use by the licensee team; no redistribution"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        id
    }

    /// Row counts of every table of the service and its outbox, to prove nothing was written.
    fn snapshot(&self) -> Value {
        #[derive(QueryableByName)]
        struct J {
            #[diesel(sql_type = diesel::sql_types::Text)]
            j: String,
        }
        let tables = [
            "budget_programme_settings",
            "budget_teams",
            "budgets",
            "budget_caps",
            "datasets",
            "budget_joint_purchases",
            "budget_commitments",
            "budget_cancellations",
            "budget_invoices",
            "budget_payments",
            "budget_eliminations",
        ];
        let mut parts: Vec<String> = tables
            .iter()
            .map(|t| format!("'{t}', (SELECT count(*) FROM {t})"))
            .collect();
        // The events written (the audit trail's own exports aside).
        parts.push(
            "'events', (SELECT count(*) FROM kaip_outbox WHERE event_type <> 'AuditRecorded')"
                .into(),
        );
        let mut conn = self.svc.conn();
        let row: J = diesel::sql_query(format!(
            "SELECT json_build_object({})::text AS j",
            parts.join(", ")
        ))
        .get_result(&mut conn)
        .expect("counts");
        serde_json::from_str(&row.j).expect("json")
    }

    /// The events of `event_type` the relay has published to the budget's topic.
    async fn published(&self, event_type: &str, at_least: usize) -> Vec<Value> {
        let topic = self.ctx.topic(topics::DATA_BUDGET);
        eventually(Duration::from_secs(30), || async {
            let found: Vec<Value> = self
                .ctx
                .read_topic(&topic)
                .await
                .iter()
                .filter_map(|m| m.json())
                .filter(|e| e["type"] == event_type)
                .collect();
            (found.len() >= at_least).then_some(found)
        })
        .await
        .unwrap_or_else(|| panic!("fewer than {at_least} {event_type} on the topic"))
    }
}

fn selection(teams: &[(ConsortiumId, i64)]) -> SelectionPublished {
    from_call(teams, None)
}

/// A selection from a call that announced its per-team data maximum (`None`: a selection
/// from before calls announced it).
fn from_call(teams: &[(ConsortiumId, i64)], data_max: Option<i64>) -> SelectionPublished {
    SelectionPublished {
        replaces: None,
        team_maxima: data_max.map(|d| CallMaxima {
            data_budget_krw: Krw(d),
            talent_funding_krw: Krw(2_000_000_000),
        }),
        call_id: CallId::new(),
        selected: teams
            .iter()
            .enumerate()
            .map(|(i, (t, requested))| SelectedTeam {
                proposal_id: ProposalId::new(),
                consortium_id: *t,
                consortium_name: format!("Team {i}"),
                title: format!("Model {i}"),
                rank: i as i32 + 1,
                score_centi: 8000 - i as i64,
                resources: ResourceRequest {
                    data_budget_krw: Krw(*requested),
                    ..Default::default()
                },
            })
            .collect(),
        departure: None,
        override_reason: None,
        published_at: chrono::Utc::now(),
    }
}

fn teams(n: usize) -> Vec<ConsortiumId> {
    let mut t: Vec<ConsortiumId> = (0..n).map(|_| ConsortiumId::new()).collect();
    t.sort();
    t
}

fn commitment(team: ConsortiumId, category: &str, amount: i64) -> Value {
    json!({"id": Uuid::now_v7(), "consortium_id": team, "fiscal_year": this_year(),
           "category": category, "amount_krw": amount, "reason": "purchase order"})
}

fn krw(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not KRW: {v}"))
}

fn category<'a>(budget: &'a Value, name: &str) -> &'a Value {
    budget["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == name))
        .unwrap_or_else(|| panic!("no {name} in {budget}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_selection_opens_each_teams_budgets_and_a_replay_changes_nothing() {
    let b = Budget::start().await;
    let t = teams(3);
    let ev = b
        .select(&[(t[0], 8_000_000_000), (t[1], 0), (t[2], 20_000_000_000)])
        .await;
    let years = (this_year()..=2030).count();
    // Caps from the call: the request within the programme's maximum, none asked: the maximum.
    assert_eq!(
        krw(&b.budget(t[0]).await["total"]["limit_krw"]),
        8_000_000_000
    );
    assert_eq!(
        krw(&b.budget(t[1]).await["total"]["limit_krw"]),
        15_000_000_000
    );
    let third = b.budget(t[2]).await;
    assert_eq!(krw(&third["total"]["limit_krw"]), 15_000_000_000);
    assert_eq!(
        krw(&category(&third, "joint_purchase")["limit_krw"]),
        10_000_000_000
    );
    assert_eq!(
        krw(&category(&third, "building_processing")["limit_krw"]),
        5_000_000_000
    );
    assert_eq!(third["caps"].as_array().map(Vec::len), Some(1));
    let opened = b.published("DataBudgetOpened", 3 * years).await;
    assert_eq!(opened.len(), 3 * years);
    let before = b.snapshot();
    assert_eq!(before["budgets"], json!(3 * years));

    // The same selection again, as a new envelope (a re-publication) and as a redelivery
    // of an envelope already seen: nothing changes.
    let env = kaip_contracts::EventEnvelope::wrap(
        "scoring",
        kaip_contracts::Actor::system("scoring"),
        &ev,
    )
    .expect("wrap");
    b.publish_envelope(topics::SCORING, &env).await;
    b.publish_envelope(topics::SCORING, &env).await;
    // A marker after them: once it is applied, the replays before it were too.
    let marker = teams(1)[0];
    b.publish("scoring", topics::SCORING, &selection(&[(marker, 0)]))
        .await;
    b.wait_budgets(4).await;
    let after = b.snapshot();
    assert_eq!(after["budgets"], json!(4 * years), "{after}");
    assert_eq!(after["budget_caps"], json!(4 * years), "{after}");
    assert_eq!(
        krw(&after["events"]) - krw(&before["events"]),
        years as i64,
        "only the marker's budgets were announced"
    );
}

/// 50 at once: exactly those that fit the sub-limit succeed; then 50 at once at the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn fifty_concurrent_commitments_at_the_boundary_exactly_the_ones_that_fit_succeed() {
    let b = Budget::start().await;
    let t = teams(1)[0];
    b.select(&[(t, 0)]).await;
    // Cap KRW 1bn; building and processing 600M.
    b.set_cap(t, 1_000_000_000, 1_000_000_000, 600_000_000)
        .await;

    async fn burst(b: &Budget, t: ConsortiumId, cat: &str) -> (usize, usize) {
        let results = futures::future::join_all(
            (0..50).map(|_| b.post("/commitments", commitment(t, cat, 25_000_000))),
        )
        .await;
        let mut ok = 0;
        let mut refused = 0;
        for (s, body) in results {
            match s {
                StatusCode::CREATED => ok += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(body["code"], "INSUFFICIENT_BUDGET", "{body}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        (ok, refused)
    }

    // 600M / 25M = 24 fit the sub-limit.
    assert_eq!(burst(&b, t, "building_processing").await, (24, 26));
    let budget = b.budget(t).await;
    let bp = category(&budget, "building_processing");
    assert_eq!(krw(&bp["committed_krw"]), 600_000_000);
    assert_eq!(krw(&bp["available_krw"]), 0);
    // The cap has 400M left: 16 joint-purchase commitments fit though its sub-limit is 1bn.
    assert_eq!(burst(&b, t, "joint_purchase").await, (16, 34));
    let budget = b.budget(t).await;
    assert_eq!(krw(&budget["total"]["committed_krw"]), 1_000_000_000);
    assert_eq!(krw(&budget["total"]["available_krw"]), 0);
    assert_eq!(
        krw(&category(&budget, "joint_purchase")["committed_krw"]),
        400_000_000
    );
    // The adjustment was a new record beside the opening one.
    assert_eq!(budget["caps"].as_array().map(Vec::len), Some(2));
    assert_eq!(budget["caps"][1]["reason"], "test boundary");
    let made = b.published("DataCommitmentMade", 40).await;
    assert_eq!(made.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_billion_and_one_won_splits_three_ways_exact_to_the_won() {
    let b = Budget::start().await;
    let t = teams(3);
    b.select(&[(t[0], 0), (t[1], 0), (t[2], 0)]).await;
    let dataset = b.dataset("Korean web corpus 2026").await;
    let id = Uuid::now_v7();
    // Listed out of order: the tie order is by consortium id, not by the request's order.
    let (s, j) = b
        .post(
            "/joint-purchases",
            json!({"id": id, "dataset_id": dataset, "fiscal_year": this_year(),
                   "total_krw": 1_000_000_001i64, "reason": "shared corpus",
                   "shares": [{"consortium_id": t[2]}, {"consortium_id": t[0]}, {"consortium_id": t[1]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(j["split_rule"], "equal");
    let amount_of = |team: ConsortiumId| {
        j["shares"]
            .as_array()
            .and_then(|ss| ss.iter().find(|s| s["consortium_id"] == json!(team)))
            .map(|s| krw(&s["amount_krw"]))
            .expect("share")
    };
    assert_eq!(
        [amount_of(t[0]), amount_of(t[1]), amount_of(t[2])],
        [333_333_334, 333_333_334, 333_333_333]
    );
    for (team, want) in [
        (t[0], 333_333_334),
        (t[1], 333_333_334),
        (t[2], 333_333_333),
    ] {
        let budget = b.budget(team).await;
        assert_eq!(
            krw(&category(&budget, "joint_purchase")["committed_krw"]),
            want
        );
        let (_, l) = b.get(&format!("/licences?consortium_id={}", team.0)).await;
        assert_eq!(l[0]["dataset_id"], json!(dataset), "{l}");
    }
    // A repeat answers the original; the same id with other fields is refused.
    let mut again = json!({"id": id, "dataset_id": dataset, "fiscal_year": this_year(),
        "total_krw": 1_000_000_001i64, "reason": "shared corpus",
        "shares": [{"consortium_id": t[2]}, {"consortium_id": t[0]}, {"consortium_id": t[1]}]});
    let (s, r) = b.post("/joint-purchases", again.clone()).await;
    assert_eq!((s, &r["shares"]), (StatusCode::CREATED, &j["shares"]));
    again["total_krw"] = json!(999);
    let (s, r) = b.post("/joint-purchases", again).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::CONFLICT, Some("EXISTS_WITH_DIFFERENT_FIELDS"))
    );
    // Weighted 1:2:3 of 100 won.
    let (s, w) = b
        .post(
            "/joint-purchases",
            json!({"id": Uuid::now_v7(), "dataset_id": dataset, "fiscal_year": this_year(),
                   "total_krw": 100, "reason": "weighted",
                   "shares": [{"consortium_id": t[0], "weight": 1}, {"consortium_id": t[1], "weight": 2},
                              {"consortium_id": t[2], "weight": 3}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let amounts: Vec<i64> = w["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| krw(&s["amount_krw"]))
        .collect();
    assert_eq!(amounts, vec![17, 33, 50]);
    let split = b.published("JointPurchaseSplit", 2).await;
    assert!(split
        .iter()
        .any(|e| e["data"]["total_krw"] == json!(1_000_000_001i64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joint_purchase_is_all_or_nothing_and_names_the_team_and_the_shortfall() {
    let b = Budget::start().await;
    let t = teams(3);
    b.select(&[(t[0], 0), (t[1], 0), (t[2], 0)]).await;
    // The middle team has 300M for joint purchases.
    b.set_cap(t[1], 1_000_000_000, 300_000_000, 100_000_000)
        .await;
    let dataset = b.dataset("Speech corpus").await;
    let before = b.snapshot();
    let (s, e) = b
        .post(
            "/joint-purchases",
            json!({"id": Uuid::now_v7(), "dataset_id": dataset, "fiscal_year": this_year(),
                   "total_krw": 1_200_000_000i64, "reason": "shared speech data",
                   "shares": [{"consortium_id": t[0]}, {"consortium_id": t[1]}, {"consortium_id": t[2]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "INSUFFICIENT_BUDGET");
    let msg = e["message"].as_str().expect("message");
    assert!(msg.starts_with("shares[1]"), "{msg}");
    assert!(msg.contains(&t[1].0.to_string()), "{msg}");
    // 400M asked, 300M available: 100M short.
    assert!(msg.contains("lacks KRW 100000000"), "{msg}");
    assert_eq!(b.snapshot(), before, "no team was committed");
    for team in &t {
        let budget = b.budget(*team).await;
        assert_eq!(krw(&budget["total"]["committed_krw"]), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eliminated_team_is_refused_new_commitments_but_keeps_its_licences() {
    let b = Budget::start().await;
    let t = teams(2);
    b.select(&[(t[0], 0), (t[1], 0)]).await;
    let dataset = b.dataset("Legal corpus").await;
    let mut bought = commitment(t[0], "joint_purchase", 50_000_000);
    bought["dataset_id"] = json!(dataset);
    let (s, c) = b.post("/commitments", bought).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    b.publish(
        "milestones",
        topics::MILESTONES,
        &TeamEliminated {
            gate_id: Uuid::now_v7(),
            gate: "gate-1".into(),
            consortium_id: t[0],
            reason: "rank: lowest gate score".into(),
            reallocation: Vec::new(),
            decided_at: chrono::Utc::now(),
        },
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        (b.budget(t[0]).await["eliminated_at_gate"] == "gate-1").then_some(())
    })
    .await
    .expect("the elimination was applied");
    let before = b.snapshot();
    let (s, e) = b
        .post(
            "/commitments",
            commitment(t[0], "building_processing", 1_000),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("TEAM_ELIMINATED"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("consortium_id: "),
        "{e}"
    );
    let (s, e) = b
        .post(
            "/joint-purchases",
            json!({"id": Uuid::now_v7(), "dataset_id": dataset, "fiscal_year": this_year(),
                   "total_krw": 1_000, "reason": "x",
                   "shares": [{"consortium_id": t[1]}, {"consortium_id": t[0]}]}),
        )
        .await;
    assert_eq!(e["code"], "TEAM_ELIMINATED", "{s} {e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("shares[1].consortium_id"),
        "{e}"
    );
    assert_eq!(b.snapshot(), before);
    // The data it bought stays usable, and its supplier's invoice is still recorded.
    let (_, l) = b.get(&format!("/licences?consortium_id={}", t[0].0)).await;
    assert_eq!(l.as_array().map(Vec::len), Some(1), "{l}");
    assert_eq!(l[0]["dataset_id"], json!(dataset));
    let (s, i) = b
        .post(
            "/invoices",
            json!({"id": Uuid::now_v7(), "commitment_id": c["id"], "amount_krw": 50_000_000,
                   "invoice_no": "INV-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    // The other team still commits.
    let (s, _) = b
        .post(
            "/commitments",
            commitment(t[1], "building_processing", 1_000),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_give_every_figure_by_category_the_monthly_burn_and_the_programme_total() {
    let b = Budget::start().await;
    let t = teams(2);
    b.select(&[(t[0], 0), (t[1], 0)]).await;
    let (_, c1) = b
        .post(
            "/commitments",
            commitment(t[0], "joint_purchase", 700_000_000),
        )
        .await;
    let (_, c2) = b
        .post(
            "/commitments",
            commitment(t[0], "building_processing", 200_000_000),
        )
        .await;
    let (s, c3) = b
        .post(
            "/commitments",
            commitment(t[1], "building_processing", 50_000_000),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c3}");
    // Finance records an invoice and confirms payments, idempotently by its own key.
    let finance = b
        .ctx
        .integration_bearer("finance-1", &[kaip_auth::scopes::WRITE_DATA_FINANCE]);
    let invoice_id = Uuid::now_v7();
    let (s, inv) = b
        .post_as(
            &finance,
            "/invoices",
            json!({"id": invoice_id, "commitment_id": c1["id"], "amount_krw": 600_000_000,
                   "invoice_no": "INV-2026-001"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let pay = json!({"external_key": "FIN-1", "invoice_id": invoice_id, "amount_krw": 250_000_000,
                     "paid_at": chrono::Utc::now()});
    let (s, p) = b.post_as(&finance, "/payments", pay.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, p2) = b.post_as(&finance, "/payments", pay.clone()).await;
    assert_eq!(
        (s, &p2),
        (StatusCode::OK, &p),
        "a repeat answers the original"
    );
    let mut other = pay.clone();
    other["amount_krw"] = json!(1);
    let (s, e) = b.post_as(&finance, "/payments", other).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("EXISTS_WITH_DIFFERENT_FIELDS"))
    );
    // More than the invoice's unpaid part is refused.
    let (s, e) = b
        .post_as(
            &finance,
            "/payments",
            json!({"external_key": "FIN-2", "invoice_id": invoice_id, "amount_krw": 350_000_001,
                   "paid_at": chrono::Utc::now()}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("PAYMENT_EXCEEDS_INVOICE")
        )
    );
    // Without the scope, and as a consortium, finance's endpoints are refused.
    let bare = b.ctx.integration_bearer("finance-2", &[]);
    let (s, _) = b.post_as(&bare, "/payments", pay.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let own = b.ctx.bearer(Role::Consortium, Some(t[0]));
    let (s, _) = b.post_as(&own, "/payments", pay).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A cancellation releases what was not invoiced.
    let (s, c) = b
        .post(
            &format!("/commitments/{}/cancel", c2["id"].as_str().expect("id")),
            json!({"reason": "supplier withdrew"}),
        )
        .await;
    assert_eq!(
        (s, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{c}"
    );
    let (s, e) = b
        .post(
            &format!("/commitments/{}/cancel", c2["id"].as_str().expect("id")),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("COMMITMENT_ALREADY_CANCELLED"))
    );

    let budget = b.budget(t[0]).await;
    let jp = category(&budget, "joint_purchase");
    assert_eq!(
        [
            jp["limit_krw"].clone(),
            jp["committed_krw"].clone(),
            jp["invoiced_krw"].clone(),
            jp["paid_krw"].clone(),
            jp["available_krw"].clone()
        ],
        [
            json!(10_000_000_000i64),
            json!(700_000_000),
            json!(600_000_000),
            json!(250_000_000),
            json!(9_300_000_000i64)
        ]
    );
    let bp = category(&budget, "building_processing");
    assert_eq!(krw(&bp["committed_krw"]), 0);
    assert_eq!(krw(&bp["available_krw"]), 5_000_000_000);
    assert_eq!(krw(&budget["total"]["available_krw"]), 14_300_000_000);

    let month = kaip_data_budget::domain::kst_month(chrono::Utc::now());
    let (_, burn) = b.get(&format!("/burn?consortium_id={}", t[0].0)).await;
    assert_eq!(
        burn,
        json!([{"month": month, "invoiced_krw": 600_000_000, "paid_krw": 250_000_000}])
    );
    let (_, total) = b.get(&format!("/total?fiscal_year={}", this_year())).await;
    assert_eq!(total["teams"], 2);
    assert_eq!(krw(&total["total"]["limit_krw"]), 30_000_000_000);
    assert_eq!(krw(&total["total"]["committed_krw"]), 750_000_000);
    assert_eq!(krw(&total["total"]["available_krw"]), 29_250_000_000);

    // A consortium user sees its own team only.
    let (s, mine) = b.get_as(&own, "/budgets").await;
    assert_eq!(s, StatusCode::OK);
    assert!(mine
        .as_array()
        .expect("list")
        .iter()
        .all(|x| x["consortium_id"] == json!(t[0])));
    let (s, _) = b
        .get_as(&own, &format!("/budgets/{}/{}", t[1].0, this_year()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = b
        .post_as(&own, "/commitments", commitment(t[1], "joint_purchase", 1))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = b
        .get_as(&own, &format!("/total?fiscal_year={}", this_year()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    b.published("DataPaymentConfirmed", 1).await;
    b.published("DataInvoiceRecorded", 1).await;
    b.published("DataCommitmentCancelled", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_input_gets_its_code_naming_the_field_and_writes_nothing() {
    let b = Budget::start().await;
    let t = teams(3);
    b.select(&[(t[0], 0), (t[1], 0), (t[2], 0)]).await;
    b.publish(
        "milestones",
        topics::MILESTONES,
        &TeamEliminated {
            gate_id: Uuid::now_v7(),
            gate: "gate-1".into(),
            consortium_id: t[2],
            reason: "rank".into(),
            reallocation: Vec::new(),
            decided_at: chrono::Utc::now(),
        },
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        (b.budget(t[2]).await["eliminated_at_gate"] == "gate-1").then_some(())
    })
    .await
    .expect("eliminated");
    let (_, c) = b
        .post("/commitments", commitment(t[0], "joint_purchase", 100))
        .await;
    let dataset = b.dataset("Medical images").await;
    let year = this_year();
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let base = commitment(t[0], "joint_purchase", 1_000);
    let joint = |shares: Value, total: i64, fy: i32| {
        json!({"id": Uuid::now_v7(), "dataset_id": dataset, "fiscal_year": fy,
               "total_krw": total, "reason": "r", "shares": shares})
    };
    let cap_path = format!("/budgets/{}/{year}/cap", t[0].0);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/commitments",
            with(base.clone(), "amount_krw", json!(0)),
            "AMOUNT_NOT_POSITIVE",
            "amount_krw",
        ),
        (
            "/commitments",
            with(base.clone(), "amount_krw", json!(-5)),
            "AMOUNT_NOT_POSITIVE",
            "amount_krw",
        ),
        (
            "/commitments",
            with(base.clone(), "amount_krw", json!(i64::MAX)),
            "AMOUNT_TOO_LARGE",
            "amount_krw",
        ),
        (
            "/commitments",
            with(base.clone(), "amount_krw", json!(1_000_000_000_000_000i64)),
            "INSUFFICIENT_BUDGET",
            "amount_krw",
        ),
        (
            "/commitments",
            with(base.clone(), "consortium_id", json!(Uuid::new_v4())),
            "TEAM_UNKNOWN",
            "consortium_id",
        ),
        (
            "/commitments",
            with(base.clone(), "consortium_id", json!(t[2])),
            "TEAM_ELIMINATED",
            "consortium_id",
        ),
        (
            "/commitments",
            with(base.clone(), "fiscal_year", json!(2031)),
            "YEAR_OUTSIDE_PROGRAMME",
            "fiscal_year",
        ),
        (
            "/commitments",
            with(base.clone(), "fiscal_year", json!(2025)),
            "YEAR_OUTSIDE_PROGRAMME",
            "fiscal_year",
        ),
        (
            "/commitments",
            with(base.clone(), "fiscal_year", json!(year + 1)),
            "FISCAL_YEAR_NOT_CURRENT",
            "fiscal_year",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0]}, {"consortium_id": t[1]}]),
                1_000,
                year + 1,
            ),
            "FISCAL_YEAR_NOT_CURRENT",
            "fiscal_year",
        ),
        (
            "/commitments",
            with(base.clone(), "dataset_id", json!(Uuid::new_v4())),
            "DATASET_UNKNOWN",
            "dataset_id",
        ),
        (
            "/commitments",
            with(base.clone(), "reason", json!(" ")),
            "REASON_REQUIRED",
            "reason",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0], "amount_krw": 600}, {"consortium_id": t[1], "amount_krw": 300}]),
                1_000,
                year,
            ),
            "SHARES_DO_NOT_SUM",
            "shares",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0]}, {"consortium_id": t[1]}]),
                0,
                year,
            ),
            "AMOUNT_NOT_POSITIVE",
            "total_krw",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0]}, {"consortium_id": t[1]}]),
                1_000,
                2040,
            ),
            "YEAR_OUTSIDE_PROGRAMME",
            "fiscal_year",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0]}, {"consortium_id": Uuid::nil()}]),
                1_000,
                year,
            ),
            "TEAM_UNKNOWN",
            "shares[1].consortium_id",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0], "weight": 1}, {"consortium_id": t[1], "weight": 0}]),
                1_000,
                year,
            ),
            "WEIGHT_NOT_POSITIVE",
            "shares[1].weight",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0], "amount_krw": i64::MAX}, {"consortium_id": t[1], "amount_krw": 1}]),
                i64::MAX,
                year,
            ),
            "AMOUNT_TOO_LARGE",
            "total_krw",
        ),
        (
            "/joint-purchases",
            joint(
                json!([{"consortium_id": t[0], "amount_krw": 1_000_000_000_000_000i64}, {"consortium_id": t[1], "amount_krw": 1}]),
                1_000_000_000_000_000,
                year,
            ),
            "SHARES_DO_NOT_SUM",
            "shares",
        ),
        (
            "/invoices",
            json!({"id": Uuid::now_v7(), "commitment_id": c["id"], "amount_krw": 101, "invoice_no": "X"}),
            "INVOICE_EXCEEDS_COMMITMENT",
            "amount_krw",
        ),
        (
            "/invoices",
            json!({"id": Uuid::now_v7(), "commitment_id": c["id"], "amount_krw": 0, "invoice_no": "X"}),
            "AMOUNT_NOT_POSITIVE",
            "amount_krw",
        ),
        (
            "/invoices",
            json!({"id": Uuid::now_v7(), "commitment_id": Uuid::new_v4(), "amount_krw": 1, "invoice_no": "X"}),
            "COMMITMENT_NOT_FOUND",
            "commitment_id",
        ),
        (
            &cap_path[..],
            json!({"cap_krw": 16_000_000_000i64, "joint_purchase_limit_krw": 1, "building_processing_limit_krw": 1, "reason": "r"}),
            "CAP_ABOVE_PROGRAMME_MAXIMUM",
            "cap_krw",
        ),
        (
            &cap_path[..],
            json!({"cap_krw": 1_000, "joint_purchase_limit_krw": 99, "building_processing_limit_krw": 1, "reason": "r"}),
            "CAP_BELOW_COMMITTED",
            "joint_purchase_limit_krw",
        ),
        (
            &cap_path[..],
            json!({"cap_krw": i64::MAX, "joint_purchase_limit_krw": 1, "building_processing_limit_krw": 1, "reason": "r"}),
            "AMOUNT_TOO_LARGE",
            "cap_krw",
        ),
        (
            &cap_path[..],
            json!({"cap_krw": 1_000_000_000_000_000i64, "joint_purchase_limit_krw": 1, "building_processing_limit_krw": 1, "reason": "r"}),
            "CAP_ABOVE_PROGRAMME_MAXIMUM",
            "cap_krw",
        ),
    ];
    // Let the relay drain what the set-up wrote before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.snapshot();
    for (path, body, code, field) in cases {
        let (s, e) = b.post(path, body.clone()).await;
        assert!(s.is_client_error(), "{path} {body}: {s} {e}");
        assert_eq!(e["code"], code, "{path} {body}: {e}");
        let msg = e["message"].as_str().unwrap_or("");
        assert!(
            msg.starts_with(&format!("{field}: ")),
            "{path}: `{msg}` names {field}"
        );
    }
    assert_eq!(b.snapshot(), before, "nothing was written");
}

// ---------------------------------------------------------------------------------------
// Through the gateway
// ---------------------------------------------------------------------------------------

fn gql<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert!(body["errors"].is_null(), "{field}: {body}");
    &body["data"][field]
}

const BUDGETS: &str = "query($c: UUID, $y: Int) { dataBudgets(consortiumId: $c, fiscalYear: $y) { consortiumId fiscalYear total { limitKrw committedKrw availableKrw } categories { category figures { limitKrw committedKrw } } } }";
const JOINT: &str = "mutation($input: JointDataPurchaseInput!) { makeJointDataPurchase(input: $input) { id splitRule totalKrw shares { consortiumId amountKrw } } }";
const COMMIT: &str = "mutation($input: CommitDataBudgetInput!) { commitDataBudget(input: $input) { id amountKrw category status } }";
const DATASET: &str =
    "mutation($input: RegisterDatasetInput!) { registerDataset(input: $input) { id name } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_the_gateway_officers_see_all_teams_and_a_consortium_only_its_own() {
    let p = kaip_e2e::Platform::start().await;
    let data = &p.others[1];
    assert_eq!(data.name, "data-budget");
    let officer = p.ctx.bearer(Role::Officer, None);
    let t = teams(3);
    let ev = selection(&[(t[0], 0), (t[1], 0), (t[2], 0)]);
    let env = kaip_contracts::EventEnvelope::wrap(
        "scoring",
        kaip_contracts::Actor::system("scoring"),
        &ev,
    )
    .expect("wrap");
    data.wait_assigned().await;
    p.ctx
        .produce_raw(
            &p.ctx.topic(topics::SCORING),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[("kaip-event-type", SelectionPublished::TYPE)],
        )
        .await;
    let year = this_year();
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(Some(&officer), BUDGETS, json!({"c": null, "y": year}))
            .await;
        (gql(&body, "dataBudgets").as_array().map(Vec::len) == Some(3)).then_some(())
    })
    .await
    .expect("the budget learned the selection");

    // An officer registers a dataset and buys it jointly: KRW as digit strings, exact split.
    let dataset = Uuid::now_v7();
    let body = p
        .graphql(
            Some(&officer),
            DATASET,
            json!({"input": {"id": dataset, "name": "Korean web corpus", "provider": "NIA",
                             "licenceTerms": "research use"}}),
        )
        .await;
    gql(&body, "registerDataset");
    let body = p
        .graphql(
            Some(&officer),
            JOINT,
            json!({"input": {"id": Uuid::now_v7(), "datasetId": dataset, "fiscalYear": year,
                   "totalKrw": "1000000001", "reason": "shared corpus",
                   "shares": [{"consortiumId": t[0]}, {"consortiumId": t[1]}, {"consortiumId": t[2]}]}}),
        )
        .await;
    let j = gql(&body, "makeJointDataPurchase");
    assert_eq!(j["totalKrw"], "1000000001");
    let amounts: Vec<&str> = j["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s["amountKrw"].as_str().expect("Krw string"))
        .collect();
    assert_eq!(amounts, vec!["333333334", "333333334", "333333333"]);

    // A consortium user sees only its own team; naming another is refused.
    let own = p.ctx.bearer(Role::Consortium, Some(t[0]));
    let body = p
        .graphql(Some(&own), BUDGETS, json!({"c": null, "y": year}))
        .await;
    let mine = gql(&body, "dataBudgets").as_array().expect("list").clone();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["consortiumId"], t[0].to_string());
    assert_eq!(mine[0]["total"]["committedKrw"], "333333334");
    let body = p
        .graphql(Some(&own), BUDGETS, json!({"c": t[1], "y": year}))
        .await;
    assert_eq!(kaip_e2e::error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p
        .graphql(
            Some(&own),
            COMMIT,
            json!({"input": {"id": Uuid::now_v7(), "consortiumId": t[1], "fiscalYear": year,
                   "category": "BUILDING_PROCESSING", "amountKrw": "1000", "reason": "po"}}),
        )
        .await;
    assert_eq!(kaip_e2e::error_code(&body), Some("FORBIDDEN"), "{body}");
    // Its own commitment goes through; a joint purchase and the total are for staff.
    let body = p
        .graphql(
            Some(&own),
            COMMIT,
            json!({"input": {"id": Uuid::now_v7(), "consortiumId": t[0], "fiscalYear": year,
                   "category": "BUILDING_PROCESSING", "amountKrw": "1000", "reason": "po"}}),
        )
        .await;
    assert_eq!(gql(&body, "commitDataBudget")["amountKrw"], "1000");
    let body = p
        .graphql(
            Some(&own),
            "query($y: Int!) { dataBudgetTotal(fiscalYear: $y) { teams } }",
            json!({"y": year}),
        )
        .await;
    assert_eq!(kaip_e2e::error_code(&body), Some("FORBIDDEN"), "{body}");
    // A refusal keeps the service's code; a number instead of a digit string is refused.
    let body = p
        .graphql(
            Some(&officer),
            COMMIT,
            json!({"input": {"id": Uuid::now_v7(), "consortiumId": t[1], "fiscalYear": year,
                   "category": "BUILDING_PROCESSING", "amountKrw": "0", "reason": "po"}}),
        )
        .await;
    assert_eq!(
        kaip_e2e::error_code(&body),
        Some("AMOUNT_NOT_POSITIVE"),
        "{body}"
    );
    let body = p
        .graphql(
            Some(&officer),
            COMMIT,
            json!({"input": {"id": Uuid::now_v7(), "consortiumId": t[1], "fiscalYear": year,
                   "category": "BUILDING_PROCESSING", "amountKrw": 1000, "reason": "po"}}),
        )
        .await;
    assert!(
        body["errors"].is_array() && body["data"].is_null(),
        "{body}"
    );
    let body = p
        .graphql(
            Some(&officer),
            "query($y: Int!) { dataBudgetTotal(fiscalYear: $y) { teams total { committedKrw } } }",
            json!({"y": year}),
        )
        .await;
    let total = gql(&body, "dataBudgetTotal");
    assert_eq!(total["teams"], 3);
    assert_eq!(total["total"]["committedKrw"], "1000001001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_are_immutable_gate_decisions_eliminate_once_and_carry_over_follows_the_programme()
{
    let b = Budget::start().await;
    let t = teams(2);
    b.select(&[(t[0], 0), (t[1], 0)]).await;
    let year = this_year();
    // Nothing is updated or deleted, not even by the service's own connection.
    {
        let mut conn = b.svc.conn();
        for sql in [
            "UPDATE budget_caps SET cap_krw = 1",
            "DELETE FROM budgets",
            "TRUNCATE budget_programme_settings",
        ] {
            let e = diesel::sql_query(sql).execute(&mut conn).expect_err(sql);
            assert!(e.to_string().contains("immutable"), "{sql}: {e}");
        }
    }
    // A gate's decision eliminates; the same decision again and its TeamEliminated add nothing.
    let gate_id = Uuid::now_v7();
    let decided = kaip_contracts::events::GateDecided {
        gate_id,
        gate: "gate-1".into(),
        passed: vec![t[0]],
        eliminated: vec![t[1]],
        decided_at: chrono::Utc::now(),
    };
    b.publish("milestones", topics::MILESTONES, &decided).await;
    b.publish("milestones", topics::MILESTONES, &decided).await;
    b.publish(
        "milestones",
        topics::MILESTONES,
        &TeamEliminated {
            gate_id,
            gate: "gate-1".into(),
            consortium_id: t[1],
            reason: "rank".into(),
            reallocation: Vec::new(),
            decided_at: chrono::Utc::now(),
        },
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        (b.budget(t[1]).await["eliminated_at_gate"] == "gate-1").then_some(())
    })
    .await
    .expect("eliminated by the gate");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.snapshot()["budget_eliminations"], json!(1));
    assert!(b.budget(t[0]).await["eliminated_at_gate"].is_null());

    // Without carry-over, next year's room is its own cap; with it, this year's unspent adds.
    if year + 1 > 2030 {
        return;
    }
    let (s, _) = b
        .post(
            "/commitments",
            commitment(t[0], "joint_purchase", 9_000_000_000),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let next = |amount: i64| {
        json!({"id": Uuid::now_v7(), "consortium_id": t[0], "fiscal_year": year + 1,
               "category": "building_processing", "amount_krw": amount, "reason": "po"})
    };
    let (s, e) = b.post("/commitments", next(1)).await;
    assert_eq!(e["code"], "FISCAL_YEAR_NOT_CURRENT", "{s} {e}");
    let (_, nb) = b.get(&format!("/budgets/{}/{}", t[0].0, year + 1)).await;
    assert_eq!(krw(&nb["carried_over_krw"]), 0, "{nb}");
    let (s, p) = b
        .call(
            reqwest::Method::PUT,
            "/programme",
            &b.officer,
            Some(json!({"settings": {"max_cap_krw": 15_000_000_000i64,
                "joint_purchase_limit_krw": 10_000_000_000i64,
                "building_processing_limit_krw": 5_000_000_000i64, "carry_over": true,
                "first_year": 2026, "last_year": 2030}, "reason": "ministry notice: carry over"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["version"], 2);
    // This year left 6bn in total, 5bn of it in building and processing.
    let (_, nb) = b.get(&format!("/budgets/{}/{}", t[0].0, year + 1)).await;
    assert_eq!(krw(&nb["carried_over_krw"]), 6_000_000_000, "{nb}");
}

async fn team_with_invoice(b: &Budget, finance: &str) -> (Vec<ConsortiumId>, Value, Uuid) {
    let t = teams(2);
    b.select(&[(t[0], 0), (t[1], 0)]).await;
    let (s, c) = b
        .post("/commitments", commitment(t[0], "joint_purchase", 1_000))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let invoice = Uuid::now_v7();
    let (s, i) = b
        .post_as(
            finance,
            "/invoices",
            json!({"id": invoice, "commitment_id": c["id"], "amount_krw": 400, "invoice_no": "SUP-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    (t, c, invoice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn retries_racing_their_original_get_its_answer_not_a_refusal() {
    let b = Budget::start().await;
    let finance = b
        .ctx
        .integration_bearer("finance-1", &[kaip_auth::scopes::WRITE_DATA_FINANCE]);
    let (t, c, invoice) = team_with_invoice(&b, &finance).await;
    let team = t[0];
    // Ten copies of one payment for the whole invoice, at once: all answer the one payment.
    let pay = json!({"external_key": "FIN-RACE", "invoice_id": invoice, "amount_krw": 400,
                     "paid_at": chrono::Utc::now()});
    let answers =
        futures::future::join_all((0..10).map(|_| b.post_as(&finance, "/payments", pay.clone())))
            .await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (s, p) in &answers {
        assert!(s.is_success(), "{s} {p}");
        assert_eq!(p["external_key"], "FIN-RACE", "{p}");
        assert_eq!(p["amount_krw"], answers[0].1["amount_krw"]);
    }
    // Ten copies of one invoice for all the commitment leaves open.
    let inv = json!({"id": Uuid::now_v7(), "commitment_id": c["id"], "amount_krw": 600,
                     "invoice_no": "SUP-2"});
    let answers =
        futures::future::join_all((0..10).map(|_| b.post_as(&finance, "/invoices", inv.clone())))
            .await;
    for (s, i) in &answers {
        assert!(s.is_success(), "{s} {i}");
        assert_eq!(i["id"], inv["id"], "{i}");
    }
    // Ten copies of one commitment.
    let mut com = commitment(team, "joint_purchase", 1_000_000);
    com["reason"] = json!("race");
    let answers =
        futures::future::join_all((0..10).map(|_| b.post("/commitments", com.clone()))).await;
    for (s, x) in &answers {
        assert!(s.is_success(), "{s} {x}");
        assert_eq!(x["id"], com["id"], "{x}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supplier_invoice_is_recorded_once_and_a_joint_share_is_not_cancelled_alone() {
    let b = Budget::start().await;
    let finance = b
        .ctx
        .integration_bearer("finance-1", &[kaip_auth::scopes::WRITE_DATA_FINANCE]);
    let (t, c, _) = team_with_invoice(&b, &finance).await;
    let (team, other) = (t[0], t[1]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.snapshot();
    let (s, e) = b
        .post_as(
            &finance,
            "/invoices",
            json!({"id": Uuid::now_v7(), "commitment_id": c["id"], "amount_krw": 100, "invoice_no": " SUP-1 "}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("INVOICE_ALREADY_RECORDED")
        ),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("invoice_no: "),
        "{e}"
    );
    assert_eq!(b.snapshot(), before, "nothing was written");

    // A share of a joint purchase cannot be cancelled alone.
    let dataset = b.dataset("Shared corpus").await;
    let (s, j) = b
        .post(
            "/joint-purchases",
            json!({"id": Uuid::now_v7(), "dataset_id": dataset, "fiscal_year": this_year(),
                   "total_krw": 1_000, "reason": "r",
                   "shares": [{"consortium_id": team}, {"consortium_id": other}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let share = j["shares"][0]["commitment_id"]
        .as_str()
        .expect("share")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.snapshot();
    let own = b.ctx.bearer(Role::Consortium, Some(team));
    let (s, e) = b
        .post_as(
            &own,
            &format!("/commitments/{share}/cancel"),
            json!({"reason": "we changed our mind"}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("JOINT_PURCHASE_SHARE")),
        "{e}"
    );
    assert_eq!(b.snapshot(), before, "nothing was written");
}

/// Waits until `team` has its budget for this year (or, with `none`, until a later marker
/// selection is applied and `team` still has none).
async fn wait_budget_of(b: &Budget, team: ConsortiumId) -> Value {
    let path = format!("/budgets/{}/{}", team.0, this_year());
    eventually(Duration::from_secs(60), || async {
        let (s, body) = b.get(&path).await;
        (s == StatusCode::OK).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("no budget for {}", team.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cap_comes_from_the_calls_maximum_within_the_programme_and_older_events_keep_the_request(
) {
    let b = Budget::start().await;
    b.svc.wait_assigned().await;
    let t = teams(5);
    // A call granting KRW 7bn per team: the cap is 7bn whatever each team asked for.
    b.publish(
        "scoring",
        topics::SCORING,
        &from_call(&[(t[0], 3_000_000_000), (t[1], 0)], Some(7_000_000_000)),
    )
    .await;
    for team in &t[..2] {
        let budget = wait_budget_of(&b, *team).await;
        assert_eq!(
            krw(&budget["total"]["limit_krw"]),
            7_000_000_000,
            "{budget}"
        );
        assert_eq!(
            krw(&category(&budget, "joint_purchase")["limit_krw"]),
            7_000_000_000
        );
        assert_eq!(
            krw(&category(&budget, "building_processing")["limit_krw"]),
            5_000_000_000
        );
        let why = budget["caps"][0]["reason"].as_str().expect("reason");
        assert!(why.contains("maximum is KRW 7000000000"), "{why}");
    }
    // A call granting more than the programme allows: bounded by the programme's 15bn.
    b.publish(
        "scoring",
        topics::SCORING,
        &from_call(&[(t[2], 1_000)], Some(20_000_000_000)),
    )
    .await;
    let budget = wait_budget_of(&b, t[2]).await;
    assert_eq!(krw(&budget["total"]["limit_krw"]), 15_000_000_000);
    // A call granting no data budget opens none.
    b.publish(
        "scoring",
        topics::SCORING,
        &from_call(&[(t[3], 5_000)], Some(0)),
    )
    .await;
    // A v1 event from before calls announced maxima (no `team_maxima` key at all) still
    // decodes, and the team's request is its cap, as before.
    let env = kaip_contracts::EventEnvelope::wrap(
        "scoring",
        kaip_contracts::Actor::system("scoring"),
        &selection(&[(t[4], 4_000_000_000)]),
    )
    .expect("wrap");
    let mut raw = serde_json::to_value(&env).expect("json");
    raw["data"]
        .as_object_mut()
        .expect("data")
        .remove("team_maxima")
        .expect("the field is there to remove");
    let v1: kaip_contracts::EventEnvelope = serde_json::from_value(raw).expect("envelope");
    b.publish_envelope(topics::SCORING, &v1).await;
    let budget = wait_budget_of(&b, t[4]).await;
    assert_eq!(
        krw(&budget["total"]["limit_krw"]),
        4_000_000_000,
        "{budget}"
    );
    // The team of the call granting no data budget is known, with no budget.
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let known = eventually(Duration::from_secs(60), || async {
        let mut c = b.svc.conn();
        let r: N =
            diesel::sql_query("SELECT count(*) AS n FROM budget_teams WHERE consortium_id = $1")
                .bind::<diesel::sql_types::Uuid, _>(t[3].0)
                .get_result(&mut c)
                .expect("teams");
        (r.n == 1).then_some(())
    })
    .await;
    assert!(
        known.is_some(),
        "the selection of the zero-maximum call was applied"
    );
    let (s, e) = b.get(&format!("/budgets/{}/{}", t[3].0, this_year())).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = b
        .post("/commitments", commitment(t[3], "joint_purchase", 1))
        .await;
    assert_eq!(e["code"], "BUDGET_NOT_FOUND", "{s} {e}");
}

fn programme_body(max: i64, carry_over: bool, last_year: i32, reason: &str) -> Value {
    json!({"settings": {"max_cap_krw": max, "joint_purchase_limit_krw": 10_000_000_000i64.min(max),
        "building_processing_limit_krw": 5_000_000_000i64.min(max), "carry_over": carry_over,
        "first_year": 2026, "last_year": last_year}, "reason": reason})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_programme_is_set_by_staff_with_a_reason_and_never_leaves_a_team_over_its_cap() {
    let b = Budget::start().await;
    let t = teams(3);
    b.select(&[(t[0], 0), (t[1], 0), (t[2], 0)]).await;
    let put = |bearer: String, body: Value| {
        let b = &b;
        async move {
            b.call(reqwest::Method::PUT, "/programme", &bearer, Some(body))
                .await
        }
    };
    let before = b.snapshot();
    // Only ministry staff configure the programme.
    for (role, team) in [
        (Role::Consortium, Some(t[0])),
        (Role::Reviewer, None),
        (Role::Integration, None),
    ] {
        let (s, e) = put(
            b.ctx.bearer(role, team),
            programme_body(12_000_000_000, false, 2030, "not mine to set"),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?}: {e}");
    }
    let (s, e) = put(
        b.officer.clone(),
        programme_body(12_000_000_000, false, 2030, " "),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("REASON_REQUIRED")),
        "{e}"
    );
    // Figures at the edge of the type are refused by name, not a 500.
    for max in [i64::MAX, 1_000_000_000_000_001] {
        let (s, e) = put(b.officer.clone(), programme_body(max, false, 2030, "edge")).await;
        assert_eq!(e["code"], "AMOUNT_TOO_LARGE", "{s} {e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("settings.max_cap_krw"),
            "{e}"
        );
    }
    // The years cannot drop one in which budgets are open.
    let (s, e) = put(
        b.officer.clone(),
        programme_body(15_000_000_000, false, 2029, "shorter"),
    )
    .await;
    assert_eq!(e["code"], "PROGRAMME_YEARS_IN_USE", "{s} {e}");
    assert_eq!(b.snapshot(), before, "nothing written by a refusal");

    // Team 0 commits 11bn: a maximum of 10bn would leave it 1bn over. Refused, by name.
    let (s, c) = b
        .post(
            "/commitments",
            commitment(t[0], "joint_purchase", 10_000_000_000),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, c) = b
        .post(
            "/commitments",
            commitment(t[0], "building_processing", 1_000_000_000),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let before = b.snapshot();
    let (s, e) = put(
        b.officer.clone(),
        programme_body(10_000_000_000, false, 2030, "cut"),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("PROGRAMME_BELOW_COMMITTED")),
        "{e}"
    );
    let msg = e["message"].as_str().expect("message");
    assert!(msg.contains(&t[0].0.to_string()), "names the team: {msg}");
    assert!(
        msg.contains("KRW 1000000000 over its cap"),
        "names the shortfall: {msg}"
    );
    assert_eq!(b.snapshot(), before, "nothing written by a refusal");

    // 12bn fits: every cap above it is lowered (a new record with the reason), and the
    // change is announced with who and why. An admin may do it too.
    let admin = b.ctx.bearer(Role::Admin, None);
    let (s, p) = put(
        admin,
        programme_body(12_000_000_000, false, 2031, "the 2027 budget law"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    for team in &t {
        let budget = b.budget(*team).await;
        assert_eq!(
            krw(&budget["total"]["limit_krw"]),
            12_000_000_000,
            "{budget}"
        );
        let caps = budget["caps"].as_array().expect("caps");
        assert_eq!(caps.len(), 2, "the opening cap is kept: {budget}");
        assert_eq!(caps[1]["reason"], "the 2027 budget law");
        // The year added at the end is opened for every team, within the new maximum.
        let (s, added) = b.get(&format!("/budgets/{}/2031", team.0)).await;
        assert_eq!(s, StatusCode::OK, "{added}");
        assert_eq!(krw(&added["total"]["limit_krw"]), 12_000_000_000, "{added}");
    }
    let configured = b.published("DataProgrammeConfigured", 1).await;
    let data = &configured[0]["data"];
    assert_eq!(data["reason"], "the 2027 budget law");
    assert_eq!(data["settings"]["max_cap_krw"], json!(12_000_000_000i64));
    assert!(
        data["set_by"].as_str().is_some_and(|s| !s.is_empty()),
        "{data}"
    );
    assert_eq!(configured[0]["actor"]["role"], "admin", "{}", configured[0]);
    // This year and the later ones of the three teams were lowered.
    let years = (this_year()..=2030).count() as i64;
    assert_eq!(data["caps_lowered"], json!(3 * years), "{data}");
    b.published("DataBudgetCapAdjusted", 3 * years as usize)
        .await;

    // Concurrency: commitments racing a programme change. Whatever the order, no team ends
    // over its cap, and no cap above the programme's maximum.
    // Teams 1 and 2 each try 8bn of joint purchases and 4bn of building: 12bn, their cap;
    // the new maximum is 11bn (team 0 has exactly 11bn committed).
    let mut commits: Vec<_> = (0..24)
        .map(|i| {
            let team = t[1 + i % 2];
            let cat = if (i / 2) % 3 == 2 {
                "building_processing"
            } else {
                "joint_purchase"
            };
            b.post("/commitments", commitment(team, cat, 1_000_000_000))
        })
        .collect();
    let lower = put(
        b.officer.clone(),
        programme_body(11_000_000_000, false, 2031, "race"),
    );
    let (commits, (ls, lb)) = tokio::join!(futures::future::join_all(commits.drain(..)), lower);
    assert!(
        ls == StatusCode::OK || lb["code"] == "PROGRAMME_BELOW_COMMITTED",
        "{ls} {lb}"
    );
    for (s, c) in &commits {
        assert!(
            *s == StatusCode::CREATED || c["code"] == "INSUFFICIENT_BUDGET",
            "{s} {c}"
        );
    }
    let (_, p) = b.get("/programme").await;
    let max = krw(&p["max_cap_krw"]);
    for team in &t {
        let budget = b.budget(*team).await;
        let cap = krw(&budget["total"]["limit_krw"]);
        assert!(cap <= max, "cap {cap} above the maximum {max}: {budget}");
        let committed = krw(&budget["total"]["committed_krw"]);
        assert!(
            committed <= cap,
            "committed {committed} over the cap {cap}: {budget}"
        );
        let jp = category(&budget, "joint_purchase");
        assert!(
            krw(&jp["committed_krw"]) <= krw(&jp["limit_krw"]),
            "{budget}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_reads_one_snapshot_so_its_figures_agree() {
    let b = Budget::start().await;
    let t = teams(1);
    b.select(&[(t[0], 0)]).await;
    let (s, c) = b
        .post(
            "/commitments",
            commitment(t[0], "joint_purchase", 2_000_000_000),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let year = this_year();
    // Hold the report up half-way: it reads the programme, budgets and caps, then waits
    // on the invoices (read with the commitments) while another transaction raises the cap
    // and commits more. A report on one snapshot shows the state before both.
    let mut lock = b.svc.conn();
    diesel::connection::SimpleConnection::batch_execute(
        &mut *lock,
        "BEGIN; LOCK TABLE budget_invoices IN ACCESS EXCLUSIVE MODE",
    )
    .expect("lock");
    let path = format!("/budgets/{}/{year}", t[0].0);
    let report = {
        let http = b.http.clone();
        let url = b.svc.url(&path);
        let officer = b.officer.clone();
        tokio::spawn(async move {
            let res = http
                .get(url)
                .header("Authorization", officer)
                .send()
                .await
                .expect("report");
            res.json::<Value>().await.expect("json")
        })
    };
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let waiting = eventually(Duration::from_secs(30), || async {
        let mut c = b.svc.conn();
        let r: N = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_locks l JOIN pg_class r ON r.oid = l.relation \
             WHERE r.relname = 'budget_invoices' AND NOT l.granted",
        )
        .get_result(&mut c)
        .expect("locks");
        (r.n > 0).then_some(())
    })
    .await;
    assert!(waiting.is_some(), "the report waits on the invoices");
    {
        let mut c = b.svc.conn();
        diesel::connection::SimpleConnection::batch_execute(
            &mut *c,
            &format!(
                "INSERT INTO budget_caps (consortium_id, fiscal_year, cap_krw, joint_purchase_limit_krw, \
                   building_processing_limit_krw, set_by, set_role, set_at, reason) \
                 VALUES ('{t}', {year}, 14000000000, 9000000000, 5000000000, 'officer-1', 'officer', now(), 'raised'); \
                 INSERT INTO budget_commitments (id, consortium_id, fiscal_year, category, amount_krw, made_by, \
                   made_role, made_at, reason) \
                 VALUES ('{id}', '{t}', {year}, 'joint_purchase', 7000000000, 'officer-1', 'officer', now(), 'more')",
                t = t[0].0,
                id = Uuid::now_v7()
            ),
        )
        .expect("the other transaction");
    }
    diesel::connection::SimpleConnection::batch_execute(&mut *lock, "COMMIT").expect("unlock");
    let seen = report.await.expect("report task");
    // Before both: cap 15bn with 2bn committed (not 15bn with 9bn: 6bn "available" that
    // never existed together with that cap).
    assert_eq!(krw(&seen["total"]["limit_krw"]), 15_000_000_000, "{seen}");
    assert_eq!(
        krw(&seen["total"]["committed_krw"]),
        2_000_000_000,
        "{seen}"
    );
    assert_eq!(
        krw(&seen["total"]["available_krw"]),
        13_000_000_000,
        "{seen}"
    );
    assert_eq!(seen["caps"].as_array().map(Vec::len), Some(1), "{seen}");
    // The next report sees both.
    let now = b.budget(t[0]).await;
    assert_eq!(krw(&now["total"]["limit_krw"]), 14_000_000_000, "{now}");
    assert_eq!(krw(&now["total"]["committed_krw"]), 9_000_000_000, "{now}");
    assert_eq!(krw(&now["total"]["available_krw"]), 5_000_000_000, "{now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amounts_are_bounded_and_a_programme_total_beyond_i64_is_a_coded_refusal() {
    let b = Budget::start().await;
    let t = teams(2);
    b.select(&[(t[0], 0), (t[1], 0)]).await;
    let before = b.snapshot();
    for amount in [i64::MAX, 1_000_000_000_000_001] {
        let (s, e) = b
            .post("/commitments", commitment(t[0], "joint_purchase", amount))
            .await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("AMOUNT_TOO_LARGE")),
            "{e}"
        );
        assert!(
            e["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("amount_krw"),
            "{e}"
        );
        let (s, e) = b
            .post(
                &format!("/budgets/{}/{}/cap", t[0].0, this_year()),
                json!({"cap_krw": amount, "joint_purchase_limit_krw": 1, "building_processing_limit_krw": 1,
                       "reason": "edge"}),
            )
            .await;
        assert_eq!(e["code"], "AMOUNT_TOO_LARGE", "{s} {e}");
    }
    assert_eq!(b.snapshot(), before, "nothing written");
    // Caps recorded before the bound existed (written here directly): each near the top of
    // an i64, together beyond it. The total is exact or refused by name, never a 500.
    let year = this_year();
    let mut c = b.svc.conn();
    for team in &t {
        diesel::connection::SimpleConnection::batch_execute(
            &mut *c,
            &format!(
                "INSERT INTO budget_caps (consortium_id, fiscal_year, cap_krw, joint_purchase_limit_krw, \
                   building_processing_limit_krw, set_by, set_role, set_at, reason) \
                 VALUES ('{}', {year}, {}, 10000000000, 5000000000, 'legacy', 'officer', now(), 'legacy')",
                team.0,
                i64::MAX - 1
            ),
        )
        .expect("legacy cap");
    }
    let (s, e) = b.get(&format!("/total?fiscal_year={year}")).await;
    assert!(s.is_client_error(), "{s} {e}");
    assert_eq!(e["code"], "TOTAL_OUT_OF_RANGE", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("total.limit_krw"),
        "{e}"
    );
    // Each team's own figures still read.
    let one = b.budget(t[0]).await;
    assert_eq!(krw(&one["total"]["limit_krw"]), i64::MAX - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharing_team_sees_its_own_share_of_a_joint_purchase_and_no_other() {
    let b = Budget::start().await;
    let t = teams(4);
    b.select(&[(t[0], 0), (t[1], 0), (t[2], 0), (t[3], 0)])
        .await;
    let dataset = b.dataset("Legal corpus").await;
    let id = Uuid::now_v7();
    let (s, j) = b
        .post(
            "/joint-purchases",
            json!({"id": id, "dataset_id": dataset, "fiscal_year": this_year(),
                   "total_krw": 1_000_000_001i64, "reason": "shared legal data",
                   "shares": [{"consortium_id": t[0]}, {"consortium_id": t[1]}, {"consortium_id": t[2]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let path = format!("/joint-purchases/{id}");
    // Staff see every share.
    let (_, all) = b.get(&path).await;
    assert_eq!(all["shares"].as_array().map(Vec::len), Some(3), "{all}");
    // A sharing team sees its own share and the dataset: no other team, amount or total.
    let own = b.ctx.bearer(Role::Consortium, Some(t[1]));
    let (s, mine) = b.get_as(&own, &path).await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    assert_eq!(mine["dataset_id"], json!(dataset));
    assert_eq!(mine["share"]["consortium_id"], json!(t[1]));
    assert_eq!(krw(&mine["share"]["amount_krw"]), 333_333_334);
    let text = mine.to_string();
    for other in [t[0], t[2]] {
        assert!(
            !text.contains(&other.0.to_string()),
            "another team leaks: {text}"
        );
    }
    assert!(!text.contains("1000000001"), "the total leaks: {text}");
    assert!(!text.contains("333333333"), "another amount leaks: {text}");
    // Another consortium, not sharing it, is told it does not exist.
    let stranger = b.ctx.bearer(Role::Consortium, Some(t[3]));
    let (s, e) = b.get_as(&stranger, &path).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("JOINT_PURCHASE_NOT_FOUND")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_date_is_neither_in_the_future_nor_before_its_commitment() {
    let b = Budget::start().await;
    let finance = b
        .ctx
        .integration_bearer("finance-1", &[kaip_auth::scopes::WRITE_DATA_FINANCE]);
    let (_, _, invoice) = team_with_invoice(&b, &finance).await;
    let before = b.snapshot();
    let now = chrono::Utc::now();
    for (paid_at, code) in [
        (now + chrono::Duration::hours(1), "PAID_AT_IN_FUTURE"),
        (
            now - chrono::Duration::days(30),
            "PAID_AT_BEFORE_COMMITMENT",
        ),
    ] {
        let (s, e) = b
            .post_as(
                &finance,
                "/payments",
                json!({"external_key": format!("FIN-{code}"), "invoice_id": invoice,
                       "amount_krw": 100, "paid_at": paid_at}),
            )
            .await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{e}"
        );
        assert!(
            e["message"].as_str().unwrap_or("").starts_with("paid_at"),
            "{e}"
        );
    }
    assert_eq!(b.snapshot(), before, "nothing written");
    // A few seconds ahead of our clock is within the skew.
    let (s, p) = b
        .post_as(
            &finance,
            "/payments",
            json!({"external_key": "FIN-SKEW", "invoice_id": invoice, "amount_krw": 100,
                   "paid_at": now + chrono::Duration::seconds(30)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
}
