"""Running jobs (rq_exporter_ng/concerns/running_jobs.py) on the layouts RQ writes: the started registry's members
(job ids before RQ 2.0, ``<job id>:<execution id>`` from 2.0 on), the job hashes' started_at,
status and worker_name, the worker hash's current_job. fakeredis for the pure logic;
tests/concerns/test_running_jobs_rq_workers.py runs real workers of RQ 2.x and 3.0, and
tests/test_rq_versions.py every version from 0.13 on.
"""

from __future__ import annotations

import pickle
import time
import zlib

import fakeredis
import pytest
from concern_scrape import scrape_concern
from hypothesis import given, settings
from hypothesis import strategies as st

from devkit import rq_time
from rq_exporter_ng.concern import Given
from rq_exporter_ng.concerns import running_jobs as running
from rq_exporter_ng.concerns.running_jobs import (
    Running,
    RunningJob,
    RunningJobs,
    RunningOptions,
    current_per_worker,
    families,
    job_id,
)
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.snapshot import QueueState, Snapshot, WorkerState

EXECUTION = "0123456789abcdef0123456789abcdef"


def start(r, queue: str, job: str, seconds_ago: float, member: str | None = None, worker: str | None = None,
          status: str = "started", deadline_in: float = 90, func: str | None = None) -> None:
    now = time.time()
    r.sadd("rq:queues", f"rq:queue:{queue}")
    r.zadd(f"rq:wip:{queue}", {member or job: int(now + deadline_in)})
    fields = {"status": status, "origin": queue, "started_at": rq_time(now - seconds_ago)}
    if worker:
        fields["worker_name"] = worker
    if func:
        fields["data"] = zlib.compress(pickle.dumps((func, None, (), {})))
    r.hset(f"rq:job:{job}", mapping=fields)


def concern(keys: Keys, track: running.RunningTrack | None = None, func_limit: int = 100) -> RunningJobs:
    made = RunningJobs(RunningOptions(per_worker_metrics=True, timing_func_limit=func_limit), keys)
    if track is not None:
        made.track = track  # what was read before
    return made


def scrape(r, keys: Keys | None = None) -> tuple[Snapshot, Running]:
    keys = keys or Keys("rq")
    snapshot, result = scrape_concern(r, concern(keys), keys)
    return snapshot, result.running


def longest(snapshot: Snapshot, result: Running) -> dict[str, float]:
    return {s.labels["queue"]: s.value
            for s in next(iter(families(result, snapshot, per_worker=False))).samples}


def test_job_ids_of_both_member_layouts():
    assert job_id(b"abc") == b"abc"  # RQ < 2.0
    assert job_id(f"abc:{EXECUTION}".encode()) == b"abc"  # RQ >= 2.0
    assert job_id(b"custom:id") == b"custom:id"  # an RQ 1.x custom id with a colon stays whole


def test_longest_running_job_per_queue_in_both_layouts_and_0_when_none_runs():
    r = fakeredis.FakeRedis()
    start(r, "old", "a", 100)
    start(r, "old", "b", 40)
    start(r, "new", "c", 700, member=f"c:{EXECUTION}")
    r.sadd("rq:queues", "rq:queue:idle")
    snapshot, result = scrape(r)
    seen = longest(snapshot, result)
    assert seen.keys() == {"old", "new", "idle"}
    assert seen["old"] == pytest.approx(100, abs=2)
    assert seen["new"] == pytest.approx(700, abs=2)
    assert seen["idle"] == 0
    assert snapshot.round_trips == 3
    assert not result.problems


def by_func(r, func_limit: int) -> dict[tuple[str, str], float]:
    keys = Keys("rq")
    made = concern(keys, func_limit=func_limit)
    _, result = scrape_concern(r, made, keys)
    fams = {f.name: f for f in made.families(result)}
    return {(s.labels["queue"], s.labels["func"]): s.value
            for s in fams["rq_queue_longest_running_job_by_func_seconds"].samples}


def test_longest_running_job_per_queue_and_function_capped_by_the_func_limit():
    r = fakeredis.FakeRedis()
    start(r, "q", "a", 100, func="app.tasks.report")
    start(r, "q", "b", 40, func="app.tasks.report")
    start(r, "q", "c", 300, member=f"c:{EXECUTION}", func="app.tasks.export")
    start(r, "q", "d", 10, func="app.tasks.mail")
    start(r, "p", "e", 20, func="app.tasks.mail")
    start(r, "p", "f", 5)  # no data: unknown
    r.sadd("rq:queues", "rq:queue:idle")  # no job runs: no series
    seen = by_func(r, func_limit=10)
    assert seen.keys() == {("q", "app.tasks.report"), ("q", "app.tasks.export"), ("q", "app.tasks.mail"),
                           ("p", "app.tasks.mail"), ("p", "unknown")}
    assert seen[("q", "app.tasks.report")] == pytest.approx(100, abs=2)
    assert seen[("q", "app.tasks.export")] == pytest.approx(300, abs=2)
    assert seen[("p", "app.tasks.mail")] == pytest.approx(20, abs=2)
    # Two functions named: those with the longest runs; the rest fold into "other", its longest run.
    capped = by_func(r, func_limit=2)
    assert capped.keys() == {("q", "app.tasks.report"), ("q", "app.tasks.export"), ("q", "other"),
                             ("p", "other")}
    assert capped[("p", "other")] == pytest.approx(20, abs=2)
    assert capped[("q", "other")] == pytest.approx(10, abs=2)


def test_abandoned_jobs_and_jobs_that_ended_between_the_rounds_are_left_out():
    r = fakeredis.FakeRedis()
    start(r, "q", "abandoned", 5000, deadline_in=-10)  # heartbeat deadline passed: rq_queue_abandoned_jobs
    start(r, "q", "ended", 3000, status="finished")  # ended after round 2 read the registry
    r.sadd("rq:queues", "rq:queue:q")
    r.zadd("rq:wip:q", {"gone": int(time.time() + 90)})  # result_ttl=0: its hash deleted at its end
    start(r, "q", "running", 20)
    snapshot, result = scrape(r)
    assert [j.job_id for j in result.jobs] == ["running"]
    assert longest(snapshot, result)["q"] == pytest.approx(20, abs=2)
    assert not result.problems


def test_a_started_job_with_a_bad_started_at_is_skipped_and_counted():
    r = fakeredis.FakeRedis()
    start(r, "q", "bad", 10)
    r.hset("rq:job:bad", "started_at", "yesterday")
    start(r, "q", "empty", 10)
    r.hset("rq:job:empty", "started_at", "")
    snapshot, result = scrape(r)
    assert sorted((p.reason, p.key) for p in result.problems) == [("bad_timestamp", "rq:job:bad"),
                                                                  ("bad_timestamp", "rq:job:empty")]
    assert longest(snapshot, result)["q"] == 0


def test_each_worker_gets_its_current_job_by_worker_name_or_its_hash_current_job():
    r = fakeredis.FakeRedis()
    now = rq_time(time.time())
    for name, extra in (("w-new", {}), ("w-old", {"current_job": "legacy"}), ("w-idle", {})):
        r.sadd("rq:workers", f"rq:worker:{name}")
        r.hset(f"rq:worker:{name}", mapping={"state": "busy", "queues": "q", "birth": now, "last_heartbeat": now,
                                             **extra})
    start(r, "q", "modern", 30, member=f"modern:{EXECUTION}", worker="w-new")  # RQ >= 1.7 and 3.0
    start(r, "q", "legacy", 300)  # RQ 0.13: no worker_name in the job hash
    snapshot, result = scrape(r)
    current = current_per_worker(result, snapshot)
    assert current["w-new"] == pytest.approx(30, abs=2)
    assert current["w-old"] == pytest.approx(300, abs=2)
    assert current["w-idle"] == 0
    fams = {f.name: f for f in families(result, snapshot, per_worker=True)}
    assert {(s.labels["name"], s.labels["queues"]) for s in fams["rq_worker_current_job_seconds"].samples} == {
        ("w-new", "q"), ("w-old", "q"), ("w-idle", "q")}
    assert "rq_worker_current_job_seconds" not in {f.name for f in families(result, snapshot, per_worker=False)}


def test_the_key_prefix_and_the_caps_apply(monkeypatch):
    r = fakeredis.FakeRedis()
    now = time.time()
    r.sadd("app:queues", "app:queue:q")
    for i in range(5):
        r.zadd("app:wip:q", {f"j{i}": int(now + 90 + i)})
        r.hset(f"app:job:j{i}", mapping={"status": "started", "started_at": rq_time(now - 10 * (i + 1))})
    monkeypatch.setattr(running, "MAX_PER_QUEUE", 3)
    snapshot, result = scrape(r, Keys("app"))
    assert sorted(j.job_id for j in result.jobs) == ["j0", "j1", "j2"]  # the earliest heartbeat deadlines
    assert longest(snapshot, result)["q"] == pytest.approx(30, abs=2)


def test_clock_skew_never_gives_a_negative_run_time():
    snapshot = Snapshot(time=1000.0, queues=(QueueState("q"),), workers=(WorkerState("w", ("q",), "busy"),))
    result = Running((RunningJob("q", "j", 1005.0, "w"),))
    assert longest(snapshot, result) == {"q": 0.0}
    assert current_per_worker(result, snapshot) == {"w": 0.0}


def test_keys_of_the_wrong_type_are_skipped_and_counted():
    r = fakeredis.FakeRedis()
    start(r, "q", "fine", 10)
    r.sadd("rq:queues", "rq:queue:q")
    r.zadd("rq:wip:q", {"a-string": int(time.time() + 90)})
    r.set("rq:job:a-string", "not a hash")
    snapshot, result = scrape(r)
    assert [j.job_id for j in result.jobs] == ["fine"]
    assert [(p.reason, p.key) for p in snapshot.problems] == [("wrong_type", "rq:job:a-string")]


def test_executions_read_once_are_kept_and_give_what_a_fresh_read_gives():
    """The track saves the hash reads of executions already seen; its result must equal a read
    without it, scrape after scrape, while jobs start, end and a job id of RQ < 2.0 runs again."""
    r = fakeredis.FakeRedis()
    track = running.RunningTrack()

    def both() -> tuple[Running, Running, int]:
        kept_scan, fresh_scan = concern(Keys("rq"), track).reads(Given()), concern(Keys("rq")).reads(Given())
        kept_snapshot = read_snapshot(r, Keys("rq"), extras=(kept_scan,))
        fresh_snapshot = read_snapshot(r, Keys("rq"), extras=(fresh_scan,))
        asked = len(kept_scan.asked)
        kept = kept_scan.result(Given(snapshot=kept_snapshot)).running
        fresh = fresh_scan.result(Given(snapshot=fresh_snapshot)).running
        return kept, fresh, asked

    def same(a: Running, b: Running) -> bool:
        return sorted(a.jobs) == sorted(b.jobs) and a.problems == b.problems

    start(r, "q", "long", 500, member=f"long:{EXECUTION}", worker="w1")
    start(r, "q", "old-layout", 50, worker="w2")
    kept, fresh, asked = both()
    assert same(kept, fresh) and asked == 2 and len(kept.jobs) == 2
    kept, fresh, asked = both()
    assert same(kept, fresh) and asked == 1  # only the RQ < 2.0 member is read again
    # The RQ < 2.0 job runs again (same member, a new start); a new execution starts; one ends.
    start(r, "q", "old-layout", 5, worker="w2")
    start(r, "q", "next", 1, member=f"next:{'b' * 32}", worker="w3")
    r.zrem("rq:wip:q", f"long:{EXECUTION}")
    kept, fresh, asked = both()
    assert same(kept, fresh) and asked == 2
    assert {j.job_id for j in kept.jobs} == {"old-layout", "next"}
    assert {q: set(m) for q, m in track.known.items()} == {"q": {f"next:{'b' * 32}".encode()}}  # the rest is forgotten


_jobs = st.lists(st.builds(running.RunningJob, st.sampled_from(["a", "b", "c"]), st.just("id"),
                           st.floats(0, 10) | st.sampled_from([1.0, 2.0]), st.none() | st.sampled_from(["w1", "w2"]),
                           st.sampled_from(["f", "g", "unknown"])), max_size=30)


@settings(max_examples=200, deadline=None)
@given(jobs=_jobs)
def test_one_pass_finds_the_earliest_start_of_every_key_as_min_does(jobs):
    found = running.earliest(running.Running(tuple(jobs)))

    def least(key) -> dict:
        keyed: dict = {}
        for j in jobs:
            if key(j) is not None:
                keyed.setdefault(key(j), []).append(j.started_at)
        return {k: min(v) for k, v in keyed.items()}

    assert found.queue == least(lambda j: j.queue)
    assert found.queue_func == least(lambda j: (j.queue, j.func))
    assert found.func == least(lambda j: j.func)
    assert found.worker == least(lambda j: j.worker)
