"""What one steady scrape costs in instructions (valgrind's count), not in time: a figure that does not
move with the machine, for comparing two builds when the change is smaller than this VM's swings
(the same build's CPU per timed job moved 4.0-8.9 us within one session: docs/benchmarks.md, session 12).

    .venv/bin/python bench/instructions.py                        # 1,000 jobs/s over 20 queues, 15 s scrapes
    .venv/bin/python bench/instructions.py --checkout /tmp/other  # another build's rq_exporter_ng, same data
    .venv/bin/python bench/instructions.py --rate 50 --scrapes 2  # a smoke run

Starts its own redis-server and plays ``bench/timing.py --steady``: jobs end at --rate a second over
--queues queues (the writer's fields, 5 % failed), written between scrapes --interval seconds apart on
a virtual clock fixed in advance, so that every run reads the same data. The exporter runs in a child
process under ``valgrind --tool=cachegrind --cache-sim=no`` (~20x slower) with PYTHONHASHSEED=0; it
scrapes (collector and exposition, no HTTP) when this process has written the next interval. Each
exporter (timing on, and ``--no-job-timing``) runs twice, to --scrapes and to one scrape fewer: the
difference is the last scrape's instructions, start-up and earlier scrapes left out (the build and
its environment are compiled first, so that no run compiles a module; the child says which
``rq_exporter_ng`` it imported, and a run of the wrong build stops the benchmark). Per timed job:
(on - off) / jobs a scrape, medians of --repeat runs. The collector is off in the child (its passes
fall in one run's measured scrape and not another's). Runs of one build agree to ~0.5 %.

Instructions are not time: a cache miss costs more than an add, an in-cache copy less. And the
child, ~20x slower under valgrind, finds more of Redis' replies waiting at each read than the
exporter does: hiredis moving its buffer was 12 % of the instructions here and ~2 % of the time
(docs/benchmarks.md, session 12). For deciding whether a change does less work, not how much time
it saves.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path: devkit, bench.* are at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
START = 1_800_000_000.5  # the virtual clock's first scrape (2027-01-15): the same scores in every run
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(url: str, interval: float, checkout: Path | None, args: list[str]) -> None:
    """The exporter: the floor scrape, then one scrape each time the parent says the next interval is
    written ("go"), its clock moved on by ``interval``; "ready" after each."""
    if checkout is not None:
        sys.path.insert(0, str(checkout))  # before this repository (and the editable install)
    # Only the build's own modules are imported here, not bench/timing.py's VirtualClock and Scraper
    # (the same few lines): that module imports this repository's rq_exporter_ng, or, past the line
    # above, the other build's bench/, which may be older or absent.
    # The collector's passes fall where the allocation counts say, a whole-heap one in one run's
    # measured scrape and not in the next's: off, so that only the scrape's own work is counted.
    gc.disable()
    from prometheus_client import CollectorRegistry

    from rq_exporter_ng import reader
    from rq_exporter_ng.collector import RQCollector
    from rq_exporter_ng.connection import connect
    from rq_exporter_ng.loading import load
    from rq_exporter_ng.web.exposition import render

    class Clock:
        now = START

        def time(self) -> float:
            return self.now

    clock = Clock()
    reader.time = clock  # type: ignore[assignment]  # reader.py reads time.time() once a scrape
    settings = load(["--redis-url", url, *args])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RQCollector(connect(settings), settings))
    render(registry, None)
    import rq_exporter_ng

    print("ready", rq_exporter_ng.__file__, flush=True)  # which build this is: the parent checks
    for line in sys.stdin:
        if line.strip() != "go":
            break
        clock.now += interval
        render(registry, None)
        print("ready", flush=True)


def run(server, options: argparse.Namespace, scrapes: int, args: list[str]) -> int:
    """Instructions of an exporter process that scrapes ``scrapes`` times after its floor scrape."""
    from bench.timing import write_steady
    from bench.writer import Stamps

    where = (options.checkout or ROOT) / "rq_exporter_ng"

    r = server.client()
    r.flushall()
    for q in range(options.queues):
        r.sadd("rq:queues", f"rq:queue:q{q:03d}")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--child", server.url, "--interval",
               str(options.interval), *(["--checkout", str(options.checkout)] if options.checkout else []),
               "--", *args]
    # stderr to a file: a child that logs much would fill a pipe read only at its end, and block.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   text=True, env=env, cwd=ROOT)
        assert process.stdin is not None and process.stdout is not None
        stamps, rng, serial, now = Stamps(), random.Random(1), 0, START
        per_scrape = int(options.rate * options.interval)
        problem = None
        try:
            for k in range(scrapes + 1):
                line = process.stdout.readline().split()
                if line[:1] != ["ready"]:
                    problem = f"said {' '.join(line)!r} before scrape {k}"
                    break
                if k == 0 and not Path(line[1]).resolve().is_relative_to(where.resolve()):
                    problem = f"imported {line[1]}, not the build in {where}"
                    break
                if k == scrapes:
                    break
                write_steady(r, stamps, rng, options.queues, per_scrape, now, options.interval, serial)
                serial, now = serial + per_scrape, now + options.interval
                process.stdin.write("go\n")
                process.stdin.flush()
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                problem = problem or "took more than 600 s"
        log.seek(0)
        errors = log.read()
    found = _REFS.findall(errors)
    if problem or process.returncode != 0 or not found:
        raise SystemExit(f"the exporter under valgrind failed ({problem or f'exit {process.returncode}'}):\n"
                         f"{errors[-2000:]}")
    return int(found[-1].replace(",", ""))


def _positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number above 0 (argparse says what is wrong, in one line, exit 2)."""
    def parse(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not above 0")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its error: "invalid int value"
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=_positive(int), default=1000, help="jobs ending a second")
    parser.add_argument("--queues", type=_positive(int), default=20)
    parser.add_argument("--interval", type=_positive(float), default=15.0, help="seconds between scrapes (virtual)")
    parser.add_argument("--scrapes", type=int, default=4, help="the scrape measured is this one (at least 2)")
    parser.add_argument("--repeat", type=_positive(int), default=3, help="runs of each exporter; the median is taken")
    parser.add_argument("--checkout", type=Path, help="import rq_exporter_ng from this directory instead")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child, options.interval, options.checkout, options.args)
        return
    if options.scrapes < 2:
        parser.error("--scrapes must be at least 2")
    if int(options.rate * options.interval) < 1:
        parser.error("--rate x --interval must end at least one job a scrape")
    if options.checkout is not None:
        options.checkout = options.checkout.resolve()  # the child runs elsewhere
        if not (options.checkout / "rq_exporter_ng" / "__init__.py").is_file():
            parser.error(f"--checkout {options.checkout}: no rq_exporter_ng/ there")
    from devkit import RedisServer, precompile

    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (Debian: apt-get install valgrind)")
    where = options.checkout or ROOT
    # Compiled first: a build without .pyc files would compile every module in the first run,
    # and that run's count would hold it (the difference of two runs would not).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(where / "rq_exporter_ng")], check=True, env=env)
    precompile(sys.executable)

    per_scrape = int(options.rate * options.interval)
    print(f"instructions of scrape {options.scrapes} (after its floor scrape): {options.rate:,} jobs/s over "
          f"{options.queues} queues, a scrape every {options.interval:g} s (virtual), {per_scrape:,} jobs a "
          f"scrape; rq_exporter_ng from {where}")
    server = RedisServer().start()
    last: dict[str, list[int]] = {"timing on": [], "timing off": []}
    try:
        for _ in range(options.repeat):
            for label, args in (("timing on", []), ("timing off", ["--no-job-timing"])):
                last[label].append(run(server, options, options.scrapes, args)
                                   - run(server, options, options.scrapes - 1, args))
    finally:
        server.stop()
    for label, counts in last.items():
        print(f"  {label:<10}  median {statistics.median(counts) / 1e6:8.2f} M instructions a scrape  "
              f"(runs: {', '.join(f'{c / 1e6:.2f}' for c in counts)})")
    per_job = (statistics.median(last["timing on"]) - statistics.median(last["timing off"])) / per_scrape
    print(f"  per timed job: {per_job:,.0f} instructions (medians; on - off over {per_scrape:,} jobs)")


if __name__ == "__main__":
    main()
