"""Real workers of every supported RQ version, read by the real exporter.

For each environment scripts/rq_venvs.sh makes (.venv-rq/<name>: RQ 0.13 on Python 3.9, 1.7,
1.10, 1.16, the newest 2.x and 3.x), against a fresh redis-server: tests/rq_scenario.py enqueues
jobs with that version's own API, that version's `rq worker` runs them, and the exporter (from
.venv: it never imports RQ) is scraped.

- history, before the exporter's first scrape: one success, one failure (in the registries, or
  in RQ 0.x's failed queue, but not counted as new);
- successes, failures, a job retried twice then failing (RQ >= 1.5), a deferred job (depends_on),
  a canceled job (RQ >= 1.10 keeps it in the canceled registry; older versions' cancel only
  takes it out of the queue) and two scheduled jobs, one overdue with no scheduler running
  (RQ >= 1.2): rq_jobs per status, rq_jobs_finished_total / rq_jobs_failed_total and the duration
  histogram counting what ended after the first scrape (a retried job once), and the failures by
  exception class (rq_job_exceptions_total);
- RQ 0.13: its failed queue counted as failures of the jobs' origin queue, and no sample with
  queue="failed" anywhere;
- a worker SIGKILLed while busy: first its job's run time (rq_queue_longest_running_job_seconds,
  rq_worker_current_job_seconds), then a live, busy-looking hash until its TTL runs out, then
  one dead worker and no live one.

Where a version lacks a feature the scenario says so, and the metric must be absent or 0.
With CI=true every version scripts/rq_venvs.sh lists must have its environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devkit import run, wait_for, wait_process
from support import ROOT, TESTS, Exporter, Samples, kill_if_alive, rq_venv, worker_env

pytestmark = [pytest.mark.redis, pytest.mark.workers, pytest.mark.slow]

SCENARIO = TESTS / "rq_scenario.py"
NAMES = subprocess.run(["bash", str(ROOT / "scripts" / "rq_venvs.sh"), "--list"], check=True,
                       capture_output=True, text=True).stdout.split()
SUCCEEDED, FAILED, RETRIES = 3, 2, 2  # as in rq_scenario.py
MONITORING_INTERVAL = 2  # --job-monitoring-interval: a busy worker's heartbeat
WORKER_TTL = 20  # --worker-ttl: an idle worker wakes every worker_ttl - 15 s


def rq_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def has(version: tuple[int, ...]) -> dict[str, bool]:
    """The features each version has, from RQ's changelog (the scenario finds them by its API)."""
    return {"retry": version >= (1, 5), "scheduled": version >= (1, 2), "canceled_registry": version >= (1, 10),
            "depends_on": True}


class Worker:
    """That version's `rq worker` (its bin/rq: RQ 0.13 has no `python -m rq.cli`), run from tests/."""

    def __init__(self, venv: Path, url: str, queue: str, log: Path, *extra: str) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [str(venv / "bin" / "rq"), "worker", "--url", url, "--logging_level", "WARNING", *extra, queue],
                cwd=TESTS, env=worker_env(), stdout=out, stderr=subprocess.STDOUT)

    def finish(self, idle: float = 30) -> None:
        """A burst worker: waits for its exit, which must be a clean one (while it makes progress:
        devkit.wait_process)."""
        try:
            code = wait_process(self.process, idle)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"rq worker --burst idle for {idle} s and still running:\n"
                                 f"{self.log.read_text(errors='replace')[-3000:]}") from None
        assert code == 0, f"rq worker exited {code}:\n{self.log.read_text(errors='replace')[-3000:]}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def scenario(venv: Path, url: str, name: str, *extra: str) -> dict:
    done = run([str(venv / "bin" / "python"), str(SCENARIO), "--url", url, *extra, name], cwd=TESTS,
               env=worker_env(), capture_output=True, text=True, idle=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def settle(exporter: Exporter, done, what: str, timeout: float = 15) -> Samples:
    last: list[Samples] = []

    def attempt():
        last[:] = [exporter.scrape()]
        return done(last[0]) and last[0]

    try:
        return wait_for(attempt, timeout=timeout, interval=0.25, what=what)
    except AssertionError as error:
        lines = sorted(f"{n}{dict(labels)} {v}" for (n, labels), v in (last[0] if last else {}).items()
                       if n.startswith(("rq_jobs", "rq_job_duration_seconds_count", "rq_live", "rq_dead",
                                        "rq_queue_overdue", "rq_exporter_skipped")))
        raise AssertionError(f"{error}; last scrape:\n" + "\n".join(lines)) from None


def jobs_of(samples: Samples) -> dict[tuple[str, str], float]:
    return {(dict(labels)["queue"], dict(labels)["status"]): v for labels, v in samples.series("rq_jobs").items()}


def totals(samples: Samples, queue: str) -> dict[str, float | None]:
    return {
        "finished_total": samples.get_value("rq_jobs_finished_total", queue=queue),
        "failed_total": samples.get_value("rq_jobs_failed_total", queue=queue),
        "finished_timed": samples.get_value("rq_job_duration_seconds_count", queue=queue, status="finished"),
        "failed_timed": samples.get_value("rq_job_duration_seconds_count", queue=queue, status="failed"),
    }


def failed_queue_samples(samples: Samples, when: str) -> list[str]:
    """Samples with queue="failed": RQ 0.x's failed queue is no queue, and later versions have none.
    Collected over the test and asserted at its end, so that the other checks run first."""
    return [f"{when}: {n}{{{', '.join(f'{k}={v!r}' for k, v in sorted(labels))}}} {value}"
            for (n, labels), value in samples.items() if dict(labels).get("queue") == "failed"]


@pytest.mark.parametrize("name", NAMES)
def test_real_workers_of_each_rq_version(name, redis_db, tmp_path):
    venv = rq_venv(name)
    url = redis_db.url
    conn = redis_db.client()
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    # --- history: ended before the exporter's first scrape ---------------------------------------
    first = scenario(venv, url, "history")
    version = rq_version(first["rq"])
    if name.endswith(".x"):
        assert version[0] == int(name.split(".")[0]), (name, first["rq"])
    else:
        assert first["rq"] == name
    assert first["features"] == has(version), f"the scenario found other features in RQ {first['rq']}"
    legacy = version < (1, 0)  # RQ 0.x: failed jobs go to the list rq:queue:failed
    Worker(venv, url, "work", tmp_path / "history.log", "--burst").finish()
    time.sleep(1.1)  # they ended in an earlier second than the first scrape
    exporter = Exporter("--redis-url", url)
    workers: list[Worker] = []
    horse = None
    stray: list[str] = []
    try:
        samples = exporter.scrape()
        assert jobs_of(samples)[("work", "finished")] == 1
        assert jobs_of(samples)[("work", "failed")] == 1
        assert totals(samples, "work") == {"finished_total": 0, "failed_total": 0, "finished_timed": None,
                                           "failed_timed": None}
        if legacy:
            assert conn.llen("rq:queue:failed") == 1 and conn.sismember("rq:queues", "rq:queue:failed")
        stray = failed_queue_samples(samples, "first scrape")
        timings["history"] = time.monotonic() - t0

        # --- successes, failures, retries, deferred, canceled, scheduled ----------------------------
        main = scenario(venv, url, "main")
        have = main["features"]
        Worker(venv, url, "work", tmp_path / "main.log", "--burst").finish()
        retried = 1 if have["retry"] else 0
        failures = FAILED + retried  # a job retried RETRIES times then failing is one failure
        want_totals = {"finished_total": SUCCEEDED, "failed_total": failures, "finished_timed": SUCCEEDED,
                       "failed_timed": failures}
        if have["scheduled"]:  # the job due in a second is overdue once that second passed
            wait_for(lambda: conn.zcount("rq:scheduled:parked", 0, time.time() - 1) == 1, timeout=5,
                     what="the scheduled job to be overdue")
        samples = settle(exporter, lambda s: totals(s, "work") == want_totals,
                         what=f"the exporter to count {want_totals}")
        seen = jobs_of(samples)
        # The scenario as Redis holds it, so that the comparisons are not vacuous.
        if legacy:
            assert conn.llen("rq:queue:failed") == 1 + FAILED
            assert not conn.exists("rq:failed:work")
        else:
            assert conn.zcard("rq:failed:work") == 1 + failures
        if retried:
            job = main["jobs"]["retried"][0]
            assert conn.hmget(f"rq:job:{job}", "status", "retries_left") == [b"failed", b"0"]  # RETRIES used up
        assert conn.hget(f"rq:job:{main['jobs']['deferred'][0]}", "status") == b"deferred"

        assert seen[("work", "finished")] == 1 + SUCCEEDED
        assert seen[("work", "failed")] == 1 + failures
        assert seen[("work", "queued")] == 0
        assert seen[("work", "deferred")] == 1
        assert seen[("parked", "queued")] == 1  # the parent; the canceled job left the queue in every version
        assert seen[("parked", "canceled")] == (1 if have["canceled_registry"] else 0)
        assert seen[("parked", "scheduled")] == (2 if have["scheduled"] else 0)
        assert samples.value("rq_queue_overdue_scheduled_jobs", queue="parked") == (1 if have["scheduled"] else 0)
        assert samples.value("rq_queue_overdue_scheduled_jobs", queue="work") == 0
        assert {q for q, _ in seen} == {"work", "parked"}
        stray += failed_queue_samples(samples, "after the jobs ran")
        for status in ("finished", "failed"):  # every job was timed
            assert samples.value("rq_job_duration_seconds_bucket", queue="work", status=status, le="+Inf") \
                == want_totals[f"{status}_timed"]

        # One more of each: counted as it arrives (RQ 0.13: appended to the failed list already read)
        scenario(venv, url, "history")
        Worker(venv, url, "work", tmp_path / "more.log", "--burst").finish()
        want_totals = {key: count + 1 for key, count in want_totals.items()}
        samples = settle(exporter, lambda s: totals(s, "work") == want_totals,
                         what=f"the exporter to count {want_totals}")
        assert jobs_of(samples)[("work", "failed")] == 2 + failures
        assert jobs_of(samples)[("work", "finished")] == 2 + SUCCEEDED
        if legacy:
            assert conn.llen("rq:queue:failed") == 2 + FAILED
        # Each failure by its exception class, wherever this version keeps the traceback (the job
        # hash up to 1.11, the results stream from 1.12); RQ 0.x's failed queue is not read: unknown.
        classes = {dict(labels)["exception"]: v for labels, v in samples.series("rq_job_exceptions_total").items()
                   if dict(labels)["queue"] == "work"}
        assert classes == {"unknown" if legacy else "RuntimeError": want_totals["failed_total"]}
        stray += failed_queue_samples(samples, "after one more failure")
        timings["main"] = time.monotonic() - t0 - sum(timings.values())

        # --- a worker SIGKILLed while busy --------------------------------------------------------
        pid_file = tmp_path / "horse.pid"
        # RQ 0.13's busy hash lives job_monitoring_interval + 5 s: its flags suffice. From 1.0 on
        # it is job_monitoring_interval + 60 s at least: ShortTTLWorker caps it.
        extra = ("--name", "w-hang", "--worker-ttl", str(WORKER_TTL),
                 "--job-monitoring-interval", str(MONITORING_INTERVAL))
        if not legacy:
            extra += ("-w", "rq_scenario.ShortTTLWorker")
        hanging = Worker(venv, url, "hang", tmp_path / "hang.log", *extra)
        workers.append(hanging)
        scenario(venv, url, "hang", "--pid-file", str(pid_file))
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, what="the hanging job to start")
        horse = int(pid_file.read_text())
        samples = settle(exporter, lambda s: s.get_value("rq_live_workers", state="busy") == 1,
                         what="the hanging worker to be busy")
        assert samples.value("rq_dead_workers") == 0
        assert samples.value("rq_queue_workers", queue="hang", state="busy") == 1
        assert samples.value("rq_jobs", queue="hang", status="started") == 1
        # Its run time, from started_at, in every version's started registry layout (job id, or
        # job id:execution id from RQ 2.0), and as the worker's current job (worker_name from RQ
        # 1.7, the hash's current_job before).
        running = samples.value("rq_queue_longest_running_job_seconds", queue="hang")
        assert 0 < running < time.monotonic() - t0, running
        assert samples[("rq_worker_current_job_seconds", frozenset({"name": "w-hang", "queues": "hang"}.items()))] \
            == running
        assert samples.value("rq_queue_longest_running_job_seconds", queue="work") == 0
        assert all(v == 0 for (q, status), v in jobs_of(samples).items() if status == "rate_limited")

        hanging.kill()
        os.kill(horse, signal.SIGKILL)  # the work horse outlives its parent: it must not run on
        killed = time.monotonic()
        ttl = conn.ttl("rq:worker:w-hang")
        # refreshed every MONITORING_INTERVAL s: seconds left, plenty for one scrape
        assert 3 <= ttl <= (MONITORING_INTERVAL + 5 if legacy else 8), ttl
        samples = exporter.scrape()  # the hash outlives the worker: it still looks alive and busy
        assert conn.exists("rq:worker:w-hang")
        assert samples.value("rq_live_workers", state="busy") == 1
        assert samples.value("rq_dead_workers") == 0
        wait_for(lambda: not conn.exists("rq:worker:w-hang"), timeout=ttl + 5, what="w-hang's hash to expire")
        looked_alive = time.monotonic() - killed
        assert conn.sismember("rq:workers", "rq:worker:w-hang")  # still listed: a dead worker
        samples = exporter.scrape()
        assert samples.value("rq_dead_workers") == 1
        assert {dict(labels)["state"]: v for labels, v in samples.series("rq_live_workers").items()} \
            == {"idle": 0, "busy": 0, "started": 0, "suspended": 0}
        assert samples.value("rq_queue_workers", queue="hang", state="busy") == 0
        assert not samples.series("rq_workers")
        assert totals(samples, "work") == want_totals  # later scrapes count nothing again
        stray += failed_queue_samples(samples, "after the SIGKILL")
        timings["sigkill"] = time.monotonic() - t0 - sum(timings.values())
    finally:
        log = exporter.stop()
        for worker in workers:
            worker.kill()
        kill_if_alive(horse)
    print(f"RQ {first['rq']} on Python {first['python']}: skipped features {main['skipped']}; "
          f"failures counted {failures}; busy-looking hash {ttl} s TTL, gone {looked_alive:.1f} s after the kill; "
          + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in timings.items()))
    assert "Traceback" not in log, log
    assert "skipped" not in log, log  # RQ's own data is never "malformed"
    assert not stray, "samples with queue=\"failed\" (RQ 0.x's failed queue read as a queue):\n" + "\n".join(stray)
