use crate::domain::{self, Window};
use crate::error::IntakeError;
use crate::schema::{proposal_documents, proposal_versions, proposal_withdrawals, proposals};
use crate::store::{
    documents, documents_of, find_call, find_consortium, find_proposal, CallRow, ProposalRow,
};
use actix_web::http::header::{
    Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::{web, HttpResponse};
use base64::Engine;
use chrono::{SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use kaip_auth::scopes;
use kaip_contracts::dto::intake::{
    DraftProposal, Proposal, ProposalVersion, ProposalVersions, Receipt, Submit, UpdateDraft,
    UploadDocument, Withdraw, MAX_BATCH_IDS,
};
use kaip_contracts::events::{ProposalSubmitted, ProposalWithdrawn};
use kaip_contracts::{CallId, ConsortiumId, ProposalId, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use uuid::Uuid;

/// The consortium a consortium user acts for.
fn own_consortium(caller: &Caller, action: &str) -> Result<ConsortiumId, IntakeError> {
    caller.require(&[Role::Consortium], action)?;
    caller.0.consortium_id.ok_or_else(|| {
        kaip_auth::AuthError::InvalidClaims("consortium_id is required".into()).into()
    })
}

/// Drafts change only while the call is open and undecided.
fn require_open(call: &CallRow) -> Result<(), IntakeError> {
    let id = CallId(call.id);
    // A cancellation asked for (even one scoring has not confirmed yet) takes no new
    // proposal: if scoring refuses it, the selection was published and the call is decided.
    if call.cancelled_at.is_some() || call.cancel_requested_at.is_some() {
        return Err(IntakeError::CallCancelled(id));
    }
    if call.decided_at.is_some() {
        return Err(IntakeError::CallDecided(id));
    }
    match domain::window(call.opens_at, call.closes_at, Utc::now()) {
        Window::NotYetOpen => Err(IntakeError::CallNotOpen(id)),
        Window::Closed => Err(IntakeError::CallClosed(id)),
        Window::Open => Ok(()),
    }
}

/// Whether `claims` may see a proposal of `consortium` in `status`: a consortium sees only
/// its own, and staff and integrations do not see a consortium's drafts. Every read of a
/// proposal or of anything in it (versions, documents) asks this one rule; what it refuses is
/// reported as not found, so another consortium's proposals are not theirs to learn of.
fn may_see(claims: &kaip_auth::Claims, consortium: ConsortiumId, status: &str) -> bool {
    claims.may_access_consortium(consortium)
        && (claims.role == Role::Consortium || status != "draft")
}

/// Loads a proposal for its own consortium, locked, and checks it is still a draft.
fn own_draft(
    c: &mut PgConnection,
    id: ProposalId,
    consortium: ConsortiumId,
) -> Result<(ProposalRow, CallRow), IntakeError> {
    let row = find_proposal(c, id, true)?;
    if row.consortium_id != consortium.0 {
        // Another consortium's proposal does not exist, as far as this caller knows.
        return Err(IntakeError::ProposalNotFound(id));
    }
    let call = crate::store::find_call_shared(c, CallId(row.call_id))?;
    require_open(&call)?;
    if row.status != "draft" {
        return Err(IntakeError::NotADraft {
            id,
            status: row.status,
        });
    }
    Ok((row, call))
}

/// What one version of a proposal holds.
struct Content<'a> {
    title: &'a str,
    summary: &'a str,
    resources: &'a serde_json::Value,
    portfolio: &'a Option<serde_json::Value>,
}

/// Keeps a version of a proposal: what was submitted can always be shown later.
fn insert_version(
    c: &mut PgConnection,
    id: ProposalId,
    version: i32,
    content: Content<'_>,
    by: &str,
) -> QueryResult<usize> {
    diesel::insert_into(proposal_versions::table)
        .values((
            proposal_versions::portfolio.eq(content.portfolio),
            proposal_versions::proposal_id.eq(id.0),
            proposal_versions::version.eq(version),
            proposal_versions::title.eq(content.title.trim()),
            proposal_versions::summary.eq(content.summary),
            proposal_versions::resources.eq(content.resources),
            proposal_versions::created_by.eq(by),
        ))
        .execute(c)
}

fn load_dto(c: &mut PgConnection, id: ProposalId) -> Result<Proposal, IntakeError> {
    let row = find_proposal(c, id, false)?;
    let docs = documents(c, row.id)?;
    Ok(row.into_dto(docs))
}

pub async fn create_draft(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<DraftProposal>,
) -> Result<HttpResponse, IntakeError> {
    let consortium = own_consortium(&caller, "create a proposal")?;
    let req = body.into_inner();
    domain::validate_draft(&req.title, &req.summary, &req.resources)?;
    if let Some(p) = &req.portfolio {
        crate::portfolio::validate(p)?;
    }
    let actor = caller.actor();
    let proposal = state
        .db(move |c, _| {
            c.transaction(|c| {
                let call = crate::store::find_call_shared(c, req.call_id)?;
                require_open(&call)?;
                let own = find_consortium(c, consortium)?;
                crate::replacement::may_apply(
                    c,
                    &call,
                    consortium,
                    own.as_ref().map(|k| k.members.as_slice()),
                )?;
                let id = ProposalId::new();
                let resources = serde_json::to_value(&req.resources).unwrap_or_default();
                let portfolio = req
                    .portfolio
                    .as_ref()
                    .map(|p| serde_json::to_value(p).unwrap_or_default());
                diesel::insert_into(proposals::table)
                    .values((
                        proposals::id.eq(id.0),
                        proposals::call_id.eq(req.call_id.0),
                        proposals::consortium_id.eq(consortium.0),
                        proposals::title.eq(req.title.trim()),
                        proposals::summary.eq(&req.summary),
                        proposals::submitted_by.eq(&actor.subject),
                        proposals::status.eq("draft"),
                        proposals::version.eq(1),
                        proposals::resources.eq(&resources),
                        proposals::portfolio.eq(&portfolio),
                    ))
                    .execute(c)
                    .map_err(|e| match e {
                        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                            IntakeError::AlreadyApplied(req.call_id)
                        }
                        other => other.into(),
                    })?;
                insert_version(
                    c,
                    id,
                    1,
                    Content {
                        title: &req.title,
                        summary: &req.summary,
                        resources: &resources,
                        portfolio: &portfolio,
                    },
                    &actor.subject,
                )?;
                load_dto(c, id)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(proposal))
}

pub async fn update_draft(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<UpdateDraft>,
) -> Result<HttpResponse, IntakeError> {
    let consortium = own_consortium(&caller, "edit a proposal")?;
    let id = ProposalId(path.into_inner());
    let req = body.into_inner();
    domain::validate_draft(&req.title, &req.summary, &req.resources)?;
    if let Some(p) = &req.portfolio {
        crate::portfolio::validate(p)?;
    }
    let actor = caller.actor();
    let proposal = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (row, _) = own_draft(c, id, consortium)?;
                let version = row.version + 1;
                let resources = serde_json::to_value(&req.resources).unwrap_or_default();
                // Absent: the new version keeps the declaration of the one before.
                let portfolio = match &req.portfolio {
                    Some(p) => Some(serde_json::to_value(p).unwrap_or_default()),
                    None => row
                        .portfolio
                        .as_ref()
                        .map(|p| p.value())
                        .transpose()
                        .map_err(|e| {
                            kaip_service::CommonError::internal(anyhow::anyhow!(
                                "proposal {}: stored portfolio does not decode: {e}",
                                id.0
                            ))
                        })?,
                };
                diesel::update(proposals::table.find(id.0))
                    .set((
                        proposals::title.eq(req.title.trim()),
                        proposals::summary.eq(&req.summary),
                        proposals::resources.eq(&resources),
                        proposals::portfolio.eq(&portfolio),
                        proposals::version.eq(version),
                    ))
                    .execute(c)?;
                insert_version(
                    c,
                    id,
                    version,
                    Content {
                        title: &req.title,
                        summary: &req.summary,
                        resources: &resources,
                        portfolio: &portfolio,
                    },
                    &actor.subject,
                )?;
                load_dto(c, id)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(proposal))
}

pub async fn upload_document(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
    body: ValidJson<UploadDocument>,
) -> Result<HttpResponse, IntakeError> {
    let consortium = own_consortium(&caller, "upload a document")?;
    let (id, kind) = path.into_inner();
    let id = ProposalId(id);
    domain::check_document_kind("kind", &kind)?;
    let mut req = body.into_inner();
    req.filename = domain::safe_filename(&req.filename)?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(req.content_base64.as_bytes())
        .map_err(|e| {
            CommonError::validation("content_base64", format!("is not valid base64: {e}"))
        })?;
    if content.len() > domain::MAX_DOCUMENT_BYTES {
        return Err(CommonError::validation(
            "content_base64",
            format!(
                "the document is {} bytes; the limit is {} bytes",
                content.len(),
                domain::MAX_DOCUMENT_BYTES
            ),
        )
        .into());
    }
    let sha = domain::sha256_hex(&content);
    let actor = caller.actor();
    let proposal = state
        .db(move |c, _| {
            c.transaction(|c| {
                let (_, call) = own_draft(c, id, consortium)?;
                // The proposal's row is locked: concurrent uploads add up one at a time.
                let others: i64 = proposal_documents::table
                    .filter(proposal_documents::proposal_id.eq(id.0))
                    .filter(proposal_documents::kind.ne(&kind))
                    .select(proposal_documents::size_bytes)
                    .load::<i64>(c)?
                    .into_iter()
                    .fold(0, i64::saturating_add);
                domain::check_upload(&kind, &call.required()?, content.len() as i64, others)?;
                let values = (
                    proposal_documents::proposal_id.eq(id.0),
                    proposal_documents::kind.eq(&kind),
                    proposal_documents::filename.eq(&req.filename),
                    proposal_documents::sha256.eq(&sha),
                    proposal_documents::size_bytes.eq(content.len() as i64),
                    proposal_documents::content.eq(&content),
                    proposal_documents::uploaded_by.eq(&actor.subject),
                );
                diesel::insert_into(proposal_documents::table)
                    .values(values)
                    .on_conflict((proposal_documents::proposal_id, proposal_documents::kind))
                    .do_update()
                    .set((
                        proposal_documents::filename.eq(&req.filename),
                        proposal_documents::sha256.eq(&sha),
                        proposal_documents::size_bytes.eq(content.len() as i64),
                        proposal_documents::content.eq(&content),
                        proposal_documents::uploaded_by.eq(&actor.subject),
                        proposal_documents::uploaded_at.eq(diesel::dsl::now),
                    ))
                    .execute(c)?;
                load_dto(c, id)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(proposal))
}

pub async fn download_document(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, IntakeError> {
    let (id, kind) = path.into_inner();
    let id = ProposalId(id);
    caller.require_scope(scopes::READ_DOCUMENTS, "download proposal documents")?;
    // Only well-formed kinds reach the database (a NUL in a path would otherwise surface
    // from PostgreSQL as an internal error).
    domain::check_document_kind("kind", &kind)?;
    let claims = caller.0.clone();
    let doc = state
        .db(move |c, _| {
            // Visibility first: a document of a proposal the caller may not see (another
            // consortium's, or a draft for staff) is reported as the proposal not found,
            // before anything reveals which documents it has.
            let row = find_proposal(c, id, false)?;
            if !may_see(&claims, ConsortiumId(row.consortium_id), &row.status) {
                return Err(IntakeError::ProposalNotFound(id));
            }
            let doc = proposal_documents::table
                .find((id.0, &kind))
                .select((
                    proposal_documents::filename,
                    proposal_documents::sha256,
                    proposal_documents::content,
                ))
                .first::<(String, String, Vec<u8>)>(c)
                .optional()?
                .ok_or(IntakeError::DocumentNotFound(kind))?;
            Ok::<_, IntakeError>(doc)
        })
        .await?;
    let (filename, sha, content) = doc;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(attachment(&filename))
        .insert_header(("x-content-sha256", sha))
        .body(content))
}

/// `Content-Disposition: attachment` naming the file (RFC 6266): an ASCII `filename` for old
/// clients and the exact UTF-8 name in `filename*`. Names are stored as safe base names;
/// rows stored before that rule are made safe here too.
fn attachment(stored: &str) -> ContentDisposition {
    let name = domain::safe_filename(stored).unwrap_or_else(|_| "document".to_owned());
    let ascii: String = name
        .chars()
        .map(|c| {
            // Quotes and backslashes would need escaping, and some clients percent-decode
            // the plain parameter: those go to `filename*` only.
            if c == ' ' || (c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%')) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut parameters = vec![DispositionParam::Filename(ascii.clone())];
    if ascii != name {
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".to_owned()),
            language_tag: None,
            value: name.into_bytes(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

pub async fn submit(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<Submit>,
) -> Result<HttpResponse, IntakeError> {
    let consortium = own_consortium(&caller, "submit a proposal")?;
    let id = ProposalId(path.into_inner());
    let key = body.into_inner().idempotency_key;
    if key.trim().is_empty() || key.len() > 200 {
        return Err(
            CommonError::validation("idempotency_key", "must be 1 to 200 characters").into(),
        );
    }
    let actor = caller.actor();
    let (receipt, replay) = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let row = find_proposal(c, id, true)?;
                if row.consortium_id != consortium.0 {
                    return Err(IntakeError::ProposalNotFound(id));
                }
                // A repeated submission with the same key returns the original receipt.
                if row.status == "submitted" {
                    return match (
                        row.idempotency_key.as_deref(),
                        row.submitted_at,
                        row.content_hash.clone(),
                    ) {
                        (Some(k), Some(at), Some(hash)) if k == key => Ok((
                            Receipt {
                                proposal_id: id,
                                version: row.version,
                                content_hash: hash,
                                submitted_at: at,
                            },
                            true,
                        )),
                        _ => Err(IntakeError::AlreadySubmitted(id)),
                    };
                }
                let (row, call) = own_draft(c, id, consortium)?;
                let members = find_consortium(c, consortium)?
                    .ok_or(IntakeError::ConsortiumNotRegistered(consortium))?;
                crate::replacement::may_apply(c, &call, consortium, Some(&members.members))?;
                let docs = documents(c, row.id)?;
                let resources = row.resources();
                let portfolio = row.portfolio();
                let mut failures = domain::eligibility_failures(
                    &call.rules()?,
                    &call.required()?,
                    &members.members,
                    &resources,
                    &docs,
                );
                if portfolio.is_none() {
                    failures.push(
                        "portfolio: the proposal must declare its track, openness and independence"
                            .into(),
                    );
                }
                if !failures.is_empty() {
                    return Err(IntakeError::NotEligible(failures));
                }
                let hash = domain::content_hash(
                    row.id,
                    row.version,
                    &row.title,
                    &row.summary,
                    &resources,
                    portfolio.as_ref(),
                    &docs,
                );
                // PostgreSQL keeps microseconds: the receipt must read the same when replayed.
                let now = Utc::now().trunc_subsecs(6);
                diesel::update(proposals::table.find(id.0))
                    .set((
                        proposals::status.eq("submitted"),
                        proposals::submitted_at.eq(now),
                        proposals::submitted_by.eq(&actor.subject),
                        proposals::idempotency_key.eq(&key),
                        proposals::content_hash.eq(&hash),
                    ))
                    .execute(c)?;
                let event = ProposalSubmitted {
                    proposal_id: id,
                    call_id: CallId(row.call_id),
                    consortium_id: consortium,
                    consortium_name: members.name.clone(),
                    title: row.title.clone(),
                    version: row.version,
                    content_hash: hash.clone(),
                    members: members.members,
                    resources,
                    portfolio,
                    submitted_at: now,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok((
                    Receipt {
                        proposal_id: id,
                        version: row.version,
                        content_hash: hash,
                        submitted_at: now,
                    },
                    false,
                ))
            })
        })
        .await?;
    if replay {
        return Ok(HttpResponse::Ok().json(receipt));
    }
    tracing::info!(proposal_id = %id, consortium_id = %consortium, "proposal submitted");
    Ok(HttpResponse::Created().json(receipt))
}

pub async fn withdraw(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<Withdraw>,
) -> Result<HttpResponse, IntakeError> {
    let consortium = own_consortium(&caller, "withdraw a proposal")?;
    let id = ProposalId(path.into_inner());
    let reason = body.into_inner().reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(CommonError::validation("reason", "must be 1 to 2000 characters").into());
    }
    let actor = caller.actor();
    let proposal = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let row = find_proposal(c, id, true)?;
                if row.consortium_id != consortium.0 {
                    return Err(IntakeError::ProposalNotFound(id));
                }
                let call = find_call(c, CallId(row.call_id))?;
                if call.decided_at.is_some() {
                    return Err(IntakeError::CallDecided(CallId(call.id)));
                }
                if row.status != "submitted" {
                    return Err(IntakeError::NotSubmitted {
                        id,
                        status: row.status,
                    });
                }
                // Scoring refused an earlier withdrawal (the decision was published first):
                // the decision stands, and a second try would only be refused again while
                // overwriting the first.
                if row.withdrawal_refused_at.is_some() {
                    return Err(IntakeError::WithdrawalRefused(id));
                }
                let now = Utc::now().trunc_subsecs(6);
                diesel::insert_into(proposal_withdrawals::table)
                    .values((
                        proposal_withdrawals::proposal_id.eq(id.0),
                        proposal_withdrawals::reason.eq(&reason),
                        proposal_withdrawals::withdrawn_by.eq(&actor.subject),
                        proposal_withdrawals::withdrawn_at.eq(now),
                    ))
                    .execute(c)?;
                diesel::update(proposals::table.find(id.0))
                    .set((
                        proposals::status.eq("withdrawn"),
                        proposals::withdrawn_at.eq(now),
                        proposals::withdrawal_reason.eq(&reason),
                        proposals::withdrawn_by.eq(&actor.subject),
                    ))
                    .execute(c)?;
                let event = ProposalWithdrawn {
                    proposal_id: id,
                    call_id: CallId(row.call_id),
                    consortium_id: consortium,
                    reason: reason.clone(),
                    withdrawn_at: now,
                };
                tx.publish(c, actor.clone(), &event)?;
                load_dto(c, id)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(proposal))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalQuery {
    call_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ProposalQuery>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(
        &[
            Role::Admin,
            Role::Officer,
            Role::Consortium,
            Role::Integration,
        ],
        "list proposals",
    )?;
    caller.require_scope(scopes::READ_PROPOSALS, "list proposals")?;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    // A consortium user sees only its own consortium's proposals; staff do not see drafts.
    let only = (caller.role() == Role::Consortium)
        .then_some(caller.0.consortium_id)
        .flatten();
    let call_id = query.call_id;
    let result = state
        .db(move |c, _| {
            let mut q = proposals::table
                .select(ProposalRow::as_select())
                .order(proposals::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(proposals::id.gt(after));
            }
            if let Some(call) = call_id {
                q = q.filter(proposals::call_id.eq(call));
            }
            match only {
                Some(consortium) => q = q.filter(proposals::consortium_id.eq(consortium.0)),
                None => q = q.filter(proposals::status.ne("draft")),
            }
            let rows: Vec<ProposalRow> = q.load(c)?;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let mut docs = documents_of(c, &ids)?;
            let items: Vec<Proposal> = rows
                .into_iter()
                .map(|row| {
                    let d = docs.remove(&row.id).unwrap_or_default();
                    row.into_dto(d)
                })
                .collect();
            Ok::<_, IntakeError>(page.finish(items, |p: &Proposal| p.id.0))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = ProposalId(path.into_inner());
    caller.require_scope(scopes::READ_PROPOSALS, "read proposals")?;
    let proposal = state.db(move |c, _| load_dto(c, id)).await?;
    // Another consortium's proposal is reported as absent: its existence is not theirs to
    // learn. Staff do not see a consortium's drafts.
    if !may_see(&caller.0, proposal.consortium_id, &proposal.status) {
        return Err(IntakeError::ProposalNotFound(id));
    }
    Ok(HttpResponse::Ok().json(proposal))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsQuery {
    ids: String,
}

/// The versions of many proposals in one call (the gateway batches `Proposal.versions`):
/// `?ids=a,b,c`, at most [`MAX_BATCH_IDS`]. The same visibility as [`versions`]: a proposal
/// the caller may not see is left out, exactly as if it did not exist.
pub async fn versions_many(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<IdsQuery>,
) -> Result<HttpResponse, IntakeError> {
    caller.require_scope(scopes::READ_PROPOSALS, "read proposal versions")?;
    let ids = kaip_service::pagination::parse_ids("ids", &query.ids, MAX_BATCH_IDS)?;
    let claims = caller.0.clone();
    let out = state
        .db(move |c, _| {
            let found: Vec<(Uuid, Uuid, String)> = proposals::table
                .filter(proposals::id.eq_any(&ids))
                .select((proposals::id, proposals::consortium_id, proposals::status))
                .load(c)?;
            let visible: Vec<Uuid> = found
                .into_iter()
                .filter(|(_, consortium, status)| {
                    may_see(&claims, ConsortiumId(*consortium), status)
                })
                .map(|(id, _, _)| id)
                .collect();
            let rows = proposal_versions::table
                .filter(proposal_versions::proposal_id.eq_any(&visible))
                .order((
                    proposal_versions::proposal_id.asc(),
                    proposal_versions::version.asc(),
                ))
                .select((
                    proposal_versions::proposal_id,
                    proposal_versions::version,
                    proposal_versions::title,
                    proposal_versions::summary,
                    proposal_versions::resources,
                    proposal_versions::portfolio,
                    proposal_versions::created_at,
                ))
                .load::<(
                    Uuid,
                    i32,
                    String,
                    String,
                    serde_json::Value,
                    Option<serde_json::Value>,
                    chrono::DateTime<Utc>,
                )>(c)?;
            let mut out: Vec<ProposalVersions> = visible
                .iter()
                .map(|id| ProposalVersions {
                    proposal_id: ProposalId(*id),
                    versions: Vec::new(),
                })
                .collect();
            for (proposal, version, title, summary, resources, portfolio, created_at) in rows {
                if let Some(entry) = out.iter_mut().find(|e| e.proposal_id.0 == proposal) {
                    entry.versions.push(ProposalVersion {
                        version,
                        title,
                        summary,
                        resources: serde_json::from_value(resources).unwrap_or_default(),
                        portfolio: portfolio.and_then(|p| serde_json::from_value(p).ok()),
                        created_at,
                    });
                }
            }
            Ok::<_, IntakeError>(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Every saved version of a proposal, oldest first (its consortium, and staff once submitted).
pub async fn versions(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = ProposalId(path.into_inner());
    caller.require_scope(scopes::READ_PROPOSALS, "read proposal versions")?;
    let (proposal, rows) = state
        .db(move |c, _| {
            let proposal = find_proposal(c, id, false)?;
            let rows = proposal_versions::table
                .filter(proposal_versions::proposal_id.eq(id.0))
                .order(proposal_versions::version.asc())
                .select((
                    proposal_versions::version,
                    proposal_versions::title,
                    proposal_versions::summary,
                    proposal_versions::resources,
                    proposal_versions::portfolio,
                    proposal_versions::created_at,
                ))
                .load::<(
                    i32,
                    String,
                    String,
                    serde_json::Value,
                    Option<serde_json::Value>,
                    chrono::DateTime<Utc>,
                )>(c)?;
            Ok::<_, IntakeError>((proposal, rows))
        })
        .await?;
    if !may_see(
        &caller.0,
        ConsortiumId(proposal.consortium_id),
        &proposal.status,
    ) {
        return Err(IntakeError::ProposalNotFound(id));
    }
    let out: Vec<ProposalVersion> = rows
        .into_iter()
        .map(
            |(version, title, summary, resources, portfolio, created_at)| ProposalVersion {
                version,
                title,
                summary,
                resources: serde_json::from_value(resources).unwrap_or_default(),
                portfolio: portfolio.and_then(|p| serde_json::from_value(p).ok()),
                created_at,
            },
        )
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
