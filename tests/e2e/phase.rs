//! A whole phase through the gateway, all six services over the real broker: the seeded
//! call selects five teams (scoring's `SelectionPublished`), the ledger's offers are
//! accepted, the teams buy data jointly and one hires two researchers (the seed's steps,
//! shared with `make seed`); then, in GraphQL only, each team's plan, its evidence and the
//! officers' verdicts (approve, revision, reject; an overdue flag), gate 1 with the first
//! template, inputs (one from the teams' approved benchmark evidence), eligibility verdicts
//! that change the outcome (the best team is ruled ineligible: 5 -> 3 with one planned
//! elimination), the committee's majority, publication with a reallocation plan, and the
//! reactions: the ledger closes the eliminated teams' grants and grants their capacity to
//! survivors in one chain, releases the survivors' gate tranches, and keeps its invariants;
//! the data budget refuses the eliminated teams' new commitments; talent ends their hires
//! and funding with the month; no cap is exceeded anywhere. Bad input through GraphQL gets
//! the service's code and changes nothing; a consortium token reads nothing of another team.
//!
//! The ledger's invariant report has no GraphQL field (it is an operator's check), so it is
//! read from the ledger's `GET /invariants` with an officer's token.

use chrono::{Datelike, Utc};
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::seed::{self, Gateway, GqlError, Options};
use kaip_e2e::{eventually, row_counts, Platform, MILESTONES_TABLES};
use kaip_testkit::TestService;
use serde_json::{json, Value};
use std::time::Duration;

const GATE: &str = "gate-1";
const RULE: &str = "built-from-scratch";
const COMMITTEE: [&str; 3] = ["officer-a", "officer-b", "officer-c"];

const DELIVERABLE_FIELDS: &str = "id consortiumId phase title status overdue dueDate currentDueDate evidence { id version kind contentSha256 benchmark { name value } document { name sizeBytes } } verdicts { verdict evidenceVersion reason comments newDueDate decidedBy }";
const CREATE_PLAN: &str = "mutation($c: UUID!, $items: [PlanDeliverableInput!]!) { createPlan(consortiumId: $c, phase: 1, deliverables: $items) { id title status } }";
const EVIDENCE: &str = "mutation($d: UUID!, $i: SubmitEvidenceInput!) { submitEvidence(deliverableId: $d, input: $i) { id version contentSha256 } }";
const VERDICT: &str = "mutation($d: UUID!, $i: RecordVerdictInput!) { recordVerdict(deliverableId: $d, input: $i) { id status currentDueDate verdicts { verdict evidenceVersion reason } } }";
const CREATE_GATE: &str = "mutation($i: CreateGateInput!) { createGate(input: $i) { key plannedEliminations committee components { key weight } } }";
const INPUT: &str = "mutation($g: String!, $i: GateInputInput!) { recordGateInput(gate: $g, input: $i) { inputId value source sourceRef } }";
const ELIGIBILITY: &str =
    "mutation($g: String!, $i: GateEligibilityInput!) { recordGateEligibility(gate: $g, input: $i) }";
const PROPOSE: &str = "mutation($g: String!) { proposeGateOutcome(gate: $g) { id current teams { consortiumId score eligible rank outcome reason } inputs { inputId } eligibility } }";
const VOTE: &str = "mutation($p: UUID!, $a: Boolean!, $r: String!) { voteOnGateProposal(proposalId: $p, approve: $a, reason: $r) { approvals committeeSize votes { member approve } } }";
const PUBLISH: &str = "mutation($g: String!, $i: PublishGateInput!) { publishGate(gate: $g, input: $i) { gate proposalId passed approvals committeeSize eliminated { consortiumId reason reallocation { consortiumId model period count } } nextTargets { benchmark target } } }";
const RESULT: &str = "query($g: String!, $c: UUID!) { gateResult(gate: $g, consortiumId: $c) { gate result { consortiumId score eligible rank outcome reason } nextTargets { benchmark } } }";
const OFFERS: &str = "query($c: UUID) { gpuOffers(consortiumId: $c) { id consortiumId status tranches { period count status releaseGate } } }";
const GRANTS: &str = "query($c: UUID) { gpuAccounts(kind: GRANT, consortiumId: $c, first: 100) { items { model period balance { creditsPosted debitsPosted } } } }";
const COMMIT: &str =
    "mutation($i: CommitDataBudgetInput!) { commitDataBudget(input: $i) { id amountKrw } }";
const BUDGETS: &str = "query($y: Int) { dataBudgets(fiscalYear: $y) { consortiumId eliminatedAtGate total { limitKrw committedKrw availableKrw } categories { category figures { limitKrw committedKrw availableKrw } } } }";

fn int(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an Int64 or Krw string: {v}"))
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

struct Phase<'a> {
    p: &'a Platform,
    gw: Gateway,
    officer: String,
}

impl Phase<'_> {
    fn milestones(&self) -> &TestService {
        &self.p.others[3]
    }

    fn ledger(&self) -> &TestService {
        &self.p.others[0]
    }

    fn team(&self, c: ConsortiumId) -> String {
        self.gw.token("team-lead", Role::Consortium, Some(c))
    }

    fn member(&self, name: &str) -> String {
        self.gw.token(name, Role::Officer, None)
    }

    async fn ok(&self, token: &str, query: &str, vars: Value) -> Value {
        self.gw
            .gql(token, query, vars)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    async fn err(&self, token: &str, query: &str, vars: Value) -> GqlError {
        match self.gw.try_gql(token, query, vars).await.expect("answers") {
            Ok(d) => panic!("expected a refusal, got {d}"),
            Err(e) => e,
        }
    }

    /// Refused through GraphQL with `code` (the service's, passed through), and nothing
    /// written in milestones (its tables, outbox and audit trail).
    async fn refused(&self, token: &str, query: &str, vars: Value, code: &str) -> GqlError {
        let before = row_counts(self.milestones(), &MILESTONES_TABLES);
        let e = self.err(token, query, vars).await;
        assert_eq!(e.code.as_deref(), Some(code), "{e}");
        assert_eq!(
            row_counts(self.milestones(), &MILESTONES_TABLES),
            before,
            "{code} changed something"
        );
        e
    }

    async fn plan(&self, c: ConsortiumId) -> Vec<Value> {
        self.ok(
            &self.officer,
            &format!("query($c: UUID) {{ deliverables(consortiumId: $c, phase: 1) {{ items {{ {DELIVERABLE_FIELDS} }} }} }}"),
            json!({ "c": c }),
        )
        .await["deliverables"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A team's GPU grants, net posted over all its grant accounts.
    async fn granted(&self, c: ConsortiumId) -> i64 {
        let d = self.ok(&self.officer, GRANTS, json!({ "c": c })).await;
        d["gpuAccounts"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| int(&a["balance"]["creditsPosted"]) - int(&a["balance"]["debitsPosted"]))
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_phase_from_selection_through_gate_1_to_the_reallocation_over_the_gateway() {
    let p = Platform::start().await;
    let gw = Gateway::new(&p.gateway_url, kaip_auth::dev::SECRET).expect("dev key");
    let opts = Options {
        call_window: Duration::from_secs(3600),
        timeout: Duration::from_secs(90),
    };

    // The selection and the grants: the seed's steps, each checked by its own e2e test.
    let prog = seed::programme(&gw, &opts).await.expect("programme");
    kaip_e2e::pass_deadline(&p, &prog.call).await;
    let stages = seed::review(&gw, &opts, &prog).await.expect("review");
    let sel = seed::select(&gw, &prog, &stages).await.expect("selection");
    assert_eq!(sel.teams.len(), 5, "five teams selected");
    let offers = seed::gpu(&gw, &opts, &sel).await.expect("GPU offers");
    let purchase = seed::data(&gw, &opts, &sel).await.expect("data");
    let hires = seed::talent(&gw, &opts, &sel).await.expect("talent");
    assert_eq!(hires.hires.len(), 2);

    let ph = Phase {
        p: &p,
        officer: gw.token("phase-officer", Role::Officer, None),
        gw,
    };
    // Teams by the part they play: the one that hired ends up best on the scores and
    // ineligible; the last one lowest.
    let hired = hires.team.consortium;
    let mut t: Vec<ConsortiumId> = vec![hired];
    t.extend(
        sel.teams
            .iter()
            .map(|x| x.consortium)
            .filter(|c| *c != hired),
    );
    let ask = |c: ConsortiumId| {
        offers
            .iter()
            .find(|o| o.team.consortium == c)
            .map(|o| o.requested_h100)
            .expect("an offer per team")
    };

    // Milestones learned the five teams from the same event.
    eventually(Duration::from_secs(60), || async {
        let d = ph
            .ok(
                &ph.officer,
                "{ milestoneTeams { consortiumId } }",
                json!({}),
            )
            .await;
        let known = d["milestoneTeams"].as_array()?.len();
        (known == 5).then_some(())
    })
    .await
    .expect("milestones learned the selection");

    // ---- Plans: two deliverables per team in one call, all or none. The due dates are
    // next year's (KST), so none of them is ever past when the test runs; only the data
    // card below is deliberately late.
    let next_year = seed::kst_year(Utc::now()) + 1;
    let items = json!([
        {"title": "Pre-training report", "description": "the first 1T-token run",
         "acceptanceCriteria": "loss curve, data card and evaluation", "dueDate": format!("{next_year}-03-31")},
        {"title": "Team-chosen benchmark", "acceptanceCriteria": "a reproducible result",
         "dueDate": format!("{next_year}-05-31")},
    ]);
    let with_ids = || {
        let mut v = items.clone();
        for item in v.as_array_mut().expect("items") {
            item["id"] = json!(uuid::Uuid::now_v7());
        }
        v
    };
    let mut bad = with_ids();
    bad[1]["title"] = json!("  ");
    let e = ph
        .refused(
            &ph.officer,
            CREATE_PLAN,
            json!({ "c": t[0], "items": bad }),
            "VALIDATION_FAILED",
        )
        .await;
    assert!(
        e.errors.to_string().contains("deliverables[1].title"),
        "the bad item is named: {e}"
    );
    // Each deliverable carries the client's id: a retry of the same call (after a gateway
    // timeout, say) returns the same deliverables and writes nothing; the same id with
    // other fields is refused, and writes nothing either.
    for c in &t {
        let mine = with_ids();
        let d = ph
            .ok(&ph.officer, CREATE_PLAN, json!({ "c": c, "items": mine }))
            .await;
        assert_eq!(d["createPlan"].as_array().map(Vec::len), Some(2), "{d}");
        assert_eq!(d["createPlan"][0]["id"], mine[0]["id"], "{d}");
        if *c == t[0] {
            let before = row_counts(ph.milestones(), &MILESTONES_TABLES);
            let again = ph
                .ok(&ph.officer, CREATE_PLAN, json!({ "c": c, "items": mine }))
                .await;
            assert_eq!(again, d, "a retry answers the same deliverables");
            let mut changed = mine.clone();
            changed[1]["dueDate"] = json!(format!("{next_year}-06-30"));
            ph.refused(
                &ph.officer,
                CREATE_PLAN,
                json!({ "c": c, "items": changed }),
                "DELIVERABLE_ID_CONFLICT",
            )
            .await;
            // The same ids for another team: not its deliverables.
            ph.refused(
                &ph.officer,
                CREATE_PLAN,
                json!({ "c": t[1], "items": mine }),
                "DELIVERABLE_ID_CONFLICT",
            )
            .await;
            assert_eq!(row_counts(ph.milestones(), &MILESTONES_TABLES), before);
        }
    }
    // The lowest team also owed a data card last January: flagged overdue by the sweeper.
    const ADD: &str = "mutation($c: UUID!, $d: PlanDeliverableInput!) { addDeliverable(consortiumId: $c, phase: 1, deliverable: $d) { id overdue } }";
    let card = json!({ "c": t[4], "d": {"id": uuid::Uuid::now_v7(), "title": "Data card",
        "acceptanceCriteria": "sources and licences", "dueDate": "2026-01-31"} });
    let late = ph.ok(&ph.officer, ADD, card.clone()).await;
    let late_id = id(&late["addDeliverable"]);
    let again = ph.ok(&ph.officer, ADD, card).await;
    assert_eq!(
        id(&again["addDeliverable"]),
        late_id,
        "a retry adds nothing"
    );
    let overdue = eventually(Duration::from_secs(30), || async {
        let d = ph
            .ok(
                &ph.team(t[4]),
                "{ deliverables(overdueOnly: true) { items { id overdue } } }",
                json!({}),
            )
            .await;
        let v = d["deliverables"]["items"].as_array()?.clone();
        (!v.is_empty()).then_some(v)
    })
    .await
    .expect("the late deliverable was flagged");
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0]["id"], late_id.as_str());
    // Its three deliverables in pages of two: the cursor leads to the last one, then ends.
    const PAGE: &str =
        "query($a: ID) { deliverables(first: 2, after: $a) { items { id } nextCursor } }";
    let p1 = ph.ok(&ph.team(t[4]), PAGE, json!({ "a": null })).await;
    let p1 = &p1["deliverables"];
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(2), "{p1}");
    assert!(p1["nextCursor"].is_string(), "{p1}");
    let p2 = ph
        .ok(&ph.team(t[4]), PAGE, json!({ "a": p1["nextCursor"] }))
        .await;
    let p2 = &p2["deliverables"];
    assert_eq!(p2["items"].as_array().map(Vec::len), Some(1), "{p2}");
    assert!(p2["nextCursor"].is_null(), "{p2}");
    ph.refused(
        &ph.team(t[4]),
        "{ deliverables(first: 0) { items { id } } }",
        json!({}),
        "VALIDATION_FAILED",
    )
    .await;

    // ---- Evidence: each team its own; a report and a benchmark result.
    let plans: Vec<Vec<Value>> = {
        let mut v = Vec::new();
        for c in &t {
            v.push(ph.plan(*c).await);
        }
        v
    };
    let by_title = |i: usize, title: &str| -> String {
        plans[i]
            .iter()
            .find(|d| d["title"] == title)
            .map(id)
            .unwrap_or_else(|| panic!("team {i} has no {title}"))
    };
    let bench_values = ["90", "80", "70", "60", "50.5"];
    // As the gate keeps them: four decimal places.
    let bench_inputs = ["90.0000", "80.0000", "70.0000", "60.0000", "50.5000"];
    let mut bench_evidence = Vec::new();
    for (i, c) in t.iter().enumerate() {
        let token = ph.team(*c);
        let doc = json!({"kind": "document", "note": "the report",
            "document": {"name": "report.pdf", "sha256": format!("{:064x}", i + 1), "sizeBytes": "1048576"}});
        ph.ok(
            &token,
            EVIDENCE,
            json!({ "d": by_title(i, "Pre-training report"), "i": doc }),
        )
        .await;
        let bench = json!({"kind": "benchmark", "note": "our chosen benchmark",
            "benchmark": {"name": "KoBench-Reasoning", "value": bench_values[i]}});
        let e = ph
            .ok(
                &token,
                EVIDENCE,
                json!({ "d": by_title(i, "Team-chosen benchmark"), "i": bench }),
            )
            .await;
        assert_eq!(e["submitEvidence"]["version"], 1);
        bench_evidence.push(id(&e["submitEvidence"]));
    }
    // Evidence for another team's plan: DELIVERABLE_NOT_FOUND (as for an id that does not
    // exist: nothing revealed), nothing written.
    ph.refused(
        &ph.team(t[1]),
        EVIDENCE,
        json!({ "d": by_title(2, "Pre-training report"), "i": {"kind": "link", "url": "https://example.org/x"} }),
        "DELIVERABLE_NOT_FOUND",
    )
    .await;
    // A consortium reads its own plan only: another team's is refused outright, a known
    // deliverable of another team reads as not found, and its own list holds only its own.
    let e = ph
        .err(
            &ph.team(t[1]),
            "query($c: UUID) { deliverables(consortiumId: $c) { items { id } } }",
            json!({ "c": t[2] }),
        )
        .await;
    assert_eq!(e.code.as_deref(), Some("FORBIDDEN"), "{e}");
    let e = ph
        .err(
            &ph.team(t[1]),
            "query($d: UUID!) { deliverable(id: $d) { id title evidence { id } } }",
            json!({ "d": by_title(2, "Pre-training report") }),
        )
        .await;
    assert_eq!(e.code.as_deref(), Some("DELIVERABLE_NOT_FOUND"), "{e}");
    let own = ph
        .ok(
            &ph.team(t[1]),
            "{ deliverables { items { consortiumId evidence { id } verdicts { verdict } } } }",
            json!({}),
        )
        .await;
    let own = own["deliverables"]["items"].as_array().expect("list");
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|d| d["consortiumId"] == t[1].to_string()));

    // ---- Verdicts. Without a reason: refused, nothing written.
    ph.refused(
        &ph.officer,
        VERDICT,
        json!({ "d": by_title(0, "Pre-training report"), "i": {"verdict": "approved", "reason": " ", "evidenceVersion": 1} }),
        "VERDICT_REASON_REQUIRED",
    )
    .await;
    let report = |i: usize| by_title(i, "Pre-training report");
    let d = ph
        .ok(&ph.officer, VERDICT, json!({ "d": report(0), "i": {"verdict": "approved", "reason": "meets the criteria", "evidenceVersion": 1} }))
        .await;
    assert_eq!(d["recordVerdict"]["status"], "approved");
    let d = ph
        .ok(&ph.officer, VERDICT, json!({ "d": report(1), "i": {"verdict": "revision", "reason": "the data card is missing",
            "comments": "add the data card", "newDueDate": format!("{next_year}-04-30"), "evidenceVersion": 1} }))
        .await;
    assert_eq!(d["recordVerdict"]["status"], "revision");
    assert_eq!(
        d["recordVerdict"]["currentDueDate"],
        format!("{next_year}-04-30")
    );
    let d = ph
        .ok(&ph.officer, VERDICT, json!({ "d": report(2), "i": {"verdict": "rejected", "reason": "not the run the plan names"} }))
        .await;
    assert_eq!(d["recordVerdict"]["status"], "rejected");
    // A rejected deliverable takes no more evidence.
    ph.refused(
        &ph.team(t[2]),
        EVIDENCE,
        json!({ "d": report(2), "i": {"kind": "link", "url": "https://example.org/again"} }),
        "DELIVERABLE_CLOSED",
    )
    .await;
    // Every team's benchmark result approved: the gate takes them as inputs.
    for i in 0..5 {
        ph.ok(
            &ph.officer,
            VERDICT,
            json!({ "d": by_title(i, "Team-chosen benchmark"),
            "i": {"verdict": "approved", "reason": "reproduced", "evidenceVersion": 1} }),
        )
        .await;
    }
    // The team sees its verdicts, each kept.
    let own = ph.plan(t[1]).await;
    let r = own
        .iter()
        .find(|d| d["title"] == "Pre-training report")
        .expect("report");
    assert_eq!(r["verdicts"][0]["verdict"], "revision");
    assert_eq!(r["verdicts"][0]["evidenceVersion"], 1);

    // ---- Gate 1. Weights not summing to 100: refused with the sum, nothing written.
    let template = ph
        .ok(
            &ph.officer,
            "{ firstGateTemplate { key group label weight normalisation max } }",
            json!({}),
        )
        .await["firstGateTemplate"]
        .clone();
    let weights: Vec<i64> = template
        .as_array()
        .expect("template")
        .iter()
        .map(|c| c["weight"].as_i64().expect("weight"))
        .collect();
    assert_eq!(weights, [10, 20, 10, 35, 25]);
    let gate = |components: Option<Value>| {
        let mut g = json!({"key": GATE, "phase": 1, "gateDate": format!("{next_year}-06-30"), "plannedEliminations": 1,
            "eligibilityRules": [RULE], "committee": COMMITTEE, "reason": "the first stage gate as announced"});
        if let Some(c) = components {
            g["components"] = c;
        }
        g
    };
    let mut skewed = template.clone();
    skewed[3]["weight"] = json!(30);
    let e = ph
        .refused(
            &ph.officer,
            CREATE_GATE,
            json!({ "i": gate(Some(skewed)) }),
            "GATE_WEIGHTS",
        )
        .await;
    assert!(e.errors.to_string().contains("sum to 95"), "{e}");
    let g = ph
        .ok(&ph.officer, CREATE_GATE, json!({ "i": gate(None) }))
        .await;
    assert_eq!(
        g["createGate"]["components"].as_array().map(Vec::len),
        Some(5)
    );
    // A team reads the gate's definition but not who sits on its committee or defined it;
    // staff do.
    const GATES: &str = "query($g: String!) { gates { key committee createdBy } gate(key: $g) { key committee createdBy plannedEliminations } }";
    let own = ph.ok(&ph.team(t[1]), GATES, json!({ "g": GATE })).await;
    assert_eq!(own["gate"]["plannedEliminations"], 1, "{own}");
    assert!(
        own["gate"]["committee"].is_null() && own["gate"]["createdBy"].is_null(),
        "{own}"
    );
    let listed = own["gates"].as_array().expect("gates");
    assert!(!listed.is_empty(), "{own}");
    assert!(
        listed
            .iter()
            .all(|g| g["committee"].is_null() && g["createdBy"].is_null()),
        "{own}"
    );
    let staff = ph.ok(&ph.officer, GATES, json!({ "g": GATE })).await;
    assert_eq!(staff["gate"]["committee"], json!(COMMITTEE), "{staff}");
    assert!(staff["gate"]["createdBy"].is_string(), "{staff}");

    // Inputs: national and global entered, the panel's consensus, the users' import, and
    // the team-chosen benchmark from each team's approved evidence.
    let values = [
        ["85", "75", "92", "88"],
        ["80", "70", "90", "85"],
        ["75", "65", "80", "75"],
        ["70", "60", "70", "70"],
        ["60", "50", "60", "60.5"],
    ];
    for (i, c) in t.iter().enumerate() {
        for (k, v) in [
            "benchmark-national",
            "benchmark-global",
            "expert-panel",
            "user-evaluation",
        ]
        .iter()
        .zip(values[i])
        {
            let (source, source_ref) = match *k {
                "expert-panel" => ("expert_panel", "panel-gate-1"),
                "user-evaluation" => ("imported", "user-eval-gate-1.csv"),
                _ => ("entered", ""),
            };
            ph.ok(
                &ph.officer,
                INPUT,
                json!({ "g": GATE, "i": {"consortiumId": c, "component": k, "value": v,
                "source": source, "sourceRef": source_ref, "reason": "gate-1 results"} }),
            )
            .await;
        }
        let d = ph
            .ok(&ph.officer, INPUT, json!({ "g": GATE, "i": {"consortiumId": c, "component": "benchmark-team",
                "evidenceId": bench_evidence[i], "source": "evidence", "reason": "the approved result"} }))
            .await;
        assert_eq!(d["recordGateInput"]["value"], bench_inputs[i]);
        assert_eq!(
            d["recordGateInput"]["sourceRef"],
            bench_evidence[i].as_str()
        );
    }
    // Another team's evidence is not usable as this team's input.
    ph.refused(
        &ph.officer,
        INPUT,
        json!({ "g": GATE, "i": {"consortiumId": t[3], "component": "benchmark-team",
            "evidenceId": bench_evidence[0], "source": "evidence", "reason": "wrong team"} }),
        "EVIDENCE_NOT_USABLE",
    )
    .await;
    let recorded = ph
        .ok(
            &ph.officer,
            "query($g: String!) { gateInputs(gate: $g) { id consortiumId component value source } }",
            json!({ "g": GATE }),
        )
        .await;
    assert_eq!(recorded["gateInputs"].as_array().map(Vec::len), Some(25));

    // Eligibility: every team on the rule; then the best team turns out not to be built
    // from scratch (a new verdict; the first is kept). The outcome changes.
    for c in &t {
        ph.ok(
            &ph.officer,
            ELIGIBILITY,
            json!({ "g": GATE, "i": {"consortiumId": c, "rule": RULE,
            "eligible": true, "grounds": "architecture and training logs reviewed"} }),
        )
        .await;
    }
    let p1 = ph.ok(&ph.officer, PROPOSE, json!({ "g": GATE })).await["proposeGateOutcome"].clone();
    let outcome = |p: &Value, c: ConsortiumId| -> Value {
        p["teams"]
            .as_array()
            .and_then(|ts| ts.iter().find(|r| r["consortiumId"] == c.to_string()))
            .cloned()
            .unwrap_or_else(|| panic!("no {c:?} in {p}"))
    };
    assert_eq!(outcome(&p1, t[0])["rank"], 1, "{p1}");
    let out1: Vec<&Value> = p1["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .filter(|r| r["outcome"] == "eliminated")
        .collect();
    assert_eq!(out1.len(), 1, "all eligible: 5 -> 4: {p1}");
    assert_eq!(out1[0]["consortiumId"], t[4].to_string());

    ph.refused(
        &ph.officer,
        ELIGIBILITY,
        json!({ "g": GATE, "i": {"consortiumId": t[0], "rule": RULE, "eligible": false, "grounds": "  "} }),
        "GROUNDS_REQUIRED",
    )
    .await;
    ph.ok(
        &ph.officer,
        ELIGIBILITY,
        json!({ "g": GATE, "i": {"consortiumId": t[0], "rule": RULE,
        "eligible": false, "grounds": "fine-tuned a foreign base model"} }),
    )
    .await;
    let verdicts = ph
        .ok(
            &ph.officer,
            "query($g: String!) { gateEligibility(gate: $g) { consortiumId eligible grounds decidedBy } }",
            json!({ "g": GATE }),
        )
        .await;
    assert_eq!(
        verdicts["gateEligibility"].as_array().map(Vec::len),
        Some(6)
    );
    let p2 = ph.ok(&ph.officer, PROPOSE, json!({ "g": GATE })).await["proposeGateOutcome"].clone();
    let best = outcome(&p2, t[0]);
    assert_eq!(best["outcome"], "eliminated");
    assert_eq!(best["eligible"], false);
    assert_eq!(best["rank"], Value::Null);
    assert_eq!(
        best["reason"],
        "ineligible: built-from-scratch: fine-tuned a foreign base model"
    );
    let lowest = outcome(&p2, t[4]);
    assert_eq!(lowest["rank"], 4);
    assert!(
        lowest["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("rank: 4 of 4")),
        "{lowest}"
    );
    let survivors = [t[1], t[2], t[3]];
    for c in survivors {
        assert_eq!(outcome(&p2, c)["outcome"], "continues", "{p2}");
    }
    assert_eq!(p2["inputs"].as_array().map(Vec::len), Some(25));
    let p2_id = id(&p2);

    // ---- The committee. An officer not on it: NOT_ON_COMMITTEE. One approval of three:
    // NO_MAJORITY. A team's result is not readable before publication.
    ph.refused(
        &ph.member("officer-z"),
        VOTE,
        json!({ "p": p2_id, "a": true, "r": "looks right" }),
        "NOT_ON_COMMITTEE",
    )
    .await;
    ph.refused(
        &ph.team(t[1]),
        VOTE,
        json!({ "p": p2_id, "a": true, "r": "we agree" }),
        "FORBIDDEN",
    )
    .await;
    ph.ok(
        &ph.member(COMMITTEE[0]),
        VOTE,
        json!({ "p": p2_id, "a": true, "r": "scores verified" }),
    )
    .await;
    let (first_period, _) = seed::next_halves(Utc::now());
    let publish = json!({ "g": GATE, "i": {
        "proposalId": p2_id, "reason": "the committee's majority approved",
        "reallocations": [
            {"consortiumId": t[0], "reallocation": [
                {"consortiumId": t[1], "model": "H100", "period": first_period, "count": ask(t[0]).to_string()}]},
            {"consortiumId": t[4], "reallocation": [
                {"consortiumId": t[2], "model": "H100", "period": first_period, "count": ask(t[4]).to_string()}]},
        ],
        "nextTargets": [{"benchmark": "global-common", "target": ">= 95% of the best recent global models"}],
    } });
    ph.refused(&ph.officer, PUBLISH, publish.clone(), "NO_MAJORITY")
        .await;
    let e = ph
        .err(&ph.team(t[1]), RESULT, json!({ "g": GATE, "c": t[1] }))
        .await;
    assert_eq!(e.code.as_deref(), Some("RESULT_NOT_PUBLISHED"), "{e}");
    ph.ok(
        &ph.member(COMMITTEE[1]),
        VOTE,
        json!({ "p": p2_id, "a": true, "r": "eligibility grounds checked" }),
    )
    .await;
    let v = ph
        .ok(
            &ph.member(COMMITTEE[2]),
            VOTE,
            json!({ "p": p2_id, "a": false, "r": "the panel score is contested" }),
        )
        .await;
    assert_eq!(v["voteOnGateProposal"]["approvals"], 2);
    assert_eq!(
        v["voteOnGateProposal"]["votes"].as_array().map(Vec::len),
        Some(3)
    );
    // Proposals, votes, inputs and eligibility verdicts are staff's; a team sees only
    // itself among the teams.
    for (q, v) in [
        (
            "query($g: String!) { gateProposals(gate: $g) { id } }",
            json!({ "g": GATE }),
        ),
        (
            "query($p: UUID!) { gateProposal(id: $p) { id } }",
            json!({ "p": p2_id }),
        ),
        (
            "query($g: String!) { gateInputs(gate: $g) { consortiumId } }",
            json!({ "g": GATE }),
        ),
        (
            "query($g: String!) { gateEligibility(gate: $g) { consortiumId } }",
            json!({ "g": GATE }),
        ),
    ] {
        let e = ph.err(&ph.team(t[1]), q, v).await;
        assert_eq!(e.code.as_deref(), Some("FORBIDDEN"), "{q}: {e}");
    }
    let mine = ph
        .ok(
            &ph.team(t[1]),
            "{ milestoneTeams { consortiumId } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["milestoneTeams"],
        json!([{ "consortiumId": t[1].to_string() }]),
        "{mine}"
    );

    // ---- Publish: 2 of 3 is a majority. The KST days around it bound the elimination's
    // date, which decides the month the eliminated team's hires end with.
    let published_from = kaip_talent::domain::funds::kst_date(Utc::now());
    let d = ph.ok(&ph.officer, PUBLISH, publish.clone()).await["publishGate"].clone();
    let published_by = kaip_talent::domain::funds::kst_date(Utc::now());
    assert_eq!(d["approvals"], 2);
    assert_eq!(d["committeeSize"], 3);
    let mut passed: Vec<String> = d["passed"]
        .as_array()
        .expect("passed")
        .iter()
        .map(|x| x.as_str().expect("id").to_owned())
        .collect();
    passed.sort();
    let mut expected: Vec<String> = survivors.iter().map(|c| c.to_string()).collect();
    expected.sort();
    assert_eq!(passed, expected, "5 -> 3");
    assert_eq!(d["eliminated"].as_array().map(Vec::len), Some(2));
    // GPU counts are Int64: strings on the wire.
    for e in d["eliminated"].as_array().expect("eliminated") {
        let c: ConsortiumId = serde_json::from_value(e["consortiumId"].clone()).expect("id");
        assert_eq!(
            e["reallocation"][0]["count"],
            json!(ask(c).to_string()),
            "{e}"
        );
    }
    // A client's retry returns the decision and publishes nothing.
    let before = row_counts(ph.milestones(), &MILESTONES_TABLES);
    let again = ph.ok(&ph.officer, PUBLISH, publish).await["publishGate"].clone();
    assert_eq!(again, d);
    assert_eq!(row_counts(ph.milestones(), &MILESTONES_TABLES), before);

    // Each team reads its own result, never another's nor the decision.
    let r = ph
        .ok(&ph.team(t[0]), RESULT, json!({ "g": GATE, "c": t[0] }))
        .await;
    assert_eq!(r["gateResult"]["result"]["consortiumId"], t[0].to_string());
    assert_eq!(r["gateResult"]["result"]["outcome"], "eliminated");
    assert!(r["gateResult"]["result"]["reason"]
        .as_str()
        .is_some_and(|x| x.starts_with("ineligible: ")));
    // The lowest-ranked team's reason, as it reads it, counts no one else (staff's says
    // "rank: 4 of 4 eligible teams": one was ruled ineligible).
    let r = ph
        .ok(&ph.team(t[4]), RESULT, json!({ "g": GATE, "c": t[4] }))
        .await;
    assert_eq!(r["gateResult"]["result"]["consortiumId"], t[4].to_string());
    assert_eq!(r["gateResult"]["result"]["rank"], 4);
    assert_eq!(
        r["gateResult"]["result"]["reason"],
        "rank: below the cut; the gate eliminates its 1 lowest-ranked eligible team(s)"
    );
    let r = ph
        .ok(&ph.team(t[1]), RESULT, json!({ "g": GATE, "c": t[1] }))
        .await;
    assert_eq!(r["gateResult"]["result"]["consortiumId"], t[1].to_string());
    assert_eq!(r["gateResult"]["result"]["outcome"], "continues");
    assert_eq!(
        r["gateResult"]["nextTargets"][0]["benchmark"],
        "global-common"
    );
    let e = ph
        .err(&ph.team(t[1]), RESULT, json!({ "g": GATE, "c": t[0] }))
        .await;
    assert_eq!(e.code.as_deref(), Some("FORBIDDEN"), "{e}");
    let e = ph
        .err(
            &ph.team(t[1]),
            "query($g: String!) { gateDecision(gate: $g) { passed } }",
            json!({ "g": GATE }),
        )
        .await;
    assert_eq!(e.code.as_deref(), Some("FORBIDDEN"), "{e}");

    // ---- The ledger: survivors' gate tranches released; the eliminated teams' closed and
    // their capacity granted to the survivors named in the plan.
    let offers_of = |c: ConsortiumId| {
        let ph = &ph;
        async move {
            ph.ok(&ph.officer, OFFERS, json!({ "c": c })).await["gpuOffers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    eventually(Duration::from_secs(90), || async {
        for c in &t {
            let o = offers_of(*c).await;
            let gated = o.first()?["tranches"]
                .as_array()?
                .iter()
                .find(|x| x["releaseGate"] == GATE)?
                .clone();
            let want = if survivors.contains(c) {
                "released"
            } else {
                "closed"
            };
            if gated["status"] != want {
                return None;
            }
        }
        Some(())
    })
    .await
    .expect("the ledger released the survivors' gate tranches and closed the eliminated teams'");
    let grants = eventually(Duration::from_secs(60), || async {
        let mut g = Vec::new();
        for c in &t {
            g.push(ph.granted(*c).await);
        }
        (g[0] == 0 && g[4] == 0 && g[1] == 2 * ask(t[1]) + ask(t[0])).then_some(g)
    })
    .await
    .expect("the eliminated teams' grants were reallocated");
    assert_eq!(grants[1], 2 * ask(t[1]) + ask(t[0]), "{grants:?}");
    assert_eq!(grants[2], 2 * ask(t[2]) + ask(t[4]), "{grants:?}");
    assert_eq!(grants[3], 2 * ask(t[3]), "{grants:?}");
    // Its invariants: every model-period balances (debits = credits), nothing breaks its
    // limits (no negative balance, no over-grant), balances equal their replay.
    let inv: Value = reqwest::Client::new()
        .get(ph.ledger().url("/invariants"))
        .bearer_auth(&ph.officer)
        .send()
        .await
        .expect("ledger answers")
        .json()
        .await
        .expect("json");
    assert_eq!(inv["ok"], true, "{inv:#}");
    assert_eq!(inv["unbalanced_ledgers"], json!([]), "{inv:#}");
    assert_eq!(inv["accounts_breaking_limits"], json!([]), "{inv:#}");
    let pools = ph
        .ok(
            &ph.officer,
            "{ gpuPools { model period held granted reserved available } }",
            json!({}),
        )
        .await;
    let pools = pools["gpuPools"].as_array().expect("pools");
    assert!(!pools.is_empty(), "the selection's pools are listed");
    for pool in pools {
        assert!(int(&pool["available"]) >= 0, "{pool}");
    }
    // Net positions: what the pools say is granted is what the five teams' grant accounts
    // hold now. The eliminated teams' GPUs, which went back to the pools and out again to
    // the survivors, count once (gross flows counted them twice: granted, then granted
    // again, with the return counted as held).
    let granted: i64 = pools.iter().map(|p| int(&p["granted"])).sum();
    assert_eq!(granted, grants.iter().sum::<i64>(), "{pools:?} {grants:?}");

    // ---- The data budget: an eliminated team commits nothing new (nothing written); a
    // survivor still can; no team is past its cap.
    let year = seed::kst_year(Utc::now());
    let commit = |c: ConsortiumId| {
        json!({ "i": { "id": uuid::Uuid::now_v7(), "consortiumId": c, "fiscalYear": year,
            "category": "BUILDING_PROCESSING", "amountKrw": "100000000", "reason": "annotation work" } })
    };
    let committed = |b: &Value, c: ConsortiumId| -> i64 {
        b["dataBudgets"]
            .as_array()
            .and_then(|xs| xs.iter().find(|x| x["consortiumId"] == c.to_string()))
            .map(|x| int(&x["total"]["committedKrw"]))
            .expect("a budget")
    };
    let budgets = eventually(Duration::from_secs(60), || async {
        let b = ph.ok(&ph.officer, BUDGETS, json!({ "y": year })).await;
        let eliminated = b["dataBudgets"]
            .as_array()?
            .iter()
            .filter(|x| x["eliminatedAtGate"] == GATE)
            .count();
        (eliminated == 2).then_some(b)
    })
    .await
    .expect("the data budget recorded both eliminations");
    let e = ph.err(&ph.officer, COMMIT, commit(t[4])).await;
    assert_eq!(e.code.as_deref(), Some("TEAM_ELIMINATED"), "{e}");
    let e = ph.err(&ph.team(t[0]), COMMIT, commit(t[0])).await;
    assert_eq!(e.code.as_deref(), Some("TEAM_ELIMINATED"), "{e}");
    ph.ok(&ph.officer, COMMIT, commit(t[1])).await;
    let after = ph.ok(&ph.officer, BUDGETS, json!({ "y": year })).await;
    for c in [t[0], t[4]] {
        assert_eq!(committed(&after, c), committed(&budgets, c), "nothing new");
    }
    assert_eq!(
        committed(&after, t[1]),
        committed(&budgets, t[1]) + 100_000_000
    );
    // The joint purchase stays committed for every team, eliminated or not.
    for (team, share) in &purchase.shares {
        assert!(committed(&after, team.consortium) >= *share);
    }
    for b in after["dataBudgets"].as_array().expect("budgets") {
        let total = &b["total"];
        assert!(
            int(&total["committedKrw"]) <= int(&total["limitKrw"]),
            "{b}"
        );
        assert!(int(&total["availableKrw"]) >= 0, "{b}");
        for cat in b["categories"].as_array().expect("categories") {
            let f = &cat["figures"];
            assert!(int(&f["committedKrw"]) <= int(&f["limitKrw"]), "{b}");
        }
    }

    // ---- Talent: the eliminated team's hires end with the last day of the month (KST)
    // the elimination was published in, whatever day they were to start (a hire from
    // tomorrow, on a month's last day, ends before it starts); its funding stops; every
    // team's payments stay within its (pro-rated) cap. Publication fell between
    // `published_from` and `published_by`: if those straddle a month end, either month's
    // last day is right, and no other.
    let month_end = |day: chrono::NaiveDate| {
        let (y, m) = if day.month() == 12 {
            (day.year() + 1, 1)
        } else {
            (day.year(), day.month() + 1)
        };
        chrono::NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.pred_opt())
            .expect("a date")
    };
    let month_ends = [month_end(published_from), month_end(published_by)];
    let ended = eventually(Duration::from_secs(60), || async {
        let h = ph
            .ok(
                &ph.team(t[0]),
                "{ talentHires { id consortiumId startDate endedOn endCause active } }",
                json!({}),
            )
            .await;
        let hs = h["talentHires"].as_array()?.clone();
        (hs.len() == 2 && hs.iter().all(|x| x["endCause"] == "elimination")).then_some(hs)
    })
    .await
    .expect("talent ended the eliminated team's hires");
    for h in &ended {
        assert_eq!(h["consortiumId"], t[0].to_string());
        let ended_on: chrono::NaiveDate = h["endedOn"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("endedOn");
        assert!(month_ends.contains(&ended_on), "{h} vs {month_ends:?}");
    }
    let teams = ph
        .ok(
            &ph.officer,
            "{ talentTeams { consortiumId eliminatedAt } }",
            json!({}),
        )
        .await;
    let mut out_of_talent: Vec<String> = teams["talentTeams"]
        .as_array()
        .expect("teams")
        .iter()
        .filter(|x| !x["eliminatedAt"].is_null())
        .map(|x| x["consortiumId"].as_str().expect("id").to_owned())
        .collect();
    out_of_talent.sort();
    let mut eliminated = vec![t[0].to_string(), t[4].to_string()];
    eliminated.sort();
    assert_eq!(out_of_talent, eliminated);
    for c in &t {
        let r = ph
            .ok(
                &ph.officer,
                "query($c: UUID!, $y: Int!) { talentReport(consortiumId: $c, fiscalYear: $y) { paidKrw capKrw remainingKrw } }",
                json!({ "c": c, "y": year }),
            )
            .await;
        let r = &r["talentReport"];
        assert!(int(&r["paidKrw"]) <= int(&r["capKrw"]), "{r}");
        assert!(int(&r["remainingKrw"]) >= 0, "{r}");
    }

    // Milestones too: the two teams are out at gate 1 and assessed at no later gate.
    let ms = ph
        .ok(
            &ph.officer,
            "{ milestoneTeams { consortiumId eliminatedAtGate } }",
            json!({}),
        )
        .await;
    let mut out_of_ms: Vec<String> = ms["milestoneTeams"]
        .as_array()
        .expect("teams")
        .iter()
        .filter(|x| x["eliminatedAtGate"] == GATE)
        .map(|x| x["consortiumId"].as_str().expect("id").to_owned())
        .collect();
    out_of_ms.sort();
    assert_eq!(out_of_ms, eliminated);
}
