"""GoneQueues (rq_exporter_ng/gone.py): which kept queues have had no key in Redis for long enough."""

from __future__ import annotations

from rq_exporter_ng.gone import GoneQueues


def test_a_queue_goes_once_absent_for_the_time_and_comes_back_fresh():
    gone = GoneQueues(60)
    assert gone.expired({"a", "b"}, {"a", "b"}, 1000) == []
    assert gone.expired({"a"}, {"a", "b"}, 1030) == []  # b absent for 30 s
    assert gone.expired({"a"}, {"a", "b"}, 1059.9) == []
    assert gone.expired({"a"}, {"a", "b"}, 1060) == ["b"]  # last seen at 1000
    assert "b" not in gone.last_seen
    assert gone.expired({"a", "b"}, {"a", "b"}, 1100) == []  # back: its clock restarts
    assert gone.expired({"a"}, {"a", "b"}, 1159) == []
    assert gone.expired({"a"}, {"a", "b"}, 1160) == ["b"]


def test_a_queue_never_seen_counts_from_when_it_is_first_met_and_a_present_one_never_goes():
    gone = GoneQueues(10)
    assert gone.expired(set(), {"x"}, 0) == []  # counted (failed queue jobs of an unlisted origin)
    assert gone.expired({"y"}, {"x", "y"}, 9) == []
    assert gone.expired({"y"}, {"x", "y"}, 10) == ["x"]
    assert gone.expired({"y"}, {"y"}, 10_000) == []


def test_0_keeps_every_queue_for_ever():
    gone = GoneQueues(0)
    assert gone.expired(set(), {"a"}, 0) == []
    assert gone.expired(set(), {"a"}, 10**9) == []
    assert gone.last_seen == {}


def test_nothing_is_remembered_of_a_queue_gone_with_nothing_kept():
    gone = GoneQueues(5)
    gone.expired({"a"}, set(), 0)
    assert gone.expired(set(), set(), 5) == []
    assert gone.last_seen == {}
