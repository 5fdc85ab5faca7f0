"""A busy registry's window read two ways, Redis' own time and this process': with its scores (the one
``ZRANGEBYSCORE ... WITHSCORES``) and by counts (concerns/timing/ranked.py).

    .venv/bin/python bench/window_reads.py                       # 40 sets of 25,000, 1,350 in the window
    .venv/bin/python bench/window_reads.py --sets 20 --per-second 50 --seconds 25   # a 1,000 jobs/s scrape's
    .venv/bin/python bench/window_reads.py --sets 2 --size 200 --runs 2             # a smoke run

Starts its own redis-server and fills --sets sorted sets of --size members with RQ's whole-second
scores, --per-second members a second. Each way reads the last --seconds seconds of every set in one
round trip through the exporter's batch (hiredis, as a scrape reads), best of --runs: the round
trip's wall time, the parsing into entries (``registry_reads._entries``; ``ranked.read`` and the read above)
and Redis' own time for the commands (``INFO commandstats``, one run after a CONFIG RESETSTAT). It
checks both ways give the same entries.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run by path: devkit is at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit import RedisServer
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concerns.timing import ranked
from rq_exporter_ng.concerns.timing.records import Probe, RegistryPlan, Window
from rq_exporter_ng.concerns.timing.registry_reads import _entries
from rq_exporter_ng.concerns.timing.windows import WINDOW_TOP, window_read

TTL = 500


def _error(command: tuple, error: Exception) -> None:
    raise AssertionError(f"{command!r}: {error!r}")


def fill(client, sets: int, size: int, per_second: int, top: int) -> None:
    for k in range(sets):
        pipe = client.pipeline(transaction=False)
        members = {f"{k:04d}-{i:08d}-4000-8000-000000000000": top - (size - 1 - i) // per_second
                   for i in range(size)}
        items = list(members.items())
        for start in range(0, size, 5_000):
            pipe.zadd(f"rq:finished:q{k}", dict(items[start:start + 5_000]))
        pipe.execute()


def read_both(client, plans: list[tuple[bytes, RegistryPlan]], counts: bool) -> tuple[float, float, list]:
    """One round trip of every set's read: (wall s, parsing s, every set's entries)."""
    replies: list[list] = []
    batch = Batch(_error)
    for key, rp in plans:
        group = ranked.commands(rp, key, WINDOW_TOP[rp.probe]) if counts else [window_read(rp, key)]
        batch.add_group(replies.append, group)
    start = time.perf_counter()
    batch.run(client)
    sent = time.perf_counter()
    if counts:
        out = []
        for (_, rp), group in zip(plans, replies):
            counted = ranked.read(rp, group)
            assert isinstance(counted, list), "the counts did not add up"
            out.append(counted + _entries(group[-1]))
    else:
        out = [_entries(group[0]) for group in replies]
    return sent - start, time.perf_counter() - sent, out


def redis_usec(client) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("usec", 0) for name in ("zrangebyscore", "zcount"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=40)
    parser.add_argument("--size", type=int, default=25_000, help="members a set")
    parser.add_argument("--per-second", type=int, default=50, help="members a second")
    parser.add_argument("--seconds", type=int, default=27, help="seconds the window reads")
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()
    if min(opts.sets, opts.size, opts.per_second, opts.seconds, opts.runs) <= 0:
        parser.error("every figure must be > 0")
    now = int(time.time())
    top = now + TTL  # the newest entries: jobs that ended this second
    low = top - opts.seconds + 1
    server = RedisServer().start()
    try:
        client = server.client()
        fill(client, opts.sets, opts.size, opts.per_second, top)
        window = (Window(TTL, low, top + 10),)
        plans = [(f"rq:finished:q{k}".encode(),
                  RegistryPlan(f"q{k}", f"q{k}".encode(), "finished", window, Probe.IN_WINDOW, top + 10, None, top))
                 for k in range(opts.sets)]
        results = {}
        for counts in (False, True, False, True):  # in turn, so that a busy moment slows both alike
            wall, parse, entries = min((read_both(client, plans, counts) for _ in range(opts.runs)),
                                       key=lambda r: r[0] + r[1])
            client.config_resetstat()
            read_both(client, plans, counts)
            usec = redis_usec(client)
            best = results.get(counts)
            if best is None or wall + parse < best[0] + best[1]:
                results[counts] = (wall, parse, usec, entries)
        with_scores, by_counts = results[False], results[True]
        assert with_scores[3] == by_counts[3], "the two reads gave different entries"
        entries = sum(map(len, with_scores[3]))
        print(f"{opts.sets} sets of {opts.size:,}, {opts.per_second} a second, a window of {opts.seconds} s: "
              f"{entries:,} entries (redis-server {client.info('server')['redis_version']}), best of {opts.runs}")
        for label, (wall, parse, usec, _) in (("with scores", with_scores), ("by counts", by_counts)):
            commands = opts.sets * (1 if label == "with scores" else 2 * opts.seconds + 2)
            print(f"  {label:<12} {commands:>6} commands  round trip {wall * 1e3:6.1f} ms  "
                  f"parsing {parse * 1e3:5.1f} ms  Redis' own time {usec / 1e3:5.1f} ms")
        print("  same entries both ways")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
