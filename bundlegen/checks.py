"""The whole of alerts-config.yml checked before any of it goes into PromQL: a mistake is a
ConfigError naming it in one line, whichever generator runs first (`make bundle` runs the rules'
first, so a mistake only the dashboards read must stop it too)."""

from __future__ import annotations

from bundlegen.config import ConfigError, Ctx, check_setting, cluster_label
from bundlegen.slo import slo_config
from bundlegen.thresholds import RULES

TOP_LEVEL = {"selector", "runbook_url", "dashboard_url", "cluster_label", "instance_in_legends", "alerts", "slo"}


def check_config(config: dict) -> None:
    unknown = set(config) - TOP_LEVEL
    if unknown:
        raise ConfigError("the whole file", f"unknown keys {', '.join(sorted(unknown))} (expected some of "
                          f"{', '.join(sorted(TOP_LEVEL))})")
    selector = config.get("selector")
    if not isinstance(selector, str) or not selector.strip():
        raise ConfigError("selector", f"must be label matchers such as 'job=\"rq\"', got {selector!r}")
    for key in ("runbook_url", "dashboard_url"):
        if not isinstance(config.get(key) or "", str):
            raise ConfigError(key, f"must be a URL (or empty), got {config[key]!r}")
    if not isinstance(config.get("instance_in_legends", False), bool):
        raise ConfigError("instance_in_legends", f"must be true or false, got {config['instance_in_legends']!r}")
    cluster_label(config)
    check_alerts(config)
    slo_config(config)


class _Read(dict):
    """An alert's settings that remember which of them its rule's builder read."""

    def __init__(self, settings: dict) -> None:
        super().__init__(settings)
        self.read: set[str] = {"severity", "for"}

    def __getitem__(self, key: str):
        self.read.add(key)
        return super().__getitem__(key)


def check_alerts(config: dict) -> None:
    """Every alert's settings checked before any goes into PromQL, a mistake said in one line: a
    missing, misspelt or extra key, a severity, a duration, a threshold that is no number."""
    alerts = config.get("alerts")
    if not isinstance(alerts, dict):
        raise ConfigError("alerts", "missing (a mapping of each alert's name to its settings)")
    for which, names in (("unknown", set(alerts) - set(RULES)), ("missing", set(RULES) - set(alerts))):
        if names:
            raise ConfigError("alerts", f"{which} alerts {', '.join(sorted(names))}")
    c = Ctx.of(config)
    for name, build in RULES.items():
        where, settings = f"alerts.{name}", alerts[name]
        if not isinstance(settings, dict):
            raise ConfigError(where, "expected a mapping of settings (severity, for, ...)")
        read = _Read(settings)
        try:
            read["severity"], read["for"]
            build(c, read)
        except KeyError as missing:
            raise ConfigError(where, f"missing {missing.args[0]}") from None
        except (TypeError, ValueError):
            pass  # a value of the wrong type: said below, by its key
        extra = set(settings) - read.read
        if extra:  # before the values: a misspelt key is one, whatever its value
            raise ConfigError(where, f"unknown keys {', '.join(sorted(extra))}")
        for key, value in settings.items():
            check_setting(f"{where}.{key}", key, value)
