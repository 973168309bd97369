//! The competition phase's rules (issue #7, evaluation side) through the gateway, against
//! real PostgreSQL and the broker: evaluation waits for the deadline and a delayed
//! submission is still reviewed; a late conflict of interest voids the reviewer's sheets,
//! keeps them and brings in a replacement (or shows the shortfall); registration numbers are
//! one organisation however typed; a withdrawal after publication is refused and explained;
//! consortia learn results at publication, without a distribution too small to be
//! anonymous; uploads are limited; settings, profiles and sheets keep their versions.

use diesel::prelude::*;
use kaip_contracts::{topics, CallId, ConsortiumId, Role};
use kaip_e2e::{
    apply, draft, error_code, eventually, member_inputs, open_call, pass_deadline, register,
    OrgType, Platform, OPEN_CALL, REGISTER, SUBMIT,
};
use serde_json::{json, Value};
use std::time::Duration;

pub(super) const CONFIGURE: &str = "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams anonymityMinGroup } }";
pub(super) const ASSIGN: &str = "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned blocked { reviewerId proposalId reason } } }";
pub(super) const REVIEWER: &str = "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id name businessRegistrationNumber } }";
pub(super) const ASSIGNMENTS: &str = "query($c: UUID!) { assignments(callId: $c, first: 100) { items { id reviewerId proposalId scored voidReason } } }";
pub(super) const SCORE: &str = "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }";
pub(super) const CLOSE: &str =
    "mutation($c: UUID!) { closeStage(callId: $c, stage: 0) { proposalId position advanced } }";
pub(super) const CASE: &str =
    "query($p: UUID!) { evaluationCase(proposalId: $p) { status stage } }";
pub(super) const SHORTFALLS: &str =
    "query($c: UUID!) { reviewerShortfalls(callId: $c) { code proposalId stage assigned needed } }";

pub(super) fn ok(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]
}

pub(super) fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// A sheet worth `points` in all (40/30/30 rubric).
pub(super) fn sheet(points: i64) -> Value {
    let tech = points * 4 / 10;
    let strategy = points * 3 / 10;
    json!([
        { "criterion": "technology", "points": tech },
        { "criterion": "strategy", "points": strategy },
        { "criterion": "ecosystem", "points": points - tech - strategy },
    ])
}

/// The seeded settings cut down to one stage, `per` reviewers per proposal and one team.
pub(super) async fn settings(p: &Platform, per: u32) -> Value {
    let officer = p.ctx.bearer(Role::Officer, None);
    let body = p.graphql(Some(&officer), "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } anonymityMinGroup } }", json!({})).await;
    let mut config = ok(&body)["defaultEvaluationConfig"].clone();
    assert_eq!(config["anonymityMinGroup"], 6, "the default");
    config["normalise"] = json!(false);
    config["stages"] = json!([{ "name": "written review", "keepTop": null, "minTotal": null }]);
    config["reviewersPerProposal"] = json!(per);
    config["teams"] = json!(1);
    config["constraints"] = json!([]);
    config
}

/// A call with `n` submitted proposals (consortium, proposal id), their cases open in
/// scoring and `config` set.
pub(super) async fn call_with(
    p: &Platform,
    n: usize,
    config: &Value,
) -> (String, Vec<(ConsortiumId, String)>) {
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = open_call(p, 2).await;
    let mut proposals = Vec::new();
    for i in 0..n {
        let consortium = ConsortiumId::new();
        let receipt = apply(p, consortium, &call_id, &format!("Model {i}")).await;
        let id = ok(&receipt)["submitProposal"]["proposalId"]
            .as_str()
            .expect("submitted")
            .to_owned();
        proposals.push((consortium, id));
    }
    wait_cases(p, &call_id, n).await;
    eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(
                Some(&officer),
                CONFIGURE,
                json!({ "c": call_id, "i": config }),
            )
            .await;
        body["errors"].is_null().then_some(())
    })
    .await
    .expect("scoring knows the call and accepts the settings");
    (call_id, proposals)
}

pub(super) async fn wait_cases(p: &Platform, call_id: &str, n: usize) {
    let officer = p.ctx.bearer(Role::Officer, None);
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
            == Some(n))
        .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("scoring opened {n} cases"));
}

pub(super) async fn reviewers(p: &Platform, ids: &[&str]) {
    let officer = p.ctx.bearer(Role::Officer, None);
    for r in ids {
        ok(&p
            .graphql(
                Some(&officer),
                REVIEWER,
                json!({ "i": { "id": r, "name": r, "organisation": format!("Institute {r}") } }),
            )
            .await);
    }
}

/// The call's assignments as `token` sees them.
pub(super) async fn assignments(p: &Platform, token: &str, call_id: &str) -> Vec<Value> {
    let body = p
        .graphql(Some(token), ASSIGNMENTS, json!({ "c": call_id }))
        .await;
    ok(&body)["assignments"]["items"]
        .as_array()
        .expect("items")
        .clone()
}

/// Every counting assignment of the call is scored by its reviewer, `points(proposal)`.
pub(super) async fn score_all(p: &Platform, call_id: &str, points: impl Fn(&str) -> i64) {
    let officer = p.ctx.bearer(Role::Officer, None);
    for a in assignments(p, &officer, call_id).await {
        if !a["voidReason"].is_null() || a["scored"] == true {
            continue;
        }
        let reviewer = a["reviewerId"].as_str().expect("reviewer");
        let token = p.ctx.bearer_for(reviewer, Role::Reviewer, None);
        let total = points(a["proposalId"].as_str().expect("proposal"));
        let body = p
            .graphql(
                Some(&token),
                SCORE,
                json!({ "a": a["id"], "s": sheet(total) }),
            )
            .await;
        assert_eq!(ok(&body)["scoreProposal"]["total"], total);
    }
}

/// A `ProposalSubmitted` intake accepted before the deadline, reaching scoring only now (its
/// event was delayed): produced on intake's topic as intake's relay would.
async fn delayed_submission(p: &Platform, call_id: &str, title: &str) -> String {
    let mut late = kaip_e2e::submitted(title);
    late.call_id = CallId(call_id.parse().expect("uuid"));
    late.submitted_at = chrono::Utc::now() - chrono::Duration::minutes(5);
    let env = kaip_e2e::envelope(&late);
    p.ctx
        .produce_raw(
            &p.ctx.topic(topics::INTAKE),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[],
        )
        .await;
    late.proposal_id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_starts_at_the_deadline_and_a_delayed_submission_is_still_reviewed() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let config = settings(&p, 2).await;
    let (call_id, in_time) = call_with(&p, 2, &config).await;
    reviewers(&p, &["r1", "r2", "r3"]).await;

    // Before the deadline: refused, naming the rule; nobody is assigned.
    let body = p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("SUBMISSIONS_STILL_OPEN"), "{body}");
    assert!(message(&body).contains("deadline"), "{body}");
    assert!(assignments(&p, &officer, &call_id).await.is_empty());

    pass_deadline(&p, &call_id).await;
    let body = p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await;
    assert_eq!(ok(&body)["assignReviewers"]["assigned"], 4);

    // A submission made in time whose event reaches scoring after stage 0 was assigned gets
    // its reviewers at once, so the stage can close with it ranked.
    let late = delayed_submission(&p, &call_id, "Delayed in transit").await;
    eventually(Duration::from_secs(60), || async {
        let mine = assignments(&p, &officer, &call_id)
            .await
            .into_iter()
            .filter(|a| a["proposalId"] == late.as_str())
            .count();
        (mine == 2).then_some(())
    })
    .await
    .expect("the delayed case got its two reviewers");
    // Distinct totals: a tie on everything would wait for an officer's order (decisions.rs).
    score_all(&p, &call_id, |proposal| {
        if proposal == late {
            70
        } else if proposal == in_time[0].1.as_str() {
            80
        } else {
            60
        }
    })
    .await;
    let body = p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await;
    let results = ok(&body)["closeStage"].as_array().expect("results").clone();
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results.iter().any(|r| r["proposalId"] == late.as_str()));

    // Once stage 0 has closed, a delayed submission cannot be ranked with its peers: it is
    // marked `late` for staff to decide, not left open forever.
    let later = delayed_submission(&p, &call_id, "Delayed past the review").await;
    let status = eventually(Duration::from_secs(60), || async {
        let body = p.graphql(Some(&officer), CASE, json!({ "p": later })).await;
        body["data"]["evaluationCase"]["status"]
            .as_str()
            .map(str::to_owned)
    })
    .await
    .expect("the case opened");
    assert_eq!(status, "late");

    // Staff resolve it: rejected as late, once, with a reason its consortium reads at once
    // (it is no competition result to hold back until publication).
    let reject = "mutation($p: UUID!, $why: String!) { rejectLateCase(proposalId: $p, reason: $why) { status stage lateResolution } }";
    let body = p
        .graphql(Some(&officer), reject, json!({ "p": later, "why": "  " }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(message(&body).starts_with("reason:"), "{body}");
    let body = p
        .graphql(Some(&officer), reject, json!({ "p": late, "why": "late" }))
        .await;
    assert_eq!(
        error_code(&body),
        Some("STATE_CONFLICT"),
        "a ranked case: {body}"
    );
    let why = "reached evaluation after the written review had closed";
    let body = p
        .graphql(Some(&officer), reject, json!({ "p": later, "why": why }))
        .await;
    assert_eq!(
        ok(&body)["rejectLateCase"],
        json!({ "status": "rejected_late", "stage": 0, "lateResolution": why })
    );
    let body = p
        .graphql(
            Some(&officer),
            reject,
            json!({ "p": later, "why": "again" }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("STATE_CONFLICT"),
        "resolved once: {body}"
    );
    let consortium: uuid::Uuid = {
        use kaip_scoring::schema::evaluation_cases;
        evaluation_cases::table
            .filter(evaluation_cases::proposal_id.eq(uuid::Uuid::parse_str(&later).expect("uuid")))
            .select(evaluation_cases::consortium_id)
            .first(&mut p.scoring.conn())
            .expect("the case")
    };
    let theirs = p
        .ctx
        .bearer(Role::Consortium, Some(ConsortiumId(consortium)));
    let body = p
        .graphql(
            Some(&theirs),
            "query($p: UUID!) { evaluationCase(proposalId: $p) { status stage lateResolution } }",
            json!({ "p": later }),
        )
        .await;
    assert_eq!(
        ok(&body)["evaluationCase"],
        json!({ "status": "rejected_late", "stage": 0, "lateResolution": why })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_conflict_voids_the_sheets_keeps_them_and_brings_in_a_replacement() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let config = settings(&p, 2).await;
    let (call_id, proposals) = call_with(&p, 2, &config).await;
    reviewers(&p, &["r1", "r2", "r3"]).await;
    pass_deadline(&p, &call_id).await;
    let body = p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await;
    assert_eq!(ok(&body)["assignReviewers"]["assigned"], 4);
    let (consortium, proposal) = proposals[0].clone();

    let all = assignments(&p, &officer, &call_id).await;
    let first = all
        .iter()
        .find(|a| a["proposalId"] == proposal.as_str())
        .expect("an assignment")
        .clone();
    let x = first["reviewerId"].as_str().expect("reviewer").to_owned();
    let assignment = first["id"].as_str().expect("id").to_owned();
    let x_token = p.ctx.bearer_for(&x, Role::Reviewer, None);

    // x scores the proposal, then changes the sheet: two versions, the latest counts.
    for total in [70, 80] {
        let body = p
            .graphql(
                Some(&x_token),
                SCORE,
                json!({ "a": assignment, "s": sheet(total) }),
            )
            .await;
        assert_eq!(ok(&body)["scoreProposal"]["total"], total);
    }
    let versions =
        "query($a: UUID!) { scoreSheetVersions(assignmentId: $a) { version total recordedBy scores { criterion points } } }";
    let body = p
        .graphql(Some(&officer), versions, json!({ "a": assignment }))
        .await;
    let history = ok(&body)["scoreSheetVersions"].clone();
    assert_eq!(
        history,
        json!([
            { "version": 1, "total": 70, "recordedBy": x, "scores": [
                { "criterion": "ecosystem", "points": 21 },
                { "criterion": "strategy", "points": 21 },
                { "criterion": "technology", "points": 28 },
            ] },
            { "version": 2, "total": 80, "recordedBy": x, "scores": [
                { "criterion": "ecosystem", "points": 24 },
                { "criterion": "strategy", "points": 24 },
                { "criterion": "technology", "points": 32 },
            ] },
        ])
    );

    // Then x declares a conflict with the proposal's consortium.
    let declare = "mutation($r: String!, $k: UUID!, $why: String!) { declareConflict(reviewerId: $r, consortiumId: $k, reason: $why) { voided { assignmentId proposalId stage hadSheet } replacements { reviewerId proposalId stage } shortfalls { proposalId assigned needed } noted { assignmentId } } }";
    let body = p
        .graphql(
            Some(&x_token),
            declare,
            json!({ "r": x, "k": consortium, "why": "advised the lead last year" }),
        )
        .await;
    // The answer says what changed: x's scored assignment void, one replacement, no gap.
    let report = ok(&body)["declareConflict"].clone();
    assert_eq!(
        report["voided"],
        json!([{ "assignmentId": assignment, "proposalId": proposal, "stage": 0, "hadSheet": true }])
    );
    assert_eq!(
        report["replacements"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(report["replacements"][0]["proposalId"], proposal.as_str());
    assert_ne!(report["replacements"][0]["reviewerId"], x.as_str());
    assert_eq!(report["shortfalls"], json!([]));
    assert_eq!(report["noted"], json!([]));

    // x can no longer see, read or score the case.
    assert!(
        !assignments(&p, &x_token, &call_id)
            .await
            .iter()
            .any(|a| a["proposalId"] == proposal.as_str()),
        "a voided assignment is not listed to its reviewer"
    );
    let body = p
        .graphql(Some(&x_token), CASE, json!({ "p": proposal }))
        .await;
    assert_eq!(
        error_code(&body),
        Some("EVALUATION_CASE_NOT_FOUND"),
        "{body}"
    );
    let body = p
        .graphql(
            Some(&x_token),
            SCORE,
            json!({ "a": assignment, "s": sheet(10) }),
        )
        .await;
    assert_eq!(error_code(&body), Some("ASSIGNMENT_NOT_FOUND"), "{body}");

    // The sheet is kept, void, with why, who and when; both versions stay.
    let all = assignments(&p, &officer, &call_id).await;
    let voided = all
        .iter()
        .find(|a| a["id"] == assignment.as_str())
        .expect("still listed to staff");
    assert_eq!(voided["scored"], true);
    assert!(
        voided["voidReason"]
            .as_str()
            .is_some_and(|r| r.contains("advised the lead last year")),
        "{voided}"
    );
    {
        use kaip_scoring::schema::{assignments, score_sheet_versions, score_sheets};
        let id: uuid::Uuid = assignment.parse().expect("uuid");
        let mut c = p.scoring.conn();
        let (by, at): (Option<String>, Option<chrono::DateTime<chrono::Utc>>) = assignments::table
            .find(id)
            .select((assignments::voided_by, assignments::voided_at))
            .first(&mut c)
            .expect("the assignment");
        assert_eq!(by.as_deref(), Some(x.as_str()));
        assert!(at.is_some());
        let kept: i64 = score_sheets::table
            .filter(score_sheets::assignment_id.eq(id))
            .count()
            .get_result(&mut c)
            .expect("count");
        assert_eq!(kept, 1, "the voided sheet is never deleted");
        let versions: i64 = score_sheet_versions::table
            .filter(score_sheet_versions::assignment_id.eq(id))
            .count()
            .get_result(&mut c)
            .expect("count");
        assert_eq!(versions, 2);
    }

    // A replacement keeps the proposal at two counting reviewers, x not among them.
    let counting: Vec<String> = all
        .iter()
        .filter(|a| a["proposalId"] == proposal.as_str() && a["voidReason"].is_null())
        .map(|a| a["reviewerId"].as_str().expect("reviewer").to_owned())
        .collect();
    assert_eq!(counting.len(), 2, "{all:?}");
    assert!(!counting.contains(&x));
    let body = p
        .graphql(Some(&officer), SHORTFALLS, json!({ "c": call_id }))
        .await;
    assert_eq!(ok(&body)["reviewerShortfalls"], json!([]));

    // A second late conflict leaves nobody eligible: a coded shortfall staff can see, and
    // the stage does not close short.
    let y = counting[0].clone();
    let body = p
        .graphql(
            Some(&officer),
            declare,
            json!({ "r": y, "k": consortium, "why": "co-author of the lead's paper" }),
        )
        .await;
    let report = ok(&body)["declareConflict"].clone();
    assert_eq!(report["voided"][0]["hadSheet"], false, "{report}");
    assert_eq!(report["replacements"], json!([]));
    assert_eq!(
        report["shortfalls"],
        json!([{ "proposalId": proposal, "assigned": 1, "needed": 2 }])
    );
    let body = p
        .graphql(Some(&officer), SHORTFALLS, json!({ "c": call_id }))
        .await;
    assert_eq!(
        ok(&body)["reviewerShortfalls"],
        json!([{ "code": "REVIEWER_SHORTFALL", "proposalId": proposal, "stage": 0, "assigned": 1, "needed": 2 }])
    );
    score_all(&p, &call_id, |_| 60).await;
    let body = p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await;
    assert_eq!(error_code(&body), Some("STAGE_INCOMPLETE"), "{body}");
    assert!(
        message(&body).contains(&proposal) && message(&body).contains("1 of the 2"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_numbers_are_one_organisation_however_typed() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let call_id = open_call(&p, 2).await;
    // Upstage-like lead registered as 314-82-00017.
    let upstage = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(upstage));
    let mut members = member_inputs(4242, OrgType::Startup);
    members[0]["businessRegistrationNumber"] = json!("314-82-00017");
    ok(&p
        .graphql(
            Some(&lead),
            REGISTER,
            json!({ "id": upstage, "input": { "name": "Upstage team", "members": members } }),
        )
        .await);
    let id = draft(&p, upstage, &call_id, "Solar").await;
    ok(&p
        .graphql(Some(&lead), SUBMIT, json!({ "id": id, "key": "solar" }))
        .await);
    apply(&p, ConsortiumId::new(), &call_id, "Other").await;
    wait_cases(&p, &call_id, 2).await;
    let config = settings(&p, 1).await;
    eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(
                Some(&officer),
                CONFIGURE,
                json!({ "c": call_id, "i": config }),
            )
            .await;
        body["errors"].is_null().then_some(())
    })
    .await
    .expect("settings accepted");

    // An invalid number is refused by name, and nothing is stored.
    let body = p
        .graphql(Some(&officer), REVIEWER, json!({ "i": { "id": "rev-bad", "name": "Bad", "organisation": "Nowhere", "businessRegistrationNumber": "314-82-00013" } }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("business_registration_number:"),
        "{body}"
    );
    let history = "query($r: String!) { reviewerVersions(reviewerId: $r) { version name organisation businessRegistrationNumber recordedBy } }";
    let body = p
        .graphql(Some(&officer), history, json!({ "r": "rev-bad" }))
        .await;
    assert_eq!(error_code(&body), Some("REVIEWER_NOT_FOUND"), "{body}");

    // Typed without dashes, under another name: the same organisation.
    let body = p
        .graphql(Some(&officer), REVIEWER, json!({ "i": { "id": "rev-typed", "name": "Kim", "organisation": "A holding company", "businessRegistrationNumber": "3148200017" } }))
        .await;
    assert_eq!(
        ok(&body)["registerReviewer"]["businessRegistrationNumber"],
        "314-82-00017"
    );
    // Re-registration is a new version; the first is kept.
    ok(&p
        .graphql(Some(&officer), REVIEWER, json!({ "i": { "id": "rev-typed", "name": "Kim Min-ji", "organisation": "A holding company", "businessRegistrationNumber": "314-82-00017" } }))
        .await);
    let body = p
        .graphql(Some(&officer), history, json!({ "r": "rev-typed" }))
        .await;
    let versions = ok(&body)["reviewerVersions"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["name"], "Kim");
    assert_eq!(versions[1]["name"], "Kim Min-ji");
    assert!(versions.iter().all(|v| v["recordedBy"].is_string()));
    reviewers(&p, &["rev-other"]).await;
    // A profile stored before numbers were normalised keeps its number as typed: assignment
    // must still see it is the lead (the registration path cannot have normalised it).
    {
        use kaip_scoring::schema::reviewers;
        diesel::insert_into(reviewers::table)
            .values((
                reviewers::id.eq("rev-legacy"),
                reviewers::name.eq("Lee"),
                reviewers::organisation.eq("Registered long ago"),
                reviewers::brn.eq("3148200017"),
                reviewers::expertise.eq(json!([])),
            ))
            .execute(&mut p.scoring.conn())
            .expect("a legacy profile");
    }

    pass_deadline(&p, &call_id).await;
    let body = p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await;
    let report = &ok(&body)["assignReviewers"];
    assert_eq!(report["assigned"], 2);
    let mut blocked = report["blocked"].as_array().expect("blocked").clone();
    blocked.sort_by_key(|b| b["reviewerId"].as_str().map(str::to_owned));
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    for (b, reviewer) in blocked.iter().zip(["rev-legacy", "rev-typed"]) {
        assert_eq!(b["reviewerId"], reviewer);
        assert_eq!(b["proposalId"], id);
        assert!(
            b["reason"].as_str().is_some_and(|r| r.contains("is lead")),
            "{blocked:?}"
        );
    }
}

/// Runs a one-stage call of three proposals to a proposed selection (proposal i scores
/// 90 - 10 i; the best two are finalists, the third is eliminated); returns the call and
/// its proposals.
async fn decided_call(p: &Platform, keep: u32) -> (String, Vec<(ConsortiumId, String)>) {
    let officer = p.ctx.bearer(Role::Officer, None);
    let mut config = settings(p, 1).await;
    config["stages"] = json!([{ "name": "written review", "keepTop": keep, "minTotal": null }]);
    let (call_id, proposals) = call_with(p, 3, &config).await;
    reviewers(p, &["r1"]).await;
    pass_deadline(p, &call_id).await;
    ok(&p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await);
    let index: Vec<String> = proposals.iter().map(|(_, id)| id.clone()).collect();
    score_all(p, &call_id, |id| {
        90 - 10 * index.iter().position(|p| p == id).expect("ours") as i64
    })
    .await;
    ok(&p
        .graphql(Some(&officer), CLOSE, json!({ "c": call_id }))
        .await);
    ok(&p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { proposeSelection(callId: $c) { selected } }",
            json!({ "c": call_id }),
        )
        .await);
    (call_id, proposals)
}

async fn publish(p: &Platform, call_id: &str) {
    let officer = p.ctx.bearer(Role::Officer, None);
    ok(&p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { publishSelection(callId: $c) { publishedAt } }",
            json!({ "c": call_id }),
        )
        .await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consortia_learn_results_at_publication_and_small_groups_stay_anonymous() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);

    // Settings keep their versions; a group too small to be anonymous is refused by name.
    let config = settings(&p, 1).await;
    let (call_id, _) = call_with(&p, 0, &config).await;
    let mut small = config.clone();
    // Five is one short: a consortium whose total is not shown would learn the other hidden
    // one from the mean.
    small["anonymityMinGroup"] = json!(5);
    let body = p
        .graphql(
            Some(&officer),
            CONFIGURE,
            json!({ "c": call_id, "i": small }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(message(&body).starts_with("anonymity_min_group:"), "{body}");
    let mut two_teams = config.clone();
    two_teams["teams"] = json!(2);
    ok(&p
        .graphql(
            Some(&officer),
            CONFIGURE,
            json!({ "c": call_id, "i": two_teams }),
        )
        .await);
    let body = p
        .graphql(Some(&officer), "query($c: UUID!) { evaluationConfigVersions(callId: $c) { version recordedBy config { teams anonymityMinGroup } } }", json!({ "c": call_id }))
        .await;
    let versions = ok(&body)["evaluationConfigVersions"].clone();
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    assert_eq!(versions[0]["config"]["teams"], 1);
    assert_eq!(versions[1]["config"]["teams"], 2);
    assert_eq!(versions[1]["config"]["anonymityMinGroup"], 6);

    let (call_id, proposals) = decided_call(&p, 2).await;
    let status_for = |consortium: ConsortiumId, proposal: String| {
        let p = &p;
        async move {
            let token = p.ctx.bearer(Role::Consortium, Some(consortium));
            let body = p
                .graphql(Some(&token), CASE, json!({ "p": proposal }))
                .await;
            let direct = ok(&body)["evaluationCase"].clone();
            let body = p
                .graphql(
                    Some(&token),
                    "query($p: UUID!) { proposal(id: $p) { evaluationCase { status stage } } }",
                    json!({ "p": proposal }),
                )
                .await;
            assert_eq!(
                ok(&body)["proposal"]["evaluationCase"],
                direct,
                "both ways agree"
            );
            direct
        }
    };
    // Stage 0 has closed: staff see who is out, consortia still see a neutral status.
    let body = p
        .graphql(Some(&officer), CASE, json!({ "p": proposals[2].1 }))
        .await;
    assert_eq!(ok(&body)["evaluationCase"]["status"], "eliminated");
    for (consortium, proposal) in &proposals {
        assert_eq!(
            status_for(*consortium, proposal.clone()).await,
            json!({ "status": "under_review", "stage": 0 })
        );
    }

    publish(&p, &call_id).await;
    assert_eq!(
        status_for(proposals[0].0, proposals[0].1.clone()).await["status"],
        "selected"
    );
    assert_eq!(
        status_for(proposals[2].0, proposals[2].1.clone()).await["status"],
        "eliminated"
    );

    // Three proposals are fewer than the default six: no distribution, and why.
    let token = p.ctx.bearer(Role::Consortium, Some(proposals[0].0));
    let body = p
        .graphql(Some(&token), "query($c: UUID!) { feedback(callId: $c) { stages { totalCenti distribution { criterion } distributionWithheld } } }", json!({ "c": call_id }))
        .await;
    let stage = &ok(&body)["feedback"]["stages"][0];
    assert_eq!(stage["totalCenti"], 9000);
    assert_eq!(stage["distribution"], json!([]));
    assert!(
        stage["distributionWithheld"]
            .as_str()
            .is_some_and(|w| w.contains("3 proposal(s)")),
        "{stage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_that_reaches_scoring_after_publication_is_refused_and_explained() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, proposals) = decided_call(&p, 3).await;
    publish(&p, &call_id).await;
    let call = "query($c: UUID!) { call(id: $c) { decidedAt } }";
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(Some(&officer), call, json!({ "c": call_id }))
            .await;
        body["data"]["call"]["decidedAt"].is_string().then_some(())
    })
    .await
    .expect("intake learned of the publication");

    // The race: the consortium withdraws while intake has not yet learned of the
    // publication (put back to that moment here), so intake accepts it.
    {
        use kaip_intake::schema::calls;
        let id: uuid::Uuid = call_id.parse().expect("uuid");
        diesel::update(calls::table.find(id))
            .set(calls::decided_at.eq(None::<chrono::DateTime<chrono::Utc>>))
            .execute(&mut p.intake.conn())
            .expect("rewind intake");
    }
    let (consortium, proposal) = proposals[0].clone();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    let body = p
        .graphql(
            Some(&lead),
            "mutation($p: UUID!) { withdrawProposal(proposalId: $p, reason: \"merging with another team\") { status withdrawal { withdrawnBy } } }",
            json!({ "p": proposal }),
        )
        .await;
    assert_eq!(ok(&body)["withdrawProposal"]["status"], "withdrawn");
    assert!(ok(&body)["withdrawProposal"]["withdrawal"]["withdrawnBy"].is_string());

    // Scoring owns the decision: it refuses, and the consortium reads why on its proposal.
    let seen = "query($p: UUID!) { proposal(id: $p) { status withdrawal { reason withdrawnBy } withdrawalRefusal { reason refusedAt } } }";
    let restored = eventually(Duration::from_secs(60), || async {
        let body = p.graphql(Some(&lead), seen, json!({ "p": proposal })).await;
        let got = body["data"]["proposal"].clone();
        (got["status"] == "submitted").then_some(got)
    })
    .await
    .expect("intake applied the refusal");
    let why = restored["withdrawalRefusal"]["reason"]
        .as_str()
        .expect("a reason");
    assert!(
        why.contains("published") && why.contains("selected"),
        "{why}"
    );
    assert_eq!(
        restored["withdrawal"]["reason"], "merging with another team",
        "the withdrawal stays on record"
    );

    // A second withdrawal (intake still unaware of the publication) is refused by name and
    // changes nothing: the first stays on record, and the history holds it alone.
    let body = p
        .graphql(
            Some(&lead),
            "mutation($p: UUID!) { withdrawProposal(proposalId: $p, reason: \"trying again\") { status } }",
            json!({ "p": proposal }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("WITHDRAWAL_ALREADY_REFUSED"),
        "{body}"
    );
    assert!(message(&body).contains("refused"), "{body}");
    let body = p.graphql(Some(&lead), seen, json!({ "p": proposal })).await;
    assert_eq!(ok(&body)["proposal"]["status"], "submitted");
    assert_eq!(
        ok(&body)["proposal"]["withdrawal"]["reason"],
        "merging with another team"
    );
    {
        use kaip_intake::schema::proposal_withdrawals;
        let rows: Vec<String> = proposal_withdrawals::table
            .filter(
                proposal_withdrawals::proposal_id
                    .eq(uuid::Uuid::parse_str(&proposal).expect("uuid")),
            )
            .order(proposal_withdrawals::id.asc())
            .select(proposal_withdrawals::reason)
            .load(&mut p.intake.conn())
            .expect("history");
        assert_eq!(rows, vec!["merging with another team".to_owned()]);
    }
    let body = p
        .graphql(Some(&officer), CASE, json!({ "p": proposal }))
        .await;
    assert_eq!(ok(&body)["evaluationCase"]["status"], "selected");
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { selection(callId: $c) { selected } }",
            json!({ "c": call_id }),
        )
        .await;
    assert_eq!(ok(&body)["selection"]["selected"], json!([proposal]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_take_the_calls_documents_within_a_total_and_profiles_keep_their_versions() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let now = chrono::Utc::now();
    let body = p
        .graphql(Some(&officer), OPEN_CALL, json!({ "input": { "title": "Documents", "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(), "closesAt": (now + chrono::Duration::hours(2)).to_rfc3339(), "requiredDocuments": ["model_card"] } }))
        .await;
    let call_id = ok(&body)["openCall"]["id"]
        .as_str()
        .expect("call")
        .to_owned();

    // A consortium's profile keeps its versions.
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    register(&p, consortium, OrgType::Sme).await;
    let seed = (consortium.0.as_u128() % 100_000_000) as u32;
    let body = p
        .graphql(Some(&lead), REGISTER, json!({ "id": consortium, "input": { "name": "Renamed team", "members": member_inputs(seed, OrgType::Startup) } }))
        .await;
    ok(&body);
    let body = p
        .graphql(Some(&officer), "query($k: UUID!) { consortium(id: $k) { name version members { orgType } } consortiumVersions(id: $k) { version name recordedBy members { orgType role } } }", json!({ "k": consortium }))
        .await;
    let data = ok(&body);
    assert_eq!(data["consortium"]["name"], "Renamed team");
    assert_eq!(data["consortium"]["version"], 2);
    let versions = data["consortiumVersions"].as_array().expect("list");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["members"][0]["orgType"], "SME");
    assert_eq!(versions[1]["members"][0]["orgType"], "STARTUP");
    assert!(versions.iter().all(|v| v["recordedBy"].is_string()));

    let id = draft(&p, consortium, &call_id, "Documents").await;
    let upload = "mutation($id: UUID!, $k: String!, $c: String!) { uploadDocument(proposalId: $id, kind: $k, filename: \"f.bin\", contentBase64: $c) { documents { kind sizeBytes } } }";
    let docs = || async {
        let body = p
            .graphql(
                Some(&lead),
                "query($id: UUID!) { proposal(id: $id) { documents { kind sizeBytes } } }",
                json!({ "id": id }),
            )
            .await;
        ok(&body)["proposal"]["documents"].clone()
    };

    // A kind the call neither requires nor allows: refused by name, nothing stored.
    let body = p
        .graphql(
            Some(&lead),
            upload,
            json!({ "id": id, "k": "video", "c": "YWJj" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("kind:") && message(&body).contains("model_card"),
        "{body}"
    );
    assert_eq!(docs().await, json!([]));

    // The required document and optional ones, up to the total.
    use base64::Engine;
    let five_mib = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 5 * 1024 * 1024]);
    ok(&p
        .graphql(
            Some(&lead),
            upload,
            json!({ "id": id, "k": "model_card", "c": "YWJj" }),
        )
        .await);
    for kind in ["annex", "cv", "letter_of_support"] {
        ok(&p
            .graphql(
                Some(&lead),
                upload,
                json!({ "id": id, "k": kind, "c": five_mib }),
            )
            .await);
    }
    // 3 bytes + 15 MiB stored: another 5 MiB would pass the 20 MiB per proposal.
    let body = p
        .graphql(
            Some(&lead),
            upload,
            json!({ "id": id, "k": "data_management_plan", "c": five_mib }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("content_base64:") && message(&body).contains("per proposal"),
        "{body}"
    );
    assert_eq!(docs().await.as_array().map(Vec::len), Some(4));
    // Replacing a document counts its new size, not both.
    ok(&p
        .graphql(
            Some(&lead),
            upload,
            json!({ "id": id, "k": "annex", "c": five_mib }),
        )
        .await);
}
