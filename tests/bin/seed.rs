//! `kaip-seed`: runs the seeded programme on a running platform (`make run`), through the
//! gateway, as the people involved would. The steps live in `kaip_e2e::seed`, which the e2e
//! test `seed` runs too.
//!
//! ```text
//! kaip-seed [run]                          # the whole chain: call, review, selection, GPU
//!                                          # offers, joint data purchase, talent round
//! kaip-seed programme                      # only the programme, call, 15 applied, 6 reviewers
//! kaip-seed scores --call <id> --stage 0   # the seeded reviewers score their assignments
//! kaip-seed ranking --call <id> --stage 0  # the service's ranking of a closed stage
//! kaip-seed gpu --call <id>                # after a selection published by hand: offers
//! kaip-seed data [--call <id>]             # ... a joint purchase across the selected teams
//!                                          #     (without a call: every team with a budget)
//! kaip-seed talent [--call <id>]           # ... a round that hires two for the first team
//!                                          #     (without a call: the first team talent knows)
//! kaip-seed gate --call <id>               # ... plans, evidence, verdicts and gate 1 through
//!                                          #     its publication (no reallocation plan: the
//!                                          #     offers were not made by this run)
//! kaip-seed replacement --gate <key>       # ... once that gate is published: a replacement
//!                                          #     call for one freed place, two applicants,
//!                                          #     review, the committee's vote, the award
//! ```
//! Talks to the gateway (`KAIP_SEED_GATEWAY`, default http://127.0.0.1:8080) with
//! development tokens (the dev key, or `KAIP_AUTH__KEY`). `KAIP_SEED_CALL_SECONDS` (default
//! 60) is how long the call stays open; `KAIP_SEED_TIMEOUT_SECONDS` (default 60) bounds each
//! wait for an event to cross the broker.

use anyhow::{anyhow, bail, Context};
use kaip_e2e::seed::{self, Gateway, Options, Selection};
use std::time::Duration;

const USAGE: &str = "usage: kaip-seed [run] | programme | scores --call <id> --stage <n> | ranking --call <id> --stage <n> | gpu --call <id> | data [--call <id>] | talent [--call <id>] | gate --call <id> | replacement --gate <key>";

fn seconds(var: &str, default: u64) -> anyhow::Result<Duration> {
    match std::env::var(var) {
        Ok(v) => Ok(Duration::from_secs(v.parse().with_context(|| {
            format!("{var} must be a whole number of seconds")
        })?)),
        Err(_) => Ok(Duration::from_secs(default)),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gw = Gateway::from_env()?;
    let opts = Options {
        call_window: seconds("KAIP_SEED_CALL_SECONDS", 60)?,
        timeout: seconds("KAIP_SEED_TIMEOUT_SECONDS", 60)?,
    };
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let call = || get("--call").ok_or_else(|| anyhow!("--call <call id> is required\n{USAGE}"));
    match args.first().map(String::as_str) {
        None | Some("run") => {
            seed::run(&gw, &opts, async |_: &str| Ok(())).await?;
        }
        Some("programme") => {
            let p = seed::programme(&gw, &opts).await?;
            let call = &p.call;
            println!("\nNext, in the console as the officer: configure the evaluation for call {call} (examples 7-8),");
            println!("assign reviewers to stage 0 (10) once it has closed, then let the reviewers score:");
            println!("    make seed-scores CALL={call} STAGE=0");
            println!("close stage 0 (13) and see the service's ranking:");
            println!("    make seed-ranking CALL={call} STAGE=0");
            println!(
                "assign and score stage 1 the same way, close it, propose (14) and publish (15),"
            );
            println!("then: make seed-gpu CALL={call}; make seed-data CALL={call}; make seed-talent CALL={call}");
            println!(
                "\nA reviewer's token, to see their assignments in the console:\n    {}",
                gw.token("rev-1", kaip_contracts::Role::Reviewer, None)
            );
        }
        Some(step @ ("scores" | "ranking")) => {
            let call = call()?;
            let stage: i32 = get("--stage")
                .unwrap_or_else(|| "0".into())
                .parse()
                .context("--stage must be a number")?;
            if step == "ranking" {
                seed::ranking(&gw, &call, stage).await?;
            } else {
                seed::scores(&gw, &call, stage).await?;
            }
        }
        Some("gpu") => {
            let sel = Selection::of_call(&gw, &call()?).await?;
            seed::gpu(&gw, &opts, &sel).await?;
        }
        Some("data") => {
            let sel = match get("--call") {
                Some(call) => Selection::of_call(&gw, &call).await?,
                None => seed::teams_with_a_budget(&gw).await?,
            };
            seed::data(&gw, &opts, &sel).await?;
        }
        Some("talent") => {
            let sel = match get("--call") {
                Some(call) => Selection::of_call(&gw, &call).await?,
                None => seed::first_talent_team(&gw).await?,
            };
            seed::talent(&gw, &opts, &sel).await?;
        }
        Some("gate") => {
            let sel = Selection::of_call(&gw, &call()?).await?;
            seed::gate(&gw, &opts, &sel, &[]).await?;
        }
        Some("replacement") => {
            let gate =
                get("--gate").ok_or_else(|| anyhow!("--gate <gate key> is required\n{USAGE}"))?;
            seed::replacement(&gw, &opts, &gate, &async |_: &str| Ok(())).await?;
        }
        Some(other) => bail!("unknown step `{other}`\n{USAGE}"),
    }
    Ok(())
}
