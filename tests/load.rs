//! Load on the gateway: a call with many proposals, and many officers listing them at once.
//! Shared by the e2e test (which asserts that nothing fails) and `make bench` (which reports
//! the latencies).

use crate::{apply, eventually, open_call, Platform};
use kaip_contracts::{ConsortiumId, Role};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The query the load runs: a call's proposals with their evaluation cases.
pub const LIST_WITH_CASES: &str =
    "query($call: UUID!) { proposals(callId: $call, first: 100) { items { id evaluationCase { status } } } }";

/// Opens a call, has `n` consortia apply to it, and waits until scoring opened a case for
/// each; returns the call's id.
pub async fn seed_call(p: &Platform, n: usize) -> String {
    let call_id = open_call(p, 24).await;
    let applications = (0..n).map(|i| {
        let call_id = call_id.clone();
        async move {
            let body = apply(p, ConsortiumId::new(), &call_id, &format!("Model {i}")).await;
            assert!(body["errors"].is_null(), "application {i} failed: {body}");
        }
    });
    // A few at a time: the point is the data, not load on the write path.
    let mut pending = applications.collect::<Vec<_>>();
    while !pending.is_empty() {
        let batch: Vec<_> = pending.drain(..pending.len().min(8)).collect();
        futures::future::join_all(batch).await;
    }
    let officer = p.ctx.bearer(Role::Officer, None);
    let cases = eventually(Duration::from_secs(120), || async {
        let body = p
            .graphql(
                Some(&officer),
                "query($call: UUID!) { evaluationCases(callId: $call, first: 100) { items { id } } }",
                json!({ "call": call_id }),
            )
            .await;
        let found = body["data"]["evaluationCases"]["items"]
            .as_array()
            .map_or(0, Vec::len);
        (found == n).then_some(found)
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
    if let Some(item) = items.iter().find(|i| i["evaluationCase"]["status"].is_null()) {
        return Err(format!("a proposal without its case: {item}"));
    }
    Ok(())
}
