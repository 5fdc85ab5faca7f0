"""The service levels' section of the config: objectives per queue and the burn-rate alerts' windows."""

from __future__ import annotations

import math
import re
import warnings
from decimal import Decimal
from typing import NamedTuple

from bundlegen.config import ConfigError, is_number, names, number, seconds
from bundlegen.names import SLO_ALERTS


class Objective(NamedTuple):
    """One objective of one kind for the queues its matchers select (None: turned off for them)."""

    matchers: str  # `queue` matchers: this entry's, and the exclusion of every earlier entry's
    ratio: float | None  # 0.99 for 99 %
    percent: str  # "99" (the `objective` label)
    within: float | None = None  # the wait objective's threshold, seconds: a bucket bound


BURN_KEYS = {"severity", "burn_rate", "long", "short", "for"}


class BurnRate(NamedTuple):
    severity: str
    factor: float
    long: str
    short: str
    for_: str


class Slo(NamedTuple):
    period: str
    period_interval: str
    burn_rates: tuple[BurnRate, ...]
    objectives: dict[str, tuple[Objective, ...]]  # per kind, the entries that set one (off ones left out)

    def windows(self) -> list[str]:
        """Every window an alert reads, shortest first (5m, 30m, 1h, 6h, 3d by default)."""
        return sorted({w for b in self.burn_rates for w in (b.long, b.short)}, key=seconds)


# Python's re takes these, Prometheus' RE2 refuses them ("invalid or unsupported Perl syntax"); an
# escaped one (\\(?=) is no such thing.
_PERL_ONLY = re.compile(r"(?<!\\)(?:\\\\)*(\(\?(?:=|!|<=|<!|>|P=|#|\()|\\[1-9Z])")


def promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _entry_matcher(entry: dict, where: str) -> tuple[str, str]:
    """(matcher, its negation) of an override's `queue` (a name) or `queue_regex` (anchored regex)."""
    keys = {"queue", "queue_regex"} & entry.keys()
    if len(keys) != 1:
        raise ConfigError(where, "give either `queue` (a queue name) or `queue_regex` (a regular expression)")
    (key,) = keys
    value = entry[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"`{key}` must be a non-empty string")
    if key == "queue":
        return f"queue={promql_string(value)}", f"queue!={promql_string(value)}"
    try:
        with warnings.catch_warnings():  # "possible nested set" at [[:alpha:]], which RE2 reads as a class
            warnings.simplefilter("ignore")
            re.compile(value)
    except re.error as error:
        raise ConfigError(where, f"queue_regex {value!r} is no regular expression: {error}") from None
    perl = _PERL_ONLY.search(value)
    if perl:
        raise ConfigError(where, f"queue_regex {value!r}: Prometheus' regular expressions (RE2) have no "
                          f"{perl.group(0)!r} (lookarounds, back references, \\Z, comments, conditionals)")
    return f"queue=~{promql_string(value)}", f"queue!~{promql_string(value)}"


def _objective(kind: str, spec, where: str, buckets: tuple[float, ...]) -> tuple[float | None, str, float | None]:
    if spec is None or spec is False:
        return None, "", None
    allowed = {"objective", "within_seconds"} if kind == "wait" else {"objective"}
    if not isinstance(spec, dict) or set(spec) - allowed or "objective" not in spec:
        raise ConfigError(where, f"expected {{{', '.join(sorted(allowed))}}} (or false: no objective), got {spec!r}")
    percent = spec["objective"]
    if not is_number(percent) or not 0 < percent < 100:
        raise ConfigError(where, f"objective must be a percentage between 0 and 100 (exclusive), got {percent!r}")
    within = None
    if kind == "wait":
        if "within_seconds" not in spec:
            raise ConfigError(where, "missing within_seconds (the wait the objective counts jobs within)")
        within = spec["within_seconds"]
        if not is_number(within) or not any(math.isclose(within, b) for b in buckets):
            raise ConfigError(where, f"within_seconds {within!r} is not a bucket bound of rq_job_wait_seconds "
                              f"(slo.wait_buckets: {', '.join(f'{b:g}' for b in buckets)}): pick one of them, or "
                              f"add it to the exporter's --timing-buckets and to slo.wait_buckets")
        within = float(within)
    return percent / 100, number(percent), within


def ratio_text(percent: str) -> str:
    """An objective's percentage ("99.9") as the ratio a rule records, in decimal ("0.999": 99.9 / 100
    in floats is 0.9990000000000001)."""
    return str(Decimal(percent) / 100)


def slo_config(config: dict) -> Slo:
    """The `slo:` section, checked: every mistake is a one-line error naming where it is."""
    slo = config.get("slo")
    if not isinstance(slo, dict):
        raise ConfigError("slo", "missing (the service levels' section)")
    unknown = set(slo) - {"period", "period_interval", "wait_buckets", "burn_rates", "objectives"}
    if unknown:
        raise ConfigError("slo", f"unknown keys {names(unknown)}")
    for key in ("period", "period_interval"):
        try:
            seconds(slo.get(key, ""))
        except ValueError as error:
            raise ConfigError(f"slo.{key}", str(error)) from None
    buckets = slo.get("wait_buckets")
    if not isinstance(buckets, list) or not buckets \
            or not all(is_number(b) and b > 0 for b in buckets):
        raise ConfigError("slo.wait_buckets", "a list of the exporter's rq_job_wait_seconds bucket bounds")
    buckets_t = tuple(float(b) for b in buckets)

    burns = []
    for i, b in enumerate(slo.get("burn_rates") or []):
        where = f"slo.burn_rates[{i}]"
        if not isinstance(b, dict):
            raise ConfigError(where, f"expected a mapping of {names(BURN_KEYS)}, got {b!r}")
        for which, found in (("missing", BURN_KEYS - set(b)), ("unknown", set(b) - BURN_KEYS)):
            if found:
                raise ConfigError(where, f"{which} keys {names(found)} (expected {names(BURN_KEYS)})")
        if b["severity"] not in ("critical", "warning", "info"):
            raise ConfigError(where, f"severity must be critical, warning or info, got {b['severity']!r}")
        if not is_number(b["burn_rate"]) or b["burn_rate"] <= 0:
            raise ConfigError(where, f"burn_rate must be a positive number, got {b['burn_rate']!r}")
        durations = {}
        for key in ("long", "short", "for"):
            try:
                durations[key] = seconds(b[key], above_zero=key != "for")
            except ValueError as error:
                raise ConfigError(f"{where}.{key}", str(error)) from None
        long, short = durations["long"], durations["short"]
        if short >= long:
            raise ConfigError(where, f"the short window ({b['short']}) must be shorter than the long one ({b['long']})")
        burns.append(BurnRate(b["severity"], float(b["burn_rate"]), b["long"], b["short"], b["for"]))
    if not burns:
        raise ConfigError("slo.burn_rates", "at least one burn rate alert is needed")
    longest = max((w for b in burns for w in (b.long, b.short)), key=seconds)
    if seconds(slo["period"]) <= seconds(longest):
        raise ConfigError("slo.period", f"{slo['period']} is no longer than the burn rate window {longest}: the "
                          "period must be longer")

    objectives = slo.get("objectives")
    if not isinstance(objectives, dict) or set(objectives) - {"default", "overrides"} \
            or not isinstance(objectives.get("default"), dict):
        raise ConfigError("slo.objectives", "expected {default: {success: ..., wait: ...}, overrides: [...]}")
    overrides = objectives.get("overrides") or []
    if not isinstance(overrides, list):
        raise ConfigError("slo.objectives.overrides", "a list of {queue or queue_regex, success, wait}")
    kinds: dict[str, list[Objective]] = {kind: [] for kind in SLO_ALERTS}
    earlier: dict[str, list[str]] = {kind: [] for kind in SLO_ALERTS}  # negated matchers of earlier entries
    entries = [(f"slo.objectives.overrides[{i}]", o) for i, o in enumerate(overrides)]
    entries.append(("slo.objectives.default", objectives["default"]))
    for where, entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError(where, "expected a mapping")
        default = where == "slo.objectives.default"
        extra = set(entry) - set(SLO_ALERTS) - ({"queue", "queue_regex"} if not default else set())
        if extra:
            raise ConfigError(where, f"unknown keys {names(extra)} (expected "
                              f"{'' if default else 'queue or queue_regex, '}success, wait)")
        matcher, negated = ("", "") if default else _entry_matcher(entry, where)
        for kind in SLO_ALERTS:
            if kind not in entry:
                if default:
                    raise ConfigError(where, f"no {kind} objective (write `{kind}: false` for none)")
                continue
            ratio, percent, within = _objective(kind, entry[kind], f"{where}.{kind}", buckets_t)
            if ratio is not None:
                for b in burns:
                    if b.factor * (1 - ratio) >= 1:
                        raise ConfigError(f"{where}.{kind}", f"with an objective of {percent} % a burn rate of "
                                          f"{b.factor:g} needs more than all jobs to miss it: that alert could "
                                          f"never fire; raise the objective or lower the burn rate")
                kinds[kind].append(Objective(", ".join(filter(None, [matcher, *earlier[kind]])), ratio, percent,
                                             within))
            if negated:
                earlier[kind].append(negated)
    return Slo(slo["period"], slo["period_interval"], tuple(burns),
               {kind: tuple(found) for kind, found in kinds.items()})


def le_matcher(bound: float) -> str:
    """A matcher of the bucket `bound` in either form: the exporter writes le="30.0"; Prometheus 3
    normalises every le to a float's form, and other clients write le="30"."""
    if bound == int(bound):
        return f'le=~"{int(bound)}(\\\\.0)?"'
    return f'le="{bound!r}"'



def period_left(period: str, factor: float) -> str:
    left = seconds(period) / factor
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"{left / size:.3g}{unit}"
    return f"{left:.3g}s"


