//! The GPU ledger's rules for a model code and a period, as plain functions. They live
//! here (not only in the ledger) so that a service that plans GPU grants (the milestones
//! service's reallocation plan) can refuse, before it publishes, a plan the ledger would
//! refuse when it applies it.

/// Why a catalogue value is refused: the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub rule: String,
}

/// A model code: `H100`, `B200`, `MI300X`: 1-16 characters, uppercase ASCII letters, digits
/// and `-`, starting with a letter.
pub fn check_model_code(code: &str) -> Result<(), Invalid> {
    let ok = !code.is_empty()
        && code.len() <= 16
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            field: "model",
            rule: format!(
                "`{code}` is not a model code: 1-16 uppercase letters, digits or `-`, starting with a letter (e.g. H100, B200)"
            ),
        })
    }
}

/// A period of the programme: `2026H1`, `2026H2`, `2027Q3`, `2026`: a year (2000-2999)
/// optionally followed by `H1`-`H2` or `Q1`-`Q4`. Each period is its own ledger.
pub fn check_period(period: &str) -> Result<(), Invalid> {
    let bad = || Invalid {
        field: "period",
        rule: format!(
            "`{period}` is not a period: a year, optionally with H1-H2 or Q1-Q4 (e.g. 2026H1)"
        ),
    };
    if period.len() < 4 || !period.is_char_boundary(4) {
        return Err(bad());
    }
    let (year, rest) = period.split_at(4);
    if !year.starts_with('2') || !year.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    match rest {
        "" | "H1" | "H2" | "Q1" | "Q2" | "Q3" | "Q4" => Ok(()),
        _ => Err(bad()),
    }
}

/// When a period starts: its first day at midnight KST (Korean fiscal years are calendar
/// years and their boundary is midnight KST). `None` for a string that is not a period.
pub fn period_start(period: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    check_period(period).ok()?;
    let year: i32 = period.get(..4)?.parse().ok()?;
    let month = match period.get(4..)? {
        "" | "H1" | "Q1" => 1,
        "Q2" => 4,
        "H2" | "Q3" => 7,
        "Q4" => 10,
        _ => return None,
    };
    let kst = chrono::FixedOffset::east_opt(9 * 3600)?;
    let day = chrono::NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?;
    Some(
        day.and_local_timezone(kst)
            .single()?
            .with_timezone(&chrono::Utc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_codes() {
        for ok in ["H100", "B200", "MI300X", "A", "GB200-NVL"] {
            assert!(check_model_code(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "h100",
            "1H00",
            "H100 ",
            "H_100",
            "ABCDEFGHIJKLMNOPQ",
            "H1\u{0}",
        ] {
            let e = check_model_code(bad).unwrap_err();
            assert_eq!(e.field, "model", "{bad}");
        }
        // 16 characters is the limit.
        assert!(check_model_code("ABCDEFGHIJKLMNOP").is_ok());
    }

    #[test]
    fn periods() {
        for ok in ["2026", "2026H1", "2026H2", "2027Q1", "2027Q4", "2999"] {
            assert!(check_period(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "202", "1999H1", "2026H3", "2026Q5", "2026h1", "2026-H1", "20é6", "2026H1 ", "x026",
        ] {
            assert_eq!(check_period(bad).unwrap_err().field, "period", "{bad}");
        }
    }

    #[test]
    fn periods_start_at_midnight_kst() {
        let at = |p| period_start(p).map(|t| t.to_rfc3339());
        assert_eq!(at("2026").as_deref(), Some("2025-12-31T15:00:00+00:00"));
        assert_eq!(at("2026H1"), at("2026"));
        assert_eq!(at("2026Q1"), at("2026"));
        assert_eq!(at("2026Q2").as_deref(), Some("2026-03-31T15:00:00+00:00"));
        assert_eq!(at("2026H2").as_deref(), Some("2026-06-30T15:00:00+00:00"));
        assert_eq!(at("2026Q3"), at("2026H2"));
        assert_eq!(at("2026Q4").as_deref(), Some("2026-09-30T15:00:00+00:00"));
        assert_eq!(at("2026H3"), None);
        assert_eq!(at("nope"), None);
    }
}
