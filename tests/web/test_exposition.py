"""rq_exporter_ng.web.exposition writes exactly what prometheus_client writes, only faster.

Compared byte for byte (and parsed back) against the library, on the families of a real
scrape of a real Redis holding awkward names, and on generated families of every type.
"""

from __future__ import annotations

import gzip
import math
from itertools import accumulate
from wsgiref.util import setup_testing_defaults

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.utils import floatToGoString

from bench.dataset import Size, fill
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.families.table import Column, Grid, HistogramTable, Table
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.web.exposition import (
    LINES_PER_PIECE,
    _Writer,
    fast_renderer,
    iter_openmetrics_parts,
    iter_text_parts,
    render_openmetrics,
    render_text,
    text_parts,
)
from rq_exporter_ng.web.server import make_metrics_app


class Static:
    def __init__(self, families) -> None:
        self.families = families

    def collect(self):
        return list(self.families)


def _same(families) -> None:
    text, om = render_text(families), render_openmetrics(families)
    assert text == generate_latest(Static(families))
    assert om == generate_openmetrics(Static(families))
    assert _parsed(parse_text(text.decode())) == _parsed(parse_text(generate_latest(Static(families)).decode()))
    assert _parsed(parse_openmetrics(om.decode())) == \
        _parsed(parse_openmetrics(generate_openmetrics(Static(families)).decode()))


def _parsed(families) -> list:
    # NaN != NaN: compare its text instead
    return [(f.name, f.type, f.documentation,
             [(s.name, s.labels, repr(s.value) if math.isnan(s.value) else s.value, s.timestamp)
              for s in f.samples]) for f in families]


@pytest.mark.redis
def test_a_real_scrape_with_awkward_names_renders_identically(redis_db):
    client = redis_db.client()
    fill("127.0.0.1", redis_db.port, Size(queues=20, workers=10, jobs=2000, dead_workers=2))
    for name in (b'quote"d', b"back\\slash", b"new\nline", "ünïcødé".encode(), b"\xff\xfebad", b"a,b"):
        client.sadd("rq:queues", b"rq:queue:" + name)
        client.rpush(b"rq:queue:" + name, b"missing-job")
        client.zadd(b"rq:finished:" + name, {b"x": 2e9})
    client.hset("rq:worker:odd", mapping={"state": "busy", "queues": 'quote"d,new\nline',
                                          "successful_job_count": "12", "total_working_time": "1e-07"})
    client.sadd("rq:workers", "rq:worker:odd")
    collector = RQCollector(client, Settings(redis_url=redis_db.url))
    collector.collect()  # a first scrape, so counters and timing state are not all zero
    families = list(collector.collect())
    assert sum(len(f.samples) for f in families) > 500
    _same(families)


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
metric_names = names | st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
ESCAPINGS = ("underscores", "allow-utf-8", "dots", "values")
label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | \
    st.sampled_from(['"', "\\", "\n", "a\\n", ""])
values = st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True) | \
    st.sampled_from([0.0, -0.0, 1e-07, 123456789.0, 1e22, 999_999, 1_000_000, -(2**53) - 1, -(2**53),
                     -(2**53) + 1, -9_999_999_999_999_999, 2**53 + 1, True])


@st.composite
def histogram_rows(draw, size: int, count: int = 4):
    """Bucket bounds as written (increasing, "+Inf" last; sometimes starting below 0, where the
    library leaves out _count and _sum) and rows of (cumulative counts, sum)."""
    bounds = sorted(set(draw(st.lists(st.floats(-10, 1e6, allow_nan=False) | st.integers(0, 10**6), max_size=4))))
    les = tuple(floatToGoString(b) for b in bounds) + ("+Inf",)
    rows = []
    for _ in range(count):
        increments = draw(st.lists(st.integers(0, 10**7), min_size=len(les), max_size=len(les)))
        rows.append((list(accumulate(increments)), draw(st.none() | values)))
    return les, rows


@st.composite
def family(draw):
    kind = draw(st.sampled_from(["gauge", "counter", "untyped", "histogram", "summary", "info", "table",
                                 "histogram_table", "grid", "column"]))
    name = draw(metric_names).removesuffix("_total").removesuffix("_info") or "x"
    labels = draw(st.lists(names.filter(lambda n: not n.startswith("__") and n not in ("le", "quantile")),
                           max_size=3, unique=True))
    rows = draw(st.lists(st.tuples(*[label_values] * len(labels)), max_size=4, unique=True))
    unit_free_help = draw(label_values)
    stamp = draw(st.none() | st.floats(1, 2e9))
    if kind == "gauge":
        metric = GaugeMetricFamily(name, unit_free_help, labels=labels)
        for row in rows:
            metric.add_metric(list(row), draw(values), timestamp=stamp)
    elif kind == "counter":
        metric = CounterMetricFamily(name, unit_free_help, labels=labels)
        for row in rows:
            metric.add_metric(list(row), abs(draw(values)) if draw(st.booleans()) else draw(values),
                              created=draw(st.none() | st.floats(1, 2e9)))
    elif kind == "untyped":
        metric = UnknownMetricFamily(name, unit_free_help, labels=labels)
        for row in rows:
            metric.add_metric(list(row), draw(values))
    elif kind == "histogram":
        metric = HistogramMetricFamily(name, unit_free_help, labels=labels)
        for row in rows:
            metric.add_metric(list(row), [("0.5", 1), ("1.0", 3), ("+Inf", 4)], sum_value=draw(values))
    elif kind == "summary":
        metric = SummaryMetricFamily(name, unit_free_help, labels=labels)
        for row in rows:
            metric.add_metric(list(row), count_value=4, sum_value=draw(values))
    elif kind == "table":
        typ = draw(st.sampled_from(["gauge", "counter"]))
        metric = Table(name + "_total" if typ == "counter" else name, unit_free_help, typ, tuple(labels),
                       [(row, draw(values)) for row in rows])
    elif kind == "grid":
        # Two labels in either order (the fast way takes them sorted only), every key against every
        # column; ints only most of the time (rq_jobs' counts), any value otherwise.
        two = draw(st.lists(names.filter(lambda n: not n.startswith("__") and n not in ("le", "quantile")),
                            min_size=2, max_size=2, unique=True))
        keys = draw(st.lists(label_values, max_size=4, unique=True))
        columns = tuple(draw(st.lists(label_values, max_size=3, unique=True)))
        cell = st.integers(-10**20, 10**20) if draw(st.booleans()) else values
        typ = draw(st.sampled_from(["gauge", "counter"]))
        metric = Grid(name + "_total" if typ == "counter" else name, unit_free_help, typ, tuple(two), keys, columns,
                      [tuple(draw(cell) for _ in columns) for _ in keys])
    elif kind == "column":
        # One label, a value per key; ints only most of the time (the per-queue counts), any value otherwise.
        keys = draw(st.lists(label_values, max_size=5, unique=True))
        cell = st.integers(-10**20, 10**20) if draw(st.booleans()) else values
        typ = draw(st.sampled_from(["gauge", "counter"]))
        metric = Column(name + "_total" if typ == "counter" else name, unit_free_help, typ,
                        draw(names.filter(lambda n: not n.startswith("__") and n not in ("le", "quantile"))), keys,
                        [draw(cell) for _ in keys])
    elif kind == "histogram_table":
        les, rows_ = draw(histogram_rows(len(labels))) if rows else ((), [])
        # Exemplars (job timing's latest job per bucket): ids of any length and characters.
        job = st.tuples(st.binary(max_size=130) | st.text(max_size=130).map(str.encode),
                        st.floats(0, 1e6), st.none() | st.floats(1, 2e9))
        exemplars = draw(st.none() | st.just([[draw(st.none() | job) for _ in les] for _ in rows_]))
        metric = HistogramTable(name, unit_free_help, tuple(labels), les,
                                [(row, counts, total) for row, (counts, total) in zip(rows, rows_)], exemplars)
    else:
        metric = InfoMetricFamily(name, unit_free_help, labels=labels)
        for row in rows:
            metric.add_metric(list(row), {"version": draw(label_values)})
    return metric


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=300, deadline=None)
@given(st.lists(family(), max_size=4, unique_by=lambda f: f.name), st.sampled_from(ESCAPINGS))
def test_generated_families_render_identically(families, escaping):
    _agree(lambda: render_text(families, escaping=escaping),
           lambda: generate_latest(Static(families), escaping=escaping))
    _agree(lambda: render_openmetrics(families, escaping=escaping),
           lambda: generate_openmetrics(Static(families), escaping=escaping))


def _agree(ours, library) -> None:
    """The same bytes, or the same refusal: where the library refuses the families with a
    ValueError (a sample it cannot write), so must we. Any other error fails the test."""
    assert _outcome(ours) == _outcome(library)


def _outcome(render) -> bytes | type[ValueError]:
    """What ``render()`` wrote, or the type of its ValueError."""
    try:
        return render()
    except ValueError as refusal:
        return type(refusal)


@settings(max_examples=200, deadline=None)
@given(st.lists(names, max_size=3, unique=True), st.sampled_from(["gauge", "counter"]), st.data())
def test_a_table_holds_the_samples_add_metric_builds(labels, typ, data):
    rows = data.draw(st.lists(st.tuples(*[label_values] * len(labels)), max_size=4, unique=True))
    rows = [(row, data.draw(values)) for row in rows]
    regular = (GaugeMetricFamily if typ == "gauge" else CounterMetricFamily)("rq_x_total", "Help.", labels=labels)
    for row, value in rows:
        regular.add_metric(list(row), value)
    table = Table("rq_x_total", "Help.", typ, tuple(labels), rows)
    assert table == regular
    assert render_openmetrics([table]) == render_openmetrics([regular])
    assert render_text([table]) == render_text([regular])


@settings(max_examples=200, deadline=None)
@given(st.lists(names.filter(lambda n: n != "le"), max_size=3, unique=True), st.data())
def test_a_histogram_table_holds_the_samples_add_metric_builds(labels, data):
    rows = data.draw(st.lists(st.tuples(*[label_values] * len(labels)), min_size=1, max_size=4, unique=True))
    les, buckets = data.draw(histogram_rows(len(labels), count=len(rows)))
    regular = HistogramMetricFamily("rq_h_seconds", "Help.", labels=labels)
    for row, (counts, total) in zip(rows, buckets):
        regular.add_metric(list(row), list(zip(les, counts)), total)
    table = HistogramTable("rq_h_seconds", "Help.", tuple(labels), les,
                           [(row, counts, total) for row, (counts, total) in zip(rows, buckets)])
    assert table == regular
    assert render_openmetrics([table]) == render_openmetrics([regular])
    assert render_text([table]) == render_text([regular])


# What Prometheus 2.x and 3.x send when they scrape.
PROMETHEUS_2 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROMETHEUS_3 = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
                "text/plain;version=0.0.4;q=0.2,*/*;q=0.1")


def _call(app, method="GET", accept=None, encoding=None, query=""):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/metrics", "QUERY_STRING": query}
    if accept:
        environ["HTTP_ACCEPT"] = accept
    if encoding:
        environ["HTTP_ACCEPT_ENCODING"] = encoding
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, headers

    body = b"".join(app(environ, start_response))
    headers = seen["headers"]
    # Ours says how long its body (sent in parts) is; wsgiref says it of the library's one-part body.
    length = [value for name, value in headers if name == "Content-Length"]
    assert length in ([], [str(len(body))])
    headers = [header for header in headers if header[0] != "Content-Length"]
    if ("Content-Encoding", "gzip") in headers:
        body = gzip.decompress(body)
    return seen["status"], headers, body


def test_the_app_negotiates_like_prometheus_client():
    registry = CollectorRegistry(auto_describe=False)
    gauge = GaugeMetricFamily("rq_queue_workers", "Workers.", labels=["queue", "state"])
    gauge.add_metric(["default", "idle"], 3)
    counter = CounterMetricFamily("rq_exporter_scrapes", "Scrapes.")
    counter.add_metric([], 7)
    # Tables too: the library's encoders (escaping=dots, name[] filtering) read their samples.
    table = Table("rq_jobs", "Jobs.", "gauge", ("queue", "status"), [(("default", "queued"), 3)])
    histogram = HistogramTable("rq_job_wait_seconds", "Waits.", ("queue",), ("1.0", "+Inf"), [(("default",), [1, 2], 1.5)])
    registry.register(Static([gauge, counter, table, histogram]))
    ours, library = make_metrics_app(registry), make_wsgi_app(registry)
    cases = [
        {}, {"accept": "application/openmetrics-text; version=1.0.0"}, {"accept": "application/openmetrics-text"},
        {"accept": "text/plain;version=1.0.0;escaping=allow-utf-8"}, {"accept": "text/plain;version=0.0.4"},
        {"accept": "application/openmetrics-text;version=1.0.0;escaping=dots"},
        {"accept": PROMETHEUS_2}, {"accept": PROMETHEUS_3}, {"accept": "text/plain;version=1.0.0;escaping=values"},
        {"encoding": "gzip"}, {"encoding": "br, gzip;q=0.5"}, {"query": "name[]=rq_jobs"},
        {"method": "OPTIONS"}, {"method": "POST"},
    ]
    for case in cases:
        assert _call(ours, **case) == _call(library, **case), case


def test_prometheus_scrapes_take_the_fast_path():
    for accept in (None, PROMETHEUS_2, PROMETHEUS_3, "text/plain;version=1.0.0;escaping=allow-utf-8"):
        assert fast_renderer(accept)[0] is not None, accept
    assert fast_renderer("text/plain;version=1.0.0;escaping=dots")[0] is None


def test_parts_are_made_one_family_at_a_time():
    """A gzipped body holds one family's text at a time only if each part is made when asked for:
    the parts pull the families one by one, and joined they are the library's body."""
    families = [Table(f"rq_t{i}", "Help.", "gauge", ("queue",), [((f"q{j}",), j) for j in range(3)])
                for i in range(4)]
    for make, library in ((iter_text_parts, generate_latest), (iter_openmetrics_parts, generate_openmetrics)):
        pulled: list[str] = []

        def source(pulled=pulled):
            for family in families:
                pulled.append(family.name)
                yield family

        parts = make(source())
        first = next(parts)
        assert pulled == ["rq_t0"] and b"rq_t0" in first and b"rq_t1" not in first
        assert first + b"".join(parts) == library(Static(families))
        assert len(pulled) == 4


def test_a_big_family_is_written_in_pieces_that_join_to_the_librarys_body():
    """A family of more than LINES_PER_PIECE lines (rq_jobs has 80,000 at 10,000 queues) comes in
    several parts, so its text is never all made at once; joined they are the library's body."""
    rows = [((f"q{j // 3}", ("queued", "failed", "started")[j % 3]), j % 7) for j in range(2 * LINES_PER_PIECE + 5)]
    buckets = ("0.5", "1.0", "+Inf")
    hist_rows = [((f"q{j}",), list(accumulate([j % 2, 1, j % 3])), float(j)) for j in range(LINES_PER_PIECE // 2)]
    families = [Table("rq_jobs", "Jobs.", "gauge", ("queue", "status"), rows),
                HistogramTable("rq_job_duration_seconds", "Durations.", ("queue",), buckets, hist_rows),
                Table("rq_one", "One.", "gauge", (), [((), 1)])]
    for make, library in ((iter_text_parts, generate_latest), (iter_openmetrics_parts, generate_openmetrics)):
        parts = list(make(iter(families)))
        assert len(parts) >= 3 + 2 + 1
        assert all(len(part.splitlines()) < LINES_PER_PIECE + 10 for part in parts)  # a histogram row's lines stay together
        assert b"".join(parts) == library(Static(families))


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([0.0, -0.0, 1e6, 999_999.999, 1e6 - 1e-9, 1e-5, -1e6, -1e20, 1e22]),
                       st.integers(min_value=-(2**70), max_value=2**70)))
def test_a_number_is_written_as_the_library_writes_it(value):
    writer = _Writer()
    assert writer.number(value) == floatToGoString(value)
    assert writer.number(value) == floatToGoString(value)  # the cached text too


@settings(max_examples=200, deadline=None)
@given(st.lists(label_values, max_size=5, unique=True), st.lists(label_values, max_size=4, unique=True), st.data())
def test_a_grid_holds_and_writes_the_rows_of_the_plain_table(keys, columns, data):
    # rq_jobs and rq_queue_workers as a Grid: the same samples as the Table of every (key, column)
    # row in order, written byte for byte as that Table (itself compared with the library above).
    cells = [tuple(data.draw(values | st.integers(0, 10**7)) for _ in columns) for _ in keys]
    grid = Grid("rq_jobs", "Jobs.", "gauge", ("queue", "status"), keys, tuple(columns), cells)
    rows = [((key, column), value) for key, row in zip(keys, cells) for column, value in zip(columns, row)]
    plain = Table("rq_jobs", "Jobs.", "gauge", ("queue", "status"), rows)
    assert grid.rows == rows and grid == plain
    assert render_text([grid]) == render_text([plain]) == generate_latest(Static([plain]))
    assert render_openmetrics([grid]) == render_openmetrics([plain])


def test_a_big_grid_is_written_in_pieces_that_join_to_the_tables_body():
    keys = [f"q{i}" for i in range(3 * LINES_PER_PIECE // 8 + 5)]
    cells = [tuple(range(i, i + 8)) for i in range(len(keys))]
    grid = Grid("rq_jobs", "Jobs.", "gauge", ("queue", "status"), keys, tuple("abcdefgh"), cells)
    plain = Table("rq_jobs", "Jobs.", "gauge", ("queue", "status"), list(grid.rows))
    parts = text_parts([grid])
    assert len(parts) > 3 and b"".join(parts) == render_text([plain])


def test_escaped_label_values_are_kept_between_renders_and_emptied_past_the_limit(monkeypatch):
    from rq_exporter_ng.kept import Kept
    from rq_exporter_ng.web import exposition

    cache = Kept(exposition._escape_value, 5)
    monkeypatch.setattr(exposition, "_ESCAPED", cache)
    rows = [((name,), 1) for name in ['a"b', "c\\d", "e\nf", "plain"]]
    table = Table("rq_x", "X.", "gauge", ("queue",), rows)
    first = render_text([table])
    assert set(cache) == {'a"b', "c\\d", "e\nf", "plain"} and cache['a"b'] == 'a\\"b'
    assert render_text([table]) == first == generate_latest(Static([table]))  # from the kept values
    more = Table("rq_x", "X.", "gauge", ("queue",), [(("g",), 1), (("h",), 2)])
    assert render_text([more]) == generate_latest(Static([more]))
    assert len(cache) <= 5


@settings(max_examples=200, deadline=None)
@given(st.lists(label_values, max_size=6, unique=True), st.data())
def test_a_column_holds_and_writes_the_rows_of_the_plain_table(keys, data):
    # The per-queue counts as a Column: the same samples as the Table of (key,) rows in order,
    # written byte for byte as that Table and as the library.
    cells = [data.draw(values | st.integers(0, 10**7)) for _ in keys]
    column = Column("rq_queue_abandoned_jobs", "Jobs.", "gauge", "queue", keys, cells)
    rows = [((key,), value) for key, value in zip(keys, cells)]
    plain = Table("rq_queue_abandoned_jobs", "Jobs.", "gauge", ("queue",), rows)
    assert column.rows == rows and column == plain
    assert render_text([column]) == render_text([plain]) == generate_latest(Static([plain]))
    assert render_openmetrics([column]) == render_openmetrics([plain])


def test_a_big_column_is_written_in_pieces_that_join_to_the_tables_body():
    keys = [f"q{i}" for i in range(2 * LINES_PER_PIECE + 5)]
    column = Column("rq_queue_abandoned_jobs", "Jobs.", "gauge", "queue", keys, [i % 9 for i in range(len(keys))])
    plain = Table("rq_queue_abandoned_jobs", "Jobs.", "gauge", ("queue",), list(column.rows))
    parts = text_parts([column])
    assert len(parts) == 3 and b"".join(parts) == render_text([plain])
