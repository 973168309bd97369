//! Korean business registration numbers, the one rule every service compares them by.
//!
//! Intake checks consortium members' numbers with it and scoring reviewers' numbers, so
//! `3148200017` and `314-82-00017` are one organisation wherever a conflict of interest is
//! decided.

/// Checks a business registration number (`123-45-67890`, dashes optional) and returns it
/// normalised with dashes. The tenth digit is a check digit over the first nine with weights
/// 1,3,7,1,3,7,1,3,5 (plus the tens of the ninth digit times five).
pub fn normalise(raw: &str) -> Option<String> {
    let digits: Vec<u32> = raw
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()?;
    if digits.len() != 10 {
        return None;
    }
    const W: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let mut sum: u32 = digits.iter().zip(W).map(|(d, w)| d * w).sum();
    sum += digits[8] * 5 / 10;
    if (10 - sum % 10) % 10 != digits[9] {
        return None;
    }
    let s: String = digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .collect();
    Some(format!("{}-{}-{}", &s[..3], &s[3..5], &s[5..]))
}

/// What a refused number is told (the field is the caller's to name).
pub const RULE: &str = "must be a valid business registration number (10 digits, e.g. 123-45-67891, with a correct check digit)";

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn one_organisation_whichever_way_it_is_typed() {
        assert_eq!(normalise("3148200017").as_deref(), Some("314-82-00017"));
        assert_eq!(normalise("314-82-00017").as_deref(), Some("314-82-00017"));
        assert_eq!(normalise("314-82-00013"), None, "wrong check digit");
        assert_eq!(
            normalise("314 82 00017"),
            None,
            "only dashes are separators"
        );
        assert_eq!(normalise(""), None);
    }
}
