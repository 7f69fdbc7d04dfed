"""A tiny hand-written protobuf encoder for the io.prometheus.client messages.

Only what the differential cases need: MetricFamily / Metric / LabelPair / Gauge / Counter /
Untyped / Summary / Quantile / Histogram / Bucket / BucketSpan, encoded as proto2 (repeated
scalars unpacked unless asked otherwise), plus the varint-length-delimited framing the
Pushgateway expects, a snappy *framed* encoder (uncompressed chunks) and a small generic
decoder used to read protobuf scrapes.

Field numbers follow client_model's metrics.proto (see src/model/proto.rs).
"""

import struct

COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM, GAUGE_HISTOGRAM = range(6)

PROTO_CT = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
            "encoding=delimited")


# ---------------------------------------------------------------- wire primitives

def varint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1  # two's complement, as int64/int32 fields are encoded
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63) if n < 0 else n << 1


def key(field: int, wire: int) -> bytes:
    return varint((field << 3) | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_sint(field, n):
    return key(field, 0) + varint(zigzag(n))


def f_double(field, x):
    return key(field, 1) + struct.pack("<d", x)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return key(field, 2) + varint(len(b)) + b


# ---------------------------------------------------------------- messages

def label(name, value):
    return (b"" if name is None else f_bytes(1, name)) + (b"" if value is None else f_bytes(2, value))


def _labels(labels):
    if isinstance(labels, dict):
        labels = list(labels.items())
    return b"".join(f_bytes(1, label(n, v)) for n, v in labels)


def quantile(q, v):
    return f_double(1, q) + f_double(2, v)


def summary(count=None, sum=None, quantiles=()):
    out = b""
    if count is not None:
        out += f_varint(1, count)
    if sum is not None:
        out += f_double(2, sum)
    for q, v in quantiles:
        out += f_bytes(3, quantile(q, v))
    return out


def bucket(upper, count=None, count_float=None):
    out = b""
    if count is not None:
        out += f_varint(1, count)
    out += f_double(2, upper)
    if count_float is not None:
        out += f_double(4, count_float)
    return out


def span(offset, length):
    return f_sint(1, offset) + f_varint(2, length)


def histogram(count=None, sum=None, buckets=(), count_float=None, schema=None,
              zero_threshold=None, zero_count=None, zero_count_float=None,
              neg_spans=(), neg_deltas=(), neg_counts=(),
              pos_spans=(), pos_deltas=(), pos_counts=()):
    """buckets: iterable of (upper_bound, cumulative_count) or (upper, None, float_count)."""
    out = b""
    if count is not None:
        out += f_varint(1, count)
    if sum is not None:
        out += f_double(2, sum)
    for b in buckets:
        out += f_bytes(3, bucket(*b))
    if count_float is not None:
        out += f_double(4, count_float)
    if schema is not None:
        out += f_sint(5, schema)
    if zero_threshold is not None:
        out += f_double(6, zero_threshold)
    if zero_count is not None:
        out += f_varint(7, zero_count)
    if zero_count_float is not None:
        out += f_double(8, zero_count_float)
    for s in neg_spans:
        out += f_bytes(9, span(*s))
    for d in neg_deltas:
        out += f_sint(10, d)
    for c in neg_counts:
        out += f_double(11, c)
    for s in pos_spans:
        out += f_bytes(12, span(*s))
    for d in pos_deltas:
        out += f_sint(13, d)
    for c in pos_counts:
        out += f_double(14, c)
    return out


def metric(labels=(), gauge=None, counter=None, untyped=None, summary=None, histogram=None,
           timestamp_ms=None):
    """gauge/counter/untyped: a float value; summary/histogram: pre-encoded message bytes."""
    out = _labels(labels)
    if gauge is not None:
        out += f_bytes(2, f_double(1, gauge))
    if counter is not None:
        out += f_bytes(3, f_double(1, counter))
    if summary is not None:
        out += f_bytes(4, summary)
    if untyped is not None:
        out += f_bytes(5, f_double(1, untyped))
    if timestamp_ms is not None:
        out += f_varint(6, timestamp_ms)
    if histogram is not None:
        out += f_bytes(7, histogram)
    return out


def family(name=None, help=None, type=None, metrics=(), unit=None):
    out = b""
    if name is not None:
        out += f_bytes(1, name)
    if help is not None:
        out += f_bytes(2, help)
    if type is not None:
        out += f_varint(3, type)
    for m in metrics:
        out += f_bytes(4, m)
    if unit is not None:
        out += f_bytes(5, unit)
    return out


def delimited(*families: bytes) -> bytes:
    return b"".join(varint(len(f)) + f for f in families)


# ---------------------------------------------------------------- snappy framing format

def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def snappy_framed(data: bytes) -> bytes:
    """Snappy framing format using only 'uncompressed data' chunks (valid for every reader)."""
    out = bytearray(b"\xff\x06\x00\x00sNaPpY")
    for i in range(0, max(len(data), 1), 65536):
        chunk = data[i:i + 65536]
        crc = crc32c(chunk)
        masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
        body = struct.pack("<I", masked) + chunk
        out += b"\x01" + struct.pack("<I", len(body))[:3] + body
    return bytes(out)


# ---------------------------------------------------------------- decoding (for protobuf scrapes)

def read_varint(buf, pos):
    n = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def decode_fields(buf):
    """Generic decode: list of (field, wiretype, value) with value int / bytes."""
    pos, out = 0, []
    while pos < len(buf):
        k, pos = read_varint(buf, pos)
        field, wire = k >> 3, k & 7
        if wire == 0:
            v, pos = read_varint(buf, pos)
        elif wire == 1:
            v = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            ln, pos = read_varint(buf, pos)
            v = buf[pos:pos + ln]
            pos += ln
        elif wire == 5:
            v = buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((field, wire, v))
    return out


def split_delimited(buf):
    pos, out = 0, []
    while pos < len(buf):
        ln, pos = read_varint(buf, pos)
        out.append(buf[pos:pos + ln])
        pos += ln
    return out
