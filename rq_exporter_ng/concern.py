"""One shape for every RQ concern, and what the collector iterates over.

A concern is one more thing read of RQ besides the core queue and worker state: job timing,
exception classes, RQ 0.x's failed queue, running jobs, rate limits, ``rq cron``, rq-scheduler.
Each is a subclass of ``Concern`` in a module (or package) of its own, and one line in
``rq_exporter_ng.concerns.CONCERNS``; the collector names none of them. Its life, the same for all:

1. ``options(settings)``: what it takes from the settings, derived once when the exporter (or a
   ``/probe`` target) starts; None turns the concern off. The concern is built from its options
   and the one ``Keys``, and keeps what it must remember between scrapes.
2. ``reads(given)``, each scrape: a ``Reads`` whose hooks add commands to the reader's pipelined
   rounds (``first``; ``second``, with the queues read and the time; ``third``), so a scrape
   stays at three round trips however many concerns there are. Nothing is decided yet.
3. ``Reads.result(given)``, after a successful read only: one immutable value, the plain data
   of its metrics. Here, and only here, what the concern remembers moves on, so a read that
   fails half way leaves it as it was. ``unread()`` is the value when Redis could not be read
   (None: no families; job timing's counters keep their values).
4. ``fold(snapshot, result)``: a concern whose figures are counts of the core ``rq_jobs`` (RQ
   0.x's failed queue, rate limits) folds them into the snapshot, which the core families and
   every concern after it see.
5. ``families(result)``: its metric families, a pure function of the result (and the options).
   ``problems(result)``: what it could not use, counted in ``rq_exporter_skipped_total``.

Data between concerns is declared, never written into another's reads: ``needs`` lists the
concerns whose reads and results a concern takes, which come before it in CONCERNS (checked at
start-up; a concern whose needs are off is off). ``given`` holds theirs and nothing else:

- when reads are made and sent, their ``Reads``, whose hooks of a round have run before its own
  (exception classes read the results streams of the failed jobs job timing reads in round 3;
  job timing leaves out a list RQ 0.x's failed queue knows is no queue);
- after the read, their results and the snapshot as folded so far (exception classes count the
  failed jobs of job timing's result; job timing counts the new jobs of RQ 0.x's failed queue).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client.core import Metric

from rq_exporter_ng.batch import Batch
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem, Snapshot

Opt = TypeVar("Opt")  # options
Res = TypeVar("Res")  # result
Rd = TypeVar("Rd", bound="Reads[Any]")


@dataclass(frozen=True)
class NoOptions:
    """The options of a concern that takes nothing from the settings: it is always on."""


T = TypeVar("T")


def taken(options: type[T], settings: Settings) -> T:
    """A concern's options: a dataclass whose fields are named as the settings they take, or as
    what the settings derive (``wants_queue``): no renaming, and no default but settings.py's."""
    return options(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(options)})  # type: ignore[arg-type]


class Reads(ABC, Generic[Res]):
    """One scrape's reads of a concern. The reader calls each hook of every concern in order,
    while it builds that round's batch; replies come back to the handlers the hooks gave."""

    def first(self, batch: Batch) -> None:
        """Round 1, with the reads of the sets of queues and workers."""

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        """Round 2: ``queues`` are the queues read, (name as in Redis, name); ``now`` the time of the read."""

    def third(self, batch: Batch) -> None:
        """Round 3: every reply of rounds 1 and 2 has been handed out."""

    @abstractmethod
    def result(self, given: Given) -> Res:
        """After a successful read only: the result, and the concern's memory moves on."""


class Concern(ABC, Generic[Opt, Rd, Res]):
    needs: ClassVar[tuple[type[Concern[Any, Any, Any]], ...]] = ()

    @classmethod
    @abstractmethod
    def options(cls, settings: Settings) -> Opt | None:
        """What the concern takes from the settings; None: off."""

    @abstractmethod
    def __init__(self, options: Opt, keys: Keys) -> None: ...

    @abstractmethod
    def reads(self, given: Given) -> Rd:
        """This scrape's reads (``given``: the reads of the concerns it needs)."""

    def unread(self) -> Res | None:
        """The result of a scrape that could not read Redis; None: no families."""
        return None

    def fold(self, snapshot: Snapshot, result: Res) -> Snapshot:
        """The snapshot with what this concern adds to the core figures; most add nothing."""
        return snapshot

    @abstractmethod
    def families(self, result: Res) -> Iterator[Metric]: ...

    def problems(self, result: Res) -> tuple[Problem, ...]:
        return getattr(result, "problems", ())


AnyConcern = Concern[Any, Any, Any]
C = TypeVar("C", bound=AnyConcern)


class Given:
    """What a concern takes from the concerns it ``needs``: their reads and, after the read,
    their results and the snapshot. ``Given()``: nothing (a concern that needs none, in tests)."""

    def __init__(self, reads: Mapping[type, Reads[Any]] | None = None, results: Mapping[type, Any] | None = None,
                 snapshot: Snapshot | None = None) -> None:
        self._reads = reads or {}
        self._results = results or {}
        self._snapshot = snapshot

    def reads(self, concern: type[Concern[Any, Rd, Any]]) -> Rd:
        return self._reads[concern]  # type: ignore[return-value]

    def result(self, concern: type[Concern[Any, Any, Res]]) -> Res:
        return self._results[concern]

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            raise LookupError("no snapshot before the read")
        return self._snapshot


class Scrape:
    """One scrape's reads of every concern that is on, in order: the reader's extras."""

    def __init__(self, reads: dict[type, Reads[Any]]) -> None:
        self.by_concern = reads

    @property
    def extras(self) -> tuple[Reads[Any], ...]:
        return tuple(self.by_concern.values())


@dataclass(frozen=True)
class Results:
    """One scrape's results, by concern; what ``Concerns.families`` turns into families."""

    by_concern: Mapping[type, Any]


class Concerns:
    """The concerns that are on, built once from the settings, in the order of ``kinds``."""

    def __init__(self, kinds: Sequence[type[AnyConcern]], settings: Settings, keys: Keys) -> None:
        self.on: list[AnyConcern] = []
        for index, kind in enumerate(kinds):
            undeclared = [need for need in kind.needs if need not in kinds[:index]]
            if undeclared:
                raise TypeError(f"{kind.__name__} needs {undeclared[0].__name__}, which must come before it")
            if not all(any(type(c) is need for c in self.on) for need in kind.needs):
                continue  # what it needs is off
            options = kind.options(settings)
            if options is not None:
                self.on.append(kind(options, keys))

    def of(self, kind: type[C]) -> C | None:
        """The concern of that kind, if it is on."""
        return next((c for c in self.on if isinstance(c, kind)), None)

    def begin(self) -> Scrape:
        reads: dict[type, Reads[Any]] = {}
        for concern in self.on:
            reads[type(concern)] = concern.reads(Given(reads={need: reads[need] for need in concern.needs}))
        return Scrape(reads)

    def finish(self, scrape: Scrape, snapshot: Snapshot) -> tuple[Snapshot, Results]:
        """After a successful read: each result in order, folded into the snapshot as it comes."""
        reads, results = scrape.by_concern, dict[type, Any]()
        for concern in self.on:
            kind = type(concern)
            given = Given(reads={need: reads[need] for need in concern.needs},
                          results={need: results[need] for need in concern.needs}, snapshot=snapshot)
            result = results[kind] = reads[kind].result(given)
            snapshot = concern.fold(snapshot, result)
        return snapshot, Results(results)

    def unread(self) -> Results:
        return Results({type(concern): concern.unread() for concern in self.on})

    def problems(self, results: Results) -> Iterator[Problem]:
        for concern in self.on:
            result = results.by_concern[type(concern)]
            if result is not None:
                yield from concern.problems(result)

    def families(self, results: Results) -> Iterator[Metric]:
        for concern in self.on:
            result = results.by_concern[type(concern)]
            if result is not None:
                yield from concern.families(result)
