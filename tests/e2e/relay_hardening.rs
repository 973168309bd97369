//! The outbox relay, tested as it runs: the real `Relay` against the real PostgreSQL and
//! the real broker. Ordering under partial failure, a crash between acknowledgement and
//! mark, the one-relay-per-database lock, republication, retention, readiness, start-up
//! checks and shutdown order.

use diesel::prelude::*;
use kaip_bus::outbox::{outbox_stats, OutboxStats};
use kaip_bus::schema::{kaip_inbox, kaip_outbox};
use kaip_bus::{Outbox, OutboxSettings, Relay};
use kaip_contracts::events::ProposalSubmitted;
use kaip_contracts::{topics, Actor, EventEnvelope, Role};
use kaip_e2e::eventually;
use kaip_service::db;
use kaip_testkit::TestContext;

use uuid::Uuid;

fn submitted(title: &str) -> ProposalSubmitted {
    kaip_testkit::fixtures::proposal_submitted(title)
}

fn envelope(event: &ProposalSubmitted) -> EventEnvelope {
    EventEnvelope::wrap(
        "intake",
        Actor {
            subject: "lead".into(),
            role: Role::Consortium,
        },
        event,
    )
    .expect("wraps")
}

/// An envelope for aggregate `key` (several events of one aggregate share it).
fn envelope_for(key: Uuid, title: &str) -> EventEnvelope {
    let mut env = envelope(&submitted(title));
    env.aggregate_id = key;
    env
}

fn single_partition_context() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.kafka.partitions = 1;
    ctx
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

/// Event ids on a topic, in offset order.
async fn ids_on(ctx: &TestContext, topic: &str) -> Vec<String> {
    ctx.read_topic(topic)
        .await
        .iter()
        .filter_map(|m| m.json().and_then(|j| j["id"].as_str().map(str::to_owned)))
        .collect()
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
            ..OutboxSettings::default()
        },
    );
    assert_eq!(relay.publish_pending().await.expect("pass 1"), 1);
    let p = row(&pool, poison.id.0);
    assert!(!p.sent, "the refused event stays pending");
    assert_eq!(p.attempts, 1);
    assert!(
        p.last_error.as_deref().is_some_and(|e| e.contains("too large")),
        "its error is recorded: {p:?}"
    );
    let b = row(&pool, behind.id.0);
    assert!(!b.sent, "a later event of the same key is not marked sent: {b:?}");
    assert!(row(&pool, unrelated.id.0).sent, "other keys go on");

    // Again: still refused, now counted as stuck; the key stays blocked.
    assert_eq!(relay.publish_pending().await.expect("pass 2"), 0);
    let stats: OutboxStats =
        outbox_stats(&mut pool.get().expect("conn"), 2).expect("stats");
    assert_eq!(stats.pending, 2);
    assert_eq!(stats.failing, 1);
    assert_eq!(stats.stuck, 1, "{stats:?}");
    assert!(!row(&pool, behind.id.0).sent);
    assert_eq!(
        ids_on(&ctx, &topic).await,
        vec![unrelated.id.to_string()],
        "nothing of the blocked key reached the broker"
    );

    // Once the poison row can go (an operator shrank it), the key resumes in order.
    diesel::sql_query("UPDATE kaip_outbox SET payload = payload #- '{data,padding}' WHERE event_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(poison.id.0)
        .execute(&mut pool.get().expect("conn"))
        .expect("repair");
    let mut sent = 0;
    for _ in 0..3 {
        sent += relay.publish_pending().await.expect("pass");
    }
    assert_eq!(sent, 2);
    assert_eq!(
        ids_on(&ctx, &topic).await,
        vec![
            unrelated.id.to_string(),
            poison.id.to_string(),
            behind.id.to_string()
        ],
        "the key's events are on the topic in their order"
    );
    let stats = outbox_stats(&mut pool.get().expect("conn"), 2).expect("stats");
    assert_eq!(stats, OutboxStats::default());
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
        let applied: i64 = diesel::sql_query(
            "SELECT count(*) AS n FROM __diesel_schema_migrations",
        )
        .get_result::<Count>(&mut a.pool().get().expect("conn"))
        .expect("migrations table")
        .n;
        assert!(applied >= 2, "backbone and scoring migrations applied once each");
        drop((a, b));
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
