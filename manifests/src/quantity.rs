//! Kubernetes resource quantities (`128Mi`, `1G`, `500m`, `0.5`, `1e3`), as taken by
//! `rkt run --memory/--cpu` and Pod `resources.limits`.
//!
//! The grammar is Kubernetes': an optionally signed decimal number (`1`, `1.5`,
//! `.5`, `5.`) followed by at most one suffix: a binary one (`Ki` .. `Ei`), a
//! decimal one (`m`, `k`, `M`, `G`, `T`, `P`, `E`), or a decimal exponent
//! (`e3`, `E-2`). rkt also takes `K` for `k`, as it always has.
//!
//! Values are computed exactly with integers (never through floating point)
//! and rounded up to a whole byte or millicore, as Kubernetes rounds them:
//! `0.1` CPU is 100 millicores and `1.5Gi` is 1610612736 bytes. Limits must be
//! positive.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

/// Decimal suffixes and their powers of ten.
const DECIMAL: [(&str, i32); 8] = [
    ("m", -3),
    ("k", 3),
    ("K", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// Binary suffixes and their powers of two.
const BINARY: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

const UNKNOWN_SUFFIX: &str =
    "unknown suffix (use Ki, Mi, Gi, Ti, Pi, Ei, or m, k, M, G, T, P, E, or an exponent such as e3)";

/// A parsed quantity: `(-1)^negative × digits × 10^exp10 × 2^exp2`.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    /// The significant decimal digits, without leading or trailing zeros
    /// (empty for zero).
    digits: String,
    exp10: i128,
    exp2: u32,
}

fn parse(input: &str) -> Result<Parsed, &'static str> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty (expected a number such as 128Mi, 1G, 500m or 0.5)");
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, rest) = split_digits(s);
    let (frac, suffix) = match rest.strip_prefix('.') {
        Some(after) => split_digits(after),
        None => ("", rest),
    };
    if int.is_empty() && frac.is_empty() {
        return Err("expected a number before the suffix");
    }
    if suffix.starts_with('.') {
        return Err("more than one decimal point");
    }
    let (exp10, exp2) = parse_suffix(suffix)?;
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    Ok(Parsed {
        negative,
        digits: trimmed.to_string(),
        exp10: exp10 - frac.len() as i128 + (digits.len() - trimmed.len()) as i128,
        exp2,
    })
}

/// The leading ASCII digits of `s`, and the rest.
fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.bytes().take_while(u8::is_ascii_digit).count())
}

fn parse_suffix(suffix: &str) -> Result<(i128, u32), &'static str> {
    if suffix.is_empty() {
        return Ok((0, 0));
    }
    if let Some(&(_, p)) = BINARY.iter().find(|(name, _)| *name == suffix) {
        return Ok((0, p));
    }
    if let Some(&(_, p)) = DECIMAL.iter().find(|(name, _)| *name == suffix) {
        return Ok((p.into(), 0));
    }
    if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        let (negative, unsigned) = match exp.strip_prefix('-') {
            Some(u) => (true, u),
            None => (false, exp.strip_prefix('+').unwrap_or(exp)),
        };
        let (digits, after) = split_digits(unsigned);
        if !digits.is_empty() && after.is_empty() {
            // Far beyond any range either way; refused rather than saturated.
            let value: i64 = digits.parse().map_err(|_| "the exponent is out of range")?;
            let value = i128::from(value);
            return Ok((if negative { -value } else { value }, 0));
        }
        if !digits.is_empty() {
            return Err("text after the exponent (only one suffix is allowed)");
        }
        if !suffix.starts_with('E') || exp.starts_with(['+', '-']) {
            return Err("an exponent needs digits (e3, E-2)");
        }
    }
    let known = BINARY
        .iter()
        .map(|(n, _)| *n)
        .chain(DECIMAL.iter().map(|(n, _)| *n));
    if known.into_iter().any(|n| suffix.starts_with(n)) {
        return Err("text after the suffix (only one suffix is allowed)");
    }
    Err(UNKNOWN_SUFFIX)
}

/// `parsed × 10^scale`, rounded up to an integer.
/// `None` when it does not fit in a `u64`. `parsed` must not be negative.
fn ceil_scaled(parsed: &Parsed, scale: i128) -> Option<u64> {
    let digits = parsed.digits.as_str();
    if digits.is_empty() {
        return Some(0);
    }
    let len = digits.len() as i128;
    let exp10 = parsed.exp10 + scale;
    // The value is at least 10^(len - 1 + exp10): from 10^20 on it is beyond
    // u64::MAX (about 1.8 × 10^19) before the binary factor.
    if len - 1 + exp10 >= 20 {
        return None;
    }
    // Below 10^-40 even the largest binary factor (2^60) keeps it under 1.
    if len + exp10 < -40 {
        return Some(1);
    }
    // Split into the integer part (at most 20 digits) and the fraction.
    let (int, frac) = if exp10 >= 0 {
        (
            format!("{digits}{}", "0".repeat(exp10 as usize)),
            String::new(),
        )
    } else {
        let point = len + exp10;
        if point > 0 {
            let (i, f) = digits.split_at(point as usize);
            (i.to_string(), f.to_string())
        } else {
            (
                String::new(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        }
    };
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let factor = 1u128 << parsed.exp2;
    // frac × 2^exp2 by long multiplication from the last digit: the final
    // carry is its integer part; any non-zero digit left is a fraction.
    let mut carry = 0u128;
    let mut fractional = false;
    for d in frac.bytes().rev() {
        let x = u128::from(d - b'0') * factor + carry;
        let digit = x % 10;
        fractional |= digit != 0;
        carry = x / 10;
    }
    let total = int
        .checked_mul(factor)?
        .checked_add(carry)?
        .checked_add(u128::from(fractional))?;
    u64::try_from(total).ok()
}

/// Parses `input` and scales it to the unit `10^-scale` (0 for bytes, 3 for
/// millicores), rounding up; refuses negative values and zero.
fn positive(input: &str, scale: i128, too_large: &'static str) -> Result<u64, QuantityError> {
    let err = |reason| QuantityError {
        input: input.to_string(),
        reason,
    };
    let parsed = parse(input).map_err(err)?;
    if parsed.digits.is_empty() {
        return Err(err("must be greater than zero"));
    }
    if parsed.negative {
        return Err(err("must not be negative"));
    }
    ceil_scaled(&parsed, scale).ok_or_else(|| err(too_large))
}

/// Bytes from `128Mi`, `1G`, `512k`, `1024`, `1.5Gi`, `1e9` (any Kubernetes
/// quantity; fractions of a byte round up).
pub fn parse_bytes(input: &str) -> Result<u64, QuantityError> {
    positive(input, 0, "too large (at most 16Ei - 1 bytes)")
}

/// The most CPU a limit may ask for, in millicores (a million cores).
const MAX_CPU_MILLIS: u64 = 1_000_000_000;

/// CPU in millicores from `500m`, `2`, `0.5`, `100e-3` (any Kubernetes
/// quantity; fractions of a millicore round up).
pub fn parse_cpu_millis(input: &str) -> Result<u64, QuantityError> {
    const TOO_LARGE: &str = "too large (at most 1000000 cores)";
    let millis = positive(input, 3, TOO_LARGE)?;
    if millis > MAX_CPU_MILLIS {
        return Err(QuantityError {
            input: input.to_string(),
            reason: TOO_LARGE,
        });
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        for (input, want) in [
            ("128Mi", 128 << 20),
            ("128M", 128_000_000),
            ("1Gi", 1 << 30),
            ("1.5Gi", 1_610_612_736),
            ("4096", 4096),
            ("1.5Ki", 1536),
            ("0.5Ki", 512),
            (".5Ki", 512),
            ("5.Ki", 5120),
            ("+1k", 1000),
            ("1K", 1000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("15.999Ei", 18_445_591_152_204_944_770),
            ("1e3", 1000),
            ("1E6", 1_000_000),
            ("1e+3", 1000),
            ("12e-3", 1),
            ("129e6", 129_000_000),
            ("0.1", 1),
            ("500m", 1),
            ("1001m", 2),
            ("1000m", 1),
            ("0.0000000000000000000000000000000000000000000001Ei", 1),
            ("1.000000000000000000000000000000000000000001", 2),
            ("00012.3400k", 12340),
            ("18446744073709551615", u64::MAX),
            ("18446744073709551.615k", u64::MAX),
            (" 64Mi ", 64 << 20),
        ] {
            assert_eq!(parse_bytes(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn cpu() {
        for (input, want) in [
            ("500m", 500),
            ("2", 2000),
            ("0.25", 250),
            ("0.1", 100),
            (".1", 100),
            ("100e-3", 100),
            ("1e-3", 1),
            ("0.0001", 1),
            ("1.4m", 2),
            ("0.5m", 1),
            ("1k", 1_000_000),
            ("1Ki", 1_024_000),
            ("1000000", MAX_CPU_MILLIS),
            ("+3", 3000),
        ] {
            assert_eq!(parse_cpu_millis(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (input, reason) in [
            ("", "empty"),
            ("  ", "empty"),
            ("Mi", "expected a number before the suffix"),
            (".", "expected a number before the suffix"),
            ("-", "expected a number before the suffix"),
            ("+Ki", "expected a number before the suffix"),
            ("1.2.3", "more than one decimal point"),
            ("1..2", "more than one decimal point"),
            ("1MiMi", "text after the suffix"),
            ("1kM", "text after the suffix"),
            ("1Mi5", "text after the suffix"),
            ("1e3Mi", "text after the exponent"),
            ("1Ee3", "text after the suffix"),
            ("1e", "an exponent needs digits"),
            ("1E+", "an exponent needs digits"),
            ("1e-", "an exponent needs digits"),
            ("12XB", "unknown suffix"),
            ("1 Mi", "unknown suffix"),
            ("1mi", "text after the suffix"),
            ("1KiB", "text after the suffix"),
            ("0x10", "unknown suffix"),
            ("0", "must be greater than zero"),
            ("0.0Gi", "must be greater than zero"),
            ("-0", "must be greater than zero"),
            ("-1", "must not be negative"),
            ("-1Mi", "must not be negative"),
            ("16Ei", "too large"),
            ("18446744073709551616", "too large"),
            ("1e20", "too large"),
            ("99999999999999999999999999999999999999999999", "too large"),
            ("1e99999999999999999999", "the exponent is out of range"),
        ] {
            let e = parse_bytes(input).unwrap_err();
            assert_eq!(e.input, input, "{input}");
            assert!(e.reason.starts_with(reason), "{input}: {e}");
            assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
        }
        for (input, reason) in [
            ("0m", "must be greater than zero"),
            ("-500m", "must not be negative"),
            ("1000001", "too large"),
            ("1E", "too large"),
            ("1x", "unknown suffix"),
        ] {
            let e = parse_cpu_millis(input).unwrap_err();
            assert!(e.reason.starts_with(reason), "{input}: {e}");
        }
    }
}
