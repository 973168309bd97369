//! The GPU ledger through the gateway: a published selection reaches the ledger over the
//! real broker, an officer funds a pool and makes an offer, the team accepts it and sees its
//! grant, another consortium sees none of it, a coded refusal keeps its code, and each
//! mutation refuses the wrong role.

use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{error_code, eventually, Platform};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const OPEN_ACCOUNT: &str =
    "mutation($input: OpenGpuAccountInput!) { openGpuAccount(input: $input) { id kind } }";
const TRANSFERS: &str = "mutation($t: [GpuTransferInput!]!) { createGpuTransfers(transfers: $t) { created results { status code message } } }";
const MAKE_OFFER: &str = "mutation($input: MakeGpuOfferInput!) { makeGpuOffer(input: $input) { id status h100Eq options { model tranches { period count } } } }";
const ACCEPT: &str = "mutation($id: UUID!, $option: Int!) { acceptGpuOffer(offerId: $id, option: $option, reason: \"B200 suits us\") { id status acceptedOption tranches { model period count h100Eq status } } }";
const OFFERS: &str = "query($c: UUID) { gpuOffers(consortiumId: $c) { id consortiumId status tranches { count status } } }";
const GRANTS: &str = "query($c: UUID) { gpuAccounts(kind: GRANT, consortiumId: $c) { items { id consortiumId model period balance { creditsPosted } } } }";
const BALANCE: &str =
    "query($id: UUID!) { gpuBalance(accountId: $id) { netPosted netPostedH100Eq h100Factor } }";
const USAGE: &str = "mutation($input: ReportGpuUsageInput!) { reportGpuUsage(input: $input) { usedHours grantedHours overrun } }";

/// The half year after the one running now (KST), e.g. `2027H1` on 2026-12-01: it has not
/// started on any day the test runs, so a grant made during the test counts its whole
/// length (a fixed period would be one that has started, or ended, some day).
fn period() -> String {
    use chrono::Datelike;
    let now =
        chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("KST"));
    if now.month() <= 6 {
        format!("{}H2", now.year())
    } else {
        format!("{}H1", now.year() + 1)
    }
}

fn pool_sources_query() -> String {
    format!("query {{ gpuPoolSources(period: \"{}\", model: \"B200\") {{ supplied suppliedH100Eq leased government governmentH100Eq sources {{ name sourceType supplied }} }} }}", period())
}

fn pools_query() -> String {
    format!("query {{ gpuPools(period: \"{}\", model: \"B200\") {{ model period held granted reserved available availableH100Eq }} }}", period())
}

fn utilisation_query() -> String {
    format!("query($c: UUID) {{ gpuUtilisation(consortiumId: $c, period: \"{}\") {{ consortiumId usedHours grantedGpus overrun }} }}", period())
}

fn data<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert!(body["errors"].is_null(), "{field}: {body}");
    &body["data"][field]
}

/// Scoring's `SelectionPublished` for `team` (512 B200 asked for), produced on the real
/// broker as scoring's relay would; returns the call id once the ledger has learned it
/// (read through the gateway).
async fn publish_selection(p: &Platform, officer: &str, team: ConsortiumId) -> Uuid {
    use kaip_contracts::dto::intake::{GpuRequest, ResourceRequest};
    use kaip_contracts::events::{SelectedTeam, SelectionPublished};
    let call = kaip_contracts::CallId::new();
    let event = SelectionPublished {
        call_id: call,
        selected: vec![SelectedTeam {
            proposal_id: kaip_contracts::ProposalId::new(),
            consortium_id: team,
            consortium_name: "Team A".into(),
            title: "A sovereign model".into(),
            rank: 1,
            score_centi: 8_000,
            resources: ResourceRequest {
                gpus: vec![GpuRequest {
                    model: "B200".into(),
                    count: 512,
                }],
                ..Default::default()
            },
        }],
        departure: None,
        override_reason: None,
        published_at: chrono::Utc::now(),
        replaces: None,
        team_maxima: None,
    };
    let env = kaip_contracts::EventEnvelope::wrap(
        "scoring",
        kaip_contracts::Actor::system("scoring"),
        &event,
    )
    .expect("wrap");
    p.others[0].wait_assigned().await;
    p.ctx
        .produce_raw(
            &p.ctx.topic(kaip_contracts::topics::SCORING),
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[(
                "kaip-event-type",
                <SelectionPublished as kaip_contracts::DomainEvent>::TYPE,
            )],
        )
        .await;
    let q =
        "{ gpuSelectedTeams { callId consortiumId requested { model count } requestedH100Eq } }";
    let team_row = eventually(Duration::from_secs(60), || async {
        let body = p.graphql(Some(officer), q, json!({})).await;
        data(&body, "gpuSelectedTeams")
            .as_array()?
            .iter()
            .find(|t| t["consortiumId"] == team.to_string())
            .cloned()
    })
    .await
    .expect("the ledger learned the selection");
    assert_eq!(team_row["callId"], call.to_string());
    assert_eq!(team_row["requested"][0]["count"], "512", "{team_row}");
    assert_eq!(team_row["requestedH100Eq"], "1024", "{team_row}");
    call.0
}

/// Opens a source and a pool for B200 in [`period`] and brings `gpus` into the pool, all
/// through the gateway.
async fn fund_pool(p: &Platform, officer: &str, gpus: &str) {
    let mut ids = Vec::new();
    for kind in ["SOURCE", "POOL"] {
        let id = Uuid::now_v7();
        let mut input = json!({"id": id, "model": "B200", "period": period(), "kind": kind,
            "name": format!("{kind} B200 {}", period()), "reason": "cluster commissioned"});
        if kind == "SOURCE" {
            input["sourceType"] = json!("GOVERNMENT");
        }
        let body = p
            .graphql(Some(officer), OPEN_ACCOUNT, json!({ "input": input }))
            .await;
        assert_eq!(data(&body, "openGpuAccount")["kind"], kind);
        ids.push(id);
    }
    let body = p
        .graphql(
            Some(officer),
            TRANSFERS,
            json!({ "t": [{"id": Uuid::now_v7(), "debitAccount": ids[0], "creditAccount": ids[1],
                "amount": gpus, "kind": "SINGLE", "code": "capacity", "reason": "commissioned"}] }),
        )
        .await;
    assert_eq!(data(&body, "createGpuTransfers")["created"], 1, "{body}");
}

fn offer_input(team: ConsortiumId, call: Uuid, count: &str) -> Value {
    json!({ "input": {
        "id": Uuid::now_v7(), "consortiumId": team, "callId": call,
        "expiresAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        "options": [{"model": "B200", "tranches": [{"period": period(), "count": count}]}],
        "reason": "selected in the 2026 call",
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selected_team_is_offered_gpus_accepts_and_sees_its_grant_and_no_one_else_does() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let (team, other) = (ConsortiumId::new(), ConsortiumId::new());
    let team_token = p.ctx.bearer(Role::Consortium, Some(team));
    let other_token = p.ctx.bearer(Role::Consortium, Some(other));

    let call = publish_selection(&p, &officer, team).await;
    fund_pool(&p, &officer, "600").await;

    // The officer offers 512 B200 (1,024 H100-eq); it is reserved in the pool.
    let body = p
        .graphql(Some(&officer), MAKE_OFFER, offer_input(team, call, "512"))
        .await;
    let offer = data(&body, "makeGpuOffer").clone();
    assert_eq!(offer["status"], "open");
    assert_eq!(offer["h100Eq"], "1024", "{offer}");
    let offer_id = offer["id"].as_str().expect("offer id").to_owned();
    let pools = p.graphql(Some(&officer), &pools_query(), json!({})).await;
    let pool = &data(&pools, "gpuPools")[0];
    assert_eq!(
        (&pool["held"], &pool["reserved"], &pool["available"]),
        (&json!("600"), &json!("512"), &json!("88")),
        "{pool}"
    );

    // A coded refusal from the ledger keeps its code: the pool cannot cover another 100.
    let refused = p
        .graphql(Some(&officer), MAKE_OFFER, offer_input(team, call, "100"))
        .await;
    assert_eq!(error_code(&refused), Some("EXCEEDS_CREDITS"), "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("options[0].tranches[0]")),
        "the refusal names the field: {refused}"
    );
    // ... and changed nothing.
    let pools = p.graphql(Some(&officer), &pools_query(), json!({})).await;
    assert_eq!(data(&pools, "gpuPools")[0]["available"], "88");

    // The pool by source: the government-owned cluster supplied all 600 B200 (1,200
    // H100-eq). A consortium user sees the figures but not the source's name; an
    // integration token nothing.
    let pp = &p;
    let by_source = |token: String| async move {
        pp.graphql(Some(&token), &pool_sources_query(), json!({}))
            .await
    };
    let body = by_source(officer.clone()).await;
    let pool = &data(&body, "gpuPoolSources")[0];
    assert_eq!(
        (
            &pool["supplied"],
            &pool["government"],
            &pool["governmentH100Eq"],
            &pool["leased"]
        ),
        (&json!("600"), &json!("600"), &json!("1200"), &json!("0")),
        "{body}"
    );
    assert_eq!(pool["sources"][0]["sourceType"], "GOVERNMENT");
    assert_eq!(
        pool["sources"][0]["name"],
        format!("SOURCE B200 {}", period())
    );
    let body = by_source(other_token.clone()).await;
    let pool = &data(&body, "gpuPoolSources")[0];
    assert_eq!(
        (&pool["suppliedH100Eq"], &pool["sources"][0]["name"]),
        (&json!("1200"), &Value::Null),
        "{body}"
    );
    let body = by_source(p.ctx.bearer(Role::Integration, None)).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // Another consortium can neither see nor accept the offer.
    let body = p
        .graphql(Some(&other_token), OFFERS, json!({ "c": null }))
        .await;
    assert_eq!(data(&body, "gpuOffers"), &json!([]), "{body}");
    let body = p
        .graphql(Some(&other_token), OFFERS, json!({ "c": team }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p
        .graphql(
            Some(&other_token),
            ACCEPT,
            json!({ "id": offer_id, "option": 0 }),
        )
        .await;
    assert_eq!(error_code(&body), Some("OFFER_NOT_FOUND"), "{body}");

    // The team accepts: the tranche is released into its grant.
    let body = p
        .graphql(
            Some(&team_token),
            ACCEPT,
            json!({ "id": offer_id, "option": 0 }),
        )
        .await;
    let accepted = data(&body, "acceptGpuOffer");
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    assert_eq!(accepted["acceptedOption"], 0);
    assert_eq!(accepted["tranches"][0]["status"], "released", "{accepted}");
    assert_eq!(accepted["tranches"][0]["h100Eq"], "1024");
    // Once only.
    let again = p
        .graphql(
            Some(&team_token),
            ACCEPT,
            json!({ "id": offer_id, "option": 0 }),
        )
        .await;
    assert_eq!(
        error_code(&again),
        Some("OFFER_ALREADY_ACCEPTED"),
        "{again}"
    );

    // The team sees its offer and its grant, with the balance in units and H100-eq.
    let body = p
        .graphql(Some(&team_token), OFFERS, json!({ "c": null }))
        .await;
    let offers = data(&body, "gpuOffers");
    assert_eq!(offers.as_array().map(Vec::len), Some(1), "{offers}");
    assert_eq!(offers[0]["consortiumId"], team.to_string());
    let body = p
        .graphql(Some(&team_token), GRANTS, json!({ "c": null }))
        .await;
    let grants = data(&body, "gpuAccounts")["items"].clone();
    assert_eq!(grants.as_array().map(Vec::len), Some(1), "{grants}");
    assert_eq!(grants[0]["consortiumId"], team.to_string());
    assert_eq!(grants[0]["balance"]["creditsPosted"], "512");
    let grant_id = grants[0]["id"].as_str().expect("grant id").to_owned();
    let body = p
        .graphql(Some(&team_token), BALANCE, json!({ "id": grant_id }))
        .await;
    let balance = data(&body, "gpuBalance");
    assert_eq!(
        (
            &balance["netPosted"],
            &balance["netPostedH100Eq"],
            &balance["h100Factor"]
        ),
        (&json!("512"), &json!("1024"), &json!("2")),
        "{balance}"
    );
    let body = p
        .graphql(
            Some(&team_token),
            "query($a: UUID!) { gpuTransfers(account: $a, first: 10) { items { amount kind code } nextCursor } }",
            json!({ "a": grant_id }),
        )
        .await;
    let items = &data(&body, "gpuTransfers")["items"];
    assert!(
        items
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["amount"] == "512")),
        "{body}"
    );

    // Another consortium sees nothing of the grant.
    let body = p
        .graphql(Some(&other_token), GRANTS, json!({ "c": null }))
        .await;
    assert_eq!(data(&body, "gpuAccounts")["items"], json!([]), "{body}");
    let body = p
        .graphql(Some(&other_token), GRANTS, json!({ "c": team }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = p
        .graphql(Some(&other_token), BALANCE, json!({ "id": grant_id }))
        .await;
    assert_eq!(error_code(&body), Some("ACCOUNT_NOT_FOUND"), "{body}");
    let body = p
        .graphql(
            Some(&other_token),
            "query($a: UUID!) { gpuTransfers(account: $a) { items { id } } }",
            json!({ "a": grant_id }),
        )
        .await;
    assert_eq!(error_code(&body), Some("ACCOUNT_NOT_FOUND"), "{body}");

    // A GPU operator reports usage; the team sees its utilisation, the other team none.
    let operator = p
        .ctx
        .integration_bearer("operator-1", &[kaip_auth::scopes::WRITE_GPU_USAGE]);
    let body = p
        .graphql(
            Some(&operator),
            USAGE,
            json!({ "input": { "id": Uuid::now_v7(), "consortiumId": team, "model": "B200",
                "period": period(), "gpuHours": "1000" } }),
        )
        .await;
    let report = data(&body, "reportGpuUsage");
    assert_eq!(report["usedHours"], "1000", "{report}");
    assert_eq!(report["overrun"], false);
    let body = p
        .graphql(
            Some(&team_token),
            &utilisation_query(),
            json!({ "c": null }),
        )
        .await;
    let lines = data(&body, "gpuUtilisation");
    assert_eq!(lines[0]["usedHours"], "1000", "{lines}");
    assert_eq!(lines[0]["grantedGpus"], "512", "{lines}");
    let body = p
        .graphql(
            Some(&other_token),
            &utilisation_query(),
            json!({ "c": null }),
        )
        .await;
    assert!(
        data(&body, "gpuUtilisation")
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["consortiumId"] != team.to_string())),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_mutations_refuse_the_wrong_role_and_quantities_must_be_digit_strings() {
    let p = Platform::start().await;
    let team = ConsortiumId::new();
    let team_token = p.ctx.bearer(Role::Consortium, Some(team));
    let officer = p.ctx.bearer(Role::Officer, None);
    let reviewer = p.ctx.bearer(Role::Reviewer, None);
    let call = Uuid::now_v7();

    // Offers are made by staff only; a consortium (even the team itself) is refused.
    let body = p
        .graphql(Some(&team_token), MAKE_OFFER, offer_input(team, call, "1"))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    // Offers are accepted by the team only: not by an officer.
    let body = p
        .graphql(
            Some(&officer),
            ACCEPT,
            json!({ "id": Uuid::now_v7(), "option": 0 }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    // Reviewers read nothing of the ledger.
    let body = p.graphql(Some(&reviewer), &pools_query(), json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    // Suppliers are recorded by staff only.
    let body = p
        .graphql(
            Some(&team_token),
            "mutation($c: UUID!) { recordGpuSupplier(consortiumId: $c, supplying: false, reason: \"ended\") { seq } }",
            json!({ "c": team }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    // Usage comes from an operator holding the scope; an integration without it, or a
    // consortium, is refused before the ledger is called.
    let usage = json!({ "input": { "id": Uuid::now_v7(), "consortiumId": team, "model": "B200",
        "period": period(), "gpuHours": "10" } });
    let unscoped = p.ctx.integration_bearer("operator-2", &[]);
    for token in [&unscoped, &team_token] {
        let body = p.graphql(Some(token), USAGE, usage.clone()).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    }
    // No token at all.
    let body = p.graphql(None, &pools_query(), json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");

    // GPU quantities are 64-bit digit strings: a JSON number or a fraction is refused
    // before any service is called.
    for bad in [json!(512), json!("1.5"), json!("9223372036854775808")] {
        let mut input = offer_input(team, call, "1");
        input["input"]["options"][0]["tranches"][0]["count"] = bad.clone();
        let body = p.graphql(Some(&officer), MAKE_OFFER, input).await;
        assert!(
            body["data"].is_null() && body["errors"].is_array(),
            "{bad} accepted: {body}"
        );
    }
}
