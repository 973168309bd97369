//! Intake's rules at their edges: every limit is checked on both sides of its boundary, and
//! every refusal names the field and the rule. (Kept apart from `domain.rs`'s own tests so
//! that changes to the rules and to these tests do not collide.)

use super::*;
use chrono::Duration;
use kaip_contracts::dto::intake::{CreateProgramme, GpuRequest, TalentPosition};
use kaip_contracts::Krw;

fn refused<T: std::fmt::Debug>(r: Result<T, Violation>) -> (String, String) {
    let v = r.expect_err("refused");
    (v.field, v.rule)
}

fn field<T: std::fmt::Debug>(r: Result<T, Violation>) -> String {
    refused(r).0
}

fn at(field: &str, rule: &str) -> (String, String) {
    (field.to_owned(), rule.to_owned())
}

#[test]
fn the_document_limit_is_five_mebibytes() {
    // The gateway's and the services' body limits are sized from it, and the refusal quotes it.
    assert_eq!(MAX_DOCUMENT_BYTES, 5_242_880);
}

#[test]
fn text_is_trimmed_before_it_is_measured() {
    let p = |name: String, description: String| CreateProgramme {
        name,
        fiscal_year: 2026,
        description,
    };
    let longest = "x".repeat(MAX_TITLE);
    assert_eq!(
        validate_programme(&p(longest.clone(), String::new())),
        Ok(())
    );
    assert_eq!(
        validate_programme(&p(format!("  {longest}  "), String::new())),
        Ok(()),
        "surrounding blanks do not count"
    );
    assert_eq!(
        refused(validate_programme(&p(format!("{longest}x"), String::new()))),
        at("name", "must be at most 200 characters")
    );
    assert_eq!(
        refused(validate_programme(&p("   ".into(), String::new()))),
        at("name", "must not be empty")
    );
    // Characters, not bytes: 200 Hangul syllables (600 bytes) fit.
    assert_eq!(
        validate_programme(&p("국".repeat(MAX_TITLE), String::new())),
        Ok(())
    );
    assert_eq!(
        validate_programme(&p("AI".into(), "d".repeat(MAX_SUMMARY))),
        Ok(())
    );
    assert_eq!(
        refused(validate_programme(&p(
            "AI".into(),
            "d".repeat(MAX_SUMMARY + 1)
        ))),
        at("description", "must be at most 20000 characters")
    );
}

#[test]
fn fiscal_years_run_from_2000_to_2100() {
    let p = |year| CreateProgramme {
        name: "Sovereign AI".into(),
        fiscal_year: year,
        description: String::new(),
    };
    assert_eq!(validate_programme(&p(2000)), Ok(()));
    assert_eq!(validate_programme(&p(2100)), Ok(()));
    for year in [1999, 2101, 0, -2026, i32::MAX, i32::MIN] {
        assert_eq!(
            refused(validate_programme(&p(year))),
            at("fiscal_year", "must be a year between 2000 and 2100"),
            "{year}"
        );
    }
}

fn open_call(opens: i64, closes: i64, now: DateTime<Utc>) -> OpenCall {
    OpenCall {
        programme_id: None,
        title: "Sovereign AI 2026".into(),
        opens_at: now + Duration::seconds(opens),
        closes_at: now + Duration::seconds(closes),
        eligibility: EligibilityRules::default(),
        required_documents: vec!["proposal".into(), "budget_2026".into()],
        replaces: None,
    }
}

#[test]
fn a_call_window_is_non_empty_and_ends_in_the_future() {
    let now = Utc::now();
    assert_eq!(validate_open_call(&open_call(-60, 1, now), now), Ok(()));
    assert_eq!(
        validate_open_call(&open_call(60, 61, now), now),
        Ok(()),
        "it may open later"
    );
    assert_eq!(
        refused(validate_open_call(&open_call(60, 60, now), now)),
        at("closes_at", "must be after opens_at")
    );
    assert_eq!(
        refused(validate_open_call(&open_call(60, 30, now), now)),
        at("closes_at", "must be after opens_at")
    );
    assert_eq!(
        refused(validate_open_call(&open_call(-60, 0, now), now)),
        at("closes_at", "must be in the future"),
        "closing this very instant is closing in the past"
    );
}

#[test]
fn a_call_caps_are_not_negative() {
    let now = Utc::now();
    let mut call = open_call(0, 3600, now);
    call.eligibility.max_data_budget_krw = Krw(0);
    call.eligibility.max_talent_funding_krw = Krw(0);
    assert_eq!(
        validate_open_call(&call, now),
        Ok(()),
        "a cap of zero is allowed"
    );
    call.eligibility.max_data_budget_krw = Krw(-1);
    assert_eq!(
        refused(validate_open_call(&call, now)),
        at("eligibility.max_data_budget_krw", "must not be negative")
    );
    call.eligibility.max_data_budget_krw = Krw(i64::MAX);
    call.eligibility.max_talent_funding_krw = Krw(-1);
    assert_eq!(
        refused(validate_open_call(&call, now)),
        at("eligibility.max_talent_funding_krw", "must not be negative")
    );
    call.eligibility.max_talent_funding_krw = Krw(i64::MIN);
    assert_eq!(
        field(validate_open_call(&call, now)),
        "eligibility.max_talent_funding_krw"
    );
}

#[test]
fn document_kinds_are_short_snake_case_words() {
    for ok in ["proposal", "budget_2026", "a", "_", "9", &"k".repeat(40)] {
        assert_eq!(check_document_kind("kind", ok), Ok(()), "{ok:?}");
    }
    for bad in [
        "",
        &"k".repeat(41),
        "Budget",
        "budget sheet",
        "budget-sheet",
        "예산",
        "../etc",
    ] {
        assert_eq!(
            refused(check_document_kind("required_documents[3]", bad)),
            at(
                "required_documents[3]",
                "must be 1 to 40 lower-case letters, digits or underscores"
            ),
            "{bad:?}"
        );
    }
    let now = Utc::now();
    let mut call = open_call(0, 3600, now);
    call.required_documents = vec!["proposal".into(), "Budget".into()];
    assert_eq!(
        field(validate_open_call(&call, now)),
        "required_documents[1]"
    );
}

#[test]
fn real_business_registration_numbers_pass_their_check_digit() {
    // Published numbers of well-known Korean companies: an oracle independent of the formula.
    for (raw, normalised) in [
        ("1248100998", "124-81-00998"),
        ("107-86-14075", "107-86-14075"),
        ("220-8162517", "220-81-62517"),
        ("120-81-47521", "120-81-47521"),
        ("104-81-37225", "104-81-37225"),
        ("314-82-00017", "314-82-00017"),
    ] {
        assert_eq!(normalise_brn(raw).as_deref(), Some(normalised), "{raw}");
        // Any other check digit is refused.
        let digits: String = normalised.chars().filter(|c| *c != '-').collect();
        let last = digits
            .chars()
            .last()
            .and_then(|c| c.to_digit(10))
            .unwrap_or(0);
        for wrong in (0..10).filter(|d| *d != last) {
            let typo = format!("{}{wrong}", &digits[..9]);
            assert_eq!(normalise_brn(&typo), None, "{typo}");
        }
    }
    for bad in [
        "",
        "-",
        "12345678911",
        "124-81-0099",
        "124 81 00998",
        "124-81-00998\u{ff10}",
    ] {
        assert_eq!(normalise_brn(bad), None, "{bad:?}");
    }
}

fn member(name: &str, t: OrgType, brn: &str, role: MemberRole) -> Member {
    Member {
        name: name.into(),
        org_type: t,
        business_registration_number: brn.into(),
        role,
    }
}

#[test]
fn a_consortium_is_stored_trimmed_and_normalised() {
    let req = RegisterConsortium {
        name: "  K-Team ".into(),
        members: vec![
            member(
                " LG AI ",
                OrgType::LargeEnterprise,
                "1078614075",
                MemberRole::Lead,
            ),
            member(
                "KAIST  ",
                OrgType::University,
                "3148200017",
                MemberRole::Partner,
            ),
            member(
                "Naver",
                OrgType::LargeEnterprise,
                "220-81-62517",
                MemberRole::Partner,
            ),
        ],
    };
    let valid = validate_consortium(&req).expect("valid");
    assert_eq!(valid.name, "K-Team");
    let names: Vec<&str> = valid.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["LG AI", "KAIST", "Naver"]);
    let brns: Vec<&str> = valid
        .members
        .iter()
        .map(|m| m.business_registration_number.as_str())
        .collect();
    assert_eq!(brns, ["107-86-14075", "314-82-00017", "220-81-62517"]);
    assert_eq!(valid.members[1].org_type, OrgType::University);
    assert_eq!(valid.members[0].role, MemberRole::Lead);

    let mut no_lead = req.clone();
    no_lead.members[0].role = MemberRole::Partner;
    assert_eq!(
        refused(validate_consortium(&no_lead)),
        at("members", "exactly one member must be the lead (found 0)")
    );
    let mut empty = req.clone();
    empty.members.clear();
    assert_eq!(
        refused(validate_consortium(&empty)),
        at("members", "a consortium has at least a lead")
    );
    let mut unnamed = req.clone();
    unnamed.members[2].name = " ".into();
    assert_eq!(field(validate_consortium(&unnamed)), "members[2].name");
    // The same number written two ways is the same organisation.
    let mut twice = req;
    twice.members[2].business_registration_number = "314-8200017".into();
    assert_eq!(
        refused(validate_consortium(&twice)),
        at(
            "members[2].business_registration_number",
            "appears twice in this consortium"
        )
    );
}

fn resources() -> ResourceRequest {
    ResourceRequest {
        gpus: vec![GpuRequest {
            model: "B200".into(),
            count: 1,
        }],
        data_budget_krw: Krw(0),
        talent_funding_krw: Krw(0),
        talent_positions: vec![TalentPosition {
            title: "Research scientist".into(),
            field: "LLM".into(),
            seniority: "senior".into(),
            count: 1,
        }],
    }
}

#[test]
fn drafts_are_checked_at_every_edge() {
    let r = resources();
    assert_eq!(validate_draft("LLM", "", &r), Ok(()));
    assert_eq!(
        validate_draft(&"t".repeat(MAX_TITLE), &"s".repeat(MAX_SUMMARY), &r),
        Ok(())
    );
    assert_eq!(
        refused(validate_draft(&"t".repeat(MAX_TITLE + 1), "", &r)),
        at("title", "must be at most 200 characters")
    );
    assert_eq!(
        refused(validate_draft("LLM", &"s".repeat(MAX_SUMMARY + 1), &r)),
        at("summary", "must be at most 20000 characters")
    );

    let with = |edit: fn(&mut ResourceRequest)| {
        let mut r = resources();
        edit(&mut r);
        validate_draft("LLM", "", &r)
    };
    assert_eq!(with(|r| r.gpus[0].count = MAX_GPUS_PER_MODEL), Ok(()));
    for count in [0, -1, MAX_GPUS_PER_MODEL + 1, i64::MIN, i64::MAX] {
        let mut r = resources();
        r.gpus[0].count = count;
        assert_eq!(
            refused(validate_draft("LLM", "", &r)),
            at("resources.gpus[0].count", "must be between 1 and 100000"),
            "{count}"
        );
    }
    assert_eq!(with(|r| r.gpus[0].model = "m".repeat(40)), Ok(()));
    assert_eq!(
        refused(with(|r| r.gpus[0].model = "m".repeat(41))),
        at("resources.gpus[0].model", "must be at most 40 characters")
    );
    assert_eq!(
        refused(with(|r| r.data_budget_krw = Krw(-1))),
        at("resources.data_budget_krw", "must not be negative")
    );
    assert_eq!(
        refused(with(|r| r.talent_funding_krw = Krw(-1))),
        at("resources.talent_funding_krw", "must not be negative")
    );
    assert_eq!(
        with(|r| {
            r.data_budget_krw = Krw(i64::MAX);
            r.talent_funding_krw = Krw(i64::MAX);
        }),
        Ok(()),
        "caps are the call's business, checked at submission"
    );
    assert_eq!(
        refused(with(|r| r.talent_positions[0].count = 0)),
        at(
            "resources.talent_positions[0].count",
            "must be between 1 and 10000"
        )
    );
    assert_eq!(
        refused(with(|r| r.talent_positions[0].count = 10_001)),
        at(
            "resources.talent_positions[0].count",
            "must be between 1 and 10000"
        )
    );
    assert_eq!(with(|r| r.talent_positions[0].count = 10_000), Ok(()));
    assert_eq!(
        refused(with(|r| r.talent_positions[0].title = " ".into())),
        at("resources.talent_positions[0].title", "must not be empty")
    );
}

#[test]
fn eligibility_passes_at_each_cap_and_fails_just_past_it() {
    let rules = EligibilityRules {
        min_university_members: 2,
        allowed_lead_types: vec![OrgType::Sme, OrgType::University],
        max_data_budget_krw: Krw(15_000_000_000),
        max_talent_funding_krw: Krw(2_000_000_000),
    };
    let members = vec![
        member("S", OrgType::Sme, "1248100998", MemberRole::Lead),
        member("U1", OrgType::University, "3148200017", MemberRole::Partner),
        member("U2", OrgType::University, "1048137225", MemberRole::Partner),
    ];
    let mut r = ResourceRequest {
        data_budget_krw: Krw(15_000_000_000),
        talent_funding_krw: Krw(2_000_000_000),
        ..Default::default()
    };
    let doc = Document {
        kind: "proposal".into(),
        filename: "p.pdf".into(),
        sha256: "0".repeat(64),
        size_bytes: 1,
        uploaded_at: Utc::now(),
    };
    let required = ["proposal".to_string()];
    assert_eq!(
        eligibility_failures(&rules, &required, &members, &r, std::slice::from_ref(&doc)),
        Vec::<String>::new()
    );

    r.data_budget_krw = Krw(15_000_000_001);
    r.talent_funding_krw = Krw(2_000_000_001);
    assert_eq!(
        eligibility_failures(&rules, &required, &members[..2], &r, &[doc]),
        vec![
            "the consortium needs at least 2 university member(s); it has 1".to_string(),
            "the data budget requested (KRW 15000000001) exceeds the call's cap of KRW 15000000000 per year".to_string(),
            "the talent funding requested (KRW 2000000001) exceeds the call's cap of KRW 2000000000 per year".to_string(),
        ]
    );

    // No lead at all, and any lead type when the call allows any.
    let partners: Vec<Member> = members
        .iter()
        .map(|m| Member {
            role: MemberRole::Partner,
            ..m.clone()
        })
        .collect();
    let ok = ResourceRequest::default();
    assert_eq!(
        eligibility_failures(&rules, &[], &partners, &ok, &[]),
        vec!["the consortium has no lead organisation".to_string()]
    );
    let any_lead = EligibilityRules {
        allowed_lead_types: Vec::new(),
        min_university_members: 0,
        ..rules.clone()
    };
    let big = [member(
        "L",
        OrgType::LargeEnterprise,
        "1078614075",
        MemberRole::Lead,
    )];
    assert_eq!(
        eligibility_failures(&any_lead, &[], &big, &ok, &[]),
        Vec::<String>::new()
    );
    assert_eq!(
        eligibility_failures(&rules, &[], &big, &ok, &[]),
        vec![
            "the consortium needs at least 2 university member(s); it has 0".to_string(),
            "the lead is a large_enterprise; this call allows sme, university leads".to_string(),
        ]
    );
}

mod replacement {
    use crate::domain::{committee_members, free_places, validate_replacement, MAX_AWARD_GPUS};
    use kaip_contracts::events::{GpuAward, Replacement};

    fn call(places: i32, count: i64) -> Replacement {
        Replacement {
            gate: "gate-1".into(),
            places,
            committee: vec!["kim".into(), "lee".into(), "park".into()],
            award: Some(GpuAward {
                model: "B200".into(),
                count,
                period: "2027H1".into(),
            }),
        }
    }

    #[test]
    fn places_and_the_award_are_positive_and_bounded() {
        assert!(validate_replacement(&call(1, 768)).is_ok());
        assert_eq!(
            validate_replacement(&call(0, 768)).unwrap_err().field,
            "replaces.places"
        );
        for count in [0, -1, MAX_AWARD_GPUS + 1] {
            assert_eq!(
                validate_replacement(&call(1, count)).unwrap_err().field,
                "replaces.award.count"
            );
        }
        let mut blank = call(1, 768);
        blank.gate = "  ".into();
        assert_eq!(
            validate_replacement(&blank).unwrap_err().field,
            "replaces.gate"
        );
    }

    #[test]
    fn the_award_model_and_period_follow_the_ledgers_rules() {
        for (model, period, field) in [
            ("b200", "2027H1", "replaces.award.model"),
            ("B 200", "2027H1", "replaces.award.model"),
            ("B200", "2027H3", "replaces.award.period"),
            ("B200", "27H1", "replaces.award.period"),
        ] {
            let mut r = call(1, 768);
            r.award = Some(GpuAward {
                model: model.into(),
                count: 768,
                period: period.into(),
            });
            let v = validate_replacement(&r).unwrap_err();
            assert_eq!(v.field, field, "{model} {period}");
        }
        let mut r = call(1, 768);
        r.award = Some(GpuAward {
            model: "MI300X".into(),
            count: 768,
            period: "2027Q3".into(),
        });
        assert!(validate_replacement(&r).is_ok());
    }

    #[test]
    fn a_committee_counts_distinct_trimmed_members() {
        let names: Vec<String> = ["kim", " kim ", "", "lee"].map(String::from).to_vec();
        assert_eq!(committee_members(&names), vec!["kim", "lee"]);
    }

    #[test]
    fn free_places_are_the_eliminations_less_those_filled() {
        assert_eq!(free_places(2, 0), 2);
        assert_eq!(free_places(2, 1), 1);
        assert_eq!(free_places(2, 3), 0);
    }
}
