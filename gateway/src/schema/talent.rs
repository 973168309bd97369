//! Overseas talent (`services/talent`): positions, researchers, matching rounds with their
//! explanations, hires, monthly claims under the annual cap, and a team's yearly report.
//!
//! Teams (consortium tokens) manage their own positions, hires and claims; officers run
//! rounds and see everything; an integration with `write:researchers` (a recruiting agency)
//! registers researchers. Money is the `Krw` scalar. The service enforces who sees what (a
//! team sees only researchers who applied to it or were matched to it, salaries only of its
//! own hires); the gateway checks roles first and refuses a team naming another outright.

use super::gpu::own_team_only;
use super::money::Krw;
use super::{caller_with, upstream};
use crate::clients::Services;
use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use kaip_contracts::dto::talent as dto;
use kaip_contracts::{ConsortiumId, Role};
use uuid::Uuid;

const STAFF: &[Role] = &[Role::Admin, Role::Officer];
const STAFF_OR_TEAM: &[Role] = &[Role::Admin, Role::Officer, Role::Consortium];

/// The services' talent client: one line per call.
impl Services {
    async fn talent_get<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> async_graphql::Result<T> {
        self.talent.get(path, Some(token)).await.map_err(upstream)
    }

    async fn talent_post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: &B,
    ) -> async_graphql::Result<T> {
        self.talent
            .post(path, body, Some(token))
            .await
            .map_err(upstream)
    }
}

#[derive(SimpleObject)]
pub struct TalentTeam {
    pub consortium_id: Uuid,
    pub consortium_name: String,
    pub selected_at: DateTime<Utc>,
    /// What the team requested per year, within the programme's annual cap.
    pub annual_cap_krw: Krw,
    /// `large`, `mid_size`, `small` or `academic`.
    pub company_size: Option<String>,
    /// `closed`, `partial` or `open_weights`.
    pub openness: Option<String>,
    /// `proposal` or `officer`.
    pub terms_source: Option<String>,
    /// The match ratio in basis points (5000 = 50 %).
    pub ratio_bp: Option<i32>,
    pub eliminated_at: Option<DateTime<Utc>>,
}

impl From<dto::Team> for TalentTeam {
    fn from(t: dto::Team) -> Self {
        Self {
            consortium_id: t.consortium_id.0,
            consortium_name: t.consortium_name,
            selected_at: t.selected_at,
            annual_cap_krw: t.annual_cap_krw.into(),
            company_size: t.company_size,
            openness: t.openness,
            terms_source: t.terms_source,
            ratio_bp: t.ratio_bp.and_then(|r| i32::try_from(r).ok()),
            eliminated_at: t.eliminated_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct TalentSalaryBand {
    pub min_monthly_krw: Krw,
    pub max_monthly_krw: Krw,
}

/// A position a team opened (named apart from the proposal's requested `TalentPosition`).
#[derive(SimpleObject)]
pub struct TalentVacancy {
    pub id: Uuid,
    pub consortium_id: Uuid,
    pub title: String,
    pub field: String,
    pub required_skills: Vec<String>,
    pub seniority: String,
    pub count: i32,
    pub filled: i32,
    /// The team's own positions and officers only.
    pub salary_band: Option<TalentSalaryBand>,
    pub opened_at: DateTime<Utc>,
}

impl From<dto::Position> for TalentVacancy {
    fn from(p: dto::Position) -> Self {
        Self {
            id: p.id,
            consortium_id: p.consortium_id.0,
            title: p.title,
            field: p.field,
            required_skills: p.required_skills,
            seniority: p.seniority,
            count: p.count,
            filled: p.filled,
            salary_band: p.salary_band.map(|b| TalentSalaryBand {
                min_monthly_krw: b.min_monthly_krw.into(),
                max_monthly_krw: b.max_monthly_krw.into(),
            }),
            opened_at: p.opened_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct ResearcherPersonal {
    pub name: String,
    pub contact: String,
}

#[derive(SimpleObject)]
pub struct TalentResearcher {
    /// Pseudonymous: all the funding records keep after an erasure.
    pub id: Uuid,
    pub skills: Vec<String>,
    pub field: String,
    pub seniority: String,
    pub available_from: Option<NaiveDate>,
    /// The positions applied to, most wanted first.
    pub preferences: Vec<Uuid>,
    /// Absent once erased.
    pub personal: Option<ResearcherPersonal>,
    pub registered_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
}

impl From<dto::Researcher> for TalentResearcher {
    fn from(r: dto::Researcher) -> Self {
        Self {
            id: r.id,
            skills: r.skills,
            field: r.field,
            seniority: r.seniority,
            available_from: r.available_from,
            preferences: r.preferences,
            personal: r.personal.map(|p| ResearcherPersonal {
                name: p.name,
                contact: p.contact,
            }),
            registered_at: r.registered_at,
            erased_at: r.erased_at,
        }
    }
}

/// Why a match was proposed: the fit score's components.
#[derive(SimpleObject)]
pub struct TalentFit {
    pub skills: i32,
    pub field: i32,
    pub seniority: i32,
    pub total: i32,
}

#[derive(SimpleObject)]
pub struct TalentMatch {
    pub id: Uuid,
    pub round_id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: Uuid,
    pub fit: TalentFit,
    /// Where the researcher ranked the position (1 = first choice).
    pub researcher_rank: i32,
    /// Where the position ranked the researcher among its applicants (1 = best fit).
    pub position_rank: i32,
    pub applicants: i32,
    /// `proposed`, `accepted` or `declined`.
    pub status: String,
    pub answer_reason: Option<String>,
    pub hire_id: Option<Uuid>,
}

fn points(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<dto::MatchProposal> for TalentMatch {
    fn from(m: dto::MatchProposal) -> Self {
        Self {
            id: m.id,
            round_id: m.round_id,
            researcher_id: m.researcher_id,
            position_id: m.position_id,
            consortium_id: m.consortium_id.0,
            fit: TalentFit {
                skills: points(m.fit.skills),
                field: points(m.fit.field),
                seniority: points(m.fit.seniority),
                total: points(m.fit.total),
            },
            researcher_rank: m.researcher_rank,
            position_rank: m.position_rank,
            applicants: m.applicants,
            status: m.status,
            answer_reason: m.answer_reason,
            hire_id: m.hire_id,
        }
    }
}

#[derive(SimpleObject)]
pub struct TalentRound {
    pub id: Uuid,
    pub note: String,
    pub positions: i32,
    pub researchers: i32,
    pub run_at: DateTime<Utc>,
    pub proposals: Vec<TalentMatch>,
}

impl From<dto::Round> for TalentRound {
    fn from(r: dto::Round) -> Self {
        Self {
            id: r.id,
            note: r.note,
            positions: r.positions,
            researchers: r.researchers,
            run_at: r.run_at,
            proposals: r.proposals.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct TalentPay {
    pub monthly_salary_krw: Krw,
    pub monthly_living_allowance_krw: Krw,
}

#[derive(SimpleObject)]
pub struct TalentHire {
    pub id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: Uuid,
    pub match_id: Option<Uuid>,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub ratio_bp: i32,
    /// The team and officers only.
    pub pay: Option<TalentPay>,
    pub hired_at: DateTime<Utc>,
    /// The last day, when ended before `endDate` (by the team, an officer or the team's
    /// elimination); no month after it is funded.
    pub ended_on: Option<NaiveDate>,
    /// `team`, `officer` or `elimination`.
    pub end_cause: Option<String>,
    pub end_reason: Option<String>,
    /// Not ended, and its last day not yet past (KST).
    pub active: bool,
}

impl From<dto::Hire> for TalentHire {
    fn from(h: dto::Hire) -> Self {
        Self {
            id: h.id,
            researcher_id: h.researcher_id,
            position_id: h.position_id,
            consortium_id: h.consortium_id.0,
            match_id: h.match_id,
            start_date: h.start_date,
            end_date: h.end_date,
            ratio_bp: points(h.ratio_bp),
            pay: h.personal.map(|p| TalentPay {
                monthly_salary_krw: p.monthly_salary_krw.into(),
                monthly_living_allowance_krw: p.monthly_living_allowance_krw.into(),
            }),
            hired_at: h.hired_at,
            ended_on: h.ended_on,
            end_cause: h.end_cause,
            end_reason: h.end_reason,
            active: h.active,
        }
    }
}

#[derive(SimpleObject)]
pub struct TalentClaim {
    pub id: Uuid,
    pub hire_id: Uuid,
    pub researcher_id: Uuid,
    pub consortium_id: Uuid,
    pub month: String,
    pub fiscal_year: i32,
    pub days_covered: i32,
    pub days_in_month: i32,
    pub ratio_bp: i32,
    pub claimed_krw: Krw,
    pub paid_krw: Krw,
    /// Why less than claimed was paid (the annual cap).
    pub cap_reason: Option<String>,
    pub claimed_at: DateTime<Utc>,
}

impl From<dto::Claim> for TalentClaim {
    fn from(c: dto::Claim) -> Self {
        Self {
            id: c.id,
            hire_id: c.hire_id,
            researcher_id: c.researcher_id,
            consortium_id: c.consortium_id.0,
            month: c.month,
            fiscal_year: c.fiscal_year,
            days_covered: c.days_covered,
            days_in_month: c.days_in_month,
            ratio_bp: points(c.ratio_bp),
            claimed_krw: c.claimed_krw.into(),
            paid_krw: c.paid_krw.into(),
            cap_reason: c.cap_reason,
            claimed_at: c.claimed_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct TalentReport {
    pub consortium_id: Uuid,
    pub fiscal_year: i32,
    pub positions_open: i32,
    pub places_open: i32,
    pub places_filled: i32,
    pub hires: i32,
    pub claimed_krw: Krw,
    pub paid_krw: Krw,
    pub cap_krw: Krw,
    pub remaining_krw: Krw,
}

impl From<dto::TeamYearReport> for TalentReport {
    fn from(r: dto::TeamYearReport) -> Self {
        Self {
            consortium_id: r.consortium_id.0,
            fiscal_year: r.fiscal_year,
            positions_open: points(r.positions_open),
            places_open: points(r.places_open),
            places_filled: points(r.places_filled),
            hires: points(r.hires),
            claimed_krw: r.claimed_krw.into(),
            paid_krw: r.paid_krw.into(),
            cap_krw: r.cap_krw.into(),
            remaining_krw: r.remaining_krw.into(),
        }
    }
}

#[derive(InputObject)]
pub struct OpenTalentPositionInput {
    pub consortium_id: Uuid,
    pub title: String,
    pub field: String,
    pub required_skills: Vec<String>,
    /// `junior`, `mid`, `senior`, `lead` or `principal`.
    pub seniority: String,
    /// Places, at least 1.
    pub count: i32,
    pub salary_band_min_monthly_krw: Krw,
    pub salary_band_max_monthly_krw: Krw,
}

#[derive(InputObject)]
pub struct RegisterResearcherInput {
    pub skills: Vec<String>,
    pub field: String,
    pub seniority: String,
    pub available_from: NaiveDate,
    /// Position ids, most wanted first.
    pub preferences: Vec<Uuid>,
    pub name: String,
    pub contact: String,
    /// No longer collected (matching and payment do not use it, PIPA): accepted for
    /// existing clients and discarded unread; it will be removed.
    #[graphql(deprecation = "not collected: discarded unread, to be removed")]
    pub country: Option<String>,
}

#[derive(InputObject)]
pub struct TalentHireTermsInput {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub monthly_salary_krw: Krw,
    pub monthly_living_allowance_krw: Krw,
}

impl TalentHireTermsInput {
    fn pay(&self) -> dto::HirePay {
        dto::HirePay {
            monthly_salary_krw: self.monthly_salary_krw.0,
            monthly_living_allowance_krw: self.monthly_living_allowance_krw.0,
        }
    }
}

#[derive(Default)]
pub struct TalentQuery;

#[Object]
impl TalentQuery {
    /// Selected teams with their match ratio and annual cap; a team sees its own.
    async fn talent_teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TalentTeam>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read talent teams")?;
        let v: Vec<dto::Team> = ctx
            .data::<Services>()?
            .talent_get(&a.token, "/teams")
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Open positions (any team's; salary bands of one's own only).
    async fn talent_positions(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
    ) -> async_graphql::Result<Vec<TalentVacancy>> {
        let a = caller_with(
            ctx,
            &[
                Role::Admin,
                Role::Officer,
                Role::Consortium,
                Role::Integration,
            ],
            "read positions",
        )?;
        let path = match consortium_id {
            Some(c) => format!("/positions?consortium_id={c}"),
            None => "/positions".into(),
        };
        let v: Vec<dto::Position> = ctx.data::<Services>()?.talent_get(&a.token, &path).await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Researchers: officers all; a team those who applied to it or were matched to it.
    async fn talent_researchers(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<TalentResearcher>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read researchers")?;
        let v: Vec<dto::Researcher> = ctx
            .data::<Services>()?
            .talent_get(&a.token, "/researchers")
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Proposed matches with their explanations; a team sees its own.
    async fn talent_matches(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TalentMatch>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read proposed matches")?;
        let v: Vec<dto::MatchProposal> = ctx
            .data::<Services>()?
            .talent_get(&a.token, "/matches")
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Hires with their pay; a team sees its own.
    async fn talent_hires(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TalentHire>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read hires")?;
        let v: Vec<dto::Hire> = ctx
            .data::<Services>()?
            .talent_get(&a.token, "/hires")
            .await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// Claims and what was paid; a team sees its own.
    async fn talent_claims(
        &self,
        ctx: &Context<'_>,
        consortium_id: Option<Uuid>,
        hire_id: Option<Uuid>,
    ) -> async_graphql::Result<Vec<TalentClaim>> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read claims")?;
        let team = own_team_only(ctx, consortium_id, "read the talent claims")?;
        let mut q = Vec::new();
        if let Some(t) = team {
            q.push(format!("consortium_id={t}"));
        }
        if let Some(h) = hire_id {
            q.push(format!("hire_id={h}"));
        }
        let path = if q.is_empty() {
            "/claims".to_owned()
        } else {
            format!("/claims?{}", q.join("&"))
        };
        let v: Vec<dto::Claim> = ctx.data::<Services>()?.talent_get(&a.token, &path).await?;
        Ok(v.into_iter().map(Into::into).collect())
    }

    /// A team's year: positions open and filled, hires, funds claimed, paid and remaining.
    async fn talent_report(
        &self,
        ctx: &Context<'_>,
        consortium_id: Uuid,
        fiscal_year: i32,
    ) -> async_graphql::Result<TalentReport> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "read a talent report")?;
        own_team_only(ctx, Some(consortium_id), "read the talent report")?;
        let r: dto::TeamYearReport = ctx
            .data::<Services>()?
            .talent_get(
                &a.token,
                &format!("/teams/{consortium_id}/report/{fiscal_year}"),
            )
            .await?;
        Ok(r.into())
    }
}

#[derive(Default)]
pub struct TalentMutation;

#[Object]
impl TalentMutation {
    /// A team opens a position (its own team only; officers for any).
    async fn open_talent_position(
        &self,
        ctx: &Context<'_>,
        input: OpenTalentPositionInput,
    ) -> async_graphql::Result<TalentVacancy> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "open positions")?;
        own_team_only(ctx, Some(input.consortium_id), "open positions")?;
        let body = dto::OpenPosition {
            consortium_id: ConsortiumId(input.consortium_id),
            title: input.title,
            field: input.field,
            required_skills: input.required_skills,
            seniority: input.seniority,
            count: input.count,
            salary_band: dto::SalaryBand {
                min_monthly_krw: input.salary_band_min_monthly_krw.0,
                max_monthly_krw: input.salary_band_max_monthly_krw.0,
            },
        };
        let p: dto::Position = ctx
            .data::<Services>()?
            .talent_post(&a.token, "/positions", &body)
            .await?;
        Ok(p.into())
    }

    /// Registers a researcher (a team, officers, or an integration with `write:researchers`).
    async fn register_researcher(
        &self,
        ctx: &Context<'_>,
        input: RegisterResearcherInput,
    ) -> async_graphql::Result<TalentResearcher> {
        let a = caller_with(
            ctx,
            &[
                Role::Admin,
                Role::Officer,
                Role::Consortium,
                Role::Integration,
            ],
            "register researchers",
        )?;
        let body = dto::RegisterResearcher {
            skills: input.skills,
            field: input.field,
            seniority: input.seniority,
            available_from: input.available_from,
            preferences: input.preferences,
            personal: dto::ResearcherPersonal {
                name: input.name,
                contact: input.contact,
            },
        };
        let r: dto::Researcher = ctx
            .data::<Services>()?
            .talent_post(&a.token, "/researchers", &body)
            .await?;
        Ok(r.into())
    }

    /// Runs a matching round (officers): stable, researcher-proposing deferred acceptance.
    async fn run_talent_round(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] note: String,
    ) -> async_graphql::Result<TalentRound> {
        let a = caller_with(ctx, STAFF, "run matching rounds")?;
        let r: dto::Round = ctx
            .data::<Services>()?
            .talent_post(&a.token, "/rounds", &dto::RunRound { note })
            .await?;
        Ok(r.into())
    }

    /// The team accepts a proposed match: the researcher is hired on these terms.
    async fn accept_talent_match(
        &self,
        ctx: &Context<'_>,
        match_id: Uuid,
        terms: TalentHireTermsInput,
    ) -> async_graphql::Result<TalentHire> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "accept proposed matches")?;
        let body = dto::AcceptMatch {
            start_date: terms.start_date,
            end_date: terms.end_date,
            personal: terms.pay(),
        };
        let h: dto::Hire = ctx
            .data::<Services>()?
            .talent_post(&a.token, &format!("/matches/{match_id}/accept"), &body)
            .await?;
        Ok(h.into())
    }

    /// The team declines a proposed match, with its reason.
    async fn decline_talent_match(
        &self,
        ctx: &Context<'_>,
        match_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<TalentMatch> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "decline proposed matches")?;
        let m: dto::MatchProposal = ctx
            .data::<Services>()?
            .talent_post(
                &a.token,
                &format!("/matches/{match_id}/decline"),
                &dto::DeclineMatch { reason },
            )
            .await?;
        Ok(m.into())
    }

    /// Hires a researcher who applied to one of the team's positions, outside a round.
    async fn hire_researcher(
        &self,
        ctx: &Context<'_>,
        researcher_id: Uuid,
        position_id: Uuid,
        terms: TalentHireTermsInput,
    ) -> async_graphql::Result<TalentHire> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "hire researchers")?;
        let body = dto::CreateHire {
            researcher_id,
            position_id,
            start_date: terms.start_date,
            end_date: terms.end_date,
            personal: terms.pay(),
        };
        let h: dto::Hire = ctx
            .data::<Services>()?
            .talent_post(&a.token, "/hires", &body)
            .await?;
        Ok(h.into())
    }

    /// Ends a hire before its agreed end date (the team, its own hires, or an officer):
    /// `endedOn` is its last day; the researcher is free for a hire starting after it.
    async fn end_talent_hire(
        &self,
        ctx: &Context<'_>,
        hire_id: Uuid,
        ended_on: NaiveDate,
        reason: String,
    ) -> async_graphql::Result<TalentHire> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "end hires")?;
        let h: dto::Hire = ctx
            .data::<Services>()?
            .talent_post(
                &a.token,
                &format!("/hires/{hire_id}/end"),
                &dto::EndHire { ended_on, reason },
            )
            .await?;
        Ok(h.into())
    }

    /// Claims one month (`YYYY-MM`) of a hire: pro-rated by days, paid up to the annual cap.
    async fn claim_talent_funds(
        &self,
        ctx: &Context<'_>,
        hire_id: Uuid,
        month: String,
    ) -> async_graphql::Result<TalentClaim> {
        let a = caller_with(ctx, STAFF_OR_TEAM, "claim matching funds")?;
        let c: dto::Claim = ctx
            .data::<Services>()?
            .talent_post(&a.token, "/claims", &dto::ClaimMonth { hire_id, month })
            .await?;
        Ok(c.into())
    }

    /// Erases a researcher's profile on request (officers); funding records keep the id.
    async fn erase_researcher(
        &self,
        ctx: &Context<'_>,
        researcher_id: Uuid,
        reason: String,
    ) -> async_graphql::Result<TalentResearcher> {
        let a = caller_with(ctx, STAFF, "erase researchers' profiles")?;
        let r: dto::Researcher = ctx
            .data::<Services>()?
            .talent_post(
                &a.token,
                &format!("/researchers/{researcher_id}/erase"),
                &dto::EraseResearcher { reason },
            )
            .await?;
        Ok(r.into())
    }

    /// Records a team's company size and openness (officers), with the reason.
    async fn set_talent_team_terms(
        &self,
        ctx: &Context<'_>,
        consortium_id: Uuid,
        company_size: String,
        openness: String,
        reason: String,
    ) -> async_graphql::Result<TalentTeam> {
        let a = caller_with(ctx, STAFF, "record a team's company size and openness")?;
        let t: dto::Team = ctx
            .data::<Services>()?
            .talent
            .put(
                &format!("/teams/{consortium_id}/terms"),
                &dto::SetTeamTerms {
                    company_size,
                    openness,
                    reason,
                },
                Some(&a.token),
            )
            .await
            .map_err(upstream)?;
        Ok(t.into())
    }
}
