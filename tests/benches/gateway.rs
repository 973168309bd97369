//! `make bench`: the gateway under 64 concurrent officers, each listing a call's proposals
//! with their evaluation cases (`proposals { items { evaluationCase { status } } }`), against
//! the real services, PostgreSQL and broker, in-process, with the production defaults for
//! workers and pools. Reports p50/p99/max latency and the number of failed requests, for
//! one client alone and for 64 at once.
//!
//! `KAIP_BENCH_PROPOSALS` (default 30), `KAIP_BENCH_CLIENTS` (64), `KAIP_BENCH_ROUNDS` (20);
//! `KAIP_SERVER__*`, `KAIP_DATABASE__POOL_SIZE` and `KAIP_LIMITS__*` apply as in production.

use kaip_contracts::Role;
use kaip_e2e::load::{run_load, seed_call_at};
use kaip_gateway::settings::{GatewayServer, GatewaySettings, ServiceUrls};
use kaip_service::Defaults;
use kaip_testkit::{TestContext, TestService};

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

fn main() -> anyhow::Result<()> {
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
        // Warm up connections and caches.
        run_load(&url, &officer, &call_id, clients, 2, proposals).await;
        let one = run_load(&url, &officer, &call_id, 1, rounds * 4, proposals).await;
        println!("gateway, 1 officer listing {proposals} proposals with their cases: {}", one.summary());
        let many = run_load(&url, &officer, &call_id, clients, rounds, proposals).await;
        println!(
            "gateway, {clients} concurrent officers listing {proposals} proposals with their cases: {}",
            many.summary()
        );
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
