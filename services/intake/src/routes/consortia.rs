use crate::domain;
use crate::error::IntakeError;
use crate::schema::{consortia, consortium_members};
use crate::store::find_consortium;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_auth::scopes;
use kaip_contracts::dto::intake::{Consortium, MemberRole, RegisterConsortium};
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
    let saved = state
        .db(move |c, _| {
            c.transaction(|c| {
                diesel::insert_into(consortia::table)
                    .values((consortia::id.eq(id.0), consortia::name.eq(&profile.name)))
                    .on_conflict(consortia::id)
                    .do_update()
                    .set((
                        consortia::name.eq(&profile.name),
                        consortia::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(c)?;
                diesel::delete(
                    consortium_members::table.filter(consortium_members::consortium_id.eq(id.0)),
                )
                .execute(c)?;
                for (i, m) in profile.members.iter().enumerate() {
                    diesel::insert_into(consortium_members::table)
                        .values((
                            consortium_members::consortium_id.eq(id.0),
                            consortium_members::position.eq(i as i32),
                            consortium_members::name.eq(&m.name),
                            consortium_members::org_type.eq(m.org_type.as_str()),
                            consortium_members::brn.eq(&m.business_registration_number),
                            consortium_members::role.eq(if m.role == MemberRole::Lead {
                                "lead"
                            } else {
                                "partner"
                            }),
                        ))
                        .execute(c)?;
                }
                find_consortium(c, id)?.ok_or(IntakeError::ConsortiumNotRegistered(id))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(saved))
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
