//! `make bench`: how long a talent matching round takes, for `KAIP_BENCH_RESEARCHERS`
//! researchers (default 2,000) applying to `KAIP_BENCH_POSITIONS` positions (default 500)
//! with `KAIP_BENCH_PREFERENCES` choices each (default 5), generated deterministically.
//!
//! Two figures: deferred acceptance alone (the domain function, in memory), and the whole
//! `POST /rounds` against the real service and PostgreSQL (loading the applicants, matching,
//! writing every proposal and its event in one transaction). The data is inserted with SQL
//! first (what registering it through the API would write), so only the round is timed.

use kaip_contracts::Role;
use kaip_talent::domain::matching::{deferred_acceptance, FitWeights, Position, Researcher};
use kaip_testkit::TestContext;
use std::time::Instant;
use uuid::Uuid;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift), so every run matches the same instance.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const SKILLS: [&str; 12] = [
    "rust", "cuda", "jax", "pytorch", "rl", "nlp", "vision", "speech", "triton", "mlops", "data",
    "eval",
];
const FIELDS: [&str; 4] = ["nlp", "vision", "speech", "multimodal"];
const SENIORITY: [&str; 5] = ["junior", "mid", "senior", "lead", "principal"];

/// id, field index, skills, seniority level, places.
type GenPosition = (Uuid, usize, Vec<&'static str>, usize, i32);
/// id, field index, skills, seniority level, preferred position indexes.
type GenResearcher = (Uuid, usize, Vec<&'static str>, usize, Vec<usize>);

struct Instance {
    positions: Vec<GenPosition>,
    researchers: Vec<GenResearcher>,
}

fn instance(np: usize, nr: usize, prefs: usize) -> Instance {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let skills = |rng: &mut Rng| {
        let mut s: Vec<&'static str> = (0..3).map(|_| SKILLS[rng.next(SKILLS.len())]).collect();
        s.sort();
        s.dedup();
        s
    };
    let positions = (0..np)
        .map(|_| {
            (
                Uuid::now_v7(),
                rng.next(FIELDS.len()),
                skills(&mut rng),
                rng.next(5),
                1 + rng.next(3) as i32,
            )
        })
        .collect();
    let researchers = (0..nr)
        .map(|_| {
            let mut p: Vec<usize> = Vec::new();
            while p.len() < prefs.min(np) {
                let x = rng.next(np);
                if !p.contains(&x) {
                    p.push(x);
                }
            }
            (
                Uuid::now_v7(),
                rng.next(FIELDS.len()),
                skills(&mut rng),
                rng.next(5),
                p,
            )
        })
        .collect();
    Instance {
        positions,
        researchers,
    }
}

fn main() {
    let np = env_or("KAIP_BENCH_POSITIONS", 500);
    let nr = env_or("KAIP_BENCH_RESEARCHERS", 2_000);
    let prefs = env_or("KAIP_BENCH_PREFERENCES", 5);
    let inst = instance(np, nr, prefs);

    let positions: Vec<Position> = inst
        .positions
        .iter()
        .map(|(id, f, s, sen, count)| Position {
            id: *id,
            field: FIELDS[*f].into(),
            required_skills: s.iter().map(|x| x.to_string()).collect(),
            seniority: *sen as i64,
            count: *count as usize,
        })
        .collect();
    let researchers: Vec<Researcher> = inst
        .researchers
        .iter()
        .map(|(id, f, s, sen, p)| Researcher {
            id: *id,
            field: FIELDS[*f].into(),
            skills: s.iter().map(|x| x.to_string()).collect(),
            seniority: *sen as i64,
            preferences: p.clone(),
        })
        .collect();
    let started = Instant::now();
    let matched = deferred_acceptance(&positions, &researchers, &FitWeights::default());
    println!(
        "talent: deferred acceptance alone, {nr} researchers x {np} positions ({prefs} choices each): {} matched in {:?}",
        matched.len(),
        started.elapsed()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ctx = TestContext::new();
        let svc = ctx.spawn(kaip_talent::definition(), kaip_talent::DEFAULTS).await;
        let mut sql = String::from("BEGIN;\n");
        let teams: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        for t in &teams {
            sql += &format!("INSERT INTO talent_teams VALUES ('{t}', '{}', '{}', 'bench team', 2000000000, now());\n", Uuid::now_v7(), Uuid::now_v7());
        }
        for (i, (id, f, s, sen, count)) in inst.positions.iter().enumerate() {
            sql += &format!(
                "INSERT INTO talent_positions VALUES ('{id}', '{}', 'position {i}', '{}', ARRAY[{}]::text[], '{}', {count}, 0, 0, 'bench', 'officer', now());\n",
                teams[i % teams.len()], FIELDS[*f], s.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(","), SENIORITY[*sen]
            );
        }
        for (id, f, s, sen, p) in &inst.researchers {
            sql += &format!(
                "INSERT INTO talent_researchers (id, skills, field, seniority, registered_by, registered_role, registered_at) VALUES ('{id}', ARRAY[{}]::text[], '{}', '{}', 'bench', 'integration', now());\n",
                s.iter().map(|x| format!("'{x}'")).collect::<Vec<_>>().join(","), FIELDS[*f], SENIORITY[*sen]
            );
            for (rank, pi) in p.iter().enumerate() {
                sql += &format!("INSERT INTO talent_applications VALUES ('{id}', '{}', {});\n", inst.positions[*pi].0, rank + 1);
            }
        }
        sql += "COMMIT;\n";
        {
            use diesel::connection::SimpleConnection;
            let mut c = svc.conn();
            c.batch_execute(&sql).expect("bench data");
        }
        let officer = ctx.bearer(Role::Officer, None);
        let started = Instant::now();
        let res = reqwest::Client::new()
            .post(svc.url("/rounds"))
            .header("Authorization", officer)
            .json(&serde_json::json!({"note": "bench"}))
            .send()
            .await
            .expect("round");
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert!(status.is_success(), "{status}: {body}");
        println!(
            "talent: POST /rounds, {nr} researchers x {np} positions: {} proposals written in {:?}",
            body["proposals"].as_array().map_or(0, Vec::len),
            started.elapsed()
        );
    });
}
