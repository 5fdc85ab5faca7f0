"""devkit.CpuMeter: the CPU figures of bench/run.py and bench/throughput.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import devkit


def test_cpu_meter_counts_threads_gone_and_agrees_with_the_kernel_ticks():
    """The benchmarks' CPU figures: a thread per scrape (the exporter's HTTP server) is gone by the
    time they are read, and its time must still be there; a cgroup's counter must agree with
    /proc/PID/stat's ticks (which it refines to the nanosecond)."""
    burn = ("import threading, time\n"
            "def spin():\n"
            "    end = time.process_time() + 0.3\n"
            "    while time.process_time() < end: pass\n"
            "input()\n"
            "t = threading.Thread(target=spin); t.start(); t.join()\n"
            "print('done', flush=True); input()\n")
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    meter = devkit.CpuMeter(child.pid)
    try:
        start, ticks_start = meter.seconds(), devkit.cpu_seconds(child.pid)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        used, ticks_used = meter.seconds() - start, devkit.cpu_seconds(child.pid) - ticks_start
        assert 0.29 <= used < 1.0, (meter.source, used)
        assert abs(used - ticks_used) <= 0.02 + 1e-9, (meter.source, used, ticks_used)  # a tick each end
    finally:
        child.kill()
        child.wait()
        meter.close()
    assert not list(Path("/sys/fs/cgroup").glob(f"**/rq-bench-{child.pid}"))
