//! `make bench`: the gateway under 64 concurrent officers, each listing a call's proposals
//! with their evaluation cases (`proposals { items { evaluationCase { status } } }`), against
//! the real services, PostgreSQL and broker, in-process, with the production defaults for
//! workers and pools. Reports p50/p99/max latency and the number of failed requests, for
//! one client alone and for 64 at once.
//!
//! The load generator runs as a separate process (this executable, re-run), as a real
//! measurement does. Wall-clock latency depends on whatever else the machine is doing, so
//! the bench also reports what does not: the CPU time and context switches per request of
//! the platform's process (gateway, intake and scoring), of the PostgreSQL backends serving
//! its databases and of the load generator, with the platform's idle rate (its Kafka
//! clients poll when nothing happens) measured apart.
//!
//! `KAIP_BENCH_PROPOSALS` (default 30), `KAIP_BENCH_CLIENTS` (64), `KAIP_BENCH_ROUNDS` (20);
//! `KAIP_SERVER__*`, `KAIP_DATABASE__POOL_SIZE` and `KAIP_LIMITS__*` apply as in production.

use diesel::prelude::*;
use kaip_contracts::Role;
use kaip_e2e::load::{
    load_child_main, run_load_in_child, seed_call_at, LoadReport, LoadSpec, Usage, LOAD_CHILD_ENV,
};
use kaip_gateway::settings::{GatewayServer, GatewaySettings, ServiceUrls};
use kaip_service::Defaults;
use kaip_testkit::{TestContext, TestService};
use std::time::{Duration, Instant};

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The environment without one section (a service has no `limits`, the gateway no
/// `database`).
fn env_without(prefix: &str) -> std::collections::HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| !k.starts_with(prefix))
        .collect()
}

/// A service with the defaults a deployment gets (workers, pool), on this bench's database
/// and topics.
async fn spawn(
    ctx: &TestContext,
    def: kaip_service::ServiceDefinition,
    defaults: Defaults,
) -> TestService {
    // The defaults, or what `KAIP_SERVER__WORKERS` / `KAIP_DATABASE__POOL_SIZE` say.
    // Only the server and pool sizes are read from here; the bench's tokens are the test
    // kit's development ones, so the auth part loads in development mode.
    let mut env = env_without("KAIP_LIMITS__");
    env.insert("KAIP_AUTH__DEV_MODE".into(), "true".into());
    let production = kaip_service::Settings::load_from(defaults, &env)
        .unwrap_or_else(|e| panic!("default settings: {e}"));
    let mut settings = ctx.settings(defaults);
    settings.server.workers = production.server.workers;
    settings.database.pool_size = production.database.pool_size;
    ctx.spawn_with(def, settings).await
}

/// The PostgreSQL backends serving `databases` (the services' pooled connections).
fn backends_of(databases: &[&str]) -> anyhow::Result<Vec<u32>> {
    #[derive(QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let url = format!("{}/postgres", kaip_testkit::database_url());
    let mut conn = PgConnection::establish(&url)?;
    let rows: Vec<Backend> =
        diesel::sql_query("SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)")
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(databases)
            .load(&mut conn)?;
    Ok(rows.into_iter().map(|r| r.pid as u32).collect())
}

/// Per request, in microseconds (CPU) and switches.
fn per_request(u: Usage, requests: usize) -> String {
    let n = requests.max(1) as f64;
    format!(
        "{:.0} µs CPU, {:.1} context switches",
        u.cpu.as_secs_f64() * 1e6 / n,
        u.switches as f64 / n
    )
}

/// Runs one load in a child process and measures what each party spent on it.
fn measured(
    spec: &LoadSpec,
    backends: &[u32],
) -> anyhow::Result<(LoadReport, Usage, Usage, Usage)> {
    let me = [std::process::id()];
    let (platform0, pg0) = (Usage::of(&me), Usage::of(backends));
    let (report, generator) = run_load_in_child(spec)?;
    let (platform, pg) = (
        Usage::of(&me).since(platform0),
        Usage::of(backends).since(pg0),
    );
    Ok((report, platform, pg, generator))
}

/// `idle_rate`: the platform's CPU seconds per second when nothing is asked of it.
fn print_usage(report: &LoadReport, platform: Usage, pg: Usage, generator: Usage, idle_rate: f64) {
    let n = report.latencies.len() + report.failures;
    // What the platform spends when idle (Kafka clients polling) over the same time.
    let idle_share = Duration::from_secs_f64(idle_rate * report.elapsed.as_secs_f64());
    let platform_net = Usage {
        cpu: platform.cpu.saturating_sub(idle_share),
        switches: platform.switches,
    };
    println!(
        "  per request: platform {} ({} before subtracting its idle rate);",
        per_request(platform_net, n),
        per_request(platform, n)
    );
    println!(
        "  PostgreSQL {}; load generator {}",
        per_request(pg, n),
        per_request(generator, n)
    );
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(LOAD_CHILD_ENV) {
        return load_child_main(&spec);
    }
    let proposals = env_or("KAIP_BENCH_PROPOSALS", 30);
    let clients = env_or("KAIP_BENCH_CLIENTS", 64);
    let rounds = env_or("KAIP_BENCH_ROUNDS", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ctx = TestContext::new();
        let intake = spawn(&ctx, kaip_intake::definition(), kaip_intake::DEFAULTS).await;
        let scoring = spawn(&ctx, kaip_scoring::definition(), kaip_scoring::DEFAULTS).await;
        // The defaults, or what `KAIP_SERVER__*` / `KAIP_LIMITS__*` say.
        let production = GatewaySettings::load_from(&env_without("KAIP_DATABASE__"))?;
        // The gateway fronts only intake and scoring here; the others are not called.
        let settings = GatewaySettings {
            server: GatewayServer {
                port: 0,
                ..production.server.clone()
            },
            services: ServiceUrls {
                intake: intake.base_url.clone(),
                scoring: scoring.base_url.clone(),
                ..production.services.clone()
            },
            kafka: ctx.kafka.clone(),
            auth: kaip_auth::dev::settings(),
            limits: production.limits.clone(),
        };
        let gateway = kaip_gateway::Application::build(settings).await?;
        let url = format!("http://127.0.0.1:{}", gateway.port());
        let stop = gateway.shutdown_token();
        let server = tokio::spawn(gateway.run_until_stopped());
        scoring.wait_assigned().await;

        let call_id = seed_call_at(&ctx, &url, proposals).await;
        let officer = ctx.bearer(Role::Officer, None);
        let spec = |clients, rounds| LoadSpec {
            url: url.clone(),
            officer: officer.clone(),
            call_id: call_id.clone(),
            clients,
            rounds,
            expected: proposals,
        };
        let backends = backends_of(&[intake.database.as_str(), scoring.database.as_str()])?;
        let (warm, one_spec, many_spec) =
            (spec(clients, 2), spec(1, rounds * 4), spec(clients, rounds));
        let ((one, one_usage), (many, many_usage), idle) = tokio::task::spawn_blocking(
            move || -> anyhow::Result<_> {
                // Warm up connections and caches.
                run_load_in_child(&warm)?;
                // The platform's own rate when nothing is asked of it, per second.
                let me = [std::process::id()];
                let (before, t) = (Usage::of(&me), Instant::now());
                std::thread::sleep(Duration::from_secs(2));
                let idle = Usage::of(&me).since(before).cpu.as_secs_f64()
                    / t.elapsed().as_secs_f64();
                let one = measured(&one_spec, &backends)?;
                let many = measured(&many_spec, &backends)?;
                Ok(((one.0, (one.1, one.2, one.3)), (many.0, (many.1, many.2, many.3)), idle))
            },
        )
        .await??;
        println!(
            "platform idle: {:.1} ms CPU per second (Kafka clients polling)",
            idle * 1e3
        );
        println!("gateway, 1 officer listing {proposals} proposals with their cases: {}", one.summary());
        print_usage(&one, one_usage.0, one_usage.1, one_usage.2, idle);
        println!(
            "gateway, {clients} concurrent officers listing {proposals} proposals with their cases: {}",
            many.summary()
        );
        print_usage(&many, many_usage.0, many_usage.1, many_usage.2, idle);
        if !many.reasons.is_empty() {
            println!("  failures, e.g.: {:?}", many.reasons);
        }
        stop.cancel();
        let _ = server.await;
        scoring.shutdown().await;
        intake.shutdown().await;
        Ok(())
    })
}
