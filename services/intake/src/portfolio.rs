//! A proposal's portfolio declaration (track, openness, independence), checked as a plain
//! function: every refusal names the field and the rule.

use crate::domain::Violation;
use kaip_contracts::dto::intake::{Portfolio, TrackKind};

const MAX_NAME: usize = 100;
const MAX_BUILDS_ON: usize = 20;

fn violation(field: &str, rule: impl Into<String>) -> Violation {
    Violation {
        field: format!("portfolio.{field}"),
        rule: rule.into(),
    }
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub fn validate(p: &Portfolio) -> Result<(), Violation> {
    match (p.track.kind, p.track.industry.as_deref()) {
        (TrackKind::General, None) => {}
        (TrackKind::General, Some(_)) => {
            return Err(violation(
                "track.industry",
                "only an industry-specialised track names an industry",
            ))
        }
        (TrackKind::IndustrySpecialised, Some(i)) if is_key(i) => {}
        (TrackKind::IndustrySpecialised, _) => {
            return Err(violation(
                "track.industry",
                "an industry-specialised track names its industry: 1 to 40 lower-case letters, digits or underscores (e.g. `bio`, `materials`)",
            ))
        }
    }
    for (i, a) in p.openness.releases.iter().enumerate() {
        if p.openness.releases[..i].contains(a) {
            return Err(violation(
                &format!("openness.releases[{i}]"),
                "appears twice",
            ));
        }
    }
    let licence = p.openness.licence.as_deref().map(str::trim);
    match (p.openness.releases.is_empty(), licence) {
        (false, None | Some("")) => {
            return Err(violation(
                "openness.licence",
                "is required when anything is released",
            ))
        }
        (true, Some(_)) => {
            return Err(violation(
                "openness.licence",
                "names the licence of what is released: nothing is",
            ))
        }
        (_, Some(l)) if l.chars().count() > MAX_NAME => {
            return Err(violation(
                "openness.licence",
                format!("must be at most {MAX_NAME} characters"),
            ))
        }
        _ => {}
    }
    let builds_on = &p.independence.builds_on;
    if p.independence.from_scratch && !builds_on.is_empty() {
        return Err(violation(
            "independence.builds_on",
            "a model trained from scratch builds on no external model or weights",
        ));
    }
    if !p.independence.from_scratch && builds_on.is_empty() {
        return Err(violation(
            "independence.builds_on",
            "names the external models or weights the model builds on",
        ));
    }
    if builds_on.len() > MAX_BUILDS_ON {
        return Err(violation(
            "independence.builds_on",
            format!("at most {MAX_BUILDS_ON} entries"),
        ));
    }
    for (i, b) in builds_on.iter().enumerate() {
        let field = format!("independence.builds_on[{i}]");
        if b.trim().is_empty() || b.chars().count() > MAX_NAME {
            return Err(violation(
                &field,
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
        if builds_on[..i].iter().any(|x| x.trim() == b.trim()) {
            return Err(violation(&field, "appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaip_contracts::dto::intake::{Artefact, Independence, Openness, Track};

    fn open_general() -> Portfolio {
        Portfolio {
            track: Track {
                kind: TrackKind::General,
                industry: None,
            },
            openness: Openness {
                releases: vec![Artefact::Weights, Artefact::Code],
                licence: Some("Apache-2.0".into()),
            },
            independence: Independence {
                from_scratch: true,
                builds_on: vec![],
            },
        }
    }

    fn refused(edit: impl FnOnce(&mut Portfolio)) -> (String, String) {
        let mut p = open_general();
        edit(&mut p);
        let v = validate(&p).expect_err("refused");
        (v.field, v.rule)
    }

    #[test]
    fn sound_declarations_pass() {
        assert_eq!(validate(&open_general()), Ok(()));
        let mut bio = open_general();
        bio.track = Track {
            kind: TrackKind::IndustrySpecialised,
            industry: Some("bio".into()),
        };
        bio.openness = Openness {
            releases: vec![],
            licence: None,
        };
        bio.independence = Independence {
            from_scratch: false,
            builds_on: vec!["Llama-3-8B weights".into()],
        };
        assert_eq!(validate(&bio), Ok(()));
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(
            refused(|p| p.track.industry = Some("bio".into())).0,
            "portfolio.track.industry"
        );
        for industry in [None, Some(""), Some("Bio"), Some("bio tech")] {
            let (field, rule) = refused(|p| {
                p.track.kind = TrackKind::IndustrySpecialised;
                p.track.industry = industry.map(String::from);
            });
            assert_eq!(field, "portfolio.track.industry", "{industry:?}");
            assert!(rule.starts_with("an industry-specialised track names its industry"));
        }
        assert_eq!(
            refused(|p| p.openness.releases.push(Artefact::Weights)),
            (
                "portfolio.openness.releases[2]".into(),
                "appears twice".into()
            )
        );
        assert_eq!(
            refused(|p| p.openness.licence = Some("  ".into())),
            (
                "portfolio.openness.licence".into(),
                "is required when anything is released".into()
            )
        );
        assert_eq!(
            refused(|p| p.openness.releases.clear()).0,
            "portfolio.openness.licence"
        );
        assert_eq!(
            refused(|p| p.openness.licence = Some("x".repeat(101))).1,
            "must be at most 100 characters"
        );
        assert_eq!(
            refused(|p| p.independence.builds_on = vec!["GPT-2".into()]).1,
            "a model trained from scratch builds on no external model or weights"
        );
        assert_eq!(
            refused(|p| p.independence.from_scratch = false).1,
            "names the external models or weights the model builds on"
        );
        assert_eq!(
            refused(|p| {
                p.independence.from_scratch = false;
                p.independence.builds_on = vec!["a".into(), " a".into()];
            }),
            (
                "portfolio.independence.builds_on[1]".into(),
                "appears twice".into()
            )
        );
        assert_eq!(
            refused(|p| {
                p.independence.from_scratch = false;
                p.independence.builds_on = vec![" ".into()];
            })
            .0,
            "portfolio.independence.builds_on[0]"
        );
        assert_eq!(
            refused(|p| {
                p.independence.from_scratch = false;
                p.independence.builds_on = (0..21).map(|i| format!("m{i}")).collect();
            })
            .1,
            "at most 20 entries"
        );
    }
}
