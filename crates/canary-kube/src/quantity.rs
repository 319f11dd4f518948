//! Kubernetes resource quantities (`250m`, `1`, `0.5`, `100n`, `12345u`,
//! `2k`, `1Gi`, `1e3`) read exactly, as the API server writes them.
//!
//! k8s-openapi carries a quantity as the text the server sent
//! ([`Quantity`]); this module gives it a value. Values are integers in
//! *nano-units* (10⁻⁹ of the unit: nanocores for CPU) so sums stay exact;
//! a finer fraction is rounded up, as the API server's own `ScaledValue`
//! does.
//!
//! The grammar is the API server's:
//!
//! ```text
//! quantity  ::= [+-] number suffix
//! number    ::= digits | digits "." digits | digits "." | "." digits
//! suffix    ::= "" | n | u | m | k | M | G | T | P | E        (decimal SI)
//!             | Ki | Mi | Gi | Ti | Pi | Ei                   (binary SI)
//!             | (e | E) [+-] digits                           (decimal exponent)
//! ```

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Decimal SI suffixes and their power of ten, largest first (the order
/// [`format_nano_units`] tries them in).
const DECIMAL_SUFFIXES: [(&str, i32); 10] = [
    ("E", 18),
    ("P", 15),
    ("T", 12),
    ("G", 9),
    ("M", 6),
    ("k", 3),
    ("", 0),
    ("m", -3),
    ("u", -6),
    ("n", -9),
];

/// Binary SI suffixes and their power of 1024.
const BINARY_SUFFIXES: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];

/// Most significant digits a quantity may carry: they must fit a `u128`.
const MAX_DIGITS: usize = 38;

/// Largest decimal exponent accepted (`1e40` already overflows nano-units).
const MAX_EXPONENT: i32 = 1000;

/// Why a quantity's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {text:?}: {problem}")]
pub struct QuantityError {
    /// The text as received.
    pub text: String,
    /// What is wrong with it.
    pub problem: QuantityProblem,
}

/// What is wrong with a quantity's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityProblem {
    #[error("it is empty")]
    Empty,
    #[error("it has no digits")]
    NoDigits,
    #[error("unknown suffix {0:?} (expected n, u, m, k, M, G, T, P, E, Ki…Ei or an exponent)")]
    UnknownSuffix(String),
    #[error("more than {MAX_DIGITS} significant digits")]
    TooManyDigits,
    #[error("the value is too large")]
    OutOfRange,
}

/// A quantity's exact value: `mantissa × 10^decimal_exponent × 1024^binary_exponent`,
/// negated when `negative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExactQuantity {
    negative: bool,
    mantissa: u128,
    decimal_exponent: i32,
    binary_exponent: u32,
}

impl ExactQuantity {
    /// The value in nano-units, rounded up (towards positive infinity);
    /// `None` when it does not fit an `i128`.
    fn nano_units(self) -> Option<i128> {
        let mut magnitude = self
            .mantissa
            .checked_mul(1024u128.checked_pow(self.binary_exponent)?)?;
        let exponent = self.decimal_exponent.checked_add(9)?;
        let mut truncated = false;
        if exponent >= 0 {
            magnitude = magnitude.checked_mul(10u128.checked_pow(exponent.unsigned_abs())?)?;
        } else {
            match 10u128.checked_pow(exponent.unsigned_abs()) {
                Some(divisor) => {
                    truncated = magnitude % divisor != 0;
                    magnitude /= divisor;
                }
                // 10^39 and beyond exceed any mantissa.
                None => {
                    truncated = magnitude != 0;
                    magnitude = 0;
                }
            }
        }
        let magnitude = i128::try_from(magnitude).ok()?;
        if self.negative {
            // Truncation towards zero is the ceiling of a negative value.
            Some(-magnitude)
        } else if truncated {
            magnitude.checked_add(1)
        } else {
            Some(magnitude)
        }
    }
}

/// The value of `text` in nano-units (`"250m"` → 250 000 000), rounded up
/// when the text is finer than a nano-unit.
pub fn nano_units(text: &str) -> Result<i128, QuantityError> {
    let error = |problem| QuantityError {
        text: text.to_owned(),
        problem,
    };
    parse_exact(text)
        .map_err(error)?
        .nano_units()
        .ok_or_else(|| error(QuantityProblem::OutOfRange))
}

/// The value of a k8s-openapi [`Quantity`] in nano-units.
pub fn quantity_nano_units(quantity: &Quantity) -> Result<i128, QuantityError> {
    nano_units(&quantity.0)
}

/// `nanos` nano-units in the API server's canonical form: the largest
/// decimal suffix that keeps the number whole (`250000000` → `"250m"`,
/// `2000000000000` → `"2k"`). [`nano_units`] reads it back unchanged
/// whenever the magnitude is below 10³⁸.
pub fn format_nano_units(nanos: i128) -> String {
    if nanos == 0 {
        return "0".to_owned();
    }
    for (suffix, power) in DECIMAL_SUFFIXES {
        // power + 9 is in 0..=27, so the divisor fits.
        let divisor = 10i128.pow((power + 9).unsigned_abs());
        if nanos % divisor == 0 {
            return format!("{}{suffix}", nanos / divisor);
        }
    }
    format!("{nanos}n")
}

fn parse_exact(text: &str) -> Result<ExactQuantity, QuantityProblem> {
    if text.is_empty() {
        return Err(QuantityProblem::Empty);
    }
    let (negative, unsigned) = match (text.strip_prefix('-'), text.strip_prefix('+')) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, text),
    };
    let (whole, rest) = split_digits(unsigned);
    let (fraction, suffix) = match rest.strip_prefix('.') {
        Some(after_point) => split_digits(after_point),
        None => ("", rest),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(QuantityProblem::NoDigits);
    }
    let (decimal_from_suffix, binary_exponent) = read_suffix(suffix)?;
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(QuantityProblem::TooManyDigits);
    }
    let mantissa = if significant.is_empty() {
        0
    } else {
        significant
            .parse::<u128>()
            .map_err(|_| QuantityProblem::TooManyDigits)?
    };
    let fraction_len = i32::try_from(fraction.len()).map_err(|_| QuantityProblem::TooManyDigits)?;
    Ok(ExactQuantity {
        negative: negative && mantissa != 0,
        mantissa,
        decimal_exponent: decimal_from_suffix - fraction_len,
        binary_exponent,
    })
}

/// The leading ASCII digits of `text`, and the rest.
fn split_digits(text: &str) -> (&str, &str) {
    let len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(len)
}

/// The suffix's power of ten and power of 1024.
fn read_suffix(suffix: &str) -> Result<(i32, u32), QuantityProblem> {
    if let Some((_, power)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Ok((*power, 0));
    }
    if let Some((_, power)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Ok((0, *power));
    }
    let unknown = || QuantityProblem::UnknownSuffix(suffix.to_owned());
    let exponent = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or_else(unknown)?;
    let digits = exponent
        .strip_prefix('-')
        .or_else(|| exponent.strip_prefix('+'))
        .unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    let value: i32 = exponent.parse().map_err(|_| QuantityProblem::OutOfRange)?;
    if value.abs() > MAX_EXPONENT {
        return Err(QuantityProblem::OutOfRange);
    }
    Ok((value, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NANO: i128 = 1_000_000_000;

    fn nanos(text: &str) -> i128 {
        nano_units(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn problem(text: &str) -> QuantityProblem {
        nano_units(text).unwrap_err().problem
    }

    #[test]
    fn cpu_forms_the_api_server_writes() {
        assert_eq!(nanos("250m"), 250_000_000);
        assert_eq!(nanos("1"), NANO);
        assert_eq!(nanos("0.5"), 500_000_000);
        assert_eq!(nanos("100n"), 100);
        assert_eq!(nanos("12345u"), 12_345_000);
        assert_eq!(nanos("2k"), 2_000 * NANO);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("1.5"), 1_500_000_000);
        assert_eq!(nanos("0.1m"), 100_000);
    }

    #[test]
    fn every_decimal_and_binary_suffix() {
        assert_eq!(nanos("3M"), 3_000_000 * NANO);
        assert_eq!(nanos("3G"), 3_000_000_000 * NANO);
        assert_eq!(nanos("1T"), 10i128.pow(21));
        assert_eq!(nanos("1P"), 10i128.pow(24));
        assert_eq!(nanos("1E"), 10i128.pow(27));
        assert_eq!(nanos("1Ki"), 1024 * NANO);
        assert_eq!(nanos("1Mi"), 1024 * 1024 * NANO);
        assert_eq!(nanos("1.5Gi"), 1024 * 1024 * 1024 * 3 / 2 * NANO);
        assert_eq!(nanos("2Ti"), 2 * 1024i128.pow(4) * NANO);
        assert_eq!(nanos("1Pi"), 1024i128.pow(5) * NANO);
        assert_eq!(nanos("1Ei"), 1024i128.pow(6) * NANO);
    }

    #[test]
    fn decimal_exponents_are_not_exa() {
        assert_eq!(nanos("1e3"), 1_000 * NANO);
        assert_eq!(nanos("1E3"), 1_000 * NANO);
        assert_eq!(nanos("5e-3"), 5_000_000);
        assert_eq!(nanos("1.5e+2"), 150 * NANO);
        assert_eq!(nanos("1E"), 10i128.pow(27));
    }

    #[test]
    fn signs_and_bare_points() {
        assert_eq!(nanos("+1"), NANO);
        assert_eq!(nanos("-250m"), -250_000_000);
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(nanos("5."), 5 * NANO);
        assert_eq!(nanos("-0"), 0);
        assert_eq!(nanos("007"), 7 * NANO);
    }

    #[test]
    fn finer_than_a_nano_unit_rounds_up() {
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1.0001n"), 2);
        assert_eq!(nanos("1.000n"), 1);
        assert_eq!(nanos("-1.5n"), -1);
        assert_eq!(nanos("1e-30"), 1);
        assert_eq!(nanos("0e-30"), 0);
    }

    #[test]
    fn malformed_text_is_refused_with_a_reason() {
        assert_eq!(problem(""), QuantityProblem::Empty);
        assert_eq!(problem("m"), QuantityProblem::NoDigits);
        assert_eq!(problem("-"), QuantityProblem::NoDigits);
        assert_eq!(problem("."), QuantityProblem::NoDigits);
        assert_eq!(problem("1x"), QuantityProblem::UnknownSuffix("x".into()));
        assert_eq!(problem("1 m"), QuantityProblem::UnknownSuffix(" m".into()));
        assert_eq!(problem("1mi"), QuantityProblem::UnknownSuffix("mi".into()));
        assert_eq!(problem("1e"), QuantityProblem::UnknownSuffix("e".into()));
        assert_eq!(problem("1e-"), QuantityProblem::UnknownSuffix("e-".into()));
        assert_eq!(
            problem("1.2.3"),
            QuantityProblem::UnknownSuffix(".3".into())
        );
        assert_eq!(problem("1e99999999999"), QuantityProblem::OutOfRange);
        assert_eq!(problem("1e1001"), QuantityProblem::OutOfRange);
        assert_eq!(problem("1e40"), QuantityProblem::OutOfRange);
        assert_eq!(problem(&"9".repeat(39)), QuantityProblem::TooManyDigits);
        assert_eq!(
            nano_units("1x").unwrap_err().to_string(),
            "invalid quantity \"1x\": unknown suffix \"x\" (expected n, u, m, k, M, G, T, P, E, Ki…Ei or an exponent)"
        );
    }

    #[test]
    fn canonical_form_uses_the_largest_whole_suffix() {
        assert_eq!(format_nano_units(0), "0");
        assert_eq!(format_nano_units(250_000_000), "250m");
        assert_eq!(format_nano_units(NANO), "1");
        assert_eq!(format_nano_units(1_500_000_000), "1500m");
        assert_eq!(format_nano_units(100), "100n");
        assert_eq!(format_nano_units(12_345_000), "12345u");
        assert_eq!(format_nano_units(2_000 * NANO), "2k");
        assert_eq!(format_nano_units(-3_000_000), "-3m");
        assert_eq!(format_nano_units(10i128.pow(27)), "1E");
    }

    #[test]
    fn k8s_openapi_quantities_are_read() {
        assert_eq!(
            quantity_nano_units(&Quantity("750m".into())),
            Ok(750_000_000)
        );
    }

    proptest! {
        #[test]
        fn formatting_then_parsing_round_trips(n in any::<i64>(), scale in 0u32..=18) {
            let value = i128::from(n) * 10i128.pow(scale);
            prop_assert_eq!(nano_units(&format_nano_units(value)), Ok(value));
        }

        #[test]
        fn decimal_suffixes_scale_the_number(m in 0u64..100_000_000_000, index in 0usize..DECIMAL_SUFFIXES.len()) {
            let (suffix, power) = DECIMAL_SUFFIXES[index];
            let expected = i128::from(m) * 10i128.pow((power + 9).unsigned_abs());
            prop_assert_eq!(nano_units(&format!("{m}{suffix}")), Ok(expected));
        }

        #[test]
        fn binary_suffixes_scale_the_number(m in 0u32.., index in 0usize..BINARY_SUFFIXES.len()) {
            let (suffix, power) = BINARY_SUFFIXES[index];
            let expected = i128::from(m) * 1024i128.pow(power) * NANO;
            prop_assert_eq!(nano_units(&format!("{m}{suffix}")), Ok(expected));
        }

        #[test]
        fn fractions_round_up_to_a_nano_unit(whole in 0u32.., fraction in "[0-9]{1,15}") {
            let digits: Vec<i128> = fraction.bytes().map(|b| i128::from(b - b'0')).collect();
            let mut nanos_part = 0i128;
            for place in 0..9 {
                nanos_part = nanos_part * 10 + digits.get(place).copied().unwrap_or(0);
            }
            let finer = digits.iter().skip(9).any(|d| *d != 0);
            let expected = i128::from(whole) * NANO + nanos_part + i128::from(finer);
            prop_assert_eq!(nano_units(&format!("{whole}.{fraction}")), Ok(expected));
        }

        #[test]
        fn exponents_equal_the_spelled_out_number(m in 0u32..1_000_000, exponent in 0u32..12) {
            let spelled = format!("{m}{}", "0".repeat(exponent as usize));
            prop_assert_eq!(nano_units(&format!("{m}e{exponent}")), nano_units(&spelled));
        }

        #[test]
        fn any_text_is_read_or_refused_without_panicking(text in ".{0,24}") {
            let _ = nano_units(&text);
        }
    }
}
