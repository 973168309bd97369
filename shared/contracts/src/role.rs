use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who a caller is to the programme. Carried in the JWT's `role` claim and in each event's
/// actor, and checked by the gateway *and* again by every service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Ministry administrators: everything an officer can do, plus platform operations.
    Admin,
    /// Ministry programme officers: run calls, scoring, selection and grants.
    Officer,
    /// Domestic and overseas experts: score only the proposals assigned to them.
    Reviewer,
    /// A consortium user: acts only for the consortium id in its token.
    Consortium,
    /// Machine clients (finance systems, the national R&D system, GPU operators).
    Integration,
    /// Emitted by the platform itself (a consumer reacting to an event).
    System,
}

impl Role {
    /// The roles a person or client can hold in a token. `System` is for events only.
    pub const TOKEN_ROLES: [Role; 5] = [
        Role::Admin,
        Role::Officer,
        Role::Reviewer,
        Role::Consortium,
        Role::Integration,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Officer => "officer",
            Role::Reviewer => "reviewer",
            Role::Consortium => "consortium",
            Role::Integration => "integration",
            Role::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "admin" => Role::Admin,
            "officer" => Role::Officer,
            "reviewer" => Role::Reviewer,
            "consortium" => Role::Consortium,
            "integration" => Role::Integration,
            "system" => Role::System,
            other => {
                return Err(format!(
                    "unknown role `{other}`: expected admin, officer, reviewer, consortium or integration"
                ))
            }
        })
    }
}
