//! A call's rubric and the validation of one reviewer's score sheet against it.

use super::Centi;
use std::collections::{BTreeMap, BTreeSet};

/// One criterion: scored in whole points from 0 to `max_points`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Criterion {
    pub key: String,
    pub name: String,
    pub max_points: i64,
    /// A consensus below this (in points) makes the proposal ineligible for selection.
    pub min_points: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rubric {
    pub criteria: Vec<Criterion>,
    /// A consensus total below this (in points) makes the proposal ineligible.
    pub min_total: Option<i64>,
}

/// A rule a rubric or a score sheet broke, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub rule: String,
}

fn violation(field: impl Into<String>, rule: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        rule: rule.into(),
    }
}

impl Rubric {
    pub fn max_total(&self) -> i64 {
        self.criteria.iter().map(|c| c.max_points).sum()
    }

    pub fn criterion(&self, key: &str) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.key == key)
    }

    pub fn validate(&self) -> Result<(), Violation> {
        if self.criteria.is_empty() {
            return Err(violation(
                "criteria",
                "a rubric needs at least one criterion",
            ));
        }
        let mut keys = BTreeSet::new();
        for (i, c) in self.criteria.iter().enumerate() {
            let field = format!("criteria[{i}]");
            if c.key.trim().is_empty()
                || !c.key.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
            {
                return Err(violation(
                    format!("{field}.key"),
                    "must be lower-case letters and underscores",
                ));
            }
            if !keys.insert(c.key.as_str()) {
                return Err(violation(
                    format!("{field}.key"),
                    format!("`{}` appears twice", c.key),
                ));
            }
            if c.max_points < 1 {
                return Err(violation(
                    format!("{field}.max_points"),
                    "must be at least 1",
                ));
            }
            if let Some(min) = c.min_points {
                if !(0..=c.max_points).contains(&min) {
                    return Err(violation(
                        format!("{field}.min_points"),
                        format!("must be between 0 and {}", c.max_points),
                    ));
                }
            }
        }
        if let Some(min) = self.min_total {
            if !(0..=self.max_total()).contains(&min) {
                return Err(violation(
                    "min_total",
                    format!("must be between 0 and {}", self.max_total()),
                ));
            }
        }
        Ok(())
    }

    /// Checks a reviewer's sheet: every criterion scored once, each within its range, and
    /// nothing else. Returns the total in points.
    pub fn check_sheet(&self, sheet: &BTreeMap<String, i64>) -> Result<i64, Violation> {
        for key in sheet.keys() {
            if self.criterion(key).is_none() {
                let known: Vec<&str> = self.criteria.iter().map(|c| c.key.as_str()).collect();
                return Err(violation(
                    format!("scores.{key}"),
                    format!("is not a criterion of this rubric ({})", known.join(", ")),
                ));
            }
        }
        let mut total = 0;
        for c in &self.criteria {
            let points = *sheet.get(&c.key).ok_or_else(|| {
                violation(
                    format!("scores.{}", c.key),
                    "is missing: every criterion must be scored",
                )
            })?;
            if !(0..=c.max_points).contains(&points) {
                return Err(violation(
                    format!("scores.{}", c.key),
                    format!("must be between 0 and {} points", c.max_points),
                ));
            }
            total += points;
        }
        Ok(total)
    }

    /// Checks a sheet's comments: each on a criterion of this rubric (a comment is
    /// optional). The stage and gate-panel sheets both call it.
    pub fn check_comments(&self, comments: &BTreeMap<String, String>) -> Result<(), Violation> {
        for key in comments.keys() {
            if self.criterion(key).is_none() {
                return Err(violation(
                    format!("comments.{key}"),
                    "is not a criterion of this rubric",
                ));
            }
        }
        Ok(())
    }

    /// Why a proposal with these consensus scores is ineligible, if it is.
    pub fn shortfalls(&self, per_criterion: &BTreeMap<String, Centi>, total: Centi) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.criteria {
            if let (Some(min), Some(got)) = (c.min_points, per_criterion.get(&c.key)) {
                if *got < Centi::from_points(min) {
                    out.push(format!(
                        "{} scored {got}, below its minimum of {min}",
                        c.name
                    ));
                }
            }
        }
        if let Some(min) = self.min_total {
            if total < Centi::from_points(min) {
                out.push(format!("total {total} is below the minimum of {min}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeded programme's 40/30/30 rubric (defined once, in the contracts).
    fn seeded() -> Rubric {
        crate::domain::config::rubric(
            &kaip_contracts::dto::scoring::EvaluationConfig::sovereign_ai_default(),
        )
    }

    fn sheet(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_default_rubric_is_40_30_30() {
        let r = seeded();
        assert!(r.validate().is_ok());
        assert_eq!(r.max_total(), 100);
        assert_eq!(
            r.check_sheet(&sheet(&[
                ("technology", 40),
                ("strategy", 0),
                ("ecosystem", 30)
            ])),
            Ok(70)
        );
    }

    #[test]
    fn bad_sheets_name_the_criterion_and_the_rule() {
        let r = seeded();
        let e = r
            .check_sheet(&sheet(&[
                ("technology", 41),
                ("strategy", 1),
                ("ecosystem", 1),
            ]))
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("scores.technology", "must be between 0 and 40 points")
        );
        let e = r
            .check_sheet(&sheet(&[
                ("technology", -1),
                ("strategy", 1),
                ("ecosystem", 1),
            ]))
            .unwrap_err();
        assert_eq!(e.field, "scores.technology");
        let e = r
            .check_sheet(&sheet(&[("technology", 1), ("strategy", 1)]))
            .unwrap_err();
        assert_eq!(e.field, "scores.ecosystem");
        let e = r
            .check_sheet(&sheet(&[
                ("technology", 1),
                ("strategy", 1),
                ("ecosystem", 1),
                ("vibes", 3),
            ]))
            .unwrap_err();
        assert_eq!(e.field, "scores.vibes");
        assert!(e.rule.contains("technology, strategy, ecosystem"));
    }

    #[test]
    fn bad_rubrics_are_refused() {
        let mut r = seeded();
        r.criteria[1].key = "technology".into();
        assert_eq!(r.validate().unwrap_err().field, "criteria[1].key");
        let mut r = seeded();
        r.criteria[0].min_points = Some(41);
        assert_eq!(r.validate().unwrap_err().field, "criteria[0].min_points");
        let mut r = seeded();
        r.min_total = Some(101);
        assert_eq!(r.validate().unwrap_err().field, "min_total");
        assert_eq!(
            Rubric {
                criteria: vec![],
                min_total: None
            }
            .validate()
            .unwrap_err()
            .field,
            "criteria"
        );
    }

    #[test]
    fn minimums_make_a_proposal_ineligible_with_reasons() {
        let mut r = seeded();
        r.criteria[0].min_points = Some(24);
        r.min_total = Some(60);
        let per: BTreeMap<String, Centi> = [
            ("technology".to_string(), Centi(2350)),
            ("strategy".to_string(), Centi(2000)),
        ]
        .into_iter()
        .collect();
        let reasons = r.shortfalls(&per, Centi(5900));
        assert_eq!(reasons.len(), 2);
        assert!(
            reasons[0].contains("23.50, below its minimum of 24"),
            "{reasons:?}"
        );
        assert!(r.shortfalls(&per, Centi(6000)).len() == 1);
    }

    fn crit(key: &str, max: i64, min: Option<i64>) -> Criterion {
        Criterion {
            key: key.into(),
            name: key.to_uppercase(),
            max_points: max,
            min_points: min,
        }
    }

    #[test]
    fn keys_are_lower_case_letters_and_underscores() {
        let one = |key: &str| Rubric {
            criteria: vec![crit(key, 10, None)],
            min_total: None,
        };
        assert_eq!(one("model_technology").validate(), Ok(()));
        assert_eq!(one("_").validate(), Ok(()));
        for bad in [
            "",
            "  ",
            "Technology",
            "tech2",
            "tech-nology",
            "tech nology",
        ] {
            let v = one(bad).validate().unwrap_err();
            assert_eq!(
                (v.field.as_str(), v.rule.as_str()),
                (
                    "criteria[0].key",
                    "must be lower-case letters and underscores"
                ),
                "{bad:?}"
            );
        }
        let mut twice = seeded();
        twice.criteria[2].key = "technology".into();
        let v = twice.validate().unwrap_err();
        assert_eq!(v.field, "criteria[2].key");
        assert_eq!(v.rule, "`technology` appears twice");
    }

    #[test]
    fn ranges_are_checked_at_their_edges() {
        let r = |max, min, total| Rubric {
            criteria: vec![crit("a", max, min), crit("b", 5, None)],
            min_total: total,
        };
        // A criterion of one point is allowed; of none, not.
        assert_eq!(r(1, None, None).validate(), Ok(()));
        let v = r(0, None, None).validate().unwrap_err();
        assert_eq!(
            (v.field.as_str(), v.rule.as_str()),
            ("criteria[0].max_points", "must be at least 1")
        );
        // A minimum from 0 to the maximum, inclusive.
        assert_eq!(r(10, Some(0), None).validate(), Ok(()));
        assert_eq!(r(10, Some(10), None).validate(), Ok(()));
        for min in [-1, 11] {
            let v = r(10, Some(min), None).validate().unwrap_err();
            assert_eq!(
                (v.field.as_str(), v.rule.as_str()),
                ("criteria[0].min_points", "must be between 0 and 10")
            );
        }
        // A minimum total from 0 to the rubric's maximum (10 + 5), inclusive.
        assert_eq!(r(10, None, Some(0)).validate(), Ok(()));
        assert_eq!(r(10, None, Some(15)).validate(), Ok(()));
        for min in [-1, 16] {
            let v = r(10, None, Some(min)).validate().unwrap_err();
            assert_eq!(
                (v.field.as_str(), v.rule.as_str()),
                ("min_total", "must be between 0 and 15")
            );
        }
        assert_eq!(r(10, None, None).max_total(), 15);
        assert_eq!(
            r(10, None, None).criterion("b").map(|c| c.max_points),
            Some(5)
        );
        assert_eq!(r(10, None, None).criterion("c"), None);
    }

    #[test]
    fn sheets_accept_both_ends_of_each_range_and_total_them() {
        let r = seeded();
        assert_eq!(
            r.check_sheet(&sheet(&[
                ("technology", 0),
                ("strategy", 0),
                ("ecosystem", 0)
            ])),
            Ok(0)
        );
        assert_eq!(
            r.check_sheet(&sheet(&[
                ("technology", 40),
                ("strategy", 30),
                ("ecosystem", 30)
            ])),
            Ok(100)
        );
        assert_eq!(
            r.check_sheet(&sheet(&[
                ("technology", 7),
                ("strategy", 11),
                ("ecosystem", 13)
            ])),
            Ok(31)
        );
        let e = r
            .check_sheet(&sheet(&[
                ("technology", 1),
                ("strategy", 31),
                ("ecosystem", 1),
            ]))
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("scores.strategy", "must be between 0 and 30 points")
        );
        let e = r.check_sheet(&sheet(&[])).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            (
                "scores.technology",
                "is missing: every criterion must be scored"
            )
        );
    }

    #[test]
    fn a_proposal_exactly_at_a_minimum_is_eligible_and_a_hundredth_below_is_not() {
        let mut r = seeded();
        r.criteria[0].min_points = Some(24);
        r.criteria[1].min_points = Some(0);
        r.min_total = Some(60);
        let per = |tech: i64| -> BTreeMap<String, Centi> {
            [
                ("technology".to_string(), Centi(tech)),
                ("strategy".to_string(), Centi(0)),
                ("ecosystem".to_string(), Centi(3000)),
            ]
            .into_iter()
            .collect()
        };
        assert_eq!(r.shortfalls(&per(2400), Centi(6000)), Vec::<String>::new());
        assert_eq!(
            r.shortfalls(&per(2399), Centi(5999)),
            vec![
                "Model technology & development scored 23.99, below its minimum of 24".to_string(),
                "total 59.99 is below the minimum of 60".to_string(),
            ]
        );
        // A criterion without a consensus yet is not reported as short.
        let mut partial = per(0);
        partial.remove("technology");
        assert_eq!(r.shortfalls(&partial, Centi(6000)), Vec::<String>::new());
    }
}
