"""bench/results/*.json -> the markdown tables of docs/benchmarks.md.

    .venv/bin/python bench/report.py            # every result file, one table each
    .venv/bin/python bench/report.py loopback-default rtt1ms-default
    .venv/bin/python bench/report.py --rows scaling-default scaling-notiming   # a row per run

Each row is one exporter in one run: median and p90 of the HTTP scrape, CPU of the exporter
process per scrape, Redis commands and Redis server time per scrape, round trips (with a
delay proxy), samples, peak RSS and how many times faster than rq-exporter in the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HEADER = ("| exporter | median ms | p90 ms | CPU ms | commands | Redis ms | round trips | writes (start) "
          "| samples | peak RSS MB | peer / ours |\n|---|---|---|---|---|---|---|---|---|---|---|")


def number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    return f"{value:,}"


def table(name: str) -> str:
    data = json.loads((RESULTS / f"{name}.json").read_text())
    lines = []
    for run in data["results"]:
        where = "loopback" if not run["delay_ms"] else f"+{run.get('added_rtt_ms', 0):.2f} ms round trip"
        ours = f" `{run['ours_args']}`" if run["ours_args"] else ""
        lines.append(f"**{name}**: {run['queues']:,} queues, {run['workers']:,} workers, {run['jobs']:,} jobs, "
                     f"{where}, Accept {run['accept']}, ours{ours or ' as shipped'}; {data['machine']['date']}, "
                     f"load average {run['load_average']}\n")
        lines.append(HEADER)
        peer = next((e for e in run["exporters"] if "3.1.0" in e["name"]), None)
        for e in run["exporters"]:
            ratio = f"{peer['median_ms'] / e['median_ms']:.1f}x" if peer and e is not peer else ""
            lines.append(
                f"| {e['name']} | {number(e['median_ms'])} | {number(e['p90_ms'])} | {number(e['cpu_ms'])} "
                f"| {number(e['commands'])} | {e['redis_usec'] / 1000:.1f} | {number(e['round_trips'])} "
                f"| {e['writes']} ({e['startup_writes']}) | {number(e['samples'])} | {e['peak_rss_mb']} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


ROWS_HEADER = ("| file | queues / workers / jobs | ours median (CPU) ms | rq-exporter median (CPU) ms "
               "| peer / ours | ours commands | ours peak RSS MB |\n|---|---|---|---|---|---|---|")


def rows_of(name: str, results: list[dict]) -> list[str]:
    """One row per run (the scaling table): our median and CPU, rq-exporter's, and the ratio."""
    lines = []
    for run in results:
        ours = next(e for e in run["exporters"] if "3.1.0" not in e["name"])
        peer = next((e for e in run["exporters"] if "3.1.0" in e["name"]), None)
        peer_time = f"{number(peer['median_ms'])} ({number(peer['cpu_ms'])})" if peer else ""
        ratio = f"{peer['median_ms'] / ours['median_ms']:.1f}x" if peer else ""
        lines.append(f"| {name} | {run['queues']:,} / {run['workers']:,} / {run['jobs']:,} "
                     f"| {number(ours['median_ms'])} ({number(ours['cpu_ms'])}) | {peer_time} | {ratio} "
                     f"| {number(ours['commands'])} | {ours['peak_rss_mb']} |")
    return lines


def rows(names: list[str]) -> str:
    lines = [ROWS_HEADER]
    for name in names:
        lines += rows_of(name, json.loads((RESULTS / f"{name}.json").read_text())["results"])
    return "\n".join(lines)


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["--rows"]:
        print(rows(arguments[1:]))
        return
    names = arguments or sorted(path.stem for path in RESULTS.glob("*.json"))
    print("\n".join(table(name) for name in names))


if __name__ == "__main__":
    main()
