"""prometheus/alerts-config.yml read and checked: a mistake is a ConfigError, said in one line."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "prometheus" / "alerts-config.yml"
# Prometheus' own grammar (model.ParseDuration): each unit at most once, largest first; "0" alone.
UNITS = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
DURATION = re.compile("".join(rf"(?:([0-9]+){unit})?" for unit in UNITS))
LONGEST = (2**63 - 1) / 1e9  # seconds: Prometheus holds a duration in int64 nanoseconds (~292 years)


class ConfigError(SystemExit):
    """A mistake in alerts-config.yml, said in one line (the generator exits with it)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"alerts-config.yml: {where}: {message}")


def seconds(duration: str, above_zero: bool = True) -> float:
    """A Prometheus duration in seconds; a window (above_zero) must be longer than 0, a `for` may be 0
    (also as YAML's number 0, which Prometheus reads as "0")."""
    match = DURATION.fullmatch(duration) if isinstance(duration, str) and duration else None
    if match is None and duration != "0" and not (duration == 0 and type(duration) is int):
        raise ValueError(f"not a Prometheus duration (such as 5m, 1h30m, 30d): {duration!r}")
    total = sum(int(n) * size for n, size in zip(match.groups(), UNITS.values()) if n) if match else 0
    if above_zero and not total:
        raise ValueError(f"must be longer than 0, got {duration!r}")
    if total > LONGEST:
        raise ValueError(f"longer than Prometheus can hold (~292y), got {duration!r}")
    return total


def number(value: float) -> str:
    """A number as PromQL and a label read it: its shortest form (99, 0.25) that is still the same
    number (`:g` alone would make 99.99999 "100")."""
    text = f"{value:g}"
    return text if float(text) == float(value) else repr(float(value))


def names(keys: object) -> str:
    """Keys as a message lists them (YAML may make a key a number or a bool)."""
    return ", ".join(sorted(map(str, keys)))  # type: ignore[call-overload]


SEVERITIES = ("critical", "warning", "info")


def is_number(value: object) -> bool:
    """A finite number (YAML's .inf would be "Infinity" in a dashboard's JSON, which no JSON reader takes)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past a float's range (YAML takes 400 digits)
        return False


def check_setting(where: str, key: str, value: object) -> None:
    if key == "severity" and value not in SEVERITIES:
        raise ConfigError(where, f"must be critical, warning or info, got {value!r}")
    if key in ("for", "window"):
        try:
            seconds(value, above_zero=key == "window")  # type: ignore[arg-type]
        except ValueError as error:
            raise ConfigError(where, str(error)) from None
    elif key == "max_ratio" and not (is_number(value) and 0 <= value <= 1):  # type: ignore[operator]
        raise ConfigError(where, f"must be a ratio from 0 to 1, got {value!r}")
    elif key not in ("severity", "max_ratio") and not (is_number(value) and value >= 0):  # type: ignore[operator]
        raise ConfigError(where, f"must be a number, 0 or more, got {value!r}")


def load_config(path: Path | None = None) -> dict:
    """alerts-config.yml (or `path`), as a mapping: YAML that does not parse is a ConfigError naming its line."""
    try:
        config = yaml.safe_load((path or CONFIG).read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ConfigError(f"line {mark.line + 1}" if mark else "YAML",
                          f"not valid YAML: {getattr(error, 'problem', None) or error}") from None
    if not isinstance(config, dict):
        raise ConfigError("the whole file", "expected a mapping of settings (selector, alerts, slo, ...)")
    return config


def with_durations(config: dict, for_: str | None = None, window: str | None = None,
                   slo_windows: Mapping[str, str] | None = None, slo_interval: str | None = None) -> dict:
    """The config with every `for` (and rate/delta window) replaced: tests use seconds.
    slo_windows maps the SLO's durations (its period, the burn rates' long and short windows) to
    others, as {"1h": "60s", ...}; slo_interval replaces how often the period's rules run."""
    changed = copy.deepcopy(config)
    for alert in changed["alerts"].values():
        if for_ is not None:
            alert["for"] = for_
        if window is not None and "window" in alert:
            alert["window"] = window
    slo = changed["slo"]
    for burn in slo["burn_rates"]:
        if for_ is not None:
            burn["for"] = for_
        for key in ("long", "short"):
            burn[key] = (slo_windows or {}).get(burn[key], burn[key])
    slo["period"] = (slo_windows or {}).get(slo["period"], slo["period"])
    if slo_interval is not None:
        slo["period_interval"] = slo_interval
    return changed



class Ctx(NamedTuple):
    """What every rule is built from: the series selector and the label lists of its `by`/`on`."""

    s: str  # matchers picking the exporter's series (config `selector`)
    ji: str  # the labels of one exporter: job, instance (and the cluster label, when set)
    q: str  # the labels of one queue of one exporter: ji and queue

    @classmethod
    def of(cls, config: dict) -> Ctx:
        cluster = cluster_label(config)
        ji = f"{cluster}, job, instance" if cluster else "job, instance"
        return cls(config["selector"], ji, f"{ji}, queue")


def cluster_label(config: dict) -> str:
    label = config.get("cluster_label") or ""
    if not isinstance(label, str) or (label and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label)):
        raise ConfigError("cluster_label", f"{label!r} is not a Prometheus label name")
    if label.startswith("__"):
        raise ConfigError("cluster_label", f"{label!r} is reserved: labels starting with __ are Prometheus' own")
    if label in ("job", "instance", "queue", "le", "slo", "quantile", "objective", "wait_seconds"):
        raise ConfigError("cluster_label", f"{label!r} is a label the rules already use")
    return label


