"""rq-alerts.yml: the threshold alerts of `alerts:` and the multi-window, multi-burn-rate alerts of
`slo:`, each with its annotations (runbook and dashboard links)."""

from __future__ import annotations

from bundlegen.checks import check_config
from bundlegen.config import Ctx, cluster_label, number, seconds
from bundlegen.names import GROUP, OBJECTIVE, SLO_ALERTS, SLO_GROUP, errors_name
from bundlegen.slo import BurnRate, period_left, slo_config
from bundlegen.thresholds import RULES

# --- the burn-rate alerts --------------------------------------------------------------------------

def _burn(c: Ctx, kind: str, window: str, carry: str = "") -> str:
    group_left = f" group_left ({carry})" if carry else ""
    return (f"{errors_name(window)}{{slo=\"{kind}\"}}\n  / on ({c.q}, slo){group_left}\n"
            f"(1 - {OBJECTIVE}{{slo=\"{kind}\"}})")


def _burn_rate_alert(c: Ctx, kind: str, b: BurnRate, period: str) -> tuple[str, str, str]:
    carry = "objective, wait_seconds" if kind == "wait" else "objective"
    expr = (f"{_burn(c, kind, b.long, carry)}\n> {number(b.factor)}\n"
            f"and on ({c.q}, slo)\n{_burn(c, kind, b.short)}\n> {number(b.factor)}")
    spent = b.factor * seconds(b.long) / seconds(period)
    budget = (f"at {b.factor:g}x a {period} error budget lasts {period_left(period, b.factor)}; "
              f"this alert fires once {spent:.0%} of it is spent within {b.long}")
    if kind == "success":
        return (
            expr,
            "An RQ queue burns its success objective's error budget fast.",
            "Queue {{ $labels.queue }} ({{ $labels.instance }}) fails {{ $value | humanize }}x as many jobs as its "
            f"{{{{ $labels.objective }}}} % success objective allows, over the last {b.long} and {b.short} ({budget}).",
        )
    return (
        expr,
        "Jobs of an RQ queue wait too long for their objective.",
        "Jobs of queue {{ $labels.queue }} ({{ $labels.instance }}) wait longer than {{ $labels.wait_seconds }} s "
        "{{ $value | humanize }}x as often as its objective allows ({{ $labels.objective }} % start within "
        f"{{{{ $labels.wait_seconds }}}} s), over the last {b.long} and {b.short} ({budget}).",
    )


# Alerts about rq cron and rq-scheduler: their notifications open RQ / Schedules.
SCHEDULE_ALERTS = ("RQCronSchedulerDown", "RQCronJobLate", "RQSchedulerJobsOverdue")


def dashboard_url(base: str, description: str, name: str = "", cluster: str = "") -> str:
    """The Grafana dashboard an alert's notification links to, with its variables set: a schedule
    alert opens RQ / Schedules, a burn-rate alert RQ / Service levels, an alert about a queue (its
    description names the queue label) RQ / Queue, others RQ / Overview; the queue is set wherever
    the alert has one."""
    variables = "var-job={{ $labels.job }}&var-instance={{ $labels.instance }}"
    if cluster:
        # The label is the alert's own in a Thanos or Mimir ruler; on each cluster's Prometheus it is
        # an external label, which the annotation's $labels does not hold yet when it is rendered.
        variables = f"var-cluster={{{{ or $labels.{cluster} $externalLabels.{cluster} }}}}&{variables}"
    board = "rq-overview"
    if name in SCHEDULE_ALERTS:
        board = "rq-schedules"
    elif "$labels.queue" in description:
        board = "rq-slo" if name in SLO_ALERTS.values() else "rq-queue"
    if "$labels.queue" in description:
        variables += "&var-queue={{ $labels.queue }}"
    return f"{base}/{board}?{variables}"


def _alert(name: str, built: tuple[str, str, str], for_: str, labels: dict, config: dict) -> dict:
    expr, summary, description = built
    runbook = config.get("runbook_url") or ""
    dashboards = (config.get("dashboard_url") or "").rstrip("/")
    annotations = {"summary": summary, "description": description}
    if runbook:
        annotations["runbook_url"] = f"{runbook}#{name.lower()}"
    if dashboards:
        annotations["dashboard_url"] = dashboard_url(dashboards, description, name, cluster_label(config))
    return {"alert": name, "expr": expr, "for": for_, "labels": labels, "annotations": annotations}


def rules(config: dict) -> dict:
    check_config(config)
    c, slo = Ctx.of(config), slo_config(config)
    out = []
    for name, build in RULES.items():
        settings = config["alerts"][name]
        out.append(_alert(name, build(c, settings), settings["for"], {"severity": settings["severity"]}, config))
    burning = []
    for kind, name in SLO_ALERTS.items():
        if not slo.objectives[kind]:
            continue
        for b in slo.burn_rates:
            burning.append(_alert(name, _burn_rate_alert(c, kind, b, slo.period), b.for_,
                                  {"severity": b.severity, "long": b.long, "short": b.short}, config))
    groups = [{"name": GROUP, "rules": out}]
    if burning:
        groups.append({"name": SLO_GROUP, "rules": burning})
    return {"groups": groups}


