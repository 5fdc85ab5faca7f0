"""The whole of alerts-config.yml checked before any of it goes into PromQL: a mistake is a
ConfigError naming it in one line, whichever generator runs first (`make bundle` runs the rules'
first, so a mistake only the dashboards read must stop it too)."""

from __future__ import annotations

import re

from bundlegen.config import ConfigError, Ctx, check_setting, cluster_label, names
from bundlegen.slo import slo_config
from bundlegen.thresholds import RULES

TOP_LEVEL = {"selector", "runbook_url", "dashboard_url", "cluster_label", "instance_in_legends", "alerts", "slo"}
# PromQL label matchers, as a selector's braces hold them (without the braces): a label name (Prometheus
# 3's quoted UTF-8 names too), an operator, a quoted value; commas between, none after the last (the
# rules add their own matchers after it).
_ESCAPE = r"""\\[abfnrtv\\"'0-7xuU]"""  # PromQL's (Go's) escapes; any other is an error there
_STRING = rf"""(?:"(?:[^"\\\n]|{_ESCAPE})*"|'(?:[^'\\\n]|{_ESCAPE})*'|`[^`]*`)"""
_SPACE = "[ \t\r\n]*"  # PromQL's whitespace (\s would take a no-break space, which PromQL refuses)
_MATCHER = rf"{_SPACE}(?:[a-zA-Z_][a-zA-Z0-9_]*|{_STRING}){_SPACE}(?:=~|!~|!=|=){_SPACE}{_STRING}{_SPACE}"
SELECTOR = re.compile(rf"{_MATCHER}(?:,{_MATCHER})*")
# What each URL gets appended: "#<alert>" to the runbook's, "/<dashboard uid>?var-..." to Grafana's.
URL_ENDS = {"runbook_url": "#", "dashboard_url": "?#"}


def check_config(config: dict) -> None:
    unknown = set(config) - TOP_LEVEL
    if unknown:
        raise ConfigError("the whole file", f"unknown keys {names(unknown)} (expected some of {names(TOP_LEVEL)})")
    selector = config.get("selector")
    if not isinstance(selector, str) or SELECTOR.fullmatch(selector) is None:
        raise ConfigError("selector", f"must be label matchers such as 'job=\"rq\"' (commas between, no braces), "
                          f"got {selector!r}")
    for key, ends in URL_ENDS.items():
        url = config.get(key) or ""
        if not isinstance(url, str):
            raise ConfigError(key, f"must be a URL (or empty), got {config[key]!r}")
        if any(c in url for c in ends) or "{{" in url:
            raise ConfigError(key, f"must not hold {' or '.join(ends)} or {{{{ (the rules add their own), got {url!r}")
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
        raise ConfigError("alerts", f"{'missing' if alerts is None else 'not a mapping'} (a mapping of each "
                          "alert's name to its settings)")
    for which, found in (("unknown", set(alerts) - set(RULES)), ("missing", set(RULES) - set(alerts))):
        if found:
            raise ConfigError("alerts", f"{which} alerts {names(found)}")
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
            raise ConfigError(where, f"unknown keys {names(extra)}")
        for key, value in settings.items():
            check_setting(f"{where}.{key}", key, value)
