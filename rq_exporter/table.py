"""A metric family held as rows of label values: the per-queue families, ~19,000 samples a scrape
at 1,000 queues.

A prometheus_client family holds a Sample and a label dict per sample; building them costs as
much as writing them out, and they are most of the memory a scrape touches. A ``Table`` keeps
``(label values, value)`` rows, which exposition.py writes out directly; anything else (the
library's own encoders, tests) reads ``samples`` as from any family, built on first use.
"""

from __future__ import annotations

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

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


HistogramRow = tuple[tuple[str, ...], list[int], float]  # label values, cumulative count per bucket, sum


class HistogramTable(_Rows):
    """A histogram family as rows: 16 samples a row with the default buckets, ~48,000 a scrape once
    1,000 queues have timed jobs."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], les: tuple[str, ...],
                 rows: list[HistogramRow]) -> None:
        super().__init__(name, documentation, "histogram")
        self.labels = labels
        self.les = les  # bucket bounds as written, "+Inf" last
        self.rows = rows

    def _build_samples(self) -> list[Sample]:
        """What HistogramMetricFamily.add_metric builds for each row."""
        labels, name, samples = self.labels, self.name, []
        with_count = not self.les or float(self.les[0]) >= 0  # no _count/_sum below a negative bound
        for values, cumulative, total in self.rows:
            plain = dict(zip(labels, values))
            samples += [Sample(name + "_bucket", {**plain, "le": le}, count) for le, count in zip(self.les, cumulative)]
            if with_count and total is not None:
                samples += [Sample(name + "_count", plain, cumulative[-1]), Sample(name + "_sum", plain, total)]
        return samples
