"""Metric families -> the bytes of /metrics (text or OpenMetrics), exactly as prometheus_client writes them.

Nearly all of a scrape's samples (~20,000 at 1,000 queues: per queue, per worker and the job
timing histograms) arrive as ``Table`` and ``HistogramTable`` rows (table.py). Writing a row
costs a few string joins here, against ~9 us a sample in the library (label dicts, escaping,
sorting). Every other family (a dozen small ones: the exporter's own metrics, the summary), and
any family with a name, label or value the fast path does not cover, is written by
prometheus_client itself, one family at a time, so the output never differs
(tests/web/test_exposition.py compares them byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial
from itertools import chain
from operator import add, itemgetter

from prometheus_client import exposition
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rq_exporter_ng.families.table import (
    EXEMPLAR_LABEL,
    Column,
    Grid,
    HistogramTable,
    JobExemplar,
    Table,
    exemplar_id,
)
from rq_exporter_ng.kept import Kept
from rq_exporter_ng.web import prom_internals

_value = itemgetter(1)  # a table row's value
_INF = float("inf")
_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary"}


class _One(Collector):
    """One family, as the library's encoders want a registry."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> list[Metric]:
        return [self._metric]


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# Label value -> its escaped text, for every render: the same queue and worker names come back each
# scrape (escaping 12,000 of them anew cost ~6 ms a scrape at 10,000 queues). ~100 bytes a name.
_ESCAPED: Kept[str, str] = Kept(_escape_value, 50_000)


class _Ints(dict[int, str]):
    """int -> its text, as floatToGoString writes it (ints only: -0.0 == 0 would collide)."""

    def __missing__(self, value: int) -> str:
        text = f"{value}.0" if -(2**53) < value < 1_000_000 else floatToGoString(value)
        self[value] = text
        return text


class _Lines(dict[int, str]):
    """A grid column's line after the key's label text, per count: ``",status="queued"} 3.0\\n``."""

    def __init__(self, label: str, ints: _Ints) -> None:
        super().__init__()
        self.label = label
        self.ints = ints

    def __missing__(self, value: int) -> str:
        line = self[value] = f"{self.label}{self.ints[value]}\n"
        return line


# A family's text is made and sent in pieces of this many lines (~100 kB): the biggest family, rq_jobs
# at 10,000 queues (80,000 lines), is never all text at once (its lines, their join and its bytes
# were ~14 MB, the scrape's peak once families are built one at a time).
LINES_PER_PIECE = 2048


def _pieces(rows: list) -> Iterator[list]:
    for start in range(0, len(rows), LINES_PER_PIECE):
        yield rows[start:start + LINES_PER_PIECE]


class _Writer:
    """Writes table rows; caches number texts for one render (escaped label values: _ESCAPED)."""

    def __init__(self, exemplars: bool = False) -> None:
        self.exemplars = exemplars  # OpenMetrics: histogram buckets carry their exemplar
        self.escaped = _ESCAPED
        self.ints = _Ints()
        self.floats: dict[float, str] = {}

    def number(self, value: float) -> str:
        if type(value) is int:
            return self.ints[value]
        text = self.floats.get(value)
        if text is None:
            # floatToGoString writes a finite float below 1e6 as repr does (its exponents start
            # there), 0.0 and -0.0 included; a C call instead of its Python (~10 ms a scrape at
            # 10,000 queues: their ages and longest-running seconds, ~20,000 floats, most new).
            text = repr(value) if type(value) is float and -_INF < value < 1e6 else floatToGoString(value)
            if value != 0:  # 0.0 and -0.0 are equal keys but print differently
                self.floats[value] = text
        return text

    def family(self, metric: Metric) -> Iterator[str] | None:
        """The family's sample lines, as pieces of text of at most LINES_PER_PIECE lines each;
        None when the library must write it (decided before anything is written)."""
        if isinstance(metric, Grid):
            return self.grid(metric)
        if isinstance(metric, Column):
            return self.column(metric)
        if isinstance(metric, Table):
            return self.table(metric)
        if isinstance(metric, HistogramTable):
            return self.histogram_table(metric)
        return None

    def table(self, table: Table) -> Iterator[str] | None:
        labels, name = table.labels, table.sample_name
        if not prom_internals.plain_name(name) or not prom_internals.plain_label_names(labels):
            return None
        # A value None is the library's to write (it fails there as it would anyway). ``in`` over the
        # values, in C: a generator asking ``is None`` row by row took ~25 ms a scrape at 10,000
        # queues; ``in`` tries identity first, and no int or float equals None.
        if None in map(_value, table.rows):
            return None
        escaped, number, ints = self.escaped, self.number, self.ints
        order = sorted(range(len(labels)), key=labels.__getitem__)  # the library sorts label names
        heads = [("{" if i == 0 else '",') + f'{labels[j]}="' for i, j in enumerate(order)]
        if not heads:
            return ("".join([f"{name} {number(value)}\n" for _, value in rows]) for rows in _pieces(table.rows))
        heads[0] = name + heads[0]
        # The per-queue tables, ~13,000 rows at 1,000 queues, mostly integer counts: their text is a
        # dict lookup here rather than a call to number() (~2 ms a scrape, bench/profile.py).
        if order == [0]:
            head = heads[0]
            return ("".join([f'{head}{escaped[values[0]]}"}} {ints[value] if type(value) is int else number(value)}\n'
                             for values, value in rows]) for rows in _pieces(table.rows))
        if len(order) == 2:  # rq_jobs, rq_queue_workers, rq_queue_longest_running_job_by_func_seconds, ...
            (first, second), (a, b) = heads, order
            return ("".join([f'{first}{escaped[values[a]]}{second}{escaped[values[b]]}"}} '
                             f'{ints[value] if type(value) is int else number(value)}\n' for values, value in rows])
                    for rows in _pieces(table.rows))
        return ("".join(["".join([head + escaped[values[j]] for head, j in zip(heads, order)])
                         + f'"}} {number(value)}\n' for values, value in rows]) for rows in _pieces(table.rows))

    def grid(self, grid: Grid) -> Iterator[str] | None:
        """A key's lines in one go: ``head + head.join(lines)``, where head is the key's label text
        and each column's lines (its label and a count's text) are made once per count seen (~10 ms
        for rq_jobs at 10,000 queues, 80,000 lines; 22 ms a row at a time). Ints only (counts, whose
        texts cannot collide as 0 and -0.0 would); any other grid goes as a table."""
        labels, name = grid.labels, grid.sample_name
        if labels[0] >= labels[1] or not grid.columns or not prom_internals.plain_name(name) \
                or not prom_internals.plain_label_names(labels) \
                or not set(map(type, chain.from_iterable(grid.values))) <= {int}:
            return self.table(grid)
        escaped = self.escaped
        first = f'{name}{{{labels[0]}="'
        columns = [_Lines(f'",{labels[1]}="{escaped[column]}"}} ', self.ints) for column in grid.columns]
        per_piece = max(1, LINES_PER_PIECE // len(columns))
        line = dict.__getitem__  # in C; _Lines.__missing__ for a count not seen yet
        return ("".join([head + head.join(map(line, columns, row))
                         for head, row in zip([first + escaped[key] for key in grid.keys[start:start + per_piece]],
                                              grid.values[start:start + per_piece])])
                for start in range(0, len(grid.keys), per_piece))

    def column(self, column: Column) -> Iterator[str] | None:
        """``first + first.join(key + line)``, first the name and label up to the key's value, each line
        made once per count seen: no row tuple, and dict look-ups in C (1.7 against 2.6 ms for 10,000
        counts). Ints only, as a grid; any other column goes as a table."""
        labels, name = column.labels, column.sample_name
        if not prom_internals.plain_name(name) or not prom_internals.plain_label_names(labels) \
                or not set(map(type, column.values)) <= {int}:
            return self.table(column)
        first = f'{name}{{{labels[0]}="'
        key, line = self.escaped.__getitem__, _Lines('"} ', self.ints).__getitem__
        keys, values = column.keys, column.values
        return (first + first.join(map(add, map(key, keys[start:start + LINES_PER_PIECE]),
                                       map(line, values[start:start + LINES_PER_PIECE])))
                for start in range(0, len(keys), LINES_PER_PIECE))

    def histogram_table(self, table: HistogramTable) -> Iterator[str] | None:
        labels, name = table.labels, table.name
        if "le" in labels or not prom_internals.plain_name(name + "_bucket") \
                or not prom_internals.plain_label_names(labels):
            return None
        return self._histogram_lines(table)

    def _histogram_lines(self, table: HistogramTable) -> Iterator[str]:
        labels, name = table.labels, table.name
        escaped, number = self.escaped, self.number
        order = sorted(range(len(labels)), key=labels.__getitem__)
        before = [j for j in order if labels[j] < "le"]
        after = [j for j in order if labels[j] > "le"]
        bucket, count_name, sum_name = name + "_bucket{", name + "_count", name + "_sum"
        les = [f'le="{escaped[le]}"' for le in table.les]
        with_count = not table.les or float(table.les[0]) >= 0  # as table.py builds its samples
        exemplars = table.exemplars if self.exemplars else None
        out: list[str] = []
        for r, (values, cumulative, total) in enumerate(table.rows):
            head = bucket + "".join([f'{labels[j]}="{escaped[values[j]]}",' for j in before])
            tail = "".join([f',{labels[j]}="{escaped[values[j]]}"' for j in after]) + "} "
            if exemplars:
                out.extend(head + le + tail + number(count) + self.exemplar(job) + "\n"
                           for le, count, job in zip(les, cumulative, exemplars[r]))
            else:
                out.extend(head + le + tail + number(count) + "\n" for le, count in zip(les, cumulative))
            if with_count and total is not None:
                plain = ",".join([f'{labels[j]}="{escaped[values[j]]}"' for j in order])
                plain = "{" + plain + "} " if plain else " "
                out.append(count_name + plain + number(cumulative[-1]) + "\n")
                out.append(sum_name + plain + number(total) + "\n")
            if len(out) >= LINES_PER_PIECE:
                yield "".join(out)
                out = []
        yield "".join(out)

    def exemplar(self, job: JobExemplar | None) -> str:
        """`` # {job_id="..."} value timestamp`` as prometheus_client writes an Exemplar; "" for none."""
        return "" if job is None else _exemplar_text(job)


# A bucket keeps its exemplar until a later job lands in it: scrape after scrape the same text,
# built once (1.2 us each, 28,000 of them with every queue's histograms at 1,000 queues).
@lru_cache(maxsize=32_768)
def _exemplar_text(job: JobExemplar) -> str:
    job_id = exemplar_id(job)
    if job_id is None:
        return ""
    _, value, when = job
    text = f' # {{{EXEMPLAR_LABEL}="{_escape_value(job_id)}"}} {floatToGoString(value)}'
    return text if when is None else f"{text} {when}"


def render_text(families: Iterable[Metric], escaping: str = prom_internals.UNDERSCORES) -> bytes:
    """What ``prometheus_client.generate_latest`` writes for these families."""
    return b"".join(text_parts(families, escaping))


def text_parts(families: Iterable[Metric], escaping: str = prom_internals.UNDERSCORES) -> list[bytes]:
    """``render_text`` in parts, a family or a piece of one each: the server sends them without
    joining them (11 MB at 10,000 queues). Each piece's lines become bytes at once: only one
    piece's line strings are alive at a time, not all of them next to their joined text and its
    encoding (-20 MB)."""
    return list(iter_text_parts(families, escaping))


def iter_text_parts(families: Iterable[Metric], escaping: str = prom_internals.UNDERSCORES) -> Iterator[bytes]:
    """``text_parts`` made one at a time, as they are asked for: a family is built when its first
    part is asked for, so a gzipped body holds one family's rows and one piece of its text at a
    time, not the whole body's."""
    # chain and map, not a for loop: a loop's variable would keep the family just written alive
    # while the next one is built.
    return chain.from_iterable(map(partial(_text_parts, _Writer(), escaping), families))


def _text_parts(writer: _Writer, escaping: str, metric: Metric) -> Iterator[bytes]:
    if escaping in prom_internals.FAST_ESCAPINGS and metric.type in _TEXT_TYPES \
            and prom_internals.plain_name(metric.name):
        name = metric.name + ("_total" if metric.type == "counter" else "")
        help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        pieces = writer.family(metric)
        if pieces is not None:
            return _encoded(f"# HELP {name} {help_text}\n# TYPE {name} {_TEXT_TYPES[metric.type]}\n", pieces)
    return iter((exposition.generate_latest(_One(metric), escaping=escaping),))


def _encoded(head: str, pieces: Iterator[str]) -> Iterator[bytes]:
    """The family's head and text pieces as parts: the head rides with the first piece."""
    yield (head + next(pieces, "")).encode("utf-8")
    for piece in pieces:
        yield piece.encode("utf-8")


def render_openmetrics(families: Iterable[Metric], escaping: str = prom_internals.UNDERSCORES,
                       version: str = "1.0.0") -> bytes:
    """What ``prometheus_client.openmetrics.exposition.generate_latest`` writes for these families."""
    return b"".join(openmetrics_parts(families, escaping, version))


def openmetrics_parts(families: Iterable[Metric], escaping: str = prom_internals.UNDERSCORES,
                      version: str = "1.0.0") -> list[bytes]:
    """``render_openmetrics`` in parts, made as ``text_parts``."""
    return list(iter_openmetrics_parts(families, escaping, version))


def iter_openmetrics_parts(families: Iterable[Metric], escaping: str = prom_internals.UNDERSCORES,
                           version: str = "1.0.0") -> Iterator[bytes]:
    """``openmetrics_parts`` made one at a time, as ``iter_text_parts``."""
    yield from chain.from_iterable(map(partial(_openmetrics_parts, _Writer(exemplars=True), escaping, version),
                                       families))
    yield b"# EOF\n"


def _openmetrics_parts(writer: _Writer, escaping: str, version: str, metric: Metric) -> Iterator[bytes]:
    if escaping in prom_internals.FAST_ESCAPINGS and prom_internals.plain_name(metric.name):
        name = metric.name
        pieces = writer.family(metric)
        if pieces is not None:
            head = f"# HELP {name} {_escape_value(metric.documentation)}\n# TYPE {name} {metric.type}\n"
            return _encoded(head + (f"# UNIT {name} {metric.unit}\n" if metric.unit else ""), pieces)
    return iter((om_exposition.generate_latest(_One(metric), escaping=escaping, version=version)
                 .removesuffix(b"# EOF\n"),))


def fast_renderer(accept_header: str | None) -> tuple[Callable[[Iterable[Metric]], Iterator[bytes]] | None, Callable,
                                                      str]:
    """(our renderer, lazily in parts, or None, the library's encoder, content type) for this Accept header."""
    encoder, content_type = exposition.choose_encoder(accept_header or "")
    choice = prom_internals.encoder_choice(encoder)
    if choice is None:
        return None, encoder, content_type
    openmetrics, options = choice
    return partial(iter_openmetrics_parts if openmetrics else iter_text_parts, **options), encoder, content_type


def iter_render_parts(registry: Collector, accept_header: str | None) -> tuple[Iterator[bytes], str]:
    """``render_parts``, each part made when asked for (the families are collected at the first)."""
    fast, encoder, content_type = fast_renderer(accept_header)
    if fast is None:
        return iter([encoder(registry)]), content_type
    return fast(registry.collect()), content_type


def render_parts(registry: Collector, accept_header: str | None) -> tuple[list[bytes], str]:
    """The body prometheus_client would answer with for this Accept header, in parts, and its content type."""
    parts, content_type = iter_render_parts(registry, accept_header)
    return list(parts), content_type


def render(registry: Collector, accept_header: str | None) -> tuple[bytes, str]:
    """The body and content type prometheus_client would answer with for this Accept header."""
    parts, content_type = render_parts(registry, accept_header)
    return b"".join(parts), content_type
