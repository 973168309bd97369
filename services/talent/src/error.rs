use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_service::error::error_response;
use kaip_service::CommonError;
use uuid::Uuid;

/// Everything the talent service refuses, each with a stable code; messages start with the
/// field at fault.
#[derive(Debug, thiserror::Error)]
pub enum TalentError {
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("consortium_id: consortium {0} is not a selected team: the talent service learns selections from SelectionPublished")]
    TeamNotSelected(Uuid),
    #[error("position_id: position {0} does not exist")]
    PositionNotFound(Uuid),
    #[error("researcher_id: researcher {0} does not exist")]
    ResearcherNotFound(Uuid),
    #[error("match {0} does not exist")]
    MatchNotFound(Uuid),
    #[error("hire_id: hire {0} does not exist")]
    HireNotFound(Uuid),
    #[error("round {0} does not exist")]
    RoundNotFound(Uuid),
    #[error("match {0} was already answered ({1})")]
    MatchAlreadyAnswered(Uuid, &'static str),
    #[error("researcher_id: researcher {0} already holds an active hire ({1}): a researcher holds at most one")]
    ResearcherAlreadyHired(Uuid, Uuid),
    #[error("position_id: position {0} is filled ({1} of {1} places)")]
    PositionFilled(Uuid, i32),
    #[error("start_date: the hire starts on {0}, before the team was selected on {1} (KST)")]
    HireBeforeSelection(chrono::NaiveDate, chrono::NaiveDate),
    #[error("month: {0} is outside the hire ({1} to {2})")]
    MonthOutsideHire(String, chrono::NaiveDate, chrono::NaiveDate),
    #[error("month: {0} was already claimed for this hire (claim {1})")]
    MonthAlreadyClaimed(String, Uuid),
    #[error("month: the team was eliminated at {0} on {1} (KST): no funding after {2}")]
    FundingStopped(String, chrono::NaiveDate, String),
    #[error("consortium_id: the team's company size and openness are not known; an officer records them (PUT /teams/{0}/terms)")]
    TeamTermsUnknown(Uuid),
    #[error("researcher_id: researcher {0} was erased")]
    ResearcherErased(Uuid),
    #[error("researcher_id: researcher {0} did not apply to position {1}")]
    NotAnApplicant(Uuid, Uuid),
    #[error("match {0} expired: it was never answered and round {1} has run since; a proposal can be answered only until the next round")]
    MatchExpired(Uuid, Uuid),
    #[error("hire_id: hire {0} was already ended on {1} ({2})")]
    HireAlreadyEnded(Uuid, chrono::NaiveDate, String),
    #[error("month: the claims of fiscal year {0} would total more than KRW {max} (the largest amount the books hold); nothing was claimed", max = i64::MAX)]
    ClaimTotalOutOfRange(i32),
}

impl TalentError {
    pub fn code(&self) -> &'static str {
        match self {
            TalentError::Common(e) => e.code(),
            TalentError::TeamNotSelected(_) => "TEAM_NOT_SELECTED",
            TalentError::PositionNotFound(_) => "POSITION_NOT_FOUND",
            TalentError::ResearcherNotFound(_) => "RESEARCHER_NOT_FOUND",
            TalentError::MatchNotFound(_) => "MATCH_NOT_FOUND",
            TalentError::HireNotFound(_) => "HIRE_NOT_FOUND",
            TalentError::RoundNotFound(_) => "ROUND_NOT_FOUND",
            TalentError::MatchAlreadyAnswered(..) => "MATCH_ALREADY_ANSWERED",
            TalentError::ResearcherAlreadyHired(..) => "RESEARCHER_ALREADY_HIRED",
            TalentError::PositionFilled(..) => "POSITION_FILLED",
            TalentError::HireBeforeSelection(..) => "HIRE_BEFORE_SELECTION",
            TalentError::MonthOutsideHire(..) => "MONTH_OUTSIDE_HIRE",
            TalentError::MonthAlreadyClaimed(..) => "MONTH_ALREADY_CLAIMED",
            TalentError::FundingStopped(..) => "FUNDING_STOPPED",
            TalentError::TeamTermsUnknown(_) => "TEAM_TERMS_UNKNOWN",
            TalentError::ResearcherErased(_) => "RESEARCHER_ERASED",
            TalentError::NotAnApplicant(..) => "NOT_AN_APPLICANT",
            TalentError::MatchExpired(..) => "MATCH_EXPIRED",
            TalentError::HireAlreadyEnded(..) => "HIRE_ALREADY_ENDED",
            TalentError::ClaimTotalOutOfRange(_) => "CLAIM_TOTAL_OUT_OF_RANGE",
        }
    }

    pub fn validation(field: impl Into<String>, rule: impl Into<String>) -> Self {
        TalentError::Common(CommonError::validation(field, rule))
    }
}

impl From<AuthError> for TalentError {
    fn from(e: AuthError) -> Self {
        TalentError::Common(e.into())
    }
}

impl From<diesel::result::Error> for TalentError {
    fn from(e: diesel::result::Error) -> Self {
        TalentError::Common(e.into())
    }
}

impl From<crate::domain::funds::Invalid> for TalentError {
    fn from(v: crate::domain::funds::Invalid) -> Self {
        TalentError::validation(v.field, v.rule)
    }
}

impl ResponseError for TalentError {
    fn status_code(&self) -> StatusCode {
        match self {
            TalentError::Common(e) => e.status(),
            TalentError::TeamNotSelected(_)
            | TalentError::PositionNotFound(_)
            | TalentError::ResearcherNotFound(_)
            | TalentError::MatchNotFound(_)
            | TalentError::HireNotFound(_)
            | TalentError::RoundNotFound(_) => StatusCode::NOT_FOUND,
            TalentError::HireBeforeSelection(..)
            | TalentError::MonthOutsideHire(..)
            | TalentError::NotAnApplicant(..)
            | TalentError::ClaimTotalOutOfRange(_)
            | TalentError::TeamTermsUnknown(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            TalentError::Common(e) => e.error_response(),
            _ => error_response(self.status_code(), self.code(), self.to_string()),
        }
    }
}

impl kaip_service::retry::DatabaseFailure for TalentError {
    fn database_error(&self) -> Option<&diesel::result::Error> {
        match self {
            TalentError::Common(e) => kaip_service::retry::DatabaseFailure::database_error(e),
            _ => None,
        }
    }
}
