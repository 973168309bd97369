//! Money in GraphQL. `Int` is 32-bit by the GraphQL specification, and KRW amounts are not
//! (a team's data budget alone is KRW 15,000,000,000): a client that follows the
//! specification could neither send nor read them, and graphql-js refuses even to build a
//! schema whose defaults overflow `Int`. So amounts are a `Krw` scalar carried as a string
//! of digits, the way money APIs carry decimals, and parsed strictly into whole won.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// Whole Korean won; see the scalar's description below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Krw(pub kaip_contracts::Krw);

/// Parses an amount as the scalar accepts it; the error is the rule it broke.
pub fn parse_krw(s: &str) -> Result<i64, &'static str> {
    const FORMAT: &str = "must be whole won as a string of decimal digits with an optional leading `-`, e.g. \"15000000000\" (no `+`, spaces, separators, decimal point, exponent or leading zeros)";
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return Err(FORMAT);
    }
    s.parse::<i64>()
        .map_err(|_| "must be between -9223372036854775808 and 9223372036854775807 won")
}

/// Whole Korean won (KRW, an i64 on the server), written as a string of decimal digits with
/// an optional leading `-`: `"15000000000"`. No `+`, spaces, separators, decimal point,
/// exponent or leading zeros; from -9223372036854775808 to 9223372036854775807. Whether a
/// negative amount makes sense is the field's rule (none of today's amounts may be negative).
#[Scalar(name = "Krw")]
impl ScalarType for Krw {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(s) = &value else {
            return Err(InputValueError::custom(
                "an amount is a string of digits, e.g. \"15000000000\", not a number",
            )
            .with_extension("code", "BAD_USER_INPUT"));
        };
        parse_krw(s)
            .map(|n| Krw(kaip_contracts::Krw(n)))
            .map_err(|rule| InputValueError::custom(rule).with_extension("code", "BAD_USER_INPUT"))
    }

    /// Checked while the operation is validated, so the error names the argument's path
    /// (`input.resources.dataBudgetKrw`) before any service is called.
    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if parse_krw(s).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.0 .0.to_string())
    }
}

impl From<kaip_contracts::Krw> for Krw {
    fn from(k: kaip_contracts::Krw) -> Self {
        Krw(k)
    }
}

impl From<Krw> for kaip_contracts::Krw {
    fn from(k: Krw) -> Self {
        k.0
    }
}

impl Krw {
    pub const fn won(n: i64) -> Self {
        Krw(kaip_contracts::Krw(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_canonical_digit_strings_within_i64() {
        for (s, n) in [
            ("0", 0),
            ("15000000000", 15_000_000_000),
            ("-1", -1),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(parse_krw(s), Ok(n), "{s}");
            assert_eq!(Krw::won(n).to_value(), Value::String(s.to_owned()));
        }
        for s in [
            "",
            "-",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1e9",
            "1E9",
            "0x10",
            "1,000",
            "1_000",
            "007",
            "-0",
            "--1",
            "9223372036854775808",
            "-9223372036854775809",
            "١٢",
            "NaN",
        ] {
            assert!(parse_krw(s).is_err(), "{s:?} must be refused");
            assert!(!Krw::is_valid(&Value::String(s.to_owned())), "{s:?}");
        }
        assert!(parse_krw("9223372036854775808")
            .unwrap_err()
            .contains("between"));
    }

    #[test]
    fn numbers_are_not_amounts() {
        for v in [
            Value::from(1),
            Value::from(1.5),
            Value::Boolean(true),
            Value::Null,
        ] {
            assert!(!Krw::is_valid(&v), "{v}");
            assert!(<Krw as ScalarType>::parse(v).is_err());
        }
    }
}
