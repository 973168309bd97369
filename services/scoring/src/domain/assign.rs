//! Reviewer assignment with conflicts of interest, and the categories a consortium falls in.

use kaip_contracts::dto::intake::{Member, MemberRole, OrgType, Portfolio, TrackKind};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewerInfo {
    pub id: String,
    pub organisation: String,
    pub brn: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseInfo {
    pub case_id: Uuid,
    pub proposal_id: Uuid,
    pub consortium_id: Uuid,
    pub members: Vec<Member>,
}

fn same_org(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// Why `reviewer` may not review `case`, if they may not: their organisation is in the
/// consortium (same registration number, or same name), or they declared a conflict.
pub fn conflict(
    reviewer: &ReviewerInfo,
    case: &CaseInfo,
    declared: &BTreeMap<(String, Uuid), String>,
) -> Option<String> {
    for m in &case.members {
        let by_number = reviewer
            .brn
            .as_deref()
            .is_some_and(|b| b == m.business_registration_number);
        if by_number || same_org(&reviewer.organisation, &m.name) {
            let role = if m.role == MemberRole::Lead {
                "lead"
            } else {
                "a partner"
            };
            return Some(format!(
                "the reviewer's organisation ({}) is {role} of the consortium",
                m.name
            ));
        }
    }
    declared
        .get(&(reviewer.id.clone(), case.consortium_id))
        .map(|reason| format!("declared conflict: {reason}"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub assign: Vec<(String, Uuid)>,
    pub blocked: Vec<(String, Uuid, String)>,
}

/// Assigns `per_case` reviewers to every case, never one with a conflict, at most `cap`
/// assignments per reviewer (counting `existing` load), spreading the load evenly. Fails
/// naming the first proposal that cannot get enough reviewers.
pub fn plan(
    cases: &[CaseInfo],
    reviewers: &[ReviewerInfo],
    declared: &BTreeMap<(String, Uuid), String>,
    existing: &BTreeMap<String, usize>,
    per_case: usize,
    cap: usize,
) -> Result<Plan, String> {
    let mut load: BTreeMap<&str, usize> = reviewers
        .iter()
        .map(|r| (r.id.as_str(), existing.get(&r.id).copied().unwrap_or(0)))
        .collect();
    let mut out = Plan {
        assign: Vec::new(),
        blocked: Vec::new(),
    };
    for case in cases {
        let mut eligible: Vec<&ReviewerInfo> = Vec::new();
        for r in reviewers {
            match conflict(r, case, declared) {
                Some(reason) => out.blocked.push((r.id.clone(), case.case_id, reason)),
                None => eligible.push(r),
            }
        }
        eligible.retain(|r| load[r.id.as_str()] < cap);
        eligible.sort_by(|a, b| {
            load[a.id.as_str()]
                .cmp(&load[b.id.as_str()])
                .then_with(|| a.id.cmp(&b.id))
        });
        if eligible.len() < per_case {
            return Err(format!(
                "proposal {} can get only {} of the {per_case} reviewers it needs (conflicts of interest or the cap of {cap} per reviewer): register more reviewers or raise the cap",
                case.proposal_id,
                eligible.len()
            ));
        }
        for r in eligible.into_iter().take(per_case) {
            *load.entry(r.id.as_str()).or_default() += 1;
            out.assign.push((r.id.clone(), case.case_id));
        }
    }
    Ok(out)
}

/// The portfolio categories a consortium falls in.
/// The categories a portfolio declaration puts a proposal in: `track:general` or
/// `track:industry_specialised` and `industry:<industry>`.
pub fn track_categories(portfolio: Option<&Portfolio>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(p) = portfolio {
        match p.track.kind {
            TrackKind::General => {
                out.insert("track:general".to_owned());
            }
            TrackKind::IndustrySpecialised => {
                out.insert("track:industry_specialised".to_owned());
                if let Some(i) = &p.track.industry {
                    out.insert(format!("industry:{i}"));
                }
            }
        }
    }
    out
}

pub fn categories(members: &[Member]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in members {
        out.insert(format!("includes:{}", m.org_type.as_str()));
        if m.role == MemberRole::Lead {
            out.insert(format!("lead:{}", m.org_type.as_str()));
            if matches!(
                m.org_type,
                OrgType::Sme | OrgType::Startup | OrgType::University | OrgType::ResearchInstitute
            ) {
                out.insert("sme_or_academia_led".to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, brn: &str, t: OrgType, role: MemberRole) -> Member {
        Member {
            name: name.into(),
            org_type: t,
            business_registration_number: brn.into(),
            role,
        }
    }

    fn case(n: u128, members: Vec<Member>) -> CaseInfo {
        CaseInfo {
            case_id: Uuid::from_u128(n),
            proposal_id: Uuid::from_u128(100 + n),
            consortium_id: Uuid::from_u128(200 + n),
            members,
        }
    }

    fn reviewer(id: &str, org: &str, brn: Option<&str>) -> ReviewerInfo {
        ReviewerInfo {
            id: id.into(),
            organisation: org.into(),
            brn: brn.map(Into::into),
        }
    }

    #[test]
    fn partners_and_declared_conflicts_are_kept_off() {
        let c = case(
            1,
            vec![
                m(
                    "LG AI Research",
                    "111",
                    OrgType::LargeEnterprise,
                    MemberRole::Lead,
                ),
                m("KAIST", "222", OrgType::University, MemberRole::Partner),
            ],
        );
        let none = BTreeMap::new();
        assert!(conflict(&reviewer("r1", "K.A.I.S.T.", None), &c, &none)
            .unwrap()
            .contains("is a partner"));
        assert!(
            conflict(&reviewer("r2", "Other name", Some("111")), &c, &none)
                .unwrap()
                .contains("is lead")
        );
        assert_eq!(
            conflict(&reviewer("r3", "SNU", Some("333")), &c, &none),
            None
        );
        let declared: BTreeMap<(String, Uuid), String> = [(
            ("r3".to_string(), c.consortium_id),
            "former advisor".to_string(),
        )]
        .into_iter()
        .collect();
        assert_eq!(
            conflict(&reviewer("r3", "SNU", None), &c, &declared).as_deref(),
            Some("declared conflict: former advisor")
        );
    }

    #[test]
    fn plans_spread_load_and_respect_conflicts_and_caps() {
        let cases: Vec<CaseInfo> = (0..6)
            .map(|i| {
                case(
                    i,
                    vec![m(
                        &format!("Org {i}"),
                        &format!("{i}"),
                        OrgType::Sme,
                        MemberRole::Lead,
                    )],
                )
            })
            .collect();
        let reviewers = vec![
            reviewer("a", "Org 0", None),
            reviewer("b", "x", None),
            reviewer("c", "y", None),
            reviewer("d", "z", None),
        ];
        let p = plan(&cases, &reviewers, &BTreeMap::new(), &BTreeMap::new(), 2, 3).unwrap();
        assert_eq!(p.assign.len(), 12);
        assert!(
            !p.assign.contains(&("a".to_string(), Uuid::from_u128(0))),
            "a works at Org 0"
        );
        assert_eq!(
            p.blocked,
            vec![(
                "a".to_string(),
                Uuid::from_u128(0),
                "the reviewer's organisation (Org 0) is lead of the consortium".to_string()
            )]
        );
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        for (r, _) in &p.assign {
            *load.entry(r).or_default() += 1;
        }
        assert!(load.values().all(|&n| n == 3), "{load:?}");
        let err = plan(&cases, &reviewers, &BTreeMap::new(), &BTreeMap::new(), 2, 2).unwrap_err();
        assert!(err.contains("can get only"), "{err}");
    }

    #[test]
    fn categories_follow_the_lead_and_the_members() {
        let c = categories(&[
            m("S", "1", OrgType::Startup, MemberRole::Lead),
            m("U", "2", OrgType::University, MemberRole::Partner),
        ]);
        assert!(
            c.contains("lead:startup")
                && c.contains("includes:university")
                && c.contains("sme_or_academia_led")
        );
        let c = categories(&[m("L", "1", OrgType::LargeEnterprise, MemberRole::Lead)]);
        assert!(!c.contains("sme_or_academia_led"));
    }

    #[test]
    fn a_declared_track_is_a_category() {
        use kaip_contracts::dto::intake::{Independence, Openness, Track};
        let declared = |kind, industry: Option<&str>| Portfolio {
            track: Track {
                kind,
                industry: industry.map(String::from),
            },
            openness: Openness {
                releases: vec![],
                licence: None,
            },
            independence: Independence {
                from_scratch: true,
                builds_on: vec![],
            },
        };
        let bio = declared(TrackKind::IndustrySpecialised, Some("bio"));
        assert_eq!(
            track_categories(Some(&bio)),
            ["industry:bio", "track:industry_specialised"]
                .map(String::from)
                .into_iter()
                .collect()
        );
        assert_eq!(
            track_categories(Some(&declared(TrackKind::General, None))),
            ["track:general".to_string()].into_iter().collect()
        );
        assert!(track_categories(None).is_empty());
    }
}
