//! `make bench`: throughput of the event backbone against the real PostgreSQL and broker.
//!
//! 1. Outbox writes: events committed through `Outbox::transaction`, 100 per transaction.
//! 2. Relay: those events published and acknowledged, then marked sent.
//! 3. Consumer: scoring consuming them, each in its own transaction with the inbox and
//!    an evaluation case plus its outbox event, measured from the first case to the last.
//!
//! `KAIP_BENCH_EVENTS` sets the count (default 5000).

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
    rt.block_on(async move {
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
    })
}
