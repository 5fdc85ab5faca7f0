"""A busy registry's window read by counts (rq_exporter_ng/concerns/timing/ranked.py): the same entries
as the one WITHSCORES read, from a real Redis; a registry whose counts do not add up is read a scrape
later, each job counted once; a whole exporter reading by counts says what one reading scores says."""

from __future__ import annotations

import pickle
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.timing import Scraper, VirtualClock, counted
from devkit import rq_time
from rq_exporter_ng import reader
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concerns.timing import ranked
from rq_exporter_ng.concerns.timing.records import Probe, RegistryPlan, Seen, Window
from rq_exporter_ng.concerns.timing.registry_reads import _entries
from rq_exporter_ng.concerns.timing.windows import WINDOW_TOP, window_read

KEY = b"rq:finished:q"
LOW, HIGH = 1_800_000_480, 1_800_000_530  # a window of 51 seconds


def plan(count_to: int | None, probe: Probe = Probe.IN_WINDOW_WITH_FOREVER) -> RegistryPlan:
    return RegistryPlan("q", b"q", "finished", (Window(500, LOW, HIGH),), probe, HIGH, None, count_to)


def test_counts_are_read_where_they_pay_and_nowhere_else():
    now, ttl = 1_800_000_000, 500  # the window's entries end at now + ttl, some as it is read
    seconds = now + ttl - ranked.FRESH - LOW + 1
    assert ranked.count_to(LOW, HIGH, now, ttl, ranked.MIN_PER_SECOND * seconds) == now + ttl - ranked.FRESH
    assert ranked.count_to(LOW, HIGH, now, ttl, ranked.MIN_PER_SECOND * seconds - 1) is None  # too few a second
    assert ranked.count_to(LOW, now + ttl - 5, now, ttl, 10**6) == now + ttl - 5  # never past the window
    assert ranked.count_to(float(LOW), HIGH, now, ttl, 10**6) is None  # type: ignore[arg-type]  # not whole seconds
    assert ranked.count_to(LOW, HIGH, LOW - ttl - 5, ttl, 10**6) is None  # nothing to count
    assert ranked.count_to(now + ttl - ranked.MAX_SECONDS - 5, HIGH, now, ttl, 10**9) is None  # too long a window


def _both(client, rp: RegistryPlan) -> tuple[list, object]:
    """The one WITHSCORES read's entries and what the read by counts makes of its replies, through the
    exporter's batch (hiredis, as a scrape reads), in one round trip."""
    out: dict[str, list] = {}
    batch = Batch(on_error=lambda command, error: None)
    batch.add_group(lambda replies: out.__setitem__("one", replies), [window_read(rp, KEY)], quiet=True)
    batch.add_group(lambda replies: out.__setitem__("counts", replies),
                    ranked.commands(rp, KEY, WINDOW_TOP[rp.probe]), quiet=True)
    batch.run(client)
    counted_ = ranked.read(rp, out["counts"])
    if isinstance(counted_, list):
        counted_ = counted_ + _entries(out["counts"][-1])
    return _entries(out["one"][0]), counted_


scores = st.one_of(st.integers(LOW - 5, HIGH + 20).map(float), st.just(float("inf")), st.just(float(LOW)))


@pytest.mark.redis
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(st.binary(min_size=1, max_size=6), scores, max_size=60),
       probe=st.sampled_from([Probe.IN_WINDOW_WITH_FOREVER, Probe.IN_WINDOW]),
       last=st.integers(LOW, HIGH))
def test_counts_give_the_entries_of_the_one_read_in_its_order(redis_db, entries, probe, last):
    client = redis_db.client()
    client.delete(KEY)
    if entries:
        client.zadd(KEY, entries)
    one, by_counts = _both(client, plan(last, probe))
    assert by_counts == one
    assert isinstance(by_counts, list)
    for second in {score for _, score in by_counts if score <= last}:  # one float a second, as hiredis' dedup
        assert len({id(score) for _, score in by_counts if score == second}) == 1


@pytest.mark.redis
def test_a_score_not_a_whole_second_leaves_the_registry_unread(redis_db):
    client = redis_db.client()
    client.zadd(KEY, {b"a": LOW + 1, b"b": LOW + 1.5, b"c": LOW + 2})
    one, by_counts = _both(client, plan(LOW + 10))
    assert one == [(b"a", LOW + 1.0), (b"b", LOW + 1.5), (b"c", LOW + 2.0)]
    assert by_counts is ranked.UNREAD


@pytest.mark.redis
def test_a_key_that_is_not_a_sorted_set_reads_as_the_one_reads_error(redis_db):
    client = redis_db.client()
    client.set(KEY, b"x")
    one, by_counts = _both(client, plan(LOW + 10))
    assert one == [] and by_counts is None


def test_counts_that_changed_while_read_leave_the_registry_unread():
    rp = plan(LOW + 2)  # seconds LOW, LOW + 1, LOW + 2
    members = [b"a", b"b", b"c"]
    assert ranked.read(rp, [1, 1, 1, members, 1, 1, 1, []]) == [
        (b"a", float(LOW)), (b"b", LOW + 1.0), (b"c", LOW + 2.0)]
    # A job moved from one second to another between the two counts: the members cannot be placed.
    assert ranked.read(rp, [1, 1, 1, members, 0, 2, 1, []]) is ranked.UNREAD
    assert ranked.read(rp, [1, 1, 1, members[:2], 1, 1, 1, []]) is ranked.UNREAD
    assert ranked.read(rp, [1, 1, 1, None, 1, 1, 1, []]) is None


@settings(max_examples=300, deadline=None)
@given(entries=st.dictionaries(st.binary(min_size=1, max_size=4), st.integers(LOW, LOW + 12), max_size=40),
       data=st.data())
def test_the_remembered_entries_left_out_a_second_at_a_time_are_those_seen_unseen_leaves_out(entries, data):
    rp = plan(LOW + 12)
    ordered = sorted(entries.items(), key=lambda item: (item[1], item[0]))  # Redis' order
    counts = [sum(1 for _, score in ordered if score == second) for second in range(LOW, LOW + 13)]
    replies = [*counts, [member for member, _ in ordered], *counts, []]
    # Remembered: some of the entries (at their score or another), and entries not in the registry.
    kept = data.draw(st.lists(st.sampled_from(ordered), unique=True) if ordered else st.just([]))
    moved = data.draw(st.lists(st.tuples(st.sampled_from(sorted(entries) or [b"x"]), st.integers(LOW, LOW + 12))))
    others = data.draw(st.lists(st.tuples(st.binary(min_size=5, max_size=6), st.integers(LOW - 2, LOW + 14))))
    seen = Seen(((member, float(score)), 1.0) for member, score in [*kept, *moved, *others])
    everything = ranked.read(rp, replies)
    assert isinstance(everything, list)
    left = ranked.read(rp, replies, seen)
    assert left == seen.unseen(everything)
    assert isinstance(left, list)
    for second in {score for _, score in left}:  # still one float a second
        assert len({id(score) for _, score in left if score == second}) == 1
    assert ranked.read(rp, replies, Seen()) == everything


DATA = zlib.compress(pickle.dumps(("app.tasks.work", None, (), {}), protocol=5))


def _end_jobs(client, serial: int, count: int, start: float, span: float, queues: int,
              fraction: bool = False) -> None:
    """``count`` jobs ending evenly over [start, start + span), as RQ leaves them (score: the end
    second + the result TTL); ``fraction``: the first one's score is not a whole second."""
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        ended = start + span * i / count
        jid, queue = f"job-{serial + i}", f"q{(serial + i) % queues}"
        pipe.hset(f"rq:job:{jid}", mapping={"status": "finished", "enqueued_at": rq_time(ended - 2),
                                             "started_at": rq_time(ended - 1), "ended_at": rq_time(ended),
                                             "data": DATA, "origin": queue})
        pipe.zadd(f"rq:finished:{queue}", {jid: int(ended) + 500 + (0.5 if fraction and i == 0 else 0)})
    pipe.execute()


def _timing_families(scraper: Scraper) -> list[str]:
    return sorted(line for line in scraper.body.decode().splitlines()
                  if line.startswith(("rq_jobs_finished_total{", "rq_jobs_failed_total{", "rq_job_duration_seconds",
                                      "rq_job_wait_seconds")))


@pytest.mark.redis
def test_an_exporter_reading_by_counts_says_what_one_reading_scores_says(redis_db, monkeypatch):
    """Two exporters over one Redis, scraping on one virtual clock: one reads its busy registries by
    counts, the other with their scores (counts never pay). Jobs end at 40 a second a queue; one
    scrape, a score that is not a whole second: that registry is read a scrape later."""
    client = redis_db.client()
    queues, rate, interval = 2, 80, 15.0
    for q in range(queues):
        client.sadd("rq:queues", f"rq:queue:q{q}")
    clock = VirtualClock(float(int(reader.time.time())) + 0.5)
    monkeypatch.setattr(reader, "time", clock)
    by_counts, by_scores = Scraper(redis_db.url), Scraper(redis_db.url)
    zcounts = []

    def scrape_both() -> None:
        before = client.info("commandstats").get("cmdstat_zcount", {}).get("calls", 0)
        by_counts.scrape()
        zcounts.append(client.info("commandstats").get("cmdstat_zcount", {}).get("calls", 0) - before)
        kept, ranked.MIN_PER_SECOND = ranked.MIN_PER_SECOND, 10**9  # counts never pay
        try:
            by_scores.scrape()
        finally:
            ranked.MIN_PER_SECOND = kept

    scrape_both()  # the floor
    serial, written = 0, 0
    per_scrape = int(rate * interval)
    for k in range(6):
        _end_jobs(client, serial, per_scrape, clock.now, interval, queues, fraction=k == 3)
        serial += per_scrape
        written += per_scrape
        clock.now += interval
        scrape_both()
        if k == 3:  # a registry left unread: its jobs are not counted yet
            assert counted(by_counts)[0] < counted(by_scores)[0]
        else:
            assert _timing_families(by_counts) == _timing_families(by_scores)
    assert counted(by_counts) == counted(by_scores) == (written, written)
    assert all(zcounts[2:]), zcounts  # read by counts once the registries remember a scrape's overlap
