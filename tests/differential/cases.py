"""The differential cases (plain Python data; see dsl.py for the step types).

Naming: ``<area>.<what>``; areas: route, url, text, pb, enc, scrape, store, cons, nocheck,
prefix, admin, api, cli. Every server case gets an implicit final ``Scrape()``.

Policy. The reference binary is Debian's upstream 1.5.1, our target is the latest upstream
(1.11.x). A case or a step may carry ``expected_difference="<reason>"`` only when the reason cites
one of

  (a) spec section 9 ("Debian 1.5.1 vs latest upstream") of
      /work/shared/spec/upstream-pushgateway.md, naming the row;
  (b) a 1.5.1-vs-latest change verified in upstream's source, saying where: repository, file and
      tag or commit (e.g. "prometheus/common commit d074dea (v0.40.0) expfmt/text_parse.go");
  (c) a row of /work/main/docs/compatibility.md (our deliberate deviations), quoting the row's
      "Area" text.

Anything else where our gateway and 1.5.1 disagree is a finding (DIFFER), not an expected
difference; ``suspected="<text>"`` may explain it, but it still fails the run. A marked step
(or a marked case) that shows no difference at all also fails: ours then answers like 1.5.1
where latest (or our documented deviation) answers otherwise.

``pending="<why>"`` marks a case or step that exercises something our gateway does not implement
yet (none does today). Pending cases still run; their differences are reported as PENDING and do
not fail the run unless ``--pending-fails`` is given. A pending case/step that agrees gets a note
that its marker can be removed. Mark just the step (e.g. ``Api()``) where the rest
of a case works today.
"""

import gzip as _gzip

import pb
from dsl import CONSISTENCY, NAMES_ONLY, Api, Case, Cli, ExpectExit, Req, Scrape, Sleep

CASES = []

# ------------------------------------------------------------------ (a) spec §9
R_GZIP_CASE = ("spec §9 'Request Content-Encoding': 1.5.1 decodes only the exact value 'gzip', "
               "latest lower-cases the header so 'GZIP' is gunzipped")
R_SNAPPY = ("spec §9 'Request Content-Encoding': 1.5.1 has no snappy support (body parsed raw), "
            "latest decodes the snappy framed format")
R_FLOAT_HIST = ("spec §9 'Float classic histograms (text push)': 1.5.1 truncates float bucket "
                "counts to integers, latest keeps them")
R_NATIVE_API = ("spec §9 'Native histograms': 1.5.1's API shows only classic fields, latest adds "
                "native bucket arrays")
R_UTF8 = ("spec §9 'UTF-8 metric/label names': 1.5.1 rejects non-legacy names from protobuf at the "
          "consistency check; latest validates with UTF-8 rules and escapes names on scrape")
R_PREFIX = ("spec §9 'Route prefix normalisation': 1.5.1 trims all leading/trailing '/', latest "
            "adds one leading '/' and trims one trailing '/'")
R_VERSION = "spec §9 '--version output': 1.5.1 prints to stderr, latest to stdout (and version differs)"
R_HELP = ("spec §9 '--help': 1.5.1 prints to stderr and lists --web.local-assets; latest prints "
          "to stdout and lists --push.enable-utf8-names")
R_UTF8_FLAG = ("spec §9 'UTF-8 metric/label names' / §1: --push.enable-utf8-names exists only in "
               "latest (1.5.1 exits with 'unknown long flag')")
R_FLAGS_MAP = ("spec §9 'Flags map in API/UI' and build info: the status JSON differs by "
               "version (web.local-assets vs push.enable-utf8-names, build_information)")

# ------------------------------------------------------------------ (b) verified in upstream source
# Pushgateway v1.5.1 builds with prometheus/common v0.37.0, client_golang v1.14.0, pbutil; v1.11.3
# (go.mod) with prometheus/common v0.67.5, client_golang v1.23.2, google.golang.org/protobuf
# v1.36.11. (These were the "suspected" causes of the first version of this test.)
B_JOB_B64_LOCK = (
    "1.5.1 bug fixed in latest, verified in prometheus/pushgateway: v1.5.1 handler/push.go locks "
    "a per-handler mutex in the wrapper and unlocks it only after decoding the job, so a "
    "job@base64 decoding error returns with the mutex held and every later push to that handler "
    "(same method, job@base64 route) hangs; commit 5ad8650 'Remove unneeded mutex' (first in "
    "v1.10.0) removed the mutex")
B_GAUGE_HIST = (
    "prometheus/common v0.37.0 (1.5.1) expfmt/text_create.go has no GAUGE_HISTOGRAM case: it fails "
    "after writing '# TYPE gh ' and truncates the scrape; commit 45ae715 'expfmt: Add support for "
    "float histograms and gauge histograms' (v0.67.0; in pushgateway v1.11.3) renders a gauge "
    "histogram as 'histogram'")
B_FLOAT_PB = (
    "prometheus/common v0.37.0 (1.5.1) expfmt/text_create.go prints only the integer counts "
    "(GetCumulativeCount/GetSampleCount), so the float counts of a protobuf histogram print as 0 "
    "(the fields themselves exist in client_model v0.3.0); commit 45ae715 (v0.67.0; in pushgateway "
    "v1.11.3) prints cumulative_count_float / sample_count_float when set. Same root cause as "
    "spec §9 'Float classic histograms (text push)', which lists only the text push")
B_QUOTED = (
    "prometheus/common commit 8968b6c 'expfmt: Add UTF-8 syntax support in text_parse.go' "
    "(v0.56.0; in pushgateway v1.11.3): latest parses quoted names and, with pushgateway's legacy "
    "ValidationScheme (handler/push.go), answers 'invalid label name \"a.b\"' / 'invalid metric "
    "name \"m.x\"'; 1.5.1's parser (v0.37.0) has no quoted-name syntax")
B_GAUGEHISTOGRAM_TEXT = (
    "prometheus/common commit 45ae715 (v0.67.0) expfmt/text_parse.go readingType tolerates "
    "'gaugehistogram' as GAUGE_HISTOGRAM; 1.5.1 (v0.37.0) answers 400 'unknown metric type'")
B_HELP_QUOTE = (
    "prometheus/common commit 8968b6c (v0.56.0) expfmt/text_parse.go readTokenUntilNewline "
    "accepts the escape '\\\"' in HELP (besides '\\\\' and '\\n'); 1.5.1 (v0.37.0) answers 400 "
    "'invalid escape sequence'")
B_NEG_HIST = (
    "prometheus/common commit 45ae715 (v0.67.0) expfmt/text_parse.go readingValue: a negative "
    "histogram count / bucket is a 400 'negative count for histogram \"h\"' / 'negative bucket "
    "population for histogram \"h\"'; 1.5.1 (v0.37.0) converts it with uint64() and stores it")
B_LINE_START_ERR = (
    "prometheus/common commit d074dea 'expfmt: only ignore io.EOF errors in "
    "TextParse.startOfLine' (v0.40.0): a read error at the start of a line (here from the gzip "
    "reader: 'gzip: invalid checksum', or 'unexpected EOF' for a trailing non-gzip member) is a "
    "400 with that error in latest; 1.5.1 (v0.37.0) ignored it and stored what it had parsed")
B_PB_DECODE = (
    "prometheus/pushgateway commit b8c2691 'Migrate from pbutil to protodelim' (handler/push.go "
    "in v1.11.3, google.golang.org/protobuf v1.36.11): a malformed message inside a complete "
    "length-delimited frame (a truncated tag varint, or a length-delimited field running past "
    "the frame: internal/impl/decode.go and codec_gen.go return errDecode) is 'proto: cannot "
    "parse invalid wire-format data'; 1.5.1 (pbutil + its protobuf) answers 'unexpected EOF'")
B_PB_VARINT = (
    "prometheus/pushgateway commit b8c2691 (protodelim, google.golang.org/protobuf v1.36.11 "
    "encoding/protodelim UnmarshalFrom): a length prefix of ten bytes >= 0x80 is "
    "protowire.ParseError(errCodeOverflow) = 'proto: variable length integer overflow'; 1.5.1's "
    "pbutil answers 'invalid varint32 encountered'. (Go's protobuf prints 'proto:' followed by a "
    "regular or a non-breaking space, chosen per binary.)")
B_ACCEPT_Q = (
    "prometheus/client_golang commit f08b10c5 'feat: Support zstd compression' (v1.20.0; "
    "pushgateway v1.11.3 uses v1.23.2): promhttp negotiates Accept-Encoding with q-values "
    "(internal/github.com/golang/gddo/httputil NegotiateContentEncoding), so 'gzip;q=0, "
    "identity' gets an uncompressed answer; 1.5.1's client_golang v1.14.0 (gzipAccepted) gzips "
    "whenever a 'gzip' token is present")
B_LOG_FLAGS = (
    "prometheus/pushgateway v1.11.3 main.go uses prometheus/common promslog/flag (promslog added "
    "in commit 6ea2584, v0.57.0), whose Level.Set / Format.Set (promslog/slog.go in v0.67.5) "
    "answer 'unrecognized log level foo' / 'unrecognized log format xml' (value not quoted); "
    "1.5.1's promlog (v0.37.0 promlog/log.go) quotes it: 'unrecognized log level \"foo\"'")

# ------------------------------------------------------------------ (c) docs/compatibility.md rows
C_UTF8_VALUES = (
    "docs/compatibility.md row 'Label values that are not UTF-8 (in the URL after decoding, or "
    "in a protobuf push)': ours answers 400 before the store is touched; upstream refuses at the "
    "consistency check and still creates/marks the group (1.5.1: later scrapes then fail)")
C_TS_DUP = (
    "docs/compatibility.md row 'A group whose timestamp gauges would duplicate another group's "
    "(`{job=\"a\"}` next to `{job=\"a\",instance=\"\"}`)': ours refuses the push and stores "
    "nothing; upstream still creates the group, after which every scrape fails")
C_WIRE_TYPE = (
    "docs/compatibility.md row 'Protobuf field with the wrong wire type': ours answers 400 "
    "'proto: cannot parse invalid wire-format data', upstream ignores the field (and stores the "
    "push)")
C_QUIT_PREFIX = (
    "docs/compatibility.md row '`GET /-/quit` with a route prefix': upstream keeps its custom 405 "
    "at the un-prefixed path (a bug), ours moves it under the prefix")
C_NO_NAME = (
    "docs/compatibility.md row 'Unnamed family in a protobuf push': ours answers 400 'proto: "
    "metric family without a name', upstream stores it")
C_BAD_TYPE = (
    "docs/compatibility.md row 'Protobuf family type outside the schema (e.g. `type: 9`)': ours "
    "answers 400 'proto: unknown metric type 9 for family ...', upstream stores it")
C_CE_OTHER = (
    "docs/compatibility.md row '`Content-Encoding` on requests other than pushes': ours decodes "
    "only push bodies; upstream decodes every non-API route (400 for a broken gzip body)")
C_PROTO_TEXT = (
    "docs/compatibility.md row 'Protobuf scrape with `encoding=text` or `compact-text`': ours "
    "answers in text format 0.0.4, upstream in protobuf text format")
C_OWN_LE = (
    "docs/compatibility.md row 'A histogram metric with a label named `le` of its own': ours "
    "refuses it with 400; 1.5.1 stores it and every scrape then has `le` twice on each bucket")
C_TIME_FAMILIES = (
    "docs/compatibility.md row 'Pushed families named `push_time_seconds` or "
    "`push_failure_time_seconds`': ours ignores them (the gateway's values always win); upstream "
    "lets a pushed push_failure_time_seconds replace its own / checks its type")
C_GO = (
    "docs/compatibility.md row '`go_*` runtime metrics, `/debug/pprof/`': ours has no go_* "
    "families, so a pushed go_goroutines meets no own family (no type or help conflict, the "
    "pushed type and help are kept)")
C_OWN = (
    "docs/compatibility.md row 'Pushed families named like the gateway's own': ours checks against "
    "every own family (values or not) and always replaces the help with its own, so it reports "
    "the type conflict where upstream reports the help, accepts a matching type with another "
    "help, and refuses a colliding suffix that upstream accepts (and then fails every scrape)")
C_START_EXIT = (
    "docs/compatibility.md row 'Start-up errors (port in use, bad listen address, no sockets from "
    "systemd)': ours exits with status 1, upstream logs the error and exits with 0")
C_NO_SOCKETS = (
    C_START_EXIT + "; and row '`--web.systemd-socket` without sockets': ours adds the reason to "
    "upstream's 'no socket activation file descriptors found'")
C_VSOCK = (
    C_START_EXIT + "; and row '`vsock://` listen addresses': ours refuses them as not supported "
    "(latest upstream serves AF_VSOCK; 1.5.1 fails with 'too many colons in address')")
C_HELP_VALUE = (
    "docs/compatibility.md row '`--version`, `--help-long`, `--help-man` next to an invalid flag "
    "value (`--help-man --log.level=foo`)': kingpin prints without checking the value, ours "
    "reports the value error")

# The status document's flags that socket activation is about.
_LISTEN_FLAGS = [("data", "flags", "web.systemd-socket"), ("data", "flags", "web.listen-address")]


def case(name, *steps, **kw):
    CASES.append(Case(name, list(steps), **kw))


def _b(body):
    return body.encode("utf-8") if isinstance(body, str) else body


def put(path, body=b"", **kw):
    return Req("PUT", path, _b(body), **kw)


def post(path, body=b"", **kw):
    return Req("POST", path, _b(body), **kw)


def delete(path, body=b"", **kw):
    return Req("DELETE", path, _b(body), **kw)


def get(path, **kw):
    return Req("GET", path, **kw)


def req(method, path, body=b"", **kw):
    return Req(method, path, _b(body), **kw)


def pbput(path, *families, method="PUT", ct=pb.PROTO_CT, **kw):
    headers = [("Content-Type", ct)] if ct is not None else []
    return Req(method, path, pb.delimited(*families), headers=headers, **kw)


def gz(data):
    return _gzip.compress(_b(data), mtime=0)


def chunked(data, size=5):
    data = _b(data)
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


J = "/metrics/job"
M1 = "m 1\n"
CONS = CONSISTENCY
NOCHECK = ["--push.disable-consistency-check"]

# =================================================================== route: generic routing
case("route.healthy", get("/-/healthy"), final_scrape=False)
case("route.ready", get("/-/ready"), final_scrape=False)
case("route.healthy_ready_head", req("HEAD", "/-/healthy"), req("HEAD", "/-/ready"),
     final_scrape=False)
case("route.healthy_ready_other_methods", post("/-/healthy"), put("/-/ready"),
     delete("/-/healthy"), req("OPTIONS", "/-/healthy"), final_scrape=False)
case("route.healthy_trailing_slash", get("/-/healthy/"), put("/-/healthy/"), get("/-/ready/"),
     final_scrape=False)
case("route.healthy_case_insensitive", get("/-/Healthy"), get("/-/READY"), post("/-/HEALTHY"),
     final_scrape=False)
case("route.quit_get", get("/-/quit"), get("/-/quit/"), req("HEAD", "/-/quit"))
case("route.quit_without_lifecycle", put("/-/quit"), post("/-/quit"), delete("/-/quit"),
     req("OPTIONS", "/-/quit"), get("/-/healthy"))
# Upstream (1.5.1 and latest) may exit before the quit answer is flushed: main() returns as soon
# as ListenAndServe returns, without waiting for server.Shutdown to finish.
case("route.quit_lifecycle_put", put("/-/quit", racy_disconnect=True), ExpectExit(),
     flags=["--web.enable-lifecycle"], final_scrape=False)
case("route.quit_lifecycle_post", post("/-/quit", "ignored body", racy_disconnect=True), ExpectExit(),
     flags=["--web.enable-lifecycle"], final_scrape=False)
case("route.quit_lifecycle_get", get("/-/quit"), req("OPTIONS", "/-/quit"), get("/-/healthy"),
     flags=["--web.enable-lifecycle"])
case("route.not_found", get("/nonexistent"), put("/foo", M1), get("/metricsx"),
     post("/metrics/jobs/x", M1), delete("/-/"), final_scrape=False)
case("route.metrics_head", req("HEAD", "/metrics"), final_scrape=False)
case("route.metrics_other_methods", delete("/metrics"), put("/metrics", M1), post("/metrics", M1),
     req("PATCH", "/metrics"))
case("route.options", req("OPTIONS", "/metrics"), req("OPTIONS", "/-/healthy"),
     req("OPTIONS", "/nonexistent"), final_scrape=False)
case("route.metrics_case_insensitive", get("/METRICS"), get("/Metrics"), put("/METRICS"),
     final_scrape=False)
case("route.metrics_trailing_slash", get("/metrics/"), put("/metrics/", M1))
case("route.push_get_405", get(J + "/x"), get(J + "/x/a/b"), get("/metrics/job@base64/eA"))
case("route.push_options", req("OPTIONS", J + "/foo"), req("OPTIONS", J + "/foo/a/b"),
     req("OPTIONS", "/metrics/job@base64/Zm9v"), req("OPTIONS", J + "/foo/odd"))
case("route.push_head", req("HEAD", J + "/foo"))
case("route.push_patch_trace", req("PATCH", J + "/foo", M1), req("TRACE", J + "/foo"),
     req("FOO", J + "/foo", M1))
case("route.job_trailing_slash_only", put(J + "/", M1), post(J + "/", M1), delete(J + "/"),
     get(J + "/"))
case("route.job_missing", put(J, M1), put("/metrics/", M1), get(J), delete(J),
     post("/metrics/job@base64", M1))
case("route.job_base64_empty_segment", put("/metrics/job@base64/", M1))
case("route.upper_case_push", put("/METRICS/JOB/x", M1), post("/Metrics/Job/x", M1),
     delete("/METRICS/job/x"))
case("route.mixed_case_labels", post("/Metrics/Job/x/Instance/Y", M1),
     put("/metrics/JOB@BASE64/eA", M1))
case("route.double_slash", put(J + "/foo/a//b/c", M1), post(J + "//foo", M1),
     delete(J + "/foo//a/b"))
case("route.dot_segments", put(J + "/foo/../b/c", M1), put(J + "/foo/./a/b", M1),
     post("/metrics/./job/x", M1), put(J + "/foo/a/..", M1), put(J + "/foo/a/.", M1))
case("route.double_slash_get", get("//metrics"), get("/metrics//"), get("/-//healthy"),
     get("/./metrics"), final_scrape=False)
case("route.encoded_dot_segments", put(J + "/foo/a/%2E%2E", M1), put(J + "/foo/%2e/x", M1))
case("route.bad_percent_encoding", put(J + "/a%zz", M1), put(J + "/a/b/%", M1),
     get("/metrics%"))
case("route.query_string", put(J + "/q?x=y&job=z", M1), post(J + "/q/a/b?", "n 2\n"))
case("route.api_paths", get("/api/v1"), get("/api/v1/"), get("/api/v1/nope"),
     req("OPTIONS", "/api/v1/whatever", compare_headers=(
         "access-control-allow-origin", "access-control-allow-methods",
         "access-control-allow-headers", "access-control-expose-headers")),
     post("/api/v1/status"), put("/api/v1/metrics"), final_scrape=False)
case("route.wipe_disabled", put("/api/v1/admin/wipe"), get("/api/v1/admin/wipe"))
case("route.static_redirect", get("/static"), put("/static"), final_scrape=False)
case("route.ui_pages", get("/", compare_body=False), get("/status", compare_body=False),
     req("HEAD", "/"), post("/"), final_scrape=False)

# =================================================================== url: push URL grammar
case("url.job_plain", put(J + "/plain", M1))
case("url.job_instance", put(J + "/j/instance/i", M1))
case("url.many_labels", put(J + "/j/c/3/a/1/b/2/instance/inst", "m{d=\"4\"} 1\n"))
case("url.job_base64_padded", put("/metrics/job@base64/dGVzdC9qb2I=", M1))
case("url.job_base64_unpadded", put("/metrics/job@base64/dGVzdC9qb2I", M1))
case("url.job_base64_pct_padding", put("/metrics/job@base64/dGVzdC9qb2I%3D", M1),
     post("/metrics/job@base64/dGVzdC9qb2I%3D%3D%3D", "n 1\n"))
case("url.job_base64_empty", put("/metrics/job@base64/=", M1), put("/metrics/job@base64/===", M1),
     delete("/metrics/job@base64/="), put("/metrics/job@base64/%3D", M1))
# NB: in 1.5.1 a job@base64 decoding error leaks the push handler's mutex (see B_JOB_B64_LOCK), so
# every case below sends at most one such request per handler (PUT / POST) and it sends it last.
case("url.job_base64_invalid_char", put("/metrics/job@base64/a.b", M1),
     delete("/metrics/job@base64/a.b"))
case("url.job_base64_invalid_partial", put("/metrics/job@base64/YWJj+ZGVm", M1))
case("url.job_base64_invalid_after_4", post("/metrics/job@base64/YWJjZA.x", M1))
case("url.job_base64_invalid_length", put("/metrics/job@base64/Y", M1))
case("url.job_base64_error_then_push", put("/metrics/job@base64/a.b", M1),
     put("/metrics/job@base64/Zm9v", M1, timeout=2), post("/metrics/job@base64/YmFy", M1),
     put(J + "/plain", M1), expected_difference=B_JOB_B64_LOCK)
case("url.job_base64_utf8", put("/metrics/job@base64/zqDPgS94", M1))
case("url.job_base64_nonstrict_bits", put("/metrics/job@base64/YR", M1),
     post("/metrics/job@base64/YQ", "n 1\n"))
case("url.error_order_job_first", put("/metrics/job@base64/a.b/odd", M1),
     post("/metrics/job@base64/a.b/__a/x", M1))
case("url.error_order_label_before_empty_job", put("/metrics/job@base64/=/__a/x", M1),
     put("/metrics/job@base64/=/odd", M1), put("/metrics/job@base64/=/a/b", M1))
case("url.label_base64", put(J + "/j/path@base64/L3Zhci90bXA", M1),
     put(J + "/j2/path@base64/L3Zhci90bXA=", M1))
case("url.label_base64_padding_variants", put(J + "/j/a@base64/YQ==", "m1 1\n"),
     post(J + "/j/a@base64/YQ=", "m2 1\n"), post(J + "/j/a@base64/YQ", "m3 1\n"),
     post(J + "/j/a@base64/YQ%3D%3D", "m4 1\n"), post(J + "/j/a/a", "m5 1\n"))
case("url.label_base64_empty", put(J + "/j/a@base64/=", M1), put(J + "/k/a@base64/===", M1),
     put(J + "/l/a@base64/=/b/x", M1))
case("url.label_base64_nonstrict", put(J + "/j/a@base64/YR", M1))
case("url.label_base64_std_alphabet", put(J + "/j/a@base64/a+b", M1),
     put(J + "/j/a@base64/fn5+", M1), put(J + "/j/a@base64/YQ=x", M1),
     put(J + "/j/a@base64/Y", M1), delete(J + "/j/a@base64/a+b"))
case("url.label_base64_urlsafe", put(J + "/j/a@base64/fn5-", M1))
case("url.label_base64_newline_value", put(J + "/j/a@base64/Cg==", M1),
     put(J + "/k/a@base64/Y%0Ag", M1))
case("url.label_base64_invalid_utf8", put(J + "/j/a@base64/_w==", M1, norm=CONS),
     scrape_norm=CONS, expected_difference=C_UTF8_VALUES)
case("url.label_base64_double_suffix", put(J + "/j/a@base64@base64/YQ", M1),
     put(J + "/j/@base64@base64/YQ", M1))
case("url.label_empty_name", put(J + "/j/@base64/YQ", M1), put(J + "/j/@base64/=", M1))
case("url.label_reserved_prefix", put(J + "/j/__a/x", M1), put(J + "/j/__a@base64/eA", M1),
     put(J + "/j/__name__/x", M1), delete(J + "/j/__a/x"), put(J + "/j/_a/x", M1))
case("url.label_invalid_names", put(J + "/j/a-b/x", M1), put(J + "/j/1a/x", M1),
     put(J + "/j/a.b/x", M1), put(J + "/j/a%20b/x", M1), put(J + "/j/%CE%A0/x", M1),
     put(J + "/j/a:b/x", M1))
case("url.label_utf8_escape_literal", put(J + "/j/U__label_2e_name2/v", M1))
case("url.label_pct_slash", put(J + "/j/name/a%2Fb", M1), put("/metrics/job/a%2Fb", M1),
     put("/metrics/job%2Fx/y", M1))
case("url.label_pct_utf8", put(J + "/j/name/%CE%A0%CF%81", M1))
case("url.label_raw_utf8", put(J + "/j/name/Πρ", M1), put(J + "/Πρ", "n 1\n"))
case("url.label_plus_space", put(J + "/j/name/a+b", M1), put(J + "/j2/name/a%20b", M1),
     put(J + "/j3/name/a%2Bb", M1))
case("url.label_pct_at_sign", put(J + "/j/name%40base64/YQ", M1),
     put("/metrics/job%40base64/Zm9v", "n 1\n"))
case("url.label_quote_backslash", put(J + "/j/v/%22%5C%7B%7D", M1))
case("url.odd_components", put(J + "/foo/odd", M1), post(J + "/foo/a/b/c", M1),
     delete(J + "/foo/odd"))
case("url.trailing_slash_after_name", put(J + "/trail/a/", M1))
case("url.trailing_slash_after_value", put(J + "/foo/a/b/", M1))
case("url.job_trailing_slash_same_group", put(J + "/foo/", "m1 1\n"), post(J + "/foo", "m2 1\n"))
case("url.duplicate_label_last_wins", put(J + "/j/instance/i/instance/k", M1),
     post(J + "/j/a/1/b/2/a/3", "n 1\n"))
case("url.job_in_labels", put(J + "/j/job/other", M1),
     post(J + "/j/job@base64/b3RoZXI", "n 1\n"), post(J + "/k/job/", "o 1\n"))
# {job=a} and {job=a,instance=""} are different groups with identical series: the rejected push
# still creates the second group, whose timestamp gauges then break every scrape (500).
case("url.instance_empty_vs_absent", put(J + "/a", M1),
     put(J + "/a/instance@base64/=", M1, norm=CONS),
     Scrape(norm=CONS, expected_difference=C_TS_DUP),
     put(J + "/a/instance@base64/=", "", norm=CONS),
     delete(J + "/a"), put(J + "/a/instance@base64/=", M1),
     final_scrape=Scrape(expected_difference=C_TS_DUP))
case("url.long_value", put(J + "/j/v/" + "x" * 3000, M1))
case("url.odd_characters", put(J + "/a:b%20c/v/%21%24%26%27%28%29%2A%2C%3B%3D", M1),
     put(J + "/j2/v/...", M1), put(J + "/j3/v/~-_", M1))

# =================================================================== text: text format bodies
case("text.untyped", put(J + "/j", "m 1\nother{a=\"b\"} 2.5\n"))
case("text.counter_gauge_help", put(J + "/j",
                                    "# HELP c A counter.\n# TYPE c counter\nc 3\n"
                                    "# TYPE g gauge\n# HELP g A gauge.\ng{x=\"1\"} -2\ng{x=\"2\"} 0\n"))
case("text.help_escapes", put(J + "/j", "# HELP m a\\\\b\\nc \\t d\nm 1\n"))
case("text.help_escapes_valid", put(J + "/j", "# HELP m a\\\\b\\nc \\\"q\\\" d\nm 1\n"),
     expected_difference=B_HELP_QUOTE)
case("text.label_escapes", put(J + "/j", "m{a=\"x\\\"y\\\\z\\nw\"} 1\n"))
case("text.label_invalid_escape", put(J + "/j", "m{a=\"x\\ty\"} 1\n"))
case("text.no_final_newline", put(J + "/j", "m 1"), put(J + "/j", "m 1\nn 2"),
     put(J + "/j", "# TYPE m gauge"))
case("text.crlf", put(J + "/j", "m 1\r\n"), put(J + "/j", "# TYPE m gauge\r\nm 1\n"))
case("text.blank_lines_and_comments", put(J + "/j", "\n# a comment\n\nm 1\n\n#\n# HELPX y\n"))
case("text.empty_help_ignored", put(J + "/j", "# HELP m\nm 1\n# HELP n \nn 1\n"))
case("text.second_type", put(J + "/j", "# TYPE m gauge\n# TYPE m gauge\nm 1\n"))
case("text.second_help", put(J + "/j", "# HELP m a\n# HELP m b\nm 1\n"))
case("text.type_after_samples", put(J + "/j", "m 1\n# TYPE m gauge\n"))
case("text.help_after_samples", put(J + "/j", "m 1\n# HELP m late\n"))
case("text.type_only_family_dropped", put(J + "/j", "# TYPE x counter\ny 1\n"),
     post(J + "/j", "# HELP z only help\n"))
case("text.histogram", put(J + "/j",
                           "# TYPE h histogram\nh_bucket{le=\"0.5\"} 3\nh_bucket{le=\"1\"} 4\n"
                           "h_bucket{le=\"+Inf\"} 5\nh_sum 2.5\nh_count 5\n"))
case("text.histogram_missing_inf", put(J + "/j",
                                       "# TYPE h histogram\nh_bucket{le=\"0.5\"} 3\nh_sum 2.5\n"
                                       "h_count 7\n"))
case("text.histogram_labels", put(J + "/j",
                                  "# TYPE h histogram\nh_bucket{x=\"a\",le=\"1\"} 1\n"
                                  "h_bucket{le=\"1\",x=\"b\"} 2\nh_count{x=\"a\"} 1\n"
                                  "h_count{x=\"b\"} 2\nh_sum{x=\"a\"} 0.5\nh_sum{x=\"b\"} 1\n"))
case("text.histogram_float_counts", put(J + "/j",
                                        "# TYPE fh histogram\nfh_bucket{le=\"1\"} 0.5\n"
                                        "fh_bucket{le=\"+Inf\"} 2.5\nfh_sum 1\nfh_count 2.5\n"),
     expected_difference=R_FLOAT_HIST)
case("text.histogram_bucket_without_le", put(J + "/j", "# TYPE h histogram\nh_bucket 3\n"))
case("text.histogram_bad_le", put(J + "/j", "# TYPE h histogram\nh_bucket{le=\"x\"} 3\n"))
case("text.histogram_only_sum_count", put(J + "/j", "# TYPE h histogram\nh_sum 3\nh_count 2\n"))
case("text.summary", put(J + "/j",
                         "# HELP s A summary.\n# TYPE s summary\ns{quantile=\"0.5\"} 0.1\n"
                         "s{quantile=\"0.9\"} 0.3\ns_sum 4.2\ns_count 17\n"))
case("text.summary_no_quantiles", put(J + "/j", "# TYPE s summary\ns_sum 0\ns_count 0\n"))
case("text.summary_bad_quantile", put(J + "/j", "# TYPE s summary\ns{quantile=\"x\"} 1\n"))
case("text.gauge_with_suffix_names", put(J + "/j", "# TYPE g gauge\ng_sum 1\ng_count 2\n"))
case("text.untyped_with_suffix_names", put(J + "/j", "u_sum 1\nu_count 2\nu_bucket{le=\"1\"} 3\n"))
case("text.special_values", put(J + "/j",
                                "nan NaN\npinf +Inf\nninf -Inf\nnegzero -0\nzero 0\n"))
case("text.float_formatting", put(J + "/j",
                                  "a 1e6\nb 1e-05\nc 123456.7\nd 0.0001\ne 1234567\nf 100000\n"
                                  "g 9007199254740993\nh 1.5e300\ni 5e-324\nj 0.30000000000000004\n"
                                  "k 1E3\nl -123456789.125\nm 0.00001234\nn 1e21\no 1e+20\n"))
_float_variants = ["0x1p4", "inf", "Inf", "+inf", "-inf", "nan", "NAN", "Infinity", "-Infinity",
                   ".5", "5.", "1_000", "+1", "1e", "0x10", "1e400", "-1e400", "1e-400", "+NaN",
                   "- 1", "0.1.2", "1e+", "0b101", "0o7", "00012"]
case("text.go_parsefloat_variants",
     *[put(f"{J}/v{i}", f"m{i} {v}\n") for i, v in enumerate(_float_variants)])
case("text.timestamp_rejected", put(J + "/j/instance/i", "a 1\nb 1 1000\n"))
case("text.timestamp_zero_and_negative", put(J + "/j", "a 1 0\n"), put(J + "/k", "a 1 -5\n"),
     put(J + "/l", "a 1 abc\n"), put(J + "/m", "a 1 1.5\n"))
case("text.timestamp_on_existing_group", put(J + "/j", "a 1\n"), put(J + "/j", "a 2 5\n"),
     post(J + "/j", "b 2 5\n"))
case("text.duplicate_label_in_line", put(J + "/j", "m{a=\"1\",a=\"2\"} 1\n"))
case("text.trailing_comma_and_empty_braces", put(J + "/j", "m{a=\"1\",} 1\nn{} 2\n"))
case("text.label_value_unquoted", put(J + "/j", "m{a=1} 1\n"), put(J + "/j", "m{a} 1\n"),
     put(J + "/j", "m{a=\"1\" 1\n"))
case("text.invalid_metric_names", put(J + "/j", "m.x 1\n"), put(J + "/j", "1m 1\n"),
     put(J + "/j", "m-x 1\n"))
case("text.quoted_names", put(J + "/j", "m{\"a.b\"=\"1\"} 1\n"),
     put(J + "/j", "{\"m.x\"} 1\n"), expected_difference=B_QUOTED)
case("text.reserved_label_in_body", put(J + "/j", "m{__x=\"1\"} 1\n"))
case("text.name_label_in_body", put(J + "/j", "m{__name__=\"n\"} 1\n"))
case("text.reserved_metric_name", put(J + "/j", "__name__x 1\n"))
case("text.colon_names", put(J + "/j", "a:b 1\n:c 2\n_d 3\n"))
case("text.whitespace", put(J + "/j", "m  1\n"), post(J + "/j", "n\t2\n"),
     post(J + "/j", "o { a = \"1\" } 3\n"), post(J + "/j", "p 4 \n"),
     post(J + "/j", " q 5\n"))
case("text.unknown_type", put(J + "/j", "# TYPE m foo\nm 1\n"),
     put(J + "/j", "# TYPE m COUNTER\nm 1\n"),
     put(J + "/j", "# TYPE m gaugehistogram\nm 1\n", expected_difference=B_GAUGEHISTOGRAM_TEXT),
     put(J + "/j", "# TYPE m\nm 1\n"))
case("text.invalid_utf8", put(J + "/j", b"m{a=\"\xff\"} 1\n"), put(J + "/j", b"# HELP m \xff\nm 1\n"),
     put(J + "/j", b"m\xff 1\n"))
case("text.utf8_help_and_value", put(J + "/j", "# HELP m Ünïcødé ☃ help\nm{a=\"Πρ☃\"} 1\n"))
case("text.duplicate_series", put(J + "/j", "a{x=\"1\"} 1\na{x=\"1\"} 2\n", norm=CONS))
case("text.many_series", put(J + "/j", "".join(f"m{{i=\"{i}\"}} {i}\n" for i in range(500))))
# No request-body size limit upstream (spec 2.11): ~3 MB of text (more than axum's 2 MB default
# limit), and a gzip body inflating to ~3 MB.
_big = "".join(f"big_metric_name{{index=\"{i}\",pad=\"xxxxxxxx\"}} {i}\n" for i in range(60000))
case("text.large_body", put(J + "/j", _big, timeout=60))
case("enc.gzip_large_body", put(J + "/j", gz(_big), headers=[("Content-Encoding", "gzip")],
                                timeout=60))
case("text.negative_counter", put(J + "/j", "# TYPE neg counter\nneg -1\n"))
case("text.nonmonotonic_buckets", put(J + "/j",
                                      "# TYPE h histogram\nh_bucket{le=\"1\"} 5\n"
                                      "h_bucket{le=\"2\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_sum 1\n"
                                      "h_count 4\n"))
case("text.histogram_negative_count", put(J + "/j", "# TYPE h histogram\nh_count -1\n"),
     put(J + "/k", "# TYPE h histogram\nh_bucket{le=\"1\"} -1\n"), expected_difference=B_NEG_HIST)
case("text.help_for_other_family", put(J + "/j", "# HELP a x\n# TYPE b counter\nb 1\na 2\n"))
# "{}" (step 2): pushgateway 1.11.3's parser (prometheus/common v0.67.5) dereferences a nil metric
# here and the request panics (connection dropped); fixed upstream by prometheus/common a1600af
# (v0.69.0), which answers 'invalid metric name' like 1.5.1. Compared normally.
case("text.garbage", put(J + "/j", "blablabla\n"), put(J + "/j", "{}\n"),
     put(J + "/j", "m 1 2 3\n"), put(J + "/j", "#TYPE m gauge\nm 1\n"))
case("text.empty_body_put_post", put(J + "/j", ""), post(J + "/k", ""))
case("text.long_help", put(J + "/j", "# HELP m " + "h" * 5000 + "\nm 1\n"))
case("text.le_label_on_gauge", put(J + "/j", "# TYPE g gauge\ng{le=\"1\"} 1\n"))
case("text.quantile_label_on_untyped", put(J + "/j", "u{quantile=\"0.5\"} 1\n"))
case("text.content_types", put(J + "/j", M1, headers=[("Content-Type", "text/plain; version=0.0.4")]),
     post(J + "/j", "n 1\n", headers=[("Content-Type", "application/json")]),
     post(J + "/j", "o 1\n", headers=[("Content-Type", "application/openmetrics-text; version=1.0.0")]),
     post(J + "/j", "p 1\n", headers=[("Content-Type", ";;;===")]))
case("text.openmetrics_eof_body", put(J + "/j", "m 1\n# EOF\n",
                                      headers=[("Content-Type", "application/openmetrics-text")]))

# =================================================================== pb: delimited protobuf
G = pb.GAUGE
_g1 = pb.family("pg", "A gauge.", pb.GAUGE, [pb.metric({"a": "1"}, gauge=1.5)])
_c1 = pb.family("pc", None, pb.COUNTER, [pb.metric(counter=7)])
case("pb.two_families", pbput(J + "/j/instance/i", _g1, _c1))
case("pb.all_simple_types", pbput(J + "/j",
     pb.family("u", None, pb.UNTYPED, [pb.metric({"x": "1"}, untyped=3.14), pb.metric(untyped=-0.0)]),
     pb.family("s", "sum", pb.SUMMARY, [pb.metric(summary=pb.summary(17, 4.2, [(0.5, 0.1), (0.9, 0.3)]))]),
     pb.family("h", None, pb.HISTOGRAM, [pb.metric(histogram=pb.histogram(
         5, 2.5, [(0.5, 3), (1, 4)]))]),
     pb.family("h2", None, pb.HISTOGRAM, [pb.metric(histogram=pb.histogram(
         5, 2.5, [(0.5, 3), (float("inf"), 5)]))])))
case("pb.duplicate_family_last_wins", pbput(J + "/j",
     pb.family("d", None, G, [pb.metric(gauge=1)]), pb.family("d", None, G, [pb.metric(gauge=2)])))
case("pb.timestamped", pbput(J + "/j",
     pb.family("t", None, G, [pb.metric(gauge=1, timestamp_ms=1000)])),
     pbput(J + "/k", pb.family("t", None, G, [pb.metric(gauge=1, timestamp_ms=0)])),
     pbput(J + "/l", pb.family("t", None, G, [pb.metric(gauge=1, timestamp_ms=-1)])))
case("pb.truncated", Req("PUT", J + "/j", pb.delimited(_g1)[:-3],
                         headers=[("Content-Type", pb.PROTO_CT)]),
     Req("PUT", J + "/j", pb.delimited(_g1) + b"\x05ab", headers=[("Content-Type", pb.PROTO_CT)]))
case("pb.huge_length_prefix", Req("PUT", J + "/j", pb.varint(1 << 30) + b"abc",
                                  headers=[("Content-Type", pb.PROTO_CT)]),
     Req("PUT", J + "/j", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
         headers=[("Content-Type", pb.PROTO_CT)], expected_difference=B_PB_VARINT))
case("pb.garbage", Req("PUT", J + "/j", b"\x04\xff\xff\xff\xff", headers=[("Content-Type", pb.PROTO_CT)],
                       expected_difference=B_PB_DECODE),
     Req("PUT", J + "/j", b"\x02\x0a\x05", headers=[("Content-Type", pb.PROTO_CT)],
         expected_difference=B_PB_DECODE),
     # field 3 (type) sent with wire type 2 instead of a varint
     Req("PUT", J + "/j", b"\x03\x1a\x01\x00", headers=[("Content-Type", pb.PROTO_CT)],
         expected_difference=C_WIRE_TYPE),
     final_scrape=Scrape(expected_difference=C_WIRE_TYPE))
case("pb.empty_family", pbput(J + "/j", pb.family("pb_empty", "no metrics", G)), Api())
case("pb.zero_length_message", Req("PUT", J + "/j", b"\x00", headers=[("Content-Type", pb.PROTO_CT)],
                                   expected_difference=C_NO_NAME),
     Api(expected_difference=C_NO_NAME), final_scrape=Scrape(expected_difference=C_NO_NAME))
case("pb.no_name", pbput(J + "/j", pb.family(None, None, G, [pb.metric(gauge=1)]),
                        expected_difference=C_NO_NAME))
case("pb.empty_body", pbput(J + "/j"), pbput(J + "/k", method="POST"))
case("pb.type_mismatch", pbput(J + "/j", pb.family("mm", None, pb.COUNTER, [pb.metric(gauge=1)]),
                               norm=CONS),
     pbput(J + "/k", pb.family("mm2", None, G, [pb.metric(summary=pb.summary(1, 1))]), norm=CONS),
     pbput(J + "/l", pb.family("mm3", None, pb.HISTOGRAM, [pb.metric(untyped=1)]), norm=CONS))
case("pb.no_value", pbput(J + "/j", pb.family("nv", None, G, [pb.metric({"a": "b"})]), norm=CONS))
case("pb.two_values", pbput(J + "/j", pb.family("tv", None, G, [pb.metric(gauge=1, counter=2)]),
                            norm=CONS))
case("pb.missing_type_is_counter", pbput(J + "/j", pb.family("mt", None, None, [pb.metric(counter=2)])))
case("pb.unknown_type_value", pbput(J + "/j", pb.family("ut", None, 9, [pb.metric(gauge=2)]),
                                    norm=CONS), expected_difference=C_BAD_TYPE)
case("pb.gauge_histogram", pbput(J + "/j", pb.family("gh", None, pb.GAUGE_HISTOGRAM, [
    pb.metric(histogram=pb.histogram(3, 1.5, [(1, 2)]))])), expected_difference=B_GAUGE_HIST)
case("pb.float_histogram", pbput(J + "/j", pb.family("fh", None, pb.HISTOGRAM, [
    pb.metric(histogram=pb.histogram(None, 1.5, [(1, None, 0.5), (2, None, 2.5)], count_float=2.5))])),
     expected_difference=B_FLOAT_PB)
_native = pb.family("nh", "native", pb.HISTOGRAM, [pb.metric(histogram=pb.histogram(
    20, 99.23, schema=1, zero_threshold=0.001, zero_count=2, pos_spans=[(0, 2), (1, 2)],
    pos_deltas=[2, 1, -3, 0], neg_spans=[(0, 1)], neg_deltas=[4]))])
case("pb.native_histogram", pbput(J + "/j", _native))
case("pb.native_histogram_api", pbput(J + "/j", _native), Api(),
     expected_difference=R_NATIVE_API)
case("pb.native_float_histogram", pbput(J + "/j", pb.family("nfh", None, pb.HISTOGRAM, [
    pb.metric(histogram=pb.histogram(None, 9.5, count_float=7.5, schema=0, zero_threshold=0.5,
                                     zero_count_float=1.5, pos_spans=[(1, 2)],
                                     pos_counts=[2.5, 3.5]))])), expected_difference=B_FLOAT_PB)
case("pb.native_plus_classic", pbput(J + "/j", pb.family("nc", None, pb.HISTOGRAM, [
    pb.metric(histogram=pb.histogram(6, 3, [(1, 2), (5, 4)], schema=2, pos_spans=[(0, 1)],
                                     pos_deltas=[6]))])))
case("pb.dotted_label_name", pbput(J + "/j", pb.family("dl", None, G, [
    pb.metric({"a.b": "1"}, gauge=1)]), norm=CONS), expected_difference=R_UTF8)
case("pb.dotted_metric_name", pbput(J + "/j", pb.family("d.m", None, G, [pb.metric(gauge=1)])),
     expected_difference=R_UTF8)
case("pb.invalid_metric_name", pbput(J + "/j", pb.family("1m-x", None, G, [pb.metric(gauge=1)])),
     expected_difference=R_UTF8)
case("pb.duplicate_label_name", pbput(J + "/j", pb.family("dn", None, G, [
    pb.metric([("a", "1"), ("a", "2")], gauge=1)]), norm=CONS))
case("pb.invalid_utf8_label_value", pbput(J + "/j", pb.family("iu", None, G, [
    pb.metric([("a", b"\xff")], gauge=1)]), norm=CONS), expected_difference=C_UTF8_VALUES)
case("pb.reserved_label", pbput(J + "/j", pb.family("rl", None, G, [
    pb.metric({"__x": "1"}, gauge=1)]), norm=CONS))
case("pb.empty_label_name", pbput(J + "/j", pb.family("el", None, G, [
    pb.metric({"": "1"}, gauge=1)]), norm=CONS))
case("pb.label_pair_without_name", Req("PUT", J + "/j", pb.delimited(pb.family("ln", None, G, [
    pb.metric([(None, "v")], gauge=1)])), headers=[("Content-Type", pb.PROTO_CT)], norm=CONS))
case("pb.explicit_quantile_label", pbput(J + "/j", pb.family("eq", None, pb.SUMMARY, [
    pb.metric({"quantile": "0.5"}, summary=pb.summary(1, 1))]), norm=CONS))
case("pb.explicit_le_label", pbput(J + "/j", pb.family("el", None, pb.HISTOGRAM, [
    pb.metric({"le": "1"}, histogram=pb.histogram(1, 1, [(1, 1)]))]), norm=CONS),
    expected_difference=C_OWN_LE)
case("pb.grouping_labels_in_body", pbput(J + "/j/instance/i", pb.family("gl", None, G, [
    pb.metric({"job": "other", "instance": "x", "keep": "y"}, gauge=1)])))
case("pb.unit_and_exemplar", pbput(J + "/j", pb.family("ue_total", None, pb.COUNTER, [
    pb.metric(counter=1)], unit="seconds"),
    pb.family("ex", None, pb.COUNTER, [pb.metric() + pb.f_bytes(3, pb.f_double(1, 3) + pb.f_bytes(
        2, pb.f_bytes(1, pb.label("trace", "abc")) + pb.f_double(2, 1)))]), norm=CONS))
case("pb.unknown_fields", Req("PUT", J + "/j", pb.delimited(
    pb.family("uf", None, G, [pb.metric(gauge=4)]) + pb.f_varint(99, 1) + pb.f_bytes(100, "x")),
    headers=[("Content-Type", pb.PROTO_CT)]))
case("pb.packed_native_deltas", Req("PUT", J + "/j", pb.delimited(pb.family("pn", None, pb.HISTOGRAM, [
    pb.metric(histogram=pb.histogram(4, 2, schema=0, pos_spans=[(0, 2)])
              + pb.f_bytes(13, pb.varint(pb.zigzag(1)) + pb.varint(pb.zigzag(2))))])),
    headers=[("Content-Type", pb.PROTO_CT)]))
_pbbody = pb.delimited(pb.family("ct", None, G, [pb.metric(gauge=1)]))
case("pb.ct_missing", Req("PUT", J + "/j", _pbbody))
case("pb.ct_without_proto", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf; encoding=delimited")]))
case("pb.ct_params_swapped", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf; encoding=delimited; proto=io.prometheus.client.MetricFamily")]))
case("pb.ct_param_names_upper", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "Application/Vnd.Google.Protobuf; PROTO=io.prometheus.client.MetricFamily; Encoding=delimited")]))
case("pb.ct_param_values_case", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.metricfamily; encoding=DELIMITED")]))
case("pb.ct_quoted_values", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=\"delimited\"")]))
case("pb.ct_extra_param", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", pb.PROTO_CT + "; escaping=allow-utf-8")]))
case("pb.ct_encoding_text", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text")]))
case("pb.ct_unparsable", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding")]))
case("pb.ct_spaces", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", "application/vnd.google.protobuf ;proto=io.prometheus.client.MetricFamily ;encoding=delimited")]))
case("pb.ct_duplicate_param", Req("PUT", J + "/j", _pbbody, headers=[
    ("Content-Type", pb.PROTO_CT + "; encoding=delimited")]))
case("pb.text_body_with_pb_ct", put(J + "/j", M1, headers=[("Content-Type", pb.PROTO_CT)]))

# =================================================================== enc: Content-Encoding
case("enc.gzip_text", put(J + "/j", gz("m 1\n# TYPE n gauge\nn 2\n"),
                          headers=[("Content-Encoding", "gzip")]))
case("enc.gzip_protobuf", Req("PUT", J + "/j", gz(_pbbody),
                              headers=[("Content-Type", pb.PROTO_CT), ("Content-Encoding", "gzip")]))
case("enc.gzip_uppercase", put(J + "/j", gz(M1), headers=[("Content-Encoding", "GZIP")]),
     expected_difference=R_GZIP_CASE)
case("enc.gzip_invalid", put(J + "/j", "not gzip at all\n", headers=[("Content-Encoding", "gzip")]))
case("enc.gzip_truncated", put(J + "/j", gz(M1 * 20)[:-10], headers=[("Content-Encoding", "gzip")]),
     put(J + "/k", gz(M1)[:5], headers=[("Content-Encoding", "gzip")]))
case("enc.gzip_empty_body", put(J + "/j", b"", headers=[("Content-Encoding", "gzip")]))
case("enc.gzip_bad_crc", put(J + "/j", gz(M1)[:-8] + b"\0\0\0\0" + gz(M1)[-4:],
                             headers=[("Content-Encoding", "gzip")]),
     expected_difference=B_LINE_START_ERR)
case("enc.gzip_multi_member", put(J + "/j", gz("m 1\n") + gz("n 2\n"),
                                  headers=[("Content-Encoding", "gzip")]))
case("enc.gzip_trailing_garbage", put(J + "/j", gz("m 1\n") + b"garbage",
                                      headers=[("Content-Encoding", "gzip")]),
     expected_difference=B_LINE_START_ERR)
case("enc.gzip_on_get", Req("GET", "/-/healthy", b"", headers=[("Content-Encoding", "gzip")]),
     Req("GET", "/metrics", b"xx", headers=[("Content-Encoding", "gzip")]),
     Req("DELETE", J + "/j", b"", headers=[("Content-Encoding", "gzip")]), final_scrape=False,
     expected_difference=C_CE_OTHER)
case("enc.deflate_and_others", put(J + "/j", M1, headers=[("Content-Encoding", "deflate")]),
     post(J + "/j", "n 1\n", headers=[("Content-Encoding", "br")]),
     post(J + "/j", "o 1\n", headers=[("Content-Encoding", "identity")]),
     post(J + "/j", "p 1\n", headers=[("Content-Encoding", "gzip, identity")]))
case("enc.snappy", put(J + "/j", pb.snappy_framed(b"m 1\n"), headers=[("Content-Encoding", "snappy")]),
     expected_difference=R_SNAPPY)
case("enc.chunked_body", Req("PUT", J + "/j", chunked("m 1\n# TYPE n counter\nn 5\n"),
                             headers=[("Transfer-Encoding", "chunked")], content_length=False))
case("enc.chunked_gzip", Req("PUT", J + "/j", chunked(gz("m 1\n"), 7),
                             headers=[("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")],
                             content_length=False))

# =================================================================== scrape: /metrics output
_mixed = ("# HELP g A gauge.\n# TYPE g gauge\ng{b=\"2\"} 1\ng 2\ng{a=\"1\",b=\"1\"} 3\n"
          "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"
          "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\nu 4\n")
case("scrape.empty_store", Scrape())
case("scrape.accept_gzip", put(J + "/j", _mixed), Scrape(headers=[("Accept-Encoding", "gzip")]))
case("scrape.accept_encodings_other", put(J + "/j", _mixed),
     Scrape(headers=[("Accept-Encoding", "br, zstd")]),
     Scrape(headers=[("Accept-Encoding", "gzip;q=0, identity")], expected_difference=B_ACCEPT_Q),
     Scrape(headers=[("Accept-Encoding", "*")]))
case("scrape.accept_protobuf", put(J + "/j", _mixed), pbput(J + "/k", _native),
     Scrape(headers=[("Accept", pb.PROTO_CT)]))
case("scrape.accept_protobuf_text_encodings", put(J + "/j", _mixed),
     Scrape(headers=[("Accept", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text")],
            expected_difference=C_PROTO_TEXT),
     Scrape(headers=[("Accept", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=compact-text")],
            expected_difference=C_PROTO_TEXT))
case("scrape.accept_others", put(J + "/j", _mixed),
     Scrape(headers=[("Accept", "application/openmetrics-text; version=1.0.0")]),
     Scrape(headers=[("Accept", "text/plain;version=1.0.0")]),
     Scrape(headers=[("Accept", "*/*")]),
     Scrape(headers=[("Accept", "application/json")]),
     Scrape(headers=[("Accept", "text/plain; version=0.0.4")]))
case("scrape.accept_q_order", put(J + "/j", _mixed),
     Scrape(headers=[("Accept", "text/plain;q=0.5, " + pb.PROTO_CT + ";q=0.9")]),
     Scrape(headers=[("Accept", pb.PROTO_CT + ";q=0.1, text/plain;q=0.9")]))
case("scrape.families_interleave_own", put(J + "/j", "a 1\ngo_custom 2\nprocess_x 3\npz 4\n"
                                                     "pushgateway_y 5\nzz 6\n"))
case("scrape.metric_sort_order", put(J + "/urljob2/instance/urlinst", "x 1\n"),
     put(J + "/urljob", "x{job=\"bodyjob\",instance=\"bodyinst\",other=\"o\"} 1\n"),
     put(J + "/a/b/c", "x{z=\"1\"} 2\nx{z=\"0\"} 3\n"))
case("scrape.many_groups", *[put(f"{J}/g{i}/instance/i{i % 3}", f"m{{k=\"{i}\"}} {i}\n")
                             for i in range(20)])
case("scrape.head_and_post", put(J + "/j", M1), req("HEAD", "/metrics"), post("/metrics", M1))

# =================================================================== store: push semantics
case("store.put_replaces", put(J + "/j", "a 1\nb 2\n"), put(J + "/j", "c 3\n"))
case("store.post_merges", put(J + "/j", "a 1\nb{x=\"1\"} 2\n"), post(J + "/j", "b{x=\"2\"} 3\nc 4\n"))
case("store.sequence", post(J + "/j", "m1 1\nm2 2\n"), Scrape(), post(J + "/j", "m2 3\nm3 4\n"),
     Scrape(), put(J + "/j", "m3 5\n"), Scrape(), post(J + "/j", ""), Scrape(), put(J + "/j", ""),
     Scrape(), delete(J + "/j"))
case("store.empty_put_new_group", put(J + "/new", ""))
case("store.empty_post_new_group", post(J + "/new/instance/x", ""))
case("store.delete_missing_group", delete(J + "/nothing"), delete(J + "/nothing/a/b"))
case("store.delete_exact_group_only", put(J + "/x", M1), put(J + "/x/instance/y", M1),
     delete(J + "/x"), Scrape(), delete(J + "/x/instance/y"))
case("store.delete_then_push", put(J + "/x", M1), delete(J + "/x"), post(J + "/x", "n 1\n"))
case("store.delete_with_body", put(J + "/x", M1), delete(J + "/x", "garbage body"),
     delete(J + "/y", "m 1 2 3\n"))
case("store.delete_base64", put("/metrics/job@base64/dGVzdC9qb2I/a@base64/=", M1),
     delete("/metrics/job@base64/dGVzdC9qb2I=/a@base64/==="))
case("store.delete_invalid_urls", delete(J + "/x/odd"), delete(J + "/x/__a/b"),
     delete("/metrics/job@base64/="), delete(J + "/x/a@base64/a+b"))
case("store.grouping_overrides_body", put(J + "/urljob/instance/urlinst",
                                          "x{job=\"bodyjob\",instance=\"bodyinst\",o=\"1\"} 1\n"))
case("store.body_instance_survives", put(J + "/urljob", "x{job=\"bodyjob\",instance=\"bodyinst\"} 1\n"))
case("store.instance_injection", put(J + "/j", "a 1\nb{x=\"y\"} 2\n"), put(J + "/k/foo/bar", "c 1\n"))
case("store.grouping_label_override_other", put(J + "/j/a/url", "m{a=\"body\",b=\"body\"} 1\n"))
case("store.rejected_push_creates_group", put(J + "/j/instance/i", "a 1\nb 1 1000\n"),
     Api())
case("store.rejected_push_existing_group", put(J + "/j", "a 1\n"), put(J + "/j", "a 1 1000\n"),
     Scrape(), post(J + "/j", "b 2\n"), Api())
case("store.push_time_in_body", put(J + "/j", "push_time_seconds 42\nm 1\n"))
case("store.push_time_in_body_wrong_type", put(J + "/j", "# TYPE push_time_seconds counter\n"
                                                          "push_time_seconds 42\n"))
case("store.push_failure_time_in_body_new_group", put(J + "/j", "push_failure_time_seconds 42\n"))
case("store.push_failure_time_in_body_existing_group", put(J + "/j", M1),
     post(J + "/j", "push_failure_time_seconds 42\n"), expected_difference=C_TIME_FAMILIES)
case("store.put_type_change_same_group", put(J + "/j", "# TYPE m counter\nm 1\n"),
     put(J + "/j", "# TYPE m gauge\nm 1\n"))
case("store.post_type_change_same_family", put(J + "/j", "# TYPE m counter\nm 1\n"),
     post(J + "/j", "# TYPE m gauge\nm 1\n"))
case("store.post_other_family_keeps_type", put(J + "/j", "# TYPE m counter\nm 1\n"),
     post(J + "/j", "# TYPE n gauge\nn 1\n"), post(J + "/j", "# TYPE m gauge\nm 2\n"))
case("store.put_empty_keeps_failure_time", put(J + "/j", "a 1 5\n"), put(J + "/j", ""),
     Api())
case("store.api_groups", put(J + "/batch/instance/host1",
                             "# HELP d Duration.\n# TYPE d gauge\nd{stage=\"a\"} 0.272\n" + _mixed),
     put("/metrics/job@base64/QmrDtnJu/instance@base64/aW5zdCdhIm5cY2Ux", "m 1\n"),
     put(J + "/other", "d 1\nx 2 3\n"), Api())

# =================================================================== cons: consistency checks
case("cons.type_conflict_across_groups", put(J + "/t1", "# TYPE a counter\na 1\n"),
     put(J + "/t2", "# TYPE a gauge\na 1\n", norm=CONS), Api())
case("cons.type_conflict_untyped", put(J + "/x", "a 1\n"), put(J + "/y", "# TYPE a gauge\na 1\n",
                                                               norm=CONS))
case("cons.type_conflict_protobuf", pbput(J + "/t1", pb.family("a", None, pb.COUNTER, [pb.metric(counter=1)])),
     pbput(J + "/t2", pb.family("a", None, pb.SUMMARY, [pb.metric(summary=pb.summary(1, 1))]), norm=CONS))
case("cons.duplicate_across_groups", put(J + "/a/instance/i", "m 1\n"),
     put(J + "/a", "m{instance=\"i\"} 1\n", norm=CONS))
case("cons.duplicate_after_sanitising", put(J + "/j", "m{job=\"a\"} 1\nm{job=\"b\"} 2\n", norm=CONS),
     put(J + "/k/instance/i", "m{instance=\"a\"} 1\nm 2\n", norm=CONS))
case("cons.duplicate_in_push_protobuf", pbput(J + "/j", pb.family("d", None, G, [
    pb.metric({"a": "1"}, gauge=1), pb.metric({"a": "1"}, gauge=2)]), norm=CONS))
_H = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"
_S = "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n"
case("cons.histogram_then_count", put(J + "/a", _H), put(J + "/b", "h_count 5\n", norm=CONS))
case("cons.histogram_then_sum", put(J + "/a", _H), put(J + "/b", "h_sum 5\n", norm=CONS))
case("cons.histogram_then_bucket", put(J + "/a", _H), put(J + "/b", "h_bucket 5\n", norm=CONS))
case("cons.count_then_histogram", put(J + "/b", "h_count 5\n"), put(J + "/a", _H, norm=CONS))
case("cons.bucket_then_histogram", put(J + "/b", "h_bucket{le=\"1\"} 5\n"), put(J + "/a", _H, norm=CONS))
case("cons.summary_then_count", put(J + "/a", _S), put(J + "/b", "s_count 5\n", norm=CONS))
case("cons.sum_then_summary", put(J + "/b", "s_sum 5\n"), put(J + "/a", _S, norm=CONS))
case("cons.summary_bucket_allowed", put(J + "/a", _S), put(J + "/b", "s_bucket 5\n"))
case("cons.collision_in_one_push", put(J + "/a", "h_count 2\n" + _H, norm=[NAMES_ONLY]),
     pbput(J + "/b", pb.family("s", None, pb.SUMMARY, [pb.metric(summary=pb.summary(1, 1))]),
           pb.family("s_sum", None, G, [pb.metric(gauge=1)]), norm=CONS),
     put(J + "/c", "# TYPE h histogram\nh_sum 1\nh_count 1\n# TYPE h_count gauge\nh_count 2\n"))
case("text.histogram_count_without_buckets", put(J + "/a", _H + "h_count{x=\"1\"} 5\n"))
case("cons.collision_same_group_post", put(J + "/a", _H), post(J + "/a", "h_sum 1\n", norm=CONS),
     put(J + "/a", "h_sum 1\n"))
case("cons.help_conflict_across_groups", put(J + "/a", "# HELP m first help\nm 1\n"),
     put(J + "/b", "# HELP m second help\nm 2\n"), Scrape(), put(J + "/c", "m 3\n"),
     help_either={"m": {"first help", "second help", None}})
case("cons.help_vs_no_help", put(J + "/a", "# TYPE m counter\nm 1\n"),
     put(J + "/b", "# HELP m other help\n# TYPE m counter\nm 2\n"),
     help_either={"m": {"other help", None}})
case("cons.go_goroutines_counter", put(J + "/j", "# TYPE go_goroutines counter\ngo_goroutines 1\n",
                                       norm=CONS), expected_difference=C_GO)
case("cons.go_goroutines_wrong_help", put(J + "/j", "# HELP go_goroutines Inconsistent doc string.\n"
                                                    "# TYPE go_goroutines gauge\ngo_goroutines 1\n"),
     Api(), final_scrape=Scrape(expected_difference=C_GO))
case("cons.go_goroutines_untyped", put(J + "/j", "go_goroutines 1\n", norm=CONS),
     expected_difference=C_GO)
case("cons.own_counter_family", put(J + "/j", "# TYPE pushgateway_http_requests_total gauge\n"
                                              "pushgateway_http_requests_total 1\n", norm=CONS),
     put(J + "/k", "# TYPE pushgateway_http_requests_total counter\n"
                   "pushgateway_http_requests_total{code=\"200\",handler=\"ready\",method=\"get\"} 1\n",
         norm=CONS), expected_difference=C_OWN)
case("cons.own_summary_suffix", put(J + "/j", "pushgateway_http_push_duration_seconds_count 1\n",
                                    norm=CONS), expected_difference=C_OWN)
case("cons.process_metric_name", put(J + "/j", "# TYPE process_start_time_seconds counter\n"
                                               "process_start_time_seconds 1\n", norm=CONS))
case("cons.label_dimensions_may_differ", put(J + "/a", "m{x=\"1\"} 1\n"), put(J + "/b", "m{y=\"1\"} 1\n"),
     put(J + "/c", "m 1\n"))
case("cons.failure_time_counter_in_body", put(J + "/a", M1), put(J + "/b", M1),
     post(J + "/a", "# TYPE push_failure_time_seconds counter\npush_failure_time_seconds 1\n",
          norm=CONS), expected_difference=C_TIME_FAMILIES)
case("cons.rejected_then_valid", put(J + "/t1", "# TYPE a counter\na 1\n"),
     put(J + "/t2", "# TYPE a gauge\na 1\n", norm=CONS), put(J + "/t2", "# TYPE a counter\na 2\n"),
     Api())

# =================================================================== nocheck: --push.disable-consistency-check
case("nocheck.push_202", put(J + "/j", M1), post(J + "/j", "n 1\n"), flags=NOCHECK)
case("nocheck.timestamp_silently_rejected", put(J + "/j", "a 1 1000\n"), Sleep(0.1), Api(),
     flags=NOCHECK)
case("nocheck.type_conflict_breaks_scrape", put(J + "/t1", "# TYPE a counter\na 1\n"),
     put(J + "/t2", "# TYPE a gauge\na 1\n"), Scrape(norm=CONS), put(J + "/t3", "b 1\n"),
     Scrape(norm=CONS), delete(J + "/t2"), Scrape(), flags=NOCHECK)
case("nocheck.duplicate_series_breaks_scrape", put(J + "/j", "a{x=\"1\"} 1\na{x=\"1\"} 2\n"),
     Scrape(norm=CONS), delete(J + "/j"), flags=NOCHECK)
case("nocheck.collision_breaks_scrape", put(J + "/a", _H), put(J + "/b", "h_count 2\n"),
     Scrape(norm=CONS), delete(J + "/b"), flags=NOCHECK)
case("nocheck.own_type_conflict", put(J + "/j", "# TYPE go_goroutines counter\ngo_goroutines 1\n"),
     Scrape(norm=CONS, expected_difference=C_GO), Api(), delete(J + "/j"),
     flags=NOCHECK)
case("nocheck.parse_and_url_errors", put(J + "/j", "m 1"), put(J + "/j/odd", M1),
     put("/metrics/job@base64/=", M1), delete(J + "/j/odd"), flags=NOCHECK)
case("nocheck.delete", put(J + "/j", M1), delete(J + "/j"), delete(J + "/none"), flags=NOCHECK)
case("nocheck.protobuf_type_mismatch", pbput(J + "/j", pb.family("mm", None, pb.COUNTER,
                                                                 [pb.metric(gauge=1)])),
     Scrape(norm=CONS), flags=NOCHECK)

# =================================================================== prefix: route prefix, telemetry path
_PG = dict(ready_path="/pg/-/ready", final_scrape=False)
case("prefix.route_prefix", put("/pg/metrics/job/x", M1), put("/metrics/job/x", M1),
     get("/-/healthy"), get("/pg/-/healthy"), get("/-/quit", expected_difference=C_QUIT_PREFIX),
     get("/pg/-/quit", expected_difference=C_QUIT_PREFIX),
     get("/pg"),
     get("/metrics"), Scrape("/pg/metrics"), delete("/pg/metrics/job/x"), Scrape("/pg/metrics"),
     flags=["--web.route-prefix=/pg"], **_PG)
case("prefix.route_prefix_without_slash", put("/pg/metrics/job/x", M1), Scrape("/pg/metrics"),
     flags=["--web.route-prefix=pg"], **_PG)
case("prefix.route_prefix_trailing_slash", put("/pg/metrics/job/x", M1), Scrape("/pg/metrics"),
     get("/pg/", compare_body=False), flags=["--web.route-prefix=/pg/"], **_PG)
case("prefix.route_prefix_many_slashes", put("/pg/metrics/job/x", M1), Scrape("/pg/metrics"),
     get("/pg//-/healthy"), get("/pg/-/healthy"),
     flags=["--web.route-prefix=/pg//"], ready_path="/pg/-/ready", ready_any_status=True,
     final_scrape=False, expected_difference=R_PREFIX)
case("prefix.route_prefix_root", put("/metrics/job/x", M1), flags=["--web.route-prefix=/"])
case("prefix.external_url", put("/pg/metrics/job/x", M1), put("/metrics/job/x", M1),
     Scrape("/pg/metrics"), get("/pg"), get("/-/quit", expected_difference=C_QUIT_PREFIX),
     flags=["--web.external-url=http://example.com/pg/"], **_PG)
case("prefix.external_url_and_route_prefix", put("/rp/metrics/job/x", M1), Scrape("/rp/metrics"),
     get("/pg/-/healthy"), flags=["--web.external-url=http://example.com/pg/",
                                  "--web.route-prefix=/rp"],
     ready_path="/rp/-/ready", final_scrape=False)
case("prefix.telemetry_path", put(J + "/x", M1), Scrape("/foo"), get("/metrics"),
     req("OPTIONS", "/foo"), flags=["--web.telemetry-path=/foo"], final_scrape=False)
case("prefix.telemetry_path_trailing_slash", put(J + "/x", M1), Scrape("/foo"), get("/foo/"),
     flags=["--web.telemetry-path=/foo/"], final_scrape=False)
case("prefix.telemetry_path_nested", put(J + "/x", M1), Scrape("/a/b"), get("/a"),
     flags=["--web.telemetry-path=/a/b"], final_scrape=False)
case("prefix.telemetry_and_route_prefix", put("/pg/metrics/job/x", M1), Scrape("/pg/foo"),
     get("/foo"), flags=["--web.route-prefix=/pg", "--web.telemetry-path=/foo"], **_PG)

# =================================================================== admin: admin API
_ADMIN = ["--web.enable-admin-api"]
case("admin.wipe", put(J + "/a", M1), put(J + "/b/instance/c", "n 1\n"),
     put("/api/v1/admin/wipe"), Sleep(0.2), Api(), flags=_ADMIN)
case("admin.wipe_empty_store", put("/api/v1/admin/wipe"), flags=_ADMIN)
case("admin.wipe_methods", get("/api/v1/admin/wipe"), post("/api/v1/admin/wipe"),
     delete("/api/v1/admin/wipe"),
     req("OPTIONS", "/api/v1/admin/wipe", compare_headers=("access-control-allow-origin",)),
     flags=_ADMIN)
case("admin.wipe_with_prefix", put("/pg/metrics/job/a", M1), put("/api/v1/admin/wipe"),
     put("/pg/api/v1/admin/wipe"), Sleep(0.2), Scrape("/pg/metrics"),
     flags=_ADMIN + ["--web.route-prefix=/pg"], **_PG)

# =================================================================== api: JSON API
case("api.metrics_empty", Api(), final_scrape=False)
case("api.metrics_types", put(J + "/j/instance/i", _mixed), Api())
case("api.metrics_special_values", put(J + "/j", "a NaN\nb +Inf\nc -Inf\nd -0\ne 1e6\nf 1e-07\n"),
     Api())
case("api.metrics_escaping", put("/metrics/job@base64/PHNjcmlwdD4mPC9zY3JpcHQ-",
                                 "# HELP m <b>&amp;</b> \"q\"\nm{v=\"<&>\"} 1\n"), Api())
case("api.status", get("/api/v1/status", compare_body=False,
                       compare_headers=("access-control-allow-origin", "cache-control")),
     final_scrape=False)
case("api.status_body", Api("/api/v1/status"), final_scrape=False, expected_difference=R_FLAGS_MAP)

# =================================================================== cli: command line
CASES.append(Cli("cli.unknown_flag", ["--bogus"]))
CASES.append(Cli("cli.bad_log_level", ["--log.level=foo"], expected_difference=B_LOG_FLAGS))
CASES.append(Cli("cli.bad_log_format", ["--log.format=xml"], expected_difference=B_LOG_FLAGS))
CASES.append(Cli("cli.bad_interval", ["--persistence.interval=abc"]))
CASES.append(Cli("cli.bad_bool", ["--web.enable-lifecycle=maybe"]))
CASES.append(Cli("cli.unexpected_argument", ["foo"]))
CASES.append(Cli("cli.missing_flag_value", ["--log.level"]))
CASES.append(Cli("cli.version", ["--version"], compare=("status", "stdout", "stderr"),
                 first_line_only=True, expected_difference=R_VERSION))
CASES.append(Cli("cli.help", ["-h"], expected_difference=R_HELP))
CASES.append(Cli("cli.help_long", ["--help-long"], compare=("status", "streams", "kind")))
CASES.append(Cli("cli.help_man", ["--help-man"], compare=("status", "streams", "kind")))
# kingpin runs the actions of --version, --help-long and --help-man in command-line order.
CASES.append(Cli("cli.help_man_then_version", ["--help-man", "--version"],
                 compare=("status", "streams", "kind")))
CASES.append(Cli("cli.help_long_then_help_man", ["--help-long", "--help-man"],
                 compare=("status", "streams", "kind")))
CASES.append(Cli("cli.version_then_help_man", ["--version", "--help-man"],
                 compare=("status", "kind")))
CASES.append(Cli("cli.version_then_help_man_stream", ["--version", "--help-man"],
                 compare=("streams",), expected_difference=R_VERSION))
CASES.append(Cli("cli.help_short_kind", ["-h"], compare=("status", "kind")))
# A structural error before a help flag wins, in both.
CASES.append(Cli("cli.unknown_flag_then_help_man", ["--bogus", "--help-man"]))
CASES.append(Cli("cli.unexpected_argument_then_help_long", ["foo", "--help-long"]))
CASES.append(Cli("cli.help_man_then_bad_value", ["--help-man", "--log.level=foo"],
                 compare=("status", "kind"), expected_difference=C_HELP_VALUE))
case("cli.utf8_names_flag", get("/-/healthy"), flags=["--push.enable-utf8-names"],
     final_scrape=False, expected_difference=R_UTF8_FLAG)

# =================================================================== systemd: socket activation
# With systemd_socket=True the harness passes each gateway a listening socket as systemd does,
# on the port that --web.listen-address also names (so binding it would fail).
case("systemd.socket_activation", put(J + "/j/instance/i", M1), post(J + "/j", "n 2\n"),
     Scrape(), Api(), Api("/api/v1/status", select=_LISTEN_FLAGS), delete(J + "/j"),
     flags=["--web.systemd-socket"], systemd_socket=True)
case("systemd.socket_activation_explicit_true", put(J + "/j", M1),
     Api("/api/v1/status", select=_LISTEN_FLAGS),
     flags=["--web.systemd-socket=true"], systemd_socket=True,
     expected_difference=("docs/compatibility.md row '`--flag=true` / `--flag=false` on boolean "
                          "flags': ours accepts `=true`, 1.5.1's kingpin refuses it"))
case("systemd.with_route_prefix", put("/pg/metrics/job/j", M1), Scrape("/pg/metrics"),
     get("/metrics"), flags=["--web.systemd-socket", "--web.route-prefix=/pg"],
     systemd_socket=True, ready_path="/pg/-/ready", final_scrape=False)
case("systemd.lifecycle_quit", put(J + "/j", M1),
     put("/-/quit", racy_disconnect=True), ExpectExit(),
     flags=["--web.systemd-socket", "--web.enable-lifecycle"], systemd_socket=True)
case("systemd.off", Api("/api/v1/status", select=_LISTEN_FLAGS), flags=["--no-web.systemd-socket"],
     final_scrape=False)
case("systemd.default_off", Api("/api/v1/status", select=_LISTEN_FLAGS), final_scrape=False)
# Without sockets both refuse to start with the same message; ours exits 1 (upstream 0).
case("systemd.no_sockets", flags=["--web.systemd-socket"], expected_difference=C_NO_SOCKETS)
case("listen.vsock", flags=["--web.listen-address=vsock://:9091"], expected_difference=C_VSOCK)
