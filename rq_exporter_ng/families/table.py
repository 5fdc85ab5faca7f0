"""A metric family held as rows of label values: the per-queue families, ~19,000 samples a scrape
at 1,000 queues. ``table`` and ``histogram_table`` build one for a metric of the catalogue.

A prometheus_client family holds a Sample and a label dict per sample; building them costs as
much as writing them out, and they are most of the memory a scrape touches. A ``Table`` keeps
``(label values, value)`` rows, which exposition.py writes out directly; anything else (the
library's own encoders, tests) reads ``samples`` as from any family, built on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar, Sample

from rq_exporter_ng import parse
from rq_exporter_ng.families.catalogue import spec

Row = tuple[tuple[str, ...], float]


class _Rows(Metric):
    """A family whose ``samples`` are built from its rows on first use.

    PRIVATE (prometheus_client): ``Metric.__init__`` assigns ``self.samples = []``, which the
    setter below takes; the library's encoders read ``samples`` like any attribute."""

    _samples: list[Sample] | None

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = self._build_samples()
        return self._samples

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        # Metric.__init__ sets [] before the rows exist: the rows are the samples until set otherwise.
        self._samples = samples or None

    def _build_samples(self) -> list[Sample]:
        raise NotImplementedError


class Table(_Rows):
    def __init__(self, name: str, documentation: str, typ: str, labels: tuple[str, ...], rows: list[Row]) -> None:
        if typ == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]  # as CounterMetricFamily names it; its samples end in _total
        super().__init__(name, documentation, typ)
        self.labels = labels
        self.rows = rows
        self.sample_name = name + "_total" if typ == "counter" else name

    def _build_samples(self) -> list[Sample]:
        labels, name = self.labels, self.sample_name
        return [Sample(name, dict(zip(labels, values)), value) for values, value in self.rows]


class _Held(Table):
    """A table whose rows are built from another form only when asked for (the library's encoders,
    tests): exposition.py writes that form directly."""

    def __init__(self, name: str, documentation: str, typ: str, labels: tuple[str, ...]) -> None:
        self._rows: list[Row] | None = None
        super().__init__(name, documentation, typ, labels, None)  # type: ignore[arg-type]

    @property
    def rows(self) -> list[Row]:
        if self._rows is None:
            self._rows = self._make_rows()
        return self._rows

    @rows.setter
    def rows(self, rows: list[Row] | None) -> None:  # Table.__init__'s None: built when asked for
        self._rows = rows

    def _make_rows(self) -> list[Row]:
        raise NotImplementedError


class Grid(_Held):
    """A two-label table of every key against every column, in that order (rq_jobs: each queue's
    count per status), held as one tuple of values a key instead of a row a sample: exposition.py
    writes a key's lines in one go (rq_jobs at 10,000 queues: 80,000 rows otherwise built and
    written one by one)."""

    def __init__(self, name: str, documentation: str, typ: str, labels: tuple[str, str], keys: list[str],
                 columns: tuple[str, ...], values: list[tuple]) -> None:
        self.keys = keys
        self.columns = columns
        self.values = values  # per key, a value per column
        super().__init__(name, documentation, typ, labels)

    def _make_rows(self) -> list[Row]:
        return [((key, column), value) for key, values in zip(self.keys, self.values)
                for column, value in zip(self.columns, values)]


class Column(_Held):
    """A one-label table held as its keys and their values, in order (a count per queue): exposition.py
    writes the values without a row tuple each (10,000 a family at 10,000 queues)."""

    def __init__(self, name: str, documentation: str, typ: str, label: str, keys: list[str],
                 values: list) -> None:
        self.keys = keys
        self.values = values
        super().__init__(name, documentation, typ, (label,))

    def _make_rows(self) -> list[Row]:
        return [((key,), value) for key, value in zip(self.keys, self.values)]


HistogramRow = tuple[tuple[str, ...], list[int], float]  # label values, cumulative count per bucket, sum
# The latest job of one bucket: (job id as in Redis, its value, when it ended). Kept raw and turned
# into text only when OpenMetrics is asked for: the text format carries no exemplars.
JobExemplar = tuple[bytes, float, float | None]
EXEMPLAR_LABEL = "job_id"
# OpenMetrics allows 128 characters of exemplar labels (names and values): a longer job id has none.
MAX_EXEMPLAR_ID = 128 - len(EXEMPLAR_LABEL)


def exemplar_id(job: JobExemplar) -> str | None:
    """The job id as an exemplar label value; None when too long for OpenMetrics."""
    text = parse.text(job[0])
    return text if len(text) <= MAX_EXEMPLAR_ID else None


class HistogramTable(_Rows):
    """A histogram family as rows: 16 samples a row with the default buckets, ~48,000 a scrape once
    1,000 queues have timed jobs."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], les: tuple[str, ...],
                 rows: list[HistogramRow],
                 exemplars: Sequence[Sequence[JobExemplar | None]] | None = None) -> None:
        super().__init__(name, documentation, "histogram")
        self.labels = labels
        self.les = les  # bucket bounds as written, "+Inf" last
        self.rows = rows
        self.exemplars = exemplars  # per row, per bucket (not cumulative): the bucket's latest job, or None

    def _build_samples(self) -> list[Sample]:
        """What HistogramMetricFamily.add_metric builds for each row."""
        labels, name, samples = self.labels, self.name, []
        with_count = not self.les or float(self.les[0]) >= 0  # no _count/_sum below a negative bound
        no_exemplars = [None] * len(self.les)
        for r, (values, cumulative, total) in enumerate(self.rows):
            plain = dict(zip(labels, values))
            exemplars = [_exemplar(job) for job in self.exemplars[r]] if self.exemplars else no_exemplars
            samples += [Sample(name + "_bucket", {**plain, "le": le}, count, None, exemplar)
                        for le, count, exemplar in zip(self.les, cumulative, exemplars)]
            if with_count and total is not None:
                samples += [Sample(name + "_count", plain, cumulative[-1]), Sample(name + "_sum", plain, total)]
        return samples


def _exemplar(job: JobExemplar | None) -> Exemplar | None:
    job_id = exemplar_id(job) if job is not None else None
    if job is None or job_id is None:
        return None
    return Exemplar({EXEMPLAR_LABEL: job_id}, job[1], job[2])


def table(name: str, rows: list[Row]) -> Table:
    """The catalogued metric ``name`` as rows of (label values in its label order, value)."""
    s = spec(name)
    return Table(s.name, s.help, s.type, s.labels, rows)


def grid(name: str, keys: list[str], columns: tuple[str, ...], values: list[tuple]) -> Grid:
    """The catalogued two-label metric ``name``: ``values[i][j]`` is the sample of (keys[i], columns[j])."""
    s = spec(name)
    return Grid(s.name, s.help, s.type, s.labels, keys, columns, values)  # type: ignore[arg-type]


def column(name: str, keys: list[str], values: list) -> Column:
    """The catalogued one-label metric ``name``: ``values[i]`` is the sample of keys[i]."""
    s = spec(name)
    (label,) = s.labels
    return Column(s.name, s.help, s.type, label, keys, values)


def histogram_table(name: str, extra_labels: tuple[str, ...], les: tuple[str, ...],
                    rows: list[HistogramRow], exemplars: Sequence[Sequence[JobExemplar | None]] | None = None,
                    ) -> HistogramTable:
    """The catalogued histogram ``name`` (plus optional labels) as rows of (label values,
    cumulative bucket counts, sum), and per row each bucket's exemplar (OpenMetrics only)."""
    s = spec(name)
    return HistogramTable(s.name, s.help, (*s.labels, *extra_labels), les, rows, exemplars)
