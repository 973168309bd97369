//! The seeded programme end to end through the gateway: 15 consortia apply, written review
//! keeps 10, presentations rank them afresh, and 5 are selected under a slot constraint that
//! changes the outcome against pure rank order, with the explanation saying so. A second
//! call runs with normalisation on, its expected ranking worked out here from the definition.

use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{draft, error_code, eventually, register, OrgType, Platform, OPEN_CALL, SUBMIT};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Proposal i's written-review score: 90, 87, ..., 48. Every reviewer scores it the same,
/// so the consensus is exactly this and the written-review ranking is the index order.
fn quality(i: usize) -> i64 {
    90 - 3 * i as i64
}

/// The presentations reorder the ten finalists (indices, best first): none keeps its
/// written-review score, and the top five differ, so a portfolio built from the written
/// review ([0, 1, 2, 3, 6] after the slot constraint) cannot pass for this one.
const PRESENTATION_ORDER: [usize; 10] = [8, 7, 5, 3, 4, 6, 2, 1, 0, 9];

/// Finalist i's presentation score: 88, 84, ..., 52 down `PRESENTATION_ORDER`.
fn presentation(i: usize) -> i64 {
    let rank = PRESENTATION_ORDER
        .iter()
        .position(|&j| j == i)
        .expect("a finalist");
    88 - 4 * rank as i64
}

fn sheet(q: i64) -> Value {
    let tech = q * 4 / 10;
    let strategy = q * 3 / 10;
    json!([
        { "criterion": "technology", "points": tech, "comment": "solid pre-training plan" },
        { "criterion": "strategy", "points": strategy },
        { "criterion": "ecosystem", "points": q - tech - strategy },
    ])
}

fn ok(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]
}

/// Every reviewer scores every assignment they have in `stage` with `score(reviewer,
/// proposal index)` points; returns how many sheets went in.
async fn score_all(
    p: &Platform,
    reviewers: &[&str],
    call_id: &str,
    stage: i32,
    index_of: &HashMap<String, usize>,
    score: impl Fn(&str, usize) -> i64,
) -> usize {
    let mut scored = 0;
    for reviewer in reviewers {
        let token = p.ctx.bearer_for(reviewer, Role::Reviewer, None);
        let body = p
            .graphql(Some(&token), "query($c: UUID!, $s: Int!) { assignments(callId: $c, stage: $s, first: 100) { items { id proposalId reviewerId } } }", json!({ "c": call_id, "s": stage }))
            .await;
        for a in ok(&body)["assignments"]["items"].as_array().expect("list") {
            assert_eq!(
                a["reviewerId"], *reviewer,
                "a reviewer sees only their own assignments"
            );
            let i = index_of[a["proposalId"].as_str().expect("id")];
            let points = score(reviewer, i);
            let body = p
                .graphql(Some(&token), "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }", json!({ "a": a["id"], "s": sheet(points) }))
                .await;
            assert_eq!(ok(&body)["scoreProposal"]["total"], points);
            scored += 1;
        }
    }
    scored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_programme_selects_five_of_fifteen_and_explains_the_slot_constraint() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let body = p
        .graphql(Some(&officer), "mutation { createProgramme(name: \"Sovereign AI Foundation Model\", fiscalYear: 2026) { id fiscalYear } }", json!({}))
        .await;
    let programme = ok(&body)["createProgramme"]["id"]
        .as_str()
        .expect("programme")
        .to_owned();
    let body = p.graphql(Some(&officer), "mutation { createProgramme(name: \"Sovereign AI Foundation Model\", fiscalYear: 2026) { id } }", json!({})).await;
    assert_eq!(error_code(&body), Some("PROGRAMME_EXISTS"), "{body}");
    let now = chrono::Utc::now();
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "programmeId": programme, "title": "Sovereign AI Foundation Model 2026", "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(), "closesAt": (now + chrono::Duration::hours(2)).to_rfc3339() } }))
        .await;
    let call_id = ok(&body)["openCall"]["id"]
        .as_str()
        .expect("call")
        .to_owned();
    let body = p
        .graphql(
            Some(&officer),
            "query($p: UUID!) { calls(programmeId: $p) { items { id programmeId } } }",
            json!({ "p": programme }),
        )
        .await;
    assert_eq!(ok(&body)["calls"]["items"][0]["id"], call_id);

    // Fifteen consortia apply. The top five by quality are all led by large enterprises;
    // #7 (index 6) is SME-led, #10 (index 9) university-led.
    let mut consortia = Vec::new();
    let mut index_of = HashMap::new();
    for i in 0..15 {
        let consortium = ConsortiumId::new();
        let lead = match i {
            6 => OrgType::Sme,
            9 => OrgType::University,
            _ => OrgType::LargeEnterprise,
        };
        register(&p, consortium, lead).await;
        let id = draft(&p, consortium, &call_id, &format!("Model {}", i + 1)).await;
        let token = p.ctx.bearer(Role::Consortium, Some(consortium));
        ok(&p
            .graphql(
                Some(&token),
                SUBMIT,
                json!({ "id": id, "key": format!("k{i}") }),
            )
            .await);
        index_of.insert(id.clone(), i);
        consortia.push((consortium, id));
    }
    let count = || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($c: UUID!) { evaluationCases(callId: $c, first: 100) { items { id } } }",
                json!({ "c": call_id }),
            )
            .await;
        body["data"]["evaluationCases"]["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    eventually(Duration::from_secs(60), || async {
        (count().await == 15).then_some(())
    })
    .await
    .expect("scoring opened 15 cases");

    // The officer configures the seeded settings (without normalisation: every reviewer here
    // scores alike, so the ranking is known in advance).
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }", json!({})).await;
    let mut config = ok(&body)["defaultEvaluationConfig"].clone();
    config["normalise"] = json!(false);
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
    .expect("scoring knows the call and accepts the settings");

    // Six reviewers; one works at consortium #4's university partner.
    let conflicted_members = p.graphql(Some(&officer), "query($id: UUID!) { consortium(id: $id) { members { name businessRegistrationNumber role } } }", json!({ "id": consortia[3].0 })).await;
    let partner = ok(&conflicted_members)["consortium"]["members"][1].clone();
    let reviewers = ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5", "rev-conflict"];
    for r in reviewers {
        let (org, brn) = if r == "rev-conflict" {
            (
                partner["name"].as_str().expect("name").to_owned(),
                partner["businessRegistrationNumber"].clone(),
            )
        } else {
            (format!("Institute {r}"), Value::Null)
        };
        let body = p
            .graphql(Some(&officer), "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": r, "organisation": org, "businessRegistrationNumber": brn, "expertise": ["LLM"] } }))
            .await;
        ok(&body);
    }

    // Written review, once submissions have closed.
    kaip_e2e::pass_deadline(&p, &call_id).await;
    let body = p.graphql(Some(&officer), "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned blocked { reviewerId proposalId reason } } }", json!({ "c": call_id })).await;
    let report = &ok(&body)["assignReviewers"];
    assert_eq!(report["assigned"], 45);
    let blocked = report["blocked"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["reviewerId"], "rev-conflict");
    assert_eq!(blocked[0]["proposalId"], consortia[3].1);
    assert!(
        blocked[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("is a partner of the consortium"),
        "{blocked:?}"
    );

    // The conflicted reviewer cannot read that proposal's case, nor score it.
    let conflicted = p.ctx.bearer_for("rev-conflict", Role::Reviewer, None);
    let body = p
        .graphql(
            Some(&conflicted),
            "query($p: UUID!) { evaluationCase(proposalId: $p) { id } }",
            json!({ "p": consortia[3].1 }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("EVALUATION_CASE_NOT_FOUND"),
        "{body}"
    );
    let body = p
        .graphql(
            Some(&conflicted),
            "{ evaluationCases(first: 100) { items { proposalId } } }",
            json!({}),
        )
        .await;
    assert!(
        !body.to_string().contains(&consortia[3].1),
        "hidden from the conflicted reviewer"
    );

    // A score out of range and an unknown criterion are refused by name.
    let body = p
        .graphql(
            Some(&p.ctx.bearer_for("rev-1", Role::Reviewer, None)),
            "query($c: UUID!) { assignments(callId: $c, first: 1) { items { id } } }",
            json!({ "c": call_id }),
        )
        .await;
    let some_assignment = ok(&body)["assignments"]["items"][0]["id"].clone();
    let score = "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }";
    let rev1 = p.ctx.bearer_for("rev-1", Role::Reviewer, None);
    let body = p.graphql(Some(&rev1), score, json!({ "a": some_assignment, "s": [{ "criterion": "technology", "points": 41 }, { "criterion": "strategy", "points": 1 }, { "criterion": "ecosystem", "points": 1 }] })).await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("scores.technology: must be between 0 and 40 points"),
        "{body}"
    );
    let body = p
        .graphql(
            Some(&rev1),
            score,
            json!({ "a": some_assignment, "s": [{ "criterion": "charisma", "points": 1 }] }),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("scores.charisma: is not a criterion"),
        "{body}"
    );
    // Nobody else's assignment can be scored.
    let body = p
        .graphql(
            Some(&p.ctx.bearer_for("rev-2", Role::Reviewer, None)),
            score,
            json!({ "a": some_assignment, "s": sheet(50) }),
        )
        .await;
    assert_eq!(error_code(&body), Some("ASSIGNMENT_NOT_FOUND"), "{body}");

    // Closing before every sheet is in is refused.
    let close = "mutation($c: UUID!, $s: Int!) { closeStage(callId: $c, stage: $s) { proposalId position totalCenti advanced eligible } }";
    let body = p
        .graphql(Some(&officer), close, json!({ "c": call_id, "s": 0 }))
        .await;
    assert_eq!(error_code(&body), Some("STAGE_INCOMPLETE"), "{body}");

    assert_eq!(
        score_all(&p, &reviewers, &call_id, 0, &index_of, |_, i| quality(i)).await,
        45
    );
    let body = p
        .graphql(Some(&officer), close, json!({ "c": call_id, "s": 0 }))
        .await;
    let written = ok(&body)["closeStage"].as_array().expect("results").clone();
    assert_eq!(written.len(), 15);
    for r in &written {
        let i = index_of[r["proposalId"].as_str().expect("id")];
        assert_eq!(r["position"], i as i64 + 1);
        assert_eq!(r["totalCenti"], quality(i) * 100);
        assert_eq!(r["advanced"], i < 10, "15 -> 10");
    }

    // Presentations: the ten finalists scored again.
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 1) { assigned } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(ok(&body)["assignReviewers"]["assigned"], 30);
    assert_eq!(
        score_all(&p, &reviewers, &call_id, 1, &index_of, |_, i| presentation(
            i
        ))
        .await,
        30
    );
    let body = p
        .graphql(Some(&officer), close, json!({ "c": call_id, "s": 1 }))
        .await;
    let presented = ok(&body)["closeStage"].as_array().expect("results").clone();
    assert_eq!(presented.len(), 10);
    for r in &presented {
        let i = index_of[r["proposalId"].as_str().expect("id")];
        let rank = PRESENTATION_ORDER.iter().position(|&j| j == i);
        assert_eq!(r["position"], rank.expect("a finalist") as i64 + 1, "{r}");
        assert_eq!(r["totalCenti"], presentation(i) * 100, "{r}");
        assert_eq!(r["advanced"], true, "the last stage keeps every finalist");
    }

    // Stage results page in rank order for the ministry...
    let results = "query($c: UUID!, $a: ID) { stageResults(callId: $c, stage: 0, first: 6, after: $a) { items { position } nextCursor } }";
    let body = p
        .graphql(Some(&officer), results, json!({ "c": call_id }))
        .await;
    let first_page = &ok(&body)["stageResults"];
    assert_eq!(first_page["items"].as_array().map(Vec::len), Some(6));
    let body = p
        .graphql(
            Some(&officer),
            results,
            json!({ "c": call_id, "a": first_page["nextCursor"] }),
        )
        .await;
    let second_page = &ok(&body)["stageResults"];
    assert_eq!(second_page["items"][0]["position"], 7);
    assert_eq!(second_page["items"].as_array().map(Vec::len), Some(6));
    // ... and a reviewer (the conflicted one included) may not read them.
    let body = p
        .graphql(
            Some(&conflicted),
            "query($c: UUID!) { stageResults(callId: $c, stage: 0) { items { totalCenti } } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // An override needs a reason; "select nobody" is a valid outcome of one, waiving the
    // number of teams and the slot constraint by name.
    let propose = "mutation($c: UUID!, $o: SelectionOverrideInput) { proposeSelection(callId: $c, overrideWith: $o) { selected overrideReason departure { displaced } } }";
    let body = p
        .graphql(
            Some(&officer),
            propose,
            json!({ "c": call_id, "o": { "selected": [], "reason": " " } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    let body = p.graphql(Some(&officer), propose, json!({ "c": call_id, "o": { "selected": [], "reason": "re-call: no proposal meets the bar", "waivers": ["teams", "at_least:sme_or_academia_led"] } })).await;
    let nobody = &ok(&body)["proposeSelection"];
    assert_eq!(nobody["selected"], json!([]));
    assert_eq!(
        nobody["overrideReason"],
        "re-call: no proposal meets the bar"
    );
    assert_eq!(
        nobody["departure"]["displaced"].as_array().map(Vec::len),
        Some(5)
    );
    let body = p
        .graphql(
            Some(&officer),
            propose,
            json!({ "c": call_id, "o": { "selected": [consortia[12].1], "reason": "x" } }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("VALIDATION_FAILED"),
        "an eliminated proposal cannot be selected: {body}"
    );

    // Selection from the presentations: the top five there (indices 8, 7, 5, 3, 4) are all
    // led by large enterprises, so the SME-led index 6 (sixth) replaces index 4 (fifth), and
    // the explanation says why.
    let mut events = p
        .subscribe(
            &officer,
            r#"subscription { events(types: ["SelectionPublished"]) { type data } }"#,
        )
        .await;
    let body = p
        .graphql(Some(&officer), "mutation($c: UUID!) { proposeSelection(callId: $c) { selected totalCenti departure { promoted displaced reasons } } }", json!({ "c": call_id }))
        .await;
    let decision = &ok(&body)["proposeSelection"];
    let portfolio = [8, 7, 5, 3, 6];
    let expected: Vec<&str> = portfolio.iter().map(|&i| consortia[i].1.as_str()).collect();
    assert_eq!(decision["selected"], json!(expected));
    assert_eq!(
        decision["totalCenti"],
        portfolio
            .iter()
            .map(|&i| presentation(i) * 100)
            .sum::<i64>()
    );
    assert_eq!(decision["departure"]["promoted"], json!([consortia[6].1]));
    assert_eq!(decision["departure"]["displaced"], json!([consortia[4].1]));
    let reasons = decision["departure"]["reasons"].to_string();
    assert!(
        reasons.contains("at least 1 sme_or_academia_led"),
        "{reasons}"
    );

    // Before publication a consortium sees nothing of it.
    let lead4 = p.ctx.bearer(Role::Consortium, Some(consortia[4].0));
    let body = p
        .graphql(
            Some(&lead4),
            "query($c: UUID!) { feedback(callId: $c) { status } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(error_code(&body), Some("DECISION_NOT_PUBLISHED"), "{body}");

    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { publishSelection(callId: $c) { publishedAt } }",
            json!({ "c": call_id }),
        )
        .await;
    assert!(ok(&body)["publishSelection"]["publishedAt"].is_string());
    let published = events.next_event().await;
    // The call's per-team maxima (its eligibility rules, defaults here), announced by intake
    // in CallOpened and forwarded by scoring: the grant services open allowances from them.
    assert_eq!(
        published["data"]["team_maxima"],
        json!({ "data_budget_krw": 15_000_000_000i64, "talent_funding_krw": 2_000_000_000 }),
        "{published}"
    );
    let teams = published["data"]["selected"].as_array().expect("teams");
    let published: Vec<&str> = teams
        .iter()
        .map(|t| t["proposal_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        published, expected,
        "the published portfolio is the proposed one"
    );
    assert!(
        teams[0]["resources"].is_object(),
        "the grant services get the requested resources"
    );

    // Intake learns the call is decided: proposals are frozen.
    let lead0 = p.ctx.bearer(Role::Consortium, Some(consortia[0].0));
    let withdraw = "mutation($p: UUID!) { withdrawProposal(proposalId: $p, reason: \"changed our mind\") { status } }";
    let frozen = eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(Some(&lead0), withdraw, json!({ "p": consortia[0].1 }))
            .await;
        (error_code(&body) == Some("CALL_DECIDED")).then_some(())
    })
    .await;
    assert!(frozen.is_some(), "withdrawal after the decision is refused");

    // The displaced consortium sees its own scores and the anonymised distribution...
    let body = p
        .graphql(Some(&lead4), "query($c: UUID!) { feedback(callId: $c) { proposalId status stages { stageName position totalCenti perCriterion { criterion centi } distribution { criterion count minCenti medianCenti maxCenti } } } }", json!({ "c": call_id }))
        .await;
    let fb = &ok(&body)["feedback"];
    assert_eq!(fb["proposalId"], consortia[4].1);
    assert_eq!(fb["status"], "not_selected");
    assert_eq!(fb["stages"][0]["position"], 5);
    assert_eq!(fb["stages"][0]["totalCenti"], quality(4) * 100);
    assert_eq!(fb["stages"][1]["position"], 5);
    assert_eq!(fb["stages"][1]["totalCenti"], presentation(4) * 100);
    assert_eq!(fb["stages"][0]["distribution"][3]["criterion"], "total");
    assert_eq!(fb["stages"][0]["distribution"][3]["count"], 15);
    assert_eq!(fb["stages"][1]["distribution"][3]["count"], 10);
    assert!(
        !body.to_string().contains(&consortia[0].1),
        "no other proposal is named"
    );
    // ... and cannot read another consortium's case.
    let body = p
        .graphql(
            Some(&lead4),
            "query($p: UUID!) { evaluationCase(proposalId: $p) { status } }",
            json!({ "p": consortia[6].1 }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("EVALUATION_CASE_NOT_FOUND"),
        "{body}"
    );

    // It appeals; the ministry answers; the answer is on record.
    let body = p
        .graphql(Some(&lead4), "mutation($c: UUID!, $p: UUID!) { fileAppeal(callId: $c, proposalId: $p, grounds: \"Our score is within 0.03 of #7\") { id } }", json!({ "c": call_id, "p": consortia[4].1 }))
        .await;
    let appeal = ok(&body)["fileAppeal"]["id"].clone();
    let body = p
        .graphql(Some(&officer), "mutation($a: UUID!) { answerAppeal(appealId: $a, answer: \"The portfolio requires an SME- or academia-led team; the ranking stands.\") { answeredAt } }", json!({ "a": appeal }))
        .await;
    assert!(ok(&body)["answerAppeal"]["answeredAt"].is_string());
    let body = p
        .graphql(
            Some(&lead4),
            "{ appeals { items { id answer } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&body)["appeals"]["items"][0]["answer"],
        "The portfolio requires an SME- or academia-led team; the ranking stands."
    );
    let body = p
        .graphql(
            Some(&p.ctx.bearer(Role::Consortium, Some(consortia[5].0))),
            "{ appeals { items { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&body)["appeals"]["items"],
        json!([]),
        "appeals are private to their consortium"
    );
}

/// The normalisation case: three reviewers each score all four proposals. `cal-a` spreads
/// their scores widely and loves #0; `cal-b` is harsh and narrow but ranks #1 first; `cal-c`
/// sits in between. On raw means #3 would come second; calibrated, #1 does.
const CALIBRATION: [(&str, [i64; 4]); 3] = [
    ("cal-a", [88, 40, 52, 64]),
    ("cal-b", [50, 60, 53, 50]),
    ("cal-c", [70, 62, 64, 58]),
];

fn calibrated(reviewer: &str, i: usize) -> i64 {
    CALIBRATION
        .iter()
        .find(|(r, _)| *r == reviewer)
        .expect("a calibration reviewer")
        .1[i]
}

/// Each proposal's consensus under z-score normalisation, in points, worked out here from
/// its definition rather than by scoring's code: population mean and standard deviation of
/// the whole panel (μ, σ) and of each reviewer (μ_r, σ_r); each total x becomes
/// μ + σ (x − μ_r) / σ_r; a proposal's consensus is the mean of its normalised totals.
fn expected_consensus() -> Vec<f64> {
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let sd = |xs: &[f64]| {
        let m = mean(xs);
        (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
    };
    let all: Vec<f64> = CALIBRATION
        .iter()
        .flat_map(|(_, s)| s.iter().map(|&x| x as f64))
        .collect();
    let (mu, sigma) = (mean(&all), sd(&all));
    let mut sum = [0.0; 4];
    for (_, scores) in CALIBRATION {
        let mine: Vec<f64> = scores.iter().map(|&x| x as f64).collect();
        let (m, s) = (mean(&mine), sd(&mine));
        for (i, x) in mine.iter().enumerate() {
            sum[i] += mu + sigma * (x - m) / s;
        }
    }
    sum.iter().map(|t| t / CALIBRATION.len() as f64).collect()
}

/// Proposal indices, best first, by `totals`.
fn order_by(totals: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..totals.len()).collect();
    order.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]));
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_normalisation_on_the_ranking_follows_each_reviewers_calibration() {
    let expected = expected_consensus();
    let ranking = order_by(&expected);
    let raw: Vec<f64> = (0..4)
        .map(|i| CALIBRATION.iter().map(|(_, s)| s[i] as f64).sum::<f64>() / 3.0)
        .collect();
    // The data must make normalisation matter, and leave no near-tie that rounding to
    // hundredths could flip.
    assert_ne!(
        ranking,
        order_by(&raw),
        "normalisation must change the order"
    );
    assert!(
        ranking
            .windows(2)
            .all(|w| expected[w[0]] - expected[w[1]] > 0.5),
        "{expected:?}"
    );

    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = kaip_e2e::open_call(&p, 2).await;
    let mut index_of = HashMap::new();
    let mut proposals = Vec::new();
    for i in 0..4 {
        let receipt =
            kaip_e2e::apply(&p, ConsortiumId::new(), &call_id, &format!("Model {i}")).await;
        let id = ok(&receipt)["submitProposal"]["proposalId"]
            .as_str()
            .expect("submitted")
            .to_owned();
        index_of.insert(id.clone(), i);
        proposals.push(id);
    }
    let cases = "query($c: UUID!) { evaluationCases(callId: $c, first: 100) { items { id } } }";
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(Some(&officer), cases, json!({ "c": call_id }))
            .await;
        (body["data"]["evaluationCases"]["items"]
            .as_array()
            .map(Vec::len)
            == Some(4))
        .then_some(())
    })
    .await
    .expect("scoring opened 4 cases");

    // One stage, two teams, no slot constraint, normalisation on: the ranking alone decides.
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }", json!({})).await;
    let mut config = ok(&body)["defaultEvaluationConfig"].clone();
    config["normalise"] = json!(true);
    config["stages"] = json!([{ "name": "presentation", "keepTop": null, "minTotal": null }]);
    config["reviewersPerProposal"] = json!(3);
    config["teams"] = json!(2);
    config["constraints"] = json!([]);
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
    .expect("scoring knows the call and accepts the settings");

    let reviewers: Vec<&str> = CALIBRATION.iter().map(|(r, _)| *r).collect();
    for r in &reviewers {
        ok(&p
            .graphql(Some(&officer), "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": r, "organisation": format!("Institute {r}"), "expertise": ["LLM"] } }))
            .await);
    }
    kaip_e2e::pass_deadline(&p, &call_id).await;
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(
        ok(&body)["assignReviewers"]["assigned"],
        12,
        "all review all"
    );
    assert_eq!(
        score_all(&p, &reviewers, &call_id, 0, &index_of, calibrated).await,
        12
    );

    let close = "mutation($c: UUID!, $s: Int!) { closeStage(callId: $c, stage: $s) { proposalId position totalCenti } }";
    let body = p
        .graphql(Some(&officer), close, json!({ "c": call_id, "s": 0 }))
        .await;
    let results = ok(&body)["closeStage"].as_array().expect("results").clone();
    assert_eq!(results.len(), 4);
    for r in &results {
        let i = index_of[r["proposalId"].as_str().expect("id")];
        let rank = ranking.iter().position(|&j| j == i).expect("ranked");
        assert_eq!(r["position"], rank as i64 + 1, "{r}");
        // Each normalised total and the mean are rounded to hundredths: at most one off.
        let centi = r["totalCenti"].as_i64().expect("centi") as f64;
        assert!(
            (centi - 100.0 * expected[i]).abs() <= 1.0,
            "proposal {i}: {centi} against {:.2}",
            100.0 * expected[i]
        );
    }

    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { selected departure { promoted } } }",
            json!({ "c": call_id }),
        )
        .await;
    let decision = &ok(&body)["proposeSelection"];
    let want: Vec<&str> = ranking[..2]
        .iter()
        .map(|&i| proposals[i].as_str())
        .collect();
    assert_eq!(decision["selected"], json!(want));
    assert!(decision["departure"].is_null(), "{decision}");
}
