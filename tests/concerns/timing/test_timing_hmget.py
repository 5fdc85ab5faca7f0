"""Round 3's packed HMGETs (hmget.py) against hiredis' own packing of the same commands."""

from __future__ import annotations

import hiredis

from rq_exporter_ng.concerns.timing.hmget import EXC_INFO, HashTemplate
from rq_exporter_ng.concerns.timing.records import Candidate
from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS


class _Registry:
    def __init__(self, status: str) -> None:
        self.status = status


def test_packed_hmgets_equal_hiredis_packing_of_their_commands():
    registries = [_Registry("finished"), _Registry("failed")]
    members = [b"a", b"%s %d %%", "é-ü".encode(), b"\xff\x00\r\n", b"x" * 300, b""]
    candidates = [Candidate(i % 2, m, 1.0, 60) for i, m in enumerate(members)]
    for job, fields in ((b"rq:job:", JOB_FIELDS), (b"pre%fix:rq:job:", JOB_FIELDS[:-1])):
        template = HashTemplate(job, fields, registries)  # type: ignore[arg-type]
        group = template.group(candidates)
        commands = group.commands()
        assert commands[1] == ("HMGET", job + members[1], *fields, EXC_INFO)
        assert commands[0] == ("HMGET", job + members[0], *fields)
        assert len(group) == len(candidates) == len(commands)
        assert group.packed() == b"".join(map(hiredis.pack_command, commands))
        assert list(group) == commands  # a Sequence of its commands, built when asked


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Mostly ids of one length in runs of one registry (a run is then one join), sometimes not.
_ids = st.one_of(st.binary(min_size=4, max_size=4), st.binary(max_size=6), st.just(b"%b%d%%"))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.lists(_ids, min_size=1, max_size=5)), max_size=5),
       st.sampled_from([b"rq:job:", b"pre%bfix:rq:job:", b""]), st.booleans())
def test_runs_of_one_registry_pack_as_hiredis_packs_each_command(runs, job, with_data):
    registries = [_Registry("finished"), _Registry("failed"), _Registry("finished")]
    candidates = [Candidate(registry, member, 1.0, 60) for registry, members in runs for member in members]
    fields = JOB_FIELDS if with_data else JOB_FIELDS[:-1]
    group = HashTemplate(job, fields, registries).group(candidates)  # type: ignore[arg-type]
    assert group.packed() == b"".join(map(hiredis.pack_command, group.commands()))
