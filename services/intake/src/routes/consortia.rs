use crate::domain;
use crate::error::IntakeError;
use crate::schema::{consortia, consortium_versions};
use crate::store::{consortium_versions, find_consortium};
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_auth::scopes;
use kaip_contracts::dto::intake::{Consortium, RegisterConsortium};
use kaip_contracts::dto::PageQuery;
use kaip_contracts::{ConsortiumId, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, ValidJson};
use uuid::Uuid;

/// A consortium user registers (or updates) its own consortium's profile; ministry staff may
/// do it for any consortium.
pub async fn register(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<RegisterConsortium>,
) -> Result<HttpResponse, IntakeError> {
    let id = ConsortiumId(path.into_inner());
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "register a consortium",
    )?;
    caller.require_consortium(id, "register a consortium")?;
    let profile = domain::validate_consortium(&body.into_inner())?;
    let by = caller.0.sub.clone();
    let saved = state
        .db(move |c, _| {
            c.transaction(|c| {
                diesel::insert_into(consortia::table)
                    .values((consortia::id.eq(id.0), consortia::name.eq(&profile.name)))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                // Registrations of one consortium take turns; each is a new version, and
                // earlier ones are never changed.
                consortia::table
                    .find(id.0)
                    .select(consortia::id)
                    .for_update()
                    .first::<Uuid>(c)?;
                let last: Option<i32> = consortium_versions::table
                    .filter(consortium_versions::consortium_id.eq(id.0))
                    .select(diesel::dsl::max(consortium_versions::version))
                    .first(c)?;
                diesel::insert_into(consortium_versions::table)
                    .values((
                        consortium_versions::consortium_id.eq(id.0),
                        consortium_versions::version.eq(last.unwrap_or(0) + 1),
                        consortium_versions::name.eq(&profile.name),
                        consortium_versions::members
                            .eq(serde_json::to_value(&profile.members).unwrap_or_default()),
                        consortium_versions::recorded_by.eq(&by),
                    ))
                    .execute(c)?;
                find_consortium(c, id)?.ok_or(IntakeError::ConsortiumNotRegistered(id))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(saved))
}

/// Every version of a consortium's profile, oldest first: ministry staff, and the
/// consortium itself.
pub async fn versions(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = ConsortiumId(path.into_inner());
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "read a consortium's profile history",
    )?;
    if !caller.0.may_access_consortium(id) {
        return Err(IntakeError::ConsortiumNotRegistered(id));
    }
    let found = state
        .db(move |c, _| {
            let all = consortium_versions(c, id, false)?;
            if all.is_empty() {
                return Err(IntakeError::ConsortiumNotRegistered(id));
            }
            Ok(all)
        })
        .await?;
    Ok(HttpResponse::Ok().json(found))
}

pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, IntakeError> {
    let id = ConsortiumId(path.into_inner());
    if !caller.0.may_access_consortium(id) {
        return Err(IntakeError::ConsortiumNotRegistered(id));
    }
    // Profiles carry business registration numbers: an integration needs the scope.
    caller.require_scope(scopes::READ_CONSORTIA, "read consortia")?;
    let found = state
        .db(move |c, _| find_consortium(c, id)?.ok_or(IntakeError::ConsortiumNotRegistered(id)))
        .await?;
    Ok(HttpResponse::Ok().json(found))
}

pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, IntakeError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Integration],
        "list consortia",
    )?;
    caller.require_scope(scopes::READ_CONSORTIA, "list consortia")?;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let result = state
        .db(move |c, _| {
            let mut q = consortia::table
                .select(consortia::id)
                .order(consortia::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(consortia::id.gt(after));
            }
            let ids: Vec<Uuid> = q.load(c)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(found) = find_consortium(c, ConsortiumId(id))? {
                    out.push(found);
                }
            }
            Ok::<_, IntakeError>(page.finish(out, |r: &Consortium| r.id.0))
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}
