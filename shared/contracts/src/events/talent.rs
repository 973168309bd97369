//! Events of the talent service (`kaip.talent.events`).
//!
//! **What they carry about researchers.** Only the pseudonymous researcher id, never a name,
//! a contact or a salary: every consumer of the topic (and every subscriber the gateway lets
//! see it) would otherwise hold personal data it cannot erase. Finance needs the amounts the
//! government claims and pays per hire and month, and the reason a payment was clipped;
//! those are here, keyed by hire and claim ids. The salary behind a claim stays in the
//! talent service, visible to the team and officers only.

use super::DomainEvent;
use crate::ids::{ConsortiumId, Krw};
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A team opened a position (the salary band is not announced).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentPositionOpened {
    pub position_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub title: String,
    pub field: String,
    pub required_skills: Vec<String>,
    pub seniority: String,
    pub count: i32,
    pub opened_at: DateTime<Utc>,
}

impl DomainEvent for TalentPositionOpened {
    const TYPE: &'static str = "TalentPositionOpened";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_position";
    fn aggregate_id(&self) -> Uuid {
        self.position_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A matching round proposed a researcher for a position, with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentMatchProposed {
    pub match_id: Uuid,
    pub round_id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fit_skills: i64,
    pub fit_field: i64,
    pub fit_seniority: i64,
    pub fit_total: i64,
    pub researcher_rank: i32,
    pub position_rank: i32,
    pub proposed_at: DateTime<Utc>,
}

impl DomainEvent for TalentMatchProposed {
    const TYPE: &'static str = "TalentMatchProposed";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_match";
    fn aggregate_id(&self) -> Uuid {
        self.match_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A team declined a proposed match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentMatchDeclined {
    pub match_id: Uuid,
    pub consortium_id: ConsortiumId,
    /// Always empty: why a team declined a person is personal free text, kept only in the
    /// talent service (and recorded as "[personal data]" in the audit trail). Events never
    /// carry a reason; the field stays for schema compatibility.
    pub reason: String,
    pub declined_at: DateTime<Utc>,
}

impl DomainEvent for TalentMatchDeclined {
    const TYPE: &'static str = "TalentMatchDeclined";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_match";
    fn aggregate_id(&self) -> Uuid {
        self.match_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A team hired a researcher (from a match or directly). No salary: see the module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentHired {
    pub hire_id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub match_id: Option<Uuid>,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub ratio_bp: i64,
    pub hired_at: DateTime<Utc>,
}

impl DomainEvent for TalentHired {
    const TYPE: &'static str = "TalentHired";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_hire";
    fn aggregate_id(&self) -> Uuid {
        self.hire_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A team claimed the government's share of one month of a hire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentFundsClaimed {
    pub claim_id: Uuid,
    pub hire_id: Uuid,
    pub researcher_id: Uuid,
    pub consortium_id: ConsortiumId,
    /// `YYYY-MM`.
    pub month: String,
    pub fiscal_year: i32,
    pub days_covered: i32,
    pub days_in_month: i32,
    pub ratio_bp: i64,
    pub claimed_krw: Krw,
    pub claimed_at: DateTime<Utc>,
}

impl DomainEvent for TalentFundsClaimed {
    const TYPE: &'static str = "TalentFundsClaimed";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_hire";
    /// Keyed by the hire, so a hire's claims and payments stay in order.
    fn aggregate_id(&self) -> Uuid {
        self.hire_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// The government paid a claim, up to the team's annual cap (the reason when clipped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentFundsPaid {
    pub claim_id: Uuid,
    pub hire_id: Uuid,
    pub consortium_id: ConsortiumId,
    pub fiscal_year: i32,
    pub claimed_krw: Krw,
    pub paid_krw: Krw,
    pub cap_reason: Option<String>,
    /// Paid to the team in the fiscal year, this payment included.
    pub year_paid_krw: Krw,
    pub year_cap_krw: Krw,
    pub paid_at: DateTime<Utc>,
}

impl DomainEvent for TalentFundsPaid {
    const TYPE: &'static str = "TalentFundsPaid";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_hire";
    fn aggregate_id(&self) -> Uuid {
        self.hire_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// An eliminated team's talent funding stops: no month after `last_funded_month` is paid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentFundingStopped {
    pub consortium_id: ConsortiumId,
    pub gate: String,
    pub eliminated_at: DateTime<Utc>,
    /// `YYYY-MM` (KST): the elimination's month, the last one funded.
    pub last_funded_month: String,
    pub stopped_at: DateTime<Utc>,
}

impl DomainEvent for TalentFundingStopped {
    const TYPE: &'static str = "TalentFundingStopped";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "consortium";
    fn aggregate_id(&self) -> Uuid {
        self.consortium_id.0
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}

/// A researcher's profile was erased on request; the funding records keep this id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentResearcherErased {
    pub researcher_id: Uuid,
    pub erased_at: DateTime<Utc>,
}

impl DomainEvent for TalentResearcherErased {
    const TYPE: &'static str = "TalentResearcherErased";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_researcher";
    fn aggregate_id(&self) -> Uuid {
        self.researcher_id
    }
}

/// A hire ended before its agreed end date: ended by the team or an officer (from
/// `ended_on`), or by the team's elimination (at the end of the elimination month, KST).
/// The researcher is free for another hire starting after `ended_on`; no month after it is
/// funded. (The reason stays in the talent service: it may be about the person.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalentHireEnded {
    pub hire_id: Uuid,
    pub researcher_id: Uuid,
    pub position_id: Uuid,
    pub consortium_id: ConsortiumId,
    /// The last day of the hire.
    pub ended_on: NaiveDate,
    /// `team`, `officer` or `elimination`.
    pub cause: String,
    pub ended_at: DateTime<Utc>,
}

impl DomainEvent for TalentHireEnded {
    const TYPE: &'static str = "TalentHireEnded";
    const VERSION: u16 = 1;
    const AGGREGATE_TYPE: &'static str = "talent_hire";
    /// Keyed by the hire, after its claims and payments.
    fn aggregate_id(&self) -> Uuid {
        self.hire_id
    }
    fn consortium_id(&self) -> Option<ConsortiumId> {
        Some(self.consortium_id)
    }
}
