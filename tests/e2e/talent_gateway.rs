//! The talent service through the gateway: a published selection reaches the service over
//! the real broker, an officer records a team's size and openness, the team opens a
//! position, an agency registers a researcher, the officer runs a round, the team accepts
//! and claims a mid-July month in `Krw` strings, and another team's token is refused.

use kaip_contracts::dto::intake::ResourceRequest;
use kaip_contracts::events::{SelectedTeam, SelectionPublished};
use kaip_contracts::{ConsortiumId, Krw, Role};
use kaip_e2e::{error_code, eventually, Platform};
use serde_json::{json, Value};
use std::time::Duration;

fn data<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert!(body["errors"].is_null(), "{field}: {body}");
    &body["data"][field]
}

const OPEN: &str = "mutation($input: OpenTalentPositionInput!) { openTalentPosition(input: $input) { id count salaryBand { minMonthlyKrw } } }";
const REGISTER: &str =
    "mutation($input: RegisterResearcherInput!) { registerResearcher(input: $input) { id } }";
const ROUND: &str = "mutation { runTalentRound(note: \"gateway round\") { id proposals { id researcherId fit { skills field seniority total } researcherRank positionRank status } } }";
const ACCEPT: &str = "mutation($id: UUID!, $terms: TalentHireTermsInput!) { acceptTalentMatch(matchId: $id, terms: $terms) { id ratioBp pay { monthlySalaryKrw monthlyLivingAllowanceKrw } } }";
const CLAIM: &str = "mutation($hire: UUID!, $month: String!) { claimTalentFunds(hireId: $hire, month: $month) { daysCovered daysInMonth claimedKrw paidKrw capReason } }";
const REPORT: &str = "query($c: UUID!) { talentReport(consortiumId: $c, fiscalYear: 2025) { paidKrw remainingKrw capKrw placesFilled } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_hires_through_the_gateway_and_another_teams_token_is_refused() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (a, b) = (ConsortiumId::new(), ConsortiumId::new());
    let (ta, tb) = (
        p.ctx.bearer(Role::Consortium, Some(a)),
        p.ctx.bearer(Role::Consortium, Some(b)),
    );
    let selected = [a, b]
        .iter()
        .enumerate()
        .map(|(i, t)| SelectedTeam {
            proposal_id: kaip_contracts::ProposalId::new(),
            consortium_id: *t,
            consortium_name: format!("Team {i}"),
            title: format!("Model {i}"),
            rank: i as i32 + 1,
            score_centi: 8_000,
            resources: ResourceRequest {
                talent_funding_krw: Krw(2_000_000_000),
                ..Default::default()
            },
        })
        .collect();
    let env = kaip_contracts::EventEnvelope::wrap(
        "scoring",
        kaip_contracts::Actor::system("scoring"),
        &SelectionPublished {
            call_id: kaip_contracts::CallId::new(),
            selected,
            departure: None,
            override_reason: None,
            published_at: "2024-12-01T00:00:00Z".parse().expect("time"),
            replaces: None,
            team_maxima: None,
        },
    )
    .expect("wrap");
    p.others[2].wait_assigned().await;
    p.ctx
        .produce_raw(
            &p.ctx.topic(kaip_contracts::topics::SCORING),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[("kaip-event-type", "SelectionPublished")],
        )
        .await;
    eventually(Duration::from_secs(60), || async {
        let body = p
            .graphql(
                Some(&officer),
                "{ talentTeams { consortiumId } }",
                json!({}),
            )
            .await;
        (data(&body, "talentTeams").as_array()?.len() == 2).then_some(())
    })
    .await
    .expect("the talent service learned the selection");
    // No proposal was seen for these teams: an officer records A's size and openness.
    let body = p
        .graphql(
            Some(&officer),
            "mutation($c: UUID!) { setTalentTeamTerms(consortiumId: $c, companySize: \"small\", openness: \"closed\", reason: \"confirmed from the registration\") { ratioBp termsSource } }",
            json!({"c": a}),
        )
        .await;
    assert_eq!(
        data(&body, "setTalentTeamTerms"),
        &json!({"ratioBp": 5000, "termsSource": "officer"})
    );
    let input = |team: ConsortiumId| {
        json!({"input": {"consortiumId": team, "title": "Pre-training scientist", "field": "nlp",
        "requiredSkills": ["cuda"], "seniority": "senior", "count": 1,
        "salaryBandMinMonthlyKrw": "12000000", "salaryBandMaxMonthlyKrw": "20000000"}})
    };
    // B's token cannot open a position for A: refused by the gateway.
    let body = p.graphql(Some(&tb), OPEN, input(a)).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p.graphql(Some(&ta), OPEN, input(a)).await;
    let position = data(&body, "openTalentPosition")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        data(&body, "openTalentPosition")["salaryBand"]["minMonthlyKrw"],
        "12000000"
    );
    // B sees the position, not its salary band.
    let body = p
        .graphql(
            Some(&tb),
            "{ talentPositions { id salaryBand { minMonthlyKrw } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&body, "talentPositions"),
        &json!([{"id": position, "salaryBand": null}])
    );
    let agency = p
        .ctx
        .integration_bearer("agency-1", &[kaip_auth::scopes::WRITE_RESEARCHERS]);
    let body = p
        .graphql(Some(&agency), REGISTER, json!({"input": {"skills": ["cuda"], "field": "nlp", "seniority": "senior",
            "availableFrom": "2025-07-01", "preferences": [position], "name": "Dr. Gateway Example", "contact": "g@example.org", "country": "CA"}}))
        .await;
    let researcher = data(&body, "registerResearcher")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A team may not run a round.
    let body = p.graphql(Some(&ta), ROUND, json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p.graphql(Some(&officer), ROUND, json!({})).await;
    let proposals = data(&body, "runTalentRound")["proposals"]
        .as_array()
        .expect("proposals")
        .clone();
    assert_eq!(proposals.len(), 1, "{body}");
    assert_eq!(proposals[0]["researcherId"], researcher.as_str());
    assert_eq!(
        proposals[0]["fit"],
        json!({"skills": 10, "field": 20, "seniority": 15, "total": 45})
    );
    assert_eq!(
        (
            proposals[0]["researcherRank"].as_i64(),
            proposals[0]["positionRank"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let m = proposals[0]["id"].as_str().expect("id").to_owned();
    let terms = json!({"startDate": "2025-07-16", "endDate": "2027-07-15", "monthlySalaryKrw": "12000000", "monthlyLivingAllowanceKrw": "3000000"});
    // B's token cannot accept A's match, nor see the researcher.
    let body = p
        .graphql(Some(&tb), ACCEPT, json!({"id": m, "terms": terms}))
        .await;
    assert_eq!(error_code(&body), Some("MATCH_NOT_FOUND"), "{body}");
    let body = p
        .graphql(Some(&tb), "{ talentResearchers { id } }", json!({}))
        .await;
    assert_eq!(data(&body, "talentResearchers"), &json!([]));
    let body = p
        .graphql(Some(&ta), ACCEPT, json!({"id": m, "terms": terms}))
        .await;
    let hire = data(&body, "acceptTalentMatch").clone();
    assert_eq!(
        hire["pay"],
        json!({"monthlySalaryKrw": "12000000", "monthlyLivingAllowanceKrw": "3000000"})
    );
    let body = p
        .graphql(
            Some(&ta),
            CLAIM,
            json!({"hire": hire["id"], "month": "2025-07"}),
        )
        .await;
    assert_eq!(
        data(&body, "claimTalentFunds"),
        &json!({"daysCovered": 16, "daysInMonth": 31, "claimedKrw": "3870967", "paidKrw": "3870967", "capReason": null})
    );
    // B sees none of A's hires, claims or report.
    let body = p
        .graphql(Some(&tb), "{ talentHires { id } }", json!({}))
        .await;
    assert_eq!(data(&body, "talentHires"), &json!([]));
    let body = p
        .graphql(
            Some(&tb),
            "query($c: UUID) { talentClaims(consortiumId: $c) { id } }",
            json!({"c": a}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p.graphql(Some(&tb), REPORT, json!({"c": a})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p.graphql(Some(&ta), REPORT, json!({"c": a})).await;
    assert_eq!(
        data(&body, "talentReport"),
        &json!({"paidKrw": "3870967", "remainingKrw": "1996129033", "capKrw": "2000000000", "placesFilled": 1})
    );
    // `make seed-talent` (the seed binary against this gateway): a round hiring two
    // researchers for the first selected team.
    let before = data(
        &p.graphql(Some(&officer), "{ talentHires { id } }", json!({}))
            .await,
        "talentHires",
    )
    .as_array()
    .map_or(0, Vec::len);
    let url = p.gateway_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kaip-seed"))
            .arg("talent")
            .env("KAIP_SEED_GATEWAY", url)
            .output()
    })
    .await
    .expect("join")
    .expect("the seed runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hired 2 researchers"), "{stdout}");
    let after = data(
        &p.graphql(Some(&officer), "{ talentHires { id } }", json!({}))
            .await,
        "talentHires",
    )
    .as_array()
    .map_or(0, Vec::len);
    assert_eq!(after, before + 2);
}
