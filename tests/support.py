"""Real parts for the tests: redis-server processes, RQ workers, the exporter, scrapes.

Nothing here is a mock: servers and workers are real processes on loopback ports. What the
benchmarks and the demo share with the tests (free ports, waits, stopping processes, the
redis-server launcher, RQ's timestamp format) is in devkit/; this module adds the test side:
the marker checks (tests/markers.py) and skipping on a missing tool.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from markers import TOOLS, needs
from prometheus_client.parser import text_string_to_metric_families

import devkit
from devkit import free_port, http_ok, patient, run, stop_process, wait_for, wait_process

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The tool's path; a missing tool skips locally and fails in CI (where make test installs it).
    The test must carry the marker the tool calls for (markers.TOOLS), installed or not."""
    if name in TOOLS:
        needs(TOOLS[name], f"uses {name}")
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (make test installs it: scripts/system-deps.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def rq_venv(name: str) -> Path:
    """An RQ version's environment of scripts/rq_venvs.sh; a missing one skips locally and fails in CI
    (where make test builds them all)."""
    venv = ROOT / ".venv-rq" / name
    if not (venv / "bin" / "python").exists() or not (venv / ".rq-venv-key").exists():
        message = f"no RQ {name} environment in {venv}: run `bash scripts/rq_venvs.sh`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return venv


def kill_if_alive(pid: int | None) -> None:
    """SIGKILL a process a test left running (a work horse, a frozen worker); it may be gone already."""
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class RedisServer(devkit.RedisServer):
    """devkit's redis-server, for a test: the test must be marked redis, and a missing
    redis-server skips it (fails it in CI)."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        needs("redis", "starts a redis-server (RedisServer)")
        super().__init__(*extra, port=port, binary=require_tool("redis-server"))


def worker_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class RQWorker:
    """A real `rq worker` process (same Python, so the same RQ version as the test)."""

    def __init__(self, url: str, *queues: str, burst: bool = False, name: str | None = None,
                 with_scheduler: bool = False, env: dict | None = None, extra_args: tuple[str, ...] = ()) -> None:
        needs("workers", "starts an RQ worker (RQWorker)")
        args = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--logging_level", "WARNING", *extra_args]
        if burst:
            args.append("--burst")
        if name:
            args += ["--name", name]
        if with_scheduler:
            args.append("--with-scheduler")
        args += list(queues or ("default",))
        self.name = name
        self.process = subprocess.Popen(args, env=worker_env(env), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)

    def wait(self, idle: float = 60) -> int:
        """The exit code of a burst worker, waiting while it makes progress (devkit.wait_process)."""
        return wait_process(self.process, idle)

    def kill(self) -> None:
        """SIGKILL: the worker leaves no trace of its exit, as in a crash or OOM kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process, 15)


class PortTaken(AssertionError):
    """The exporter could not bind the free port it was given: another process took it first."""


class Exporter:
    """The real exporter (`python -m rq_exporter_ng`) as a subprocess on a free port."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        # free_port() closes its socket before the exporter binds: a parallel test can take the
        # port in between. Only that start-up refusal is retried, on another port.
        for attempt in range(3):
            self.port = free_port()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rq_exporter_ng", "--host", "127.0.0.1", "--port", str(self.port), *args],
                env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            try:
                wait_for(self._healthy, what="exporter /healthz")
                return
            except PortTaken:
                if attempt == 2:
                    raise

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            error = self.process.stderr.read()
            kind = PortTaken if "cannot listen on" in error and "Address already in use" in error else AssertionError
            raise kind(f"exporter exited {self.process.returncode}: {error}")
        return self._serves()

    def _serves(self) -> bool:
        return http_ok(self.base + "/healthz")

    def scrape(self, timeout: float = 15) -> Samples:
        return scrape(self.base + "/metrics", timeout)

    def stop(self) -> str:
        """SIGTERM, wait for a clean exit; returns what it logged."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(patient(10))
        return self.process.stderr.read()



def short_timeouts() -> list[str]:
    """1 s connect and read timeouts, so that a refused or wrong connection fails fast, scaled by
    the load (devkit.patient) so that a right one still succeeds on a busy machine."""
    seconds = f"{patient(1):.1f}"
    return ["--redis-connect-timeout", seconds, "--redis-read-timeout", seconds]


def build_wheel(source: Path, out: Path) -> Path:
    """The wheel of the project at ``source`` (this checkout, say), built as pip would, with no
    warning of setuptools."""
    uv = ROOT / ".venv-tools" / "bin" / "uv"  # scripts/envs.sh installs it from locks/tools.txt
    assert uv.exists(), "run scripts/venv.sh (make test does) to install uv"
    # Sdist first, then the wheel from it (uv build's default): setuptools reuses the checkout's
    # build/lib, and a stale file there (rq_exporter/ of before the rename) went into the wheel.
    build = run([str(uv), "build", "--no-progress", "-o", str(out), str(source)], text=True, idle=120)
    assert build.returncode == 0, build.stderr
    # Deprecations reach the log as SetuptoolsDeprecationWarning / "is deprecated" blocks.
    assert "deprecat" not in build.stderr.lower(), build.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


def run_exporter(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """`python -m rq_exporter_ng ARGS` to its end (a start-up refused, --help, ...), with no RQ_*
    variable of the caller's shell but those of ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RQ_")}
    full_env.update(env or {})
    return run([sys.executable, "-m", "rq_exporter_ng", *args], cwd=ROOT, env=full_env,
               capture_output=True, text=True, idle=timeout)


def main_in_process(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """The command's main (rq_exporter_ng.cli) in this process, for a start-up it refuses: what
    run_exporter says, without an interpreter's start (~0.5 s a case, in each of four suites). The
    environment holds no RQ_* variable but those of ``env``; the logging main set up is undone. In
    a thread, so that a start it does not refuse fails the test instead of serving for ever."""
    import contextlib
    import io
    import logging
    import threading

    from rq_exporter_ng import cli

    out, err, code = io.StringIO(), io.StringIO(), []
    saved_env = dict(os.environ)
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved_env.items() if not k.startswith("RQ_")}, **(env or {}))

    def run() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code.append(cli.main(list(args)))

    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout)
        assert code, f"rq-exporter {' '.join(args)} did not stop within {timeout} s: {err.getvalue()}"
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:], _ = saved_logging
        root.setLevel(saved_logging[1])
    return subprocess.CompletedProcess(["rq-exporter", *args], code[0], out.getvalue(), err.getvalue())


class Samples(dict):
    """{(name, frozenset(labels.items())): value} with helpers for the assertions."""

    def value(self, name: str, **labels: str) -> float:
        return self[(name, frozenset(labels.items()))]

    def get_value(self, name: str, default=None, **labels: str):
        return self.get((name, frozenset(labels.items())), default)

    def series(self, name: str) -> dict[frozenset, float]:
        return {labels: v for (n, labels), v in self.items() if n == name}

    def names(self) -> set[str]:
        return {name for name, _ in self}


def parse_samples(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str, timeout: float = 15) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return parse_samples(response.read().decode())


@contextmanager
def running(*things) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            thing.stop()
