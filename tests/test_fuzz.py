"""Fuzzing with hypothesis: random worker hashes, job hashes, timestamps, key types and names
written into a real redis-server; no input makes a scrape fail (rq_up stays 1, the text output
parses, OpenMetrics is written). The pure parsers get random bytes without Redis."""

from __future__ import annotations

import base64
import math

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from devkit import RQ_TIME_FORMAT
from rq_exporter_ng import parse
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.connection import connect
from rq_exporter_ng.settings import Settings
from support import parse_samples

VALID_AUTH = "Basic " + base64.b64encode(b"prometheus:pw").decode()
FUZZ = hsettings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Names: printable and not, separators RQ uses, label-escaping characters, bytes that are not UTF-8.
names = st.one_of(
    st.sampled_from([b"default", b"high:prio", b"a,b", b'q"\\\n', b"\xff\xfe", b"{tag}", b"", b" "]),
    st.binary(min_size=0, max_size=12),
    st.text(min_size=1, max_size=12).map(str.encode),
)
timestamps = st.one_of(
    st.sampled_from([b"", b"2024-01-01T00:00:00Z", b"2024-01-01T00:00:00.123456Z", b"9999-12-31T23:59:59Z",
                     b"0001-01-01T00:00:00Z", b"2024-13-45T99:99:99Z", b"now", b"1700000000", b"nan", b"-1"]),
    st.datetimes().map(lambda d: d.strftime(RQ_TIME_FORMAT).encode()),
    st.binary(max_size=30),
)
numbers = st.one_of(
    st.sampled_from([b"", b"0", b"-1", b"1e309", b"nan", b"inf", b"-inf", b"3.5", b"99999999999999999999999"]),
    st.integers().map(lambda i: str(i).encode()),
    st.floats(allow_nan=True).map(lambda f: repr(f).encode()),
    st.binary(max_size=10),
)
worker_fields = st.dictionaries(
    st.sampled_from([b"state", b"queues", b"last_heartbeat", b"birth", b"successful_job_count", b"failed_job_count",
                     b"total_working_time", b"current_job", b"pid", b"other"]),
    st.one_of(names, timestamps, numbers),
    max_size=8,
)
job_fields = st.dictionaries(
    st.sampled_from([b"status", b"origin", b"enqueued_at", b"created_at", b"started_at", b"ended_at",
                     b"data", b"description", b"result_ttl", b"timeout", b"worker_name"]),
    st.one_of(timestamps, numbers, names, st.binary(max_size=40)),
    max_size=8,
)
KINDS = ("queue", "queue_intermediate", "wip", "finished", "failed", "deferred", "scheduled", "canceled",
         "scheduler-lock", "job", "worker")
TYPES = ("string", "list", "set", "zset", "hash", "stream", "missing")
scores = st.one_of(st.floats(allow_nan=False), st.sampled_from([0, -1, 1e12, float("inf"), float("-inf")]))


@pytest.fixture
def scrape(redis_db):
    """One real collector (its state kept across examples, as in a long-running process)."""
    settings = Settings.model_validate({"redis_url": redis_db.url})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RQCollector(connect(settings), settings))
    client = redis_db.client()

    def run(write) -> None:
        client.flushdb()
        write(client)
        text = generate_latest(registry).decode()
        samples = parse_samples(text)
        assert samples.value("rq_up") == 1, text[:2000]
        assert generate_openmetrics(registry).endswith(b"# EOF\n")

    yield run
    client.close()


@pytest.mark.redis
@FUZZ
@given(workers=st.lists(st.tuples(names, worker_fields), max_size=5), foreign=st.lists(names, max_size=3))
def test_fuzzed_worker_hashes(scrape, workers, foreign):
    def write(client):
        for name, fields in workers:
            key = b"rq:worker:" + name
            client.sadd("rq:workers", key)
            if fields:
                client.hset(key, mapping=fields)
        for member in foreign:
            client.sadd("rq:workers", member)

    scrape(write)


@pytest.mark.redis
@FUZZ
@given(queue=names, head=job_fields, finished=st.lists(st.tuples(names, job_fields, scores), max_size=4),
       head_id=names)
def test_fuzzed_job_hashes_and_timestamps(scrape, queue, head, finished, head_id):
    def write(client):
        client.sadd("rq:queues", b"rq:queue:" + queue)
        client.rpush(b"rq:queue:" + queue, head_id)
        if head:
            client.hset(b"rq:job:" + head_id, mapping=head)
        for job_id, fields, score in finished:
            for registry in (b"rq:finished:", b"rq:failed:", b"rq:wip:"):
                client.zadd(registry + queue, {job_id: score})
            if fields:
                client.hset(b"rq:job:" + job_id, mapping=fields)

    scrape(write)


def _write_as(client, key: bytes, kind: str) -> None:
    if kind == "string":
        client.set(key, b"x")
    elif kind == "list":
        client.rpush(key, b"x", b"\xff")
    elif kind == "set":
        client.sadd(key, b"x")
    elif kind == "zset":
        client.zadd(key, {b"x": 1.5})
    elif kind == "hash":
        client.hset(key, b"x", b"y")
    elif kind == "stream":
        client.xadd(key, {b"x": b"y"})


@pytest.mark.redis
@FUZZ
@given(queues=st.lists(names, min_size=1, max_size=3),
       layout=st.dictionaries(st.sampled_from(KINDS), st.sampled_from(TYPES), max_size=len(KINDS)),
       top=st.sampled_from(TYPES))
def test_fuzzed_key_types(scrape, queues, layout, top):
    def write(client):
        worker = b"rq:worker:w"
        for queue in queues:
            client.sadd("rq:queues", b"rq:queue:" + queue)
            for kind, kind_type in layout.items():
                if kind == "job":
                    key = b"rq:job:x"
                elif kind == "worker":
                    key = worker
                elif kind == "queue_intermediate":
                    key = b"rq:queue:" + queue + b":intermediate"
                else:
                    key = f"rq:{kind}:".encode() + queue
                _write_as(client, key, kind_type)
            client.rpush(b"rq:queue:" + queue, b"x") if layout.get("queue", "list") == "list" else None
        client.sadd("rq:workers", worker)
        if top != "missing" and top != "set":  # RQ's own sets of the wrong type
            client.delete("rq:workers" if len(queues) % 2 else "rq:queues")
            _write_as(client, b"rq:workers" if len(queues) % 2 else b"rq:queues", top)

    scrape(write)


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_parsers_fail_only_with_value_error(raw):
    assert isinstance(parse.text(raw), str)
    for parser in (parse.timestamp, parse.count, parse.seconds):
        try:
            value = parser(raw)
        except ValueError:
            continue  # the one refusal a parser may give: any other exception fails the test
        assert value is None or isinstance(value, (int, float))
        if isinstance(value, float):
            assert not math.isnan(value)


@pytest.mark.redis
@FUZZ
@given(path=st.one_of(st.sampled_from(["metrics", "probe", "", "healthz", "-/healthy"]), st.text(max_size=30)),
       query=st.one_of(st.sampled_from(["target=orders", "target=orders&target=x", "target=", "name[]=rq_up",
                                        "target=orders&name[]=rq_jobs", "target=%ff%00"]), st.text(max_size=60)),
       auth=st.one_of(st.none(), st.just(VALID_AUTH), st.text(max_size=60),
                      st.binary(max_size=120).map(lambda b: "Basic " + base64.b64encode(b).decode()),
                      st.text(max_size=120).map(lambda t: "Basic " + base64.b64encode(b"prometheus:" + t.encode()).decode())))
def test_fuzzed_requests_never_fail_the_app(redis_db, path, query, auth):
    """Any path, query string and Authorization header: an answer (200, 400, 401 or 404), never an error."""
    from wsgiref.util import setup_testing_defaults

    import bcrypt

    from rq_exporter_ng.web import webconfig
    from rq_exporter_ng.web.server import make_app

    app = _fuzz_app(redis_db, make_app, webconfig, bcrypt)
    environ = {"PATH_INFO": "/" + path, "QUERY_STRING": query}
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    setup_testing_defaults(environ)
    statuses = []
    body = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    assert statuses[0][:3] in ("200", "400", "401", "404"), statuses
    assert isinstance(body, bytes)


_APPS: dict = {}


def _fuzz_app(redis_db, make_app, webconfig, bcrypt):
    """One app per Redis for all examples: bcrypt hashing per example would dominate the run."""
    if redis_db.port not in _APPS:
        settings = Settings.model_validate({"redis_url": redis_db.url})
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RQCollector(connect(settings), settings))
        probes = {"orders": registry}
        users = {"prometheus": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))}
        from rq_exporter_ng.web import guard

        _APPS[redis_db.port] = guard.protect(make_app(registry, "redis://test", probes), webconfig.WebConfig(users=users))
    return _APPS[redis_db.port]
