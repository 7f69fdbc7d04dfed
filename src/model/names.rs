//! Metric and label names: validity under the legacy and UTF-8 schemes, and the escaping schemes
//! that map UTF-8 names onto legacy ones (for exposition) and back (for URL label names).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Which names are acceptable: upstream's `--push.enable-utf8-names` switches from `Legacy` to
/// `Utf8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NameValidation {
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, `[a-zA-Z_][a-zA-Z0-9_]*` for label names.
    #[default]
    Legacy,
    /// Any non-empty UTF-8 string.
    Utf8,
}

impl NameValidation {
    pub fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            NameValidation::Legacy => is_legacy_metric_name(name),
            NameValidation::Utf8 => !name.is_empty(),
        }
    }

    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            NameValidation::Legacy => is_legacy_label_name(name),
            NameValidation::Utf8 => !name.is_empty(),
        }
    }
}

pub fn is_legacy_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

pub fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How names that are not legacy-valid are shown to a scraper, negotiated by the `escaping`
/// parameter of the `Accept` header (prometheus/common's schemes). Legacy-valid names are never
/// changed by any scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EscapingScheme {
    /// Names are shown as they are, quoted in the text format.
    AllowUtf8,
    /// Every character not allowed in a legacy name becomes `_`.
    #[default]
    Underscores,
    /// `.` becomes `_dot_`, `_` becomes `__`, other invalid characters `__`.
    Dots,
    /// `U__` followed by the name with `_` doubled and other invalid characters as `_<hex>_`.
    Values,
}

impl EscapingScheme {
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "allow-utf-8" => Some(EscapingScheme::AllowUtf8),
            "underscores" => Some(EscapingScheme::Underscores),
            "dots" => Some(EscapingScheme::Dots),
            "values" => Some(EscapingScheme::Values),
            _ => None,
        }
    }

    pub fn as_param(self) -> &'static str {
        match self {
            EscapingScheme::AllowUtf8 => "allow-utf-8",
            EscapingScheme::Underscores => "underscores",
            EscapingScheme::Dots => "dots",
            EscapingScheme::Values => "values",
        }
    }

    /// A metric name as a scraper with this scheme sees it (borrowed when nothing changes).
    pub fn escape<'a>(self, name: &'a str) -> std::borrow::Cow<'a, str> {
        self.escape_as(name, true)
    }

    /// A label name as a scraper with this scheme sees it: as [`EscapingScheme::escape`], but
    /// `:` is escaped too, since a label name may not have one. (prometheus/common lets it
    /// through, and a legacy scraper then fails on the whole exposition.)
    pub fn escape_label<'a>(self, name: &'a str) -> std::borrow::Cow<'a, str> {
        self.escape_as(name, false)
    }

    fn escape_as<'a>(self, name: &'a str, metric: bool) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        let legacy = if metric {
            is_legacy_metric_name(name)
        } else {
            is_legacy_label_name(name)
        };
        if name.is_empty() || legacy || self == EscapingScheme::AllowUtf8 {
            return Cow::Borrowed(name);
        }
        let legacy_char = |i: usize, c: char| {
            c.is_ascii_alphabetic()
                || c == '_'
                || (metric && c == ':')
                || (i > 0 && c.is_ascii_digit())
        };
        let mut out = String::with_capacity(name.len() + 8);
        match self {
            EscapingScheme::AllowUtf8 => unreachable!("returned above"),
            EscapingScheme::Underscores => {
                for (i, c) in name.char_indices() {
                    out.push(if legacy_char(i, c) { c } else { '_' });
                }
            }
            EscapingScheme::Dots => {
                for (i, c) in name.char_indices() {
                    match c {
                        '_' => out.push_str("__"),
                        '.' => out.push_str("_dot_"),
                        c if legacy_char(i, c) => out.push(c),
                        _ => out.push_str("__"),
                    }
                }
            }
            EscapingScheme::Values => {
                out.push_str("U__");
                for (i, c) in name.char_indices() {
                    match c {
                        '_' => out.push_str("__"),
                        c if legacy_char(i, c) => out.push(c),
                        c => {
                            use fmt::Write;
                            let _ = write!(out, "_{:x}_", c as u32);
                        }
                    }
                }
            }
        }
        Cow::Owned(out)
    }
}

/// Decodes a label name of the `U__` value-encoding scheme used in push URLs when UTF-8 names are
/// enabled: `__` is `_`, `_<hex>_` is that code point. Anything malformed leaves the whole name
/// unchanged, as upstream does.
pub fn unescape_value_encoding(name: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some(rest) = name.strip_prefix("U__") else {
        return Cow::Borrowed(name);
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('_') => {
                chars.next();
                out.push('_');
            }
            Some(_) => {
                let mut hex = String::new();
                let mut closed = false;
                for h in chars.by_ref() {
                    // Upstream gives up after six characters, closing `_` included.
                    if hex.len() >= 6 {
                        return Cow::Borrowed(name);
                    }
                    if h == '_' {
                        closed = true;
                        break;
                    }
                    if !h.is_ascii_hexdigit() {
                        return Cow::Borrowed(name);
                    }
                    hex.push(h);
                }
                let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                match (closed, decoded) {
                    (true, Some(c)) => out.push(c),
                    _ => return Cow::Borrowed(name),
                }
            }
            None => return Cow::Borrowed(name),
        }
    }
    Cow::Owned(out)
}

/// A metric family name. Cheap to clone: the store shares one allocation per distinct name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricName(Arc<str>);

impl MetricName {
    pub fn new(name: &str) -> Self {
        MetricName(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for MetricName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for MetricName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A family's help text, shared between groups that push the same text.
pub type HelpText = Arc<str>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names() {
        assert!(is_legacy_metric_name("a:b_c9"));
        assert!(!is_legacy_metric_name("9a"));
        assert!(!is_legacy_metric_name("a.b"));
        assert!(!is_legacy_metric_name(""));
        assert!(is_legacy_label_name("_a9"));
        assert!(!is_legacy_label_name("a:b"));
        assert!(!is_legacy_label_name("a-b"));
    }

    #[test]
    fn value_encoding_round_trip() {
        assert_eq!(
            unescape_value_encoding("U__dotted_2e_label_2e_name"),
            "dotted.label.name"
        );
        assert_eq!(unescape_value_encoding("U__a__b"), "a_b");
        assert_eq!(unescape_value_encoding("U______x"), "__x");
        assert_eq!(unescape_value_encoding("U_____x"), "U_____x");
        assert_eq!(unescape_value_encoding("plain"), "plain");
        // Malformed sequences leave the name as it is.
        assert_eq!(unescape_value_encoding("U__a_"), "U__a_");
        assert_eq!(unescape_value_encoding("U__a_zz_"), "U__a_zz_");
        assert_eq!(unescape_value_encoding("U__a_123456_"), "U__a_123456_");
        assert_eq!(unescape_value_encoding("U__a_1F600_"), "a\u{1F600}");
        assert_eq!(unescape_value_encoding("U__a_d800_"), "U__a_d800_");
        assert_eq!(unescape_value_encoding("U__a_2e"), "U__a_2e");
        let escaped = EscapingScheme::Values.escape("dotted.label.name");
        assert_eq!(escaped, "U__dotted_2e_label_2e_name");
        assert_eq!(unescape_value_encoding(&escaped), "dotted.label.name");
    }

    #[test]
    fn escaping_schemes_leave_legacy_names_alone() {
        for scheme in [
            EscapingScheme::Underscores,
            EscapingScheme::Dots,
            EscapingScheme::Values,
            EscapingScheme::AllowUtf8,
        ] {
            assert_eq!(scheme.escape("my_metric"), "my_metric");
        }
        assert_eq!(EscapingScheme::Underscores.escape("a.b-c"), "a_b_c");
        assert_eq!(EscapingScheme::Underscores.escape("1a"), "_a");
        assert_eq!(EscapingScheme::Dots.escape("a.b_c"), "a_dot_b__c");
        assert_eq!(EscapingScheme::AllowUtf8.escape("a.b"), "a.b");
    }
}
