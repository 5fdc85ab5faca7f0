"""rq_job_retries_total against a real redis-server, real `rq worker`s of every RQ version with
Retry (1.7, 1.10, 1.16, 2.x, 3.x: .venv-rq/<version>) and the real exporter.

tests/rq_scenario.py's ``retries`` scenario, each job counting its attempts in a file: on
``retry``, served by a worker of that queue alone, jobs that fail RETRIES times then succeed, one
that fails for good after its retries, a failure without Retry and (RQ >= 2.x) jobs that return
Retry: the counter must be the exact number of retried attempts. On ``multi``, served by a worker
of ``multi`` and ``other``, failing jobs with Retry: RQ keeps no trace of which queue a failed
attempt was on, so the counter stays 0, the documented lower bound.

The workers are not burst workers: the exporter counts a worker's failed attempts from the scrapes
that see it alive, and a burst worker's hash goes with it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from devkit import run, wait_for
from support import TESTS, Exporter, Samples, rq_venv, worker_env

VERSIONS = ("1.7.0", "1.10.1", "1.16.2", "2.x", "3.x")
RETRIES, RECOVERED, MULTI = 2, 2, 2  # as in rq_scenario.py


def counters(samples: Samples, queue: str) -> dict[str, float | None]:
    return {name: samples.get_value(f"rq_{name}_total", queue=queue)
            for name in ("job_retries", "jobs_finished", "jobs_failed")}


@pytest.mark.redis
@pytest.mark.workers
@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_retried_attempts_of_real_workers_are_counted_once_each(version, redis_db, tmp_path):
    venv = rq_venv(version)
    url, conn = redis_db.url, redis_db.client()
    exporter = Exporter("--redis-url", url)
    workers: list[subprocess.Popen] = []
    log = tmp_path / "workers.log"
    try:
        exporter.scrape()  # the baseline: what happens next counts
        done = run([str(venv / "bin" / "python"), str(TESTS / "rq_scenario.py"), "--url", url,
                    "--dir", str(tmp_path), "retries"], cwd=TESTS, env=worker_env(), text=True, idle=60)
        assert done.returncode == 0, done.stderr
        scenario = json.loads(done.stdout.strip().splitlines()[-1])
        returned = scenario["features"]["returns_retry"]
        assert returned == (version in ("2.x", "3.x")), scenario
        with open(log, "ab") as out:
            for queues in (["retry"], ["multi", "other"]):
                workers.append(subprocess.Popen(
                    [str(venv / "bin" / "rq"), "worker", "--url", url, "--logging_level", "WARNING", *queues],
                    cwd=TESTS, env=worker_env(), stdout=out, stderr=subprocess.STDOUT))

        # Exception retries: RECOVERED jobs retried RETRIES times each, one RETRIES times then failed.
        # Returned Retry: RETRIES retries then finished; Retry(max=1): one retry, then failed.
        want = {"job_retries": RECOVERED * RETRIES + RETRIES + (RETRIES + 1 if returned else 0),
                "jobs_finished": RECOVERED + (1 if returned else 0),
                "jobs_failed": 2 + (1 if returned else 0)}
        last: list[Samples] = []

        def counted():
            last[:] = [exporter.scrape()]
            return counters(last[0], "retry") == want and counters(last[0], "multi")["jobs_failed"] == MULTI

        try:
            wait_for(counted, timeout=60, interval=0.3, what=f"the exporter to count {want} on retry")
        except AssertionError as error:
            raise AssertionError(f"{error}; counted {counters(last[0], 'retry') if last else None}, multi "
                                 f"{counters(last[0], 'multi') if last else None}\n"
                                 f"{log.read_text(errors='replace')[-3000:]}") from None
        samples = last[0]
        # What the workers did, as Redis and the jobs' own counts say, so that the counts are not vacuous.
        for path in tmp_path.glob("recovered-*"):
            assert len(path.read_text().splitlines()) == RETRIES + 1
        assert len(list(tmp_path.glob("recovered-*"))) == RECOVERED
        jobs = scenario["jobs"]
        assert conn.hmget(f"rq:job:{jobs['exhausted'][0]}", "status", "retries_left") == [b"failed", b"0"]
        if returned:
            assert len((tmp_path / "returned").read_text().splitlines()) == RETRIES + 1
            assert len((tmp_path / "returned-exhausted").read_text().splitlines()) == 2
        # A worker of several queues: its retries (MULTI x RETRIES) cannot be given a queue.
        assert all(conn.hget(f"rq:job:{job}", "retries_left") == b"0" for job in jobs["multi"])
        assert counters(samples, "multi")["job_retries"] == 0
        assert exporter.scrape().get_value("rq_job_retries_total", queue="retry") == want["job_retries"]
    finally:
        for process in workers:
            process.send_signal(signal.SIGKILL)
            process.wait()
        out = exporter.stop()
    assert "Traceback" not in out, out


def test_versions_are_those_with_retry():
    """Every RQ environment but 0.13 (no Retry) is tested here."""
    names = subprocess.run(["bash", str(Path(TESTS).parent / "scripts" / "rq_venvs.sh"), "--list"], check=True,
                           capture_output=True, text=True).stdout.split()
    assert sorted(VERSIONS) == sorted(n for n in names if n != "0.13.0")


@pytest.mark.redis
@pytest.mark.workers
def test_rq_0_13_has_no_retries_to_count(redis_db):
    """RQ 0.13 has no Retry: its workers' failures (RQ 0.x's failed queue) count as failures, never as retries."""
    venv = rq_venv("0.13.0")
    url = redis_db.url
    exporter = Exporter("--redis-url", url)
    worker = None
    try:
        exporter.scrape()
        enqueue = ("import sys; from redis import Redis; from rq import Queue; "
                   "q = Queue('work', connection=Redis.from_url(sys.argv[1])); [q.enqueue('jobs.fail') for _ in range(3)]")
        done = run([str(venv / "bin" / "python"), "-c", enqueue, url], cwd=TESTS, env=worker_env(), idle=60)
        assert done.returncode == 0, done.stderr
        worker = subprocess.Popen([str(venv / "bin" / "rq"), "worker", "--url", url, "work"], cwd=TESTS,
                                  env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = wait_for(lambda: (s := exporter.scrape()).get_value("rq_jobs_failed_total", queue="work") == 3
                           and s, timeout=30, interval=0.3, what="3 failures counted")
        assert redis_db.client().llen("rq:queue:failed") == 3
        assert sum(samples.series("rq_workers_failed_total").values()) == 3  # the worker's count grew
        assert samples.value("rq_job_retries_total", queue="work") == 0
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        out = exporter.stop()
    assert "Traceback" not in out, out

