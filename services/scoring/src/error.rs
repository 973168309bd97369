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
    #[error(
        "call {0} is unknown to scoring (not opened, or its CallOpened event is not yet processed)"
    )]
    CallNotFound(uuid::Uuid),
    #[error("call {0} has no evaluation settings yet: configure them first")]
    NotConfigured(uuid::Uuid),
    #[error("{0}")]
    Conflict(String),
    #[error("reviewer `{0}` is not registered")]
    ReviewerNotFound(String),
    #[error("assignment {0} does not exist")]
    AssignmentNotFound(uuid::Uuid),
    #[error("{0}")]
    StageIncomplete(String),
    #[error("{0}")]
    Selection(String),
    #[error("call {0} has no published decision yet")]
    NotPublished(uuid::Uuid),
    #[error("gate panel {0} does not exist")]
    PanelNotFound(uuid::Uuid),
    #[error("gate {0} already has an expert panel")]
    PanelExists(String),
    #[error(
        "the expert panel of {0} closed at {1}: its assignments and scores can no longer change"
    )]
    PanelClosed(String, chrono::DateTime<chrono::Utc>),
    #[error("the expert panel {0} of {1} was voided at {2}: it takes no assignments, sheets or close; create a new panel for the gate")]
    PanelVoided(uuid::Uuid, String, chrono::DateTime<chrono::Utc>),
    #[error("gate: no gate `{0}` is known to scoring (gate_key): milestones announces each gate it defines (GateDefined); check the key, or, if the gate was defined a moment ago, its announcement may not have arrived yet: retry in a few seconds")]
    GateUnknown(String),
    #[error("appeal {0} does not exist")]
    AppealNotFound(uuid::Uuid),
    #[error("call {call} takes submissions until {closes_at}: evaluation (stage 0) starts after the deadline, when every proposal is in")]
    SubmissionsOpen {
        call: uuid::Uuid,
        closes_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("{0}")]
    TieUnresolved(String),
    /// An override breaks a rule of the call without waiving it: `{field}: {rule}`.
    #[error("override.waivers: {rule}; to decide so anyway, waive `{waiver}` explicitly")]
    OverrideBreaksRules { waiver: String, rule: String },
    /// Publishing a proposal some input of the decision was recorded after.
    #[error("version {version} cannot be published: a publication rests on every input that can still change it, and after version {version} was proposed the record gained {}; propose the selection again", .later.join("; "))]
    ProposalOutdated { version: i32, later: Vec<String> },
    #[error("`{0}` is not on this replacement call's committee")]
    NotOnCommittee(String),
    #[error("version {version} has {approvals} approvals of a committee of {committee}: publishing a replacement call's selection needs a majority ({needed})")]
    NoMajority {
        version: i32,
        approvals: i64,
        committee: usize,
        needed: usize,
    },
    #[error("version.{voted}: the current proposal is version {current}; read it and vote on that version")]
    VoteVersionStale { voted: i32, current: i32 },
    #[error("`{voter}` has already voted on version {version}")]
    AlreadyVoted { voter: String, version: i32 },
    #[error("call {0} is not a replacement call: its selection has no committee vote")]
    NotReplacementCall(uuid::Uuid),
    #[error("call {0} was cancelled at {1}: it takes no further step")]
    CallCancelled(uuid::Uuid, chrono::DateTime<chrono::Utc>),
}

impl ScoringError {
    pub fn code(&self) -> &'static str {
        match self {
            ScoringError::Common(e) => e.code(),
            ScoringError::CaseNotFound(_) => "EVALUATION_CASE_NOT_FOUND",
            ScoringError::CallNotFound(_) => "CALL_NOT_FOUND",
            ScoringError::NotConfigured(_) => "EVALUATION_NOT_CONFIGURED",
            ScoringError::Conflict(_) => "STATE_CONFLICT",
            ScoringError::ReviewerNotFound(_) => "REVIEWER_NOT_FOUND",
            ScoringError::AssignmentNotFound(_) => "ASSIGNMENT_NOT_FOUND",
            ScoringError::StageIncomplete(_) => "STAGE_INCOMPLETE",
            ScoringError::Selection(_) => "SELECTION_INFEASIBLE",
            ScoringError::NotPublished(_) => "DECISION_NOT_PUBLISHED",
            ScoringError::AppealNotFound(_) => "APPEAL_NOT_FOUND",
            ScoringError::PanelNotFound(_) => "PANEL_NOT_FOUND",
            ScoringError::PanelExists(_) => "PANEL_EXISTS",
            ScoringError::PanelClosed(..) => "PANEL_CLOSED",
            ScoringError::PanelVoided(..) => "PANEL_VOIDED",
            ScoringError::GateUnknown(_) => "GATE_NOT_FOUND",
            ScoringError::SubmissionsOpen { .. } => "SUBMISSIONS_STILL_OPEN",
            ScoringError::TieUnresolved(_) => "TIE_UNRESOLVED",
            ScoringError::OverrideBreaksRules { .. } => "OVERRIDE_BREAKS_RULES",
            ScoringError::ProposalOutdated { .. } => "PROPOSAL_OUTDATED",
            ScoringError::NotOnCommittee(_) => "NOT_ON_COMMITTEE",
            ScoringError::NoMajority { .. } => "NO_MAJORITY",
            ScoringError::AlreadyVoted { .. } => "ALREADY_VOTED",
            ScoringError::VoteVersionStale { .. } => "VOTE_VERSION_STALE",
            ScoringError::NotReplacementCall(_) => "NOT_A_REPLACEMENT_CALL",
            ScoringError::CallCancelled(..) => "CALL_CANCELLED",
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

impl From<crate::domain::rubric::Violation> for ScoringError {
    fn from(v: crate::domain::rubric::Violation) -> Self {
        ScoringError::Common(CommonError::validation(v.field, v.rule))
    }
}

impl ResponseError for ScoringError {
    fn status_code(&self) -> StatusCode {
        match self {
            ScoringError::Common(e) => e.status(),
            ScoringError::CaseNotFound(_)
            | ScoringError::CallNotFound(_)
            | ScoringError::ReviewerNotFound(_)
            | ScoringError::AssignmentNotFound(_)
            | ScoringError::AppealNotFound(_)
            | ScoringError::PanelNotFound(_) => StatusCode::NOT_FOUND,
            ScoringError::NotOnCommittee(_) => StatusCode::FORBIDDEN,
            ScoringError::Selection(_)
            | ScoringError::OverrideBreaksRules { .. }
            | ScoringError::GateUnknown(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ScoringError::Common(e) => e.error_response(),
            _ => error_response(self.status_code(), self.code(), self.to_string()),
        }
    }
}
