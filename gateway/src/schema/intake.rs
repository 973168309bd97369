//! Calls and proposals (the intake service).

use super::{caller, caller_with, upstream};
use crate::clients::Services;
use crate::schema::scoring::EvaluationCase;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, FixedOffset, Utc};
use kaip_contracts::dto::intake as dto;
use kaip_contracts::{CallId, ProposalId, Role};
use uuid::Uuid;

/// Korea Standard Time (UTC+9, no daylight saving). Times are stored in UTC and shown in
/// KST to people.
pub fn kst(t: DateTime<Utc>) -> String {
    let offset =
        FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!("+09:00 is a valid offset"));
    t.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M KST")
        .to_string()
}

/// A call for proposals.
#[derive(Clone, Debug)]
pub struct Call(pub dto::Call);

#[Object]
impl Call {
    async fn id(&self) -> Uuid {
        self.0.id.0
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// When submissions open (UTC).
    async fn opens_at(&self) -> DateTime<Utc> {
        self.0.opens_at
    }
    /// The submission deadline (UTC).
    async fn closes_at(&self) -> DateTime<Utc> {
        self.0.closes_at
    }
    /// The deadline in Korea time, for display.
    async fn closes_at_kst(&self) -> String {
        kst(self.0.closes_at)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A consortium's proposal.
#[derive(Clone, Debug)]
pub struct Proposal(pub dto::Proposal);

#[Object]
impl Proposal {
    async fn id(&self) -> Uuid {
        self.0.id.0
    }
    async fn call_id(&self) -> Uuid {
        self.0.call_id.0
    }
    async fn consortium_id(&self) -> Uuid {
        self.0.consortium_id.0
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.0.submitted_at
    }
    /// The scoring service's case for this proposal, once scoring has opened it (null until then).
    async fn evaluation_case(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<EvaluationCase>> {
        let authed = caller(ctx)?;
        match ctx
            .data::<Services>()?
            .evaluation_case_of(&authed.token, self.0.id)
            .await
        {
            Ok(case) => Ok(Some(EvaluationCase(case))),
            Err(e) if e.code == "EVALUATION_CASE_NOT_FOUND" => Ok(None),
            Err(e) => Err(upstream(e)),
        }
    }
}

#[derive(SimpleObject)]
pub struct CallPage {
    pub items: Vec<Call>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next_cursor: Option<ID>,
}

#[derive(SimpleObject)]
pub struct ProposalPage {
    pub items: Vec<Proposal>,
    pub next_cursor: Option<ID>,
}

#[derive(InputObject)]
pub struct OpenCallInput {
    pub title: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct SubmitProposalInput {
    pub call_id: Uuid,
    pub title: String,
    pub summary: String,
}

#[derive(Default)]
pub struct IntakeQuery;

#[Object]
impl IntakeQuery {
    /// Calls for proposals, oldest first. `first` is 1..100 (default 20).
    async fn calls(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<CallPage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .calls(&authed.token, first, after.as_ref().map(|a| a.as_str()))
            .await
            .map_err(upstream)?;
        Ok(CallPage {
            items: page.items.into_iter().map(Call).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    async fn call(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Call> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .call(&authed.token, CallId(id))
            .await
            .map(Call)
            .map_err(upstream)
    }

    /// Proposals: all of them for ministry staff, a consortium's own for its users.
    async fn proposals(
        &self,
        ctx: &Context<'_>,
        call_id: Option<Uuid>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<ProposalPage> {
        let authed = caller(ctx)?;
        let page = ctx
            .data::<Services>()?
            .proposals(
                &authed.token,
                call_id.map(CallId),
                first,
                after.as_ref().map(|a| a.as_str()),
            )
            .await
            .map_err(upstream)?;
        Ok(ProposalPage {
            items: page.items.into_iter().map(Proposal).collect(),
            next_cursor: page.next_cursor.map(ID),
        })
    }

    async fn proposal(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Proposal> {
        let authed = caller(ctx)?;
        ctx.data::<Services>()?
            .proposal(&authed.token, ProposalId(id))
            .await
            .map(Proposal)
            .map_err(upstream)
    }
}

#[derive(Default)]
pub struct IntakeMutation;

#[Object]
impl IntakeMutation {
    /// Opens a call for proposals (officers and admins).
    async fn open_call(
        &self,
        ctx: &Context<'_>,
        input: OpenCallInput,
    ) -> async_graphql::Result<Call> {
        let authed = caller_with(ctx, &[Role::Admin, Role::Officer], "open a call")?;
        let body = dto::OpenCall {
            title: input.title,
            opens_at: input.opens_at,
            closes_at: input.closes_at,
        };
        ctx.data::<Services>()?
            .open_call(&authed.token, &body)
            .await
            .map(Call)
            .map_err(upstream)
    }

    /// Submits the caller's consortium's proposal to an open call.
    async fn submit_proposal(
        &self,
        ctx: &Context<'_>,
        input: SubmitProposalInput,
    ) -> async_graphql::Result<Proposal> {
        let authed = caller_with(ctx, &[Role::Consortium], "submit a proposal")?;
        let body = dto::SubmitProposal {
            call_id: CallId(input.call_id),
            title: input.title,
            summary: input.summary,
        };
        ctx.data::<Services>()?
            .submit_proposal(&authed.token, &body)
            .await
            .map(Proposal)
            .map_err(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn korea_time_is_utc_plus_nine() {
        let t = Utc.with_ymd_and_hms(2026, 3, 31, 15, 0, 0).unwrap();
        assert_eq!(kst(t), "2026-04-01 00:00 KST");
    }
}
