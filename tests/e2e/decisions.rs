//! Decisions on record: every proposed selection, override and publication is a version
//! with who, when and why; overrides are checked against the call's rules or waive them by
//! name; ties go by merit (the criteria in order), then by a recorded officer decision; with
//! normalisation on, minimums and feedback read the same basis as the totals; and a
//! published selection is recomputed from its recorded inputs, a tampered sheet reported.

use diesel::prelude::*;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{draft, error_code, eventually, register, OrgType, Platform, SUBMIT};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn ok(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]
}

/// Registers, drafts and submits one proposal per lead type, in order; returns the
/// consortia and the proposal ids.
pub(crate) async fn field(
    p: &Platform,
    call_id: &str,
    leads: &[OrgType],
) -> (Vec<ConsortiumId>, Vec<String>) {
    let mut ids = Vec::new();
    let mut consortia = Vec::new();
    for (i, lead) in leads.iter().enumerate() {
        let consortium = ConsortiumId::new();
        register(p, consortium, *lead).await;
        let id = draft(p, consortium, call_id, &format!("Model {i}")).await;
        let token = p.ctx.bearer(Role::Consortium, Some(consortium));
        ok(&p
            .graphql(
                Some(&token),
                SUBMIT,
                json!({ "id": id, "key": format!("k{i}") }),
            )
            .await);
        ids.push(id);
        consortia.push(consortium);
    }
    let officer = p.ctx.bearer(Role::Officer, None);
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($c: UUID!) { evaluationCases(callId: $c, first: 100) { items { proposalId } } }",
                json!({ "c": call_id }),
            )
            .await;
        let cases = body["data"]["evaluationCases"]["items"].to_string();
        ids.iter().all(|id| cases.contains(id.as_str())).then_some(())
    })
    .await
    .expect("scoring opened every case");
    (consortia, ids)
}

/// Configures one stage with `edit` applied to the seeded settings, registers `reviewers`
/// and assigns them.
pub(crate) async fn configure(
    p: &Platform,
    call_id: &str,
    reviewers: &[&str],
    edit: impl Fn(&mut Value),
) {
    let officer = p.ctx.bearer(Role::Officer, None);
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }", json!({})).await;
    let mut config = ok(&body)["defaultEvaluationConfig"].clone();
    config["stages"] = json!([{ "name": "presentation", "keepTop": null, "minTotal": null }]);
    config["reviewersPerProposal"] = json!(reviewers.len());
    config["normalise"] = json!(false);
    edit(&mut config);
    let configure = "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams } }";
    eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(
                Some(&officer),
                configure,
                json!({ "c": call_id, "i": config }),
            )
            .await;
        body["errors"].is_null().then_some(())
    })
    .await
    .expect("scoring accepts the settings");
    for r in reviewers {
        ok(&p
            .graphql(Some(&officer), "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": r, "organisation": format!("Institute {r}"), "expertise": ["LLM"] } }))
            .await);
    }
    // Evaluation starts at the deadline (rules.rs): move it into the past.
    kaip_e2e::pass_deadline(p, call_id).await;
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned } }",
            json!({ "c": call_id }),
        )
        .await;
    ok(&body);
}

/// Every reviewer scores each of their assignments with `sheet(reviewer, proposal index)`
/// = (technology, strategy, ecosystem).
pub(crate) async fn score(
    p: &Platform,
    call_id: &str,
    reviewers: &[&str],
    ids: &[String],
    sheet: impl Fn(&str, usize) -> (i64, i64, i64),
) {
    let index_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for r in reviewers {
        let token = p.ctx.bearer_for(r, Role::Reviewer, None);
        let body = p
            .graphql(Some(&token), "query($c: UUID!) { assignments(callId: $c, stage: 0, first: 100) { items { id proposalId } } }", json!({ "c": call_id }))
            .await;
        for a in ok(&body)["assignments"]["items"].as_array().expect("list") {
            let i = index_of[a["proposalId"].as_str().expect("id")];
            let (t, s, e) = sheet(r, i);
            let scores = json!([
                { "criterion": "technology", "points": t },
                { "criterion": "strategy", "points": s },
                { "criterion": "ecosystem", "points": e },
            ]);
            ok(&p
                .graphql(Some(&token), "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }", json!({ "a": a["id"], "s": scores }))
                .await);
        }
    }
}

const CLOSE: &str = "mutation($c: UUID!) { closeStage(callId: $c, stage: 0) { proposalId position totalCenti perCriterion { criterion centi } eligible shortfalls tieBrokenBy } }";
const DECISION: &str = "callId version kind selected totalCenti overrideReason waivers explanation decidedBy decidedAt publishedAt publishedBy publishesVersion inputsSha256 departure { promoted displaced reasons }";

fn verify(p: &Platform, call_id: &str) -> (i32, String) {
    let url = format!("{}/{}", kaip_testkit::database_url(), p.scoring.database);
    let mut out = Vec::new();
    let code = kaip_scoring::verify::run(
        ["--call", call_id, "--database-url", &url].map(String::from),
        &mut out,
    );
    (code, String::from_utf8(out).expect("utf-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_a_version_overrides_waive_by_name_and_the_publication_is_reproduced() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer_for("officer-1", Role::Officer, None);
    let call_id = kaip_e2e::open_call(&p, 2).await;
    // Six proposals; #4 is SME-led, the rest led by large enterprises.
    let leads = [
        OrgType::LargeEnterprise,
        OrgType::LargeEnterprise,
        OrgType::LargeEnterprise,
        OrgType::LargeEnterprise,
        OrgType::Sme,
        OrgType::LargeEnterprise,
    ];
    let (_, ids) = field(&p, &call_id, &leads).await;
    let reviewers = ["dv-1", "dv-2"];
    configure(&p, &call_id, &reviewers, |c| {
        c["teams"] = json!(2);
        c["constraints"] =
            json!([{ "category": "sme_or_academia_led", "atLeast": 1, "atMost": null }]);
    })
    .await;
    // Totals 90, 85, 80, 75, 70, 65 down the index; the reviewers disagree by criterion.
    score(&p, &call_id, &reviewers, &ids, |r, i| {
        let q = 90 - 5 * i as i64;
        if r == "dv-1" {
            (q * 4 / 10 + 2, q * 3 / 10 - 2, q - q * 4 / 10 - q * 3 / 10)
        } else {
            (q * 4 / 10 - 2, q * 3 / 10 + 2, q - q * 4 / 10 - q * 3 / 10)
        }
    })
    .await;
    ok(&p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await);

    // Version 1: the computed portfolio, #0 and the SME-led #4, saying why.
    let propose = format!("mutation($c: UUID!, $o: SelectionOverrideInput) {{ proposeSelection(callId: $c, overrideWith: $o) {{ {DECISION} }} }}");
    let body = p
        .graphql(Some(&officer), &propose, json!({ "c": call_id }))
        .await;
    let v1 = ok(&body)["proposeSelection"].clone();
    assert_eq!(
        (v1["version"].clone(), v1["kind"].clone()),
        (json!(1), json!("proposed"))
    );
    assert_eq!(v1["selected"], json!([ids[0], ids[4]]));
    assert!(
        v1["explanation"]
            .to_string()
            .contains("would break \\\"at least 1 sme_or_academia_led\\\""),
        "{v1}"
    );

    // An override breaking the constraint without waiving it is refused, naming the rule
    // and the waiver, and records nothing.
    let top_two = json!({ "selected": [ids[0], ids[1]], "reason": "the two strongest models" });
    let body = p
        .graphql(
            Some(&officer),
            &propose,
            json!({ "c": call_id, "o": top_two }),
        )
        .await;
    assert_eq!(error_code(&body), Some("OVERRIDE_BREAKS_RULES"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("\"at least 1 sme_or_academia_led\" is broken: 0 selected team(s)")
            && message.contains("waive `at_least:sme_or_academia_led`"),
        "{message}"
    );
    // A waiver of a rule the override keeps, or of no rule at all, is refused by index.
    for (waiver, rule) in [
        ("teams", "`teams` is kept by this override"),
        ("vibes", "`vibes` is not a rule of this call"),
    ] {
        let o = json!({ "selected": [ids[0], ids[1]], "reason": "x", "waivers": ["at_least:sme_or_academia_led", waiver] });
        let body = p
            .graphql(Some(&officer), &propose, json!({ "c": call_id, "o": o }))
            .await;
        assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with("override.waivers[1]: ") && message.contains(rule),
            "{message}"
        );
    }
    // Version 2: the same override with the waiver; its explanation describes it.
    let o = json!({ "selected": [ids[1], ids[0]], "reason": "the two strongest models", "waivers": ["at_least:sme_or_academia_led"] });
    let body = p
        .graphql(Some(&officer), &propose, json!({ "c": call_id, "o": o }))
        .await;
    let v2 = ok(&body)["proposeSelection"].clone();
    assert_eq!(
        (v2["version"].clone(), v2["kind"].clone()),
        (json!(2), json!("override"))
    );
    assert_eq!(v2["selected"], json!([ids[0], ids[1]]), "in rank order");
    assert_eq!(v2["waivers"], json!(["at_least:sme_or_academia_led"]));
    assert_eq!(v2["overrideReason"], "the two strongest models");
    let explanation: Vec<String> =
        serde_json::from_value(v2["explanation"].clone()).expect("lines");
    assert_eq!(
        explanation[0],
        "officer override: 2 of 6 finalist(s) selected; the settings ask for 2"
    );
    assert_eq!(explanation[1], "\"at least 1 sme_or_academia_led\": 0 selected team(s) are sme_or_academia_led, broken, waived");
    assert_eq!(explanation[2], "total score 175.00; the best portfolio keeping every rule totals 160.00 (15.00 more, by breaking a rule)");
    assert_eq!(
        v2["departure"],
        Value::Null,
        "the top two by rank: no departure from rank order"
    );

    // Select nobody: both the team count and the constraint must be waived.
    let nobody = json!({ "selected": [], "reason": "re-call: no proposal meets the bar" });
    let body = p
        .graphql(
            Some(&officer),
            &propose,
            json!({ "c": call_id, "o": nobody }),
        )
        .await;
    assert_eq!(error_code(&body), Some("OVERRIDE_BREAKS_RULES"), "{body}");
    let nobody = json!({ "selected": [], "reason": "re-call: no proposal meets the bar", "waivers": ["teams", "at_least:sme_or_academia_led"] });
    let body = p
        .graphql(
            Some(&officer),
            &propose,
            json!({ "c": call_id, "o": nobody }),
        )
        .await;
    let v3 = ok(&body)["proposeSelection"].clone();
    assert_eq!(
        (v3["version"].clone(), v3["selected"].clone()),
        (json!(3), json!([]))
    );
    assert_eq!(v3["departure"]["displaced"], json!([ids[0], ids[1]]));
    assert!(
        v3["departure"]["reasons"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("officer override: 0 of 6"),
        "the departure says what the override does: {v3}"
    );

    // Version 4: another officer proposes the computed portfolio again; an admin publishes.
    let other = p.ctx.bearer_for("officer-2", Role::Officer, None);
    let body = p
        .graphql(Some(&other), &propose, json!({ "c": call_id }))
        .await;
    assert_eq!(ok(&body)["proposeSelection"]["version"], 4);
    let admin = p.ctx.bearer_for("admin-9", Role::Admin, None);
    let body = p
        .graphql(
            Some(&admin),
            &format!("mutation($c: UUID!) {{ publishSelection(callId: $c) {{ {DECISION} }} }}"),
            json!({ "c": call_id }),
        )
        .await;
    let v5 = ok(&body)["publishSelection"].clone();
    assert_eq!(
        (v5["version"].clone(), v5["kind"].clone()),
        (json!(5), json!("published"))
    );
    assert_eq!(
        (v5["publishedBy"].clone(), v5["publishesVersion"].clone()),
        (json!("admin-9"), json!(4))
    );
    assert_eq!(v5["selected"], v1["selected"]);
    assert_eq!(v5["inputsSha256"].as_str().map(str::len), Some(64));
    let body = p
        .graphql(Some(&officer), &propose, json!({ "c": call_id }))
        .await;
    assert_eq!(
        error_code(&body),
        Some("STATE_CONFLICT"),
        "final once published: {body}"
    );

    // The history keeps every version with who, when and why.
    let history = format!("query($c: UUID!) {{ selectionHistory(callId: $c) {{ {DECISION} }} }}");
    let body = p
        .graphql(Some(&officer), &history, json!({ "c": call_id }))
        .await;
    let versions = ok(&body)["selectionHistory"]
        .as_array()
        .expect("versions")
        .clone();
    let kinds: Vec<&str> = versions
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["proposed", "override", "override", "proposed", "published"]
    );
    let who: Vec<&str> = versions
        .iter()
        .map(|v| v["decidedBy"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        who,
        [
            "officer-1",
            "officer-1",
            "officer-1",
            "officer-2",
            "admin-9"
        ]
    );
    assert_eq!(versions[1], v2, "an earlier override is kept as it was");
    let at: Vec<&str> = versions
        .iter()
        .map(|v| v["decidedAt"].as_str().unwrap_or(""))
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    // The current decision is the publication; the history is for staff only.
    let body = p
        .graphql(
            Some(&officer),
            &format!("query($c: UUID!) {{ selection(callId: $c) {{ {DECISION} }} }}"),
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(ok(&body)["selection"], v5);
    for role in [Role::Reviewer, Role::Integration] {
        let body = p
            .graphql(
                Some(&p.ctx.bearer(role, None)),
                &history,
                json!({ "c": call_id }),
            )
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    }
    let body = p
        .graphql(
            Some(&p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new()))),
            &history,
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // The database itself refuses to rewrite a version.
    let mut conn = p.scoring.pool.get().expect("connection");
    let refused = diesel::sql_query("UPDATE decision_versions SET decided_by = 'someone else'")
        .execute(&mut conn);
    assert!(refused.is_err_and(|e| e.to_string().contains("append-only")));

    // The published selection is recomputed from its recorded inputs, bit for bit...
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("stage 0 (presentation): ranking of 6 proposals from 12 sheets agrees"),
        "{report}"
    );
    assert!(report.contains("portfolio: version 4 (proposed) published as version 5 by admin-9: 2 team(s), total 160.00, agrees"), "{report}");
    assert!(
        report.contains("the published selection is reproduced bit for bit"),
        "{report}"
    );
    // ... and a tampered sheet is reported where it makes a difference, with a non-zero exit.
    let n = diesel::sql_query(
        "UPDATE score_sheets SET scores = jsonb_set(scores, '{technology}', '40'), total = total + (40 - (scores->>'technology')::int) \
         WHERE assignment_id = (SELECT a.id FROM assignments a JOIN evaluation_cases c ON c.id = a.case_id WHERE c.proposal_id = $1 AND a.reviewer_id = 'dv-1')",
    )
    .bind::<diesel::sql_types::Uuid, _>(uuid::Uuid::parse_str(&ids[5]).expect("id"))
    .execute(&mut conn)
    .expect("tamper");
    assert_eq!(n, 1);
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains(&format!(
            "DIFFERS: stage 0 (presentation), proposal {}: total recorded 65.00, recomputed",
            ids[5]
        )),
        "{report}"
    );
    assert!(
        report.contains("DIFFERS: recorded inputs changed since publication"),
        "{report}"
    );
    assert!(report.contains("NOT reproduced"), "{report}");
    // An unknown call cannot be verified: exit 2.
    let (code, report) = verify(&p, &uuid::Uuid::now_v7().to_string());
    assert_eq!(code, 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_go_by_criterion_order_then_by_a_recorded_officer_decision() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = kaip_e2e::open_call(&p, 2).await;
    // #0 and #1 tie on everything; #2 and #3 tie on the total and on technology, #3
    // submitted first but #2 stronger on strategy, the second criterion.
    let (_, ids) = field(&p, &call_id, &[OrgType::LargeEnterprise; 4]).await;
    let sheets: [(i64, i64, i64); 4] = [(32, 24, 24), (32, 24, 24), (30, 22, 18), (30, 20, 20)];
    let reviewers = ["tie-1", "tie-2"];
    configure(&p, &call_id, &reviewers, |c| {
        c["teams"] = json!(1);
        c["constraints"] = json!([]);
    })
    .await;
    score(&p, &call_id, &reviewers, &ids, |_, i| sheets[i]).await;

    // The full tie decides who the rules select: closing is refused until an officer orders it.
    let body = p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("TIE_UNRESOLVED"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&ids[0]) && message.contains(&ids[1]) && !message.contains(&ids[2]),
        "{message}"
    );
    let decide = "mutation($c: UUID!, $o: [UUID!]!, $r: String!) { decideTie(callId: $c, stage: 0, order: $o, reason: $r) { id order reason decidedBy } }";
    let body = p
        .graphql(
            Some(&officer),
            decide,
            json!({ "c": call_id, "o": [ids[1]], "r": "x" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    let body = p
        .graphql(
            Some(&p.ctx.bearer_for("rev-x", Role::Reviewer, None)),
            decide,
            json!({ "c": call_id, "o": [ids[1], ids[0]], "r": "x" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p.graphql(Some(&officer), decide, json!({ "c": call_id, "o": [ids[1], ids[0]], "r": "panel vote 4-3 after the presentations" })).await;
    assert_eq!(ok(&body)["decideTie"]["order"], json!([ids[1], ids[0]]));

    let body = p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await;
    let results = ok(&body)["closeStage"].as_array().expect("results").clone();
    let order: Vec<&str> = results
        .iter()
        .map(|r| r["proposalId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        order,
        [&ids[1], &ids[0], &ids[2], &ids[3]],
        "merit, then the officer's order"
    );
    assert!(
        results[1]["tieBrokenBy"]
            .as_str()
            .unwrap_or("")
            .starts_with("officer tie decision by "),
        "{results:?}"
    );
    assert_eq!(
        results[2]["tieBrokenBy"],
        Value::Null,
        "#2 does not tie with #0"
    );
    assert_eq!(
        results[3]["tieBrokenBy"], "higher strategy score",
        "not the earlier submission"
    );

    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { selected } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(ok(&body)["proposeSelection"]["selected"], json!([ids[1]]));
    ok(&p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { publishSelection(callId: $c) { version } }",
            json!({ "c": call_id }),
        )
        .await);
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { tieDecisions(callId: $c) { stage order decidedBy } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(ok(&body)["tieDecisions"].as_array().map(Vec::len), Some(1));
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "the tie decision is a recorded input: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_normalisation_on_minimums_and_feedback_read_the_normalised_criteria() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = kaip_e2e::open_call(&p, 2).await;
    let (consortia, ids) = field(&p, &call_id, &[OrgType::LargeEnterprise; 3]).await;
    // h is harsh and l lenient on technology. Raw, #0's technology consensus is exactly the
    // minimum of 20; calibrated against each reviewer it is 18.77 (see the unit test in
    // services/scoring/src/domain/stage.rs for the arithmetic).
    let sheets: [[(i64, i64, i64); 3]; 2] = [
        [(18, 20, 20), (10, 15, 15), (25, 25, 25)],
        [(22, 20, 20), (30, 25, 25), (38, 28, 28)],
    ];
    let reviewers = ["norm-h", "norm-l"];
    configure(&p, &call_id, &reviewers, |c| {
        c["normalise"] = json!(true);
        c["teams"] = json!(1);
        c["constraints"] = json!([]);
        c["criteria"][0]["minPoints"] = json!(20);
    })
    .await;
    score(&p, &call_id, &reviewers, &ids, |r, i| {
        sheets[usize::from(r == "norm-l")][i]
    })
    .await;
    let body = p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await;
    let results = ok(&body)["closeStage"].as_array().expect("results").clone();
    for r in &results {
        let sum: i64 = r["perCriterion"]
            .as_array()
            .expect("criteria")
            .iter()
            .map(|c| c["centi"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(
            Some(sum),
            r["totalCenti"].as_i64(),
            "the criteria add up to the total: {r}"
        );
    }
    let first = results
        .iter()
        .find(|r| r["proposalId"] == ids[0].as_str())
        .expect("#0");
    assert_eq!(first["eligible"], false, "{first}");
    assert_eq!(first["totalCenti"], 5739);
    assert_eq!(
        first["shortfalls"],
        json!(["Model technology & development scored 18.77, below its minimum of 20"])
    );
    assert_eq!(results[0]["proposalId"], ids[2].as_str());

    // The feedback reads the same figures.
    ok(&p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { selected } }",
            json!({ "c": call_id }),
        )
        .await);
    ok(&p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { publishSelection(callId: $c) { version } }",
            json!({ "c": call_id }),
        )
        .await);
    let lead0 = p.ctx.bearer(Role::Consortium, Some(consortia[0]));
    let body = p
        .graphql(Some(&lead0), "query($c: UUID!) { feedback(callId: $c) { stages { totalCenti perCriterion { criterion centi } } } }", json!({ "c": call_id }))
        .await;
    let stage = &ok(&body)["feedback"]["stages"][0];
    assert_eq!(stage["totalCenti"], first["totalCenti"]);
    assert_eq!(stage["perCriterion"], first["perCriterion"]);
    assert_eq!(
        stage["perCriterion"][2],
        json!({ "criterion": "technology", "centi": 1877 })
    );
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_declare_track_openness_and_independence_and_a_constraint_can_name_the_track() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = kaip_e2e::open_call(&p, 2).await;
    let mut events = p
        .subscribe(
            &officer,
            r#"subscription { events(types: ["ProposalSubmitted"]) { type data } }"#,
        )
        .await;

    // A proposal that declares nothing cannot be submitted.
    let bio = ConsortiumId::new();
    register(&p, bio, OrgType::LargeEnterprise).await;
    let lead = p.ctx.bearer(Role::Consortium, Some(bio));
    let body = p
        .graphql(
            Some(&lead),
            kaip_e2e::CREATE,
            json!({ "input": { "callId": call_id, "title": "Bio model", "summary": "s" } }),
        )
        .await;
    let id = ok(&body)["createProposal"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let body = p
        .graphql(Some(&lead), SUBMIT, json!({ "id": id, "key": "bio" }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_NOT_ELIGIBLE"), "{body}");
    assert!(
        body.to_string()
            .contains("portfolio: the proposal must declare its track, openness and independence"),
        "{body}"
    );

    // A bad declaration is refused by field and rule, and saves nothing.
    let update = "mutation($id: UUID!, $p: PortfolioInput) { updateProposal(id: $id, input: { title: \"Bio model\", summary: \"s\", portfolio: $p }) { version portfolio { track { kind industry } openness { releases licence } independence { fromScratch buildsOn } } } }";
    let bad = json!({ "track": { "kind": "INDUSTRY_SPECIALISED" }, "openness": { "releases": [] }, "independence": { "fromScratch": true } });
    let body = p
        .graphql(Some(&lead), update, json!({ "id": id, "p": bad }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with(
                "portfolio.track.industry: an industry-specialised track names its industry"
            ),
        "{body}"
    );
    let bad = json!({ "track": { "kind": "GENERAL" }, "openness": { "releases": ["WEIGHTS"] }, "independence": { "fromScratch": true } });
    let body = p
        .graphql(Some(&lead), update, json!({ "id": id, "p": bad }))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("portfolio.openness.licence: is required when anything is released"),
        "{body}"
    );
    let bad = json!({ "track": { "kind": "GENERAL" }, "openness": { "releases": [] }, "independence": { "fromScratch": false } });
    let body = p
        .graphql(Some(&lead), update, json!({ "id": id, "p": bad }))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("portfolio.independence.builds_on: "),
        "{body}"
    );

    // Declared: an industry-specialised (bio) model releasing weights, built on external weights.
    let declared = json!({ "track": { "kind": "INDUSTRY_SPECIALISED", "industry": "bio" }, "openness": { "releases": ["WEIGHTS"], "licence": "Apache-2.0" }, "independence": { "fromScratch": false, "buildsOn": ["EXAONE 3.5 7.8B weights"] } });
    let body = p
        .graphql(Some(&lead), update, json!({ "id": id, "p": declared }))
        .await;
    let saved = &ok(&body)["updateProposal"];
    assert_eq!(saved["version"], 2, "the refused edits saved nothing");
    assert_eq!(
        saved["portfolio"]["track"],
        json!({ "kind": "INDUSTRY_SPECIALISED", "industry": "bio" })
    );
    assert_eq!(
        saved["portfolio"]["independence"]["buildsOn"],
        json!(["EXAONE 3.5 7.8B weights"])
    );
    // Versioned with the proposal; an edit without a declaration keeps the previous one.
    let body = p.graphql(Some(&lead), "mutation($id: UUID!) { updateProposal(id: $id, input: { title: \"Bio model v3\", summary: \"s\" }) { version portfolio { track { industry } } } }", json!({ "id": id })).await;
    assert_eq!(
        ok(&body)["updateProposal"]["portfolio"]["track"]["industry"],
        "bio"
    );
    let body = p.graphql(Some(&lead), "query($id: UUID!) { proposal(id: $id) { versions { version portfolio { track { kind } } } } }", json!({ "id": id })).await;
    assert_eq!(
        ok(&body)["proposal"]["versions"],
        json!([
            { "version": 1, "portfolio": null },
            { "version": 2, "portfolio": { "track": { "kind": "INDUSTRY_SPECIALISED" } } },
            { "version": 3, "portfolio": { "track": { "kind": "INDUSTRY_SPECIALISED" } } },
        ])
    );
    ok(&p
        .graphql(Some(&lead), SUBMIT, json!({ "id": id, "key": "bio" }))
        .await);
    // The event carries the declaration to integrators and scoring.
    let event = events.next_event().await;
    assert_eq!(event["data"]["proposal_id"], id.as_str());
    assert_eq!(
        event["data"]["portfolio"],
        json!({ "track": { "kind": "industry_specialised", "industry": "bio" }, "openness": { "releases": ["weights"], "licence": "Apache-2.0" }, "independence": { "from_scratch": false, "builds_on": ["EXAONE 3.5 7.8B weights"] } })
    );

    // Two stronger general-track proposals; the call keeps a place for the industry track.
    let (_, general) = field(
        &p,
        &call_id,
        &[OrgType::LargeEnterprise, OrgType::LargeEnterprise],
    )
    .await;
    let ids = [general[0].clone(), general[1].clone(), id.clone()];
    let reviewers = ["trk-1"];
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }", json!({})).await;
    let mut bad = ok(&body)["defaultEvaluationConfig"].clone();
    bad["constraints"] = json!([{ "category": "track:bio", "atLeast": 1, "atMost": null }]);
    let body = eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(Some(&officer), "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams } }", json!({ "c": call_id, "i": bad }))
            .await;
        (error_code(&body) != Some("CALL_NOT_FOUND")).then_some(body)
    })
    .await
    .expect("scoring knows the call");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("constraints[0].category: "),
        "{body}"
    );
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    configure(&p, &call_id, &reviewers, |c| {
        c["teams"] = json!(2);
        c["constraints"] =
            json!([{ "category": "track:industry_specialised", "atLeast": 1, "atMost": null }]);
    })
    .await;
    score(&p, &call_id, &reviewers, &ids, |_, i| {
        [(35, 25, 25), (33, 25, 25), (30, 20, 20)][i]
    })
    .await;
    ok(&p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await);
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { selected explanation } }",
            json!({ "c": call_id }),
        )
        .await;
    let decision = &ok(&body)["proposeSelection"];
    assert_eq!(
        decision["selected"],
        json!([ids[0], ids[2]]),
        "the bio proposal takes the industry place"
    );
    assert!(
        decision["explanation"]
            .to_string()
            .contains("at least 1 track:industry_specialised"),
        "{decision}"
    );
}

/// Runs the `kaip-seed` binary against this platform's gateway; returns its stdout.
async fn seed(p: &Platform, args: &[&str]) -> String {
    let gateway = p.gateway_url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kaip-seed"))
            .args(&args)
            .env("KAIP_SEED_GATEWAY", gateway)
            .output()
            .expect("kaip-seed runs")
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_demo_is_a_varied_field_whose_printed_ranking_is_the_services() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let out = seed(&p, &["programme"]).await;
    let call_id = out
        .lines()
        .find_map(|l| l.strip_prefix("call      "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the call id is printed")
        .to_owned();
    // A varied field: leads of five kinds, two to four members, two industry tracks.
    for lead in [
        "large_enterprise",
        "mid_size",
        "startup",
        "university",
        "research_institute",
        "sme",
    ] {
        assert!(out.contains(&format!("lead {lead}")), "{lead}: {out}");
    }
    assert_eq!(out.matches("industry-specialised").count(), 2, "{out}");
    assert!(
        out.contains("4 members") && out.contains("3 members") && out.contains("2 members"),
        "{out}"
    );

    // The officer runs the seeded settings, normalisation on, as the console's examples do.
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }", json!({})).await;
    let config = ok(&body)["defaultEvaluationConfig"].clone();
    assert_eq!(config["normalise"], true);
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(Some(&officer), "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams } }", json!({ "c": call_id, "i": config }))
            .await;
        body["errors"].is_null().then_some(())
    })
    .await
    .expect("scoring knows the call and its 15 cases");
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($c: UUID!) { evaluationCases(callId: $c, first: 100) { items { id } } }",
                json!({ "c": call_id }),
            )
            .await;
        (body["data"]["evaluationCases"]["items"]
            .as_array()
            .map(Vec::len)
            == Some(15))
        .then_some(())
    })
    .await
    .expect("15 cases");
    kaip_e2e::pass_deadline(&p, &call_id).await;
    let body = p
        .graphql(Some(&officer), "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned blocked { reviewerId } } }", json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["assignReviewers"]["blocked"][0]["reviewerId"],
        "rev-6",
        "the seeded conflict is detected"
    );
    seed(&p, &["scores", "--call", &call_id, "--stage", "0"]).await;

    // Reviewers disagree by criterion: no two reviewers of a proposal gave the same sheet.
    let mut conn = p.scoring.pool.get().expect("connection");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let identical: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM score_sheets a JOIN assignments x ON x.id = a.assignment_id \
         JOIN score_sheets b ON b.assignment_id <> a.assignment_id JOIN assignments y ON y.id = b.assignment_id \
         WHERE x.case_id = y.case_id AND a.scores = b.scores",
    )
    .get_result(&mut conn)
    .expect("count");
    assert_eq!(
        identical.n, 0,
        "every reviewer of a proposal scores it differently"
    );

    let body = p
        .graphql(Some(&officer), "mutation($c: UUID!) { closeStage(callId: $c, stage: 0) { title position totalCenti } }", json!({ "c": call_id }))
        .await;
    let results = ok(&body)["closeStage"].as_array().expect("results").clone();
    let printed = seed(&p, &["ranking", "--call", &call_id, "--stage", "0"]).await;
    assert!(printed.contains("(normalised per reviewer)"), "{printed}");
    // The printed ranking is the service's, line for line.
    let lines: Vec<&str> = printed
        .lines()
        .skip(1)
        .filter(|l| !l.trim_start().starts_with("ineligible"))
        .collect();
    assert_eq!(lines.len(), results.len(), "{printed}");
    for (line, r) in lines.iter().zip(&results) {
        let title = r["title"].as_str().expect("title");
        let total = r["totalCenti"].as_i64().expect("total");
        let expected = format!(
            "{:>3}. {title:<32} {:>6}",
            r["position"].as_i64().expect("ranked"),
            format!("{}.{:02}", total / 100, total % 100)
        );
        assert!(line.starts_with(&expected), "{line:?} against {expected:?}");
    }
}

/// A call of four with totals 80, 75, 70, 70, #2 and #3 tied on everything below the two
/// places, closed with the tie recorded as changing nothing; then #1 withdraws, and one of
/// #2 and #3 takes its place, which only an officer may say. Returns the call, the
/// consortia and the proposal ids.
async fn a_tie_that_matters_after_a_withdrawal(
    p: &Platform,
    reviewer: &str,
) -> (String, Vec<ConsortiumId>, Vec<String>) {
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = kaip_e2e::open_call(p, 2).await;
    // Totals 80, 75, 70, 70: #2 and #3 tie on everything, below the two places.
    let (consortia, ids) = field(p, &call_id, &[OrgType::LargeEnterprise; 4]).await;
    let sheets: [(i64, i64, i64); 4] = [(32, 24, 24), (30, 23, 22), (28, 21, 21), (28, 21, 21)];
    let reviewers = [reviewer];
    configure(p, &call_id, &reviewers, |c| {
        c["teams"] = json!(2);
        c["constraints"] = json!([]);
    })
    .await;
    score(p, &call_id, &reviewers, &ids, |_, i| sheets[i]).await;
    // The tie changes nothing yet (both out): the stage closes, the tie recorded as such.
    let body = p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await;
    let results = ok(&body)["closeStage"].as_array().expect("results").clone();
    assert_eq!(
        results[3]["tieBrokenBy"]
            .as_str()
            .map(|t| t.starts_with("unresolved tie")),
        Some(true),
        "{results:?}"
    );

    // #1 withdraws: now one of #2 and #3 takes its place, and only an officer may say which.
    let lead = p.ctx.bearer(Role::Consortium, Some(consortia[1]));
    ok(&p
        .graphql(Some(&lead), "mutation($p: UUID!) { withdrawProposal(proposalId: $p, reason: \"the consortium dissolved\") { status } }", json!({ "p": ids[1] }))
        .await);
    eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($p: UUID!) { evaluationCase(proposalId: $p) { status } }",
                json!({ "p": ids[1] }),
            )
            .await;
        (body["data"]["evaluationCase"]["status"] == "withdrawn").then_some(())
    })
    .await
    .expect("scoring applied the withdrawal");
    (call_id, consortia, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tie_that_starts_to_matter_after_a_withdrawal_blocks_the_selection_until_decided() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, _, ids) = a_tie_that_matters_after_a_withdrawal(&p, "wd-1").await;
    let propose = "mutation($c: UUID!) { proposeSelection(callId: $c) { version selected } }";
    let body = p
        .graphql(Some(&officer), propose, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("TIE_UNRESOLVED"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("decides who is selected"),
        "{body}"
    );
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { selectionHistory(callId: $c) { version } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(
        ok(&body)["selectionHistory"],
        json!([]),
        "a refusal records nothing"
    );

    // The last stage is closed, but its tie can still be decided until publication.
    ok(&p
        .graphql(Some(&officer), "mutation($c: UUID!, $o: [UUID!]!) { decideTie(callId: $c, stage: 0, order: $o, reason: \"stronger presentation Q&A\") { id } }", json!({ "c": call_id, "o": [ids[3], ids[2]] }))
        .await);
    let body = p
        .graphql(Some(&officer), propose, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"]["selected"],
        json!([ids[0], ids[3]])
    );
    ok(&p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { publishSelection(callId: $c) { version } }",
            json!({ "c": call_id }),
        )
        .await);
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "{report}");
}

/// A finalist's withdrawal is an input of the decision: a withdrawal that lands between
/// the proposal and its publication refuses the publication until the officer proposes
/// again with the field as it now is, whether the finalist was selected (the portfolio
/// would be short of a team, maybe breaking its constraints) or not (a departure or an
/// explanation may name it, and the verifier no longer counts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_proposed_before_a_withdrawal_cannot_be_published_until_proposed_again() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = kaip_e2e::open_call(&p, 2).await;
    let (consortia, ids) = field(&p, &call_id, &[OrgType::LargeEnterprise; 4]).await;
    let sheets: [(i64, i64, i64); 4] = [(32, 24, 24), (30, 23, 22), (28, 21, 20), (28, 20, 20)];
    let reviewers = ["pw-1"];
    configure(&p, &call_id, &reviewers, |c| {
        c["teams"] = json!(2);
        c["constraints"] = json!([]);
    })
    .await;
    score(&p, &call_id, &reviewers, &ids, |_, i| sheets[i]).await;
    ok(&p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await);
    let propose = "mutation($c: UUID!) { proposeSelection(callId: $c) { version selected } }";
    let publish = "mutation($c: UUID!) { publishSelection(callId: $c) { version selected } }";
    let withdraw = |i: usize| {
        let p = &p;
        let lead = p.ctx.bearer(Role::Consortium, Some(consortia[i]));
        let proposal = ids[i].clone();
        let officer = officer.clone();
        async move {
            ok(&p
                .graphql(Some(&lead), "mutation($p: UUID!) { withdrawProposal(proposalId: $p, reason: \"merged with another consortium\") { status } }", json!({ "p": proposal }))
                .await);
            eventually(Duration::from_secs(30), || async {
                let body = p
                    .graphql(
                        Some(&officer),
                        "query($p: UUID!) { evaluationCase(proposalId: $p) { status } }",
                        json!({ "p": proposal }),
                    )
                    .await;
                (body["data"]["evaluationCase"]["status"] == "withdrawn").then_some(())
            })
            .await
            .expect("scoring applied the withdrawal");
        }
    };
    let body = p
        .graphql(Some(&officer), propose, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"]["selected"],
        json!([ids[0], ids[1]])
    );

    // #3, a finalist not selected, withdraws before publication.
    withdraw(3).await;
    let body = p
        .graphql(Some(&officer), publish, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_OUTDATED"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("finalist proposal {} became withdrawn", ids[3]))
            && message.contains("version 1 cannot be published")
            && message.contains("propose the selection again"),
        "{body}"
    );
    assert_eq!(kinds(&p, &call_id).await, json!([{ "kind": "proposed" }]));
    let body = p
        .graphql(Some(&officer), propose, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"],
        json!({ "version": 2, "selected": [ids[0], ids[1]] })
    );

    // #1, selected in the proposal, withdraws before publication.
    withdraw(1).await;
    let body = p
        .graphql(Some(&officer), publish, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_OUTDATED"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("finalist proposal {} became withdrawn", ids[1]))
            && message.contains("version 2 cannot be published")
            && !message.contains(&ids[3]),
        "{body}"
    );
    // Nothing was published: no publication version, and the withdrawn case is not selected.
    assert_eq!(
        kinds(&p, &call_id).await,
        json!([{ "kind": "proposed" }, { "kind": "proposed" }])
    );

    // Proposed again, the portfolio is the two remaining finalists, and it publishes.
    let body = p
        .graphql(Some(&officer), propose, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"]["selected"],
        json!([ids[0], ids[2]])
    );
    let body = p
        .graphql(Some(&officer), publish, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["publishSelection"]["selected"],
        json!([ids[0], ids[2]])
    );
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "{report}");
}

const PROPOSE: &str = "mutation($c: UUID!) { proposeSelection(callId: $c) { version selected } }";
const PUBLISH: &str =
    "mutation($c: UUID!) { publishSelection(callId: $c) { version selected publishesVersion } }";
const DECIDE_TIE: &str = "mutation($c: UUID!, $o: [UUID!]!, $r: String!) { decideTie(callId: $c, stage: 0, order: $o, reason: $r) { id } }";

/// The kinds of a call's decision versions, oldest first.
async fn kinds(p: &Platform, call_id: &str) -> Value {
    let officer = p.ctx.bearer(Role::Officer, None);
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { selectionHistory(callId: $c) { kind } }",
            json!({ "c": call_id }),
        )
        .await;
    ok(&body)["selectionHistory"].clone()
}

/// A publication rests on every input on record: a tie decided (or a conflict declared)
/// after the proposal refuses its publication, with a code that names the rule and the
/// record, and writes nothing; proposed again, it publishes and is reproduced. A stale
/// publication written past the check (as the service wrote one before) is reported by
/// the verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_recorded_after_the_proposal_refuses_its_publication_until_proposed_again() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, consortia, ids) = a_tie_that_matters_after_a_withdrawal(&p, "ra-1").await;
    let call = uuid::Uuid::parse_str(&call_id).expect("call id");
    ok(&p
        .graphql(
            Some(&officer),
            DECIDE_TIE,
            json!({ "c": call_id, "o": [ids[3], ids[2]], "r": "stronger presentation Q&A" }),
        )
        .await);
    let body = p
        .graphql(Some(&officer), PROPOSE, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"]["selected"],
        json!([ids[0], ids[3]])
    );

    // The panel reconsiders: the tie now goes the other way, after the proposal.
    let body = p
        .graphql(Some(&officer), DECIDE_TIE, json!({ "c": call_id, "o": [ids[2], ids[3]], "r": "the panel reconsidered the Q&A record" }))
        .await;
    let tie = ok(&body)["decideTie"]["id"]
        .as_str()
        .expect("tie id")
        .to_owned();
    let body = p
        .graphql(Some(&officer), PUBLISH, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_OUTDATED"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("tie decision {tie}"))
            && message.contains("version 1 cannot be published")
            && message.contains("propose the selection again"),
        "{message}"
    );
    // Nothing was written: no publication, and the finalists are still finalists.
    assert_eq!(kinds(&p, &call_id).await, json!([{ "kind": "proposed" }]));
    for i in [0, 2, 3] {
        let body = p
            .graphql(
                Some(&officer),
                "query($p: UUID!) { evaluationCase(proposalId: $p) { status } }",
                json!({ "p": ids[i] }),
            )
            .await;
        assert_eq!(ok(&body)["evaluationCase"]["status"], "finalist", "{i}");
    }

    // Had it been published anyway (as before this rule, past the service), the verifier
    // says so: the publication does not reflect a tie decided before it.
    let mut conn = p.scoring.pool.get().expect("connection");
    let report = conn.test_transaction(|c| {
        let n = diesel::sql_query(
            "INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, departure, override_reason, waivers, explanation, decided_by, publishes_version) \
             SELECT call_id, 2, 'published', selected, total_centi, departure, override_reason, waivers, explanation, 'a publisher past the check', 1 \
             FROM decision_versions WHERE call_id = $1 AND version = 1",
        )
        .bind::<diesel::sql_types::Uuid, _>(call)
        .execute(c)
        .expect("a stale publication");
        assert_eq!(n, 1);
        // Rolled back afterwards: the record keeps only what the service wrote.
        kaip_scoring::verify::verify(c, call)
    });
    assert!(
        report.differences.iter().any(|d| d.starts_with(&format!(
            "publication (version 2): version 1 was proposed before tie decision {tie} at stage 0"
        ))),
        "{report:?}"
    );
    // The same publication recorded before the database numbered records itself (as if
    // the migration ran after it): the rows around it were numbered from the writers'
    // clocks, so the verifier says it cannot check the window, not that it differs.
    let report = conn.test_transaction(|c| {
        diesel::sql_query(
            "INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, departure, override_reason, waivers, explanation, decided_by, publishes_version) \
             SELECT call_id, 2, 'published', selected, total_centi, departure, override_reason, waivers, explanation, 'a publisher before the migration', 1 \
             FROM decision_versions WHERE call_id = $1 AND version = 1",
        )
        .bind::<diesel::sql_types::Uuid, _>(call)
        .execute(c)
        .expect("an old publication");
        diesel::sql_query(
            "DO $$ BEGIN EXECUTE format('CREATE OR REPLACE FUNCTION scoring_numbered_since() RETURNS bigint LANGUAGE sql IMMUTABLE AS %L', \
             'SELECT ' || (SELECT max(recorded_seq) + 1 FROM decision_versions)::text || '::bigint'); END $$",
        )
        .execute(c)
        .expect("the migration after it");
        kaip_scoring::verify::verify(c, call)
    });
    assert!(
        !report
            .differences
            .iter()
            .any(|d| d.contains("was proposed before")),
        "{report:?}"
    );
    assert!(
        report.unchecked.iter().any(|u| u.starts_with(
            "publication (version 2): whether an input was recorded between version 1"
        )),
        "{report:?}"
    );
    drop(conn);
    assert_eq!(kinds(&p, &call_id).await, json!([{ "kind": "proposed" }]));

    // Proposed again, with the tie as it now stands.
    let body = p
        .graphql(Some(&officer), PROPOSE, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"],
        json!({ "version": 2, "selected": [ids[0], ids[2]] })
    );
    // A conflict of interest declared now (the stage is closed: the reviewer's sheet is
    // marked, the result stands) cannot change the decision, so it does not hold up the
    // publication (nor can a reviewer declaring their own conflicts).
    let body = p
        .graphql(
            Some(&officer),
            "mutation($r: String!, $k: UUID!, $why: String!) { declareConflict(reviewerId: $r, consortiumId: $k, reason: $why) { noted { proposalId } } }",
            json!({ "r": "ra-1", "k": consortia[0], "why": "advised the lead organisation last year" }),
        )
        .await;
    assert_eq!(
        ok(&body)["declareConflict"]["noted"],
        json!([{ "proposalId": ids[0] }])
    );
    let body = p
        .graphql(Some(&officer), PUBLISH, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["publishSelection"],
        json!({ "version": 3, "selected": [ids[0], ids[2]], "publishesVersion": 2 })
    );
    // Reproduced: the latest tie decision, and the sheet the late conflict marked still
    // counts (the conflict came after the stage closed).
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("portfolio: version 2 (proposed) published as version 3"),
        "{report}"
    );
}

/// Writes a tie decision for stage 0 directly, as a replica whose clock is `skew` off would
/// (and trying to place it in the order of records itself); returns its id.
fn skewed_tie(p: &Platform, call: uuid::Uuid, order: [&str; 2], skew: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let order: Vec<uuid::Uuid> = order
        .iter()
        .map(|p| uuid::Uuid::parse_str(p).expect("id"))
        .collect();
    let mut conn = p.scoring.pool.get().expect("connection");
    let n = diesel::sql_query(
        "INSERT INTO tie_decisions (id, call_id, stage, proposals, reason, decided_by, decided_at, recorded_seq) \
         VALUES ($1, $2, 0, $3, 'panel vote', 'officer-on-a-skewed-clock', now() + $4::interval, 0)",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Uuid, _>(call)
    .bind::<diesel::sql_types::Jsonb, _>(json!(order))
    .bind::<diesel::sql_types::Text, _>(skew)
    .execute(&mut conn)
    .expect("a tie decision");
    assert_eq!(n, 1);
    id
}

/// "Recorded before" is the database's order, never a writer's clock: a tie decision whose
/// clock runs hours ahead still counts for the proposal that read it, one whose clock is
/// behind still comes after the proposal it followed, the latest recorded prevails, and the
/// verifier reads them the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_ordered_by_the_database_not_by_the_writers_clocks() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, _, ids) = a_tie_that_matters_after_a_withdrawal(&p, "ro-1").await;
    let call = uuid::Uuid::parse_str(&call_id).expect("call id");

    // A: #3 before #2, written by a replica two hours ahead; the proposal reads it.
    skewed_tie(&p, call, [&ids[3], &ids[2]], "2 hours");
    let body = p
        .graphql(Some(&officer), PROPOSE, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"],
        json!({ "version": 1, "selected": [ids[0], ids[3]] })
    );
    // After the proposal: B (an order of a pair that is no tie, which changes nothing) by a
    // replica an hour behind, so its clock puts it before the proposal; and C, #2 before
    // #3, an hour ahead: later than the proposal, earlier than A, by the clocks.
    let b = skewed_tie(&p, call, [&ids[0], &ids[2]], "-1 hour");
    let c = skewed_tie(&p, call, [&ids[2], &ids[3]], "1 hour");
    let body = p
        .graphql(Some(&officer), PUBLISH, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("PROPOSAL_OUTDATED"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!(
            "tie decision {b} at stage 0 by officer-on-a-skewed-clock; tie decision {c} at stage 0"
        )),
        "both, in the order recorded: {message}"
    );
    assert_eq!(kinds(&p, &call_id).await, json!([{ "kind": "proposed" }]));

    // Proposed again: C is the latest decision naming the tied pair (A is, by the clocks).
    let body = p
        .graphql(Some(&officer), PROPOSE, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["proposeSelection"],
        json!({ "version": 2, "selected": [ids[0], ids[2]] })
    );
    let body = p
        .graphql(Some(&officer), PUBLISH, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["publishSelection"],
        json!({ "version": 3, "selected": [ids[0], ids[2]], "publishesVersion": 2 })
    );
    // The verifier reproduces it: A and C count though their clocks put them after the
    // proposal, and C prevails.
    let (code, report) = verify(&p, &call_id);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("portfolio: version 2 (proposed) published as version 3"),
        "{report}"
    );
    // No writer placed a record: the database numbered every one, in the order written.
    let mut conn = p.scoring.pool.get().expect("connection");
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ordered: bool,
    }
    let seq: Seq = diesel::sql_query(
        "SELECT (SELECT recorded_seq FROM tie_decisions WHERE id = $1) > (SELECT recorded_seq FROM decision_versions WHERE call_id = $3 AND version = 1) \
            AND (SELECT recorded_seq FROM tie_decisions WHERE id = $2) > (SELECT recorded_seq FROM tie_decisions WHERE id = $1) \
            AND (SELECT min(recorded_seq) FROM tie_decisions WHERE call_id = $3) > 0 AS ordered",
    )
    .bind::<diesel::sql_types::Uuid, _>(b)
    .bind::<diesel::sql_types::Uuid, _>(c)
    .bind::<diesel::sql_types::Uuid, _>(call)
    .get_result(&mut conn)
    .expect("the order of records");
    assert!(seq.ordered);

    // A number once given stands: an UPDATE that sets one is refused on every numbered
    // table, and a no-op UPDATE of an assignment or a case moves nothing; an assignment is
    // numbered again only when it is actually voided or marked (a case, when its status
    // changes).
    #[derive(QueryableByName)]
    struct Numbers {
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::BigInt>)]
        seqs: Vec<i64>,
    }
    let numbers = |conn: &mut PgConnection| -> Vec<i64> {
        diesel::sql_query(
            "SELECT array(SELECT recorded_seq FROM assignments WHERE call_id = $1 ORDER BY id) \
               || array(SELECT recorded_seq FROM evaluation_cases WHERE call_id = $1 ORDER BY id) AS seqs",
        )
        .bind::<diesel::sql_types::Uuid, _>(call)
        .get_result::<Numbers>(conn)
        .expect("numbers")
        .seqs
    };
    for refused in [
        "UPDATE assignments SET recorded_seq = 1 WHERE call_id = $1",
        "UPDATE evaluation_cases SET recorded_seq = 1 WHERE call_id = $1",
        "UPDATE score_sheet_versions SET recorded_seq = 1 WHERE assignment_id IN (SELECT id FROM assignments WHERE call_id = $1)",
        "UPDATE evaluation_config_versions SET recorded_seq = 1 WHERE call_id = $1",
        "UPDATE evaluation_config_versions SET recorded_by = recorded_by WHERE call_id = $1",
        "UPDATE decision_versions SET recorded_seq = 1 WHERE call_id = $1",
    ] {
        let e = diesel::sql_query(refused)
            .bind::<diesel::sql_types::Uuid, _>(call)
            .execute(&mut conn)
            .expect_err(refused);
        assert!(
            e.to_string().contains("recorded_seq") || e.to_string().contains("append-only"),
            "{refused}: {e}"
        );
    }
    let before = numbers(&mut conn);
    assert!(!before.is_empty());
    diesel::sql_query(
        "UPDATE assignments SET voided_at = voided_at, conflict_noted_at = conflict_noted_at, reviewer_id = reviewer_id WHERE call_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(call)
    .execute(&mut conn)
    .expect("a no-op update");
    diesel::sql_query(
        "UPDATE evaluation_cases SET status = status, title = title WHERE call_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(call)
    .execute(&mut conn)
    .expect("a no-op update");
    assert_eq!(numbers(&mut conn), before);
}
