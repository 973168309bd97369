//! `make bench`: the GPU ledger's throughput with every invariant checked, printed beside
//! `pgbench -N` run in the same invocation against the same PostgreSQL server.
//!
//! Three figures:
//! - `pgbench -N` (the simple-update TPC-B variant, no branch/teller hot rows) at 16 clients:
//!   the yardstick for "what this server does per second with one small transaction each";
//! - batches through the service API (`POST /transfers`, `KAIP_BENCH_BATCH` transfers per
//!   call, default 1,000) from 16 clients: every batch is one database transaction (group
//!   commit, as TigerBeetle batches), with the limit checks, idempotency, history and the
//!   event announcing it;
//! - single transfers (one per call) from 64 clients, with p50 and p99 latency.
//!
//! After each run the ledger's own `/invariants` (every model and period sums to zero, the
//! replay of every transfer gives today's balances) must hold and every transfer must have
//! been created exactly once; otherwise the bench fails rather than print a figure.
//!
//! Every transfer draws on one pool account, the hot row a real programme has (all grants
//! come from the national pool). Sizes: `KAIP_BENCH_BATCHES` batches per client (default 8),
//! `KAIP_BENCH_SINGLES` single transfers per client (default 40).

use kaip_contracts::dto::gpu::TransfersResult;
use kaip_contracts::Role;
use kaip_testkit::{TestContext, TestService};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

const MODEL: &str = "H100";
const PERIOD: &str = "2027H1";

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Ledger {
    svc: TestService,
    http: reqwest::Client,
    officer: String,
}

impl Ledger {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.svc.url(path))
            .header("Authorization", &self.officer)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn open(&self, kind: &str, consortium: Option<Uuid>) -> Uuid {
        let id = Uuid::now_v7();
        let mut body = json!({"id": id, "model": MODEL, "period": PERIOD, "kind": kind,
            "name": format!("bench {kind} {id}"), "reason": "bench"});
        if let Some(c) = consortium {
            body["consortium_id"] = json!(c);
        }
        if kind == "source" {
            body["source_type"] = json!("government");
        }
        let (s, b) = self.post("/accounts", &body).await;
        assert_eq!(s, 201, "open {kind}: {b}");
        id
    }

    async fn transfers(&self, ts: Vec<Value>) -> TransfersResult {
        let (s, b) = self.post("/transfers", &json!({ "transfers": ts })).await;
        assert_eq!(s, 200, "{b}");
        serde_json::from_value(b).expect("result")
    }

    async fn check_invariants(&self, what: &str) {
        let res = self
            .http
            .get(self.svc.url("/invariants"))
            .header("Authorization", &self.officer)
            .send()
            .await
            .expect("invariants");
        let b: Value = res.json().await.expect("invariants body");
        assert_eq!(b["ok"], true, "after {what}: {b:#}");
    }
}

fn grant(pool: Uuid, team: Uuid) -> Value {
    json!({"id": Uuid::now_v7(), "debit_account": pool, "credit_account": team, "amount": 1,
        "kind": "single", "code": "grant", "reason": "bench"})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `pgbench -N` at `clients` clients for `seconds`, on a scratch database of this server.
/// Returns its tps (without initial connection time), or why it could not run.
fn pgbench(clients: usize, seconds: usize) -> Result<f64, String> {
    use std::process::Command;
    let url = kaip_testkit::database_url();
    let db = format!("kaip_bench_pgbench_{}", std::process::id());
    let admin = |sql: &str| {
        Command::new("psql")
            .args([&format!("{url}/postgres"), "-q", "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))
    };
    let created = admin(&format!("CREATE DATABASE {db}"))?;
    if !created.status.success() {
        return Err(format!(
            "creating {db}: {}",
            String::from_utf8_lossy(&created.stderr)
        ));
    }
    let target = format!("{url}/{db}");
    let run = || -> Result<f64, String> {
        let init = Command::new("pgbench")
            .args(["-i", "-q", "-s", "10", &target])
            .output()
            .map_err(|e| format!("pgbench (from PostgreSQL's client tools) not runnable: {e}"))?;
        if !init.status.success() {
            return Err(String::from_utf8_lossy(&init.stderr).into_owned());
        }
        let out = Command::new("pgbench")
            .args([
                "-N",
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
                &target,
            ])
            .output()
            .map_err(|e| format!("pgbench: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // A run whose clients aborted still prints the survivors' tps: not a figure.
        if !out.status.success() || text.contains("aborted") {
            return Err(format!(
                "pgbench failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        text.lines()
            .find_map(|l| {
                let l = l.trim();
                l.strip_prefix("tps = ")
                    .filter(|_| l.contains("without initial connection time"))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<f64>().ok())
            })
            .ok_or_else(|| format!("no tps in pgbench's output: {text}"))
    };
    let tps = run();
    let _ = admin(&format!("DROP DATABASE IF EXISTS {db}"));
    tps
}

fn main() {
    let batch = env_or("KAIP_BENCH_BATCH", 1_000).clamp(1, 8_190);
    let batches = env_or("KAIP_BENCH_BATCHES", 8);
    let singles = env_or("KAIP_BENCH_SINGLES", 40);
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());

    let pg = pgbench(16, 10);
    match &pg {
        Ok(tps) => println!("ledger: pgbench -N, 16 clients, 10 s: {tps:.0} tps ({machine} cores)"),
        Err(e) => println!("ledger: pgbench -N could not run: {e}"),
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ctx = TestContext::new();
        let mut settings = ctx.settings(kaip_gpu_ledger::DEFAULTS);
        // As a production replica would run: several workers and connections.
        settings.server.workers = 4;
        settings.database.pool_size = 16;
        let svc = ctx
            .spawn_with(kaip_gpu_ledger::definition(), settings)
            .await;
        let l = Ledger {
            svc,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            officer: ctx.bearer(Role::Officer, None),
        };
        let source = l.open("source", None).await;
        let pool = l.open("pool", None).await;
        let total = 16 * batches * batch + 64 * singles;
        let capacity = l
            .transfers(vec![json!({"id": Uuid::now_v7(), "debit_account": source,
                "credit_account": pool, "amount": total as i64, "kind": "single",
                "code": "capacity", "reason": "bench"})])
            .await;
        assert_eq!(capacity.created, 1, "{capacity:?}");
        let mut teams = Vec::new();
        for _ in 0..64 {
            teams.push(l.open("grant", Some(Uuid::now_v7())).await);
        }

        // Batches from 16 clients.
        let started = Instant::now();
        let runs = (0..16).map(|c| {
            let l = &l;
            let teams = &teams;
            async move {
                let mut times = Vec::new();
                let mut created = 0;
                for b in 0..batches {
                    let ts = (0..batch)
                        .map(|i| grant(pool, teams[(c + b + i) % teams.len()]))
                        .collect();
                    let t = Instant::now();
                    created += l.transfers(ts).await.created;
                    times.push(t.elapsed());
                }
                (created, times)
            }
        });
        let results = futures::future::join_all(runs).await;
        let elapsed = started.elapsed();
        let created: usize = results.iter().map(|r| r.0).sum();
        let mut times: Vec<Duration> = results.into_iter().flat_map(|r| r.1).collect();
        times.sort();
        assert_eq!(
            created,
            16 * batches * batch,
            "every batched transfer created once"
        );
        l.check_invariants("the batches").await;
        let batch_tps = created as f64 / elapsed.as_secs_f64();
        println!(
            "ledger: POST /transfers in batches of {batch}, 16 clients: {batch_tps:.0} transfers/s \
             ({created} transfers in {:.2?}; per batch p50 {:.1?}, p99 {:.1?})",
            elapsed,
            percentile(&times, 0.50),
            percentile(&times, 0.99)
        );
        if let Ok(tps) = &pg {
            println!(
                "ledger: batched transfers per second are {:.1}x pgbench -N's transactions per second (the aim is at least 10x)",
                batch_tps / tps
            );
        }

        // Single transfers from 64 clients.
        let started = Instant::now();
        let runs = (0..64).map(|c| {
            let l = &l;
            let team = teams[c];
            async move {
                let mut times = Vec::new();
                let mut created = 0;
                for _ in 0..singles {
                    let t = Instant::now();
                    created += l.transfers(vec![grant(pool, team)]).await.created;
                    times.push(t.elapsed());
                }
                (created, times)
            }
        });
        let results = futures::future::join_all(runs).await;
        let elapsed = started.elapsed();
        let created: usize = results.iter().map(|r| r.0).sum();
        let mut times: Vec<Duration> = results.into_iter().flat_map(|r| r.1).collect();
        times.sort();
        assert_eq!(created, 64 * singles, "every single transfer created once");
        l.check_invariants("the single transfers").await;
        println!(
            "ledger: POST /transfers one at a time, 64 clients: {:.0} transfers/s ({created} in \
             {:.2?}; p50 {:.1?}, p99 {:.1?})",
            created as f64 / elapsed.as_secs_f64(),
            elapsed,
            percentile(&times, 0.50),
            percentile(&times, 0.99)
        );
        l.svc.shutdown().await;
    });
}
