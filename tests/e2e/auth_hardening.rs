//! Auth and the network, hardened (issue #6): no process trusts the public development
//! secret outside development mode; tokens from a real identity provider (RS256 and ES256,
//! keys by `kid` from a JWKS that rotates) work end to end; every service checks tokens on
//! its own; integration tokens are limited by their scopes; and in a cluster only the
//! gateway reaches the services.

use kaip_auth::scopes;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{draft, error_code, eventually, open_call, register, OrgType, Platform, SUBMIT};
use kaip_gateway::settings::GatewaySettings;
use kaip_service::{Defaults, ServiceDefinition};
use kaip_testkit::idp::TestIdp;
use kaip_testkit::TestContext;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn all_services() -> Vec<(ServiceDefinition, Defaults)> {
    vec![
        (kaip_intake::definition(), kaip_intake::DEFAULTS),
        (kaip_scoring::definition(), kaip_scoring::DEFAULTS),
        (kaip_gpu_ledger::definition(), kaip_gpu_ledger::DEFAULTS),
        (kaip_data_budget::definition(), kaip_data_budget::DEFAULTS),
        (kaip_talent::definition(), kaip_talent::DEFAULTS),
        (kaip_milestones::definition(), kaip_milestones::DEFAULTS),
    ]
}

fn gateway_settings(
    ctx: &TestContext,
    url: &str,
    auth: kaip_auth::AuthSettings,
) -> GatewaySettings {
    GatewaySettings {
        auth,
        ..kaip_e2e::gateway_settings(ctx, kaip_e2e::all_services_at(url))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_process_starts_with_the_development_secret_outside_development_mode() {
    let ctx = TestContext::new();
    let mut auth = kaip_auth::dev::settings();
    auth.dev_mode = false;
    for (def, defaults) in all_services() {
        let name = def.name;
        let mut settings = ctx.settings(defaults);
        settings.auth = auth.clone();
        let Err(err) = kaip_service::Application::build(def, settings).await else {
            panic!("{name} started with the public development secret");
        };
        let text = format!("{err:#}");
        assert!(
            text.contains("auth.key")
                && text.contains("KAIP_AUTH__JWKS_URL")
                && text.contains("KAIP_AUTH__DEV_MODE=true"),
            "{name}: the error must say what to set: {text}"
        );
    }
    let Err(err) =
        kaip_gateway::Application::build(gateway_settings(&ctx, "http://127.0.0.1:9", auth)).await
    else {
        panic!("the gateway started with the public development secret");
    };
    assert!(
        format!("{err:#}").contains("KAIP_AUTH__DEV_MODE=true"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_refuses_forged_expired_early_and_foreign_tokens() {
    let ctx = TestContext::new();
    let http = reqwest::Client::new();
    let mut services = Vec::new();
    for (def, defaults) in all_services() {
        services.push(ctx.spawn(def, defaults).await);
    }
    for svc in &services {
        let url = svc.url("/admin/outbox");
        let res = http
            .get(&url)
            .header("authorization", ctx.bearer(Role::Admin, None))
            .send()
            .await
            .expect("service answers");
        assert_eq!(res.status(), 200, "{}: a valid admin token", svc.name);
        for (expected, bearer) in ctx.bad_bearers(Role::Admin) {
            let mut req = http.get(&url);
            if let Some(b) = &bearer {
                req = req.header("authorization", b);
            }
            let res = req.send().await.expect("service answers");
            let status = res.status();
            let body: Value = res.json().await.expect("a JSON refusal");
            assert_eq!(
                (status.as_u16(), body["code"].as_str()),
                (401, Some(expected)),
                "{}: {body}",
                svc.name
            );
        }
        // A valid token of another role is refused as such.
        let res = http
            .get(&url)
            .header("authorization", ctx.bearer(Role::Officer, None))
            .send()
            .await
            .expect("service answers");
        assert_eq!(res.status(), 403, "{}", svc.name);
    }
    for svc in services {
        svc.shutdown().await;
    }
}

const CREATE_PROGRAMME: &str =
    "mutation($name: String!) { createProgramme(name: $name, fiscalYear: 2026) { id name } }";
const PROGRAMMES: &str = "{ programmes(first: 100) { items { name } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_from_a_rotating_jwks_work_from_gateway_to_service() {
    let ctx = TestContext::new();
    let idp = TestIdp::start(&["rsa-1", "ec-1"]);
    let mut settings = ctx.settings(kaip_intake::DEFAULTS);
    settings.auth = idp.settings();
    let intake = ctx.spawn_with(kaip_intake::definition(), settings).await;
    let gateway =
        kaip_gateway::Application::build(gateway_settings(&ctx, &intake.base_url, idp.settings()))
            .await
            .expect("gateway starts");
    let gw = format!("http://127.0.0.1:{}/graphql", gateway.port());
    let stop = gateway.shutdown_token();
    tokio::spawn(gateway.run_until_stopped());
    let http = reqwest::Client::new();
    let gql = |bearer: String, query: &'static str, vars: Value| {
        let http = http.clone();
        let gw = gw.clone();
        async move {
            http.post(&gw)
                .header("authorization", bearer)
                .json(&json!({ "query": query, "variables": vars }))
                .send()
                .await
                .expect("gateway answers")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };

    // RS256: the gateway verifies the officer's token, and so does intake, which it reaches.
    let body = gql(
        idp.bearer("rsa-1", Role::Officer, None),
        CREATE_PROGRAMME,
        json!({ "name": "RS256 programme" }),
    )
    .await;
    assert_eq!(
        body["data"]["createProgramme"]["name"], "RS256 programme",
        "{body}"
    );
    // ES256, from the same JWKS by its kid.
    let body = gql(
        idp.bearer("ec-1", Role::Officer, None),
        CREATE_PROGRAMME,
        json!({ "name": "ES256 programme" }),
    )
    .await;
    assert_eq!(
        body["data"]["createProgramme"]["name"], "ES256 programme",
        "{body}"
    );

    // Rotation: a token signed by a key the provider has not published yet is refused...
    let rotated = idp.bearer("rsa-2", Role::Officer, None);
    let body = gql(rotated.clone(), PROGRAMMES, json!({})).await;
    assert_eq!(error_code(&body), Some("TOKEN_UNKNOWN_KEY"), "{body}");
    let direct = http
        .get(intake.url("/programmes"))
        .header("authorization", &rotated)
        .send()
        .await
        .expect("intake answers");
    assert_eq!(direct.status(), 401);
    // ...and accepted once the provider publishes it, by the gateway and by intake alike,
    // without a restart: the unknown kid makes both re-read the JWKS (at most once a second,
    // hence the bounded wait).
    idp.publish(&["rsa-1", "rsa-2", "ec-1"]);
    let body = eventually(Duration::from_secs(10), || {
        let ask = gql(rotated.clone(), PROGRAMMES, json!({}));
        async move {
            let body = ask.await;
            (error_code(&body) != Some("TOKEN_UNKNOWN_KEY")).then_some(body)
        }
    })
    .await
    .expect("the rotated key is accepted within 10 s");
    let names: Vec<&str> = body["data"]["programmes"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{body}");
    let direct = eventually(Duration::from_secs(10), || {
        let ask = http
            .get(intake.url("/programmes"))
            .header("authorization", &rotated)
            .send();
        async move { ask.await.ok().filter(|r| r.status() != 401) }
    })
    .await
    .expect("intake accepts the rotated key within 10 s");
    assert_eq!(direct.status(), 200);

    // The development secret means nothing to a platform that trusts its identity provider.
    let dev = ctx.bearer(Role::Admin, None);
    let body = gql(dev.clone(), PROGRAMMES, json!({})).await;
    assert_eq!(
        error_code(&body),
        Some("TOKEN_ALGORITHM_NOT_ALLOWED"),
        "{body}"
    );
    let direct = http
        .get(intake.url("/admin/outbox"))
        .header("authorization", &dev)
        .send()
        .await
        .expect("intake answers");
    let direct: Value = direct.json().await.expect("JSON");
    assert_eq!(direct["code"], "TOKEN_ALGORITHM_NOT_ALLOWED", "{direct}");
    assert!(idp.fetches() >= 2, "the JWKS was fetched and re-fetched");

    stop.cancel();
    intake.shutdown().await;
}

const CONSORTIA: &str = "{ consortia { items { id members { businessRegistrationNumber } } } }";
const CONSORTIUM: &str =
    "query($id: UUID!) { consortium(id: $id) { members { businessRegistrationNumber } } }";
const PROPOSALS: &str = "{ proposals { items { id title documents { filename } } } }";
const PROPOSAL: &str = "query($id: UUID!) { proposal(id: $id) { title documents { filename } } }";
const UPLOAD: &str = "mutation($id: UUID!) { uploadDocument(proposalId: $id, kind: \"plan\", filename: \"plan.pdf\", contentBase64: \"c2VjcmV0IHBsYW4=\") { id } }";
const EVENTS: &str = "subscription { events { type producer aggregateId } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_scopes_limit_what_a_token_reads_and_receives() {
    let p = Platform::start().await;
    let call = open_call(&p, 1).await;
    let consortium = ConsortiumId::new();
    register(&p, consortium, OrgType::LargeEnterprise).await;
    let proposal = draft(&p, consortium, &call, "Scoped proposal").await;
    let own = p.ctx.bearer(Role::Consortium, Some(consortium));
    let body = p
        .graphql(Some(&own), UPLOAD, json!({ "id": proposal }))
        .await;
    assert!(body["errors"].is_null(), "{body}");

    // A GPU operator receives the GPU ledger's events; an R&D system intake's; a finance
    // system scoring's.
    let gpu = p
        .ctx
        .integration_bearer("gpu-operator", &[&scopes::events_scope("gpu-ledger")]);
    let rnd = p
        .ctx
        .integration_bearer("rnd-system", &[&scopes::events_scope("intake")]);
    let finance = p
        .ctx
        .integration_bearer("finance", &[&scopes::events_scope("scoring")]);
    let mut rnd_feed = p.subscribe(&rnd, EVENTS).await;
    let mut finance_feed = p.subscribe(&finance, EVENTS).await;
    let body = p
        .graphql(
            Some(&own),
            SUBMIT,
            json!({ "id": proposal, "key": format!("submit-{proposal}") }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");

    // The submission reaches the R&D system. Scoring's reaction to it comes after it on the
    // same feed, so the finance system's first event being scoring's shows it was never
    // sent intake's.
    // (Events of the call's opening and the registration may still be on their way.)
    let mut seen = Vec::new();
    loop {
        let event = rnd_feed.next_event().await;
        assert_eq!(event["producer"], "intake", "{event}");
        if event["type"] == "ProposalSubmitted" && event["aggregateId"] == proposal.as_str() {
            break;
        }
        seen.push(event);
        assert!(seen.len() < 10, "no ProposalSubmitted among {seen:?}");
    }
    let first = finance_feed.next_event().await;
    assert_eq!(first["producer"], "scoring", "{first}");

    // Through the gateway: the GPU operator reads no registration number and no proposal.
    for (query, vars) in [
        (CONSORTIA, json!({})),
        (CONSORTIUM, json!({ "id": consortium })),
        (PROPOSALS, json!({})),
        (PROPOSAL, json!({ "id": proposal })),
    ] {
        let body = p.graphql(Some(&gpu), query, vars).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{query}: {body}");
        assert!(
            !body.to_string().contains("plan.pdf") && !body.to_string().contains("Scoped"),
            "{body}"
        );
    }
    // Directly against intake, the same.
    let http = reqwest::Client::new();
    for path in [
        format!("/consortia/{consortium}"),
        "/consortia".to_owned(),
        format!("/proposals/{proposal}"),
        format!("/proposals/{proposal}/versions"),
        // The gateway's batched read of versions keeps the single read's scope.
        format!("/proposals/versions?ids={proposal}"),
        format!("/proposals/{proposal}/documents/plan"),
    ] {
        let res = http
            .get(p.intake.url(&path))
            .header("authorization", &gpu)
            .send()
            .await
            .expect("intake answers");
        let status = res.status();
        let body: Value = res.json().await.expect("a JSON refusal");
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (403, Some("FORBIDDEN")),
            "{path}: {body}"
        );
    }

    // An integration granted the reads gets them: the scopes, not the role, decide.
    let reader = p.ctx.integration_bearer(
        "rnd-system",
        &[
            scopes::READ_CONSORTIA,
            scopes::READ_PROPOSALS,
            scopes::READ_DOCUMENTS,
        ],
    );
    let body = p
        .graphql(Some(&reader), CONSORTIUM, json!({ "id": consortium }))
        .await;
    assert!(
        body["data"]["consortium"]["members"][0]["businessRegistrationNumber"].is_string(),
        "{body}"
    );
    let res = http
        .get(
            p.intake
                .url(&format!("/proposals/{proposal}/documents/plan")),
        )
        .header("authorization", &reader)
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.expect("content").as_ref(), b"secret plan");
}

/// Every document of every manifest in `infra/k8s`.
fn manifests() -> Vec<serde_yaml::Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/k8s");
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("infra/k8s")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("manifest");
        let mut chunk = String::new();
        for line in text.lines().chain(std::iter::once("---")) {
            if line.trim_end() == "---" {
                let value: serde_yaml::Value = serde_yaml::from_str(&chunk)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if !value.is_null() {
                    docs.push(value);
                }
                chunk.clear();
            } else {
                chunk.push_str(line);
                chunk.push('\n');
            }
        }
    }
    docs
}

fn labels(v: &serde_yaml::Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Does a `podSelector` select a pod with `pod` labels? (`matchLabels` only: the manifests
/// use nothing else, and anything else fails the test below.)
fn selects(selector: &serde_yaml::Value, pod: &BTreeMap<String, String>) -> bool {
    if let Some(m) = selector.as_mapping() {
        assert!(
            m.keys().all(|k| k.as_str() == Some("matchLabels")),
            "only matchLabels selectors are checked: {selector:?}"
        );
    }
    labels(&selector["matchLabels"])
        .iter()
        .all(|(k, v)| pod.get(k) == Some(v))
}

#[test]
fn in_the_cluster_only_the_gateway_reaches_the_services() {
    let docs = manifests();
    let kind = |d: &serde_yaml::Value| d["kind"].as_str().unwrap_or("").to_owned();
    // Nothing turns development mode on in a deployment.
    for d in &docs {
        let text = serde_yaml::to_string(d).expect("yaml");
        assert!(
            !text.contains("KAIP_AUTH__DEV_MODE: 'true'")
                && !text.contains("KAIP_AUTH__DEV_MODE: \"true\"")
                && !text.contains("KAIP_AUTH__DEV_MODE: true"),
            "a manifest turns development mode on: {text}"
        );
        if let Some(env) = d["spec"]["template"]["spec"]["containers"][0]["env"].as_sequence() {
            for e in env {
                assert!(
                    !(e["name"] == "KAIP_AUTH__DEV_MODE"
                        && e["value"].as_str().is_some_and(|v| v != "false")),
                    "{e:?}"
                );
            }
        }
    }
    let policies: Vec<&serde_yaml::Value> = docs
        .iter()
        .filter(|d| kind(d) == "NetworkPolicy" && d["metadata"]["namespace"] == "kaip")
        .collect();
    // Default deny: a policy selecting every pod, for ingress, that allows nothing.
    assert!(
        policies.iter().any(|p| {
            p["spec"]["podSelector"]
                .as_mapping()
                .is_some_and(|m| m.is_empty())
                && p["spec"]["policyTypes"]
                    .as_sequence()
                    .is_some_and(|t| t.iter().any(|t| t == "Ingress"))
                && p["spec"]["ingress"].is_null()
        }),
        "no default-deny ingress policy in the kaip namespace"
    );

    let deployments: Vec<&serde_yaml::Value> =
        docs.iter().filter(|d| kind(d) == "Deployment").collect();
    assert_eq!(deployments.len(), 7, "six services and the gateway");
    let gateway_labels = BTreeMap::from([("app".to_owned(), "gateway".to_owned())]);
    for d in deployments {
        let name = d["metadata"]["name"].as_str().expect("name").to_owned();
        let pod = labels(&d["spec"]["template"]["metadata"]["labels"]);
        let port = d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            .as_u64()
            .expect("containerPort");
        let rules: Vec<&serde_yaml::Value> = policies
            .iter()
            .filter(|p| selects(&p["spec"]["podSelector"], &pod))
            .filter_map(|p| p["spec"]["ingress"].as_sequence())
            .flatten()
            .collect();
        let port_of = |rule: &serde_yaml::Value| -> Vec<u64> {
            rule["ports"]
                .as_sequence()
                .map(|ps| ps.iter().filter_map(|p| p["port"].as_u64()).collect())
                .unwrap_or_default()
        };
        if name == "gateway" {
            assert!(
                rules.iter().any(|r| port_of(r).contains(&port)),
                "the gateway's port {port} must stay reachable"
            );
            continue;
        }
        assert!(!rules.is_empty(), "{name}: no rule lets the gateway in");
        for rule in &rules {
            let from = rule["from"]
                .as_sequence()
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| panic!("{name}: a rule open to every source: {rule:?}"));
            for peer in from {
                let keys: Vec<&str> = peer
                    .as_mapping()
                    .map(|m| m.keys().filter_map(|k| k.as_str()).collect())
                    .unwrap_or_default();
                assert_eq!(
                    keys,
                    ["podSelector"],
                    "{name}: only pods of this namespace, by selector: {peer:?}"
                );
                let selected = labels(&peer["podSelector"]["matchLabels"]);
                assert!(
                    !selected.is_empty() && selected == gateway_labels,
                    "{name}: a peer other than the gateway: {peer:?}"
                );
            }
            let ports = port_of(rule);
            assert!(
                !ports.is_empty() && ports.iter().all(|p| *p == port),
                "{name}: rules must name the HTTP port {port} only: {rule:?}"
            );
        }
    }
}
