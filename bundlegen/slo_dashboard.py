"""RQ / Service levels (dashboards/rq-slo.json): what an on-call person opens from a burn-rate alert."""

from __future__ import annotations

from bundlegen.grafana import QS, Board, Settings, dashboard, hide, target
from bundlegen.names import (
    BUDGET_LEFT,
    OBJECTIVE,
    SLO_ALERTS,
    WAIT_THRESHOLD,
    errors_name,
    quantile_name,
)

BURN_ALERTS = "|".join(SLO_ALERTS.values())
PAGE_COLORS = {"critical": "red", "warning": "orange", "info": "blue"}


def burn(window: str, kind: str = "") -> str:
    """The burn rate over `window`: the SLI's error ratio over the error budget (100 - objective) %."""
    slo = f', slo="{kind}"' if kind else ""
    return (f"{errors_name(window)}{{{QS}{slo}}}\n  / on (job, instance, queue, slo)\n"
            f"(1 - {OBJECTIVE}{{{QS}{slo}}})")


def service_levels(settings: Settings) -> dict:
    """RQ / Service levels: what an on-call person opens from a burn-rate alert."""
    slo = settings.slo
    b = Board()
    b.row(f"Error budget over {slo.period}")
    b.stat("Error budget left", f"Share of each queue's error budget for the last {slo.period} not spent yet, per "
           "objective (success: jobs that fail; wait: jobs that start later than the bound). Below 0: overspent "
           "(queue:rq_slo_error_budget_remaining:ratio, evaluated every " + slo.period_interval + ").",
           f"{BUDGET_LEFT}{{{QS}}}", "percentunit", w=12, h=8, legend="{{queue}} {{slo}}",
           thresholds=[(None, "red"), (0, "orange"), (0.25, "green")])
    b.table("Objectives", "Each queue's objectives, from alerts-config.yml (slo.objectives: the default and "
            "the overrides): the % of completed jobs that must succeed, the % of jobs that must start within "
            "wait_seconds.", f"{OBJECTIVE}{{{QS}}}",
            [hide("Time", "Value", "__name__", "job")])
    b.series("Error budget left over time", f"The budget left over the last {slo.period}, per queue and "
             "objective: a steady descent is the error rate the objective allows; a cliff, an incident.",
             [target(f"{BUDGET_LEFT}{{{QS}}}", "{{queue}} {{slo}}")], "percentunit", w=24,
             threshold_lines=[(None, "red"), (0, "green")])
    b.row("Burn rate: how many times faster than the objective allows")
    for rule in slo.burn_rates:
        page = "page" if rule.severity == "critical" else "ticket"
        b.series(f"{rule.factor:g}x over {rule.long} and {rule.short} ({page})",
                 f"The burn rate over the alert's two windows: it fires ({rule.severity}) while both stay above "
                 f"{rule.factor:g}x for {rule.for_}. The short window drops soon after the errors stop.",
                 [target(burn(rule.long), f"{{{{queue}}}} {{{{slo}}}} {rule.long}"),
                  target(burn(rule.short), f"{{{{queue}}}} {{{{slo}}}} {rule.short}")], "suffix:x", w=8,
                 threshold_lines=[(None, "green"), (rule.factor, PAGE_COLORS[rule.severity])])
    b.row("The indicators")
    short = slo.windows()[0]
    b.series("Failed jobs against the objective", f"Share of each queue's completed jobs that failed (over "
             f"{short}), and the share its success objective allows (100 - objective) %.",
             [target(f'{errors_name(short)}{{{QS}, slo="success"}}', "{{queue}} failed"),
              target(f'1 - {OBJECTIVE}{{{QS}, slo="success"}}', "{{queue}} allowed")], "percentunit")
    b.series("Jobs started late against the objective", f"Share of each queue's jobs that waited longer than "
             f"their wait objective's bound before a worker started them (over {short}), and the share the "
             "objective allows.",
             [target(f'{errors_name(short)}{{{QS}, slo="wait"}}', "{{queue}} late"),
              target(f'1 - {OBJECTIVE}{{{QS}, slo="wait"}}', "{{queue}} allowed")], "percentunit")
    b.series("Wait time quantiles", "Time from enqueue to start, per queue (recorded: "
             f"{quantile_name('rq_job_wait_seconds')}), and the wait objective's bound.",
             [target(f"{quantile_name('rq_job_wait_seconds')}{{{QS}}}", "{{queue}} q{{quantile}}"),
              target(f"{WAIT_THRESHOLD}{{{QS}}}", "{{queue}} bound")], "s")
    b.series("Run time quantiles", "Job run time (start to end) per queue, both statuses (recorded: "
             f"{quantile_name('rq_job_duration_seconds')}).",
             [target(f"{quantile_name('rq_job_duration_seconds')}{{{QS}}}", "{{queue}} q{{quantile}}")], "s")
    b.row("Alerts")
    b.table("Burn-rate alerts firing", "RQJobErrorBudgetBurn and RQJobWaitBudgetBurn alerts firing now, with "
            "their windows (long, short) and objective.",
            f'ALERTS{{alertstate="firing", alertname=~"{BURN_ALERTS}", {QS}}}',
            [hide("Time", "Value", "__name__", "alertstate")], w=24, h=6)
    return dashboard("rq-slo", "RQ / Service levels",
                     "Error budgets and burn rates of each queue's objectives (alerts-config.yml slo): what "
                     "RQJobErrorBudgetBurn and RQJobWaitBudgetBurn link to.", b, settings)
