//! The talent service against the real PostgreSQL and broker: a round's stable matches with
//! their explanations, accept and decline, one active hire per researcher, July mid-month
//! pro-rating, the KRW 2bn cap under concurrent claims, the stop after elimination (from
//! milestones' events, produced on the broker here since that service is not built yet),
//! every bad input's code with nothing written, what a team may see, and erasure.

use diesel::prelude::*;
use kaip_contracts::dto::intake::{Artefact, OrgType, ResourceRequest};
use kaip_contracts::events::{ProposalSubmitted, SelectedTeam, SelectionPublished};
use kaip_contracts::{ConsortiumId, DomainEvent, Krw, Role};
use kaip_testkit::{eventually, TestContext, TestService};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

struct Talent {
    http: reqwest::Client,
    svc: TestService,
    officer: String,
}

/// A selected team: its id and a token of its own.
struct Team {
    id: ConsortiumId,
    token: String,
}

impl Talent {
    async fn start(ctx: &TestContext, workers: usize, pool: u32) -> Self {
        let mut settings = ctx.settings(kaip_talent::DEFAULTS);
        settings.server.workers = workers;
        settings.database.pool_size = pool;
        let svc = ctx.spawn_with(kaip_talent::definition(), settings).await;
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

    async fn position(
        &self,
        team: &Team,
        field: &str,
        skills: &[&str],
        seniority: &str,
        count: i32,
    ) -> Uuid {
        self.position_band(team, field, skills, seniority, count, 9_000_000, 15_000_000)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn position_band(
        &self,
        team: &Team,
        field: &str,
        skills: &[&str],
        seniority: &str,
        count: i32,
        min: i64,
        max: i64,
    ) -> Uuid {
        let (s, b) = self
            .post(
                "/positions",
                &team.token,
                json!({"consortium_id": team.id, "title": format!("{field} researcher"), "field": field,
                       "required_skills": skills, "seniority": seniority, "count": count,
                       "salary_band": {"min_monthly_krw": min, "max_monthly_krw": max}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        id_of(&b)
    }

    async fn researcher(
        &self,
        bearer: &str,
        name: &str,
        field: &str,
        skills: &[&str],
        seniority: &str,
        prefs: &[Uuid],
    ) -> Uuid {
        let (s, b) = self
            .post(
                "/researchers",
                bearer,
                json!({"skills": skills, "field": field, "seniority": seniority,
                       "available_from": "2025-01-01", "preferences": prefs,
                       "personal": {"name": name, "contact": format!("{}@example.org", name.len())}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        id_of(&b)
    }

    /// A direct hire by `team`, terms spelled out (a test helper, hence the arguments).
    #[allow(clippy::too_many_arguments)]
    async fn hire(
        &self,
        team: &Team,
        researcher: Uuid,
        position: Uuid,
        start: &str,
        end: &str,
        salary: i64,
        living: i64,
    ) -> (StatusCode, Value) {
        self.post(
            "/hires",
            &team.token,
            json!({"researcher_id": researcher, "position_id": position, "start_date": start, "end_date": end,
                   "personal": {"monthly_salary_krw": salary, "monthly_living_allowance_krw": living}}),
        )
        .await
    }

    async fn claim(&self, team: &Team, hire: Uuid, month: &str) -> (StatusCode, Value) {
        self.post(
            "/claims",
            &team.token,
            json!({"hire_id": hire, "month": month}),
        )
        .await
    }

    fn count(&self, sql: &str) -> i64 {
        let mut c = self.svc.conn();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "({sql})"
        )))
        .get_result(&mut c)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every talent table's row count, the outbox and the audit trail: what "changes
    /// nothing" compares.
    fn footprint(&self) -> Vec<i64> {
        [
            "talent_positions",
            "talent_researchers",
            "talent_researcher_personal",
            "talent_applications",
            "talent_rounds",
            "talent_matches",
            "talent_match_answers",
            "talent_hires",
            "talent_hire_pay",
            "talent_team_years",
            "talent_claims",
            "talent_team_terms",
            "talent_terms",
            "kaip_outbox",
            "audit_operations",
            "audit_changes",
        ]
        .iter()
        .map(|t| self.count(&format!("SELECT count(*) FROM {t}")))
        .collect()
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
    publish_envelope(ctx, topic, &env).await;
}

async fn publish_envelope(ctx: &TestContext, topic: &str, env: &kaip_contracts::EventEnvelope) {
    let payload = serde_json::to_vec(env).expect("json");
    ctx.produce_raw(
        &ctx.topic(topic),
        &env.aggregate_id.to_string(),
        &payload,
        &[("kaip-event-type", &env.event_type)],
    )
    .await;
}

/// Each team's proposal (lead type and openness, from intake) and the selection (scoring),
/// published on the broker at `selected_at`; returns the teams once the service knows them.
async fn select(
    ctx: &TestContext,
    t: &Talent,
    teams: &[(OrgType, Vec<Artefact>)],
    selected_at: chrono::DateTime<chrono::Utc>,
    requested: i64,
) -> Vec<Team> {
    let mut out = Vec::new();
    let mut selected = Vec::new();
    for (i, (lead, releases)) in teams.iter().enumerate() {
        let mut p: ProposalSubmitted =
            kaip_testkit::fixtures::proposal_submitted(&format!("Team {i}"));
        p.members = kaip_testkit::fixtures::members(i as u32 + 11, *lead);
        if let Some(pf) = p.portfolio.as_mut() {
            pf.openness.releases = releases.clone();
            if releases.is_empty() {
                pf.openness.licence = None;
            }
        }
        publish(ctx, "intake", kaip_contracts::topics::INTAKE, &p).await;
        selected.push(SelectedTeam {
            proposal_id: p.proposal_id,
            consortium_id: p.consortium_id,
            consortium_name: p.consortium_name.clone(),
            title: p.title.clone(),
            rank: i as i32 + 1,
            score_centi: 8_000,
            resources: ResourceRequest {
                talent_funding_krw: Krw(requested),
                ..Default::default()
            },
        });
        out.push(Team {
            id: p.consortium_id,
            token: ctx.bearer(Role::Consortium, Some(p.consortium_id)),
        });
    }
    let ev = SelectionPublished {
        call_id: kaip_contracts::CallId::new(),
        selected,
        departure: None,
        override_reason: None,
        published_at: selected_at,
        replaces: None,
        team_maxima: None,
    };
    publish(ctx, "scoring", kaip_contracts::topics::SCORING, &ev).await;
    let n = teams.len();
    eventually(Duration::from_secs(60), || async {
        let (_, b) = t.get("/teams", &t.officer).await;
        let arr = b.as_array()?;
        (arr.len() == n && arr.iter().all(|x| x["ratio_bp"].is_i64())).then_some(())
    })
    .await
    .expect("the service learned the teams and their terms");
    out
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("RFC 3339")
}

fn researcher_token(ctx: &TestContext) -> String {
    ctx.integration_bearer("agency-1", &[kaip_auth::scopes::WRITE_RESEARCHERS])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talent_round_proposes_stable_matches_with_explanations_and_teams_accept_or_decline() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[
            (OrgType::Startup, vec![]),
            (OrgType::MidSize, vec![Artefact::Weights]),
        ],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b) = (&teams[0], &teams[1]);
    let pa = t.position(a, "nlp", &["rust", "cuda"], "senior", 1).await;
    let pb = t.position(b, "vision", &["cuda"], "senior", 1).await;
    let agency = researcher_token(&ctx);
    // Both want A's position first; r2 fits it better (field and both skills), so r1 moves
    // on to B's, its second choice.
    let r1 = t
        .researcher(
            &agency,
            "Researcher One",
            "vision",
            &["cuda"],
            "senior",
            &[pa, pb],
        )
        .await;
    let r2 = t
        .researcher(
            &agency,
            "Researcher Two",
            "nlp",
            &["rust", "cuda"],
            "senior",
            &[pa, pb],
        )
        .await;
    // A team may not run a round.
    let (s, body) = t.post("/rounds", &a.token, json!({})).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
        "{body}"
    );
    let (s, round) = t
        .post("/rounds", &t.officer, json!({"note": "first round"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    let proposals = round["proposals"].as_array().expect("proposals");
    assert_eq!(proposals.len(), 2, "{round}");
    let of = |r: Uuid| {
        proposals
            .iter()
            .find(|p| p["researcher_id"] == json!(r))
            .expect("matched")
            .clone()
    };
    let (m2, m1) = (of(r2), of(r1));
    assert_eq!(m2["position_id"], json!(pa));
    assert_eq!(
        m2["fit"],
        json!({"skills": 20, "field": 20, "seniority": 15, "total": 55})
    );
    assert_eq!(
        (
            m2["researcher_rank"].as_i64(),
            m2["position_rank"].as_i64(),
            m2["applicants"].as_i64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(m1["position_id"], json!(pb));
    assert_eq!(
        m1["fit"],
        json!({"skills": 10, "field": 20, "seniority": 15, "total": 45})
    );
    assert_eq!(
        (m1["researcher_rank"].as_i64(), m1["position_rank"].as_i64()),
        (Some(2), Some(1))
    );
    // Stable: r1 would rather have A's place, but A ranks r1 (fit 10) below r2 (fit 55).
    // A team sees only its own proposals in the round.
    let round_id = id_of(&round);
    let (_, mine) = t.get(&format!("/rounds/{round_id}"), &a.token).await;
    assert_eq!(
        mine["proposals"].as_array().map(Vec::len),
        Some(1),
        "{mine}"
    );
    assert_eq!(mine["proposals"][0]["researcher_id"], json!(r2));
    // B cannot answer A's match (it is not found for B).
    let m2id = id_of(&m2);
    let accept = json!({"start_date": "2025-03-01", "end_date": "2025-12-31",
                        "personal": {"monthly_salary_krw": 10_000_000, "monthly_living_allowance_krw": 2_000_000}});
    let (s, body) = t
        .post(&format!("/matches/{m2id}/accept"), &b.token, accept.clone())
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("MATCH_NOT_FOUND")),
        "{body}"
    );
    let (s, hire) = t
        .post(&format!("/matches/{m2id}/accept"), &a.token, accept.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    assert_eq!(hire["researcher_id"], json!(r2));
    assert_eq!(hire["match_id"], json!(m2id));
    // Startup lead, nothing released: small/closed, 50 %.
    assert_eq!(hire["ratio_bp"], 5_000);
    let (s, body) = t
        .post(&format!("/matches/{m2id}/accept"), &a.token, accept)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("MATCH_ALREADY_ANSWERED")),
        "{body}"
    );
    let m1id = id_of(&m1);
    let (s, body) = t
        .post(
            &format!("/matches/{m1id}/decline"),
            &b.token,
            json!({"reason": "we need an NLP profile"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "declined");
    assert_eq!(body["answer_reason"], "we need an NLP profile");
    let (_, all) = t.get("/matches", &t.officer).await;
    let statuses: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"accepted") && statuses.contains(&"declined"),
        "{all}"
    );
    // The proposals and the hire reach the topic, without a name or a salary.
    let topic = ctx.topic(kaip_contracts::topics::TALENT);
    let events = eventually(Duration::from_secs(60), || async {
        let msgs = ctx.read_topic(&topic).await;
        let types: Vec<String> = msgs
            .iter()
            .filter_map(|m| m.json())
            .filter_map(|j| j["type"].as_str().map(str::to_owned))
            .collect();
        (types.iter().filter(|t| *t == "TalentMatchProposed").count() == 2
            && types.iter().any(|t| t == "TalentHired")
            && types.iter().any(|t| t == "TalentMatchDeclined"))
        .then_some(msgs)
    })
    .await
    .expect("the events were published");
    for m in events {
        let text = String::from_utf8_lossy(m.payload.as_deref().unwrap_or_default()).to_string();
        assert!(
            !text.contains("Researcher Two") && !text.contains("10000000"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn july_mid_month_hire_is_prorated_by_days_and_a_second_active_hire_is_refused() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![]), (OrgType::LargeEnterprise, vec![])],
        at("2025-01-05T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b) = (&teams[0], &teams[1]);
    let pa = t.position(a, "nlp", &["rust"], "mid", 2).await;
    let pb = t.position(b, "nlp", &["rust"], "mid", 1).await;
    let r = t
        .researcher(&a.token, "Mid July", "nlp", &["rust"], "mid", &[pa, pb])
        .await;
    let (s, hire) = t
        .hire(a, r, pa, "2025-07-16", "2027-07-15", 12_000_000, 3_000_000)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    let hire_id = id_of(&hire);
    // 15,000,000 a month x 16/31 days x 50 %, rounded down once: 3,870,967.
    let (s, c) = t.claim(a, hire_id, "2025-07").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(
        (c["days_covered"].as_i64(), c["days_in_month"].as_i64()),
        (Some(16), Some(31))
    );
    assert_eq!(c["claimed_krw"], 3_870_967);
    assert_eq!(c["paid_krw"], 3_870_967);
    assert!(c["cap_reason"].is_null());
    let (s, c) = t.claim(a, hire_id, "2025-08").await;
    assert_eq!(
        (s, c["paid_krw"].as_i64()),
        (StatusCode::CREATED, Some(7_500_000)),
        "{c}"
    );
    // The same month twice is refused.
    let (s, body) = t.claim(a, hire_id, "2025-07").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("MONTH_ALREADY_CLAIMED")),
        "{body}"
    );
    // The report is exact.
    let (_, rep) = t
        .get(&format!("/teams/{}/report/2025", a.id), &a.token)
        .await;
    assert_eq!(rep["paid_krw"], 3_870_967 + 7_500_000, "{rep}");
    // Selected on 5 January 2025 (KST): 361 of 365 days, so the year's cap is
    // 2,000,000,000 x 361 / 365 = 1,978,082,191.78... -> 1,978,082,191.
    assert_eq!(rep["cap_krw"], 1_978_082_191i64, "{rep}");
    assert_eq!(
        rep["remaining_krw"],
        1_978_082_191i64 - 3_870_967 - 7_500_000
    );
    assert_eq!(
        (
            rep["places_open"].as_i64(),
            rep["places_filled"].as_i64(),
            rep["hires"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // B hiring the same researcher: a second active hire.
    let before = t.footprint();
    let (s, body) = t
        .hire(b, r, pb, "2025-08-01", "2025-12-31", 9_000_000, 1_000_000)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("RESEARCHER_ALREADY_HIRED")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("researcher_id:"),
        "{body}"
    );
    assert_eq!(t.footprint(), before, "a refused hire writes nothing");
    // The database holds the rule even when the application's check is bypassed.
    let mut conn = t.svc.conn();
    let dup = diesel::sql_query(format!(
        "INSERT INTO talent_hires (id, researcher_id, position_id, consortium_id, start_date, end_date, ratio_bp, hired_by, hired_role, hired_at) \
         VALUES ('{}', '{r}', '{pb}', '{}', '2025-08-01', '2025-12-31', 3000, 'psql', 'unknown', now())",
        Uuid::now_v7(), b.id
    ))
    .execute(&mut conn);
    assert!(
        format!("{dup:?}").contains("talent_hires_one_active"),
        "{dup:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_2bn_cap_holds_under_concurrent_claims_and_the_clipping_is_explained() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 4, 6).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Startup, vec![])],
        at("2024-12-01T00:00:00Z"),
        5_000_000_000,
    )
    .await;
    let a = &teams[0];
    let p = t
        .position_band(a, "nlp", &[], "senior", 1, 0, 1_400_000_000)
        .await;
    let r = t
        .researcher(&a.token, "Expensive Expert", "nlp", &[], "senior", &[p])
        .await;
    // 1.4bn a month at 50 %: 700m a full month; twelve months claimed at once.
    let (s, hire) = t
        .hire(a, r, p, "2025-01-01", "2025-12-31", 1_400_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    let hire_id = id_of(&hire);
    let claims = (1..=12).map(|m| {
        let t = &t;
        async move { t.claim(a, hire_id, &format!("2025-{m:02}")).await }
    });
    let results = futures::future::join_all(claims).await;
    let mut paid = 0i64;
    let mut clipped = 0;
    let mut zero = 0;
    for (s, c) in &results {
        assert_eq!(*s, StatusCode::CREATED, "{c}");
        assert_eq!(c["claimed_krw"], 700_000_000);
        let p = c["paid_krw"].as_i64().expect("paid");
        paid += p;
        match p {
            700_000_000 => assert!(c["cap_reason"].is_null(), "{c}"),
            0 => zero += 1,
            _ => clipped += 1,
        }
        if p < 700_000_000 {
            let reason = c["cap_reason"].as_str().unwrap_or("");
            assert!(
                reason.contains("annual cap") && reason.contains("2025"),
                "{c}"
            );
        }
    }
    // Exactly the cap: two full months, one clipped to 600m, nine at zero.
    assert_eq!(paid, 2_000_000_000);
    assert_eq!((clipped, zero), (1, 9));
    assert_eq!(
        t.count("SELECT paid_krw FROM talent_team_years"),
        2_000_000_000
    );
    assert_eq!(
        t.count("SELECT sum(paid_krw)::bigint FROM talent_claims"),
        2_000_000_000
    );
    let (_, rep) = t
        .get(&format!("/teams/{}/report/2025", a.id), &t.officer)
        .await;
    assert_eq!(
        (
            rep["paid_krw"].as_i64(),
            rep["remaining_krw"].as_i64(),
            rep["claimed_krw"].as_i64()
        ),
        (Some(2_000_000_000), Some(0), Some(8_400_000_000))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funding_stops_the_month_after_elimination_and_replays_change_nothing() {
    use kaip_contracts::events::{GateDecided, TeamEliminated};
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::University, vec![Artefact::Weights])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let a = &teams[0];
    let p = t.position(a, "nlp", &[], "senior", 1).await;
    let r = t
        .researcher(&a.token, "Gate Case", "nlp", &[], "senior", &[p])
        .await;
    let (s, hire) = t
        .hire(a, r, p, "2025-01-01", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    assert_eq!(hire["ratio_bp"], 7_000, "academic lead with open weights");
    let hire_id = id_of(&hire);
    // Eliminated on 31 May 2025 at 16:00 UTC = 1 June 01:00 KST: June is the last month.
    let elim = TeamEliminated {
        gate_id: Uuid::now_v7(),
        gate: "gate-1".into(),
        consortium_id: a.id,
        reason: "rank: lowest gate score".into(),
        reallocation: vec![],
        decided_at: at("2025-05-31T16:00:00Z"),
    };
    let env = kaip_contracts::EventEnvelope::wrap(
        "milestones",
        kaip_contracts::Actor::system("milestones"),
        &elim,
    )
    .expect("wrap");
    publish_envelope(&ctx, kaip_contracts::topics::MILESTONES, &env).await;
    publish_envelope(&ctx, kaip_contracts::topics::MILESTONES, &env).await;
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &GateDecided {
            gate_id: elim.gate_id,
            gate: "gate-1".into(),
            passed: vec![],
            eliminated: vec![a.id],
            decided_at: elim.decided_at,
        },
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        (t.count("SELECT count(*) FROM kaip_inbox") >= 4).then_some(())
    })
    .await
    .expect("the events were consumed");
    assert_eq!(t.count("SELECT count(*) FROM talent_eliminations"), 1);
    assert_eq!(
        t.count("SELECT count(*) FROM kaip_outbox WHERE event_type = 'TalentFundingStopped'"),
        1,
        "one stop, however often it is told"
    );
    let (_, teams_now) = t.get("/teams", &a.token).await;
    assert!(teams_now[0]["eliminated_at"].is_string(), "{teams_now}");
    // Earlier months are still paid, the elimination's month too (June in KST) ...
    for m in ["2025-03", "2025-06"] {
        let (s, c) = t.claim(a, hire_id, m).await;
        assert_eq!(
            (s, c["paid_krw"].as_i64()),
            (StatusCode::CREATED, Some(7_000_000)),
            "{m}: {c}"
        );
    }
    // ... and nothing after it.
    let before = t.footprint();
    let (s, body) = t.claim(a, hire_id, "2025-07").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("FUNDING_STOPPED")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").starts_with("month:"),
        "{body}"
    );
    assert_eq!(t.footprint(), before);
    // An eliminated team opens no more positions, and a round leaves its places out.
    let (s, body) = t.post("/positions", &a.token, json!({"consortium_id": a.id, "title": "x", "field": "nlp", "required_skills": [], "seniority": "mid", "count": 1, "salary_band": {"min_monthly_krw": 0, "max_monthly_krw": 0}})).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("FUNDING_STOPPED")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_code_naming_the_field_and_writes_nothing() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![]), (OrgType::Sme, vec![])],
        at("2025-03-02T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b) = (&teams[0], &teams[1]);
    let pa = t.position(a, "nlp", &[], "mid", 1).await;
    let pb = t.position(b, "nlp", &[], "mid", 1).await;
    let r = t
        .researcher(&a.token, "Bad Input", "nlp", &[], "mid", &[pa, pb])
        .await;
    let (s, hire) = t
        .hire(a, r, pa, "2025-04-01", "2025-06-30", 9_000_000, 1_000_000)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    let hire_id = id_of(&hire);
    let before = t.footprint();
    let cases: Vec<(&str, (StatusCode, Value), &str, &str)> = vec![
        ("a claim for a month outside the hire", t.claim(a, hire_id, "2025-07").await, "MONTH_OUTSIDE_HIRE", "month:"),
        ("a hire that starts before the team was selected (2 March 2025 09:00 KST)",
         t.hire(b, r, pb, "2025-03-01", "2025-06-30", 9_000_000, 1).await, "HIRE_BEFORE_SELECTION", "start_date:"),
        ("a second active hire", t.hire(b, r, pb, "2025-04-01", "2025-06-30", 9_000_000, 1).await, "RESEARCHER_ALREADY_HIRED", "researcher_id:"),
        ("a negative salary", t.hire(b, r, pb, "2025-04-01", "2025-06-30", -1, 0).await, "VALIDATION_FAILED", "personal.monthly_salary_krw:"),
        ("a negative living allowance", t.hire(b, r, pb, "2025-04-01", "2025-06-30", 0, -5).await, "VALIDATION_FAILED", "personal.monthly_living_allowance_krw:"),
        ("a salary and allowance beyond i64", t.hire(b, r, pb, "2025-04-01", "2025-06-30", i64::MAX, 1).await, "VALIDATION_FAILED", "personal:"),
        ("a position with count 0",
         t.post("/positions", &a.token, json!({"consortium_id": a.id, "title": "t", "field": "nlp", "required_skills": [], "seniority": "mid", "count": 0, "salary_band": {"min_monthly_krw": 0, "max_monthly_krw": 1}})).await,
         "VALIDATION_FAILED", "count:"),
        ("a claim for a month that has not started in KST", t.claim(a, hire_id, "2099-01").await, "VALIDATION_FAILED", "month:"),
        ("a salary above the position's band", t.hire(b, r, pb, "2025-04-01", "2025-06-30", 15_000_001, 0).await, "VALIDATION_FAILED", "personal.monthly_salary_krw:"),
        ("a salary below the position's band", t.hire(b, r, pb, "2025-04-01", "2025-06-30", 8_999_999, 0).await, "VALIDATION_FAILED", "personal.monthly_salary_krw:"),
        ("a salary of i64::MAX", t.hire(b, r, pb, "2025-04-01", "2025-06-30", i64::MAX, 0).await, "VALIDATION_FAILED", "personal.monthly_salary_krw:"),
        ("a claim month that is not a month", t.claim(a, hire_id, "2025-13").await, "VALIDATION_FAILED", "month:"),
        ("a hire ending before it starts", t.hire(a, r, pa, "2025-05-01", "2025-04-30", 1, 1).await, "VALIDATION_FAILED", "end_date:"),
        ("a position for another team",
         t.post("/positions", &a.token, json!({"consortium_id": b.id, "title": "t", "field": "nlp", "required_skills": [], "seniority": "mid", "count": 1, "salary_band": {"min_monthly_krw": 0, "max_monthly_krw": 1}})).await,
         "FORBIDDEN", ""),
        ("an unknown seniority",
         t.post("/positions", &a.token, json!({"consortium_id": a.id, "title": "t", "field": "nlp", "required_skills": [], "seniority": "guru", "count": 1, "salary_band": {"min_monthly_krw": 0, "max_monthly_krw": 1}})).await,
         "VALIDATION_FAILED", "seniority:"),
    ];
    for (what, (s, body), code, field) in cases {
        assert_eq!(body["code"].as_str(), Some(code), "{what}: {s} {body}");
        assert!(s.is_client_error(), "{what}: {s}");
        assert!(
            body["message"].as_str().unwrap_or("").starts_with(field),
            "{what}: {body}"
        );
    }
    assert_eq!(t.footprint(), before, "no refused input wrote anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_sees_only_its_researchers_and_no_other_teams_salaries_and_erasure_keeps_the_books()
{
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![]), (OrgType::Sme, vec![])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b) = (&teams[0], &teams[1]);
    let pa = t.position(a, "nlp", &[], "mid", 1).await;
    let pb = t.position(b, "nlp", &[], "mid", 1).await;
    let agency = researcher_token(&ctx);
    let ra = t
        .researcher(&agency, "Ada Quintessa-Lovelock", "nlp", &[], "mid", &[pa])
        .await;
    let rb = t
        .researcher(&agency, "Bob Only-Bee", "nlp", &[], "mid", &[pb])
        .await;
    // An integration without the scope may not register.
    let (s, body) = t.post("/researchers", &ctx.integration_bearer("gpu-op", &[kaip_auth::scopes::WRITE_GPU_USAGE]),
        json!({"skills": [], "field": "nlp", "seniority": "mid", "available_from": "2025-01-01", "preferences": [],
               "personal": {"name": "X", "contact": "x"}})).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
        "{body}"
    );
    let (_, list) = t.get("/researchers", &a.token).await;
    let ids: Vec<&Value> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, vec![&json!(ra)], "A sees only who applied to it");
    let (s, body) = t.get(&format!("/researchers/{rb}"), &a.token).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RESEARCHER_NOT_FOUND")),
        "{body}"
    );
    let (s, own) = t.get(&format!("/researchers/{ra}"), &a.token).await;
    assert_eq!(
        (s, own["personal"]["name"].as_str()),
        (StatusCode::OK, Some("Ada Quintessa-Lovelock")),
        "{own}"
    );
    // Salaries: the team and officers only.
    let (_, ha) = t
        .hire(a, ra, pa, "2025-01-01", "2025-12-31", 12_345_671, 1_234_561)
        .await;
    let (_, hb) = t
        .hire(b, rb, pb, "2025-01-01", "2025-12-31", 9_765_431, 0)
        .await;
    let (ha, hb) = (id_of(&ha), id_of(&hb));
    let (s, body) = t.get(&format!("/hires/{hb}"), &a.token).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("HIRE_NOT_FOUND")),
        "{body}"
    );
    let (_, mine) = t.get("/hires", &a.token).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine[0]["personal"]["monthly_salary_krw"], 12_345_671);
    let (_, all) = t.get("/hires", &t.officer).await;
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(2),
        "officers see every hire"
    );
    let (_, positions) = t.get("/positions", &a.token).await;
    for p in positions.as_array().expect("positions") {
        assert_eq!(
            p["salary_band"].is_null(),
            p["consortium_id"] != json!(a.id),
            "{p}"
        );
    }
    let (_, claims_b) = t
        .get(&format!("/claims?consortium_id={}", b.id), &a.token)
        .await;
    assert_eq!(
        claims_b,
        json!([]),
        "a team's filter cannot reach another's claims"
    );
    // Erasure: the profile goes, the books stay.
    let (s, c) = t.claim(a, ha, "2025-02").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let paid = c["paid_krw"].as_i64().expect("paid");
    let (s, body) = t
        .post(
            &format!("/researchers/{ra}/erase"),
            &a.token,
            json!({"reason": "asked"}),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
        "{body}"
    );
    let (s, erased) = t
        .post(
            &format!("/researchers/{ra}/erase"),
            &t.officer,
            json!({"reason": "the researcher's request of 3 March"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    assert!(
        erased["personal"].is_null() && erased["erased_at"].is_string(),
        "{erased}"
    );
    assert_eq!(erased["id"], json!(ra), "the pseudonymous id stays");
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM talent_researcher_personal WHERE researcher_id = '{ra}'"
        )),
        0
    );
    let (_, claims) = t.get(&format!("/claims?hire_id={ha}"), &t.officer).await;
    assert_eq!(
        (
            claims[0]["researcher_id"].clone(),
            claims[0]["paid_krw"].as_i64()
        ),
        (json!(ra), Some(paid))
    );
    let (_, rep) = t
        .get(&format!("/teams/{}/report/2025", a.id), &t.officer)
        .await;
    assert_eq!(rep["paid_krw"].as_i64(), Some(paid));
    // The audit trail and the events hold ids, never the names or the salaries.
    let leaks = t.count(
        "SELECT count(*) FROM (SELECT input::text AS t FROM audit_operations \
         UNION ALL SELECT coalesce(before::text, '') || coalesce(after::text, '') FROM audit_changes \
         UNION ALL SELECT payload::text FROM kaip_outbox) x \
         WHERE t LIKE '%Quintessa%' OR t LIKE '%Only-Bee%' OR t LIKE '%12345671%' OR t LIKE '%9765431%' OR t LIKE '%1234561%'",
    );
    assert_eq!(leaks, 0, "personal data in the trail or the outbox");
    // ... while the trail does record the hire and the erasure, by id.
    assert!(t.count(&format!("SELECT count(*) FROM audit_changes WHERE table_name = 'talent_hires' AND '{ha}' = ANY(entity_ids)")) >= 1);
    assert!(t.count(&format!("SELECT count(*) FROM audit_changes WHERE table_name = 'talent_researchers' AND action = 'update' AND '{ra}' = ANY(entity_ids)")) >= 1);
    // An erased researcher cannot be hired again.
    let (s, body) = t
        .hire(b, ra, pb, "2025-01-01", "2025-01-31", 9_000_000, 0)
        .await;
    assert!(s.is_client_error(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_racing_an_elimination_sees_it_once_the_elimination_commits() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::University, vec![Artefact::Weights])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let a = &teams[0];
    let p = t.position(a, "nlp", &[], "senior", 1).await;
    let r = t
        .researcher(&a.token, "Race Case", "nlp", &[], "senior", &[p])
        .await;
    let (s, hire) = t
        .hire(a, r, p, "2025-01-01", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    let hire_id = id_of(&hire);
    let (s, c) = t.claim(a, hire_id, "2025-03").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    // An elimination in flight: the team's row taken as `eliminate` takes it, and the
    // elimination written but not yet committed while the claim for July arrives.
    let mut conn = t.svc.conn();
    for q in [
        "BEGIN".to_owned(),
        format!("SELECT 1 FROM talent_teams WHERE consortium_id = '{}' FOR UPDATE", a.id),
        format!("INSERT INTO talent_eliminations (consortium_id, gate, reason, decided_at, recorded_at) VALUES ('{}', 'gate-1', 'race', '2025-05-31T16:00:00Z', now())", a.id),
    ] {
        diesel::sql_query(q).execute(&mut conn).expect("elimination in flight");
    }
    let ((s, body), ()) = tokio::join!(t.claim(a, hire_id, "2025-07"), async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        diesel::sql_query("COMMIT")
            .execute(&mut conn)
            .expect("commit");
    });
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("FUNDING_STOPPED")),
        "{body}"
    );
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM talent_claims WHERE hire_id = '{hire_id}'"
        )),
        1,
        "only March was claimed"
    );
}

/// Every text of the audit trail and of the outbox (where `AuditRecorded` waits for the
/// broker): what must never hold personal data.
fn trail_texts(t: &Talent) -> Vec<String> {
    let mut c = t.svc.conn();
    #[derive(QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    diesel::sql_query(
        "SELECT input::text AS t FROM audit_operations \
         UNION ALL SELECT coalesce(before::text, '') || ' ' || coalesce(after::text, '') FROM audit_changes \
         UNION ALL SELECT payload::text FROM kaip_outbox",
    )
    .load::<Text>(&mut c)
    .expect("trail")
    .into_iter()
    .map(|r| r.t)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_and_its_export_record_ids_not_names_skills_reasons_or_salaries() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let a = &teams[0];
    let p = t.position(a, "nlp", &["quokkaskill-rust"], "mid", 1).await;
    let agency = researcher_token(&ctx);
    let (s, b) = t
        .post(
            "/researchers",
            &agency,
            json!({"skills": ["quokkaskill-rust", "wombatskill-jax"], "field": "nlp", "seniority": "mid",
                   "available_from": "2025-01-01", "preferences": [p],
                   "personal": {"name": "Zebulon Quintavius", "contact": "zq-contact@example.org"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r = id_of(&b);
    let (s, hire) = t
        .hire(a, r, p, "2025-01-01", "2025-12-31", 12_345_677, 1_234_567)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hire}");
    let h = id_of(&hire);
    let (s, c) = t.claim(a, h, "2025-02").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, ended) = t
        .post(
            &format!("/hires/{h}/end"),
            &a.token,
            json!({"ended_on": "2025-03-15", "reason": "resigned: Zebulon's family moved"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ended}");
    // A team's decline of a proposed researcher: its reason is about that person.
    let p2 = t.position(a, "vision", &[], "mid", 1).await;
    let r2 = t
        .researcher(&agency, "Yolanda Xerxes", "vision", &[], "mid", &[p2])
        .await;
    let (s, round) = t
        .post("/rounds", &t.officer, json!({"note": "audit round"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    let m = round["proposals"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|x| x["researcher_id"] == json!(r2) && x["position_id"] == json!(p2))
        })
        .map(id_of)
        .unwrap_or_else(|| panic!("r2 proposed to p2: {round}"));
    let (s, declined) = t
        .post(
            &format!("/matches/{m}/decline"),
            &a.token,
            json!({"reason": "Yolanda's visa lapsed"}),
        )
        .await;
    assert_eq!(
        (s, declined["answer_reason"].as_str()),
        (StatusCode::OK, Some("Yolanda's visa lapsed")),
        "the team still sees its own reason: {declined}"
    );
    let (s, erased) = t
        .post(
            &format!("/researchers/{r}/erase"),
            &t.officer,
            json!({"reason": "Quintavius asked on 3 March"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{erased}");
    // Wait for the export of the last operation (the trail's own commit trigger).
    eventually(Duration::from_secs(30), || async {
        (t.count("SELECT count(*) FROM kaip_outbox WHERE event_type = 'AuditRecorded'") >= 10)
            .then_some(())
    })
    .await
    .expect("the trail was exported");
    let texts = trail_texts(&t);
    assert!(texts.len() > 10, "{} rows", texts.len());
    // Names, contacts, the researcher's skills, the erasure's and the end's reasons, the
    // salary, the allowance and their sum (the eligible monthly cost).
    for needle in [
        "Zebulon",
        "Quintavius",
        "zq-contact",
        "wombatskill",
        "family moved",
        "asked on 3 March",
        "visa lapsed",
        "12345677",
        "1234567",
        "13580244",
    ] {
        let hits: Vec<&String> = texts.iter().filter(|x| x.contains(needle)).collect();
        assert!(
            hits.is_empty(),
            "`{needle}` in the trail or the outbox: {hits:?}"
        );
    }
    // The position's own skill is not personal data: the check above can find what is there.
    assert!(texts.iter().any(|x| x.contains("quokkaskill-rust")));
    // The trail still says who changed which researcher and hire, when, by id.
    let rows = |table: &str, id: Uuid| {
        t.count(&format!(
            "SELECT count(*) FROM audit_changes WHERE table_name = '{table}' AND '{id}' = ANY(entity_ids)"
        ))
    };
    assert!(rows("talent_researchers", r) >= 2, "registered and erased");
    assert_eq!(rows("talent_hire_ends", h), 1);
    assert!(rows("talent_claims", h) >= 1);
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM audit_changes WHERE table_name = 'talent_match_answers' AND '{m}' = ANY(entity_ids) \
             AND after->>'reason' = '[personal data]' AND after->>'answered_by' IS NOT NULL"
        )),
        1,
        "the decline is in the trail, its reason marked"
    );
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM kaip_outbox WHERE event_type = 'TalentMatchDeclined' \
             AND payload->'data'->>'match_id' = '{m}' AND payload->'data'->>'reason' = ''"
        )),
        1,
        "the event carries no reason"
    );
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM audit_changes WHERE table_name = 'talent_researchers' AND '{r}' = ANY(entity_ids) \
             AND action = 'insert' AND after->>'skills' = '[personal data]' AND after->>'field' = '[personal data]' \
             AND after->>'id' = '{r}'"
        )),
        1,
        "the profile's columns are marked, the id kept"
    );
    // The books' amounts stay: the government's share is the programme's money.
    let paid = c["paid_krw"].as_i64().expect("paid");
    assert!(texts.iter().any(|x| x.contains(&paid.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hires_end_by_the_team_an_officer_their_end_date_or_elimination_and_free_the_researcher() {
    use kaip_contracts::events::TeamEliminated;
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[
            (OrgType::Sme, vec![]),
            (OrgType::Sme, vec![]),
            (OrgType::Sme, vec![]),
        ],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b, e) = (&teams[0], &teams[1], &teams[2]);
    let pa = t.position(a, "nlp", &[], "mid", 3).await;
    let pb = t.position(b, "nlp", &[], "mid", 3).await;
    let pe = t.position(e, "nlp", &[], "mid", 1).await;
    let agency = researcher_token(&ctx);
    let r1 = t
        .researcher(&agency, "End One", "nlp", &[], "mid", &[pa, pb])
        .await;
    let (s, h1) = t
        .hire(a, r1, pa, "2025-01-01", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h1}");
    let h1 = id_of(&h1);
    let (s, c) = t.claim(a, h1, "2025-03").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let end = |on: &str| json!({"ended_on": on, "reason": "contract ended early by agreement"});
    // Refusals, each changing nothing: another team's hire, a day already claimed, after
    // the agreed end, before the start, no reason.
    let before = t.footprint();
    let (s, body) = t
        .post(&format!("/hires/{h1}/end"), &b.token, end("2025-04-30"))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("HIRE_NOT_FOUND")),
        "{body}"
    );
    for (on, what) in [
        ("2025-03-20", "already claimed"),
        ("2025-12-31", "agreed end_date"),
        ("2024-12-31", "start_date"),
    ] {
        let (s, body) = t.post(&format!("/hires/{h1}/end"), &a.token, end(on)).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
            "{on}: {body}"
        );
        let msg = body["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("ended_on") && msg.contains(what),
            "{on}: {body}"
        );
    }
    let (s, body) = t
        .post(
            &format!("/hires/{h1}/end"),
            &a.token,
            json!({"ended_on": "2025-04-30", "reason": " "}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(t.footprint(), before, "refused ends write nothing");
    // The team ends it on 30 April.
    let (s, ended) = t
        .post(&format!("/hires/{h1}/end"), &a.token, end("2025-04-30"))
        .await;
    assert_eq!(s, StatusCode::OK, "{ended}");
    assert_eq!(
        (
            ended["ended_on"].as_str(),
            ended["end_cause"].as_str(),
            ended["active"].as_bool(),
            ended["end_date"].as_str()
        ),
        (
            Some("2025-04-30"),
            Some("team"),
            Some(false),
            Some("2025-12-31")
        ),
        "the agreed end date is kept, the end is a record of its own: {ended}"
    );
    assert_eq!(
        t.count(&format!("SELECT count(*) FROM kaip_outbox WHERE event_type = 'TalentHireEnded' AND payload->'data'->>'hire_id' = '{h1}' AND payload->'data'->>'cause' = 'team'")),
        1
    );
    let (s, body) = t
        .post(&format!("/hires/{h1}/end"), &t.officer, end("2025-04-15"))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("HIRE_ALREADY_ENDED")),
        "{body}"
    );
    // April is still funded, May is outside the hire now.
    let (s, c) = t.claim(a, h1, "2025-04").await;
    assert_eq!(
        (s, c["days_covered"].as_i64()),
        (StatusCode::CREATED, Some(30)),
        "{c}"
    );
    let (s, body) = t.claim(a, h1, "2025-05").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("MONTH_OUTSIDE_HIRE")),
        "{body}"
    );
    // The researcher is free for a hire after the last day, not before it.
    let (s, body) = t
        .hire(b, r1, pb, "2025-04-30", "2025-09-30", 10_000_000, 0)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("RESEARCHER_ALREADY_HIRED")),
        "{body}"
    );
    let (s, h2) = t
        .hire(b, r1, pb, "2025-05-01", "2025-09-30", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h2}");
    // An officer ends B's hire.
    let (s, ended) = t
        .post(
            &format!("/hires/{}/end", id_of(&h2)),
            &t.officer,
            end("2025-06-30"),
        )
        .await;
    assert_eq!(
        (s, ended["end_cause"].as_str()),
        (StatusCode::OK, Some("officer")),
        "{ended}"
    );
    // A hire past its end date holds no one: hired to 30 June 2025 (past today), the
    // researcher is free from 1 July without anyone ending it.
    let r2 = t
        .researcher(&agency, "End Two", "nlp", &[], "mid", &[pa, pb])
        .await;
    let (s, h) = t
        .hire(a, r2, pa, "2025-01-01", "2025-06-30", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    assert_eq!(h["active"], false, "past its end date: {h}");
    let (s, h) = t
        .hire(b, r2, pb, "2025-07-01", "2027-06-30", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    assert_eq!(h["active"], true, "{h}");
    // Elimination: E's hire running to 2027 ends on the last day of the elimination's
    // month (KST), and its researcher is free after it.
    let r3 = t
        .researcher(&agency, "End Three", "nlp", &[], "mid", &[pe, pa])
        .await;
    let (s, he) = t
        .hire(e, r3, pe, "2025-01-01", "2027-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{he}");
    let he = id_of(&he);
    let elim = TeamEliminated {
        gate_id: Uuid::now_v7(),
        gate: "gate-1".into(),
        consortium_id: e.id,
        reason: "rank".into(),
        reallocation: vec![],
        decided_at: at("2025-05-10T03:00:00Z"),
    };
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &elim,
    )
    .await;
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &elim,
    )
    .await;
    let (_, ended) = eventually(Duration::from_secs(60), || async {
        let (s, h) = t.get(&format!("/hires/{he}"), &t.officer).await;
        h["ended_on"].is_string().then_some((s, h))
    })
    .await
    .expect("the elimination ended the hire");
    assert_eq!(
        (
            ended["ended_on"].as_str(),
            ended["end_cause"].as_str(),
            ended["active"].as_bool()
        ),
        (Some("2025-05-31"), Some("elimination"), Some(false)),
        "{ended}"
    );
    assert_eq!(
        t.count(&format!("SELECT count(*) FROM kaip_outbox WHERE event_type = 'TalentHireEnded' AND payload->'data'->>'hire_id' = '{he}' AND payload->'data'->>'cause' = 'elimination'")),
        1,
        "ended once, however often the elimination is told"
    );
    let (s, h) = t
        .hire(a, r3, pa, "2025-06-01", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_round_never_reproposes_a_declined_pair_and_unanswered_proposals_expire() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![]), (OrgType::Sme, vec![])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b) = (&teams[0], &teams[1]);
    let p1 = t.position(a, "nlp", &["rust"], "mid", 1).await;
    let p2 = t.position(a, "vision", &["cuda"], "mid", 1).await;
    let p3 = t.position(b, "nlp", &["rust"], "mid", 1).await;
    let agency = researcher_token(&ctx);
    let r1 = t
        .researcher(&agency, "Round One", "nlp", &["rust"], "mid", &[p1, p3])
        .await;
    let r2 = t
        .researcher(&agency, "Round Two", "vision", &["cuda"], "mid", &[p2])
        .await;
    let proposal = |round: &Value, r: Uuid| -> Option<(Uuid, Uuid)> {
        round["proposals"]
            .as_array()?
            .iter()
            .find(|m| m["researcher_id"] == json!(r))
            .map(|m| {
                (
                    id_of(m),
                    m["position_id"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .expect("position"),
                )
            })
    };
    let (s, round1) = t
        .post("/rounds", &t.officer, json!({"note": "first"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round1}");
    let (m1, at1) = proposal(&round1, r1).expect("r1 proposed");
    let (m2, at2) = proposal(&round1, r2).expect("r2 proposed");
    assert_eq!((at1, at2), (p1, p2));
    let (s, body) = t
        .post(
            &format!("/matches/{m1}/decline"),
            &a.token,
            json!({"reason": "another profile"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Round 2: r1 goes to its next choice, never back to p1; r2 is proposed p2 afresh.
    let (s, round2) = t
        .post("/rounds", &t.officer, json!({"note": "second"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round2}");
    assert_eq!(proposal(&round2, r1).map(|x| x.1), Some(p3), "{round2}");
    let (m2b, at2b) = proposal(&round2, r2).expect("r2 proposed again");
    assert_eq!(at2b, p2);
    assert_ne!(m2b, m2);
    let (_, all) = t.get("/matches", &t.officer).await;
    let status = |id: Uuid| {
        all.as_array()
            .and_then(|a| a.iter().find(|m| m["id"] == json!(id)))
            .map(|m| m["status"].clone())
    };
    assert_eq!(status(m1), Some(json!("declined")));
    assert_eq!(status(m2), Some(json!("expired")));
    assert_eq!(status(m2b), Some(json!("proposed")));
    // The expired proposal can be neither accepted nor declined; nothing changes.
    let before = t.footprint();
    let terms = json!({"start_date": "2025-01-01", "end_date": "2025-12-31",
                       "personal": {"monthly_salary_krw": 10_000_000, "monthly_living_allowance_krw": 0}});
    let (s, body) = t
        .post(&format!("/matches/{m2}/accept"), &a.token, terms.clone())
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("MATCH_EXPIRED")),
        "{body}"
    );
    let (s, body) = t
        .post(
            &format!("/matches/{m2}/decline"),
            &a.token,
            json!({"reason": "late"}),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("MATCH_EXPIRED")),
        "{body}"
    );
    assert_eq!(t.footprint(), before);
    let (s, body) = t
        .post(&format!("/matches/{m2b}/accept"), &a.token, terms)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_selected_mid_year_gets_the_cap_pro_rated_by_days() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    // Selected at 00:00 KST on 16 July 2025: 169 of 2025's 365 days in the programme.
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![])],
        at("2025-07-15T15:00:00Z"),
        2_000_000_000,
    )
    .await;
    let a = &teams[0];
    // 2,000,000,000 x 169 / 365 = 926,027,397.26... -> KRW 926,027,397 (rounded down once).
    let (_, rep) = t
        .get(&format!("/teams/{}/report/2025", a.id), &a.token)
        .await;
    assert_eq!(rep["cap_krw"], 926_027_397i64, "{rep}");
    let (_, rep26) = t
        .get(&format!("/teams/{}/report/2026", a.id), &a.token)
        .await;
    assert_eq!(rep26["cap_krw"], 2_000_000_000i64, "a full year: {rep26}");
    let p = t
        .position_band(a, "nlp", &[], "lead", 1, 0, 3_000_000_000)
        .await;
    let r = t
        .researcher(&a.token, "Cap Case", "nlp", &[], "lead", &[p])
        .await;
    let (s, h) = t
        .hire(a, r, p, "2025-08-01", "2025-12-31", 1_900_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let h = id_of(&h);
    // August: 1,900,000,000 x 50 % = 950,000,000 claimed, paid up to the pro-rated cap.
    let (s, c) = t.claim(a, h, "2025-08").await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(
        (c["claimed_krw"].as_i64(), c["paid_krw"].as_i64()),
        (Some(950_000_000), Some(926_027_397)),
        "{c}"
    );
    assert!(
        c["cap_reason"].as_str().unwrap_or("").contains("926027397"),
        "{c}"
    );
    let (_, rep) = t
        .get(&format!("/teams/{}/report/2025", a.id), &a.token)
        .await;
    assert_eq!(
        (rep["paid_krw"].as_i64(), rep["remaining_krw"].as_i64()),
        (Some(926_027_397), Some(0)),
        "{rep}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_total_beyond_i64_is_a_coded_refusal_at_the_edge() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let a = &teams[0];
    let p = t.position_band(a, "nlp", &[], "mid", 1, 0, i64::MAX).await;
    let r = t
        .researcher(&a.token, "Edge Case", "nlp", &[], "mid", &[p])
        .await;
    // Salary and allowance at the edge: together exactly i64::MAX a month.
    let (s, h) = t
        .hire(a, r, p, "2025-01-01", "2025-12-31", i64::MAX - 1, 1)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let h = id_of(&h);
    // A full month at 50 %: floor(i64::MAX / 2) = 4,611,686,018,427,387,903 claimed.
    let half = i64::MAX / 2;
    for m in ["2025-01", "2025-02"] {
        let (s, c) = t.claim(a, h, m).await;
        assert_eq!(
            (s, c["claimed_krw"].as_i64()),
            (StatusCode::CREATED, Some(half)),
            "{m}: {c}"
        );
    }
    // The year's claimed total is now i64::MAX - 1; a third month would pass i64::MAX.
    assert_eq!(
        t.count(&format!(
            "SELECT claimed_krw FROM talent_team_years WHERE consortium_id = '{}'",
            a.id
        )),
        i64::MAX - 1
    );
    let before = t.footprint();
    let (s, body) = t.claim(a, h, "2025-03").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("CLAIM_TOTAL_OUT_OF_RANGE")
        ),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").starts_with("month:"),
        "{body}"
    );
    assert_eq!(t.footprint(), before, "nothing claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researchers_preferences_show_a_team_only_its_own_positions() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[
            (OrgType::Sme, vec![]),
            (OrgType::Sme, vec![]),
            (OrgType::Sme, vec![]),
        ],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let (a, b, c) = (&teams[0], &teams[1], &teams[2]);
    let pa = t.position(a, "nlp", &[], "mid", 1).await;
    let pb = t.position(b, "nlp", &[], "mid", 1).await;
    let r = t
        .researcher(
            &researcher_token(&ctx),
            "Pref Case",
            "nlp",
            &[],
            "mid",
            &[pb, pa],
        )
        .await;
    let (_, seen_a) = t.get(&format!("/researchers/{r}"), &a.token).await;
    assert_eq!(seen_a["preferences"], json!([pa]), "{seen_a}");
    let (_, list_b) = t.get("/researchers", &b.token).await;
    assert_eq!(list_b[0]["preferences"], json!([pb]), "{list_b}");
    let (_, staff) = t.get(&format!("/researchers/{r}"), &t.officer).await;
    assert_eq!(
        staff["preferences"],
        json!([pb, pa]),
        "officers see the order"
    );
    // A third consortium, which the researcher did not apply to, sees nothing of them.
    let (s, body) = t.get(&format!("/researchers/{r}"), &c.token).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RESEARCHER_NOT_FOUND")),
        "{body}"
    );
    let (_, list_c) = t.get("/researchers", &c.token).await;
    assert_eq!(list_c, json!([]));
    // B's hire: its pay is B's and the officers' only.
    let (s, h) = t
        .hire(b, r, pb, "2025-01-01", "2025-12-31", 11_111_111, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let h = id_of(&h);
    for other in [a, c] {
        let (s, body) = t.get(&format!("/hires/{h}"), &other.token).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("HIRE_NOT_FOUND")),
            "{body}"
        );
        let (_, hires) = t.get("/hires", &other.token).await;
        assert_eq!(hires, json!([]));
    }
    let (_, seen) = t.get(&format!("/hires/{h}"), &t.officer).await;
    assert_eq!(seen["personal"]["monthly_salary_krw"], 11_111_111);
}

/// Issue #10: a place and a researcher are held over a hire's real period (start to the
/// earlier of its end date and the day it was ended on) and until that day has passed; a
/// new hire is refused when the position's hires overlapping its dates reach the count,
/// whenever those dates are (a backdated hire included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_is_held_over_the_real_period_of_its_hires_and_never_filled_twice() {
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let a = &teams[0];
    let p = t.position(a, "nlp", &[], "mid", 1).await;
    let other = t.position(a, "nlp", &[], "mid", 3).await;
    let agency = researcher_token(&ctx);
    let r1 = t
        .researcher(&agency, "Held One", "nlp", &[], "mid", &[p, other])
        .await;
    let r2 = t
        .researcher(&agency, "Held Two", "nlp", &[], "mid", &[p, other])
        .await;
    // r1 holds p from 2025 to the end of 2099; the team ends it on a day still to come.
    let (s, h1) = t
        .hire(a, r1, p, "2025-01-01", "2099-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h1}");
    let h1 = id_of(&h1);
    let (s, ended) = t
        .post(
            &format!("/hires/{h1}/end"),
            &a.token,
            json!({"ended_on": "2099-06-30", "reason": "leaving for a chair abroad"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ended}");
    assert_eq!(
        (ended["ended_on"].as_str(), ended["active"].as_bool()),
        (Some("2099-06-30"), Some(true)),
        "ended on a day to come, the hire still holds its place and researcher: {ended}"
    );
    let (s, pos) = t.get(&format!("/positions/{p}"), &a.token).await;
    assert_eq!(
        (s, pos["filled"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{pos}"
    );
    // The place is taken: another researcher's hire overlapping r1's real period is
    // refused, with its code, and writes nothing.
    let before = t.footprint();
    let (s, body) = t
        .hire(a, r2, p, "2099-01-01", "2099-12-31", 10_000_000, 0)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("POSITION_FILLED")),
        "{body}"
    );
    // A backdated hire sees the place filled on its past days too.
    let (s, body) = t
        .hire(a, r2, p, "2025-03-01", "2025-08-31", 10_000_000, 0)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("POSITION_FILLED")),
        "{body}"
    );
    // r1 is held until the real end has passed, even for a hire starting after it.
    let (s, body) = t
        .hire(a, r1, other, "2099-07-01", "2099-12-31", 10_000_000, 0)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("RESEARCHER_ALREADY_HIRED")),
        "{body}"
    );
    assert_eq!(t.footprint(), before, "refused hires write nothing");
    // A round proposes neither the held place nor the held researcher.
    let (s, round) = t
        .post("/rounds", &t.officer, json!({"note": "held places"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{round}");
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM talent_matches WHERE position_id = '{p}' OR researcher_id = '{r1}'"
        )),
        0,
        "{round}"
    );
    // After the real period, the place is free: a hire from 1 July 2099 is taken.
    let (s, h) = t
        .hire(a, r2, p, "2099-07-01", "2099-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let (_, pos) = t.get(&format!("/positions/{p}"), &a.token).await;
    assert_eq!(
        pos["filled"].as_i64(),
        Some(1),
        "one place, held by r1 then r2, is filled once: {pos}"
    );

    // Backdated: a past hire holds its past days, a later one sharing them is refused.
    let q = t.position(a, "nlp", &[], "mid", 1).await;
    let r3 = t
        .researcher(&agency, "Held Three", "nlp", &[], "mid", &[q])
        .await;
    let r4 = t
        .researcher(&agency, "Held Four", "nlp", &[], "mid", &[q])
        .await;
    let (s, h) = t
        .hire(a, r3, q, "2025-01-01", "2025-06-30", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    let (s, body) = t
        .hire(a, r4, q, "2025-06-30", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("POSITION_FILLED")),
        "30 June 2025 is r3's: {body}"
    );
    let (s, h) = t
        .hire(a, r4, q, "2025-07-01", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM talent_hires WHERE position_id = '{q}'"
        )),
        2
    );
    // The year's report counts the real periods of 2025, not today's state: p held by r1,
    // q by r3 then r4 (one place), `other` empty; three hires ran in 2025.
    let (s, rep) = t
        .get(&format!("/teams/{}/report/2025", a.id), &a.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    assert_eq!(
        (
            rep["places_filled"].as_i64(),
            rep["places_open"].as_i64(),
            rep["hires"].as_i64()
        ),
        (Some(2), Some(3), Some(3)),
        "{rep}"
    );
    let (_, rep) = t
        .get(&format!("/teams/{}/report/2099", a.id), &a.token)
        .await;
    assert_eq!(
        (
            rep["places_filled"].as_i64(),
            rep["places_open"].as_i64(),
            rep["hires"].as_i64()
        ),
        (Some(1), Some(4), Some(2)),
        "2099: r1 to 30 June, r2 from 1 July, on p: {rep}"
    );
}

/// Issue #10: a hire recorded after the team's elimination ends with the funding, and a
/// hire ended earlier on a later day than the elimination month's last gets a second end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hire_after_or_ended_beyond_the_elimination_month_stops_with_the_funding() {
    use kaip_contracts::events::TeamEliminated;
    let ctx = TestContext::new();
    let t = Talent::start(&ctx, 1, 3).await;
    let teams = select(
        &ctx,
        &t,
        &[(OrgType::Sme, vec![])],
        at("2024-12-01T00:00:00Z"),
        2_000_000_000,
    )
    .await;
    let e = &teams[0];
    let p = t.position(e, "nlp", &[], "mid", 3).await;
    let agency = researcher_token(&ctx);
    let r1 = t
        .researcher(&agency, "Stop One", "nlp", &[], "mid", &[p])
        .await;
    let r2 = t
        .researcher(&agency, "Stop Two", "nlp", &[], "mid", &[p])
        .await;
    // r1's hire, ended by the team on 31 August 2025, before anyone knew of the
    // elimination of 10 May 2025.
    let (s, h1) = t
        .hire(e, r1, p, "2025-01-01", "2027-12-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h1}");
    let h1 = id_of(&h1);
    let (s, ended) = t
        .post(
            &format!("/hires/{h1}/end"),
            &e.token,
            json!({"ended_on": "2025-08-31", "reason": "moving on"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ended}");
    let elim = TeamEliminated {
        gate_id: Uuid::now_v7(),
        gate: "gate-1".into(),
        consortium_id: e.id,
        reason: "rank".into(),
        reallocation: vec![],
        decided_at: at("2025-05-10T03:00:00Z"),
    };
    publish(
        &ctx,
        "milestones",
        kaip_contracts::topics::MILESTONES,
        &elim,
    )
    .await;
    let ended = eventually(Duration::from_secs(60), || async {
        let (_, h) = t.get(&format!("/hires/{h1}"), &t.officer).await;
        (h["end_cause"] == "elimination").then_some(h)
    })
    .await
    .expect("the elimination ended the hire at the month's end");
    assert_eq!(ended["ended_on"].as_str(), Some("2025-05-31"), "{ended}");
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM talent_hire_ends WHERE hire_id = '{h1}'"
        )),
        2,
        "the team's end is kept, the elimination's is a record of its own"
    );
    // A hire recorded now may start in the elimination month, not run past it.
    let before = t.footprint();
    let (s, body) = t
        .hire(e, r2, p, "2025-05-01", "2025-12-31", 10_000_000, 0)
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED")),
        "{body}"
    );
    let msg = body["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("end_date") && msg.contains("2025-05-31"),
        "{body}"
    );
    assert_eq!(t.footprint(), before, "the refusal writes nothing");
    let (s, h) = t
        .hire(e, r2, p, "2025-05-01", "2025-05-31", 10_000_000, 0)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{h}");
}
