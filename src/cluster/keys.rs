//! Grouping keys as keys of the NATS key-value bucket: `g.` and the key's bytes in URL-safe
//! base64 without padding. NATS keys allow only `A-Z a-z 0-9 - _ = / .` (and no empty tokens
//! between dots); base64url stays inside that alphabet, has no dots, and decodes back to
//! exactly the grouping key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::model::GroupingKey;

const PREFIX: &str = "g.";

pub fn encode(key: &GroupingKey) -> String {
    let mut out = String::from(PREFIX);
    URL_SAFE_NO_PAD.encode_string(key.as_bytes(), &mut out);
    out
}

/// The grouping key a bucket key stands for; `None` for keys this gateway did not write.
pub fn decode(key: &str) -> Option<GroupingKey> {
    let encoded = key.strip_prefix(PREFIX)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    GroupingKey::from_encoded(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_within_the_nats_alphabet() {
        for labels in [
            vec![("job", "a")],
            vec![("job", "x/y z"), ("instance", "")],
            vec![("job", "Πρ.ο"), ("a.b", "=\u{1F600}")],
        ] {
            let key = GroupingKey::from_labels(labels);
            let encoded = encode(&key);
            assert!(
                encoded[PREFIX.len()..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{encoded}"
            );
            assert_eq!(decode(&encoded), Some(key));
        }
        assert_eq!(decode("other.key"), None);
        assert_eq!(decode("g.!!"), None);
    }
}
