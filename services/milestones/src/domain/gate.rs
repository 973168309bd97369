//! A stage gate's arithmetic: the components and their weights, each component's
//! normalisation, the exact gate score, the ranking with its tie rule, and who is
//! eliminated (every ineligible team, whatever its score, and the lowest-ranked eligible
//! teams up to the planned number).
//!
//! Exactness: inputs are integers of ten-thousandths ([`INPUT_SCALE`]); a component's
//! points are `weight × normalised value`, computed in i128 and rounded **down** to a
//! nano-point ([`POINT_SCALE`]) once per component; the gate score is the exact sum of
//! those. Nothing is a float, so a decision recomputed from its recorded inputs gives the
//! same numbers on any machine.

use super::decimal;
use super::Invalid;
use kaip_contracts::dto::milestones as dto;
use kaip_contracts::ConsortiumId;
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub key: String,
    pub group: String,
    pub label: String,
    pub weight: i32,
    pub normalisation: Normalisation,
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
        out.push(Component {
            key: c.key.clone(),
            group: c.group.clone(),
            label: c.label.trim().to_owned(),
            weight: c.weight,
            normalisation,
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

/// The points a value earns on a component (nano-points, rounded down), given the lowest
/// and highest value among the teams at the gate.
pub fn points(c: &Component, v: i64, min: i64, max: i64) -> i128 {
    let w = i128::from(c.weight) * NANO;
    match c.normalisation {
        Normalisation::MinMax => {
            if max == min {
                w
            } else {
                (w * i128::from(v - min)).div_euclid(i128::from(max - min))
            }
        }
        Normalisation::OfMax(m) => (w * i128::from(v.min(m))).div_euclid(i128::from(m)),
    }
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
    points: Vec<i128>,
    total: i128,
    values: Vec<i64>,
    failed: Vec<String>,
}

/// Tie rule: higher score first; equal scores are ordered by the components' points in the
/// gate's order (the first component that differs decides), then by consortium id.
fn order(a: &Scored, b: &Scored) -> Ordering {
    b.total
        .cmp(&a.total)
        .then_with(|| b.points.cmp(&a.points))
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
        let mut values = Vec::with_capacity(components.len());
        for c in components {
            let v = t.values.get(&c.key).copied().ok_or_else(|| Missing {
                team: t.team,
                component: c.key.clone(),
            })?;
            values.push(v);
        }
        scored.push(Scored {
            team: t.team,
            points: Vec::new(),
            total: 0,
            values,
            failed: t.failed_rules.clone(),
        });
    }
    for (i, c) in components.iter().enumerate() {
        let min = scored.iter().map(|s| s.values[i]).min().unwrap_or(0);
        let max = scored.iter().map(|s| s.values[i]).max().unwrap_or(0);
        for s in &mut scored {
            let p = points(c, s.values[i], min, max);
            s.points.push(p);
            s.total += p;
        }
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
                .map(|(c, (v, p))| dto::ComponentScore {
                    key: c.key.clone(),
                    value: decimal::format((*v).into(), INPUT_SCALE),
                    points: decimal::format(*p, POINT_SCALE),
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
            .any(|o| o.team != s.team && o.total == s.total);
        let tie = tied.then(|| {
            "the score equals another eligible team's: ordered by the components' points in the gate's order, then by consortium id".to_owned()
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

#[cfg(test)]
mod tests;
