"""Ports, bounded waits and processes on this machine (loopback only)."""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What wait_for raises: an AssertionError, so that a test reports it as a failed expectation."""


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def patience() -> float:
    """How many times longer than on an idle machine a bounded wait may take now: the runnable
    processes per core (the 1-minute load average), at least 1, times $RQ_TEST_PATIENCE (default 1).
    A wait that succeeds returns as soon as it does, so a generous bound costs only a failing run's
    time; a fixed one fails correct runs on a busy two-core machine."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return max(1.0, load) * float(os.environ.get("RQ_TEST_PATIENCE") or 1)


def patient(seconds: float) -> float:
    """``seconds`` scaled by patience(): a bound for a wait that has no progress to watch."""
    return seconds * patience()


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """``condition()``'s first truthy value, polled every ``interval`` seconds; WaitTimeout after
    ``timeout`` seconds as an idle machine counts them (patient()). Exceptions of ``condition``
    propagate (a process that died, say)."""
    start = time.monotonic()
    while True:
        value = condition()
        if value:
            return value
        waited = time.monotonic() - start
        if waited > timeout and waited > patient(timeout):
            raise WaitTimeout(f"timed out after {waited:.0f}s (bound {timeout}s, scaled by load) waiting for {what}")
        time.sleep(interval)


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (RQ's work horses)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def wait_process(process: subprocess.Popen, idle: float = 60.0) -> int:
    """``process``'s exit code, waiting as long as it makes progress: subprocess.TimeoutExpired only
    after ``idle`` seconds (patient()) in which neither it nor a child it reaped used any CPU. A
    burst worker on a loaded machine gets slower, not stuck; a hung one is still caught. Its pipes
    are left to the caller (see communicate)."""
    return _progressing(process, idle, lambda: process.wait(timeout=1.0))


def communicate(process: subprocess.Popen, idle: float = 60.0, input: str | bytes | None = None):
    """Popen.communicate() bounded by progress instead of wall time (see wait_process)."""
    pending = [input]

    def step():
        data, pending[0] = pending[0], None  # sent with the first call only
        return process.communicate(data, timeout=1.0)

    return _progressing(process, idle, step)


def _progressing(process: subprocess.Popen, idle: float, step: Callable[[], T]) -> T:
    """step()'s value, calling it again while it times out and the process still uses CPU."""
    last_cpu, last_change = -1.0, time.monotonic()
    while True:
        try:
            return step()
        except subprocess.TimeoutExpired:
            pass
        try:
            cpu = _tree_cpu(process.pid)
        except OSError:  # exited between the two calls
            continue
        now = time.monotonic()
        if cpu != last_cpu:
            last_cpu, last_change = cpu, now
        elif now - last_change > patient(idle):
            raise subprocess.TimeoutExpired(process.args, now - last_change)


def run(argv: list[str], idle: float = 60.0, check: bool = False, input: str | bytes | None = None,
        capture_output: bool = True, **popen) -> subprocess.CompletedProcess:
    """subprocess.run() bounded by progress instead of wall time (see wait_process): the process is
    killed after ``idle`` seconds without any CPU use. Output is captured unless told otherwise."""
    if capture_output:
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    with subprocess.Popen(argv, **popen) as process:
        try:
            out, err = communicate(process, idle, input)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def stop_process(process: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM unless told), then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(patient(timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether a GET of ``url`` answers 200 (False for any connection or HTTP error)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def proc_status(pid: int | str, field: str) -> int:
    """A number of /proc/PID/status (``"self"`` for this process): ``VmRSS`` and ``VmHWM`` in KiB,
    ``Threads``, ..."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


class CpuMeter:
    """CPU time of one process and all its threads, the ones gone too, to the nanosecond where
    this machine lets us: the process is moved into a cgroup of its own (cgroup v1's cpuacct or
    cgroup v2; needs root) whose counter we read. Otherwise /proc/PID/stat, in clock ticks
    (10 ms): over 4 scrapes a CPU figure per scrape is then +-2.5 ms, which at 15,000 jobs a
    scrape is +-0.17 us a job, the size of the differences a benchmark wants to see.
    ``source`` says which; ``close()`` puts the process back and removes the cgroup."""

    _V1 = "/sys/fs/cgroup/cpuacct"
    _V2 = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.source = "/proc/PID/stat (10 ms ticks)"
        self._dir: str | None = None
        self._read: Callable[[str], float] | None = None
        self._parent = ""
        for parent, counter, read in self._candidates():
            for stale in glob.glob(os.path.join(parent, "rq-bench-*")):  # a run that died left it
                with contextlib.suppress(OSError):  # not empty: its process runs
                    os.rmdir(stale)
            path = os.path.join(parent, f"rq-bench-{pid}")
            try:
                os.mkdir(path)
            except OSError:
                continue
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
                read(path)
            except OSError:
                os.rmdir(path)
                continue
            self._dir, self._read, self._parent = path, read, parent
            self.source = f"cgroup {counter}"
            return

    def _candidates(self) -> list[tuple[str, str, Callable[[str], float]]]:
        out: list[tuple[str, str, Callable[[str], float]]] = []
        if os.path.exists(os.path.join(self._V1, "cpuacct.usage")):
            out.append((self._V1, "cpuacct.usage (ns)", _cpuacct_usage))
        for root in self._V2:
            if os.path.exists(os.path.join(root, "cgroup.subtree_control")):
                out.append((root, "cpu.stat usage_usec", _cpu_stat_usage))
                break
        return out

    def seconds(self) -> float:
        if self._dir is not None and self._read is not None:
            return self._read(self._dir)
        return cpu_seconds(self.pid)

    def close(self) -> None:
        if self._dir is None:
            return
        try:
            with open(os.path.join(self._parent, "cgroup.procs"), "w") as f:
                f.write(str(self.pid))
        except OSError:  # gone already: the cgroup is empty
            pass
        try:
            os.rmdir(self._dir)
        except OSError:
            pass
        self._dir = None


class Metered:
    """What a benchmark reads of a process it started and watches (its ``process``): CPU through a
    CpuMeter made at the first call, peak RSS, and a stop that also puts the process back out of
    the meter's cgroup. Mixed into bench/'s dataclasses, which declare ``process`` and ``meter``."""

    process: subprocess.Popen | None
    meter: CpuMeter | None

    def cpu_seconds(self) -> float:
        assert self.process is not None
        if self.meter is None:
            self.meter = CpuMeter(self.process.pid)
        return self.meter.seconds()

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        return proc_status(self.process.pid, "VmHWM") / 1024

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 10)
        if self.meter is not None:
            self.meter.close()


def _cpuacct_usage(path: str) -> float:
    with open(os.path.join(path, "cpuacct.usage")) as f:
        return int(f.read()) / 1e9


def _cpu_stat_usage(path: str) -> float:
    with open(os.path.join(path, "cpu.stat")) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    raise OSError(f"{path}/cpu.stat has no usage_usec")


_PRECOMPILE = """
import compileall, importlib.util, os, sys, sysconfig
places = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
for name in ("rq_exporter_ng", "rq_exporter"):  # an editable install's sources are elsewhere
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.origin:
        places.add(os.path.dirname(spec.origin))
sys.exit(0 if all(compileall.compile_dir(p, quiet=2, workers=0) for p in sorted(places)) else 1)
"""


@functools.cache  # once a run: compileall would only find nothing to do
def precompile(executable: str) -> None:
    """Writes the .pyc files of the environment that runs ``executable`` (a Python or a script of
    its bin/), as pip does when it installs. An environment made with PYTHONDONTWRITEBYTECODE
    (the test runs) has none, and an exporter started from it compiles every module at start: a
    benchmark then reports ~14 MB more peak RSS and a less steady CPU figure, for nothing a user
    would see."""
    python = executable
    if not os.path.basename(executable).startswith("python"):
        with open(executable, "rb") as f:
            first = f.readline()
        if first.startswith(b"#!"):
            python = first[2:].decode().strip().split()[0]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run([python, "-c", _PRECOMPILE], env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"compiling {python}'s environment failed: {result.stderr[-2000:]}")


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU time the process has used (/proc/PID/stat): less disturbed by a busy
    machine than wall time."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
