"""bench/throughput.py's verdicts on issue 25's targets (pure: no Redis; the smoke run is in
test_bench_smoke.py)."""

from __future__ import annotations

from bench.throughput import target_lines, targets


def test_throughput_says_each_target_met_or_missed_by_how_much():
    def result(rate: int, **figures) -> dict:
        r = {"rate": rate, "counted": 10, "written": 10, "timed_share": figures.get("share", 1.0),
             "us_per_timed_job_cpu": figures.get("cpu", 4.0),
             "exporters": [{"median_ms": figures.get("median", 90.0), "peak_rss_mb": figures.get("rss", 80.0)}]}
        r["targets"] = targets(r)
        return r

    assert target_lines(result(1000, median=134.0, cpu=5.0)) == [
        "1,000 jobs/s: counted == written: 10 -> met",
        "1,000 jobs/s: scrape median (timing on) <= 100 ms: 134.0 -> MISSED by 34.0 ms, 34%",
        "1,000 jobs/s: exporter CPU per timed job <= 5 us: 5.0 -> met"]
    lines = target_lines(result(5000, share=0.267, rss=122.5))
    assert lines[1:] == ["5,000 jobs/s: timed share of counted >= 90 %: 26.7 -> MISSED by 63.3 %, 70%",
                         "5,000 jobs/s: peak RSS (timing on) <= 100 MB: 122.5 -> MISSED by 22.5 MB, 22%"]
    missing = result(100)
    missing["counted"] = 9
    assert targets(missing)[0]["met"] is False and len(targets(missing)) == 1
