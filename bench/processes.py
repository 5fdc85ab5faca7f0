"""The processes bench/throughput.py starts and watches: its redis-server, the exporters it scrapes
(HTTP GET /metrics, their CPU and peak RSS), each tied to the benchmark's life, and a bounded wait
that notices one of them, or the writer, gone.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from devkit import CpuMeter, Metered, free_port, precompile, wait_for

if TYPE_CHECKING:
    from bench.writer import WriterProcess

ROOT = Path(__file__).resolve().parent.parent

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """In a child: SIGTERM when the benchmark process dies, even by SIGKILL (Linux)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisProcess(Metered):
    """redis-server for one rate; its CPU is measured as the exporters' is (Metered)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.log = directory / "redis.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(directory)], stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)

        def pings() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()[-1000:]}")
            try:
                return self.client.ping()
            except redis.ConnectionError:
                return False

        wait_for(pings, timeout=10, what="redis-server")
        self.meter: CpuMeter | None = None  # made at the first cpu_seconds()

    def stop(self) -> None:
        self.client.close()
        super().stop()


@dataclass
class Exporter(Metered):
    name: str
    command: list[str]
    redis_port: int
    log: Path
    accept: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    http_ms: list[float] = field(default_factory=list)
    own_ms: list[float] = field(default_factory=list)
    redis_ms: list[float] = field(default_factory=list)  # Redis' CPU while each scrape ran (the writer's share too)
    first_ms: float = 0.0
    samples: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    meter: CpuMeter | None = None  # made at the first cpu_seconds()
    restarts: int = 0

    def start(self) -> None:
        precompile(self.command[0])
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [*self.command, "--host", "127.0.0.1", "--port", str(self.port),
                 "--redis-url", f"redis://127.0.0.1:{self.redis_port}/0"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=die_with_parent)

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"exporter '{self.name}' exited ({self.process and self.process.returncode}): "
                               f"{self.log.read_text(errors='replace')[-3000:]}")

    def wait_listening(self, timeout: float) -> None:
        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None and self.restarts < 3 \
                    and b"Address already in use" in self.log.read_bytes():
                # free_port's port was taken before the exporter bound it (the writer's and
                # Redis' sockets come and go): another port.
                self.restarts += 1
                self.port = free_port()
                self.start()
                return False
            self.check()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, timeout=timeout, what=f"exporter '{self.name}' to listen")

    def scrape(self, timeout: float) -> tuple[float, dict[str, float]]:
        """One HTTP GET /metrics: its wall time (ms) and the sums of the samples by name."""
        self.check()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics", headers={"Accept": self.accept})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
        elapsed = (time.perf_counter() - start) * 1e3
        if response.status != 200:
            raise RuntimeError(f"exporter '{self.name}': HTTP {response.status}")
        parse = parse_openmetrics if content_type.startswith("application/openmetrics-text") else parse_text
        sums: dict[str, float] = defaultdict(float)
        samples = 0
        for family in parse(body.decode()):
            for sample in family.samples:
                sums[sample.name] += sample.value
                samples += 1
        self.samples = samples
        return elapsed, sums


def sleep_until(target: float, watched: list[Exporter], writer: WriterProcess) -> None:
    """Bounded wait that notices a dead exporter or writer within a second."""
    while (left := target - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        for exporter in watched:
            exporter.check()
        if not writer.process.is_alive():
            raise RuntimeError(f"writer exited ({writer.process.exitcode})")
