use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_service::error::error_response;
use kaip_service::CommonError;

/// Everything scoring can refuse, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("no evaluation case for {0}")]
    CaseNotFound(String),
}

impl ScoringError {
    pub fn code(&self) -> &'static str {
        match self {
            ScoringError::Common(e) => e.code(),
            ScoringError::CaseNotFound(_) => "EVALUATION_CASE_NOT_FOUND",
        }
    }
}

impl From<AuthError> for ScoringError {
    fn from(e: AuthError) -> Self {
        ScoringError::Common(e.into())
    }
}

impl From<diesel::result::Error> for ScoringError {
    fn from(e: diesel::result::Error) -> Self {
        ScoringError::Common(e.into())
    }
}

impl ResponseError for ScoringError {
    fn status_code(&self) -> StatusCode {
        match self {
            ScoringError::Common(e) => e.status(),
            ScoringError::CaseNotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ScoringError::Common(e) => e.error_response(),
            _ => error_response(self.status_code(), self.code(), self.to_string()),
        }
    }
}
