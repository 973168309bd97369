//! The talent service's HTTP bodies.
//!
//! **Personal data.** Everything that identifies a researcher or states their pay travels in
//! a field named `personal` (a researcher's name and contact, a hire's salary and living
//! allowance). The audit trail never records a `personal` value (kaip-bus's `redact`), and
//! the service returns it only to whom may see it: a researcher's `personal` to officers and
//! the teams they applied to or were matched with, a hire's `personal` (the pay) to that
//! team and officers. Everything else here is what matching and payment need.

use crate::ids::{CallId, ConsortiumId, Krw, ProposalId};
use crate::text::{field, list, CheckText, Lines, TextViolation};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /positions`: a team opens a position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPosition {
    /// The team (a consortium user may name only its own).
    pub consortium_id: ConsortiumId,
    pub title: String,
    /// e.g. `nlp`, `vision`, `speech`: compared as given.
    pub field: String,
    pub required_skills: Vec<String>,
    /// `junior`, `mid`, `senior`, `lead` or `principal`.
    pub seniority: String,
    /// Places, at least 1.
    pub count: i32,
    pub salary_band: SalaryBand,
}

/// Monthly salary range offered (whole KRW): visible to the team and officers only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalaryBand {
    pub min_monthly_krw: Krw,
    pub max_monthly_krw: Krw,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub id: Uuid,
    pub consortium_id: ConsortiumId,
    pub title: String,
    pub field: String,
    pub required_skills: Vec<String>,
    pub seniority: String,
    pub count: i32,
    /// Active hires on it.
    pub filled: i32,
    /// Only for the team and officers.
    pub salary_band: Option<SalaryBand>,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
}

/// A researcher's identity and contact: personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResearcherPersonal {
    pub name: String,
    /// An e-mail address or telephone number, as the agency or team gives it.
    pub contact: String,
}

/// `POST /researchers`: a team or a recruiting agency (integration) registers a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResearcher {
    pub skills: Vec<String>,
    pub field: String,
    pub seniority: String,
    pub available_from: NaiveDate,
    /// The positions the researcher applies to, most wanted first (each at most once).
    pub preferences: Vec<Uuid>,
    pub personal: ResearcherPersonal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Researcher {
    /// Pseudonymous: it is all the funding records keep after an erasure.
    pub id: Uuid,
    pub skills: Vec<String>,
    pub field: String,
    pub seniority: String,
    pub available_from: Option<NaiveDate>,
    pub preferences: Vec<Uuid>,
    /// Absent once erased.
    pub personal: Option<ResearcherPersonal>,
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
}

/// `POST /researchers/{id}/erase` (officers): the profile is erased on the researcher's
/// request; the funding records keep the id and the amounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseResearcher {
    pub reason: String,
}

/// `POST /rounds` (officers): runs a matching round over the open positions and the
/// available researchers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRound {
    #[serde(default)]
    pub note: String,
}

/// The fit score's components (whole points).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitScore {
    pub skills: i64,
    pub field: i64,
    pub seniority: i64,
    pub total: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchProposal {
    pub id: Uuid,
    pub round_id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fit: FitScore,
    /// Where the researcher ranked the position (1 = first choice).
    pub researcher_rank: i32,
    /// Where the position ranked the researcher among its applicants (1 = best fit).
    pub position_rank: i32,
    pub applicants: i32,
    /// `proposed`, `accepted`, `declined`, or `expired` (never answered, and a later round
    /// has run: it can no longer be accepted or declined).
    pub status: String,
    pub answered_by: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    pub answer_reason: Option<String>,
    pub hire_id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub id: Uuid,
    pub note: String,
    pub positions: i32,
    pub researchers: i32,
    pub run_by: String,
    pub run_at: DateTime<Utc>,
    pub proposals: Vec<MatchProposal>,
}

/// A hire's monthly pay: personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HirePay {
    pub monthly_salary_krw: Krw,
    pub monthly_living_allowance_krw: Krw,
}

/// `POST /matches/{id}/accept`: the team hires the matched researcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptMatch {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub personal: HirePay,
}

/// `POST /matches/{id}/decline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineMatch {
    pub reason: String,
}

/// `POST /hires`: a team hires a researcher who applied to one of its positions, outside a
/// round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHire {
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub personal: HirePay,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hire {
    pub id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub match_id: Option<Uuid>,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// The match ratio fixed at hiring, in basis points (5,000 = 50 %).
    pub ratio_bp: i64,
    /// Only for the team and officers.
    pub personal: Option<HirePay>,
    pub hired_by: String,
    pub hired_at: DateTime<Utc>,
    /// Set when the hire was ended before `end_date` (by the team, an officer or the
    /// team's elimination): its last day. No month after it is funded.
    pub ended_on: Option<NaiveDate>,
    /// `team`, `officer` or `elimination`, with `ended_on`.
    pub end_cause: Option<String>,
    /// Why it was ended (the team and officers only, like the pay).
    pub end_reason: Option<String>,
    /// Whether the hire still holds its researcher and its place: not ended, and its last
    /// day (`ended_on`, else `end_date`) not yet past in KST.
    pub active: bool,
}

/// `POST /hires/{id}/end` (the team or an officer): the hire's last day, on or after its
/// start and before its agreed end date, and not before a day already claimed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndHire {
    pub ended_on: NaiveDate,
    pub reason: String,
}

/// `POST /claims`: a team claims one month of a hire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMonth {
    pub hire_id: Uuid,
    /// `YYYY-MM` (a KST calendar month).
    pub month: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: Uuid,
    pub hire_id: Uuid,
    pub researcher_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub month: String,
    pub fiscal_year: i32,
    pub days_covered: i32,
    pub days_in_month: i32,
    pub ratio_bp: i64,
    /// The government's share for the month, before the cap.
    pub claimed_krw: Krw,
    pub paid_krw: Krw,
    /// Why less than claimed was paid.
    pub cap_reason: Option<String>,
    pub claimed_by: String,
    pub claimed_at: DateTime<Utc>,
}

/// `PUT /teams/{consortium_id}/terms` (officers): the lead company's size and openness,
/// when the proposal did not state them or they changed; each a new record with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTeamTerms {
    /// `large`, `mid_size`, `small` or `academic`.
    pub company_size: String,
    /// `closed`, `partial` or `open_weights`.
    pub openness: String,
    pub reason: String,
}

/// A selected team as the talent service knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub consortium_id: ConsortiumId,
    pub call_id: CallId,
    pub proposal_id: ProposalId,
    pub consortium_name: String,
    pub selected_at: DateTime<Utc>,
    /// What the team requested per year, capped by the programme's annual cap.
    pub annual_cap_krw: Krw,
    pub company_size: Option<String>,
    pub openness: Option<String>,
    /// `proposal` (learned from the submitted proposal) or `officer` (recorded with a reason).
    pub terms_source: Option<String>,
    pub ratio_bp: Option<i64>,
    pub eliminated_at: Option<DateTime<Utc>>,
}

/// Per team and fiscal year, exact in KRW.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamYearReport {
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub positions_open: i64,
    pub places_open: i64,
    pub places_filled: i64,
    pub hires: i64,
    pub claimed_krw: Krw,
    pub paid_krw: Krw,
    pub cap_krw: Krw,
    pub remaining_krw: Krw,
}

impl CheckText for OpenPosition {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "title", &self.title, Lines::Single)?;
        field(at, "field", &self.field, Lines::Single)?;
        list(at, "required_skills", &self.required_skills, Lines::Single)?;
        field(at, "seniority", &self.seniority, Lines::Single)
    }
}

impl CheckText for RegisterResearcher {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        list(at, "skills", &self.skills, Lines::Single)?;
        field(at, "field", &self.field, Lines::Single)?;
        field(at, "seniority", &self.seniority, Lines::Single)?;
        field(at, "personal.name", &self.personal.name, Lines::Single)?;
        field(
            at,
            "personal.contact",
            &self.personal.contact,
            Lines::Single,
        )
    }
}

impl CheckText for EraseResearcher {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for RunRound {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "note", &self.note, Lines::Multi)
    }
}

impl CheckText for AcceptMatch {
    fn check_text_at(&self, _: &str) -> Result<(), TextViolation> {
        Ok(())
    }
}

impl CheckText for DeclineMatch {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for CreateHire {
    fn check_text_at(&self, _: &str) -> Result<(), TextViolation> {
        Ok(())
    }
}

impl CheckText for EndHire {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "reason", &self.reason, Lines::Multi)
    }
}

impl CheckText for ClaimMonth {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "month", &self.month, Lines::Single)
    }
}

impl CheckText for SetTeamTerms {
    fn check_text_at(&self, at: &str) -> Result<(), TextViolation> {
        field(at, "company_size", &self.company_size, Lines::Single)?;
        field(at, "openness", &self.openness, Lines::Single)?;
        field(at, "reason", &self.reason, Lines::Multi)
    }
}
