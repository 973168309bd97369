//! Reviewer assignment with conflicts of interest, and the categories a consortium falls in.

use kaip_contracts::dto::intake::{Member, MemberRole, OrgType, Portfolio, TrackKind};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The registered reviewers and the declared conflicts by (reviewer, consortium), with
/// their reason: what the conflict rules read.
pub type Pool = (Vec<ReviewerInfo>, BTreeMap<(String, Uuid), String>);

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

/// A registration number as it is compared: normalised when it is a valid one (`3148200017`
/// and `314-82-00017` are one organisation), as typed otherwise (numbers stored before the
/// rule).
fn brn_key(raw: &str) -> String {
    kaip_contracts::brn::normalise(raw).unwrap_or_else(|| raw.trim().to_owned())
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
            .is_some_and(|b| brn_key(b) == brn_key(&m.business_registration_number));
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
    /// Cases that could not get all the reviewers they need: (case, reviewers it has with
    /// this plan, reviewers it needs).
    pub shortfalls: Vec<(Uuid, usize, usize)>,
}

/// What a stage already has: each reviewer's load, and per case the reviewers already on it
/// (void assignments included: a reviewer taken off a case is not put back on it) and how
/// many of them still count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    pub load: BTreeMap<String, usize>,
    pub on_case: BTreeMap<Uuid, BTreeSet<String>>,
    pub active: BTreeMap<Uuid, usize>,
}

/// Assigns reviewers to every case until it has `per_case` that count, never one with a
/// conflict or one already on it, at most `cap` assignments per reviewer (counting the
/// existing load), spreading the load evenly. A case that cannot be filled is a shortfall
/// (the caller decides whether that refuses the whole plan).
pub fn plan(
    cases: &[CaseInfo],
    reviewers: &[ReviewerInfo],
    declared: &BTreeMap<(String, Uuid), String>,
    existing: &Existing,
    per_case: usize,
    cap: usize,
) -> Plan {
    let mut load: BTreeMap<&str, usize> = reviewers
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                existing.load.get(&r.id).copied().unwrap_or(0),
            )
        })
        .collect();
    let mut out = Plan {
        assign: Vec::new(),
        blocked: Vec::new(),
        shortfalls: Vec::new(),
    };
    let none = BTreeSet::new();
    for case in cases {
        let taken = existing.on_case.get(&case.case_id).unwrap_or(&none);
        let have = existing.active.get(&case.case_id).copied().unwrap_or(0);
        let needed = per_case.saturating_sub(have);
        let mut eligible: Vec<&ReviewerInfo> = Vec::new();
        for r in reviewers {
            match conflict(r, case, declared) {
                Some(reason) => out.blocked.push((r.id.clone(), case.case_id, reason)),
                None if !taken.contains(&r.id) => eligible.push(r),
                None => {}
            }
        }
        eligible.retain(|r| load[r.id.as_str()] < cap);
        eligible.sort_by(|a, b| {
            load[a.id.as_str()]
                .cmp(&load[b.id.as_str()])
                .then_with(|| a.id.cmp(&b.id))
        });
        if eligible.len() < needed {
            out.shortfalls
                .push((case.case_id, have + eligible.len(), per_case));
        }
        for r in eligible.into_iter().take(needed) {
            *load.entry(r.id.as_str()).or_default() += 1;
            out.assign.push((r.id.clone(), case.case_id));
        }
    }
    out
}

/// Why a plan's shortfall refuses an assignment, naming the first proposal it leaves short.
pub fn shortfall_message(proposal: Uuid, got: usize, needed: usize, cap: usize) -> String {
    format!(
        "proposal {proposal} can get only {got} of the {needed} reviewers it needs (conflicts of interest or the cap of {cap} per reviewer): register more reviewers or raise the cap"
    )
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
        let p = plan(
            &cases,
            &reviewers,
            &BTreeMap::new(),
            &Existing::default(),
            2,
            3,
        );
        assert!(p.shortfalls.is_empty());
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
        let short = plan(
            &cases,
            &reviewers,
            &BTreeMap::new(),
            &Existing::default(),
            2,
            2,
        );
        assert!(!short.shortfalls.is_empty());
        assert!(short
            .shortfalls
            .iter()
            .all(|&(_, got, need)| got < need && need == 2));
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
    fn registration_numbers_are_one_organisation_however_typed() {
        // (member's number as stored, reviewer's as stored, the same organisation?). Numbers
        // stored before the rule keep their typing, so every pair differs as a string: a
        // comparison as typed fails the first three; one that ignores the check digit (or
        // compares digits loosely) fails the last two.
        let pairs = [
            ("314-82-00017", "3148200017", true),
            ("3148200017", "314-82-00017", true),
            ("3148200017", " 314-82-00017 ", true),
            ("314-82-00017", "3148200018", false),
            ("314-82-00017", "314820001", false),
        ];
        let none = BTreeMap::new();
        for (member, reviewer_brn, same) in pairs {
            let c = case(
                1,
                vec![m("Upstage", member, OrgType::Startup, MemberRole::Lead)],
            );
            let reason = conflict(
                &reviewer("r", "Another name", Some(reviewer_brn)),
                &c,
                &none,
            );
            assert_eq!(
                reason.is_some(),
                same,
                "member {member:?}, reviewer {reviewer_brn:?}: {reason:?}"
            );
            if same {
                assert!(reason.unwrap_or_default().contains("is lead"));
            }
        }
        assert_eq!(brn_key("3148200017"), "314-82-00017");
        assert_eq!(
            brn_key(" 31482-00018 "),
            "31482-00018",
            "invalid: as typed, trimmed"
        );
    }

    #[test]
    fn a_refill_keeps_the_counted_reviewers_and_never_puts_one_back() {
        let c = case(
            1,
            vec![m("Org", "314-82-00017", OrgType::Sme, MemberRole::Lead)],
        );
        let reviewers = vec![
            reviewer("a", "x", None),
            reviewer("b", "y", None),
            reviewer("c", "z", None),
            reviewer("d", "w", None),
        ];
        // `a` was voided off the case, `b` and `c` still count: one more is needed, `d`.
        let existing = Existing {
            load: [
                ("b".to_string(), 1),
                ("c".to_string(), 1),
                ("a".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            on_case: [(
                c.case_id,
                ["a", "b", "c"].into_iter().map(String::from).collect(),
            )]
            .into_iter()
            .collect(),
            active: [(c.case_id, 2)].into_iter().collect(),
        };
        let p = plan(
            std::slice::from_ref(&c),
            &reviewers,
            &BTreeMap::new(),
            &existing,
            3,
            5,
        );
        assert_eq!(p.assign, vec![("d".to_string(), c.case_id)]);
        assert!(p.shortfalls.is_empty());
        // Without `d`, nobody eligible remains: a shortfall of one, nobody assigned twice.
        let p = plan(
            std::slice::from_ref(&c),
            &reviewers[..3],
            &BTreeMap::new(),
            &existing,
            3,
            5,
        );
        assert!(p.assign.is_empty());
        assert_eq!(p.shortfalls, vec![(c.case_id, 2, 3)]);
        assert_eq!(
            shortfall_message(c.proposal_id, 2, 3, 5),
            format!("proposal {} can get only 2 of the 3 reviewers it needs (conflicts of interest or the cap of 5 per reviewer): register more reviewers or raise the cap", c.proposal_id)
        );
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
