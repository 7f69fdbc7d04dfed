#!/bin/sh
# Regenerates the fixtures in this directory with the real upstream Pushgateway
# (Debian's prometheus-pushgateway). Run from this directory: ./generate.sh
set -eu

PGW=${PGW:-/usr/bin/prometheus-pushgateway}
PORT=${PORT:-19391}
BASE=http://127.0.0.1:$PORT
TMP=$(mktemp -d)
PID=

stop() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID"
        wait "$PID" || true
        PID=
    fi
}
trap 'stop; rm -rf "$TMP"' EXIT

start() {
    "$PGW" --web.listen-address=127.0.0.1:$PORT --persistence.file="$1" 2>>"$TMP/log" &
    PID=$!
    for _ in $(seq 50); do
        curl -sf "$BASE/-/ready" >/dev/null && return
        sleep 0.1
    done
    echo "upstream did not start" >&2
    exit 1
}

# three-groups.gob: despite the name, three groups (text pushes to two, a protobuf push to a third),
# and a rejected push that gives the second group a push_failure_time_seconds.
start "$TMP/three-groups.gob"
curl -sf -X PUT --data-binary @- "$BASE/metrics/job/batch/instance/host1" <<'TEXT'
# HELP batch_last_success_seconds Last time the batch job succeeded.
# TYPE batch_last_success_seconds gauge
batch_last_success_seconds 1.7e+09
# HELP batch_duration_seconds How long the batch job ran.
# TYPE batch_duration_seconds histogram
batch_duration_seconds_bucket{le="0.5"} 3
batch_duration_seconds_bucket{le="1"} 5
batch_duration_seconds_bucket{le="+Inf"} 6
batch_duration_seconds_sum 4.25
batch_duration_seconds_count 6
# TYPE batch_latency_seconds summary
batch_latency_seconds{quantile="0.5"} 0.2
batch_latency_seconds{quantile="0.99"} 0.9
batch_latency_seconds_sum 12.5
batch_latency_seconds_count 40
# TYPE batch_records_total counter
batch_records_total{kind="ok"} 1234
batch_records_total{kind="err"} 7
batch_untyped 3.5
TEXT
curl -sf -X PUT --data-binary @- "$BASE/metrics/job@base64/L3Zhci90bXA/a@base64/=" <<'TEXT'
# TYPE tmp_files gauge
tmp_files 12
TEXT
# Rejected (the type clashes with the counter of the first group): only the failure time is kept.
if curl -sf -X POST --data-binary @- "$BASE/metrics/job@base64/L3Zhci90bXA/a@base64/=" <<'TEXT'
# TYPE batch_records_total gauge
batch_records_total 5
TEXT
then
    echo "the clashing push was accepted" >&2
    exit 1
fi
python3 -c '
import struct, sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload
label = field(1, 2, b"code") + field(2, 2, b"200")
counter = field(1, 1, struct.pack("<d", 42.5))
metric = field(1, 2, label) + field(3, 2, counter)
family = (field(1, 2, b"proto_requests_total") + field(2, 2, b"Pushed as protobuf.")
          + field(3, 0, varint(0)) + field(4, 2, metric))
sys.stdout.buffer.write(varint(len(family)) + family)
' | curl -sf -X POST --data-binary @- \
    -H 'Content-Type: application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited' \
    "$BASE/metrics/job/proto"
stop
cp "$TMP/three-groups.gob" three-groups.gob

# empty-store.gob: a group pushed and deleted again, so that a file with no groups is written.
start "$TMP/empty-store.gob"
printf 'gone 1\n' | curl -sf -X PUT --data-binary @- "$BASE/metrics/job/gone"
curl -sf -X DELETE "$BASE/metrics/job/gone"
stop
cp "$TMP/empty-store.gob" empty-store.gob
