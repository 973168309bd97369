use crate::domain::{Invalid, Shortfall};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_service::error::error_response;
use kaip_service::CommonError;
use uuid::Uuid;

/// Everything the data budget refuses, each with a stable code. Bad input names the field
/// and the rule in the message (`field: rule`).
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(transparent)]
    Common(#[from] CommonError),
    /// A rule of [`crate::domain`] refused the input.
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{0}: consortium {1} has no data budget: it was not selected by a published call (the budget learns selections from SelectionPublished)")]
    UnknownTeam(String, Uuid),
    #[error("{0}: consortium {1} has no budget for fiscal year {2}")]
    BudgetNotFound(String, Uuid, i32),
    #[error("{0}: consortium {1} was eliminated at {2}: an eliminated team commits nothing new (it keeps the data it bought)")]
    TeamEliminated(String, Uuid, String),
    #[error("{field}: consortium {team} lacks KRW {shortfall} in fiscal year {year} ({limit}: KRW {available} available)")]
    InsufficientBudget {
        field: String,
        team: Uuid,
        year: i32,
        limit: String,
        available: i64,
        shortfall: i64,
    },
    /// A programme configuration that would leave a team over its cap or a sub-limit.
    #[error("settings: consortium {team} would be KRW {shortfall} over {limit} in fiscal year {year} (what it has committed stands: a new maximum or carry-over rule must cover it)")]
    ProgrammeBelowCommitted {
        team: Uuid,
        year: i32,
        limit: String,
        shortfall: i64,
    },
    /// Something named does not exist (`COMMITMENT_NOT_FOUND`, ...).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{0}: a record with this key exists with different fields; choose a new key for a new record")]
    ExistsWithDifferentFields(&'static str),
    /// A state that refuses the operation (`COMMITMENT_ALREADY_CANCELLED`, ...).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
}

impl BudgetError {
    pub fn code(&self) -> &'static str {
        match self {
            BudgetError::Common(e) => e.code(),
            BudgetError::Invalid(i) => i.code,
            BudgetError::UnknownTeam(..) => "TEAM_UNKNOWN",
            BudgetError::BudgetNotFound(..) => "BUDGET_NOT_FOUND",
            BudgetError::TeamEliminated(..) => "TEAM_ELIMINATED",
            BudgetError::InsufficientBudget { .. } => "INSUFFICIENT_BUDGET",
            BudgetError::ProgrammeBelowCommitted { .. } => "PROGRAMME_BELOW_COMMITTED",
            BudgetError::NotFound { code, .. } | BudgetError::Refused { code, .. } => code,
            BudgetError::ExistsWithDifferentFields(_) => "EXISTS_WITH_DIFFERENT_FIELDS",
        }
    }

    pub fn invalid(code: &'static str, field: impl Into<String>, rule: impl Into<String>) -> Self {
        BudgetError::Invalid(Invalid::new(code, field, rule))
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        BudgetError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        BudgetError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn insufficient(field: impl Into<String>, team: Uuid, s: &Shortfall) -> Self {
        BudgetError::InsufficientBudget {
            field: field.into(),
            team,
            year: s.year,
            limit: match s.category {
                None => "the team's cap".to_owned(),
                Some(c) => format!("the {} sub-limit", c.as_str()),
            },
            available: s.available,
            shortfall: s.shortfall,
        }
    }
}

impl From<Invalid> for BudgetError {
    fn from(i: Invalid) -> Self {
        BudgetError::Invalid(i)
    }
}

impl From<AuthError> for BudgetError {
    fn from(e: AuthError) -> Self {
        BudgetError::Common(e.into())
    }
}

impl From<diesel::result::Error> for BudgetError {
    fn from(e: diesel::result::Error) -> Self {
        BudgetError::Common(e.into())
    }
}

impl ResponseError for BudgetError {
    fn status_code(&self) -> StatusCode {
        match self {
            BudgetError::Common(e) => e.status(),
            BudgetError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            BudgetError::UnknownTeam(..)
            | BudgetError::BudgetNotFound(..)
            | BudgetError::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            BudgetError::Common(e) => e.error_response(),
            _ => error_response(self.status_code(), self.code(), self.to_string()),
        }
    }
}

impl kaip_service::retry::DatabaseFailure for BudgetError {
    fn database_error(&self) -> Option<&diesel::result::Error> {
        match self {
            BudgetError::Common(e) => kaip_service::retry::DatabaseFailure::database_error(e),
            _ => None,
        }
    }
}
