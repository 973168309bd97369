//! Scoring's rows and the queries its handlers share.

use crate::error::ScoringError;
use crate::schema::{calls, evaluation_cases};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::intake::{Member, Portfolio, ResourceRequest};
use kaip_contracts::dto::scoring::{EvaluationCase, EvaluationConfig};
use uuid::Uuid;

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = evaluation_cases)]
pub struct CaseRow {
    pub id: Uuid,
    pub proposal_id: Uuid,
    pub call_id: Uuid,
    pub consortium_id: Uuid,
    pub title: String,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub consortium_name: String,
    pub members: serde_json::Value,
    pub resources: serde_json::Value,
    pub stage: i32,
    pub submitted_at: DateTime<Utc>,
    pub portfolio: Option<serde_json::Value>,
}

impl CaseRow {
    pub fn members(&self) -> Vec<Member> {
        serde_json::from_value(self.members.clone()).unwrap_or_default()
    }

    pub fn portfolio(&self) -> Option<Portfolio> {
        self.portfolio
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// The portfolio categories the case belongs to: its members' and its track's.
    pub fn categories(&self) -> std::collections::BTreeSet<String> {
        let mut out = crate::domain::assign::categories(&self.members());
        out.extend(crate::domain::assign::track_categories(
            self.portfolio().as_ref(),
        ));
        out
    }

    pub fn resources(&self) -> ResourceRequest {
        serde_json::from_value(self.resources.clone()).unwrap_or_default()
    }

    pub fn dto(&self) -> EvaluationCase {
        EvaluationCase {
            id: self.id.into(),
            proposal_id: self.proposal_id.into(),
            call_id: self.call_id.into(),
            consortium_id: self.consortium_id.into(),
            title: self.title.clone(),
            status: self.status.clone(),
            stage: self.stage,
            opened_at: self.opened_at,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = calls)]
pub struct CallRow {
    pub id: Uuid,
    pub title: String,
    pub closes_at: DateTime<Utc>,
    pub config: Option<serde_json::Value>,
    pub published_at: Option<DateTime<Utc>>,
}

pub fn find_call(c: &mut PgConnection, id: Uuid, lock: bool) -> Result<CallRow, ScoringError> {
    let q = calls::table.find(id).select(CallRow::as_select());
    let row = if lock {
        q.for_update().first(c).optional()?
    } else {
        q.first(c).optional()?
    };
    row.ok_or(ScoringError::CallNotFound(id))
}

/// The call and its evaluation settings (which must exist).
pub fn configured_call(
    c: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<(CallRow, EvaluationConfig), ScoringError> {
    let call = find_call(c, id, lock)?;
    let config = call
        .config
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or(ScoringError::NotConfigured(id))?;
    Ok((call, config))
}

pub fn cases_of_call(c: &mut PgConnection, call: Uuid) -> QueryResult<Vec<CaseRow>> {
    evaluation_cases::table
        .filter(evaluation_cases::call_id.eq(call))
        .order(evaluation_cases::id.asc())
        .select(CaseRow::as_select())
        .load(c)
}

pub fn find_case_by_proposal(
    c: &mut PgConnection,
    proposal: Uuid,
) -> Result<CaseRow, ScoringError> {
    evaluation_cases::table
        .filter(evaluation_cases::proposal_id.eq(proposal))
        .select(CaseRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ScoringError::CaseNotFound(format!("proposal {proposal}")))
}
