//! Records where and from what a binary was built, for `--version`, `pushgateway_build_info`
//! and the status API. Every value can be given through the environment (as image builds without
//! a git checkout do) and falls back to asking git and rustc.

use std::process::Command;

fn main() {
    for var in [
        "PUSHGATEWAY_REVISION",
        "PUSHGATEWAY_BRANCH",
        "PUSHGATEWAY_BUILD_USER",
        "PUSHGATEWAY_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");

    let revision = env_or("PUSHGATEWAY_REVISION", || {
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    let branch = env_or("PUSHGATEWAY_BRANCH", || {
        git(&["rev-parse", "--abbrev-ref", "HEAD"])
    });
    let user = env_or("PUSHGATEWAY_BUILD_USER", || {
        std::env::var("USER").ok().filter(|u| !u.is_empty())
    });
    let date = env_or("PUSHGATEWAY_BUILD_DATE", build_date);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());

    println!("cargo:rustc-env=PUSHGATEWAY_REVISION={revision}");
    println!("cargo:rustc-env=PUSHGATEWAY_BRANCH={branch}");
    println!("cargo:rustc-env=PUSHGATEWAY_BUILD_USER={user}");
    println!("cargo:rustc-env=PUSHGATEWAY_BUILD_DATE={date}");
    println!("cargo:rustc-env=PUSHGATEWAY_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=PUSHGATEWAY_TARGET={target}");
}

fn env_or(var: &str, fallback: impl FnOnce() -> Option<String>) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(fallback)
        .unwrap_or_else(|| "unknown".into())
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `YYYYMMDD-HH:MM:SS` in UTC like upstream's build date, from `SOURCE_DATE_EPOCH` when set so
/// that reproducible builds stay reproducible.
fn build_date() -> Option<String> {
    let secs: i64 = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().ok()?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64,
    };
    let output = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y%m%d-%H:%M:%S"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
