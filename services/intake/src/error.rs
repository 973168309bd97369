use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_contracts::{CallId, ConsortiumId, ProposalId};
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
    #[error("programme {0} does not exist")]
    ProgrammeNotFound(uuid::Uuid),
    #[error("a programme named `{0}` already exists for fiscal year {1}")]
    ProgrammeExists(String, i32),
    #[error("consortium {0} has not registered its members yet: PUT its profile first")]
    ConsortiumNotRegistered(ConsortiumId),
    #[error("call {0} is not open for submissions yet")]
    CallNotOpen(CallId),
    #[error("call {0} closed for submissions at its deadline")]
    CallClosed(CallId),
    #[error("call {0} has been decided: proposals can no longer change")]
    CallDecided(CallId),
    #[error("this consortium already has a proposal for call {0}")]
    AlreadyApplied(CallId),
    #[error("proposal {0} was already submitted with another idempotency key")]
    AlreadySubmitted(ProposalId),
    #[error("proposal {id} is {status}: only a draft can be changed or submitted")]
    NotADraft { id: ProposalId, status: String },
    #[error("proposal {id} is {status}: only a submitted proposal can be withdrawn")]
    NotSubmitted { id: ProposalId, status: String },
    #[error("proposal {0}'s withdrawal was refused: the call's decision was published before it reached evaluation, so the proposal keeps its result and cannot be withdrawn again")]
    WithdrawalRefused(ProposalId),
    #[error("the proposal is not eligible: {}", .0.join("; "))]
    NotEligible(Vec<String>),
    #[error("no `{0}` document on this proposal")]
    DocumentNotFound(String),
    #[error("replaces.gate: intake has not seen gate `{0}` decided (milestones' `GateDecided`)")]
    GateNotDecided(String),
    #[error("replaces.places: {places} places asked, but gate `{gate}` freed {free} (eliminated {eliminated}, already filled by earlier replacement calls {filled})")]
    PlacesExceedFreed {
        gate: String,
        places: i32,
        eliminated: usize,
        filled: i64,
        free: i64,
    },
    #[error("replaces.committee: a replacement call's committee needs at least 3 distinct members, got {0}")]
    CommitteeTooSmall(usize),
    #[error("replaces.committee: a replacement call's committee has at most 15 distinct members, named in at most 60 entries; got {0}")]
    CommitteeTooLarge(usize),
    #[error("consortium {consortium} already holds a place in the programme (selected by call {call}{matched}, not eliminated): a replacement call fills places for others")]
    HoldsPlace {
        consortium: ConsortiumId,
        call: uuid::Uuid,
        matched: String,
    },
    #[error("call {0} is not a replacement call: only a replacement call is cancelled this way")]
    NotReplacementCall(CallId),
    #[error("call {0} was cancelled: it takes no further step")]
    CallCancelled(CallId),
    #[error("replacement calls wait: intake does not know whom {count} decided call(s) of the programme selected (e.g. call {example}, decided before intake recorded selections), so it cannot tell survivors from newcomers")]
    SelectionsUnknown { count: usize, example: uuid::Uuid },
    #[error("replaces.gate: gate `{0}` already has an open replacement call ({1})")]
    ReplacementCallExists(String, String),
    #[error(
        "consortium {0} was eliminated at gate `{1}`{2}: it may not apply to a replacement call"
    )]
    EliminatedAtGate(ConsortiumId, String, String),
}

impl IntakeError {
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::Common(e) => e.code(),
            IntakeError::CallNotFound(_) => "CALL_NOT_FOUND",
            IntakeError::ProposalNotFound(_) => "PROPOSAL_NOT_FOUND",
            IntakeError::ProgrammeNotFound(_) => "PROGRAMME_NOT_FOUND",
            IntakeError::ProgrammeExists(..) => "PROGRAMME_EXISTS",
            IntakeError::ConsortiumNotRegistered(_) => "CONSORTIUM_NOT_REGISTERED",
            IntakeError::CallNotOpen(_) => "CALL_NOT_OPEN",
            IntakeError::CallClosed(_) => "CALL_CLOSED",
            IntakeError::CallDecided(_) => "CALL_DECIDED",
            IntakeError::AlreadyApplied(_) => "PROPOSAL_ALREADY_EXISTS",
            IntakeError::AlreadySubmitted(_) => "PROPOSAL_ALREADY_SUBMITTED",
            IntakeError::NotADraft { .. } => "PROPOSAL_NOT_A_DRAFT",
            IntakeError::NotSubmitted { .. } => "PROPOSAL_NOT_SUBMITTED",
            IntakeError::WithdrawalRefused(_) => "WITHDRAWAL_ALREADY_REFUSED",
            IntakeError::NotEligible(_) => "PROPOSAL_NOT_ELIGIBLE",
            IntakeError::DocumentNotFound(_) => "DOCUMENT_NOT_FOUND",
            IntakeError::GateNotDecided(_) => "GATE_NOT_DECIDED",
            IntakeError::PlacesExceedFreed { .. } => "PLACES_EXCEED_FREED",
            IntakeError::CommitteeTooSmall(_) => "COMMITTEE_TOO_SMALL",
            IntakeError::CommitteeTooLarge(_) => "COMMITTEE_TOO_LARGE",
            IntakeError::HoldsPlace { .. } => "ALREADY_HOLDS_PLACE",
            IntakeError::NotReplacementCall(_) => "NOT_A_REPLACEMENT_CALL",
            IntakeError::CallCancelled(_) => "CALL_CANCELLED",
            IntakeError::SelectionsUnknown { .. } => "SELECTIONS_UNKNOWN",
            IntakeError::ReplacementCallExists(..) => "REPLACEMENT_CALL_EXISTS",
            IntakeError::EliminatedAtGate(..) => "ELIMINATED_AT_GATE",
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
            IntakeError::CallNotFound(_)
            | IntakeError::ProposalNotFound(_)
            | IntakeError::ProgrammeNotFound(_)
            | IntakeError::DocumentNotFound(_) => StatusCode::NOT_FOUND,
            IntakeError::NotEligible(_)
            | IntakeError::CommitteeTooSmall(_)
            | IntakeError::CommitteeTooLarge(_)
            | IntakeError::PlacesExceedFreed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            IntakeError::EliminatedAtGate(..) | IntakeError::HoldsPlace { .. } => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let IntakeError::Common(e) = self {
            return e.error_response();
        }
        error_response(self.status_code(), self.code(), self.to_string())
    }
}
