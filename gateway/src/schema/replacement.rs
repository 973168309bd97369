//! Replacement calls (issue #11): a decided gate's freed places filled by a call linked to
//! it. Intake takes the link with `openCall(input: { replaces })` and shows it on `Call`;
//! here are its types, and the committee's votes on the proposed selection (scoring), which
//! `publishSelection` needs a majority of. Kept apart from `scoring.rs` so the committee's
//! surface reads in one place.

use super::gpu::Int64;
use super::{caller_with, upstream};
use crate::clients::Services;
use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use kaip_contracts::dto::scoring as dto;
use kaip_contracts::events::{GpuAward, Replacement};
use kaip_contracts::Role;
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::Officer];

/// Makes a call a replacement call for the places a decided gate freed.
#[derive(InputObject)]
pub struct ReplacementInput {
    /// The gate's key, as milestones decided it (e.g. `gate-1`).
    pub gate: String,
    /// At least 1, at most the places the gate freed that are not filled yet.
    pub places: i32,
    /// The committee: officers' token subjects, at least 3 distinct. Publishing the
    /// selection needs a majority of them.
    pub committee: Vec<String>,
    /// GPUs the ledger offers each winner when the selection is published.
    pub award: Option<GpuAwardInput>,
}

#[derive(InputObject)]
pub struct GpuAwardInput {
    pub model: String,
    pub count: Int64,
    /// A ledger period, e.g. `2027H1`.
    pub period: String,
}

impl From<ReplacementInput> for Replacement {
    fn from(r: ReplacementInput) -> Self {
        Replacement {
            gate: r.gate,
            places: r.places,
            committee: r.committee,
            award: r.award.map(|a| GpuAward {
                model: a.model,
                count: a.count.0,
                period: a.period,
            }),
        }
    }
}

/// A replacement call's link to its gate.
#[derive(SimpleObject)]
pub struct CallReplacement {
    pub gate: String,
    pub places: i32,
    pub committee: Vec<String>,
    pub award: Option<ReplacementAward>,
}

/// GPUs each winner of a replacement call is offered.
#[derive(SimpleObject)]
pub struct ReplacementAward {
    pub model: String,
    pub count: Int64,
    pub period: String,
}

impl From<Replacement> for CallReplacement {
    fn from(r: Replacement) -> Self {
        CallReplacement {
            gate: r.gate,
            places: r.places,
            committee: r.committee,
            award: r.award.map(|a| ReplacementAward {
                model: a.model,
                count: Int64(a.count),
                period: a.period,
            }),
        }
    }
}

/// A committee member's vote on a version of the proposed selection (never changed).
#[derive(SimpleObject)]
pub struct CommitteeVote {
    pub id: Uuid,
    pub version: i32,
    pub voter: String,
    pub approve: bool,
    pub reason: String,
    pub voted_at: DateTime<Utc>,
}

/// A replacement call's committee, its votes and where the current proposal stands.
#[derive(SimpleObject)]
pub struct CommitteeTally {
    pub call_id: Uuid,
    pub gate: String,
    pub committee: Vec<String>,
    /// Approvals publishing needs: a majority of the whole committee.
    pub needed: i32,
    pub current_version: Option<i32>,
    /// What the current version selects (proposal ids, rank order).
    pub current_selected: Vec<Uuid>,
    /// Approvals of the current version.
    pub approvals: i32,
    pub votes: Vec<CommitteeVote>,
}

impl From<dto::CommitteeTally> for CommitteeTally {
    fn from(t: dto::CommitteeTally) -> Self {
        CommitteeTally {
            call_id: t.call_id.0,
            gate: t.gate,
            committee: t.committee,
            needed: t.needed,
            current_version: t.current_version,
            current_selected: t.current_selected.into_iter().map(|p| p.0).collect(),
            approvals: t.approvals,
            votes: t
                .votes
                .into_iter()
                .map(|v| CommitteeVote {
                    id: v.id,
                    version: v.version,
                    voter: v.voter,
                    approve: v.approve,
                    reason: v.reason,
                    voted_at: v.voted_at,
                })
                .collect(),
        }
    }
}

/// A replacement call's cancellation as asked: who, when (`cancelledAt`: when asked), why (a
/// record, never a deletion). Scoring decides it: confirmed, the call's `cancelledAt` is set
/// and its gate freed; refused if the selection was published first.
#[derive(SimpleObject)]
pub struct CallCancellation {
    pub call_id: Uuid,
    pub gate: String,
    pub reason: String,
    pub cancelled_by: String,
    pub cancelled_at: DateTime<Utc>,
}

/// A replacement award the ledger could not offer when the selection was published (the
/// pool missing or short): owed to the winner until offers the winner accepted cover it.
#[derive(SimpleObject)]
pub struct OwedAward {
    pub call_id: Uuid,
    pub consortium_id: Uuid,
    pub model: String,
    pub period: String,
    pub count: Int64,
    /// The ledger's refusal: `POOL_NOT_FOUND`, `EXCEEDS_CREDITS`, ...
    pub code: String,
    pub message: String,
    pub refused_at: DateTime<Utc>,
    /// GPUs of the award's model offered for this call and team (each offer's largest
    /// option), accepted or not.
    pub offered: Int64,
    /// GPUs of the award's model in the options the team accepted.
    pub accepted: Int64,
    /// Accepted offers do not cover `count` yet (an offer unaccepted, expired, declined
    /// or for fewer GPUs settles nothing).
    pub owed: bool,
}

#[derive(Default)]
pub struct ReplacementQuery;

#[Object]
impl ReplacementQuery {
    /// A replacement call's committee and every vote (ministry staff;
    /// `NOT_A_REPLACEMENT_CALL` for an ordinary call).
    async fn selection_votes(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
    ) -> async_graphql::Result<CommitteeTally> {
        let authed = caller_with(ctx, STAFF, "read a replacement call's votes")?;
        let t: dto::CommitteeTally = ctx
            .data::<Services>()?
            .scoring
            .get(
                &format!("/calls/{call_id}/selection/votes"),
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(t.into())
    }

    /// Replacement awards the ledger could not offer (ministry staff), newest first; with
    /// `owedOnly` (the default) only those accepted offers do not cover yet.
    async fn owed_awards(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] owed_only: bool,
    ) -> async_graphql::Result<Vec<OwedAward>> {
        let authed = caller_with(ctx, STAFF, "read owed replacement awards")?;
        let list: Vec<kaip_contracts::dto::gpu::AwardRefusal> = ctx
            .data::<Services>()?
            .gpu_ledger
            .get(&format!("/awards?owed={owed_only}"), Some(&authed.token))
            .await
            .map_err(upstream)?;
        Ok(list
            .into_iter()
            .map(|a| OwedAward {
                call_id: a.call_id.0,
                consortium_id: a.consortium_id.0,
                model: a.model,
                period: a.period,
                count: Int64(a.count),
                code: a.code,
                message: a.message,
                refused_at: a.refused_at,
                offered: Int64(a.offered),
                accepted: Int64(a.accepted),
                owed: a.owed,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct ReplacementMutation;

#[Object]
impl ReplacementMutation {
    /// A committee member approves or rejects the current proposed selection of a
    /// replacement call, with the reason: once per member and version (`ALREADY_VOTED`);
    /// anyone not on the committee `NOT_ON_COMMITTEE`. `version` is the version the member
    /// read; unless it is still the current proposal, `VOTE_VERSION_STALE`.
    async fn vote_on_selection(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        version: i32,
        approve: bool,
        reason: String,
    ) -> async_graphql::Result<CommitteeTally> {
        let authed = caller_with(ctx, STAFF, "vote on a replacement call's selection")?;
        let t: dto::CommitteeTally = ctx
            .data::<Services>()?
            .scoring
            .post(
                &format!("/calls/{call_id}/selection/votes"),
                &dto::CastVote {
                    version,
                    approve,
                    reason,
                },
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(t.into())
    }

    /// Asks to cancel a stuck replacement call (no published selection), with the reason
    /// (required): recorded with who and when, the call kept and closed to new proposals.
    /// Scoring, which owns publication, decides: once it confirms, the call's `cancelledAt`
    /// is set, its gate is free for a new replacement call and scoring refuses the call's
    /// later steps (`CALL_CANCELLED`); if the selection was published first, the
    /// cancellation is refused and the gate stays filled. `NOT_A_REPLACEMENT_CALL` for an
    /// ordinary call, `CALL_DECIDED` once intake saw it published, `CALL_CANCELLED` if asked
    /// already.
    async fn cancel_replacement_call(
        &self,
        ctx: &Context<'_>,
        call_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<CallCancellation> {
        let authed = caller_with(ctx, STAFF, "cancel a replacement call")?;
        let c: kaip_contracts::dto::intake::CallCancellation = ctx
            .data::<Services>()?
            .intake
            .post(
                &format!("/calls/{call_id}/cancel"),
                &kaip_contracts::dto::intake::CancelCall { reason },
                Some(&authed.token),
            )
            .await
            .map_err(upstream)?;
        Ok(CallCancellation {
            call_id: c.call_id.0,
            gate: c.gate,
            reason: c.reason,
            cancelled_by: c.cancelled_by,
            cancelled_at: c.cancelled_at,
        })
    }
}
