"""The Redis fixtures, and the pytest hooks of the marker checks (what they check: tests/markers.py)."""

from __future__ import annotations

import markers
import pytest

from support import RedisServer


def pytest_configure(config: pytest.Config) -> None:
    markers.install_audit_hook()


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the markers it selects by include the implied ones
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    markers.imply(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    with markers.running(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    with markers.setting_up(fixturedef):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    markers.check_fixtures(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    markers.check_report(item, call, report)
    return report


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
