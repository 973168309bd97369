use super::*;
use chrono::TimeZone;
use kaip_contracts::{ConsortiumId, Krw};
use proptest::prelude::*;
use uuid::Uuid;

fn programme() -> ProgrammeSettings {
    ProgrammeSettings {
        max_cap_krw: Krw(15_000_000_000),
        joint_purchase_limit_krw: Krw(10_000_000_000),
        building_processing_limit_krw: Krw(5_000_000_000),
        carry_over: false,
        first_year: 2026,
        last_year: 2028,
    }
}

#[test]
fn the_fiscal_year_turns_at_midnight_kst_not_utc() {
    // 2026-12-31 14:59:59 UTC is 23:59:59 KST on the 31st; a second later it is 2027 in Seoul.
    let before = Utc.with_ymd_and_hms(2026, 12, 31, 14, 59, 59).unwrap();
    let after = Utc.with_ymd_and_hms(2026, 12, 31, 15, 0, 0).unwrap();
    assert_eq!(fiscal_year(before), 2026);
    assert_eq!(fiscal_year(after), 2027);
    assert_eq!(kst_month(after), "2027-01");
    assert_eq!(kst_month(before), "2026-12");
}

#[test]
fn a_billion_and_one_splits_three_ways_by_the_largest_remainder() {
    assert_eq!(
        split(1_000_000_001, &[1, 1, 1]).unwrap(),
        vec![333_333_334, 333_333_334, 333_333_333]
    );
    // Ties go to the earlier share; larger remainders first.
    assert_eq!(split(10, &[1, 1, 1]).unwrap(), vec![4, 3, 3]);
    assert_eq!(split(10, &[1, 2]).unwrap(), vec![3, 7]);
    assert_eq!(split(100, &[1, 1, 1, 3]).unwrap(), vec![17, 17, 16, 50]);
    assert_eq!(
        split(i64::MAX, &[i64::MAX, 1])
            .unwrap()
            .iter()
            .map(|p| *p as i128)
            .sum::<i128>(),
        i64::MAX as i128
    );
}

#[test]
fn a_split_refuses_a_non_positive_total_or_weight_naming_the_field() {
    assert_eq!(split(0, &[1, 1]).unwrap_err().code, "AMOUNT_NOT_POSITIVE");
    assert_eq!(split(-5, &[1, 1]).unwrap_err().field, "total_krw");
    let e = split(10, &[1, 0]).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("WEIGHT_NOT_POSITIVE", "shares[1].weight")
    );
    assert_eq!(split(10, &[]).unwrap_err().code, "SHARES_EMPTY");
}

fn share(w: Option<i64>, a: Option<i64>) -> ShareSpec {
    ShareSpec {
        consortium_id: ConsortiumId(Uuid::new_v4()),
        weight: w,
        amount_krw: a.map(Krw),
    }
}

#[test]
fn shares_are_equal_weighted_or_explicit_and_explicit_ones_must_sum_to_the_whole() {
    let (rule, parts) = plan_shares(
        1_000_000_001,
        &[share(None, None), share(None, None), share(None, None)],
    )
    .unwrap();
    assert_eq!(rule, SplitRule::Equal);
    assert_eq!(
        parts.iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![333_333_334, 333_333_334, 333_333_333]
    );
    let (rule, parts) = plan_shares(100, &[share(Some(1), None), share(Some(3), None)]).unwrap();
    assert_eq!((rule, parts), (SplitRule::Weighted, vec![(1, 25), (3, 75)]));
    let (rule, _) = plan_shares(100, &[share(None, Some(40)), share(None, Some(60))]).unwrap();
    assert_eq!(rule, SplitRule::Explicit);
    let e = plan_shares(100, &[share(None, Some(40)), share(None, Some(59))]).unwrap_err();
    assert_eq!((e.code, e.field.as_str()), ("SHARES_DO_NOT_SUM", "shares"));
    assert!(e.rule.contains("99"), "{e}");
    assert_eq!(
        plan_shares(100, &[share(Some(1), None), share(None, None)])
            .unwrap_err()
            .code,
        "SHARES_MIXED"
    );
    assert_eq!(
        plan_shares(100, &[share(None, None)]).unwrap_err().code,
        "SHARES_TOO_FEW"
    );
    assert_eq!(
        plan_shares(
            2,
            &[share(None, None), share(None, None), share(None, None)]
        )
        .unwrap_err()
        .code,
        "SHARE_ZERO"
    );
    let e = plan_shares(MAX_KRW, &[share(None, Some(MAX_KRW)), share(None, Some(1))]).unwrap_err();
    assert_eq!(e.code, "SHARES_DO_NOT_SUM");
    let e = plan_shares(
        i64::MAX,
        &[share(None, Some(i64::MAX)), share(None, Some(1))],
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("AMOUNT_TOO_LARGE", "total_krw")
    );
    let e = plan_shares(
        MAX_KRW,
        &[share(None, Some(MAX_KRW + 1)), share(None, Some(1))],
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("AMOUNT_TOO_LARGE", "shares[0].amount_krw")
    );
    let twin = share(None, None);
    assert_eq!(
        plan_shares(10, &[twin.clone(), twin]).unwrap_err().code,
        "SHARE_DUPLICATE_TEAM"
    );
}

#[test]
fn amounts_and_years_are_checked_with_codes() {
    assert_eq!(
        positive_amount("amount_krw", 0).unwrap_err().code,
        "AMOUNT_NOT_POSITIVE"
    );
    assert_eq!(
        positive_amount("amount_krw", -1).unwrap_err().field,
        "amount_krw"
    );
    assert_eq!(
        positive_amount("amount_krw", i64::MAX).unwrap_err().code,
        "AMOUNT_TOO_LARGE"
    );
    let p = programme();
    assert!(year_in_programme("fiscal_year", 2026, &p).is_ok());
    assert!(year_in_programme("fiscal_year", 2028, &p).is_ok());
    let e = year_in_programme("fiscal_year", 2029, &p).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("YEAR_OUTSIDE_PROGRAMME", "fiscal_year")
    );
    assert_eq!(
        year_in_programme("fiscal_year", 2025, &p).unwrap_err().code,
        "YEAR_OUTSIDE_PROGRAMME"
    );
    assert!(validate_programme(&p).is_ok());
    let mut bad = programme();
    bad.joint_purchase_limit_krw = Krw(16_000_000_000);
    assert_eq!(
        validate_programme(&bad).unwrap_err().code,
        "LIMIT_ABOVE_CAP"
    );
    assert_eq!(reason("reason", "  ").unwrap_err().code, "REASON_REQUIRED");
}

#[test]
fn without_a_call_maximum_the_opening_cap_is_the_request_within_the_programme_maximum() {
    let p = programme();
    let cap = |requested| opening_cap(requested, None, &p).expect("a cap");
    assert_eq!(cap(0).total, 15_000_000_000);
    assert_eq!(cap(20_000_000_000).total, 15_000_000_000);
    let c = cap(8_000_000_000);
    assert_eq!(
        (c.total, c.joint_purchase, c.building_processing),
        (8_000_000_000, 8_000_000_000, 5_000_000_000)
    );
}

#[test]
fn with_a_call_maximum_the_opening_cap_is_the_calls_within_the_programme_maximum() {
    let p = programme();
    // The request does not matter once the call says what it grants.
    let c = opening_cap(3_000_000_000, Some(7_000_000_000), &p).expect("a cap");
    assert_eq!(
        (c.total, c.joint_purchase, c.building_processing),
        (7_000_000_000, 7_000_000_000, 5_000_000_000)
    );
    let c = opening_cap(0, Some(20_000_000_000), &p).expect("a cap");
    assert_eq!(c.total, 15_000_000_000, "bounded by the programme");
    assert_eq!(
        opening_cap(5, Some(0), &p),
        None,
        "a call granting no data budget"
    );
}

#[test]
fn amounts_are_bounded_and_totals_beyond_i64_are_coded() {
    assert!(positive_amount("amount_krw", MAX_KRW).is_ok());
    let e = positive_amount("amount_krw", MAX_KRW + 1).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("AMOUNT_TOO_LARGE", "amount_krw")
    );
    assert_eq!(
        positive_amount("amount_krw", i64::MAX).unwrap_err().code,
        "AMOUNT_TOO_LARGE"
    );
    let mut p = programme();
    p.max_cap_krw = Krw(i64::MAX);
    let e = validate_programme(&p).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("AMOUNT_TOO_LARGE", "settings.max_cap_krw")
    );
    assert_eq!(krw_total("total", i128::from(i64::MAX)), Ok(i64::MAX));
    let e = krw_total("total.limit_krw", i128::from(i64::MAX) + 1).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("TOTAL_OUT_OF_RANGE", "total.limit_krw")
    );
}

#[test]
fn a_payment_is_not_in_the_future_nor_before_its_commitment() {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let committed = now - chrono::Duration::days(3);
    assert!(validate_paid_at(now, committed, now).is_ok());
    assert!(validate_paid_at(committed, committed, now).is_ok());
    let skew = now + chrono::Duration::seconds(PAID_AT_SKEW_SECS);
    assert!(validate_paid_at(skew, committed, now).is_ok());
    let e = validate_paid_at(skew + chrono::Duration::seconds(1), committed, now).unwrap_err();
    assert_eq!((e.code, e.field.as_str()), ("PAID_AT_IN_FUTURE", "paid_at"));
    // The finance system's clock may run a little behind ours.
    let early = committed - chrono::Duration::seconds(PAID_AT_SKEW_SECS);
    assert!(validate_paid_at(early, committed, now).is_ok());
    let e = validate_paid_at(early - chrono::Duration::seconds(1), committed, now).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("PAID_AT_BEFORE_COMMITMENT", "paid_at")
    );
}

#[test]
fn a_lowered_programme_maximum_lowers_caps_from_the_current_year_unless_committed_above_it() {
    let mut p = programme();
    p.max_cap_krw = Krw(12_000_000_000);
    let years = [
        // Last year (closed): its cap stands whatever it was.
        year(
            2026,
            15_000_000_000,
            10_000_000_000,
            5_000_000_000,
            &[(Category::JointPurchase, 14_000_000_000)],
        ),
        year(
            2027,
            15_000_000_000,
            13_000_000_000,
            5_000_000_000,
            &[(Category::JointPurchase, 11_000_000_000)],
        ),
        year(2028, 10_000_000_000, 8_000_000_000, 5_000_000_000, &[]),
    ];
    let changed = caps_under(&years, &p, 2027).expect("fits");
    assert_eq!(
        changed,
        vec![(
            2027,
            Cap {
                total: 12_000_000_000,
                joint_purchase: 12_000_000_000,
                building_processing: 5_000_000_000
            }
        )]
    );
    // Below what 2027 has committed: refused, naming the year and the shortfall.
    p.max_cap_krw = Krw(10_500_000_000);
    let s = caps_under(&years, &p, 2027).unwrap_err();
    assert_eq!((s.year, s.category, s.shortfall), (2027, None, 500_000_000));
    // Turning carry-over off is refused while a year spends what it carried in.
    let mut carried = programme();
    carried.carry_over = true;
    let years = [
        year(2026, 10_000_000_000, 10_000_000_000, 5_000_000_000, &[]),
        year(
            2027,
            10_000_000_000,
            10_000_000_000,
            5_000_000_000,
            &[(Category::JointPurchase, 12_000_000_000)],
        ),
    ];
    assert!(caps_under(&years, &carried, 2027).is_ok());
    carried.carry_over = false;
    let s = caps_under(&years, &carried, 2027).unwrap_err();
    assert_eq!((s.year, s.shortfall), (2027, 2_000_000_000));
}

fn year(y: i32, total: i64, jp: i64, bp: i64, committed: &[(Category, i64)]) -> Year {
    Year {
        year: y,
        cap: Cap {
            total,
            joint_purchase: jp,
            building_processing: bp,
        },
        committed: Committed(committed.iter().copied().collect()),
    }
}

#[test]
fn a_commitment_fits_the_cap_and_its_category_or_names_the_shortfall() {
    use Category::*;
    let ys = [year(
        2026,
        100,
        75,
        40,
        &[(JointPurchase, 70), (BuildingProcessing, 20)],
    )];
    assert!(fits(&ys, false, 2026, JointPurchase, 5).is_ok());
    // Category: 75 - 70 = 5 left, though the total has 10.
    let s = fits(&ys, false, 2026, JointPurchase, 6).unwrap_err();
    assert_eq!(
        (s.category, s.available, s.shortfall),
        (Some(JointPurchase), 5, 1)
    );
    // Total: 100 - 90 = 10 left though the category has 20.
    let s = fits(&ys, false, 2026, BuildingProcessing, 15).unwrap_err();
    assert_eq!((s.category, s.available, s.shortfall), (None, 10, 5));
    assert!(fits(&ys, false, 2027, BuildingProcessing, 1).is_err());
    assert!(fits(&ys, false, 2026, BuildingProcessing, i64::MAX).is_err());
}

#[test]
fn unspent_money_carries_over_only_when_the_programme_says_so() {
    use Category::*;
    let ys = [
        year(2026, 100, 100, 100, &[(JointPurchase, 60)]),
        year(2027, 100, 100, 100, &[]),
    ];
    assert!(fits(&ys, false, 2027, JointPurchase, 101).is_err());
    assert!(fits(&ys, true, 2027, JointPurchase, 140).is_ok());
    assert!(fits(&ys, true, 2027, JointPurchase, 141).is_err());
    let r = rooms(&ys, true);
    assert_eq!(r[&2027].carried_total, 40);
    assert_eq!(r[&2027].total, 140);
    assert_eq!(rooms(&ys, false)[&2027].carried_total, 0);
    // Once 2027 uses the carried money, 2026 cannot commit it again.
    let ys = [
        year(2026, 100, 100, 100, &[(JointPurchase, 60)]),
        year(2027, 100, 100, 100, &[(JointPurchase, 140)]),
    ];
    let s = fits(&ys, true, 2026, JointPurchase, 1).unwrap_err();
    assert_eq!(s.year, 2027);
}

#[test]
fn an_adjustment_stays_within_the_maximum_and_above_what_is_committed() {
    use Category::*;
    let c = Committed([(JointPurchase, 50)].into_iter().collect());
    let cap = |t, j, b| Cap {
        total: t,
        joint_purchase: j,
        building_processing: b,
    };
    assert!(validate_adjustment(cap(100, 60, 40), 200, &c).is_ok());
    assert_eq!(
        validate_adjustment(cap(300, 60, 40), 200, &c)
            .unwrap_err()
            .code,
        "CAP_ABOVE_PROGRAMME_MAXIMUM"
    );
    assert_eq!(
        validate_adjustment(cap(100, 110, 40), 200, &c)
            .unwrap_err()
            .code,
        "LIMIT_ABOVE_CAP"
    );
    let e = validate_adjustment(cap(100, 40, 40), 200, &c).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_str()),
        ("CAP_BELOW_COMMITTED", "joint_purchase_limit_krw")
    );
    assert_eq!(
        validate_adjustment(cap(0, 60, 40), 200, &c)
            .unwrap_err()
            .code,
        "AMOUNT_NOT_POSITIVE"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn splits_always_sum_to_the_invoice(
        total in 1i64..=i64::MAX,
        weights in proptest::collection::vec(1i64..=1_000_000_000_000, 1..12),
    ) {
        let parts = split(total, &weights).unwrap();
        prop_assert_eq!(parts.len(), weights.len());
        prop_assert_eq!(parts.iter().map(|p| i128::from(*p)).sum::<i128>(), i128::from(total));
        prop_assert!(parts.iter().all(|p| *p >= 0));
        // Each part is within one won of its exact share.
        let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
        for (p, w) in parts.iter().zip(&weights) {
            let exact_floor = i128::from(total) * i128::from(*w) / sum;
            prop_assert!(i128::from(*p) == exact_floor || i128::from(*p) == exact_floor + 1);
        }
    }

    #[test]
    fn equal_shares_never_differ_by_more_than_one_won(
        total in 1i64..=i64::MAX,
        n in 1usize..40,
    ) {
        let parts = split(total, &vec![1; n]).unwrap();
        prop_assert_eq!(parts.iter().map(|p| i128::from(*p)).sum::<i128>(), i128::from(total));
        let max = parts.iter().max().unwrap();
        let min = parts.iter().min().unwrap();
        prop_assert!(max - min <= 1);
        // The extra won go to the earliest shares (the stated tie order).
        prop_assert!(parts.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn equal_weights_within_a_weighted_split_differ_by_at_most_one(
        total in 1i64..=1_000_000_000_000_000,
        w in 1i64..1000,
        others in proptest::collection::vec(1i64..1000, 0..6),
    ) {
        let mut weights = vec![w, w];
        weights.extend(others);
        let parts = split(total, &weights).unwrap();
        prop_assert!((parts[0] - parts[1]).abs() <= 1);
        prop_assert_eq!(parts.iter().map(|p| i128::from(*p)).sum::<i128>(), i128::from(total));
    }
}
