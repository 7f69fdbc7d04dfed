//! Grouping keys: the label set in a push URL that names a group.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Separates names and values in the encoded key. It cannot occur in UTF-8 text, so the encoding
/// is unambiguous.
const SEPARATOR: u8 = 0xFF;

/// The labels that identify a group, `job` always among them.
///
/// Stored in upstream's encoding (label names sorted, `name 0xFF value 0xFF name 0xFF value`), so
/// that the derived byte order is the order in which upstream's UI lists groups, and comparing or
/// hashing a key is a single slice operation. `{job="a"}` and `{job="a",instance=""}` are
/// different keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupingKey(Arc<[u8]>);

impl GroupingKey {
    /// Builds a key from label pairs; a name given twice keeps its last value.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let sorted: BTreeMap<&str, &str> = labels.into_iter().collect();
        let mut encoded = Vec::new();
        for (i, (name, value)) in sorted.into_iter().enumerate() {
            if i > 0 {
                encoded.push(SEPARATOR);
            }
            encoded.extend_from_slice(name.as_bytes());
            encoded.push(SEPARATOR);
            encoded.extend_from_slice(value.as_bytes());
        }
        GroupingKey(encoded.into())
    }

    /// Rebuilds a key from `as_bytes()`, checking that it is well-formed (UTF-8 parts, names
    /// sorted and unique, an even number of parts).
    pub fn from_encoded(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return Some(GroupingKey(Arc::from(bytes)));
        }
        let parts: Vec<&str> = bytes
            .split(|&b| b == SEPARATOR)
            .map(std::str::from_utf8)
            .collect::<Result<_, _>>()
            .ok()?;
        if !parts.len().is_multiple_of(2) {
            return None;
        }
        let names: Vec<&str> = parts.iter().step_by(2).copied().collect();
        if !names.windows(2).all(|w| w[0] < w[1]) {
            return None;
        }
        Some(GroupingKey(Arc::from(bytes)))
    }

    /// The label pairs, sorted by name.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        let mut parts = self
            .0
            .split(|&b| b == SEPARATOR)
            .map(|part| std::str::from_utf8(part).unwrap_or_default());
        let empty = self.0.is_empty();
        std::iter::from_fn(move || {
            if empty {
                return None;
            }
            let name = parts.next()?;
            let value = parts.next()?;
            Some((name, value))
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn job(&self) -> &str {
        self.get("job").unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.labels().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded form, as upstream uses it in its persistence file and UI ordering.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `{instance="i", job="j"}`, the way log lines and error messages show a group.
impl fmt::Display for GroupingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.labels().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for GroupingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_upstream() {
        // Upstream's TestGroupingKeyForLabels.
        assert_eq!(GroupingKey::from_labels([]).as_bytes(), b"");
        assert_eq!(
            GroupingKey::from_labels([("foo", "bar")]).as_bytes(),
            b"foo\xFFbar"
        );
        assert_eq!(
            GroupingKey::from_labels([("foo", "bar"), ("dings", "bums")]).as_bytes(),
            b"dings\xFFbums\xFFfoo\xFFbar"
        );
    }

    #[test]
    fn independent_of_label_order_and_last_duplicate_wins() {
        let a = GroupingKey::from_labels([("job", "j"), ("instance", "i"), ("x", "")]);
        let b = GroupingKey::from_labels([("x", ""), ("instance", "i"), ("job", "j")]);
        assert_eq!(a, b);
        let c = GroupingKey::from_labels([
            ("job", "j"),
            ("instance", "a"),
            ("instance", "i"),
            ("x", ""),
        ]);
        assert_eq!(a, c);
        assert_eq!(
            a.labels().collect::<Vec<_>>(),
            vec![("instance", "i"), ("job", "j"), ("x", "")]
        );
        assert_eq!(a.job(), "j");
        assert_eq!(a.get("x"), Some(""));
        assert_ne!(
            a,
            GroupingKey::from_labels([("job", "j"), ("instance", "i")])
        );
    }

    #[test]
    fn encoded_round_trip() {
        let key = GroupingKey::from_labels([("job", "j"), ("a", ""), ("b", "Πρ")]);
        assert_eq!(GroupingKey::from_encoded(key.as_bytes()), Some(key));
        assert_eq!(GroupingKey::from_encoded(b"job"), None);
        assert_eq!(GroupingKey::from_encoded(b"job\xFFa\xFFjob\xFFb"), None);
        assert_eq!(GroupingKey::from_encoded(b"b\xFF1\xFFa\xFF2"), None);
    }

    #[test]
    fn order_is_upstream_byte_order() {
        // "ab..." sorts before "a\xFF..." in byte order, unlike tuple order.
        let a = GroupingKey::from_labels([("job", "a")]);
        let ab = GroupingKey::from_labels([("job", "ab")]);
        assert!(a < ab);
        let with_a = GroupingKey::from_labels([("a", "1"), ("job", "x")]);
        let with_ab = GroupingKey::from_labels([("ab", "1"), ("job", "x")]);
        assert!(with_ab < with_a);
    }
}
