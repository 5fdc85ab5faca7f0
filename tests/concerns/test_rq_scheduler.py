"""rq-scheduler (rq_exporter_ng/concerns/rq_scheduler.py) on data laid out as rq-scheduler 0.14 writes it
(Scheduler._create_job / enqueue_at / cron, register_birth / register_death).
tests/test_e2e_schedules.py runs the real rqscheduler."""

from __future__ import annotations

import pickle
import time
import zlib

import fakeredis
from concern_scrape import rows_of, scrape_concern

from rq_exporter_ng.concerns import rq_scheduler as schedules
from rq_exporter_ng.concerns.rq_scheduler import RqScheduler, ScheduleOptions, ScheduleTrack
from rq_exporter_ng.keys import Keys


def schedule(r, job_id: str, queue: str, func: str, due: float, prefix: str = "rq") -> None:
    data = zlib.compress(pickle.dumps((func, None, (), {}), protocol=4))
    r.hset(f"{prefix}:job:{job_id}", mapping={"origin": queue, "data": data, "status": "scheduled",
                                              "enqueued_at": "", "description": f"{func}()"})
    r.zadd(f"{prefix}:scheduler:scheduled_jobs", {job_id: due})


def scrape(r, track: ScheduleTrack, func_limit: int = 100, keys: Keys | None = None) -> schedules.ScheduleState:
    keys = keys or Keys("rq")
    concern = RqScheduler(ScheduleOptions(timing_func_limit=func_limit), keys)
    concern.track = track  # remembered across scrapes
    snapshot, result = scrape_concern(r, concern, keys)
    assert snapshot.round_trips <= 3
    return result


def rows(state: schedules.ScheduleState) -> dict[str, dict]:
    return rows_of(schedules.families(state))


def test_jobs_per_queue_and_function_a_cron_job_registered_twice_counts_two():
    r, now = fakeredis.FakeRedis(), time.time()
    schedule(r, "c1", "nightly", "app.tasks.report", now + 600)
    schedule(r, "c2", "nightly", "app.tasks.report", now + 600)  # the same cron job, registered again
    schedule(r, "o1", "default", "app.tasks.send_mail", now - 600)  # 10 minutes past due
    got = rows(scrape(r, ScheduleTrack()))
    assert got["rq_scheduler_jobs"] == {("nightly", "app.tasks.report"): 2, ("default", "app.tasks.send_mail"): 1}
    assert got["rq_scheduler_jobs_overdue"] == {("default",): 1, ("nightly",): 0}
    assert got["rq_scheduler_jobs_untracked"] == {(): 0}
    assert got["rq_scheduler_up"] == {(): 0}


def test_each_job_hash_is_read_once_and_forgotten_when_it_leaves_the_zset():
    r, now, track = fakeredis.FakeRedis(), time.time(), ScheduleTrack()
    for i in range(5):
        schedule(r, f"j{i}", "default", "app.tasks.f", now + 60)
    scrape(r, track)
    assert len(track.jobs) == 5
    r.delete("rq:job:j0")  # read already: its queue and function are remembered
    schedule(r, "j5", "default", "app.tasks.g", now + 60)
    state = scrape(r, track)
    assert rows(state)["rq_scheduler_jobs"] == {("default", "app.tasks.f"): 5, ("default", "app.tasks.g"): 1}
    r.zrem("rq:scheduler:scheduled_jobs", "j1", "j2")
    scrape(r, track)
    assert sorted(track.jobs) == [b"j0", b"j3", b"j4", b"j5"]


def test_a_job_without_a_hash_is_a_problem_once_and_counted_under_unknown():
    r, now, track = fakeredis.FakeRedis(), time.time(), ScheduleTrack()
    r.zadd("rq:scheduler:scheduled_jobs", {"ghost": now - 5})
    first = scrape(r, track)
    assert [(p.reason, p.key) for p in first.problems] == [("missing_job", "rq:job:ghost")]
    assert rows(first)["rq_scheduler_jobs"] == {("unknown", "unknown"): 1}
    assert rows(first)["rq_scheduler_jobs_overdue"] == {("unknown",): 1}
    assert scrape(r, track).problems == ()


def test_data_that_is_not_an_rq_payload_gives_func_unknown():
    r, now = fakeredis.FakeRedis(), time.time()
    r.hset("rq:job:x", mapping={"origin": "default", "data": b"not zlib"})
    r.zadd("rq:scheduler:scheduled_jobs", {"x": now + 5})
    assert rows(scrape(r, ScheduleTrack()))["rq_scheduler_jobs"] == {("default", "unknown"): 1}


def test_functions_past_the_limit_fold_into_other_the_least_scheduled_first():
    r, now = fakeredis.FakeRedis(), time.time()
    for i in range(3):
        schedule(r, f"a{i}", "default", "app.a", now + 5)
    for i in range(2):
        schedule(r, f"b{i}", "default", "app.b", now + 5)
    schedule(r, "c0", "default", "app.c", now + 5)
    got = rows(scrape(r, ScheduleTrack(), func_limit=2))["rq_scheduler_jobs"]
    assert got == {("default", "app.a"): 3, ("default", "app.b"): 2, ("default", "other"): 1}


def test_jobs_past_the_tracked_ones_are_counted_not_read(monkeypatch):
    monkeypatch.setattr(schedules, "MAX_TRACKED", 3)
    r, now = fakeredis.FakeRedis(), time.time()
    for i in range(5):
        schedule(r, f"j{i}", "default", "app.f", now - 100 + i)  # all past due
    got = rows(scrape(r, ScheduleTrack()))
    assert got["rq_scheduler_jobs"] == {("default", "app.f"): 3}
    assert got["rq_scheduler_jobs_untracked"] == {(): 2}
    assert got["rq_scheduler_jobs_overdue"] == {("default",): 3, ("unknown",): 2}


def test_new_jobs_are_read_at_most_max_new_a_scrape(monkeypatch):
    monkeypatch.setattr(schedules, "MAX_NEW", 2)
    r, now, track = fakeredis.FakeRedis(), time.time(), ScheduleTrack()
    for i in range(5):
        schedule(r, f"j{i}", "default", "app.f", now + 100)
    assert rows(scrape(r, track))["rq_scheduler_jobs"] == {("default", "app.f"): 2, ("unknown", "unknown"): 3}
    scrape(r, track)
    assert rows(scrape(r, track))["rq_scheduler_jobs"] == {("default", "app.f"): 5}


def test_a_live_rqscheduler_is_found_by_its_instance_hash_and_gone_when_it_expires_or_dies():
    r, track = fakeredis.FakeRedis(), ScheduleTrack()
    r.hset("rq:scheduler_instance:abc", "birth", time.time())
    assert rows(scrape(r, track))["rq_scheduler_up"] == {(): 1}
    assert track.instances == {b"rq:scheduler_instance:abc"}
    r.hset("rq:scheduler_instance:abc", "death", time.time())  # a clean stop: the hash stays 60 s
    assert rows(scrape(r, track))["rq_scheduler_up"] == {(): 0}
    r.delete("rq:scheduler_instance:abc")
    assert rows(scrape(r, track))["rq_scheduler_up"] == {(): 0}
    assert track.instances == set()


def test_instances_are_found_over_several_scrapes_on_a_large_keyspace(monkeypatch):
    monkeypatch.setattr(schedules, "SCAN_COUNT", 10)
    r, track = fakeredis.FakeRedis(), ScheduleTrack()
    r.mset({f"rq:job:filler{i}": "x" for i in range(200)})
    r.hset("rq:scheduler_instance:abc", "birth", time.time())
    schedule(r, "j", "default", "app.f", time.time() + 600)  # looked for only while it holds jobs
    seen = [rows(scrape(r, track))["rq_scheduler_up"][()] for _ in range(40)]
    assert seen[-1] == 1 and 0 in seen  # found after a few steps, and then kept
    assert seen[seen.index(1):] == [1] * (len(seen) - seen.index(1))


def test_the_key_prefix_applies():
    r, now = fakeredis.FakeRedis(), time.time()
    schedule(r, "m", "default", "app.mine", now + 5, prefix="myapp")
    schedule(r, "o", "default", "app.other", now + 5)
    got = rows(scrape(r, ScheduleTrack(), keys=Keys("myapp")))["rq_scheduler_jobs"]
    assert got == {("default", "app.mine"): 1}


def test_no_scan_while_a_live_rqscheduler_is_known_or_it_holds_no_jobs():
    r, track = fakeredis.FakeRedis(), ScheduleTrack()
    scrape(r, track)
    assert not track.searching  # no rq-scheduler jobs: nothing to move, no one to look for
    schedule(r, "j", "default", "app.f", time.time() + 600)
    scrape(r, track)
    assert track.searching
    r.hset("rq:scheduler_instance:abc", "birth", time.time())
    scrape(r, track)
    assert rows(scrape(r, track))["rq_scheduler_up"] == {(): 1} and not track.searching
    r.delete("rq:scheduler_instance:abc")  # it died: look for the next one
    assert rows(scrape(r, track))["rq_scheduler_up"] == {(): 0} and track.searching


def test_an_rqscheduler_that_comes_with_the_first_jobs_is_seen_on_that_scrape():
    """The scrape before had no jobs, so it did not search: the scrape that first sees jobs
    searches in round 3 and counts the instance it finds, without a scrape of rq_scheduler_up 0."""
    r, now, track = fakeredis.FakeRedis(), time.time(), ScheduleTrack()
    scrape(r, track)
    assert not track.searching
    schedule(r, "j1", "default", "app.tasks.f", now + 60)
    r.hset("rq:scheduler_instance:abc", mapping={"birth": now})
    state = scrape(r, track)
    assert state.live_instances == 1 and track.instances == {b"rq:scheduler_instance:abc"}
    r.hset("rq:scheduler_instance:abc", "death", now)  # a clean stop: the next scrape reads it
    assert scrape(r, track).live_instances == 0
