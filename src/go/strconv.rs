//! Go's `strconv` (and `fmt`) as upstream uses it: floats as `strconv.FormatFloat(f, 'g', -1,
//! 64)`, which is also what `fmt.Sprint` prints, and quoted strings as `%q`. Upstream's
//! exposition, JSON API and error messages all use these.

use std::fmt::Write as _;

/// Appends `f` formatted as Go's `%g` with the shortest precision that round-trips: exponent form
/// iff the decimal exponent is below -4 or at least 6 (`1e+06`, `1e-05`, `123456.7`, `0.0001`),
/// at least two exponent digits, `NaN`, `+Inf`, `-Inf`, `-0`.
pub fn push_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    // Rust's `{:e}` prints the shortest round-tripping digits, as Go does: "-1.2345e-7".
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let mut digits = [0u8; 24];
    let mut n = 0;
    for b in mantissa.bytes().filter(|b| b.is_ascii_digit()) {
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let digits = &digits[..n];
    if negative {
        out.push(b'-');
    }
    if !(-4..6).contains(&exponent) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(magnitude.to_string().as_bytes());
        return;
    }
    // Fixed notation: the decimal point sits after `exponent + 1` digits.
    let point = exponent + 1;
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', point - digits.len()));
        } else {
            out.extend_from_slice(&digits[..point]);
            out.push(b'.');
            out.extend_from_slice(&digits[point..]);
        }
    }
}

/// `f` as Go's `fmt.Sprint(f)` prints it.
pub fn float_string(f: f64) -> String {
    let mut out = Vec::with_capacity(24);
    push_float(&mut out, f);
    String::from_utf8(out).unwrap_or_default()
}

/// `s` quoted as Go's `%q` does it: double quotes, backslash escapes for quotes, backslashes and
/// control characters, `\xNN` for bytes that are not UTF-8, `\uNNNN` for characters that are
/// not printable.
pub fn quote(s: impl AsRef<[u8]>) -> String {
    let mut out = String::with_capacity(s.as_ref().len() + 2);
    out.push('"');
    for chunk in s.as_ref().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if is_printable(c) => out.push(c),
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// `c` quoted as Go's `%q` prints a byte or rune: single quotes, the same escapes as [`quote`].
pub fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c => {
            let quoted = quote(c.to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// An approximation of Go's `unicode.IsPrint` for characters outside ASCII: everything but
/// controls, spaces other than U+0020, format characters, private use and non-characters.
fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return c == ' ' || c.is_ascii_graphic();
    }
    let u = c as u32;
    !(c.is_control()
        || c.is_whitespace()
        || u == 0xAD
        || (0x200B..=0x200F).contains(&u)
        || (0x202A..=0x202E).contains(&u)
        || (0x2060..=0x206F).contains(&u)
        || u == 0xFEFF
        || (0xFFF9..=0xFFFB).contains(&u)
        || (0xE000..=0xF8FF).contains(&u)
        || (0xF0000..).contains(&u)
        || (u & 0xFFFE) == 0xFFFE
        || (0xFDD0..=0xFDEF).contains(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::approx_constant)]
    fn floats_like_go() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (100000.0, "100000"),
            (123456.7, "123456.7"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.7957273177183683e9, "1.7957273177183683e+09"),
            (1.583781848025745e9, "1.583781848025745e+09"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1, "0.1"),
            (0.3, "0.3"),
            (2.5, "2.5"),
            (99.23, "99.23"),
            (std::f64::consts::SQRT_2, "1.4142135623730951"),
            (1.414213562373095, "1.414213562373095"),
            (-2.0, "-2"),
            (250000.0, "250000"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (f, want) in cases {
            assert_eq!(float_string(*f), *want, "formatting {f:?}");
        }
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("line\nnext\r\t"), r#""line\nnext\r\t""#);
        assert_eq!(quote("\u{0}\u{7f}"), r#""\x00\x7f""#);
        assert_eq!(quote("Πρ"), "\"Πρ\"");
        assert_eq!(quote(b"a\xffb"), r#""a\xffb""#);
        assert_eq!(quote("\u{200b}"), r#""\u200b""#);
        assert_eq!(quote_char('-'), "'-'");
        assert_eq!(quote_char('\n'), r"'\n'");
        assert_eq!(quote_char('\''), r"'\''");
        assert_eq!(quote_char('"'), "'\"'");
    }
}
