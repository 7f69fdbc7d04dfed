//! Replays the fuzz targets' seed corpora (`fuzz/corpus/<target>/`) and every input that once
//! made a target fail (`fuzz/regressions/<target>/`) through the same checks the fuzzer runs
//! (`fuzz/checks.rs`), so that `cargo test` keeps the findings fixed without libFuzzer.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for set in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(set).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let input = std::fs::read(&path).expect("input");
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(outcome.is_ok(), "{} fails", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs for {target}");
}

#[test]
fn text() {
    replay("text", checks::text);
}

#[test]
fn protobuf() {
    replay("protobuf", checks::protobuf);
}

#[test]
fn url() {
    replay("url", checks::url);
}

#[test]
fn gzip() {
    replay("gzip", checks::gzip);
}

#[test]
fn snappy() {
    replay("snappy", checks::snappy);
}

#[test]
fn gob() {
    replay("gob", checks::gob);
}

#[test]
fn persisted() {
    replay("persisted", checks::persisted);
}

#[test]
fn web_config() {
    replay("web_config", checks::web_config);
}

#[test]
fn authz() {
    replay("authz", checks::authz);
}
