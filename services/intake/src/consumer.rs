//! Intake's reaction to scoring's events: a published selection freezes the call's proposals.

use crate::schema::calls;
use diesel::prelude::*;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::SelectionPublished;
use kaip_contracts::{DomainEvent, EventEnvelope};

pub struct ScoringEvents;

impl EventHandler for ScoringEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        _: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        if event.event_type != SelectionPublished::TYPE {
            return Ok(Handled::Ignored);
        }
        let published: SelectionPublished = event.decode()?;
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
}
