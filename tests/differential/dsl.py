"""Building blocks of differential cases: cases, steps and body normalisers.

A case is a list of steps run against two freshly started gateways (ours and upstream) with the
same flags. Steps:

* ``Req``     one HTTP request; status, selected headers and the body are compared.
* ``Scrape``  ``GET /metrics`` (or another path); the exposition is parsed and compared per family.
* ``Api``     ``GET /api/v1/metrics``; the JSON is normalised (group order, time stamps) and compared.
* ``Sleep``   wait (e.g. to let an asynchronous DELETE be applied).
* ``ExpectExit``  wait for both processes to exit and compare exit codes (after /-/quit).

``Cli`` cases do not start servers; they run the binaries with arguments and compare the exit
status and the output streams.

By default every server case ends with an implicit ``Scrape()`` (``final_scrape=False`` turns it
off; ``final_scrape=Scrape(expected_difference=...)`` gives the final scrape its own marker).

Markers (on a case or on a single step; see the policy in cases.py):

* ``expected_difference="<reason>"``  ours may differ from 1.5.1 here; the reason must cite spec
  §9, a 1.5.1-vs-latest change verified in upstream's source, or a row of docs/compatibility.md.
  If the marked step (or, for a case-level marker, the whole case) shows *no* difference, that is
  reported as a difference: ours then answers like 1.5.1 where latest (or our documented
  deviation) answers otherwise.
* ``pending="<why>"``  the step/case exercises something our gateway does not implement yet;
  differences are reported as PENDING and do not fail the run (unless ``--pending-fails``).
* ``suspected="<text>"``  an explanation shown next to a difference that is none of the above
  (it still fails the run).
"""

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence


# ---------------------------------------------------------------- Go float formatting

def go_float(x: float) -> str:
    """Go's strconv.FormatFloat(x, 'g', -1, 64) (also fmt.Sprint of a float64).

    Shortest round-trip digits; exponent form iff the decimal exponent is < -4 or >= 6
    (``shortest`` forces eprec = 6 in strconv/ftoa.go); exponent with at least two digits.
    """
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    r = repr(x)  # shortest round-trip
    sign = ""
    if r.startswith("-"):
        sign, r = "-", r[1:]
    # get digits and exponent
    if "e" in r:
        mant, exp = r.split("e")
        exp = int(exp)
    else:
        mant, exp = r, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    # decimal point position relative to digits
    if ip.strip("0") == "":
        lead = len(fp) - len(fp.lstrip("0"))
        dp = -lead + exp
    else:
        dp = len(ip.lstrip("0")) + exp
    digits = digits.rstrip("0") or "0"
    nd = len(digits)
    e = dp - 1
    if e < -4 or e >= 6:
        m = digits[0] + ("." + digits[1:] if nd > 1 else "")
        return f"{sign}{m}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= nd:
        return f"{sign}{digits}{'0' * (dp - nd)}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


# ---------------------------------------------------------------- normalisers
# A normaliser maps a response body (str) to a canonical form; it is applied to both sides.

class Norm:
    def __init__(self, name: str, fn: Callable[[str], str]):
        self.name, self.fn = name, fn

    def __call__(self, s: str) -> str:
        return self.fn(s)

    def __repr__(self):
        return self.name


# Go prints the offending metric as protobuf text inside "{ ... }"; the spacing of Go's
# prototext output is deliberately randomised (and 1.5.1 used the older `label:<...>` syntax),
# so only the text around it is compared.
PROTO_TEXT = Norm("proto_text", lambda s: re.sub(r"\{.*\}", "{…}", s))

# Which of two conflicting families is merged first depends on Go map iteration order, so a
# type-conflict message may name either type.
ANY_TYPE = Norm("any_type", lambda s: re.sub(
    r"is not a (COUNTER|GAUGE|SUMMARY|UNTYPED|HISTOGRAM|GAUGE_HISTOGRAM)", "is not a <TYPE>", s))

_COLL1 = re.compile(r'collected metric named "([^"]*)" collides with previously collected '
                    r'(histogram or summary|histogram|summary) named "([^"]*)"')
_COLL2 = re.compile(r'collected (histogram or summary|histogram|summary) named "([^"]*)" collides '
                    r'with previously collected metric named "([^"]*)"')


def _suffix(s: str) -> str:
    s = _COLL1.sub(lambda m: f"<suffix collision {m.group(1)} vs {m.group(3)}>", s)
    s = _COLL2.sub(lambda m: f"<suffix collision {m.group(3)} vs {m.group(2)}>", s)
    return s


# Suffix collisions are reported from the point of view of whichever family is gathered
# second (map order), in two different wordings.
SUFFIX = Norm("suffix_collision", _suffix)



def _multi(s: str) -> str:
    # client_golang's MultiError: "N error(s) occurred:\n* e1\n* e2"; the order of the errors
    # follows Go map iteration, so the bullet lines are sorted.
    lines = s.split("\n")
    idx = [i for i, l in enumerate(lines) if l.startswith("* ")]
    if not idx:
        return s
    bullets = sorted(lines[i] for i in idx)
    for i, b in zip(idx, bullets):
        lines[i] = b
    return "\n".join(lines)


MULTI_ERRORS = Norm("multi_errors_sorted", _multi)

# Consistency errors name one of the clashing metrics, whichever Go's map iteration reaches
# first (e.g. duplicate series across groups, type conflicts), print it as protobuf text, and
# may list several errors in map order: normalise all of that.
CONSISTENCY = [PROTO_TEXT, ANY_TYPE, SUFFIX, MULTI_ERRORS]


_PREFIXES = ("pushed metrics are invalid or inconsistent with existing metrics: ",
             "An error has occurred while serving metrics:\n\n")


def _names_only(s: str) -> str:
    s = PROTO_TEXT(s)
    for p in _PREFIXES:
        if s.startswith(p):
            names = sorted(set(re.findall(r'"([^"]*)"', s[len(p):])))
            return p + "<errors naming " + ", ".join(names) + ">"
    return s


# For pushes whose error *set* depends on Go map order (e.g. a suffix collision inside one push
# may or may not also produce a duplicate-series error): keep only the metric names mentioned.
NAMES_ONLY = Norm("names_only", _names_only)


def sub(pattern: str, repl: str, name: Optional[str] = None) -> Norm:
    return Norm(name or f"sub({pattern!r}->{repl!r})", lambda s: re.sub(pattern, repl, s))


# ---------------------------------------------------------------- steps

@dataclass
class Req:
    method: str
    path: str
    body: bytes = b""
    headers: Sequence = ()           # list of (name, value); sent verbatim
    content_length: Optional[bool] = None  # None: send for PUT/POST/PATCH or non-empty bodies
    norm: Sequence[Norm] = ()        # body normalisers
    compare_body: bool = True
    compare_headers: Sequence[str] = ()  # extra headers to compare (besides the default set)
    timeout: float = 10.0            # seconds; a timeout is recorded as status "<TimeoutError>"
    racy_disconnect: bool = False    # accept a closed connection without answer on either side
    expected_difference: Optional[str] = None
    pending: Optional[str] = None    # not implemented yet in ours: differences do not fail the run
    suspected: Optional[str] = None  # shown with a DIFFER (does not change the verdict)
    note: str = ""

    def describe(self):
        extra = ""
        if self.body:
            b = self.body if len(self.body) <= 60 else self.body[:57] + b"..."
            extra = f" body={b!r}"
        return f"{self.method} {self.path}{extra}"


@dataclass
class Scrape:
    path: str = "/metrics"
    headers: Sequence = ()
    norm: Sequence[Norm] = ()        # normalisers for an error (500) body
    help_either: dict = field(default_factory=dict)  # family -> set of acceptable HELP (None = none)
    expected_difference: Optional[str] = None
    pending: Optional[str] = None
    suspected: Optional[str] = None
    note: str = ""

    def describe(self):
        h = "".join(f" [{k}: {v}]" for k, v in self.headers)
        return f"SCRAPE {self.path}{h}"


@dataclass
class Api:
    path: str = "/api/v1/metrics"
    # Compare only these parts of the (normalised) document, each a path of object keys, e.g.
    # ("data", "flags", "web.systemd-socket"); empty: the whole document.
    select: Sequence[Sequence[str]] = ()
    expected_difference: Optional[str] = None
    pending: Optional[str] = None
    suspected: Optional[str] = None
    note: str = ""

    def describe(self):
        return f"API {self.path}"


@dataclass
class Sleep:
    seconds: float

    def describe(self):
        return f"SLEEP {self.seconds}"


@dataclass
class ExpectExit:
    timeout: float = 5.0
    expected_difference: Optional[str] = None
    pending: Optional[str] = None

    def describe(self):
        return "EXPECT-EXIT"


@dataclass
class Case:
    name: str
    steps: list
    flags: Sequence[str] = ()
    final_scrape: object = True   # True, False, or a Scrape(...) to use as the final scrape
    ready_path: str = "/-/ready"                      # readiness probe (moves with a route prefix)
    ready_any_status: bool = False                    # any HTTP answer on ready_path means "up"
    # Pass both gateways a listening socket the way systemd does (descriptor 3, LISTEN_FDS=1,
    # LISTEN_PID = the gateway's pid) on the port --web.listen-address names, which is therefore
    # taken: only a gateway that serves the passed socket (--web.systemd-socket) comes up.
    systemd_socket: bool = False
    help_either: dict = field(default_factory=dict)  # applies to every scrape of the case
    scrape_norm: Sequence[Norm] = ()                  # applies to every scrape of the case
    # A reason the two gateways may legitimately differ (spec §9, a verified 1.5.1-vs-latest change
    # or a docs/compatibility.md row, see cases.py): differences are reported as EXPECTED-DIFF
    # and do not fail the run; a case so marked that shows no difference at all fails.
    expected_difference: Optional[str] = None
    # Not implemented yet in ours: differences are reported as PENDING (do not fail the run
    # unless --pending-fails).
    pending: Optional[str] = None
    # A suspected explanation for a difference that is none of the above: printed next to the
    # DIFFER, which still fails the run.
    suspected: Optional[str] = None
    note: str = ""


@dataclass
class Cli:
    """Run both binaries with ``args`` (the safe listen/persistence flags are always added
    first) and compare exit status, stdout and stderr (the program name is normalised).

    ``compare`` may also name properties derived from the output, for outputs that differ by
    design but must be of the same kind: ``streams`` (which of stdout/stderr are non-empty) and
    ``kind`` (``version``, ``help``, ``man page``, ``error`` or ``other``, from the output)."""
    name: str
    args: Sequence[str]
    compare: Sequence[str] = ("status", "stdout", "stderr")
    first_line_only: bool = False
    expected_difference: Optional[str] = None
    pending: Optional[str] = None
    suspected: Optional[str] = None
    note: str = ""
