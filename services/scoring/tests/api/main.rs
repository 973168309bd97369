//! Scoring as a real process: killed with SIGKILL mid-stream and restarted, it resumes
//! where it stopped, and every submission ends up with exactly one evaluation case.

mod record_order;

use diesel::prelude::*;
use kaip_testkit::{eventually, TestContext, TestService};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct ScoringProcess {
    child: Child,
    url: String,
}

impl ScoringProcess {
    fn start(ctx: &TestContext, database: &str, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_kaip-scoring"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // The tests' tokens are signed with the development secret.
            .env("KAIP_AUTH__DEV_MODE", "true")
            .env("KAIP_SERVER__PORT", port.to_string())
            .env("KAIP_SERVER__WORKERS", "1")
            .env("KAIP_DATABASE__URL", kaip_testkit::database_url())
            .env("KAIP_DATABASE__NAME", database)
            .env("KAIP_KAFKA__BROKERS", &ctx.kafka.brokers)
            .env("KAIP_KAFKA__TOPIC_PREFIX", &ctx.kafka.topic_prefix)
            .env(
                "KAIP_KAFKA__PARTITIONS",
                ctx.kafka.partitions.unwrap_or(3).to_string(),
            )
            .env(
                "KAIP_KAFKA__REPLICATION_FACTOR",
                ctx.kafka.replication_factor.unwrap_or(1).to_string(),
            )
            .stdout(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kaip-scoring starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until the process is ready and its consumer holds the partition.
    async fn wait_consuming(&self) {
        let http = reqwest::Client::new();
        let url = format!("{}/health/ready", self.url);
        eventually(Duration::from_secs(90), || async {
            let body: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            (body["ready"] == true && body["assigned_partitions"].as_u64()? > 0).then_some(())
        })
        .await
        .expect("scoring process consumes");
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for ScoringProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cases(pool: &kaip_bus::PgPool) -> Vec<uuid::Uuid> {
    use kaip_scoring::schema::evaluation_cases::dsl::*;
    let mut conn = pool.get().expect("conn");
    evaluation_cases
        .select(proposal_id)
        .load(&mut conn)
        .unwrap_or_default()
}

async fn submit(ctx: &TestContext, intake: &TestService, call: &str, n: usize) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = kaip_testkit::intake::apply(ctx, &intake.base_url, call, &format!("Proposal {i}"))
            .await;
        ids.push(id.parse().expect("uuid"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_resumes_where_it_stopped_and_loses_nothing() {
    let mut ctx = TestContext::new();
    // One partition: "the last event was processed" then means "all earlier ones were".
    ctx.kafka.partitions = Some(1);
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    let database = ctx.settings(kaip_scoring::DEFAULTS).database.name;
    ctx.track_database(&database);
    let port = free_port();

    let call = kaip_testkit::intake::open_call(&ctx, &intake.base_url).await;

    let scoring = ScoringProcess::start(&ctx, &database, port);
    scoring.wait_consuming().await;
    let settings = ctx.settings(kaip_scoring::DEFAULTS);
    let pool = kaip_service::db::build_pool(&settings.database).expect("pool");

    let mut expected = submit(&ctx, &intake, &call, 3).await;
    eventually(Duration::from_secs(60), || async {
        (cases(&pool).len() >= 3).then_some(())
    })
    .await
    .expect("first three cases");
    // Killed without warning, most likely before its offsets were committed.
    scoring.kill();

    expected.extend(submit(&ctx, &intake, &call, 3).await);
    let scoring = ScoringProcess::start(&ctx, &database, port);
    scoring.wait_consuming().await;
    let last = *expected.last().expect("ids");
    eventually(Duration::from_secs(90), || async {
        cases(&pool).contains(&last).then_some(())
    })
    .await
    .expect("the restarted consumer caught up");

    let mut seen = cases(&pool);
    seen.sort();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every proposal has exactly one case: nothing lost, nothing doubled"
    );
    drop(scoring);
}

/// `make verify-decision` runs this binary: it refuses to guess a call, with exit code 2.
#[test]
fn the_verify_command_needs_a_call_and_says_how_to_give_one() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kaip-verify-decision"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--call must be a call id")
            && stdout.contains("usage: kaip-verify-decision --call <call id>"),
        "{stdout}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kaip-verify-decision"))
        .args(["--call", "not-a-uuid"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}
