//! A replacement call's committee: its members vote on the current proposed selection
//! (approve or reject, with a reason, once each per version), and publishing needs a
//! majority of the whole committee's approvals of the version published. Votes are rows
//! never changed (a trigger refuses it); a new proposal is a new version, voted on afresh.

use super::decision::current;
use crate::domain::decision::majority;
use crate::error::ScoringError;
use crate::schema::committee_votes;
use crate::store::{find_call, CallRow};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{CastVote, CommitteeTally, CommitteeVote};
use kaip_contracts::events::Replacement;
use kaip_contracts::CallId;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use uuid::Uuid;

type VoteRow = (Uuid, Uuid, i32, String, bool, String, DateTime<Utc>);

fn vote_dto((id, call, version, voter, approve, reason, voted_at): VoteRow) -> CommitteeVote {
    CommitteeVote {
        id,
        call_id: CallId(call),
        version,
        voter,
        approve,
        reason,
        voted_at,
    }
}

fn replacement_of(call: &CallRow) -> Result<Replacement, ScoringError> {
    call.replacement()?
        .ok_or(ScoringError::NotReplacementCall(call.id))
}

/// Approvals of `version` of the call's decision.
pub fn approvals(c: &mut PgConnection, call_id: Uuid, version: i32) -> QueryResult<i64> {
    committee_votes::table
        .filter(committee_votes::call_id.eq(call_id))
        .filter(committee_votes::version.eq(version))
        .filter(committee_votes::approve.eq(true))
        .count()
        .get_result(c)
}

/// Refuses publishing `version` of a replacement call without a majority of its committee.
/// An ordinary call passes.
pub fn require_majority(
    c: &mut PgConnection,
    call: &CallRow,
    version: i32,
) -> Result<(), ScoringError> {
    let Some(r) = call.replacement()? else {
        return Ok(());
    };
    let approvals = approvals(c, call.id, version)?;
    let needed = majority(r.committee.len());
    if approvals < needed as i64 {
        return Err(ScoringError::NoMajority {
            version,
            approvals,
            committee: r.committee.len(),
            needed,
        });
    }
    Ok(())
}

fn tally(c: &mut PgConnection, call: &CallRow) -> Result<CommitteeTally, ScoringError> {
    let r = replacement_of(call)?;
    // The version votes count for: the current proposal, or the one a publication made final.
    let cur = current(c, call.id)?;
    let version = cur.as_ref().and_then(|v| {
        if v.kind == "published" {
            v.publishes_version
        } else {
            Some(v.version)
        }
    });
    // A publication records the selection it made final, so the current row says what
    // the counted version selects either way.
    let current_selected = cur.map(|v| v.dto().selected).unwrap_or_default();
    let approvals = match version {
        Some(v) => approvals(c, call.id, v)?,
        None => 0,
    };
    let votes: Vec<VoteRow> = committee_votes::table
        .filter(committee_votes::call_id.eq(call.id))
        .order((committee_votes::voted_at.asc(), committee_votes::id.asc()))
        .select((
            committee_votes::id,
            committee_votes::call_id,
            committee_votes::version,
            committee_votes::voter,
            committee_votes::approve,
            committee_votes::reason,
            committee_votes::voted_at,
        ))
        .load(c)?;
    Ok(CommitteeTally {
        call_id: CallId(call.id),
        gate: r.gate,
        needed: majority(r.committee.len()) as i32,
        committee: r.committee,
        current_version: version,
        current_selected,
        approvals: approvals as i32,
        votes: votes.into_iter().map(vote_dto).collect(),
    })
}

/// A committee member votes on the current proposal (ministry staff whose token subject is
/// on the committee; anyone else `NOT_ON_COMMITTEE`). Once per member and version.
pub async fn vote(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<CastVote>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(super::STAFF, "vote on a replacement call's selection")?;
    let call_id = path.into_inner();
    let req = body.into_inner();
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(CommonError::validation(
            "reason",
            "a vote must say why (1 to 2000 characters)",
        )
        .into());
    }
    let voter = caller.0.sub.clone();
    let tally = state
        .db(move |c, _| {
            c.transaction(|c| {
                // The call's row is the lock publishing holds: a vote counts wholly before
                // a publication or is refused after it.
                let call = find_call(c, call_id, true)?;
                call.not_cancelled()?;
                let r = replacement_of(&call)?;
                if !r.committee.contains(&voter) {
                    return Err(ScoringError::NotOnCommittee(voter));
                }
                if call.published_at.is_some() {
                    return Err(ScoringError::Conflict(
                        "the decision is published and final".into(),
                    ));
                }
                let proposed = current(c, call_id)?.ok_or_else(|| {
                    ScoringError::Conflict(
                        "propose a selection first: there is nothing to vote on".into(),
                    )
                })?;
                if req.version != proposed.version {
                    return Err(ScoringError::VoteVersionStale {
                        voted: req.version,
                        current: proposed.version,
                    });
                }
                let n = diesel::insert_into(committee_votes::table)
                    .values((
                        committee_votes::id.eq(Uuid::now_v7()),
                        committee_votes::call_id.eq(call_id),
                        committee_votes::version.eq(proposed.version),
                        committee_votes::voter.eq(&voter),
                        committee_votes::approve.eq(req.approve),
                        committee_votes::reason.eq(&reason),
                        committee_votes::voted_at.eq(Utc::now().trunc_subsecs(6)),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                if n == 0 {
                    return Err(ScoringError::AlreadyVoted {
                        voter,
                        version: proposed.version,
                    });
                }
                tally(c, &call)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(tally))
}

/// The committee, its votes and where the current proposal stands (ministry staff).
pub async fn votes(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(super::STAFF, "read a replacement call's votes")?;
    let call_id = path.into_inner();
    let tally = state
        .db(move |c, _| {
            let call = find_call(c, call_id, false)?;
            tally(c, &call)
        })
        .await?;
    Ok(HttpResponse::Ok().json(tally))
}
