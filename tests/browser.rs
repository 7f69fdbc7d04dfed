//! The web UI in a real browser: headless Chromium driven through chromedriver (W3C WebDriver,
//! JSON over HTTP on 127.0.0.1, spoken here with std's TCP stream), against the real binary.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`CHROMEDRIVER` and `CHROME_BIN` override
//! where they are). Without them these tests are skipped with a message saying how to run them,
//! unless `PUSHGATEWAY_BROWSER_TESTS=required` (as `scripts/test` sets it): then they fail.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use common::process::GatewayProcess;

const TIMEOUT: Duration = Duration::from_secs(10);
const XSS: &str = "<img src=x onerror=alert(1)>";
/// How WebDriver marks an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---- HTTP/1.1 over a plain TCP stream, for both the gateway and chromedriver ----------------

struct HttpResponse {
    status: u16,
    body: String,
}

fn http(address: &str, method: &str, path: &str, json: bool, body: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(address)
        .unwrap_or_else(|err| panic!("cannot connect to {address}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let content_type = if json {
        "Content-Type: application/json; charset=utf-8\r\n"
    } else {
        ""
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    // chromedriver keeps the connection open despite `Connection: close`: read by length.
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {status_line:?}"));
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header");
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().expect("a length"));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).unwrap();
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    let body = String::from_utf8(body).expect("a UTF-8 body");
    HttpResponse { status, body }
}

// ---- The gateway ------------------------------------------------------------------------------

struct Gateway {
    address: String,
    _process: GatewayProcess,
}

impl Gateway {
    /// Starts the binary on a free port with the admin API and these flags.
    fn start(flags: &[&str]) -> Gateway {
        let mut args = vec!["--web.enable-admin-api"];
        args.extend_from_slice(flags);
        let process = GatewayProcess::start(&args);
        Gateway {
            address: process.address.clone(),
            _process: process,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn request(&self, method: &str, path: &str, body: &str) -> HttpResponse {
        http(&self.address, method, path, false, body)
    }

    fn push(&self, path: &str, body: &str) {
        let response = self.request("PUT", path, body);
        assert_eq!(response.status, 200, "push to {path}: {}", response.body);
    }

    /// The grouping labels of every group, from the API.
    fn groups(&self, prefix: &str) -> Vec<Value> {
        let response = self.request("GET", &format!("{prefix}/api/v1/metrics"), "");
        assert_eq!(response.status, 200, "{}", response.body);
        let document: Value = serde_json::from_str(&response.body).unwrap();
        document["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| group["labels"].clone())
            .collect()
    }
}

// ---- The browser --------------------------------------------------------------------------------

/// A chromedriver process and one headless Chromium session in it.
struct Browser {
    driver: Child,
    address: String,
    session: String,
}

fn find_program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Without a browser: a skip with a message, or a failure where the tests are required.
fn missing_browser(what: &str) -> Option<Browser> {
    let message = format!(
        "{what} not found: the browser tests need headless Chromium and chromedriver. \
         Install them with `apt-get install -y chromium chromium-driver` (Debian), or point \
         CHROME_BIN and CHROMEDRIVER at them; scripts/test installs and runs them."
    );
    if std::env::var("PUSHGATEWAY_BROWSER_TESTS").as_deref() == Ok("required") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

impl Browser {
    /// A browser session, or `None` (with a message) where there is no browser.
    fn start() -> Option<Browser> {
        let Some(chromium) = find_program(
            "CHROME_BIN",
            &["chromium", "chromium-browser", "google-chrome"],
        ) else {
            return missing_browser("Chromium");
        };
        let Some(chromedriver) = find_program("CHROMEDRIVER", &["chromedriver"]) else {
            return missing_browser("chromedriver");
        };
        let (driver, address) = start_driver(&chromedriver);
        let mut browser = Browser {
            driver,
            address,
            session: String::new(),
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Prompts stay open so that the test sees any `alert()` an injection would raise.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--window-size=1280,900",
                ],
            },
        }}});
        let session = browser.command("POST", "/session", &capabilities);
        browser.session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Some(browser)
    }

    /// One WebDriver command; panics with the driver's message when it fails.
    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|error| panic!("WebDriver {method} {path}: {error}"))
    }

    fn try_command(&self, method: &str, path: &str, body: &Value) -> Result<Value, Value> {
        let body = if method == "POST" {
            body.to_string()
        } else {
            String::new()
        };
        let response = http(&self.address, method, path, true, &body);
        let mut document: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|_| panic!("chromedriver answered {}", response.body));
        let value = document["value"].take();
        if response.status == 200 {
            Ok(value)
        } else {
            Err(value)
        }
    }

    fn session_command(&self, method: &str, path: &str, body: Value) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), &body)
    }

    fn open(&self, url: &str) {
        self.session_command("POST", "/url", json!({ "url": url }));
    }

    /// Runs a script (a function body; `arguments` holds `args`) and returns what it returns.
    fn script(&self, script: &str, args: Value) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// Waits until the script returns something other than null, false, "" or 0.
    fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let value = self.script(script, args.clone());
            let done = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if done {
                return value;
            }
            if started.elapsed() > TIMEOUT {
                let page =
                    self.script("return document.querySelector('main').innerText", json!([]));
                panic!("timed out waiting for {what}; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the element the script returns, then clicks it as a user would.
    fn click(&self, what: &str, script: &str, args: Value) {
        let element = self.wait_for(what, script, args);
        let id = element[ELEMENT_KEY].as_str().expect("an element");
        self.session_command("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Replaces the text of an input as a user would, key by key.
    fn type_into(&self, selector: &str, text: &str) {
        let element = self.wait_for(
            selector,
            "return document.querySelector(arguments[0])",
            json!([selector]),
        );
        let id = element[ELEMENT_KEY].as_str().expect("an element");
        self.session_command("POST", &format!("/element/{id}/clear"), json!({}));
        self.session_command(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// The text of an open `alert()`/`confirm()`, if any.
    fn open_prompt(&self) -> Option<String> {
        let path = format!("/session/{}/alert/text", self.session);
        self.try_command("GET", &path, &Value::Null)
            .ok()
            .map(|text| text.to_string())
    }

    fn screenshot(&self, path: &Path) {
        let data = self.session_command("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::write(path, png).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.try_command("DELETE", &path, &Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver on a port it picks itself (loopback only, its default).
fn start_driver(program: &Path) -> (Child, String) {
    let mut driver = Command::new(program)
        .args(["--port=0", "--log-level=SEVERE"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", program.display()));
    let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("chromedriver says its port before it exits")
            .expect("readable output");
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            break rest.trim_end_matches('.').trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (driver, format!("127.0.0.1:{port}"))
}

// ---- Page queries -----------------------------------------------------------------------------

/// Returns the group card whose label badges include all of `arguments[0]`, shown or not.
const GROUP: &str = "
    const card = [...document.querySelectorAll('[data-testid=group]')].find((card) =>
        arguments[0].every((label) =>
            [...card.querySelectorAll('.group-toggle [data-testid=label]')]
                .some((badge) => badge.textContent === label)));
    return card || null;";

fn group_script(tail: &str) -> String {
    format!("const card = (() => {{ {GROUP} }})(); {tail}")
}

fn visible_groups(browser: &Browser) -> Value {
    browser.script(
        "return [...document.querySelectorAll('[data-testid=group]')]
            .filter((card) => !card.hidden)
            .map((card) => card.querySelector('.labels').textContent)",
        json!([]),
    )
}

const BUILD_GROUP: &[&str] = &["job=\"browser_test\"", "instance=\"a\""];
const OTHER_GROUP: &[&str] = &["job=\"other_job\"", "instance=\"b\""];

fn seed(gateway: &Gateway, prefix: &str) {
    gateway.push(
        &format!("{prefix}/metrics/job/browser_test/instance/a"),
        &format!(
            "# HELP build_duration_seconds How long the build took, <b>in seconds</b>.\n\
             # TYPE build_duration_seconds gauge\n\
             build_duration_seconds 42.5\n\
             # TYPE build_step_seconds histogram\n\
             build_step_seconds_bucket{{le=\"0.5\"}} 3\n\
             build_step_seconds_bucket{{le=\"1\"}} 4\n\
             build_step_seconds_bucket{{le=\"+Inf\"}} 5\n\
             build_step_seconds_sum 3.25\n\
             build_step_seconds_count 5\n\
             # TYPE xss_probe gauge\n\
             xss_probe{{payload=\"{XSS}\"}} 1\n"
        ),
    );
    gateway.push(
        &format!("{prefix}/metrics/job/other_job/instance/b"),
        "other_metric 7\n",
    );
}

// ---- Tests ------------------------------------------------------------------------------------

#[test]
fn metrics_tab_shows_filters_marks_and_deletes_groups() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let gateway = Gateway::start(&[]);
    seed(&gateway, "");
    browser.open(&gateway.url("/"));

    browser.wait_for(
        "both groups",
        "return document.querySelectorAll('[data-testid=group]').length === 2",
        json!([]),
    );
    for group in [BUILD_GROUP, OTHER_GROUP] {
        browser.wait_for("a group's badges", GROUP, json!([group]));
    }
    assert_eq!(
        visible_groups(&browser)[0],
        "job=\"browser_test\"instance=\"a\"",
        "groups are sorted by grouping key, job first among the badges"
    );
    let count = browser.script(
        "return document.querySelector('[data-testid=group-count]').textContent",
        json!([]),
    );
    assert_eq!(count, "2 groups");

    // Expanding a group shows its families, sorted by name, with help, type and series.
    browser.click(
        "the group's toggle",
        &group_script("return card.querySelector('[data-testid=group-toggle]')"),
        json!([BUILD_GROUP]),
    );
    let families = browser.wait_for(
        "the group's families",
        &group_script(
            "const names = [...card.querySelectorAll('[data-testid=family-name]')]
                .filter((n) => n.offsetParent !== null).map((n) => n.textContent);
             return names.length ? names : null;",
        ),
        json!([BUILD_GROUP]),
    );
    assert_eq!(
        families,
        json!([
            "build_duration_seconds",
            "build_step_seconds",
            "push_failure_time_seconds",
            "push_time_seconds",
            "xss_probe"
        ])
    );
    let details = browser.script(
        &group_script(
            "const family = (name) => card.querySelector(`[data-family='${name}']`);
             return {
                 help: family('build_duration_seconds').querySelector('[data-testid=family-help]').textContent,
                 gauge: family('build_duration_seconds').querySelector('[data-testid=value]').textContent,
                 type: family('build_step_seconds').querySelector('.type').textContent,
                 histogram: family('build_step_seconds').querySelector('.distribution').innerText,
             };",
        ),
        json!([BUILD_GROUP]),
    );
    assert_eq!(
        details["help"],
        "How long the build took, <b>in seconds</b>."
    );
    assert_eq!(details["gauge"], "42.5");
    assert_eq!(details["type"], "histogram");
    let histogram = details["histogram"].as_str().unwrap();
    for row in ["≤ 0.5\t3", "≤ 1\t4", "≤ +Inf\t5", "Count\t5", "Sum\t3.25"] {
        assert!(histogram.contains(row), "{row:?} not in {histogram:?}");
    }

    // Attacker-controlled text is shown as text: no element made of it, no script run.
    let xss = browser.script(
        &group_script(
            "return {
                 badge: [...card.querySelectorAll('[data-family=xss_probe] [data-testid=label]')]
                     .map((b) => b.textContent),
                 images: document.querySelectorAll('main img').length,
                 bold: document.querySelectorAll('main b').length,
             };",
        ),
        json!([BUILD_GROUP]),
    );
    assert_eq!(xss["badge"], json!([format!("payload=\"{XSS}\"")]));
    assert_eq!(xss["images"], 0, "the label value became an element");
    assert_eq!(xss["bold"], 0, "the help text became markup");

    // The filter matches label values, label names and family names, case-insensitively.
    for (filter, expected) in [
        ("OTHER_J", "job=\"other_job\"instance=\"b\""),
        ("xss_probe", "job=\"browser_test\"instance=\"a\""),
        ("=\"b\"", "job=\"other_job\"instance=\"b\""),
    ] {
        browser.type_into("[data-testid=filter]", filter);
        browser.wait_for(
            "the filter to apply",
            "return document.querySelector('[data-testid=group-count]').textContent === '1 of 2 groups'",
            json!([]),
        );
        assert_eq!(
            visible_groups(&browser),
            json!([expected]),
            "filter {filter}"
        );
    }
    browser.type_into("[data-testid=filter]", "no such thing");
    browser.wait_for(
        "the empty filter result",
        "const empty = document.querySelector('[data-testid=empty]');
         return !empty.hidden && empty.textContent.includes('No group matches')",
        json!([]),
    );
    browser.type_into("[data-testid=filter]", "");
    browser.wait_for(
        "all groups again",
        "return document.querySelector('[data-testid=group-count]').textContent === '2 groups'",
        json!([]),
    );

    // Groups turn stale once the threshold passes, and the threshold survives a reload.
    let stale = "return [...document.querySelectorAll('[data-testid=group]')]
        .filter((card) => !card.querySelector('[data-testid=stale-badge]').hidden
            && card.classList.contains('is-stale')).length";
    assert_eq!(browser.script(stale, json!([])), 0);
    browser.type_into("[data-testid=stale-after]", "1s");
    browser.wait_for(
        "both groups to be stale",
        &format!("{stale} === 2"),
        json!([]),
    );
    browser.open(&gateway.url("/"));
    browser.wait_for(
        "the stale groups after a reload",
        &format!("{stale} === 2"),
        json!([]),
    );
    let threshold = browser.script(
        "return document.querySelector('[data-testid=stale-after]').value",
        json!([]),
    );
    assert_eq!(threshold, "1s");
    browser.wait_for(
        "the group to stay expanded after a reload",
        &group_script("return card.querySelector('[data-testid=family]') !== null"),
        json!([BUILD_GROUP]),
    );

    // A refused push marks its group; Refresh shows it.
    let refused = gateway.request(
        "POST",
        "/metrics/job/other_job/instance/b",
        "# TYPE build_duration_seconds counter\nbuild_duration_seconds 1\n",
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        browser.script(
            &group_script("return card.querySelector('[data-testid=push-failed]') !== null"),
            json!([OTHER_GROUP]),
        ),
        false
    );
    browser.click(
        "the Refresh button",
        "return document.querySelector('[data-testid=refresh]')",
        json!([]),
    );
    browser.wait_for(
        "the failed-push marker",
        &group_script("return card.querySelector('[data-testid=push-failed]')?.textContent"),
        json!([OTHER_GROUP]),
    );

    // Cancelling the confirmation deletes nothing.
    let open_dialog = "const d = document.querySelector('[data-testid=confirm-dialog]');
        return d.open ? d.querySelector('p').textContent : null";
    browser.click(
        "the other group's Delete button",
        &group_script("return card.querySelector('[data-testid=delete-group]')"),
        json!([OTHER_GROUP]),
    );
    let question = browser.wait_for("the confirmation dialog", open_dialog, json!([]));
    assert_eq!(
        question,
        "Delete all metrics of the group {job=\"other_job\", instance=\"b\"}?"
    );
    browser.click(
        "Cancel",
        "return document.querySelector('[data-testid=confirm-cancel]')",
        json!([]),
    );
    browser.wait_for(
        "the dialog to close",
        "return !document.querySelector('[data-testid=confirm-dialog]').open",
        json!([]),
    );
    assert_eq!(gateway.groups("").len(), 2);

    // Confirming deletes the group: gone from the page and from the gateway.
    browser.click(
        "the first group's Delete button",
        &group_script("return card.querySelector('[data-testid=delete-group]')"),
        json!([BUILD_GROUP]),
    );
    browser.wait_for("the confirmation dialog", open_dialog, json!([]));
    browser.click(
        "Delete in the dialog",
        "return document.querySelector('[data-testid=confirm-delete]')",
        json!([]),
    );
    browser.wait_for(
        "the deleted group's card to go",
        &group_script("return card === null"),
        json!([BUILD_GROUP]),
    );
    assert_eq!(
        gateway.groups(""),
        vec![json!({"job": "other_job", "instance": "b"})]
    );
    assert_eq!(visible_groups(&browser).as_array().unwrap().len(), 1);

    // Delete all (the admin API is on): counted, confirmed, then disabled.
    let delete_all = browser.script(
        "const b = document.querySelector('[data-testid=delete-all]');
         return {hidden: b.hidden, disabled: b.disabled, text: b.textContent.replace(/\\s+/g, ' ').trim()}",
        json!([]),
    );
    assert_eq!(
        delete_all,
        json!({"hidden": false, "disabled": false, "text": "Delete all groups 1"})
    );
    browser.click(
        "Delete all groups",
        "return document.querySelector('[data-testid=delete-all]')",
        json!([]),
    );
    browser.wait_for("the confirmation dialog", open_dialog, json!([]));
    browser.click(
        "Delete in the dialog",
        "return document.querySelector('[data-testid=confirm-delete]')",
        json!([]),
    );
    browser.wait_for(
        "the empty store",
        "const empty = document.querySelector('[data-testid=empty]');
         return !empty.hidden && empty.textContent === 'No metrics have been pushed yet.'
             && document.querySelector('[data-testid=delete-all]').disabled",
        json!([]),
    );
    assert!(gateway.groups("").is_empty());

    assert_eq!(browser.open_prompt(), None, "a script opened a prompt");
    let alerts = browser.script(
        "return [...document.querySelectorAll('[data-testid=alert]')].map((a) => a.textContent)",
        json!([]),
    );
    assert_eq!(alerts, json!([]));
}

#[test]
fn status_tab_shows_runtime_build_and_flags() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let gateway = Gateway::start(&[]);
    browser.open(&gateway.url("/"));
    browser.click(
        "the Status tab",
        "return document.getElementById('tab-status')",
        json!([]),
    );
    browser.wait_for(
        "the status tab",
        "return !document.querySelector('[data-testid=status-view]').hidden
            && document.querySelector('[data-testid=metrics-view]').hidden
            && location.pathname === '/status'",
        json!([]),
    );
    let status = browser.wait_for(
        "the build information",
        "const rows = (id) => Object.fromEntries([...document.querySelectorAll(`[data-testid=${id}] tr`)]
             .map((tr) => [tr.querySelector('th').textContent, tr.querySelector('td').textContent]));
         const build = rows('build-info');
         const flagNames = [...document.querySelectorAll('[data-testid=flags] th')].map((th) => th.textContent);
         return build.version ? {build, flags: rows('flags'), flagNames, runtime: rows('runtime-info')} : null",
        json!([]),
    );
    assert_eq!(status["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["flags"]["web.enable-admin-api"], "true");
    assert_eq!(status["flags"]["web.listen-address"], "127.0.0.1:0");
    let flags: Vec<&str> = status["flagNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert!(flags.len() > 10 && flags.is_sorted(), "flags: {flags:?}");
    assert!(
        status["runtime"]["Start time"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );
    assert!(status["runtime"]["Uptime"].as_str().unwrap().ends_with('s'));

    // Back to Metrics without a reload, and `/status` opens the Status tab directly.
    browser.script("window.notReloaded = true", json!([]));
    browser.click(
        "the Metrics tab",
        "return document.getElementById('tab-metrics')",
        json!([]),
    );
    browser.wait_for(
        "the metrics tab",
        "return !document.querySelector('[data-testid=metrics-view]').hidden
            && location.pathname === '/' && window.notReloaded",
        json!([]),
    );
    browser.open(&gateway.url("/status"));
    browser.wait_for(
        "the status tab",
        "return !document.querySelector('[data-testid=status-view]').hidden",
        json!([]),
    );
}

/// Each group shows when it expires; "Delete job" deletes every group of the job (through the
/// bulk deletion of the admin API) and no other.
#[test]
fn expiry_and_deleting_a_whole_job() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let gateway = Gateway::start(&["--push.expire-after=1h"]);
    gateway.push("/metrics/job/nightly/instance/a", "x 1\n");
    gateway.push("/metrics/job/nightly/instance/b", "x 1\n");
    gateway.push("/metrics/job/other_job/instance/b", "x 1\n");
    browser.open(&gateway.url("/"));
    let nightly = &["job=\"nightly\"", "instance=\"a\""];
    let expiry = browser.wait_for(
        "the group's expiry",
        &group_script("return card?.querySelector('[data-testid=expiry]')?.textContent"),
        json!([nightly]),
    );
    assert!(
        expiry.as_str().is_some_and(
            |t| t.starts_with("expires in 59 minutes") || t.starts_with("expires in 1 hour")
        ),
        "{expiry}"
    );
    browser.click(
        "the group's Delete job button",
        &group_script("return card.querySelector('[data-testid=delete-job]')"),
        json!([nightly]),
    );
    let question = browser.wait_for(
        "the confirmation dialog",
        "const d = document.querySelector('[data-testid=confirm-dialog]');
         return d.open ? d.querySelector('p').textContent : null",
        json!([]),
    );
    assert_eq!(
        question,
        "Delete all metrics of all 2 groups of job \"nightly\"?"
    );
    browser.click(
        "Delete in the dialog",
        "return document.querySelector('[data-testid=confirm-delete]')",
        json!([]),
    );
    browser.wait_for(
        "the job's cards to go",
        &group_script("return card === null"),
        json!([nightly]),
    );
    assert_eq!(
        gateway.groups(""),
        vec![json!({"job": "other_job", "instance": "b"})]
    );
}

/// With `--web.external-url` the page links its files and the API below the URL's path.
#[test]
fn works_below_an_external_url_path() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let gateway = Gateway::start(&["--web.external-url=http://127.0.0.1/pg/"]);
    seed(&gateway, "/pg");
    browser.open(&gateway.url("/pg/status"));
    let base = browser.wait_for(
        "the page",
        "return document.querySelector('meta[name=pushgateway-base]')?.content",
        json!([]),
    );
    assert_eq!(base, "/pg");
    browser.click(
        "the Metrics tab",
        "return document.getElementById('tab-metrics')",
        json!([]),
    );
    delete_a_group_through_the_page(&browser, &gateway, "/pg");
    let loaded = browser.script(
        "return performance.getEntriesByType('resource').map((r) => new URL(r.name).pathname)",
        json!([]),
    );
    for path in [
        "/pg/static/app.css",
        "/pg/static/app.js",
        "/pg/api/v1/metrics",
    ] {
        assert!(
            loaded.as_array().unwrap().iter().any(|p| p == path),
            "{path} not loaded: {loaded}"
        );
    }
}

/// With only `--web.route-prefix` the page links relatively, as upstream's does.
#[test]
fn works_below_a_route_prefix() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let gateway = Gateway::start(&["--web.route-prefix=/pg"]);
    seed(&gateway, "/pg");
    browser.open(&gateway.url("/pg/"));
    let base = browser.wait_for(
        "the page",
        "return document.querySelector('meta[name=pushgateway-base]')?.content",
        json!([]),
    );
    assert_eq!(base, ".");
    delete_a_group_through_the_page(&browser, &gateway, "/pg");

    // Errors are shown, not swallowed: here the gateway has gone away.
    drop(gateway);
    browser.click(
        "the Refresh button",
        "return document.querySelector('[data-testid=refresh]')",
        json!([]),
    );
    let alert = browser.wait_for(
        "an error alert",
        "return document.querySelector('[data-testid=alert][data-source=metrics]')?.textContent",
        json!([]),
    );
    assert!(
        alert
            .as_str()
            .unwrap()
            .starts_with("Could not load the metrics: the gateway cannot be reached"),
        "{alert}"
    );
}

fn delete_a_group_through_the_page(browser: &Browser, gateway: &Gateway, prefix: &str) {
    browser.wait_for(
        "both groups",
        "return !document.querySelector('[data-testid=metrics-view]').hidden
            && document.querySelectorAll('[data-testid=group]').length === 2",
        json!([]),
    );
    browser.click(
        "the Delete button",
        &group_script("return card.querySelector('[data-testid=delete-group]')"),
        json!([OTHER_GROUP]),
    );
    browser.click(
        "Delete in the dialog",
        "const d = document.querySelector('[data-testid=confirm-dialog]');
         return d.open ? d.querySelector('[data-testid=confirm-delete]') : null",
        json!([]),
    );
    browser.wait_for(
        "the deleted group's card to go",
        &group_script("return card === null"),
        json!([OTHER_GROUP]),
    );
    assert_eq!(
        gateway.groups(prefix),
        vec![json!({"job": "browser_test", "instance": "a"})]
    );
}

/// Writes `docs/ui.png` from a realistic store: run with
/// `cargo test --release --test browser -- --ignored screenshot`.
#[test]
#[ignore = "writes docs/ui.png"]
fn screenshot_for_the_docs() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let gateway = Gateway::start(&[]);
    gateway.push(
        "/metrics/job/cert_renewal/instance/edge-lb",
        "# HELP cert_expiry_timestamp_seconds Expiry of the served certificate.\n\
         # TYPE cert_expiry_timestamp_seconds gauge\n\
         cert_expiry_timestamp_seconds 1.8e+09\n",
    );
    // Only this group is older than the stale threshold set below.
    std::thread::sleep(Duration::from_secs(4));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    gateway.push(
        "/metrics/job/nightly_etl/instance/etl-worker-01",
        &format!(
            "# HELP etl_duration_seconds Wall-clock duration of the last ETL run.\n\
             # TYPE etl_duration_seconds gauge\n\
             etl_duration_seconds 842.31\n\
             # HELP etl_last_success_timestamp_seconds Unix time of the last successful run.\n\
             # TYPE etl_last_success_timestamp_seconds gauge\n\
             etl_last_success_timestamp_seconds {now}\n\
             # HELP etl_rows_processed_total Rows written, by target table.\n\
             # TYPE etl_rows_processed_total counter\n\
             etl_rows_processed_total{{table=\"orders\"}} 1284113\n\
             etl_rows_processed_total{{table=\"customers\"}} 48211\n\
             # HELP etl_batch_seconds Time to load one batch.\n\
             # TYPE etl_batch_seconds histogram\n\
             etl_batch_seconds_bucket{{le=\"0.5\"}} 112\n\
             etl_batch_seconds_bucket{{le=\"1\"}} 340\n\
             etl_batch_seconds_bucket{{le=\"2.5\"}} 512\n\
             etl_batch_seconds_bucket{{le=\"5\"}} 590\n\
             etl_batch_seconds_bucket{{le=\"10\"}} 601\n\
             etl_batch_seconds_bucket{{le=\"+Inf\"}} 603\n\
             etl_batch_seconds_sum 812.4\n\
             etl_batch_seconds_count 603\n"
        ),
    );
    gateway.push(
        "/metrics/job/db_backup/instance/db-primary",
        "# HELP backup_size_bytes Size of the last backup.\n\
         # TYPE backup_size_bytes gauge\n\
         backup_size_bytes 5.36870912e+10\n",
    );
    let refused = gateway.request(
        "POST",
        "/metrics/job/db_backup/instance/db-primary",
        "# TYPE etl_duration_seconds counter\netl_duration_seconds 1\n",
    );
    assert_eq!(refused.status, 400);
    gateway.push(
        "/metrics/job/api_probe/region/eu-west-1",
        "# HELP probe_latency_seconds Latency of the synthetic API probe.\n\
         # TYPE probe_latency_seconds summary\n\
         probe_latency_seconds{quantile=\"0.5\"} 0.041\n\
         probe_latency_seconds{quantile=\"0.9\"} 0.087\n\
         probe_latency_seconds{quantile=\"0.99\"} 0.214\n\
         probe_latency_seconds_sum 61.2\n\
         probe_latency_seconds_count 1380\n",
    );
    browser.open(&gateway.url("/"));
    browser.wait_for(
        "the groups",
        "return document.querySelectorAll('[data-testid=group]').length === 4",
        json!([]),
    );
    browser.type_into("[data-testid=stale-after]", "3s");
    browser.wait_for(
        "the stale group",
        "return document.querySelectorAll('.is-stale').length === 1",
        json!([]),
    );
    browser.click(
        "the ETL group",
        &group_script("return card.querySelector('[data-testid=group-toggle]')"),
        json!([["job=\"nightly_etl\""]]),
    );
    browser.wait_for(
        "the ETL group's families",
        "return document.querySelector('[data-family=etl_batch_seconds]')",
        json!([]),
    );
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    browser.screenshot(&docs.join("ui.png"));
}
