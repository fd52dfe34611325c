# -*- test-case-name: dockerpy.test.test_timeutil -*-
"""Timestamps as Docker writes and reads them (RFC 3339 with nanoseconds,
Go's zero time, ``since``/``until`` arguments)."""

from __future__ import annotations

import datetime
import re

ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$")


def rfc3339(ts: float) -> str:
    """Unix time -> ``2006-01-02T15:04:05.123456789Z`` (Docker's RFC3339Nano, UTC)."""
    secs = int(ts)
    nanos = int(round((ts - secs) * 1e9))
    if nanos >= 1_000_000_000:
        secs, nanos = secs + 1, nanos - 1_000_000_000
    base = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S")
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_rfc3339(text: str) -> float:
    """RFC 3339 (any precision, any offset) -> unix time; the zero time -> 0."""
    if text == ZERO_TIME or not text:
        return 0.0
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                           tzinfo=datetime.timezone.utc)
    ts = dt.timestamp() + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ts -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return ts


def parse_timestamp_arg(value: str, now: float) -> float:
    """A ``since``/``until`` query value: unix seconds (``1700000000.5``),
    RFC 3339, or a Go duration relative to now (``10m``, ``1h30m``)."""
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", value)
    if m:
        total = 0.0
        units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value):
            total += float(num) * units[unit]
        return now - total
    return parse_rfc3339(value)
