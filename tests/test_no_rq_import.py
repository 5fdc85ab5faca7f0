"""The exporter reads keys and never imports rq, so it works whatever RQ version the application runs.

The real exporter process runs with `import rq` made impossible and still reads real RQ data.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from devkit import free_port, rq_time, stop_process, wait_for
from support import ROOT, parse_samples

# Runs the exporter's entry point with rq unimportable; every rq_exporter module is imported too,
# so no module hides an import of rq behind a rarely used path.
BLOCK_RQ = """
import pkgutil, importlib, sys
sys.modules["rq"] = None  # `import rq` now raises ImportError
import rq_exporter_ng
for module in pkgutil.walk_packages(rq_exporter_ng.__path__, "rq_exporter_ng."):
    if module.name != "rq_exporter_ng.__main__":
        importlib.import_module(module.name)
from rq_exporter_ng.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.redis
def test_exporter_runs_without_rq(redis_db):
    r = redis_db.client()
    r.sadd("rq:queues", "rq:queue:default")
    r.rpush("rq:queue:default", "j1")
    r.hset("rq:job:j1", "enqueued_at", rq_time())
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BLOCK_RQ, "--host", "127.0.0.1", "--port", str(port),
                                "--redis-url", redis_db.url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        def scrape():
            if process.poll() is not None:
                raise AssertionError(process.stderr.read())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    return parse_samples(response.read().decode())
            except OSError:
                return None

        samples = wait_for(scrape, timeout=15, what="the exporter without rq")
        assert samples.value("rq_up") == 1
        assert samples.value("rq_jobs", queue="default", status="queued") == 1
    finally:
        stop_process(process, 10)
    assert "Traceback" not in process.stderr.read()
