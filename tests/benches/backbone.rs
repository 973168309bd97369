//! `make bench`: throughput of the event backbone against the real PostgreSQL and broker.
//!
//! 1. Outbox writes: events committed through `Outbox::transaction`, 100 per transaction.
//! 2. Relay: those events published and acknowledged, then marked sent.
//! 3. Consumer: scoring consuming them, each in its own transaction with the inbox and
//!    an evaluation case plus its outbox event, measured from the first case to the last.
//!
//! 4. Latency: one event at a time, from the commit of its outbox row (with the real
//!    relay running, woken by the commit) to the commit of scoring's inbox row, over
//!    `KAIP_BENCH_LATENCY_EVENTS` events (default 200): p50, p99 and max.
//!
//! `KAIP_BENCH_EVENTS` sets the count (default 5000); `KAIP_BENCH_ONLY=latency` runs only 4.

use diesel::prelude::*;
use kaip_bus::{Outbox, OutboxSettings, Relay};
use kaip_contracts::{topics, Actor, Role};
use kaip_service::db;
use kaip_testkit::{eventually, TestContext};
use std::time::{Duration, Instant};

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{n} events in {:.2} s = {:.0} events/s",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    )
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("KAIP_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let latency_events: usize = std::env::var("KAIP_BENCH_LATENCY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let only_latency = std::env::var("KAIP_BENCH_ONLY").is_ok_and(|v| v == "latency");
    if !only_latency {
        rt.block_on(throughput(n))?;
    }
    if latency_events == 0 {
        println!("latency: skipped (KAIP_BENCH_LATENCY_EVENTS=0)");
        return Ok(());
    }
    rt.block_on(latency(latency_events))
}

async fn throughput(n: usize) -> anyhow::Result<()> {
    {
        let ctx = TestContext::new();
        let settings = ctx.settings(kaip_intake::DEFAULTS);
        ctx.track_database(&settings.database.name);
        db::ensure_database(&settings.database)?;
        let pool = db::build_pool(&settings.database)?;
        db::migrate(&pool, kaip_intake::MIGRATIONS)?;
        kaip_bus::kafka::ensure_topics(&ctx.kafka, &[ctx.topic(topics::INTAKE)]).await?;
        let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
        let actor = Actor {
            subject: "bench".into(),
            role: Role::Consortium,
        };

        let started = Instant::now();
        {
            let pool = pool.clone();
            let outbox = outbox.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut conn = pool.get()?;
                for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
                    outbox.transaction(&mut conn, |c, tx| {
                        for i in chunk {
                            let event = kaip_testkit::fixtures::proposal_submitted(&format!(
                                "Proposal {i}"
                            ));
                            tx.publish(c, actor.clone(), &event)?;
                        }
                        Ok::<_, diesel::result::Error>(())
                    })?;
                }
                Ok(())
            })
            .await??;
        }
        println!("outbox writes: {}", rate(n, started.elapsed()));

        let producer = kaip_bus::kafka::producer(&ctx.kafka)?;
        let relay = Relay::new(
            pool.clone(),
            producer,
            outbox.wake_handle(),
            OutboxSettings::default(),
        );
        let started = Instant::now();
        let mut published = 0;
        while published < n {
            let batch = relay.publish_pending().await?;
            anyhow::ensure!(batch > 0, "relay stalled at {published} of {n}");
            published += batch;
        }
        println!(
            "relay (publish, ack, mark sent): {}",
            rate(n, started.elapsed())
        );

        let scoring = ctx
            .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
            .await;
        let count = || -> i64 {
            use kaip_scoring::schema::evaluation_cases::dsl::*;
            evaluation_cases
                .count()
                .get_result(&mut scoring.conn())
                .unwrap_or(0)
        };
        eventually(Duration::from_secs(120), || async {
            (count() > 0).then_some(())
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("scoring consumed nothing"))?;
        let started = Instant::now();
        let first = count() as usize;
        eventually(Duration::from_secs(600), || async {
            (count() as usize >= n).then_some(())
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("scoring did not consume all events"))?;
        println!(
            "consumer (inbox + case + outbox event, one transaction each): {}",
            rate(n - first, started.elapsed())
        );
        scoring.shutdown().await;
        Ok(())
    }
}

/// Commit-to-inbox latency of single events through the real relay and scoring's consumer.
async fn latency(n: usize) -> anyhow::Result<()> {
    let ctx = TestContext::new();
    let settings = ctx.settings(kaip_intake::DEFAULTS);
    ctx.track_database(&settings.database.name);
    let db_settings = settings.database.clone();
    let pool = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        db::ensure_database(&db_settings)?;
        let pool = db::build_pool(&db_settings)?;
        db::migrate(&pool, kaip_intake::MIGRATIONS)?;
        Ok(pool)
    })
    .await??;
    kaip_bus::kafka::ensure_topics(&ctx.kafka, &[ctx.topic(topics::INTAKE)]).await?;
    let outbox = Outbox::new("intake", ctx.topic(topics::INTAKE));
    let relay = Relay::new(
        pool.clone(),
        kaip_bus::kafka::producer(&ctx.kafka)?,
        outbox.wake_handle(),
        settings.outbox.clone(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(stop.clone()));
    let scoring = ctx
        .spawn(kaip_scoring::definition(), kaip_scoring::DEFAULTS)
        .await;
    scoring.wait_assigned().await;
    let actor = Actor {
        subject: "bench".into(),
        role: Role::Consortium,
    };
    let scoring_pool = scoring.pool.clone();
    // Warm-up: the first event pays for connections and metadata.
    let warmup = 5;
    let samples = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
        use kaip_bus::schema::kaip_inbox;
        let mut conn = pool.get()?;
        let mut probe = scoring_pool.get()?;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + warmup {
            let event = kaip_testkit::fixtures::proposal_submitted(&format!("Latency {i}"));
            let envelope =
                outbox.transaction(&mut conn, |c, tx| tx.publish(c, actor.clone(), &event))?;
            let committed = Instant::now();
            let deadline = committed + Duration::from_secs(30);
            loop {
                let seen: i64 = kaip_inbox::table
                    .filter(kaip_inbox::event_id.eq(envelope.id.0))
                    .count()
                    .get_result(&mut probe)?;
                if seen > 0 {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "event {i} never reached scoring");
                std::thread::sleep(Duration::from_micros(200));
            }
            if i >= warmup {
                samples.push(committed.elapsed());
            }
        }
        Ok(samples)
    })
    .await??;
    stop.cancel();
    let _ = relay_task.await;
    scoring.shutdown().await;
    let mut sorted = samples.clone();
    sorted.sort();
    let pct =
        |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "latency (outbox commit -> scoring's inbox commit, {} events one at a time): \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sorted.len(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(sorted[sorted.len() - 1]),
    );
    Ok(())
}
