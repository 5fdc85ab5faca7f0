"""One real scrape: redis-server + `python -m rq_exporter_ng` + GET /metrics, for scripts/compat.sh.

Run with the interpreter of the environment under test (``.venv-min/bin/python
scripts/smoke_scrape.py``): it starts redis-server on a free port in a temporary directory,
writes what RQ writes for one queued job (the queue set, the queue list, the job hash) and a
queue whose key has the wrong type (an error reply inside the pipelined batch), starts the
exporter with this interpreter, scrapes /metrics as text, as OpenMetrics, as Prometheus 3
asks (escaping=allow-utf-8) and gzipped, and checks the values.

It talks to Redis with a few lines of RESP over a socket, so only the exporter uses the
installed redis-py / hiredis. Exit 0 and one "ok" line on success; otherwise exit 1 and
one line saying what was wrong (the exporter's last stderr lines follow when it died).
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run by path: devkit is at the root
from devkit import free_port, rq_time, stop_process

TIMEOUT = 20.0  # seconds to wait for redis-server and the exporter to answer
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMETHEUS_3 = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                "application/openmetrics-text;version=0.0.1;q=0.5,"
                "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


class Failed(Exception):
    """The one-line reason the smoke scrape failed."""


def _resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_command(port: int, *args: str) -> bytes:
    """Sends one command, returns the reply's first line (enough for PING, SADD, RPUSH, HSET)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(_resp(*args))
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("redis-server closed the connection")
            reply += chunk
    if reply.startswith(b"-"):
        raise Failed(f"redis-server refused {args[0]}: {reply.decode().strip()}")
    return reply


def wait_until(condition, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise Failed(f"{what}: the process exited with code {process.returncode}")
        try:
            if condition():
                return
        except urllib.error.HTTPError as error:  # it is up, and answered wrongly
            raise Failed(f"{what}: HTTP {error.code} {error.reason}") from None
        except (OSError, ConnectionError) as error:
            last = f"no answer ({error})"
        time.sleep(0.05)
    raise Failed(f"{what}: {last} after {TIMEOUT:.0f} s")


def write_rq_state(port: int) -> None:
    """One queue "default" holding one queued job, as RQ lays it out; one queue of the wrong type."""
    now = rq_time(time.time())
    redis_command(port, "SADD", "rq:queues", "rq:queue:default", "rq:queue:wrongtype")
    redis_command(port, "RPUSH", "rq:queue:default", "smoke-job")
    redis_command(port, "HSET", "rq:job:smoke-job", "status", "queued", "origin", "default",
                  "created_at", now, "enqueued_at", now, "description", "smoke()", "timeout", "180")
    # LLEN on a hash: Redis answers WRONGTYPE inside the batch (the reply-error path of the
    # raw hiredis batch); the exporter counts it in rq_exporter_skipped_total and goes on.
    redis_command(port, "HSET", "rq:queue:wrongtype", "not", "a list")


def get(url: str, accept: str | None = None, gzipped: bool = False) -> tuple[str, str]:
    """(content type, body) of a GET."""
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    if gzipped:
        request.add_header("Accept-Encoding", "gzip")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        body = response.read()
        content_type = response.headers.get("Content-Type", "")
        encoding = response.headers.get("Content-Encoding", "")
    if gzipped:
        if encoding != "gzip":
            raise Failed(f"asked for gzip, got Content-Encoding {encoding!r}")
        body = gzip.decompress(body)
    return content_type, body.decode("utf-8")


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for each sample line (the labels exactly as written)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            found[series] = float(value)
    return found


def expect(text: str, series: str, value: float | None, what: str) -> None:
    """``series`` is in the scrape, with ``value`` (None: any value)."""
    found = samples(text)
    if series not in found:
        raise Failed(f"{what}: no {series} in the scrape ({len(found)} samples)")
    if value is not None and found[series] != value:
        raise Failed(f"{what}: {series} is {found[series]:g}, expected {value:g}")


def check_scrapes(base: str) -> None:
    content_type, text = get(base + "/metrics")
    if not content_type.startswith("text/plain"):
        raise Failed(f"text scrape: Content-Type {content_type!r}")
    for what, body in (("text", text), ("text, gzip", get(base + "/metrics", gzipped=True)[1])):
        expect(body, "rq_up", 1, what)
        expect(body, 'rq_jobs{queue="default",status="queued"}', 1, what)
        expect(body, 'rq_queue_oldest_job_age_seconds{queue="default"}', None, what)
        expect(body, 'rq_exporter_skipped_total{reason="wrong_type"}', None, what)

    for what, accept in (("OpenMetrics", OPENMETRICS), ("Prometheus 3 Accept", PROMETHEUS_3)):
        content_type, body = get(base + "/metrics", accept)
        if not content_type.startswith("application/openmetrics-text"):
            raise Failed(f"{what}: Content-Type {content_type!r}")
        if not body.endswith("# EOF\n"):
            raise Failed(f"{what}: the body does not end with # EOF")
        expect(body, "rq_up", 1, what)
        expect(body, 'rq_jobs{queue="default",status="queued"}', 1, what)


def stop(process: subprocess.Popen) -> None:
    stop_process(process, 5)


def main() -> int:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("smoke_scrape: FAILED: redis-server is not on PATH", file=sys.stderr)
        return 1
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="rq-smoke-")
    processes: list[subprocess.Popen] = []
    exporter_log = os.path.join(workdir, "exporter.log")
    try:
        redis_port = free_port()
        with open(os.path.join(workdir, "redis.log"), "w") as log:
            processes.append(subprocess.Popen(
                [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", workdir,
                 "--save", "", "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT))
        wait_until(lambda: redis_command(redis_port, "PING") == b"+PONG\r\n", "redis-server", processes[0])
        write_rq_state(redis_port)

        port = free_port()
        with open(exporter_log, "w") as log:
            exporter = subprocess.Popen(
                [sys.executable, "-m", "rq_exporter_ng", "--host", "127.0.0.1", "--port", str(port),
                 "--redis-url", f"redis://127.0.0.1:{redis_port}/0"],
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                env={k: v for k, v in os.environ.items() if not k.startswith(("RQ_", "REDIS_"))})
        processes.append(exporter)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: get(base + "/metrics") is not None, "the exporter", exporter)
        check_scrapes(base)
        for process in reversed(processes):
            stop(process)
        if exporter.returncode != 0:
            raise Failed(f"the exporter exited with code {exporter.returncode} on SIGTERM")
    except (Failed, OSError) as failure:  # OSError: also an HTTP error or a refused connection
        print(f"smoke_scrape: FAILED: {failure}", file=sys.stderr)
        try:
            with open(exporter_log) as log:
                tail = log.read().strip().splitlines()[-5:]
        except OSError:
            tail = []
        for line in tail:
            print(f"    exporter: {line}", file=sys.stderr)
        return 1
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    versions = _versions()
    print(f"smoke_scrape: ok ({time.monotonic() - started:.1f} s; Python {sys.version.split()[0]}; {versions})")
    return 0


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("prometheus-client", "redis", "hiredis", "pydantic-settings", "pydantic", "pyyaml", "bcrypt"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


if __name__ == "__main__":
    sys.exit(main())
