//! Intake's reaction to scoring's events: a published selection freezes the call's proposals;
//! a withdrawal scoring refused (the decision was published first) is undone and explained.
//! And to milestones' `GateDecided`: the gates a replacement call may name, with the teams
//! they eliminated.

use crate::schema::{call_cancellations, calls, decided_gates, proposals, selected_teams};
use diesel::prelude::*;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{
    GateDecided, ReplacementCallCancellationDecided, SelectionPublished, WithdrawalRefused,
};
use kaip_contracts::{DomainEvent, EventEnvelope};

pub struct ScoringEvents;

impl EventHandler for ScoringEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        _: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        match event.event_type.as_str() {
            t if t == SelectionPublished::TYPE => decided(conn, &event.decode()?),
            t if t == WithdrawalRefused::TYPE => withdrawal_refused(conn, &event.decode()?),
            t if t == GateDecided::TYPE => gate_decided(conn, &event.decode()?),
            t if t == ReplacementCallCancellationDecided::TYPE => {
                cancellation_decided(conn, &event.decode()?)
            }
            _ => Ok(Handled::Ignored),
        }
    }
}

fn decided(
    conn: &mut PgConnection,
    published: &SelectionPublished,
) -> Result<Handled, HandlerError> {
    let n = diesel::update(
        calls::table
            .find(published.call_id.0)
            .filter(calls::decided_at.is_null()),
    )
    .set((
        calls::decided_at.eq(published.published_at),
        calls::filled.eq(published.selected.len() as i32),
    ))
    .execute(conn)?;
    // Who the call selected: survivors hold a place a replacement call may not give them.
    let rows: Vec<_> = published
        .selected
        .iter()
        .map(|t| {
            (
                selected_teams::call_id.eq(published.call_id.0),
                selected_teams::consortium_id.eq(t.consortium_id.0),
                selected_teams::selected_at.eq(published.published_at),
            )
        })
        .collect();
    let added = diesel::insert_into(selected_teams::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(if n > 0 || added > 0 {
        Handled::Applied
    } else {
        Handled::Ignored
    })
}

/// Records a gate's decision once (by gate id): the gate a replacement call may name.
fn gate_decided(conn: &mut PgConnection, decided: &GateDecided) -> Result<Handled, HandlerError> {
    let n = diesel::insert_into(decided_gates::table)
        .values((
            decided_gates::gate_id.eq(decided.gate_id),
            decided_gates::gate.eq(&decided.gate),
            decided_gates::eliminated.eq(serde_json::to_value(&decided.eliminated)
                .map_err(|e| HandlerError::Permanent(e.to_string()))?),
            decided_gates::decided_at.eq(decided.decided_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(if n > 0 {
        Handled::Applied
    } else {
        Handled::Ignored
    })
}

/// Scoring owns the decision and refused the withdrawal: the proposal is `submitted` again
/// (its withdrawal stays on record) and carries the reason for its consortium to read.
fn withdrawal_refused(
    conn: &mut PgConnection,
    refused: &WithdrawalRefused,
) -> Result<Handled, HandlerError> {
    let n = diesel::update(
        proposals::table
            .find(refused.proposal_id.0)
            .filter(proposals::consortium_id.eq(refused.consortium_id.0))
            .filter(proposals::status.eq("withdrawn")),
    )
    .set((
        proposals::status.eq("submitted"),
        proposals::withdrawal_refused_at.eq(refused.refused_at),
        proposals::withdrawal_refusal.eq(&refused.reason),
    ))
    .execute(conn)?;
    Ok(if n > 0 {
        Handled::Applied
    } else {
        Handled::Ignored
    })
}

/// Scoring decided a requested cancellation. Confirmed: the call is cancelled and its gate
/// freed (the partial unique index lets a new replacement call open). Refused (the selection
/// was published first): the gate stays filled and the request row keeps the refusal.
/// Either is applied once; a redelivery changes nothing.
fn cancellation_decided(
    conn: &mut PgConnection,
    d: &ReplacementCallCancellationDecided,
) -> Result<Handled, HandlerError> {
    let undecided = call_cancellations::table
        .find(d.call_id.0)
        .filter(call_cancellations::confirmed_at.is_null())
        .filter(call_cancellations::refused_at.is_null());
    let n = if d.cancelled {
        let n = diesel::update(undecided)
            .set(call_cancellations::confirmed_at.eq(d.decided_at))
            .execute(conn)?;
        if n > 0 {
            diesel::update(
                calls::table
                    .find(d.call_id.0)
                    .filter(calls::cancelled_at.is_null()),
            )
            .set(calls::cancelled_at.eq(d.decided_at))
            .execute(conn)?;
        }
        n
    } else {
        let refusal = d
            .refusal
            .clone()
            .unwrap_or_else(|| "refused by scoring".into());
        diesel::update(undecided)
            .set((
                call_cancellations::refused_at.eq(d.decided_at),
                call_cancellations::refusal.eq(refusal),
            ))
            .execute(conn)?
    };
    Ok(if n > 0 {
        Handled::Applied
    } else {
        Handled::Ignored
    })
}
