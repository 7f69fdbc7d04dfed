//! A push applies whole or changes nothing, under random bodies: valid and broken lines, types
//! that clash with each other and with other groups, labels that clash with the grouping key,
//! PUT and POST. After every push, either it was answered 200 and the group holds exactly what
//! the body says (PUT: nothing else; POST: the families it did not name as before), as a fresh
//! gateway would store it, or it was refused and every series of every group is as before
//! (only `push_failure_time_seconds` may move, as upstream records failed pushes).

mod common;

use std::collections::BTreeSet;

use common::{TestGateway, strip_own_families};
use proptest::prelude::*;
use pushgateway::decode::text::parse_text;
use pushgateway::model::NameValidation;

/// Groups the store holds before each push, which pushes can clash with.
const OTHERS: &[(&str, &str)] = &[
    (
        "/metrics/job/other",
        "# TYPE shared counter\nshared 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ),
    (
        "/metrics/job/target/instance/a",
        "# TYPE kept gauge\nkept 1\n# TYPE a gauge\na{x=\"1\"} 1\n",
    ),
];
const TARGET: &str = "/metrics/job/target/instance/a";

fn line() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "a",
        "b",
        "kept",
        "shared",
        "h",
        "h_bucket",
        "h_sum",
        "h_count",
        "q",
        "q_sum",
        "q_count",
        "c_total",
        "push_time_seconds",
        "9bad",
    ]);
    let label = (
        prop::sample::select(vec!["x", "y", "le", "quantile", "job", "instance", "__bad"]),
        prop::sample::select(vec!["1", "2", "0.5", "+Inf", "target", "a", ""]),
    );
    let labels = prop::collection::vec(label, 0..3).prop_map(|labels| {
        if labels.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
            format!("{{{}}}", pairs.join(","))
        }
    });
    let value = prop::sample::select(vec![
        "1",
        "-1",
        "0",
        "NaN",
        "+Inf",
        "1e3",
        "abc",
        "1 1700000000000",
    ]);
    let kind = prop::sample::select(vec![
        "counter",
        "gauge",
        "summary",
        "histogram",
        "untyped",
        "bogus",
    ]);
    prop_oneof![
        6 => (name.clone(), labels, value).prop_map(|(n, l, v)| format!("{n}{l} {v}")),
        2 => (name.clone(), kind).prop_map(|(n, k)| format!("# TYPE {n} {k}")),
        1 => name.prop_map(|n| format!("# HELP {n} some help")),
        1 => prop::sample::select(vec!["", "# a comment", "{", "a{x=\"1\"", "a 1 2 3", "\u{0}"])
            .prop_map(str::to_string),
    ]
}

fn body() -> impl Strategy<Value = String> {
    prop::collection::vec(line(), 0..8).prop_map(|lines| {
        let mut body = lines.join("\n");
        body.push('\n');
        body
    })
}

/// The sample lines of the pushed metrics, without the push time gauges.
fn series(exposition: &str) -> BTreeSet<String> {
    strip_own_families(exposition)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| !line.starts_with("push_time_seconds"))
        .filter(|line| !line.starts_with("push_failure_time_seconds"))
        .map(str::to_string)
        .collect()
}

fn in_target(line: &str) -> bool {
    line.contains("instance=\"a\",job=\"target\"")
}

/// Whether a sample line belongs to one of `families` (by name, or as its `_sum`, `_count` or
/// `_bucket` series).
fn of_families(line: &str, families: &BTreeSet<String>) -> bool {
    let name = line.split(['{', ' ']).next().unwrap_or_default();
    families.contains(name)
        || ["_sum", "_count", "_bucket"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| families.contains(base))
        })
}

struct Gateways {
    runtime: tokio::runtime::Runtime,
    subject: TestGateway,
    /// Where each accepted body is pushed alone, to see how it is stored.
    fresh: TestGateway,
}

impl Gateways {
    fn new() -> Gateways {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (subject, fresh) = runtime.block_on(async {
            (
                TestGateway::start(&["--web.enable-admin-api"]).await,
                TestGateway::start(&["--web.enable-admin-api"]).await,
            )
        });
        Gateways {
            runtime,
            subject,
            fresh,
        }
    }

    fn check(&self, method: &str, body: &str) -> Result<(), TestCaseError> {
        self.runtime.block_on(async {
            let gw = &self.subject;
            assert_eq!(
                gw.request("PUT", "/api/v1/admin/wipe", &[], "")
                    .await
                    .status,
                202
            );
            for (path, content) in OTHERS {
                assert_eq!(gw.put(path, content).await.status, 200);
            }
            let before = series(&gw.get("/metrics").await.text());
            let response = gw.request(method, TARGET, &[], body.to_string()).await;
            let after = series(&gw.get("/metrics").await.text());
            if response.status != 200 {
                prop_assert_eq!(
                    &after,
                    &before,
                    "refused with {}: {}",
                    response.status,
                    response.text()
                );
                return Ok(());
            }
            // Accepted: the body alone, in an empty store, is stored the same way.
            let fresh = &self.fresh;
            assert_eq!(
                fresh
                    .request("PUT", "/api/v1/admin/wipe", &[], "")
                    .await
                    .status,
                202
            );
            let alone = fresh.request("PUT", TARGET, &[], body.to_string()).await;
            prop_assert_eq!(alone.status, 200, "{}", alone.text());
            let pushed = series(&fresh.get("/metrics").await.text());
            let pushed_families: BTreeSet<String> =
                parse_text(body.as_bytes(), NameValidation::Legacy)
                    .expect("an accepted body parses")
                    .iter()
                    .map(|family| family.name().to_string())
                    .collect();
            let mut expected: BTreeSet<String> = before
                .iter()
                .filter(|line| !in_target(line))
                .cloned()
                .collect();
            expected.extend(pushed.iter().cloned());
            if method == "POST" {
                expected.extend(
                    before
                        .iter()
                        .filter(|line| in_target(line))
                        .filter(|line| !of_families(line, &pushed_families))
                        .cloned(),
                );
            }
            prop_assert_eq!(after, expected);
            Ok(())
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_push_applies_whole_or_changes_nothing(
        method in prop::sample::select(vec!["PUT", "POST"]),
        body in body(),
    ) {
        thread_local! {
            static GATEWAYS: Gateways = Gateways::new();
        }
        GATEWAYS.with(|gateways| gateways.check(method, &body))?;
    }
}
