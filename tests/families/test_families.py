"""Snapshot -> metric families (a pure function) and the catalogue that drives it. No Redis."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from rq_exporter_ng.concern import taken
from rq_exporter_ng.concerns import cron, redis_health, retries
from rq_exporter_ng.concerns import exception_classes as exceptions
from rq_exporter_ng.concerns import rq_scheduler as schedules
from rq_exporter_ng.concerns import running_jobs as running
from rq_exporter_ng.concerns.timing.histograms import families as timing_families
from rq_exporter_ng.concerns.timing.job_timing import JobTiming, TimingOptions
from rq_exporter_ng.families.catalogue import BY_NAME, CATALOGUE, JOB_STATUSES, PER_WORKER, markdown_table
from rq_exporter_ng.families.core import ExporterStats, exporter_families, rq_families
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import WORKER_STATES, QueueState, Snapshot, WorkerState
from support import parse_samples

PER_WORKER_FAMILIES = {s.name for s in CATALOGUE if s.note == PER_WORKER}

FULL = Snapshot(
    time=1_700_000_000.0,
    queues=(
        QueueState("default", queued=3, intermediate=1, started=2, abandoned=1, finished=10, failed=4,
                   deferred=5, scheduled=6, overdue_scheduled=2, canceled=7, scheduler_active=True,
                   oldest_job_age=12.5),
        QueueState("empty"),
        QueueState("broken-head", queued=1, oldest_job_age=None),
    ),
    workers=(
        WorkerState("w1", ("default", "empty"), "busy", 1_699_999_990.0, 8, 2, 3.5),
        WorkerState("w2", ("default",), "idle", 1_699_999_000.0, 0, 0, 0.0),
        WorkerState("w3", ("only-worker",), "suspended", None, None, 1, None),
    ),
    dead_workers=2,
    worker_only_queues=("only-worker",),
)


def families(snapshot: Snapshot = FULL, per_worker: bool = True) -> dict:
    return {f.name: f for f in rq_families(snapshot, per_worker=per_worker)}


def exposed_name(spec_name: str, spec_type: str) -> str:
    # prometheus_client names a counter family without _total and adds it to the samples.
    return spec_name.removesuffix("_total") if spec_type == "counter" else spec_name


def all_families(snapshot: Snapshot = FULL, per_worker: bool = True):
    stats = ExporterStats(scrapes=3, errors=1)
    stats.skipped["bad_timestamp"] += 2
    return (list(exporter_families(stats.figures(), True, 0.01, 3)) + list(rq_families(snapshot, per_worker))
            + list(timing_families(JobTiming(taken(TimingOptions, Settings()), Keys("rq")).times.totals(["default"])))
            + list(exceptions.families(exceptions.ExceptionTotals([])))
            + list(retries.families(retries.RetryTotals([(("default",), 2)])))
            + list(cron.families(cron.CronState(1, 1, (cron.CronJobState("nightly", "default", 2.0, 1.0, 1),), 1)))
            + list(schedules.families(schedules.ScheduleState({("default", "app.f"): 2}, {"default": 1}, 0, 1)))
            + list(running.families(running.Running(), snapshot, per_worker))
            + list(redis_health.families(redis_health.RedisInfo(True, "noeviction", 1, 2, 3, True, True, True, 4, 5,
                                                                "replica", True, 6, "7.0.15", "0" * 40))))


def test_every_family_is_catalogued_with_its_type_help_and_labels():
    seen = set()
    for fam in all_families():
        spec = BY_NAME.get(fam.name) or BY_NAME.get(fam.name + "_total")
        assert spec is not None, f"{fam.name} is not in the catalogue"
        assert fam.type == spec.type, fam.name
        assert fam.documentation == spec.help, fam.name
        for sample in fam.samples:
            # histogram buckets add their own `le`
            assert tuple(label for label in sample.labels if label != "le") == spec.labels, (fam.name, sample.labels)
        seen.add(spec.name)
    # ... and every catalogued metric is produced by the code (none is documented but missing).
    assert seen == {s.name for s in CATALOGUE}


def test_catalogue_names_follow_the_conventions():
    for spec in CATALOGUE:
        assert spec.name.startswith("rq_")
        assert spec.type in ("gauge", "counter", "histogram", "summary")
        assert (spec.type == "counter") == spec.name.endswith("_total"), spec.name
        assert spec.help.endswith("."), spec.name
        assert len(set(spec.labels)) == len(spec.labels)
    assert len(BY_NAME) == len(CATALOGUE)


def test_rq_exporter_3_names_and_labels_are_kept():
    kept = {
        "rq_jobs": ("queue", "status"),
        "rq_workers": ("name", "queues", "state"),
        "rq_workers_success_total": ("name", "queues"),
        "rq_workers_failed_total": ("name", "queues"),
        "rq_workers_working_time_total": ("name", "queues"),
    }
    for name, labels in kept.items():
        assert BY_NAME[name].labels == labels
    assert JOB_STATUSES[:6] == ("queued", "started", "finished", "failed", "deferred", "scheduled")
    assert "canceled" in JOB_STATUSES


def test_queue_values_map_one_to_one():
    fam = families()
    jobs = {tuple(s.labels.values()): s.value for s in fam["rq_jobs"].samples}
    assert jobs[("default", "queued")] == 3
    assert jobs[("default", "started")] == 2
    assert jobs[("default", "finished")] == 10
    assert jobs[("default", "failed")] == 4
    assert jobs[("default", "deferred")] == 5
    assert jobs[("default", "scheduled")] == 6
    assert jobs[("default", "canceled")] == 7

    def one(name: str, queue: str = "default") -> float:
        (value,) = [s.value for s in fam[name].samples if s.labels["queue"] == queue]
        return value

    assert one("rq_queue_intermediate_jobs") == 1
    assert one("rq_queue_abandoned_jobs") == 1
    assert one("rq_queue_overdue_scheduled_jobs") == 2
    assert one("rq_queue_scheduler_active") == 1
    assert one("rq_queue_scheduler_active", "empty") == 0
    assert one("rq_queue_oldest_job_age_seconds") == 12.5


def test_empty_queue_is_zero_filled_in_every_status():
    jobs = {tuple(s.labels.values()): s.value for s in families()["rq_jobs"].samples}
    for status in JOB_STATUSES:
        assert jobs[("empty", status)] == 0
    assert len(jobs) == 3 * len(JOB_STATUSES)
    oldest = {s.labels["queue"]: s.value for s in families()["rq_queue_oldest_job_age_seconds"].samples}
    assert oldest["empty"] == 0


def test_unknown_oldest_age_leaves_the_sample_out():
    oldest = {s.labels["queue"]: s.value for s in families()["rq_queue_oldest_job_age_seconds"].samples}
    assert "broken-head" not in oldest
    # ... while that queue's other series are still there
    jobs = {tuple(s.labels.values()) for s in families()["rq_jobs"].samples}
    assert ("broken-head", "queued") in jobs


def test_workers_per_queue_carry_every_state_with_zeros():
    listening = {tuple(s.labels.values()): s.value for s in families()["rq_queue_workers"].samples}
    queues = {"default", "empty", "broken-head", "only-worker"}
    assert {q for q, _ in listening} == queues
    for queue in queues:
        for state in WORKER_STATES:
            assert (queue, state) in listening
    assert listening[("default", "busy")] == 1
    assert listening[("default", "idle")] == 1
    assert listening[("empty", "busy")] == 1
    assert listening[("empty", "idle")] == 0
    assert listening[("only-worker", "suspended")] == 1
    assert listening[("broken-head", "idle")] == 0
    # no worker-name label: bounded by queues x states
    assert all(set(s.labels) == {"queue", "state"} for s in families()["rq_queue_workers"].samples)


def test_live_and_dead_workers():
    fam = families()
    live = {s.labels["state"]: s.value for s in fam["rq_live_workers"].samples}
    assert live == {"idle": 1, "busy": 1, "started": 0, "suspended": 1}
    assert [s.value for s in fam["rq_dead_workers"].samples] == [2]


def test_unknown_worker_state_is_counted_not_dropped():
    snapshot = Snapshot(time=0, workers=(WorkerState("w", ("q",), "rate_limited"),), worker_only_queues=("q",))
    fam = families(snapshot)
    live = {s.labels["state"]: s.value for s in fam["rq_live_workers"].samples}
    assert live["rate_limited"] == 1 and live["idle"] == 0
    listening = {tuple(s.labels.values()): s.value for s in fam["rq_queue_workers"].samples}
    assert listening[("q", "rate_limited")] == 1


def test_per_worker_series():
    fam = families()
    present = {tuple(s.labels.values()): s.value for s in fam["rq_workers"].samples}
    assert present == {("w1", "default,empty", "busy"): 1, ("w2", "default", "idle"): 1,
                       ("w3", "only-worker", "suspended"): 1}

    def by_name(family: str) -> dict:
        return {s.labels["name"]: s.value for s in fam[family].samples if s.name.endswith(("_total", "_seconds"))}

    assert by_name("rq_workers_success") == {"w1": 8, "w2": 0}  # w3's unreadable counter: left out
    assert by_name("rq_workers_failed") == {"w1": 2, "w2": 0, "w3": 1}
    assert by_name("rq_workers_working_time") == {"w1": 3.5, "w2": 0.0}
    assert by_name("rq_worker_last_heartbeat_timestamp_seconds") == {"w1": 1_699_999_990.0, "w2": 1_699_999_000.0}


def test_per_worker_off_drops_exactly_the_per_worker_families():
    on = {f.name for f in all_families(per_worker=True) if f.samples}
    off = {f.name for f in all_families(per_worker=False)}
    dropped = {exposed_name(n, BY_NAME[n].type) for n in PER_WORKER_FAMILIES}
    assert on - off == dropped
    assert {"rq_workers", "rq_workers_success_total", "rq_workers_failed_total",
                                   "rq_workers_working_time_total", "rq_worker_last_heartbeat_timestamp_seconds",
            "rq_worker_current_job_seconds"} == PER_WORKER_FAMILIES
    # The aggregate worker families stay, and no remaining sample has a worker name.
    assert {"rq_live_workers", "rq_dead_workers", "rq_queue_workers"} <= off
    for fam in all_families(per_worker=False):
        if fam.name.startswith("rq_cron_job_"):
            continue  # their `name` is the cron job's
        for sample in fam.samples:
            assert "name" not in sample.labels


def test_exporter_families():
    stats = ExporterStats(scrapes=5, errors=2)
    stats.skipped.update({"bad_timestamp": 3, "wrong_type": 1})
    fam = {f.name: f for f in exporter_families(stats.figures(), False, 0.25, 0)}
    assert [s.value for s in fam["rq_up"].samples] == [0]
    assert [s.value for s in fam["rq_exporter_scrape_duration_seconds"].samples] == [0.25]
    assert [s.value for s in fam["rq_exporter_scrapes"].samples if s.name.endswith("_total")] == [5]
    assert [s.value for s in fam["rq_exporter_scrape_errors"].samples if s.name.endswith("_total")] == [2]
    skipped = {s.labels["reason"]: s.value for s in fam["rq_exporter_skipped"].samples if s.name.endswith("_total")}
    assert skipped == {"bad_timestamp": 3, "wrong_type": 1}
    (info,) = fam["rq_exporter_build_info"].samples
    assert info.value == 1 and set(info.labels) == {"version", "python_version"}


def test_families_render_in_both_formats():
    class Fixed:
        def collect(self):
            return all_families()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    samples = parse_samples(generate_latest(registry).decode())
    assert samples.value("rq_jobs", queue="default", status="canceled") == 7
    labels = frozenset({"name": "w1", "queues": "default,empty"}.items())
    assert samples[("rq_workers_success_total", labels)] == 8
    text = generate_openmetrics(registry).decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE rq_workers_success counter" in text


def test_markdown_table_lists_every_metric():
    table = markdown_table()
    for spec in CATALOGUE:
        assert f"| `{spec.name}` | {spec.type} |" in table


def test_rq_jobs_rows_are_the_plain_comprehension():
    queues = tuple(QueueState(f"q{i}", *range(i, i + 10), rate_limited=i * 7) for i in range(5))
    (jobs,) = [f for f in rq_families(Snapshot(time=0.0, queues=queues, workers=())) if f.name == "rq_jobs"]
    assert jobs.rows == [((q.name, status), getattr(q, status)) for q in queues for status in JOB_STATUSES]
