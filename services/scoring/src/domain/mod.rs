//! Scoring's rules as plain functions: values in, values out, no I/O. The handlers and
//! consumers do the I/O around them.
//!
//! Scores are whole points per criterion; everything derived from them (normalised totals,
//! consensus, ranking, selection) is kept in hundredths of a point ([`Centi`]) so that
//! comparisons and sums are exact and a ranking never depends on float rounding.

pub mod assign;
pub mod config;
pub mod decision;
pub mod panel;
pub mod ranking;
pub mod rubric;
pub mod selection;
pub mod stage;

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
        // unsigned_abs: `abs` of i64::MIN overflows.
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::Centi;

    #[test]
    fn centi_shows_points_with_two_decimals_and_the_sign() {
        assert_eq!(Centi::from_points(40), Centi(4000));
        assert_eq!(Centi::from_points(-3), Centi(-300));
        assert_eq!(Centi(2350).to_string(), "23.50");
        assert_eq!(Centi(7).to_string(), "0.07");
        assert_eq!(Centi(0).to_string(), "0.00");
        assert_eq!(Centi(-5).to_string(), "-0.05");
        assert_eq!(Centi(-2350).to_string(), "-23.50");
        assert_eq!(Centi(-100).to_string(), "-1.00");
        assert_eq!(Centi(i64::MIN).to_string(), "-92233720368547758.08");
        assert_eq!(Centi(i64::MAX).to_string(), "92233720368547758.07");
    }
}
