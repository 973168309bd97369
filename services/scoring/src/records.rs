//! The recorded inputs of a decision, read the one way both the handlers that decide and
//! the verifier that recomputes them read them.

use crate::domain::decision::Finalist;
use crate::domain::ranking::{Sheet, TieDecision};
use crate::domain::{stage::Entry, Centi};
use crate::schema::{
    assignments, evaluation_cases, evaluation_config_versions, score_sheet_versions, score_sheets,
    stage_results, tie_decisions,
};
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
    i64,
);

/// An officer's tie decision with its place in the order of records (`recorded_seq`,
/// assigned by the database): what decides whether it came before a stage's close or a
/// proposal, never the writer's clock (`decided_at`).
#[derive(Clone, Debug)]
pub struct TieRecord {
    pub seq: i64,
    pub tie: dto::TieDecision,
}

/// The officers' tie decisions for a stage, in the order the database recorded them.
pub fn tie_records_of(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
) -> QueryResult<Vec<TieRecord>> {
    let rows: Vec<TieRow> = tie_decisions::table
        .filter(tie_decisions::call_id.eq(call_id))
        .filter(tie_decisions::stage.eq(stage))
        .order(tie_decisions::recorded_seq.asc())
        .select((
            tie_decisions::id,
            tie_decisions::call_id,
            tie_decisions::stage,
            tie_decisions::proposals,
            tie_decisions::reason,
            tie_decisions::decided_by,
            tie_decisions::decided_at,
            tie_decisions::recorded_seq,
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(id, call, stage, order, reason, by, at, seq)| TieRecord {
            seq,
            tie: dto::TieDecision {
                id,
                call_id: call.into(),
                stage,
                order: serde_json::from_value(order).unwrap_or_default(),
                reason,
                decided_by: by,
                decided_at: at,
            },
        })
        .collect())
}

/// The officers' tie decisions for a stage, oldest first (in the database's order).
pub fn tie_decisions_of(
    c: &mut PgConnection,
    call_id: Uuid,
    stage: i32,
) -> QueryResult<Vec<dto::TieDecision>> {
    Ok(tie_records_of(c, call_id, stage)?
        .into_iter()
        .map(|r| r.tie)
        .collect())
}

/// The tie decisions recorded before the record numbered `boundary` (a stage's close, a
/// proposal): the ones it could have read.
pub fn ties_before(ties: &[TieRecord], boundary: i64) -> Vec<dto::TieDecision> {
    ties.iter()
        .filter(|t| t.seq < boundary)
        .map(|t| t.tie.clone())
        .collect()
}

/// Every input that can still change a call's decision once its last stage (`last_stage`)
/// has closed, recorded after the record numbered `after` (a proposal) and, if given,
/// before the one numbered `until` (its publication), each described for the officer, in
/// the order they were recorded: evaluation settings, score sheets of the last stage, tie
/// decisions of the last stage (they order the finalists), and a finalist's change of
/// status (a withdrawal: who can be selected, and whom a departure or explanation may
/// name). What matters is the database's order: a row whose clock says otherwise is still
/// after.
///
/// Conflicts of interest, blocked pairs and assignments (voided, marked) are not inputs at
/// this point: a closed stage's result stands whatever is declared afterwards (the verifier
/// counts only those on record at the close), so one declared later cannot make a
/// proposal stale, and a reviewer declaring their own conflicts cannot hold up a
/// publication.
pub fn inputs_recorded_after(
    c: &mut PgConnection,
    call_id: Uuid,
    last_stage: i32,
    after: i64,
    until: Option<i64>,
) -> QueryResult<Vec<String>> {
    let until = until.unwrap_or(i64::MAX);
    let mut found: Vec<(i64, String)> = Vec::new();
    let settings: Vec<(i64, i32)> = evaluation_config_versions::table
        .filter(evaluation_config_versions::call_id.eq(call_id))
        .filter(evaluation_config_versions::recorded_seq.gt(after))
        .filter(evaluation_config_versions::recorded_seq.lt(until))
        .select((
            evaluation_config_versions::recorded_seq,
            evaluation_config_versions::version,
        ))
        .load(c)?;
    found.extend(
        settings
            .into_iter()
            .map(|(seq, v)| (seq, format!("evaluation settings version {v}"))),
    );
    let sheets: Vec<(i64, i32, String, Uuid)> = score_sheet_versions::table
        .inner_join(assignments::table.on(assignments::id.eq(score_sheet_versions::assignment_id)))
        .inner_join(evaluation_cases::table.on(evaluation_cases::id.eq(assignments::case_id)))
        .filter(assignments::call_id.eq(call_id))
        .filter(assignments::stage.eq(last_stage))
        .filter(score_sheet_versions::recorded_seq.gt(after))
        .filter(score_sheet_versions::recorded_seq.lt(until))
        .select((
            score_sheet_versions::recorded_seq,
            score_sheet_versions::version,
            assignments::reviewer_id,
            evaluation_cases::proposal_id,
        ))
        .load(c)?;
    found.extend(sheets.into_iter().map(|(seq, v, reviewer, proposal)| {
        (
            seq,
            format!("score sheet version {v} of reviewer {reviewer} on proposal {proposal} at stage {last_stage}"),
        )
    }));
    let ties: Vec<(i64, Uuid, String)> = tie_decisions::table
        .filter(tie_decisions::call_id.eq(call_id))
        .filter(tie_decisions::stage.eq(last_stage))
        .filter(tie_decisions::recorded_seq.gt(after))
        .filter(tie_decisions::recorded_seq.lt(until))
        .select((
            tie_decisions::recorded_seq,
            tie_decisions::id,
            tie_decisions::decided_by,
        ))
        .load(c)?;
    found.extend(ties.into_iter().map(|(seq, id, by)| {
        (
            seq,
            format!("tie decision {id} at stage {last_stage} by {by}"),
        )
    }));
    // A finalist's status changes after the close only by a withdrawal (or, at the
    // publication itself, to selected / not selected, which is no input).
    let changed: Vec<(i64, Uuid, String)> = evaluation_cases::table
        .inner_join(stage_results::table)
        .filter(evaluation_cases::call_id.eq(call_id))
        .filter(stage_results::stage.eq(last_stage))
        .filter(stage_results::advanced.eq(true))
        .filter(evaluation_cases::status.ne_all(["finalist", "selected", "not_selected"]))
        .filter(evaluation_cases::recorded_seq.gt(after))
        .filter(evaluation_cases::recorded_seq.lt(until))
        .select((
            evaluation_cases::recorded_seq,
            evaluation_cases::proposal_id,
            evaluation_cases::status,
        ))
        .load(c)?;
    found.extend(
        changed
            .into_iter()
            .map(|(seq, p, status)| (seq, format!("finalist proposal {p} became {status}"))),
    );
    found.sort();
    Ok(found.into_iter().map(|(_, what)| what).collect())
}

/// At most `keep` of `items`, and how many more there are.
pub fn summarise(mut items: Vec<String>, keep: usize) -> Vec<String> {
    if items.len() > keep {
        let more = items.len() - keep;
        items.truncate(keep);
        items.push(format!("{more} more"));
    }
    items
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
