//! A stage gate's arithmetic: the components and their weights, each component's
//! normalisation, the exact gate score, the ranking with its tie rule, and who is
//! eliminated (every ineligible team, whatever its score, and the lowest-ranked eligible
//! teams up to the planned number).
//!
//! Exactness: inputs are integers of ten-thousandths ([`INPUT_SCALE`]); a component's
//! points are `weight × normalised value`, an exact fraction. Ranking and tie detection
//! compare the **exact** scores (each team's score as one integer over the common
//! denominator of all components, in an arbitrary-precision integer): 20 × 2/3 + 10 × 1/3
//! is 10, not 9.999999999. The figures shown are rounded **down** to a nano-point
//! ([`POINT_SCALE`]): each component's points, and the score (the exact total rounded down,
//! so it may exceed the sum of the shown points by a few nano-points). Display figures
//! never decide anything. Nothing is a float, so a decision recomputed from its recorded
//! inputs gives the same numbers on any machine.
//!
//! Min-max ranges are taken over the **eligible** teams only: an ineligible team is out
//! whatever its score, so its values must not decide which eligible team goes. An
//! ineligible team's value is clamped into the eligible range for its (informational)
//! points; when no team is eligible, nobody is ranked and the range is the teams' own.

use super::decimal;
use super::Invalid;
use kaip_contracts::dto::milestones as dto;
use kaip_contracts::ConsortiumId;
use num_bigint::BigInt;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Inputs are kept in units of 10^-4.
pub const INPUT_SCALE: u32 = 4;
/// Points are kept in units of 10^-9 (each component's points rounded down).
pub const POINT_SCALE: u32 = 9;
const NANO: i128 = 1_000_000_000;
/// The components' weights sum to this.
pub const TOTAL_WEIGHT: i32 = 100;
pub const MAX_COMPONENTS: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalisation {
    /// (v - min) / (max - min) over the teams at the gate; all equal: the whole weight.
    MinMax,
    /// v / max, with `max` (units of 10^-4) fixed by the gate; inputs above it are refused.
    OfMax(i64),
}

/// Which inputs may arrive for a component by event (issue #11): an integration's
/// benchmark results, or scoring's expert panel. Every component takes inputs by REST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    Benchmark,
    ExpertPanel,
    Other,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Benchmark => "benchmark",
            ComponentKind::ExpertPanel => "expert_panel",
            ComponentKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "benchmark" => Some(ComponentKind::Benchmark),
            "expert_panel" => Some(ComponentKind::ExpertPanel),
            "other" => Some(ComponentKind::Other),
            _ => None,
        }
    }

    /// The kind of a component that names none (and of components stored before kinds
    /// existed): the template's conventions, `benchmark` in the group `benchmarks`,
    /// `expert_panel` for the key `expert-panel`.
    pub fn implied(key: &str, group: &str) -> Self {
        if group == "benchmarks" {
            ComponentKind::Benchmark
        } else if key == "expert-panel" {
            ComponentKind::ExpertPanel
        } else {
            ComponentKind::Other
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub key: String,
    pub group: String,
    pub label: String,
    pub weight: i32,
    pub normalisation: Normalisation,
    pub kind: ComponentKind,
}

impl Component {
    pub fn to_dto(&self) -> dto::GateComponent {
        let (normalisation, max) = match self.normalisation {
            Normalisation::MinMax => ("min_max", None),
            Normalisation::OfMax(m) => ("of_max", Some(decimal::format(m.into(), INPUT_SCALE))),
        };
        dto::GateComponent {
            key: self.key.clone(),
            group: self.group.clone(),
            label: self.label.clone(),
            weight: self.weight,
            normalisation: normalisation.to_owned(),
            max,
            kind: Some(self.kind.as_str().to_owned()),
        }
    }
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The first gate as the programme ran it: benchmarks 40 (national 10, global common 20,
/// team-chosen 10), expert panel 35, user evaluation 25. Benchmarks are normalised min-max
/// across the teams (their scales differ); the panel's and users' scores are out of 100.
pub fn first_gate() -> Vec<dto::GateComponent> {
    let c =
        |key: &str, group: &str, label: &str, weight: i32, max: Option<&str>| dto::GateComponent {
            key: key.into(),
            group: group.into(),
            label: label.into(),
            weight,
            normalisation: if max.is_some() { "of_max" } else { "min_max" }.into(),
            max: max.map(str::to_owned),
            kind: Some(ComponentKind::implied(key, group).as_str().to_owned()),
        };
    vec![
        c(
            "benchmark-national",
            "benchmarks",
            "National benchmark",
            10,
            None,
        ),
        c(
            "benchmark-global",
            "benchmarks",
            "Global common benchmarks",
            20,
            None,
        ),
        c(
            "benchmark-team",
            "benchmarks",
            "Team-chosen benchmarks",
            10,
            None,
        ),
        c(
            "expert-panel",
            "expert-panel",
            "Expert panel",
            35,
            Some("100"),
        ),
        c(
            "user-evaluation",
            "user-evaluation",
            "User evaluation",
            25,
            Some("100"),
        ),
    ]
}

/// Reads and checks each component (not yet their sum: [`check_weights`]).
pub fn components(list: &[dto::GateComponent]) -> Result<Vec<Component>, Invalid> {
    if list.is_empty() || list.len() > MAX_COMPONENTS {
        return Err(Invalid::new(
            "components",
            format!("1 to {MAX_COMPONENTS} components"),
        ));
    }
    let mut out: Vec<Component> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = |f: &str| format!("components[{i}].{f}");
        if !is_key(&c.key) {
            return Err(Invalid::new(at("key"), "1 to 63 of a-z, 0-9, '-' and '_'"));
        }
        if out.iter().any(|o| o.key == c.key) {
            return Err(Invalid::new(at("key"), "each component's key once"));
        }
        if !is_key(&c.group) {
            return Err(Invalid::new(
                at("group"),
                "1 to 63 of a-z, 0-9, '-' and '_'",
            ));
        }
        if c.label.trim().is_empty() || c.label.len() > 200 {
            return Err(Invalid::new(at("label"), "1 to 200 bytes, not blank"));
        }
        if !(1..=TOTAL_WEIGHT).contains(&c.weight) {
            return Err(Invalid::new(at("weight"), "a whole number from 1 to 100"));
        }
        let normalisation = match (c.normalisation.as_str(), &c.max) {
            ("min_max", None) => Normalisation::MinMax,
            ("min_max", Some(_)) => {
                return Err(Invalid::new(at("max"), "only with of_max"));
            }
            ("of_max", Some(m)) => {
                let m = decimal::parse(&at("max"), m, INPUT_SCALE)?;
                if m == 0 {
                    return Err(Invalid::new(at("max"), "greater than 0"));
                }
                Normalisation::OfMax(m)
            }
            ("of_max", None) => {
                return Err(Invalid::new(at("max"), "required with of_max"));
            }
            _ => return Err(Invalid::new(at("normalisation"), "one of min_max, of_max")),
        };
        let kind = match c.kind.as_deref() {
            None => ComponentKind::implied(&c.key, &c.group),
            Some(k) => ComponentKind::parse(k)
                .ok_or_else(|| Invalid::new(at("kind"), "one of benchmark, expert_panel, other"))?,
        };
        if kind == ComponentKind::ExpertPanel {
            if out.iter().any(|o| o.kind == ComponentKind::ExpertPanel) {
                return Err(Invalid::new(
                    at("kind"),
                    "at most one expert_panel component per gate (the panel's scores land on it)",
                ));
            }
            if let Normalisation::OfMax(m) = normalisation {
                if m != 100 * 10i64.pow(INPUT_SCALE) {
                    return Err(Invalid::new(
                        at("max"),
                        "100 for an expert_panel component scored of_max (the panel scores out of 100)",
                    ));
                }
            }
        }
        out.push(Component {
            key: c.key.clone(),
            group: c.group.clone(),
            label: c.label.trim().to_owned(),
            weight: c.weight,
            normalisation,
            kind,
        });
    }
    Ok(out)
}

/// The weights must sum to exactly 100. `Err` names the sum and each group's share.
pub fn check_weights(components: &[Component]) -> Result<(), String> {
    let sum: i64 = components.iter().map(|c| i64::from(c.weight)).sum();
    if sum == i64::from(TOTAL_WEIGHT) {
        return Ok(());
    }
    let mut groups: BTreeMap<&str, i64> = BTreeMap::new();
    for c in components {
        *groups.entry(c.group.as_str()).or_default() += i64::from(c.weight);
    }
    let shares: Vec<String> = groups.iter().map(|(g, w)| format!("{g} {w}")).collect();
    Err(format!(
        "components: the weights sum to {sum} ({}), not {TOTAL_WEIGHT}",
        shares.join(", ")
    ))
}

/// The normalised value of `v` on a component as an exact fraction `(numerator,
/// denominator)` in `[0, 1]`, given the lowest and highest value of the range (the
/// eligible teams'). A value outside a min-max range is clamped into it; all equal: 1.
pub fn fraction(c: &Component, v: i64, min: i64, max: i64) -> (i128, i128) {
    match c.normalisation {
        Normalisation::MinMax => {
            if max <= min {
                (1, 1)
            } else {
                (
                    i128::from(v.clamp(min, max)) - i128::from(min),
                    i128::from(max) - i128::from(min),
                )
            }
        }
        Normalisation::OfMax(m) => (i128::from(v.clamp(0, m)), i128::from(m.max(1))),
    }
}

/// The points a value earns on a component as shown (nano-points, rounded down), given
/// the lowest and highest value of the range.
pub fn points(c: &Component, v: i64, min: i64, max: i64) -> i128 {
    let (n, d) = fraction(c, v, min, max);
    (i128::from(c.weight) * NANO * n).div_euclid(d)
}

/// What the gate knows of one team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamFacts {
    pub team: ConsortiumId,
    /// Component key → value (units of 10^-4).
    pub values: BTreeMap<String, i64>,
    /// `rule: grounds` of each rule the team failed (empty: eligible).
    pub failed_rules: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub team: ConsortiumId,
    pub component: String,
}

struct Scored {
    team: ConsortiumId,
    /// Each component's normalised numerator (its denominator is the component's, the same
    /// for every team): compares the components' exact points for the tie rule.
    numerators: Vec<i128>,
    /// The exact score × the common denominator of all components.
    exact: BigInt,
    /// Shown: each component's points and the exact score, rounded down to nano-points.
    points: Vec<i128>,
    total: i128,
    /// `None`: an ineligible team's missing input.
    values: Vec<Option<i64>>,
    failed: Vec<String>,
}

/// Tie rule: higher exact score first; equal exact scores are ordered by the components'
/// exact points in the gate's order (the first component that differs decides), then by
/// consortium id.
fn order(a: &Scored, b: &Scored) -> Ordering {
    b.exact
        .cmp(&a.exact)
        .then_with(|| b.numerators.cmp(&a.numerators))
        .then_with(|| a.team.0.cmp(&b.team.0))
}

/// The gate's proposal: each team's points and score, the eligible teams' ranks, and who
/// is eliminated with the reason. Every ineligible team is eliminated; then the
/// `planned` lowest-ranked eligible teams (fewer if fewer are eligible).
pub fn propose(
    components: &[Component],
    teams: &[TeamFacts],
    planned: i32,
) -> Result<Vec<dto::TeamResult>, Missing> {
    let mut scored = Vec::with_capacity(teams.len());
    for t in teams {
        let eligible = t.failed_rules.is_empty();
        let mut values = Vec::with_capacity(components.len());
        for c in components {
            // An eligible team needs every input; an ineligible team's missing input earns
            // nothing and is not shown.
            let v = t.values.get(&c.key).copied();
            if v.is_none() && eligible {
                return Err(Missing {
                    team: t.team,
                    component: c.key.clone(),
                });
            }
            values.push(v);
        }
        scored.push(Scored {
            team: t.team,
            numerators: Vec::new(),
            exact: BigInt::from(0),
            points: Vec::new(),
            total: 0,
            values,
            failed: t.failed_rules.clone(),
        });
    }
    let any_eligible = scored.iter().any(|s| s.failed.is_empty());
    let mut denominators = Vec::with_capacity(components.len());
    for (i, c) in components.iter().enumerate() {
        // The range is the eligible teams' (all teams' when none is eligible).
        let in_range = scored
            .iter()
            .filter(|s| !any_eligible || s.failed.is_empty())
            .filter_map(|s| s.values[i]);
        let min = in_range.clone().min().unwrap_or(0);
        let max = in_range.max().unwrap_or(0);
        let mut den = 1;
        for s in &mut scored {
            let (n, d) = fraction(c, s.values[i].unwrap_or(0), min, max);
            den = d;
            let (n, p) = match s.values[i] {
                Some(v) => (n, points(c, v, min, max)),
                None => (0, 0),
            };
            s.numerators.push(n);
            s.points.push(p);
        }
        denominators.push(den);
    }
    // Score × D, D the product of the components' denominators: Σ wᵢ·nᵢ·(D / dᵢ).
    let common: BigInt = denominators.iter().map(|d| BigInt::from(*d)).product();
    for s in &mut scored {
        let mut exact = BigInt::from(0);
        for ((c, n), d) in components.iter().zip(&s.numerators).zip(&denominators) {
            exact += BigInt::from(i128::from(c.weight) * n) * (&common / BigInt::from(*d));
        }
        let shown = (&exact * BigInt::from(NANO)) / &common;
        // At most 100 points: it fits; saturate rather than panic all the same.
        s.total = i128::try_from(&shown).unwrap_or(i128::MAX);
        s.exact = exact;
    }
    let (mut eligible, mut ineligible): (Vec<Scored>, Vec<Scored>) =
        scored.into_iter().partition(|s| s.failed.is_empty());
    eligible.sort_by(order);
    ineligible.sort_by(order);
    let n = eligible.len();
    let cut = n.saturating_sub(usize::try_from(planned.max(0)).unwrap_or(0));
    let result = |s: &Scored, rank: Option<usize>, reason: Option<String>, tie: Option<String>| {
        dto::TeamResult {
            consortium_id: s.team,
            components: components
                .iter()
                .zip(s.values.iter().zip(&s.points))
                .filter_map(|(c, (v, p))| {
                    v.map(|v| dto::ComponentScore {
                        key: c.key.clone(),
                        value: decimal::format(v.into(), INPUT_SCALE),
                        points: decimal::format(*p, POINT_SCALE),
                    })
                })
                .collect(),
            score: decimal::format(s.total, POINT_SCALE),
            eligible: s.failed.is_empty(),
            rank: rank.map(|r| i32::try_from(r + 1).unwrap_or(i32::MAX)),
            outcome: if reason.is_some() {
                "eliminated"
            } else {
                "continues"
            }
            .into(),
            reason,
            tie_break: tie,
        }
    };
    let mut out = Vec::with_capacity(teams.len());
    for (r, s) in eligible.iter().enumerate() {
        let tied = eligible
            .iter()
            .any(|o| o.team != s.team && o.exact == s.exact);
        let tie = tied.then(|| {
            "the exact score equals another eligible team's: ordered by the components' exact points in the gate's order, then by consortium id".to_owned()
        });
        let reason = (r >= cut).then(|| {
            format!(
                "rank: {} of {n} eligible teams with score {}; the gate eliminates the lowest {planned}",
                r + 1,
                decimal::format(s.total, POINT_SCALE)
            )
        });
        out.push(result(s, Some(r), reason, tie));
    }
    for s in &ineligible {
        let reason = format!("ineligible: {}", s.failed.join("; "));
        out.push(result(s, None, Some(reason), None));
    }
    Ok(out)
}

/// A team's own result as the team may read it: nothing that tells it about the other
/// teams. The staff's text says how many teams were eligible (so, how many were not) and a
/// tie-break says another team scored exactly the same; the team gets neither: a rank
/// reason without counts, no tie-break. Its own ineligibility grounds are its own and stay.
pub fn for_the_team(mut r: dto::TeamResult, planned: i32) -> dto::TeamResult {
    if r.reason.as_deref().is_some_and(|x| x.starts_with("rank:")) {
        r.reason = Some(format!(
            "rank: below the cut; the gate eliminates its {planned} lowest-ranked eligible team(s)"
        ));
    }
    r.tie_break = None;
    r
}

#[cfg(test)]
mod tests;
