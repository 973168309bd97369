//! The GraphQL schema: one module per domain, merged into one graph.

pub mod audit;
pub mod budget;
pub mod events;
pub mod gpu;
pub mod intake;
pub mod milestones;
pub mod money;
pub mod replacement;
pub mod scoring;
pub mod system;
pub mod talent;

use async_graphql::{Context, ErrorExtensions, MergedObject, MergedSubscription, Schema};
use kaip_auth::{AuthError, Claims};
use kaip_contracts::Role;

pub type GatewaySchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    intake::IntakeQuery,
    scoring::ScoringQuery,
    system::SystemQuery,
    audit::AuditQuery,
    gpu::GpuQuery,
    budget::BudgetQuery,
    talent::TalentQuery,
    milestones::MilestonesQuery,
    replacement::ReplacementQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    intake::IntakeMutation,
    scoring::ScoringMutation,
    gpu::GpuMutation,
    budget::BudgetMutation,
    talent::TalentMutation,
    milestones::MilestonesMutation,
    replacement::ReplacementMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(events::EventSubscription);

/// Builds the schema with the data every resolver may need. Each request also gets its own
/// `Services` (charging its call budget) and `Loaders` in its request data.
pub fn build(
    services: crate::clients::Services,
    feed: kaip_bus::EventFeed,
    limits: &crate::settings::GatewayLimits,
) -> GatewaySchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .data(services)
    .data(feed)
    .limit_depth(12)
    .limit_complexity(500)
    .extension(crate::limits::OperationLimits {
        max_root_fields: limits.max_root_fields,
        max_root_mutations: limits.max_root_mutations,
        max_aliases: limits.max_aliases,
    })
    .finish()
}

/// The schema without its runtime data, for printing the SDL.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .finish()
    .sdl()
}

/// The caller of one GraphQL operation, as established from its token.
#[derive(Clone, Debug)]
pub struct RequestAuth(pub Result<Authed, AuthError>);

/// A verified caller and the raw token to forward to the services.
#[derive(Clone, Debug)]
pub struct Authed {
    pub claims: Claims,
    pub token: String,
}

/// An auth failure as a GraphQL error with `extensions.code`.
pub fn auth_error(e: &AuthError) -> async_graphql::Error {
    let code = e.code();
    async_graphql::Error::new(e.to_string()).extend_with(|_, ext| ext.set("code", code))
}

/// The verified caller, or an `UNAUTHENTICATED`/`TOKEN_*` error.
pub fn caller<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Authed> {
    match ctx.data_opt::<RequestAuth>() {
        Some(RequestAuth(Ok(authed))) => Ok(authed),
        Some(RequestAuth(Err(e))) => Err(auth_error(e)),
        None => Err(auth_error(&AuthError::MissingToken)),
    }
}

/// The verified caller, who must hold one of `roles`.
pub fn caller_with<'a>(
    ctx: &'a Context<'_>,
    roles: &[Role],
    action: &str,
) -> async_graphql::Result<&'a Authed> {
    let authed = caller(ctx)?;
    if authed.claims.has_any_role(roles) {
        Ok(authed)
    } else {
        Err(auth_error(&AuthError::Forbidden {
            role: authed.claims.role,
            action: action.to_owned(),
        }))
    }
}

/// Maps a service's error into GraphQL with its code.
pub fn upstream(e: crate::clients::UpstreamError) -> async_graphql::Error {
    e.extend()
}
