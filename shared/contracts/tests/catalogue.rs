//! The published event schemas and AsyncAPI document match the Rust types. A change to an
//! event shows up here first: `make snapshots` accepts a deliberate one.

use kaip_contracts::catalogue;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(path: PathBuf, current: &serde_json::Value) {
    let text = serde_json::to_string_pretty(current).expect("json") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, &text).expect("write");
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == text,
        "{} is out of date: review the change and run `make snapshots`",
        path.display()
    );
}

#[test]
fn event_schemas_match_the_snapshots() {
    let specs = catalogue::events();
    for spec in &specs {
        check(dir().join("schemas").join(spec.file_name()), &spec.schema());
    }
    // No stale schema files for events that no longer exist.
    let names: Vec<String> = specs.iter().map(|s| s.file_name()).collect();
    for entry in std::fs::read_dir(dir().join("schemas")).expect("schemas dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            names.contains(&name),
            "schemas/{name} describes no published event"
        );
    }
}

#[test]
fn the_asyncapi_document_matches_its_snapshot() {
    check(dir().join("asyncapi.json"), &catalogue::asyncapi());
}

#[test]
fn schemas_accept_real_events_and_name_their_type() {
    use kaip_contracts::events::ProposalSubmitted;
    use kaip_contracts::{Actor, CallId, ConsortiumId, EventEnvelope, ProposalId};
    let event = ProposalSubmitted {
        proposal_id: ProposalId::new(),
        call_id: CallId::new(),
        consortium_id: ConsortiumId::new(),
        consortium_name: "K".into(),
        title: "t".into(),
        version: 1,
        content_hash: "ab".into(),
        members: Vec::new(),
        resources: Default::default(),
        submitted_at: chrono::Utc::now(),
    };
    let env = serde_json::to_value(
        EventEnvelope::wrap("intake", Actor::system("intake"), &event).expect("wrap"),
    )
    .expect("json");
    let spec = catalogue::events()
        .into_iter()
        .find(|s| s.event_type == "ProposalSubmitted")
        .expect("listed");
    let schema = spec.schema();
    // Every property the envelope carries is described, and nothing else is allowed.
    let props = schema["properties"].as_object().expect("properties");
    for key in env.as_object().expect("object").keys() {
        assert!(props.contains_key(key), "schema lacks `{key}`");
    }
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["type"]["const"], "ProposalSubmitted");
    let data_props = schema["properties"]["data"]["properties"]
        .as_object()
        .expect("typed data");
    for key in env["data"].as_object().expect("data").keys() {
        assert!(data_props.contains_key(key), "data schema lacks `{key}`");
    }
}
