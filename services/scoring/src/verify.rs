//! Recomputes a published selection from its recorded inputs (the settings, every stage's
//! sheets, the conflicts, the officers' tie decisions, the override and its waivers) with
//! the same rules that made it, and reports agreement of the ranking, the finalists and the
//! portfolio bit for bit, or exactly where they differ. `make verify-decision CALL=<id>`
//! runs it (the `kaip-verify-decision` binary).

use crate::domain::decision::{self as rules, Finalist};
use crate::domain::stage::{self, Outcome};
use crate::domain::{config, selection, Centi};
use crate::error::ScoringError;
use crate::records;
use crate::routes::decision::{versions, VersionRow};
use crate::schema::{
    blocked_assignments, conflicts, evaluation_cases, stage_closures, stage_results,
};
use crate::store::{configured_call, CaseRow};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{Departure, EvaluationConfig};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

diesel::define_sql_function! {
    /// The first `recorded_seq` the database handed out itself (rows below it were
    /// numbered by the migration, from the writers' clocks).
    #[sql_name = "scoring_numbered_since"]
    fn numbered_since() -> diesel::sql_types::BigInt;
}

/// What the verifier found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What was checked and agreed, one line each.
    pub agreed: Vec<String>,
    /// Every difference, naming the stage, the proposal and both values.
    pub differences: Vec<String>,
    /// What could not be checked from the record, and why (neither agreement nor a
    /// difference).
    pub unchecked: Vec<String>,
}

impl Report {
    pub fn agrees(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The cases a stage ranked, in id order (as the close read them).
fn stage_cases(c: &mut PgConnection, call_id: Uuid, stage: i32) -> QueryResult<Vec<CaseRow>> {
    evaluation_cases::table
        .inner_join(stage_results::table)
        .filter(stage_results::call_id.eq(call_id))
        .filter(stage_results::stage.eq(stage))
        .order(evaluation_cases::id.asc())
        .select(CaseRow::as_select())
        .load(c)
}

/// The SHA-256 over the recorded inputs of a call's decision: its settings, each stage's
/// cases and sheets, the tie decisions, the conflicts recorded against its consortia and
/// the latest proposed version (what a publication makes final).
pub fn inputs_digest(
    c: &mut PgConnection,
    call_id: Uuid,
    cfg: &EvaluationConfig,
) -> Result<String, ScoringError> {
    let proposed = versions(c, call_id)?
        .into_iter()
        .rfind(|v| v.kind != "published");
    digest_with(c, call_id, cfg, proposed.as_ref())
}

fn digest_with(
    c: &mut PgConnection,
    call_id: Uuid,
    cfg: &EvaluationConfig,
    proposed: Option<&VersionRow>,
) -> Result<String, ScoringError> {
    let mut stages = Vec::new();
    let mut consortia = Vec::new();
    for s in 0..cfg.stages.len() as i32 {
        let cases = stage_cases(c, call_id, s)?;
        consortia.extend(cases.iter().map(|k| k.consortium_id));
        let ids: Vec<Uuid> = cases.iter().map(|k| k.id).collect();
        let sheets: Vec<serde_json::Value> = records::stage_sheets(c, call_id, s, &ids)?
            .into_iter()
            .map(|r| json!([r.case_id, r.reviewer, r.scores, r.total]))
            .collect();
        let ties: Vec<serde_json::Value> = records::tie_decisions_of(c, call_id, s)?
            .into_iter()
            .map(|t| json!([t.id, t.order, t.reason, t.decided_by, t.decided_at]))
            .collect();
        let cases: Vec<serde_json::Value> = cases
            .iter()
            .map(|k| {
                let members = k.members.value().map_err(|e| {
                    kaip_service::CommonError::internal(anyhow::anyhow!(
                        "case {}: stored members do not decode: {e}",
                        k.id
                    ))
                })?;
                Ok(json!([k.id, k.proposal_id, members, k.submitted_at]))
            })
            .collect::<Result<_, ScoringError>>()?;
        stages.push(json!({ "stage": s, "cases": cases, "sheets": sheets, "ties": ties }));
    }
    consortia.sort();
    consortia.dedup();
    let conflicts: Vec<(String, Uuid, String)> = conflicts::table
        .filter(conflicts::consortium_id.eq_any(&consortia))
        .order((conflicts::reviewer_id.asc(), conflicts::consortium_id.asc()))
        .select((
            conflicts::reviewer_id,
            conflicts::consortium_id,
            conflicts::reason,
        ))
        .load(c)?;
    let decision = proposed.map(|v| {
        json!([
            v.version,
            v.kind,
            v.selected,
            v.override_reason,
            v.waivers,
            v.decided_by
        ])
    });
    let all = json!({
        "config": cfg,
        "stages": stages,
        "conflicts": conflicts,
        "decision": decision,
    });
    Ok(hex(&Sha256::digest(all.to_string().as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type StoredResult = (
    Uuid,
    Option<i32>,
    i64,
    serde_json::Value,
    bool,
    bool,
    Option<String>,
    serde_json::Value,
);

fn compare_stage(
    stage: i32,
    name: &str,
    cases: &[CaseRow],
    outcomes: &[Outcome],
    stored: &[StoredResult],
    out: &mut Vec<String>,
) {
    for (k, o) in cases.iter().zip(outcomes) {
        let at = format!("stage {stage} ({name}), proposal {}", k.proposal_id);
        let Some(r) = stored.iter().find(|r| r.0 == k.id) else {
            out.push(format!("{at}: no recorded result"));
            continue;
        };
        let per: BTreeMap<String, i64> = o
            .per_criterion
            .iter()
            .map(|(k, v)| (k.clone(), v.0))
            .collect();
        let recorded_per: BTreeMap<String, i64> =
            serde_json::from_value(r.3.clone()).unwrap_or_default();
        let unresolved: Vec<Uuid> = serde_json::from_value(r.7.clone()).unwrap_or_default();
        let mut diff = |what: &str, recorded: String, recomputed: String| {
            if recorded != recomputed {
                out.push(format!(
                    "{at}: {what} recorded {recorded}, recomputed {recomputed}"
                ));
            }
        };
        diff(
            "position",
            format!("{:?}", r.1),
            format!("{:?}", o.position),
        );
        diff("total", Centi(r.2).to_string(), o.total.to_string());
        diff(
            "per criterion",
            format!("{recorded_per:?}"),
            format!("{per:?}"),
        );
        diff(
            "eligible",
            r.4.to_string(),
            o.shortfalls.is_empty().to_string(),
        );
        diff("advanced", r.5.to_string(), o.advanced.to_string());
        diff(
            "tie broken by",
            format!("{:?}", r.6),
            format!("{:?}", o.tie_broken_by),
        );
        diff(
            "unresolved tie with",
            format!("{unresolved:?}"),
            format!("{:?}", o.unresolved_with),
        );
    }
    if stored.len() != cases.len() {
        out.push(format!(
            "stage {stage} ({name}): {} results recorded for {} cases",
            stored.len(),
            cases.len()
        ));
    }
}

/// Recomputes the published decision of `call_id` and compares.
pub fn verify(c: &mut PgConnection, call_id: Uuid) -> Result<Report, ScoringError> {
    let (_, cfg) = configured_call(c, call_id, false)?;
    let all = versions(c, call_id)?;
    let published = all
        .iter()
        .find(|v| v.kind == "published")
        .ok_or(ScoringError::NotPublished(call_id))?;
    let made_final = all
        .iter()
        .find(|v| Some(v.version) == published.publishes_version)
        .ok_or_else(|| {
            ScoringError::Conflict("the published version's source is missing".into())
        })?;
    let mut report = Report {
        agreed: Vec::new(),
        differences: Vec::new(),
        unchecked: Vec::new(),
    };
    let d = &mut report.differences;

    // The ranking, stage by stage.
    let stages = cfg.stages.len() as i32;
    let mut last_outcomes = Vec::new();
    let mut last_cases = Vec::new();
    for s in 0..stages {
        let name = &cfg.stages[s as usize].name;
        // Where the close stands in the database's order of records: what it could read
        // was recorded before it, whatever the writers' clocks say.
        let closed: Option<i64> = stage_closures::table
            .find((call_id, s))
            .select(stage_closures::recorded_seq)
            .first(c)
            .optional()?;
        let Some(closed) = closed else {
            d.push(format!("stage {s} ({name}) was never closed"));
            continue;
        };
        let cases = stage_cases(c, call_id, s)?;
        let ids: Vec<Uuid> = cases.iter().map(|k| k.id).collect();
        let sheets = records::stage_sheets(c, call_id, s, &ids)?;
        let ties = records::tie_records_of(c, call_id, s)?;
        let outcomes = stage::evaluate(
            &cfg,
            s as usize,
            &records::entries(&cases),
            &records::domain_sheets(&sheets, &cases),
            &records::domain_ties(&records::ties_before(&ties, closed)),
        );
        let stored: Vec<StoredResult> = stage_results::table
            .filter(stage_results::call_id.eq(call_id))
            .filter(stage_results::stage.eq(s))
            .select((
                stage_results::case_id,
                stage_results::position,
                stage_results::total_centi,
                stage_results::per_criterion,
                stage_results::eligible,
                stage_results::advanced,
                stage_results::tie_broken_by,
                stage_results::unresolved_with,
            ))
            .load(c)?;
        let before_count = d.len();
        compare_stage(s, name, &cases, &outcomes, &stored, d);
        // No sheet of a conflicted reviewer may count: a conflict on record when the stage
        // closed (one declared later marks the assignment and leaves the result standing).
        for sheet in sheets.iter().filter(|r| r.total.is_some()) {
            let Some(k) = cases.iter().find(|k| k.id == sheet.case_id) else {
                continue;
            };
            let declared: Option<String> = conflicts::table
                .find((&sheet.reviewer, k.consortium_id))
                .filter(conflicts::recorded_seq.lt(closed))
                .select(conflicts::reason)
                .first(c)
                .optional()?;
            let blocked: Option<String> = blocked_assignments::table
                .find((call_id, s, &sheet.reviewer, k.id))
                .select(blocked_assignments::reason)
                .first(c)
                .optional()?;
            if let Some(why) = declared.or(blocked) {
                d.push(format!(
                    "stage {s} ({name}), proposal {}: the sheet of conflicted reviewer {} counts ({why})",
                    k.proposal_id, sheet.reviewer
                ));
            }
        }
        if d.len() == before_count {
            report.agreed.push(format!(
                "stage {s} ({name}): ranking of {} proposals from {} sheets agrees",
                cases.len(),
                sheets.len()
            ));
        }
        if s == stages - 1 {
            last_outcomes = outcomes;
            last_cases = cases;
        }
    }

    // The finalists and the portfolio.
    let mut finalists: Vec<(i32, Finalist)> = last_cases
        .iter()
        .zip(&last_outcomes)
        .filter(|(k, o)| o.advanced && k.status != "withdrawn")
        .map(|(k, o)| {
            (
                o.position.unwrap_or(i32::MAX),
                Finalist {
                    proposal: o.proposal,
                    score: o.total,
                    categories: k.categories(),
                    unresolved_with: o.unresolved_with.clone(),
                },
            )
        })
        .collect();
    finalists.sort_by_key(|(p, _)| *p);
    let finalists: Vec<Finalist> = finalists.into_iter().map(|(_, f)| f).collect();
    let ties = records::tie_records_of(c, call_id, stages - 1)?;
    let (candidates, groups) = rules::candidates(
        &finalists,
        &records::domain_ties(&records::ties_before(&ties, made_final.recorded_seq)),
    );
    let recorded_finalists: Vec<Uuid> = records::finalists(c, call_id, stages - 1)?
        .into_iter()
        .map(|(_, f, _)| f.proposal)
        .collect();
    let recomputed_finalists: Vec<Uuid> = finalists.iter().map(|f| f.proposal).collect();
    if recorded_finalists != recomputed_finalists {
        d.push(format!(
            "finalists: recorded {recorded_finalists:?}, recomputed {recomputed_finalists:?}"
        ));
    } else {
        report
            .agreed
            .push(format!("finalists: {} agree", finalists.len()));
    }

    let constraints = config::constraints(&cfg);
    let k = cfg.teams as usize;
    let computed = rules::propose(&candidates, k, &constraints);
    let recorded: Vec<Uuid> =
        serde_json::from_value::<Vec<kaip_contracts::ProposalId>>(made_final.selected.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.0)
            .collect();
    let recorded_departure: Option<Departure> = made_final
        .departure
        .clone()
        .and_then(|v| serde_json::from_value(v).ok());
    let recorded_explanation: Vec<String> =
        serde_json::from_value(made_final.explanation.clone()).unwrap_or_default();
    let as_dto = |dep: Option<selection::Departure>| {
        dep.map(|x| Departure {
            promoted: x.promoted.into_iter().map(Into::into).collect(),
            displaced: x.displaced.into_iter().map(Into::into).collect(),
            reasons: x.reasons,
        })
    };
    let (selected, total, departure, explanation) = if made_final.kind == "override" {
        let mut idx = Vec::new();
        for p in &recorded {
            match candidates.iter().position(|c| c.proposal == *p) {
                Some(i) => idx.push(i),
                None => d.push(format!(
                    "portfolio: override selects {p}, which is not a finalist on recomputation"
                )),
            }
        }
        idx.sort_unstable();
        let waivers: Vec<String> =
            serde_json::from_value(made_final.waivers.clone()).unwrap_or_default();
        let optimum = computed.as_ref().ok().map(|p| p.total);
        let kk = k.min(candidates.len());
        let explanation =
            match rules::check_override(&candidates, kk, &idx, &constraints, &waivers, optimum) {
                Ok(e) => e,
                Err(e) => {
                    d.push(format!(
                        "portfolio: the override fails its checks on recomputation: {e:?}"
                    ));
                    Vec::new()
                }
            };
        let departure =
            selection::explain(&candidates, kk, &idx, &constraints).map(|x| selection::Departure {
                reasons: explanation.clone(),
                ..x
            });
        let sel: Vec<Uuid> = idx.iter().map(|&i| candidates[i].proposal).collect();
        let total: i64 = idx.iter().map(|&i| candidates[i].score.0).sum();
        (sel, total, as_dto(departure), explanation)
    } else {
        match computed {
            Ok(p) => {
                let sel: Vec<Uuid> = p.selected.iter().map(|&i| candidates[i].proposal).collect();
                let blocking = rules::straddling(&groups, &sel);
                if !blocking.is_empty() {
                    d.push(format!(
                        "portfolio: unresolved ties decide the selection: {blocking:?}"
                    ));
                }
                (sel, p.total.0, as_dto(p.departure), p.explanation)
            }
            Err(e) => {
                d.push(format!("portfolio: recomputation finds no portfolio: {e}"));
                (Vec::new(), 0, None, Vec::new())
            }
        }
    };
    let before_count = d.len();
    if selected != recorded {
        d.push(format!(
            "portfolio (version {}): selected recorded {recorded:?}, recomputed {selected:?}",
            made_final.version
        ));
    }
    if total != made_final.total_centi {
        d.push(format!(
            "portfolio (version {}): total recorded {}, recomputed {}",
            made_final.version,
            Centi(made_final.total_centi),
            Centi(total)
        ));
    }
    if departure != recorded_departure {
        d.push(format!(
            "portfolio (version {}): departure recorded {recorded_departure:?}, recomputed {departure:?}",
            made_final.version
        ));
    }
    if explanation != recorded_explanation {
        d.push(format!(
            "portfolio (version {}): explanation recorded {recorded_explanation:?}, recomputed {explanation:?}",
            made_final.version
        ));
    }
    // The publication repeats the version it made final, word for word.
    for (what, a, b) in [
        ("selected", &published.selected, &made_final.selected),
        (
            "explanation",
            &published.explanation,
            &made_final.explanation,
        ),
        ("waivers", &published.waivers, &made_final.waivers),
    ] {
        if a != b {
            d.push(format!(
                "publication (version {}): {what} {a} differs from version {}'s {b}",
                published.version, made_final.version
            ));
        }
    }
    if published.total_centi != made_final.total_centi
        || published.override_reason != made_final.override_reason
        || published.departure != made_final.departure
    {
        d.push(format!(
            "publication (version {}): differs from version {}",
            published.version, made_final.version
        ));
    }
    // The version made final rests on every input that could change it recorded before
    // its publication: one recorded between the proposal and the publication is not
    // reflected in it (the publication of a stale proposal, which publishing refuses). A
    // publication from before the database numbered records itself cannot be checked: the
    // rows around it were numbered from the writers' clocks.
    let since: i64 = diesel::select(numbered_since()).get_result(c)?;
    if published.recorded_seq < since {
        report.unchecked.push(format!(
            "publication (version {}): whether an input was recorded between version {} and its publication (both recorded before the database ordered records, by the writers' clocks only)",
            published.version, made_final.version
        ));
    } else {
        let stale = records::inputs_recorded_after(
            c,
            call_id,
            stages - 1,
            made_final.recorded_seq,
            Some(published.recorded_seq),
        )?;
        if !stale.is_empty() {
            d.push(format!(
                "publication (version {}): version {} was proposed before {}, recorded before the publication and not reflected in it",
                published.version,
                made_final.version,
                records::summarise(stale, 10).join("; ")
            ));
        }
    }
    if d.len() == before_count {
        report.agreed.push(format!(
            "portfolio: version {} ({}) published as version {} by {}: {} team(s), total {}, agrees",
            made_final.version,
            made_final.kind,
            published.version,
            published.decided_by,
            recorded.len(),
            Centi(total)
        ));
    }

    // The inputs themselves, against their digest at publication.
    let now = digest_with(c, call_id, &cfg, Some(made_final))?;
    match &published.inputs_sha256 {
        Some(then) if *then == now => report.agreed.push(format!(
            "recorded inputs unchanged since publication (sha256 {now})"
        )),
        Some(then) => report.differences.push(format!(
            "recorded inputs changed since publication: sha256 {then} then, {now} now"
        )),
        None => report
            .differences
            .push("the publication recorded no digest of its inputs".into()),
    }
    Ok(report)
}

const USAGE: &str = "usage: kaip-verify-decision --call <call id> [--database-url <postgres url of scoring's database>]
(default database: $KAIP_DATABASE__URL (postgres://postgres@127.0.0.1:5432) / $KAIP_DATABASE__NAME (kaip_scoring))";

/// The command: prints the report; returns the exit code (0 agrees, 1 differs, 2 could not
/// verify).
pub fn run(args: impl IntoIterator<Item = String>, out: &mut dyn std::io::Write) -> i32 {
    let mut call = None;
    let mut url = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--call" => call = args.next(),
            "--database-url" => url = args.next(),
            _ => {
                let _ = writeln!(out, "unknown argument `{a}`\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(call) = call.and_then(|c| Uuid::parse_str(c.trim()).ok()) else {
        let _ = writeln!(out, "--call must be a call id (a UUID)\n{USAGE}");
        return 2;
    };
    let url = url.unwrap_or_else(|| {
        let server = std::env::var("KAIP_DATABASE__URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = std::env::var("KAIP_DATABASE__NAME").unwrap_or_else(|_| "kaip_scoring".into());
        let server = server.trim_end_matches('/');
        match server.split_once('?') {
            Some((base, query)) => format!("{}/{name}?{query}", base.trim_end_matches('/')),
            None => format!("{server}/{name}"),
        }
    });
    let mut conn = match PgConnection::establish(&url) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "cannot connect to scoring's database: {e}");
            return 2;
        }
    };
    // One snapshot of every table: a decision changing meanwhile cannot mix two states.
    let result = conn
        .build_transaction()
        .read_only()
        .repeatable_read()
        .run(|c| verify(c, call));
    match result {
        Ok(report) => {
            let _ = writeln!(out, "call {call}");
            for line in &report.agreed {
                let _ = writeln!(out, "  agrees: {line}");
            }
            for line in &report.differences {
                let _ = writeln!(out, "  DIFFERS: {line}");
            }
            for line in &report.unchecked {
                let _ = writeln!(out, "  cannot check: {line}");
            }
            if report.agrees() {
                let _ = writeln!(out, "the published selection is reproduced bit for bit");
                0
            } else {
                let _ = writeln!(
                    out,
                    "{} difference(s): the published selection is NOT reproduced",
                    report.differences.len()
                );
                1
            }
        }
        Err(e) => {
            let _ = writeln!(out, "cannot verify call {call}: {e}");
            2
        }
    }
}
