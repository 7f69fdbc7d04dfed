//! JSON as Go's `encoding/json` writes it for upstream's API: compact, object keys sorted, and
//! `<`, `>`, `&`, U+2028 and U+2029 escaped (Go escapes them so JSON can sit inside HTML).
//! Clients and tests that compare API answers byte for byte see the same text.

use std::collections::BTreeMap;

/// A JSON value whose objects keep their keys sorted, as Go sorts map keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Bool(bool),
    /// Non-negative integers, the only numbers upstream's API writes as numbers.
    Uint(u64),
    Str(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub fn object<K: Into<String>>(entries: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Uint(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Json::Str(s) => write_string(out, s),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Json::Object(entries) => {
                out.push(b'{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(out, key);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

/// A JSON string with Go's escaping.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '\u{8}' => Some(b"\\b"),
            '\u{c}' => Some(b"\\f"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            c if c < ' ' || c == '<' || c == '>' || c == '&' => None,
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[plain_from..i]);
        match escape {
            Some(escape) => out.extend_from_slice(escape),
            None => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        plain_from = i + c.len_utf8();
    }
    out.extend_from_slice(&s.as_bytes()[plain_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_as_go_does() {
        assert_eq!(string("plain"), r#""plain""#);
        assert_eq!(string(r#"inst'a"n\ce1"#), r#""inst'a\"n\\ce1""#);
        assert_eq!(string("<b>&</b>"), r#""\u003cb\u003e\u0026\u003c/b\u003e""#);
        assert_eq!(
            string("a\nb\tc\r\u{1}\u{1f}\u{7f}"),
            "\"a\\nb\\tc\\r\\u0001\\u001f\u{7f}\""
        );
        assert_eq!(string("\u{2028}Björn\u{2029}"), "\"\\u2028Björn\\u2029\"");
    }

    #[test]
    fn objects_are_sorted_and_compact() {
        let value = Json::object([
            ("z", Json::Bool(false)),
            ("a", Json::Array(vec![Json::Uint(0), Json::str("1")])),
            ("m", Json::object::<&str>([])),
        ]);
        assert_eq!(value.to_bytes(), br#"{"a":[0,"1"],"m":{},"z":false}"#);
    }
}
