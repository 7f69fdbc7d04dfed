"""Parsing and normalising scrape output (text 0.0.4 and delimited protobuf) and API JSON."""

import json
import re
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import pb
from dsl import go_float

OWN_PREFIXES = ("go_", "process_", "pushgateway_")
TIME_FAMILIES = ("push_time_seconds", "push_failure_time_seconds")
TIME_PLACEHOLDER = "<TIME>"
SUFFIXES = ("_bucket", "_sum", "_count")


def is_own(name: str) -> bool:
    return name.startswith(OWN_PREFIXES)


def looks_like_now(v: float) -> bool:
    return abs(v - time.time()) < 86400


def time_placeholder(text: str) -> str:
    """Normalise the value of a push_time/push_failure_time sample.

    0 stays 0; a current Unix time printed the way Go prints it becomes <TIME>; a current time
    printed differently becomes <TIME printed as 'x'> (so formatting bugs still show); any other
    value (e.g. one pushed in a body) is kept as is.
    """
    try:
        v = float(text)
    except ValueError:
        return text
    if v == 0 or not looks_like_now(v):
        return text
    if go_float(v) == text:
        return TIME_PLACEHOLDER
    return f"<TIME printed as {text!r}>"


# ---------------------------------------------------------------- text format

@dataclass
class Family:
    name: str
    help: Optional[str] = None
    type: Optional[str] = None
    samples: list = field(default_factory=list)  # normalised sample lines


def parse_sample(line: str):
    """Return (metric name, [(label, value)], value-token start index, value token)."""
    i, n = 0, len(line)
    while i < n and line[i] not in "{ \t":
        i += 1
    name = line[:i]
    labels = []
    if i < n and line[i] == "{":
        i += 1
        while True:
            while i < n and line[i] in " \t,":
                i += 1
            if i >= n:
                raise ValueError("unterminated label set")
            if line[i] == "}":
                i += 1
                break
            j = line.index("=", i)
            lname = line[i:j].strip()
            i = j + 1
            if line[i] != '"':
                raise ValueError("label value not quoted")
            i += 1
            val = []
            while line[i] != '"':
                if line[i] == "\\":
                    i += 1
                    val.append({"n": "\n", "\\": "\\", '"': '"'}.get(line[i], "\\" + line[i]))
                else:
                    val.append(line[i])
                i += 1
            i += 1
            labels.append((lname, "".join(val)))
    while i < n and line[i] in " \t":
        i += 1
    rest = line[i:].split()
    if not rest:
        raise ValueError("no value")
    return name, labels, i, rest[0]


def parse_text(text: str):
    """Parse a text exposition into (families in order, problems)."""
    fams, problems = [], []
    cur = None
    for ln, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                rest = parts[3] if len(parts) > 3 else ""
                if cur is None or cur.name != name:
                    cur = Family(name)
                    fams.append(cur)
                if parts[1] == "HELP":
                    if cur.help is not None:
                        problems.append(f"line {ln}: second HELP for {name}")
                    cur.help = rest
                else:
                    if cur.type is not None:
                        problems.append(f"line {ln}: second TYPE for {name}")
                    cur.type = rest
            continue
        try:
            mname, labels, vpos, vtok = parse_sample(line)
        except (ValueError, IndexError) as e:
            problems.append(f"line {ln}: unparsable sample {line!r}: {e}")
            continue
        if cur is None or not (mname == cur.name or (
                mname.startswith(cur.name) and mname[len(cur.name):] in SUFFIXES)):
            problems.append(f"line {ln}: sample {mname} outside a family header")
            cur = Family(mname)
            fams.append(cur)
        if is_own(cur.name) and not any(k == "job" for k, _ in labels):
            continue  # the gateway's own series (version/runtime dependent)
        if cur.name in TIME_FAMILIES:
            line = line[:vpos] + time_placeholder(vtok) + line[vpos + len(vtok):]
        cur.samples.append(line)
    return fams, problems


# ---------------------------------------------------------------- protobuf format

_MSG = {
    "MetricFamily": {1: ("name", "str"), 2: ("help", "str"), 3: ("type", "uint"),
                     4: ("metric", "Metric"), 5: ("unit", "str")},
    "Metric": {1: ("label", "LabelPair"), 2: ("gauge", "Value"), 3: ("counter", "Counter"),
               4: ("summary", "Summary"), 5: ("untyped", "Value"), 6: ("timestamp_ms", "int"),
               7: ("histogram", "Histogram")},
    "LabelPair": {1: ("name", "str"), 2: ("value", "str")},
    "Value": {1: ("value", "double")},
    "Counter": {1: ("value", "double"), 2: ("exemplar", "Exemplar"),
                3: ("created_timestamp", "Timestamp")},
    "Summary": {1: ("sample_count", "uint"), 2: ("sample_sum", "double"),
                3: ("quantile", "Quantile"), 4: ("created_timestamp", "Timestamp")},
    "Quantile": {1: ("quantile", "double"), 2: ("value", "double")},
    "Histogram": {1: ("sample_count", "uint"), 2: ("sample_sum", "double"), 3: ("bucket", "Bucket"),
                  4: ("sample_count_float", "double"), 5: ("schema", "sint"),
                  6: ("zero_threshold", "double"), 7: ("zero_count", "uint"),
                  8: ("zero_count_float", "double"), 9: ("negative_span", "BucketSpan"),
                  10: ("negative_delta", "sint"), 11: ("negative_count", "double"),
                  12: ("positive_span", "BucketSpan"), 13: ("positive_delta", "sint"),
                  14: ("positive_count", "double"), 15: ("created_timestamp", "Timestamp"),
                  16: ("exemplars", "Exemplar")},
    "Bucket": {1: ("cumulative_count", "uint"), 2: ("upper_bound", "double"),
               3: ("exemplar", "Exemplar"), 4: ("cumulative_count_float", "double")},
    "BucketSpan": {1: ("offset", "sint"), 2: ("length", "uint")},
    "Exemplar": {1: ("label", "LabelPair"), 2: ("value", "double"), 3: ("timestamp", "Timestamp")},
    "Timestamp": {1: ("seconds", "int"), 2: ("nanos", "int")},
}
_TYPES = ["counter", "gauge", "summary", "untyped", "histogram", "gaugehistogram"]


def _scalar(kind, wire, v):
    """Decode one scalar (possibly packed) into a list of rendered strings."""
    if wire == 2 and kind not in ("str",):  # packed repeated scalars
        out, pos = [], 0
        while pos < len(v):
            if kind == "double":
                out.append(_scalar(kind, 1, v[pos:pos + 8])[0])
                pos += 8
            else:
                n, pos = pb.read_varint(v, pos)
                out.append(_scalar(kind, 0, n)[0])
        return out
    if kind == "str":
        return [json.dumps(v.decode("utf-8", "replace"), ensure_ascii=False)]
    if kind == "double":
        return [go_float(struct.unpack("<d", v)[0])]
    if kind == "uint":
        return [str(v)]
    if kind == "int":
        return [str(v - (1 << 64) if v >= 1 << 63 else v)]
    if kind == "sint":
        return [str((v >> 1) ^ -(v & 1))]
    raise ValueError(kind)


def render_msg(buf: bytes, msg: str) -> str:
    schema = _MSG[msg]
    parts = []
    fields = pb.decode_fields(buf)
    fields.sort(key=lambda f: f[0])  # stable: canonical field order, repeated order kept
    for num, wire, v in fields:
        if num not in schema:
            parts.append(f"?{num}")
            continue
        fname, kind = schema[num]
        if kind in _MSG:
            parts.append(f"{fname}{{{render_msg(v, kind)}}}")
        else:
            for s in _scalar(kind, wire, v):
                parts.append(f"{fname}={s}")
    return " ".join(parts)


def parse_proto(buf: bytes):
    fams, problems = [], []
    try:
        msgs = pb.split_delimited(buf)
    except ValueError as e:
        return [], [f"undecodable protobuf: {e}"]
    for raw in msgs:
        fam = Family("")
        for num, wire, v in pb.decode_fields(raw):
            if num == 1:
                fam.name = v.decode("utf-8", "replace")
            elif num == 2:
                fam.help = v.decode("utf-8", "replace")
            elif num == 3:
                fam.type = _TYPES[v] if v < len(_TYPES) else str(v)
            elif num == 4:
                labels = [(render_msg(f[2], "LabelPair")) for f in pb.decode_fields(v) if f[0] == 1]
                if is_own(fam.name) and not any(l.startswith('name="job"') for l in labels):
                    continue
                text = render_msg(v, "Metric")
                if fam.name in TIME_FAMILIES:
                    text = re.sub(r"value=(\S+?)\}", lambda m: "value=" + time_placeholder(m.group(1)) + "}", text)
                fam.samples.append(text)
        if fam.type is None:
            fam.type = "counter"
        fams.append(fam)
    return fams, problems


# ---------------------------------------------------------------- comparison of two scrapes

def filtered(fams):
    return [f for f in fams if f.samples or not is_own(f.name)]


def compare_families(ours, ups, help_either=None, strict_order=False):
    """Return a list of difference strings (empty if equivalent)."""
    help_either = help_either or {}
    diffs = []
    ours, ups = filtered(ours), filtered(ups)
    for label, fams in (("ours", ours), ("upstream", ups)):
        names = [f.name for f in fams]
        if names != sorted(names):
            diffs.append(f"{label}: families not sorted by name: {names}")
        dup = [n for n, c in Counter(names).items() if c > 1]
        if dup:
            diffs.append(f"{label}: family names repeated: {dup}")
    om = {f.name: f for f in ours}
    um = {f.name: f for f in ups}
    for name in sorted(set(om) | set(um)):
        o, u = om.get(name), um.get(name)
        if o is None or u is None:
            present, f = ("upstream", u) if o is None else ("ours", o)
            diffs.append(f"family {name} only in {present}:")
            diffs.extend("    " + line for line in render_family(f))
            continue
        if o.type != u.type:
            diffs.append(f"family {name}: TYPE ours={o.type!r} upstream={u.type!r}")
        if o.help != u.help:
            ok = help_either.get(name)
            if not (ok is not None and o.help in ok and u.help in ok):
                diffs.append(f"family {name}: HELP ours={o.help!r} upstream={u.help!r}")
        co, cu = Counter(o.samples), Counter(u.samples)
        if co != cu:
            diffs.append(f"family {name}: samples differ:")
            for s in sorted((cu - co).elements()):
                diffs.append(f"    - upstream only: {s}")
            for s in sorted((co - cu).elements()):
                diffs.append(f"    + ours only:     {s}")
        elif strict_order and o.samples != u.samples:
            diffs.append(f"family {name}: sample order differs: ours={o.samples} upstream={u.samples}")
    return diffs


def render_family(f):
    out = []
    if f.help is not None:
        out.append(f"# HELP {f.name} {f.help}")
    if f.type is not None:
        out.append(f"# TYPE {f.name} {f.type}")
    out.extend(f.samples)
    return out


# ---------------------------------------------------------------- API JSON

_TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def select_json(canonical: str, paths):
    """The parts of a normalised document (``normalise_api``) that ``paths`` name, each a
    sequence of object keys; a missing part is shown as such."""
    try:
        doc = json.loads(canonical)
    except ValueError:
        return canonical
    picked = {}
    for path in paths:
        node = doc
        for key in path:
            node = node.get(key, "<missing>") if isinstance(node, dict) else "<missing>"
        picked["/".join(path)] = node
    return json.dumps(picked, indent=1, sort_keys=True)


def normalise_api(text: str, port=None):
    """Return (canonical JSON string, problems).

    Time stamps become <TS>, push times <TIME>, groups are sorted by their labels, and so are
    the metrics of each family (upstream lists them as pushed, ours as scraped: the
    docs/compatibility.md row 'Order of series within a family in /api/v1/metrics'); for
    /api/v1/status the start time and the listen address (a random port) are replaced."""
    problems = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        if keys != sorted(keys):
            problems.append(f"object keys not sorted: {keys}")
        return dict(pairs)

    try:
        doc = json.loads(text, object_pairs_hook=hook)
    except ValueError as e:
        return f"<invalid JSON: {e}> {text!r}", problems

    def walk(x, fam=None):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                if k in ("time_stamp", "start_time") and isinstance(v, str):
                    out[k] = "<TS>" if _TS_RE.match(v) else f"<BAD TS {v!r}>"
                elif k == "web.listen-address" and isinstance(v, str):
                    out[k] = v.replace(f":{port}", ":<PORT>")
                elif k == "value" and fam in TIME_FAMILIES and isinstance(v, str):
                    out[k] = time_placeholder(v)
                elif k == "metrics" and isinstance(v, list):
                    out[k] = sorted((walk(m, fam) for m in v),
                                    key=lambda m: json.dumps(m.get("labels") if isinstance(m, dict)
                                                             else m, sort_keys=True))
                else:
                    out[k] = walk(v, k if k in TIME_FAMILIES else fam)
            return out
        if isinstance(x, list):
            return [walk(v, fam) for v in x]
        return x

    doc = walk(doc)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc["data"].sort(key=lambda g: json.dumps(g.get("labels"), sort_keys=True)
                         if isinstance(g, dict) else "")
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False), problems


# ---------------------------------------------------------------- protobuf text formats

_TOK = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([{}<>:])|([^\s{}<>:"]+))')


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOK.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot tokenise at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        tok = m.group(1) or m.group(2) or m.group(3)
        if tok:
            out.append(tok)
    return out


def _parse_fields(toks, i, close):
    fields = []
    while i < len(toks) and toks[i] != close:
        name = toks[i]
        i += 1
        if i < len(toks) and toks[i] == ":":
            i += 1
        if toks[i] in "{<":
            sub, i = _parse_fields(toks, i + 1, "}" if toks[i] == "{" else ">")
            i += 1  # closing brace
            fields.append((name, sub))
        else:
            fields.append((name, toks[i]))
            i += 1
    return fields, i


def _render_fields(fields):
    out = []
    for name, v in fields:
        out.append(f"{name}{{{_render_fields(v)}}}" if isinstance(v, list) else f"{name}={v}")
    return " ".join(out)


def _unq(v):
    if isinstance(v, str) and v.startswith('"'):
        try:
            return json.loads(v)
        except ValueError:
            return v[1:-1]
    return v


def parse_prototext(text: str):
    """Parse the protobuf text / compact-text scrape formats (old `<>` or new `{}` syntax,
    any spacing) into families comparable with the other formats."""
    try:
        fields, _ = _parse_fields(_tokens(text), 0, None)
    except (ValueError, IndexError) as e:
        return [], [f"unparsable protobuf text: {e}"]
    fams = []
    for name, v in fields:
        if name == "name":
            fams.append(Family(_unq(v)))
            continue
        if not fams:
            return fams, ["protobuf text: field before the first name"]
        fam = fams[-1]
        if name == "help":
            fam.help = _unq(v)
        elif name == "type":
            fam.type = str(v).lower()
        elif name == "metric":
            labels = [_render_fields(f[1]) for f in v if f[0] == "label"]
            if is_own(fam.name) and not any(l.startswith('name="job"') for l in labels):
                continue
            text = _render_fields(v)
            if fam.name in TIME_FAMILIES:
                text = re.sub(r"value=([^\s}]+)", lambda m: "value=" + time_placeholder(m.group(1)), text)
            fam.samples.append(text)
    for f in fams:
        if f.type is None:
            f.type = "counter"
    return fams, []
