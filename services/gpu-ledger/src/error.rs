use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_service::error::error_response;
use kaip_service::CommonError;
use uuid::Uuid;

/// Everything the ledger refuses at the request level, each with a stable code. (A refused
/// transfer inside a batch is a per-transfer result with its own code, see
/// [`crate::domain::ledger::TransferError`].)
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("account {0} does not exist")]
    AccountNotFound(Uuid),
    #[error("transfer {0} does not exist")]
    TransferNotFound(Uuid),
    #[error("GPU model `{0}` is not in the catalogue")]
    ModelNotFound(String),
    #[error("id: an account with this id exists with a different `{0}`; choose a new id for a new account")]
    AccountExistsWithDifferentFields(&'static str),
    #[error("{0}")]
    AccountConflict(String),
    #[error("consortium {0} was not selected in call {1}: the ledger learns selections from SelectionPublished")]
    TeamNotSelected(Uuid, Uuid),
    #[error("offer {0} does not exist")]
    OfferNotFound(Uuid),
    #[error("offer {0} expired at {1}: it can no longer be accepted")]
    OfferExpired(Uuid, chrono::DateTime<chrono::Utc>),
    #[error("offer {0} was already accepted (option {1})")]
    OfferAlreadyAccepted(Uuid, i32),
    #[error("consortium_id: consortium {0} was eliminated at {1}: an eliminated team receives no GPU offer or grant")]
    TeamEliminated(Uuid, String),
    #[error(
        "id: an offer with this id exists with different fields; choose a new id for a new offer"
    )]
    OfferExistsWithDifferentFields,
    #[error("{field}: there is no pool of {model} for {period}; open one first")]
    PoolNotFound {
        field: String,
        model: String,
        period: String,
    },
    /// A single transfer refused (the one-transfer endpoints use this; batches report per
    /// transfer).
    #[error("{message}")]
    Transfer { code: &'static str, message: String },
}

impl LedgerError {
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Common(e) => e.code(),
            LedgerError::AccountNotFound(_) => "ACCOUNT_NOT_FOUND",
            LedgerError::TransferNotFound(_) => "TRANSFER_NOT_FOUND",
            LedgerError::ModelNotFound(_) => "GPU_MODEL_NOT_FOUND",
            LedgerError::AccountExistsWithDifferentFields(_) => {
                "ACCOUNT_EXISTS_WITH_DIFFERENT_FIELDS"
            }
            LedgerError::AccountConflict(_) => "ACCOUNT_CONFLICT",
            LedgerError::TeamNotSelected(..) => "TEAM_NOT_SELECTED",
            LedgerError::OfferNotFound(_) => "OFFER_NOT_FOUND",
            LedgerError::OfferExpired(..) => "OFFER_EXPIRED",
            LedgerError::OfferAlreadyAccepted(..) => "OFFER_ALREADY_ACCEPTED",
            LedgerError::TeamEliminated(..) => "TEAM_ELIMINATED",
            LedgerError::OfferExistsWithDifferentFields => "OFFER_EXISTS_WITH_DIFFERENT_FIELDS",
            LedgerError::PoolNotFound { .. } => "POOL_NOT_FOUND",
            LedgerError::Transfer { code, .. } => code,
        }
    }

    pub fn validation(field: impl Into<String>, rule: impl Into<String>) -> Self {
        LedgerError::Common(CommonError::validation(field, rule))
    }
}

impl From<AuthError> for LedgerError {
    fn from(e: AuthError) -> Self {
        LedgerError::Common(e.into())
    }
}

impl From<diesel::result::Error> for LedgerError {
    fn from(e: diesel::result::Error) -> Self {
        LedgerError::Common(e.into())
    }
}

impl From<crate::domain::catalogue::Invalid> for LedgerError {
    fn from(v: crate::domain::catalogue::Invalid) -> Self {
        LedgerError::validation(v.field, v.rule)
    }
}

impl From<crate::domain::offers::Refusal> for LedgerError {
    fn from(r: crate::domain::offers::Refusal) -> Self {
        LedgerError::validation(r.field, r.rule)
    }
}

impl ResponseError for LedgerError {
    fn status_code(&self) -> StatusCode {
        match self {
            LedgerError::Common(e) => e.status(),
            LedgerError::AccountNotFound(_)
            | LedgerError::TransferNotFound(_)
            | LedgerError::ModelNotFound(_)
            | LedgerError::TeamNotSelected(..)
            | LedgerError::OfferNotFound(_) => StatusCode::NOT_FOUND,
            LedgerError::PoolNotFound { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            LedgerError::Transfer { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            LedgerError::Common(e) => e.error_response(),
            _ => error_response(self.status_code(), self.code(), self.to_string()),
        }
    }
}

impl kaip_service::retry::DatabaseFailure for LedgerError {
    fn database_error(&self) -> Option<&diesel::result::Error> {
        match self {
            LedgerError::Common(e) => kaip_service::retry::DatabaseFailure::database_error(e),
            _ => None,
        }
    }
}
