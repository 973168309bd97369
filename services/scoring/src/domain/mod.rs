//! Scoring's rules as plain functions: values in, values out, no I/O. The handlers and
//! consumers do the I/O around them.
//!
//! Scores are whole points per criterion; everything derived from them (normalised totals,
//! consensus, ranking, selection) is kept in hundredths of a point ([`Centi`]) so that
//! comparisons and sums are exact and a ranking never depends on float rounding.

pub mod assign;
pub mod config;
pub mod ranking;
pub mod rubric;
pub mod selection;

/// Hundredths of a point: 40 points = `Centi(4000)`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Centi(pub i64);

impl Centi {
    pub fn from_points(points: i64) -> Self {
        Centi(points * 100)
    }
}

impl std::fmt::Display for Centi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", self.0.abs() / 100, self.0.abs() % 100)
    }
}
