//! Scoring's reaction to intake's events.

use crate::schema::{calls, evaluation_cases};
use diesel::prelude::*;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{
    CallOpened, EvaluationCaseOpened, ProposalSubmitted, ProposalWithdrawn,
};
use kaip_contracts::{Actor, DomainEvent, EvaluationCaseId, EventEnvelope};

pub struct IntakeEvents;

impl EventHandler for IntakeEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        match event.event_type.as_str() {
            t if t == ProposalSubmitted::TYPE => open_case(conn, outbox, &event.decode()?),
            t if t == CallOpened::TYPE => record_call(conn, &event.decode()?),
            t if t == ProposalWithdrawn::TYPE => withdraw(conn, &event.decode()?),
            _ => Ok(Handled::Ignored),
        }
    }
}

/// Scoring keeps the calls it will evaluate (to validate settings and stages against).
fn record_call(conn: &mut PgConnection, opened: &CallOpened) -> Result<Handled, HandlerError> {
    diesel::insert_into(calls::table)
        .values((
            calls::id.eq(opened.call_id.0),
            calls::title.eq(&opened.title),
            calls::closes_at.eq(opened.closes_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(Handled::Applied)
}

/// Opens the evaluation case for a submitted proposal and announces it. A proposal has at
/// most one case: a second `ProposalSubmitted` for it changes nothing.
pub fn open_case(
    conn: &mut PgConnection,
    outbox: &mut OutboxTx<'_>,
    submitted: &ProposalSubmitted,
) -> Result<Handled, HandlerError> {
    let case_id = EvaluationCaseId::new();
    let opened_at = chrono::Utc::now();
    let members = serde_json::to_value(&submitted.members)
        .map_err(|e| HandlerError::Permanent(e.to_string()))?;
    let resources = serde_json::to_value(&submitted.resources)
        .map_err(|e| HandlerError::Permanent(e.to_string()))?;
    let portfolio = submitted
        .portfolio
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| HandlerError::Permanent(e.to_string()))?;
    let inserted = diesel::insert_into(evaluation_cases::table)
        .values((
            evaluation_cases::id.eq(case_id.0),
            evaluation_cases::proposal_id.eq(submitted.proposal_id.0),
            evaluation_cases::call_id.eq(submitted.call_id.0),
            evaluation_cases::consortium_id.eq(submitted.consortium_id.0),
            evaluation_cases::title.eq(&submitted.title),
            evaluation_cases::status.eq("open"),
            evaluation_cases::opened_at.eq(opened_at),
            evaluation_cases::consortium_name.eq(&submitted.consortium_name),
            evaluation_cases::members.eq(members),
            evaluation_cases::resources.eq(resources),
            evaluation_cases::submitted_at.eq(submitted.submitted_at),
            evaluation_cases::portfolio.eq(portfolio),
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

/// A withdrawn proposal leaves the competition wherever it stands.
fn withdraw(
    conn: &mut PgConnection,
    withdrawn: &ProposalWithdrawn,
) -> Result<Handled, HandlerError> {
    let n = diesel::update(
        evaluation_cases::table.filter(evaluation_cases::proposal_id.eq(withdrawn.proposal_id.0)),
    )
    .set(evaluation_cases::status.eq("withdrawn"))
    .execute(conn)?;
    Ok(if n > 0 {
        Handled::Applied
    } else {
        Handled::Ignored
    })
}
