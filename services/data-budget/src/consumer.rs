//! The budget's reactions: scoring's `SelectionPublished` opens each selected team's
//! budgets (capped by the call's `team_maxima` when the event carries it); milestones' `TeamEliminated` and `GateDecided` (its `eliminated` list) record
//! the elimination, after which the team commits nothing new. Each is idempotent (the
//! inbox, and `ON CONFLICT DO NOTHING` on the records), so a replay changes nothing.
//! Everything else is recorded in the inbox and ignored.

use crate::error::BudgetError;
use crate::store;
use diesel::PgConnection;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{GateDecided, SelectionPublished, TeamEliminated};
use kaip_contracts::{Actor, DomainEvent, EventEnvelope};

pub struct BudgetEvents;

/// Database failures keep their classification (an outage waits, a deadlock retries);
/// anything else cannot succeed on a retry: dead-letter it with the code and message.
fn handler_error(e: BudgetError) -> HandlerError {
    if let BudgetError::Common(kaip_service::CommonError::Internal(inner)) = e {
        return match inner.downcast::<diesel::result::Error>() {
            Ok(d) => HandlerError::from(d),
            Err(other) => HandlerError::Transient(format!("{other:#}")),
        };
    }
    HandlerError::Permanent(format!("{}: {e}", e.code()))
}

impl EventHandler for BudgetEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        let applied = |n: usize| {
            if n > 0 {
                Handled::Applied
            } else {
                Handled::Ignored
            }
        };
        match event.event_type.as_str() {
            t if t == SelectionPublished::TYPE => {
                let actor = Actor::system(crate::NAME);
                let n = store::record_selection(conn, outbox, &event.decode()?, &actor)
                    .map_err(handler_error)?;
                Ok(applied(n))
            }
            t if t == TeamEliminated::TYPE => {
                Ok(applied(store::team_eliminated(conn, &event.decode()?)?))
            }
            t if t == GateDecided::TYPE => {
                Ok(applied(store::gate_decided(conn, &event.decode()?)?))
            }
            _ => Ok(Handled::Ignored),
        }
    }
}
