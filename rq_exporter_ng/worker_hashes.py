"""RQ's worker hashes (round 2 of reader.py) -> WorkerState, with what cannot be read reported as problems."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from rq_exporter_ng import parse
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.snapshot import WORKER_STATES, WorkerState

WORKER_FIELDS = (
    b"state",
    b"queues",
    b"last_heartbeat",
    b"successful_job_count",
    b"failed_job_count",
    b"total_working_time",
    b"birth",
    b"current_job",
    b"version",
)


class Problems(Protocol):
    def problem(self, reason: str, key: bytes | str, detail: str = "") -> None: ...


def workers_from(
    replies: Iterable[tuple[bytes, list | None]], keys: Keys, reading: Problems
) -> tuple[list[WorkerState], int]:
    prefix = keys.worker_member_prefix
    workers: list[WorkerState] = []
    dead = 0
    for key, reply in replies:
        if reply is None:
            continue  # an error reply (not a hash), reported already
        fields = dict(zip(WORKER_FIELDS, reply))
        if not (fields[b"birth"] or fields[b"last_heartbeat"]):
            # Listed in rq:workers, and its hash expired (killed without a clean exit), or holds
            # only the counters a work horse writes back when it finishes a job after its worker
            # was killed: every live RQ worker registers its birth and heartbeat at once.
            dead += 1
            continue
        if not _has_lived(fields, key, reading):
            # Neither timestamp is one RQ wrote: counted live, such a hash would keep
            # RQAllWorkersGone silent with no worker running.
            continue
        workers.append(_worker(parse.text(key[len(prefix):]), fields, key, reading))
    return workers, dead


def _has_lived(fields: dict[bytes, bytes | None], key: bytes, reading: Problems) -> bool:
    """Whether birth or last_heartbeat is a timestamp; when neither is, each is a problem (a live
    worker's unreadable heartbeat is reported by _worker)."""
    errors = []
    for name in (b"birth", b"last_heartbeat"):
        try:
            if parse.timestamp(fields[name]) is not None:
                return True
        except ValueError as error:
            errors.append(f"{name.decode()}: {error}")
    for detail in errors:
        reading.problem("bad_worker_field", key, detail)
    return False


def _worker(name: str, fields: dict[bytes, bytes | None], key: bytes, reading: Problems) -> WorkerState:
    def field_or_none(parser: Callable, field_name: bytes):
        try:
            return parser(fields[field_name])
        except ValueError as error:
            reading.problem("bad_worker_field", key, f"{field_name.decode()}: {error}")
            return None

    queues_raw = fields[b"queues"]
    queues = tuple(q for q in parse.text(queues_raw).split(",") if q) if queues_raw else ()
    state = parse.text(fields[b"state"]) if fields[b"state"] else "unknown"
    if state not in WORKER_STATES and state != "unknown":
        # The state label takes only RQ's values: any other would make a series of its own.
        reading.problem("bad_worker_state", key, f"state: {state[:64]!r}")
        state = "unknown"
    return WorkerState(
        name=name,
        queues=queues,
        state=state,
        last_heartbeat=field_or_none(parse.timestamp, b"last_heartbeat"),
        successful_jobs=field_or_none(parse.count, b"successful_job_count"),
        failed_jobs=field_or_none(parse.count, b"failed_job_count"),
        working_seconds=field_or_none(parse.seconds, b"total_working_time"),
        current_job=parse.text(fields[b"current_job"]) if fields[b"current_job"] else None,
        rq_version=parse.text(fields[b"version"]) if fields[b"version"] else None,
    )
