//! The ledger's reactions: scoring's `SelectionPublished` (the teams that may be offered
//! GPUs; a replacement call's winners are offered its award at once), milestones' `GateDecided` (tranches waiting for the gate are released to the
//! teams that passed) and `TeamEliminated` (the team's grants closed and reallocated in one
//! chain); and the GPU operators' `GpuUsageReported` (recorded by the same code as
//! `POST /usage`: a repeat of a report with the same fields is `Ignored`, with different
//! fields, or by anyone but an integration, it is dead-lettered with the coded reason).
//! Everything else is recorded in the inbox and ignored.

use crate::error::LedgerError;
use crate::grants;
use diesel::PgConnection;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::dto::gpu::ReportUsage;
use kaip_contracts::events::{GateDecided, GpuUsageReported, SelectionPublished, TeamEliminated};
use kaip_contracts::Role;
use kaip_contracts::{DomainEvent, EventEnvelope};

pub struct LedgerEvents;

/// Database failures keep their classification (an outage waits, a deadlock retries);
/// a refused chain or an invalid plan cannot succeed on a retry: dead-letter it, with the
/// code and message as the reason.
fn handler_error(e: LedgerError) -> HandlerError {
    if let LedgerError::Common(kaip_service::CommonError::Internal(inner)) = e {
        return match inner.downcast::<diesel::result::Error>() {
            Ok(d) => HandlerError::from(d),
            Err(other) => HandlerError::Transient(format!("{other:#}")),
        };
    }
    HandlerError::Permanent(format!("{}: {e}", e.code()))
}

impl EventHandler for LedgerEvents {
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
        match event.event_type.as_str() {
            t if t == SelectionPublished::TYPE => {
                let ev: SelectionPublished = event.decode()?;
                let n = grants::record_selection(conn, &ev)?;
                // A replacement call's winners are offered its award in the same
                // transaction; an award the pool cannot honour is logged and left to an
                // officer, never a reason to lose the selection.
                let offers =
                    grants::offer_replacement_award(conn, outbox, &ev).map_err(handler_error)?;
                Ok(applied(n > 0 || offers > 0))
            }
            t if t == GateDecided::TYPE => {
                let n =
                    grants::gate_decided(conn, outbox, &event.decode()?).map_err(handler_error)?;
                Ok(applied(n > 0))
            }
            t if t == TeamEliminated::TYPE => {
                let done =
                    grants::eliminate(conn, outbox, &event.decode()?).map_err(handler_error)?;
                Ok(applied(done))
            }
            t if t == GpuUsageReported::TYPE => {
                let r: GpuUsageReported = event.decode()?;
                // The API asks an operator's token; on the topic the envelope's actor says
                // who reports, and only an integration (an operator) does.
                if event.actor.role != Role::Integration {
                    return Err(HandlerError::Permanent(format!(
                        "actor.role: a usage report on the operators' topic is made by an integration, not `{}`",
                        event.actor.role
                    )));
                }
                let req = ReportUsage {
                    id: r.report_id,
                    consortium_id: r.consortium_id,
                    model: r.model,
                    period: r.period,
                    gpu_hours: r.gpu_hours,
                    note: r.note,
                };
                // The text rules `POST /usage` applies to its body (ValidJson), here too.
                kaip_contracts::text::CheckText::check_text(&req)
                    .map_err(|v| HandlerError::Permanent(format!("VALIDATION_FAILED: data.{v}")))?;
                let (_, created) = crate::routes::usage::record(conn, outbox, &req, &event.actor)
                    .map_err(handler_error)?;
                Ok(applied(created))
            }
            _ => Ok(Handled::Ignored),
        }
    }
}
