"""RQ 3.0's rate limits (rq_exporter_ng/concerns/rate_limits.py) on the layout rq/rate_limit.py writes: the set
rq:rl-keys, per key the zset rq:rl:<key>:rate_limited of waiting job ids, each job hash with
status rate_limited and its origin. fakeredis for the pure logic; tests/concerns/test_running_jobs_rq_workers.py
checks real RQ 3.0 jobs and workers.
"""

from __future__ import annotations

from collections import Counter

import fakeredis
from concern_scrape import scrape_concern

from rq_exporter_ng.concerns.rate_limits import RateLimitOptions, RateLimits, fold, share
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.snapshot import QueueState, Snapshot


def wait(r, key: str, job: str, queue: str, status: str = "rate_limited", prefix: str = "rq") -> None:
    r.sadd(f"{prefix}:rl-keys", key)
    r.zadd(f"{prefix}:rl:{key}:rate_limited", {job: r.zcard(f"{prefix}:rl:{key}:rate_limited")})
    r.hset(f"{prefix}:job:{job}", mapping={"status": status, "origin": queue})


def scrape(r, keys: Keys | None = None) -> tuple[Snapshot, dict[str, int]]:
    keys = keys or Keys("rq")
    return scrape_concern(r, RateLimits(RateLimitOptions(lambda name: True), keys), keys)


def test_waiting_jobs_count_for_their_queue_across_keys():
    r = fakeredis.FakeRedis()
    r.sadd("rq:queues", "rq:queue:api", "rq:queue:mail", "rq:queue:idle")
    for i in range(4):
        wait(r, "api", f"a{i}", "api")
    wait(r, "shared", "s1", "api")
    wait(r, "shared", "s2", "mail")
    snapshot, counts = scrape(r)
    assert counts == {"api": 5, "mail": 1}
    assert {q.name: q.rate_limited for q in snapshot.queues} == {"api": 5, "mail": 1, "idle": 0}
    assert snapshot.round_trips == 3


def test_stale_members_are_not_counted():
    r = fakeredis.FakeRedis()
    wait(r, "k", "promoted", "q", status="queued")  # RQ drops such entries when it next promotes
    wait(r, "k", "waiting", "q")
    r.zadd("rq:rl:k:rate_limited", {"no-hash": 9})
    _, counts = scrape(r)
    assert counts == {"q": 1}


def test_a_queue_known_only_by_its_waiting_jobs_gets_a_row_unless_filtered_out():
    r = fakeredis.FakeRedis()
    wait(r, "k", "j", "hidden")
    snapshot, _ = scrape(r)
    assert [(q.name, q.rate_limited) for q in snapshot.queues] == [("hidden", 1)]
    assert fold(Snapshot(0.0), {"hidden": 1}, lambda name: name != "hidden").queues == ()


def test_no_rate_limits_cost_one_command_and_change_nothing():
    r = fakeredis.FakeRedis()
    r.sadd("rq:queues", "rq:queue:q")
    snapshot, counts = scrape(r)
    assert counts == {}
    assert snapshot.queues == (QueueState("q"),)


def test_the_key_prefix_applies():
    r = fakeredis.FakeRedis()
    wait(r, "k", "j", "q", prefix="app")
    _, counts = scrape(r, Keys("app"))
    assert counts == {"q": 1}


def test_a_key_read_in_part_is_shared_in_proportion_in_whole_jobs():
    assert share(10, Counter(a=2), 2) == {"a": 10}
    assert share(10, Counter(a=1, b=2), 3) == {"a": 3, "b": 7}
    assert share(9, Counter(a=1, b=1), 3) == {"a": 3, "b": 3}  # the third member read was stale
    assert sum(share(1001, Counter(a=500, b=500), 1000).values()) == 1001
    assert share(5, Counter(), 0) == {}


def test_keys_of_the_wrong_type_are_skipped_and_counted():
    r = fakeredis.FakeRedis()
    wait(r, "k", "j", "q")
    r.sadd("rq:rl-keys", "broken")
    r.set("rq:rl:broken:rate_limited", "not a zset")
    r.zadd("rq:rl:k:rate_limited", {"string-job": 5})
    r.set("rq:job:string-job", "not a hash")
    snapshot, counts = scrape(r)
    assert counts == {"q": 1}
    assert sorted({(p.reason, p.key) for p in snapshot.problems}) == [
        ("wrong_type", "rq:job:string-job"), ("wrong_type", "rq:rl:broken:rate_limited")]

    r.delete("rq:rl-keys")
    r.set("rq:rl-keys", "not a set")
    snapshot, counts = scrape(r)
    assert counts == {}
    assert [(p.reason, p.key) for p in snapshot.problems] == [("wrong_type", "rq:rl-keys")]
