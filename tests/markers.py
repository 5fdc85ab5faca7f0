"""What the test markers mean, and the checks that a test carries the ones it needs.

The markers (registered in pyproject.toml, [tool.pytest.ini_options]):

- ``redis``: needs a real redis-server;
- ``workers``: starts real RQ worker processes or other real RQ programs; implies ``redis``
  (such a test gets the redis marker too, so ``-m "not redis"`` leaves it out);
- ``promtool``: needs promtool, prometheus, alertmanager or amtool;
- ``slow``: takes more than about 5 s.

So that ``-m`` selects exactly what it says, a missing marker fails the test, naming the marker
to add (tests/conftest.py wires these checks into pytest's hooks):

- at set-up, before its fixtures run: a test whose fixtures (all of them, with the ones they
  depend on) include ``redis_server``, ``redis_db`` or ``own_redis``, or a fixture seen needing a
  marker for an earlier test (a module fixture that constructs a RedisServer, say);
- as it runs (the test or a fixture being set up for it): support.RedisServer and support.RQWorker
  constructed, support.require_tool() asked for a program of TOOLS, and any subprocess that is
  such a program or an RQ program (``rq``, ``python -m rq.cli``, ``python -m demo.*``,
  ``python -c`` code importing rq), seen by an audit hook on subprocess.Popen;
- once it passed: a call that took longer than SLOW_LIMIT without ``slow``, and a ``redis``,
  ``workers`` or ``promtool`` marker on a test that needed none of it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import pytest

from devkit import patient

NEEDS = ("redis", "workers", "promtool")
IMPLIES = {"workers": ("redis",)}
REDIS_FIXTURES = frozenset({"redis_server", "redis_db", "own_redis"})
TOOLS = {"redis-server": "redis", "redis-sentinel": "redis", "promtool": "promtool", "prometheus": "promtool",
         "alertmanager": "promtool", "prometheus-alertmanager": "promtool", "amtool": "promtool"}
RQ_PROGRAMS = frozenset({"rq", "rqworker", "rqinfo"})
# python -m ...: RQ's command line, the demo's programs (but its notification receiver, which is no RQ program)
RQ_MODULE = re.compile(r"(?:rq|rq\..+|demo\.(?!receiver$).+)")
RQ_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?:[\w.]+\s*,\s*)*rq(?:[.\s,]|$)", re.M)
# Seconds a test's call may take without the slow marker on an idle machine: three times the 5 s
# that make a test slow. Scaled by the load when checked (devkit.patient), so that a busy two-core
# machine does not fail a test that is merely near the line.
SLOW_LIMIT = 15.0

USED = pytest.StashKey[set]()  # the markers the test turned out to need
FAULTS = pytest.StashKey[list]()  # the missing-marker failures raised (in case something caught one)

_current: pytest.Item | None = None
_fixtures: list[pytest.FixtureDef] = []  # being set up, innermost last
_fixture_needs: dict[tuple[str, str], set[str]] = {}  # (baseid, name) of a fixture -> the markers it needed
_hooked = False


def needs(marker: str, what: str) -> None:
    """The current test (or the fixture being set up for it) ``what``: it must carry ``marker``.
    Outside a test (collection, a benchmark script) this does nothing."""
    item = _current
    if item is None:
        return
    if _fixtures:
        fixture = _fixtures[-1]
        _fixture_needs.setdefault((fixture.baseid, fixture.argname), set()).add(marker)
        what = f"(its fixture {fixture.argname!r}) {what}"
    _require(item, marker, what)


def _require(item: pytest.Item, marker: str, what: str) -> None:
    used = item.stash.setdefault(USED, set())
    used.update((marker, *IMPLIES.get(marker, ())))
    if item.get_closest_marker(marker) is None:
        message = f"{item.nodeid} {what}: mark it @pytest.mark.{marker} (see tests/markers.py)"
        item.stash.setdefault(FAULTS, []).append(message)
        pytest.fail(message, pytrace=False)


def imply(items: list[pytest.Item]) -> None:
    """workers implies redis."""
    for item in items:
        for marker, implied in IMPLIES.items():
            if item.get_closest_marker(marker):
                for other in implied:
                    if item.get_closest_marker(other) is None:
                        item.add_marker(other)


def check_fixtures(item: pytest.Item) -> None:
    """The markers the test's fixtures need, known before they run."""
    names = set(item.fixturenames)
    redis_fixtures = sorted(names & REDIS_FIXTURES)
    wanted = {"redis": redis_fixtures[0]} if redis_fixtures else {}
    for (baseid, name), markers in _fixture_needs.items():
        if name in names and _within(item.nodeid, baseid):
            for marker in markers:
                wanted.setdefault(marker, name)
    for marker, name in sorted(wanted.items()):
        _require(item, marker, f"uses the fixture {name!r}, which needs {marker}")


def _within(nodeid: str, baseid: str) -> bool:
    """Whether a fixture defined at ``baseid`` (a directory, module or class) is visible to the test."""
    return not baseid or nodeid == baseid or nodeid.startswith((baseid + "/", baseid + "::"))


@contextmanager
def running(item: pytest.Item) -> Iterator[None]:
    """Around a test's set-up, call and teardown: the test needs() applies to."""
    global _current
    _current = item
    try:
        yield
    finally:
        _current = None
        _fixtures.clear()


@contextmanager
def setting_up(fixturedef: pytest.FixtureDef) -> Iterator[None]:
    _fixtures.append(fixturedef)
    try:
        yield
    finally:
        _fixtures.remove(fixturedef)


def check_report(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    """A passed call turned into a failure when a marker check says so."""
    if call.when != "call" or not report.passed:
        return
    problems = list(item.stash.get(FAULTS, []))
    limit = patient(SLOW_LIMIT)
    if not problems and call.duration > limit and item.get_closest_marker("slow") is None:
        problems.append(f"{item.nodeid} took {call.duration:.1f} s, more than the {limit:.0f} s a test may "
                        "take without @pytest.mark.slow: mark it slow (a test over ~5 s is slow)")
    if not problems:
        used = item.stash.get(USED, set())
        unneeded = [m for m in NEEDS if item.get_closest_marker(m) is not None and m not in used]
        if unneeded:
            problems.append(f"{item.nodeid} is marked {', '.join(unneeded)} but needed none of it: remove "
                            "the marker (a module's pytestmark may cover tests it should not)")
    if problems:
        report.outcome = "failed"
        report.longrepr = "\n".join(problems)


def install_audit_hook() -> None:
    """Watches every subprocess the tests start (an audit hook stays for the process: once)."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True


def _audit(event: str, args: tuple) -> None:
    if event != "subprocess.Popen" or _current is None:
        return
    executable, argv, _cwd, _env = args
    for marker, what in subprocess_needs(executable, argv):
        needs(marker, what)


def subprocess_needs(executable, argv) -> list[tuple[str, str]]:
    """(marker, what) for a subprocess: its program, or the RQ code a Python runs."""
    argv = [os.fsdecode(a) for a in ([argv] if isinstance(argv, (str, bytes, os.PathLike)) else argv)]
    program = os.path.basename(os.fsdecode(executable if executable is not None else argv[0]))
    found = []
    if program in TOOLS:
        found.append((TOOLS[program], f"runs {program}"))
    if program in RQ_PROGRAMS:
        found.append(("workers", f"runs {program}"))
    if program.startswith("python") or executable == sys.executable:
        for flag, value in pairwise(argv[1:]):
            if flag == "-m" and RQ_MODULE.fullmatch(value):
                found.append(("workers", f"runs python -m {value}"))
            elif flag == "-c" and RQ_IMPORT.search(value):
                found.append(("workers", "runs python -c with code importing rq"))
    return found
