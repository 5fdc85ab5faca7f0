"""rq_exporter_ng.jobfunc: a job's function name read from its stored data, without unpickling it."""

from __future__ import annotations

import json
import os
import pickle
import zlib

import pytest

from rq_exporter_ng import jobfunc


class _Explodes:
    def __reduce__(self):
        return (open, ("/tmp/rq-exporter-must-not-exist", "w"))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (zlib.compress(pickle.dumps(("tests.jobs.sleep_for", None, (0.5,), {}), protocol=4)), "tests.jobs.sleep_for"),
        (zlib.compress(pickle.dumps(("m.f", None, (), {}), protocol=0)), "m.f"),
        (zlib.compress(json.dumps(["app.jobs.send", None, [1], {}]).encode()), "app.jobs.send"),
        (zlib.compress(pickle.dumps(("x.y", None, ("z" * 100_000,), {}))), "x.y"),  # only the head is inflated
        (zlib.compress(b"\x80\x05garbage"), None),
        (b"not compressed", None),
        (b"", None),
        (None, None),
    ],
)
def test_function_name_is_read_without_unpickling(payload, expected):
    assert jobfunc.function_name(payload) == expected


def test_a_hostile_pickle_is_not_executed(tmp_path):
    target = "/tmp/rq-exporter-must-not-exist"
    payload = zlib.compress(pickle.dumps((_Explodes(), None, (), {})))
    # The first string the pickle pushes: the module of io.open, which Python 3.13 pickles as _io.
    assert jobfunc.function_name(payload) in (None, "/tmp/rq-exporter-must-not-exist", "io", "_io", "builtins", "open")
    assert not os.path.exists(target)
