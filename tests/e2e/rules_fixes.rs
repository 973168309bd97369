//! The competition rules' defects a hostile review found (issue #7), through the gateway
//! against real PostgreSQL and the broker. The races are made deterministic: the test holds
//! a call's row in its own transaction over a raw PostgreSQL connection, as `closeStage` or
//! `assignReviewers` would while they work, and checks that the request waits for it and then
//! sees the other side's work whole.

use super::rules::{
    assignments, call_with, message, ok, reviewers, settings, sheet, wait_cases, ASSIGN, CASE,
    SCORE,
};
use diesel::prelude::*;
use diesel::sql_types;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{apply, error_code, eventually, open_call, pass_deadline, Platform};
use serde_json::{json, Value};
use std::time::Duration;

const DECLARE: &str = "mutation($r: String!, $k: UUID!, $why: String!) { declareConflict(reviewerId: $r, consortiumId: $k, reason: $why) { voided { assignmentId proposalId stage hadSheet } replacements { reviewerId proposalId stage } shortfalls { proposalId assigned needed } noted { assignmentId proposalId stage hadSheet } } }";

/// How long a request must still be waiting to count as blocked on the lock.
const BLOCKED: Duration = Duration::from_millis(2500);

fn uuid(s: &str) -> uuid::Uuid {
    s.parse().expect("uuid")
}

/// Opens a transaction on `conn` holding `call`'s row, as `closeStage` and `assignReviewers`
/// hold it while they work.
fn hold_call(conn: &mut PgConnection, call: uuid::Uuid) {
    diesel::sql_query("BEGIN").execute(conn).expect("begin");
    diesel::sql_query("SELECT id FROM calls WHERE id = $1 FOR UPDATE")
        .bind::<sql_types::Uuid, _>(call)
        .execute(conn)
        .expect("the call's row");
}

/// Counts rows of `sql` (one uuid parameter) from a fresh connection: what is committed.
fn count(p: &Platform, sql: &str, id: uuid::Uuid) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .bind::<sql_types::Uuid, _>(id)
        .get_result::<N>(&mut p.scoring.conn())
        .expect("count")
        .n
}

/// A one-stage call of two proposals, reviewers `ids`, past its deadline.
async fn ready_call(p: &Platform, per: u32, ids: &[&str]) -> (String, Vec<(ConsortiumId, String)>) {
    let config = settings(p, per).await;
    let (call_id, proposals) = call_with(p, 2, &config).await;
    reviewers(p, ids).await;
    pass_deadline(p, &call_id).await;
    (call_id, proposals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_or_a_sheet_racing_a_stage_close_waits_and_then_leaves_the_closed_stage_alone() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, proposals) = ready_call(&p, 1, &["r1", "r2", "r3"]).await;
    ok(&p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await);
    let (consortium, proposal) = proposals[0].clone();
    let all = assignments(&p, &officer, &call_id).await;
    let mine = all
        .iter()
        .find(|a| a["proposalId"] == proposal.as_str())
        .expect("assigned")
        .clone();
    let x = mine["reviewerId"].as_str().expect("reviewer").to_owned();
    let assignment = mine["id"].as_str().expect("id").to_owned();
    let x_token = p.ctx.bearer_for(&x, Role::Reviewer, None);
    for a in &all {
        let token = p
            .ctx
            .bearer_for(a["reviewerId"].as_str().expect("r"), Role::Reviewer, None);
        ok(&p
            .graphql(Some(&token), SCORE, json!({ "a": a["id"], "s": sheet(70) }))
            .await);
    }

    // The stage is closing (its call's row held) when x resubmits and a conflict of x with
    // the consortium is recorded: both wait.
    let mut closing = p.scoring.conn();
    hold_call(&mut closing, uuid(&call_id));
    let resubmit = p.graphql(
        Some(&x_token),
        SCORE,
        json!({ "a": assignment, "s": sheet(90) }),
    );
    let declare = p.graphql(
        Some(&officer),
        DECLARE,
        json!({ "r": x, "k": consortium, "why": "advised the lead" }),
    );
    tokio::pin!(resubmit);
    tokio::pin!(declare);
    assert!(
        tokio::time::timeout(BLOCKED, &mut resubmit).await.is_err(),
        "a sheet waits for the closing stage"
    );
    assert!(
        tokio::time::timeout(BLOCKED, &mut declare).await.is_err(),
        "a conflict waits for the closing stage"
    );
    assert_eq!(
        count(
            &p,
            "SELECT count(*) AS n FROM assignments WHERE id = $1 AND voided_at IS NOT NULL",
            uuid(&assignment)
        ),
        0,
        "nothing voided while the stage's sheets are being read"
    );
    // The close reads the sheets as they are and commits.
    diesel::sql_query("INSERT INTO stage_closures (call_id, stage, closed_by) VALUES ($1, 0, 'the closing officer')")
        .bind::<sql_types::Uuid, _>(uuid(&call_id))
        .execute(&mut closing)
        .expect("closed");
    diesel::sql_query("COMMIT")
        .execute(&mut closing)
        .expect("commit");

    // The resubmission is refused: the sheet the close read is the one that stands.
    let body = resubmit.await;
    assert_eq!(error_code(&body), Some("STATE_CONFLICT"), "{body}");
    assert!(message(&body).contains("closed"), "{body}");
    let versions = "query($a: UUID!) { scoreSheetVersions(assignmentId: $a) { version total } }";
    let body = p
        .graphql(Some(&officer), versions, json!({ "a": assignment }))
        .await;
    assert_eq!(
        ok(&body)["scoreSheetVersions"],
        json!([{ "version": 1, "total": 70 }])
    );

    // The conflict lands after the close: nothing voided, nobody assigned into the closed
    // stage; x's closed-stage sheet is marked with the conflict for the record.
    let body = declare.await;
    let report = ok(&body)["declareConflict"].clone();
    assert_eq!(report["voided"], json!([]), "{report}");
    assert_eq!(report["replacements"], json!([]), "{report}");
    assert_eq!(report["shortfalls"], json!([]), "{report}");
    assert_eq!(
        report["noted"],
        json!([{ "assignmentId": assignment, "proposalId": proposal, "stage": 0, "hadSheet": true }])
    );
    let case_assignments = count(
        &p,
        "SELECT count(*) AS n FROM assignments WHERE case_id = (SELECT case_id FROM assignments WHERE id = $1)",
        uuid(&assignment),
    );
    assert_eq!(case_assignments, 1, "no replacement in a closed stage");
    {
        use kaip_scoring::schema::assignments;
        let (voided, note, by): (bool, Option<String>, Option<String>) = assignments::table
            .find(uuid(&assignment))
            .select((
                assignments::voided_at.is_not_null(),
                assignments::conflict_note,
                assignments::conflict_noted_by,
            ))
            .first(&mut p.scoring.conn())
            .expect("the assignment");
        assert!(!voided);
        assert!(
            note.as_deref()
                .is_some_and(|n| n.contains("advised the lead")),
            "{note:?}"
        );
        assert!(by.is_some());
    }

    // And x can no longer read the case, by proposal, in a list, or through its sheets.
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
            "query($c: UUID!) { evaluationCases(callId: $c, first: 100) { items { proposalId } } }",
            json!({ "c": call_id }),
        )
        .await;
    let listed = ok(&body)["evaluationCases"]["items"].clone();
    assert!(
        !listed
            .as_array()
            .expect("items")
            .iter()
            .any(|k| k["proposalId"] == proposal.as_str()),
        "{listed}"
    );
    let body = p
        .graphql(Some(&x_token), versions, json!({ "a": assignment }))
        .await;
    assert_eq!(error_code(&body), Some("ASSIGNMENT_NOT_FOUND"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_declared_while_reviewers_are_assigned_takes_the_reviewer_off() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, proposals) = ready_call(&p, 1, &["r1", "r2"]).await;
    let (consortium, proposal) = proposals[0].clone();
    let case_id: uuid::Uuid = {
        use kaip_scoring::schema::evaluation_cases;
        evaluation_cases::table
            .filter(evaluation_cases::proposal_id.eq(uuid(&proposal)))
            .select(evaluation_cases::id)
            .first(&mut p.scoring.conn())
            .expect("the case")
    };

    // Assignment is under way (the call's row held; it read the conflicts, none yet) when
    // r1 declares a conflict with the consortium: the declaration waits.
    let mut assigning = p.scoring.conn();
    hold_call(&mut assigning, uuid(&call_id));
    let r1 = p.ctx.bearer_for("r1", Role::Reviewer, None);
    let declare = p.graphql(
        Some(&r1),
        DECLARE,
        json!({ "r": "r1", "k": consortium, "why": "my former student leads it" }),
    );
    tokio::pin!(declare);
    assert!(
        tokio::time::timeout(BLOCKED, &mut declare).await.is_err(),
        "the declaration waits for the assignment under way"
    );
    // The assignment puts r1 on the proposal, as it planned without the conflict.
    let planned = uuid::Uuid::now_v7();
    diesel::sql_query("INSERT INTO assignments (id, call_id, stage, reviewer_id, case_id) VALUES ($1, $2, 0, 'r1', $3)")
        .bind::<sql_types::Uuid, _>(planned)
        .bind::<sql_types::Uuid, _>(uuid(&call_id))
        .bind::<sql_types::Uuid, _>(case_id)
        .execute(&mut assigning)
        .expect("assigned");
    diesel::sql_query("COMMIT")
        .execute(&mut assigning)
        .expect("commit");

    // The declaration then sees that assignment, voids it and brings in r2.
    let body = declare.await;
    let report = ok(&body)["declareConflict"].clone();
    assert_eq!(
        report["voided"],
        json!([{ "assignmentId": planned, "proposalId": proposal, "stage": 0, "hadSheet": false }])
    );
    assert_eq!(
        report["replacements"],
        json!([{ "reviewerId": "r2", "proposalId": proposal, "stage": 0 }])
    );
    let counting: Vec<Value> = assignments(&p, &officer, &call_id)
        .await
        .into_iter()
        .filter(|a| a["proposalId"] == proposal.as_str() && a["voidReason"].is_null())
        .collect();
    assert_eq!(counting.len(), 1, "{counting:?}");
    assert_eq!(counting[0]["reviewerId"], "r2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_re_registered_into_a_consortium_is_taken_off_its_proposal() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (call_id, proposals) = ready_call(&p, 1, &["r1", "r2", "r3"]).await;
    ok(&p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await);
    let proposal = proposals[0].1.clone();
    let all = assignments(&p, &officer, &call_id).await;
    let mine = all
        .iter()
        .find(|a| a["proposalId"] == proposal.as_str())
        .expect("assigned")
        .clone();
    let x = mine["reviewerId"].as_str().expect("reviewer").to_owned();
    // The proposal's lead, as scoring knows it.
    let members: Value = {
        use kaip_scoring::schema::evaluation_cases;
        evaluation_cases::table
            .filter(evaluation_cases::proposal_id.eq(uuid(&proposal)))
            .select(evaluation_cases::members)
            .first(&mut p.scoring.conn())
            .expect("the case")
    };
    let brn = members[0]["business_registration_number"]
        .as_str()
        .expect("a number")
        .replace('-', "");

    // x now works for the lead: same number (typed without dashes), another name.
    ok(&p
        .graphql(
            Some(&officer),
            super::rules::REVIEWER,
            json!({ "i": { "id": x, "name": x, "organisation": "Its holding company", "businessRegistrationNumber": brn } }),
        )
        .await);
    let all = assignments(&p, &officer, &call_id).await;
    let before = all
        .iter()
        .find(|a| a["id"] == mine["id"])
        .expect("still listed to staff");
    assert!(
        before["voidReason"]
            .as_str()
            .is_some_and(|r| r.contains("re-registration") && r.contains("of the consortium")),
        "{before}"
    );
    let counting: Vec<&Value> = all
        .iter()
        .filter(|a| a["proposalId"] == proposal.as_str() && a["voidReason"].is_null())
        .collect();
    assert_eq!(counting.len(), 1, "a replacement: {all:?}");
    assert_ne!(counting[0]["reviewerId"], x.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_publication_a_consortium_sees_stage_zero_whatever_stage_its_case_is_in() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let mut config = settings(&p, 1).await;
    config["stages"] = json!([
        { "name": "written review", "keepTop": 2, "minTotal": null },
        { "name": "presentation", "keepTop": null, "minTotal": null },
    ]);
    let call_id = open_call(&p, 2).await;
    let mut proposals = Vec::new();
    for i in 0..3 {
        let consortium = ConsortiumId::new();
        let receipt = apply(&p, consortium, &call_id, &format!("Model {i}")).await;
        let id = ok(&receipt)["submitProposal"]["proposalId"]
            .as_str()
            .expect("submitted")
            .to_owned();
        proposals.push((consortium, id));
    }
    wait_cases(&p, &call_id, 3).await;
    eventually(Duration::from_secs(30), || async {
        let body = p
            .graphql(
                Some(&officer),
                super::rules::CONFIGURE,
                json!({ "c": call_id, "i": config }),
            )
            .await;
        body["errors"].is_null().then_some(())
    })
    .await
    .expect("settings accepted");
    reviewers(&p, &["r1"]).await;
    pass_deadline(&p, &call_id).await;
    ok(&p
        .graphql(Some(&officer), ASSIGN, json!({ "c": call_id }))
        .await);
    let index: Vec<String> = proposals.iter().map(|(_, id)| id.clone()).collect();
    super::rules::score_all(&p, &call_id, |id| {
        90 - 10 * index.iter().position(|p| p == id).expect("ours") as i64
    })
    .await;
    ok(&p
        .graphql(Some(&officer), super::rules::CLOSE, json!({ "c": call_id }))
        .await);

    // Staff see the two best in stage 1; their consortia see stage 0, under review.
    for (consortium, proposal) in &proposals[..2] {
        let body = p
            .graphql(Some(&officer), CASE, json!({ "p": proposal }))
            .await;
        assert_eq!(
            ok(&body)["evaluationCase"],
            json!({ "status": "open", "stage": 1 })
        );
        let token = p.ctx.bearer(Role::Consortium, Some(*consortium));
        let body = p
            .graphql(Some(&token), CASE, json!({ "p": proposal }))
            .await;
        assert_eq!(
            ok(&body)["evaluationCase"],
            json!({ "status": "under_review", "stage": 0 })
        );
    }

    // The second withdraws from stage 1: it reads `withdrawn`, but not how far it had got.
    let (consortium, proposal) = proposals[1].clone();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    ok(&p
        .graphql(
            Some(&lead),
            "mutation($p: UUID!) { withdrawProposal(proposalId: $p, reason: \"merging\") { status } }",
            json!({ "p": proposal }),
        )
        .await);
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(Some(&officer), CASE, json!({ "p": proposal }))
            .await;
        (body["data"]["evaluationCase"] == json!({ "status": "withdrawn", "stage": 1 }))
            .then_some(())
    })
    .await
    .expect("scoring applied the withdrawal");
    let body = p.graphql(Some(&lead), CASE, json!({ "p": proposal })).await;
    assert_eq!(
        ok(&body)["evaluationCase"],
        json!({ "status": "withdrawn", "stage": 0 })
    );
}
