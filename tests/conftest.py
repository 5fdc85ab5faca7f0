from __future__ import annotations

import pytest

from support import RedisServer


@pytest.fixture(scope="session")
def redis_server():
    """One real redis-server for the session; tests that stop or reconfigure Redis start their own."""
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_db(redis_server):
    """The session's Redis, emptied before the test."""
    client = redis_server.client()
    client.flushall()
    yield redis_server
    client.close()


@pytest.fixture
def own_redis():
    """A redis-server of the test's own, which it may stop, restart or reconfigure."""
    server = RedisServer().start()
    yield server
    server.cleanup()
