"""bench/throughput.py's report: each rate's figures printed, issue 25's targets met or missed by how
much, the summary table, and the problems --check fails on."""

from __future__ import annotations

from bench.writer import TICK


def print_rate(r: dict) -> None:
    w = r["writer"]
    load = r["load_average"]
    print(f"\n{r['rate']:,} jobs/s over {r['queues']} queues, {r['failure_share']:.0%} failed, {r['duration_s']:g} s, "
          f"a scrape every {r['interval_s']:g} s ({r['scrapes']} scrapes); load average {load['start'][0]} -> "
          f"{load['end'][0]}")
    print(f"  writer: {w['jobs']:,} jobs in {w['active_seconds']} s, {w['achieved_rate']:,} jobs/s achieved "
          f"(ticks of {TICK * 1e3:g} ms written in {w['median_tick_ms']} ms median, {w['slowest_tick_ms']} ms at most, "
          f"{w['late_ticks']} of {w['ticks']} ticks late, at most "
          f"{w['max_behind_jobs']:,} jobs behind; {w['cleanups']} cleanups removed {w['cleanup_removed']:,} entries); "
          f"Redis {r['redis']['used_memory_mb']} MB, {r['redis']['keys']:,} keys")
    share = f"{r['timed_share']:.1%}" if r["timed_share"] is not None else "-"
    print(f"  written after the first scrape {r['written']:,}, counted {r['counted']:,}, timed {r['timed']:,} "
          f"({share} of counted), not timed {r['not_timed']:,}"
          f"{'' if r['consistent'] else '  (timed + not timed != counted!)'}")
    print(f"  {'exporter':<11} {'median ms':>10} {'max ms':>9} {'own median ms':>14} {'CPU ms/scrape':>14} "
          f"{'Redis CPU ms':>13} {'first ms':>9} {'samples':>8} {'peak RSS MB':>12}")
    for e in r["exporters"]:
        print(f"  {e['name']:<11} {e['median_ms']:>10} {e['max_ms']:>9} {e['own_median_ms']:>14} {e['cpu_ms']:>14} "
              f"{e.get('redis_cpu_ms', '-'):>13} {e['first_ms']:>9} {e['samples']:>8} {e['peak_rss_mb']:>12}")
    print(f"  per timed job ({r['timed_per_scrape']:,} per scrape): {r['us_per_timed_job']} us of wall time, "
          f"{r['us_per_timed_job_cpu']} us of CPU; per counted job {r['us_per_counted_job']} us of wall time")
    if "peer" in r:
        p = r["peer"]
        print(f"  timing on - peer ({p['exporter']}, counted {p['counted']:,}): {p['median_ms_difference']} ms median, "
              f"{p['cpu_ms_difference']} ms CPU per scrape; per newly failed job ({p['failed_per_scrape']:,.0f} per "
              f"scrape) {p['us_per_failed_job']} us of wall time, {p['us_per_failed_job_cpu']} us of CPU; "
              f"CPU a scrape timing on / peer {p.get('cpu_ratio')}, median timing on / peer {p.get('median_ratio')}")
    print(f"  targets (load average {load['start'][0]} -> {load['end'][0]}):")
    for line in target_lines(r):
        print(f"    {line}")


# Issue 25's targets, per rate: (what, the figure in a result, the bound, "max" or "min", unit).
TARGETS: dict[int, tuple[tuple[str, str, float, str, str], ...]] = {
    1000: (("scrape median (timing on)", "on_median_ms", 100.0, "max", "ms"),
           ("exporter CPU per timed job", "us_per_timed_job_cpu", 5.0, "max", "us")),
    5000: (("timed share of counted", "timed_percent", 90.0, "min", "%"),
           ("peak RSS (timing on)", "on_peak_rss_mb", 100.0, "max", "MB")),
}


def targets(r: dict) -> list[dict]:
    """Each target of this rate against its figure: met, or missed by how much. Every rate has
    one: every job counted exactly."""
    on = r["exporters"][0]
    figures = {"on_median_ms": on["median_ms"], "us_per_timed_job_cpu": r["us_per_timed_job_cpu"],
               "timed_percent": None if r["timed_share"] is None else round(r["timed_share"] * 100, 1),
               "on_peak_rss_mb": on["peak_rss_mb"]}
    out = [{"target": "counted == written", "value": r["counted"], "bound": r["written"],
            "met": r["counted"] == r["written"], "missed_by": abs(r["counted"] - r["written"]), "unit": "jobs"}]
    for what, name, bound, kind, unit in TARGETS.get(r["rate"], ()):
        value = figures[name]
        met = value is not None and (value <= bound if kind == "max" else value >= bound)
        missed = None if value is None or met else round(abs(value - bound), 2)
        out.append({"target": f"{what} {'<=' if kind == 'max' else '>='} {bound:g} {unit}", "value": value,
                    "bound": bound, "met": met, "missed_by": missed, "unit": unit})
    return out


def target_lines(r: dict) -> list[str]:
    lines = []
    for t in r["targets"]:
        if t["met"]:
            verdict = "met"
        elif t["missed_by"] is None:
            verdict = "missed (no figure)"
        else:
            share = f", {t['missed_by'] / t['bound']:.0%}" if t["bound"] else ""
            verdict = f"MISSED by {t['missed_by']:,} {t['unit']}{share}"
        lines.append(f"{r['rate']:,} jobs/s: {t['target']}: {t['value']:,} -> {verdict}" if t["value"] is not None
                     else f"{r['rate']:,} jobs/s: {t['target']}: - -> {verdict}")
    return lines


TABLE_HEADER = ("| jobs/s | achieved | written | counted | timed (% of counted) | not timed | on median / max ms "
                "| off median / max ms | us per timed job (CPU) | peak RSS on / off MB |\n"
                "|---|---|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
    on, off = r["exporters"][:2]
    share = f" ({r['timed_share']:.1%})" if r["timed_share"] is not None else ""
    return (f"| {r['rate']:,} | {r['writer']['achieved_rate']:,.0f} | {r['written']:,} | {r['counted']:,} "
            f"| {r['timed']:,}{share} | {r['not_timed']:,} | {on['median_ms']} / {on['max_ms']} "
            f"| {off['median_ms']} / {off['max_ms']} | {r['us_per_timed_job']} ({r['us_per_timed_job_cpu']}) "
            f"| {on['peak_rss_mb']} / {off['peak_rss_mb']} |")


def problems(r: dict) -> list[str]:
    found = []
    if r["counted"] != r["written"]:
        found.append(f"{r['rate']} jobs/s: counted {r['counted']} != written {r['written']}")
    if not r["consistent"]:
        found.append(f"{r['rate']} jobs/s: timed + not timed != counted in some scrape")
    if r["first_scrape"]["counted"]:
        found.append(f"{r['rate']} jobs/s: the first scrape counted {r['first_scrape']['counted']} jobs of history")
    if r["writer"]["achieved_rate"] < 0.95 * r["rate"]:
        found.append(f"{r['rate']} jobs/s: the writer achieved only {r['writer']['achieved_rate']} jobs/s")
    return found
