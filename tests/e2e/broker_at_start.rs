//! A service that starts while the broker is away: it must come up, serve and buffer its
//! events in the outbox, create its topics once the broker answers, and then publish what
//! it buffered. Before the fix `Application::build` failed on the topic creation, so a
//! replica restarted during a broker outage crash-looped until the broker came back.

use kaip_contracts::{topics, Role};
use kaip_e2e::eventually;
use kaip_testkit::proxy::TcpProxy;
use kaip_testkit::TestContext;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_started_while_the_broker_is_down_serves_buffers_and_publishes_when_it_returns() {
    let ctx = TestContext::new();
    // The broker, behind a proxy that refuses every connection for now.
    let proxy = TcpProxy::start(&ctx.kafka.brokers, false).await;
    let mut settings = ctx.settings(kaip_intake::DEFAULTS);
    settings.kafka.brokers = proxy.address();
    let started = Instant::now();
    let intake = ctx.spawn_with(kaip_intake::definition(), settings).await;
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the service came up without the broker, in {:?}",
        started.elapsed()
    );

    // It serves and is ready (its database is up); readiness reports the broker as away.
    let http = reqwest::Client::new();
    let ready: Value = http
        .get(intake.url("/health/ready"))
        .send()
        .await
        .expect("ready answers")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["ready"], true, "{ready:#}");
    let broker_state = eventually(Duration::from_secs(20), || {
        let http = http.clone();
        let url = intake.url("/health/ready");
        async move {
            let r: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (r["broker"] == "unavailable").then_some(r)
        }
    })
    .await;
    assert!(
        broker_state.is_some(),
        "readiness reports the broker as away"
    );

    let metrics = |http: reqwest::Client, url: String| async move {
        http.get(url).send().await.ok()?.text().await.ok()
    };
    let m = metrics(http.clone(), intake.url("/metrics"))
        .await
        .unwrap_or_default();
    assert!(m.contains("kaip_topics_ready 0"), "{m}");

    // A write succeeds and its event waits in the outbox: the relay does not run before the
    // topics exist, so it cannot make an auto-creating broker create them its own way.
    let call = kaip_testkit::intake::open_call(&ctx, &intake.base_url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox: Value = http
        .get(intake.url("/admin/outbox"))
        .header("authorization", ctx.bearer(Role::Admin, None))
        .send()
        .await
        .expect("outbox answers")
        .json()
        .await
        .expect("json");
    assert!(outbox["pending"].as_i64() >= Some(1), "{outbox}");

    // The broker returns. The creation retries with a backoff (up to 30 s): it reports done
    // once the broker answered.
    proxy.restore();
    let created = eventually(Duration::from_secs(60), || {
        let m = metrics(http.clone(), intake.url("/metrics"));
        async move { m.await.filter(|m| m.contains("kaip_topics_ready 1")) }
    })
    .await;
    assert!(
        created.is_some(),
        "the topics were created once the broker answered"
    );
    // By the service, from infra/topics.yaml (the events topic's 6 partitions, capped at 3
    // in tests), not by the broker's auto-creation.
    let topic = ctx.topic(topics::INTAKE);
    let (kafka, name) = (ctx.kafka.clone(), topic.clone());
    let partitions = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("client");
        client
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .expect("metadata")
            .topics()
            .iter()
            .find(|m| m.name() == name)
            .map_or(0, |m| m.partitions().len())
    })
    .await
    .expect("task");
    assert_eq!(
        partitions, 3,
        "the events topic as the topics file makes it"
    );

    // Then the buffered event is published.
    let published = eventually(Duration::from_secs(60), || {
        let ctx = &ctx;
        let topic = topic.clone();
        let call = call.clone();
        async move {
            let msgs = ctx.read_topic(&topic).await;
            msgs.iter()
                .any(|m| m.json().is_some_and(|v| v.to_string().contains(&call)))
                .then_some(msgs.len())
        }
    })
    .await;
    assert!(
        published.is_some(),
        "the CallOpened buffered during the outage reached the broker once it returned"
    );
    intake.shutdown().await;
}
