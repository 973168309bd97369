//! The milestones service's reactions:
//! - scoring's `SelectionPublished` (the teams a call selected: each gets a plan and is
//!   assessed at the gates);
//! - scoring's `GatePanelScored` (a gate's expert panel closed): an `expert_panel` input of
//!   the gate's expert-panel component, `source_ref` = the panel;
//! - an integration's `BenchmarkResultReported` on the benchmarks' topic: an `integration`
//!   input of the named benchmark component, `source_ref` = the run.
//!
//! Idempotent: a redelivery changes nothing (the inbox, inserts that keep the first record,
//! and a gate input delivered again by its source with the same value). An input event
//! milestones cannot take (unknown gate or team, a published gate, no such component, a
//! value out of range, another value for the same run) is dead-lettered to
//! `kaip.milestones.dlq` with its code in `kaip-dlq-error`: never silently lost.

use crate::error::MilestonesError;
use crate::store;
use diesel::PgConnection;
use kaip_bus::{EventHandler, Handled, HandlerError, OutboxTx};
use kaip_contracts::events::{BenchmarkResultReported, GatePanelScored, SelectionPublished};
use kaip_contracts::text::{check, Lines};
use kaip_contracts::{DomainEvent, EventEnvelope, Role};

pub struct MilestonesEvents;

/// Database failures keep their classification (an outage waits, a deadlock retries); a
/// refusal cannot succeed on a retry: dead-letter it with the code and message.
fn handler_error(e: MilestonesError) -> HandlerError {
    if let MilestonesError::Common(kaip_service::CommonError::Internal(inner)) = e {
        return match inner.downcast::<diesel::result::Error>() {
            Ok(d) => HandlerError::from(d),
            Err(other) => HandlerError::Transient(format!("{other:#}")),
        };
    }
    HandlerError::Permanent(format!("{}: {e}", e.code()))
}

fn invalid(field: &str, rule: &str) -> HandlerError {
    HandlerError::Permanent(format!("VALIDATION_FAILED: data.{field}: {rule}"))
}

/// A single-line text of the event, 1 to `max` bytes.
fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), HandlerError> {
    if (required && value.trim().is_empty()) || value.len() > max {
        return Err(invalid(field, &format!("1 to {max} bytes, not blank")));
    }
    check(field, value, Lines::Single)
        .map_err(|v| HandlerError::Permanent(format!("VALIDATION_FAILED: data.{v}")))
}

fn applied(b: bool) -> Handled {
    if b {
        Handled::Applied
    } else {
        Handled::Ignored
    }
}

impl EventHandler for MilestonesEvents {
    fn handle(
        &self,
        conn: &mut PgConnection,
        _outbox: &mut OutboxTx<'_>,
        event: &EventEnvelope,
    ) -> Result<Handled, HandlerError> {
        match event.event_type.as_str() {
            t if t == SelectionPublished::TYPE => Ok(applied(
                store::record_selection(conn, &event.decode()?)? > 0,
            )),
            t if t == GatePanelScored::TYPE => {
                let e: GatePanelScored = event.decode()?;
                let panel = e.panel_id.to_string();
                let input = store::EventInput {
                    gate: &e.gate,
                    team: e.consortium_id,
                    component: None,
                    value_field: "score",
                    value: &e.score,
                    source: "expert_panel",
                    source_ref: &panel,
                    reason: format!(
                        "expert panel {panel} in scoring: the consensus of {} reviewer(s), closed at {}",
                        e.reviewers, e.scored_at
                    ),
                    measured_at: None,
                };
                let recorded =
                    store::add_event_input(conn, &input, &event.actor).map_err(handler_error)?;
                Ok(applied(recorded.is_some()))
            }
            t if t == BenchmarkResultReported::TYPE => {
                let e: BenchmarkResultReported = event.decode()?;
                // Only an integration reports results (as only an operator reports usage).
                if event.actor.role != Role::Integration {
                    return Err(HandlerError::Permanent(format!(
                        "actor.role: a benchmark result on the benchmarks' topic is reported by an integration, not `{}`",
                        event.actor.role
                    )));
                }
                text("run_id", &e.run_id, 200, true)?;
                text("benchmark", &e.benchmark, 200, true)?;
                text("details", &e.details, 2000, false)?;
                let details = if e.details.trim().is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.details.trim())
                };
                let input = store::EventInput {
                    gate: &e.gate,
                    team: e.consortium_id,
                    component: Some(&e.component),
                    value_field: "value",
                    value: &e.value,
                    source: "integration",
                    source_ref: e.run_id.trim(),
                    reason: format!(
                        "{} run {} by {}, measured at {}{details}",
                        e.benchmark.trim(),
                        e.run_id.trim(),
                        event.actor.subject,
                        e.measured_at
                    ),
                    measured_at: Some(e.measured_at),
                };
                let recorded =
                    store::add_event_input(conn, &input, &event.actor).map_err(handler_error)?;
                Ok(applied(recorded.is_some()))
            }
            _ => Ok(Handled::Ignored),
        }
    }
}
