//! Error plumbing shared by the services' own error enums: the JSON body, and auth
//! rejections as HTTP responses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_contracts::ErrorBody;

/// Builds the `{code, message}` response every service returns on error.
pub fn error_response(status: StatusCode, code: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody::new(code, message))
}

/// HTTP status for an auth failure: 401 for identity problems, 403 for permissions.
pub fn auth_status(e: &AuthError) -> StatusCode {
    if e.is_forbidden() {
        StatusCode::FORBIDDEN
    } else if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// An auth failure as a response (what the `Caller` extractor rejects with).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AuthRejection(#[from] pub AuthError);

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        auth_status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        error_response(self.status_code(), self.0.code(), self.0.to_string())
    }
}

/// Errors every service shares; each service's enum wraps these with `#[from]`.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{field}: {rule}")]
    Validation { field: String, rule: String },
    /// Details go to the log; the caller gets a reference only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl CommonError {
    pub fn validation(field: impl Into<String>, rule: impl Into<String>) -> Self {
        CommonError::Validation {
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        CommonError::Internal(e.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            CommonError::Auth(e) => e.code(),
            CommonError::Validation { .. } => "VALIDATION_FAILED",
            CommonError::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            CommonError::Auth(e) => auth_status(e),
            CommonError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CommonError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<diesel::result::Error> for CommonError {
    fn from(e: diesel::result::Error) -> Self {
        CommonError::internal(e)
    }
}

impl From<diesel::r2d2::PoolError> for CommonError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        CommonError::internal(e)
    }
}

impl From<kaip_bus::CheckoutError> for CommonError {
    fn from(e: kaip_bus::CheckoutError) -> Self {
        CommonError::internal(e)
    }
}

impl From<actix_web::error::BlockingError> for CommonError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        CommonError::internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

impl ResponseError for CommonError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }
    fn error_response(&self) -> HttpResponse {
        if let CommonError::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        error_response(self.status(), self.code(), self.to_string())
    }
}
