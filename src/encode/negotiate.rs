//! Content negotiation for scrapes, as upstream's `expfmt.Negotiate` (OpenMetrics not offered)
//! and promhttp's encoding choice do it.

use crate::model::EscapingScheme;

/// The two exposition formats a scrape can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Text format 0.0.4.
    Text,
    /// Length-delimited `io.prometheus.client.MetricFamily` messages.
    Protobuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Negotiated {
    pub format: Format,
    pub escaping: EscapingScheme,
}

impl Negotiated {
    pub fn content_type(&self) -> String {
        let base = match self.format {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        };
        format!("{base}; escaping={}", self.escaping.as_param())
    }
}

/// One entry of an `Accept` or `Accept-Encoding` header.
struct Accepted<'a> {
    kind: &'a str,
    params: Vec<(String, &'a str)>,
    quality: f64,
}

impl Accepted<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Wildcards are less specific and lose ties, as goautoneg orders them.
    fn specificity(&self) -> u8 {
        if self.kind == "*" || self.kind.starts_with("*/") {
            0
        } else if self.kind.ends_with("/*") {
            1
        } else {
            2
        }
    }
}

fn parse_accept(header: &str) -> Vec<Accepted<'_>> {
    let mut entries: Vec<Accepted<'_>> = header
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let kind = parts.next()?.trim();
            if kind.is_empty() {
                return None;
            }
            let mut quality = 1.0;
            let mut params = Vec::new();
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().trim_matches('"');
                if name == "q" {
                    quality = value.parse().unwrap_or(0.0);
                } else {
                    params.push((name, value));
                }
            }
            Some(Accepted {
                kind,
                params,
                quality,
            })
        })
        .collect();
    entries.sort_by(|a, b| {
        b.quality
            .total_cmp(&a.quality)
            .then(b.specificity().cmp(&a.specificity()))
    });
    entries
}

/// Picks the format for a scrape from its `Accept` header: delimited protobuf when asked for
/// with the right `proto` parameter, text 0.0.4 otherwise (including for OpenMetrics, JSON and
/// `*/*`). An `escaping` parameter selects how non-legacy names are shown; the default is
/// `underscores`. Protobuf `encoding=text` and `compact-text`, which upstream would answer with
/// protobuf text, get the text format here.
pub fn negotiate(accept: Option<&str>) -> Negotiated {
    let mut escaping = EscapingScheme::default();
    for entry in parse_accept(accept.unwrap_or_default()) {
        if let Some(scheme) = entry.param("escaping").and_then(EscapingScheme::from_param) {
            escaping = scheme;
        }
        let kind = entry.kind.to_ascii_lowercase();
        if kind == "application/vnd.google.protobuf"
            && entry.param("proto") == Some("io.prometheus.client.MetricFamily")
            && entry.param("encoding") == Some("delimited")
        {
            return Negotiated {
                format: Format::Protobuf,
                escaping,
            };
        }
        if kind == "text/plain" && matches!(entry.param("version"), None | Some("0.0.4")) {
            break;
        }
    }
    Negotiated {
        format: Format::Text,
        escaping,
    }
}

/// Whether to gzip the answer, as Go's `NegotiateContentEncoding` decides between `identity`
/// and `gzip`: the offer with the highest quality wins, `identity` on ties.
pub fn wants_gzip(accept_encoding: Option<&str>) -> bool {
    let entries = parse_accept(accept_encoding.unwrap_or_default());
    let quality = |offer: &str| {
        entries
            .iter()
            .filter(|e| e.kind == "*" || e.kind.eq_ignore_ascii_case(offer))
            .map(|e| e.quality)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let gzip = quality("gzip");
    gzip > 0.0 && gzip > quality("identity")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

    #[test]
    fn prometheus_accept_headers() {
        // Prometheus 2.x default.
        let default = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(default)).format, Format::Text);
        // With native histograms enabled, protobuf comes first.
        let native = format!("{PROTO};q=0.8,{default}");
        assert_eq!(negotiate(Some(&native)).format, Format::Protobuf);
        assert_eq!(negotiate(None).format, Format::Text);
        assert_eq!(negotiate(Some("application/json")).format, Format::Text);
        // A protobuf entry without proto= does not count.
        assert_eq!(
            negotiate(Some("application/vnd.google.protobuf;encoding=delimited")).format,
            Format::Text
        );
        // Text ranked above protobuf wins.
        assert_eq!(
            negotiate(Some(&format!("text/plain;version=0.0.4,{PROTO};q=0.5"))).format,
            Format::Text
        );
    }

    #[test]
    fn escaping_parameter() {
        let n = negotiate(Some("text/plain;version=0.0.4;escaping=allow-utf-8"));
        assert_eq!(n.escaping, EscapingScheme::AllowUtf8);
        assert_eq!(
            n.content_type(),
            "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
        );
        assert_eq!(
            negotiate(Some("text/plain;escaping=bogus")).escaping,
            EscapingScheme::Underscores
        );
        assert_eq!(
            negotiate(Some(PROTO)).content_type(),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
        );
    }

    #[test]
    fn gzip_negotiation() {
        assert!(wants_gzip(Some("gzip")));
        assert!(wants_gzip(Some("deflate, gzip, br, zstd")));
        assert!(wants_gzip(Some("gzip;q=1.0, identity;q=0.5, *;q=0")));
        assert!(!wants_gzip(Some("gzip, identity")));
        assert!(!wants_gzip(Some("*")));
        assert!(!wants_gzip(Some("br")));
        assert!(!wants_gzip(Some("gzip;q=0")));
        assert!(!wants_gzip(None));
    }
}
