//! The event backbone's guarantees, with intake as the producer and scoring as the
//! consumer: nothing lost, nothing doubled, poison events dead-lettered.

use diesel::prelude::*;
use kaip_bus::outbox::claim_pending;
use kaip_bus::schema::{kaip_inbox, kaip_outbox};
use kaip_bus::{Outbox, OutboxSettings, Relay};
use kaip_contracts::events::headers;
use kaip_contracts::{topics, EventEnvelope, ProposalId};
use kaip_e2e::{envelope, eventually, single_partition_context, submitted};
use kaip_service::db;
use kaip_testkit::{TestContext, TestService};
use std::time::Duration;

fn case_count(scoring: &TestService, proposal: ProposalId) -> i64 {
    use kaip_scoring::schema::evaluation_cases::dsl::*;
    evaluation_cases
        .filter(proposal_id.eq(proposal.0))
        .count()
        .get_result(&mut scoring.conn())
        .expect("count")
}

fn total_cases(scoring: &TestService) -> i64 {
    use kaip_scoring::schema::evaluation_cases::dsl::*;
    evaluation_cases
        .count()
        .get_result(&mut scoring.conn())
        .expect("count")
}

async fn wait_for_cases(scoring: &TestService, n: i64) {
    eventually(Duration::from_secs(60), || async {
        (total_cases(scoring) >= n).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "scoring never reached {n} cases (has {})",
            total_cases(scoring)
        )
    });
}

/// Produces a sentinel event after everything else and waits until scoring applied it:
/// with one partition, every earlier message has then been consumed.
async fn drain(ctx: &TestContext, scoring: &TestService) {
    let sentinel = submitted("sentinel");
    let env = envelope(&sentinel);
    ctx.produce_raw(
        &ctx.topic(topics::INTAKE),
        &env.aggregate_id.to_string(),
        &serde_json::to_vec(&env).expect("json"),
        &[],
    )
    .await;
    eventually(Duration::from_secs(60), || async {
        (case_count(scoring, sentinel.proposal_id) == 1).then_some(())
    })
    .await
    .expect("the sentinel is consumed");
}

/// Intake's database, migrated, without a running intake (so no relay runs by itself).
fn intake_database(ctx: &TestContext) -> kaip_bus::PgPool {
    let settings = ctx.settings(kaip_intake::DEFAULTS);
    ctx.track_database(&settings.database.name);
    db::ensure_database(&settings.database).expect("database");
    let pool = db::build_pool(&settings.database).expect("pool");
    db::migrate(&pool, kaip_intake::MIGRATIONS).expect("migrations");
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_dies_after_the_ack_but_before_marking_sent_causes_one_effect() {
    let ctx = single_partition_context();
    let pool = intake_database(&ctx);
    let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;

    // Intake commits an event.
    let event = submitted("Relay crash");
    let env = envelope(&event);
    {
        let mut conn = pool.get().expect("conn");
        outbox
            .transaction(&mut conn, |c, tx| tx.enqueue(c, &env))
            .expect("event committed");
    }

    // A relay claims it, the broker acknowledges it, and the relay dies before its
    // transaction marks the row sent: the rollback stands for the crash.
    let producer = kaip_bus::kafka::producer(&ctx.kafka).expect("producer");
    let acked = {
        let pool = pool.clone();
        let producer = producer.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().expect("conn");
            let mut acked = 0;
            let _ = conn.transaction::<(), diesel::result::Error, _>(|c| {
                let pending = claim_pending(c, 10, None, (1, 1))?;
                let results = handle.block_on(kaip_bus::relay::publish(&producer, &pending));
                acked = results.iter().filter(|r| r.is_ok()).count();
                Err(diesel::result::Error::RollbackTransaction)
            });
            acked
        })
        .await
        .expect("relay attempt")
    };
    assert_eq!(acked, 1, "the broker acknowledged the event");
    let unsent: i64 = kaip_outbox::table
        .filter(kaip_outbox::sent_at.is_null())
        .count()
        .get_result(&mut pool.get().expect("conn"))
        .expect("count");
    assert_eq!(unsent, 1, "the dead relay never marked it sent");

    // The next relay publishes it again and marks it.
    let relay = Relay::new(
        pool.clone(),
        producer,
        outbox.wake_handle(),
        OutboxSettings::default(),
    );
    assert_eq!(relay.publish_pending().await.expect("republish"), 1);

    // Kafka holds the event twice; scoring applied it once.
    let copies = eventually(Duration::from_secs(30), || async {
        let n = ctx
            .read_topic(&ctx.topic(topics::INTAKE))
            .await
            .iter()
            .filter(|m| m.json().is_some_and(|j| j["id"] == env.id.to_string()))
            .count();
        (n == 2).then_some(n)
    })
    .await;
    assert_eq!(copies, Some(2), "both deliveries are on the topic");
    drain(&ctx, &scoring).await;
    let inbox_rows: i64 = kaip_inbox::table
        .filter(kaip_inbox::event_id.eq(env.id.0))
        .count()
        .get_result(&mut scoring.conn())
        .expect("count");
    assert_eq!(case_count(&scoring, event.proposal_id), 1);
    assert_eq!(inbox_rows, 1);
    let announced: i64 = kaip_outbox::table
        .filter(kaip_outbox::event_type.eq("EvaluationCaseOpened"))
        .count()
        .get_result(&mut scoring.conn())
        .expect("count");
    assert_eq!(
        announced, 2,
        "scoring announced the case once (plus the sentinel's)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_among_others_changes_state_once() {
    let ctx = single_partition_context();
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    let topic = ctx.topic(topics::INTAKE);
    let (a, b, c) = (submitted("A"), submitted("B"), submitted("C"));
    let (ea, eb, ec) = (envelope(&a), envelope(&b), envelope(&c));
    let raw = |e: &EventEnvelope| serde_json::to_vec(e).expect("json");
    // A, B, A again, C, B again: duplicates interleaved with other aggregates' events.
    for e in [&ea, &eb, &ea, &ec, &eb] {
        ctx.produce_raw(
            &topic,
            &e.aggregate_id.to_string(),
            &raw(e),
            &[(headers::EVENT_TYPE, "ProposalSubmitted")],
        )
        .await;
    }
    drain(&ctx, &scoring).await;
    for p in [&a, &b, &c] {
        assert_eq!(
            case_count(&scoring, p.proposal_id),
            1,
            "{} applied once",
            p.title
        );
    }
    assert_eq!(total_cases(&scoring), 4, "A, B, C and the sentinel");
    let inbox: i64 = kaip_inbox::table
        .count()
        .get_result(&mut scoring.conn())
        .expect("count");
    assert_eq!(inbox, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_with_their_error_and_consumption_continues() {
    let ctx = single_partition_context();
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    let topic = ctx.topic(topics::INTAKE);

    // Not JSON at all, with headers of its own that the dead letter must keep.
    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    ctx.produce_raw(
        &topic,
        "k1",
        b"{not json",
        &[
            (headers::TRACEPARENT, TRACEPARENT),
            ("x-origin", "integration-7"),
        ],
    )
    .await;
    // A valid envelope whose payload breaks the contract.
    let mut bad = envelope(&submitted("bad"));
    bad.data["title"] = serde_json::json!(42);
    ctx.produce_raw(&topic, "k2", &serde_json::to_vec(&bad).expect("json"), &[])
        .await;
    // A good event after them.
    let good = submitted("good");
    let env = envelope(&good);
    ctx.produce_raw(
        &topic,
        &env.aggregate_id.to_string(),
        &serde_json::to_vec(&env).expect("json"),
        &[],
    )
    .await;

    wait_for_cases(&scoring, 1).await;
    assert_eq!(
        case_count(&scoring, good.proposal_id),
        1,
        "the consumer carried on"
    );

    let dlq = ctx.topic(&topics::dead_letter_topic_of("scoring"));
    let dead = eventually(Duration::from_secs(30), || async {
        let msgs = ctx.read_topic(&dlq).await;
        (msgs.len() >= 2).then_some(msgs)
    })
    .await
    .expect("both poison events reach the dead-letter topic");
    assert_eq!(dead.len(), 2);
    let errors: Vec<&str> = dead
        .iter()
        .map(|m| m.headers[headers::DLQ_ERROR].as_str())
        .collect();
    assert!(
        errors[0].contains("malformed event envelope"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("ProposalSubmitted v1 `data` is invalid"),
        "{}",
        errors[1]
    );
    assert_eq!(
        dead[0].payload.as_deref(),
        Some(&b"{not json"[..]),
        "the original bytes are kept"
    );
    for m in &dead {
        assert_eq!(m.headers[headers::DLQ_ORIGINAL_TOPIC], topic);
        assert_eq!(m.headers[headers::DLQ_ORIGINAL_PARTITION], "0");
        assert_eq!(
            m.headers[headers::DLQ_CONSUMER_GROUP],
            ctx.kafka.prefixed("kaip-scoring")
        );
        assert_eq!(m.headers[headers::DLQ_ATTEMPTS], "1");
    }
    assert_eq!(dead[0].headers[headers::DLQ_ORIGINAL_OFFSET], "0");
    assert_eq!(dead[1].headers[headers::DLQ_ORIGINAL_OFFSET], "1");
    assert_eq!(dead[0].key.as_deref(), Some(&b"k1"[..]), "the key is kept");
    assert_eq!(
        dead[0]
            .headers
            .get(headers::TRACEPARENT)
            .map(String::as_str),
        Some(TRACEPARENT),
        "the original headers are copied"
    );
    assert_eq!(
        dead[0].headers.get("x-origin").map(String::as_str),
        Some("integration-7")
    );
    assert_eq!(total_cases(&scoring), 1, "poison events changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_event_is_published_without_waiting_for_the_poll_interval() {
    let ctx = TestContext::new();
    let mut settings = ctx.settings(kaip_intake::DEFAULTS);
    // An hour: if the relay relied on polling, nothing would arrive during this test.
    settings.outbox.poll_interval_ms = 3_600_000;
    let intake = ctx.spawn_with(kaip_intake::definition(), settings).await;
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;

    let call = kaip_testkit::intake::open_call(&ctx, &intake.base_url).await;
    kaip_testkit::intake::apply(&ctx, &intake.base_url, &call, "Fast").await;
    wait_for_cases(&scoring, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_then_dead_lettered_without_blocking_the_partition() {
    let ctx = TestContext::new();
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    // Break scoring's table for one proposal id only: a trigger that raises a transient
    // error (serialization_failure) keeps failing the same event.
    let doomed = submitted("doomed");
    diesel::connection::SimpleConnection::batch_execute(&mut *scoring.conn(), &format!(
        "CREATE FUNCTION fail_one() RETURNS trigger AS $$ BEGIN \
           IF NEW.proposal_id = '{}' THEN RAISE EXCEPTION 'injected outage' USING ERRCODE = '40001'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER fail_one BEFORE INSERT ON evaluation_cases FOR EACH ROW EXECUTE FUNCTION fail_one();",
        doomed.proposal_id
    ))
    .expect("trigger");
    let topic = ctx.topic(topics::INTAKE);
    let fine = submitted("fine");
    for e in [envelope(&doomed), envelope(&fine)] {
        // Same key: same partition, so `fine` waits behind `doomed`.
        ctx.produce_raw(
            &topic,
            "same-key",
            &serde_json::to_vec(&e).expect("json"),
            &[],
        )
        .await;
    }
    wait_for_cases(&scoring, 1).await;
    assert_eq!(case_count(&scoring, fine.proposal_id), 1);
    assert_eq!(case_count(&scoring, doomed.proposal_id), 0);
    let dlq = ctx.topic(&topics::dead_letter_topic_of("scoring"));
    let dead = eventually(Duration::from_secs(30), || async {
        let msgs = ctx.read_topic(&dlq).await;
        (!msgs.is_empty()).then_some(msgs)
    })
    .await
    .expect("dead-lettered");
    assert_eq!(
        dead[0].headers[headers::DLQ_ATTEMPTS],
        ctx.kafka.max_attempts.to_string()
    );
    assert!(dead[0].headers[headers::DLQ_ERROR].contains("injected outage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_commits_the_consumer_offsets_and_stops_cleanly() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let ctx = single_partition_context();
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    let topic = ctx.topic(topics::INTAKE);
    for title in ["one", "two", "three"] {
        let env = envelope(&submitted(title));
        ctx.produce_raw(
            &topic,
            &env.aggregate_id.to_string(),
            &serde_json::to_vec(&env).expect("json"),
            &[],
        )
        .await;
    }
    wait_for_cases(&scoring, 3).await;
    // Drains HTTP, finishes the message in hand, commits offsets, flushes the producer; it
    // fails the test if any of that hangs or errors.
    scoring.shutdown().await;

    let group = ctx.kafka.prefixed("kaip-scoring");
    let brokers = ctx.kafka.brokers.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        let offsets = reader
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        offsets.find_partition(&topic, 0).map(|p| p.offset())
    })
    .await
    .expect("task");
    assert_eq!(
        committed,
        Some(rdkafka::Offset::Offset(3)),
        "all three messages are committed as consumed"
    );
}

/// `JsonbText` reads a `jsonb` column as PostgreSQL stores it and writes one back: the same
/// value diesel's `serde_json::Value` decoding gives (scoring's decision digest hashes it),
/// and decoding into a type in one pass.
#[test]
fn jsonb_text_reads_and_writes_what_postgresql_stores() {
    use diesel::sql_types::Jsonb;
    use kaip_bus::JsonbText;
    #[derive(QueryableByName)]
    struct Both {
        #[diesel(sql_type = Jsonb)]
        text: JsonbText,
        #[diesel(sql_type = Jsonb)]
        value: serde_json::Value,
    }
    let mut conn = PgConnection::establish(&format!("{}/postgres", kaip_testkit::database_url()))
        .expect("connects");
    let written = JsonbText::encode(&serde_json::json!({
        "b": [1, 2.5, -3, i64::MAX],
        "a": { "name": "한빛 컨소시엄 \"quoted\" \\ \u{1F680}", "none": null },
    }))
    .expect("encodes");
    let row: Both = diesel::sql_query("SELECT $1::jsonb AS text, $1::jsonb AS value")
        .bind::<Jsonb, _>(&written)
        .get_result(&mut conn)
        .expect("round trip");
    // PostgreSQL's normal form: keys ordered by length then bytes, its own spacing.
    assert_ne!(row.text.as_str(), written.as_str());
    assert_eq!(row.text.value().expect("parses"), row.value);
    assert_eq!(
        row.value["a"]["name"],
        "한빛 컨소시엄 \"quoted\" \\ \u{1F680}"
    );
    assert_eq!(row.value["b"][3], i64::MAX);
    #[derive(serde::Deserialize, PartialEq, Debug)]
    struct Typed {
        b: Vec<serde_json::Number>,
    }
    let typed: Typed = row.text.decode().expect("decodes");
    assert_eq!(typed.b.len(), 4);
    // Not JSON of that shape: a decoding error, not a default.
    assert!(row.text.decode::<Vec<i64>>().is_err());
}
