//! The grouping key in a push URL: `/metrics/job/<job>{/<label>/<value>}`, the `@base64`
//! forms, and (with UTF-8 names enabled) `U__`-escaped label names.

use std::collections::BTreeMap;

use super::router::Params;
use crate::go::quote;
use crate::model::{GroupingKey, NameValidation, label, unescape_value_encoding};

const BASE64_SUFFIX: &str = "@base64";

/// Why a push URL names no group. The texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid base64 encoding in job name {}: {reason}", quote(partial))]
    JobBase64 {
        partial: Vec<u8>,
        reason: Base64Error,
    },
    #[error("odd number of components in label string {}", quote(labels))]
    OddComponents { labels: String },
    #[error("improper label name {}", quote(name))]
    ImproperLabelName { name: String },
    #[error("invalid base64 encoding for label {name}={}: {reason}", quote(value))]
    LabelBase64 {
        name: String,
        value: String,
        reason: Base64Error,
    },
    #[error("job name is required")]
    JobRequired,
    #[error("the decoded {what} is not valid UTF-8")]
    NotUtf8 { what: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal base64 data at input byte {0}")]
pub struct Base64Error(pub usize);

/// Reads the grouping key from the route parameters, checking in upstream's order: the job's
/// base64, then the label pairs, then that the job is not empty.
pub fn grouping_key(
    params: &Params,
    job_base64: bool,
    validation: NameValidation,
) -> Result<GroupingKey, UrlError> {
    let job = if job_base64 {
        let bytes = decode_base64(&params.job)
            .map_err(|(partial, reason)| UrlError::JobBase64 { partial, reason })?;
        String::from_utf8(bytes).map_err(|_| UrlError::NotUtf8 { what: "job name" })?
    } else {
        params.job.clone()
    };
    let mut labels = split_labels(&params.rest, validation)?;
    if job.is_empty() {
        return Err(UrlError::JobRequired);
    }
    labels.insert(label::JOB.to_string(), job);
    Ok(GroupingKey::from_labels(
        labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    ))
}

/// Splits `/name/value/name/value...` into label pairs; a name given twice keeps its last
/// value.
fn split_labels(
    labels: &str,
    validation: NameValidation,
) -> Result<BTreeMap<String, String>, UrlError> {
    let mut result = BTreeMap::new();
    if labels.len() <= 1 {
        return Ok(result);
    }
    let components: Vec<&str> = labels[1..].split('/').collect();
    if !components.len().is_multiple_of(2) {
        return Err(UrlError::OddComponents {
            labels: labels.to_string(),
        });
    }
    for pair in components.chunks_exact(2) {
        let (name, value) = (pair[0], pair[1]);
        let trimmed = name.strip_suffix(BASE64_SUFFIX).unwrap_or(name);
        let unescaped = match validation {
            NameValidation::Utf8 => unescape_value_encoding(trimmed),
            NameValidation::Legacy => trimmed.into(),
        };
        // The reserved prefix is checked on the name as written, as upstream does.
        if !validation.is_valid_label_name(&unescaped)
            || trimmed.starts_with(label::RESERVED_PREFIX)
        {
            return Err(UrlError::ImproperLabelName {
                name: trimmed.to_string(),
            });
        }
        let value = if name == trimmed {
            value.to_string()
        } else {
            let bytes = decode_base64(value).map_err(|(_, reason)| UrlError::LabelBase64 {
                name: trimmed.to_string(),
                value: value.to_string(),
                reason,
            })?;
            String::from_utf8(bytes).map_err(|_| UrlError::NotUtf8 {
                what: "label value",
            })?
        };
        result.insert(unescaped.into_owned(), value);
    }
    Ok(result)
}

/// Decodes base64 as upstream does: URL-safe alphabet, every trailing `=` removed first, then
/// decoded without padding and without insisting that unused bits are zero; CR and LF are
/// skipped. On error, also returns what was decoded before the bad four-character group.
pub fn decode_base64(input: &str) -> Result<Vec<u8>, (Vec<u8>, Base64Error)> {
    let input = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut quantum = [0u8; 4];
    let mut filled = 0;
    for (position, &byte) in input.iter().enumerate() {
        if byte == b'\n' || byte == b'\r' {
            continue;
        }
        let Some(sextet) = sextet(byte) else {
            return Err((out, Base64Error(position)));
        };
        quantum[filled] = sextet;
        filled += 1;
        if filled == 4 {
            push_quantum(&mut out, &quantum, 4);
            filled = 0;
        }
    }
    match filled {
        0 => {}
        1 => {
            let last = input
                .iter()
                .rposition(|b| *b != b'\n' && *b != b'\r')
                .unwrap_or(0);
            return Err((out, Base64Error(last)));
        }
        n => push_quantum(&mut out, &quantum, n),
    }
    Ok(out)
}

fn sextet(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Appends the bytes of `chars` sextets (2 to 4) of a group.
fn push_quantum(out: &mut Vec<u8>, quantum: &[u8; 4], chars: usize) {
    let value = (u32::from(quantum[0]) << 18)
        | (u32::from(quantum[1]) << 12)
        | (u32::from(quantum[2]) << 6)
        | u32::from(quantum[3]);
    let bytes = [(value >> 16) as u8, (value >> 8) as u8, value as u8];
    out.extend_from_slice(&bytes[..chars - 1]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job: &str, labels: &str, base64: bool) -> Result<Vec<(String, String)>, String> {
        let params = Params {
            job: job.into(),
            rest: labels.into(),
        };
        grouping_key(&params, base64, NameValidation::Legacy)
            .map(|k| {
                k.labels()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    fn pairs(p: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        Ok(p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect())
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YQ=").unwrap(), b"a");
        assert_eq!(
            decode_base64("YR").unwrap(),
            b"a",
            "non-zero trailing bits are tolerated"
        );
        assert_eq!(decode_base64("=").unwrap(), b"");
        assert_eq!(decode_base64("===").unwrap(), b"");
        assert_eq!(decode_base64("dGVzdC9qb2I=").unwrap(), b"test/job");
        assert_eq!(
            decode_base64("bGFiZWwvdmFsdWUy==").unwrap(),
            b"label/value2"
        );
        assert_eq!(
            decode_base64("a+b").unwrap_err().1.to_string(),
            "illegal base64 data at input byte 1"
        );
        assert_eq!(
            decode_base64("a.b").unwrap_err(),
            (Vec::new(), Base64Error(1))
        );
        assert_eq!(
            decode_base64("YWJj.").unwrap_err(),
            (b"abc".to_vec(), Base64Error(4))
        );
        assert_eq!(decode_base64("Y").unwrap_err().1, Base64Error(0));
        assert_eq!(
            decode_base64("YWJjY").unwrap_err(),
            (b"abc".to_vec(), Base64Error(4))
        );
    }

    #[test]
    fn upstream_split_labels_cases() {
        assert_eq!(
            key(
                "j",
                "/label_name1/label_value1/label_name2/label_value2",
                false
            ),
            pairs(&[
                ("job", "j"),
                ("label_name1", "label_value1"),
                ("label_name2", "label_value2")
            ])
        );
        assert_eq!(
            key("j", "/label_name1/label_value1/a=b/label_value2", false),
            Err(r#"improper label name "a=b""#.into())
        );
        assert_eq!(
            key(
                "j",
                "/label_name1/label_value1/__label_name2/label_value2",
                false
            ),
            Err(r#"improper label name "__label_name2""#.into())
        );
        assert_eq!(
            key("j", "/label_name1/label_value1/label_name2/label/value2", false),
            Err(r#"odd number of components in label string "/label_name1/label_value1/label_name2/label/value2""#.into())
        );
        assert_eq!(
            key(
                "j",
                "/label_name1@base64/bGFiZWwvdmFsdWUx/label_name2/label_value2",
                false
            ),
            pairs(&[
                ("job", "j"),
                ("label_name1", "label/value1"),
                ("label_name2", "label_value2")
            ])
        );
        assert_eq!(
            key("j", "/label_name1@base64/foo.bar/label_name2/label_value2", false),
            Err(r#"invalid base64 encoding for label label_name1="foo.bar": illegal base64 data at input byte 3"#.into())
        );
        // Without UTF-8 names, an escaped name is just a name.
        assert_eq!(
            key("j", "/U__label_2e_name2/v", false),
            pairs(&[("U__label_2e_name2", "v"), ("job", "j")])
        );
    }

    #[test]
    fn url_grammar_edge_cases() {
        assert_eq!(
            key("foo", "/odd", false),
            Err(r#"odd number of components in label string "/odd""#.into())
        );
        assert_eq!(
            key("trail", "/a/", false),
            pairs(&[("a", ""), ("job", "trail")])
        );
        assert_eq!(key("foo", "/", false), pairs(&[("job", "foo")]));
        assert_eq!(
            key("e", "/a@base64/=/b/x", false),
            pairs(&[("a", ""), ("b", "x"), ("job", "e")])
        );
        assert_eq!(
            key("j", "/instance/i/instance/k", false),
            pairs(&[("instance", "k"), ("job", "j")])
        );
        assert_eq!(key("j", "/job/other", false), pairs(&[("job", "j")]));
        assert_eq!(
            key("j", "/a@base64@base64/YQ", false),
            Err(r#"improper label name "a@base64""#.into())
        );
        assert_eq!(
            key("j", "/@base64/YQ", false),
            Err(r#"improper label name """#.into())
        );
        assert_eq!(
            key("j", "/a-b/x", false),
            Err(r#"improper label name "a-b""#.into())
        );
        assert_eq!(
            key("j", "/1a/x", false),
            Err(r#"improper label name "1a""#.into())
        );
        assert_eq!(key("=", "", true), Err("job name is required".into()));
        assert_eq!(
            key("a.b", "", true),
            Err(
                r#"invalid base64 encoding in job name "": illegal base64 data at input byte 1"#
                    .into()
            )
        );
        assert_eq!(
            key("dGVzdC9qb2I=", "/instance@base64/dGVzdGluc3RhbmNl", true),
            pairs(&[("instance", "testinstance"), ("job", "test/job")])
        );
        // The job's base64 is checked before the labels, the job's emptiness after them.
        assert_eq!(
            key("=", "/odd", true),
            Err(r#"odd number of components in label string "/odd""#.into())
        );
    }

    #[test]
    fn utf8_label_names() {
        let params = Params {
            job: "testjob".into(),
            rest: "/instance/testinstance/U__dotted_2e_label_2e_name/mylabelvalue".into(),
        };
        let key = grouping_key(&params, false, NameValidation::Utf8).unwrap();
        assert_eq!(key.get("dotted.label.name"), Some("mylabelvalue"));
        let params = Params {
            job: "dGVzdC9qb2I=".into(),
            rest: "/instance@base64/dGVzdGluc3RhbmNl/U__dotted_2e_label_2e_name@base64/bXlsYWJlbHZhbHVl".into(),
        };
        let key = grouping_key(&params, true, NameValidation::Utf8).unwrap();
        assert_eq!(key.job(), "test/job");
        assert_eq!(key.get("dotted.label.name"), Some("mylabelvalue"));
        // The reserved prefix is checked on the escaped form.
        let params = Params {
            job: "j".into(),
            rest: "/U______x/v".into(),
        };
        assert_eq!(
            grouping_key(&params, false, NameValidation::Utf8)
                .unwrap()
                .get("__x"),
            Some("v")
        );
    }
}
