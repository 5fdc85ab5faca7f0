"""One scrape of one concern as the collector makes it, for the concerns' own tests: its reads ride
in the reader's rounds, then its result, and the snapshot with what it folds in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq_exporter_ng.concern import AnyConcern, Given
from rq_exporter_ng.families.table import Table
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.snapshot import Snapshot


def scrape_concern(client, concern: AnyConcern, keys: Keys,
                   wants_queue: Callable[[str], bool] = lambda name: True) -> tuple[Snapshot, Any]:
    reads = concern.reads(Given())
    snapshot = read_snapshot(client, keys, wants_queue, extras=(reads,))
    result = reads.result(Given(snapshot=snapshot))
    return concern.fold(snapshot, result), result


def rows_of(families) -> dict[str, dict]:
    """Family name -> {label values: value}, of families held as rows (rq_exporter_ng/families/table.py)."""
    out = {}
    for family in families:
        assert isinstance(family, Table)
        out[family.name] = dict(family.rows)
    return out
