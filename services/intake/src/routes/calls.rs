use crate::domain;
use crate::error::IntakeError;
use crate::schema::{call_cancellations, calls, decided_gates, programmes};
use crate::store::{decode, encode, find_call, CallRow};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use diesel::prelude::*;
use kaip_contracts::dto::intake::{
    Call, CallCancellation, CancelCall, CreateProgramme, OpenCall, Programme,
};
use kaip_contracts::dto::PageQuery;
use kaip_contracts::events::{CallMaxima, CallOpened, Replacement, ReplacementCallCancelled};
use kaip_contracts::{CallId, ConsortiumId, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use uuid::Uuid;

pub async fn open_call(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<OpenCall>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(&[Role::Admin, Role::Officer], "open a call")?;
    let mut req = body.into_inner();
    // Bounded before anything walks the list (an 8 MiB body holds about a million names).
    if let Some(r) = &req.replaces {
        if r.committee.len() > domain::MAX_COMMITTEE_NAMED {
            return Err(IntakeError::CommitteeTooLarge(r.committee.len()));
        }
    }
    domain::validate_open_call(&req, Utc::now())?;
    if let Some(r) = req.replaces.as_mut() {
        r.gate = r.gate.trim().to_owned();
        r.committee = domain::committee_members(&r.committee);
        if r.committee.len() < domain::MIN_COMMITTEE {
            return Err(IntakeError::CommitteeTooSmall(r.committee.len()));
        }
        if r.committee.len() > domain::MAX_COMMITTEE {
            return Err(IntakeError::CommitteeTooLarge(r.committee.len()));
        }
    }
    let actor = caller.actor();
    let call = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                if let Some(programme) = req.programme_id {
                    let found: i64 = programmes::table.find(programme).count().get_result(c)?;
                    if found == 0 {
                        return Err(IntakeError::ProgrammeNotFound(programme));
                    }
                }
                if let Some(r) = &req.replaces {
                    check_gate_places(c, r)?;
                    crate::replacement::selections_known(c, req.programme_id)?;
                }
                let id = CallId::new();
                let row: CallRow = diesel::insert_into(calls::table)
                    .values((
                        calls::id.eq(id.0),
                        calls::programme_id.eq(req.programme_id),
                        calls::title.eq(req.title.trim()),
                        calls::opens_at.eq(req.opens_at),
                        calls::closes_at.eq(req.closes_at),
                        calls::created_by.eq(&actor.subject),
                        calls::eligibility
                            .eq(serde_json::to_value(&req.eligibility).unwrap_or_default()),
                        calls::required_documents
                            .eq(serde_json::to_value(&req.required_documents).unwrap_or_default()),
                        calls::replaces.eq(req.replaces.as_ref().map(encode).transpose()?),
                        calls::replaces_gate.eq(req.replaces.as_ref().map(|r| r.gate.clone())),
                    ))
                    .returning(CallRow::as_returning())
                    .get_result(c)
                    .map_err(|e| match (e, &req.replaces) {
                        (
                            diesel::result::Error::DatabaseError(
                                diesel::result::DatabaseErrorKind::UniqueViolation,
                                _,
                            ),
                            Some(r),
                        ) => IntakeError::ReplacementCallExists(
                            r.gate.clone(),
                            "opened concurrently".into(),
                        ),
                        (other, _) => other.into(),
                    })?;
                let event = CallOpened {
                    call_id: id,
                    title: row.title.clone(),
                    opens_at: row.opens_at,
                    closes_at: row.closes_at,
                    // What the grant services open each selected team's allowance from.
                    team_maxima: Some(CallMaxima {
                        data_budget_krw: req.eligibility.max_data_budget_krw,
                        talent_funding_krw: req.eligibility.max_talent_funding_krw,
                    }),
                    replaces: req.replaces.clone(),
                };
                tx.publish(c, actor.clone(), &event)?;
                row.into_dto()
            })
        })
        .await?;
    tracing::info!(call_id = %call.id, "call opened");
    Ok(HttpResponse::Created().json(call))
}

/// Asks to cancel a stuck replacement call (no applicant, no majority, the committee gone)
/// that intake has not seen decided. Recorded as a row with who, when and why, never a
/// deletion; the call takes no new proposal at once. Scoring owns publication, so it decides
/// (`ReplacementCallCancelled` → `ReplacementCallCancellationDecided`): intake's view of
/// the decision lags, and freeing the gate before scoring confirms would let a new call
/// fill places a selection published meanwhile already took. The gate is freed only when
/// scoring confirms; a refusal is kept on the row with its reason. Answers 202 Accepted.
pub async fn cancel_call(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<CancelCall>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(&[Role::Admin, Role::Officer], "cancel a replacement call")?;
    let id = CallId(path.into_inner());
    let reason = body.into_inner().reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(CommonError::validation("reason", "must be 1 to 2000 characters").into());
    }
    let actor = caller.actor();
    let cancellation = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let call: CallRow = calls::table
                    .find(id.0)
                    .select(CallRow::as_select())
                    .for_update()
                    .first(c)
                    .optional()?
                    .ok_or(IntakeError::CallNotFound(id))?;
                let r = call
                    .replacement()?
                    .ok_or(IntakeError::NotReplacementCall(id))?;
                if call.cancelled_at.is_some() || call.cancel_requested_at.is_some() {
                    return Err(IntakeError::CallCancelled(id));
                }
                if call.decided_at.is_some() {
                    return Err(IntakeError::CallDecided(id));
                }
                let at: chrono::DateTime<Utc> = diesel::insert_into(call_cancellations::table)
                    .values((
                        call_cancellations::call_id.eq(id.0),
                        call_cancellations::reason.eq(&reason),
                        call_cancellations::cancelled_by.eq(&actor.subject),
                    ))
                    .returning(call_cancellations::cancelled_at)
                    .get_result(c)?;
                diesel::update(calls::table.find(id.0))
                    .set(calls::cancel_requested_at.eq(at))
                    .execute(c)?;
                let event = ReplacementCallCancelled {
                    call_id: id,
                    gate: r.gate.clone(),
                    reason: reason.clone(),
                    cancelled_by: actor.subject.clone(),
                    cancelled_at: at,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok::<_, IntakeError>(CallCancellation {
                    call_id: id,
                    gate: r.gate,
                    reason,
                    cancelled_by: actor.subject.clone(),
                    cancelled_at: at,
                })
            })
        })
        .await?;
    tracing::info!(call_id = %cancellation.call_id, gate = %cancellation.gate, "replacement call cancellation requested");
    Ok(HttpResponse::Accepted().json(cancellation))
}

/// A replacement call names a gate intake has seen decided (its latest decision), fills at
/// most the places it freed that earlier replacement calls did not fill, and is the gate's
/// only open replacement call (the partial unique index settles two at once).
fn check_gate_places(c: &mut PgConnection, r: &Replacement) -> Result<(), IntakeError> {
    let eliminated: Option<serde_json::Value> = decided_gates::table
        .filter(decided_gates::gate.eq(&r.gate))
        .order(decided_gates::decided_at.desc())
        .select(decided_gates::eliminated)
        .first(c)
        .optional()?;
    let Some(eliminated) = eliminated else {
        return Err(IntakeError::GateNotDecided(r.gate.clone()));
    };
    let eliminated: Vec<ConsortiumId> =
        decode(&format!("gate `{}`: eliminated", r.gate), eliminated)?;
    let open: Option<Uuid> = calls::table
        .filter(calls::replaces_gate.eq(&r.gate))
        .filter(calls::decided_at.is_null())
        .filter(calls::cancelled_at.is_null())
        .select(calls::id)
        .first(c)
        .optional()?;
    if let Some(open) = open {
        return Err(IntakeError::ReplacementCallExists(
            r.gate.clone(),
            format!("call {open}"),
        ));
    }
    let filled: Option<i64> = calls::table
        .filter(calls::replaces_gate.eq(&r.gate))
        .select(diesel::dsl::sum(calls::filled))
        .first(c)?;
    let filled = filled.unwrap_or(0);
    let free = domain::free_places(eliminated.len(), filled);
    if i64::from(r.places) > free {
        return Err(IntakeError::PlacesExceedFreed {
            gate: r.gate.clone(),
            places: r.places,
            eliminated: eliminated.len(),
            filled,
            free,
        });
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallQuery {
    programme_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

pub async fn list_calls(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<CallQuery>,
) -> Result<HttpResponse, IntakeError> {
    // Calls are public to every authenticated role.
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let programme = query.programme_id;
    let result = state
        .db(move |c, _| {
            let mut q = calls::table
                .select(CallRow::as_select())
                .order(calls::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(calls::id.gt(after));
            }
            if let Some(programme) = programme {
                q = q.filter(calls::programme_id.eq(programme));
            }
            let rows = q.load(c)?;
            let items = rows
                .into_iter()
                .map(CallRow::into_dto)
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, IntakeError>(page.finish(items, |r: &Call| r.id.0))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

pub async fn get_call(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = CallId(path.into_inner());
    let call = state.db(move |c, _| find_call(c, id)?.into_dto()).await?;
    Ok(HttpResponse::Ok().json(call))
}

pub async fn create_programme(
    caller: Caller,
    state: web::Data<AppState>,
    body: ValidJson<CreateProgramme>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(&[Role::Admin, Role::Officer], "create a programme")?;
    let req = body.into_inner();
    domain::validate_programme(&req)?;
    let by = caller.0.sub.clone();
    let programme = state
        .db(move |c, _| {
            let id = Uuid::now_v7();
            let created = diesel::insert_into(programmes::table)
                .values((
                    programmes::id.eq(id),
                    programmes::name.eq(req.name.trim()),
                    programmes::fiscal_year.eq(req.fiscal_year),
                    programmes::description.eq(req.description.trim()),
                    programmes::created_by.eq(&by),
                ))
                .returning((
                    programmes::id,
                    programmes::name,
                    programmes::fiscal_year,
                    programmes::description,
                    programmes::created_at,
                ))
                .get_result::<(Uuid, String, i32, String, chrono::DateTime<Utc>)>(c)
                .map_err(|e| match e {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => IntakeError::ProgrammeExists(req.name.trim().to_owned(), req.fiscal_year),
                    other => other.into(),
                })?;
            let (id, name, fiscal_year, description, created_at) = created;
            Ok::<_, IntakeError>(Programme {
                id,
                name,
                fiscal_year,
                description,
                created_at,
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(programme))
}

pub async fn list_programmes(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, IntakeError> {
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let result = state
        .db(move |c, _| {
            let mut q = programmes::table
                .select((
                    programmes::id,
                    programmes::name,
                    programmes::fiscal_year,
                    programmes::description,
                    programmes::created_at,
                ))
                .order(programmes::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(programmes::id.gt(after));
            }
            let rows: Vec<(Uuid, String, i32, String, chrono::DateTime<Utc>)> = q.load(c)?;
            let items = rows
                .into_iter()
                .map(
                    |(id, name, fiscal_year, description, created_at)| Programme {
                        id,
                        name,
                        fiscal_year,
                        description,
                        created_at,
                    },
                )
                .collect();
            Ok::<_, IntakeError>(page.finish(items, |p: &Programme| p.id))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}
