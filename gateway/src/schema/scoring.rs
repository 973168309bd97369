//! Evaluation cases (the scoring service).

use super::{caller, upstream};
use crate::clients::Services;
use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use kaip_contracts::dto::scoring as dto;
use kaip_contracts::{CallId, ProposalId};
use uuid::Uuid;

/// Scoring's case for one proposal.
#[derive(Clone, Debug)]
pub struct EvaluationCase(pub dto::EvaluationCase);

#[Object]
impl EvaluationCase {
    async fn id(&self) -> Uuid {
        self.0.id.0
    }
    async fn proposal_id(&self) -> Uuid {
        self.0.proposal_id.0
    }
    async fn call_id(&self) -> Uuid {
        self.0.call_id.0
    }
    async fn consortium_id(&self) -> Uuid {
        self.0.consortium_id.0
    }
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }
}

#[derive(SimpleObject)]
pub struct EvaluationCasePage {
    pub items: Vec<EvaluationCase>,
    pub next_cursor: Option<ID>,
}

#[derive(Default)]
pub struct ScoringQuery;

#[Object]
impl ScoringQuery {
    /// Evaluation cases, optionally of one call.
    async fn evaluation_cases(
        &self,
        ctx: &Context<'_>,
        call_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<EvaluationCasePage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .evaluation_cases(
                &authed.token,
                call_id.map(CallId),
                first,
                after.as_ref().map(|a| a.as_str()),
            )
            .await
            .map_err(upstream)?;
        Ok(EvaluationCasePage {
            items: page.items.into_iter().map(EvaluationCase).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    /// The evaluation case of a proposal.
    async fn evaluation_case(
        &self,
        ctx: &Context<'_>,
        proposal_id: Uuid,
    ) -> async_graphql::Result<EvaluationCase> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .evaluation_case_of(&authed.token, ProposalId(proposal_id))
            .await
            .map(EvaluationCase)
            .map_err(upstream)
    }
}
