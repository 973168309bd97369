//! Intake's rows and the queries shared by its handlers and consumer.

use crate::error::IntakeError;
use crate::schema::{calls, consortium_versions, proposal_documents, proposals};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use kaip_bus::JsonbText;
use kaip_contracts::dto::intake::{
    Call, Consortium, ConsortiumVersion, Document, EligibilityRules, Member, Portfolio, Proposal,
    ResourceRequest, Withdrawal, WithdrawalRefusal,
};
use kaip_contracts::{CallId, ConsortiumId, ProposalId};
use uuid::Uuid;

#[derive(Queryable, Selectable)]
#[diesel(table_name = calls)]
pub struct CallRow {
    pub id: Uuid,
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub eligibility: serde_json::Value,
    pub required_documents: serde_json::Value,
    pub decided_at: Option<DateTime<Utc>>,
    pub programme_id: Option<Uuid>,
    pub replaces: Option<serde_json::Value>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// An officer asked to cancel it; scoring has not answered yet (or refused).
    pub cancel_requested_at: Option<DateTime<Utc>>,
}

/// Decodes a stored JSON value, or fails with an internal error (logged with `what`): a
/// stored value that does not decode is a fault to see, never a default to go on with.
pub fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    v: serde_json::Value,
) -> Result<T, IntakeError> {
    serde_json::from_value(v).map_err(|e| {
        kaip_service::CommonError::internal(anyhow::anyhow!("{what} does not decode: {e}")).into()
    })
}

/// Encodes a value for a JSON column (an internal error if it cannot be, never a null).
pub fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, IntakeError> {
    serde_json::to_value(v).map_err(|e| kaip_service::CommonError::internal(e).into())
}

impl CallRow {
    /// The call's link to a gate, if it is a replacement call. A stored link that does not
    /// decode is an internal error: read as "an ordinary call" it would let eliminated
    /// teams apply and switch the committee off.
    pub fn replacement(&self) -> Result<Option<kaip_contracts::events::Replacement>, IntakeError> {
        self.replaces
            .clone()
            .map(|v| decode(&format!("call {}: replaces", self.id), v))
            .transpose()
    }

    /// The call's eligibility rules; stored rules that do not decode are an internal error,
    /// never the default rules (which would let ineligible consortia in).
    pub fn rules(&self) -> Result<EligibilityRules, IntakeError> {
        decode(
            &format!("call {}: eligibility", self.id),
            self.eligibility.clone(),
        )
    }

    /// The documents the call requires (as [`CallRow::rules`]: never a silent default).
    pub fn required(&self) -> Result<Vec<String>, IntakeError> {
        decode(
            &format!("call {}: required documents", self.id),
            self.required_documents.clone(),
        )
    }

    pub fn into_dto(self) -> Result<Call, IntakeError> {
        Ok(Call {
            replaces: self.replacement()?,
            cancelled_at: self.cancelled_at,
            eligibility: self.rules()?,
            required_documents: self.required()?,
            id: self.id.into(),
            programme_id: self.programme_id,
            title: self.title,
            opens_at: self.opens_at,
            closes_at: self.closes_at,
            decided_at: self.decided_at,
            created_at: self.created_at,
        })
    }
}

pub fn find_call(c: &mut PgConnection, id: CallId) -> Result<CallRow, IntakeError> {
    calls::table
        .find(id.0)
        .select(CallRow::as_select())
        .first(c)
        .optional()?
        .ok_or(IntakeError::CallNotFound(id))
}

/// The call, read `FOR SHARE`: a draft or submission checked against it commits wholly
/// before a cancellation request (which takes the row `FOR UPDATE`) or sees it. Lock order:
/// the proposal, then the call.
pub fn find_call_shared(c: &mut PgConnection, id: CallId) -> Result<CallRow, IntakeError> {
    calls::table
        .find(id.0)
        .select(CallRow::as_select())
        .for_share()
        .first(c)
        .optional()?
        .ok_or(IntakeError::CallNotFound(id))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = proposals)]
pub struct ProposalRow {
    pub id: Uuid,
    pub call_id: Uuid,
    pub consortium_id: Uuid,
    pub title: String,
    pub summary: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub status: String,
    pub version: i32,
    /// The JSON columns are read as text and decoded once into their types (see
    /// [`JsonbText`]): a list of proposals reads a hundred of them.
    pub resources: JsonbText,
    pub idempotency_key: Option<String>,
    pub content_hash: Option<String>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawal_reason: Option<String>,
    pub withdrawn_by: Option<String>,
    pub withdrawal_refused_at: Option<DateTime<Utc>>,
    pub withdrawal_refusal: Option<String>,
    pub portfolio: Option<JsonbText>,
}

impl ProposalRow {
    pub fn resources(&self) -> ResourceRequest {
        self.resources.decode_or_default("proposals.resources")
    }

    pub fn portfolio(&self) -> Option<Portfolio> {
        self.portfolio
            .as_ref()
            .and_then(|v| v.decode_or_default("proposals.portfolio"))
    }

    pub fn into_dto(self, documents: Vec<Document>) -> Proposal {
        Proposal {
            resources: self.resources(),
            portfolio: self.portfolio(),
            id: self.id.into(),
            call_id: self.call_id.into(),
            consortium_id: self.consortium_id.into(),
            status: self.status,
            version: self.version,
            title: self.title,
            summary: self.summary,
            documents,
            submitted_at: self.submitted_at,
            content_hash: self.content_hash,
            withdrawal: match (self.withdrawn_at, self.withdrawal_reason) {
                (Some(withdrawn_at), Some(reason)) => Some(Withdrawal {
                    reason,
                    withdrawn_at,
                    withdrawn_by: self.withdrawn_by,
                }),
                _ => None,
            },
            withdrawal_refusal: match (self.withdrawal_refused_at, self.withdrawal_refusal) {
                (Some(refused_at), Some(reason)) => Some(WithdrawalRefusal { reason, refused_at }),
                _ => None,
            },
        }
    }
}

/// Loads a proposal, locking it for update when `lock` (writes serialise per proposal).
pub fn find_proposal(
    c: &mut PgConnection,
    id: ProposalId,
    lock: bool,
) -> Result<ProposalRow, IntakeError> {
    let q = proposals::table.find(id.0).select(ProposalRow::as_select());
    let row = if lock {
        q.for_update().first(c).optional()?
    } else {
        q.first(c).optional()?
    };
    row.ok_or(IntakeError::ProposalNotFound(id))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = proposal_documents)]
pub struct DocumentRow {
    pub kind: String,
    pub filename: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub uploaded_at: DateTime<Utc>,
}

pub fn documents(c: &mut PgConnection, proposal: Uuid) -> QueryResult<Vec<Document>> {
    Ok(documents_of(c, &[proposal])?
        .remove(&proposal)
        .unwrap_or_default())
}

/// The documents of many proposals in one query, by proposal, each list ordered by kind. A
/// page of proposals would otherwise cost a query per proposal.
pub fn documents_of(
    c: &mut PgConnection,
    proposals: &[Uuid],
) -> QueryResult<std::collections::HashMap<Uuid, Vec<Document>>> {
    let rows: Vec<(Uuid, DocumentRow)> = proposal_documents::table
        .filter(proposal_documents::proposal_id.eq_any(proposals))
        .order((
            proposal_documents::proposal_id.asc(),
            proposal_documents::kind.asc(),
        ))
        .select((proposal_documents::proposal_id, DocumentRow::as_select()))
        .load(c)?;
    let mut out: std::collections::HashMap<Uuid, Vec<Document>> = Default::default();
    for (proposal, d) in rows {
        out.entry(proposal).or_default().push(Document {
            kind: d.kind,
            filename: d.filename,
            sha256: d.sha256,
            size_bytes: d.size_bytes,
            uploaded_at: d.uploaded_at,
        });
    }
    Ok(out)
}

/// The current profile of a consortium: its latest version.
pub fn find_consortium(c: &mut PgConnection, id: ConsortiumId) -> QueryResult<Option<Consortium>> {
    Ok(consortium_versions(c, id, true)?.pop().map(|v| Consortium {
        id,
        name: v.name,
        members: v.members,
        updated_at: v.recorded_at,
        version: v.version,
    }))
}

/// A consortium's profile versions, oldest first (only the latest when `latest_only`).
pub fn consortium_versions(
    c: &mut PgConnection,
    id: ConsortiumId,
    latest_only: bool,
) -> QueryResult<Vec<ConsortiumVersion>> {
    let mut q = consortium_versions::table
        .filter(consortium_versions::consortium_id.eq(id.0))
        .order(consortium_versions::version.desc())
        .select((
            consortium_versions::version,
            consortium_versions::name,
            consortium_versions::members,
            consortium_versions::recorded_by,
            consortium_versions::recorded_at,
        ))
        .into_boxed();
    if latest_only {
        q = q.limit(1);
    }
    // A stored member list that does not decode is a fault (a database error, 500), never an
    // empty list: that would switch off every rule read from the members (L-b).
    let mut out: Vec<ConsortiumVersion> = q
        .load::<(i32, String, serde_json::Value, String, DateTime<Utc>)>(c)?
        .into_iter()
        .map(|(version, name, members, recorded_by, recorded_at)| {
            let members = serde_json::from_value::<Vec<Member>>(members).map_err(|e| {
                diesel::result::Error::DeserializationError(
                    format!("consortium {id} version {version}: members do not decode: {e}").into(),
                )
            })?;
            Ok(ConsortiumVersion {
                version,
                name,
                members,
                recorded_by,
                recorded_at,
            })
        })
        .collect::<QueryResult<_>>()?;
    out.reverse();
    Ok(out)
}
