"""Ports, bounded waits and processes on this machine (loopback only)."""

from __future__ import annotations

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


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """``condition()``'s first truthy value, polled every ``interval`` seconds; WaitTimeout after
    ``timeout`` seconds. Exceptions of ``condition`` propagate (a process that died, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM unless told), then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
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


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU time the process has used (/proc/PID/stat): less disturbed by a busy
    machine than wall time."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
