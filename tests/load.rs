//! Load on the gateway: a call with many proposals, and many officers listing them at once.
//! Shared by the e2e test (which asserts that nothing fails) and `make bench` (which reports
//! the latencies).

use crate::{eventually, member_inputs, OrgType, Platform, CREATE, OPEN_CALL, REGISTER, SUBMIT};
use kaip_contracts::{ConsortiumId, Role};
use kaip_testkit::TestContext;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The query the load runs: a call's proposals with their evaluation cases.
pub const LIST_WITH_CASES: &str =
    "query($call: UUID!) { proposals(callId: $call, first: 100) { items { id evaluationCase { status } } } }";

/// Opens a call, has `n` consortia apply to it, and waits until scoring opened a case for
/// each; returns the call's id.
pub async fn seed_call(p: &Platform, n: usize) -> String {
    seed_call_at(&p.ctx, &p.gateway_url, n).await
}

/// [`seed_call`] through any gateway (the bench builds its own platform).
pub async fn seed_call_at(ctx: &TestContext, gateway_url: &str, n: usize) -> String {
    let http = reqwest::Client::new();
    let gql = |token: String, query: &'static str, variables: Value| {
        let http = http.clone();
        let url = format!("{gateway_url}/graphql");
        async move {
            let body: Value = http
                .post(url)
                .header("authorization", token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .expect("gateway answers")
                .json()
                .await
                .expect("JSON");
            assert!(body["errors"].is_null(), "{query}: {body}");
            body
        }
    };
    let officer = ctx.bearer(Role::Officer, None);
    let now = chrono::Utc::now();
    let call = gql(
        officer.clone(),
        OPEN_CALL,
        json!({ "input": {
            "title": "Sovereign AI Foundation Model 2026",
            "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "closesAt": (now + chrono::Duration::hours(24)).to_rfc3339(),
        }}),
    )
    .await;
    let call_id = call["data"]["openCall"]["id"]
        .as_str()
        .expect("call id")
        .to_owned();
    let applications: Vec<_> = (0..n)
        .map(|i| {
            let consortium = ConsortiumId::new();
            let token = ctx.bearer(Role::Consortium, Some(consortium));
            let call_id = call_id.clone();
            let gql = &gql;
            async move {
                let seed = (consortium.0.as_u128() % 100_000_000) as u32;
                let members = member_inputs(seed, OrgType::LargeEnterprise);
                gql(
                    token.clone(),
                    REGISTER,
                    json!({ "id": consortium, "input": { "name": format!("Consortium {i}"), "members": members } }),
                )
                .await;
                let draft = gql(
                    token.clone(),
                    CREATE,
                    json!({ "input": { "callId": call_id, "title": format!("Model {i}"), "summary": "Built from scratch", "portfolio": crate::portfolio_input() } }),
                )
                .await;
                let id = draft["data"]["createProposal"]["id"].clone();
                gql(token, SUBMIT, json!({ "id": id, "key": format!("submit-{i}") })).await;
            }
        })
        .collect();
    // A few at a time: the point is the data, not load on the write path.
    let mut pending = applications;
    while !pending.is_empty() {
        let batch: Vec<_> = pending.drain(..pending.len().min(8)).collect();
        futures::future::join_all(batch).await;
    }
    let cases = eventually(Duration::from_secs(120), || {
        let body = gql(
            officer.clone(),
            "query($call: UUID!) { evaluationCases(callId: $call, first: 100) { items { id } } }",
            json!({ "call": call_id }),
        );
        async move {
            let found = body.await["data"]["evaluationCases"]["items"]
                .as_array()
                .map_or(0, Vec::len);
            (found == n).then_some(found)
        }
    })
    .await;
    assert_eq!(cases, Some(n), "scoring opened a case for every proposal");
    call_id
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Latency of every request that got a complete answer.
    pub latencies: Vec<Duration>,
    /// Requests that failed, with the first few reasons.
    pub failures: usize,
    pub reasons: Vec<String>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.2} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} failed",
            self.latencies.len() + self.failures,
            self.elapsed.as_secs_f64(),
            self.percentile(50.0).as_secs_f64() * 1e3,
            self.percentile(99.0).as_secs_f64() * 1e3,
            self.percentile(100.0).as_secs_f64() * 1e3,
            self.failures,
        )
    }
}

/// `clients` officers, each with its own connection, each sending `rounds` requests one
/// after the other. A request succeeds when it has no errors and every one of the
/// `expected` proposals comes with its case.
pub async fn run_load(
    gateway_url: &str,
    officer: &str,
    call_id: &str,
    clients: usize,
    rounds: usize,
    expected: usize,
) -> LoadReport {
    let started = Instant::now();
    let tasks = (0..clients).map(|_| {
        let url = format!("{gateway_url}/graphql");
        let officer = officer.to_owned();
        let body = json!({ "query": LIST_WITH_CASES, "variables": { "call": call_id } });
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut out = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t = Instant::now();
                let res = http
                    .post(&url)
                    .header("authorization", &officer)
                    .json(&body)
                    .send()
                    .await;
                let outcome = match res {
                    Ok(res) => match res.json::<Value>().await {
                        Ok(v) => check(&v, expected),
                        Err(e) => Err(format!("not JSON: {e}")),
                    },
                    Err(e) => Err(format!("no answer: {e}")),
                };
                out.push(outcome.map(|()| t.elapsed()));
            }
            out
        })
    });
    let mut report = LoadReport::default();
    for task in futures::future::join_all(tasks).await {
        for outcome in task.unwrap_or_default() {
            match outcome {
                Ok(latency) => report.latencies.push(latency),
                Err(reason) => {
                    report.failures += 1;
                    if report.reasons.len() < 5 {
                        report.reasons.push(reason);
                    }
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn check(body: &Value, expected: usize) -> Result<(), String> {
    if !body["errors"].is_null() {
        return Err(body["errors"].to_string());
    }
    let items = body["data"]["proposals"]["items"]
        .as_array()
        .ok_or_else(|| format!("no items: {body}"))?;
    if items.len() != expected {
        return Err(format!("{} items, expected {expected}", items.len()));
    }
    if let Some(item) = items
        .iter()
        .find(|i| i["evaluationCase"]["status"].is_null())
    {
        return Err(format!("a proposal without its case: {item}"));
    }
    Ok(())
}

/// CPU time (user + system, all threads, including those that ended) that process `pid`
/// has used, from `/proc/<pid>/stat`. Linux only; `None` elsewhere or if the process is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(
        ticks * 1_000_000_000 / clock_ticks_per_second(),
    ))
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks_per_second() -> u64 {
    100
}

/// Context switches (voluntary and involuntary) of the live threads of process `pid`: a
/// measure of the thread hand-offs work costs, independent of how busy the machine is.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        total += status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// CPU time and context switches of a set of processes, summed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu: Duration,
    pub switches: u64,
}

impl Usage {
    pub fn of(pids: &[u32]) -> Self {
        pids.iter().fold(Self::default(), |acc, &pid| Self {
            cpu: acc.cpu + cpu_time(pid).unwrap_or_default(),
            switches: acc.switches + context_switches(pid).unwrap_or_default(),
        })
    }

    pub fn since(self, before: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(before.cpu),
            switches: self.switches.saturating_sub(before.switches),
        }
    }
}

/// What [`run_load_in_child`] is told, through the environment variable [`LOAD_CHILD_ENV`].
#[derive(serde::Serialize, serde::Deserialize)]
pub struct LoadSpec {
    pub url: String,
    pub officer: String,
    pub call_id: String,
    pub clients: usize,
    pub rounds: usize,
    pub expected: usize,
}

/// Set in the environment of a load-generator child process: its [`LoadSpec`] as JSON.
pub const LOAD_CHILD_ENV: &str = "KAIP_BENCH_LOAD_CHILD";

/// What a load-generator child reports on its standard output (one JSON line).
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildReport {
    latencies_us: Vec<u64>,
    failures: usize,
    reasons: Vec<String>,
    elapsed_us: u64,
    /// The child's own CPU time and context switches, taken when its load was done.
    cpu_us: u64,
    switches: u64,
}

/// The child's side: runs the load of `spec` on one thread and prints its report.
pub fn load_child_main(spec: &str) -> anyhow::Result<()> {
    let spec: LoadSpec = serde_json::from_str(spec)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run_load(
        &spec.url,
        &spec.officer,
        &spec.call_id,
        spec.clients,
        spec.rounds,
        spec.expected,
    ));
    let usage = Usage::of(&[std::process::id()]);
    let out = ChildReport {
        latencies_us: report
            .latencies
            .iter()
            .map(|d| d.as_micros() as u64)
            .collect(),
        failures: report.failures,
        reasons: report.reasons,
        elapsed_us: report.elapsed.as_micros() as u64,
        cpu_us: usage.cpu.as_micros() as u64,
        switches: usage.switches,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// Runs the load of `spec` in a separate process (this executable, re-run with
/// [`LOAD_CHILD_ENV`] set), as a real measurement does: the load generator's own work is
/// then not counted as the platform's, and is measured apart. Returns the report and the
/// child's own usage, which it measures when its load is done.
pub fn run_load_in_child(spec: &LoadSpec) -> anyhow::Result<(LoadReport, Usage)> {
    use anyhow::Context as _;
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new(exe)
        .env(LOAD_CHILD_ENV, serde_json::to_string(spec)?)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the load generator")?;
    anyhow::ensure!(
        output.status.success(),
        "the load generator failed: {}",
        output.status
    );
    let report: ChildReport =
        serde_json::from_slice(&output.stdout).context("the load generator's report")?;
    Ok((
        LoadReport {
            latencies: report
                .latencies_us
                .into_iter()
                .map(Duration::from_micros)
                .collect(),
            failures: report.failures,
            reasons: report.reasons,
            elapsed: Duration::from_micros(report.elapsed_us),
        },
        Usage {
            cpu: Duration::from_micros(report.cpu_us),
            switches: report.switches,
        },
    ))
}
