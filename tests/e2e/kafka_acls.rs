//! `infra/kafka-acls.yaml` against what the platform really does: every topic of
//! `infra/topics.yaml` has exactly one writer, the one whose events it carries; each service
//! may read exactly what its definition consumes (and its own dead letters, to replay them)
//! in its own group; the gateway reads every event and audit topic and writes nothing; the
//! integrations write their own topic only. A service that starts consuming a topic without
//! its ACL, or a topic added without a writer, fails here rather than on a locked-down
//! cluster. Tansu enforces no ACLs, so this checks the declaration, and `kafka-acls.sh`'s
//! rendering of it.

use kaip_contracts::topics;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
struct Grant {
    write: BTreeSet<String>,
    read: BTreeSet<String>,
    groups: BTreeSet<String>,
    group_prefixes: BTreeSet<String>,
}

const ACLS: &str = include_str!("../../infra/kafka-acls.yaml");

fn parse(text: &str) -> BTreeMap<String, Grant> {
    let mut out: BTreeMap<String, Grant> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        if line.trim().is_empty() {
            continue;
        }
        if let Some(p) = line.strip_prefix("- principal:") {
            let p = p.trim().to_owned();
            assert!(
                out.insert(p.clone(), Grant::default()).is_none(),
                "line {}: {p} twice",
                n + 1
            );
            current = Some(p);
            continue;
        }
        let (key, values) = line
            .trim()
            .split_once(':')
            .unwrap_or_else(|| panic!("line {}: `key: values` expected", n + 1));
        let p = current.as_ref().expect("a key before any principal");
        let g = out.get_mut(p).expect("entry");
        let set = match key {
            "write" => &mut g.write,
            "read" => &mut g.read,
            "groups" => &mut g.groups,
            "group_prefixes" => &mut g.group_prefixes,
            other => panic!("line {}: unknown key {other}", n + 1),
        };
        set.extend(values.split_whitespace().map(str::to_owned));
    }
    out
}

fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

#[test]
fn every_topic_has_one_writer_and_each_process_reads_what_it_consumes() {
    let acls = parse(ACLS);
    let declared: BTreeSet<String> = kaip_bus::kafka::parse_topics(kaip_bus::kafka::TOPICS_FILE)
        .expect("topics.yaml")
        .into_iter()
        .map(|t| t.name)
        .collect();

    // Exactly one writer per topic, and the right one.
    let mut writers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (p, g) in &acls {
        for t in g.write.iter().chain(&g.read) {
            assert!(
                declared.contains(t),
                "{p} names {t}, which topics.yaml lacks"
            );
        }
        for t in &g.write {
            writers.entry(t).or_default().push(p);
        }
    }
    for t in &declared {
        let expected = match t.as_str() {
            topics::OPERATORS => "User:kaip-operators".to_owned(),
            topics::BENCHMARKS => "User:kaip-benchmarks".to_owned(),
            other => {
                let service = other
                    .strip_prefix("kaip.")
                    .and_then(|r| r.rsplit_once('.'))
                    .map(|(s, _)| s)
                    .unwrap_or_else(|| panic!("{other}: not kaip.<service>.<kind>"));
                format!("User:kaip-{service}")
            }
        };
        assert_eq!(
            writers.get(t.as_str()).cloned().unwrap_or_default(),
            vec![expected.as_str()],
            "{t}: exactly one writer, {expected}"
        );
    }

    // Each service: reads what it consumes and its own DLQ, nothing else, in its group.
    let services = [
        kaip_intake::definition(),
        kaip_scoring::definition(),
        kaip_gpu_ledger::definition(),
        kaip_data_budget::definition(),
        kaip_talent::definition(),
        kaip_milestones::definition(),
    ];
    for d in &services {
        let p = format!("User:kaip-{}", d.name);
        let g = acls.get(&p).unwrap_or_else(|| panic!("{p} has no entry"));
        let mut reads = set(d.consumes.iter().copied());
        reads.insert(topics::dead_letter_topic_of(d.name));
        assert_eq!(g.read, reads, "{p} reads what it consumes and its DLQ");
        assert_eq!(
            g.write,
            set([
                topics::events_topic_of(d.name),
                topics::audit_topic_of(d.name),
                topics::dead_letter_topic_of(d.name),
            ]),
            "{p} writes its events, its audit trail and its dead letters"
        );
        assert_eq!(g.groups, set([format!("kaip-{}", d.name)]), "{p}'s group");
        assert_eq!(g.group_prefixes, set(["kaip-dlq-replay-"]), "{p}'s replays");
    }

    // The gateway's feed: every event and audit topic, read-only, throw-away groups.
    let gw = acls.get("User:kaip-gateway").expect("the gateway's entry");
    assert!(gw.write.is_empty(), "the gateway writes nothing");
    assert_eq!(
        gw.read,
        set(topics::ALL_EVENT_TOPICS
            .iter()
            .chain(topics::ALL_AUDIT_TOPICS.iter())
            .copied())
    );
    assert_eq!(gw.group_prefixes, set(["kaip-gateway-feed-"]));

    // The integrations: their own topic, nothing else.
    for (p, t) in [
        ("User:kaip-operators", topics::OPERATORS),
        ("User:kaip-benchmarks", topics::BENCHMARKS),
    ] {
        let g = acls.get(p).unwrap_or_else(|| panic!("{p} has no entry"));
        assert_eq!(g.write, set([t]), "{p}");
        assert!(
            g.read.is_empty() && g.groups.is_empty() && g.group_prefixes.is_empty(),
            "{p}"
        );
    }
    assert_eq!(acls.len(), services.len() + 3, "no other principal");
}

#[test]
fn kafka_acls_sh_renders_every_grant_with_the_deployment_prefix() {
    let acls = parse(ACLS);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/kafka-acls.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("KAIP_KAFKA_BOOTSTRAP", "kafka.example:9093")
        .env("KAIP_KAFKA__TOPIC_PREFIX", "prod.")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: BTreeSet<String> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect();
    let base = "kafka-acls.sh --bootstrap-server kafka.example:9093 --add --allow-principal";
    let mut expected = BTreeSet::new();
    for (p, g) in &acls {
        for t in &g.write {
            expected.insert(format!("{base} {p} --operation Write --topic prod.{t}"));
        }
        for t in &g.read {
            expected.insert(format!("{base} {p} --operation Read --topic prod.{t}"));
        }
        for x in &g.groups {
            expected.insert(format!("{base} {p} --operation Read --group prod.{x}"));
        }
        for x in &g.group_prefixes {
            expected.insert(format!(
                "{base} {p} --operation Read --resource-pattern-type prefixed --group prod.{x}"
            ));
        }
    }
    assert_eq!(lines, expected);
    assert!(lines.contains(&format!(
        "{base} User:kaip-operators --operation Write --topic prod.kaip.operators.events"
    )));
}
