//! Intake's reaction to scoring's events: a published selection freezes the call's proposals;
//! a withdrawal scoring refused (the decision was published first) is undone and explained.

use crate::schema::{calls, proposals};
use diesel::prelude::*;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{SelectionPublished, WithdrawalRefused};
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
    .set(calls::decided_at.eq(published.published_at))
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
