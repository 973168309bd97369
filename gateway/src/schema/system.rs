//! Who am I, and is the platform healthy.

use super::{caller, caller_with};
use crate::clients::Services;
use async_graphql::{Context, Object, SimpleObject};
use kaip_contracts::Role;
use uuid::Uuid;

#[derive(SimpleObject)]
pub struct Me {
    pub subject: String,
    pub role: String,
    pub consortium_id: Option<Uuid>,
}

#[derive(SimpleObject)]
pub struct ServiceHealth {
    pub service: String,
    pub ready: bool,
    pub database: String,
    pub broker: String,
    pub assigned_partitions: i32,
}

#[derive(Default)]
pub struct SystemQuery;

#[Object]
impl SystemQuery {
    /// The caller as the platform sees them.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let c = &caller(ctx)?.claims;
        Ok(Me {
            subject: c.sub.clone(),
            role: c.role.to_string(),
            consortium_id: c.consortium_id.map(|c| c.0),
        })
    }

    /// Each service's readiness (admins and officers).
    async fn platform_health(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ServiceHealth>> {
        caller_with(ctx, &[Role::Admin, Role::Officer], "read platform health")?;
        let services = ctx.data::<Services>()?;
        let checks = services.all.iter().map(|client| async move {
            match client.readiness().await {
                Ok(r) => ServiceHealth {
                    service: client.name().to_owned(),
                    ready: r.ready,
                    database: r.database,
                    broker: r.broker,
                    assigned_partitions: i32::try_from(r.assigned_partitions).unwrap_or(i32::MAX),
                },
                Err(e) => ServiceHealth {
                    service: client.name().to_owned(),
                    ready: false,
                    database: e.clone(),
                    broker: e,
                    assigned_partitions: 0,
                },
            }
        });
        Ok(futures::future::join_all(checks).await)
    }
}
