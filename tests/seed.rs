//! The seeded programme, run end to end through the gateway exactly as people would: the
//! officer, fifteen consortia, six reviewers, a recruiting agency. Shared by `kaip-seed`
//! (`make seed`, against a running `make run` platform) and the e2e test `seed`, which runs
//! the same steps against a platform it spawned in-process.
//!
//! The chain ([`run`]): a programme and a call; fifteen consortia apply; the evaluation is
//! configured (the service's default settings, plus a place reserved for an
//! industry-specialised team); once the call has closed the six reviewers score both stages
//! and the officer closes them; the portfolio is proposed and published; the GPU ledger
//! learns the selected teams and the officer offers each what it asked for (now, and as much
//! again at gate 1), which each team accepts; the data budget opens their budgets and they
//! buy a corpus jointly, split to the won; talent learns the teams and the first one hires
//! two overseas researchers in a round; then milestones: a plan per team, evidence and
//! verdicts, gate 1 (the first template, inputs, one team ruled ineligible, the committee's
//! votes) and its publication with a reallocation plan, and the ledger, data budget and
//! talent reacting ([`gate`]). Every step prints what happened, and every wait for
//! an event to cross the broker polls with a deadline and fails naming what it waited for.
//!
//! The field is varied (large enterprises, mid-size firms, startups, an SME, universities
//! and a research institute lead; two to four members each; two industry-specialised
//! proposals), and the six reviewers disagree: each has a leniency and a view per
//! criterion. Nothing printed is computed here: rankings, the portfolio, the split and the
//! hires are read from the services.

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Datelike, Utc};
use kaip_auth::{dev, DevTokenMinter};
use kaip_contracts::{ConsortiumId, Role};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

pub const REVIEWERS: [&str; 6] = ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5", "rev-6"];

/// The gate whose passing releases each team's second GPU tranche.
pub const GATE: &str = "gate-1";

/// What a joint purchase costs: an odd amount, so the split shows its rule (the one won
/// left over goes to one team).
pub const JOINT_PURCHASE_KRW: i64 = 9_000_000_001;

/// A GraphQL error as the gateway answered it.
#[derive(Debug, Clone)]
pub struct GqlError {
    /// `extensions.code` of the first error.
    pub code: Option<String>,
    pub errors: Value,
}

impl std::fmt::Display for GqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.errors)
    }
}

/// The gateway, and the development key to mint each actor's token with.
pub struct Gateway {
    url: String,
    http: reqwest::Client,
    minter: DevTokenMinter,
}

impl Gateway {
    /// A gateway at `url` (`http://host:port`) whose services accept tokens signed with
    /// `key` in development mode.
    pub fn new(url: &str, key: &str) -> anyhow::Result<Self> {
        let mut settings = dev::settings();
        settings.key = SecretString::from(key.to_owned());
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            minter: DevTokenMinter::new(&settings, key)?,
        })
    }

    /// `KAIP_SEED_GATEWAY` (default http://127.0.0.1:8080) and `KAIP_AUTH__KEY` (default the
    /// development key): what `make run` uses.
    pub fn from_env() -> anyhow::Result<Self> {
        let key = std::env::var("KAIP_AUTH__KEY").unwrap_or_else(|_| dev::SECRET.to_owned());
        let url =
            std::env::var("KAIP_SEED_GATEWAY").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
        Self::new(&url, &key)
    }

    pub fn token(&self, subject: &str, role: Role, consortium: Option<ConsortiumId>) -> String {
        self.minter.mint(subject, role, consortium, 7 * 24 * 3600)
    }

    fn officer(&self) -> String {
        self.token("dev-officer", Role::Officer, None)
    }

    /// The operation's `data`, or the gateway's errors (with their code) as `Ok(Err(..))`;
    /// `Err` when the gateway did not answer with GraphQL.
    pub async fn try_gql(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Result<Value, GqlError>> {
        let res = self
            .http
            .post(format!("{}/graphql", self.url))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .with_context(|| {
                format!("is the platform up (make run)? no answer from {}", self.url)
            })?;
        let status = res.status();
        let body: Value = res
            .json()
            .await
            .with_context(|| format!("the gateway answered {status} without GraphQL"))?;
        match body.get("errors") {
            Some(errors) if !errors.is_null() => Ok(Err(GqlError {
                code: errors[0]["extensions"]["code"].as_str().map(str::to_owned),
                errors: errors.clone(),
            })),
            _ => Ok(Ok(body["data"].clone())),
        }
    }

    /// The operation's `data`; its errors as an error naming the operation.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        self.try_gql(token, query, variables).await?.map_err(|e| {
            let op = query.split(['(', '{']).next().unwrap_or(query).trim();
            anyhow!("{op}: {e}")
        })
    }
}

/// Polls `check` every 250 ms until it answers `Some`, for at most `timeout`; fails naming
/// `what` it waited for. An error from `check` ends the wait at once.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("gave up after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How the seed runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the call stays open for submissions (evaluation starts after it closes).
    pub call_window: Duration,
    /// The longest any one wait for an event to cross the broker may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            call_window: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        }
    }
}

/// One applicant of the seeded field.
pub struct Applicant {
    pub name: &'static str,
    /// (organisation, org type, role) for each member; the first is the lead.
    pub members: &'static [(&'static str, &'static str)],
    /// `None`: general track; `Some(industry)`: industry-specialised.
    pub industry: Option<&'static str>,
    pub releases: &'static [&'static str],
    pub builds_on: &'static [&'static str],
    /// Underlying merit per criterion, as a share of its maximum (percent).
    pub merit: [i64; 3],
}

/// Fifteen applicants, fictitious, in the order they submit (not in merit order).
pub const FIELD: [Applicant; 15] = [
    Applicant {
        name: "Hanbit AI Alliance",
        members: &[
            ("Hanbit Electronics", "LARGE_ENTERPRISE"),
            ("Korea Advanced University", "UNIVERSITY"),
            ("Seoul Speech Labs", "STARTUP"),
        ],
        industry: None,
        releases: &["WEIGHTS"],
        builds_on: &[],
        merit: [88, 80, 70],
    },
    Applicant {
        name: "Daon Bio Foundation Model",
        members: &[
            ("Daon Life Sciences", "LARGE_ENTERPRISE"),
            ("Busan National University", "UNIVERSITY"),
        ],
        industry: Some("bio"),
        releases: &["WEIGHTS", "CODE"],
        builds_on: &[],
        merit: [78, 74, 82],
    },
    Applicant {
        name: "Nuri Open Model",
        members: &[
            ("Nuri Labs", "STARTUP"),
            ("Daejeon Institute of Science", "UNIVERSITY"),
            ("Open Data Korea", "SME"),
        ],
        industry: None,
        releases: &["WEIGHTS", "DATA", "CODE"],
        builds_on: &[],
        merit: [76, 70, 92],
    },
    Applicant {
        name: "Sejong Telecom LLM",
        members: &[
            ("Sejong Telecom", "LARGE_ENTERPRISE"),
            ("Gwangju University", "UNIVERSITY"),
            ("Korea Electronics Research Institute", "RESEARCH_INSTITUTE"),
            ("Voice Cloud", "STARTUP"),
        ],
        industry: None,
        releases: &[],
        builds_on: &[],
        merit: [84, 86, 58],
    },
    Applicant {
        name: "Mirae Manufacturing Copilot",
        members: &[
            ("Mirae Precision", "MID_SIZE"),
            ("Changwon University", "UNIVERSITY"),
        ],
        industry: Some("manufacturing"),
        releases: &["CODE"],
        builds_on: &["an open 8B base model's weights"],
        merit: [66, 78, 64],
    },
    Applicant {
        name: "Hangang University Consortium",
        members: &[
            ("Hangang University", "UNIVERSITY"),
            ("Incheon University", "UNIVERSITY"),
            ("Tokenworks", "STARTUP"),
        ],
        industry: None,
        releases: &["WEIGHTS", "DATA", "CODE"],
        builds_on: &[],
        merit: [80, 66, 84],
    },
    Applicant {
        name: "Cheongsan Search",
        members: &[
            ("Cheongsan Internet", "LARGE_ENTERPRISE"),
            ("Yonsei-style Private University", "UNIVERSITY"),
        ],
        industry: None,
        releases: &["WEIGHTS"],
        builds_on: &[],
        merit: [90, 76, 62],
    },
    Applicant {
        name: "Gaon Reasoning",
        members: &[
            ("Gaon AI", "STARTUP"),
            ("Pohang Science University", "UNIVERSITY"),
        ],
        industry: None,
        releases: &["WEIGHTS", "CODE"],
        builds_on: &[],
        merit: [84, 64, 72],
    },
    Applicant {
        name: "Dasan Mid-size Alliance",
        members: &[
            ("Dasan Systems", "MID_SIZE"),
            ("Ulsan University", "UNIVERSITY"),
            ("Edge Devices Korea", "SME"),
        ],
        industry: None,
        releases: &["CODE"],
        builds_on: &["a licensed 70B model's weights"],
        merit: [62, 74, 66],
    },
    Applicant {
        name: "KIST-style Research Model",
        members: &[
            ("National AI Research Institute", "RESEARCH_INSTITUTE"),
            ("Chungnam University", "UNIVERSITY"),
        ],
        industry: None,
        releases: &["WEIGHTS", "DATA", "CODE"],
        builds_on: &[],
        merit: [74, 62, 86],
    },
    Applicant {
        name: "Bom Legal LLM",
        members: &[
            ("Bom Legaltech", "SME"),
            ("Kyungpook University", "UNIVERSITY"),
        ],
        industry: None,
        releases: &["WEIGHTS"],
        builds_on: &["an open 13B base model's weights"],
        merit: [60, 68, 70],
    },
    Applicant {
        name: "Sori Multimodal",
        members: &[
            ("Sori Vision", "STARTUP"),
            ("Jeonbuk University", "UNIVERSITY"),
            ("Media Archive Korea", "MID_SIZE"),
        ],
        industry: None,
        releases: &["WEIGHTS", "CODE"],
        builds_on: &[],
        merit: [72, 70, 68],
    },
    Applicant {
        name: "Taeyang Finance Model",
        members: &[
            ("Taeyang Financial Group", "LARGE_ENTERPRISE"),
            ("Sogang-style University", "UNIVERSITY"),
        ],
        industry: None,
        releases: &[],
        builds_on: &["a commercial model's weights under licence"],
        merit: [70, 82, 52],
    },
    Applicant {
        name: "Haneul Edge Model",
        members: &[
            ("Haneul Semiconductor", "MID_SIZE"),
            ("Chungbuk University", "UNIVERSITY"),
            ("Tiny Models", "STARTUP"),
        ],
        industry: None,
        releases: &["WEIGHTS"],
        builds_on: &[],
        merit: [68, 64, 62],
    },
    Applicant {
        name: "Areum Education LLM",
        members: &[("Areum Edu", "STARTUP"), ("Jeju University", "UNIVERSITY")],
        industry: None,
        releases: &["WEIGHTS", "DATA"],
        builds_on: &[],
        merit: [58, 60, 74],
    },
];

/// Each reviewer's leniency (points added per criterion's share) and view per criterion
/// (technology, strategy, ecosystem), in percent of the maximum: they disagree.
const VIEWS: [(&str, [i64; 3]); 6] = [
    ("rev-1", [-8, -4, 0]),
    ("rev-2", [4, 6, -10]),
    ("rev-3", [0, -10, 8]),
    ("rev-4", [6, 2, 4]),
    ("rev-5", [-4, 8, -6]),
    ("rev-6", [2, -6, 6]),
];

const MAX: [i64; 3] = [40, 30, 30];

/// A small, deterministic disagreement per reviewer, proposal, criterion and stage: -4..=4
/// percent.
fn noise(reviewer: usize, proposal: usize, criterion: usize, stage: i32) -> i64 {
    let x = (reviewer * 31 + proposal * 17 + criterion * 7 + stage as usize * 13) % 9;
    x as i64 - 4
}

/// Reviewer `r`'s sheet for applicant `n` (0-based) at `stage`: whole points per criterion.
fn sheet(r: usize, n: usize, stage: i32) -> [i64; 3] {
    let mut out = [0; 3];
    for c in 0..3 {
        let pct = FIELD[n].merit[c] + VIEWS[r].1[c] + noise(r, n, c, stage);
        out[c] = (pct.clamp(0, 100) * MAX[c] + 50) / 100;
    }
    out
}

fn brn(seed: u32) -> String {
    kaip_testkit::fixtures::brn(seed)
}

/// The Korean fiscal year (a calendar year in KST) at `at`.
pub fn kst_year(at: DateTime<Utc>) -> i32 {
    kaip_talent::domain::funds::kst_date(at).year()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// An `Int64`/`Krw` scalar (a string of digits) as a number.
fn int(v: &Value) -> anyhow::Result<i64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
        .ok_or_else(|| anyhow!("not an integer: {v}"))
}

fn points(centi: i64) -> String {
    format!("{}.{:02}", centi / 100, (centi % 100).abs())
}

/// One consortium of the field that applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Its place in [`FIELD`] (0-based).
    pub index: usize,
    pub name: String,
    pub consortium: ConsortiumId,
    pub proposal: String,
}

/// The programme, its call and who applied to it.
#[derive(Debug, Clone)]
pub struct Programme {
    pub programme: String,
    pub call: String,
    pub closes_at: DateTime<Utc>,
    pub applied: Vec<Applied>,
}

/// Step 1: a programme and a call; the fifteen consortia register, draft, upload their
/// proposal and submit; the six reviewers are registered (rev-6 works at consortium 4's
/// university partner: a conflict of interest).
pub async fn programme(gw: &Gateway, opts: &Options) -> anyhow::Result<Programme> {
    let officer = gw.officer();
    let now = Utc::now();
    let year = kst_year(now);
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let p = gw
        .gql(
            &officer,
            "mutation($n: String!, $y: Int!) { createProgramme(name: $n, fiscalYear: $y) { id } }",
            json!({ "n": format!("Sovereign AI Foundation Model ({suffix})"), "y": year }),
        )
        .await?;
    let programme = text(&p["createProgramme"]["id"]).to_owned();
    let window = chrono::Duration::from_std(opts.call_window).context("call window")?;
    let c = gw
        .gql(
            &officer,
            "mutation($i: OpenCallInput!) { openCall(input: $i) { id closesAt closesAtKst } }",
            json!({ "i": { "programmeId": programme, "title": "Sovereign AI Foundation Model: call for proposals", "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(), "closesAt": (now + window).to_rfc3339(), "requiredDocuments": ["proposal"] } }),
        )
        .await?;
    let call = text(&c["openCall"]["id"]).to_owned();
    let closes_at: DateTime<Utc> =
        serde_json::from_value(c["openCall"]["closesAt"].clone()).context("the call's closesAt")?;
    println!("== 1. Programme and call");
    println!(
        "programme {programme} (fiscal year {year})\ncall      {call} (closes {})",
        text(&c["openCall"]["closesAtKst"])
    );

    let mut applied = Vec::new();
    let mut conflicted_org = (String::new(), String::new());
    for (i, app) in FIELD.iter().enumerate() {
        let n = i as u32 + 1;
        let consortium = ConsortiumId::new();
        let token = gw.token(&format!("lead-{n}"), Role::Consortium, Some(consortium));
        let members: Vec<Value> = app
            .members
            .iter()
            .enumerate()
            .map(|(m, (name, kind))| {
                json!({ "name": name, "orgType": kind, "businessRegistrationNumber": brn(1000 + n * 10 + m as u32), "role": if m == 0 { "LEAD" } else { "PARTNER" } })
            })
            .collect();
        if n == 4 {
            // rev-6 works at this consortium's university partner.
            conflicted_org = (app.members[1].0.to_owned(), brn(1000 + n * 10 + 1));
        }
        gw.gql(&token, "mutation($id: UUID!, $i: RegisterConsortiumInput!) { registerConsortium(id: $id, input: $i) { id } }", json!({ "id": consortium, "i": { "name": app.name, "members": members } }))
            .await?;
        let portfolio = json!({
            "track": match app.industry {
                Some(industry) => json!({ "kind": "INDUSTRY_SPECIALISED", "industry": industry }),
                None => json!({ "kind": "GENERAL" }),
            },
            "openness": { "releases": app.releases, "licence": (!app.releases.is_empty()).then_some("Apache-2.0") },
            "independence": { "fromScratch": app.builds_on.is_empty(), "buildsOn": app.builds_on },
        });
        let gpus = 400 + 40 * (i as i64 % 7);
        let d = gw
            .gql(
                &token,
                "mutation($i: ProposalInput!) { createProposal(input: $i) { id } }",
                json!({ "i": { "callId": call, "title": app.name, "summary": "A Korean foundation model and the plan to build it", "resources": { "gpus": [{ "model": "H100", "count": gpus }], "dataBudgetKrw": format!("{}", 6_000_000_000i64 + 500_000_000 * (i as i64 % 9)), "talentFundingKrw": format!("{}", 800_000_000 + 100_000_000 * (i as i64 % 8)) }, "portfolio": portfolio } }),
            )
            .await?;
        let id = text(&d["createProposal"]["id"]).to_owned();
        gw.gql(&token, "mutation($id: UUID!) { uploadDocument(proposalId: $id, kind: \"proposal\", filename: \"proposal.txt\", contentBase64: \"cHJvcG9zYWw=\") { id } }", json!({ "id": id }))
            .await?;
        gw.gql(&token, "mutation($id: UUID!, $k: String!) { submitProposal(proposalId: $id, idempotencyKey: $k) { contentHash } }", json!({ "id": id, "k": format!("seed-{n}") }))
            .await?;
        let lead = app.members[0].1.to_lowercase();
        let track = app.industry.map_or("general".to_owned(), |i| {
            format!("industry-specialised ({i})")
        });
        println!(
            "  {n:>2}. {:<32} lead {lead:<18} {} members, {track}, {gpus} H100 asked",
            app.name,
            app.members.len()
        );
        applied.push(Applied {
            index: i,
            name: app.name.to_owned(),
            consortium,
            proposal: id,
        });
    }
    println!("15 consortia registered and submitted");

    for (i, r) in REVIEWERS.iter().enumerate() {
        let (org, number) = if *r == "rev-6" {
            (conflicted_org.0.clone(), Some(conflicted_org.1.clone()))
        } else {
            (format!("Review institute {}", i + 1), None)
        };
        gw.gql(&officer, "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": format!("Reviewer {}", i + 1), "organisation": org, "businessRegistrationNumber": number, "expertise": ["LLM"] } }))
            .await?;
    }
    println!("6 reviewers registered (rev-6 has a conflict with consortium 4)");
    Ok(Programme {
        programme,
        call,
        closes_at,
        applied,
    })
}

/// One stage of the evaluation as it went.
#[derive(Debug, Clone)]
pub struct Stage {
    pub stage: i32,
    pub assigned: i64,
    /// Reviewers kept off a proposal (`{reviewerId, proposalId, reason}`).
    pub blocked: Vec<Value>,
    pub scored: usize,
    /// The service's results of the closed stage (`closeStage`), in rank order.
    pub results: Vec<Value>,
}

const DEFAULT_CONFIG: &str = "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }";

/// Step 2: the evaluation. Waits until scoring has opened a case for every proposal,
/// configures the call (the service's default settings, plus a place for an
/// industry-specialised team), waits for the deadline, then for each stage: assigns the
/// reviewers, has them score, closes it and prints the service's ranking.
pub async fn review(gw: &Gateway, opts: &Options, prog: &Programme) -> anyhow::Result<Vec<Stage>> {
    let officer = gw.officer();
    let call = prog.call.as_str();
    println!("\n== 2. Review");
    let want = prog.applied.len();
    wait_for(
        &format!("scoring to open {want} evaluation cases for call {call}"),
        opts.timeout,
        || async {
            let d = gw
                .gql(
                    &officer,
                    "query($c: UUID!) { evaluationCases(callId: $c, first: 100) { items { id } } }",
                    json!({ "c": call }),
                )
                .await?;
            Ok(
                (d["evaluationCases"]["items"].as_array().map_or(0, Vec::len) == want)
                    .then_some(()),
            )
        },
    )
    .await?;
    let mut config =
        gw.gql(&officer, DEFAULT_CONFIG, json!({})).await?["defaultEvaluationConfig"].clone();
    let constraints = config["constraints"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("the default settings have no constraints list"))?;
    constraints
        .push(json!({ "category": "track:industry_specialised", "atLeast": 1, "atMost": null }));
    let configure = "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams normalise stages { name keepTop } constraints { category atLeast atMost } } }";
    let configured = wait_for(
        &format!("scoring to accept the settings of call {call}"),
        opts.timeout,
        || async {
            match gw
                .try_gql(&officer, configure, json!({ "c": call, "i": config }))
                .await?
            {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.code.as_deref() == Some("CALL_NOT_FOUND") => Ok(None),
                Err(e) => bail!("configureEvaluation: {e}"),
            }
        },
    )
    .await?;
    let settings = &configured["configureEvaluation"];
    let constraints: Vec<String> = settings["constraints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut s = text(&c["category"]).to_owned();
            if let Some(n) = c["atLeast"].as_i64() {
                s += &format!(" at least {n}");
            }
            if let Some(n) = c["atMost"].as_i64() {
                s += &format!(" at most {n}");
            }
            s
        })
        .collect();
    println!(
        "settings: {} teams, {} stages ({}), {}normalised per reviewer; constraints: {}",
        settings["teams"],
        settings["stages"].as_array().map_or(0, Vec::len),
        settings["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| match s["keepTop"].as_i64() {
                Some(k) => format!("{} keeps {k}", text(&s["name"])),
                None => text(&s["name"]).to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        if settings["normalise"] == true {
            ""
        } else {
            "not "
        },
        constraints.join(", ")
    );

    let stages = settings["stages"].as_array().map_or(0, Vec::len) as i32;
    let mut out = Vec::new();
    for stage in 0..stages {
        let assign = "mutation($c: UUID!, $s: Int!) { assignReviewers(callId: $c, stage: $s) { assigned blocked { reviewerId proposalId reason } } }";
        let try_assign = || async {
            match gw
                .try_gql(&officer, assign, json!({ "c": call, "s": stage }))
                .await?
            {
                Ok(d) => Ok(Some(d["assignReviewers"].clone())),
                // Stage 0 waits for the call's deadline.
                Err(e) if e.code.as_deref() == Some("SUBMISSIONS_STILL_OPEN") => Ok(None),
                Err(e) => bail!("assignReviewers: {e}"),
            }
        };
        let report = match try_assign().await? {
            Some(report) => report,
            None => {
                let until_close = (prog.closes_at - Utc::now()).to_std().unwrap_or_default();
                println!(
                    "waiting {}s for the call to close (evaluation starts at its deadline)",
                    until_close.as_secs()
                );
                wait_for(
                    &format!("call {call} to close for submissions"),
                    until_close + opts.timeout,
                    try_assign,
                )
                .await?
            }
        };
        let blocked = report["blocked"].as_array().cloned().unwrap_or_default();
        println!(
            "stage {stage}: {} assignments, {} kept off by a conflict of interest",
            report["assigned"],
            blocked.len()
        );
        for b in &blocked {
            let title = prog
                .applied
                .iter()
                .find(|a| b["proposalId"] == a.proposal.as_str())
                .map_or("?", |a| a.name.as_str());
            println!(
                "  {} off {title}: {}",
                text(&b["reviewerId"]),
                text(&b["reason"])
            );
        }
        let scored = scores(gw, call, stage).await?;
        let closed = gw
            .gql(&officer, "mutation($c: UUID!, $s: Int!) { closeStage(callId: $c, stage: $s) { proposalId position totalCenti advanced eligible } }", json!({ "c": call, "s": stage }))
            .await?;
        let results = closed["closeStage"].as_array().cloned().unwrap_or_default();
        ranking(gw, call, stage).await?;
        out.push(Stage {
            stage,
            assigned: report["assigned"].as_i64().unwrap_or(0),
            blocked,
            scored,
            results,
        });
    }
    Ok(out)
}

/// The seeded reviewers score every assignment they have in `stage` of `call`; returns how
/// many sheets went in.
pub async fn scores(gw: &Gateway, call: &str, stage: i32) -> anyhow::Result<usize> {
    let mut total = 0;
    for (r, reviewer) in REVIEWERS.iter().enumerate() {
        let token = gw.token(reviewer, Role::Reviewer, None);
        let data = gw
            .gql(&token, "query($c: UUID!, $s: Int!) { assignments(callId: $c, stage: $s, first: 100) { items { id title scored } } }", json!({ "c": call, "s": stage }))
            .await?;
        for a in data["assignments"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let Some(n) = FIELD.iter().position(|f| a["title"] == f.name) else {
                continue;
            };
            let [tech, strategy, ecosystem] = sheet(r, n, stage);
            let sheet = json!([
                { "criterion": "technology", "points": tech, "comment": "seeded review" },
                { "criterion": "strategy", "points": strategy },
                { "criterion": "ecosystem", "points": ecosystem },
            ]);
            gw.gql(&token, "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }", json!({ "a": a["id"], "s": sheet }))
                .await?;
            total += 1;
        }
    }
    println!("{total} assignments of stage {stage} scored by the seeded reviewers");
    Ok(total)
}

/// Prints a closed stage's ranking as the service recorded it (normalised or not, as the
/// call is configured): nothing here is recomputed.
pub async fn ranking(gw: &Gateway, call: &str, stage: i32) -> anyhow::Result<()> {
    let officer = gw.officer();
    let data = gw
        .gql(&officer, "query($c: UUID!, $s: Int!) { evaluationConfig(callId: $c) { normalise } stageResults(callId: $c, stage: $s, first: 100) { items { position title totalCenti perCriterion { criterion centi } eligible shortfalls advanced tieBrokenBy } } }", json!({ "c": call, "s": stage }))
        .await?;
    let normalised = data["evaluationConfig"]["normalise"]
        .as_bool()
        .unwrap_or(false);
    println!(
        "stage {stage} of call {call}, as scoring ranked it ({}):",
        if normalised {
            "normalised per reviewer"
        } else {
            "raw points"
        }
    );
    for r in data["stageResults"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let per: Vec<String> = r["perCriterion"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {}",
                    text(&c["criterion"]),
                    points(c["centi"].as_i64().unwrap_or(0))
                )
            })
            .collect();
        let position = r["position"]
            .as_i64()
            .map_or("  -".to_owned(), |p| format!("{p:>3}"));
        println!(
            "{position}. {:<32} {:>6}  ({}){}{}",
            text(&r["title"]),
            points(r["totalCenti"].as_i64().unwrap_or(0)),
            per.join(", "),
            if r["advanced"] == true {
                "  advances"
            } else {
                ""
            },
            r["tieBrokenBy"]
                .as_str()
                .map(|t| format!("  [tie: {t}]"))
                .unwrap_or_default(),
        );
        for s in r["shortfalls"].as_array().into_iter().flatten() {
            println!("       ineligible: {}", text(s));
        }
    }
    Ok(())
}

/// A selected team.
#[derive(Debug, Clone)]
pub struct Team {
    pub consortium: ConsortiumId,
    pub name: String,
    pub proposal: String,
}

/// A published portfolio.
#[derive(Debug, Clone)]
pub struct Selection {
    pub call: String,
    /// In the decision's order.
    pub teams: Vec<Team>,
    /// The published decision (`selected`, `departure`, `explanation`, ...).
    pub decision: Value,
}

const DECISION_FIELDS: &str = "version kind selected totalCenti departure { promoted displaced reasons } overrideReason explanation publishedAt publishedBy";

impl Selection {
    /// The published selection of `call`, read back from scoring and intake (for the steps
    /// run on their own, after a selection was published by hand).
    pub async fn of_call(gw: &Gateway, call: &str) -> anyhow::Result<Self> {
        let officer = gw.officer();
        let d = gw
            .gql(&officer, &format!("query($c: UUID!) {{ selection(callId: $c) {{ {DECISION_FIELDS} }} proposals(callId: $c, first: 100) {{ items {{ id consortiumId title }} }} }}"), json!({ "c": call }))
            .await?;
        let decision = d["selection"].clone();
        if decision["publishedAt"].is_null() {
            bail!("call {call}'s selection is not published yet: publish it first (the console's `publishSelection`)");
        }
        let proposals = d["proposals"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let teams = decision["selected"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|id| {
                let p = proposals
                    .iter()
                    .find(|p| p["id"] == *id)
                    .ok_or_else(|| anyhow!("selected proposal {id} is not in call {call}"))?;
                Ok(Team {
                    consortium: serde_json::from_value(p["consortiumId"].clone())?,
                    name: text(&p["title"]).to_owned(),
                    proposal: text(id).to_owned(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            call: call.to_owned(),
            teams,
            decision,
        })
    }
}

/// Without a call (as `make seed-data` ran before `make seed` went this far): every team
/// with a budget in this fiscal year.
pub async fn teams_with_a_budget(gw: &Gateway) -> anyhow::Result<Selection> {
    let year = kst_year(Utc::now());
    let d = gw
        .gql(
            &gw.officer(),
            "query($y: Int) { dataBudgets(fiscalYear: $y) { consortiumId consortiumName } }",
            json!({ "y": year }),
        )
        .await?;
    let teams = d["dataBudgets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            Ok(Team {
                consortium: serde_json::from_value(b["consortiumId"].clone())?,
                name: text(&b["consortiumName"]).to_owned(),
                proposal: String::new(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if teams.len() < 2 {
        bail!("{} team(s) have a data budget for {year}: publish a call's selection first (the console's `publishSelection`)", teams.len());
    }
    Ok(Selection {
        call: String::new(),
        teams,
        decision: Value::Null,
    })
}

/// Without a call (as `make seed-talent` ran before `make seed` went this far): the first
/// selected team talent knows.
pub async fn first_talent_team(gw: &Gateway) -> anyhow::Result<Selection> {
    let d = gw
        .gql(
            &gw.officer(),
            "{ talentTeams { consortiumId consortiumName } }",
            json!({}),
        )
        .await?;
    let t = d["talentTeams"]
        .as_array()
        .and_then(|t| t.first())
        .cloned()
        .ok_or_else(|| {
            anyhow!("no selected team yet: publish a selection first (examples 14-15)")
        })?;
    Ok(Selection {
        call: String::new(),
        teams: vec![Team {
            consortium: serde_json::from_value(t["consortiumId"].clone())?,
            name: text(&t["consortiumName"]).to_owned(),
            proposal: String::new(),
        }],
        decision: Value::Null,
    })
}

/// Step 3: the portfolio. Scoring proposes the exact optimum under the constraints, the
/// officer publishes it; prints who was selected, at which rank, and every departure from
/// rank order with its reason.
pub async fn select(gw: &Gateway, prog: &Programme, stages: &[Stage]) -> anyhow::Result<Selection> {
    let officer = gw.officer();
    let call = prog.call.as_str();
    println!("\n== 3. Selection");
    let proposed = gw
        .gql(
            &officer,
            &format!(
                "mutation($c: UUID!) {{ proposeSelection(callId: $c) {{ {DECISION_FIELDS} }} }}"
            ),
            json!({ "c": call }),
        )
        .await?["proposeSelection"]
        .clone();
    let published = gw
        .gql(
            &officer,
            &format!(
                "mutation($c: UUID!) {{ publishSelection(callId: $c) {{ {DECISION_FIELDS} }} }}"
            ),
            json!({ "c": call }),
        )
        .await?["publishSelection"]
        .clone();
    if published["selected"] != proposed["selected"] {
        bail!(
            "the published portfolio {} is not the proposed one {}",
            published["selected"],
            proposed["selected"]
        );
    }
    let last = stages
        .last()
        .map(|s| s.results.as_slice())
        .unwrap_or_default();
    let name = |id: &Value| {
        prog.applied
            .iter()
            .find(|a| *id == a.proposal.as_str())
            .map_or("?".to_owned(), |a| a.name.clone())
    };
    let promoted = &published["departure"]["promoted"];
    let mut teams = Vec::new();
    println!(
        "published {} (version {}), {} teams, {} points in all:",
        text(&published["publishedAt"]),
        published["version"],
        published["selected"].as_array().map_or(0, Vec::len),
        points(published["totalCenti"].as_i64().unwrap_or(0))
    );
    for id in published["selected"].as_array().into_iter().flatten() {
        let applied = prog
            .applied
            .iter()
            .find(|a| *id == a.proposal.as_str())
            .ok_or_else(|| anyhow!("selected proposal {id} did not apply to call {call}"))?;
        let result = last.iter().find(|r| r["proposalId"] == *id);
        let app = &FIELD[applied.index];
        println!(
            "  {:<32} rank {:>2} at the last stage, {:>6} points{}{}",
            applied.name,
            result
                .and_then(|r| r["position"].as_i64())
                .map_or("-".into(), |p| p.to_string()),
            points(result.and_then(|r| r["totalCenti"].as_i64()).unwrap_or(0)),
            app.industry
                .map(|i| format!(", industry-specialised ({i})"))
                .unwrap_or_default(),
            if promoted.as_array().is_some_and(|p| p.contains(id)) {
                ", promoted past rank order"
            } else {
                ""
            }
        );
        teams.push(Team {
            consortium: applied.consortium,
            name: applied.name.clone(),
            proposal: applied.proposal.clone(),
        });
    }
    for d in published["departure"]["displaced"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  displaced: {}", name(d));
    }
    for r in published["departure"]["reasons"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("  why: {}", text(r));
    }
    for e in published["explanation"].as_array().into_iter().flatten() {
        println!("  {}", text(e));
    }
    Ok(Selection {
        call: call.to_owned(),
        teams,
        decision: published,
    })
}

/// A period and the one after it, on the ledger's half-year calendar (KST): the next
/// half-year from `at`, then the following one.
pub fn next_halves(at: DateTime<Utc>) -> (String, String) {
    let d = kaip_talent::domain::funds::kst_date(at);
    let (y, h) = if d.month() <= 6 {
        (d.year(), 2)
    } else {
        (d.year() + 1, 1)
    };
    let second = if h == 1 {
        format!("{y}H2")
    } else {
        format!("{}H1", y + 1)
    };
    (format!("{y}H{h}"), second)
}

/// An accepted GPU offer.
#[derive(Debug, Clone)]
pub struct Offer {
    pub team: Team,
    pub offer: String,
    /// What the team asked for, in H100 (the seeded field asks in H100 only).
    pub requested_h100: i64,
    /// The offer as the ledger answered the acceptance (`status`, `h100Eq`, `tranches`).
    pub accepted: Value,
}

/// Opens (once) a model's pool and source for `period` and brings the pool's available
/// capacity up to `needed`.
async fn ensure_pool(gw: &Gateway, model: &str, period: &str, needed: i64) -> anyhow::Result<()> {
    let officer = gw.officer();
    let open = "mutation($i: OpenGpuAccountInput!) { openGpuAccount(input: $i) { id } }";
    let pools = gw
        .gql(&officer, "query($p: String, $m: String) { gpuPools(period: $p, model: $m) { poolAccount available } }", json!({ "p": period, "m": model }))
        .await?;
    let (pool, available) = match pools["gpuPools"].as_array().and_then(|p| p.first()) {
        Some(p) => (text(&p["poolAccount"]).to_owned(), int(&p["available"])?),
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            gw.gql(&officer, open, json!({ "i": { "id": id, "model": model, "period": period, "kind": "POOL", "name": format!("National pool {model} {period}"), "reason": "seeded programme" } }))
                .await?;
            (id, 0)
        }
    };
    if available >= needed {
        return Ok(());
    }
    let sources = gw
        .gql(&officer, "query($p: String, $m: String) { gpuAccounts(model: $m, period: $p, kind: SOURCE, first: 1) { items { id } } }", json!({ "p": period, "m": model }))
        .await?;
    let source = match sources["gpuAccounts"]["items"]
        .as_array()
        .and_then(|s| s.first())
    {
        Some(s) => text(&s["id"]).to_owned(),
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            gw.gql(&officer, open, json!({ "i": { "id": id, "model": model, "period": period, "kind": "SOURCE", "sourceType": "GOVERNMENT", "name": format!("National cluster {model} {period}"), "reason": "seeded programme" } }))
                .await?;
            id
        }
    };
    let amount = needed - available;
    let t = gw
        .gql(&officer, "mutation($t: [GpuTransferInput!]!) { createGpuTransfers(transfers: $t) { created results { status code message } } }", json!({ "t": [{ "id": uuid::Uuid::now_v7(), "debitAccount": source, "creditAccount": pool, "amount": amount.to_string(), "kind": "SINGLE", "code": "capacity", "reason": "seeded programme: capacity for the selected teams" }] }))
        .await?;
    if t["createGpuTransfers"]["created"] != 1 {
        bail!(
            "bringing {amount} {model} into the {period} pool was refused: {}",
            t["createGpuTransfers"]["results"]
        );
    }
    println!("pool {model} {period}: {amount} GPUs brought in from the national cluster");
    Ok(())
}

/// Step 4: GPUs. Waits until the ledger has learned every selected team of the call (from
/// `SelectionPublished`), funds the pools, offers each team what it asked for, now and as
/// much again when it passes gate 1, in H100 or in half as many B200, and has each team
/// accept the H100 option: the first tranche is granted, the second stays reserved for
/// the gate.
pub async fn gpu(gw: &Gateway, opts: &Options, sel: &Selection) -> anyhow::Result<Vec<Offer>> {
    let officer = gw.officer();
    println!("\n== 4. GPU offers");
    let call = sel.call.as_str();
    let want = sel.teams.len();
    let learned = wait_for(
        &format!("the GPU ledger to learn the {want} teams selected in call {call}"),
        opts.timeout,
        || async {
            let d = gw
                .gql(&officer, "{ gpuSelectedTeams { callId consortiumId requested { model count } requestedH100Eq } }", json!({}))
                .await?;
            let teams: Vec<Value> = d["gpuSelectedTeams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["callId"] == call)
                .cloned()
                .collect();
            Ok((teams.len() == want).then_some(teams))
        },
    )
    .await?;
    let (first, second) = next_halves(Utc::now());
    let mut asks = Vec::new();
    for team in &sel.teams {
        let row = learned
            .iter()
            .find(|t| t["consortiumId"] == team.consortium.to_string())
            .ok_or_else(|| anyhow!("the ledger does not know {}", team.name))?;
        let h100: i64 = row["requested"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["model"] == "H100")
            .map(|r| int(&r["count"]))
            .sum::<anyhow::Result<i64>>()?;
        if h100 <= 0 {
            bail!("{} asked for no H100: {row}", team.name);
        }
        asks.push(h100);
    }
    let total: i64 = asks.iter().sum();
    // Both options are reserved until the team chooses: H100 and B200 alike.
    for period in [&first, &second] {
        ensure_pool(gw, "H100", period, total).await?;
        ensure_pool(gw, "B200", period, asks.iter().map(|a| a / 2).sum()).await?;
    }
    let expires = (Utc::now() + chrono::Duration::days(14)).to_rfc3339();
    let mut out = Vec::new();
    for (team, &ask) in sel.teams.iter().zip(&asks) {
        let option = |model: &str, count: i64| {
            json!({ "model": model, "tranches": [
                { "period": first, "count": count.to_string() },
                { "period": second, "count": count.to_string(), "releaseGate": GATE },
            ] })
        };
        let mut options = vec![option("H100", ask)];
        if ask % 2 == 0 {
            options.push(option("B200", ask / 2));
        }
        let id = uuid::Uuid::now_v7();
        let made = gw
            .gql(&officer, "mutation($i: MakeGpuOfferInput!) { makeGpuOffer(input: $i) { id status h100Eq } }", json!({ "i": { "id": id, "consortiumId": team.consortium, "callId": call, "expiresAt": expires, "options": options, "reason": format!("selected in call {call}: what the proposal asked for, doubled at {GATE}") } }))
            .await?;
        let token = gw.token("seed-team-lead", Role::Consortium, Some(team.consortium));
        let accepted = gw
            .gql(&token, "mutation($id: UUID!) { acceptGpuOffer(offerId: $id, option: 0, reason: \"H100: our stack is built on it\") { id status h100Eq acceptedOption tranches { model period count h100Eq releaseGate status } } }", json!({ "id": id }))
            .await?["acceptGpuOffer"]
            .clone();
        let tranches: Vec<String> = accepted["tranches"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} {} {} {}{}",
                    text(&t["count"]),
                    text(&t["model"]),
                    text(&t["period"]),
                    text(&t["status"]),
                    t["releaseGate"]
                        .as_str()
                        .map(|g| format!(" until {g}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        println!(
            "  {:<32} offered {} H100-eq ({} H100{}), accepted H100: {}",
            team.name,
            text(&made["makeGpuOffer"]["h100Eq"]),
            2 * ask,
            if ask % 2 == 0 {
                format!(" or {} B200", ask)
            } else {
                String::new()
            },
            tranches.join("; ")
        );
        out.push(Offer {
            team: team.clone(),
            offer: id.to_string(),
            requested_h100: ask,
            accepted,
        });
    }
    Ok(out)
}

/// A joint purchase as the data budget split it.
#[derive(Debug, Clone)]
pub struct JointPurchase {
    pub id: String,
    pub fiscal_year: i32,
    pub total_krw: i64,
    /// Each team and its share, in the service's order.
    pub shares: Vec<(Team, i64)>,
}

/// Step 5: data. Waits until the data budget has opened this fiscal year's budget for every
/// selected team, enters a corpus in the catalogue, and has the teams buy it jointly in
/// equal shares, split by the service exact to the won.
pub async fn data(gw: &Gateway, opts: &Options, sel: &Selection) -> anyhow::Result<JointPurchase> {
    let officer = gw.officer();
    println!("\n== 5. Joint data purchase");
    let call = sel.call.as_str();
    let year = kst_year(Utc::now());
    let want = sel.teams.len();
    let budgets = wait_for(
        &format!("the data budget to open {year} budgets for the {want} teams of call {call}"),
        opts.timeout,
        || async {
            let d = gw
                .gql(&officer, "query($y: Int) { dataBudgets(fiscalYear: $y) { consortiumId callId total { limitKrw availableKrw } } }", json!({ "y": year }))
                .await?;
            let mine: Vec<Value> = d["dataBudgets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| {
                    sel.teams
                        .iter()
                        .any(|t| b["consortiumId"] == t.consortium.to_string())
                        && (call.is_empty() || b["callId"] == call)
                })
                .cloned()
                .collect();
            Ok((mine.len() == want).then_some(mine))
        },
    )
    .await?;
    let dataset = uuid::Uuid::now_v7();
    gw.gql(&officer, "mutation($i: RegisterDatasetInput!) { registerDataset(input: $i) { id } }", json!({ "i": { "id": dataset, "name": format!("Korean public web corpus {year}"), "provider": "National Information Society Agency", "licenceTerms": "training and evaluation by the licensee teams; no redistribution" } }))
        .await?;
    let shares: Vec<Value> = sel
        .teams
        .iter()
        .map(|t| json!({ "consortiumId": t.consortium }))
        .collect();
    let id = uuid::Uuid::now_v7();
    let bought = gw
        .gql(&officer, "mutation($i: JointDataPurchaseInput!) { makeJointDataPurchase(input: $i) { id totalKrw splitRule shares { consortiumId amountKrw } } }", json!({ "i": { "id": id, "datasetId": dataset, "fiscalYear": year, "totalKrw": JOINT_PURCHASE_KRW.to_string(), "reason": "the programme's shared Korean corpus", "shares": shares } }))
        .await?["makeJointDataPurchase"]
        .clone();
    let total = int(&bought["totalKrw"])?;
    println!(
        "dataset {dataset}: joint purchase {} of KRW {total} split {} across {want} teams:",
        text(&bought["id"]),
        text(&bought["splitRule"])
    );
    let mut out = Vec::new();
    for s in bought["shares"].as_array().into_iter().flatten() {
        let team = sel
            .teams
            .iter()
            .find(|t| s["consortiumId"] == t.consortium.to_string())
            .ok_or_else(|| anyhow!("a share for a team that was not selected: {s}"))?;
        let amount = int(&s["amountKrw"])?;
        let budget = budgets
            .iter()
            .find(|b| b["consortiumId"] == s["consortiumId"]);
        println!(
            "  {:<32} KRW {amount:>13} of a {year} cap of KRW {}",
            team.name,
            budget.map_or("?", |b| text(&b["total"]["limitKrw"]))
        );
        out.push((team.clone(), amount));
    }
    Ok(JointPurchase {
        id: text(&bought["id"]).to_owned(),
        fiscal_year: year,
        total_krw: total,
        shares: out,
    })
}

/// Hires made in a talent round.
#[derive(Debug, Clone)]
pub struct Hires {
    pub team: Team,
    pub round: String,
    pub position: String,
    /// `acceptTalentMatch`'s answers (`id researcherId startDate endDate ratioBp`).
    pub hires: Vec<Value>,
}

/// Step 6: talent. Waits until talent knows the first selected team, records its terms if
/// its proposal did not give them, and has it open a position of two places; an agency
/// registers two researchers who apply to it, the officer runs a round, and the team
/// accepts both matches (hired from tomorrow, KST, or its selection if later, for a year).
pub async fn talent(gw: &Gateway, opts: &Options, sel: &Selection) -> anyhow::Result<Hires> {
    let officer = gw.officer();
    println!("\n== 6. Talent round");
    let team = sel
        .teams
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("call {} selected nobody: no team to hire for", sel.call))?;
    let id = team.consortium;
    let row = wait_for(
        &format!("talent to learn that {} was selected", team.name),
        opts.timeout,
        || async {
            let d = gw
                .gql(&officer, "{ talentTeams { consortiumId consortiumName ratioBp selectedAt annualCapKrw companySize openness } }", json!({}))
                .await?;
            Ok(d["talentTeams"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["consortiumId"] == id.to_string())
                .cloned())
        },
    )
    .await?;
    let mut ratio = row["ratioBp"].clone();
    if ratio.is_null() {
        ratio = gw.gql(
            &officer,
            "mutation($c: UUID!) { setTalentTeamTerms(consortiumId: $c, companySize: \"small\", openness: \"open_weights\", reason: \"seeded: the proposal did not state them\") { ratioBp } }",
            json!({ "c": id }),
        )
        .await?["setTalentTeamTerms"]["ratioBp"]
            .clone();
    }
    println!(
        "{}: {} company, {} release, match ratio {} bp, annual cap KRW {}",
        team.name,
        row["companySize"].as_str().unwrap_or("(officer-set)"),
        row["openness"].as_str().unwrap_or("(officer-set)"),
        ratio,
        text(&row["annualCapKrw"])
    );
    let lead = gw.token("seed-team-lead", Role::Consortium, Some(id));
    let p = gw
        .gql(
            &lead,
            "mutation($i: OpenTalentPositionInput!) { openTalentPosition(input: $i) { id } }",
            json!({ "i": { "consortiumId": id, "title": "Research scientist, pre-training", "field": "nlp",
                "requiredSkills": ["pytorch", "cuda"], "seniority": "senior", "count": 2,
                "salaryBandMinMonthlyKrw": "12000000", "salaryBandMaxMonthlyKrw": "20000000" } }),
        )
        .await?;
    let position = text(&p["openTalentPosition"]["id"]).to_owned();
    let agency = gw.minter.mint_integration(
        "seed-agency",
        &[kaip_auth::scopes::WRITE_RESEARCHERS],
        7 * 24 * 3600,
    );
    for (name, skills) in [
        ("Dr. Seed Researcher A", json!(["pytorch", "cuda"])),
        ("Dr. Seed Researcher B", json!(["pytorch"])),
    ] {
        gw.gql(
            &agency,
            "mutation($i: RegisterResearcherInput!) { registerResearcher(input: $i) { id } }",
            json!({ "i": { "skills": skills, "field": "nlp", "seniority": "senior", "availableFrom": "2026-01-01",
                "preferences": [position], "name": name, "contact": "seed@example.org", "country": "US" } }),
        )
        .await?;
    }
    let round = gw
        .gql(&officer, "mutation { runTalentRound(note: \"seeded round\") { id positions researchers proposals { id researcherId positionId consortiumId fit { skills field seniority total } researcherRank positionRank } } }", json!({}))
        .await?["runTalentRound"]
        .clone();
    let matches: Vec<Value> = round["proposals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["positionId"] == position.as_str())
        .cloned()
        .collect();
    println!(
        "round {}: {} positions, {} researchers; {} matched to this position",
        text(&round["id"]),
        round["positions"],
        round["researchers"],
        matches.len()
    );
    if matches.len() != 2 {
        bail!(
            "the round matched {} researchers to the seeded position, not 2: {}",
            matches.len(),
            round["proposals"]
        );
    }
    // From tomorrow (KST), and never before the team's selection.
    let selected: DateTime<Utc> = serde_json::from_value(row["selectedAt"].clone())?;
    let start = (kaip_talent::domain::funds::kst_date(Utc::now()) + chrono::Duration::days(1))
        .max(kaip_talent::domain::funds::kst_date(selected));
    let end = start + chrono::Duration::days(364);
    let mut hires = Vec::new();
    for m in &matches {
        let hire = gw.gql(
            &lead,
            "mutation($id: UUID!, $t: TalentHireTermsInput!) { acceptTalentMatch(matchId: $id, terms: $t) { id researcherId startDate endDate ratioBp } }",
            json!({ "id": m["id"], "t": { "startDate": start.to_string(), "endDate": end.to_string(),
                "monthlySalaryKrw": "15000000", "monthlyLivingAllowanceKrw": "3000000" } }),
        )
        .await?["acceptTalentMatch"]
            .clone();
        println!(
            "  hired researcher {} (fit {}: skills {}, field {}, seniority {}; ranks {}/{}) from {} to {} at {} bp",
            text(&m["researcherId"]),
            m["fit"]["total"],
            m["fit"]["skills"],
            m["fit"]["field"],
            m["fit"]["seniority"],
            m["researcherRank"],
            m["positionRank"],
            text(&hire["startDate"]),
            text(&hire["endDate"]),
            hire["ratioBp"]
        );
        hires.push(hire);
    }
    println!(
        "talent: {} hired {} researchers from round {}",
        team.name,
        hires.len(),
        text(&round["id"])
    );
    Ok(Hires {
        team,
        round: text(&round["id"]).to_owned(),
        position,
        hires,
    })
}

/// The gate's committee: the seed's officers (token subjects). `dev-officer` is the officer
/// every other step acts as.
pub const COMMITTEE: [&str; 3] = ["dev-officer", "officer-park", "officer-lee"];

/// The eligibility rule gate 1 checks.
pub const RULE: &str = "built-from-scratch";

/// What gate 1 decided and what the other services did about it.
#[derive(Debug, Clone)]
pub struct GateOutcome {
    /// The published decision (`passed`, `eliminated` with reasons and reallocations).
    pub decision: Value,
    /// The teams that continue, and those eliminated, in the selection's order.
    pub passed: Vec<Team>,
    pub eliminated: Vec<Team>,
}

/// Step 7: milestones and gate 1. Once milestones knows the selected teams: a plan of two
/// deliverables per team; each team submits a report and a benchmark result; the officer
/// approves the results and gives the reports a verdict each (approved, revision with a new
/// due date, rejected in turn); gate 1 with the first template, the committee of
/// [`COMMITTEE`] and one planned elimination; inputs per team and component (the team-chosen
/// benchmark from the approved evidence); eligibility verdicts, the first team (the one that hired) ruled not
/// built from scratch; a proposal, the committee's votes (two of three approve), and
/// publication with a reallocation plan: each eliminated team's first-half-year H100 grant
/// to the best surviving team. Then it waits for the ledger (the survivors' gate tranches
/// released, the eliminated teams' closed), the data budget and talent to react.
///
/// Gate keys are programme-wide: on a platform where `gate-1` is already published (an
/// earlier `make seed`), the step says so and stops without writing anything.
pub async fn gate(
    gw: &Gateway,
    opts: &Options,
    sel: &Selection,
    offers: &[Offer],
) -> anyhow::Result<Option<GateOutcome>> {
    let officer = gw.officer();
    println!("\n== 7. Milestones and {GATE}");
    if sel.teams.len() < 3 {
        bail!(
            "gate 1 needs at least three teams; call {} selected {}",
            sel.call,
            sel.teams.len()
        );
    }
    let existing = gw
        .try_gql(
            &officer,
            "query($g: String!) { gate(key: $g) { key } }",
            json!({ "g": GATE }),
        )
        .await?;
    match &existing {
        Err(e) if e.code.as_deref() == Some("GATE_NOT_FOUND") => {}
        Err(e) => bail!("could not tell whether {GATE} exists: {e}"),
        Ok(_) => {
            println!("{GATE} is already defined on this platform (an earlier seed): gate keys are programme-wide and decisions are never overwritten, so this step stops here. For another gate 1, stop `make run`, drop its databases (kaip_intake, kaip_scoring, kaip_gpu_ledger, kaip_data_budget, kaip_talent, kaip_milestones) and start it again");
            return Ok(None);
        }
    }
    let call = sel.call.as_str();
    let want = sel.teams.len();
    wait_for(
        &format!("milestones to learn the {want} teams selected in call {call}"),
        opts.timeout,
        || async {
            let d = gw
                .gql(&officer, "{ milestoneTeams { callId } }", json!({}))
                .await?;
            let n = d["milestoneTeams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["callId"] == call)
                .count();
            Ok((n == want).then_some(()))
        },
    )
    .await?;
    // A gate assesses every team milestones knows, but this step records inputs and
    // eligibility for this call's teams only: with teams of another call (an earlier seed
    // that stopped before its gate), the proposal would fail ELIGIBILITY_MISSING after the
    // gate was defined. Stop before writing anything instead.
    let known = gw
        .gql(&officer, "{ milestoneTeams { callId } }", json!({}))
        .await?;
    let others = known["milestoneTeams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["callId"] != call)
        .count();
    if others > 0 {
        println!("milestones knows {others} team(s) selected in other calls besides call {call}'s {want}: {GATE} would assess them too, and this step records inputs for call {call}'s teams only, so it stops here without writing anything. For a seeded gate 1, start from empty databases (see above)");
        return Ok(None);
    }

    // Plans, evidence and verdicts.
    let year = kst_year(Utc::now());
    let items = json!([
        {"title": "Pre-training report", "description": "the first pre-training run, with its data card",
         "acceptanceCriteria": "loss curve, data card and evaluation on the national benchmark",
         "dueDate": format!("{}-03-31", year + 1)},
        {"title": "Team-chosen benchmark", "acceptanceCriteria": "a reproducible result on the benchmark the team chose",
         "dueDate": format!("{}-05-31", year + 1)},
    ]);
    let mut bench_evidence = Vec::new();
    for (i, team) in sel.teams.iter().enumerate() {
        // Each deliverable gets its id here, so the call is safe to retry.
        let mut items = items.clone();
        for item in items.as_array_mut().into_iter().flatten() {
            item["id"] = json!(uuid::Uuid::now_v7());
        }
        let plan = gw
            .gql(&officer, "mutation($c: UUID!, $items: [PlanDeliverableInput!]!) { createPlan(consortiumId: $c, phase: 1, deliverables: $items) { id title dueDate } }",
                json!({ "c": team.consortium, "items": items }))
            .await?["createPlan"]
            .clone();
        let ids: Vec<String> = plan
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| text(&d["id"]).to_owned())
            .collect();
        let [report, bench] = ids.as_slice() else {
            bail!(
                "the plan of {} has {} deliverables, not 2",
                team.name,
                ids.len()
            );
        };
        let lead = gw.token("seed-team-lead", Role::Consortium, Some(team.consortium));
        let submit = "mutation($d: UUID!, $i: SubmitEvidenceInput!) { submitEvidence(deliverableId: $d, input: $i) { id version contentSha256 } }";
        gw.gql(&lead, submit, json!({ "d": report, "i": { "kind": "document", "note": "the report",
            "document": { "name": "pretraining-report.pdf", "sha256": format!("{:064x}", 0xc0ffee + i), "sizeBytes": "2097152" } } }))
            .await?;
        let value = format!("{}.{}", 88usize.saturating_sub(6 * i), (7 * i) % 10);
        let e = gw
            .gql(
                &lead,
                submit,
                json!({ "d": bench, "i": { "kind": "benchmark", "note": "seeded result",
                "benchmark": { "name": "KoBench-Reasoning", "value": value } } }),
            )
            .await?["submitEvidence"]
            .clone();
        let verdict = "mutation($d: UUID!, $i: RecordVerdictInput!) { recordVerdict(deliverableId: $d, input: $i) { status currentDueDate } }";
        gw.gql(&officer, verdict, json!({ "d": bench, "i": { "verdict": "approved", "reason": "reproduced by the ministry's evaluators", "evidenceVersion": 1 } }))
            .await?;
        let (v, body) = match i % 3 {
            0 => (
                "approved",
                json!({ "verdict": "approved", "reason": "meets the acceptance criteria", "evidenceVersion": 1 }),
            ),
            1 => (
                "revision",
                json!({ "verdict": "revision", "reason": "the data card is missing", "comments": "add the data card",
                    "newDueDate": format!("{}-04-30", year + 1), "evidenceVersion": 1 }),
            ),
            _ => (
                "rejected",
                json!({ "verdict": "rejected", "reason": "the report describes another run than the plan's" }),
            ),
        };
        let r = gw
            .gql(&officer, verdict, json!({ "d": report, "i": body }))
            .await?["recordVerdict"]
            .clone();
        println!(
            "  {:<32} plan of 2; report {v} (due {}), benchmark {value} approved (evidence v{})",
            team.name,
            text(&r["currentDueDate"]),
            e["version"]
        );
        bench_evidence.push(text(&e["id"]).to_owned());
    }

    // The gate, its inputs and eligibility.
    let g = gw
        .gql(&officer, "mutation($i: CreateGateInput!) { createGate(input: $i) { key components { key weight } } }",
            json!({ "i": { "key": GATE, "phase": 1, "gateDate": format!("{}-06-30", year + 1), "plannedEliminations": 1,
                "eligibilityRules": [RULE], "committee": COMMITTEE, "reason": "the first stage gate as announced in the call" } }))
        .await?["createGate"]
        .clone();
    let comps: Vec<String> = g["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {}", text(&c["key"]), c["weight"]))
        .collect();
    println!(
        "{GATE}: {}; committee {}",
        comps.join(", "),
        COMMITTEE.join(", ")
    );
    let input = "mutation($g: String!, $i: GateInputInput!) { recordGateInput(gate: $g, input: $i) { value } }";
    for (i, team) in sel.teams.iter().enumerate() {
        let i64_ = (i as i64).min(12);
        for (k, v, source, source_ref) in [
            (
                "benchmark-national",
                format!("{}", 84 - 5 * i64_),
                "entered",
                "",
            ),
            (
                "benchmark-global",
                format!("{}", 72 - 4 * i64_),
                "entered",
                "",
            ),
            (
                "expert-panel",
                format!("{}.5", 90 - 4 * i64_),
                "expert_panel",
                "panel-gate-1",
            ),
            (
                "user-evaluation",
                format!("{}", 86 - 3 * i64_),
                "imported",
                "user-evaluation-gate-1.csv",
            ),
        ] {
            gw.gql(&officer, input, json!({ "g": GATE, "i": { "consortiumId": team.consortium, "component": k, "value": v,
                "source": source, "sourceRef": source_ref, "reason": "gate-1 results" } }))
                .await?;
        }
        gw.gql(&officer, input, json!({ "g": GATE, "i": { "consortiumId": team.consortium, "component": "benchmark-team",
            "evidenceId": bench_evidence[i], "source": "evidence", "reason": "the team's approved result" } }))
            .await?;
    }
    let ineligible = 0;
    for (i, team) in sel.teams.iter().enumerate() {
        let (eligible, grounds) = if i == ineligible {
            (
                false,
                "the training logs show a foreign base model's weights: not built from scratch",
            )
        } else {
            (true, "architecture, tokenizer and training logs reviewed")
        };
        gw.gql(&officer, "mutation($g: String!, $i: GateEligibilityInput!) { recordGateEligibility(gate: $g, input: $i) }",
            json!({ "g": GATE, "i": { "consortiumId": team.consortium, "rule": RULE, "eligible": eligible, "grounds": grounds } }))
            .await?;
    }
    println!("inputs: 5 components for each team (team-chosen benchmark from its approved evidence); {} ruled ineligible", sel.teams[ineligible].name);

    // Proposal, votes, publication.
    let p = gw
        .gql(&officer, "mutation($g: String!) { proposeGateOutcome(gate: $g) { id teams { consortiumId score rank outcome reason } } }", json!({ "g": GATE }))
        .await?["proposeGateOutcome"]
        .clone();
    let name_of = |id: &Value| -> String {
        sel.teams
            .iter()
            .find(|t| t.consortium.to_string() == id.as_str().unwrap_or(""))
            .map(|t| t.name.clone())
            .unwrap_or_else(|| text(id).to_owned())
    };
    for r in p["teams"].as_array().into_iter().flatten() {
        println!(
            "  {:<32} score {:>14}  rank {:<4} {}{}",
            name_of(&r["consortiumId"]),
            text(&r["score"]),
            r["rank"]
                .as_i64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            text(&r["outcome"]),
            r["reason"]
                .as_str()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
    let pid = text(&p["id"]).to_owned();
    for (member, approve, reason) in [
        (COMMITTEE[0], true, "inputs and eligibility verified"),
        (COMMITTEE[1], true, "the eligibility grounds are documented"),
        (
            COMMITTEE[2],
            false,
            "the panel's score for the lowest team is contested",
        ),
    ] {
        gw.gql(&gw.token(member, Role::Officer, None), "mutation($p: UUID!, $a: Boolean!, $r: String!) { voteOnGateProposal(proposalId: $p, approve: $a, reason: $r) { approvals } }",
            json!({ "p": pid, "a": approve, "r": reason }))
            .await?;
        println!(
            "  vote: {member} {}",
            if approve { "approves" } else { "rejects" }
        );
    }
    let out: Vec<Value> = p["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["outcome"] == "eliminated")
        .cloned()
        .collect();
    let best = p["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["rank"] == 1)
        .ok_or_else(|| anyhow!("no eligible team ranked first: {p}"))?;
    let (first, _) = next_halves(Utc::now());
    // Each eliminated team's first-half-year H100 (what its accepted offer granted at once)
    // to the best survivor; a team whose offer this run did not make keeps no plan.
    let reallocations: Vec<Value> = out
        .iter()
        .filter_map(|r| {
            let ask = offers
                .iter()
                .find(|o| o.team.consortium.to_string() == r["consortiumId"].as_str().unwrap_or(""))?
                .requested_h100;
            Some(json!({ "consortiumId": r["consortiumId"], "reallocation": [
                { "consortiumId": best["consortiumId"], "model": "H100", "period": first, "count": ask.to_string() }] }))
        })
        .collect();
    let d = gw
        .gql(&officer, "mutation($g: String!, $i: PublishGateInput!) { publishGate(gate: $g, input: $i) { passed approvals committeeSize eliminated { consortiumId reason reallocation { consortiumId model period count } } } }",
            json!({ "g": GATE, "i": { "proposalId": pid, "reason": "approved by the committee's majority",
                "reallocations": reallocations,
                "nextTargets": [{ "benchmark": "benchmark-global", "target": ">= 95% of the best recent global models" }] } }))
        .await?["publishGate"]
        .clone();
    println!(
        "published: {} of {} approved; {} continue, {} eliminated",
        d["approvals"],
        d["committeeSize"],
        d["passed"].as_array().map(Vec::len).unwrap_or(0),
        d["eliminated"].as_array().map(Vec::len).unwrap_or(0)
    );
    for e in d["eliminated"].as_array().into_iter().flatten() {
        let plan: Vec<String> = e["reallocation"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} {} {} to {}",
                    text(&r["count"]),
                    text(&r["model"]),
                    text(&r["period"]),
                    name_of(&r["consortiumId"])
                )
            })
            .collect();
        println!(
            "  eliminated {}: {}; its GPUs: {}",
            name_of(&e["consortiumId"]),
            text(&e["reason"]),
            plan.join(", ")
        );
    }
    let is_out = |t: &Team| {
        d["eliminated"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["consortiumId"] == t.consortium.to_string())
    };
    let (eliminated, passed): (Vec<Team>, Vec<Team>) = sel.teams.iter().cloned().partition(is_out);

    // The reactions, read from each service.
    let n_out = eliminated.len();
    wait_for(
        &format!("the GPU ledger to close the {n_out} eliminated teams' {GATE} tranches and release the survivors'"),
        opts.timeout,
        || async {
            for t in &sel.teams {
                let o = gw
                    .gql(&officer, "query($c: UUID) { gpuOffers(consortiumId: $c) { tranches { releaseGate status } } }", json!({ "c": t.consortium }))
                    .await?;
                let gated = o["gpuOffers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|x| x["tranches"].as_array().cloned().unwrap_or_default())
                    .find(|x| x["releaseGate"] == GATE);
                let want = if is_out(t) { "closed" } else { "released" };
                if gated.is_none_or(|g| g["status"] != want) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    println!("ledger: the survivors' {GATE} tranches released; the eliminated teams' grants closed and reallocated");
    wait_for(
        &format!("the data budget to record the {n_out} eliminations"),
        opts.timeout,
        || async {
            let b = gw
                .gql(&officer, "query($y: Int) { dataBudgets(fiscalYear: $y) { consortiumId eliminatedAtGate } }", json!({ "y": year }))
                .await?;
            let n = b["dataBudgets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["eliminatedAtGate"] == GATE && eliminated.iter().any(|t| x["consortiumId"] == t.consortium.to_string()))
                .count();
            Ok((n == n_out).then_some(()))
        },
    )
    .await?;
    println!("data budget: the eliminated teams commit nothing new (their licences and open commitments stay)");
    let talent_out = wait_for(
        &format!("talent to stop the {n_out} eliminated teams' funding"),
        opts.timeout,
        || async {
            let t = gw.gql(&officer, "{ talentTeams { consortiumId eliminatedAt } talentHires { consortiumId endedOn endCause } }", json!({})).await?;
            let n = t["talentTeams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| !x["eliminatedAt"].is_null() && eliminated.iter().any(|e| x["consortiumId"] == e.consortium.to_string()))
                .count();
            Ok((n == n_out).then_some(t))
        },
    )
    .await?;
    let ended: Vec<String> = talent_out["talentHires"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["endCause"] == "elimination")
        .map(|h| {
            format!(
                "{} (last day {})",
                name_of(&h["consortiumId"]),
                text(&h["endedOn"])
            )
        })
        .collect();
    println!(
        "talent: funding stopped after this month for the eliminated teams; hires ended: {}",
        if ended.is_empty() {
            "none".to_owned()
        } else {
            ended.join(", ")
        }
    );
    Ok(Some(GateOutcome {
        decision: d,
        passed,
        eliminated,
    }))
}

/// What [`run`] did, step by step.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub programme: Programme,
    pub stages: Vec<Stage>,
    pub selection: Selection,
    pub offers: Vec<Offer>,
    pub purchase: JointPurchase,
    pub hires: Hires,
    /// Gate 1's decision and its effects; `None` when the platform already had a gate 1.
    pub gate: Option<GateOutcome>,
    /// The replacement call for the place gate 1 freed; `None` when this run decided no gate.
    pub replacement: Option<ReplacementOutcome>,
}

/// The whole chain, from the call to the hires. `before_review` runs once the field has
/// applied: `make seed` passes nothing there (the review waits for the call's deadline);
/// the e2e test moves the deadline instead of waiting for it.
pub async fn run<F>(gw: &Gateway, opts: &Options, before_review: F) -> anyhow::Result<Outcome>
where
    F: AsyncFn(&str) -> anyhow::Result<()>,
{
    let programme = programme(gw, opts)
        .await
        .context("step 1, programme and call")?;
    before_review(&programme.call).await?;
    let stages = review(gw, opts, &programme)
        .await
        .context("step 2, review")?;
    let selection = select(gw, &programme, &stages)
        .await
        .context("step 3, selection")?;
    let offers = gpu(gw, opts, &selection)
        .await
        .context("step 4, GPU offers")?;
    let purchase = data(gw, opts, &selection)
        .await
        .context("step 5, joint data purchase")?;
    let hires = talent(gw, opts, &selection)
        .await
        .context("step 6, talent round")?;
    let gate = gate(gw, opts, &selection, &offers)
        .await
        .context("step 7, milestones and gate 1")?;
    // A gate this run did not decide (the platform had one) freed no place of this run's.
    let replacement = match &gate {
        Some(_) => Some(
            replacement(gw, opts, GATE, &before_review)
                .await
                .context("step 8, the replacement call for the freed place")?,
        ),
        None => None,
    };
    println!(
        "\nDone: call {} selected {} teams; {} GPU offers accepted; a joint purchase of KRW {} in {} shares; {} hires for {}.",
        programme.call,
        selection.teams.len(),
        offers.len(),
        purchase.total_krw,
        purchase.shares.len(),
        hires.hires.len(),
        hires.team.name
    );
    if let Some(g) = &gate {
        let names = |ts: &[Team]| {
            ts.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{GATE}: {} continue ({}); {} eliminated ({}).",
            g.passed.len(),
            names(&g.passed),
            g.eliminated.len(),
            names(&g.eliminated)
        );
    }
    if let Some(r) = &replacement {
        match &r.winner {
            Some(w) => println!(
                "Replacement call {}: {} selected by the committee's majority and offered the award.",
                r.call, w.name
            ),
            None => println!("Replacement call {}: nobody selected.", r.call),
        }
    }
    Ok(Outcome {
        programme,
        stages,
        selection,
        offers,
        purchase,
        hires,
        gate,
        replacement,
    })
}

/// What the replacement call for a gate's freed place came to.
#[derive(Debug, Clone)]
pub struct ReplacementOutcome {
    pub call: String,
    /// The winner, if the committee selected one.
    pub winner: Option<Team>,
    /// The ledger's offer of the award, as the winner accepted it.
    pub accepted: Option<Value>,
}

/// The committee of the seeded replacement call (officers' token subjects).
pub const REPLACEMENT_COMMITTEE: [&str; 3] = ["officer-kim", "officer-lee", "officer-park"];

/// A gate's aftermath (issue #11): once intake has seen `gate_key` decided (milestones'
/// `GateDecided`), a replacement call for one freed place, with 768 B200 for the next
/// half-year as its award; two consortia apply; one stage of review by three reviewers;
/// the committee votes (two approve, one rejects) and the selection is published; the
/// ledger offers the winner the award, and the winner accepts. Prints each step.
/// `before_review` runs once both have applied, as in [`run`] (the e2e test moves the
/// deadline instead of waiting for it). Step 8 of [`run`]; `make seed-replacement` alone.
pub async fn replacement<F>(
    gw: &Gateway,
    opts: &Options,
    gate_key: &str,
    before_review: &F,
) -> anyhow::Result<ReplacementOutcome>
where
    F: AsyncFn(&str) -> anyhow::Result<()>,
{
    let officer = gw.officer();
    println!("\n== 8. Replacement call for {gate_key}");
    let (period, _) = next_halves(Utc::now());
    let now = Utc::now();
    let window = chrono::Duration::from_std(opts.call_window).context("call window")?;
    let input = json!({ "i": {
        "title": format!("Replacement call: the place freed at {gate_key}"),
        "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "closesAt": (now + window).to_rfc3339(),
        "replaces": { "gate": gate_key, "places": 1, "committee": REPLACEMENT_COMMITTEE,
                      "award": { "model": "B200", "count": "768", "period": period } },
    } });
    let opened = wait_for(
        &format!("intake to learn that {gate_key} was decided"),
        opts.timeout,
        || async {
            match gw
                .try_gql(&officer, "mutation($i: OpenCallInput!) { openCall(input: $i) { id closesAtKst replaces { gate places committee award { model count period } } } }", input.clone())
                .await?
            {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.code.as_deref() == Some("GATE_NOT_DECIDED") => Ok(None),
                Err(e) => bail!("openCall: {e}"),
            }
        },
    )
    .await?;
    let call = text(&opened["openCall"]["id"]).to_owned();
    println!(
        "call {call}: 1 place, closes {}, committee {}, award 768 B200 for {period}",
        text(&opened["openCall"]["closesAtKst"]),
        REPLACEMENT_COMMITTEE.join(", ")
    );

    let mut applicants: Vec<Team> = Vec::new();
    for (n, (name, lead, university)) in [
        ("Gaon Language Model", "Gaon Systems", "Ulsan University"),
        ("Haneul Open LLM", "Haneul Startup", "Jeonbuk University"),
    ]
    .into_iter()
    .enumerate()
    {
        let consortium = ConsortiumId::new();
        let token = gw.token(&format!("rep-lead-{n}"), Role::Consortium, Some(consortium));
        let members = json!([
            { "name": lead, "orgType": "STARTUP", "businessRegistrationNumber": brn(9000 + n as u32 * 10), "role": "LEAD" },
            { "name": university, "orgType": "UNIVERSITY", "businessRegistrationNumber": brn(9001 + n as u32 * 10), "role": "PARTNER" },
        ]);
        gw.gql(&token, "mutation($id: UUID!, $i: RegisterConsortiumInput!) { registerConsortium(id: $id, input: $i) { id } }", json!({ "id": consortium, "i": { "name": name, "members": members } }))
            .await?;
        let portfolio = json!({ "track": { "kind": "GENERAL" }, "openness": { "releases": ["WEIGHTS"], "licence": "Apache-2.0" }, "independence": { "fromScratch": true, "buildsOn": [] } });
        let d = gw
            .gql(&token, "mutation($i: ProposalInput!) { createProposal(input: $i) { id } }", json!({ "i": { "callId": call, "title": name, "summary": "A model for the freed place", "resources": { "gpus": [{ "model": "B200", "count": 768 }] }, "portfolio": portfolio } }))
            .await?;
        let id = text(&d["createProposal"]["id"]).to_owned();
        gw.gql(&token, "mutation($id: UUID!, $k: String!) { submitProposal(proposalId: $id, idempotencyKey: $k) { contentHash } }", json!({ "id": id, "k": format!("rep-{n}") }))
            .await?;
        println!("  applicant {}: {name}", n + 1);
        applicants.push(Team {
            consortium,
            name: name.to_owned(),
            proposal: id,
        });
    }

    before_review(&call).await?;
    wait_for(
        "scoring to open 2 evaluation cases",
        opts.timeout,
        || async {
            let d = gw
                .gql(
                    &officer,
                    "query($c: UUID!) { evaluationCases(callId: $c, first: 10) { items { id } } }",
                    json!({ "c": call }),
                )
                .await?;
            Ok((d["evaluationCases"]["items"].as_array().map_or(0, Vec::len) == 2).then_some(()))
        },
    )
    .await?;
    let mut config =
        gw.gql(&officer, DEFAULT_CONFIG, json!({})).await?["defaultEvaluationConfig"].clone();
    config["stages"] = json!([{ "name": "presentation", "keepTop": null, "minTotal": null }]);
    config["teams"] = json!(1);
    config["constraints"] = json!([]);
    config["reviewersPerProposal"] = json!(3);
    gw.gql(&officer, "mutation($c: UUID!, $i: EvaluationConfigInput!) { configureEvaluation(callId: $c, input: $i) { teams } }", json!({ "c": call, "i": config }))
        .await?;
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let reviewers: Vec<String> = (1..=3).map(|i| format!("rep-rev-{i}-{suffix}")).collect();
    for r in &reviewers {
        gw.gql(&officer, "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }", json!({ "i": { "id": r, "name": r, "organisation": format!("Replacement panel {r}"), "expertise": ["LLM"] } }))
            .await?;
    }
    println!("one stage, 1 team, 3 reviewers; waiting for the deadline");
    let assigned = wait_for(
        &format!("call {call} to close for submissions"),
        opts.call_window + opts.timeout,
        || async {
            match gw
                .try_gql(
                    &officer,
                    "mutation($c: UUID!) { assignReviewers(callId: $c, stage: 0) { assigned } }",
                    json!({ "c": call }),
                )
                .await?
            {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.code.as_deref() == Some("SUBMISSIONS_STILL_OPEN") => Ok(None),
                Err(e) => bail!("assignReviewers: {e}"),
            }
        },
    )
    .await?;
    println!("{} assignments", assigned["assignReviewers"]["assigned"]);
    // Reviewers of earlier calls may be assigned too: each scores what is assigned to them.
    let a = gw
        .gql(&officer, "query($c: UUID!) { assignments(callId: $c, stage: 0, first: 100) { items { id proposalId reviewerId } } }", json!({ "c": call }))
        .await?;
    for (ri, item) in a["assignments"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let token = gw.token(text(&item["reviewerId"]), Role::Reviewer, None);
        let first = item["proposalId"] == applicants[0].proposal.as_str();
        let q: i64 = if first { 78 } else { 71 } + (ri % 3) as i64;
        let sheet = json!([
            { "criterion": "technology", "points": q * 4 / 10 },
            { "criterion": "strategy", "points": q * 3 / 10 },
            { "criterion": "ecosystem", "points": q - q * 4 / 10 - q * 3 / 10 },
        ]);
        gw.gql(&token, "mutation($a: UUID!, $s: [CriterionScoreInput!]!) { scoreProposal(assignmentId: $a, scores: $s) { total } }", json!({ "a": item["id"], "s": sheet }))
            .await?;
    }
    let closed = gw
        .gql(&officer, "mutation($c: UUID!) { closeStage(callId: $c, stage: 0) { proposalId position totalCenti } }", json!({ "c": call }))
        .await?;
    for r in closed["closeStage"].as_array().into_iter().flatten() {
        let name = applicants
            .iter()
            .find(|a| r["proposalId"] == a.proposal.as_str())
            .map_or("?", |a| a.name.as_str());
        println!(
            "  {}. {name:<24} {}",
            r["position"],
            points(r["totalCenti"].as_i64().unwrap_or_default())
        );
    }
    let proposed = gw
        .gql(
            &officer,
            "mutation($c: UUID!) { proposeSelection(callId: $c) { version selected } }",
            json!({ "c": call }),
        )
        .await?;
    println!(
        "proposed version {}",
        proposed["proposeSelection"]["version"]
    );
    for (member, approve, why) in [
        (
            REPLACEMENT_COMMITTEE[0],
            true,
            "the strongest plan of the two",
        ),
        (
            REPLACEMENT_COMMITTEE[1],
            false,
            "neither reaches the survivors' level yet",
        ),
        (
            REPLACEMENT_COMMITTEE[2],
            true,
            "meets the bar; the data plan convinces",
        ),
    ] {
        let token = gw.token(member, Role::Officer, None);
        let t = gw
            .gql(&token, "mutation($c: UUID!, $v: Int!, $a: Boolean!, $r: String!) { voteOnSelection(callId: $c, version: $v, approve: $a, reason: $r) { approvals needed } }", json!({ "c": call, "v": proposed["proposeSelection"]["version"], "a": approve, "r": why }))
            .await?;
        println!(
            "  {member} {}: {why} ({} of {} needed)",
            if approve { "approves" } else { "rejects" },
            t["voteOnSelection"]["approvals"],
            t["voteOnSelection"]["needed"]
        );
    }
    ensure_pool(gw, "B200", &period, 768).await?;
    let published = gw
        .gql(
            &officer,
            "mutation($c: UUID!) { publishSelection(callId: $c) { selected } }",
            json!({ "c": call }),
        )
        .await?;
    let winner = published["publishSelection"]["selected"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|p| applicants.iter().find(|a| *p == a.proposal.as_str()))
        .cloned();
    let Some(winner) = winner else {
        println!("published: nobody selected, so no offer");
        return Ok(ReplacementOutcome {
            call,
            winner: None,
            accepted: None,
        });
    };
    println!("published: {} selected", winner.name);
    let token = gw.token("rep-team-lead", Role::Consortium, Some(winner.consortium));
    let offer = wait_for(
        &format!("the GPU ledger to offer {} the award", winner.name),
        opts.timeout,
        || async {
            let d = gw
                .gql(
                    &token,
                    "{ gpuOffers { id callId h100Eq reason } }",
                    json!({}),
                )
                .await?;
            Ok(d["gpuOffers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["callId"] == call.as_str())
                .cloned())
        },
    )
    .await?;
    println!(
        "the ledger offered {} H100-eq: {}",
        text(&offer["h100Eq"]),
        text(&offer["reason"])
    );
    let accepted = gw
        .gql(&token, "mutation($id: UUID!) { acceptGpuOffer(offerId: $id, option: 0, reason: \"accepted\") { id status tranches { model period count status } } }", json!({ "id": offer["id"] }))
        .await?["acceptGpuOffer"]
        .clone();
    println!(
        "{} accepted: {}",
        winner.name,
        accepted["tranches"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| format!(
                "{} {} {} {}",
                text(&t["count"]),
                text(&t["model"]),
                text(&t["period"]),
                text(&t["status"])
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(ReplacementOutcome {
        call,
        winner: Some(winner),
        accepted: Some(accepted),
    })
}
