"""The monitoring bundle's generators: alerts-config.yml -> Prometheus rules and Grafana dashboards.

One config (prometheus/alerts-config.yml) holds every threshold, window and objective; these
modules turn it into PromQL, the way the celery-exporter mixin does without jsonnet:

    config        the file read, a setting checked (one line naming a mistake), durations, the rules' labels
    names         the recorded series' names, which alerts and dashboards read
    slo           the service levels' section: objectives per queue, burn-rate alerts' windows
    thresholds    each threshold alert's PromQL, from its settings
    checks        the whole config checked before any of it goes into PromQL
    alerts        rq-alerts.yml: the threshold and burn-rate alerts with their annotations
    recording     rq-recording.yml: rates, ratios, quantiles, the SLIs' error ratios, budgets
    rules         the rule files written (or checked for staleness): prometheus/generate_rules.py
    grafana       Grafana's JSON model: panels, variables, per-instance and per-cluster queries
    dashboards    the dashboards: dashboards/generate.py (slo_dashboard: RQ / Service levels)

`make bundle` runs both entry points; tests/test_bundle_*.py check every output.
"""
