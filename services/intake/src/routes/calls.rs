use crate::domain;
use crate::error::IntakeError;
use crate::schema::calls;
use crate::store::{find_call, CallRow};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use diesel::prelude::*;
use kaip_contracts::dto::intake::{Call, OpenCall};
use kaip_contracts::dto::PageQuery;
use kaip_contracts::events::CallOpened;
use kaip_contracts::{CallId, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller};
use uuid::Uuid;

pub async fn open_call(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<OpenCall>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(&[Role::Admin, Role::Officer], "open a call")?;
    let req = body.into_inner();
    domain::validate_open_call(&req, Utc::now())?;
    let actor = caller.actor();
    let call = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let id = CallId::new();
                let row: CallRow = diesel::insert_into(calls::table)
                    .values((
                        calls::id.eq(id.0),
                        calls::title.eq(req.title.trim()),
                        calls::opens_at.eq(req.opens_at),
                        calls::closes_at.eq(req.closes_at),
                        calls::created_by.eq(&actor.subject),
                        calls::eligibility
                            .eq(serde_json::to_value(&req.eligibility).unwrap_or_default()),
                        calls::required_documents
                            .eq(serde_json::to_value(&req.required_documents).unwrap_or_default()),
                    ))
                    .returning(CallRow::as_returning())
                    .get_result(c)?;
                let event = CallOpened {
                    call_id: id,
                    title: row.title.clone(),
                    opens_at: row.opens_at,
                    closes_at: row.closes_at,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok::<_, IntakeError>(row.into_dto())
            })
        })
        .await?;
    tracing::info!(call_id = %call.id, "call opened");
    Ok(HttpResponse::Created().json(call))
}

pub async fn list_calls(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, IntakeError> {
    // Calls are public to every authenticated role.
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
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
            let rows = q.load(c)?;
            Ok::<_, IntakeError>(page.finish(
                rows.into_iter().map(CallRow::into_dto).collect(),
                |r: &Call| r.id.0,
            ))
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
    let call = state
        .db(move |c, _| find_call(c, id).map(CallRow::into_dto))
        .await?;
    Ok(HttpResponse::Ok().json(call))
}
