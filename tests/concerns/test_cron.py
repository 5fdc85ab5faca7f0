"""RQ's cron scheduler (rq_exporter_ng/concerns/cron.py) on data laid out as `rq cron` of RQ 2.12 / 3.0 writes it
(CronScheduler.to_dict, cron_scheduler_registry, cron_job_registry). tests/test_e2e_schedules.py
runs the real `rq cron`."""

from __future__ import annotations

import json
import time

import fakeredis
from concern_scrape import rows_of, scrape_concern

from devkit import rq_time
from rq_exporter_ng.concern import Given, NoOptions
from rq_exporter_ng.concerns import cron
from rq_exporter_ng.concerns.cron import Cron, CronJob, CronTrack
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.reader import read_snapshot


def job(name: str, queue: str, next_at: float | None, latest: float | None = None, **extra) -> dict:
    return {"func_name": "app.tasks.report", "name": name, "queue_name": queue, "args": None, "kwargs": None,
            "interval": 60, "cron": None, "latest_enqueue_time": rq_time(latest) if latest else None,
            "next_enqueue_time": rq_time(next_at) if next_at else None, "result_ttl": 500, **extra}


def scheduler(r, name: str, heartbeat: float, jobs: list | str, prefix: str = "rq") -> None:
    r.zadd(f"{prefix}:cron_schedulers", {name: heartbeat})
    r.hset(f"{prefix}:cron_scheduler:{name}", mapping={
        "hostname": "host", "pid": "42", "name": name, "created_at": rq_time(heartbeat - 10), "config_file": "c.py",
        "cron_jobs": jobs if isinstance(jobs, str) else json.dumps(jobs)})


def concern(track: CronTrack, keys: Keys) -> Cron:
    """The concern, remembering across scrapes in ``track``."""
    made = Cron(NoOptions(), keys)
    made.track = track
    return made


def scrape(r, track: CronTrack, keys: Keys | None = None) -> cron.CronState:
    keys = keys or Keys("rq")
    snapshot, result = scrape_concern(r, concern(track, keys), keys)
    assert snapshot.round_trips <= 3
    return result


def rows(state: cron.CronState) -> dict[str, dict]:
    return rows_of(cron.families(state))


def test_live_scheduler_and_its_jobs_next_and_last_enqueue():
    r, now = fakeredis.FakeRedis(), time.time()
    scheduler(r, "host:42:abc", now - 5, [job("every_minute", "default", now + 30, now - 30),
                                          job("nightly", "reports", now + 3600)])
    r.zadd("rq:cron_jobs", {"every_minute": now - 30})
    got = rows(scrape(r, CronTrack()))
    assert got["rq_cron_schedulers"] == {(): 1} and got["rq_cron_dead_schedulers"] == {(): 0}
    assert got["rq_cron_jobs"] == {(): 2}
    assert got["rq_cron_job_schedulers"] == {("every_minute", "default"): 1, ("nightly", "reports"): 1}
    nxt = got["rq_cron_job_next_enqueue_timestamp_seconds"]
    assert abs(nxt[("every_minute", "default")] - (now + 30)) < 0.01 and abs(nxt[("nightly", "reports")] - (now + 3600)) < 0.01
    assert list(got["rq_cron_job_last_enqueue_timestamp_seconds"]) == [("every_minute", "default")]


def test_a_heartbeat_older_than_the_ttl_is_a_dead_scheduler_and_its_jobs_are_remembered_while_listed():
    r, now, track = fakeredis.FakeRedis(), time.time(), CronTrack()
    scheduler(r, "killed", now - 100, [job("every_minute", "default", now - 40)])
    assert rows(scrape(r, track))["rq_cron_schedulers"] == {(): 1}  # 100 s: within RQ's 120 s TTL
    r.zadd("rq:cron_schedulers", {"killed": now - 121})
    r.delete("rq:cron_scheduler:killed")  # its TTL ran out
    got = rows(scrape(r, track))
    assert got["rq_cron_schedulers"] == {(): 0} and got["rq_cron_dead_schedulers"] == {(): 1}
    assert got["rq_cron_job_schedulers"] == {("every_minute", "default"): 0}
    assert abs(got["rq_cron_job_next_enqueue_timestamp_seconds"][("every_minute", "default")] - (now - 40)) < 0.01
    r.zrem("rq:cron_schedulers", "killed")  # a clean stop, or RQ's cleanup
    got = rows(scrape(r, track))
    assert got["rq_cron_jobs"] == {(): 0} and got["rq_cron_job_next_enqueue_timestamp_seconds"] == {}
    assert track.jobs == {}


def test_the_same_job_in_two_live_schedulers_counts_two_and_takes_the_latest_heartbeat():
    r, now = fakeredis.FakeRedis(), time.time()
    scheduler(r, "old-deploy", now - 50, [job("sync", "default", now + 10)])
    scheduler(r, "new-deploy", now - 2, [job("sync", "default", now + 20)])
    got = rows(scrape(r, CronTrack()))
    assert got["rq_cron_job_schedulers"] == {("sync", "default"): 2}
    assert abs(got["rq_cron_job_next_enqueue_timestamp_seconds"][("sync", "default")] - (now + 20)) < 0.01
    assert got["rq_cron_jobs"] == {(): 1}


def test_names_only_rq_cron_jobs_knows_keep_their_last_enqueue_without_a_queue():
    r, now = fakeredis.FakeRedis(), time.time()
    r.zadd("rq:cron_jobs", {"gone": now - 500})
    got = rows(scrape(r, CronTrack()))
    assert got["rq_cron_jobs"] == {(): 1} and got["rq_cron_schedulers"] == {(): 0}
    assert got["rq_cron_job_last_enqueue_timestamp_seconds"] == {("gone", ""): now - 500}
    assert got["rq_cron_job_schedulers"] == {}


def test_malformed_json_and_timestamps_are_skipped_as_problems_and_the_rest_is_read():
    r, now = fakeredis.FakeRedis(), time.time()
    scheduler(r, "broken", now - 1, "not json")
    scheduler(r, "odd", now - 1, [job("ok", "default", now + 5), {"no": "name"}, "x",
                                  {**job("bad", "default", None), "next_enqueue_time": "tomorrow"}])
    scheduler(r, "listless", now - 1, '{"a": 1}')
    state = scrape(r, CronTrack())
    assert sorted(p.reason for p in state.problems) == ["bad_json"] * 4 + ["bad_timestamp"]
    assert {p.key for p in state.problems} == {"rq:cron_scheduler:broken", "rq:cron_scheduler:odd",
                                               "rq:cron_scheduler:listless"}
    got = rows(state)
    assert got["rq_cron_schedulers"] == {(): 3}
    assert set(got["rq_cron_job_next_enqueue_timestamp_seconds"]) == {("ok", "default")}
    assert set(got["rq_cron_job_schedulers"]) == {("ok", "default"), ("bad", "default")}


def test_a_bad_heartbeat_score_and_a_wrong_type_key_do_not_fail_the_scrape():
    r, now = fakeredis.FakeRedis(), time.time()
    r.set("rq:cron_jobs", "a string")
    scheduler(r, "fine", now - 1, [job("ok", "default", now + 5)])
    state = scrape(r, CronTrack())
    assert rows(state)["rq_cron_schedulers"] == {(): 1}
    assert cron.state({"s": (None, (CronJob("j", "q", 1.0),))}, {}, now).dead == 1


def test_the_key_prefix_applies():
    r, now = fakeredis.FakeRedis(), time.time()
    scheduler(r, "s", now - 1, [job("ok", "default", now + 5)], prefix="myapp")
    scheduler(r, "other", now - 1, [job("no", "default", now + 5)])
    got = rows(scrape(r, CronTrack(), Keys("myapp")))
    assert set(got["rq_cron_job_schedulers"]) == {("ok", "default")}


def test_nothing_of_cron_costs_no_third_round_of_its_own():
    r = fakeredis.FakeRedis()
    scan = concern(CronTrack(), Keys("rq")).reads(Given())
    snapshot = read_snapshot(r, Keys("rq"), extras=(scan,))
    assert snapshot.round_trips == 2
    assert rows(scan.result(Given(snapshot=snapshot)))["rq_cron_jobs"] == {(): 0}
