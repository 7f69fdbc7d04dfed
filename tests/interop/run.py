#!/usr/bin/env python3
"""Interoperability suite: real, unmodified clients and a real Prometheus against the gateway.

Starts the gateway binary on loopback three times (plain HTTP; HTTP with basic auth; mutual TLS
with basic auth), then drives it with

* Go's client_golang push package (Debian's sources, built in GOPATH mode): Push, Add, Delete,
  grouping labels that need @base64, protobuf and text bodies;
* Python's prometheus_client (PyPI): push_to_gateway, pushadd_to_gateway (gzip and snappy),
  delete_from_gateway, basic_auth_handler and tls_auth_handler with a client certificate;
* curl, running the README's "Pushing metrics" examples as written (with certificate and
  password options added for mTLS), on fresh gateways with the admin API, modelling what each
  example does (pushes, deletes, group expiry, bulk deletion) and checking the gateway against it;
* promtool check metrics on the scrape output;
* a Prometheus server scraping the plain and the mTLS gateway (client certificate, basic auth,
  honor_labels, native histograms, so protobuf), queried through its HTTP API;
* cluster mode: three nats-server with JetStream and three gateway replicas on them; the Go
  client pushes through the first, the Python client through the second, and the third serves
  the result (API, promtool, Prometheus); the replicas' scrapes must converge to the same.

Every check asserts on what came back: status codes, the gateway's /api/v1/metrics and /metrics,
Prometheus' query results. Prints one line per check, a summary of what each client sent,
warnings (README examples refused as written), and "N passed, N failed"; exits 1 if anything
failed.

Standard library only, except bcrypt when the gateway's password hashes are bcrypt; the clients
run in the interpreter given by --client-python (one with prometheus_client installed).
"""

import argparse
import base64
import calendar
import collections
import difflib
import functools
import hashlib
import http.client
import importlib.util
import json
import operator
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
TEXT = "text/plain; version=0.0.4; charset=utf-8"
PUSHER_USER = "pusher"
SCRAPER_USER = "prometheus"
# The cluster phase's bound, twice: for start-up, then for the clients and convergence.
CLUSTER_SECONDS = 30
# Label values and help text of the Python client's rich push (see pyclient.py).
PY_ESCAPES_HELP = "Backslash \\ and newline\nin help; UTF-8: Grüße ✓"
PY_ESCAPES_TEXT = 'quote " backslash \\ newline \n UTF-8 Πρόβα ✓'
# The Go histogram's sum as Go accumulates it, one observation after the other (3.3499999999999996).
GO_LATENCY_SUM = functools.reduce(operator.add, [0.05, 0.3, 0.3, 0.7, 2.0], 0.0)


def go_grouping(transport):
    return {
        "job": "go-interop",
        "instance": "go host/1",
        "path": "/var/lib/batch",
        "empty": "",
        # client_golang QueryEscapes values without '/', so the space arrives as a literal '+'.
        "team": "a+b",
        "locale": "Πρόβα",
        "transport": transport,
    }


def py_grouping(transport):
    return {
        "job": "py-interop",
        "instance": "py host/1",
        "path": "",
        "team": "a b",
        "locale": "Πρόβα",
        "transport": transport,
    }


def go_doomed(transport):
    """The group the Go client pushes with a job containing '/', then deletes."""
    return {"job": "go/interop", "instance": "doomed", "transport": transport}


def py_doomed(transport):
    """The group the Python client pushes with a job containing '/', then deletes."""
    return {"job": "py/interop", "instance": "doomed", "transport": transport}


def prometheus_labels(grouping):
    """Prometheus drops labels with empty values."""
    return {k: v for k, v in grouping.items() if v != ""}


# ---------------------------------------------------------------------------------------------
# Checks and reporting


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"FAIL  {what}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def equal(self, got, want, what):
        return self.check(got == want, what, f"got {got!r}, want {want!r}")


def section(title):
    print(f"\n== {title}", flush=True)


# ---------------------------------------------------------------------------------------------
# Processes and ports


class Processes:
    """Every child this suite starts, so that all of them are stopped however the run ends."""

    def __init__(self):
        self.children = []

    def start(self, argv, log_path):
        with open(log_path, "wb") as log:
            child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.children.append(child)
        return child

    @staticmethod
    def stop(child):
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def stop_all(self):
        for child in reversed(self.children):
            self.stop(child)


_ports = set()


def free_port():
    # The port is closed again before the server binds it; ports are never handed out twice in a
    # run, and another program taking it in between would show as a start-up failure.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _ports:
            _ports.add(port)
            return port


def http_get(port, path, timeout=10):
    """(status, body) of a plain HTTP GET on 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until(ready, child, what, log, deadline):
    """Polls `ready()` (connection errors count as not yet) until it is true; raises when `child`
    exits first or the monotonic `deadline` passes."""
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"{what} exited with {child.returncode}; see {log}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready; see {log}")
        time.sleep(0.1)


def child_env():
    """The environment for clients: no proxy may sit between them and loopback."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    return env


# ---------------------------------------------------------------------------------------------
# Certificates and passwords


def make_certs(directory):
    os.makedirs(directory, exist_ok=True)
    subprocess.run([os.path.join(REPO, "certs", "make-certs.sh"), directory], check=True, stdout=subprocess.DEVNULL)
    return {name: os.path.join(directory, name) for name in os.listdir(directory)}


def hash_password(password, scheme):
    if scheme == "bcrypt":
        import bcrypt

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    # passlib's pbkdf2-sha256 format, which FIPS builds accept (they refuse bcrypt).
    salt = secrets.token_bytes(16)
    rounds = 10000
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)

    def ab64(data):
        return base64.b64encode(data).decode().rstrip("=").replace("+", ".")

    return f"$pbkdf2-sha256${rounds}${ab64(salt)}${ab64(key)}"


def choose_hash_scheme(binary, requested):
    if requested != "auto":
        return requested
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    if re.search(r"fips:\s*true", version.stdout + version.stderr):
        return "pbkdf2-sha256"
    # bcrypt is what upstream understands; without the bcrypt module, PBKDF2 still tests auth.
    return "bcrypt" if importlib.util.find_spec("bcrypt") else "pbkdf2-sha256"


# ---------------------------------------------------------------------------------------------
# The gateway


class Gateway:
    def __init__(self, suite, name, tls=False, basic_auth=False, flags=()):
        self.suite = suite
        self.name = name
        self.tls = tls
        self.basic_auth = basic_auth
        self.flags = list(flags)
        self.port = None
        self.child = None
        # Whether this is our gateway, with its own features (group expiry, bulk deletion), or
        # upstream's, which the suite is checked against too (see --binary).
        self.ours = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def start(self, deadline=None):
        """Starts the gateway and waits until it is ready (20 s, or until `deadline`)."""
        suite = self.suite
        self.port = free_port()
        argv = [suite.binary, f"--web.listen-address={self.address}", "--persistence.file=", *self.flags]
        if self.tls or self.basic_auth:
            config = os.path.join(suite.workdir, f"web-{self.name}.yml")
            with open(config, "w") as out:
                out.write(suite.web_config(self.tls, self.basic_auth))
            argv.append(f"--web.config.file={config}")
        self.log = os.path.join(suite.workdir, f"gateway-{self.name}.log")
        self.child = suite.processes.start(argv, self.log)
        deadline = time.monotonic() + 20 if deadline is None else deadline
        wait_until(
            lambda: self.request("GET", "/-/ready")[0] == 200, self.child, f"gateway {self.name}", self.log, deadline
        )
        status, _, body = self.request("GET", "/api/v1/status")
        build = json.loads(body)["data"]["build_information"] if status == 200 else {}
        self.ours = "rustVersion" in build
        return self

    def stop(self):
        if self.child is not None:
            Processes.stop(self.child)

    def ssl_context(self):
        certs = self.suite.certs
        context = ssl.create_default_context(cafile=certs["ca.crt"])
        context.load_cert_chain(certs["team-b.crt"], certs["team-b.key"])
        return context

    def request(self, method, path):
        headers = {}
        if self.basic_auth:
            token = base64.b64encode(f"{PUSHER_USER}:{self.suite.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=15)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def groups(self):
        status, _, body = self.request("GET", "/api/v1/metrics")
        if status != 200:
            raise RuntimeError(f"GET /api/v1/metrics answered {status}: {body[:200]!r}")
        return {frozenset(group["labels"].items()): group for group in json.loads(body)["data"]}

    def group(self, grouping):
        return self.groups().get(frozenset(grouping.items()))

    def wait_gone(self, grouping, seconds=5):
        """DELETE answers 202 before the group is removed (as upstream); wait for it."""
        deadline = time.monotonic() + seconds
        while self.group(grouping) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def scrape(self):
        status, _, body = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}: {body[:200]!r}")
        return body.decode()


# ---------------------------------------------------------------------------------------------
# A NATS cluster for cluster mode


class NatsCluster:
    """Three nats-server clustered on loopback with JetStream in the working directory, as
    tests/common/nats.rs starts them for tests/cluster.rs.

    Clients connect over TLS with a certificate the servers verify: a FIPS build of the gateway
    connects to NATS only over TLS, and CI runs the suite against one (the routes between the
    servers stay plain)."""

    def __init__(self, suite):
        self.suite = suite
        self.client_ports = []

    @property
    def urls(self):
        return ",".join(f"tls://127.0.0.1:{port}" for port in self.client_ports)

    def gateway_flags(self):
        """A replica's flags for this cluster. Any certificate of the suite's CA will do as the
        client's: the servers verify its chain only."""
        certs = self.suite.certs
        return [
            f"--store.nats.url={self.urls}",
            f"--store.nats.tls.ca-file={certs['ca.crt']}",
            f"--store.nats.tls.cert-file={certs['team-a.crt']}",
            f"--store.nats.tls.key-file={certs['team-a.key']}",
        ]

    def start(self, deadline):
        """Starts the servers and waits until each reports JetStream healthy, by `deadline`."""
        # Debian installs it in /usr/sbin, which a non-root PATH may lack.
        binary = shutil.which("nats-server", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
        if binary is None:
            raise RuntimeError("nats-server not found: the cluster phase needs it (scripts/interop-test installs it)")
        suite = self.suite
        certs = suite.certs
        tls = (
            f'tls {{ cert_file: "{certs["server.crt"]}", key_file: "{certs["server.key"]}", '
            f'ca_file: "{certs["ca.crt"]}", verify: true }}'
        )
        directory = os.path.join(suite.workdir, "nats")
        os.makedirs(directory)
        cluster_ports = [free_port() for _ in range(3)]
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in cluster_ports)
        servers = []
        for i, cluster_port in enumerate(cluster_ports, 1):
            client_port, monitor_port = free_port(), free_port()
            config = os.path.join(directory, f"nats-{i}.conf")
            store = os.path.join(directory, f"jetstream-{i}")
            with open(config, "w") as out:
                out.write(
                    f"server_name: n{i}\n"
                    f"listen: 127.0.0.1:{client_port}\n"
                    f"http: 127.0.0.1:{monitor_port}\n"
                    f"{tls}\n"
                    f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 1GB }}\n'
                    f"cluster {{ name: interop, listen: 127.0.0.1:{cluster_port}, routes: [{routes}] }}\n"
                )
            log = os.path.join(suite.workdir, f"nats-{i}.log")
            servers.append((i, suite.processes.start([binary, "-c", config], log), monitor_port, log))
            self.client_ports.append(client_port)
        # The full health check, not ?js-enabled-only=true: it also waits for JetStream's meta
        # leader. A replica that asks for the bucket before there is one gets no answer until
        # --store.nats.timeout (5 s) and asks again.
        for i, child, monitor_port, log in servers:
            wait_until(
                lambda: http_get(monitor_port, "/healthz")[0] == 200,
                child,
                f"nats-server {i}",
                log,
                deadline,
            )
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        print(f"{version}: {self.urls}")
        return self


# ---------------------------------------------------------------------------------------------
# The text exposition format, as far as the checks need it

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(\S+))?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


# The gateway's own families, which differ from replica to replica (request counts, memory).
OWN_FAMILIES = ("pushgateway_", "process_")


def pushed_lines(text):
    """The lines of a scrape that come from the store: all but the gateway's own families."""
    kept = []
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            name = line.split(" ", 3)[2]
        else:
            name = re.split(r"[{ \t]", line, maxsplit=1)[0]
        if not name.startswith(OWN_FAMILIES):
            kept.append(line)
    return kept


def _unescape(text, quotes=True):
    table = {"n": "\n", "\\": "\\"}
    if quotes:
        table['"'] = '"'
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), "\\" + m.group(1)), text)


class Exposition:
    def __init__(self, text):
        self.samples = []
        self.types = {}
        self.helps = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
            elif line.startswith("# HELP "):
                parts = line.split(" ", 3)
                self.helps[parts[2]] = _unescape(parts[3] if len(parts) > 3 else "", quotes=False)
            elif line.startswith("#"):
                continue
            else:
                match = _SAMPLE.match(line)
                if not match:
                    raise ValueError(f"unparsable line {line!r}")
                name, labels, value, _ = match.groups()
                parsed = {}
                rest = labels or ""
                while rest.strip():
                    label = _LABEL.match(rest)
                    if not label:
                        raise ValueError(f"unparsable labels in {line!r}")
                    parsed[label.group(1)] = _unescape(label.group(2))
                    rest = rest[label.end() :]
                self.samples.append((name, parsed, float(value)))

    def values(self, name, labels):
        return [value for n, l, value in self.samples if n == name and l == labels]


# ---------------------------------------------------------------------------------------------
# Helpers over the gateway's JSON API


def api_family(group, name):
    return group.get(name) if group else None


def api_type(group, name):
    return (api_family(group, name) or {}).get("type")


def api_metric(group, family, **extra):
    """The metric of `family` whose labels, less the grouping labels and instance, are `extra`."""
    found = api_family(group, family)
    if not found:
        return None
    for metric in found["metrics"]:
        own = {k: v for k, v in metric["labels"].items() if k not in group["labels"] and k != "instance"}
        if own == extra:
            return metric
    return None


def api_value(group, family, **extra):
    metric = api_metric(group, family, **extra)
    return None if metric is None else metric.get("value")


def float_keys(mapping):
    return {float(k): float(v) for k, v in (mapping or {}).items()}


def path_pairs(path):
    """The (name, value) pairs of a push path as sent: /metrics/job/x/a/b -> [(job, x), (a, b)]."""
    parts = path.split("/metrics/", 1)[1].split("/")
    return list(zip(parts[0::2], parts[1::2]))


def b64url(value, padded):
    encoded = base64.urlsafe_b64encode(value.encode()).decode()
    return encoded if padded else encoded.rstrip("=")


# ---------------------------------------------------------------------------------------------
# The suite


class Suite:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.binary)
        self.checks = Checks()
        self.processes = Processes()
        self.observed = []
        self.warnings = []
        self.notes = []
        # When set (monotonic seconds), client runs are cut off there: the cluster phase's bound.
        self.client_deadline = None
        self.workdir = tempfile.mkdtemp(prefix="pushgateway-interop-")
        self.password = secrets.token_urlsafe(12)

    # --- set-up ---

    def prepare(self):
        section("Set-up")
        self.certs = make_certs(os.path.join(self.workdir, "certs"))
        # Certificates from another CA: a client with one of these must be turned away.
        self.rogue = make_certs(os.path.join(self.workdir, "rogue"))
        self.hash_scheme = choose_hash_scheme(self.binary, self.args.hash)
        self.password_hash = hash_password(self.password, self.hash_scheme)
        self.password_file = os.path.join(self.workdir, "password")
        with open(self.password_file, "w") as out:
            out.write(self.password)
        print(f"binary {self.binary}\nworkdir {self.workdir}\npassword hashes: {self.hash_scheme}")
        self.pusher = self.build_go_pusher()

    def web_config(self, tls, basic_auth):
        lines = []
        if tls:
            certs = self.certs
            lines += [
                "tls_server_config:",
                f"  cert_file: {certs['server.crt']}",
                f"  key_file: {certs['server.key']}",
                "  client_auth_type: RequireAndVerifyClientCert",
                f"  client_ca_file: {certs['ca.crt']}",
            ]
        if basic_auth:
            lines += [
                "basic_auth_users:",
                f"  {PUSHER_USER}: '{self.password_hash}'",
                f"  {SCRAPER_USER}: '{self.password_hash}'",
            ]
        return "\n".join(lines) + "\n"

    def build_go_pusher(self):
        output = os.path.join(self.workdir, "go-pusher")
        env = child_env()
        # GOPATH mode over Debian's packaged sources: no module download, no network.
        env.update(
            GO111MODULE="off",
            GOPATH="/usr/share/gocode",
            GOFLAGS="",
            GOCACHE=self.args.go_cache,
            CGO_ENABLED="0",
        )
        started = time.monotonic()
        subprocess.run(["go", "build", "-o", output, "."], cwd=os.path.join(HERE, "go", "pusher"), env=env, check=True)
        dpkg = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "golang-github-prometheus-client-golang-dev"],
            capture_output=True,
            text=True,
        )
        version = dpkg.stdout if dpkg.returncode == 0 else "(not from a Debian package)"
        print(f"built the Go pusher against client_golang {version} in {time.monotonic() - started:.1f}s")
        return output

    # --- running clients ---

    def client_credentials(self, gateway, kind):
        """Command-line options for a client; `kind` picks a deliberately wrong variant."""
        certs = self.certs
        creds = {}
        if gateway.tls:
            creds["ca"] = certs["ca.crt"]
            if kind != "no-cert":
                source = self.rogue if kind == "rogue-cert" else certs
                creds["cert"], creds["key"] = source["team-a.crt"], source["team-a.key"]
        if gateway.basic_auth and kind != "no-password":
            creds["user"] = PUSHER_USER
            creds["password"] = "wrong-password" if kind == "wrong-password" else self.password
        return creds

    def run_client(self, client, gateway, step, transport, kind="good"):
        creds = self.client_credentials(gateway, kind)
        if client == "go":
            argv = [self.pusher, "-gateway", gateway.url, "-step", step, "-transport", transport]
            argv += [f"-{name}={value}" for name, value in creds.items()]
        else:
            argv = [self.args.client_python, os.path.join(HERE, "pyclient.py")]
            argv += ["--gateway", gateway.url, "--step", step, "--transport", transport]
            argv += [f"--{name}={value}" for name, value in creds.items()]
        timeout = 60 if self.client_deadline is None else max(0.0, self.client_deadline - time.monotonic())
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env())
        records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        for record in records:
            self.observed.append({"client": client, "gateway": gateway.name, "step": step, "variant": kind, **record})
        return done.returncode, records, done.stderr.strip()

    # --- Go ---

    def go_client(self, gateway, transport):
        section(f"Go client_golang push on {gateway.name}")
        c = self.checks
        label = f"go/{gateway.name}"
        grouping = go_grouping(transport)

        rc, records, err = self.run_client("go", gateway, "push", transport)
        c.check(rc == 0, f"{label}: Push() succeeds", err)
        if c.equal(len(records), 1, f"{label}: Push() sends one request"):
            record = records[0]
            c.equal(record["method"], "PUT", f"{label}: Push() is a PUT")
            c.equal(record["content_type"], PROTOBUF, f"{label}: Push() sends delimited protobuf")
            c.equal(record.get("status"), 200, f"{label}: the gateway answers 200")
            if gateway.tls:
                c.equal(record.get("proto"), "HTTP/2.0", f"{label}: Go negotiates HTTP/2 over TLS")
            c.equal(
                dict(path_pairs(record["path"])),
                {
                    "job": "go-interop",
                    "instance@base64": b64url("go host/1", padded=False),
                    "path@base64": b64url("/var/lib/batch", padded=False),
                    "empty@base64": "=",
                    "team": "a+b",
                    "locale": urllib.parse.quote("Πρόβα"),
                    "transport": transport,
                },
                f"{label}: Push() encodes the grouping key with @base64, = and query escaping",
            )
        group = gateway.group(grouping)
        if c.check(
            group is not None, f"{label}: the group appears with the decoded grouping key", sorted(gateway.groups())
        ):
            self.check_go_group(label, group, temperature="-3.5", added=None)

        rc, records, err = self.run_client("go", gateway, "add", transport)
        c.check(rc == 0, f"{label}: Add() succeeds", err)
        if records:
            c.equal(
                (records[0]["method"], records[0].get("status")),
                ("POST", 200),
                f"{label}: Add() is a POST answered 200",
            )
        group = gateway.group(grouping)
        if c.check(group is not None, f"{label}: the group is still there after Add()"):
            self.check_go_group(label + " after Add()", group, temperature="21.5", added="1")

        rc, records, err = self.run_client("go", gateway, "push-text", transport)
        c.check(rc == 0, f"{label}: Push() in the text format succeeds", err)
        if records:
            c.check(
                records[0]["content_type"].startswith("text/plain; version=0.0.4"),
                f"{label}: Format(FmtText) sends text 0.0.4",
                records[0]["content_type"],
            )
            c.equal(records[0]["expire_after"], "1h", f"{label}: a wrapping HTTPDoer sends Pushgateway-Expire-After")
        self.check_go_text_group(label, gateway, transport)

        doomed = go_doomed(transport)
        rc, records, err = self.run_client("go", gateway, "push-doomed", transport)
        c.check(rc == 0, f"{label}: Push() with a job containing '/' succeeds", err)
        if records:
            c.check(
                records[0]["path"].startswith("/metrics/job@base64/" + b64url("go/interop", padded=False) + "/"),
                f"{label}: the job goes to job@base64, unpadded",
                records[0]["path"],
            )
        c.equal(
            api_value(gateway.group(doomed), "go_interop_doomed"), "1", f"{label}: the job@base64 group holds its gauge"
        )
        rc, records, err = self.run_client("go", gateway, "delete-doomed", transport)
        c.check(rc == 0, f"{label}: Delete() succeeds (it insists on 202)", err)
        if records:
            c.equal(
                (records[0]["method"], records[0].get("status")),
                ("DELETE", 202),
                f"{label}: Delete() is a DELETE answered 202",
            )
        c.check(gateway.wait_gone(doomed), f"{label}: the deleted group disappears")

        if gateway.tls:
            self.refused("go", gateway, transport, grouping, "no-cert", handshake=True)
            self.refused("go", gateway, transport, grouping, "rogue-cert", handshake=True)
        if gateway.basic_auth:
            self.refused("go", gateway, transport, grouping, "wrong-password", handshake=False)
            self.refused("go", gateway, transport, grouping, "no-password", handshake=False)
        if gateway.tls or gateway.basic_auth:
            c.equal(
                api_value(gateway.group(grouping), "go_interop_temperature_celsius"),
                "21.5",
                f"{label}: refused pushes changed nothing",
            )

    def check_go_text_group(self, label, gateway, transport):
        text_group = gateway.group({"job": "go-interop", "format": "text", "transport": transport})
        self.checks.equal(
            api_value(text_group, "go_interop_text_small"), "1e-05", f"{label}: the text push stores 1e-05"
        )
        self.check_expiry(f"{label}: the text push's group", text_group or {}, 3600 if gateway.ours else 0)

    def check_go_state(self, label, gateway, transport):
        """What go_client's steps leave behind, as seen through `gateway` (which need not be the
        one they were sent to)."""
        c = self.checks
        group = gateway.group(go_grouping(transport))
        if c.check(group is not None, f"{label}: the Go group is there", sorted(gateway.groups())):
            self.check_go_group(label, group, temperature="21.5", added="1")
        self.check_go_text_group(label, gateway, transport)
        c.equal(gateway.group(go_doomed(transport)), None, f"{label}: the group Go deleted is absent")

    def check_go_group(self, label, group, temperature, added):
        c = self.checks
        c.equal(group.get("last_push_successful"), True, f"{label}: last_push_successful")
        c.equal(
            api_type(group, "go_interop_requests_total"),
            "COUNTER",
            f"{label}: counter type",
        )
        c.equal(
            (
                api_value(group, "go_interop_requests_total", code="200"),
                api_value(group, "go_interop_requests_total", code="500"),
            ),
            ("42", "7"),
            f"{label}: counter values",
        )
        c.equal(api_value(group, "go_interop_temperature_celsius"), temperature, f"{label}: gauge value")
        c.equal(api_value(group, "go_interop_added_total"), added, f"{label}: family pushed only by Add()")
        latency = api_metric(group, "go_interop_latency_seconds") or {}
        c.equal(
            (float_keys(latency.get("buckets")), latency.get("count"), latency.get("sum")),
            ({0.1: 1.0, 0.5: 3.0, 1.0: 4.0}, "5", repr(GO_LATENCY_SUM)),
            f"{label}: classic histogram buckets, count and sum",
        )
        native = api_metric(group, "go_interop_native_seconds") or {}
        c.equal(
            (
                api_type(group, "go_interop_native_seconds"),
                native.get("count"),
                native.get("sum"),
            ),
            ("HISTOGRAM", "5", "106"),
            f"{label}: native histogram count and sum",
        )
        duration = api_metric(group, "go_interop_duration_seconds") or {}
        c.equal(
            (sorted(float_keys(duration.get("quantiles"))), duration.get("count"), duration.get("sum")),
            ([0.5, 0.9], "10", "55"),
            f"{label}: summary quantiles, count and sum",
        )
        c.equal(
            (api_type(group, "go_interop_untyped"), api_value(group, "go_interop_untyped")),
            ("UNTYPED", "17"),
            f"{label}: untyped value",
        )
        self.check_sanitised(label, group)

    def check_sanitised(self, label, group):
        """Every stored metric carries the grouping labels (and an instance label)."""
        bad = []
        for name, family in group.items():
            if not isinstance(family, dict) or "metrics" not in family:
                continue
            for metric in family["metrics"]:
                labels = metric["labels"]
                if "instance" not in labels or any(labels.get(k) != v for k, v in group["labels"].items()):
                    bad.append((name, labels))
        self.checks.check(not bad, f"{label}: every metric carries the grouping labels", repr(bad[:3]))

    def refused(self, client, gateway, transport, grouping, kind, handshake):
        c = self.checks
        label = f"{client}/{gateway.name}"
        rc, records, err = self.run_client(client, gateway, "push", transport, kind)
        c.check(rc != 0, f"{label}: a push with {kind} fails", err)
        statuses = [record.get("status") for record in records]
        if handshake:
            c.check(all(status is None for status in statuses), f"{label}: {kind} gets no HTTP answer", repr(records))
        elif client == "go":
            c.equal(statuses, [401], f"{label}: {kind} gets 401")
        else:
            c.check("401" in err, f"{label}: {kind} gets 401", err)

    # --- Python ---

    def python_client(self, gateway, transport):
        section(f"Python prometheus_client on {gateway.name}")
        c = self.checks
        label = f"python/{gateway.name}"
        grouping = py_grouping(transport)

        rc, records, err = self.run_client("python", gateway, "push", transport)
        c.check(rc == 0, f"{label}: push_to_gateway succeeds", err)
        if c.equal(len(records), 1, f"{label}: push_to_gateway sends one request"):
            record = records[0]
            c.equal(record["method"], "PUT", f"{label}: push_to_gateway is a PUT")
            c.equal(record["content_type"], TEXT, f"{label}: push_to_gateway sends text 0.0.4")
            c.equal(record["basic_auth"], gateway.basic_auth, f"{label}: credentials sent exactly when configured")
            path = urllib.parse.urlsplit(record["url"]).path
            c.equal(
                path_pairs(path),
                [
                    ("job", "py-interop"),
                    ("instance@base64", b64url("py host/1", padded=True)),
                    ("locale", urllib.parse.quote_plus("Πρόβα")),
                    ("path@base64", "="),
                    ("team@base64", b64url("a b", padded=True)),
                    ("transport", transport),
                ],
                f"{label}: grouping key sorted, '/' and ' ' in padded @base64, empty as =",
            )
        group = gateway.group(grouping)
        if c.check(
            group is not None, f"{label}: the group appears with the decoded grouping key", sorted(gateway.groups())
        ):
            self.check_python_group(label, group, queue_depth="12")

        rc, records, err = self.run_client("python", gateway, "pushadd-gzip", transport)
        c.check(rc == 0, f"{label}: pushadd_to_gateway with gzip succeeds", err)
        if records:
            c.equal(
                (records[0]["method"], records[0]["content_encoding"]),
                ("POST", "gzip"),
                f"{label}: pushadd_to_gateway is a POST with Content-Encoding: gzip",
            )
            c.equal(records[0]["expire_after"], "1h", f"{label}: a wrapping handler sends Pushgateway-Expire-After")
        self.check_python_pushadd(label, gateway, gateway.group(grouping))

        rc, records, err = self.run_client("python", gateway, "pushadd-snappy", transport)
        if records:
            c.equal(records[0]["content_encoding"], "snappy", f"{label}: the snappy push says Content-Encoding: snappy")
        if self.args.without_snappy:
            c.check(rc != 0 and "400" in err, f"{label}: pushadd_to_gateway with snappy is refused with 400", err)
        else:
            c.check(rc == 0, f"{label}: pushadd_to_gateway with snappy succeeds", err)
        self.check_python_snappy(label, gateway.group(grouping))

        self.check_expiry(
            f"{label}: after a push without the header, the group",
            gateway.group(grouping) or {},
            3600 if gateway.ours else 0,
        )

        doomed = py_doomed(transport)
        rc, records, err = self.run_client("python", gateway, "push-doomed", transport)
        c.check(rc == 0, f"{label}: push with a job containing '/' succeeds", err)
        if records:
            c.check(
                urllib.parse.urlsplit(records[0]["url"]).path.startswith(
                    "/metrics/job@base64/" + b64url("py/interop", padded=True) + "/"
                ),
                f"{label}: the job goes to job@base64, padded",
                records[0]["url"],
            )
        c.equal(
            api_value(gateway.group(doomed), "py_interop_doomed"),
            "1",
            f"{label}: the padded job@base64 group holds its gauge",
        )
        rc, records, err = self.run_client("python", gateway, "delete-doomed", transport)
        c.check(rc == 0, f"{label}: delete_from_gateway succeeds", err)
        if records:
            c.equal(
                (records[0]["method"], records[0]["content_type"], records[0]["body_length"]),
                ("DELETE", TEXT, 0),
                f"{label}: delete_from_gateway is a DELETE with a text Content-Type and no body",
            )
        c.check(gateway.wait_gone(doomed), f"{label}: the deleted group disappears")

        if gateway.basic_auth:
            self.refused("python", gateway, transport, grouping, "wrong-password", handshake=False)
            self.refused("python", gateway, transport, grouping, "no-password", handshake=False)
        if gateway.tls:
            self.refused("python", gateway, transport, grouping, "rogue-cert", handshake=True)
        if gateway.basic_auth or gateway.tls:
            c.equal(
                api_value(gateway.group(grouping), "py_interop_queue_depth"),
                "0",
                f"{label}: refused pushes changed nothing",
            )

    def check_python_pushadd(self, label, gateway, group):
        c = self.checks
        c.equal(api_value(group, "py_interop_queue_depth"), "0", f"{label}: pushadd replaced the gauge")
        c.equal(api_value(group, "py_interop_added_total"), "1", f"{label}: pushadd added its counter")
        c.equal(
            api_value(group, "py_interop_jobs_total", result="ok"), "3", f"{label}: pushadd kept the other families"
        )
        self.check_expiry(f"{label}: the group pushed with an expiry", group or {}, 3600 if gateway.ours else 0)

    def check_python_snappy(self, label, group):
        if self.args.without_snappy:
            self.checks.equal(
                api_value(group, "py_interop_snappy"), None, f"{label}: nothing of the snappy push is stored"
            )
        else:
            self.checks.equal(
                api_value(group, "py_interop_snappy"), "1", f"{label}: the snappy (framed) body is decoded"
            )

    def check_python_state(self, label, gateway, transport):
        """What python_client's steps leave behind, as seen through `gateway` (which need not be
        the one they were sent to)."""
        c = self.checks
        group = gateway.group(py_grouping(transport))
        if c.check(group is not None, f"{label}: the Python group is there", sorted(gateway.groups())):
            self.check_python_group(label, group, queue_depth="0")
        self.check_python_pushadd(label, gateway, group)
        self.check_python_snappy(label, group)
        c.equal(gateway.group(py_doomed(transport)), None, f"{label}: the group Python deleted is absent")

    def check_python_group(self, label, group, queue_depth):
        c = self.checks
        c.equal(group.get("last_push_successful"), True, f"{label}: last_push_successful")
        c.equal(
            (
                api_type(group, "py_interop_jobs_total"),
                api_value(group, "py_interop_jobs_total", result="ok"),
                api_value(group, "py_interop_jobs_total", result="failed"),
            ),
            ("COUNTER", "3", "1"),
            f"{label}: counter type and values",
        )
        c.equal(
            len((api_family(group, "py_interop_jobs_created") or {}).get("metrics", [])),
            2,
            f"{label}: the _created gauges the client adds",
        )
        c.equal(api_value(group, "py_interop_queue_depth"), queue_depth, f"{label}: gauge value")
        batch = api_metric(group, "py_interop_batch_seconds") or {}
        c.equal(
            (float_keys(batch.get("buckets")), batch.get("count"), batch.get("sum")),
            ({0.5: 1.0, 1.0: 2.0, 5.0: 3.0, float("inf"): 4.0}, "4", "12.9"),
            f"{label}: histogram buckets, count and sum",
        )
        rows = api_metric(group, "py_interop_rows") or {}
        c.equal(
            (api_type(group, "py_interop_rows"), rows.get("count"), rows.get("sum")),
            ("SUMMARY", "2", "30"),
            f"{label}: summary count and sum",
        )
        c.equal(api_value(group, "py_interop_build_info", version="1.2.3"), "1", f"{label}: Info as a gauge")
        c.equal(
            [api_value(group, "py_interop_phase", py_interop_phase=state) for state in ("starting", "running", "done")],
            ["0", "0", "1"],
            f"{label}: Enum as a state set",
        )
        escapes = api_family(group, "py_interop_escapes") or {}
        c.equal(escapes.get("help"), PY_ESCAPES_HELP, f"{label}: help with backslash, newline and UTF-8")
        c.equal(
            api_value(group, "py_interop_escapes", text=PY_ESCAPES_TEXT),
            "1",
            f"{label}: label value with quote, backslash, newline and UTF-8",
        )
        self.check_sanitised(label, group)

    # --- curl and the README ---

    def readme_blocks(self):
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as source:
            readme = source.read()
        match = re.search(r"^## Pushing metrics\n(.*?)(?=^## )", readme, re.S | re.M)
        if not match:
            raise RuntimeError('README.md has no "## Pushing metrics" section')
        return re.findall(r"^```sh\n(.*?)^```", match.group(1), re.S | re.M)

    def curl_requests(self, block, directory):
        """What the block asks curl for: runs it with `curl` shadowed by a recording function.

        Each request is a CurlRequest: its method, path, body, headers (lower-case names) and
        the query parameters that `-G --data-urlencode` puts in the URL (decoded)."""
        os.makedirs(directory)
        shim = (
            f"_d={directory}\n"
            "curl() {\n"
            '  local n; n=$(ls "$_d" | grep -c args); n=$((n+1))\n'
            '  printf \'%s\\0\' "$@" > "$_d/$n.args"\n'
            '  case " $* " in *" @-"*) cat > "$_d/$n.body";; esac\n'
            "}\n"
        )
        subprocess.run(["bash", "-c", shim + block], check=True, stdin=subprocess.DEVNULL, timeout=30)
        requests = []
        for n in range(1, len([f for f in os.listdir(directory) if f.endswith(".args")]) + 1):
            with open(os.path.join(directory, f"{n}.args"), "rb") as raw:
                argv = raw.read().decode().split("\0")[:-1]
            body = None
            if os.path.exists(os.path.join(directory, f"{n}.body")):
                with open(os.path.join(directory, f"{n}.body"), encoding="utf-8") as raw:
                    body = raw.read()
            method, url, data, headers, query, get = None, None, None, {}, [], False
            i = 0
            while i < len(argv):
                arg = argv[i]
                if arg in ("-X", "--request"):
                    method = argv[i + 1]
                    i += 1
                elif arg in ("--data-binary", "-d", "--data"):
                    data = body if argv[i + 1] == "@-" else argv[i + 1]
                    i += 1
                elif arg == "--data-urlencode":
                    # name=content: curl encodes the content; the suite keeps it decoded.
                    name, _, content = argv[i + 1].partition("=")
                    query.append((name, content))
                    i += 1
                elif arg in ("-G", "--get"):
                    get = True
                elif arg in ("-H", "--header"):
                    name, _, value = argv[i + 1].partition(":")
                    headers[name.strip().lower()] = value.strip()
                    i += 1
                elif re.match(r"https?://", arg):
                    url = arg
                elif arg.startswith("-") and arg not in ("-s", "--silent", "-S", "--show-error"):
                    raise RuntimeError(f"README example uses a curl option the suite does not model: {arg}")
                i += 1
            if query and not get:
                raise RuntimeError("README example uses --data-urlencode without -G")
            if method is None:
                method = "POST" if data is not None else "GET"
            requests.append(CurlRequest(method, urllib.parse.urlsplit(url).path, data, headers, query))
        return requests

    def curl_readme(self, gateway):
        section(f"curl: the README's examples on {gateway.name}")
        c = self.checks
        label = f"curl/{gateway.name}"
        blocks = self.readme_blocks()
        c.check(len(blocks) >= 3, f"{label}: README's 'Pushing metrics' has examples", str(len(blocks)))
        model = {}  # grouping key -> {family: (type, help, [(labels, value)])}
        for index, block in enumerate(blocks, 1):
            requests = self.curl_requests(block, os.path.join(self.workdir, f"curl-{gateway.name}-{index}"))
            script = block.replace("http://localhost:9091", gateway.url).replace("localhost:9091", gateway.address)
            if gateway.tls or gateway.basic_auth:
                options = []
                if gateway.tls:
                    certs = self.certs
                    options += [
                        "--cacert",
                        certs["ca.crt"],
                        "--cert",
                        certs["team-a.crt"],
                        "--key",
                        certs["team-a.key"],
                    ]
                if gateway.basic_auth:
                    options += ["-u", f"{PUSHER_USER}:{self.password}"]
                script = re.sub(r"(?<![\w./-])curl(?=\s)", "curl " + " ".join(options), script)
            first_line = block.strip().splitlines()[0]
            done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, env=child_env())
            self.observed.append(
                {
                    "client": "curl",
                    "gateway": gateway.name,
                    "step": f"README example {index}",
                    "requests": [f"{r.method} {r.path}" for r in requests],
                    "exit": done.returncode,
                }
            )
            c.equal(done.returncode, 0, f"{label}: example {index} exits 0: {first_line[:60]}")
            for request in requests:
                if request.path.startswith("/metrics/job"):
                    self.model_push(label, index, model, request, done.stdout, gateway)
                elif request.path == "/api/v1/groups" and request.method == "DELETE":
                    self.model_bulk_delete(label, index, model, request, done.stdout, gateway)
                elif request.path == "/metrics" and request.method == "GET":
                    self.check_curl_scrape(label, index, done.stdout, model)
                else:
                    what = f"{request.method} {request.path}"
                    raise RuntimeError(f"README example {index}: the suite does not model {what}")
            self.check_model(label, index, gateway, model)

    def curl_refusals(self, gateway):
        """curl without a certificate, with one from another CA, with a wrong or no password, and
        with a malformed URL; over HTTP/2 (curl's default with TLS) and HTTP/1.1."""
        c = self.checks
        certs, rogue = self.certs, self.rogue
        good_cert = ["--cert", certs["team-a.crt"], "--key", certs["team-a.key"]]
        password = ["-u", f"{PUSHER_USER}:{self.password}"]
        path = "/metrics/job/curl-refused"
        cases = [
            ("no-cert", password, path, None),
            ("rogue-cert", ["--cert", rogue["team-a.crt"], "--key", rogue["team-a.key"]] + password, path, None),
            ("wrong-password", good_cert + ["-u", f"{PUSHER_USER}:wrong-password"], path, "401"),
            ("no-password", good_cert, path, "401"),
            ("odd-url", good_cert + password, path + "/odd", "400"),
        ]
        for protocol in ("--http2", "--http1.1"):
            for kind, options, url_path, status in cases:
                # Answers that come before the body is read race with curl's upload (over HTTP/2,
                # curl 7.88 lost them with "Stream error in the HTTP/2 framing layer" until the
                # gateway read such bodies first): repeat them.
                attempts = 1 if status is None else 10
                outcomes = collections.Counter()
                for _ in range(attempts):
                    argv = ["curl", protocol, "-sS", "-o", "/dev/null", "-w", "%{http_code}"]
                    argv += ["--cacert", certs["ca.crt"], *options, "--data-binary", "@-", gateway.url + url_path]
                    done = subprocess.run(
                        argv, input="refused_metric 1\n", capture_output=True, text=True, timeout=30, env=child_env()
                    )
                    outcomes[(done.returncode, done.stdout)] += 1
                self.observed.append(
                    {
                        "client": "curl",
                        "gateway": gateway.name,
                        "step": f"{protocol} push with {kind}",
                        "requests": [f"POST {url_path} -> (exit, status) x times {dict(outcomes)}"],
                        "exit": max(rc for rc, _ in outcomes),
                    }
                )
                what = f"curl/{gateway.name} {protocol}: {kind}"
                if status is None:
                    c.check(
                        all(rc != 0 and code == "000" for rc, code in outcomes),
                        f"{what} fails in the handshake",
                        repr(outcomes),
                    )
                    continue
                c.equal(outcomes[(0, status)], attempts, f"{what} gets {status} every time ({repr(dict(outcomes))})")
        c.equal(gateway.group({"job": "curl-refused"}), None, f"curl/{gateway.name}: refused pushes stored nothing")

    def model_push(self, label, index, model, request, answer, gateway):
        """Applies a push or delete to the model of the gateway, as upstream's rules have it.

        The one consistency rule that examples can plausibly break is a family pushed with
        another type than the same name has in another group: that push is refused with 400, and
        the group is created (or kept) with its last push marked failed.

        Our gateway also keeps each group's expiry: a successful push with the
        Pushgateway-Expire-After header sets it (0: never), one without keeps it. Upstream
        ignores the header.
        """
        method, path, body = request.method, request.path, request.data
        grouping = self.parse_grouping(path)
        key = frozenset(grouping.items())
        if method == "DELETE":
            model.pop(key, None)
            return
        families = parse_push_body(body or "")
        conflicts = [
            f"{name} is {kind} here but {group['families'][name][0]} in {dict(other)}"
            for name, (kind, _, _) in families.items()
            for other, group in model.items()
            if other != key and name in group["families"] and group["families"][name][0] != kind
        ]
        if conflicts:
            self.checks.check(
                answer.startswith("pushed metrics are invalid or inconsistent with existing metrics:"),
                f"{label}: example {index}: {method} {path} is refused for its type conflict",
                repr(answer),
            )
            self.warnings.append(
                f"README example {index} ({method} {path}) is refused with 400 when the examples run in "
                f"order: {'; '.join(conflicts)}"
            )
            model.setdefault(key, {"families": {}, "ok": False, "expiry": 0})["ok"] = False
            return
        self.checks.equal(answer, "", f"{label}: example {index}: {method} {path} is accepted (empty answer)")
        group = model.get(key, {"families": {}, "expiry": 0})
        kept = {} if method == "PUT" else dict(group["families"])
        kept.update(families)
        expiry = group["expiry"]
        header = request.headers.get("pushgateway-expire-after")
        if header is not None and gateway.ours:
            expiry = go_duration_seconds(header)
        model[key] = {"families": kept, "ok": True, "expiry": expiry}

    def model_bulk_delete(self, label, index, model, request, answer, gateway):
        """Applies DELETE /api/v1/groups?match=<selector> (ours) to the model: every group whose
        grouping labels match goes, and the answer counts them. Upstream has no such route."""
        where = f"{label}: example {index}: DELETE /api/v1/groups"
        if not gateway.ours:
            self.checks.check("404" in answer, f"{where} is not a route of upstream's", repr(answer))
            return
        selectors = [value for name, value in request.query if name == "match"]
        if not self.checks.equal(len(selectors), 1, f"{where} gives one match parameter"):
            return
        matchers = parse_selector(selectors[0])
        deleted = [key for key in model if selector_matches(matchers, dict(key))]
        for key in deleted:
            del model[key]
        try:
            document = json.loads(answer)
        except ValueError:
            document = answer
        self.checks.equal(
            document,
            {"status": "success", "data": {"deleted": len(deleted)}},
            f"{where} deletes the {len(deleted)} matching group(s) and says how many",
        )

    def parse_grouping(self, path):
        pairs = path_pairs(path)
        grouping = {}
        for name, value in pairs:
            value = urllib.parse.unquote(value)
            if name.endswith("@base64"):
                name = name[: -len("@base64")]
                stripped = value.rstrip("=")
                value = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4)).decode()
            grouping[name] = value
        return grouping

    def check_model(self, label, index, gateway, model):
        groups = gateway.groups()
        c = self.checks
        c.equal(
            sorted(sorted(k) for k in groups),
            sorted(sorted(k) for k in model),
            f"{label}: after example {index} the gateway holds exactly the groups the examples made",
        )
        for key, modelled in model.items():
            group = groups.get(key)
            if group is None:
                continue
            grouping = dict(key)
            where = f"{label}: after example {index}, group {grouping}"
            c.equal(group.get("last_push_successful"), modelled["ok"], f"{where}: last_push_successful")
            stored = {name for name, family in group.items() if isinstance(family, dict) and "metrics" in family}
            c.equal(
                sorted(stored - {"push_time_seconds", "push_failure_time_seconds"}),
                sorted(modelled["families"]),
                f"{where}: families",
            )
            self.check_expiry(where, group, modelled["expiry"])
            for name, (kind, help_text, samples) in modelled["families"].items():
                family = group.get(name) or {}
                c.equal(family.get("type"), kind, f"{where}: {name} is {kind}")
                if help_text is not None:
                    c.equal(family.get("help"), help_text, f"{where}: {name} has its help")
                want = []
                for labels, value in samples:
                    full = {**labels, **grouping}
                    full.setdefault("instance", "")
                    want.append((sorted(full.items()), value))
                got = [(sorted(m["labels"].items()), float(m["value"])) for m in family.get("metrics", [])]
                c.equal(sorted(got), sorted(want), f"{where}: {name} samples")

    def check_expiry(self, where, group, seconds):
        """A group that expires shows it in the JSON API (ours): its expiry, and a deadline that
        is its last successful push plus the expiry. Other groups have no `expiry` key."""
        c = self.checks
        expiry = group.get("expiry")
        if not seconds:
            c.equal(expiry, None, f"{where}: no expiry")
            return
        if not c.check(isinstance(expiry, dict), f"{where}: has an expiry", repr(expiry)):
            return
        c.equal(go_duration_seconds(expiry.get("expire_after", "")), seconds, f"{where}: expires after {seconds}s")
        pushed = float(api_value(group, "push_time_seconds") or "nan")
        deadline = rfc3339_seconds(expiry.get("expires_at", ""))
        c.check(
            abs(deadline - (pushed + seconds)) < 0.01,
            f"{where}: expires at its last push + {seconds}s",
            f"{expiry} vs push_time_seconds {pushed}",
        )

    def check_curl_scrape(self, label, index, text, model):
        c = self.checks
        try:
            exposition = Exposition(text)
        except ValueError as error:
            c.check(False, f"{label}: example {index} prints a parsable exposition", str(error))
            return
        missing = []
        for key, modelled in model.items():
            for name, (_, _, samples) in modelled["families"].items():
                for labels, value in samples:
                    full = {**labels, **dict(key)}
                    full.setdefault("instance", "")
                    if exposition.values(name, full) != [value]:
                        missing.append((name, full, value))
        c.check(not missing, f"{label}: example {index} prints every pushed sample", repr(missing[:3]))

    # --- cluster mode ---

    def start_cluster(self):
        """Three nats-server and three gateway replicas on all of them (over TLS with client
        certificates; the replicas' own listeners are plain HTTP), started before Prometheus
        so that it scrapes the third; ready within CLUSTER_SECONDS."""
        section("Cluster: three NATS servers, three gateway replicas")
        started = time.monotonic()
        deadline = started + CLUSTER_SECONDS
        nats = NatsCluster(self).start(deadline)
        replicas = []
        for i in (1, 2, 3):
            replica = Gateway(self, f"cluster-{i}", flags=nats.gateway_flags())
            # Started one after the other: the first creates the bucket, the others find it.
            replicas.append(replica.start(deadline))
            print(f"{replica.name}: {replica.url} (ready)")
        self.cluster_seconds = time.monotonic() - started
        return replicas

    def cluster_clients(self, replicas):
        """The Go client through the first replica and the Python client through the second,
        with the checks of a single gateway; then the third, once the scrapes converged, must
        show what they left. Within CLUSTER_SECONDS: a client still running then is cut off (a
        failure)."""
        started = time.monotonic()
        first, second, third = replicas
        self.client_deadline = started + CLUSTER_SECONDS
        try:
            self.go_client(first, "cluster")
            self.python_client(second, "cluster")
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"the cluster phase ran over its {CLUSTER_SECONDS} s: {error}") from error
        finally:
            self.client_deadline = None
        section(f"Cluster: the replicas converge; what the clients left, through {third.name}")
        self.check_convergence(replicas, max(1.0, started + CLUSTER_SECONDS - time.monotonic()))
        self.check_go_state(f"go/{first.name} via {third.name}", third, "cluster")
        self.check_python_state(f"python/{second.name} via {third.name}", third, "cluster")
        self.promtool(third)
        self.cluster_seconds += time.monotonic() - started
        print(f"cluster phase: {self.cluster_seconds:.1f}s (Prometheus' checks of {third.name} come at the end)")

    def check_convergence(self, replicas, seconds):
        """Once pushes stop, every replica's scrape is the same, less the gateway's own families
        (polled for up to `seconds`). Identical scrapes hold both clients' pushes only if each
        replica has every write."""
        c = self.checks
        started = time.monotonic()
        while True:
            scrapes = [pushed_lines(replica.scrape()) for replica in replicas]
            if all(scrape == scrapes[0] for scrape in scrapes) or time.monotonic() - started > seconds:
                break
            time.sleep(0.1)
        print(f"(compared after {time.monotonic() - started:.1f}s)")
        first = replicas[0]
        for replica, scrape in zip(replicas[1:], scrapes[1:]):
            diff = list(difflib.unified_diff(scrapes[0], scrape, first.name, replica.name, lineterm="", n=0))
            c.check(
                not diff,
                f"cluster: {replica.name} scrapes the same as {first.name} (less {'*, '.join(OWN_FAMILIES)}*)",
                "\n".join(diff[:12]),
            )
        for prefix in ("go_interop_", "py_interop_"):
            pushed = [line for line in scrapes[0] if line.startswith(prefix) and 'transport="cluster"' in line]
            c.check(len(pushed) > 10, f"cluster: the scrapes hold the {prefix}* pushes", str(len(pushed)))

    # --- promtool ---

    def promtool(self, gateway):
        section(f"promtool check metrics on {gateway.name}")
        text = gateway.scrape()
        pushed = [line for line in text.splitlines() if line.startswith(("go_interop_", "py_interop_"))]
        self.checks.check(
            len(pushed) > 40, f"promtool/{gateway.name}: the scrape holds the rich pushes", str(len(pushed))
        )
        done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        self.checks.equal(
            (done.returncode, (done.stdout + done.stderr).strip()),
            (0, ""),
            f"promtool/{gateway.name}: check metrics passes without a finding",
        )
        # A control: promtool must reject this exposition once it is broken, or the check above
        # would prove nothing.
        broken = text.replace(
            "# TYPE go_interop_requests_total counter",
            "# TYPE go_interop_requests_total counter\n# TYPE go_interop_requests_total gauge",
            1,
        )
        control = subprocess.run(
            ["promtool", "check", "metrics"], input=broken, capture_output=True, text=True, timeout=60
        )
        self.checks.check(
            control.returncode != 0,
            f"promtool/{gateway.name}: control: a second TYPE line is caught",
            control.stdout + control.stderr,
        )
        path = os.path.join(self.workdir, f"scrape-{gateway.name}.txt")
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)

    # --- Prometheus ---

    def start_prometheus(self, plain, mtls, cluster):
        section("Prometheus")
        self.prometheus_port = free_port()
        with open(os.path.join(HERE, "prometheus.yml.in"), encoding="utf-8") as source:
            template = string.Template(source.read())
        config = os.path.join(self.workdir, "prometheus.yml")
        certs = self.certs
        with open(config, "w", encoding="utf-8") as out:
            out.write(
                template.substitute(
                    plain_target=plain.address,
                    mtls_target=mtls.address,
                    # No target when the binary has no cluster mode.
                    cluster_targets="" if cluster is None else f"'{cluster.address}'",
                    ca_file=certs["ca.crt"],
                    cert_file=certs["prometheus.crt"],
                    key_file=certs["prometheus.key"],
                    user=SCRAPER_USER,
                    password_file=self.password_file,
                )
            )
        argv = [
            self.args.prometheus,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            f"--storage.tsdb.path={os.path.join(self.workdir, 'tsdb')}",
            "--enable-feature=native-histograms",
        ]
        self.prometheus_log = os.path.join(self.workdir, "prometheus.log")
        self.prometheus = self.processes.start(argv, self.prometheus_log)
        wait_until(
            lambda: self.prometheus_get("/-/ready")[0] == 200,
            self.prometheus,
            "prometheus",
            self.prometheus_log,
            time.monotonic() + 30,
        )
        version = subprocess.run(
            [self.args.prometheus, "--version"], capture_output=True, text=True
        ).stdout.splitlines()
        print(f"{version[0] if version else 'prometheus'} on 127.0.0.1:{self.prometheus_port}")

    def prometheus_get(self, path):
        return http_get(self.prometheus_port, path)

    def query(self, promql):
        status, body = self.prometheus_get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        if status != 200:
            raise RuntimeError(f"query {promql!r} answered {status}: {body[:300]!r}")
        return json.loads(body)["data"]["result"]

    def prometheus_expectations(self, gateways):
        """(name, function returning (ok, detail)) for everything Prometheus must end up with."""
        expectations = []

        def series(promql, want):
            """`want`: list of (labels, value or predicate) that the result must be, exactly."""

            def check():
                result = self.query(promql)
                got = sorted((sorted(s["metric"].items()), s) for s in result)
                wanted = sorted((sorted(labels.items()), value) for labels, value in want)
                if [g[0] for g in got] != [w[0] for w in wanted]:
                    return False, f"labels {[dict(g[0]) for g in got]}"
                for (_, sample), (_, value) in zip(got, wanted):
                    if callable(value):
                        if not value(sample):
                            return False, f"sample {sample}"
                    elif "value" not in sample or float(sample["value"][1]) != value:
                        return False, f"value {sample.get('value')}, want {value}"
                return True, ""

            return check

        def add(name, check):
            expectations.append((name, check))

        for transport, gateway in gateways:
            t = f'transport="{transport}"'

            def one(name, base, value, **labels):
                """Exactly one series of `name` with the grouping labels `base` and `labels`."""
                matchers = "".join(f',{k}="{v}"' for k, v in labels.items())
                return series(f"{name}{{{t}{matchers}}}", [({**base, "__name__": name, **labels}, value)])

            def several(pattern, wanted):
                """Exactly the series `wanted` ((labels, value) pairs) of the names matching `pattern`."""
                return series(f'{{__name__=~"{pattern}",{t}}}', wanted)

            go = prometheus_labels(go_grouping(transport))
            add(
                f"{transport}: Go counter with every grouping label",
                one("go_interop_requests_total", go, 42, code="200"),
            )
            add(f"{transport}: Go gauge as replaced by Add()", one("go_interop_temperature_celsius", go, 21.5))
            add(f"{transport}: Go counter pushed by Add()", one("go_interop_added_total", go, 1))
            add(
                f"{transport}: Go classic histogram (protobuf push) with its buckets",
                self.buckets(t, go, "go_interop_latency_seconds_bucket", {0.1: 1, 0.5: 3, 1: 4, float("inf"): 5}),
            )
            add(
                f"{transport}: Go classic histogram sum and count",
                several(
                    "go_interop_latency_seconds_(sum|count)",
                    [
                        ({**go, "__name__": "go_interop_latency_seconds_sum"}, GO_LATENCY_SUM),
                        ({**go, "__name__": "go_interop_latency_seconds_count"}, 5),
                    ],
                ),
            )
            add(
                f"{transport}: Go native histogram arrives with its buckets (protobuf scrape)",
                one("go_interop_native_seconds", go, native_histogram_ok),
            )
            add(
                f"{transport}: Go summary sum and count",
                several(
                    "go_interop_duration_seconds_(sum|count)",
                    [
                        ({**go, "__name__": "go_interop_duration_seconds_sum"}, 55),
                        ({**go, "__name__": "go_interop_duration_seconds_count"}, 10),
                    ],
                ),
            )
            add(
                f"{transport}: Go summary quantiles as the gateway exposes them", self.quantiles(gateway, go, transport)
            )
            add(f"{transport}: Go untyped", one("go_interop_untyped", go, 17))
            add(
                f'{transport}: Go text push has no instance label (instance="" honoured)',
                one("go_interop_text_small", {"job": "go-interop", "format": "text", "transport": transport}, 1e-05),
            )
            add(
                f"{transport}: push_time_seconds of the Go group is recent",
                one(
                    "push_time_seconds",
                    go,
                    lambda s: abs(float(s["value"][1]) - time.time()) < 600,
                    instance="go host/1",
                ),
            )

            py = prometheus_labels(py_grouping(transport))
            add(
                f"{transport}: Python counter with every grouping label",
                one("py_interop_jobs_total", py, 3, result="ok"),
            )
            add(f"{transport}: Python gauge as replaced by the gzip pushadd", one("py_interop_queue_depth", py, 0))
            add(f"{transport}: Python counter pushed with gzip", one("py_interop_added_total", py, 1))
            add(
                f"{transport}: Python gauge pushed with snappy",
                series(f"py_interop_snappy{{{t}}}", [])
                if self.args.without_snappy
                else one("py_interop_snappy", py, 1),
            )
            add(
                f"{transport}: Python histogram (text push) with its buckets",
                self.buckets(t, py, "py_interop_batch_seconds_bucket", {0.5: 1, 1: 2, 5: 3, float("inf"): 4}),
            )
            add(
                f"{transport}: Python summary sum and count",
                several(
                    "py_interop_rows_(sum|count)",
                    [
                        ({**py, "__name__": "py_interop_rows_sum"}, 30),
                        ({**py, "__name__": "py_interop_rows_count"}, 2),
                    ],
                ),
            )
            add(
                f"{transport}: Python Info and Enum",
                several(
                    "py_interop_(build_info|phase)",
                    [({**py, "__name__": "py_interop_build_info", "version": "1.2.3"}, 1)]
                    + [
                        ({**py, "__name__": "py_interop_phase", "py_interop_phase": state}, value)
                        for state, value in (("starting", 0), ("running", 0), ("done", 1))
                    ],
                ),
            )
            add(
                f"{transport}: Python label value with quote, backslash, newline and UTF-8",
                several("py_interop_escapes", [({**py, "__name__": "py_interop_escapes", "text": PY_ESCAPES_TEXT}, 1)]),
            )
            add(f"{transport}: deleted groups are gone", several("go_interop_doomed|py_interop_doomed", []))

        def help_text():
            status, body = self.prometheus_get("/api/v1/metadata?metric=py_interop_escapes")
            entries = json.loads(body)["data"].get("py_interop_escapes", []) if status == 200 else []
            return any(e.get("help") == PY_ESCAPES_HELP for e in entries), repr(entries)

        expectations.append(("Python help with backslash, newline and UTF-8 in Prometheus' metadata", help_text))
        targets = dict(gateways)
        jobs = [
            ("pushgateway-plain", "plain", 1),
            ("pushgateway-mtls", "mtls", 1),
            ("pushgateway-mtls-without-certificate", "mtls", 0),
            ("pushgateway-mtls-wrong-password", "mtls", 0),
        ]
        if "cluster" in targets:
            jobs.append(("pushgateway-cluster", "cluster", 1))
        for job, transport, up in jobs:
            labels = {"__name__": "up", "job": job, "instance": targets[transport].address}
            expectations.append((f"up{{job={job!r}}} is {up}", series(f'up{{job="{job}"}}', [(labels, up)])))
        return expectations

    def buckets(self, matcher, labels, name, counts):
        """Classic buckets, compared by the numeric value of le: its spelling depends on the
        scrape format ("1" from text, "1.0" from Prometheus' protobuf parser)."""

        def check():
            result = self.query(f"{name}{{{matcher}}}")
            got = {}
            for sample in result:
                metric = dict(sample["metric"])
                le = metric.pop("le", None)
                if le is None or metric != {**labels, "__name__": name}:
                    return False, f"labels {sample['metric']}"
                got[float(le)] = float(sample["value"][1])
            want = {float(k): float(v) for k, v in counts.items()}
            return got == want, f"got {got}, want {want}"

        return check

    def quantiles(self, gateway, labels, transport):
        def check():
            group = gateway.group(go_grouping(transport))
            quantiles = (api_metric(group, "go_interop_duration_seconds") or {}).get("quantiles") or {}
            result = self.query(f'go_interop_duration_seconds{{transport="{transport}"}}')
            got = {float(s["metric"]["quantile"]): float(s["value"][1]) for s in result}
            want = float_keys(quantiles)
            others = [
                s["metric"]
                for s in result
                if {k: v for k, v in s["metric"].items() if k not in ("__name__", "quantile")} != labels
            ]
            return got == want and len(
                want
            ) == 2 and not others, f"prometheus {got}, gateway {want}, label mismatches {others}"

        return check

    def check_prometheus(self, gateways):
        section("Prometheus: queries until the pushed data appears")
        expectations = self.prometheus_expectations(gateways)
        deadline = time.monotonic() + self.args.prometheus_deadline
        started = time.monotonic()
        outcome = {}
        while True:
            for name, check in expectations:
                if outcome.get(name, (False,))[0]:
                    continue
                try:
                    outcome[name] = check()
                except (OSError, RuntimeError, ValueError, KeyError) as error:
                    outcome[name] = (False, f"{type(error).__name__}: {error}")
            if all(ok for ok, _ in outcome.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
        print(f"(waited {time.monotonic() - started:.1f}s)")
        for name, _ in expectations:
            ok, detail = outcome[name]
            self.checks.check(ok, f"prometheus: {name}", detail)
        # What the protobuf scrape did to the classic bucket labels, for the report.
        result = self.query('go_interop_latency_seconds_bucket{transport="mtls"}')
        self.le_spelling = sorted({s["metric"].get("le") for s in result})

    # --- the gateways' own account ---

    def request_counts(self, gateway):
        exposition = Exposition(gateway.scrape())
        counts = {}
        for name, labels, value in exposition.samples:
            if name == "pushgateway_http_requests_total" and labels.get("handler") in ("push", "delete"):
                counts[f"{labels['method']} {labels['handler']} {labels['code']}"] = int(value)
        return counts

    def report(self, gateways):
        section("What each client sent")
        seen = set()
        for record in self.observed:
            if record["client"] == "curl":
                line = f"curl   {record['gateway']:6} {record['step']}: {', '.join(record['requests'])} (exit {record['exit']})"
            else:
                if record["client"] == "go":
                    url = record["path"]
                    answer = record.get("status", record.get("error", ""))
                    answer = f"{answer} {record.get('proto', '')}".strip()
                else:
                    url = urllib.parse.urlsplit(record["url"]).path
                    answer = "ok" if record.get("ok") else record.get("error", "")
                answer = str(answer)[:120]
                line = (
                    f"{record['client']:6} {record['gateway']:6} {record['step']:15} {record['variant']:14} "
                    f"{record['method']:6} {url}\n{'':8}Content-Type: {record['content_type'] or '-'}; "
                    f"Content-Encoding: {record['content_encoding'] or '-'}; auth: {record['basic_auth']}; -> {answer}"
                )
            if line not in seen:
                seen.add(line)
                print(line)
        print(f"\nPrometheus stored the classic buckets with le = {getattr(self, 'le_spelling', '?')}")
        for gateway in gateways:
            try:
                print(f"gateway {gateway.name}: pushgateway_http_requests_total {self.request_counts(gateway)}")
            except (OSError, RuntimeError, ValueError) as error:
                print(f"gateway {gateway.name}: no counts ({error})")
        if self.args.report:
            with open(self.args.report, "w", encoding="utf-8") as out:
                json.dump(self.observed, out, indent=1, ensure_ascii=False)


def native_histogram_ok(sample):
    """A native histogram of the observations 0, 1.5, 1.5, 3 and 100."""
    if "histogram" not in sample:
        return False
    histogram = sample["histogram"][1]
    buckets = [(float(lower), float(upper), float(count)) for _, lower, upper, count in histogram.get("buckets", [])]

    def count_at(value):
        return sum(count for lower, upper, count in buckets if lower <= value <= upper)

    return (
        float(histogram["count"]) == 5
        and float(histogram["sum"]) == 106
        and sum(count for _, _, count in buckets) == 5
        and count_at(0) == 1
        and count_at(1.5) == 2
        and count_at(3) == 1
        and count_at(100) == 1
    )


CurlRequest = collections.namedtuple("CurlRequest", "method path data headers query")

_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration_seconds(text):
    """Seconds in a Go duration (`10m`, `1h0m0s`, `1.5s`, `0`)."""
    if text == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_DURATION_UNITS[u] for n, u in parts)


def rfc3339_seconds(text):
    """Unix seconds of an RFC 3339 UTC time with up to nanoseconds (`...T03:31:02.123456789Z`)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", text)
    if not match:
        return float("nan")
    whole = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return whole + float(match.group(2) or 0)


_SELECTOR_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')


def parse_selector(text):
    """A Prometheus selector over labels, `{job="a",instance=~"db-.*"}`, as (name, op, value)."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"not a selector: {text!r}")
    inner, matchers, at = text[1:-1], [], 0
    while at < len(inner.rstrip()):
        match = _SELECTOR_MATCHER.match(inner + "}", at)
        if not match:
            raise ValueError(f"cannot parse selector {text!r} at {at}")
        matchers.append((match.group(1), match.group(2), _unescape(match.group(3))))
        at = match.end()
    if not matchers:
        raise ValueError("a selector without matchers is refused by the gateway")
    return matchers


def selector_matches(matchers, labels):
    """As Prometheus matches: a missing label is the empty value; regular expressions are anchored."""
    for name, op, value in matchers:
        actual = labels.get(name, "")
        if op == "=":
            ok = actual == value
        elif op == "!=":
            ok = actual != value
        else:
            ok = re.fullmatch(value, actual) is not None
            ok = ok if op == "=~" else not ok
        if not ok:
            return False
    return True


def parse_push_body(text):
    """{family: (TYPE, help or None, [(labels, value)])} of a README example's body."""
    exposition = Exposition(text)
    families = {}
    for name, labels, value in exposition.samples:
        kind = exposition.types.get(name, "untyped").upper()
        families.setdefault(name, (kind, exposition.helps.get(name), []))[2].append((labels, value))
    return families


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--binary", default=os.environ.get("PUSHGATEWAY_BINARY", os.path.join(REPO, "target", "release", "pushgateway"))
    )
    parser.add_argument("--client-python", default=sys.executable, help="interpreter with prometheus_client installed")
    parser.add_argument("--prometheus", default="prometheus")
    parser.add_argument("--go-cache", default=os.path.join(REPO, "target", "interop", "go-cache"))
    parser.add_argument("--hash", choices=["auto", "bcrypt", "pbkdf2-sha256"], default="auto")
    parser.add_argument("--prometheus-deadline", type=float, default=90, help="seconds to wait for Prometheus")
    parser.add_argument(
        "--without-snappy",
        action="store_true",
        help="expect snappy pushes to be refused (upstream 1.5.1, to check the suite against upstream)",
    )
    parser.add_argument("--report", help="write every observed client request to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (certificates, logs)")
    args = parser.parse_args()

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)

    started = time.monotonic()
    suite = Suite(args)
    gateways = []
    try:
        suite.prepare()
        section("Gateways")
        plain = Gateway(suite, "plain").start()
        basic = Gateway(suite, "basic", basic_auth=True).start()
        mtls = Gateway(suite, "mtls", tls=True, basic_auth=True).start()
        gateways = [plain, basic, mtls]
        for gateway in gateways:
            print(f"{gateway.name}: {gateway.url}")
        replicas = []
        if plain.ours:
            replicas = suite.start_cluster()
            gateways += replicas
        else:
            suite.notes.append("cluster phase skipped: the binary under test (upstream's) has no cluster mode")
            print(suite.notes[-1])
        # Prometheus applies its targets only a few seconds after start-up: start it first.
        suite.start_prometheus(plain, mtls, replicas[2] if replicas else None)

        for gateway in (plain, basic, mtls):
            suite.go_client(gateway, gateway.name)
        for gateway in (plain, basic, mtls):
            suite.python_client(gateway, gateway.name)
        # The README's examples assume a gateway of their own, with the admin API (for the bulk
        # deletion example).
        for name, tls, basic_auth in (("readme", False, False), ("readme-mtls", True, True)):
            fresh = Gateway(suite, name, tls=tls, basic_auth=basic_auth, flags=["--web.enable-admin-api"]).start()
            try:
                suite.curl_readme(fresh)
                if tls:
                    suite.curl_refusals(fresh)
            finally:
                fresh.stop()
        if replicas:
            suite.cluster_clients(replicas)
        for gateway in (plain, mtls):
            suite.promtool(gateway)
        targets = [("plain", plain), ("mtls", mtls)] + ([("cluster", replicas[2])] if replicas else [])
        suite.check_prometheus(targets)
        suite.report(gateways)
    except Exception as error:  # reported as a failure; the finally block still stops everything
        suite.checks.check(False, "the suite ran to the end", f"{type(error).__name__}: {error}")
        traceback.print_exc()
    finally:
        suite.processes.stop_all()
        failed = bool(suite.checks.failed)
        if failed:
            # CI keeps only the output: show the servers' last words there.
            for name in sorted(os.listdir(suite.workdir)):
                if name.endswith(".log"):
                    with open(os.path.join(suite.workdir, name), errors="replace") as log:
                        tail = log.readlines()[-15:]
                    print(f"\n--- last lines of {name}\n" + "".join(tail), end="")
        if args.keep or failed:
            print(f"\nworking directory kept: {suite.workdir}")
        else:
            shutil.rmtree(suite.workdir, ignore_errors=True)
    checks = suite.checks
    if suite.warnings:
        print("\nwarnings:\n  " + "\n  ".join(dict.fromkeys(suite.warnings)))
    if suite.notes:
        print("\nnotes:\n  " + "\n  ".join(suite.notes))
    print(f"\nfinished in {time.monotonic() - started:.0f}s")
    if checks.failed:
        print("failed checks:\n  " + "\n  ".join(checks.failed))
    print(f"{checks.passed} passed, {len(checks.failed)} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
