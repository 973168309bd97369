//! The milestones service against the real PostgreSQL and broker: teams learned from
//! scoring's selection, plans, versioned evidence and verdicts, the overdue sweep with two
//! replicas, a stage gate from definition to publication (exact scores, an eligibility
//! verdict that changes the outcome, the committee), every bad input's code with nothing
//! written, what a team may see, and the ledger, data budget and talent reacting to a
//! decision published through milestones.

use diesel::prelude::*;
use kaip_contracts::dto::intake::ResourceRequest;
use kaip_contracts::events::{SelectedTeam, SelectionPublished};
use kaip_contracts::{CallId, ConsortiumId, DomainEvent, ProposalId, Role};
use kaip_testkit::{eventually, TestContext, TestService};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

struct Ms {
    http: reqwest::Client,
    svc: TestService,
    officer: String,
}

impl Ms {
    async fn start(ctx: &TestContext) -> Self {
        let mut settings = ctx.settings(kaip_milestones::DEFAULTS);
        settings.server.workers = 2;
        let svc = ctx
            .spawn_with(kaip_milestones::definition(), settings)
            .await;
        svc.wait_assigned().await;
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
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, bearer: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, bearer, Some(body))
            .await
    }

    async fn get(&self, path: &str, bearer: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, bearer, None).await
    }

    fn count(&self, sql: &str) -> i64 {
        let mut c = self.svc.conn();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "({sql})"
        )))
        .get_result(&mut c)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every milestones table's row count, the outbox and the audit trail: what "changes
    /// nothing" compares.
    fn footprint(&self) -> Vec<i64> {
        kaip_e2e::row_counts(&self.svc, &kaip_e2e::MILESTONES_TABLES)
    }

    /// Refused with `status` and `code`, and nothing written.
    async fn refused(
        &self,
        path: &str,
        bearer: &str,
        body: Value,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let before = self.footprint();
        let (s, b) = self.post(path, bearer, body).await;
        assert_eq!((s, b["code"].as_str()), (status, Some(code)), "{path}: {b}");
        assert_eq!(self.footprint(), before, "{path}: {code} changed something");
        b
    }

    async fn deliverable(&self, team: ConsortiumId, due: &str) -> Uuid {
        let (s, b) = self
            .post(
                "/deliverables",
                &self.officer,
                json!({"consortium_id": team, "phase": 1, "title": "Pre-training report",
                       "description": "The 100B-token run", "acceptance_criteria": "loss curve and evaluation",
                       "due_date": due}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        id_of(&b)
    }
}

fn id_of(b: &Value) -> Uuid {
    b["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id in {b}"))
}

async fn publish<E: DomainEvent>(ctx: &TestContext, producer: &str, topic: &str, event: &E) {
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
        &[("kaip-event-type", &env.event_type)],
    )
    .await;
}

fn selection(teams: &[ConsortiumId]) -> SelectionPublished {
    SelectionPublished {
        call_id: CallId::new(),
        selected: teams
            .iter()
            .enumerate()
            .map(|(i, t)| SelectedTeam {
                proposal_id: ProposalId::new(),
                consortium_id: *t,
                consortium_name: format!("Team {i}"),
                title: format!("Model {i}"),
                rank: i as i32 + 1,
                score_centi: 8_000,
                resources: ResourceRequest::default(),
            })
            .collect(),
        departure: None,
        override_reason: None,
        published_at: chrono::Utc::now(),
        replaces: None,
        team_maxima: None,
    }
}

/// Publishes the selection of `n` new teams (twice: a redelivery changes nothing) and
/// waits until milestones knows them.
async fn select(ctx: &TestContext, m: &Ms, n: usize) -> Vec<ConsortiumId> {
    let teams: Vec<ConsortiumId> = (0..n).map(|_| ConsortiumId::new()).collect();
    let ev = selection(&teams);
    publish(ctx, "scoring", kaip_contracts::topics::SCORING, &ev).await;
    publish(ctx, "scoring", kaip_contracts::topics::SCORING, &ev).await;
    eventually(Duration::from_secs(60), || async {
        let (_, b) = m.get("/teams", &m.officer).await;
        (b.as_array().map(Vec::len) == Some(n)).then_some(())
    })
    .await
    .expect("milestones learned the selected teams");
    teams
}

fn team_bearer(ctx: &TestContext, t: ConsortiumId) -> String {
    ctx.bearer(Role::Consortium, Some(t))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_submits_versioned_evidence_for_its_plan_and_officers_verdicts_are_all_kept() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let t = select(&ctx, &m, 2).await;
    assert_eq!(
        m.count("SELECT count(*) FROM ms_teams"),
        2,
        "a redelivery added nothing"
    );
    let (a, b) = (team_bearer(&ctx, t[0]), team_bearer(&ctx, t[1]));
    let d = m.deliverable(t[0], "2090-06-30").await;

    // Only officers plan; a plan for a team not selected is refused.
    m.refused(
        "/deliverables",
        &a,
        json!({"consortium_id": t[0], "phase": 1, "title": "x", "acceptance_criteria": "y", "due_date": "2090-01-01"}),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    m.refused(
        "/deliverables",
        &m.officer,
        json!({"consortium_id": Uuid::now_v7(), "phase": 1, "title": "x", "acceptance_criteria": "y", "due_date": "2090-01-01"}),
        StatusCode::NOT_FOUND,
        "TEAM_NOT_SELECTED",
    )
    .await;

    // Another team's consortium may not submit evidence for this plan, nor see it: the
    // refusal is the one a deliverable that does not exist gets, so it tells nothing.
    let doc = json!({"kind": "document", "note": "report",
                     "document": {"name": "report.pdf", "sha256": "ab".repeat(32), "size_bytes": 1024}});
    let (s1, theirs) = m
        .call(
            reqwest::Method::POST,
            &format!("/deliverables/{d}/evidence"),
            &b,
            Some(doc.clone()),
        )
        .await;
    let missing = Uuid::now_v7();
    let (s2, none) = m
        .call(
            reqwest::Method::POST,
            &format!("/deliverables/{missing}/evidence"),
            &b,
            Some(doc.clone()),
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(theirs["code"], "DELIVERABLE_NOT_FOUND", "{theirs}");
    assert_eq!(
        theirs["message"]
            .as_str()
            .map(|x| x.replace(&d.to_string(), "ID")),
        none["message"]
            .as_str()
            .map(|x| x.replace(&missing.to_string(), "ID")),
        "{theirs} vs {none}"
    );
    m.refused(
        &format!("/deliverables/{d}/evidence"),
        &b,
        doc.clone(),
        StatusCode::NOT_FOUND,
        "DELIVERABLE_NOT_FOUND",
    )
    .await;
    let (s, _) = m.get(&format!("/deliverables/{d}"), &b).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, theirs) = m.get("/deliverables", &b).await;
    assert_eq!(theirs, json!([]), "team B sees nothing of team A's plan");
    let (s, _) = m
        .get(&format!("/deliverables?consortium_id={}", t[0]), &b)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Officers review; they do not submit.
    m.refused(
        &format!("/deliverables/{d}/evidence"),
        &m.officer,
        doc.clone(),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;

    // Bad evidence, each named.
    for (body, field) in [
        (
            json!({"kind": "document", "document": {"name": "r.pdf", "sha256": "XYZ", "size_bytes": 1}}),
            "document.sha256",
        ),
        (json!({"kind": "link", "url": "ftp://x"}), "url"),
        (
            json!({"kind": "benchmark", "benchmark": {"name": "KMMLU", "value": "87.5e1"}}),
            "benchmark.value",
        ),
        (
            json!({"kind": "benchmark", "benchmark": {"name": "KMMLU", "value": "0.1234567"}}),
            "benchmark.value",
        ),
        (
            json!({"kind": "link", "url": "https://x", "document": {"name": "r", "sha256": "ab".repeat(32), "size_bytes": 1}}),
            "document",
        ),
        (json!({"kind": "video"}), "kind"),
    ] {
        let e = m
            .refused(
                &format!("/deliverables/{d}/evidence"),
                &a,
                body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
            )
            .await;
        assert!(
            e["message"].as_str().unwrap_or("").starts_with(field),
            "{field}: {e}"
        );
    }

    // Two submissions: versions 1 and 2, each hashed, neither overwritten.
    let (s, e1) = m
        .post(&format!("/deliverables/{d}/evidence"), &a, doc)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e1}");
    let (s, e2) = m
        .post(
            &format!("/deliverables/{d}/evidence"),
            &a,
            json!({"kind": "benchmark", "note": "KMMLU 5-shot", "benchmark": {"name": "KMMLU", "value": "87.25"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e2}");
    assert_eq!(
        (e1["version"].as_i64(), e2["version"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(e2["benchmark"]["value"], "87.25", "kept exactly as given");
    assert_eq!(e1["content_sha256"].as_str().map(str::len), Some(64));
    assert_ne!(e1["content_sha256"], e2["content_sha256"]);

    // A verdict needs a reason; a revision needs a new due date.
    m.refused(
        &format!("/deliverables/{d}/verdicts"),
        &m.officer,
        json!({"verdict": "approved", "reason": "   "}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VERDICT_REASON_REQUIRED",
    )
    .await;
    m.refused(
        &format!("/deliverables/{d}/verdicts"),
        &m.officer,
        json!({"verdict": "revision", "reason": "missing ablations"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    m.refused(
        &format!("/deliverables/{d}/verdicts"),
        &a,
        json!({"verdict": "approved", "reason": "self-approval"}),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;

    let (s, r) = m
        .post(
            &format!("/deliverables/{d}/verdicts"),
            &m.officer,
            json!({"verdict": "revision", "reason": "missing ablations", "comments": "add the tokenizer ablation", "new_due_date": "2090-08-31"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "revision");
    assert_eq!(r["current_due_date"], "2090-08-31");
    assert_eq!(r["due_date"], "2090-06-30", "the planned date is kept");
    // Nothing new since the revision: nothing to approve.
    m.refused(
        &format!("/deliverables/{d}/verdicts"),
        &m.officer,
        json!({"verdict": "approved", "reason": "fine", "evidence_version": 2}),
        StatusCode::CONFLICT,
        "EVIDENCE_REQUIRED",
    )
    .await;
    let (s, _) = m
        .post(
            &format!("/deliverables/{d}/evidence"),
            &a,
            json!({"kind": "link", "url": "https://example.org/ablation"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let officer2 = ctx.bearer_for("officer-kim", Role::Officer, None);
    // An approval names the version the officer reviewed, and only the latest can be
    // approved: version 2 was reviewed before version 3 arrived.
    let e = m
        .refused(
            &format!("/deliverables/{d}/verdicts"),
            &officer2,
            json!({"verdict": "approved", "reason": "criteria met"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        )
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("evidence_version"),
        "{e}"
    );
    let e = m
        .refused(
            &format!("/deliverables/{d}/verdicts"),
            &officer2,
            json!({"verdict": "approved", "reason": "criteria met", "evidence_version": 2}),
            StatusCode::CONFLICT,
            "EVIDENCE_NOT_LATEST",
        )
        .await;
    assert!(
        e["message"].as_str().unwrap_or("").contains("version 3"),
        "{e}"
    );
    let (s, r) = m
        .post(
            &format!("/deliverables/{d}/verdicts"),
            &officer2,
            json!({"verdict": "approved", "reason": "criteria met", "evidence_version": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "approved");
    let verdicts = r["verdicts"].as_array().expect("verdicts");
    assert_eq!(verdicts.len(), 2, "every verdict is kept: {r}");
    assert_eq!(verdicts[0]["verdict"], "revision");
    assert_eq!(verdicts[0]["decided_by"], "test-officer");
    assert_eq!(verdicts[1]["decided_by"], "officer-kim");
    assert_eq!(verdicts[1]["evidence_version"], 3);
    assert_eq!(r["evidence"].as_array().map(Vec::len), Some(3));
    // Closed: no more evidence, no second verdict.
    m.refused(
        &format!("/deliverables/{d}/evidence"),
        &a,
        json!({"kind": "link", "url": "https://example.org/late"}),
        StatusCode::CONFLICT,
        "DELIVERABLE_CLOSED",
    )
    .await;
    m.refused(
        &format!("/deliverables/{d}/verdicts"),
        &m.officer,
        json!({"verdict": "rejected", "reason": "changed my mind"}),
        StatusCode::CONFLICT,
        "DELIVERABLE_CLOSED",
    )
    .await;
    // The team sees its own plan with the verdicts and evidence.
    let (s, mine) = m.get("/deliverables", &a).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    assert_eq!(mine[0]["verdicts"][0]["reason"], "missing ablations");
    // Evidence and verdicts cannot be changed in the database behind the service's back
    // either, and the audit trail recorded each insert.
    assert!(
        m.count(
            "SELECT count(*) FROM audit_changes WHERE table_name IN ('ms_evidence', 'ms_verdicts')"
        ) >= 5
    );
    let mut c = m.svc.conn();
    for sql in [
        "UPDATE ms_verdicts SET reason = 'rewritten'",
        "DELETE FROM ms_evidence",
        "TRUNCATE ms_verdicts CASCADE",
    ] {
        let e = diesel::sql_query(sql)
            .execute(&mut c)
            .expect_err("records are immutable");
        assert!(e.to_string().contains("immutable"), "{sql}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_get_distinct_versions() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let t = select(&ctx, &m, 1).await;
    let a = team_bearer(&ctx, t[0]);
    let d = m.deliverable(t[0], "2090-06-30").await;
    let path = format!("/deliverables/{d}/evidence");
    let results = futures::future::join_all((0..8).map(|i| {
        m.post(
            &path,
            &a,
            json!({"kind": "link", "url": format!("https://example.org/{i}")}),
        )
    }))
    .await;
    let mut versions: Vec<i64> = results
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, StatusCode::CREATED, "{b}");
            b["version"].as_i64().expect("version")
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_deliverables_are_flagged_once_per_due_date_with_two_replicas_sweeping() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    // A second replica on the same database: both sweep every second.
    let mut settings = ctx.settings(kaip_milestones::DEFAULTS);
    settings.database.name = m.svc.database.clone();
    let second = ctx
        .spawn_with(kaip_milestones::definition(), settings)
        .await;
    let t = select(&ctx, &m, 1).await;
    let a = team_bearer(&ctx, t[0]);
    let late = m.deliverable(t[0], "2024-01-31").await;
    let delivered = m.deliverable(t[0], "2024-01-31").await;
    let future = m.deliverable(t[0], "2099-12-31").await;
    // Evidence for `delivered` now comes after its due date: it is still flagged. A
    // deliverable whose due date has not come is not.
    let (s, _) = m
        .post(
            &format!("/deliverables/{delivered}/evidence"),
            &a,
            json!({"kind": "link", "url": "https://example.org/late"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = m
        .post(
            &format!("/deliverables/{future}/evidence"),
            &a,
            json!({"kind": "link", "url": "https://example.org/early"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let flagged = eventually(Duration::from_secs(30), || async {
        let (_, d) = m.get(&format!("/deliverables/{late}"), &a).await;
        let (_, e) = m.get(&format!("/deliverables/{delivered}"), &a).await;
        (d["overdue"] == true && e["overdue"] == true).then_some(())
    })
    .await;
    assert!(flagged.is_some(), "both past-due deliverables were flagged");
    // Let both replicas sweep a few more times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, f) = m.get(&format!("/deliverables/{future}"), &a).await;
    assert_eq!(f["overdue"], false);
    assert_eq!(m.count("SELECT count(*) FROM ms_overdue"), 2);
    // A revision with a new (also past) due date is flagged again, once.
    let (s, r) = m
        .post(
            &format!("/deliverables/{late}/verdicts"),
            &m.officer,
            json!({"verdict": "revision", "reason": "nothing received", "new_due_date": "2024-02-29"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    eventually(Duration::from_secs(30), || async {
        (m.count("SELECT count(*) FROM ms_overdue") == 3).then_some(())
    })
    .await
    .expect("the new due date was flagged");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let topic = ctx.topic(kaip_contracts::topics::MILESTONES);
    let events = eventually(Duration::from_secs(30), || async {
        let evs: Vec<Value> = ctx
            .read_topic(&topic)
            .await
            .iter()
            .filter_map(|m| m.json())
            .filter(|e| e["type"] == "MilestoneOverdue")
            .collect();
        (evs.len() >= 3).then_some(evs)
    })
    .await
    .expect("MilestoneOverdue published");
    assert_eq!(
        events.len(),
        3,
        "once per deliverable and due date: {events:#?}"
    );
    let mut keys: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["deliverable_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                e["data"]["due_date"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3);
    assert!(events
        .iter()
        .all(|e| e["data"]["consortium_id"] == json!(t[0])));

    // `overdue_only` is decided in SQL on the current due date: `delivered`, sent back with
    // a due date to come, is no longer listed; the list pages by id with `limit`/`after`.
    let (s, r) = m
        .post(
            &format!("/deliverables/{delivered}/verdicts"),
            &m.officer,
            json!({"verdict": "revision", "reason": "late", "comments": "finish it", "new_due_date": "2099-06-30"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let ids =
        |v: &Value| -> Vec<Uuid> { v.as_array().expect("a list").iter().map(id_of).collect() };
    let (s, o) = m.get("/deliverables?overdue_only=true", &a).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(ids(&o), [late]);
    let mut all = [late, delivered, future];
    all.sort();
    let (_, p1) = m.get("/deliverables?limit=2", &a).await;
    assert_eq!(ids(&p1), all[..2]);
    let (_, p2) = m
        .get(&format!("/deliverables?limit=2&after={}", all[1]), &a)
        .await;
    assert_eq!(ids(&p2), all[2..]);
    let (s, e) = m.get("/deliverables?limit=0", &a).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
        "{e}"
    );
    second.shutdown().await;
}

/// Five teams, the first gate's template, an independence failure in the top four and the
/// lowest eligible team out: 5 → 3.
struct GateSetup {
    teams: Vec<ConsortiumId>,
    members: Vec<String>,
}

const RULE: &str = "built-from-scratch";

async fn define_gate_1(ctx: &TestContext, m: &Ms, teams: &[ConsortiumId]) -> GateSetup {
    let members = ["officer-a", "officer-b", "officer-c"];
    let (s, g) = m
        .post(
            "/gates",
            &m.officer,
            json!({"key": "gate-1", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 1,
                   "eligibility_rules": [RULE], "committee": members,
                   "reason": "first stage gate as announced"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let weights: Vec<i64> = g["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| c["weight"].as_i64().expect("weight"))
        .collect();
    assert_eq!(weights, [10, 20, 10, 35, 25], "the first gate's template");
    // national, global, team-chosen, panel (of 100), users (of 100).
    let values = [
        ["80", "70", "60", "90", "85"],
        ["85", "75", "65", "92", "88"],
        ["70", "60", "50", "70", "70"],
        ["75", "65", "55", "80", "75"],
        ["60", "50", "40", "60", "60.5"],
    ];
    let keys = [
        "benchmark-national",
        "benchmark-global",
        "benchmark-team",
        "expert-panel",
        "user-evaluation",
    ];
    for (team, vals) in teams.iter().zip(values) {
        for (k, v) in keys.iter().zip(vals) {
            let (source, source_ref) = match *k {
                "expert-panel" => ("expert_panel", "panel-2026-06"),
                "user-evaluation" => ("imported", "user-eval-2026-06.csv"),
                _ => ("entered", ""),
            };
            let (s, b) = m
                .post(
                    "/gates/gate-1/inputs",
                    &m.officer,
                    json!({"consortium_id": team, "component": k, "value": v, "source": source,
                           "source_ref": source_ref, "reason": "gate-1 results"}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
    }
    let _ = ctx;
    GateSetup {
        teams: teams.to_vec(),
        members: members.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn eligibility(m: &Ms, team: ConsortiumId, eligible: bool, grounds: &str) {
    let (s, b) = m
        .post(
            "/gates/gate-1/eligibility",
            &m.officer,
            json!({"consortium_id": team, "rule": RULE, "eligible": eligible, "grounds": grounds}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_scores_exactly_eliminates_the_ineligible_and_the_lowest_and_needs_the_committee() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let teams = select(&ctx, &m, 5).await;

    // A committee of fewer than three distinct members: one officer (or two) could decide
    // the gate alone. Refused, nothing written.
    for committee in [json!(["officer-a"]), json!(["officer-a", "officer-b"])] {
        m.refused(
            "/gates",
            &m.officer,
            json!({"key": "gate-1", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 1,
                   "eligibility_rules": [RULE], "committee": committee, "reason": "small"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "COMMITTEE_TOO_SMALL",
        )
        .await;
    }

    // Weights that do not sum to 100: refused, nothing written.
    let mut comps: Vec<Value> = {
        let (s, t) = m.get("/gate-templates/first", &m.officer).await;
        assert_eq!(s, StatusCode::OK);
        t.as_array().expect("template").clone()
    };
    comps[3]["weight"] = json!(30);
    let e = m
        .refused(
            "/gates",
            &m.officer,
            json!({"key": "gate-1", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 1,
                   "eligibility_rules": [RULE], "committee": ["officer-a", "officer-b", "officer-c"], "components": comps,
                   "reason": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "GATE_WEIGHTS",
        )
        .await;
    assert!(
        e["message"].as_str().unwrap_or("").contains("sum to 95"),
        "{e}"
    );

    let g = define_gate_1(&ctx, &m, &teams).await;
    let t = &g.teams;
    // The same key again: refused.
    m.refused(
        "/gates",
        &m.officer,
        json!({"key": "gate-1", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 1,
               "eligibility_rules": [RULE], "committee": ["officer-a", "officer-b", "officer-c"], "reason": "again"}),
        StatusCode::CONFLICT,
        "GATE_EXISTS",
    )
    .await;
    // An input above the component's maximum, an unknown component, no source reference
    // for the panel: each named.
    for (body, field) in [
        (
            json!({"consortium_id": t[0], "component": "expert-panel", "value": "100.5", "source": "expert_panel", "source_ref": "p", "reason": "r"}),
            "value",
        ),
        (
            json!({"consortium_id": t[0], "component": "vibes", "value": "1", "source": "entered", "reason": "r"}),
            "component",
        ),
        (
            json!({"consortium_id": t[0], "component": "expert-panel", "value": "1", "source": "expert_panel", "reason": "r"}),
            "source_ref",
        ),
        (
            json!({"consortium_id": t[0], "component": "benchmark-team", "value": "-1", "source": "entered", "reason": "r"}),
            "value",
        ),
        (
            json!({"consortium_id": t[0], "component": "benchmark-team", "value": "1.23456", "source": "entered", "reason": "r"}),
            "value",
        ),
    ] {
        let e = m
            .refused(
                "/gates/gate-1/inputs",
                &m.officer,
                body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
            )
            .await;
        assert!(
            e["message"].as_str().unwrap_or("").starts_with(field),
            "{field}: {e}"
        );
    }

    // An eligibility verdict needs grounds.
    m.refused(
        "/gates/gate-1/eligibility",
        &m.officer,
        json!({"consortium_id": t[1], "rule": RULE, "eligible": false, "grounds": " "}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "GROUNDS_REQUIRED",
    )
    .await;
    for (i, team) in t.iter().enumerate().take(4) {
        eligibility(
            &m,
            *team,
            true,
            &format!("architecture and training logs reviewed ({i})"),
        )
        .await;
    }
    // No verdict on team 5 yet: no proposal.
    m.refused(
        "/gates/gate-1/proposals",
        &m.officer,
        json!(null),
        StatusCode::CONFLICT,
        "ELIGIBILITY_MISSING",
    )
    .await;
    eligibility(&m, t[4], true, "logs reviewed").await;
    // Team 2 (the best score) turns out not to be built from scratch: a new verdict, the
    // first one kept.
    eligibility(&m, t[1], false, "fine-tuned a foreign base model").await;
    assert_eq!(m.count("SELECT count(*) FROM ms_eligibility"), 6);

    let (s, p1) = m
        .post("/gates/gate-1/proposals", &m.officer, json!(null))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p1}");
    let result = |p: &Value, team: ConsortiumId| -> Value {
        p["teams"]
            .as_array()
            .and_then(|ts| ts.iter().find(|r| r["consortium_id"] == json!(team)))
            .cloned()
            .unwrap_or_else(|| panic!("no {team:?} in {p}"))
    };
    let best = result(&p1, t[1]);
    assert_eq!(
        best["score"], "94.200000000",
        "40 + 35×0.92 + 25×0.88: {best}"
    );
    assert_eq!(best["outcome"], "eliminated");
    assert_eq!(best["rank"], Value::Null);
    assert_eq!(
        best["reason"],
        "ineligible: built-from-scratch: fine-tuned a foreign base model"
    );
    let lowest = result(&p1, t[4]);
    // national 0, global 0, team 0, panel 35×0.6 = 21, users 25×0.605 = 15.125.
    assert_eq!(lowest["score"], "36.125000000");
    assert_eq!(lowest["rank"], 4);
    assert!(
        lowest["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("rank: 4 of 4"),
        "{lowest}"
    );
    let first = result(&p1, t[0]);
    assert_eq!(first["rank"], 1);
    assert_eq!(first["outcome"], "continues");
    // Team 3: min-max ranges are the eligible teams' (60-80: the ineligible team's 85 does
    // not stretch them): national (70-60)/20×10 = 5, global (60-50)/20×20 = 10, team
    // (50-40)/20×10 = 5, panel 35×0.7 = 24.5, users 25×0.7 = 17.5.
    assert_eq!(result(&p1, t[2])["score"], "62.000000000");
    assert_eq!(
        p1["inputs"].as_array().map(Vec::len),
        Some(25),
        "every input used is recorded with the proposal"
    );

    // Votes: a non-member officer is refused; a consortium may not vote.
    let outsider = ctx.bearer_for("officer-z", Role::Officer, None);
    let p1_id = id_of(&p1);
    m.refused(
        &format!("/proposals/{p1_id}/votes"),
        &outsider,
        json!({"approve": true, "reason": "looks right"}),
        StatusCode::FORBIDDEN,
        "NOT_ON_COMMITTEE",
    )
    .await;
    m.refused(
        &format!("/proposals/{p1_id}/votes"),
        &team_bearer(&ctx, t[0]),
        json!({"approve": true, "reason": "looks right"}),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    let member = |i: usize| ctx.bearer_for(&g.members[i], Role::Officer, None);
    let (s, v) = m
        .post(
            &format!("/proposals/{p1_id}/votes"),
            &member(0),
            json!({"approve": true, "reason": "scores verified"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    m.refused(
        &format!("/proposals/{p1_id}/votes"),
        &member(0),
        json!({"approve": false, "reason": "second thoughts"}),
        StatusCode::CONFLICT,
        "ALREADY_VOTED",
    )
    .await;
    // One of three: no majority.
    let publish_body = |p: Uuid| {
        json!({"proposal_id": p, "reason": "committee approved",
               "next_targets": [{"benchmark": "global-common", "target": ">= 95% of the best recent global models"}]})
    };
    m.refused(
        "/gates/gate-1/publish",
        &m.officer,
        publish_body(p1_id),
        StatusCode::CONFLICT,
        "NO_MAJORITY",
    )
    .await;
    // A team's result is not visible before publication.
    let (s, r) = m
        .get(
            &format!("/gates/gate-1/results/{}", t[0].0),
            &team_bearer(&ctx, t[0]),
        )
        .await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RESULT_NOT_PUBLISHED"))
    );
    let (s, _) = m
        .get("/gates/gate-1/proposals", &team_bearer(&ctx, t[0]))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "proposals are for staff only");

    // A corrected input makes a new proposal; the old one can no longer be voted on or
    // published, and its votes stay with it.
    let (s, _) = m
        .post(
            "/gates/gate-1/inputs",
            &m.officer,
            json!({"consortium_id": t[4], "component": "user-evaluation", "value": "61", "source": "imported",
                   "source_ref": "user-eval-2026-06-v2.csv", "reason": "import corrected"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, p2) = m
        .post("/gates/gate-1/proposals", &m.officer, json!(null))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p2}");
    let p2_id = id_of(&p2);
    assert_eq!(result(&p2, t[4])["score"], "36.250000000");
    m.refused(
        &format!("/proposals/{p1_id}/votes"),
        &member(1),
        json!({"approve": true, "reason": "ok"}),
        StatusCode::CONFLICT,
        "PROPOSAL_SUPERSEDED",
    )
    .await;
    for i in 0..2 {
        let (s, v) = m
            .post(
                &format!("/proposals/{p2_id}/votes"),
                &member(i),
                json!({"approve": true, "reason": "verified"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // A reallocation to an eliminated team, or from a team that continues: refused.
    let mut bad = publish_body(p2_id);
    bad["reallocations"] = json!([{"consortium_id": t[1], "reallocation": [
        {"consortium_id": t[4], "model": "B200", "period": "2027H1", "count": 10}]}]);
    m.refused(
        "/gates/gate-1/publish",
        &m.officer,
        bad.clone(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    bad["reallocations"] = json!([{"consortium_id": t[0], "reallocation": []}]);
    m.refused(
        "/gates/gate-1/publish",
        &m.officer,
        bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_FAILED",
    )
    .await;
    // A plan the ledger would refuse (its model-code and period rules, or a period that has
    // already started: the ledger reallocates only future periods) is refused here, naming
    // the grant's field, before anything is published.
    for (model, period, field) in [
        ("b200", "2027H1", "reallocations[0].reallocation[0].model"),
        ("B200", "2027H3", "reallocations[0].reallocation[0].period"),
        ("B200", "2026H1", "reallocations[0].reallocation[0].period"),
    ] {
        let mut bad = publish_body(p2_id);
        bad["reallocations"] = json!([{"consortium_id": t[1], "reallocation": [
            {"consortium_id": t[0], "model": model, "period": period, "count": 8}]}]);
        let b = m
            .refused(
                "/gates/gate-1/publish",
                &m.officer,
                bad,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
            )
            .await;
        assert!(
            b["message"].as_str().is_some_and(|msg| msg.contains(field)),
            "{b}"
        );
    }

    // Deliverables due long after the decision, for a team that continues and for one
    // that will be eliminated: only the survivor's can become overdue.
    let survivor_due = m.deliverable(t[0], "2099-12-30").await;
    let eliminated_due = m.deliverable(t[1], "2099-12-30").await;
    let mut body = publish_body(p2_id);
    body["reallocations"] = json!([{"consortium_id": t[1], "reallocation": [
        {"consortium_id": t[0], "model": "B200", "period": "2027H1", "count": 128}]}]);
    let (s, d) = m
        .post("/gates/gate-1/publish", &m.officer, body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(d["approvals"], 2);
    assert_eq!(d["committee_size"], 3);
    assert_eq!(d["passed"].as_array().map(Vec::len), Some(3), "5 → 3");
    assert_eq!(d["eliminated"].as_array().map(Vec::len), Some(2));
    // Published once: the same request again (a retry) gets the decision back and
    // publishes nothing; the same proposal with another plan, or anything more on the
    // gate, is refused.
    let before = m.footprint();
    let (s, again) = m
        .post("/gates/gate-1/publish", &m.officer, body.clone())
        .await;
    assert_eq!(
        (s, &again),
        (StatusCode::OK, &d),
        "a retry returns the decision"
    );
    assert_eq!(m.footprint(), before, "a retry writes nothing");
    let mut changed = body;
    changed["reallocations"][0]["reallocation"][0]["count"] = json!(64);
    m.refused(
        "/gates/gate-1/publish",
        &m.officer,
        changed,
        StatusCode::CONFLICT,
        "GATE_PUBLISHED",
    )
    .await;
    m.refused(
        "/gates/gate-1/inputs",
        &m.officer,
        json!({"consortium_id": t[0], "component": "benchmark-team", "value": "1", "source": "entered", "reason": "late"}),
        StatusCode::CONFLICT,
        "GATE_PUBLISHED",
    )
    .await;
    m.refused(
        &format!("/proposals/{p2_id}/votes"),
        &member(2),
        json!({"approve": false, "reason": "late"}),
        StatusCode::CONFLICT,
        "GATE_PUBLISHED",
    )
    .await;

    // A sweep after both due dates flags the survivor's deliverable and not the eliminated
    // team's: it owes nothing after the decision.
    // (The service's own sweeper may hold the pass's lock for a moment: a pass that finds
    // it taken flags nothing, so try again.)
    let mut flagged = 0;
    {
        let mut c = m.svc.conn();
        let outbox = kaip_bus::Outbox::new(
            kaip_milestones::NAME,
            ctx.topic(kaip_contracts::topics::MILESTONES),
        );
        let at = "2100-01-02T00:00:00Z".parse().expect("instant");
        for _ in 0..50 {
            flagged = kaip_milestones::sweeper::sweep_at(&mut c, &outbox, at).expect("sweep");
            if flagged > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(flagged, 1, "only the survivor's deliverable");
    assert_eq!(
        m.count(&format!(
            "SELECT count(*) FROM ms_overdue WHERE deliverable_id = '{survivor_due}'"
        )),
        1
    );
    assert_eq!(
        m.count(&format!(
            "SELECT count(*) FROM ms_overdue WHERE deliverable_id = '{eliminated_due}'"
        )),
        0
    );

    // The events: one GateDecided, one TeamEliminated per eliminated team, with the plan.
    let topic = ctx.topic(kaip_contracts::topics::MILESTONES);
    let events = eventually(Duration::from_secs(30), || async {
        let evs: Vec<Value> = ctx
            .read_topic(&topic)
            .await
            .iter()
            .filter_map(|m| m.json())
            .collect();
        (evs.iter().filter(|e| e["type"] == "TeamEliminated").count() == 2).then_some(evs)
    })
    .await
    .expect("the decision was published");
    let decided: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "GateDecided")
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["data"]["gate"], "gate-1");
    let out: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "TeamEliminated")
        .collect();
    let ineligible = out
        .iter()
        .find(|e| e["data"]["consortium_id"] == json!(t[1]))
        .expect("team 2 eliminated");
    assert!(ineligible["data"]["reason"]
        .as_str()
        .unwrap_or("")
        .starts_with("ineligible: "));
    assert_eq!(ineligible["data"]["reallocation"][0]["count"], 128);
    assert_eq!(
        ineligible["data"]["reallocation"][0]["consortium_id"],
        json!(t[0])
    );
    assert!(out.iter().any(|e| e["data"]["consortium_id"] == json!(t[4])
        && e["data"]["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("rank: ")));

    // Each team sees its own result, after publication, and not another team's.
    let own = team_bearer(&ctx, t[4]);
    let (s, r) = m
        .get(&format!("/gates/gate-1/results/{}", t[4].0), &own)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["result"]["outcome"], "eliminated");
    assert_eq!(r["next_targets"][0]["benchmark"], "global-common");
    // The team's text tells it nothing about the others (staff's says "4 of 4 eligible
    // teams", so that one team was ruled ineligible); no tie-break detail either.
    assert_eq!(
        r["result"]["reason"],
        "rank: below the cut; the gate eliminates its 1 lowest-ranked eligible team(s)"
    );
    assert!(r["result"]["tie_break"].is_null(), "{r}");
    // The committee and the gate's author are staff's.
    let (s, g) = m.get("/gates/gate-1", &own).await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(
        (g["committee"].clone(), g["created_by"].clone()),
        (json!([]), json!("")),
        "{g}"
    );
    let (s, gs) = m.get("/gates", &own).await;
    assert_eq!(s, StatusCode::OK, "{gs}");
    assert!(
        gs.as_array().is_some_and(|v| !v.is_empty()
            && v.iter()
                .all(|g| g["committee"] == json!([]) && g["created_by"] == "")),
        "{gs}"
    );
    let (_, g) = m.get("/gates/gate-1", &m.officer).await;
    assert_eq!(g["committee"].as_array().map(Vec::len), Some(3), "{g}");
    let (s, staff) = m
        .get(&format!("/gates/gate-1/results/{}", t[4].0), &m.officer)
        .await;
    assert_eq!(s, StatusCode::OK, "{staff}");
    assert!(
        staff["result"]["reason"]
            .as_str()
            .is_some_and(|x| x.starts_with("rank: 4 of 4 eligible teams")),
        "{staff}"
    );
    let (s, _) = m
        .get(&format!("/gates/gate-1/results/{}", t[0].0), &own)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = m.get("/gates/gate-1/decision", &own).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_inputs_come_only_from_the_teams_own_approved_evidence() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let t = select(&ctx, &m, 2).await;
    let a = team_bearer(&ctx, t[0]);
    let d = m.deliverable(t[0], "2090-06-30").await;
    let (_, e1) = m
        .post(
            &format!("/deliverables/{d}/evidence"),
            &a,
            json!({"kind": "benchmark", "benchmark": {"name": "KMMLU", "value": "71.5"}}),
        )
        .await;
    let (s, g) = m
        .post(
            "/gates",
            &m.officer,
            json!({"key": "gate-1", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 0,
                   "eligibility_rules": [], "committee": ["officer-a", "officer-b", "officer-c"], "reason": "gate"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let input = |team: ConsortiumId, ev: &Value| {
        json!({"consortium_id": team, "component": "benchmark-national", "evidence_id": ev["id"],
               "source": "evidence", "reason": "from the approved report"})
    };
    // Not approved yet.
    m.refused(
        "/gates/gate-1/inputs",
        &m.officer,
        input(t[0], &e1),
        StatusCode::CONFLICT,
        "EVIDENCE_NOT_USABLE",
    )
    .await;
    let (s, _) = m
        .post(
            &format!("/deliverables/{d}/verdicts"),
            &m.officer,
            json!({"verdict": "approved", "reason": "verified run", "evidence_version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Another team's evidence.
    m.refused(
        "/gates/gate-1/inputs",
        &m.officer,
        input(t[1], &e1),
        StatusCode::CONFLICT,
        "EVIDENCE_NOT_USABLE",
    )
    .await;
    let (s, i) = m
        .post("/gates/gate-1/inputs", &m.officer, input(t[0], &e1))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    assert_eq!(i["value"], "71.5000");
    assert_eq!(i["source"], "evidence");
    assert_eq!(i["source_ref"], e1["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_published_through_milestones_closes_and_reallocates_in_the_ledger_and_stops_data_and_talent(
) {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let ledger = ctx
        .spawn(kaip_gpu_ledger::definition(), kaip_gpu_ledger::DEFAULTS)
        .await;
    let budget = ctx
        .spawn(kaip_data_budget::definition(), kaip_data_budget::DEFAULTS)
        .await;
    let talent = ctx
        .spawn(kaip_talent::definition(), kaip_talent::DEFAULTS)
        .await;
    for s in [&ledger, &budget, &talent] {
        s.wait_assigned().await;
    }
    let officer = m.officer.clone();
    let http = reqwest::Client::new();
    let call = |svc: &TestService, method: reqwest::Method, path: &str, body: Option<Value>| {
        let req = http
            .request(method, svc.url(path))
            .header("Authorization", &officer);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let res = req.send().await.expect("request");
            let s = res.status();
            (s, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let teams = select(&ctx, &m, 5).await;
    // The other services learned the selection from the same event.
    eventually(Duration::from_secs(60), || async {
        let (_, b) = call(&ledger, reqwest::Method::GET, "/teams", None).await;
        (b.as_array().map(Vec::len) == Some(5)).then_some(())
    })
    .await
    .expect("the ledger learned the selection");

    // Pools and offers: each of the first two teams holds a tranche for the next half year
    // and one waiting for gate-1 (half years that have not started on any day the test runs:
    // an elimination takes back only future capacity).
    let (h1, h2) = future_halves();
    for period in [&h1, &h2] {
        let mut ids = Vec::new();
        for kind in ["source", "pool"] {
            let id = Uuid::now_v7();
            let mut body = json!({"id": id, "model": "B200", "period": period, "kind": kind,
                                  "name": format!("{kind} B200 {period}"), "reason": "capacity"});
            if kind == "source" {
                body["source_type"] = json!("government");
            }
            let (s, b) = call(&ledger, reqwest::Method::POST, "/accounts", Some(body)).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            ids.push(id);
        }
        let (s, b) = call(
            &ledger,
            reqwest::Method::POST,
            "/transfers",
            Some(json!({"transfers": [{"id": Uuid::now_v7(), "debit_account": ids[0], "credit_account": ids[1],
                                       "amount": 1000, "kind": "single", "code": "capacity", "reason": "installed"}]})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, sel) = call(&ledger, reqwest::Method::GET, "/teams", None).await;
    let call_id = sel[0]["call_id"].clone();
    let mut offers = Vec::new();
    for team in &teams[..2] {
        let body = json!({"id": Uuid::now_v7(), "consortium_id": team, "call_id": call_id,
            "expires_at": chrono::Utc::now() + chrono::Duration::seconds(3600),
            "options": [{"model": "B200", "tranches": [
                {"period": h1, "count": 256},
                {"period": h2, "count": 128, "release_gate": "gate-1"}]}],
            "reason": "selected"});
        let (s, o) = call(&ledger, reqwest::Method::POST, "/offers", Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let id = o["id"].as_str().expect("id").to_owned();
        let (s, a) = call(
            &ledger,
            reqwest::Method::POST,
            &format!("/offers/{id}/accept"),
            Some(json!({"option": 0})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        offers.push(id);
    }

    // Gate 1 through milestones: team 2 (index 1) ineligible, team 5 lowest.
    let g = define_gate_1(&ctx, &m, &teams).await;
    for (i, team) in teams.iter().enumerate() {
        if i == 1 {
            eligibility(&m, *team, false, "fine-tuned a foreign base model").await;
        } else {
            eligibility(&m, *team, true, "training logs reviewed").await;
        }
    }
    let (s, p) = m
        .post("/gates/gate-1/proposals", &m.officer, json!(null))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let pid = id_of(&p);
    for member in &g.members[..2] {
        let (s, v) = m
            .post(
                &format!("/proposals/{pid}/votes"),
                &ctx.bearer_for(member, Role::Officer, None),
                json!({"approve": true, "reason": "verified"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, d) = m
        .post(
            "/gates/gate-1/publish",
            &m.officer,
            json!({"proposal_id": pid, "reason": "committee majority",
                   "reallocations": [{"consortium_id": teams[1], "reallocation": [
                       {"consortium_id": teams[0], "model": "B200", "period": h1, "count": 256},
                       {"consortium_id": teams[0], "model": "B200", "period": h2, "count": 128}]}],
                   "next_targets": [{"benchmark": "global-common", "target": ">= 95% of the best global models"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");

    // The ledger: the survivor's gate tranche released, the eliminated team's grants closed
    // and its capacity granted to the survivor in one chain.
    let (a, _) = eventually(Duration::from_secs(60), || async {
        let (_, a) = call(
            &ledger,
            reqwest::Method::GET,
            &format!("/offers/{}", offers[0]),
            None,
        )
        .await;
        let (_, b) = call(
            &ledger,
            reqwest::Method::GET,
            &format!("/offers/{}", offers[1]),
            None,
        )
        .await;
        (a["tranches"][1]["status"] == "released" && b["tranches"][1]["status"] == "closed")
            .then_some((a, b))
    })
    .await
    .expect("the ledger released the survivor's tranche and closed the eliminated team's");
    assert_eq!(a["tranches"][0]["status"], "released");
    let grants = |team: ConsortiumId| {
        let c = &call;
        let l = &ledger;
        async move {
            let (_, page) = c(
                l,
                reqwest::Method::GET,
                &format!("/accounts?consortium_id={team}&kind=grant"),
                None,
            )
            .await;
            page["items"]
                .as_array()
                .map(|xs| {
                    xs.iter()
                        .map(|a| {
                            a["balance"]["credits_posted"].as_i64().unwrap_or(0)
                                - a["balance"]["debits_posted"].as_i64().unwrap_or(0)
                        })
                        .sum::<i64>()
                })
                .unwrap_or(0)
        }
    };
    assert_eq!(grants(teams[1]).await, 0);
    assert_eq!(grants(teams[0]).await, 256 + 128 + 256 + 128);
    let (s, inv) = call(&ledger, reqwest::Method::GET, "/invariants", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(inv["ok"], true, "{inv:#}");

    // Data budget and talent recorded both eliminations.
    let count = |svc: &TestService, sql: &str| -> i64 {
        let mut c = svc.conn();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "({sql})"
        )))
        .get_result(&mut c)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    eventually(Duration::from_secs(60), || async {
        (count(&budget, "SELECT count(*) FROM budget_eliminations") == 2
            && count(&talent, "SELECT count(*) FROM talent_eliminations") == 2
            && count(&ledger, "SELECT count(*) FROM gpu_eliminations") == 2)
            .then_some(())
    })
    .await
    .expect("data budget, talent and the ledger applied both eliminations");
    let year = chrono::Utc::now().format("%Y").to_string();
    let (_, b) = call(
        &budget,
        reqwest::Method::GET,
        &format!("/budgets/{}/{year}", teams[4].0),
        None,
    )
    .await;
    assert_eq!(b["eliminated_at_gate"], "gate-1", "{b}");
    let (_, tt) = call(&talent, reqwest::Method::GET, "/teams", None).await;
    let eliminated_in_talent = tt
        .as_array()
        .map(|xs| xs.iter().filter(|x| !x["eliminated_at"].is_null()).count())
        .unwrap_or(0);
    assert_eq!(eliminated_in_talent, 2, "{tt}");
    assert_eq!(count(&ledger, "SELECT count(*) FROM gpu_gate_passes"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_votes_count_once_and_concurrent_publications_publish_once() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let teams = select(&ctx, &m, 5).await;
    let g = define_gate_1(&ctx, &m, &teams).await;
    for team in &teams {
        eligibility(&m, *team, true, "training logs reviewed").await;
    }
    // A proposal whose inputs were corrected afterwards cannot be published: the committee
    // would be approving numbers that are no longer the gate's.
    let (s, p0) = m
        .post("/gates/gate-1/proposals", &m.officer, json!(null))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p0}");
    let (s, _) = m
        .post(
            "/gates/gate-1/inputs",
            &m.officer,
            json!({"consortium_id": teams[2], "component": "benchmark-team", "value": "51",
                   "source": "entered", "reason": "rerun"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    m.refused(
        "/gates/gate-1/publish",
        &m.officer,
        json!({"proposal_id": id_of(&p0), "reason": "majority"}),
        StatusCode::CONFLICT,
        "PROPOSAL_STALE",
    )
    .await;
    let (s, p) = m
        .post("/gates/gate-1/proposals", &m.officer, json!(null))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let pid = id_of(&p);
    let path = format!("/proposals/{pid}/votes");
    // One member's vote sent eight times at once: one recorded, the others ALREADY_VOTED.
    let a = ctx.bearer_for(&g.members[0], Role::Officer, None);
    let results = futures::future::join_all(
        (0..8).map(|_| m.post(&path, &a, json!({"approve": true, "reason": "verified"}))),
    )
    .await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results
        .iter()
        .filter(|(s, _)| *s != StatusCode::CREATED)
        .all(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "ALREADY_VOTED"));
    let b = ctx.bearer_for(&g.members[1], Role::Officer, None);
    let (s, _) = m
        .post(&path, &b, json!({"approve": true, "reason": "verified"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Six identical publications at once (a client retrying): one decision, published
    // once (201); the others get that decision back (200); one GateDecided.
    let body = json!({"proposal_id": pid, "reason": "majority"});
    let results = futures::future::join_all(
        (0..6).map(|_| m.post("/gates/gate-1/publish", &m.officer, body.clone())),
    )
    .await;
    let created: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != StatusCode::CREATED)
            .all(|(s, b)| *s == StatusCode::OK && b == created[0]),
        "{results:?}"
    );
    // Six different publications at once after that: all GATE_PUBLISHED.
    let other = json!({"proposal_id": pid, "reason": "majority, restated"});
    let results = futures::future::join_all(
        (0..6).map(|_| m.post("/gates/gate-1/publish", &m.officer, other.clone())),
    )
    .await;
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == StatusCode::CONFLICT && b["code"] == "GATE_PUBLISHED"),
        "{results:?}"
    );
    assert_eq!(m.count("SELECT count(*) FROM ms_decisions"), 1);
    assert_eq!(
        m.count("SELECT count(*) FROM kaip_outbox WHERE event_type = 'GateDecided'"),
        1
    );
    assert_eq!(
        m.count("SELECT count(*) FROM kaip_outbox WHERE event_type = 'TeamEliminated'"),
        1,
        "planned 1, all eligible: one elimination"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_roles_and_other_consortia_are_refused_everywhere() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let t = select(&ctx, &m, 2).await;
    let d = m.deliverable(t[0], "2090-06-30").await;
    let reviewer = ctx.bearer(Role::Reviewer, None);
    let integration = ctx.integration_bearer("gpu-operator", &[]);
    let other = team_bearer(&ctx, t[1]);
    for bearer in [&reviewer, &integration] {
        for path in [
            "/teams".to_owned(),
            "/deliverables".to_owned(),
            format!("/deliverables/{d}"),
            "/gates".to_owned(),
        ] {
            let (s, b) = m.get(&path, bearer).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
        }
        m.refused(
            "/gates",
            bearer,
            json!({"key": "gate-9", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 0,
                   "eligibility_rules": [], "committee": ["x"], "reason": "r"}),
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
    }
    // Another consortium: its own team list only, nothing of team A's.
    let (_, mine) = m.get("/teams", &other).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    assert_eq!(mine[0]["consortium_id"], json!(t[1]));
    for (path, body) in [
        (
            "/gates",
            json!({"key": "gate-9", "phase": 1, "gate_date": "2026-06-30", "planned_eliminations": 0,
                          "eligibility_rules": [], "committee": ["x"], "reason": "r"}),
        ),
        (
            "/deliverables",
            json!({"consortium_id": t[1], "phase": 1, "title": "x", "acceptance_criteria": "y", "due_date": "2090-01-01"}),
        ),
        (
            &format!("/deliverables/{d}/verdicts"),
            json!({"verdict": "rejected", "reason": "r"}),
        ),
        (
            "/plans",
            json!({"consortium_id": t[1], "phase": 1, "deliverables": [
                {"title": "x", "acceptance_criteria": "y", "due_date": "2090-01-01"}]}),
        ),
    ] {
        m.refused(path, &other, body, StatusCode::FORBIDDEN, "FORBIDDEN")
            .await;
    }
    for (s, _) in [
        m.get("/gate-templates/first", &other).await,
        m.get(&format!("/gates/gate-1/results/{}", t[0].0), &other)
            .await,
        // A gate's inputs and eligibility verdicts are the committee's papers.
        m.get("/gates/gate-1/inputs", &other).await,
        m.get("/gates/gate-1/eligibility", &other).await,
    ] {
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}

/// `POST /plans`: a team's deliverables for a phase in one transaction; a bad item is
/// named by its index and leaves none of the others written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_written_whole_or_not_at_all() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let t = select(&ctx, &m, 1).await;
    let item = |title: &str, due: &str| json!({"title": title, "acceptance_criteria": "reviewed by the ministry", "due_date": due});
    for (items, field) in [
        (
            json!([item("Report", "2090-01-31"), item(" ", "2090-02-28")]),
            "deliverables[1].title",
        ),
        (
            json!([item("Report", "2090-01-31"), item("Late", "2200-01-01")]),
            "deliverables[1].due_date",
        ),
        (json!([]), "deliverables"),
    ] {
        let b = m
            .refused(
                "/plans",
                &m.officer,
                json!({"consortium_id": t[0], "phase": 1, "deliverables": items}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
            )
            .await;
        assert!(
            b["message"]
                .as_str()
                .is_some_and(|msg| msg.starts_with(field)),
            "{field}: {b}"
        );
    }
    let (s, b) = m
        .post(
            "/plans",
            &m.officer,
            json!({"consortium_id": t[0], "phase": 2, "deliverables": [
                item("Report", "2090-01-31"), item("Benchmarks", "2090-03-31")]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b.as_array().map(Vec::len), Some(2));
    let (_, plan) = m
        .get(
            &format!("/deliverables?consortium_id={}&phase=2", t[0].0),
            &m.officer,
        )
        .await;
    assert_eq!(plan.as_array().map(Vec::len), Some(2), "{plan}");
    // Not a selected team: refused, nothing written.
    m.refused(
        "/plans",
        &m.officer,
        json!({"consortium_id": ConsortiumId::new(), "phase": 1, "deliverables": [item("Report", "2090-01-31")]}),
        StatusCode::NOT_FOUND,
        "TEAM_NOT_SELECTED",
    )
    .await;
}

/// Gates and decisions from before a consumer existed (scoring's `known_gates` and
/// `eliminated_teams` are new), or whose events left the topic's retention: an admin's
/// `POST /admin/announce` republishes `GateDefined` per gate and `TeamEliminated` per
/// eliminated team with the same data, and repeating it is safe (consumers record once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_announce_republishes_every_gate_and_elimination_and_can_be_repeated() {
    let ctx = TestContext::new();
    let m = Ms::start(&ctx).await;
    let teams = select(&ctx, &m, 5).await;
    let g = define_gate_1(&ctx, &m, &teams).await;
    for team in &teams {
        eligibility(&m, *team, true, "training logs reviewed").await;
    }
    let (s, p) = m
        .post("/gates/gate-1/proposals", &m.officer, json!(null))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let path = format!("/proposals/{}/votes", id_of(&p));
    for member in &g.members[..2] {
        let b = ctx.bearer_for(member, Role::Officer, None);
        let (s, v) = m
            .post(&path, &b, json!({"approve": true, "reason": "verified"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, d) = m
        .post(
            "/gates/gate-1/publish",
            &m.officer,
            json!({"proposal_id": id_of(&p), "reason": "majority"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    // A gate defined with no event (as before scoring consumed GateDefined).
    {
        let mut c = m.svc.conn();
        diesel::sql_query(
            "INSERT INTO ms_gates (id, key, phase, gate_date, planned_eliminations,
                 eligibility_rules, committee, reason, created_by, created_role, created_at)
             VALUES (gen_random_uuid(), 'gate-0', 1, '2026-01-31', 0, '{}', '{a,b,c}',
                 'before deploy', 'officer', 'officer', now())",
        )
        .execute(&mut c)
        .expect("insert a gate without its event");
    }
    let events = |t: &str| {
        m.count(&format!(
            "SELECT count(*) FROM kaip_outbox WHERE event_type = '{t}'"
        ))
    };
    assert_eq!((events("GateDefined"), events("TeamEliminated")), (1, 1));

    // Staff other than an admin: refused, nothing published.
    m.refused(
        "/admin/announce",
        &m.officer,
        json!(null),
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    let admin = ctx.bearer(Role::Admin, None);
    for round in 1..=2 {
        let (s, b) = m.post("/admin/announce", &admin, json!(null)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b, json!({"gates": 2, "eliminations": 1}), "round {round}");
        assert_eq!(
            (events("GateDefined"), events("TeamEliminated")),
            (1 + 2 * round, 1 + round)
        );
    }
    // Whether each gate has an expert_panel component: gate-1's template has, gate-0 none.
    assert_eq!(
        m.count(
            "SELECT count(DISTINCT (payload->'data'->>'gate') || (payload->'data'->>'expert_panel'))
             FROM kaip_outbox WHERE event_type = 'GateDefined'
               AND ((payload->'data'->>'gate' = 'gate-1' AND payload->'data'->>'expert_panel' = 'true')
                 OR (payload->'data'->>'gate' = 'gate-0' AND payload->'data'->>'expert_panel' = 'false'))"
        ),
        2
    );
    // The same data as the decision's own events: the gates' keys, and the elimination.
    assert_eq!(
        m.count(
            "SELECT count(DISTINCT payload->'data'->>'gate') FROM kaip_outbox
             WHERE event_type = 'GateDefined'"
        ),
        2
    );
    assert_eq!(
        m.count(
            "SELECT count(DISTINCT payload->'data') FROM kaip_outbox
             WHERE event_type = 'TeamEliminated'"
        ),
        1,
        "republished eliminations carry exactly the published one's data"
    );
}

/// The half year after the one running now (KST) and the one after it: neither has started
/// on any day the tests run.
fn future_halves() -> (String, String) {
    use chrono::Datelike;
    let now =
        chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("KST"));
    if now.month() <= 6 {
        (format!("{}H2", now.year()), format!("{}H1", now.year() + 1))
    } else {
        (
            format!("{}H1", now.year() + 1),
            format!("{}H2", now.year() + 1),
        )
    }
}
