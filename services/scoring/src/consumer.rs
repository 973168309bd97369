//! Scoring's reaction to intake's events, and to milestones' `GateDefined` (the gate keys a
//! panel may name) and `TeamEliminated` (teams a later gate's panel leaves out).

use crate::schema::{calls, evaluation_cases, refused_withdrawals};
use crate::store::{self, CallRow, CaseRow};
use diesel::prelude::*;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::dto::scoring::EvaluationConfig;
use kaip_contracts::events::{
    CallOpened, EvaluationCaseOpened, GateDecided, GateDefined, ProposalSubmitted,
    ProposalWithdrawn, ReplacementCallCancellationDecided, ReplacementCallCancelled,
    TeamEliminated, WithdrawalRefused,
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
            t if t == ReplacementCallCancelled::TYPE => cancelled(conn, outbox, &event.decode()?),
            t if t == ProposalWithdrawn::TYPE => withdraw(conn, outbox, event, &event.decode()?),
            t if t == GateDefined::TYPE => record_gate(conn, &event.decode()?),
            t if t == TeamEliminated::TYPE => record_elimination(conn, &event.decode()?),
            t if t == GateDecided::TYPE => {
                let d: GateDecided = event.decode()?;
                record_decided(conn, &d.gate, d.gate_id, d.decided_at)
            }
            _ => Ok(Handled::Ignored),
        }
    }
}

/// A gate milestones defined: its key may now name a panel. Redelivered, it changes nothing
/// (a key is defined once in milestones).
fn record_gate(conn: &mut PgConnection, g: &GateDefined) -> Result<Handled, HandlerError> {
    use crate::schema::known_gates;
    let n = diesel::insert_into(known_gates::table)
        .values((
            known_gates::gate.eq(&g.gate),
            known_gates::gate_id.eq(g.gate_id),
            known_gates::phase.eq(g.phase),
            known_gates::gate_date.eq(g.gate_date),
            known_gates::defined_at.eq(g.defined_at),
            known_gates::expert_panel.eq(Some(g.expert_panel)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    // A key learnt before the event said whether the gate has a panel component (an
    // announce repeats it): only that is filled in; nothing else changes.
    let n = n + diesel::update(
        known_gates::table
            .filter(known_gates::gate.eq(&g.gate))
            .filter(known_gates::expert_panel.is_null()),
    )
    .set(known_gates::expert_panel.eq(Some(g.expert_panel)))
    .execute(conn)?;
    Ok(if n == 0 {
        Handled::Ignored
    } else {
        Handled::Applied
    })
}

/// A team eliminated at a gate: a later gate's panel leaves it out. Once per team and gate.
fn record_elimination(
    conn: &mut PgConnection,
    e: &TeamEliminated,
) -> Result<Handled, HandlerError> {
    use crate::schema::eliminated_teams;
    let n = diesel::insert_into(eliminated_teams::table)
        .values((
            eliminated_teams::consortium_id.eq(e.consortium_id.0),
            eliminated_teams::gate.eq(&e.gate),
            eliminated_teams::gate_id.eq(e.gate_id),
            eliminated_teams::reason.eq(&e.reason),
            eliminated_teams::decided_at.eq(e.decided_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    let decided = record_decided(conn, &e.gate, e.gate_id, e.decided_at)?;
    Ok(if n == 0 && decided == Handled::Ignored {
        Handled::Ignored
    } else {
        Handled::Applied
    })
}

/// A gate whose decision milestones published (`GateDecided`, or any `TeamEliminated` of
/// it): no panel is made for it any more. Once per gate.
fn record_decided(
    conn: &mut PgConnection,
    gate: &str,
    gate_id: uuid::Uuid,
    decided_at: chrono::DateTime<chrono::Utc>,
) -> Result<Handled, HandlerError> {
    use crate::schema::decided_known_gates as d;
    let n = diesel::insert_into(d::table)
        .values((
            d::gate.eq(gate),
            d::gate_id.eq(gate_id),
            d::decided_at.eq(decided_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(if n == 0 {
        Handled::Ignored
    } else {
        Handled::Applied
    })
}

/// Scoring keeps the calls it will evaluate (to validate settings and stages against), with
/// the per-team maxima it forwards in `SelectionPublished`.
fn record_call(conn: &mut PgConnection, opened: &CallOpened) -> Result<Handled, HandlerError> {
    diesel::insert_into(calls::table)
        .values((
            calls::id.eq(opened.call_id.0),
            calls::title.eq(&opened.title),
            calls::closes_at.eq(opened.closes_at),
            calls::max_data_budget_krw.eq(opened.team_maxima.map(|m| m.data_budget_krw.0)),
            calls::max_talent_funding_krw.eq(opened.team_maxima.map(|m| m.talent_funding_krw.0)),
            calls::replaces.eq(opened
                .replaces
                .as_ref()
                .map(|r| serde_json::to_value(r).unwrap_or_default())),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    // A call recorded before its maxima were carried (an older intake, or before this
    // column existed) learns them from a redelivered `CallOpened`; a recorded maximum is
    // never changed.
    if let Some(m) = opened.team_maxima {
        diesel::update(
            calls::table
                .filter(calls::id.eq(opened.call_id.0))
                .filter(calls::max_data_budget_krw.is_null()),
        )
        .set((
            calls::max_data_budget_krw.eq(m.data_budget_krw.0),
            calls::max_talent_funding_krw.eq(m.talent_funding_krw.0),
        ))
        .execute(conn)?;
    }
    Ok(Handled::Applied)
}

/// Intake asks to cancel a replacement call. Scoring owns publication, so it decides, under
/// the call's row lock (the lock `publish` holds): a call not yet published is cancelled
/// (its later steps are refused, `CALL_CANCELLED`) and confirmed; a call already published
/// stays published and the cancellation is refused, so intake keeps its gate filled. A
/// redelivered request changes nothing and sends nothing again.
fn cancelled(
    conn: &mut PgConnection,
    outbox: &mut OutboxTx<'_>,
    ev: &ReplacementCallCancelled,
) -> Result<Handled, HandlerError> {
    type At = Option<chrono::DateTime<chrono::Utc>>;
    let state: Option<(At, At)> = calls::table
        .find(ev.call_id.0)
        .select((calls::published_at, calls::cancelled_at))
        .for_update()
        .first(conn)
        .optional()?;
    let decided_at = chrono::Utc::now();
    let decision = match state {
        Some((_, Some(_))) => return Ok(Handled::Ignored),
        Some((Some(published_at), None)) => ReplacementCallCancellationDecided {
            call_id: ev.call_id,
            gate: ev.gate.clone(),
            cancelled: false,
            refusal: Some(format!(
                "the call's selection was published at {} before this cancellation (asked at {}) reached evaluation: the selection stands and the gate's places stay filled",
                published_at.to_rfc3339(),
                ev.cancelled_at.to_rfc3339()
            )),
            decided_at,
        },
        // Not published (or never recorded here, so never publishable): cancelled.
        Some((None, None)) | None => {
            diesel::update(calls::table.find(ev.call_id.0))
                .set(calls::cancelled_at.eq(ev.cancelled_at))
                .execute(conn)?;
            ReplacementCallCancellationDecided {
                call_id: ev.call_id,
                gate: ev.gate.clone(),
                cancelled: true,
                refusal: None,
                decided_at,
            }
        }
    };
    if state.is_none() {
        // Remembered, so a `CallOpened` redelivered later cannot bring it back.
        diesel::insert_into(calls::table)
            .values((
                calls::id.eq(ev.call_id.0),
                calls::title.eq(format!("(cancelled before scoring saw it: {})", ev.gate)),
                calls::closes_at.eq(ev.cancelled_at),
                calls::cancelled_at.eq(ev.cancelled_at),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    outbox.publish(conn, Actor::system(crate::NAME), &decision)?;
    if decision.cancelled {
        tracing::info!(call_id = %ev.call_id, "replacement call cancelled");
    } else {
        tracing::warn!(call_id = %ev.call_id, "cancellation after publication refused");
    }
    Ok(Handled::Applied)
}

/// Opens the evaluation case for a submitted proposal and announces it. A proposal has at
/// most one case: a second `ProposalSubmitted` for it changes nothing.
pub fn open_case(
    conn: &mut PgConnection,
    outbox: &mut OutboxTx<'_>,
    submitted: &ProposalSubmitted,
) -> Result<Handled, HandlerError> {
    // A submission keyed by proposal can overtake the call's cancellation (keyed by call):
    // a cancelled call opens no case.
    let cancelled: Option<Option<chrono::DateTime<chrono::Utc>>> = calls::table
        .find(submitted.call_id.0)
        .select(calls::cancelled_at)
        .for_share()
        .first(conn)
        .optional()?;
    if let Some(Some(at)) = cancelled {
        tracing::warn!(proposal_id = %submitted.proposal_id, call_id = %submitted.call_id, cancelled_at = %at, "submission to a cancelled call: no case opened");
        return Ok(Handled::Ignored);
    }
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
    join_stage_zero(conn, case_id.0, submitted)?;
    Ok(Handled::Applied)
}

/// A submission intake accepted before the deadline can reach scoring after stage 0 was
/// assigned (the event was delayed). It must not be left where nobody will ever review it:
/// while stage 0 is open it gets its reviewers now (a shortfall shows in the call's
/// shortfalls and stops the stage from closing); once stage 0 has closed it cannot be ranked
/// with its peers and is marked `late` for staff to decide.
fn join_stage_zero(
    conn: &mut PgConnection,
    case_id: uuid::Uuid,
    submitted: &ProposalSubmitted,
) -> Result<(), HandlerError> {
    let call_id = submitted.call_id.0;
    // The call's row is the lock `assign` holds: either it sees this case, or this sees its
    // assignments.
    let call: Option<CallRow> = calls::table
        .find(call_id)
        .select(CallRow::as_select())
        .for_update()
        .first(conn)
        .optional()?;
    let Some(config) = call
        .and_then(|c| c.config)
        .and_then(|v| serde_json::from_value::<EvaluationConfig>(v).ok())
    else {
        return Ok(());
    };
    if store::stage_closed(conn, call_id, 0)? {
        diesel::update(evaluation_cases::table.find(case_id))
            .set(evaluation_cases::status.eq("late"))
            .execute(conn)?;
        tracing::warn!(proposal_id = %submitted.proposal_id, "submission reached scoring after stage 0 closed: case marked late");
        return Ok(());
    }
    if !store::stage_started(conn, call_id, 0)? {
        return Ok(());
    }
    let case: CaseRow = evaluation_cases::table
        .find(case_id)
        .select(CaseRow::as_select())
        .first(conn)?;
    let plan = store::plan_assignments(conn, call_id, 0, &config, &[case])?;
    store::apply_plan(conn, call_id, 0, &plan)?;
    if !plan.shortfalls.is_empty() {
        tracing::warn!(proposal_id = %submitted.proposal_id, "late case short of reviewers in stage 0");
    }
    Ok(())
}

/// A withdrawn proposal leaves the competition wherever it stands, until the decision is
/// published. Scoring owns the decision: a withdrawal that reaches it afterwards (intake
/// learns of the publication asynchronously) is refused, recorded, and announced with
/// `WithdrawalRefused` so intake restores the proposal and its consortium learns why.
fn withdraw(
    conn: &mut PgConnection,
    outbox: &mut OutboxTx<'_>,
    event: &EventEnvelope,
    withdrawn: &ProposalWithdrawn,
) -> Result<Handled, HandlerError> {
    // Publication locks the call's row: a withdrawal is applied wholly before it or seen
    // after it.
    let published: Option<Option<chrono::DateTime<chrono::Utc>>> = calls::table
        .find(withdrawn.call_id.0)
        .select(calls::published_at)
        .for_update()
        .first(conn)
        .optional()?;
    let case: Option<CaseRow> = evaluation_cases::table
        .filter(evaluation_cases::proposal_id.eq(withdrawn.proposal_id.0))
        .select(CaseRow::as_select())
        .for_update()
        .first(conn)
        .optional()?;
    let Some(case) = case else {
        return Ok(Handled::Ignored);
    };
    if case.status == "withdrawn" {
        return Ok(Handled::Ignored);
    }
    if let Some(Some(published_at)) = published {
        let reason = format!(
            "the call's decision was published at {} before this withdrawal (made at {}) reached evaluation: the decision stands and the proposal keeps its result ({})",
            published_at.to_rfc3339(),
            withdrawn.withdrawn_at.to_rfc3339(),
            case.status
        );
        let refused_at = chrono::Utc::now();
        diesel::insert_into(refused_withdrawals::table)
            .values((
                refused_withdrawals::event_id.eq(event.id.0),
                refused_withdrawals::proposal_id.eq(withdrawn.proposal_id.0),
                refused_withdrawals::call_id.eq(withdrawn.call_id.0),
                refused_withdrawals::reason.eq(&reason),
                refused_withdrawals::refused_at.eq(refused_at),
            ))
            .execute(conn)?;
        let refused = WithdrawalRefused {
            proposal_id: withdrawn.proposal_id,
            call_id: withdrawn.call_id,
            consortium_id: withdrawn.consortium_id,
            reason,
            case_status: case.status,
            refused_at,
        };
        outbox.publish(conn, Actor::system(crate::NAME), &refused)?;
        tracing::warn!(proposal_id = %withdrawn.proposal_id, "withdrawal after publication refused");
        return Ok(Handled::Applied);
    }
    diesel::update(evaluation_cases::table.find(case.id))
        .set(evaluation_cases::status.eq("withdrawn"))
        .execute(conn)?;
    Ok(Handled::Applied)
}
