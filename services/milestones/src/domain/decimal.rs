//! Exact decimals: a value is an integer of units at a scale (`87.25` at scale 4 is
//! 872_500). Never floats.

use super::Invalid;

/// The largest integer part a value may have (a benchmark score, a percentage, points):
/// bounded so that weights × values stay far inside i128.
pub const MAX_INTEGER_PART: i64 = 1_000_000_000;

/// Parses a non-negative decimal string with at most `max_scale` decimal places into
/// units at that scale. `"87.25"` at 4 is `872_500`. No sign, no exponent, no spaces.
pub fn parse(field: &str, s: &str, max_scale: u32) -> Result<i64, Invalid> {
    let rule = || {
        Invalid::new(
            field,
            format!(
                "a non-negative decimal string with at most {max_scale} decimal places and at most {MAX_INTEGER_PART} before the point, e.g. \"87.25\""
            ),
        )
    };
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || int.len() > 10
        || !int.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
        || frac.len() > max_scale as usize
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(rule());
    }
    let i: i64 = int.parse().map_err(|_| rule())?;
    if i > MAX_INTEGER_PART {
        return Err(rule());
    }
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| rule())?
    };
    for _ in frac.len()..max_scale as usize {
        f *= 10;
    }
    Ok(i * 10i64.pow(max_scale) + f)
}

/// The number of decimal places written in `s` (for evidence, kept as given).
pub fn scale_of(s: &str) -> u32 {
    s.split_once('.').map_or(0, |(_, f)| f.len() as u32)
}

/// `units` at `scale` as a decimal string with exactly `scale` places.
pub fn format(units: i128, scale: u32) -> String {
    let neg = units < 0;
    let u = units.unsigned_abs();
    let p = 10u128.pow(scale);
    let (i, f) = (u / p, u % p);
    let sign = if neg { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{i}")
    } else {
        format!("{sign}{i}.{f:0width$}", width = scale as usize)
    }
}

/// Converts units from one scale to a larger-or-equal one, or to a smaller one only when
/// exact. `None`: not exact (digits would be lost) or out of range.
pub fn rescale(units: i64, from: u32, to: u32) -> Option<i64> {
    if to >= from {
        units.checked_mul(10i64.checked_pow(to - from)?)
    } else {
        let d = 10i64.checked_pow(from - to)?;
        (units % d == 0).then_some(units / d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals_and_refuses_everything_else() {
        assert_eq!(parse("v", "87.25", 4), Ok(872_500));
        assert_eq!(parse("v", "0", 4), Ok(0));
        assert_eq!(parse("v", "100", 0), Ok(100));
        assert_eq!(parse("v", "0.0001", 4), Ok(1));
        assert_eq!(parse("v", "1000000000", 4), Ok(10_000_000_000_000));
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            "1.",
            ".5",
            "1.00001",
            " 1",
            "1,5",
            "NaN",
            "1000000001",
            "99999999999",
        ] {
            let e = parse("v", bad, 4).unwrap_err();
            assert_eq!(e.field, "v", "{bad}");
        }
    }

    #[test]
    fn formats_and_rescales_exactly() {
        assert_eq!(format(872_500, 4), "87.2500");
        assert_eq!(format(5, 9), "0.000000005");
        assert_eq!(format(-5, 2), "-0.05");
        assert_eq!(format(7, 0), "7");
        assert_eq!(rescale(8725, 2, 4), Some(872_500));
        assert_eq!(rescale(872_500, 4, 2), Some(8725));
        assert_eq!(rescale(872_501, 4, 2), None);
        assert_eq!(scale_of("87.25"), 2);
        assert_eq!(scale_of("87"), 0);
    }
}
