use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("date")
}

#[test]
fn a_hire_starting_mid_july_is_paid_sixteen_thirty_firsts_of_the_month() {
    // Hired from 16 July 2027: July has 31 days, the hire covers 16..=31, i.e. 16 days.
    // Salary 12,000,000 + living 3,000,000 = 15,000,000 a month; ratio 50 % (5,000 bp).
    //   eligible cost = 15,000,000 x 16 / 31 = 7,741,935.48... -> 7,741,935
    //   share         = 15,000,000 x 16 x 5,000 / (31 x 10,000) = 3,870,967.74... -> 3,870,967
    // (rounded down once, at the end; halving the rounded cost would give 3,870,967 too,
    // but the one-step rule is what is specified).
    let july = Month::parse("2027-07").expect("month");
    let s = month_share(
        july,
        d(2027, 7, 16),
        d(2028, 7, 15),
        12_000_000,
        3_000_000,
        5_000,
    )
    .expect("fits");
    assert_eq!(s.days_covered, 16);
    assert_eq!(s.days_in_month, 31);
    assert_eq!(s.eligible_cost_krw, 7_741_935);
    assert_eq!(s.share_krw, 3_870_967);
    // August is a whole month: exactly half of 15,000,000.
    let aug = month_share(
        Month::parse("2027-08").unwrap(),
        d(2027, 7, 16),
        d(2028, 7, 15),
        12_000_000,
        3_000_000,
        5_000,
    )
    .unwrap();
    assert_eq!((aug.days_covered, aug.share_krw), (31, 7_500_000));
    // A hire ending mid-month is pro-rated the same way (1..=15 July 2028 of 31 days).
    let end = month_share(
        Month::parse("2028-07").unwrap(),
        d(2027, 7, 16),
        d(2028, 7, 15),
        12_000_000,
        3_000_000,
        5_000,
    )
    .unwrap();
    assert_eq!((end.days_covered, end.share_krw), (15, 3_629_032));
}

#[test]
fn rounding_happens_once_at_the_end_in_the_states_favour() {
    // 1,000 KRW for 1 of 3 days at 3,333 bp: 1000 x 1 x 3333 / 30000 = 111.1 -> 111, whereas
    // rounding the cost first (333) and then the share (110.98 -> 110) would differ.
    let s = month_share(
        Month::parse("2027-02").unwrap(),
        d(2027, 2, 28),
        d(2027, 3, 31),
        1_000,
        0,
        3_333,
    )
    .unwrap();
    assert_eq!(s.days_in_month, 28);
    assert_eq!(s.days_covered, 1);
    assert_eq!(s.share_krw, 1_000 * 3_333 / (28 * 10_000));
}

#[test]
fn leap_february_and_a_month_outside_the_hire() {
    let feb = Month::parse("2028-02").unwrap();
    assert_eq!(feb.days(), 29);
    assert_eq!(covered_days(feb, d(2028, 3, 1), d(2028, 12, 31)), 0);
    assert_eq!(covered_days(feb, d(2028, 1, 1), d(2028, 2, 10)), 10);
}

#[test]
fn months_parse_strictly() {
    assert_eq!(
        Month::parse("2027-07"),
        Some(Month {
            year: 2027,
            month: 7
        })
    );
    for bad in [
        "2027-7",
        "2027-13",
        "2027-00",
        "27-07",
        "2027/07",
        "+027-07",
        "2027-07-01",
        "",
    ] {
        assert_eq!(Month::parse(bad), None, "{bad}");
    }
    assert_eq!(Month::parse("2027-12").unwrap().last_day(), d(2027, 12, 31));
}

#[test]
fn extreme_amounts_give_none_not_an_overflow() {
    let m = Month::parse("2027-07").unwrap();
    // i64::MAX + i64::MAX a month at 100 %: the sum does not fit i64.
    assert_eq!(
        month_share(m, d(2027, 7, 1), d(2027, 7, 31), i64::MAX, i64::MAX, 10_000),
        None
    );
    // i64::MAX for the full month at 100 % is exactly i64::MAX.
    assert_eq!(
        month_share(m, d(2027, 7, 1), d(2027, 7, 31), i64::MAX, 0, 10_000)
            .unwrap()
            .share_krw,
        i64::MAX
    );
}

#[test]
fn the_ratio_table_is_looked_up_by_size_and_openness_and_checked() {
    let t = FundTerms::default();
    t.check().expect("the default terms are valid");
    assert_eq!(
        t.ratio(CompanySize::Large, OpennessLevel::Closed),
        Some(3_000)
    );
    assert_eq!(
        t.ratio(CompanySize::Small, OpennessLevel::OpenWeights),
        Some(7_000)
    );
    let mut missing = t.clone();
    missing.ratios.pop();
    assert_eq!(missing.check().unwrap_err().field, "ratios");
    let mut over = t.clone();
    over.ratios[0].ratio_bp = 10_001;
    assert_eq!(over.check().unwrap_err().field, "ratios[0].ratio_bp");
    let mut twice = t.clone();
    twice.ratios.push(t.ratios[0]);
    assert_eq!(
        twice.check().unwrap_err().field,
        format!("ratios[{}]", t.ratios.len())
    );
    let negative = FundTerms {
        annual_cap_krw: -1,
        ..t
    };
    assert_eq!(negative.check().unwrap_err().field, "annual_cap_krw");
}

#[test]
fn size_and_openness_come_from_the_proposal() {
    use kaip_contracts::dto::intake::{Artefact, OrgType};
    assert_eq!(
        CompanySize::of_org_type(OrgType::Startup),
        CompanySize::Small
    );
    assert_eq!(
        CompanySize::of_org_type(OrgType::LargeEnterprise),
        CompanySize::Large
    );
    assert_eq!(
        CompanySize::of_org_type(OrgType::University),
        CompanySize::Academic
    );
    assert_eq!(OpennessLevel::of_releases(&[]), OpennessLevel::Closed);
    assert_eq!(
        OpennessLevel::of_releases(&[Artefact::Code]),
        OpennessLevel::Partial
    );
    assert_eq!(
        OpennessLevel::of_releases(&[Artefact::Data, Artefact::Weights]),
        OpennessLevel::OpenWeights
    );
}

#[test]
fn the_cap_clips_the_claim_that_crosses_it_and_says_why() {
    let cap = 2_000_000_000;
    assert_eq!(
        pay_within_cap(100, 0, cap, 2027),
        Payment {
            paid_krw: 100,
            reason: None
        }
    );
    let p = pay_within_cap(300_000_000, 1_800_000_000, cap, 2027);
    assert_eq!(p.paid_krw, 200_000_000);
    let reason = p.reason.expect("a reason");
    assert!(
        reason.contains("annual cap") && reason.contains("2027") && reason.contains("300000000"),
        "{reason}"
    );
    assert_eq!(pay_within_cap(5, cap, cap, 2027).paid_krw, 0);
    assert_eq!(
        pay_within_cap(i64::MAX, i64::MIN, cap, 2027).paid_krw,
        cap,
        "saturates"
    );
    // Exactly at the cap is not clipped.
    assert_eq!(pay_within_cap(200, cap - 200, cap, 2027).reason, None);
}

#[test]
fn funding_stops_from_the_month_after_the_elimination_in_kst() {
    // 31 May 2027 20:00 UTC is 1 June 05:00 KST: the elimination is in June.
    let at = Utc.with_ymd_and_hms(2027, 5, 31, 20, 0, 0).unwrap();
    let on = kst_date(at);
    assert_eq!(on, d(2027, 6, 1));
    let m = |s| Month::parse(s).unwrap();
    assert!(funded_after_elimination(m("2027-05"), Some(on)));
    assert!(
        funded_after_elimination(m("2027-06"), Some(on)),
        "the elimination's month is paid"
    );
    assert!(!funded_after_elimination(m("2027-07"), Some(on)));
    assert!(funded_after_elimination(m("2099-01"), None));
}

proptest! {
    #[test]
    fn the_months_of_a_hire_add_up_to_no_more_than_the_whole(
        start_off in 0i64..400, len in 0i64..800, salary in 0i64..50_000_000, living in 0i64..5_000_000,
        ratio in 0i64..=10_000,
    ) {
        let start = d(2027, 1, 1) + chrono::Duration::days(start_off);
        let end = start + chrono::Duration::days(len);
        let mut m = Month::of(start);
        let mut total_days = 0;
        let mut total_share: i128 = 0;
        let mut exact: i128 = 0; // share x 10,000 x 31-ish denominators is awkward: bound instead
        while m <= Month::of(end) {
            let s = month_share(m, start, end, salary, living, ratio).unwrap();
            prop_assert!(s.days_covered >= 1 && s.days_covered <= s.days_in_month);
            total_days += s.days_covered;
            total_share += i128::from(s.share_krw);
            // Never more than the un-rounded share, and less by under one won.
            let num = (i128::from(salary) + i128::from(living)) * i128::from(s.days_covered) * i128::from(ratio);
            let den = i128::from(s.days_in_month) * 10_000;
            prop_assert!(i128::from(s.share_krw) * den <= num && num < (i128::from(s.share_krw) + 1) * den);
            exact += 1;
            m = if m.month == 12 { Month { year: m.year + 1, month: 1 } } else { Month { year: m.year, month: m.month + 1 } };
        }
        prop_assert_eq!(total_days, len + 1);
        prop_assert!(exact >= 1);
        prop_assert!(total_share >= 0);
    }

    #[test]
    fn payments_never_pass_the_cap(claims in proptest::collection::vec(0i64..900_000_000, 0..20)) {
        let cap = 2_000_000_000;
        let mut paid = 0i64;
        for c in claims {
            let p = pay_within_cap(c, paid, cap, 2027);
            prop_assert!(p.paid_krw <= c && p.paid_krw >= 0);
            prop_assert_eq!(p.reason.is_some(), p.paid_krw < c);
            paid += p.paid_krw;
            prop_assert!(paid <= cap);
        }
    }
}

#[test]
fn a_month_is_claimable_once_it_has_started_in_kst() {
    let m = Month::parse("2027-01").unwrap();
    let d = |y, mo, da| NaiveDate::from_ymd_opt(y, mo, da).unwrap();
    assert!(!month_started(m, d(2026, 12, 31)));
    assert!(month_started(m, d(2027, 1, 1)));
    assert!(month_started(m, d(2027, 6, 15)));
    assert!(!month_started(
        Month::parse("2027-12").unwrap(),
        d(2027, 1, 1)
    ));
    // 2026-12-31 15:00 UTC is already 2027-01-01 in KST.
    let at = Utc.with_ymd_and_hms(2026, 12, 31, 15, 0, 0).unwrap();
    assert!(month_started(m, kst_date(at)));
    let before = Utc.with_ymd_and_hms(2026, 12, 31, 14, 59, 59).unwrap();
    assert!(!month_started(m, kst_date(before)));
}

#[test]
fn the_cap_is_pro_rated_by_days_in_the_programme_for_partial_years() {
    let cap = 2_000_000_000;
    // Selected on 16 July 2025 (KST): 16 + 31 + 30 + 31 + 30 + 31 = 169 of 365 days.
    //   2,000,000,000 x 169 / 365 = 926,027,397.26... -> 926,027,397 (rounded down once).
    assert_eq!(prorated_cap(cap, 2025, d(2025, 7, 16), None), 926_027_397);
    // Selected before the year and never eliminated: the whole cap.
    assert_eq!(prorated_cap(cap, 2025, d(2024, 12, 1), None), cap);
    // Eliminated on 10 March 2025: funded to the end of March, 31 + 28 + 31 = 90 days.
    //   2,000,000,000 x 90 / 365 = 493,150,684.93... -> 493,150,684.
    assert_eq!(
        prorated_cap(cap, 2025, d(2024, 12, 1), Some(d(2025, 3, 10))),
        493_150_684
    );
    // Both: 16 July to 30 September 2025 = 16 + 31 + 30 + 31 ... = 77 days.
    //   2,000,000,000 x 77 / 365 = 421,917,808.21... -> 421,917,808.
    assert_eq!(
        prorated_cap(cap, 2025, d(2025, 7, 16), Some(d(2025, 9, 2))),
        421_917_808
    );
    // A leap year has 366 days: from 1 March 2028, 306 days.
    //   2,000,000,000 x 306 / 366 = 1,672,131,147.54... -> 1,672,131,147.
    assert_eq!(prorated_cap(cap, 2028, d(2028, 3, 1), None), 1_672_131_147);
    // Years outside the programme: nothing.
    assert_eq!(prorated_cap(cap, 2024, d(2025, 7, 16), None), 0);
    assert_eq!(
        prorated_cap(cap, 2026, d(2024, 12, 1), Some(d(2025, 3, 10))),
        0
    );
    // Edge of the type: exact, no overflow.
    assert_eq!(prorated_cap(i64::MAX, 2025, d(2024, 1, 1), None), i64::MAX);
    assert_eq!(
        prorated_cap(i64::MAX, 2025, d(2025, 7, 16), None),
        (i128::from(i64::MAX) * 169 / 365) as i64
    );
}
