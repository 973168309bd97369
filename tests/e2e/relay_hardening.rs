//! The outbox relay, tested as it runs: the real `Relay` against the real PostgreSQL and
//! the real broker. Ordering under partial failure, a crash between acknowledgement and
//! mark, the one-relay-per-database lock, republication, retention, readiness, start-up
//! checks and shutdown order.

use diesel::prelude::*;
use kaip_bus::outbox::{outbox_stats, OutboxStats};
use kaip_bus::relay::FaultPoint;
use kaip_bus::schema::{kaip_inbox, kaip_outbox};
use kaip_bus::{Outbox, OutboxSettings, Relay};
use kaip_contracts::events::ProposalSubmitted;
use kaip_contracts::{topics, EventEnvelope, Role};
use kaip_e2e::{envelope, eventually, single_partition_context, submitted};
use kaip_service::db;
use kaip_testkit::{TestContext, TestService};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use uuid::Uuid;

/// An envelope for aggregate `key` (several events of one aggregate share it).
fn envelope_for(key: Uuid, title: &str) -> EventEnvelope {
    let mut env = envelope(&submitted(title));
    env.aggregate_id = key;
    env
}

/// Intake's database, migrated, and its topic, without a running intake (no relay runs
/// by itself).
async fn intake_database(ctx: &TestContext) -> kaip_bus::PgPool {
    let settings = ctx.settings(kaip_intake::DEFAULTS);
    ctx.track_database(&settings.database.name);
    let pool = tokio::task::spawn_blocking(move || {
        db::ensure_database(&settings.database).expect("database");
        let pool = db::build_pool(&settings.database).expect("pool");
        db::migrate(&pool, kaip_intake::MIGRATIONS).expect("migrations");
        pool
    })
    .await
    .expect("task");
    kaip_bus::kafka::ensure_topics(&ctx.kafka, &[ctx.topic(topics::INTAKE)])
        .await
        .expect("topic");
    pool
}

fn commit(pool: &kaip_bus::PgPool, outbox: &Outbox, envs: &[&EventEnvelope]) {
    let mut conn = pool.get().expect("conn");
    outbox
        .transaction(&mut conn, |c, tx| {
            for e in envs {
                tx.enqueue(c, e)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .expect("events committed");
}

#[derive(Debug, Queryable)]
struct Row {
    attempts: i32,
    last_error: Option<String>,
    sent: bool,
}

fn row(pool: &kaip_bus::PgPool, id: Uuid) -> Row {
    kaip_outbox::table
        .filter(kaip_outbox::event_id.eq(id))
        .select((
            kaip_outbox::attempts,
            kaip_outbox::last_error,
            kaip_outbox::sent_at.is_not_null(),
        ))
        .first(&mut pool.get().expect("conn"))
        .expect("row")
}

/// Event ids on partition 0 of a single-partition topic, in offset order, read from the
/// start until `at_least` ids were seen and then for another half second (to catch extra
/// copies), or until 20 s passed. Not bounded by the high watermark: Tansu reports it as
/// the base offset of the last record batch plus one, hiding the rest of that batch.
/// Reads with a short fetch wait (the broker answers a fetch with one record batch).
async fn ids_on(ctx: &TestContext, topic: &str, at_least: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    use std::time::Instant;
    let brokers = ctx.kafka.brokers.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            .create()
            .expect("reader");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
            .expect("tpl");
        reader.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ids = Vec::new();
        let mut enough_at: Option<Instant> = None;
        while Instant::now() < deadline
            && enough_at.is_none_or(|t| t.elapsed() < Duration::from_millis(500))
        {
            if let Some(Ok(msg)) = reader.poll(Duration::from_millis(50)) {
                if let Some(id) = msg
                    .payload()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                    .and_then(|j| j["id"].as_str().map(str::to_owned))
                {
                    ids.push(id);
                }
            }
            if enough_at.is_none() && ids.len() >= at_least {
                enough_at = Some(Instant::now());
            }
        }
        ids
    })
    .await
    .expect("reader task")
}

fn relay(ctx: &TestContext, pool: &kaip_bus::PgPool, settings: OutboxSettings) -> Relay {
    let producer = kaip_bus::kafka::producer(&ctx.kafka).expect("producer");
    Relay::new(
        pool.clone(),
        producer,
        std::sync::Arc::new(tokio::sync::Notify::new()),
        settings,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_stays_pending_and_holds_back_later_events_of_its_key_only() {
    let ctx = single_partition_context();
    let pool = intake_database(&ctx).await;
    let topic = ctx.topic(topics::INTAKE);
    let outbox = Outbox::new("intake", topic.clone());
    let (k, other) = (Uuid::now_v7(), Uuid::now_v7());
    // Over the producer's message.max.bytes (1 MB): the broker path refuses it every time.
    let mut poison = envelope_for(k, "too large");
    poison.data["padding"] = serde_json::json!("x".repeat(1_200_000));
    let behind = envelope_for(k, "same key, after the poison");
    let unrelated = envelope_for(other, "another key");
    commit(&pool, &outbox, &[&poison, &behind, &unrelated]);

    let relay = relay(
        &ctx,
        &pool,
        OutboxSettings {
            stuck_after_attempts: 2,
            // Retried on the next pass (the backoff has its own test).
            retry_backoff_ms: 1,
            retry_backoff_max_ms: 1,
            ..OutboxSettings::default()
        },
    );
    assert_eq!(relay.publish_pending().await.expect("pass 1"), 1);
    let p = row(&pool, poison.id.0);
    assert!(!p.sent, "the refused event stays pending");
    assert_eq!(p.attempts, 1);
    assert!(
        p.last_error
            .as_deref()
            .is_some_and(|e| e.contains("too large")),
        "its error is recorded: {p:?}"
    );
    let b = row(&pool, behind.id.0);
    assert!(
        !b.sent,
        "a later event of the same key is not marked sent: {b:?}"
    );
    assert!(row(&pool, unrelated.id.0).sent, "other keys go on");

    // Again: still refused, now counted as stuck; the key stays blocked.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(relay.publish_pending().await.expect("pass 2"), 0);
    let stats: OutboxStats = outbox_stats(&mut pool.get().expect("conn"), 2).expect("stats");
    assert_eq!(stats.pending, 2);
    assert_eq!(stats.failing, 1);
    assert_eq!(stats.stuck, 1, "{stats:?}");
    assert!(!row(&pool, behind.id.0).sent);
    assert_eq!(
        ids_on(&ctx, &topic, 1).await,
        vec![unrelated.id.to_string()],
        "nothing of the blocked key reached the broker"
    );

    // Once the poison row can go (an operator shrank it), the key resumes in order.
    diesel::sql_query(
        "UPDATE kaip_outbox SET payload = payload #- '{data,padding}' WHERE event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(poison.id.0)
    .execute(&mut pool.get().expect("conn"))
    .expect("repair");
    let mut sent = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        sent += relay.publish_pending().await.expect("pass");
    }
    assert_eq!(sent, 2);
    assert_eq!(
        ids_on(&ctx, &topic, 3).await,
        vec![
            unrelated.id.to_string(),
            poison.id.to_string(),
            behind.id.to_string()
        ],
        "the key's events are on the topic in their order"
    );
    let stats = outbox_stats(&mut pool.get().expect("conn"), 2).expect("stats");
    assert_eq!(stats, OutboxStats::default());

    // Republished (the broker lost the topic): pending again, but its earlier failures are
    // behind it, so it is not stuck.
    let requeued = kaip_bus::outbox::republish_since(
        &mut pool.get().expect("conn"),
        chrono::DateTime::UNIX_EPOCH,
    )
    .expect("requeue");
    assert_eq!(requeued, 3);
    let stats = outbox_stats(&mut pool.get().expect("conn"), 2).expect("stats");
    assert_eq!(
        (stats.pending, stats.failing, stats.stuck),
        (3, 0, 0),
        "{stats:?}"
    );
}

/// A row that keeps failing is retried only after its backoff, and failing heads come after
/// the healthy rows, so they cannot fill the batch; the failure counter saturates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_rows_wait_their_backoff_and_do_not_starve_healthy_rows() {
    let ctx = single_partition_context();
    let pool = intake_database(&ctx).await;
    let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
    let poison = |title: &str| {
        let mut e = envelope_for(Uuid::now_v7(), title);
        e.data["padding"] = serde_json::json!("x".repeat(1_200_000));
        e
    };
    let (pa, pb) = (poison("poison a"), poison("poison b"));
    commit(&pool, &outbox, &[&pa, &pb]);
    let settings = |backoff_ms| OutboxSettings {
        batch_size: 2,
        retry_backoff_ms: backoff_ms,
        retry_backoff_max_ms: backoff_ms,
        ..OutboxSettings::default()
    };
    let patient = relay(&ctx, &pool, settings(60_000));
    assert_eq!(patient.publish_pending().await.expect("pass 1"), 0);
    assert_eq!(row(&pool, pa.id.0).attempts, 1);
    for _ in 0..3 {
        assert_eq!(patient.publish_pending().await.expect("pass"), 0);
    }
    assert_eq!(
        (row(&pool, pa.id.0).attempts, row(&pool, pb.id.0).attempts),
        (1, 1),
        "not retried before the backoff elapsed"
    );

    // Healthy rows behind two failing heads, in a batch of two: the heads (due again with a
    // short backoff) come after them.
    let (h1, h2) = (
        envelope_for(Uuid::now_v7(), "healthy 1"),
        envelope_for(Uuid::now_v7(), "healthy 2"),
    );
    commit(&pool, &outbox, &[&h1, &h2]);
    let eager = relay(&ctx, &pool, settings(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(eager.publish_pending().await.expect("pass"), 2);
    assert!(row(&pool, h1.id.0).sent && row(&pool, h2.id.0).sent);

    // The counters saturate instead of overflowing int4 (which would fail every pass).
    diesel::sql_query(
        "UPDATE kaip_outbox SET attempts = 2147483647, failures = 2147483647 WHERE event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(pa.id.0)
    .execute(&mut pool.get().expect("conn"))
    .expect("counters at the maximum");
    tokio::time::sleep(Duration::from_millis(20)).await;
    eager
        .publish_pending()
        .await
        .expect("a pass at the maximum");
    assert_eq!(row(&pool, pa.id.0).attempts, i32::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_together_on_a_fresh_database_both_start() {
    // Two rounds, each on a fresh database: the race is on CREATE DATABASE and on the
    // migrations (diesel's table and every CREATE of the service's schema).
    for round in 0..2 {
        let ctx = TestContext::new();
        let settings = ctx.settings(kaip_scoring::DEFAULTS);
        ctx.track_database(&settings.database.name);
        let (a, b) = tokio::join!(
            kaip_service::Application::build(kaip_scoring::definition(), settings.clone()),
            kaip_service::Application::build(kaip_scoring::definition(), settings.clone()),
        );
        let a = a.unwrap_or_else(|e| panic!("round {round}: replica A failed: {e:#}"));
        let b = b.unwrap_or_else(|e| panic!("round {round}: replica B failed: {e:#}"));
        // Scoring's own migrations, not just the backbone's (which alone would make two).
        let scoring_applied: i64 = diesel::sql_query(
            "SELECT count(*) AS n FROM __diesel_schema_migrations \
             WHERE version IN ('20261128000001', '20261128000002')",
        )
        .get_result::<Count>(&mut a.pool().get().expect("conn"))
        .expect("migrations table")
        .n;
        assert_eq!(
            scoring_applied, 2,
            "round {round}: scoring's migrations applied once each"
        );
        drop((a, b));
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn inbox_rows(scoring: &TestService, id: Uuid) -> i64 {
    kaip_inbox::table
        .filter(kaip_inbox::event_id.eq(id))
        .count()
        .get_result(&mut scoring.conn())
        .expect("count")
}

fn cases_for(scoring: &TestService, proposal: kaip_contracts::ProposalId) -> i64 {
    use kaip_scoring::schema::evaluation_cases::dsl::*;
    evaluation_cases
        .filter(proposal_id.eq(proposal.0))
        .count()
        .get_result(&mut scoring.conn())
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_relay_crashing_between_ack_and_mark_publishes_again_and_scoring_applies_once() {
    let ctx = single_partition_context();
    let pool = intake_database(&ctx).await;
    let topic = ctx.topic(topics::INTAKE);
    let outbox = Outbox::new("intake", topic.clone());
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;

    // The first batch dies after the broker acknowledged it, before its rows are marked.
    let crashes = Arc::new(AtomicUsize::new(0));
    let hook_crashes = crashes.clone();
    let relay = Relay::new(
        pool.clone(),
        kaip_bus::kafka::producer(&ctx.kafka).expect("producer"),
        outbox.wake_handle(),
        OutboxSettings {
            poll_interval_ms: 50,
            ..OutboxSettings::default()
        },
    )
    .with_fault_hook(Arc::new(move |point| {
        point == FaultPoint::AfterAck && hook_crashes.fetch_add(1, Ordering::SeqCst) == 0
    }));
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay.run(stop.clone()));

    let event = submitted("Relay crash");
    let env = envelope(&event);
    commit(&pool, &outbox, &[&env]);

    // The event reaches the topic twice: once before the crash, once after.
    let copies = eventually(Duration::from_secs(30), || async {
        let n = ids_on(&ctx, &topic, 2)
            .await
            .iter()
            .filter(|id| **id == env.id.to_string())
            .count();
        (n >= 2).then_some(n)
    })
    .await;
    assert_eq!(copies, Some(2), "published again after the crash");
    assert!(
        crashes.load(Ordering::SeqCst) >= 2,
        "the hook saw both passes"
    );
    eventually(Duration::from_secs(30), || async {
        row(&pool, env.id.0).sent.then_some(())
    })
    .await
    .expect("the second pass marks it sent");
    eventually(Duration::from_secs(60), || async {
        (inbox_rows(&scoring, env.id.0) == 1).then_some(())
    })
    .await
    .expect("scoring applied it");
    // Both copies consumed: a sentinel behind them on the single partition is applied.
    let sentinel = envelope(&submitted("sentinel"));
    let sentinel_case = serde_json::from_value::<ProposalSubmitted>(sentinel.data.clone())
        .expect("data")
        .proposal_id;
    commit(&pool, &outbox, &[&sentinel]);
    eventually(Duration::from_secs(60), || async {
        (cases_for(&scoring, sentinel_case) == 1).then_some(())
    })
    .await
    .expect("the sentinel is consumed");
    assert_eq!(cases_for(&scoring, event.proposal_id), 1, "applied once");
    assert_eq!(inbox_rows(&scoring, env.id.0), 1);
    stop.cancel();
    task.await.expect("relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_never_publish_concurrently() {
    let ctx = single_partition_context();
    let pool = intake_database(&ctx).await;
    let topic = ctx.topic(topics::INTAKE);
    let outbox = Outbox::new("intake", topic.clone());
    // Small batches so that both relays have work at the same time.
    let settings = OutboxSettings {
        batch_size: 10,
        poll_interval_ms: 20,
        ..OutboxSettings::default()
    };
    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|_| tokio::spawn(relay(&ctx, &pool, settings.clone()).run(stop.clone())))
        .collect();
    let keys: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let mut expected: Vec<(Uuid, String)> = Vec::new();
    for chunk in 0..20 {
        let envs: Vec<EventEnvelope> = (0..20)
            .map(|i| envelope_for(keys[i % keys.len()], &format!("{chunk}-{i}")))
            .collect();
        expected.extend(envs.iter().map(|e| (e.aggregate_id, e.id.to_string())));
        commit(&pool, &outbox, &envs.iter().collect::<Vec<_>>());
    }
    let seen = eventually(Duration::from_secs(60), || async {
        let ids = ids_on(&ctx, &topic, expected.len()).await;
        (ids.len() >= expected.len()).then_some(ids)
    })
    .await;
    let Some(seen) = seen else {
        let sent: i64 = kaip_outbox::table
            .filter(kaip_outbox::sent_at.is_not_null())
            .count()
            .get_result(&mut pool.get().expect("conn"))
            .expect("count");
        panic!(
            "not every event published: {} on the topic, {sent} marked sent of {}",
            ids_on(&ctx, &topic, expected.len()).await.len(),
            expected.len()
        );
    };
    stop.cancel();
    for r in relays {
        r.await.expect("relay stops");
    }
    assert_eq!(seen.len(), expected.len(), "no event published twice");
    for key in &keys {
        let want: Vec<&String> = expected
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, id)| id)
            .collect();
        let got: Vec<&String> = seen.iter().filter(|id| want.contains(id)).collect();
        assert_eq!(got, want, "key {key}: published in commit order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_purges_published_events_past_retention_and_keeps_the_rest() {
    let ctx = single_partition_context();
    let pool = intake_database(&ctx).await;
    let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
    let (old, recent, unsent) = (
        envelope(&submitted("old")),
        envelope(&submitted("recent")),
        envelope(&submitted("unsent")),
    );
    commit(&pool, &outbox, &[&old, &recent]);
    let relay_settings = OutboxSettings {
        retention_hours: 24,
        purge_interval_secs: 1,
        poll_interval_ms: 50,
        ..OutboxSettings::default()
    };
    assert_eq!(
        relay(&ctx, &pool, relay_settings.clone())
            .publish_pending()
            .await
            .expect("publish"),
        2
    );
    // `old` was published 25 hours ago; `unsent` is pending and as old (a broker outage).
    commit(&pool, &outbox, &[&unsent]);
    diesel::sql_query(
        "UPDATE kaip_outbox SET sent_at = now() - interval '25 hours', \
                created_at = now() - interval '26 hours' WHERE event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(old.id.0)
    .execute(&mut pool.get().expect("conn"))
    .expect("backdate");
    diesel::sql_query(
        "UPDATE kaip_outbox SET created_at = now() - interval '30 hours', last_error = 'x', \
                attempts = 9 WHERE event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(unsent.id.0)
    .execute(&mut pool.get().expect("conn"))
    .expect("backdate");
    // The running relay purges on its own schedule (the producer never takes `unsent`: it
    // is over the message size limit).
    diesel::sql_query(
        "UPDATE kaip_outbox SET payload = jsonb_set(payload, '{data,padding}', \
                to_jsonb(repeat('x', 1200000))) WHERE event_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(unsent.id.0)
    .execute(&mut pool.get().expect("conn"))
    .expect("oversize");
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay(&ctx, &pool, relay_settings).run(stop.clone()));
    let remaining = |id: Uuid| -> i64 {
        kaip_outbox::table
            .filter(kaip_outbox::event_id.eq(id))
            .count()
            .get_result(&mut pool.get().expect("conn"))
            .expect("count")
    };
    eventually(Duration::from_secs(30), || async {
        (remaining(old.id.0) == 0).then_some(())
    })
    .await
    .expect("the event published past retention is purged");
    stop.cancel();
    task.await.expect("relay stops");
    assert_eq!(
        remaining(recent.id.0),
        1,
        "a recently published event is kept"
    );
    assert_eq!(
        remaining(unsent.id.0),
        1,
        "an unpublished event is never purged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_republishes_events_since_a_time_and_others_may_not() {
    let ctx = single_partition_context();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let topic = ctx.topic(topics::INTAKE);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    kaip_testkit::intake::open_call(&ctx, &intake.base_url).await;
    // Two rows: the call's event and the audit record of the request (on the audit topic).
    let sent = || -> i64 {
        kaip_outbox::table
            .filter(kaip_outbox::sent_at.is_not_null())
            .count()
            .get_result(&mut intake.conn())
            .expect("count")
    };
    eventually(Duration::from_secs(30), || async {
        (sent() == 2).then_some(())
    })
    .await
    .expect("the call's event is published");
    let first = ids_on(&ctx, &topic, 1).await;
    assert_eq!(first.len(), 1);

    let http = reqwest::Client::new();
    let url = intake.url("/admin/outbox/republish");
    let body = serde_json::json!({ "since": before });
    for role in [Role::Officer, Role::Integration] {
        let res = http
            .post(&url)
            .header("authorization", ctx.bearer(role, None))
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), 403, "{role} may not republish");
    }
    let res = http.post(&url).json(&body).send().await.expect("answers");
    assert_eq!(res.status(), 401, "anonymous may not republish");
    let res = http
        .post(&url)
        .header("authorization", ctx.bearer(Role::Admin, None))
        .json(&serde_json::json!({ "since": "yesterday" }))
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), 400, "a bad time is refused");
    assert_eq!(sent(), 2, "refused requests re-queued nothing");

    // Nothing published after a later `since`.
    let res = http
        .post(&url)
        .header("authorization", ctx.bearer(Role::Admin, None))
        .json(&serde_json::json!({ "since": chrono::Utc::now() + chrono::Duration::hours(1) }))
        .send()
        .await
        .expect("answers");
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(answer["requeued"], 0);

    let res = http
        .post(&url)
        .header("authorization", ctx.bearer(Role::Admin, None))
        .json(&body)
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(answer["requeued"], 2);
    let again = eventually(Duration::from_secs(30), || async {
        let ids = ids_on(&ctx, &topic, 2).await;
        (ids.len() >= 2).then_some(ids)
    })
    .await
    .expect("published again");
    assert_eq!(
        again,
        vec![first[0].clone(), first[0].clone()],
        "the same event, again"
    );
    eventually(Duration::from_secs(30), || async {
        (sent() == 2).then_some(())
    })
    .await
    .expect("marked sent again");
}

/// A private Tansu for a test that stops the broker (the shared one must stay up).
struct OwnBroker {
    dir: std::path::PathBuf,
    addr: String,
}

impl OwnBroker {
    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/broker.sh")
    }

    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("kaip-broker-{}", Uuid::new_v4()));
        let out = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .arg(&dir)
            .env_remove("KAIP_BROKER_PORT")
            .output()
            .expect("broker.sh runs");
        assert!(out.status.success(), "broker starts: {out:?}");
        let addr = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("address")
            .trim()
            .to_owned();
        Self { dir, addr }
    }

    fn stop(&self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn readiness(
    http: &reqwest::Client,
    service: &TestService,
    token: Option<String>,
) -> (u16, serde_json::Value, String) {
    let mut req = http.get(service.url("/health/ready"));
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = req.send().await.expect("answers");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).expect("json");
    (status, json, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_stays_ready_while_the_broker_is_down_and_reports_the_outage_and_its_backlog() {
    let own = OwnBroker::start();
    let ctx = TestContext::new();
    let mut settings = ctx.settings(kaip_intake::DEFAULTS);
    settings.kafka.brokers = own.addr.clone();
    // Sends to the stopped broker give up sooner, so the test's runtime stops sooner.
    settings
        .kafka
        .client
        .insert("message.timeout.ms".into(), "3000".into());
    // One failed attempt makes a row stuck, so the test sees the count move.
    settings.outbox.stuck_after_attempts = 1;
    let intake = ctx.spawn_with(kaip_intake::definition(), settings).await;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), || async {
        let (_, body, _) = readiness(&http, &intake, None).await;
        (body["broker"] == "ok").then_some(())
    })
    .await
    .expect("the broker is seen up");

    own.stop();
    let (status, body, text) = eventually(Duration::from_secs(30), || async {
        let r = readiness(&http, &intake, None).await;
        (r.1["broker"] == "unavailable").then_some(r)
    })
    .await
    .expect("the outage is reported");
    assert_eq!(status, 200, "still ready: {text}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"], "ok");

    // Requests still commit; their events wait in the outbox, and readiness shows them.
    // The backlog is the background task's count, refreshed every few seconds.
    // Two rows: the call's event and the request's audit record.
    kaip_testkit::intake::open_call(&ctx, &intake.base_url).await;
    let (status, body, anonymous) = eventually(Duration::from_secs(10), || async {
        let r = readiness(&http, &intake, None).await;
        (r.1["outbox"]["pending"] == 2).then_some(r)
    })
    .await
    .expect("the pending event is counted");
    assert_eq!(status, 200);
    assert!(body["outbox"]["oldest_pending_age_secs"].as_i64().is_some());
    assert!(
        body.get("details").is_none(),
        "no internals for anonymous: {anonymous}"
    );

    // An admin sees why; an officer does not.
    let (_, admin, _) = readiness(&http, &intake, Some(ctx.bearer(Role::Admin, None))).await;
    let why = admin["details"]["broker"]
        .as_str()
        .expect("the broker's error, for admins");
    assert!(!why.is_empty());
    assert!(
        !anonymous.contains(why),
        "the error text is not in the anonymous body"
    );
    let (_, officer, officer_text) =
        readiness(&http, &intake, Some(ctx.bearer(Role::Officer, None))).await;
    assert!(officer.get("details").is_none(), "{officer_text}");

    // Probes read a cached check: back-to-back probes see the same check time (at most one
    // background check can land between three quick probes).
    let at = |b: &serde_json::Value| b["broker_checked_at"].as_str().map(str::to_owned);
    let a = at(&readiness(&http, &intake, None).await.1);
    let b = at(&readiness(&http, &intake, None).await.1);
    let c = at(&readiness(&http, &intake, None).await.1);
    assert!(a.is_some());
    assert!(a == b || b == c, "{a:?} {b:?} {c:?}");

    // The relay's attempts time out against the stopped broker: the row that keeps failing
    // is counted in readiness and in the metrics, not only logged.
    let (_, body, _) = eventually(Duration::from_secs(30), || async {
        let r = readiness(&http, &intake, None).await;
        (r.1["outbox"]["stuck"] == 2).then_some(r)
    })
    .await
    .expect("the failing rows are reported as stuck");
    assert_eq!(body["outbox"]["failing"], 2);
    assert_eq!(body["ready"], true);
    let metrics = http
        .get(intake.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("\nkaip_broker_up 0\n"), "{metrics}");
    assert!(metrics.contains("\nkaip_outbox_pending 2\n"), "{metrics}");
    assert!(metrics.contains("\nkaip_outbox_stuck 2\n"), "{metrics}");
    assert!(metrics.contains("\nkaip_database_up 1\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_readiness_tells_anonymous_callers_no_internal_errors() {
    let ctx = TestContext::new();
    // Every service address refuses connections.
    let nowhere = "http://127.0.0.1:9".to_owned();
    let mut settings = kaip_e2e::gateway_settings(&ctx, kaip_e2e::all_services_at(&nowhere));
    settings.server.upstream_timeout_ms = 2_000;
    let gateway = kaip_gateway::Application::build(settings)
        .await
        .expect("gateway starts");
    let url = format!("http://127.0.0.1:{}/health/ready", gateway.port());
    let stop = gateway.shutdown_token();
    tokio::spawn(gateway.run_until_stopped());
    let http = reqwest::Client::new();
    let res = http.get(&url).send().await.expect("answers");
    assert_eq!(res.status(), 503);
    let anonymous = res.text().await.expect("body");
    assert!(anonymous.contains("unreachable"), "{anonymous}");
    assert!(
        !anonymous.contains("127.0.0.1") && !anonymous.contains("error"),
        "no addresses or error text for anonymous callers: {anonymous}"
    );
    let admin = http
        .get(&url)
        .header("authorization", ctx.bearer(Role::Admin, None))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    assert!(admin.contains("127.0.0.1:9"), "an admin sees why: {admin}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_events_emitted_by_the_consumers_last_message_are_published_before_exit() {
    let ctx = single_partition_context();
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    // Scoring's handler takes two seconds on this event, so the stop lands mid-message.
    diesel::connection::SimpleConnection::batch_execute(
        &mut *scoring.conn(),
        "CREATE FUNCTION slow_case() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(2); \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_case BEFORE INSERT ON evaluation_cases FOR EACH ROW \
           EXECUTE FUNCTION slow_case();",
    )
    .expect("trigger");
    let env = envelope(&submitted("last message"));
    ctx.produce_raw(
        &ctx.topic(topics::INTAKE),
        &env.aggregate_id.to_string(),
        &serde_json::to_vec(&env).expect("json"),
        &[],
    )
    .await;
    let database = scoring.database.clone();
    eventually(Duration::from_secs(30), || async {
        let busy: i64 = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid() \
               AND query LIKE 'INSERT INTO \"evaluation_cases\"%'",
        )
        .bind::<diesel::sql_types::Text, _>(&database)
        .get_result::<Count>(&mut scoring.conn())
        .expect("activity")
        .n;
        (busy > 0).then_some(())
    })
    .await
    .expect("the consumer is inside its last message");
    let pool = scoring.pool.clone();
    scoring.shutdown().await;

    let mut opened: Vec<(String, bool)> = kaip_outbox::table
        .select((kaip_outbox::event_type, kaip_outbox::sent_at.is_not_null()))
        .load(&mut pool.get().expect("conn"))
        .expect("outbox");
    opened.sort();
    // The case's event, and the audit record of the transaction that opened it.
    assert_eq!(
        opened,
        vec![
            ("AuditRecorded".to_owned(), true),
            ("EvaluationCaseOpened".to_owned(), true)
        ],
        "the events the last message emitted were committed and published before exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topic_a_process_creates_is_in_the_topics_file_and_created_with_its_settings() {
    let definitions = [
        kaip_intake::definition(),
        kaip_scoring::definition(),
        kaip_gpu_ledger::definition(),
        kaip_data_budget::definition(),
        kaip_talent::definition(),
        kaip_milestones::definition(),
    ];
    let mut created: Vec<String> = definitions
        .iter()
        .flat_map(|d| d.topics_created())
        .collect();
    // The gateway creates every event topic for its feed.
    created.extend(topics::ALL_EVENT_TOPICS.iter().map(|t| t.to_string()));
    assert!(created.contains(&"kaip.intake.dlq".to_owned()));
    for topic in &created {
        let spec = kaip_bus::kafka::topic_spec(topic)
            .expect("the file parses")
            .unwrap_or_else(|| {
                panic!("{topic} is created by a process but not in infra/topics.yaml")
            });
        assert!(
            spec.configs.contains_key("retention.ms"),
            "{topic}: {spec:?}"
        );
        assert!(
            spec.configs.contains_key("cleanup.policy"),
            "{topic}: {spec:?}"
        );
    }

    // On the real broker: intake's DLQ gets the file's single partition, its events topic
    // the settings' cap (3), where the settings alone made both 3.
    let ctx = TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let (dlq, events) = (
        ctx.topic(&topics::dead_letter_topic_of("intake")),
        ctx.topic(topics::INTAKE),
    );
    let kafka = ctx.kafka.clone();
    let (dlq_partitions, events_partitions, missing) = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .create()
            .expect("client");
        let partitions = |t: &str| {
            client
                .fetch_metadata(Some(t), Duration::from_secs(10))
                .expect("metadata")
                .topics()
                .iter()
                .find(|m| m.name() == t)
                .map_or(0, |m| m.partitions().len())
        };
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &kafka.brokers)
                .set("allow.auto.create.topics", "false")
                .create()
                .expect("admin");
        let missing = kaip_bus::kafka::topic_exists(&admin, &kafka.prefixed("kaip.nothing.here"))
            .expect("metadata");
        (partitions(&dlq), partitions(&events), missing)
    })
    .await
    .expect("task");
    assert_eq!(dlq_partitions, 1, "the DLQ has the file's partition count");
    assert_eq!(
        events_partitions, 3,
        "the events topic has the file's 6, capped at 3"
    );
    assert!(!missing, "a topic nobody created does not exist");
    drop(intake);
}

/// Tansu answers CreatePartitions with UNSUPPORTED_FEATURE, so the topic grows from no
/// partitions (it does not exist when the feed starts) to one: the same path as
/// partitions added to an existing topic, noticed by the feed's metadata refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_feed_sees_events_on_partitions_added_while_it_runs() {
    use rdkafka::producer::FutureRecord;
    let ctx = single_partition_context();
    let topic = ctx.topic(topics::INTAKE);
    let stop = CancellationToken::new();
    let feed = kaip_bus::start_feed_with(
        &ctx.kafka,
        &[topics::INTAKE],
        stop.clone(),
        Duration::from_millis(200),
    )
    .await
    .expect("feed starts");
    let mut events = feed.subscribe();
    kaip_bus::kafka::ensure_topics(&ctx.kafka, std::slice::from_ref(&topic))
        .await
        .expect("the topic gets its partition after the feed started");

    let env = envelope(&submitted("on a new partition"));
    let payload = serde_json::to_vec(&env).expect("json");
    let producer = ctx.raw_producer();
    producer
        .send(
            FutureRecord::to(&topic)
                .key("k")
                .payload(&payload)
                .partition(0),
            rdkafka::util::Timeout::After(Duration::from_secs(10)),
        )
        .await
        .expect("produced to the new partition");
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(e) if e.envelope.id == env.id => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("feed closed: {e}"),
            }
        }
    })
    .await
    .expect("the feed delivers the event from the added partition");
    assert_eq!(seen.topic, topic);
    stop.cancel();
}

/// `sent_at` is the time of the mark, not the start of the relay's transaction: an event
/// acknowledged late in a long batch is still requeued by a republish cut-off taken while
/// the batch ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_marked_late_in_a_long_relay_transaction_is_caught_by_republish_since() {
    let ctx = TestContext::new();
    let pool = intake_database(&ctx).await;
    let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
    let env = envelope(&submitted("marked late"));
    commit(&pool, &outbox, &[&env]);
    let id = env.id.0;
    let p = pool.clone();
    let cutoff = tokio::task::spawn_blocking(move || {
        let mut conn = p.get().expect("conn");
        conn.transaction(|c| {
            // The batch has been running for a while when the cut-off is taken.
            diesel::sql_query("SELECT pg_sleep(0.3)").execute(c)?;
            let cutoff: chrono::DateTime<chrono::Utc> =
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                    "clock_timestamp()",
                ))
                .get_result(c)?;
            let seq: i64 = kaip_outbox::table
                .filter(kaip_outbox::event_id.eq(id))
                .select(kaip_outbox::seq)
                .first(c)?;
            kaip_bus::outbox::mark_sent(c, &[seq])?;
            Ok::<_, diesel::result::Error>(cutoff)
        })
        .expect("marked")
    })
    .await
    .expect("task");
    let requeued =
        kaip_bus::outbox::republish_since(&mut pool.get().expect("conn"), cutoff).expect("requeue");
    assert_eq!(requeued, 1, "the late mark must not predate the cut-off");
    assert!(!row(&pool, id).sent);
}

/// Without `create_if_missing`, a missing database is reported as missing, not as a server
/// that cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_without_create_if_missing_is_reported_as_missing() {
    let ctx = TestContext::new();
    let mut settings = ctx.settings(kaip_scoring::DEFAULTS);
    ctx.track_database(&settings.database.name);
    settings.database.create_if_missing = false;
    let database = settings.database.clone();
    let result = tokio::task::spawn_blocking(move || {
        db::prepare(&database, kaip_scoring::MIGRATIONS, |_| Ok(())).map(drop)
    })
    .await
    .expect("task");
    assert!(
        matches!(result, Err(db::DbError::Missing { ref name }) if *name == settings.database.name),
        "{result:?}"
    );
}

/// The final drain publishes what was committed when the stop arrived, and stops although
/// another replica keeps committing (its relay publishes the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_drain_stops_at_the_stop_mark_while_another_replica_keeps_committing() {
    let ctx = TestContext::new();
    let pool = intake_database(&ctx).await;
    let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
    let settings = OutboxSettings {
        poll_interval_ms: 20,
        ..OutboxSettings::default()
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(relay(&ctx, &pool, settings).run(stop.clone()));
    // The other replica: commits batches of events, one after another, until told to stop
    // (faster than one relay publishes them, so a drain "until nothing is left" never ends).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committer = {
        let (pool, outbox, done) = (pool.clone(), outbox.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                let envs: Vec<EventEnvelope> = (0..20)
                    .map(|_| envelope(&submitted("other replica")))
                    .collect();
                commit(&pool, &outbox, &envs.iter().collect::<Vec<_>>());
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_stop = kaip_bus::outbox::last_seq(&mut pool.get().expect("conn"))
        .expect("seq")
        .expect("rows committed");
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
    done.store(true, Ordering::Relaxed);
    committer.await.expect("committer");
    stopped
        .expect("the relay stopped while the other replica kept committing")
        .expect("relay task");
    let unsent: i64 = kaip_outbox::table
        .filter(kaip_outbox::seq.le(before_stop))
        .filter(kaip_outbox::sent_at.is_null())
        .count()
        .get_result(&mut pool.get().expect("conn"))
        .expect("count");
    assert_eq!(
        unsent, 0,
        "everything committed before the stop was published"
    );
}

/// Probes do not count the outbox: they read the background task's last count, and check
/// the database with `SELECT 1`. Shown by locking the outbox table, which would make any
/// count wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_from_the_cached_outbox_count_while_the_outbox_table_is_locked() {
    let ctx = TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), || async {
        let (_, body, _) = readiness(&http, &intake, None).await;
        body["outbox"]["pending"].is_i64().then_some(())
    })
    .await
    .expect("the backlog is counted in the background");

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let pool = intake.pool.clone();
    let locker = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().expect("conn");
        conn.transaction(|c| {
            diesel::sql_query("LOCK TABLE kaip_outbox IN ACCESS EXCLUSIVE MODE").execute(c)?;
            locked_tx.send(()).expect("signal");
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
            Ok::<_, diesel::result::Error>(())
        })
        .expect("lock held");
    });
    locked_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("table locked");
    let probe = tokio::time::timeout(Duration::from_secs(5), readiness(&http, &intake, None)).await;
    let metrics = tokio::time::timeout(Duration::from_secs(5), async {
        http.get(intake.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    })
    .await;
    release_tx.send(()).expect("release");
    locker.await.expect("locker");
    let (status, body, text) = probe.expect("readiness answers while the outbox is locked");
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["database"], "ok", "{text}");
    assert!(
        body["outbox"]["pending"].is_i64(),
        "the cached count: {text}"
    );
    let metrics = metrics.expect("/metrics answers while the outbox is locked");
    assert!(metrics.contains("\nkaip_database_up 1\n"), "{metrics}");
    assert!(metrics.contains("\nkaip_outbox_pending "), "{metrics}");
}

/// The gateway's readiness gives anonymous callers `ready` and each service's labels, not
/// the services' counts or check times; an admin gets the full answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_readiness_gives_anonymous_callers_labels_only() {
    let ctx = TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let nowhere = "http://127.0.0.1:9".to_owned();
    // "Scoring" is a stand-in that counts the readiness requests it gets.
    let asked = Arc::new(AtomicUsize::new(0));
    let scoring = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let scoring_url = format!("http://{}", scoring.local_addr().expect("addr"));
    {
        let asked = asked.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in scoring.incoming() {
                let Ok(mut stream) = stream else { break };
                asked.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let body =
                    r#"{"ready":true,"database":"ok","broker":"ok","assigned_partitions":0}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
    let mut services = kaip_e2e::all_services_at(&nowhere);
    services.intake = intake.base_url.clone();
    services.scoring = scoring_url;
    let mut settings = kaip_e2e::gateway_settings(&ctx, services);
    settings.server.upstream_timeout_ms = 2_000;
    let gateway = kaip_gateway::Application::build(settings)
        .await
        .expect("gateway starts");
    let url = format!("http://127.0.0.1:{}/health/ready", gateway.port());
    let stop = gateway.shutdown_token();
    tokio::spawn(gateway.run_until_stopped());
    let http = reqwest::Client::new();
    // Wait until intake's background tasks have answered once (its outbox count exists).
    let admin: serde_json::Value = eventually(Duration::from_secs(30), || async {
        let body: serde_json::Value = http
            .get(&url)
            .header("authorization", ctx.bearer(Role::Admin, None))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["services"]["intake"]["outbox"]
            .is_object()
            .then_some(body)
    })
    .await
    .expect("an admin sees intake's full answer");
    assert!(admin["services"]["intake"]["broker_checked_at"].is_string());
    let res = http.get(&url).send().await.expect("answers");
    assert_eq!(res.status(), 503, "five services are unreachable");
    let body: serde_json::Value = res.json().await.expect("json");
    let intake_report = body["services"]["intake"]
        .as_object()
        .expect("intake's report");
    let mut keys: Vec<&str> = intake_report.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["broker", "database", "ready"],
        "labels only for anonymous callers: {body}"
    );
    assert_eq!(intake_report["database"], "ok");

    // A burst of anonymous probes shares one fan-out (answers are reused for ~1.5 s).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let before = asked.load(Ordering::SeqCst);
    let burst = futures::future::join_all((0..10).map(|_| http.get(&url).send())).await;
    assert!(burst.iter().all(Result::is_ok));
    let fanouts = asked.load(Ordering::SeqCst) - before;
    assert!(
        (1..=2).contains(&fanouts),
        "10 probes asked each service {fanouts} times"
    );
    stop.cancel();
}
