//! Scoring's reaction to intake's events.

use crate::schema::evaluation_cases;
use diesel::prelude::*;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{EvaluationCaseOpened, ProposalSubmitted};
use kaip_contracts::{Actor, EvaluationCaseId, EventEnvelope};

pub struct IntakeEvents;

impl EventHandler for IntakeEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        if event.event_type != <ProposalSubmitted as kaip_contracts::DomainEvent>::TYPE {
            return Ok(Handled::Ignored);
        }
        let submitted: ProposalSubmitted = event.decode()?;
        open_case(conn, outbox, &submitted)
    }
}

/// Opens the evaluation case for a submitted proposal and announces it. A proposal has at
/// most one case: a second `ProposalSubmitted` for it (a republished event with a new id
/// would be a producer bug) changes nothing.
pub fn open_case(
    conn: &mut PgConnection,
    outbox: &mut OutboxTx<'_>,
    submitted: &ProposalSubmitted,
) -> Result<Handled, HandlerError> {
    let case_id = EvaluationCaseId::new();
    let opened_at = chrono::Utc::now();
    let inserted = diesel::insert_into(evaluation_cases::table)
        .values((
            evaluation_cases::id.eq(case_id.0),
            evaluation_cases::proposal_id.eq(submitted.proposal_id.0),
            evaluation_cases::call_id.eq(submitted.call_id.0),
            evaluation_cases::consortium_id.eq(submitted.consortium_id.0),
            evaluation_cases::title.eq(&submitted.title),
            evaluation_cases::status.eq("open"),
            evaluation_cases::opened_at.eq(opened_at),
        ))
        .on_conflict(evaluation_cases::proposal_id)
        .do_nothing()
        .execute(conn)?;
    if inserted == 0 {
        tracing::warn!(proposal_id = %submitted.proposal_id, "evaluation case already open; event ignored");
        return Ok(Handled::Ignored);
    }
    let opened = EvaluationCaseOpened {
        case_id,
        proposal_id: submitted.proposal_id,
        call_id: submitted.call_id,
        consortium_id: submitted.consortium_id,
        opened_at,
    };
    outbox.publish(conn, Actor::system(crate::NAME), &opened)?;
    tracing::info!(case_id = %case_id, proposal_id = %submitted.proposal_id, "evaluation case opened");
    Ok(Handled::Applied)
}
