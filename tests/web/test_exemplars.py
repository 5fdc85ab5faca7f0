"""Exemplars on the job timing histograms: from a latency spike to the job.

A real exporter reading jobs real RQ workers ran: its OpenMetrics scrape parsed strictly by
prometheus_client's OpenMetrics parser, its text scrape without exemplars, and a real Prometheus
with exemplar storage returning the job ids from /api/v1/query_exemplars.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from rq import Queue

from devkit import free_port, stop_process, wait_for
from support import Exporter, RQWorker, require_tool

pytestmark = [pytest.mark.redis, pytest.mark.workers]

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
BOUNDS = (0.25, 1.0, 10.0)


def get(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.headers["Content-Type"], response.read().decode()


def bucket_of(value: float) -> str:
    return next((str(float(b)) for b in BOUNDS if value <= b), "+Inf")


def test_openmetrics_buckets_carry_the_latest_job_and_text_none(redis_db):
    exporter = Exporter("--redis-url", redis_db.url, "--timing-buckets", ",".join(map(str, BOUNDS)))
    try:
        exporter.scrape()
        q = Queue("ex", connection=redis_db.client())
        quick = [q.enqueue("jobs.sleep_for", 0) for _ in range(2)]
        slow = q.enqueue("jobs.sleep_for", 1.5)
        failing = q.enqueue("jobs.fail")
        started = time.time()
        assert RQWorker(redis_db.url, "ex", burst=True).wait(120) == 0
        wait_for(lambda: exporter.scrape().get_value("rq_jobs_finished_total", 0, queue="ex") == 3, timeout=30,
                 interval=0.25, what="the jobs counted")

        content_type, body = get(exporter.base + "/metrics", OPENMETRICS)
        assert content_type.startswith("application/openmetrics-text")
        families = {f.name: f for f in text_string_to_metric_families(body)}  # strict: raises on any fault
        for name in ("rq_job_duration_seconds", "rq_job_wait_seconds"):
            for sample in families[name].samples:
                if sample.exemplar is not None:
                    assert sample.name == name + "_bucket"
                    assert set(sample.exemplar.labels) == {"job_id"}
                    assert bucket_of(sample.exemplar.value) == sample.labels["le"], sample
                    assert started - 5 <= float(sample.exemplar.timestamp) <= time.time() + 5, sample

        def exemplars(status: str) -> dict[str, tuple[str, float]]:
            return {s.labels["le"]: (s.exemplar.labels["job_id"], s.exemplar.value)
                    for s in families["rq_job_duration_seconds"].samples
                    if s.exemplar is not None and s.labels.get("status") == status}

        finished = exemplars("finished")
        assert set(finished) == {"0.25", "10.0"}
        assert finished["0.25"][0] == quick[1].id  # the latest job of that bucket
        assert finished["10.0"][0] == slow.id and 1.5 <= finished["10.0"][1] < 10
        assert [job for job, _ in exemplars("failed").values()] == [failing.id]
        waits = {s.exemplar.labels["job_id"] for s in families["rq_job_wait_seconds"].samples if s.exemplar}
        assert failing.id in waits

        content_type, text = get(exporter.base + "/metrics")
        assert content_type.startswith("text/plain")
        assert " # {" not in text and "job_id" not in text
    finally:
        exporter.stop()


@pytest.mark.promtool
@pytest.mark.slow
def test_prometheus_with_exemplar_storage_returns_the_job_id(redis_db, tmp_path):
    binary = require_tool("prometheus")
    exporter = Exporter("--redis-url", redis_db.url)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "rq", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}],
    }))
    data = tempfile.mkdtemp(prefix="rq-exporter-prometheus-")
    prometheus = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                                   f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"

    def scraped() -> bool:
        try:
            _, body = get(f"{api}/query?" + urllib.parse.urlencode({"query": "rq_up"}))
        except OSError:
            return False
        return bool(json.loads(body)["data"]["result"])

    def job_ids() -> set[str]:
        query = {"query": 'rq_job_duration_seconds_bucket{queue="prom"}', "start": time.time() - 600,
                 "end": time.time() + 60}
        _, body = get(f"{api}/query_exemplars?" + urllib.parse.urlencode(query))
        return {e["labels"]["job_id"] for series in json.loads(body)["data"] for e in series["exemplars"]}

    try:
        wait_for(scraped, timeout=60, interval=0.5, what="Prometheus to scrape the exporter")
        q = Queue("prom", connection=redis_db.client())
        job = q.enqueue("jobs.sleep_for", 0.1)
        assert RQWorker(redis_db.url, "prom", burst=True).wait(120) == 0
        wait_for(lambda: job.id in job_ids(), timeout=60, interval=0.5, what="the job id among the exemplars")
    finally:
        stop_process(prometheus, 10)
        exporter.stop()
        shutil.rmtree(data, ignore_errors=True)
