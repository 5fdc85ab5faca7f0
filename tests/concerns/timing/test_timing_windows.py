"""The window reads of settled registries, many a group (windows.py), against the general path:
hiredis' own packing of ``registry_reads.commands``, and ``idle_reply``/``full_reply`` per registry."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rq_exporter_ng.concern import Given, taken
from rq_exporter_ng.concerns.failed_queue import FailedQueue, FailedQueueOptions
from rq_exporter_ng.concerns.timing import reads as reads_module
from rq_exporter_ng.concerns.timing.job_timing import JobTiming, TimingOptions
from rq_exporter_ng.concerns.timing.records import (
    NOTHING_NEW,
    NOTHING_NEW_UNCOUNTED,
    Plan,
    Probe,
    RegistryPlan,
    RegistryReply,
    Window,
)
from rq_exporter_ng.concerns.timing.registry_reads import commands, full_reply, idle_reply, one_read
from rq_exporter_ng.concerns.timing.windows import WindowReads, WindowTemplate
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings

names = st.binary(max_size=40) | st.sampled_from([b"%s %d %%", "é-ü".encode(), b"\xff\x00\r\n", b"x" * 300])
lows = st.integers(-10**12, 10**12) | st.sampled_from([0, -1, 1_767_225_600, 2**63]) | st.floats(allow_nan=False)


def registry(name: bytes, status: str, probe: Probe, low, sweep=None, windows=None) -> RegistryPlan:
    ws = windows or (Window(500, low, 2_000_000_000),)
    return RegistryPlan(name.decode(errors="replace"), name, status, ws, probe, ws[-1].high, sweep)


one_reads = st.builds(registry, names, st.sampled_from(["finished", "failed"]), st.just(Probe.IN_WINDOW_WITH_FOREVER),
                      lows) | st.builds(registry, names, st.just("failed"), st.just(Probe.IN_WINDOW), lows)


@settings(max_examples=200, deadline=None)
@given(run=st.lists(one_reads, max_size=12), prefix=st.sampled_from(["rq", "pre%fix", "a:%s\xff"]))
def test_a_run_packs_what_hiredis_packs_of_each_registrys_commands(run, prefix):
    prefixes = Keys(prefix).per_queue
    template = WindowTemplate(prefixes)
    group = template.group(run)
    expected = [command for rp in run for command in commands(rp, prefixes[rp.status] + rp.raw)]
    assert all(one_read(rp) for rp in run)
    assert len(group) == len(expected) and list(group) == expected
    assert group.packed() == b"".join(map(hiredis.pack_command, expected))
    assert template.group(run).packed() == group.packed()  # again, the lows packed once


def test_without_a_format_a_run_is_packed_command_by_command():
    template = WindowTemplate(Keys("rq").per_queue)
    template._formats = None  # as when a format differs from hiredis
    run = [registry(b"q", "finished", Probe.IN_WINDOW_WITH_FOREVER, 7), registry(b"q", "failed", Probe.IN_WINDOW, 8)]
    assert template.group(run).packed() == b"".join(map(hiredis.pack_command, template.commands(run)))


# --- the groups of a scrape's plan, and their replies -------------------------------------------
def timing() -> JobTiming:
    return JobTiming(taken(TimingOptions, Settings()), Keys("rq"))


def scan(timing: JobTiming):
    no_failed_queue = FailedQueue(FailedQueueOptions(lambda name: True), timing.keys).reads(Given())
    return timing.reads(Given(reads={FailedQueue: no_failed_queue}))


plans = st.builds(
    registry, st.sampled_from([b"a", b"b%s"]), st.sampled_from(["finished", "failed"]), st.sampled_from(list(Probe)),
    st.integers(0, 3000), st.sampled_from([None, (5.0, 0)]),
    st.sampled_from([None, (Window(60, 10, 20), Window(500, 1000, 2000))]))
answers = st.sampled_from([[], None, 0, 3, [b"m", b"1500"], [b"m", b"2500", b"n", b"inf"], [b"m", b"inf"], ()])


def _normal(reply: RegistryReply | None) -> tuple | None:
    if reply is None:
        return None
    return (dict(reply.windows), tuple(reply.probe), reply.probe_found, tuple(reply.sweep), reply.forever)


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=200, deadline=None)
@given(registries=st.lists(plans, max_size=30), run=st.integers(1, 4), data=st.data())
def test_the_groups_send_each_registrys_commands_and_read_its_replies_as_the_general_path(registries, run, data):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reads_module, "RUN", run)  # runs cut short, to see them cut
        _groups_as_the_general_path(registries, run, data)


def _groups_as_the_general_path(registries, run, data):
    jt = timing()
    plan = Plan(2_000, tuple(registries), {})
    jt.tracker.plan = lambda queues, now: plan  # type: ignore[method-assign]
    reads = scan(jt)
    prefixes = jt.keys.per_queue
    groups = list(reads._groups([], 2_000))
    sent = [command for _, group in groups for command in group]
    expected = [commands(rp, prefixes[rp.status] + rp.raw) for rp in registries]
    assert sent == [command for group in expected for command in group]
    assert all(len(group) <= run for _, group in groups if isinstance(group, WindowReads))
    replies = [data.draw(st.lists(answers, min_size=len(c), max_size=len(c))) for c in expected]
    position = 0
    for take, group in groups:
        count = len(group)
        flat = [reply for per_registry in replies for reply in per_registry]
        take(flat[position:position + count])
        position += count
    general = [idle_reply(rp, r) or full_reply(rp, r) for rp, r in zip(registries, replies)]
    assert [_normal(r) for r in reads.replies] == [_normal(r) for r in general]
    for mine, general_one in zip(reads.replies, general):
        if general_one is NOTHING_NEW or general_one is NOTHING_NEW_UNCOUNTED:
            assert mine is general_one
