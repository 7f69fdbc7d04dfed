#!/usr/bin/env python3
"""Differential test: our Pushgateway vs upstream's prometheus-pushgateway.

Usage:
    python3 tests/differential/run.py --ours target/release/pushgateway \
        [--upstream /usr/bin/prometheus-pushgateway] [--json out.json] [-k substring] [-j N]

Every case starts both gateways fresh on free 127.0.0.1 ports with identical flags
(``--web.listen-address=127.0.0.1:<port> --persistence.file=`` + the case's flags), waits for
``/-/ready``, sends the same request sequence to both, stops both and compares the answers.
See README.md in this directory.
"""

import argparse
import atexit
import difflib
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep tests/differential free of __pycache__

import expo  # noqa: E402
from dsl import (MULTI_ERRORS, PROTO_TEXT, Api, Cli, ExpectExit, Req, Scrape,  # noqa: E402
                 Sleep)

DEFAULT_NORMS = (PROTO_TEXT, MULTI_ERRORS)
DEFAULT_NORM_PREFIXES = ("pushed metrics are invalid or inconsistent with existing metrics: ",
                         "An error has occurred while serving metrics:")

MISSING_EXPECTED = ("expected difference did not occur: both answered alike, so ours answers like "
                    "1.5.1 here, not like latest upstream / our documented deviation (see the reason)")

SETTLE = 0.15  # seconds to wait after a 202 (DELETE / unchecked push are applied asynchronously)
DEFAULT_HEADERS = ("allow", "location", "content-type", "content-encoding")

# ---------------------------------------------------------------- process management

_live = set()
_live_lock = threading.Lock()
STOP = threading.Event()  # set on Ctrl-C / SIGTERM: no new processes are started


def _kill_all():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        _terminate(p)


def _terminate(p, timeout=5.0):
    """SIGTERM, wait, then SIGKILL; only ever the given child process (by pid)."""
    try:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    finally:
        with _live_lock:
            _live.discard(p)


atexit.register(_kill_all)


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


_port_lock = threading.Lock()
_next_port = [20000 + (os.getpid() * 7) % 9000]


def free_port():
    """A free 127.0.0.1 port, never handed out twice in one run.

    Ports come from 20000-29999, below Linux's ephemeral range (32768+), so that neither our own
    client connections nor concurrently started gateways can grab a port between the check
    and the gateway's bind."""
    with _port_lock:
        for _ in range(10000):
            port = _next_port[0]
            _next_port[0] = 20000 + (port + 1 - 20000) % 10000
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port in 20000-29999")


def safe_flags(port):
    # Debian's package defaults --persistence.file to /var/lib/prometheus/pushgateway.data:
    # always override it with the empty string (memory only).
    return [f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]


# Runs the program in "$0" with the socket on its standard input as descriptor 3 (standard input
# becomes /dev/null) and LISTEN_PID set to its own pid: the shell's, which exec keeps. This is
# how systemd passes a socket; Popen cannot place a descriptor at 3 without a preexec_fn, which
# is unsafe with the threads this harness runs cases in.
SYSTEMD_WRAPPER = 'exec 3<&0 </dev/null; export LISTEN_PID=$$; exec "$0" "$@"'
ACTIVATION_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def child_env(listen_fds=None):
    """The harness's environment without systemd's variables (or with LISTEN_FDS set)."""
    env = {k: v for k, v in os.environ.items() if k not in ACTIVATION_ENV}
    if listen_fds is not None:
        env["LISTEN_FDS"] = str(listen_fds)
    return env


class Gateway:
    def __init__(self, label, binary, flags, logdir, ready_path, ready_any=False,
                 systemd_socket=False):
        self.label, self.binary, self.flags = label, binary, list(flags)
        self.logdir, self.ready_path, self.ready_any = logdir, ready_path, ready_any
        self.systemd_socket = systemd_socket
        self.proc = None
        self.port = None
        self.log_path = None
        self.start_error = None
        self.start_rc = None
        self.expected_exit = False

    def start(self, timeout=15.0):
        for attempt in range(3):
            self.port = free_port()
            self.log_path = os.path.join(self.logdir, f"{self.label}.{attempt}.log")
            log = open(self.log_path, "wb")
            args = [self.binary] + safe_flags(self.port) + self.flags
            stdin, env, sock = subprocess.DEVNULL, child_env(), None
            if self.systemd_socket:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind(("127.0.0.1", self.port))
                except OSError:
                    sock.close()
                    log.close()
                    continue
                sock.listen(128)
                args = ["sh", "-c", SYSTEMD_WRAPPER] + args
                stdin, env = sock.fileno(), child_env(listen_fds=1)
            with _live_lock:
                if STOP.is_set():
                    self.start_error = "not started: the run is being interrupted"
                    log.close()
                    if sock:
                        sock.close()
                    return False
                self.proc = subprocess.Popen(args, stdin=stdin, stdout=log, env=env,
                                             stderr=subprocess.STDOUT, start_new_session=True)
                _live.add(self.proc)
            log.close()
            if sock:
                sock.close()  # the gateway has its own copy
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    r = http_request(self.port, "GET", self.ready_path, timeout=2)
                    if r["status"] == 200 or (self.ready_any and isinstance(r["status"], int)):
                        time.sleep(0.05)  # a gateway that failed to bind exits right away
                        if self.proc.poll() is None:
                            self.start_error = None
                            return True
                        break
                except OSError:
                    pass
                time.sleep(0.02)
            rc = self.start_rc = self.proc.poll()
            _terminate(self.proc)
            tail = self.log_tail()
            self.start_error = (f"did not become ready on {self.ready_path} "
                                f"(exit status {rc if rc is not None else 'still running'}): {tail}")
            if "address already in use" not in tail:
                return False
        return False

    def start_summary(self, prog):
        last = self.log_tail(1).replace(prog, "<prog>")
        last = re.sub(r"\bts=\S+", "ts=<TS>", last)
        return f"exit status {self.start_rc}: {last}"

    def log_tail(self, n=6):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            _terminate(self.proc)


# ---------------------------------------------------------------- HTTP

def http_request(port, method, path, body=b"", headers=(), content_length=None, timeout=10):
    """One request on a fresh connection, sent byte-for-byte as given (no client-side cleaning)."""
    if content_length is None:
        content_length = method in ("PUT", "POST", "PATCH") or bool(body)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    for k, v in headers:
        lines.append(f"{k}: {v}")
    if content_length and not any(k.lower() == "content-length" for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        resp = http.client.HTTPResponse(s, method=method)
        resp.begin()
        data = resp.read()
        hdrs = {}
        for k, v in resp.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        return {"status": resp.status, "headers": hdrs, "body": data}


def do_request(gw, method, path, body=b"", headers=(), content_length=None, timeout=10):
    try:
        return http_request(gw.port, method, path, body, headers, content_length, timeout)
    except (OSError, http.client.HTTPException) as e:
        return {"status": f"<{type(e).__name__}>", "headers": {}, "body": b"", "error": str(e)}


def _disconnected(r):
    return r["status"] in ("<RemoteDisconnected>", "<ConnectionResetError>", "<BrokenPipeError>",
                           "<IncompleteRead>")


def norm_ct(v):
    if v is None:
        return None
    parts = [p.strip() for p in v.split(";")]
    return "; ".join(p for p in parts if p.replace(" ", "") != "escaping=underscores")


def show(b, limit=400):
    s = b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)
    return repr(s if len(s) <= limit else s[:limit] + "…")


# ---------------------------------------------------------------- comparing one step

def compare_common(o, u, extra_headers=()):
    diffs = []
    if o["status"] != u["status"]:
        diffs.append(f"status ours={o['status']} upstream={u['status']}")
    for h in tuple(DEFAULT_HEADERS) + tuple(h.lower() for h in extra_headers):
        ov, uv = o["headers"].get(h), u["headers"].get(h)
        if h == "content-type":
            ov, uv = norm_ct(ov), norm_ct(uv)
        if ov != uv:
            diffs.append(f"header {h}: ours={ov!r} upstream={uv!r}")
    return diffs


def compare_text_bodies(ob, ub, norms):
    ot = ob.decode("utf-8", "replace")
    ut = ub.decode("utf-8", "replace")
    # Consistency-error messages always embed Go protobuf text (randomised spacing) and may list
    # several errors in map order: normalise those two aspects even if the step declares nothing.
    if all(t.startswith(DEFAULT_NORM_PREFIXES) for t in (ot, ut)):
        norms = list(DEFAULT_NORMS) + [n for n in norms if n not in DEFAULT_NORMS]
    for n in norms:
        ot, ut = n(ot), n(ut)
    if ot != ut:
        return [f"body ours={show(ot)} upstream={show(ut)}"]
    return []


def decoded_body(r):
    b = r["body"]
    if r["headers"].get("content-encoding", "").lower() == "gzip":
        try:
            b = gzip.decompress(b)
        except (OSError, EOFError) as e:
            return None, f"body not valid gzip: {e}"
    return b, None


def scrape_format(r):
    ct = r["headers"].get("content-type", "")
    if ct.startswith("application/vnd.google.protobuf"):
        return "protobuf-delimited" if "encoding=delimited" in ct else "protobuf-text"
    return "text"


def parse_scrape(r):
    b, err = decoded_body(r)
    if err:
        return None, [err]
    ct = r["headers"].get("content-type", "")
    if ct.startswith("application/vnd.google.protobuf"):
        if "encoding=delimited" in ct:
            return expo.parse_proto(b)
        return expo.parse_prototext(b.decode("utf-8", "replace"))
    return expo.parse_text(b.decode("utf-8", "replace"))


def run_step(step, case, ours, ups, opts):
    """Run one step on both gateways; return (description, diffs, raw responses)."""
    if isinstance(step, Sleep):
        time.sleep(step.seconds)
        return None
    if isinstance(step, ExpectExit):
        diffs = []
        codes = []
        for gw in (ours, ups):
            gw.expected_exit = True
            try:
                codes.append(gw.proc.wait(step.timeout))
            except subprocess.TimeoutExpired:
                codes.append("<still running>")
        if codes[0] != codes[1]:
            diffs.append(f"exit status ours={codes[0]} upstream={codes[1]}")
        return step.describe(), diffs, {"ours": codes[0], "upstream": codes[1]}, []

    if isinstance(step, Req):
        args = (step.method, step.path, step.body, step.headers, step.content_length, step.timeout)
        o = do_request(ours, *args)
        u = do_request(ups, *args)
        diffs = compare_common(o, u, step.compare_headers)
        if step.compare_body:
            diffs += compare_text_bodies(o["body"], u["body"], step.norm)
        if diffs and step.racy_disconnect and (_disconnected(o) or _disconnected(u)):
            side = "ours" if _disconnected(o) else "upstream"
            return step.describe(), [], {"ours": o, "upstream": u}, [
                f"{side} closed the connection without an answer (accepted: racy upstream)"]
        if 202 in (o["status"], u["status"]) or step.method == "DELETE":
            time.sleep(SETTLE)
        return step.describe(), diffs, {"ours": o, "upstream": u}, []

    if isinstance(step, Scrape):
        o = do_request(ours, "GET", step.path, headers=step.headers)
        u = do_request(ups, "GET", step.path, headers=step.headers)
        diffs = compare_common(o, u)
        if o["status"] == 200 and u["status"] == 200:
            of, op = parse_scrape(o)
            uf, up = parse_scrape(u)
            for p in op:
                diffs.append(f"ours exposition problem: {p}")
            for p in up:
                diffs.append(f"upstream exposition problem: {p}")
            ofmt = scrape_format(o)
            if ofmt != scrape_format(u):
                diffs.append(f"bodies are in different formats ({ofmt} vs {scrape_format(u)}); "
                             "not compared further")
            elif of is not None and uf is not None:
                he = dict(case.help_either)
                he.update(step.help_either)
                diffs += expo.compare_families(of, uf, he, opts.strict_order)
        else:
            ob, _ = decoded_body(o)
            ub, _ = decoded_body(u)
            diffs += compare_text_bodies(ob or b"", ub or b"", list(case.scrape_norm) + list(step.norm))
        return step.describe(), diffs, {"ours": o, "upstream": u}, []

    if isinstance(step, Api):
        o = do_request(ours, "GET", step.path)
        u = do_request(ups, "GET", step.path)
        diffs = compare_common(o, u, ("access-control-allow-origin", "access-control-allow-methods",
                                      "access-control-allow-headers",
                                      "access-control-expose-headers", "cache-control"))
        if o["status"] != 200 or u["status"] != 200:
            diffs += compare_text_bodies(o["body"], u["body"], ())
            return step.describe(), diffs, {"ours": o, "upstream": u}, []
        oj, oprob = expo.normalise_api(o["body"].decode("utf-8", "replace"), ours.port)
        uj, uprob = expo.normalise_api(u["body"].decode("utf-8", "replace"), ups.port)
        if step.select:
            oj, uj = expo.select_json(oj, step.select), expo.select_json(uj, step.select)
        for p in oprob:
            if p not in uprob:
                diffs.append(f"ours JSON: {p}")
        if oj != uj:
            d = difflib.unified_diff(uj.splitlines(), oj.splitlines(), "upstream", "ours",
                                     lineterm="", n=2)
            diffs.append("JSON differs:")
            diffs.extend("    " + line for line in d)
        return step.describe(), diffs, {"ours": o, "upstream": u}, []

    raise TypeError(f"unknown step {step!r}")


# ---------------------------------------------------------------- running a case

def run_server_case(case, opts):
    result = {"name": case.name, "flags": list(case.flags), "steps": [], "diffs": [], "notes": [],
              "expected_reason": case.expected_difference}
    logdir = tempfile.mkdtemp(prefix="pgdiff-")
    ours = Gateway("ours", opts.ours, case.flags, logdir, case.ready_path, case.ready_any_status,
                   case.systemd_socket)
    ups = Gateway("upstream", opts.upstream, case.flags, logdir, case.ready_path,
                  case.ready_any_status, case.systemd_socket)
    try:
        # start both concurrently
        res = {}
        threads = [threading.Thread(target=lambda g=g: res.__setitem__(g.label, g.start()))
                   for g in (ours, ups)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not (res.get("ours") and res.get("upstream")):
            if not res.get("ours") and not res.get("upstream"):
                # both refused to start: compare how (exit status and last log line)
                o = ours.start_summary(os.path.basename(opts.ours))
                u = ups.start_summary(os.path.basename(opts.upstream))
                result["steps"].append({"step": "start", "agree": o == u, "ours": o, "upstream": u})
                if o != u:
                    result["diffs"].append({"step": "start", "diffs": [f"ours {o}", f"upstream {u}"],
                                            "expected": case.expected_difference,
                                            "pending": case.pending,
                                            "suspected": case.suspected})
                return result
            for g in (ours, ups):
                if g.start_error:
                    result["diffs"].append({"step": "start", "diffs": [f"{g.label} {g.start_error}"],
                                            "expected": case.expected_difference,
                                            "pending": case.pending,
                                            "suspected": case.suspected})
            return result
        steps = list(case.steps)
        if isinstance(case.final_scrape, Scrape):
            steps.append(case.final_scrape)
        elif case.final_scrape:
            steps.append(Scrape(note="final"))
        for i, step in enumerate(steps):
            if not (ours.alive() and ups.alive()) and not isinstance(step, (Sleep, ExpectExit)):
                if ours.expected_exit and ups.expected_exit:
                    break
            r = run_step(step, case, ours, ups, opts)
            if r is None:
                continue
            desc, diffs, raw, notes = r
            result["notes"].extend(f"#{i + 1} {desc}: {n}" for n in notes)
            expected = getattr(step, "expected_difference", None) or case.expected_difference
            pending = getattr(step, "pending", None) or case.pending
            suspected = getattr(step, "suspected", None) or case.suspected
            entry = {"step": f"#{i + 1} {desc}", "diffs": diffs, "expected": expected,
                     "pending": pending, "suspected": suspected}
            if opts.verbose:
                entry["raw"] = _jsonable(raw)
            result["steps"].append({"step": entry["step"], "agree": not diffs,
                                    "ours": _summary(raw.get("ours"), step),
                                    "upstream": _summary(raw.get("upstream"), step)})
            if diffs:
                result["diffs"].append(entry)
            elif not opts.self_test:
                step_expected = getattr(step, "expected_difference", None)
                if getattr(step, "pending", None):
                    result["notes"].append(f"#{i + 1} {desc}: agrees; its pending marker can be "
                                           "removed")
                elif step_expected:
                    result["diffs"].append({
                        "step": f"#{i + 1} {desc}", "expected": None, "pending": None,
                        "suspected": None, "missing_expected": step_expected,
                        "diffs": [MISSING_EXPECTED]})
            exit_next = i + 1 < len(steps) and isinstance(steps[i + 1], ExpectExit)
            for g in (ours, ups):
                if not g.alive() and not g.expected_exit and not exit_next:
                    result["diffs"].append({
                        "step": f"#{i + 1} {desc}",
                        "diffs": [f"{g.label} process exited unexpectedly "
                                  f"(status {g.proc.poll()}): {g.log_tail()}"],
                        "expected": expected, "pending": pending, "suspected": suspected})
                    g.expected_exit = True
        return result
    finally:
        ours.stop()
        ups.stop()
        if opts.keep_logs:
            dest = os.path.join(opts.keep_logs, case.name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(logdir, dest)
        shutil.rmtree(logdir, ignore_errors=True)


def _summary(r, step=None):
    if isinstance(r, dict):
        if isinstance(step, Scrape) and r.get("status") == 200:
            fams, _ = parse_scrape(r)
            body = "\n".join(line for f in expo.filtered(fams or []) for line in expo.render_family(f))
            return {"status": 200, "body": body[:3000]}
        return {"status": r.get("status"), "body": r.get("body", b"")[:600].decode("utf-8", "replace")}
    return r


def _jsonable(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def output_streams(out, err):
    return " and ".join(name for name, b in (("stdout", out), ("stderr", err)) if b) or "none"


def output_kind(b):
    """What a command printed, for outputs that differ by design (help layouts, man pages)."""
    s = b.decode("utf-8", "replace")
    if re.search(r"(?m)^\.TH ", s) and re.search(r'(?m)^\.SH "?NAME', s):
        return "man page"
    if re.match(r"\S*pushgateway, version ", s):
        return "version"
    if re.search(r"(?m)^\S*: error: ", s):
        return "error"
    if re.search(r"(?im)^usage: ", s):
        return "help"
    return "other"


def run_cli_case(case, opts):
    result = {"name": case.name, "flags": list(case.args), "steps": [], "diffs": [],
              "expected_reason": case.expected_difference}
    outs = {}
    for label, binary in (("ours", opts.ours), ("upstream", opts.upstream)):
        args = [binary] + safe_flags(free_port()) + list(case.args)
        with _live_lock:
            if STOP.is_set():
                raise KeyboardInterrupt("stopping")
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True, env=child_env())
            _live.add(p)
        try:
            out, err = p.communicate(timeout=10)
            status = p.returncode
        except subprocess.TimeoutExpired:
            _terminate(p)
            out, err = p.communicate()
            status = "<did not exit within 10s>"
        finally:
            _terminate(p)
        prog = os.path.basename(binary)

        def n(b):
            # kingpin prefixes errors with the program name; only that is normalised
            s = b.decode("utf-8", "replace")
            s = re.sub(rf"(?m)^{re.escape(prog)}:", "<prog>:", s)
            s = re.sub(rf"(?i)(usage: ){re.escape(prog)}\b", r"\1<prog>", s)
            if case.first_line_only:
                s = s.split("\n", 1)[0]
            return s
        outs[label] = {"status": status, "stdout": n(out), "stderr": n(err)}
        outs[label].update(streams=output_streams(out, err), kind=output_kind(out + err))
    diffs = []
    for k in case.compare:
        if outs["ours"][k] != outs["upstream"][k]:
            diffs.append(f"{k} ours={show(outs['ours'][k])} upstream={show(outs['upstream'][k])}")
    result["steps"].append({"step": "run " + " ".join(case.args), "agree": not diffs, **outs})
    if diffs:
        result["diffs"].append({"step": "run " + " ".join(case.args), "diffs": diffs,
                                "expected": case.expected_difference, "pending": case.pending,
                                "suspected": case.suspected})
    return result


def run_case(case, opts):
    t0 = time.monotonic()
    try:
        if isinstance(case, Cli):
            r = run_cli_case(case, opts)
        else:
            r = run_server_case(case, opts)
    except KeyboardInterrupt:
        raise
    except Exception:
        r = {"name": case.name, "steps": [], "expected_reason": None,
             "diffs": [{"step": "harness", "diffs": ["harness error: " + traceback.format_exc()],
                        "expected": None, "pending": None, "suspected": None}]}
    r["seconds"] = round(time.monotonic() - t0, 3)
    r.setdefault("notes", [])
    r["pending_reason"] = getattr(case, "pending", None)
    if not r["diffs"] and not opts.self_test:
        if getattr(case, "pending", None):
            r["notes"].append("pending marker can be removed: the case agrees")
        elif getattr(case, "expected_difference", None):
            # The whole case is marked, and nothing differed at all.
            r["diffs"].append({"step": "(case)", "expected": None, "pending": None,
                               "suspected": None, "missing_expected": case.expected_difference,
                               "diffs": [MISSING_EXPECTED]})
    if not r["diffs"]:
        r["verdict"] = "AGREE"
    elif any(not (d.get("expected") or d.get("pending")) for d in r["diffs"]):
        r["verdict"] = "DIFFER"
    elif any(d.get("pending") for d in r["diffs"]):
        r["verdict"] = "PENDING"
    else:
        r["verdict"] = "EXPECTED-DIFF"
    return r


def print_result(r, show_all=False):
    line = f"{r['verdict']:<13} {r['name']}"
    print(line, flush=True)
    for n in r.get("notes", []):
        print(f"    note: {n}")
    if show_all:
        for st in r["steps"]:
            mark = "=" if st.get("agree") else "≠"
            print(f"  {mark} {st['step']}")
            for side in ("upstream", "ours"):
                v = st.get(side)
                if isinstance(v, dict) and "body" in v:
                    print(f"      {side:<8} {v.get('status')} {v.get('body')!r}")
                elif v is not None:
                    print(f"      {side:<8} {v!r}")
    if r["verdict"] == "AGREE":
        return
    for d in r["diffs"]:
        tag = ""
        if d.get("pending"):
            tag = f"  (pending: {d['pending']})"
            if d.get("expected"):
                tag += f"  (once implemented, expected: {d['expected']})"
        elif d.get("expected"):
            tag = f"  (expected: {d['expected']})"
        elif d.get("missing_expected"):
            tag = f"  (marked as an expected difference: {d['missing_expected']})"
        elif d.get("suspected"):
            tag = f"  (NOT an expected difference; suspected cause: {d['suspected']})"
        print(f"    {d['step']}{tag}")
        for line in d["diffs"]:
            for sub in str(line).split("\n"):
                print(f"        {sub}")
    sys.stdout.flush()


def main():
    global SETTLE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="path to our pushgateway binary")
    ap.add_argument("--upstream", default="/usr/bin/prometheus-pushgateway")
    ap.add_argument("--json", help="write per-case results to this file")
    ap.add_argument("-k", action="append", default=[],
                    help="only run cases whose name contains this substring (repeatable)")
    ap.add_argument("-j", "--jobs", type=int, default=4, help="cases run in parallel (default 4)")
    ap.add_argument("--list", action="store_true", help="list case names and exit")
    ap.add_argument("--strict-order", action="store_true",
                    help="also require the same sample order inside each family")
    ap.add_argument("--settle", type=float, default=SETTLE,
                    help="seconds to wait after a 202 answer (asynchronous store updates)")
    ap.add_argument("--keep-logs", help="copy each case's gateway logs into this directory")
    ap.add_argument("--show", action="store_true",
                    help="print every step's status and body for both sides (for writing cases)")
    ap.add_argument("-v", "--verbose", action="store_true", help="include raw responses in --json")
    ap.add_argument("--pending-fails", action="store_true",
                    help="PENDING cases (not implemented yet in ours) fail the run too")
    opts = ap.parse_args()
    SETTLE = opts.settle

    import cases as case_module
    all_cases = case_module.CASES
    names = [c.name for c in all_cases]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        sys.exit(f"duplicate case names: {sorted(dups)}")
    selected = [c for c in all_cases if not opts.k or any(k in c.name for k in opts.k)]
    if opts.list:
        for c in selected:
            print(c.name)
        return 0
    for b in (opts.ours, opts.upstream):
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            sys.exit(f"not an executable: {b}")
    opts.ours = os.path.abspath(opts.ours)
    opts.self_test = os.path.realpath(opts.ours) == os.path.realpath(opts.upstream)
    if opts.keep_logs:
        os.makedirs(opts.keep_logs, exist_ok=True)

    signal.signal(signal.SIGINT, _on_signal)  # also when started in the background (SIG_IGN)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    results = []
    ex = ThreadPoolExecutor(max_workers=max(1, opts.jobs))
    futures = []
    try:
        futures = [ex.submit(run_case, c, opts) for c in selected]
        for f in futures:
            r = f.result()
            results.append(r)
            print_result(r, opts.show)
        ex.shutdown(wait=True)
    except KeyboardInterrupt:
        print("interrupted; stopping gateways", file=sys.stderr)
        STOP.set()
        for f in futures:
            f.cancel()
        _kill_all()
        ex.shutdown(wait=True, cancel_futures=True)
        _kill_all()
        return 130
    finally:
        _kill_all()

    a = sum(r["verdict"] == "AGREE" for r in results)
    e = sum(r["verdict"] == "EXPECTED-DIFF" for r in results)
    p = sum(r["verdict"] == "PENDING" for r in results)
    d = sum(r["verdict"] == "DIFFER" for r in results)
    print(f"{len(results)} cases: {a} agree, {e} expected differences, {p} pending, {d} differ")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"ours": opts.ours, "upstream": opts.upstream,
                       "summary": {"cases": len(results), "agree": a, "expected": e,
                                   "pending": p, "differ": d},
                       "cases": results}, f, indent=1, default=str)
    return 1 if d or (p and opts.pending_fails) else 0


if __name__ == "__main__":
    sys.exit(main())
