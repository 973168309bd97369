//! JSON bodies of the services' HTTP APIs (the gateway is their only caller).

use crate::ids::{CallId, ConsortiumId, EvaluationCaseId, ProposalId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A page of a list. Every list endpoint pages: `limit` (1..=100, default 20) and an
/// opaque `after` cursor from the previous page's `next_cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub after: Option<String>,
}

pub mod intake {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OpenCall {
        pub title: String,
        pub opens_at: DateTime<Utc>,
        pub closes_at: DateTime<Utc>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Call {
        pub id: CallId,
        pub title: String,
        pub opens_at: DateTime<Utc>,
        pub closes_at: DateTime<Utc>,
        pub created_at: DateTime<Utc>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SubmitProposal {
        pub call_id: CallId,
        pub title: String,
        pub summary: String,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Proposal {
        pub id: ProposalId,
        pub call_id: CallId,
        pub consortium_id: ConsortiumId,
        pub title: String,
        pub summary: String,
        pub submitted_at: DateTime<Utc>,
    }
}

pub mod scoring {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct EvaluationCase {
        pub id: EvaluationCaseId,
        pub proposal_id: ProposalId,
        pub call_id: CallId,
        pub consortium_id: ConsortiumId,
        pub status: String,
        pub opened_at: DateTime<Utc>,
    }
}

/// `GET /health/ready`: each dependency's state, so an operator sees which one is down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub broker: String,
    /// Partitions the service's consumer currently holds (0 while its group is joining).
    pub assigned_partitions: usize,
}
