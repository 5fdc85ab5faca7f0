"""The benchmark (bench/) at toy size, so that it cannot rot; the real runs are in docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rq import Queue, Worker

import devkit
from bench.dataset import Size, fill
from support import ROOT, require_tool


@pytest.mark.redis
def test_filled_dataset_is_what_rq_itself_reads(redis_db):
    size = Size(queues=3, workers=4, jobs=300, dead_workers=1)
    written = fill("127.0.0.1", redis_db.port, size)
    client = redis_db.client()
    queues = Queue.all(connection=client)
    assert sorted(q.name for q in queues) == ["q00000", "q00001", "q00002"]
    queue = Queue("q00000", connection=client)
    counts = {
        "queued": queue.count,
        "started": queue.started_job_registry.get_job_count(cleanup=False),
        "finished": queue.finished_job_registry.get_job_count(cleanup=False),
        "failed": queue.failed_job_registry.get_job_count(cleanup=False),
        "deferred": queue.deferred_job_registry.get_job_count(cleanup=False),
        "scheduled": queue.scheduled_job_registry.get_job_count(cleanup=False),
        "canceled": queue.canceled_job_registry.get_job_count(cleanup=False),
    }
    assert sum(counts.values()) == 100 and all(counts.values()), counts
    assert {status: n * 3 for status, n in counts.items()} == {s: written[s] for s in counts}
    job = queue.fetch_job(queue.get_job_ids()[0])
    assert job.func_name == "bench.jobs.work" and job.origin == "q00000" and job.enqueued_at is not None
    # Worker.all() reads the live workers (and, being RQ, removes the dead one: a write).
    workers = Worker.all(connection=client)
    assert len(workers) == 4
    assert {w.get_state() for w in workers} == {"busy", "idle"}
    assert all(len(w.queue_names()) == 3 and w.successful_job_count >= 1000 for w in workers)


@pytest.mark.redis
def test_idle_queues_hold_only_queued_and_failed_jobs(redis_db):
    fill("127.0.0.1", redis_db.port, Size(queues=4, workers=2, jobs=400, idle_share=0.5))
    client = redis_db.client()
    idle = {}
    for name in ["q00000", "q00001", "q00002", "q00003"]:
        queue = Queue(name, connection=client)
        others = [queue.started_job_registry, queue.finished_job_registry, queue.deferred_job_registry,
                  queue.scheduled_job_registry, queue.canceled_job_registry]
        idle[name] = not any(r.get_job_count(cleanup=False) for r in others)
        assert queue.count and queue.failed_job_registry.get_job_count(cleanup=False) == 10
        assert queue.count + (0 if idle[name] else sum(r.get_job_count(cleanup=False) for r in others)) == 90
    assert sum(idle.values()) == 2, idle


@pytest.mark.redis
def test_bench_runs_one_scrape_of_ours_through_the_delay_proxy(tmp_path):
    require_tool("redis-server")
    out = tmp_path / "bench.json"
    result = devkit.run(
        [sys.executable, "bench/run.py", "--queues", "3", "--workers", "2", "--jobs", "60", "--scrapes", "2",
         "--no-peer", "--delay-ms", "1", "--dead-workers", "1", "--timeout", "20", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, idle=60)
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())["results"][0]
    ours = run["exporters"][0]
    assert ours["scrapes"] == 2
    assert ours["writes"] == 0 and ours["startup_writes"] == 0  # not even for the dead worker
    assert 1 <= ours["round_trips"] <= 3
    assert ours["commands"] >= 3 * 5  # every queue was read (an idle one: 5 commands)
    assert ours["redis_cpu_ms"] > 0  # Redis' threads ran for the scrape
    assert run["added_rtt_ms"] >= 1.5  # 1 ms each way
    assert "rq_exporter (ours)" in result.stdout


@pytest.mark.redis
def test_profile_times_every_phase_and_the_histogram_case():
    require_tool("redis-server")  # bench/profile.py starts its own
    result = devkit.run([sys.executable, str(ROOT / "bench" / "profile.py"), "--queues", "4", "--workers", "2",
                         "--jobs", "200", "--scrapes", "3"], capture_output=True, text=True, idle=120)
    assert result.returncode == 0, result.stderr
    for phase in ("read Redis", "round 2", "round 3", "concerns' results", "metric families", "writing",
                  "whole scrape, no histograms", "whole scrape, every queue's histograms", "peak RSS"):
        assert phase in result.stdout, result.stdout
    lines = [int(part.split()[0].lstrip("(")) for part in result.stdout.split("  (")[1:]]
    assert lines[1] == lines[0] + 4 * 48  # 48 histogram samples more per queue


@pytest.mark.redis
def test_timing_steady_times_each_round_of_the_timing_on_scrapes():
    require_tool("redis-server")  # bench/timing.py starts its own
    result = devkit.run([sys.executable, str(ROOT / "bench" / "timing.py"), "--steady", "20", "--queues", "2",
                         "--interval", "5", "--scrapes", "2", "--rounds"],
                        cwd=ROOT, capture_output=True, text=True, idle=120)
    assert result.returncode == 0, result.stderr
    assert "counted 100, timed 100" in result.stdout, result.stdout
    rounds = [line for line in result.stdout.splitlines() if line.strip().startswith("ms: round 1:")]
    assert len(rounds) == 2 and all("round 3:" in line and "in recv" in line for line in rounds), result.stdout
    # Redis' CPU in each round, read from INFO: round 3's HMGETs cost it something.
    redis_round3 = [float(line.split("round 3:")[1].split("Redis ")[1].split(" CPU")[0]) for line in rounds]
    assert all(ms > 0 for ms in redis_round3), result.stdout


@pytest.mark.redis
@pytest.mark.slow  # ~25 s: four exporter processes start under valgrind
def test_instructions_counts_the_last_scrape_of_each_exporter():
    require_tool("redis-server")  # bench/instructions.py starts its own
    require_tool("valgrind")
    result = devkit.run([sys.executable, str(ROOT / "bench" / "instructions.py"), "--rate", "20", "--queues", "2",
                         "--interval", "5", "--scrapes", "2", "--repeat", "1"],
                        cwd=ROOT, capture_output=True, text=True, idle=300)
    assert result.returncode == 0, result.stderr
    counts = {line.split()[0] + " " + line.split()[1]: float(line.split()[3])
              for line in result.stdout.splitlines() if line.strip().startswith("timing ")}
    assert counts["timing on"] > counts["timing off"] > 0, result.stdout
    assert "per timed job:" in result.stdout and "100 jobs" in result.stdout, result.stdout


@pytest.mark.redis
def test_peak_marks_every_round_and_part_and_names_what_is_alive():
    require_tool("redis-server")  # bench/peak.py starts its own
    result = devkit.run([sys.executable, str(ROOT / "bench" / "peak.py"), "--queues", "4", "--workers", "2",
                         "--jobs", "200", "--scrapes", "2", "--top", "3", "--at", "round 2 sent"],
                        capture_output=True, text=True, idle=120)
    assert result.returncode == 0, result.stderr
    for mark in ("round 1 sent", "round 2 read", "round 3 read", "first part made", "last part made", "body made",
                 "median peak", "at round 2 sent:"):
        assert mark in result.stdout, result.stdout
    assert "no snapshot" not in result.stdout

@pytest.mark.slow
@pytest.mark.redis
def test_throughput_counts_every_job_the_writer_ends(tmp_path):
    require_tool("redis-server")  # bench/throughput.py starts its own, and three exporters
    out = tmp_path / "throughput.json"
    exporter = str(Path(sys.executable).parent / "rq-exporter")
    result = devkit.run([sys.executable, str(ROOT / "bench" / "throughput.py"), "--smoke",
                         "--exporter", exporter, "--peer", exporter, "--json", str(out)],
                        cwd=ROOT, capture_output=True, text=True, idle=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(out.read_text())["results"][0]
    assert run["counted"] == run["written"] > 0
    assert run["timed"] == run["counted"]
    assert run["targets"][0] == {"target": "counted == written", "value": run["written"], "bound": run["written"],
                                 "met": True, "missed_by": 0, "unit": "jobs"}
    assert f"{run['rate']:,} jobs/s: counted == written: {run['written']:,} -> met" in result.stdout
    # Redis' CPU while each exporter's scrape ran: the timing-on one reads every new job's hash. Where
    # the machine gives no cgroup (10 ms ticks), this smoke run's ~1 ms a scrape may read as 0.
    on = {e["name"]: e for e in run["exporters"]}["timing on"]
    assert on["redis_cpu_ms"] >= 0 and "Redis CPU ms" in result.stdout, run["exporters"]
    if "cgroup" in run["redis"]["cpu_source"]:
        assert on["redis_cpu_ms"] > 0, run["exporters"]
    # The peer (here the same build) is reported against timing on, its CPU ratio too.
    peer = run["peer"]
    assert peer["counted"] == run["written"] and peer["cpu_ratio"] > 0 and peer["median_ratio"] > 0, peer
    assert (f"CPU a scrape timing on / peer {peer['cpu_ratio']}, median timing on / peer {peer['median_ratio']}"
            in result.stdout)



@pytest.mark.redis
def test_window_reads_reads_both_ways_and_gets_the_same_entries():
    require_tool("redis-server")  # bench/window_reads.py starts its own
    result = devkit.run([sys.executable, str(ROOT / "bench" / "window_reads.py"), "--sets", "2", "--size", "200",
                         "--runs", "2"], cwd=ROOT, capture_output=True, text=True, idle=120)
    assert result.returncode == 0, result.stderr
    assert "2 sets of 200, 50 a second, a window of 27 s: 400 entries" in result.stdout, result.stdout
    assert "with scores       2 commands" in result.stdout and "by counts       112 commands" in result.stdout
    assert "same entries both ways" in result.stdout


def test_an_idle_share_out_of_range_is_one_error_line():
    result = devkit.run([sys.executable, "bench/run.py", "--idle-share", "2"], cwd=ROOT, capture_output=True,
                        text=True, idle=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--idle-share: 2 is not a share from 0 to 1" in result.stderr


@pytest.mark.parametrize(("args", "said"), [
    (["--repeat", "0"], "argument --repeat: 0 is not above 0"),
    (["--rate", "-5"], "argument --rate: -5 is not above 0"),
    (["--scrapes", "1"], "--scrapes must be at least 2"),
    (["--rate", "1", "--interval", "0.5"], "--rate x --interval must end at least one job a scrape"),
    (["--checkout", "/nonexistent"], "no rq_exporter_ng/ there"),
])
def test_a_bad_instructions_option_is_one_error_line(args, said):
    # Each is refused before valgrind or Redis is looked for.
    result = devkit.run([sys.executable, "bench/instructions.py", *args], cwd=ROOT, capture_output=True,
                        text=True, idle=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert said in result.stderr.splitlines()[-1], result.stderr
