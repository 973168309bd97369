//! The government's matching funds: the match ratio (a programme table by the lead
//! company's size and its openness), a month's claim pro-rated by days, the annual cap per
//! team and fiscal year, and the stop after elimination. All money is whole KRW in `i64`;
//! intermediate products are `i128`, so no input within `i64` overflows, and a result
//! outside `i64` is `None` (a coded refusal upstream), never a wrap.
//!
//! **Rounding rule.** A month's government share is computed in one step,
//! `floor(monthly_cost × covered_days × ratio_bp / (days_in_month × 10_000))`: rounded down
//! to the whole won, once, at the end (never per component), so the state never pays a
//! fraction of a won more than the rule gives and the result does not depend on the order
//! of the factors.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A basis point is 1/10,000: a ratio of 5,000 bp is 50 %.
pub const BP_PER_UNIT: i64 = 10_000;

/// The lead company's size, as the ratio table names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanySize {
    Large,
    MidSize,
    Small,
    Academic,
}

impl CompanySize {
    pub const ALL: [CompanySize; 4] = [Self::Large, Self::MidSize, Self::Small, Self::Academic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Large => "large",
            Self::MidSize => "mid_size",
            Self::Small => "small",
            Self::Academic => "academic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// From the lead organisation's type in the proposal (`ProposalSubmitted.members`).
    pub fn of_org_type(t: kaip_contracts::dto::intake::OrgType) -> Self {
        use kaip_contracts::dto::intake::OrgType as O;
        match t {
            O::LargeEnterprise => Self::Large,
            O::MidSize => Self::MidSize,
            O::Sme | O::Startup => Self::Small,
            O::University | O::ResearchInstitute => Self::Academic,
        }
    }
}

/// How openly the team releases its model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpennessLevel {
    /// Nothing released.
    Closed,
    /// Data or code, but not the weights.
    Partial,
    /// The weights (with or without the rest).
    OpenWeights,
}

impl OpennessLevel {
    pub const ALL: [OpennessLevel; 3] = [Self::Closed, Self::Partial, Self::OpenWeights];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Partial => "partial",
            Self::OpenWeights => "open_weights",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// From the proposal's declared openness.
    pub fn of_releases(releases: &[kaip_contracts::dto::intake::Artefact]) -> Self {
        use kaip_contracts::dto::intake::Artefact;
        if releases.contains(&Artefact::Weights) {
            Self::OpenWeights
        } else if releases.is_empty() {
            Self::Closed
        } else {
            Self::Partial
        }
    }
}

/// One cell of the match-ratio table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioCell {
    pub size: CompanySize,
    pub openness: OpennessLevel,
    /// 0..=10,000 basis points.
    pub ratio_bp: i64,
}

/// The programme's terms for matching funds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundTerms {
    /// The most paid per team per fiscal year (KRW 2bn in the seeded programme).
    pub annual_cap_krw: i64,
    pub ratios: Vec<RatioCell>,
}

impl Default for FundTerms {
    /// The seeded programme: larger companies and closed models get a smaller share.
    fn default() -> Self {
        let base = |s: CompanySize| match s {
            CompanySize::Large => 3_000,
            CompanySize::MidSize => 4_000,
            CompanySize::Small => 5_000,
            CompanySize::Academic => 5_000,
        };
        let bonus = |o: OpennessLevel| match o {
            OpennessLevel::Closed => 0,
            OpennessLevel::Partial => 1_000,
            OpennessLevel::OpenWeights => 2_000,
        };
        let mut ratios = Vec::new();
        for size in CompanySize::ALL {
            for openness in OpennessLevel::ALL {
                ratios.push(RatioCell {
                    size,
                    openness,
                    ratio_bp: base(size) + bonus(openness),
                });
            }
        }
        Self {
            annual_cap_krw: 2_000_000_000,
            ratios,
        }
    }
}

/// Why a set of terms is refused: the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub rule: String,
}

fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        rule: rule.into(),
    }
}

impl FundTerms {
    /// Every (size, openness) pair exactly once, each ratio within 0..=100 %, a cap >= 0.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.annual_cap_krw < 0 {
            return Err(invalid("annual_cap_krw", "must not be negative"));
        }
        for (i, c) in self.ratios.iter().enumerate() {
            if !(0..=BP_PER_UNIT).contains(&c.ratio_bp) {
                return Err(invalid(
                    format!("ratios[{i}].ratio_bp"),
                    "must be 0..=10000 basis points",
                ));
            }
            if self.ratios[..i]
                .iter()
                .any(|d| d.size == c.size && d.openness == c.openness)
            {
                return Err(invalid(
                    format!("ratios[{i}]"),
                    "each size and openness at most once",
                ));
            }
        }
        for s in CompanySize::ALL {
            for o in OpennessLevel::ALL {
                if self.ratio(s, o).is_none() {
                    return Err(invalid(
                        "ratios",
                        format!("must cover {} with {}", s.as_str(), o.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn ratio(&self, size: CompanySize, openness: OpennessLevel) -> Option<i64> {
        self.ratios
            .iter()
            .find(|c| c.size == size && c.openness == openness)
            .map(|c| c.ratio_bp)
    }
}

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1).map(|_| Self { year, month })
    }

    pub fn of(d: NaiveDate) -> Self {
        Self {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn last_day(self) -> NaiveDate {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.pred_opt())
            .unwrap_or(NaiveDate::MAX)
    }

    pub fn days(self) -> i64 {
        (self.last_day() - self.first_day()).num_days() + 1
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Whether `month` has begun on `today` (a KST date): a month is claimed once it has
/// started, never ahead, so an elimination can still stop the months after it.
pub fn month_started(month: Month, today: NaiveDate) -> bool {
    month <= Month::of(today)
}

/// Korea Standard Time: fiscal years and months are KST calendar ones.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

/// The KST calendar date of an instant.
pub fn kst_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&kst()).date_naive()
}

/// Days of `month` inside `[start, end]` (both inclusive); 0 when they do not meet.
pub fn covered_days(month: Month, start: NaiveDate, end: NaiveDate) -> i64 {
    let from = start.max(month.first_day());
    let to = end.min(month.last_day());
    if to < from {
        0
    } else {
        (to - from).num_days() + 1
    }
}

/// A month's claim: the eligible cost and the government's share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthShare {
    pub days_covered: i64,
    pub days_in_month: i64,
    /// Salary plus living allowance for the covered days (rounded down).
    pub eligible_cost_krw: i64,
    /// The government's share (see the module's rounding rule).
    pub share_krw: i64,
}

/// The government's share of one month of a hire. `None` if an amount would not fit in
/// `i64` (refused upstream). The caller has checked the month meets the hire.
pub fn month_share(
    month: Month,
    start: NaiveDate,
    end: NaiveDate,
    monthly_salary_krw: i64,
    monthly_living_krw: i64,
    ratio_bp: i64,
) -> Option<MonthShare> {
    let days = covered_days(month, start, end);
    let dim = month.days();
    let cost = i128::from(monthly_salary_krw) + i128::from(monthly_living_krw);
    let eligible = cost * i128::from(days) / i128::from(dim);
    let share = cost * i128::from(days) * i128::from(ratio_bp)
        / (i128::from(dim) * i128::from(BP_PER_UNIT));
    Some(MonthShare {
        days_covered: days,
        days_in_month: dim,
        eligible_cost_krw: i64::try_from(eligible).ok()?,
        share_krw: i64::try_from(share).ok()?,
    })
}

/// What the cap leaves of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub paid_krw: i64,
    /// Why less than claimed was paid, if it was.
    pub reason: Option<String>,
}

/// Pays a claim up to the team's annual cap: `paid_before` is what the team was already
/// paid in the fiscal year.
pub fn pay_within_cap(
    claimed_krw: i64,
    paid_before: i64,
    cap_krw: i64,
    fiscal_year: i32,
) -> Payment {
    // Never more room than the cap itself, whatever `paid_before` says.
    let room = cap_krw
        .saturating_sub(paid_before.max(0))
        .clamp(0, cap_krw.max(0));
    if claimed_krw <= room {
        return Payment {
            paid_krw: claimed_krw.max(0),
            reason: None,
        };
    }
    Payment {
        paid_krw: room,
        reason: Some(format!(
            "annual cap: KRW {cap_krw} a team in fiscal year {fiscal_year}, KRW {paid_before} already paid; \
             the claim of KRW {claimed_krw} is paid KRW {room}"
        )),
    }
}

/// A team's cap for fiscal year `fy` (a KST calendar year), pro-rated for a partial year:
/// `floor(annual_cap × days_in_programme / days_in_year)`, rounded down to the whole won
/// once (the state never pays more than the rule gives). The team is in the programme from
/// its selection's KST date (inclusive) to the last day of its elimination's KST month
/// (inclusive, the last funded month), clipped to the year; 0 days outside it. A full year
/// gives the whole cap (the product is `i128`, so any `i64` cap is exact).
pub fn prorated_cap(
    annual_cap_krw: i64,
    fy: i32,
    selected_on: NaiveDate,
    eliminated_on: Option<NaiveDate>,
) -> i64 {
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(fy, 1, 1),
        NaiveDate::from_ymd_opt(fy, 12, 31),
    ) else {
        return 0;
    };
    let from = selected_on.max(first);
    let to = eliminated_on
        .map(|d| Month::of(d).last_day())
        .unwrap_or(last)
        .min(last);
    if to < from {
        return 0;
    }
    let days = i128::from((to - from).num_days() + 1);
    let year_days = i128::from((last - first).num_days() + 1);
    let cap = i128::from(annual_cap_krw.max(0)) * days / year_days;
    i64::try_from(cap).unwrap_or(0)
}

/// May a month be funded for a team eliminated on `eliminated_on` (a KST date)? Months up to
/// and including the elimination's month are; later ones are not.
pub fn funded_after_elimination(month: Month, eliminated_on: Option<NaiveDate>) -> bool {
    eliminated_on.is_none_or(|d| month <= Month::of(d))
}

#[cfg(test)]
mod tests;
