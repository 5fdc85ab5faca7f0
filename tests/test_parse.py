"""parse.timestamp's short way for RQ's canonical form agrees with the strptime formats it skips."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from rq_exporter_ng import parse


def _strptime(raw: bytes):
    value = raw.decode("utf-8", "backslashreplace").strip()
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return "ValueError"


def _ours(raw: bytes):
    try:
        return parse.timestamp(raw)
    except ValueError:
        return "ValueError"


two = st.integers(0, 99).map(lambda n: f"{n:02d}")
canonical_like = st.builds(
    lambda y, mo, d, h, mi, s, frac: f"{y:04d}-{mo}-{d}T{h}:{mi}:{s}{frac}Z".encode(),
    st.integers(0, 9999), two, two, two, two, two,
    st.sampled_from(["", ".5", ".000001", ".999999", ".1234567"]) | st.integers(0, 999999).map(lambda n: f".{n:06d}"),
)
noise = st.binary(max_size=30) | st.text(alphabet="0123456789-T:.Z +", max_size=30).map(str.encode)


@settings(max_examples=2000, deadline=None)
@given(canonical_like | noise)
def test_same_result_as_strptime(raw):
    assert _ours(raw) == _strptime(raw)


def test_rq_timestamps():
    assert parse.timestamp(b"2026-11-22T05:24:36.589790Z") == 1795325076.58979
    assert parse.timestamp(b"2026-11-22T05:24:36Z") == 1795325076.0
