"""Zero writes, proven by Redis itself: the real exporter runs as an ACL user that may only run the
read commands it needs, over data real RQ workers produced in every registry; the server's
command statistics and ACL log then show what it ran.

The rule below is the one the README gives under "A read-only Redis user"; the test also shows it
is minimal (every command it allows was needed by the scrapes).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import jobs
import pytest
import rq
from rq import Queue, Retry
from rq.cron import CronScheduler
from rq_scheduler import Scheduler

from devkit import wait_for
from support import ROOT, Exporter, RQWorker, kill_if_alive

PASSWORD = "exporter-only-reads"
# Redis 7's %R~ grants read access to the keys only; the command list is the exporter's reads.
# scan and zrange: the schedules (rq_exporter_ng/concerns/cron.py, rq_exporter_ng/concerns/rq_scheduler.py);
# info: the Redis under RQ (rq_exporter_ng/concerns/redis_health.py), a command of @slow @dangerous that reads no key;
# exists: a queue's keys found empty at the previous scrape (rq_exporter_ng/queue_reads.py).
ACL_COMMANDS = ("exists", "hmget", "info", "lindex", "llen", "lrange", "mget", "scan", "smembers", "xrevrange", "zcard",
                "zcount", "zrange", "zrangebyscore")
KEYLESS = {"info"}  # Redis flags it neither readonly nor write: it reads the server's state, no key
ACL_RULE = f"user rq-exporter on >PASSWORD resetkeys %R~rq:* resetchannels -@all {' '.join('+' + c for c in ACL_COMMANDS)}"
# What this test itself sends (as the default user) between the resets and the reads, and the
# connection handshake every client sends (AUTH and HELLO need no ACL permission). Its own INFO
# commandstats is not in the statistics it returns: the exporter's INFO calls are all that count.
ADMIN_COMMANDS = {"acl|log", "config|resetstat", "ping", "hello", "auth", "client|setinfo"}


def commandstats(conn) -> dict[str, dict]:
    return {name.removeprefix("cmdstat_"): values for name, values in conn.info("commandstats").items()}


def family(pid: int) -> list[int]:
    """The process and its descendants (RQ's work horse, a scheduler process), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def flags_of(conn, names) -> dict[str, set[str]]:
    """Redis' own flags for each command (COMMAND INFO), so the check does not trust our list."""
    info = conn.execute_command("COMMAND", "INFO", *names)
    return {name: {f.decode() if isinstance(f, bytes) else f for f in info[name]["flags"]} for name in names}


def test_readme_gives_the_rule_tested_here():
    production = (ROOT / "README.md").read_text().split("\n## Running in production\n", 1)[1].split("\n## ", 1)[0]
    first_subsection = production.split("\n### ", 1)[1].split("\n### ", 1)[0]
    assert first_subsection.startswith("A read-only Redis user")
    readme_rule = ACL_RULE.replace(">PASSWORD", ">long-random-password").removeprefix("user ")
    assert f"ACL SETUSER {readme_rule}" in first_subsection


def rq_series(samples) -> dict:
    """The series of RQ's state: neither the exporter's own figures nor the Redis part."""
    return {key: value for key, value in samples.items()
            if not key[0].startswith(("rq_redis_", "rq_exporter_", "rq_request_processing_"))}


@pytest.mark.redis
def test_a_user_without_info_gets_every_rq_metric_and_the_redis_part_is_left_out_once(own_redis):
    admin = own_redis.client()
    without_info = ACL_RULE.replace("rq-exporter", "no-info").replace(" +info", "")
    assert "+info" not in without_info
    for rule in (ACL_RULE, without_info):
        admin.execute_command("ACL", "SETUSER", *rule.replace("PASSWORD", PASSWORD).split()[1:])
    default = Queue("default", connection=admin)
    for _ in range(3):
        default.enqueue(jobs.sleep_for, 0)
    default.enqueue_in(timedelta(hours=1), jobs.sleep_for, 0)
    Queue("low", connection=admin).enqueue(jobs.sleep_for, 0).cancel()
    url = f"redis://{{}}:{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    full, refused = Exporter("--redis-url", url.format("rq-exporter")), Exporter("--redis-url", url.format("no-info"))
    try:
        with_info = full.scrape()
        scrapes = [refused.scrape() for _ in range(3)]
    finally:
        full.stop()
        log = refused.stop()
    assert with_info.value("rq_redis_info_readable") == 1 and with_info.value("rq_redis_uptime_seconds") >= 0
    for samples in scrapes:
        assert samples.value("rq_up") == 1
        assert rq_series(samples).keys() == rq_series(with_info).keys()  # every RQ series
        assert samples.series("rq_jobs") == with_info.series("rq_jobs")
        assert samples.value("rq_redis_info_readable") == 0
        assert {name for name in samples.names() if name.startswith("rq_redis_")} == {"rq_redis_info_readable"}
        assert not samples.series("rq_exporter_skipped_total")
    assert rq_series(with_info)[("rq_jobs", frozenset({"queue": "default", "status": "queued"}.items()))] == 3
    assert len([line for line in log.splitlines() if "INFO failed" in line]) == 1, log
    assert "needs +info" in log and "Traceback" not in log


@pytest.mark.workers
def test_a_full_scrape_cycle_runs_only_allowed_read_commands(own_redis, tmp_path):
    admin = own_redis.client()
    admin.execute_command("ACL", "SETUSER", *ACL_RULE.replace("PASSWORD", PASSWORD).split()[1:])
    # Started before the jobs run, so that their failure is new to it: it reads the traceback.
    url = f"redis://rq-exporter:{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    exporter = Exporter("--redis-url", url)
    assert exporter.scrape().value("rq_up") == 1

    # Real jobs in every registry, by real workers.
    default, low = Queue("default", connection=admin), Queue("low", connection=admin)
    for _ in range(3):
        default.enqueue(jobs.sleep_for, 0)
    default.enqueue(jobs.fail, retry=Retry(max=1))
    parent = low.enqueue(jobs.sleep_for, 0)  # low has no worker: queued
    default.enqueue(jobs.sleep_for, 0, depends_on=parent)  # deferred
    low.enqueue(jobs.sleep_for, 0).cancel()  # canceled
    default.enqueue_in(timedelta(hours=1), jobs.sleep_for, 0)  # scheduled
    rate_limited = int(rq.__version__.split(".")[0]) >= 3  # RQ 3.0's rate limit keys, read in rounds 1 to 3
    if rate_limited:
        from rq import RateLimit
        limited = Queue("limited", connection=admin)  # no worker: one queued, one waiting for the slot
        for _ in range(2):
            limited.enqueue(jobs.sleep_for, 0, rate_limit=RateLimit("ro", 1))
    # The schedules, written by rq-scheduler's and RQ's own code: a job, an rqscheduler instance,
    # a cron scheduler with its job (no process: it would write while the exporter reads).
    rq_scheduler = Scheduler(connection=admin, queue_name="low", interval=600)
    rq_scheduler.enqueue_in(timedelta(hours=1), jobs.sleep_for, 0)
    rq_scheduler.register_birth()
    cron_scheduler = CronScheduler(connection=admin, name="cron-ro")
    cron_scheduler.register(jobs.sleep_for, "low", interval=600)
    cron_scheduler.register_birth()
    pid_file = tmp_path / "horse.pid"
    worker = RQWorker(own_redis.url, "default", name="w-ro")
    horse_pid = None
    frozen: list[int] = []
    try:
        wait_for(lambda: admin.zcard("rq:finished:default") == 3 and admin.zcard("rq:failed:default") == 1,
                 timeout=30, what="the jobs to run")
        default.enqueue(jobs.pid_then_sleep, str(pid_file), 600)  # started, while we read
        wait_for(pid_file.exists, timeout=20, what="the long job to start")
        horse_pid = int(pid_file.read_text())
        wait_for(lambda: admin.hget("rq:worker:w-ro", "state") == b"busy", timeout=10, what="a busy worker")

        # Freeze the worker and its children so that from here on only the exporter talks to Redis.
        frozen = family(worker.process.pid)
        assert horse_pid in frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: all(stopped(pid) for pid in frozen), timeout=5, what="the worker to stop")
        time.sleep(0.3)  # commands already on the wire reach Redis before the reset
        admin.config_resetstat()
        admin.execute_command("ACL", "LOG", "RESET")

        try:
            scrapes = [exporter.scrape() for _ in range(4)]
        finally:
            log = exporter.stop()
        stats = commandstats(admin)
        acl_log = admin.execute_command("ACL", "LOG")

        # Without job timing it still needs every command (ZRANGEBYSCORE also reads the started jobs).
        admin.config_resetstat()
        exporter = Exporter("--redis-username", "rq-exporter", "--redis-password", PASSWORD,
                            "--redis-host", "127.0.0.1", "--redis-port", str(own_redis.port), "--no-job-timing")
        try:
            assert exporter.scrape().value("rq_up") == 1
        finally:
            exporter.stop()
        without_timing = {name for name, v in commandstats(admin).items() if v["calls"]} - ADMIN_COMMANDS
    finally:
        for pid in frozen:
            kill_if_alive(pid)  # a frozen worker could not exit cleanly anyway
        worker.kill()
        exporter.stop()

    # The scrapes read real data, as the restricted user.
    for samples in scrapes:
        assert samples.value("rq_up") == 1
        assert samples.value("rq_jobs", queue="default", status="finished") == 3
        assert samples.value("rq_jobs", queue="default", status="failed") == 1
        assert samples.value("rq_jobs", queue="default", status="started") == 1
        assert samples.value("rq_jobs", queue="default", status="deferred") == 1
        assert samples.value("rq_jobs", queue="default", status="scheduled") == 1
        assert samples.value("rq_jobs", queue="low", status="queued") == 1
        assert samples.value("rq_jobs", queue="low", status="canceled") == 1
        assert samples.value("rq_live_workers", state="busy") == 1
        assert samples.value("rq_queue_longest_running_job_seconds", queue="default") > 0
        assert samples[("rq_worker_current_job_seconds", frozenset({"name": "w-ro", "queues": "default"}.items()))] > 0
        if rate_limited:
            assert samples.value("rq_jobs", queue="limited", status="queued") == 1
            assert samples.value("rq_jobs", queue="limited", status="rate_limited") == 1
        assert samples.value("rq_scheduler_jobs", queue="low", func="jobs.sleep_for") == 1
        assert samples.value("rq_scheduler_up") == 1
        assert samples.value("rq_cron_schedulers") == 1
        assert samples.series("rq_cron_job_schedulers") == {frozenset({("name", "jobs.sleep_for"), ("queue", "low")}): 1}
        assert not samples.series("rq_exporter_skipped_total")
        assert samples.value("rq_redis_info_readable") == 1 and samples.value("rq_redis_memory_used_bytes") > 0
    assert scrapes[-1].value("rq_job_exceptions_total", queue="default", exception="RuntimeError") == 1
    assert "skipped" not in log and "Traceback" not in log

    ran = {name for name, values in stats.items() if values["calls"] or values.get("rejected_calls")}
    exporter_ran = ran - ADMIN_COMMANDS
    assert not acl_log, acl_log  # nothing denied: no command, key or channel outside the rule
    flags = flags_of(admin, sorted(ran))
    assert not [name for name in ran if "write" in flags[name]], flags
    assert all("readonly" in flags[name] for name in exporter_ran - KEYLESS), flags
    for name in ran:
        assert stats[name].get("rejected_calls", 0) == 0 and stats[name].get("failed_calls", 0) == 0, (name, stats)
    # Minimal: it ran exactly the commands the rule allows, each one needed.
    assert exporter_ran == set(ACL_COMMANDS), stats
    assert without_timing == set(ACL_COMMANDS) - {"xrevrange"}
    assert not admin.execute_command("ACL", "LOG")
