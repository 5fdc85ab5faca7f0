"""The tracker's remembered entries (records.Seen, held per score) against a plain dict of
(member, score) -> until, whatever is remembered, looked up, filtered and forgotten in any order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rq_exporter_ng.concerns.timing.records import Seen

members = st.sampled_from([b"a", b"b", b"c", b"job-1"])
scores = st.sampled_from([500.0, 501.0, 1500.0, float("inf")])
untils = st.sampled_from([0.0, 10.0, 10.5, 20.0])
entries = st.tuples(members, scores)
operations = st.lists(st.one_of(
    st.tuples(st.just("set"), entries, untils),
    st.tuples(st.just("first"), entries, untils),
    st.tuples(st.just("forget"), st.just(None), untils),
    st.tuples(st.just("add"), st.tuples(scores, st.dictionaries(members, untils, max_size=3)), st.just(0.0)),
    # sorted by score as Redis sends them (the usual case), or in any order
    st.tuples(st.just("unseen"), st.lists(entries, max_size=6).map(lambda e: sorted(e, key=lambda x: x[1])),
              st.just(0.0)),
    st.tuples(st.just("unseen"), st.lists(st.tuples(members, scores | st.sampled_from([-1.0, 499.5, 2e9])),
                                          max_size=6).map(tuple), st.just(0.0))), max_size=30)


@settings(max_examples=500, deadline=None)
@given(operations, st.lists(entries, max_size=6))
def test_seen_is_a_dict_of_member_and_score(ops, probes):
    seen, oracle = Seen(), dict[tuple[bytes, float], float]()
    for name, arg, until in ops:
        if name == "set":
            seen[arg] = until
            oracle[arg] = until
        elif name == "first":
            assert seen.first(arg[0], arg[1], until) == (arg not in oracle)
            oracle.setdefault(arg, until)
        elif name == "add":
            score, added = arg
            seen.add(score, dict(added))
            oracle.update({(member, score): value for member, value in added.items()})
        elif name == "forget":
            seen.forget_before(until)
            oracle = {k: v for k, v in oracle.items() if v >= until}
        else:
            assert seen.unseen(arg) == [e for e in arg if e not in oracle]
            assert seen.unseen(iter(arg)) == [e for e in arg if e not in oracle]
        assert dict(seen.items()) == oracle
        assert len(seen) == len(oracle) and bool(seen) == bool(oracle)
    for entry in probes:
        assert (entry in seen) == (entry in oracle)
        assert seen.get(entry, -1.0) == oracle.get(entry, -1.0)
    assert dict(Seen(oracle.items()).items()) == oracle
