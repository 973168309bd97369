use serde::{Deserialize, Serialize};

/// The JSON body of every error a K-AIP service returns: a stable machine-readable code
/// (clients and the gateway branch on it) and a message for people that names the field and
/// the rule. Causes stay in the service's log, never in this body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}
