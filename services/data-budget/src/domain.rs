//! The data budget's rules as plain functions: values in, values out, no I/O. The store
//! locks the team's budget rows, loads what these functions need, lets them decide and
//! writes exactly what they decided; the unit and property tests run the same functions.

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use kaip_contracts::dto::budget::{Category, ProgrammeSettings, ShareSpec};
use std::collections::BTreeMap;

/// Korea Standard Time: UTC+9, no daylight saving.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

/// The fiscal year (a Korean calendar year) of an instant: the boundary is midnight KST.
pub fn fiscal_year(at: DateTime<Utc>) -> i32 {
    at.with_timezone(&kst()).year()
}

/// New spending is for the current KST fiscal year only: not last year's unspent money
/// (that is what carry-over decides) and not a reservation of years to come.
pub fn current_year(field: &str, year: i32, now: DateTime<Utc>) -> Result<(), Invalid> {
    let current = fiscal_year(now);
    if year != current {
        return Err(Invalid::new(
            "FISCAL_YEAR_NOT_CURRENT",
            field,
            format!("new spending is for the current fiscal year {current} only, not {year}"),
        ));
    }
    Ok(())
}

/// The month (`YYYY-MM`, KST) of an instant, for the monthly burn.
pub fn kst_month(at: DateTime<Utc>) -> String {
    let k = at.with_timezone(&kst());
    format!("{:04}-{:02}", k.year(), k.month())
}

/// A refused input: a stable code, the field at fault and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub field: String,
    pub rule: String,
}

impl Invalid {
    pub fn new(code: &'static str, field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// The most any one figure may be: KRW 1,000,000,000,000,000 (a thousand trillion won,
/// some 60,000 times the programme's yearly cap per team). Every amount, cap and programme
/// figure is refused above it, so sums over a team's records stay far inside an `i64`;
/// programme-wide sums are taken in `i128` anyway (see [`krw_total`]).
pub const MAX_KRW: i64 = 1_000_000_000_000_000;

/// Money must be a whole, positive number of won, at most [`MAX_KRW`].
pub fn positive_amount(field: &str, amount: i64) -> Result<(), Invalid> {
    if amount <= 0 {
        return Err(Invalid::new(
            "AMOUNT_NOT_POSITIVE",
            field,
            format!("must be a positive whole number of KRW (got {amount})"),
        ));
    }
    if amount > MAX_KRW {
        return Err(Invalid::new(
            "AMOUNT_TOO_LARGE",
            field,
            format!("must be at most KRW {MAX_KRW} (got {amount})"),
        ));
    }
    Ok(())
}

/// An exact sum (taken in `i128`) as a KRW figure, or the figure that does not fit.
pub fn krw_total(field: &str, total: i128) -> Result<i64, Invalid> {
    i64::try_from(total).map_err(|_| {
        Invalid::new(
            "TOTAL_OUT_OF_RANGE",
            field,
            format!(
                "the exact total is KRW {total}, beyond the largest KRW figure ({})",
                i64::MAX
            ),
        )
    })
}

/// How far a payment's `paid_at` may be ahead of the service's clock (clock skew between
/// the finance system and us), in seconds.
pub const PAID_AT_SKEW_SECS: i64 = 300;

/// A payment was made no later than now and not before the purchase order (the commitment)
/// it pays for, each with [`PAID_AT_SKEW_SECS`] of tolerance for the finance system's clock.
/// Not "before the invoice was recorded": invoices are often entered here days after
/// finance received (and paid) them, and no supplier invoice date is held.
pub fn validate_paid_at(
    paid_at: DateTime<Utc>,
    committed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Invalid> {
    if paid_at > now + chrono::Duration::seconds(PAID_AT_SKEW_SECS) {
        return Err(Invalid::new(
            "PAID_AT_IN_FUTURE",
            "paid_at",
            format!(
                "{paid_at} is in the future (more than {PAID_AT_SKEW_SECS} s after now, {now})"
            ),
        ));
    }
    if paid_at < committed_at - chrono::Duration::seconds(PAID_AT_SKEW_SECS) {
        return Err(Invalid::new(
            "PAID_AT_BEFORE_COMMITMENT",
            "paid_at",
            format!("{paid_at} is before the commitment it pays was made ({committed_at})"),
        ));
    }
    Ok(())
}

/// The fiscal year must be one of the programme's.
pub fn year_in_programme(field: &str, year: i32, p: &ProgrammeSettings) -> Result<(), Invalid> {
    if year < p.first_year || year > p.last_year {
        return Err(Invalid::new(
            "YEAR_OUTSIDE_PROGRAMME",
            field,
            format!(
                "fiscal year {year} is outside the programme ({}..={})",
                p.first_year, p.last_year
            ),
        ));
    }
    Ok(())
}

/// A reason is required for every officer's decision.
pub fn reason(field: &str, r: &str) -> Result<(), Invalid> {
    if r.trim().is_empty() {
        return Err(Invalid::new(
            "REASON_REQUIRED",
            field,
            "must say why (a non-empty reason)",
        ));
    }
    Ok(())
}

/// A programme configuration that can be applied: positive figures, sub-limits within the
/// maximum, a non-empty range of years.
pub fn validate_programme(p: &ProgrammeSettings) -> Result<(), Invalid> {
    positive_amount("settings.max_cap_krw", p.max_cap_krw.0)?;
    for (f, v) in [
        (
            "settings.joint_purchase_limit_krw",
            p.joint_purchase_limit_krw.0,
        ),
        (
            "settings.building_processing_limit_krw",
            p.building_processing_limit_krw.0,
        ),
    ] {
        positive_amount(f, v)?;
        if v > p.max_cap_krw.0 {
            return Err(Invalid::new(
                "LIMIT_ABOVE_CAP",
                f,
                "a category's sub-limit cannot exceed the maximum cap",
            ));
        }
    }
    if !(2000..=2200).contains(&p.first_year) || p.last_year < p.first_year || p.last_year > 2200 {
        return Err(Invalid::new(
            "VALIDATION_FAILED",
            "settings.last_year",
            "the programme's years must be a range first_year..=last_year within 2000..=2200",
        ));
    }
    Ok(())
}

/// A cap with its category sub-limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub total: i64,
    pub joint_purchase: i64,
    pub building_processing: i64,
}

impl Cap {
    pub fn limit(&self, c: Category) -> i64 {
        match c {
            Category::JointPurchase => self.joint_purchase,
            Category::BuildingProcessing => self.building_processing,
        }
    }
}

/// The cap a selected team opens with; each sub-limit the programme's, never above the cap.
///
/// - The call announced its per-team maximum (`call_max`, from `SelectionPublished`): the
///   cap is that maximum, never above the programme's. A call maximum of 0 grants no data
///   budget: `None`, no budget is opened.
/// - It did not (a selection published before calls announced it): the earlier rule, what
///   the team asked for (none asked: the programme's maximum), never above the maximum.
pub fn opening_cap(requested: i64, call_max: Option<i64>, p: &ProgrammeSettings) -> Option<Cap> {
    let max = p.max_cap_krw.0;
    let total = match call_max {
        Some(m) if m <= 0 => return None,
        Some(m) => m.min(max),
        None if requested > 0 => requested.min(max),
        None => max,
    };
    Some(Cap {
        total,
        joint_purchase: p.joint_purchase_limit_krw.0.min(total),
        building_processing: p.building_processing_limit_krw.0.min(total),
    })
}

/// A cap under a new programme maximum: lowered to it if above, each sub-limit never above
/// the cap. (The programme's sub-limits are the opening ones; an officer may have set a
/// team's otherwise, so they do not lower existing caps.)
pub fn cap_within(cap: Cap, max: i64) -> Cap {
    let total = cap.total.min(max);
    Cap {
        total,
        joint_purchase: cap.joint_purchase.min(total),
        building_processing: cap.building_processing.min(total),
    }
}

/// A new programme configuration applied to one team's years: every year from `from` on
/// gets its cap within the new maximum ([`cap_within`]); with the new carry-over rule every
/// such year must still cover what it has committed. Returns the years whose cap changes,
/// with the new cap, or the first year that would be over its cap or a sub-limit.
pub fn caps_under(
    years: &[Year],
    p: &ProgrammeSettings,
    from: i32,
) -> Result<Vec<(i32, Cap)>, Shortfall> {
    let mut after = years.to_vec();
    let mut changed = Vec::new();
    for y in after.iter_mut().filter(|y| y.year >= from) {
        let cap = cap_within(y.cap, p.max_cap_krw.0);
        if cap != y.cap {
            changed.push((y.year, cap));
            y.cap = cap;
        }
    }
    let rooms = rooms(&after, p.carry_over);
    for (y, room) in rooms.range(from..) {
        if room.total < 0 {
            return Err(Shortfall {
                year: *y,
                category: None,
                available: 0,
                shortfall: room.total.saturating_neg(),
            });
        }
        for c in Category::ALL {
            if room.of(c) < 0 {
                return Err(Shortfall {
                    year: *y,
                    category: Some(c),
                    available: 0,
                    shortfall: room.of(c).saturating_neg(),
                });
            }
        }
    }
    Ok(changed)
}

/// An officer's adjustment: positive, within the programme's maximum, sub-limits within the
/// cap, and never below what is already committed (the budget would be over its cap).
pub fn validate_adjustment(cap: Cap, max: i64, committed: &Committed) -> Result<(), Invalid> {
    positive_amount("cap_krw", cap.total)?;
    if cap.total > max {
        return Err(Invalid::new(
            "CAP_ABOVE_PROGRAMME_MAXIMUM",
            "cap_krw",
            format!("must not exceed the programme's maximum of KRW {max}"),
        ));
    }
    for c in Category::ALL {
        let f = format!("{}_limit_krw", c.as_str());
        positive_amount(&f, cap.limit(c))?;
        if cap.limit(c) > cap.total {
            return Err(Invalid::new(
                "LIMIT_ABOVE_CAP",
                f,
                "a category's sub-limit cannot exceed the cap",
            ));
        }
        let used = committed.of(c);
        if cap.limit(c) < used {
            return Err(Invalid::new(
                "CAP_BELOW_COMMITTED",
                f,
                format!("KRW {used} is already committed in this category"),
            ));
        }
    }
    let used = committed.total();
    if cap.total < used {
        return Err(Invalid::new(
            "CAP_BELOW_COMMITTED",
            "cap_krw",
            format!("KRW {used} is already committed"),
        ));
    }
    Ok(())
}

/// Money committed and not cancelled, by category.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed(pub BTreeMap<Category, i64>);

impl Committed {
    pub fn of(&self, c: Category) -> i64 {
        self.0.get(&c).copied().unwrap_or(0)
    }
    /// Saturates: a request of `i64::MAX` must be refused, not overflow.
    pub fn total(&self) -> i64 {
        self.0.values().fold(0i64, |a, v| a.saturating_add(*v))
    }
}

/// One team-year as the room check needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Year {
    pub year: i32,
    pub cap: Cap,
    pub committed: Committed,
}

/// What a team-year may still commit: in total and per category, with what was carried in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Room {
    pub carried_total: i64,
    pub carried: BTreeMap<Category, i64>,
    pub total: i64,
    pub by_category: BTreeMap<Category, i64>,
}

impl Room {
    pub fn of(&self, c: Category) -> i64 {
        self.by_category.get(&c).copied().unwrap_or(0)
    }
}

/// The room of every year of one team (sorted by year). Without carry-over each year
/// stands alone; with it, the unspent part of a year (total and per category) adds to the
/// next consecutive year. A category's room never exceeds the total's.
pub fn rooms(years: &[Year], carry_over: bool) -> BTreeMap<i32, Room> {
    let mut out = BTreeMap::new();
    let mut prev: Option<(i32, Room)> = None;
    for y in years {
        let mut room = Room::default();
        if let Some((_, pr)) = prev
            .as_ref()
            .filter(|(py, _)| carry_over && *py + 1 == y.year)
        {
            room.carried_total = pr.total.max(0);
            for c in Category::ALL {
                // What the category left unspent, net of the total's limit.
                room.carried.insert(c, pr.own(c).max(0));
            }
        }
        room.total = y
            .cap
            .total
            .saturating_add(room.carried_total)
            .saturating_sub(y.committed.total());
        for c in Category::ALL {
            let own = y
                .cap
                .limit(c)
                .saturating_add(room.carried.get(&c).copied().unwrap_or(0))
                .saturating_sub(y.committed.of(c));
            room.by_category.insert(c, own);
        }
        prev = Some((y.year, room.clone()));
        let capped = Room {
            by_category: room
                .by_category
                .iter()
                .map(|(c, v)| (*c, (*v).min(room.total)))
                .collect(),
            ..room
        };
        out.insert(y.year, capped);
    }
    out
}

impl Room {
    /// The category's own room before the total's limit (carried forward as it is).
    fn own(&self, c: Category) -> i64 {
        self.by_category.get(&c).copied().unwrap_or(0)
    }
}

/// Why a commitment does not fit: the team-year, the category and how much is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub year: i32,
    /// `None`: the team's cap; `Some`: the category's sub-limit.
    pub category: Option<Category>,
    pub available: i64,
    pub shortfall: i64,
}

/// Does `amount` in `category` fit `year`? With carry-over, a commitment in an earlier year
/// also shrinks what later years carried in, so every year from `year` on must stay within
/// its room.
pub fn fits(
    years: &[Year],
    carry_over: bool,
    year: i32,
    category: Category,
    amount: i64,
) -> Result<(), Shortfall> {
    let before = rooms(years, carry_over);
    let mut after_years = years.to_vec();
    let mut found = false;
    for y in after_years.iter_mut().filter(|y| y.year == year) {
        let e = y.committed.0.entry(category).or_insert(0);
        *e = e.saturating_add(amount);
        found = true;
    }
    if !found {
        return Err(Shortfall {
            year,
            category: None,
            available: 0,
            shortfall: amount,
        });
    }
    let after = rooms(&after_years, carry_over);
    for (y, room) in after.range(year..) {
        let avail_before = before.get(y).cloned().unwrap_or_default();
        if room.total < 0 {
            return Err(Shortfall {
                year: *y,
                category: None,
                available: avail_before.total.max(0),
                shortfall: room.total.saturating_neg(),
            });
        }
        if room.of(category) < 0 {
            return Err(Shortfall {
                year: *y,
                category: Some(category),
                available: avail_before.of(category).max(0),
                shortfall: room.of(category).saturating_neg(),
            });
        }
    }
    Ok(())
}

/// Splits `total` by `weights`, exact to the won, by the largest remainder: each part gets
/// the floor of its exact share, then the won left over go one each to the parts with the
/// largest remainders; equal remainders go to the earlier part (the store lists shares by
/// consortium id, so ties go to the lower id). The parts always sum to `total`; equal
/// weights get parts that differ by at most one won.
pub fn split(total: i64, weights: &[i64]) -> Result<Vec<i64>, Invalid> {
    // Any positive i64 splits exactly (the arithmetic is i128); the request's bound
    // ([`MAX_KRW`]) is checked where the request is read.
    if total <= 0 {
        return Err(Invalid::new(
            "AMOUNT_NOT_POSITIVE",
            "total_krw",
            format!("must be a positive whole number of KRW (got {total})"),
        ));
    }
    if weights.is_empty() {
        return Err(Invalid::new(
            "SHARES_EMPTY",
            "shares",
            "a joint purchase needs at least one sharing team",
        ));
    }
    for (i, w) in weights.iter().enumerate() {
        if *w <= 0 {
            return Err(Invalid::new(
                "WEIGHT_NOT_POSITIVE",
                format!("shares[{i}].weight"),
                format!("must be a positive integer (got {w})"),
            ));
        }
    }
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    let t = i128::from(total);
    let mut parts: Vec<i128> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = t * i128::from(*w);
        parts.push(exact / sum);
        rems.push((exact % sum, i));
    }
    let left = t - parts.iter().sum::<i128>();
    // Largest remainder first; ties by position.
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems.iter().take(left as usize) {
        parts[*i] += 1;
    }
    // Each part is at most `total` (weights are positive), so it fits an i64.
    Ok(parts.into_iter().map(|p| p as i64).collect())
}

/// How a joint purchase's shares were given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitRule {
    Equal,
    Weighted,
    Explicit,
}

impl SplitRule {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitRule::Equal => "equal",
            SplitRule::Weighted => "weighted",
            SplitRule::Explicit => "explicit",
        }
    }
}

/// Decides every share of a joint purchase: `shares` must already be in the stated order
/// (by consortium id). Returns the rule and, per share, its weight and amount.
pub fn plan_shares(
    total: i64,
    shares: &[ShareSpec],
) -> Result<(SplitRule, Vec<(i64, i64)>), Invalid> {
    positive_amount("total_krw", total)?;
    if shares.len() < 2 {
        return Err(Invalid::new(
            "SHARES_TOO_FEW",
            "shares",
            "a joint purchase is shared by at least two teams",
        ));
    }
    for (i, s) in shares.iter().enumerate() {
        if shares[..i]
            .iter()
            .any(|p| p.consortium_id == s.consortium_id)
        {
            return Err(Invalid::new(
                "SHARE_DUPLICATE_TEAM",
                format!("shares[{i}].consortium_id"),
                "each team has one share",
            ));
        }
    }
    let weighted = shares.iter().filter(|s| s.weight.is_some()).count();
    let explicit = shares.iter().filter(|s| s.amount_krw.is_some()).count();
    let n = shares.len();
    if !matches!((weighted, explicit), (0, 0))
        && (weighted, explicit) != (n, 0)
        && (weighted, explicit) != (0, n)
    {
        return Err(Invalid::new(
            "SHARES_MIXED",
            "shares",
            "give every share a weight, or every share an amount, or none of them (equal split)",
        ));
    }
    if explicit > 0 {
        let mut sum: i64 = 0;
        let mut out = Vec::new();
        for (i, s) in shares.iter().enumerate() {
            let a = s.amount_krw.map(|k| k.0).unwrap_or(0);
            positive_amount(&format!("shares[{i}].amount_krw"), a)?;
            sum = sum.checked_add(a).ok_or_else(|| {
                Invalid::new(
                    "SHARES_DO_NOT_SUM",
                    "shares",
                    "the shares' amounts overflow",
                )
            })?;
            out.push((1, a));
        }
        if sum != total {
            return Err(Invalid::new(
                "SHARES_DO_NOT_SUM",
                "shares",
                format!("the shares' amounts sum to KRW {sum}, not the total KRW {total}"),
            ));
        }
        return Ok((SplitRule::Explicit, out));
    }
    let (rule, weights): (SplitRule, Vec<i64>) = if weighted > 0 {
        (
            SplitRule::Weighted,
            shares.iter().map(|s| s.weight.unwrap_or(0)).collect(),
        )
    } else {
        (SplitRule::Equal, vec![1; shares.len()])
    };
    let parts = split(total, &weights)?;
    for (i, p) in parts.iter().enumerate() {
        if *p <= 0 {
            return Err(Invalid::new(
                "SHARE_ZERO",
                format!("shares[{i}]"),
                "the share would be KRW 0: the total is too small for so many shares",
            ));
        }
    }
    Ok((rule, weights.into_iter().zip(parts).collect()))
}

#[cfg(test)]
mod tests;
