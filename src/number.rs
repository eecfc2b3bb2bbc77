//! Numbers as the Prometheus ecosystem writes them.
//!
//! Values are written like Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which is what
//! the Go client (and so most exporters) print: the shortest digits that read back
//! to the same `f64`, in plain notation for decimal exponents -4 to 5 and in
//! scientific notation (`1e+06`, `1.5e-05`) outside, so `1e300` stays short.
//! Infinities are `+Inf` and `-Inf`, not-a-number is `NaN`.
//!
//! OpenMetrics wants `le` bounds as "canonical numbers": the same rendering with
//! `.0` appended when there is neither a point nor an exponent (`1.0`, `1e+06`).

use std::fmt::Write as _;

/// Appends `v` in the Go `'g'` form.
pub(crate) fn write_float(buf: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        buf.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        buf.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < MAX_EXACT {
        if v.is_sign_negative() {
            buf.push(b'-');
        }
        write_count(buf, v.abs() as u64);
    } else {
        write_general(buf, v);
    }
}

/// Appends `v` as an OpenMetrics canonical number.
pub(crate) fn write_canonical(buf: &mut Vec<u8>, v: f64) {
    let start = buf.len();
    write_float(buf, v);
    let written = &buf[start..];
    if v.is_finite() && !written.iter().any(|&b| b == b'.' || b == b'e') {
        buf.extend_from_slice(b".0");
    }
}

/// `v` rendered by [`write_float`] or, if `canonical`, by [`write_canonical`].
pub(crate) fn float_string(v: f64, canonical: bool) -> String {
    let mut buf = Vec::with_capacity(24);
    if canonical {
        write_canonical(&mut buf, v);
    } else {
        write_float(&mut buf, v);
    }
    // Only ASCII digits, signs, '.', 'e', "Inf" and "NaN" are ever written.
    String::from_utf8(buf).unwrap_or_default()
}

/// 2^53: every whole number below it is an exact `f64`, and its shortest
/// round-trip digits are its own decimal digits.
pub(crate) const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Appends a count as Go prints `float64(n)`: plain up to 999999, then `1.234567e+06`.
/// Exact and fast, which matters because most numbers in a scrape are counts.
pub(crate) fn write_count(buf: &mut Vec<u8>, n: u64) {
    if n as f64 >= MAX_EXACT {
        write_general(buf, n as f64);
        return;
    }
    let mut digits = [0u8; 20];
    let digits = decimal(&mut digits, n);
    if digits.len() <= 6 {
        buf.extend_from_slice(digits);
    } else {
        let exp = digits.len() as i32 - 1;
        let significant = digits.len() - digits.iter().rev().take_while(|&&d| d == b'0').count();
        write_digits(buf, &digits[..significant], exp);
    }
}

/// Appends `n` in plain decimal digits.
pub(crate) fn write_uint(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    buf.extend_from_slice(decimal(&mut digits, n));
}

/// Writes the decimal digits of `n` at the end of `digits` and returns them.
fn decimal(digits: &mut [u8; 20], n: u64) -> &[u8] {
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &digits[start..]
}

/// Appends a finite, non-integral (or huge) `v`, taking its shortest digits from
/// the standard library's `{:e}` formatting.
fn write_general(buf: &mut Vec<u8>, v: f64) {
    let mut text = StackText::default();
    // 24 bytes suffice for any f64 ("-2.2250738585072014e-308"); 40 leave margin.
    if write!(text, "{:e}", v.abs()).is_err() {
        buf.extend_from_slice(b"NaN");
        return;
    }
    let text = &text.bytes[..text.len];
    let e = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let mut digits = [0u8; 20];
    let mut count = 0;
    for &b in text[..e]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .take(digits.len())
    {
        digits[count] = b;
        count += 1;
    }
    let exp = std::str::from_utf8(&text[(e + 1).min(text.len())..])
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(0);
    if v.is_sign_negative() {
        buf.push(b'-');
    }
    write_digits(buf, &digits[..count], exp);
}

/// Appends `0.d1d2d3... x 10^(exp+1)`, i.e. the digits with the point after the
/// first one and the decimal exponent `exp`, the way Go's `'g'` lays them out.
fn write_digits(buf: &mut Vec<u8>, digits: &[u8], exp: i32) {
    if !(-4..6).contains(&exp) {
        buf.push(digits[0]);
        if digits.len() > 1 {
            buf.push(b'.');
            buf.extend_from_slice(&digits[1..]);
        }
        buf.push(b'e');
        buf.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            buf.push(b'0');
        }
        let mut text = StackText::default();
        let _ = write!(text, "{e}");
        buf.extend_from_slice(&text.bytes[..text.len]);
    } else if exp >= 0 {
        let whole = exp as usize + 1;
        if digits.len() <= whole {
            buf.extend_from_slice(digits);
            buf.resize(buf.len() + whole - digits.len(), b'0');
        } else {
            buf.extend_from_slice(&digits[..whole]);
            buf.push(b'.');
            buf.extend_from_slice(&digits[whole..]);
        }
    } else {
        buf.extend_from_slice(b"0.");
        buf.resize(buf.len() + (-exp - 1) as usize, b'0');
        buf.extend_from_slice(digits);
    }
}

/// A small buffer on the stack for `core::fmt` output.
struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dest = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: f64) -> String {
        float_string(v, false)
    }

    fn canonical(v: f64) -> String {
        float_string(v, true)
    }

    #[test]
    fn like_go_strconv_g_shortest() {
        // Each pair was checked against Go's strconv.FormatFloat(v, 'g', -1, 64).
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (0.0000123, "1.23e-05"),
            (123456.0, "123456"),
            (999999.0, "999999"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456.7, "123456.7"),
            (1234567.8, "1.2345678e+06"),
            (1e21, "1e+21"),
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (1e-300, "1e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1603020844.3325655, "1.6030208443325655e+09"),
            (0.0011820793151855469, "0.0011820793151855469"),
            (9007199254740992.0, "9.007199254740992e+15"),
            (9007199254740993.0, "9.007199254740992e+15"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (2.5, "2.5"),
            (100.0, "100"),
            (-123.456, "-123.456"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for &(v, want) in cases {
            assert_eq!(g(v), want, "{v:?}");
        }
    }

    #[test]
    fn openmetrics_canonical_numbers() {
        // The examples of the OpenMetrics 1.0 "Canonical Numbers" section.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (0.001, "0.001"),
            (0.002, "0.002"),
            (0.01, "0.01"),
            (0.1, "0.1"),
            (0.9, "0.9"),
            (0.95, "0.95"),
            (0.99, "0.99"),
            (0.999, "0.999"),
            (1.0, "1.0"),
            (1.7, "1.7"),
            (10.0, "10.0"),
            (1e-10, "1e-10"),
            (1e-9, "1e-09"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (1e10, "1e+10"),
            (1e23, "1e+23"),
            (1.1e23, "1.1e+23"),
            (f64::INFINITY, "+Inf"),
        ];
        for &(v, want) in cases {
            assert_eq!(canonical(v), want, "{v:?}");
        }
    }

    #[test]
    fn every_rendering_reads_back_to_the_same_value() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..100_000 {
            // xorshift: a spread of bit patterns, so every exponent range is hit.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let text = g(v);
            let back: f64 = text.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v:?} -> {text}");
            assert!(text.len() <= 24, "{text}");
        }
    }

    #[test]
    fn counts_match_the_float_rendering() {
        for n in [
            0u64,
            7,
            999_999,
            1_000_000,
            1_000_001,
            1_200_000,
            123_456_789,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            write_count(&mut buf, n);
            assert_eq!(String::from_utf8(buf).unwrap(), g(n as f64), "{n}");
        }
    }
}
