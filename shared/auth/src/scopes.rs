//! Integration scopes: what an `integration` token may read and which events it may receive.
//!
//! Integrations (finance systems, the national R&D system, GPU operators) get the least they
//! need. An integration token carries its scopes in the `scope` claim (a space-separated
//! string, as OAuth 2.0 issues them) or the `scp` claim (a string or an array, as some
//! identity providers issue them). An integration token without a scope may read the calls
//! (public information) and nothing else. Scopes do not widen what a role may do: they only
//! narrow the `integration` role; the other roles are governed by their role alone.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Consortium profiles, including members' business registration numbers.
pub const READ_CONSORTIA: &str = "read:consortia";
/// Submitted proposals: titles, summaries, requested resources, versions and the list of
/// their documents (names and hashes).
pub const READ_PROPOSALS: &str = "read:proposals";
/// The contents of proposal documents.
pub const READ_DOCUMENTS: &str = "read:documents";
/// Calls' evaluation settings (rubric, stages, portfolio constraints).
pub const READ_EVALUATION: &str = "read:evaluation";
/// Report GPU-hours used per team (GPU operators), to the GPU ledger.
pub const WRITE_GPU_USAGE: &str = "write:gpu-usage";
/// Record invoices and confirm payments of data purchases (finance systems), to the data
/// budget.
pub const WRITE_DATA_FINANCE: &str = "write:data-finance";
/// Register overseas researchers' profiles with the talent service, and read the open
/// positions they may apply to (recruiting agencies).
pub const WRITE_RESEARCHERS: &str = "write:researchers";

/// Every service's audit trail (`AuditRecorded`), in subscriptions: for an archive outside
/// the platform. Not implied by `events:<service>`.
pub const EVENTS_AUDIT: &str = "events:audit";

/// The services whose events an integration may be granted, as `events:<service>`.
pub const EVENT_PRODUCERS: [&str; 6] = [
    "intake",
    "scoring",
    "gpu-ledger",
    "data-budget",
    "talent",
    "milestones",
];

/// Every scope name, with what it grants (for documentation and the dev-token tool).
pub fn all() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        (
            READ_CONSORTIA.into(),
            "consortium profiles, including business registration numbers".into(),
        ),
        (
            READ_PROPOSALS.into(),
            "submitted proposals, their versions and document list".into(),
        ),
        (
            READ_DOCUMENTS.into(),
            "the contents of proposal documents".into(),
        ),
        (READ_EVALUATION.into(), "calls' evaluation settings".into()),
        (
            WRITE_GPU_USAGE.into(),
            "report GPU-hours used per team to the GPU ledger (GPU operators)".into(),
        ),
        (
            WRITE_DATA_FINANCE.into(),
            "record invoices and confirm payments of data purchases to the data budget (finance systems)".into(),
        ),
        (
            WRITE_RESEARCHERS.into(),
            "register overseas researchers with the talent service (recruiting agencies)".into(),
        ),
    ];
    for p in EVENT_PRODUCERS {
        out.push((
            events_scope(p),
            format!("events published by {p}, in subscriptions"),
        ));
    }
    out.push((
        EVENTS_AUDIT.into(),
        "every service's audit trail (AuditRecorded), in subscriptions".into(),
    ));
    out
}

/// Is `name` a scope this platform defines?
pub fn is_known(name: &str) -> bool {
    all().iter().any(|(s, _)| s == name)
}

/// The scope that lets an integration receive the events `producer` publishes.
pub fn events_scope(producer: &str) -> String {
    format!("events:{producer}")
}

/// The scopes a token carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(pub Vec<String>);

impl Scopes {
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.join(" "))
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Spaced(String),
            List(Vec<String>),
        }
        Ok(Scopes(match Raw::deserialize(d)? {
            Raw::Spaced(s) => s.split_whitespace().map(str::to_owned).collect(),
            Raw::List(v) => v,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_from_a_string_or_an_array() {
        let s: Scopes = serde_json::from_str(r#""read:calls events:gpu-ledger""#).unwrap();
        assert!(s.contains("events:gpu-ledger"));
        assert!(!s.contains("read:consortia"));
        let s: Scopes = serde_json::from_str(r#"["read:consortia"]"#).unwrap();
        assert!(s.contains("read:consortia"));
        assert_eq!(
            serde_json::to_string(&Scopes(vec!["a".into(), "b".into()])).unwrap(),
            r#""a b""#
        );
        assert!(is_known("events:gpu-ledger"));
        assert!(!is_known("events:everything"));
    }
}
