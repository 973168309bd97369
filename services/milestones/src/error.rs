use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kaip_auth::AuthError;
use kaip_service::error::error_response;
use kaip_service::CommonError;
use uuid::Uuid;

/// Everything the milestones service refuses, each with a stable code; messages start
/// with the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum MilestonesError {
    #[error(transparent)]
    Common(#[from] CommonError),
    #[error("consortium_id: consortium {0} is not a selected team: the milestones service learns selections from SelectionPublished")]
    TeamNotSelected(Uuid),
    #[error("deliverable {0} does not exist")]
    DeliverableNotFound(Uuid),
    #[error("deliverable {0} is closed ({1}): nothing more can be submitted or decided on it")]
    DeliverableClosed(Uuid, String),
    #[error("reason: a verdict needs a reason (why it is approved, sent back or rejected)")]
    VerdictReasonRequired,
    #[error("verdict: deliverable {0} has no evidence to approve")]
    EvidenceRequired(Uuid),
    #[error("evidence_id: evidence {0} does not exist")]
    EvidenceNotFound(Uuid),
    #[error("evidence_id: evidence {0} is not usable as a gate input: {1}")]
    EvidenceNotUsable(Uuid, String),
    #[error("gate {0} does not exist")]
    GateNotFound(String),
    #[error(
        "key: gate {0} already exists (a gate is defined once; its decision is never overwritten)"
    )]
    GateExists(String),
    #[error("{0}")]
    GateWeights(String),
    #[error("gate {0} was published on {1}: its decision and inputs are final")]
    GatePublished(String, chrono::DateTime<chrono::Utc>),
    #[error("consortium_id: team {0} has no input for component {1}")]
    GateInputMissing(Uuid, String),
    #[error("grounds: an eligibility verdict needs its grounds")]
    GroundsRequired,
    #[error("consortium_id: team {0} has no eligibility verdict on rule {1}")]
    EligibilityMissing(Uuid, String),
    #[error("proposal {0} does not exist")]
    ProposalNotFound(Uuid),
    #[error("proposal_id: proposal {0} was superseded by proposal {1}: only the gate's latest proposal can be voted on or published")]
    ProposalSuperseded(Uuid, Uuid),
    #[error("{0} is not on gate {1}'s committee")]
    NotOnCommittee(String, String),
    #[error("{0} already voted on proposal {1} (a vote is cast once)")]
    AlreadyVoted(String, Uuid),
    #[error("proposal_id: {0} of the committee's {1} approved proposal {2}; publishing needs more than half")]
    NoMajority(i32, i32, Uuid),
    #[error("proposal_id: inputs or eligibility verdicts changed after proposal {0} was made: make a new proposal for the committee")]
    ProposalStale(Uuid),
    #[error("committee: {0} distinct member(s); a gate's committee has at least {1}, so that no officer can decide a gate alone")]
    CommitteeTooSmall(usize, usize),
    #[error("evidence_version: version {1} is not deliverable {0}'s latest evidence (version {2}): review the latest version before deciding on it")]
    EvidenceNotLatest(Uuid, i32, i32),
    #[error("gate {0} has no published result for team {1}")]
    ResultNotPublished(String, Uuid),
    /// An event delivered a value for an input its source already recorded otherwise.
    #[error("{0}")]
    GateInputConflict(String),
    #[error("id: deliverable {0} exists with other fields (team, phase, title, description, acceptance criteria or due date): a retry sends the same fields, a new deliverable a new id")]
    DeliverableIdConflict(Uuid),
    /// A benchmark result measured before the latest one recorded for the same input.
    #[error("{0}")]
    GateInputStale(String),
}

impl MilestonesError {
    pub fn code(&self) -> &'static str {
        use MilestonesError as E;
        match self {
            E::Common(e) => e.code(),
            E::TeamNotSelected(_) => "TEAM_NOT_SELECTED",
            E::DeliverableNotFound(_) => "DELIVERABLE_NOT_FOUND",
            E::DeliverableClosed(..) => "DELIVERABLE_CLOSED",
            E::VerdictReasonRequired => "VERDICT_REASON_REQUIRED",
            E::EvidenceRequired(_) => "EVIDENCE_REQUIRED",
            E::EvidenceNotFound(_) => "EVIDENCE_NOT_FOUND",
            E::EvidenceNotUsable(..) => "EVIDENCE_NOT_USABLE",
            E::GateNotFound(_) => "GATE_NOT_FOUND",
            E::GateExists(_) => "GATE_EXISTS",
            E::GateInputConflict(_) => "GATE_INPUT_CONFLICT",
            E::GateInputStale(_) => "GATE_INPUT_STALE",
            E::GateWeights(_) => "GATE_WEIGHTS",
            E::GatePublished(..) => "GATE_PUBLISHED",
            E::GateInputMissing(..) => "GATE_INPUT_MISSING",
            E::GroundsRequired => "GROUNDS_REQUIRED",
            E::EligibilityMissing(..) => "ELIGIBILITY_MISSING",
            E::ProposalNotFound(_) => "PROPOSAL_NOT_FOUND",
            E::ProposalSuperseded(..) => "PROPOSAL_SUPERSEDED",
            E::NotOnCommittee(..) => "NOT_ON_COMMITTEE",
            E::AlreadyVoted(..) => "ALREADY_VOTED",
            E::NoMajority(..) => "NO_MAJORITY",
            E::ResultNotPublished(..) => "RESULT_NOT_PUBLISHED",
            E::DeliverableIdConflict(_) => "DELIVERABLE_ID_CONFLICT",
            E::ProposalStale(_) => "PROPOSAL_STALE",
            E::CommitteeTooSmall(..) => "COMMITTEE_TOO_SMALL",
            E::EvidenceNotLatest(..) => "EVIDENCE_NOT_LATEST",
        }
    }

    pub fn validation(field: impl Into<String>, rule: impl Into<String>) -> Self {
        MilestonesError::Common(CommonError::validation(field, rule))
    }
}

impl From<AuthError> for MilestonesError {
    fn from(e: AuthError) -> Self {
        MilestonesError::Common(e.into())
    }
}

impl From<diesel::result::Error> for MilestonesError {
    fn from(e: diesel::result::Error) -> Self {
        MilestonesError::Common(e.into())
    }
}

impl From<crate::domain::Invalid> for MilestonesError {
    fn from(v: crate::domain::Invalid) -> Self {
        MilestonesError::validation(v.field, v.rule)
    }
}

impl ResponseError for MilestonesError {
    fn status_code(&self) -> StatusCode {
        use MilestonesError as E;
        match self {
            E::Common(e) => e.status(),
            E::TeamNotSelected(_)
            | E::DeliverableNotFound(_)
            | E::EvidenceNotFound(_)
            | E::GateNotFound(_)
            | E::ProposalNotFound(_)
            | E::ResultNotPublished(..) => StatusCode::NOT_FOUND,
            E::NotOnCommittee(..) => StatusCode::FORBIDDEN,
            E::VerdictReasonRequired
            | E::GroundsRequired
            | E::GateWeights(_)
            | E::CommitteeTooSmall(..) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            MilestonesError::Common(e) => e.error_response(),
            _ => error_response(self.status_code(), self.code(), self.to_string()),
        }
    }
}

impl kaip_service::retry::DatabaseFailure for MilestonesError {
    fn database_error(&self) -> Option<&diesel::result::Error> {
        match self {
            MilestonesError::Common(e) => kaip_service::retry::DatabaseFailure::database_error(e),
            _ => None,
        }
    }
}
