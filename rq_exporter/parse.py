"""Pure helpers turning Redis replies (bytes) into values; each failure is a ValueError."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")
_CANONICAL = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z", re.ASCII)


def text(raw: bytes | str) -> str:
    """Names as label values: never fails; bytes that are not UTF-8 are kept as escapes."""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "backslashreplace")


def timestamp(raw: bytes | str | None) -> float | None:
    """RQ's UTC timestamp string -> epoch seconds; None when unset ('' or missing)."""
    if raw is None:
        return None
    # strptime costs ~8 us; a scrape parses thousands of these (head jobs, timed jobs).
    # The exact form RQ writes takes the short way (fromisoformat, in C, once the pattern has
    # checked it is that form); anything else the strict one below.
    if isinstance(raw, bytes) and _CANONICAL.fullmatch(raw) is not None:
        try:
            return datetime.fromisoformat(raw[:-1].decode("ascii") + "+00:00").timestamp()
        except ValueError:
            pass
    value = text(raw).strip()
    if not value:
        return None
    for fmt in _FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=timezone.utc).timestamp()
    raise ValueError(f"not an RQ timestamp: {value[:64]!r}")


def count(raw: bytes | str | None) -> int:
    """A lazily created RQ counter: missing means 0."""
    if raw is None or raw == b"" or raw == "":
        return 0
    value = int(text(raw))
    if value < 0:
        raise ValueError(f"negative counter: {value}")
    return value


def seconds(raw: bytes | str | None) -> float:
    """A duration in seconds (RQ writes floats); missing means 0."""
    if raw is None or raw == b"" or raw == "":
        return 0.0
    value = float(text(raw))
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a duration: {value}")
    return value
