"""Sharding (--shard i/N, --shard-globals): who owns a queue, the settings, the scope of every
family, and real shards over real RQ workers adding up to one unsharded exporter's figures."""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from bundle import promtool
from shard_scenario import BY_HASH, BY_PATTERNS, ENDED, FAILED, SHARDS, scenario

from devkit import wait_for
from rq_exporter_ng.concern import Concerns
from rq_exporter_ng.concerns import CONCERNS
from rq_exporter_ng.concerns.cron import Cron
from rq_exporter_ng.concerns.exception_classes import ExceptionClasses
from rq_exporter_ng.concerns.redis_health import RedisHealth
from rq_exporter_ng.concerns.rq_scheduler import RqScheduler
from rq_exporter_ng.concerns.running_jobs import RunningJobs
from rq_exporter_ng.concerns.timing.job_timing import JobTiming
from rq_exporter_ng.families.catalogue import CATALOGUE, EXPORTER, GLOBAL, QUEUE, SCOPES
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.loading import load
from rq_exporter_ng.settings import InvalidSettings
from rq_exporter_ng.shards import shard_of
from support import ROOT, run_exporter

# --- who owns a queue -------------------------------------------------------------------------------


def test_the_owner_is_crc32_of_the_utf8_name_mod_n_the_same_in_every_process():
    # Fixed figures: Python's hash() of a str would change with each process (PYTHONHASHSEED).
    assert [zlib.crc32(n.encode()) for n in ("default", "high", "low", "", "é-queue")] == \
        [3814588639, 4043695189, 2458417313, 0, 1104517014]
    assert [shard_of(n, 3) for n in ("default", "high", "low", "", "é-queue")] == [1, 1, 2, 0, 0]
    assert [shard_of(n, 5) for n in ("default", "high", "low", "", "é-queue")] == [4, 4, 3, 0, 4]
    assert all(shard_of(n, 1) == 0 for n in ("default", "high", "x" * 1000))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_every_queue_has_exactly_one_owner(count):
    names = [f"queue-{i}" for i in range(500)] + ["default", "high", "", "é", "a,b", "with space"]
    shards = [load(["--shard", f"{i}/{count}"]) for i in range(count)]
    for name in names:
        assert sum(s.wants_queue(name) for s in shards) == 1, (name, count)
    assert all(any(s.wants_queue(n) for n in names) for s in shards)  # no shard is left empty here


def test_the_shard_composes_with_the_queue_patterns():
    s = load(["--shard", "1/3", "--queue-exclude", "high"])
    assert not s.wants_queue("high")  # shard 1's, excluded
    assert s.wants_queue("default") and not s.wants_queue("low")  # shard 1's; shard 2's
    assert s.wants_pattern("low") and not s.wants_pattern("high")


def test_global_series_default_to_shard_0_and_can_be_moved():
    assert load([]).exports_globals and not load([]).sharded  # unsharded: as before
    assert load(["--shard", "0/3"]).exports_globals
    assert not load(["--shard", "2/3"]).exports_globals
    assert load(["--shard", "2/3", "--shard-globals"]).exports_globals
    assert not load(["--shard", "0/3", "--no-shard-globals"]).exports_globals
    patterns_only = load(["--queue-include", "a*", "--no-shard-globals"])
    assert patterns_only.sharded and not patterns_only.exports_globals


@pytest.mark.parametrize("value", ["3/3", "-1/3", "1/0", "1", "a/b", "1/3/5", ""])
def test_a_wrong_shard_is_refused(value):
    with pytest.raises(InvalidSettings) as refused:
        load([f"--shard={value}"])
    assert str(refused.value).startswith("invalid setting --shard (RQ_EXPORTER_SHARD): 'i/N'")


def test_a_wrong_shard_stops_the_exporter_with_one_line_and_exit_2():
    result = run_exporter(env={"RQ_EXPORTER_SHARD": "4/4"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--shard (RQ_EXPORTER_SHARD)" in lines[0] and "'4/4'" in lines[0], result.stderr


# --- the bundle's Prometheus config for shards ------------------------------------------------------


def test_the_shards_prometheus_config_is_the_bundled_one_with_a_target_per_shard():
    bundled = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    shards = yaml.safe_load((ROOT / "prometheus/prometheus-shards.yml").read_text())
    (job,) = [j for j in shards["scrape_configs"] if j["job_name"] == "rq"]
    (plain,) = [j for j in bundled["scrape_configs"] if j["job_name"] == "rq"]
    # The same job, nothing relabelled: each shard keeps job="rq" (the rules' selector) and an
    # instance of its own (tests/test_e2e_shards.py runs the rules and dashboards so).
    assert {k: v for k, v in job.items() if k != "static_configs"} == \
        {k: v for k, v in plain.items() if k != "static_configs"}
    (targets,) = [c["targets"] for c in job["static_configs"]]
    assert len(targets) == len(set(targets)) == 3
    assert shards["rule_files"] == bundled["rule_files"] and shards["alerting"] == bundled["alerting"]


@pytest.mark.promtool
def test_the_shards_prometheus_config_loads():
    result = promtool("check", "config", "prometheus/prometheus-shards.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout


# --- the scope of every family --------------------------------------------------------------------


def test_every_family_has_a_scope():
    assert all(spec.scope in SCOPES for spec in CATALOGUE)
    by_scope = {scope: {s.name for s in CATALOGUE if s.scope == scope} for scope in SCOPES}
    assert {"rq_up", "rq_exporter_build_info", "rq_request_processing_seconds"} <= by_scope[EXPORTER]
    assert {"rq_live_workers", "rq_workers", "rq_worker_current_job_seconds", "rq_cron_jobs",
            "rq_scheduler_jobs", "rq_redis_info_readable"} <= by_scope[GLOBAL]
    # A family whose series are each of one queue, and only such, is per queue.
    for spec in CATALOGUE:
        assert (spec.scope == QUEUE) <= ("queue" in spec.labels), spec.name
    assert all(s.name.startswith("rq_exporter_") or s.name in ("rq_up", "rq_request_processing_seconds")
               for s in CATALOGUE if s.scope == EXPORTER)


def test_a_shard_without_the_global_series_does_not_even_read_them():
    keys = Keys("rq")
    on = {type(c) for c in Concerns(CONCERNS, load(["--shard", "1/3"]), keys).on}
    assert not on & {Cron, RqScheduler, RedisHealth}  # only global families: off
    assert {RunningJobs, JobTiming, ExceptionClasses} <= on  # per queue (running jobs: per worker too)
    assert {Cron, RqScheduler, RedisHealth} <= {type(c) for c in Concerns(CONCERNS, load([]), keys).on}
    primary = Concerns(CONCERNS, load(["--shard", "0/3"]), keys).of(RunningJobs)
    assert primary is not None and primary.others is not None  # reads the other shards' started jobs
    assert primary.others("low") and not primary.others("emails")  # shard 2's; its own (shard 0's)
    by_patterns = Concerns(CONCERNS, load(["--queue-include", "e*", "--shard-globals"]), keys).of(RunningJobs)
    assert by_patterns is not None and by_patterns.others is not None
    assert by_patterns.others("low") and not by_patterns.others("emails")  # every queue it leaves out
    unsharded = Concerns(CONCERNS, load(["--queue-include", "e*"]), keys).of(RunningJobs)
    assert unsharded is not None and unsharded.others is None  # as before: only the queues it reads


def family(sample: str) -> str:
    names = {s.name for s in CATALOGUE}
    for suffix in ("", "_total", "_count", "_sum", "_bucket", "_created"):
        base = sample.removesuffix(suffix) if suffix else sample
        if base in names:
            return base
        if base + "_total" in names:
            return base + "_total"
    raise AssertionError(f"{sample} is of no catalogued family")


SCOPE = {s.name: s.scope for s in CATALOGUE}
# Values that move between two scrapes a moment apart: compared within these bounds (None: only
# that the series is there, from the one shard).
MOVING = {
    "rq_queue_oldest_job_age_seconds": 1.5,
    "rq_queue_longest_running_job_seconds": 1.5,
    "rq_queue_longest_running_job_by_func_seconds": 1.5,
    "rq_worker_current_job_seconds": 1.5,
    "rq_worker_last_heartbeat_timestamp_seconds": None,
    "rq_redis_memory_used_bytes": None,
    "rq_redis_rdb_changes_since_last_save": None,
    "rq_redis_uptime_seconds": 1.5,
}


# --- real shards over real workers ------------------------------------------------------------------


@pytest.mark.workers
@pytest.mark.slow
@pytest.mark.parametrize("split", ["hash", "patterns"])
def test_three_shards_add_up_to_one_exporter(redis_db, tmp_path, split):
    conn = redis_db.client()
    with scenario(redis_db.url, conn, tmp_path, shard_args=BY_HASH if split == "hash" else BY_PATTERNS) as found:
        whole = found.whole
        # Every exporter counts every ended job, however its scrapes fall.
        finished = ENDED - FAILED
        wait_for(lambda: sum(v for (n, _), v in whole.scrape().items() if n == "rq_jobs_finished_total") == finished,
                 timeout=30, what=f"the unsharded exporter to count the {finished} finished jobs")
        time.sleep(1)
        with ThreadPoolExecutor(4) as pool:  # at the same moment, so that the moving values agree
            whole_s, *shard_s = pool.map(lambda e: e.scrape(), found.exporters)
    for log in found.logs:
        assert "Traceback" not in log and "skipped" not in log, log

    compared = 0
    for (name, labels), value in whole_s.items():
        spec = family(name)
        if SCOPE[spec] == EXPORTER:
            continue
        owners = [i for i, s in enumerate(shard_s) if (name, labels) in s]
        assert len(owners) == 1, (name, dict(labels), owners)
        owner = owners[0]
        if SCOPE[spec] == GLOBAL:
            assert owner == 0, (name, dict(labels))
        else:
            assert shard_of(dict(labels)["queue"], SHARDS) == owner, (name, dict(labels))
        tolerance = MOVING.get(spec, 0.0)
        if tolerance is not None:
            assert shard_s[owner][(name, labels)] == pytest.approx(value, abs=tolerance), (name, dict(labels))
        compared += 1
    for i, s in enumerate(shard_s):
        extra = {k for k in s if SCOPE[family(k[0])] != EXPORTER and k not in whole_s}
        assert not extra, (i, sorted(extra, key=str)[:5])
        assert s.value("rq_up") == 1
    # The data was what the test meant: every kind of figure, and the running job seen per worker
    # by shard 0, whose own queues hold none of it.
    assert compared > 300, compared
    assert whole_s.value("rq_jobs", queue="gamma", status="deferred") == 1
    assert whole_s.value("rq_jobs", queue="emails", status="scheduled") == 1
    assert whole_s.value("rq_jobs", queue="reports", status="started") == 1
    assert sum(v for (n, _), v in whole_s.items() if n == "rq_jobs_failed_total") == FAILED
    current = frozenset({"name": "w-long", "queues": "reports,imports"}.items())
    assert shard_s[0][("rq_worker_current_job_seconds", current)] > 1
    assert whole_s.value("rq_live_workers", state="busy") == 1
