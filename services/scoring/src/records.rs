//! The recorded inputs of a decision, read the one way both the handlers that decide and
//! the verifier that recomputes them read them.

use crate::domain::decision::Finalist;
use crate::domain::ranking::{Sheet, TieDecision};
use crate::domain::{stage::Entry, Centi};
use crate::schema::{assignments, evaluation_cases, score_sheets, stage_results, tie_decisions};
use crate::store::CaseRow;
use diesel::prelude::*;
use kaip_contracts::dto::scoring as dto;
use std::collections::BTreeMap;
use uuid::Uuid;

/// An assignment of the stage and its sheet, if scored.
#[derive(Clone, Debug)]
pub struct SheetRow {
    pub case_id: Uuid,
    pub reviewer: String,
    pub scores: Option<serde_json::Value>,
    pub total: Option<i32>,
}

/// The assignments of `stage` of a call for `cases`, with their sheets, in a stable order.
pub fn stage_sheets(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
    cases: &[Uuid],
) -> QueryResult<Vec<SheetRow>> {
    let rows: Vec<(Uuid, String, Option<serde_json::Value>, Option<i32>)> = assignments::table
        .left_join(score_sheets::table)
        .filter(assignments::call_id.eq(call_id))
        .filter(assignments::stage.eq(stage))
        .filter(assignments::case_id.eq_any(cases))
        // Sheets a late conflict of interest voided are kept on record, never counted.
        .filter(assignments::voided_at.is_null())
        .order((assignments::case_id.asc(), assignments::reviewer_id.asc()))
        .select((
            assignments::case_id,
            assignments::reviewer_id,
            score_sheets::scores.nullable(),
            score_sheets::total.nullable(),
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(case_id, reviewer, scores, total)| SheetRow {
            case_id,
            reviewer,
            scores,
            total,
        })
        .collect())
}

/// The scored sheets as the domain reads them, keyed by proposal.
pub fn domain_sheets(rows: &[SheetRow], cases: &[CaseRow]) -> Vec<Sheet> {
    let proposal: BTreeMap<Uuid, Uuid> = cases.iter().map(|k| (k.id, k.proposal_id)).collect();
    rows.iter()
        .filter_map(|r| {
            Some(Sheet {
                reviewer: r.reviewer.clone(),
                proposal: *proposal.get(&r.case_id)?,
                scores: serde_json::from_value(r.scores.clone()?).ok()?,
            })
        })
        .collect()
}

pub fn entries(cases: &[CaseRow]) -> Vec<Entry> {
    cases
        .iter()
        .map(|k| Entry {
            proposal: k.proposal_id,
            submitted_at: k.submitted_at,
        })
        .collect()
}

type TieRow = (
    Uuid,
    Uuid,
    i32,
    serde_json::Value,
    String,
    String,
    chrono::DateTime<chrono::Utc>,
);

/// The officers' tie decisions for a stage, oldest first.
pub fn tie_decisions_of(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
) -> QueryResult<Vec<dto::TieDecision>> {
    let rows: Vec<TieRow> = tie_decisions::table
        .filter(tie_decisions::call_id.eq(call_id))
        .filter(tie_decisions::stage.eq(stage))
        .order((tie_decisions::decided_at.asc(), tie_decisions::id.asc()))
        .select((
            tie_decisions::id,
            tie_decisions::call_id,
            tie_decisions::stage,
            tie_decisions::proposals,
            tie_decisions::reason,
            tie_decisions::decided_by,
            tie_decisions::decided_at,
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, call, stage, order, reason, by, at)| dto::TieDecision {
                id,
                call_id: call.into(),
                stage,
                order: serde_json::from_value(order).unwrap_or_default(),
                reason,
                decided_by: by,
                decided_at: at,
            },
        )
        .collect())
}

pub fn domain_ties(ties: &[dto::TieDecision]) -> Vec<TieDecision> {
    ties.iter()
        .map(|t| TieDecision {
            order: t.order.iter().map(|p| p.0).collect(),
            label: format!(
                "officer tie decision by {} at {}",
                t.decided_by,
                t.decided_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
        })
        .collect()
}

/// The finalists of the last stage in rank order (withdrawn ones left out), as recorded.
pub fn finalists(
    c: &mut PgConnection,
    call_id: Uuid,
    last_stage: i32,
) -> QueryResult<Vec<(CaseRow, Finalist, i32)>> {
    let rows: Vec<(CaseRow, i64, Option<i32>, serde_json::Value)> = evaluation_cases::table
        .inner_join(stage_results::table)
        .filter(evaluation_cases::call_id.eq(call_id))
        .filter(stage_results::stage.eq(last_stage))
        .filter(stage_results::advanced.eq(true))
        .filter(evaluation_cases::status.eq_any(["finalist", "selected", "not_selected"]))
        .select((
            CaseRow::as_select(),
            stage_results::total_centi,
            stage_results::position,
            stage_results::unresolved_with,
        ))
        .load(c)?;
    let mut out: Vec<(CaseRow, Finalist, i32)> = rows
        .into_iter()
        .map(|(k, total, position, unresolved)| {
            let f = Finalist {
                proposal: k.proposal_id,
                score: Centi(total),
                categories: k.categories(),
                unresolved_with: serde_json::from_value(unresolved).unwrap_or_default(),
            };
            (k, f, position.unwrap_or(i32::MAX))
        })
        .collect();
    out.sort_by_key(|(_, _, p)| *p);
    Ok(out)
}
