"""Pure helpers turning Redis replies (bytes) into values; each failure is a ValueError."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")
_CANONICAL = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z", re.ASCII)
_SECONDS = re.compile(rb":[0-5]\d\.\d{6}Z", re.ASCII)  # the rest of RQ's form, after a known minute


def text(raw: bytes | str) -> str:
    """Names as label values: never fails; bytes that are not UTF-8 are kept as escapes."""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "backslashreplace")


def timestamp(raw: bytes | str | None) -> float | None:
    """RQ's UTC timestamp string -> epoch seconds; None when unset ('' or missing)."""
    if raw is None:
        return None
    # A scrape parses tens of thousands of these (three per timed job). RQ writes one exact form,
    # "YYYY-MM-DDTHH:MM:SS.ffffffZ", and jobs ending close together share their minute: its epoch
    # is looked up, and the seconds added in whole microseconds as datetime.timestamp() does
    # (tests/test_parse.py checks they agree). Anything else takes the strict way below.
    if type(raw) is bytes and len(raw) == 27:
        minute = _MINUTES.get(raw[:16])
        if minute is not None and _SECONDS.fullmatch(raw, 16) is not None:
            return (minute + int(raw[17:19] + raw[20:26])) / 1_000_000
        if minute is None and _CANONICAL.fullmatch(raw) is not None:
            _learn_minute(raw[:16])
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


_MINUTES: dict[bytes, int] = {}  # "YYYY-MM-DDTHH:MM" -> that minute's epoch in microseconds
_MAX_MINUTES = 10_000


def _learn_minute(prefix: bytes) -> None:
    try:
        moment = datetime.fromisoformat(prefix.decode("ascii") + ":00+00:00")
    except ValueError:
        return  # not a real minute (month 13, say): the strict way says so
    if len(_MINUTES) >= _MAX_MINUTES:
        _MINUTES.clear()
    _MINUTES[prefix] = int(moment.timestamp()) * 1_000_000


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


def zset_pairs(reply: object) -> list[tuple[bytes, bytes | float]]:
    """A ZRANGE ... WITHSCORES reply as (member, score) pairs: flat in RESP2 (member, score, ...),
    nested pairs in RESP3 (fakeredis); [] for an error reply."""
    if not isinstance(reply, list):
        return []
    if reply and isinstance(reply[0], (list, tuple)):
        return [(pair[0], pair[1]) for pair in reply if len(pair) == 2]
    return list(zip(reply[::2], reply[1::2]))
