"""What one scrape holds at its peak, in this process: tracemalloc over a /metrics request.

    .venv/bin/python bench/peak.py --queues 10000 --workers 2000 --jobs 200000
    .venv/bin/python bench/peak.py --queues 10 --workers 5 --jobs 1000 --scrapes 2   # a smoke run

Starts its own redis-server, fills it with bench/dataset.py, builds the exporter's collector and
/metrics app as the server does, scrapes a few times to settle the state kept between scrapes,
then, over --scrapes scrapes (gzipped, as Prometheus asks; plain with --plain), prints the traced
memory before the scrape, its peak, and where the peak falls: the traced memory, and its peak
since the mark before, when each round of the read is sent and when its replies are handed out,
and as the body's first and last part are made. With --top N, the N biggest allocation sites alive at the traced peak
(a second pass: a snapshot is taken each time the traced memory passes the first pass's peak).
Runs with any environment's rq_exporter_ng (`/tmp/base/.venv/bin/python bench/peak.py`
measures that build).
"""

from __future__ import annotations

import argparse
import linecache
import statistics
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from wsgiref.util import setup_testing_defaults

if __package__ in (None, ""):  # run by path: devkit, bench.* are at the repository root, appended so
    # that another environment's installed rq_exporter_ng is the one measured
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.dataset import Size, fill
from devkit import RedisServer
from rq_exporter_ng import batch
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.connection import connect
from rq_exporter_ng.loading import load
from rq_exporter_ng.web import server

MB = 1024 * 1024


class Marks:
    """Traced memory at named points of one scrape."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, float]] = []  # (where, traced then, the peak since the last)
        self.peak = 0.0
        self.at: str | None = None  # the mark at which to take a snapshot
        self.snapshot: tracemalloc.Snapshot | None = None

    def mark(self, name: str) -> None:
        now, peak = tracemalloc.get_traced_memory()
        self.points.append((name, now / MB, peak / MB))
        self.peak = max(self.peak, peak / MB)
        if name == self.at:
            self.snapshot = tracemalloc.take_snapshot()
        tracemalloc.reset_peak()

    def clear(self) -> None:
        self.points.clear()
        self.peak = 0.0
        tracemalloc.reset_peak()


def instrument(marks: Marks) -> None:
    run = batch.Batch.run

    def marked_run(self, client) -> None:
        run(self, client)
        marks.mark(f"round {sum(1 for n, _, _ in marks.points if n.startswith('round')) // 2 + 1} read")

    batch.Batch.run = marked_run
    dispatch = batch.Batch._dispatch

    def marked_dispatch(self, *args, **kwargs) -> None:
        if kwargs.get("wait", True):  # the whole round sent: the replies not yet here are waited for
            marks.mark(f"round {sum(1 for n, _, _ in marks.points if n.startswith('round')) // 2 + 1} sent")
        dispatch(self, *args, **kwargs)

    batch.Batch._dispatch = marked_dispatch


def scrape(app: Callable, gzip: bool, marks: Marks) -> int:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "HTTP_ACCEPT": "text/plain"}
    if gzip:
        environ["HTTP_ACCEPT_ENCODING"] = "gzip"
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers: None)
    marks.mark("body made")
    return sum(map(len, body))


class _Marked:
    """The renderer's parts, marking the first and the last (holding none: a generator's loop
    variable would keep a part alive while the next is made)."""

    def __init__(self, parts, marks: Marks) -> None:
        self.parts, self.marks, self.first = parts, marks, True

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            part = next(self.parts)
        except StopIteration:
            self.marks.mark("last part made")
            raise
        if self.first:
            self.marks.mark("first part made")
            self.first = False
        return part


def wrap_parts(marks: Marks) -> None:
    render = server.iter_render_parts

    def marked(registry, accept):
        parts, content_type = render(registry, accept)
        return _Marked(iter(parts), marks), content_type

    server.iter_render_parts = marked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--scrapes", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="no gzip")
    parser.add_argument("--top", type=int, default=0, help="the biggest allocation sites at the peak")
    parser.add_argument("--at", help="with --top: at this mark ('round 2 sent', ...) rather than the peak")
    args = parser.parse_args()
    redis_server = RedisServer().start()
    try:
        fill("127.0.0.1", redis_server.port, Size(args.queues, args.workers, args.jobs))
        settings = load(["--redis-url", f"redis://127.0.0.1:{redis_server.port}/0"])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RQCollector(connect(settings), settings))
        app = server.make_metrics_app(registry)
        marks = Marks()
        instrument(marks)
        wrap_parts(marks)
        tracemalloc.start(8 if args.top else 1)  # before the first scrape: "before" is what stays between
        for _ in range(3):
            scrape(app, not args.plain, marks)
        peaks = []
        print(f"{args.queues} queues, {args.workers} workers, {args.jobs} jobs, "
              f"{'plain' if args.plain else 'gzipped'}; traced MB:")
        for _ in range(args.scrapes):
            marks.clear()
            marks.mark("before")
            size = scrape(app, not args.plain, marks)
            peaks.append(marks.peak)
            print(f"  peak {marks.peak:6.1f} ({size:,} bytes): "
                  + ", ".join(f"{name} {mb:.1f} (peak {peak:.1f} before)" for name, mb, peak in marks.points[1:]))
        print(f"median peak {statistics.median(peaks):.1f} MB")
        if args.top and args.at:
            marks.clear()
            marks.at = args.at
            scrape(app, not args.plain, marks)
            print(f"at {args.at}:")
            show(marks.snapshot, args.top)
        elif args.top:
            top(app, not args.plain, marks, max(peaks) * 0.9, args.top)
    finally:
        redis_server.cleanup()
    return 0


def top(app: Callable, gzip: bool, marks: Marks, near: float, count: int) -> None:
    """A snapshot each time the traced memory passes ``near`` MB and 2 % more than the last
    snapshot's (checked at every line of Python, so slow: minutes at 10,000 queues)."""
    best: list = [near, None]

    def trace(frame, event, arg):
        if event == "line":
            now = tracemalloc.get_traced_memory()[0] / MB
            if now > best[0]:
                best[1] = None  # the last snapshot's memory back before taking the next
                best[0], best[1] = now * 1.02, tracemalloc.take_snapshot()
        return trace

    sys.settrace(trace)
    try:
        scrape(app, gzip, marks)
    finally:
        sys.settrace(None)
    snapshot = best[1]
    if snapshot is None:
        print(f"no snapshot: {near:.1f} MB was not reached with tracing on")
        return
    print(f"at {best[0] / 1.02:.1f} MB traced:")
    show(snapshot, count)


def show(snapshot: tracemalloc.Snapshot | None, count: int) -> None:
    if snapshot is None:
        print("  no snapshot")
        return
    for stat in snapshot.statistics("traceback")[:count]:
        frames = [f for f in stat.traceback if "tracemalloc" not in f.filename][::-1][:4]  # the newest first
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {linecache.getline(f.filename, f.lineno).strip()[:70]}"
                            for f in frames)
        print(f"  {stat.size / MB:6.1f} MB {stat.count:8,}  {where}")


if __name__ == "__main__":
    sys.exit(main())
