"""Drives Python's prometheus_client (from PyPI, unmodified) against a Pushgateway.

One step per invocation, so that the driver can check the gateway between steps. Each request the
library hands to its handler is printed to stdout as one JSON object: the handler interface is the
library's documented extension point, so this observes what it sends without changing it. Exit
status 1 (with the library's exception on stderr) when the library reports an error.
"""

import argparse
import base64
import gzip
import json
import sys

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)
from prometheus_client.exposition import basic_auth_handler, default_handler, tls_auth_handler


# Label values that exercise the client's path encodings: '/' and ' ' go to padded base64, the
# empty value to "@base64/=", UTF-8 through quote_plus.
def main_grouping(transport):
    return {"instance": "py host/1", "path": "", "team": "a b", "locale": "Πρόβα", "transport": transport}


def every_type():
    registry = CollectorRegistry()
    jobs = Counter("py_interop_jobs", "Jobs by result.", ["result"], registry=registry)
    jobs.labels("ok").inc(3)
    jobs.labels("failed").inc()
    Gauge("py_interop_queue_depth", "A gauge replaced by pushadd.", registry=registry).set(12)
    batch = Histogram("py_interop_batch_seconds", "A histogram.", buckets=[0.5, 1, 5], registry=registry)
    for value in (0.2, 0.7, 3, 9):
        batch.observe(value)
    rows = Summary("py_interop_rows", "A summary.", registry=registry)
    rows.observe(10)
    rows.observe(20)
    Info("py_interop_build", "Build facts.", registry=registry).info({"version": "1.2.3"})
    Enum("py_interop_phase", "A state set.", states=["starting", "running", "done"], registry=registry).state("done")
    escapes = Gauge(
        "py_interop_escapes",
        "Backslash \\ and newline\nin help; UTF-8: Grüße ✓",
        ["text"],
        registry=registry,
    )
    escapes.labels('quote " backslash \\ newline \n UTF-8 Πρόβα ✓').set(1)
    return registry


def single(kind, name, help_text, value):
    registry = CollectorRegistry()
    metric = kind(name, help_text, registry=registry)
    if kind is Counter:
        metric.inc(value)
    else:
        metric.set(value)
    return registry


def expire_after(duration, inner):
    """Sets the group's expiry (the gateway's Pushgateway-Expire-After header), as
    docs/expiry-and-limits.md shows: a handler that adds the header and hands over."""

    def handler(url, method, timeout, headers, data):
        headers.append(("Pushgateway-Expire-After", duration))
        return inner(url, method, timeout, headers, data)

    return handler


def make_handler(args, record):
    if args.cert:

        def inner(url, method, timeout, headers, data):
            if args.user:
                # tls_auth_handler has no credentials of its own; a custom handler adds them, as
                # the client's documentation shows for combining handlers.
                token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
                headers.append(("Authorization", "Basic " + token))
            return tls_auth_handler(
                url, method, timeout, headers, data, certfile=args.cert, keyfile=args.key, cafile=args.ca
            )
    elif args.user:

        def inner(url, method, timeout, headers, data):
            return basic_auth_handler(url, method, timeout, headers, data, args.user, args.password)
    else:
        inner = default_handler

    def handler(url, method, timeout, headers, data):
        call = inner(url, method, timeout, headers, data)

        def run():
            entry = {"method": method, "url": url, "body_length": len(data)}
            try:
                call()
                entry["ok"] = True
            except Exception as error:  # recorded, then re-raised for the library's caller
                entry["error"] = f"{type(error).__name__}: {error}"
                raise
            finally:
                # Read after the call: basic_auth_handler adds its header while running.
                names = {name.lower(): value for name, value in headers}
                entry["content_type"] = names.get("content-type", "")
                entry["content_encoding"] = names.get("content-encoding", "")
                entry["basic_auth"] = "authorization" in names
                entry["expire_after"] = names.get("pushgateway-expire-after", "")
                if entry["content_encoding"] == "gzip":
                    entry["decompressed_length"] = len(gzip.decompress(data))
                record.append(entry)

        return run

    return handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--step", required=True)
    parser.add_argument("--transport", default="plain")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    record = []
    handler = make_handler(args, record)
    gateway = args.gateway
    grouping = main_grouping(args.transport)
    doomed = {"instance": "doomed", "transport": args.transport}
    try:
        if args.step == "push":
            push_to_gateway(gateway, "py-interop", every_type(), grouping_key=grouping, handler=handler)
        elif args.step == "pushadd-gzip":
            registry = single(Gauge, "py_interop_queue_depth", "A gauge replaced by pushadd.", 0)
            Counter("py_interop_added", "Pushed by pushadd only.", registry=registry).inc()
            pushadd_to_gateway(
                gateway,
                "py-interop",
                registry,
                grouping_key=grouping,
                handler=expire_after("1h", handler),
                compression="gzip",
            )
        elif args.step == "pushadd-snappy":
            registry = single(Gauge, "py_interop_snappy", "Pushed with snappy compression.", 1)
            pushadd_to_gateway(
                gateway, "py-interop", registry, grouping_key=grouping, handler=handler, compression="snappy"
            )
        elif args.step == "push-doomed":
            # A job with '/' goes to job@base64, with padding.
            registry = single(Gauge, "py_interop_doomed", "Deleted again.", 1)
            push_to_gateway(gateway, "py/interop", registry, grouping_key=doomed, handler=handler)
        elif args.step == "delete-doomed":
            delete_from_gateway(gateway, "py/interop", grouping_key=doomed, handler=handler)
        else:
            parser.error(f"unknown step {args.step}")
    except Exception as error:
        print(f"pyclient: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        for entry in record:
            print(json.dumps(entry, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
