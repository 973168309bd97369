//! The talent service's reactions: intake's `ProposalSubmitted` (the lead's size and the
//! declared openness, for the match ratio), scoring's `SelectionPublished` (the selected
//! teams and the talent funding each requested), and milestones' `TeamEliminated` and
//! `GateDecided` (funding stops after the elimination's month). Each is idempotent: a
//! redelivery changes nothing (the inbox, and inserts that keep the first record).

use crate::store;
use diesel::PgConnection;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{GateDecided, ProposalSubmitted, SelectionPublished, TeamEliminated};
use kaip_contracts::{DomainEvent, EventEnvelope};

pub struct TalentEvents;

impl EventHandler for TalentEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        let applied = |b: bool| {
            if b {
                Handled::Applied
            } else {
                Handled::Ignored
            }
        };
        let actor = kaip_contracts::Actor::system(crate::NAME);
        match event.event_type.as_str() {
            t if t == ProposalSubmitted::TYPE => {
                Ok(applied(store::record_proposal(conn, &event.decode()?)? > 0))
            }
            t if t == SelectionPublished::TYPE => Ok(applied(
                store::record_selection(conn, &event.decode()?)? > 0,
            )),
            t if t == TeamEliminated::TYPE => {
                let e: TeamEliminated = event.decode()?;
                let done = store::eliminate(
                    conn,
                    outbox,
                    e.consortium_id,
                    &e.gate,
                    &e.reason,
                    e.decided_at,
                    &actor,
                )?;
                Ok(applied(done))
            }
            t if t == GateDecided::TYPE => {
                let g: GateDecided = event.decode()?;
                let mut any = false;
                for team in &g.eliminated {
                    any |= store::eliminate(
                        conn,
                        outbox,
                        *team,
                        &g.gate,
                        "eliminated at the gate (GateDecided)",
                        g.decided_at,
                        &actor,
                    )?;
                }
                Ok(applied(any))
            }
            _ => Ok(Handled::Ignored),
        }
    }
}
