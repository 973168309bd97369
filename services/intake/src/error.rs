use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_contracts::{CallId, ProposalId};
use kaip_service::error::error_response;
use kaip_service::CommonError;

/// Everything intake can refuse, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("call {0} does not exist")]
    CallNotFound(CallId),
    #[error("proposal {0} does not exist")]
    ProposalNotFound(ProposalId),
    #[error("call {0} is not open for submissions yet")]
    CallNotOpen(CallId),
    #[error("call {0} closed for submissions at its deadline")]
    CallClosed(CallId),
    #[error("this consortium has already submitted a proposal to call {0}")]
    AlreadySubmitted(CallId),
}

impl IntakeError {
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::Common(e) => e.code(),
            IntakeError::CallNotFound(_) => "CALL_NOT_FOUND",
            IntakeError::ProposalNotFound(_) => "PROPOSAL_NOT_FOUND",
            IntakeError::CallNotOpen(_) => "CALL_NOT_OPEN",
            IntakeError::CallClosed(_) => "CALL_CLOSED",
            IntakeError::AlreadySubmitted(_) => "PROPOSAL_ALREADY_SUBMITTED",
        }
    }
}

impl From<AuthError> for IntakeError {
    fn from(e: AuthError) -> Self {
        IntakeError::Common(e.into())
    }
}

impl From<diesel::result::Error> for IntakeError {
    fn from(e: diesel::result::Error) -> Self {
        IntakeError::Common(e.into())
    }
}

impl From<crate::domain::Violation> for IntakeError {
    fn from(v: crate::domain::Violation) -> Self {
        IntakeError::Common(CommonError::validation(v.field, v.rule))
    }
}

impl ResponseError for IntakeError {
    fn status_code(&self) -> StatusCode {
        match self {
            IntakeError::Common(e) => e.status(),
            IntakeError::CallNotFound(_) | IntakeError::ProposalNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            IntakeError::CallNotOpen(_)
            | IntakeError::CallClosed(_)
            | IntakeError::AlreadySubmitted(_) => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let IntakeError::Common(e) = self {
            return e.error_response();
        }
        error_response(self.status_code(), self.code(), self.to_string())
    }
}
