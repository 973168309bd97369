//! `kaip-seed`: fills a running platform (`make run`) with the seeded programme, so an
//! officer can run its selection from the console.
//!
//! ```text
//! kaip-seed programme                      # programme, call, 15 consortia applied, 6 reviewers
//! kaip-seed scores --call <id> --stage 0   # the seeded reviewers score their assignments
//! ```
//! Talks to the gateway (`KAIP_SEED_GATEWAY`, default http://127.0.0.1:8080) with
//! development tokens (the dev key, or `KAIP_AUTH__KEY`), exactly as a person would.

use anyhow::{anyhow, bail, Context};
use kaip_auth::{dev, DevTokenMinter};
use kaip_contracts::{ConsortiumId, Role};
use secrecy::SecretString;
use serde_json::{json, Value};

const REVIEWERS: [&str; 6] = ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5", "rev-6"];

struct Gateway {
    url: String,
    http: reqwest::Client,
    minter: DevTokenMinter,
}

impl Gateway {
    fn token(&self, subject: &str, role: Role, consortium: Option<ConsortiumId>) -> String {
        self.minter.mint(subject, role, consortium, 7 * 24 * 3600)
    }

    async fn gql(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body: Value = self
            .http
            .post(format!("{}/graphql", self.url))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .with_context(|| format!("is the platform up (make run)? no answer from {}", self.url))?
            .json()
            .await?;
        if let Some(errors) = body.get("errors") {
            bail!("{errors}");
        }
        Ok(body["data"].clone())
    }
}

/// Quality of "Model n": 90, 87, ... so the ranking is known in advance.
fn quality(n: i64) -> i64 {
    93 - 3 * n
}

fn brn(seed: u32) -> String {
    kaip_testkit::fixtures::brn(seed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut settings = dev::settings();
    let key = std::env::var("KAIP_AUTH__KEY").unwrap_or_else(|_| dev::SECRET.to_owned());
    settings.key = SecretString::from(key.clone());
    let gw = Gateway {
        url: std::env::var("KAIP_SEED_GATEWAY").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        http: reqwest::Client::new(),
        minter: DevTokenMinter::new(&settings, &key)?,
    };
    match args.first().map(String::as_str) {
        Some("programme") => programme(&gw).await,
        Some("scores") => {
            let get = |flag: &str| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
            };
            let call = get("--call").ok_or_else(|| anyhow!("--call <call id> is required"))?;
            let stage: i32 = get("--stage")
                .unwrap_or_else(|| "0".into())
                .parse()
                .context("--stage must be a number")?;
            scores(&gw, &call, stage).await
        }
        _ => bail!("usage: kaip-seed programme | kaip-seed scores --call <id> --stage <n>"),
    }
}

async fn programme(gw: &Gateway) -> anyhow::Result<()> {
    let officer = gw.token("dev-officer", Role::Officer, None);
    let year = chrono::Utc::now().format("%Y").to_string().parse::<i32>()?;
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let p = gw
        .gql(
            &officer,
            "mutation($n: String!, $y: Int!) { createProgramme(name: $n, fiscalYear: $y) { id } }",
            json!({ "n": format!("Sovereign AI Foundation Model ({suffix})"), "y": year }),
        )
        .await?;
    let programme = p["createProgramme"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no programme id"))?
        .to_owned();
    let now = chrono::Utc::now();
    let c = gw
        .gql(
            &officer,
            "mutation($i: OpenCallInput!) { openCall(input: $i) { id closesAtKst } }",
            json!({ "i": { "programmeId": programme, "title": "Sovereign AI Foundation Model: call for proposals", "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(), "closesAt": (now + chrono::Duration::minutes(3)).to_rfc3339(), "requiredDocuments": ["proposal"] } }),
        )
        .await?;
    let call = c["openCall"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no call id"))?
        .to_owned();
    println!(
        "programme {programme}\ncall      {call} (closes {})",
        c["openCall"]["closesAtKst"].as_str().unwrap_or("?")
    );

    for n in 1..=15i64 {
        let consortium = ConsortiumId::new();
        let token = gw.token(&format!("lead-{n}"), Role::Consortium, Some(consortium));
        // #7 is SME-led and #10 university-led; the rest are led by large enterprises.
        let lead = match n {
            7 => "SME",
            10 => "UNIVERSITY",
            _ => "LARGE_ENTERPRISE",
        };
        let seed = 100 + n as u32 * 10;
        let members = json!([
            { "name": format!("Lead organisation {n}"), "orgType": lead, "businessRegistrationNumber": brn(seed), "role": "LEAD" },
            { "name": format!("University {n}"), "orgType": "UNIVERSITY", "businessRegistrationNumber": brn(seed + 1), "role": "PARTNER" },
        ]);
        gw.gql(&token, "mutation($id: UUID!, $i: RegisterConsortiumInput!) { registerConsortium(id: $id, input: $i) { id } }", json!({ "id": consortium, "i": { "name": format!("Consortium {n}"), "members": members } }))
            .await?;
        let d = gw
            .gql(
                &token,
                "mutation($i: ProposalInput!) { createProposal(input: $i) { id } }",
                json!({ "i": { "callId": call, "title": format!("Model {n}"), "summary": "A foundation model trained from scratch", "resources": { "gpus": [{ "model": "H100", "count": 500 + 50 * n }], "dataBudgetKrw": "10000000000", "talentFundingKrw": "1500000000" } } }),
            )
            .await?;
        let id = d["createProposal"]["id"].clone();
        gw.gql(&token, "mutation($id: UUID!) { uploadDocument(proposalId: $id, kind: \"proposal\", filename: \"proposal.txt\", contentBase64: \"cHJvcG9zYWw=\") { id } }", json!({ "id": id }))
            .await?;
        gw.gql(&token, "mutation($id: UUID!, $k: String!) { submitProposal(proposalId: $id, idempotencyKey: $k) { contentHash } }", json!({ "id": id, "k": format!("seed-{n}") }))
            .await?;
    }
    println!("15 consortia registered and submitted (Model 1 best ... Model 15; #7 SME-led, #10 university-led)");

    for (i, r) in REVIEWERS.iter().enumerate() {
        // rev-6 works at consortium 4's university partner: a conflict of interest.
        let (org, number) = if *r == "rev-6" {
            ("University 4".to_owned(), Some(brn(141)))
        } else {
            (format!("Review institute {}", i + 1), None)
        };
        gw.gql(&officer, "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": format!("Reviewer {}", i + 1), "organisation": org, "businessRegistrationNumber": number, "expertise": ["LLM"] } }))
            .await?;
    }
    println!("6 reviewers registered (rev-6 has a conflict with consortium 4)\n");
    println!("Next, in the console as the officer: configure the evaluation for call {call} (examples 7-8),");
    println!("assign reviewers to stage 0 (10), then let the reviewers score:");
    println!("    make seed-scores CALL={call} STAGE=0");
    println!("close stage 0 (13), assign and score stage 1 the same way, close it, propose (14) and publish (15).");
    println!(
        "\nA reviewer's token, to see their assignments in the console:\n    {}",
        gw.token("rev-1", Role::Reviewer, None)
    );
    Ok(())
}

async fn scores(gw: &Gateway, call: &str, stage: i32) -> anyhow::Result<()> {
    let mut total = 0;
    for r in REVIEWERS {
        let token = gw.token(r, Role::Reviewer, None);
        let data = gw
            .gql(&token, "query($c: UUID!, $s: Int!) { assignments(callId: $c, stage: $s, first: 100) { items { id title scored } } }", json!({ "c": call, "s": stage }))
            .await?;
        for a in data["assignments"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let n: i64 = a["title"]
                .as_str()
                .and_then(|t| t.strip_prefix("Model "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(15);
            let q = quality(n);
            let (tech, strategy) = (q * 4 / 10, q * 3 / 10);
            let sheet = json!([
                { "criterion": "technology", "points": tech, "comment": "seeded review" },
                { "criterion": "strategy", "points": strategy },
                { "criterion": "ecosystem", "points": q - tech - strategy },
            ]);
            gw.gql(&token, "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }", json!({ "a": a["id"], "s": sheet }))
                .await?;
            total += 1;
        }
    }
    println!("{total} assignments of stage {stage} scored; close the stage in the console next");
    Ok(())
}
