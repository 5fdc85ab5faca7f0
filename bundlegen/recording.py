"""rq-recording.yml: the recording rules (named level:metric:operations) the alerts and dashboards read."""

from __future__ import annotations

from bundlegen.checks import check_config
from bundlegen.config import Ctx, number
from bundlegen.names import (
    BUDGET_LEFT,
    FAILURE_RATIO,
    OBJECTIVE,
    PERIOD_GROUP,
    QUANTILES,
    RATE_WINDOW,
    RECORDING_GROUP,
    RETRY_RATE,
    RETRY_RATIO,
    WAIT_THRESHOLD,
    attempts_increase_name,
    backlog_name,
    bucket_rate_name,
    errors_name,
    increase_name,
    quantile_name,
    rate_name,
    retries_increase_name,
)
from bundlegen.slo import Objective, le_matcher, ratio_text, slo_config


def _completed(failed: str, finished: str) -> str:
    # A queue whose every job fails may have no finished series at all: count it as 0.
    return f"{failed} + ({finished} or 0 * {failed})"


def _error_ratio(failed: str, finished: str) -> str:
    return f"{failed}\n/\n({_completed(failed, finished)})"


def _raw_rate(c: Ctx, metric: str, window: str, matchers: str = "") -> str:
    selector = ", ".join(filter(None, [c.s, matchers]))
    return f"sum by ({c.q}) (rate({metric}{{{selector}}}[{window}]))"


def _success_errors(c: Ctx, window: str) -> list[dict]:
    """The success SLI over `window`: each rate recorded once (the ratio reads the failures thrice)."""
    failed, finished = rate_name("failed", window), rate_name("finished", window)
    rules = [] if window == RATE_WINDOW else [
        {"record": finished, "expr": _raw_rate(c, "rq_jobs_finished_total", window)},
        {"record": failed, "expr": _raw_rate(c, "rq_jobs_failed_total", window)},
    ]
    return rules + [{"record": errors_name(window), "labels": {"slo": "success"},
                     "expr": FAILURE_RATIO if window == RATE_WINDOW else _error_ratio(failed, finished)}]


def _wait_errors(c: Ctx, o: Objective, window: str) -> str:
    assert o.within is not None
    good = _raw_rate(c, "rq_job_wait_seconds_bucket", window, ", ".join(filter(None, [le_matcher(o.within),
                                                                                     o.matchers])))
    total = _raw_rate(c, "rq_job_wait_seconds_count", window, o.matchers)
    return f"1 - (\n  {good}\n  /\n  {total}\n)"


def _queues(c: Ctx, matchers: str) -> str:
    """1 for every queue the matchers select (rq_jobs has a series per queue of RQ's queue set)."""
    selector = ", ".join(filter(None, [c.s, 'status="queued"', matchers]))
    return f"group by ({c.q}) (rq_jobs{{{selector}}})"


def _alert_windows(config: dict) -> dict[str, str]:
    return {name: config["alerts"][name]["window"]
            for name in ("RQJobFailureRatioHigh", "RQQueueRetryRateHigh", "RQQueueBacklogGrowing")}


def _increases(c: Ctx, window: str) -> list[dict]:
    """Jobs failed, finished and completed over `window` (each read several times by an alert)."""
    inc_failed, inc_finished = increase_name("failed", window), increase_name("finished", window)
    return [
        {"record": inc_failed, "expr": f"sum by ({c.q}) (increase(rq_jobs_failed_total{{{c.s}}}[{window}]))"},
        {"record": inc_finished, "expr": f"sum by ({c.q}) (increase(rq_jobs_finished_total{{{c.s}}}[{window}]))"},
        {"record": increase_name("completed", window), "expr": _completed(inc_failed, inc_finished)},
    ]


def recording_rules(config: dict) -> dict:
    check_config(config)
    c, slo = Ctx.of(config), slo_config(config)
    finished, failed = rate_name("finished"), rate_name("failed")
    rules: list[dict] = [
        {"record": finished, "expr": _raw_rate(c, "rq_jobs_finished_total", RATE_WINDOW)},
        {"record": failed, "expr": _raw_rate(c, "rq_jobs_failed_total", RATE_WINDOW)},
        {"record": FAILURE_RATIO, "expr": _error_ratio(failed, finished)},
        {"record": RETRY_RATE, "expr": _raw_rate(c, "rq_job_retries_total", RATE_WINDOW)},
        {"record": RETRY_RATIO, "expr": f"{RETRY_RATE}\n/\n({RETRY_RATE} + ({_completed(failed, finished)} or 0 * "
                                        f"{RETRY_RATE}))"},
    ]
    for histogram in ("rq_job_duration_seconds", "rq_job_wait_seconds"):
        rules.append({"record": bucket_rate_name(histogram),
                      "expr": f"sum by ({c.q}, le) (rate({histogram}_bucket{{{c.s}}}[{RATE_WINDOW}]))"})
        for q in QUANTILES:
            rules.append({"record": quantile_name(histogram), "labels": {"quantile": f"{q:g}"},
                          "expr": f"histogram_quantile({q:g}, {bucket_rate_name(histogram)})"})
    windows = _alert_windows(config)
    ratio_window = windows["RQJobFailureRatioHigh"]
    rules += [
        {"record": backlog_name(windows["RQQueueBacklogGrowing"]),
         "expr": f"sum by ({c.q}) (delta(rq_jobs{{{c.s}, status=\"queued\"}}[{windows['RQQueueBacklogGrowing']}]))"},
        *_increases(c, ratio_window),
    ]
    retry_window = windows["RQQueueRetryRateHigh"]
    if retry_window != ratio_window:
        rules += _increases(c, retry_window)
    retried, completed = retries_increase_name(retry_window), increase_name("completed", retry_window)
    rules += [
        {"record": retried, "expr": f"sum by ({c.q}) (increase(rq_job_retries_total{{{c.s}}}[{retry_window}]))"},
        {"record": attempts_increase_name(retry_window), "expr": f"{retried} + ({completed} or 0 * {retried})"},
    ]

    # The objectives, one series per queue they apply to: an override's matchers exclude the queues
    # of every earlier entry, so each queue gets its first match, and the default the rest.
    slo_rules: list[dict] = []
    for kind, objectives in slo.objectives.items():
        for o in objectives:
            assert o.ratio is not None
            labels = {"slo": kind, "objective": o.percent}
            if o.within is not None:
                labels["wait_seconds"] = number(o.within)
            slo_rules.append({"record": OBJECTIVE, "labels": labels,
                              "expr": f"{ratio_text(o.percent)} * {_queues(c, o.matchers)}"})
            if o.within is not None:
                slo_rules.append({"record": WAIT_THRESHOLD, "labels": {"slo": kind},
                                  "expr": f"{number(o.within)} * {_queues(c, o.matchers)}"})
    # The SLIs' error ratios over each window of the burn-rate alerts. Failed jobs over completed
    # ones, for every queue (the objective series pick those with an objective); jobs that waited
    # longer than their objective's bound over the jobs started, for the queues with one.
    for window in slo.windows():
        if slo.objectives["success"]:
            slo_rules += _success_errors(c, window)
        for o in slo.objectives["wait"]:
            slo_rules.append({"record": errors_name(window), "labels": {"slo": "wait"},
                              "expr": _wait_errors(c, o, window)})

    period: list[dict] = []
    if slo.objectives["success"]:
        period += _success_errors(c, slo.period)
    for o in slo.objectives["wait"]:
        period.append({"record": errors_name(slo.period), "labels": {"slo": "wait"},
                       "expr": _wait_errors(c, o, slo.period)})
    if period:
        period.append({"record": BUDGET_LEFT,
                       "expr": f"1 - {errors_name(slo.period)} / on ({c.q}, slo) (1 - {OBJECTIVE})"})
    groups = [{"name": RECORDING_GROUP, "rules": rules + _merged(slo_rules)}]
    if period:
        # Rates over the whole period read every sample of it: evaluated less often.
        groups.append({"name": PERIOD_GROUP, "interval": slo.period_interval, "rules": _merged(period)})
    return {"groups": groups}


def _merged(rules: list[dict]) -> list[dict]:
    """One rule per recorded name and labels, where several entries of the objectives made one each
    (two wait thresholds, two overrides of one objective): their expressions joined with `or` (PromQL's
    loosest operator), exact as each selects queues no other does. promtool's lint calls such rules
    duplicates, and `promtool check rules --lint-fatal` refuses them."""
    exprs: dict[tuple, list[str]] = {}
    first: dict[tuple, dict] = {}
    for rule in rules:
        key = (rule["record"], tuple(sorted(rule.get("labels", {}).items())))
        exprs.setdefault(key, []).append(rule["expr"])
        first.setdefault(key, rule)
    return [first[key] if len(each) == 1 else {**first[key], "expr": "\nor\n".join(f"(\n{e}\n)" for e in each)}
            for key, each in exprs.items()]
