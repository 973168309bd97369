use super::STAFF;
use crate::error::ScoringError;
use crate::schema::{appeals, evaluation_cases, stage_results};
use crate::store::{configured_call, CaseRow};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_contracts::dto::scoring::{
    AnswerAppeal, Appeal, Distribution, Feedback, FileAppeal, StageFeedback,
};
use kaip_contracts::events::{AppealAnswered, AppealFiled};
use kaip_contracts::{CallId, ConsortiumId, ProposalId, Role};
use kaip_service::pagination::PageRequest;
use kaip_service::{AppState, Caller, CommonError, ValidJson};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Min, median (an actual value: the lower middle one for an even count), max and mean of
/// values in hundredths of a point.
pub fn distribution(criterion: &str, mut values: Vec<i64>) -> Distribution {
    values.sort_unstable();
    let n = values.len();
    let median = match n {
        0 => 0,
        // The lower middle value for an even count, never the mean of the two middle ones:
        // that mean would tell a consortium in the middle pair its partner's total.
        _ => values[(n - 1) / 2],
    };
    Distribution {
        criterion: criterion.to_owned(),
        count: n as i64,
        min_centi: values.first().copied().unwrap_or(0),
        median_centi: median,
        max_centi: values.last().copied().unwrap_or(0),
        mean_centi: if n == 0 {
            0
        } else {
            values.iter().sum::<i64>() / n as i64
        },
    }
}

/// Why a stage's anonymised distribution is withheld, if it is: with fewer than `min`
/// proposals, min, median and max are too close to naming a competitor's score.
pub fn withheld(group: usize, min: u32) -> Option<String> {
    (group < min as usize).then(|| {
        format!(
            "withheld: {group} proposal(s) in this stage, fewer than the {min} needed to keep the distribution anonymous"
        )
    })
}

fn own_case(
    c: &mut PgConnection,
    call_id: Uuid,
    consortium: ConsortiumId,
) -> Result<CaseRow, ScoringError> {
    evaluation_cases::table
        .filter(evaluation_cases::call_id.eq(call_id))
        .filter(evaluation_cases::consortium_id.eq(consortium.0))
        .select(CaseRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ScoringError::CaseNotFound(format!("this consortium in call {call_id}")))
}

fn consortium_of(caller: &Caller, action: &str) -> Result<ConsortiumId, ScoringError> {
    caller.require(&[Role::Consortium], action)?;
    caller.0.consortium_id.ok_or_else(|| {
        kaip_auth::AuthError::InvalidClaims("consortium_id is required".into()).into()
    })
}

/// After publication, a consortium sees its own consensus per criterion at each stage and the
/// anonymised distribution per criterion over all proposals of that stage.
pub async fn feedback(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ScoringError> {
    let consortium = consortium_of(&caller, "read its feedback")?;
    let call_id = path.into_inner();
    let fb = state
        .db(move |c, _| {
            let (call, cfg) = configured_call(c, call_id, false)?;
            if call.published_at.is_none() {
                return Err(ScoringError::NotPublished(call_id));
            }
            let case = own_case(c, call_id, consortium)?;
            let rows: Vec<(i32, Uuid, Option<i32>, i64, serde_json::Value, bool)> =
                stage_results::table
                    .filter(stage_results::call_id.eq(call_id))
                    .select((
                        stage_results::stage,
                        stage_results::case_id,
                        stage_results::position,
                        stage_results::total_centi,
                        stage_results::per_criterion,
                        stage_results::advanced,
                    ))
                    .load(c)?;
            let mut stages = Vec::new();
            for (stage, _, position, total, per, advanced) in rows.iter().filter(|r| r.1 == case.id)
            {
                let group = rows.iter().filter(|r| r.0 == *stage).count();
                // A setting saved under an older, lower floor is held to the current one.
                let withheld = withheld(
                    group,
                    cfg.anonymity_min_group
                        .max(super::evaluation::MIN_ANONYMITY_GROUP),
                );
                let mut distribution_rows = Vec::new();
                for crit in cfg.criteria.iter().filter(|_| withheld.is_none()) {
                    let values: Vec<i64> = rows
                        .iter()
                        .filter(|r| r.0 == *stage)
                        .filter_map(|r| r.4.get(&crit.key)?.as_i64())
                        .collect();
                    distribution_rows.push(distribution(&crit.key, values));
                }
                if withheld.is_none() {
                    let totals: Vec<i64> =
                        rows.iter().filter(|r| r.0 == *stage).map(|r| r.3).collect();
                    distribution_rows.push(distribution("total", totals));
                }
                stages.push(StageFeedback {
                    stage: *stage,
                    stage_name: cfg
                        .stages
                        .get(*stage as usize)
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                    position: *position,
                    total_centi: *total,
                    per_criterion_centi: serde_json::from_value::<BTreeMap<String, i64>>(
                        per.clone(),
                    )
                    .unwrap_or_default(),
                    advanced: *advanced,
                    distribution: distribution_rows,
                    distribution_withheld: withheld,
                });
            }
            stages.sort_by_key(|s| s.stage);
            Ok::<_, ScoringError>(Feedback {
                proposal_id: case.proposal_id.into(),
                status: case.status,
                stages,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(fb))
}

type AppealRow = (
    Uuid,
    Uuid,
    Uuid,
    Uuid,
    String,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
);

fn appeal_dto(r: AppealRow) -> Appeal {
    let (id, call, proposal, consortium, grounds, filed_at, answer, answered_at) = r;
    Appeal {
        id,
        call_id: call.into(),
        proposal_id: proposal.into(),
        consortium_id: consortium.into(),
        grounds,
        filed_at,
        answer,
        answered_at,
    }
}

fn appeal_columns() -> (
    appeals::id,
    appeals::call_id,
    evaluation_cases::proposal_id,
    appeals::consortium_id,
    appeals::grounds,
    appeals::filed_at,
    appeals::answer,
    appeals::answered_at,
) {
    (
        appeals::id,
        appeals::call_id,
        evaluation_cases::proposal_id,
        appeals::consortium_id,
        appeals::grounds,
        appeals::filed_at,
        appeals::answer,
        appeals::answered_at,
    )
}

/// A consortium appeals its result, after publication.
pub async fn file_appeal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<FileAppeal>,
) -> Result<HttpResponse, ScoringError> {
    let consortium = consortium_of(&caller, "file an appeal")?;
    let call_id = path.into_inner();
    let req = body.into_inner();
    let grounds = req.grounds.trim().to_owned();
    if grounds.is_empty() || grounds.chars().count() > 10_000 {
        return Err(CommonError::validation("grounds", "must be 1 to 10000 characters").into());
    }
    let actor = caller.actor();
    let appeal = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                let (call, _) = configured_call(c, call_id, false)?;
                if call.published_at.is_none() {
                    return Err(ScoringError::NotPublished(call_id));
                }
                let case = own_case(c, call_id, consortium)?;
                if case.proposal_id != req.proposal_id.0 {
                    return Err(ScoringError::CaseNotFound(format!(
                        "proposal {}",
                        req.proposal_id
                    )));
                }
                let id = Uuid::now_v7();
                let now = Utc::now().trunc_subsecs(6);
                diesel::insert_into(appeals::table)
                    .values((
                        appeals::id.eq(id),
                        appeals::call_id.eq(call_id),
                        appeals::case_id.eq(case.id),
                        appeals::consortium_id.eq(consortium.0),
                        appeals::grounds.eq(&grounds),
                        appeals::filed_by.eq(&actor.subject),
                        appeals::filed_at.eq(now),
                    ))
                    .execute(c)?;
                let event = AppealFiled {
                    appeal_id: id,
                    call_id: CallId(call_id),
                    proposal_id: ProposalId(case.proposal_id),
                    consortium_id: consortium,
                    filed_at: now,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok::<_, ScoringError>(Appeal {
                    id,
                    call_id: CallId(call_id),
                    proposal_id: ProposalId(case.proposal_id),
                    consortium_id: consortium,
                    grounds: grounds.clone(),
                    filed_at: now,
                    answer: None,
                    answered_at: None,
                })
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(appeal))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealQuery {
    call_id: Option<Uuid>,
    limit: Option<i64>,
    after: Option<String>,
}

/// Ministry staff see all appeals; a consortium its own.
pub async fn list_appeals(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<AppealQuery>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(
        &[Role::Admin, Role::Officer, Role::Consortium],
        "list appeals",
    )?;
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    let only = (caller.role() == Role::Consortium)
        .then_some(caller.0.consortium_id)
        .flatten();
    let call_id = query.call_id;
    let result = state
        .db(move |c, _| {
            let mut q = appeals::table
                .inner_join(evaluation_cases::table)
                .select(appeal_columns())
                .order(appeals::id.asc())
                .limit(page.limit + 1)
                .into_boxed();
            if let Some(after) = page.after {
                q = q.filter(appeals::id.gt(after));
            }
            if let Some(call) = call_id {
                q = q.filter(appeals::call_id.eq(call));
            }
            if let Some(consortium) = only {
                q = q.filter(appeals::consortium_id.eq(consortium.0));
            }
            let rows: Vec<AppealRow> = q.load(c)?;
            Ok::<_, ScoringError>(
                page.finish(rows.into_iter().map(appeal_dto).collect(), |a: &Appeal| {
                    a.id
                }),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// The ministry answers an appeal (once; the answer is recorded and announced).
pub async fn answer_appeal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    body: ValidJson<AnswerAppeal>,
) -> Result<HttpResponse, ScoringError> {
    caller.require(STAFF, "answer appeals")?;
    let id = path.into_inner();
    let answer = body.into_inner().answer.trim().to_owned();
    if answer.is_empty() || answer.chars().count() > 10_000 {
        return Err(CommonError::validation("answer", "must be 1 to 10000 characters").into());
    }
    let actor = caller.actor();
    let appeal = state
        .db(move |c, outbox| {
            outbox.transaction(c, |c, tx| {
                // Lock the appeal, then read it with its proposal.
                appeals::table
                    .find(id)
                    .select(appeals::id)
                    .for_update()
                    .first::<Uuid>(c)
                    .optional()?
                    .ok_or(ScoringError::AppealNotFound(id))?;
                let row: AppealRow = appeals::table
                    .inner_join(evaluation_cases::table)
                    .filter(appeals::id.eq(id))
                    .select(appeal_columns())
                    .first(c)
                    .optional()?
                    .ok_or(ScoringError::AppealNotFound(id))?;
                if row.6.is_some() {
                    return Err(ScoringError::Conflict(format!(
                        "appeal {id} is already answered"
                    )));
                }
                let now = Utc::now().trunc_subsecs(6);
                diesel::update(appeals::table.find(id))
                    .set((
                        appeals::answer.eq(&answer),
                        appeals::answered_by.eq(&actor.subject),
                        appeals::answered_at.eq(now),
                    ))
                    .execute(c)?;
                let mut dto = appeal_dto(row);
                dto.answer = Some(answer.clone());
                dto.answered_at = Some(now);
                let event = AppealAnswered {
                    appeal_id: id,
                    call_id: dto.call_id,
                    proposal_id: dto.proposal_id,
                    consortium_id: dto.consortium_id,
                    answered_at: now,
                };
                tx.publish(c, actor.clone(), &event)?;
                Ok::<_, ScoringError>(dto)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(appeal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_hide_who_and_keep_the_shape() {
        let d = distribution("technology", vec![3000, 1000, 2000, 4000]);
        assert_eq!(
            (
                d.count,
                d.min_centi,
                d.median_centi,
                d.max_centi,
                d.mean_centi
            ),
            (4, 1000, 2000, 4000, 2500)
        );
        let d = distribution("total", vec![]);
        assert_eq!(d.count, 0);
    }

    #[test]
    fn small_groups_get_no_distribution() {
        assert!(withheld(2, 5).unwrap().contains("2 proposal(s)"));
        assert!(withheld(4, 5).is_some());
        assert_eq!(withheld(5, 5), None);
        assert_eq!(withheld(15, 5), None);
        assert_eq!(withheld(3, 3), None);
    }
}
