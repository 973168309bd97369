//! Matching researchers to positions: a transparent integer fit score, and researcher-
//! proposing deferred acceptance with position counts (Gale and Shapley's algorithm in its
//! "hospitals/residents" form).
//!
//! - A researcher ranks the positions they apply to (their preference list, most wanted
//!   first). Only listed positions are acceptable to them.
//! - A position ranks exactly the researchers who applied to it, by fit score (higher
//!   first), ties broken by the researcher's id (lower first), so every preference is
//!   strict and every run is deterministic.
//! - The result is stable (no researcher and position both prefer each other to what they
//!   got) and the best stable matching for every researcher at once (researcher-optimal);
//!   the property tests below check both against brute force on small instances.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use uuid::Uuid;

/// The fit score's weights (programme configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitWeights {
    /// Points per required skill the researcher has.
    pub per_skill: i64,
    /// Points when the researcher's field is the position's.
    pub same_field: i64,
    /// Points for the exact seniority; each level of difference costs `seniority_step`,
    /// never below zero.
    pub seniority_exact: i64,
    pub seniority_step: i64,
}

impl Default for FitWeights {
    fn default() -> Self {
        Self {
            per_skill: 10,
            same_field: 20,
            seniority_exact: 15,
            seniority_step: 5,
        }
    }
}

/// A position as matching sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub id: Uuid,
    pub field: String,
    pub required_skills: BTreeSet<String>,
    /// Seniority as a level (see [`seniority_level`]).
    pub seniority: i64,
    /// Places to fill in this round (1 or more).
    pub count: usize,
}

/// A researcher as matching sees it: their preference list holds indexes into the round's
/// positions, most wanted first, each at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Researcher {
    pub id: Uuid,
    pub field: String,
    pub skills: BTreeSet<String>,
    pub seniority: i64,
    pub preferences: Vec<usize>,
}

/// The fit score of a researcher for a position, by component (all whole points).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fit {
    pub skills: i64,
    pub field: i64,
    pub seniority: i64,
    pub total: i64,
}

/// The seniority levels a position or profile may name.
pub const SENIORITIES: [&str; 5] = ["junior", "mid", "senior", "lead", "principal"];

pub fn seniority_level(s: &str) -> Option<i64> {
    SENIORITIES.iter().position(|x| *x == s).map(|i| i as i64)
}

/// Saturating: the weights are bounded by the terms' validation, and a skill list by the
/// request limits, so nothing near `i64::MAX` is reachable; saturating keeps it panic-free.
pub fn fit(p: &Position, r: &Researcher, w: &FitWeights) -> Fit {
    let overlap = p.required_skills.intersection(&r.skills).count() as i64;
    let skills = w.per_skill.saturating_mul(overlap);
    let field = if p.field == r.field { w.same_field } else { 0 };
    let diff = (p.seniority - r.seniority).abs();
    let seniority = w
        .seniority_exact
        .saturating_sub(w.seniority_step.saturating_mul(diff))
        .max(0);
    Fit {
        skills,
        field,
        seniority,
        total: skills.saturating_add(field).saturating_add(seniority),
    }
}

/// One proposed match with its explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub researcher: usize,
    pub position: usize,
    pub fit: Fit,
    /// Where the researcher ranked the position (1 = first choice).
    pub researcher_rank: usize,
    /// Where the position ranked the researcher among its applicants (1 = best fit).
    pub position_rank: usize,
    /// How many researchers applied to the position.
    pub applicants: usize,
}

/// How a position orders two applicants: lower key is better.
type Key = (Reverse<i64>, Uuid);

fn key(
    positions: &[Position],
    researchers: &[Researcher],
    w: &FitWeights,
    p: usize,
    r: usize,
) -> Key {
    (
        Reverse(fit(&positions[p], &researchers[r], w).total),
        researchers[r].id,
    )
}

/// Researcher-proposing deferred acceptance. Preference entries pointing at no position are
/// ignored (the store validates them before). Returns the proposals ordered by position, then
/// by the position's rank of the researcher.
pub fn deferred_acceptance(
    positions: &[Position],
    researchers: &[Researcher],
    w: &FitWeights,
) -> Vec<Proposal> {
    let prefs: Vec<Vec<usize>> = researchers
        .iter()
        .map(|r| {
            let mut seen = BTreeSet::new();
            r.preferences
                .iter()
                .copied()
                .filter(|&p| p < positions.len() && seen.insert(p))
                .collect()
        })
        .collect();
    // The fit of every (applicant, position) pair, computed once.
    let mut keys: HashMap<(usize, usize), Key> = HashMap::new();
    for (r, list) in prefs.iter().enumerate() {
        for &p in list {
            keys.insert((p, r), key(positions, researchers, w, p, r));
        }
    }
    let mut next = vec![0usize; researchers.len()];
    let mut held: Vec<BTreeSet<(Key, usize)>> = vec![BTreeSet::new(); positions.len()];
    let mut free: VecDeque<usize> = (0..researchers.len()).collect();
    while let Some(r) = free.pop_front() {
        let Some(&p) = prefs[r].get(next[r]) else {
            continue; // exhausted their list: unmatched
        };
        next[r] += 1;
        if positions[p].count == 0 {
            free.push_back(r);
            continue;
        }
        held[p].insert((keys[&(p, r)], r));
        if held[p].len() > positions[p].count {
            if let Some(worst) = held[p].pop_last() {
                free.push_back(worst.1);
            }
        }
    }
    let mut out = Vec::new();
    for (p, set) in held.iter().enumerate() {
        let mut applicants: Vec<Key> = keys
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|(_, k)| *k)
            .collect();
        applicants.sort();
        for (k, r) in set {
            out.push(Proposal {
                researcher: *r,
                position: p,
                fit: fit(&positions[p], &researchers[*r], w),
                researcher_rank: prefs[*r].iter().position(|&q| q == p).unwrap_or(0) + 1,
                position_rank: applicants.partition_point(|a| a < k) + 1,
                applicants: applicants.len(),
            });
        }
    }
    out
}

/// A blocking pair of an assignment (`assigned[r]` = the researcher's position), if any:
/// a researcher and a position on their list that both prefer each other to what they
/// have. Used by the tests and by callers that want to verify a stored round.
pub fn blocking_pair(
    positions: &[Position],
    researchers: &[Researcher],
    w: &FitWeights,
    assigned: &[Option<usize>],
) -> Option<(usize, usize)> {
    for (r, res) in researchers.iter().enumerate() {
        for &p in &res.preferences {
            if p >= positions.len() {
                continue;
            }
            if assigned[r] == Some(p) {
                break; // everything after is worse for r
            }
            let held: Vec<usize> = (0..researchers.len())
                .filter(|&q| assigned[q] == Some(p))
                .collect();
            let k = key(positions, researchers, w, p, r);
            let wants = held.len() < positions[p].count
                || held
                    .iter()
                    .any(|&q| key(positions, researchers, w, p, q) > k);
            if wants {
                return Some((r, p));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
