//! `make seed` end to end: the same steps `kaip-seed` runs against `make run`, here against
//! a platform spawned in-process, with each step's outcome checked against what the
//! services record (read back through the gateway, not taken from the seed's own answers).
//! The deadline is moved instead of waited for (`pass_deadline`); everything else is the
//! seed as a person would run it.

use kaip_contracts::Role;
use kaip_e2e::seed::{self, Gateway, Options, FIELD, JOINT_PURCHASE_KRW};
use kaip_e2e::Platform;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn ok(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]
}

fn int(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an Int64 or Krw: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_seed_runs_the_programme_from_the_call_through_offers_data_and_hires_to_gate_1() {
    let test_start = Instant::now();
    let p = Platform::start().await;
    eprintln!("the platform started in {:?}", test_start.elapsed());
    let gw = Gateway::new(&p.gateway_url, kaip_auth::dev::SECRET).expect("dev key");
    let opts = Options {
        // Long enough that the field is never late; the test moves the deadline instead.
        call_window: Duration::from_secs(3600),
        timeout: Duration::from_secs(60),
    };
    let started = Instant::now();
    let out = seed::run(&gw, &opts, async |call: &str| {
        kaip_e2e::pass_deadline(&p, call).await;
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("the seed failed: {e:#}"));
    eprintln!("the seed ran in {:?}", started.elapsed());
    let officer = p.ctx.bearer(Role::Officer, None);

    // 1. Fifteen consortia applied, each once.
    let prog = &out.programme;
    assert_eq!(prog.applied.len(), 15);
    let body = p
        .graphql(Some(&officer), "query($c: UUID!) { proposals(callId: $c, first: 100) { items { id consortiumId status } } }", json!({ "c": prog.call }))
        .await;
    let proposals = ok(&body)["proposals"]["items"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(proposals.len(), 15, "{proposals:?}");
    assert!(
        proposals.iter().all(|p| p["status"] != "draft"),
        "{proposals:?}"
    );

    // 2. Both stages: three reviewers a proposal, rev-6 kept off consortium 4 (its
    // partner's employer), every sheet in, 15 -> 10 -> 10 ranked.
    assert_eq!(out.stages.len(), 2);
    let (written, presented) = (&out.stages[0], &out.stages[1]);
    assert_eq!(written.assigned, 45);
    assert_eq!(written.scored, 45);
    assert_eq!(written.blocked.len(), 1, "{:?}", written.blocked);
    assert_eq!(written.blocked[0]["reviewerId"], "rev-6");
    assert_eq!(
        written.blocked[0]["proposalId"],
        prog.applied[3].proposal.as_str()
    );
    assert_eq!(written.results.len(), 15);
    let finalists: Vec<&Value> = written
        .results
        .iter()
        .filter(|r| r["advanced"] == true)
        .collect();
    assert_eq!(finalists.len(), 10);
    assert_eq!(presented.assigned, 30);
    assert_eq!(presented.scored, 30);
    assert_eq!(presented.results.len(), 10);

    // 3. Five selected and published, among them an industry-specialised team (the
    // constraint the seed declares), every one a finalist; scoring's record agrees.
    let sel = &out.selection;
    assert_eq!(sel.teams.len(), 5, "{}", sel.decision);
    assert_eq!(sel.decision["kind"], "published");
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { selection(callId: $c) { selected publishedAt } }",
            json!({ "c": prog.call }),
        )
        .await;
    let record = &ok(&body)["selection"];
    assert!(record["publishedAt"].is_string(), "{record}");
    let selected: Vec<&str> = sel.teams.iter().map(|t| t.proposal.as_str()).collect();
    assert_eq!(record["selected"], json!(selected));
    for t in &sel.teams {
        assert!(
            presented
                .results
                .iter()
                .any(|r| r["proposalId"] == t.proposal.as_str() && r["eligible"] == true),
            "{} was an eligible finalist",
            t.name
        );
    }
    assert!(
        sel.teams.iter().any(|t| {
            let i = prog
                .applied
                .iter()
                .find(|a| a.proposal == t.proposal)
                .expect("applied")
                .index;
            FIELD[i].industry.is_some()
        }),
        "an industry-specialised team is selected: {:?}",
        sel.teams
    );

    // The steps run on their own (`make seed-gpu CALL=...`) read the same selection back.
    let again = seed::Selection::of_call(&gw, &prog.call)
        .await
        .expect("the published selection");
    assert_eq!(
        again
            .teams
            .iter()
            .map(|t| (t.consortium, t.proposal.as_str()))
            .collect::<Vec<_>>(),
        sel.teams
            .iter()
            .map(|t| (t.consortium, t.proposal.as_str()))
            .collect::<Vec<_>>()
    );

    // 7 (read first: the steps below see its effects). Gate 1 published: the first team
    // ruled ineligible, the lowest eligible one out by rank, 5 -> 3; the best survivor
    // received both eliminated teams' first-half-year H100.
    let gate = out
        .gate
        .as_ref()
        .expect("a fresh platform has no gate 1 yet");
    assert_eq!(gate.passed.len(), 3, "{}", gate.decision);
    assert_eq!(gate.eliminated.len(), 2, "{}", gate.decision);
    let ids = |ts: &[seed::Team]| ts.iter().map(|t| t.consortium).collect::<HashSet<_>>();
    assert_eq!(
        ids(&gate.eliminated),
        [sel.teams[0].consortium, sel.teams[4].consortium]
            .into_iter()
            .collect::<HashSet<_>>()
    );
    let body = p
        .graphql(
            Some(&officer),
            "query($g: String!) { gateDecision(gate: $g) { passed approvals committeeSize eliminated { consortiumId reason reallocation { consortiumId count } } } }",
            json!({ "g": seed::GATE }),
        )
        .await;
    let decision = &ok(&body)["gateDecision"];
    assert_eq!(decision["approvals"], 2);
    assert_eq!(decision["committeeSize"], 3);
    let first_out = decision["eliminated"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|x| x["consortiumId"] == sel.teams[0].consortium.to_string())
        })
        .expect("the first team is out")
        .clone();
    assert!(
        first_out["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("ineligible: built-from-scratch")),
        "{first_out}"
    );
    assert_eq!(
        first_out["reallocation"][0]["consortiumId"],
        sel.teams[1].consortium.to_string(),
        "to the best survivor"
    );
    let ask = |i: usize| out.offers[i].requested_h100;
    // Net grants per team once the ledger has applied the decision: a survivor holds both
    // tranches (the second released by the gate), the best one also the eliminated teams'
    // first half-year; an eliminated team holds nothing of periods not yet started.
    let expected_net = |i: usize| match i {
        0 | 4 => 0,
        1 => 2 * ask(1) + ask(0) + ask(4),
        _ => 2 * ask(i),
    };

    // 4. Each team accepted an offer of what it asked for, doubled at gate 1: the first
    // tranche was granted at once, the second reserved for the gate.
    assert_eq!(out.offers.len(), 5);
    let body = p
        .graphql(
            Some(&officer),
            "query { gpuOffers { id consortiumId callId status acceptedOption h100Eq } }",
            json!({}),
        )
        .await;
    let offers = ok(&body)["gpuOffers"].as_array().expect("offers").clone();
    for o in &out.offers {
        let asked = FIELD[prog
            .applied
            .iter()
            .find(|a| a.consortium == o.team.consortium)
            .expect("applied")
            .index]
            .name;
        assert_eq!(asked, o.team.name);
        let recorded = offers
            .iter()
            .find(|r| r["id"] == o.offer.as_str())
            .expect("the ledger has the offer");
        assert_eq!(recorded["consortiumId"], o.team.consortium.to_string());
        assert_eq!(recorded["callId"], prog.call.as_str());
        assert_eq!(recorded["status"], "accepted", "{recorded}");
        assert_eq!(recorded["acceptedOption"], 0);
        assert_eq!(int(&recorded["h100Eq"]), 2 * o.requested_h100, "{recorded}");
        let tranches = o.accepted["tranches"].as_array().expect("tranches");
        assert_eq!(tranches.len(), 2, "{tranches:?}");
        assert_eq!(tranches[0]["status"], "released", "{tranches:?}");
        assert_eq!(tranches[1]["status"], "reserved", "{tranches:?}");
        assert_eq!(tranches[1]["releaseGate"], seed::GATE);
        let team = p.ctx.bearer(Role::Consortium, Some(o.team.consortium));
        let i = sel
            .teams
            .iter()
            .position(|t| t.consortium == o.team.consortium)
            .expect("selected");
        let grants = kaip_e2e::eventually(Duration::from_secs(60), || async {
            let body = p
                .graphql(
                    Some(&team),
                    "{ gpuAccounts(kind: GRANT) { items { consortiumId model period balance { creditsPosted debitsPosted } } } }",
                    json!({}),
                )
                .await;
            let grants = ok(&body)["gpuAccounts"]["items"].as_array()?.clone();
            let net: i64 = grants
                .iter()
                .map(|g| int(&g["balance"]["creditsPosted"]) - int(&g["balance"]["debitsPosted"]))
                .sum();
            (net == expected_net(i)).then_some(grants)
        })
        .await
        .unwrap_or_else(|| panic!("{}: the ledger applied gate 1", o.team.name));
        assert!(
            grants
                .iter()
                .all(|g| g["consortiumId"] == o.team.consortium.to_string()),
            "a team sees its own grants only: {grants:?}"
        );
        // What the acceptance posted at once stays on record, eliminated or not.
        let posted: i64 = grants
            .iter()
            .map(|g| int(&g["balance"]["creditsPosted"]))
            .sum();
        assert!(posted >= o.requested_h100, "{}: {grants:?}", o.team.name);
    }

    // 5. The joint purchase: five shares summing exactly to the invoice, none more than a
    // won apart, and each team's budget committed by its share.
    let buy = &out.purchase;
    assert_eq!(buy.total_krw, JOINT_PURCHASE_KRW);
    assert_eq!(buy.shares.len(), 5);
    assert_eq!(
        buy.shares.iter().map(|(_, a)| a).sum::<i64>(),
        JOINT_PURCHASE_KRW
    );
    let floor = JOINT_PURCHASE_KRW / 5;
    assert!(
        buy.shares
            .iter()
            .all(|(_, a)| *a == floor || *a == floor + 1),
        "{:?}",
        buy.shares
    );
    assert_eq!(
        buy.shares.iter().filter(|(_, a)| *a == floor + 1).count(),
        1,
        "one won left over"
    );
    let teams: HashSet<String> = sel.teams.iter().map(|t| t.consortium.to_string()).collect();
    assert_eq!(
        buy.shares
            .iter()
            .map(|(t, _)| t.consortium.to_string())
            .collect::<HashSet<_>>(),
        teams
    );
    let body = p
        .graphql(Some(&officer), "query($y: Int) { dataBudgets(fiscalYear: $y) { consortiumId callId total { committedKrw } } }", json!({ "y": buy.fiscal_year }))
        .await;
    for (team, amount) in &buy.shares {
        let b = ok(&body)["dataBudgets"]
            .as_array()
            .expect("budgets")
            .iter()
            .find(|b| b["consortiumId"] == team.consortium.to_string())
            .unwrap_or_else(|| panic!("{} has a budget", team.name))
            .clone();
        assert_eq!(b["callId"], prog.call.as_str());
        assert_eq!(int(&b["total"]["committedKrw"]), *amount, "{b}");
    }

    // 6. Two researchers hired by the first selected team, in one round, for its position.
    let hires = &out.hires;
    assert_eq!(hires.team.consortium, sel.teams[0].consortium);
    assert_eq!(hires.hires.len(), 2);
    let researchers: HashSet<&str> = hires
        .hires
        .iter()
        .map(|h| h["researcherId"].as_str().expect("id"))
        .collect();
    assert_eq!(researchers.len(), 2, "two different researchers");
    let body = p
        .graphql(
            Some(&officer),
            "{ talentHires { id consortiumId positionId startDate endedOn endCause } }",
            json!({}),
        )
        .await;
    let recorded: Vec<&Value> = ok(&body)["talentHires"]
        .as_array()
        .expect("hires")
        .iter()
        .filter(|h| h["positionId"] == hires.position.as_str())
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(recorded
        .iter()
        .all(|h| h["consortiumId"] == hires.team.consortium.to_string()));
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { talentPositions(consortiumId: $c) { id count filled } }",
            json!({ "c": hires.team.consortium }),
        )
        .await;
    let position = ok(&body)["talentPositions"]
        .as_array()
        .expect("positions")
        .iter()
        .find(|v| v["id"] == hires.position.as_str())
        .expect("the position")
        .clone();
    // The hiring team was eliminated at gate 1 (step 7): its hires end with this month
    // (KST). They hold their places from their start until then; hired on the month's last
    // day (KST), they start the next day and so never hold one.
    for h in &recorded {
        assert_eq!(h["endCause"], "elimination", "{h}");
    }
    let holding = recorded
        .iter()
        .filter(|h| h["endedOn"].as_str() >= h["startDate"].as_str())
        .count() as i64;
    assert_eq!(
        (position["count"].as_i64(), position["filled"].as_i64()),
        (Some(2), Some(holding)),
        "{position} {recorded:?}"
    );
    // 8. The replacement call for gate 1's freed place: linked to the gate, the committee's
    // majority selected the better of the two applicants, and the ledger's award (768 B200)
    // was offered to it alone and accepted, its one tranche released at acceptance.
    let rep = out
        .replacement
        .as_ref()
        .expect("gate 1 was decided by this run");
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { call(id: $c) { replaces { gate places committee award { model count period } } } selection(callId: $c) { selected publishedAt } }",
            json!({ "c": rep.call }),
        )
        .await;
    let d = ok(&body);
    assert_eq!(d["call"]["replaces"]["gate"], seed::GATE, "{d}");
    assert_eq!(d["call"]["replaces"]["places"], 1, "{d}");
    assert_eq!(
        d["call"]["replaces"]["committee"],
        json!(seed::REPLACEMENT_COMMITTEE),
        "{d}"
    );
    let winner = rep.winner.as_ref().expect("the committee selected a team");
    // The seed's reviewers score Gaon above Haneul: the proposal ranks it first.
    assert_eq!(winner.name, "Gaon Language Model");
    assert!(d["selection"]["publishedAt"].is_string(), "{d}");
    assert_eq!(d["selection"]["selected"], json!([winner.proposal]), "{d}");
    // Published by the committee's majority: two approvals and one rejection of the
    // version published, as scoring recorded them (not as the seed reported them).
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { selectionVotes(callId: $c) { needed currentVersion currentSelected approvals votes { voter version approve } } }",
            json!({ "c": rep.call }),
        )
        .await;
    let tally = &ok(&body)["selectionVotes"];
    assert_eq!(
        (tally["needed"].as_i64(), tally["approvals"].as_i64()),
        (Some(2), Some(2)),
        "{tally}"
    );
    assert_eq!(
        tally["currentSelected"],
        json!([winner.proposal]),
        "{tally}"
    );
    let on_current: Vec<(&str, bool)> = tally["votes"]
        .as_array()
        .expect("votes")
        .iter()
        .filter(|v| v["version"] == tally["currentVersion"])
        .map(|v| (v["voter"].as_str().expect("voter"), v["approve"] == true))
        .collect();
    assert_eq!(
        on_current,
        vec![
            (seed::REPLACEMENT_COMMITTEE[0], true),
            (seed::REPLACEMENT_COMMITTEE[1], false),
            (seed::REPLACEMENT_COMMITTEE[2], true),
        ],
        "{tally}"
    );
    let accepted = rep
        .accepted
        .as_ref()
        .expect("the winner accepted the award");
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let tranches = accepted["tranches"].as_array().expect("tranches");
    assert_eq!(tranches.len(), 1, "{accepted}");
    assert_eq!(
        (
            &tranches[0]["model"],
            int(&tranches[0]["count"]),
            &tranches[0]["status"]
        ),
        (&json!("B200"), 768, &json!("released")),
        "{accepted}"
    );
    let body = p
        .graphql(
            Some(&officer),
            "query($c: UUID!) { gpuOffers(consortiumId: $c) { callId status h100Eq } }",
            json!({ "c": winner.consortium }),
        )
        .await;
    let offers = ok(&body)["gpuOffers"].as_array().expect("offers").clone();
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(offers[0]["callId"], rep.call.as_str(), "{offers:?}");
    assert_eq!(int(&offers[0]["h100Eq"]), 1536, "{offers:?}");

    eprintln!(
        "the test's own work ended {:?} after it began (the platform's shutdown follows)",
        test_start.elapsed()
    );
}
