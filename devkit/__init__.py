"""Helpers shared by the tests, the benchmarks (bench/) and the local demo (demo/run.py).

Not part of the installed exporter (setuptools packages ``rq_exporter_ng*`` only) and not imported
by it. Nothing here imports pytest: what only tests need (the marker checks, require_tool, the
exporter process, scrapes, RQ workers) is in tests/support.py and tests/markers.py.

The files the demo image runs (demo/producer.py, demo/jobs.py, demo/receiver.py: docker-compose-rq-monitor.yml,
demo/Dockerfile copies demo/ alone) do not import it; demo/run.py does, and runs from the
repository root (``python -m demo.run``, ``make demo``).
"""

from devkit.processes import (
    CpuMeter,
    Metered,
    WaitTimeout,
    communicate,
    cpu_seconds,
    free_port,
    http_ok,
    patient,
    precompile,
    proc_status,
    run,
    stop_process,
    wait_for,
    wait_process,
)
from devkit.redis_server import RedisServer
from devkit.rq_format import RQ_TIME_FORMAT, rq_time

__all__ = [
    "RQ_TIME_FORMAT",
    "CpuMeter",
    "Metered",
    "RedisServer",
    "WaitTimeout",
    "communicate",
    "cpu_seconds",
    "free_port",
    "http_ok",
    "patient",
    "precompile",
    "proc_status",
    "rq_time",
    "run",
    "stop_process",
    "wait_for",
    "wait_process",
]
