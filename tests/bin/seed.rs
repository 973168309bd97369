//! `kaip-seed`: fills a running platform (`make run`) with the seeded programme, so an
//! officer can run its selection from the console.
//!
//! ```text
//! kaip-seed programme                      # programme, call, 15 consortia applied, 6 reviewers
//! kaip-seed scores --call <id> --stage 0   # the seeded reviewers score their assignments
//! kaip-seed ranking --call <id> --stage 0  # the service's ranking of a closed stage
//! ```
//! The field is varied (large enterprises, mid-size firms, startups, an SME, universities
//! and a research institute lead; two to four members each; two industry-specialised
//! proposals), and the six reviewers disagree: each has a leniency and a view per
//! criterion. Nothing printed is computed here: rankings are read from the service.
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

/// One applicant of the seeded field.
struct Applicant {
    name: &'static str,
    /// (organisation, org type, role) for each member; the first is the lead.
    members: &'static [(&'static str, &'static str)],
    /// `None`: general track; `Some(industry)`: industry-specialised.
    industry: Option<&'static str>,
    releases: &'static [&'static str],
    builds_on: &'static [&'static str],
    /// Underlying merit per criterion, as a share of its maximum (percent).
    merit: [i64; 3],
}

/// Fifteen applicants, fictitious, in the order they submit (not in merit order).
const FIELD: [Applicant; 15] = [
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
        Some("data") => joint_purchase(&gw).await,
        Some("scores" | "ranking") => {
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
            if args[0] == "ranking" {
                ranking(&gw, &call, stage).await
            } else {
                scores(&gw, &call, stage).await
            }
        }
        Some("talent") => talent(&gw).await,
        _ => bail!("usage: kaip-seed programme | kaip-seed data | kaip-seed talent | kaip-seed scores --call <id> --stage <n> | kaip-seed ranking --call <id> --stage <n>"),
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
        let id = d["createProposal"]["id"].clone();
        gw.gql(&token, "mutation($id: UUID!) { uploadDocument(proposalId: $id, kind: \"proposal\", filename: \"proposal.txt\", contentBase64: \"cHJvcG9zYWw=\") { id } }", json!({ "id": id }))
            .await?;
        gw.gql(&token, "mutation($id: UUID!, $k: String!) { submitProposal(proposalId: $id, idempotencyKey: $k) { contentHash } }", json!({ "id": id, "k": format!("seed-{n}") }))
            .await?;
        let lead = app.members[0].1.to_lowercase();
        let track = app.industry.map_or("general".to_owned(), |i| {
            format!("industry-specialised ({i})")
        });
        println!(
            "  {n:>2}. {:<32} lead {lead:<18} {} members, {track}",
            app.name,
            app.members.len()
        );
    }
    println!("15 consortia registered and submitted");

    for (i, r) in REVIEWERS.iter().enumerate() {
        // rev-6 works at consortium 4's university partner: a conflict of interest.
        let (org, number) = if *r == "rev-6" {
            (conflicted_org.0.clone(), Some(conflicted_org.1.clone()))
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
    println!("close stage 0 (13) and see the service's ranking:");
    println!("    make seed-ranking CALL={call} STAGE=0");
    println!("assign and score stage 1 the same way, close it, propose (14) and publish (15).");
    println!("To reserve a place for the industry track, add the constraint");
    println!("    {{ category: \"track:industry_specialised\", atLeast: 1 }} to the settings (8).");
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
            let Some(n) = FIELD.iter().position(|f| a["title"] == f.name) else {
                continue;
            };
            let r = REVIEWERS.iter().position(|x| *x == r).unwrap_or(0);
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
    println!("{total} assignments of stage {stage} scored; close the stage in the console next");
    Ok(())
}

/// Prints a closed stage's ranking as the service recorded it (normalised or not, as the
/// call is configured): nothing here is recomputed.
async fn ranking(gw: &Gateway, call: &str, stage: i32) -> anyhow::Result<()> {
    let officer = gw.token("dev-officer", Role::Officer, None);
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
    let points = |v: &Value| {
        let c = v.as_i64().unwrap_or(0);
        format!("{}.{:02}", c / 100, (c % 100).abs())
    };
    for r in data["stageResults"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let per: Vec<String> = r["perCriterion"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["criterion"].as_str().unwrap_or("?"),
                    points(&c["centi"])
                )
            })
            .collect();
        let position = r["position"]
            .as_i64()
            .map_or("  -".to_owned(), |p| format!("{p:>3}"));
        println!(
            "{position}. {:<32} {:>6}  ({}){}{}",
            r["title"].as_str().unwrap_or("?"),
            points(&r["totalCenti"]),
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
        for s in r["shortfalls"].as_array().cloned().unwrap_or_default() {
            println!("       ineligible: {}", s.as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

/// After a call's selection is published: a dataset in the catalogue, bought jointly by
/// every selected team in equal shares (split exact to the won), and their budgets after.
async fn joint_purchase(gw: &Gateway) -> anyhow::Result<()> {
    let officer = gw.token("dev-officer", Role::Officer, None);
    let year = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).context("KST")?)
        .format("%Y")
        .to_string()
        .parse::<i32>()?;
    let budgets = gw
        .gql(
            &officer,
            "query($y: Int) { dataBudgets(fiscalYear: $y) { consortiumId consortiumName } }",
            json!({ "y": year }),
        )
        .await?;
    let teams: Vec<Value> = budgets["dataBudgets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if teams.len() < 2 {
        bail!("{} team(s) have a data budget for {year}: publish a call's selection first (the console's `publishSelection`)", teams.len());
    }
    let dataset = uuid::Uuid::now_v7();
    gw.gql(&officer, "mutation($i: RegisterDatasetInput!) { registerDataset(input: $i) { id } }", json!({ "i": { "id": dataset, "name": "Korean public web corpus 2026", "provider": "National Information Society Agency", "licenceTerms": "training and evaluation by the licensee teams; no redistribution" } }))
        .await?;
    let shares: Vec<Value> = teams
        .iter()
        .map(|t| json!({ "consortiumId": t["consortiumId"] }))
        .collect();
    let bought = gw
        .gql(&officer, "mutation($i: JointDataPurchaseInput!) { makeJointDataPurchase(input: $i) { id totalKrw shares { consortiumId amountKrw } } }", json!({ "i": { "id": uuid::Uuid::now_v7(), "datasetId": dataset, "fiscalYear": year, "totalKrw": "9000000001", "reason": "the programme's shared Korean corpus", "shares": shares } }))
        .await?;
    let j = &bought["makeJointDataPurchase"];
    println!(
        "joint purchase {} of KRW {} split equally:",
        j["id"].as_str().unwrap_or("?"),
        j["totalKrw"].as_str().unwrap_or("?")
    );
    for s in j["shares"].as_array().cloned().unwrap_or_default() {
        let name = teams
            .iter()
            .find(|t| t["consortiumId"] == s["consortiumId"])
            .and_then(|t| t["consortiumName"].as_str())
            .unwrap_or("?");
        println!(
            "  {name:<32} KRW {}",
            s["amountKrw"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// After a selection was published: the first selected team opens a position of two places,
/// an agency registers two researchers who apply to it, the officer runs a round, and the
/// team accepts both matches (hired from tomorrow, KST, or its selection if later, for a year).
async fn talent(gw: &Gateway) -> anyhow::Result<()> {
    let officer = gw.token("dev-officer", Role::Officer, None);
    let teams = gw
        .gql(
            &officer,
            "{ talentTeams { consortiumId consortiumName ratioBp selectedAt } }",
            json!({}),
        )
        .await?;
    let team = teams["talentTeams"]
        .as_array()
        .and_then(|t| t.first())
        .cloned()
        .ok_or_else(|| {
            anyhow!("no selected team yet: publish a selection first (examples 14-15)")
        })?;
    let id: ConsortiumId = serde_json::from_value(team["consortiumId"].clone())?;
    if team["ratioBp"].is_null() {
        gw.gql(
            &officer,
            "mutation($c: UUID!) { setTalentTeamTerms(consortiumId: $c, companySize: \"small\", openness: \"open_weights\", reason: \"seeded: the proposal did not state them\") { ratioBp } }",
            json!({ "c": id }),
        )
        .await?;
    }
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
    let position = p["openTalentPosition"]["id"].clone();
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
        .gql(&officer, "mutation { runTalentRound(note: \"seeded round\") { id proposals { id researcherId consortiumId fit { total } } } }", json!({}))
        .await?;
    // From tomorrow (KST), and never before the team's selection.
    let selected: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(team["selectedAt"].clone())?;
    let start = (kaip_talent::domain::funds::kst_date(chrono::Utc::now())
        + chrono::Duration::days(1))
    .max(kaip_talent::domain::funds::kst_date(selected));
    let end = start + chrono::Duration::days(364);
    let mut hired = 0;
    for m in round["runTalentRound"]["proposals"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if m["consortiumId"] != team["consortiumId"] {
            continue;
        }
        gw.gql(
            &lead,
            "mutation($id: UUID!, $t: TalentHireTermsInput!) { acceptTalentMatch(matchId: $id, terms: $t) { id } }",
            json!({ "id": m["id"], "t": { "startDate": start.to_string(), "endDate": end.to_string(),
                "monthlySalaryKrw": "15000000", "monthlyLivingAllowanceKrw": "3000000" } }),
        )
        .await?;
        hired += 1;
    }
    println!(
        "talent: {} hired {hired} researchers from round {}",
        team["consortiumName"], round["runTalentRound"]["id"]
    );
    Ok(())
}
