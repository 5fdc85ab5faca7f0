"""Redis -> Snapshot: RQ's state in at most three pipelined round trips, read-only.

1. the queue and worker sets;
2. every queue's list lengths and registry counts, and every worker's hash;
3. the enqueue time of each queue's head job.

A queue's keys found empty at the previous scrape are asked about with one EXISTS in round 2
and read in round 3 only if one is there now (queue_reads.py).

Only read commands are sent (SMEMBERS, LLEN, LINDEX, ZCARD, ZCOUNT, EXISTS, MGET, HMGET; the extra
readers add ZRANGEBYSCORE, ZRANGE, LRANGE, XREVRANGE and SCAN). Counts equal what RQ reports after its own cleanup:
entries whose score (expiry) has passed are left out, without running that cleanup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import redis

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.kept import Kept
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.packing import Template, run_of, template
from rq_exporter_ng.queue_reads import FULL, QUEUE_VALUES, Quiet, Shape
from rq_exporter_ng.snapshot import Problem, QueueState, Snapshot, WorkerState
from rq_exporter_ng.worker_hashes import WORKER_FIELDS, workers_from


@dataclass
class _Reading:
    """Mutable state of one read, turned into a frozen Snapshot at the end."""

    now: float
    problems: list[Problem] = field(default_factory=list)
    # An EXISTS that got an error reply (queue_reads.py): no data skipped, its keys are read in
    # round 3; the first such error decides whether the shortcut stays on.
    exists_error: Exception | None = None

    def problem(self, reason: str, key: bytes | str, detail: str = "") -> None:
        self.problems.append(Problem(reason, parse.text(key), detail[:200]))

    def on_error(self, command: tuple, error: Exception) -> None:
        if command[0] == "EXISTS":
            self.exists_error = self.exists_error or error
            return
        key = command[1] if len(command) > 1 else command[0]
        if not isinstance(key, (bytes, str)):  # a SCAN cursor, say: no key, but what was refused
            key = str(key)
        reason = "wrong_type" if "WRONGTYPE" in str(error) else "error_reply"
        self.problem(reason, key, f"{parse.text(command[0])}: {error}")


LOCKS_PER_MGET = 500  # queues' scheduler locks read by one command (keeps each one short for Redis)
# Queues packed and handed their replies as one group (packing.Run): the batch's work per group,
# ~2 us, done once per 100 queues (~15 ms a scrape at 10,000 queues); 1,300 commands, about the
# batch's chunk sent at a time.
QUEUES_PER_RUN = 100
HEADS_PER_GROUP = 500  # head jobs read by one group in round 3


_NO_REPLIES = (None,) * len(QUEUE_VALUES)


class _Queue:
    """One queue's reads: ``replies`` in QUEUE_VALUES order (None: an error reply), kept as the
    batch hands them over, a list or its run's slice (a dict of them per queue, and its look-ups,
    cost ~4.6 MB and ~30 ms of CPU a scrape at 10,000 queues)."""

    __slots__ = ("later", "name", "raw", "replies", "scheduler_active", "shape", "state")

    def __init__(self, raw: bytes, name: str, shape: Shape) -> None:
        self.raw = raw
        self.name = name
        self.shape = shape
        self.replies: Sequence = _NO_REPLIES
        self.later = False  # a key its EXISTS asked about is there: read in round 3
        self.scheduler_active = False
        # Built as soon as its last read is in (its lock, or its head job's), while Redis works on
        # the rest: ~15 ms at 10,000 queues that it otherwise waited for after round 3.
        self.state: QueueState | None = None

    def fill(self, replies: list) -> None:
        """Round 3's reads of the keys its EXISTS found (None: an error reply, reported already)."""
        self.replies = self.shape.fill(self.replies, replies)

    @property
    def head(self) -> bytes | None:
        return self.replies[2]


class RoundReads(Protocol):
    """More reads riding in the same three rounds (each concern's: rq_exporter_ng/concern.py), so the
    round trips stay constant. Keys whose errors the reader reports already are re-read in quiet groups."""

    def first(self, batch: Batch) -> None: ...

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None: ...

    def third(self, batch: Batch) -> None: ...


def read_snapshot(
    client: redis.Redis,
    keys: Keys,
    wants_queue: Callable[[str], bool] = lambda name: True,
    extras: Sequence[RoundReads] = (),
    quiet: Quiet | None = None,
) -> Snapshot:
    """One consistent-enough view of RQ's state. Raises redis errors when Redis cannot be read.

    ``quiet``: what the previous scrapes found empty, learnt again from this one (none: every key read)."""
    reading = _Reading(now=time.time())
    quiet = quiet if quiet is not None else Quiet()
    round_trips = 0

    # 1. The sets naming every queue and worker.
    queue_members: set[bytes] = set()
    worker_members: set[bytes] = set()
    first = Batch(reading.on_error)
    first.add(queue_members.update, "SMEMBERS", keys.queues)
    first.add(worker_members.update, "SMEMBERS", keys.workers)
    for extra in extras:
        extra.first(first)
    first.run(client)
    round_trips += 1

    queue_keys = _with_prefix(queue_members, keys.queue_member_prefix, "queue", reading)
    worker_keys = _worker_keys_from(worker_members, keys, reading)

    # 2. Everything per queue and per worker. Parts are made as the batch is sent, and replies
    # handled as they come, so that Redis works meanwhile: the queues' groups as their names are
    # decoded, then (once every queue is known) the locks, the workers, the concerns' reads.
    second = Batch(reading.on_error)
    queues: list[_Queue] = []
    second.add_groups(_queue_groups(queue_keys, keys, wants_queue, reading.now, queues, quiet))
    worker_result: list[tuple[list[WorkerState], int]] = []

    def take_workers(replies: list) -> None:
        worker_result.append(workers_from(zip(worker_keys, replies), keys, reading))

    def rest_of_second() -> None:
        # A scheduler holds one lock key per queue: many queues' locks per command, not one each.
        lock = keys.kind("scheduler-lock")
        for start in range(0, len(queues), LOCKS_PER_MGET):
            chunk = queues[start:start + LOCKS_PER_MGET]
            second.add(partial(_take_locks, chunk), "MGET", *(lock + q.raw for q in chunk))
        second.add_group(take_workers, [("HMGET", key, *WORKER_FIELDS) for key in worker_keys])
        for extra in extras:
            extra.second(second, [(q.raw, q.name) for q in queues], reading.now)

    second.add_later(rest_of_second)
    second.run(client)
    round_trips += 1

    # 3. The keys an EXISTS found there, then when each queue's head job entered the queue (each
    # queue's state is then complete).
    if reading.exists_error is not None:
        quiet.error(reading.exists_error)
    waiting = [(queue, queue.head) for queue in queues if queue.head is not None]
    third = Batch(reading.on_error)
    for queue in queues:
        if queue.later:
            third.add_group(queue.fill, queue.shape.later(queue.raw, keys, reading.now))

    def rest_of_third() -> None:
        for extra in extras:
            extra.third(third)

    if waiting:
        third.add_groups(_head_groups(waiting, keys, reading))
        # The concerns' reads made while Redis reads the head jobs (~7 ms at 10,000 queues).
        third.add_later(rest_of_third)
    else:
        rest_of_third()
    if third:
        third.run(client)
        round_trips += 1

    if not quiet.refused:
        quiet.learn([(q.raw, q.shape, q.later, q.replies) for q in queues])
    workers, dead = worker_result[0]
    known = {q.name for q in queues}
    worker_only = sorted(
        {name for w in workers for name in w.queues if name not in known and wants_queue(name)}
    )
    return Snapshot(
        time=reading.now,
        queues=tuple(_state(q) for q in queues),
        workers=tuple(workers),
        dead_workers=dead,
        problems=tuple(reading.problems),
        round_trips=round_trips,
        worker_only_queues=tuple(worker_only),
    )


def _queue_groups(
    members: list[bytes], keys: Keys, wants_queue: Callable[[str], bool], now: float, queues: list[_Queue],
    quiet: Quiet,
) -> Iterator[tuple[Callable[[list], None], Sequence[tuple]]]:
    """The queues (appended to ``queues``) and their reads' groups, made as the batch sends them:
    Redis reads the first queues while the next ones' names are decoded and filtered (~11 ms at
    10,000 queues, Redis idle, when they were all decoded before the round). Queues of one shape
    share a template and go in runs."""
    prefix = len(keys.queue_member_prefix)
    packers: dict[Shape, Template | None] = {}
    runs: dict[Shape, list[_Queue]] = {}
    for member in members:
        raw = member[prefix:]
        name = parse.text(raw)
        if not wants_queue(name):
            continue
        shape = quiet.shape(raw)
        queue = _Queue(raw, name, shape)
        queues.append(queue)
        if shape not in packers:
            packers[shape] = template(partial(shape.reads, keys=keys, now=now))
            runs[shape] = []
        packer = packers[shape]
        if packer is None:
            yield partial(_take_run, shape, [queue]), shape.reads(raw, keys, now)
            continue
        run = runs[shape]
        run.append(queue)
        if len(run) == QUEUES_PER_RUN:
            yield partial(_take_run, shape, run), packer.run([q.raw for q in run])
            runs[shape] = []
    for shape, run in runs.items():
        packer = packers[shape]
        if run and packer is not None:
            yield partial(_take_run, shape, run), packer.run([q.raw for q in run])


def _head_groups(
    waiting: list[tuple[_Queue, bytes]], keys: Keys, reading: _Reading
) -> Iterator[tuple[Callable[[list], None], Sequence[tuple]]]:
    """The head jobs' reads, HEADS_PER_GROUP at a time, packed from a template: each group's ages
    are worked out while Redis reads the next groups' jobs (one group of them all waited for
    every reply first)."""
    reads = partial(_head_reads, keys=keys)
    packer = template(reads)
    for start in range(0, len(waiting), HEADS_PER_GROUP):
        chunk = waiting[start:start + HEADS_PER_GROUP]
        heads = [head for _, head in chunk]
        yield partial(_take_ages, chunk, keys, reading), run_of(packer, reads, heads)


def _head_reads(job_id: bytes, keys: Keys) -> list[tuple]:
    return [("HMGET", keys.job(job_id), b"enqueued_at", b"created_at")]


def _take_ages(waiting: list[tuple[_Queue, bytes]], keys: Keys, reading: _Reading, replies: list) -> None:
    for (queue, head), reply in zip(waiting, replies):
        # None: an error reply, reported already
        queue.state = _queue_state(queue, None if reply is None else _age(reply, head, keys, reading))


def _worker_keys_from(members: set[bytes], keys: Keys, reading: _Reading) -> list[bytes]:
    # A foreign member has no worker hash either: checked before reading, so it is never
    # mistaken for a dead worker.
    return _with_prefix(members, keys.worker_member_prefix, "worker", reading)


def _with_prefix(members: set[bytes], prefix: bytes, kind: str, reading: _Reading) -> list[bytes]:
    """The set's members that are RQ keys of ``kind`` (sorted); any other is a problem."""
    found = []
    for member in sorted(members):
        if not member.startswith(prefix) or member == prefix:
            reading.problem(f"bad_{kind}_key", member, f"member of the {kind}s set without the {kind} key prefix")
            continue
        found.append(member)
    return found


def _take_run(shape: Shape, queues: list[_Queue], replies: list) -> None:
    # Each queue's replies, in order: the list cut in tuples of shape.size, in C.
    own_replies = zip(*[iter(replies)] * shape.size)
    if shape is FULL:
        for queue, own in zip(queues, own_replies):
            queue.replies = own
        return
    spread = shape.spread
    for queue, own in zip(queues, own_replies):
        if own[-1] != 0:  # one of its keys is there (or an error reply): read them in round 3
            queue.later = True
            own = (*own[:-1], None)  # unread until then
        queue.replies = spread(own)


def _take_locks(queues: list[_Queue], values: list) -> None:
    # After the queues' own reads (sent before): a queue with no head job has all it needs.
    for queue, value in zip(queues, values):
        queue.scheduler_active = value is not None
        if queue.replies[2] is None and not queue.later:
            queue.state = _queue_state(queue, 0.0)


def _state(queue: _Queue) -> QueueState:
    # Built by now, but for a queue whose lock was not read (an error reply to its MGET).
    if queue.state is None:
        queue.state = _queue_state(queue, 0.0 if queue.replies[2] is None else None)
    return queue.state


def _queue_state(queue: _Queue, oldest_job_age: float | None) -> QueueState:
    replies = queue.replies
    (queued, intermediate, _, started_all, started_expired, finished_all, finished_expired, failed_forever,
     failed_live, deferred, scheduled, canceled, overdue_scheduled) = [reply or 0 for reply in replies]
    # Positional, in QueueState's order: its keywords took twice the time (~10 ms a scrape at 10,000
    # queues); tests/test_reader_fast_paths.py checks it against the keyword form.
    return QueueState(
        queue.name,
        queued,
        intermediate,
        max(0, started_all - started_expired),  # started
        started_expired,  # abandoned
        max(0, finished_all - finished_expired),  # finished
        failed_forever + failed_live,  # failed
        deferred,
        scheduled,
        overdue_scheduled,
        canceled,
        replies[7],  # failed_forever: None when it could not be read
        queue.scheduler_active,
        oldest_job_age,  # 0.0 with no head job; None when its job could not be read
    )


# Timestamp bytes -> parse.timestamp's epoch seconds: a queue's head job, and so its enqueued_at,
# mostly stays the same from one scrape to the next (parsing 10,000 anew was ~1 us each, in round 3,
# whose wall time is this process's CPU). ~100 bytes a value. An unreadable value raises each time.
_HEAD_STAMPS: Kept[bytes | None, float | None] = Kept(parse.timestamp, 50_000)


def _age(reply: list, job_id: bytes, keys: Keys, reading: _Reading) -> float | None:
    enqueued_at, created_at = reply
    # The job's key only names a problem: not made for every queue's head job.
    if enqueued_at is None and created_at is None:
        reading.problem("missing_job", keys.job(job_id), "job at the head of a queue has no hash")
        return None
    try:
        when = _HEAD_STAMPS[enqueued_at] or _HEAD_STAMPS[created_at]
    except ValueError as error:
        reading.problem("bad_timestamp", keys.job(job_id), str(error))
        return None
    if when is None:
        reading.problem("bad_timestamp", keys.job(job_id), "no enqueued_at or created_at")
        return None
    return max(0.0, reading.now - when)
