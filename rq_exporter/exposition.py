"""/metrics as bytes: prometheus_client's text and OpenMetrics output, written faster.

prometheus_client formats each sample with ~9 us of Python (label escaping, sorting, name
checks); at 1,000 queues a scrape has ~17,000 samples. This module writes the same bytes
for the same families (tests/test_exposition.py compares them) at a fraction of the cost:
label sets are formatted once per distinct label-name tuple, escaped label values and
formatted values are cached within one render. A family it has no fast path for (exemplars,
timestamps, native histograms, names that need escaping) is handed to prometheus_client
itself, so the output never differs.

``make_metrics_app`` is prometheus_client's ``make_wsgi_app`` with these renderers: content
negotiation is the library's, and the text and OpenMetrics encoders it picks (with the
escaping Prometheus 2 and 3 ask for) are replaced; "dots" and "values" escaping rewrite even
plain names, so those stay with the library.
"""

from __future__ import annotations

import gc
import gzip
import re
import threading
from collections.abc import Callable, Iterable
from functools import partial
from operator import itemgetter
from urllib.parse import parse_qs

from prometheus_client import exposition, openmetrics
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from rq_exporter.table import HistogramTable, Table

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]

_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
               "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_MOVED_SUFFIXES = ("_created", "_gsum", "_gcount")  # text format: these go to their own gauge families
_FIRST_THREE = itemgetter(0, 1, 2)  # a Sample's name, labels, value
_EXTRAS = itemgetter(*range(3, len(Sample._fields)))  # timestamp, exemplar and any later field
_NO_EXTRAS = (None,) * (len(Sample._fields) - 3)


class _One(Collector):
    def __init__(self, metric) -> None:
        self._metric = metric

    def collect(self):
        return [self._metric]


_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Escaping schemes (Accept: ...;escaping=) that leave plain names as they are; with "dots" or
# "values" prometheus_client rewrites even plain names, so those go to the library.
_FAST_ESCAPINGS = (om_exposition.UNDERSCORES, om_exposition.ALLOWUTF8)


def _legacy(name: str) -> bool:
    """Names every format and fast escaping writes unchanged (a ':' would be escaped in OpenMetrics)."""
    return _PLAIN_NAME.fullmatch(name) is not None


def _legacy_labels(names) -> bool:
    """Label names every format writes unchanged."""
    return all(om_exposition._is_valid_legacy_labelname(n) for n in names)


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Escaped(dict):
    """Label value -> its escaped text; a hit is a plain dict lookup, with no Python call."""

    def __missing__(self, raw: str) -> str:
        value = self[raw] = _escape_value(raw)
        return value


class _Ints(dict):
    """int -> its text, as floatToGoString writes it (ints only: -0.0 == 0 would collide)."""

    def __missing__(self, value: int) -> str:
        text = f"{value}.0" if -(2**53) < value < 1_000_000 else floatToGoString(value)
        self[value] = text
        return text


class _Writer:
    """Per-render caches: label layouts, escaped label values, formatted numbers, checked names."""

    def __init__(self) -> None:
        self.formatters: dict[tuple, Callable[[dict], str] | None] = {}
        self.escaped = _Escaped()
        self.ints = _Ints()
        self.floats: dict[float, str] = {}
        self.names: set[str] = set()

    def formatter(self, names: tuple) -> Callable[[dict], str] | None:
        """``{a="x",b="y"}`` with names sorted, as prometheus_client writes it; None: not fast-pathable."""
        if not _legacy_labels(names):
            return None
        order = tuple(sorted(names))
        heads = tuple(("{" if i == 0 else '",') + f'{n}="' for i, n in enumerate(order))
        escaped = self.escaped
        if len(order) == 1:
            (a,), (head_a,) = order, heads
            return lambda labels: head_a + escaped[labels[a]] + '"}'
        if len(order) == 2:
            (a, b), (head_a, head_b) = order, heads
            return lambda labels: head_a + escaped[labels[a]] + head_b + escaped[labels[b]] + '"}'
        if len(order) == 3:  # histogram buckets: queue, status, le
            (a, b, c), (head_a, head_b, head_c) = order, heads
            return lambda labels: (head_a + escaped[labels[a]] + head_b + escaped[labels[b]]
                                   + head_c + escaped[labels[c]] + '"}')
        pairs = tuple(zip(order, heads))
        return lambda labels: "".join([head + escaped[labels[name]] for name, head in pairs]) + '"}'

    def number(self, value) -> str | None:
        """A sample value's text; None: the library must write it. The per-sample loops below
        inline this: the call costs ~1 ms more per 20,000 samples."""
        return self.ints[value] if type(value) is int else self.float(value) if value is not None else None

    def float(self, value) -> str:
        text = self.floats.get(value)
        if text is None:
            text = floatToGoString(value)
            if value != 0:  # 0.0 and -0.0 are equal keys but print differently
                self.floats[value] = text
        return text

    def samples(self, samples, out: list[str], refused: frozenset = frozenset()) -> bool:
        """Appends one line per sample; False (and nothing kept) when a sample needs the library."""
        if any(map(_NO_EXTRAS.__ne__, map(_EXTRAS, samples))):  # timestamps, exemplars, ...
            return False
        mark = len(out)
        names, formatters, ints, float_text = self.names, self.formatters, self.ints, self.float
        last_name: str | None = None
        last_keys: tuple | None = None
        format_labels: Callable[[dict], str] | None = None
        for name, labels, value in map(_FIRST_THREE, samples):
            if name is not last_name:
                if name not in names:
                    if name in refused or not _legacy(name):
                        break
                    names.add(name)
                last_name = name
            text = ints[value] if type(value) is int else float_text(value) if value is not None else None
            if text is None:
                break
            if labels:
                keys = tuple(labels)
                if keys != last_keys:
                    if keys not in formatters:
                        formatters[keys] = self.formatter(keys)
                    format_labels, last_keys = formatters[keys], keys
                    if format_labels is None:
                        break
                out.append(f"{name}{format_labels(labels)} {text}\n")
            else:
                out.append(f"{name} {text}\n")
        else:
            return True
        del out[mark:]
        return False

    def family(self, metric, out: list[str], refused: frozenset = frozenset()) -> bool:
        if isinstance(metric, Table):
            return self.table(metric, out)
        if isinstance(metric, HistogramTable):
            return self.histogram_table(metric, out)
        return self.samples(metric.samples, out, refused)

    def table(self, table: Table, out: list[str]) -> bool:
        """Appends one line per row; False (and nothing kept) when a row needs the library."""
        labels, name = table.labels, table.sample_name
        if not _legacy(name) or not _legacy_labels(labels):
            return False
        mark = len(out)
        escaped, ints, float_text = self.escaped, self.ints, self.float
        order = sorted(range(len(labels)), key=labels.__getitem__)
        heads = [("{" if i == 0 else '",') + f'{labels[j]}="' for i, j in enumerate(order)]
        if heads:
            heads[0] = name + heads[0]
        one, two = order == [0], order == [0, 1]  # the per-queue tables: one label, or two in order
        for values, value in table.rows:
            text = ints[value] if type(value) is int else float_text(value) if value is not None else None
            if text is None:
                del out[mark:]
                return False
            if one:
                out.append(heads[0] + escaped[values[0]] + '"} ' + text + "\n")
            elif two:
                out.append(heads[0] + escaped[values[0]] + heads[1] + escaped[values[1]] + '"} ' + text + "\n")
            elif heads:
                out.append("".join([head + escaped[values[j]] for head, j in zip(heads, order)]) + '"} ' + text + "\n")
            else:
                out.append(name + " " + text + "\n")
        return True

    def histogram_table(self, table: HistogramTable, out: list[str]) -> bool:
        """Appends each row's bucket, count and sum lines; False (nothing kept) when the library must."""
        labels, name = table.labels, table.name
        if "le" in labels or not _legacy(name + "_bucket") or not _legacy_labels(labels):
            return False
        mark = len(out)
        escaped, ints, float_text = self.escaped, self.ints, self.float
        order = sorted(range(len(labels)), key=labels.__getitem__)
        before = [j for j in order if labels[j] < "le"]
        after = [j for j in order if labels[j] > "le"]
        bucket, count_name, sum_name = name + "_bucket{", name + "_count", name + "_sum"
        les = [f'le="{escaped[le]}"' for le in table.les]
        with_count = float(table.les[0]) >= 0
        for values, cumulative, total in table.rows:
            head = bucket + "".join([f'{labels[j]}="{escaped[values[j]]}",' for j in before])
            tail = "".join([f',{labels[j]}="{escaped[values[j]]}"' for j in after]) + "} "
            for le, count in zip(les, cumulative):
                out.append(head + le + tail + (ints[count] if type(count) is int else float_text(count)) + "\n")
            if with_count and total is not None:
                plain = ",".join([f'{labels[j]}="{escaped[values[j]]}"' for j in order])
                plain = "{" + plain + "} " if plain else " "
                out.append(count_name + plain + self.number(cumulative[-1]) + "\n")
                out.append(sum_name + plain + self.number(total) + "\n")
        return True


def render_text(families: Iterable, escaping: str = om_exposition.UNDERSCORES) -> bytes:
    """What ``prometheus_client.generate_latest`` writes for these families."""
    def library(metric) -> str:
        return exposition.generate_latest(_One(metric), escaping=escaping).decode("utf-8")

    writer = _Writer()
    out: list[str] = []
    for metric in families:
        if escaping not in _FAST_ESCAPINGS or metric.type not in _TEXT_TYPES or not _legacy(metric.name):
            out.append(library(metric))
            continue
        name = metric.name
        if metric.type == "counter":
            name += "_total"
        elif metric.type == "info":
            name += "_info"
        help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        head = [f"# HELP {name} {help_text}\n# TYPE {name} {_TEXT_TYPES[metric.type]}\n"]
        moved = frozenset(metric.name + suffix for suffix in _MOVED_SUFFIXES)
        if not writer.family(metric, head, refused=moved):
            out.append(library(metric))
            continue
        out.extend(head)
    return "".join(out).encode("utf-8")


def render_openmetrics(families: Iterable, escaping: str = om_exposition.UNDERSCORES,
                       version: str = "1.0.0") -> bytes:
    """What ``prometheus_client.openmetrics.exposition.generate_latest`` writes for these families."""
    def library(metric) -> str:
        text = om_exposition.generate_latest(_One(metric), escaping=escaping, version=version).decode("utf-8")
        return text[: -len("# EOF\n")]

    writer = _Writer()
    out: list[str] = []
    for metric in families:
        if escaping not in _FAST_ESCAPINGS or not _legacy(metric.name):
            out.append(library(metric))
            continue
        name = metric.name
        help_text = _escape_value(metric.documentation)
        head = [f"# HELP {name} {help_text}\n# TYPE {name} {metric.type}\n"]
        if metric.unit:
            head.append(f"# UNIT {name} {metric.unit}\n")
        if not writer.family(metric, head):
            out.append(library(metric))
            continue
        out.extend(head)
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def _fast_renderer(encoder: Callable) -> Callable[[Iterable], bytes] | None:
    """Our renderer standing in for the library encoder that content negotiation chose, or None."""
    if encoder is exposition.generate_latest:
        return render_text
    if not isinstance(encoder, partial) or encoder.args or not set(encoder.keywords) <= {"escaping", "version"} \
            or encoder.keywords.get("escaping", om_exposition.UNDERSCORES) not in _FAST_ESCAPINGS:
        return None
    if encoder.func is exposition.generate_latest and "version" not in encoder.keywords:
        return partial(render_text, **encoder.keywords)
    if encoder.func is om_exposition.generate_latest:
        return partial(render_openmetrics, **encoder.keywords)
    return None


def render(registry: Collector, accept_header: str | None) -> tuple[bytes, str]:
    """The body and content type prometheus_client would answer with for this Accept header."""
    encoder, content_type = exposition.choose_encoder(accept_header or "")
    fast = _fast_renderer(encoder)
    if fast is None:
        return encoder(registry), content_type
    return fast(registry.collect()), content_type


class _GcPause:
    """The cyclic garbage collector off while any scrape runs.

    A scrape at 1,000 queues allocates ~100,000 short-lived containers (commands, handlers,
    samples) that all live until it ends, so the collector's generational passes keep
    traversing them, and the whole heap, for nothing: ~20 % of the scrape (bench/run.py,
    docs/benchmarks.md). Reference counting still frees them as soon as the scrape is done;
    a cycle waits for the next collection after it. Scrapes in several threads share one
    pause; a collector someone else turned off stays off.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._active += 1

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._was_enabled:
                gc.enable()


gc_paused = _GcPause()


def make_metrics_app(registry: Collector, disable_compression: bool = False) -> WsgiApp:
    """prometheus_client's make_wsgi_app, rendering with this module."""

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        if method != "GET":
            status = "405 Method Not Allowed"
            start_response(status, [("Allow", "OPTIONS,GET")])
            return [f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()]
        params = parse_qs(environ.get("QUERY_STRING", ""))
        target = registry.restricted_registry(params["name[]"]) if "name[]" in params else registry
        with gc_paused:
            output, content_type = render(target, environ.get("HTTP_ACCEPT"))
        headers = [("Content-Type", content_type)]
        if not disable_compression and exposition.gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
            output = gzip.compress(output)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    return app


__all__ = ["make_metrics_app", "render", "render_openmetrics", "render_text"]
