//! The milestones service's reactions: scoring's `SelectionPublished` (the teams a call
//! selected: each gets a plan and is assessed at the gates). Idempotent: a redelivery
//! changes nothing (the inbox, and inserts that keep the first record).

use crate::store;
use diesel::PgConnection;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::SelectionPublished;
use kaip_contracts::{DomainEvent, EventEnvelope};

pub struct MilestonesEvents;

impl EventHandler for MilestonesEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        _outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        match event.event_type.as_str() {
            t if t == SelectionPublished::TYPE => {
                if store::record_selection(conn, &event.decode()?)? > 0 {
                    Ok(Handled::Applied)
                } else {
                    Ok(Handled::Ignored)
                }
            }
            _ => Ok(Handled::Ignored),
        }
    }
}
