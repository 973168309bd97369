//! A call's evaluation settings: checked once, then turned into the domain's types.

use super::ranking::TieBreak;
use super::rubric::{Criterion, Rubric, Violation};
use super::selection::Constraint;
use kaip_contracts::dto::scoring::EvaluationConfig;

fn violation(field: impl Into<String>, rule: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        rule: rule.into(),
    }
}

pub fn rubric(config: &EvaluationConfig) -> Rubric {
    Rubric {
        criteria: config
            .criteria
            .iter()
            .map(|c| Criterion {
                key: c.key.clone(),
                name: c.name.clone(),
                max_points: c.max_points,
                min_points: c.min_points,
            })
            .collect(),
        min_total: config.min_total,
    }
}

/// The declared tie-break rules; when none are declared, the criteria in their configured
/// order (merit, never the order of arrival). A tie they leave is for an officer to decide.
pub fn tie_break(config: &EvaluationConfig) -> Vec<TieBreak> {
    if config.tie_break.is_empty() {
        return config
            .criteria
            .iter()
            .map(|c| TieBreak::Criterion(c.key.clone()))
            .collect();
    }
    config
        .tie_break
        .iter()
        .filter_map(|t| match t.strip_prefix("criterion:") {
            Some(key) => Some(TieBreak::Criterion(key.to_owned())),
            None if t == "earlier_submission" => Some(TieBreak::EarlierSubmission),
            None => None,
        })
        .collect()
}

pub fn constraints(config: &EvaluationConfig) -> Vec<Constraint> {
    let mut out = Vec::new();
    for c in &config.constraints {
        if let Some(n) = c.at_least {
            out.push(Constraint::AtLeast {
                category: c.category.clone(),
                count: n as usize,
            });
        }
        if let Some(m) = c.at_most {
            out.push(Constraint::AtMost {
                category: c.category.clone(),
                count: m as usize,
            });
        }
    }
    out
}

const ORG_TYPES: [&str; 6] = [
    "large_enterprise",
    "mid_size",
    "sme",
    "startup",
    "university",
    "research_institute",
];

fn valid_category(c: &str) -> bool {
    c == "sme_or_academia_led"
        || c == "track:general"
        || c == "track:industry_specialised"
        || c.strip_prefix("industry:").is_some_and(|i| {
            !i.is_empty()
                && i.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        })
        || c.strip_prefix("lead:")
            .is_some_and(|t| ORG_TYPES.contains(&t))
        || c.strip_prefix("includes:")
            .is_some_and(|t| ORG_TYPES.contains(&t))
}

pub fn validate(config: &EvaluationConfig) -> Result<(), Violation> {
    rubric(config).validate()?;
    if config.stages.is_empty() {
        return Err(violation(
            "stages",
            "at least one stage (e.g. written review)",
        ));
    }
    for (i, s) in config.stages.iter().enumerate() {
        if s.name.trim().is_empty() {
            return Err(violation(format!("stages[{i}].name"), "must not be empty"));
        }
        if s.keep_top == Some(0) {
            return Err(violation(
                format!("stages[{i}].keep_top"),
                "must be at least 1",
            ));
        }
    }
    if config.reviewers_per_proposal < 1 {
        return Err(violation("reviewers_per_proposal", "must be at least 1"));
    }
    if config.max_assignments_per_reviewer < 1 {
        return Err(violation(
            "max_assignments_per_reviewer",
            "must be at least 1",
        ));
    }
    for (i, t) in config.tie_break.iter().enumerate() {
        let ok = t == "earlier_submission"
            || t.strip_prefix("criterion:")
                .is_some_and(|k| config.criteria.iter().any(|c| c.key == k));
        if !ok {
            return Err(violation(
                format!("tie_break[{i}]"),
                format!("`{t}` is neither `earlier_submission` nor `criterion:<a criterion key>`"),
            ));
        }
    }
    for (i, c) in config.constraints.iter().enumerate() {
        if !valid_category(&c.category) {
            return Err(violation(
                format!("constraints[{i}].category"),
                "must be `sme_or_academia_led`, `lead:<org type>`, `includes:<org type>`, `track:general`, `track:industry_specialised` or `industry:<industry>`",
            ));
        }
        if c.at_least.is_none() && c.at_most.is_none() {
            return Err(violation(
                format!("constraints[{i}]"),
                "needs at_least, at_most or both",
            ));
        }
        if let (Some(n), Some(m)) = (c.at_least, c.at_most) {
            if n > m {
                return Err(violation(
                    format!("constraints[{i}]"),
                    "at_least must not exceed at_most",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaip_contracts::dto::scoring::SlotConstraint;

    #[test]
    fn the_default_is_valid_and_converts() {
        let c = EvaluationConfig::sovereign_ai_default();
        assert!(validate(&c).is_ok());
        assert_eq!(rubric(&c).max_total(), 100);
        assert_eq!(
            tie_break(&c),
            vec![
                TieBreak::Criterion("technology".into()),
                TieBreak::Criterion("strategy".into()),
                TieBreak::Criterion("ecosystem".into()),
            ],
            "the default is merit: the criteria in their order"
        );
        let undeclared = with(|c| c.tie_break.clear());
        assert_eq!(
            tie_break(&undeclared),
            tie_break(&c),
            "no declared rule means the criteria in their order"
        );
        assert_eq!(
            constraints(&c),
            vec![Constraint::AtLeast {
                category: "sme_or_academia_led".into(),
                count: 1
            }]
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut c = EvaluationConfig::sovereign_ai_default();
        c.tie_break = vec!["criterion:vibes".into()];
        assert_eq!(validate(&c).unwrap_err().field, "tie_break[0]");
        let mut c = EvaluationConfig::sovereign_ai_default();
        c.constraints = vec![SlotConstraint {
            category: "lead:robot".into(),
            at_least: Some(1),
            at_most: None,
        }];
        assert_eq!(validate(&c).unwrap_err().field, "constraints[0].category");
        let mut c = EvaluationConfig::sovereign_ai_default();
        c.stages.clear();
        assert_eq!(validate(&c).unwrap_err().field, "stages");
        let mut c = EvaluationConfig::sovereign_ai_default();
        c.criteria[0].max_points = 0;
        assert_eq!(validate(&c).unwrap_err().field, "criteria[0].max_points");
    }

    fn with(edit: impl FnOnce(&mut EvaluationConfig)) -> EvaluationConfig {
        let mut c = EvaluationConfig::sovereign_ai_default();
        edit(&mut c);
        c
    }

    fn refused(c: &EvaluationConfig) -> (String, String) {
        let v = validate(c).expect_err("refused");
        (v.field, v.rule)
    }

    fn slot(category: &str, at_least: Option<u32>, at_most: Option<u32>) -> SlotConstraint {
        SlotConstraint {
            category: category.into(),
            at_least,
            at_most,
        }
    }

    #[test]
    fn conversions_keep_every_rule_and_drop_nothing_silently() {
        let c = with(|c| {
            c.tie_break = vec![
                "earlier_submission".into(),
                "criterion:strategy".into(),
                "whim".into(),
            ];
            c.constraints = vec![slot("lead:sme", Some(1), Some(2))];
            c.criteria[0].min_points = Some(24);
            c.min_total = Some(60);
        });
        assert_eq!(
            tie_break(&c),
            vec![
                TieBreak::EarlierSubmission,
                TieBreak::Criterion("strategy".into())
            ],
            "an unknown rule is not taken for another"
        );
        assert_eq!(
            constraints(&c),
            vec![
                Constraint::AtLeast {
                    category: "lead:sme".into(),
                    count: 1
                },
                Constraint::AtMost {
                    category: "lead:sme".into(),
                    count: 2
                },
            ]
        );
        let r = rubric(&c);
        assert_eq!(r.min_total, Some(60));
        assert_eq!(r.criteria[0].key, "technology");
        assert_eq!(r.criteria[0].name, "Model technology & development");
        assert_eq!(r.criteria[0].max_points, 40);
        assert_eq!(r.criteria[0].min_points, Some(24));
        assert_eq!(r.criteria.len(), 3);
    }

    #[test]
    fn every_category_form_is_accepted_and_nothing_else() {
        for ok in [
            "sme_or_academia_led",
            "track:general",
            "track:industry_specialised",
            "industry:bio",
            "industry:advanced_materials2",
            "lead:large_enterprise",
            "lead:research_institute",
            "includes:university",
            "includes:startup",
        ] {
            assert_eq!(
                validate(&with(|c| c.constraints = vec![slot(ok, Some(1), None)])),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            "",
            "sme",
            "lead:",
            "includes:",
            "lead:robot",
            "includes:robot",
            "member:sme",
            "sme_or_academia_led ",
            "track:",
            "track:bio",
            "industry:",
            "industry:Bio",
            "industry:bio tech",
        ] {
            assert_eq!(
                refused(&with(|c| c.constraints = vec![slot(bad, Some(1), None)])).0,
                "constraints[0].category",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bounds_are_checked_at_their_edges() {
        // Stages: a name, and a keep_top of at least 1.
        assert_eq!(
            refused(&with(|c| c.stages[1].name = "  ".into())).0,
            "stages[1].name"
        );
        assert_eq!(
            refused(&with(|c| c.stages[0].keep_top = Some(0))),
            ("stages[0].keep_top".into(), "must be at least 1".into())
        );
        assert_eq!(validate(&with(|c| c.stages[0].keep_top = Some(1))), Ok(()));
        assert_eq!(validate(&with(|c| c.stages[0].keep_top = None)), Ok(()));
        // At least one reviewer per proposal, and room for one assignment each.
        assert_eq!(
            refused(&with(|c| c.reviewers_per_proposal = 0)),
            ("reviewers_per_proposal".into(), "must be at least 1".into())
        );
        assert_eq!(validate(&with(|c| c.reviewers_per_proposal = 1)), Ok(()));
        assert_eq!(
            refused(&with(|c| c.max_assignments_per_reviewer = 0)),
            (
                "max_assignments_per_reviewer".into(),
                "must be at least 1".into()
            )
        );
        assert_eq!(
            validate(&with(|c| c.max_assignments_per_reviewer = 1)),
            Ok(())
        );
        // A slot constraint needs a bound; at_least may equal at_most but not exceed it.
        assert_eq!(
            refused(&with(|c| c.constraints = vec![slot("lead:sme", None, None)])),
            (
                "constraints[0]".into(),
                "needs at_least, at_most or both".into()
            )
        );
        assert_eq!(
            validate(&with(
                |c| c.constraints = vec![slot("lead:sme", None, Some(0))]
            )),
            Ok(())
        );
        assert_eq!(
            validate(&with(
                |c| c.constraints = vec![slot("lead:sme", Some(2), Some(2))]
            )),
            Ok(())
        );
        assert_eq!(
            refused(&with(
                |c| c.constraints = vec![slot("lead:sme", Some(3), Some(2))]
            )),
            (
                "constraints[0]".into(),
                "at_least must not exceed at_most".into()
            )
        );
        // Later entries are named by their own index.
        assert_eq!(
            refused(&with(|c| {
                c.constraints = vec![slot("lead:sme", Some(1), None), slot("x", Some(1), None)]
            }))
            .0,
            "constraints[1].category"
        );
    }

    #[test]
    fn tie_breaks_name_a_known_rule() {
        assert_eq!(
            validate(&with(
                |c| c.tie_break = vec!["earlier_submission".into(), "criterion:ecosystem".into()]
            )),
            Ok(())
        );
        assert_eq!(validate(&with(|c| c.tie_break = vec![])), Ok(()));
        for bad in ["earlier", "criterion:", "ecosystem", "criterion:ecosystem "] {
            let (field, rule) = refused(&with(|c| {
                c.tie_break = vec!["earlier_submission".into(), bad.into()]
            }));
            assert_eq!(field, "tie_break[1]", "{bad:?}");
            assert!(rule.contains(&format!("`{bad}`")), "{rule}");
        }
    }

    #[test]
    fn the_rubric_is_checked_first() {
        assert_eq!(
            refused(&with(|c| {
                c.criteria.clear();
                c.stages.clear();
            })),
            (
                "criteria".into(),
                "a rubric needs at least one criterion".into()
            )
        );
    }
}
