"""The rules that sort every test into a lane, and the guard that keeps fast lanes fast.

Lanes (markers; `make test-fast` runs `-m "unit or api"`, `make test` runs everything):

- `unit`: plain Python, no app, no database, no processes.
- `api`: the Flask app in-process on SQLite (`app`, `client`, `database_url`, or any fixture
  built on them).
- `integration`: real external processes or a real PostgreSQL.
- `browser`: Playwright driving Debian's `chromium` through the console of a real
  `homelab-control serve` (`tests/browser/`).

`pytest_collection_modifyitems` below gives each collected test exactly one lane; the first
rule that matches wins:

1. An explicit lane marker on the test, its class or module (`pytestmark`). (A unit or api
   marker on a test that also runs on PostgreSQL is a usage error.)
2. `tests/browser/` → browser.
3. The PostgreSQL half of the `database_url` parametrization (marker `postgres`) → integration.
4. `tests/prometheus/` or `tests/reliability/` → integration.
5. A fixture that starts a process is among the test's fixtures, directly or through other
   fixtures (`PROCESS_FIXTURES`: sshd, postgres_cluster, the agent/node_exporter/promtool/
   prometheus/alertmanager fixtures) → integration.
6. The test spawns a process: its code, the code of its fixtures, or any code under `tests/` it
   calls (helpers, classes such as `tests.live.LiveControl`), calls `subprocess.*`, `os.system`
   or `os.fork` → integration.
7. `app`, `client` or `database_url` among its fixtures → api.
8. Otherwise → unit.

A guard backs rule 6 up at run time: a unit or api test that starts a process anyway fails and
names the command, so a wrong lane cannot hide in `make test-fast`.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import threading
import types
from pathlib import Path

import pytest

LANES = ("unit", "api", "integration", "browser")
TESTS = Path(__file__).resolve().parent
INTEGRATION_DIRS = (TESTS / "prometheus", TESTS / "reliability")
BROWSER_DIRS = (TESTS / "browser",)
# Fixtures that start a real process (or wrap a binary that the test then runs).
PROCESS_FIXTURES = frozenset(
    {
        "sshd",  # tests/sshd.py
        "postgres_cluster",  # tests/conftest.py
        "start_agent",  # tests/agent/conftest.py
        "node_exporter",
        "promtool",
        "prometheus_bin",  # tests/prometheus/conftest.py
        "amtool",
        "alertmanager_bin",
        "docker_compose",
        "live_stack",
    }
)
LANE = pytest.StashKey[tuple[str, str]]()  # (lane, the rule that chose it) per item
APP_FIXTURES = frozenset({"app", "client", "database_url"})
SPAWNING = {
    subprocess: frozenset(
        {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
    ),
    os: frozenset({"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp"}),
}
SPAWNING_CALLABLES = frozenset(
    id(getattr(module, name)) for module, names in SPAWNING.items() for name in names
    if hasattr(module, name)
)  # fmt: skip


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _test_code(obj) -> bool:
    """Whether `obj` (a function, class or module) is defined in a file under tests/."""
    if not isinstance(obj, types.FunctionType | type | types.ModuleType):
        return False
    try:
        source = inspect.getsourcefile(obj)
    except (TypeError, OSError):
        return False
    return bool(source) and _under(Path(source).resolve(), (TESTS,))


def _functions_of(obj) -> list[types.FunctionType]:
    """The Python functions behind a test-code function, class or module attribute."""
    if isinstance(obj, types.FunctionType):
        return [inspect.unwrap(obj)]
    if isinstance(obj, type):
        found = []
        for value in vars(obj).values():
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            if isinstance(value, property):
                found += [f for f in (value.fget, value.fset) if f]
            elif isinstance(value, types.FunctionType):
                found.append(value)
        return found
    return []


def _spawns(code: types.CodeType, namespace: dict, seen: set) -> bool:
    """Whether `code`, its nested functions, or test code it names can start a process.

    Static and deliberately simple: a name of `subprocess`/`os` together with one of their
    spawning attributes (`subprocess.run`), or a spawning function imported by name, counts;
    names that resolve to functions or classes under tests/ are followed.
    """
    if (code, id(namespace)) in seen:
        return False
    seen.add((code, id(namespace)))
    names = set(code.co_names)
    for name in names:
        value = namespace.get(name)
        if value is None:
            continue
        if isinstance(value, types.ModuleType) and names & SPAWNING.get(value, frozenset()):
            return True
        if id(value) in SPAWNING_CALLABLES:
            return True
        if isinstance(value, types.ModuleType) and _test_code(value):
            targets = [getattr(value, n) for n in names if hasattr(value, n)]
        elif _test_code(value):
            targets = [value]
        else:
            continue
        for target in targets:
            for function in _functions_of(target) if _test_code(target) else ():
                if _spawns(function.__code__, function.__globals__, seen):
                    return True
    return any(
        _spawns(const, namespace, seen)
        for const in code.co_consts
        if isinstance(const, types.CodeType)
    )


def _fixture_functions(item: pytest.Item) -> list[types.FunctionType]:
    info = getattr(item, "_fixtureinfo", None)
    functions = []
    for name in item.fixturenames:
        for fixturedef in info.name2fixturedefs.get(name, ()) if info else ():
            func = getattr(fixturedef, "func", None)
            if isinstance(func, types.FunctionType) and _test_code(func):
                func = inspect.unwrap(func)
                if func.__name__ != "_fast_lanes_start_no_process":  # the guard itself
                    functions.append(func)
    return functions


def _explicit_lane(item: pytest.Item) -> str | None:
    lanes = {mark.name for mark in item.iter_markers() if mark.name in LANES}
    if len(lanes) > 1:
        raise pytest.UsageError(f"{item.nodeid}: more than one lane marker: {sorted(lanes)}")
    return lanes.pop() if lanes else None


def lane_for(item: pytest.Item) -> tuple[str, str]:
    """The lane of one collected test and the rule that chose it (see the module docstring)."""
    explicit = _explicit_lane(item)
    postgres = item.get_closest_marker("postgres") is not None
    if explicit:
        if postgres and explicit in {"unit", "api"}:
            raise pytest.UsageError(
                f"{item.nodeid}: marked {explicit} but runs on PostgreSQL, which is integration"
            )
        return explicit, "explicit marker"
    path = Path(str(item.path)).resolve()
    if _under(path, BROWSER_DIRS):
        return "browser", "tests/browser/"
    if postgres:
        return "integration", "PostgreSQL"
    if _under(path, INTEGRATION_DIRS):
        return "integration", f"tests/{path.relative_to(TESTS).parts[0]}/"
    fixtures = set(item.fixturenames)
    if fixtures & PROCESS_FIXTURES:
        return "integration", f"fixture {sorted(fixtures & PROCESS_FIXTURES)[0]}"
    function = getattr(item, "function", None)
    seen: set = set()
    for func in [*([inspect.unwrap(function)] if function else []), *_fixture_functions(item)]:
        if _spawns(func.__code__, func.__globals__, seen):
            return "integration", f"spawns a process ({func.__name__})"
    if fixtures & APP_FIXTURES:
        return "api", "app/client/database_url"
    return "unit", "default"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config, items):
    """Put every test in exactly one lane (marker), by the rules in this module's docstring."""
    for item in items:
        lane, why = lane_for(item)
        item.stash[LANE] = (lane, why)
        if not any(mark.name == lane for mark in item.iter_markers()):
            item.add_marker(lane)


def pytest_report_collectionfinish(config, start_path, items):
    """With -v: how many tests each lane holds."""
    if config.get_verbosity() < 1 or not items:
        return None
    counts = {lane: 0 for lane in LANES}
    for item in items:
        counts[item.stash.get(LANE, ("unit", ""))[0]] += 1
    return "lanes: " + ", ".join(f"{lane} {n}" for lane, n in counts.items())


class ProcessInFastLane(BaseException):
    """Raised (past any `except Exception`) when a unit or api test starts a process."""


@pytest.fixture(autouse=True)
def _fast_lanes_start_no_process(request, monkeypatch):
    """In unit and api tests, starting a process fails the test: it belongs in integration."""
    lane, why = request.node.stash.get(LANE, ("unit", "default"))
    if lane not in {"unit", "api"}:
        yield
        return
    in_threads: list[str] = []  # an exception in another thread never reaches the test

    def refuse(what):
        def refused(*args, **kwargs):
            command = repr(args[1] if what == "Popen" and len(args) > 1 else args[:1])
            if threading.current_thread() is not threading.main_thread():
                in_threads.append(command)
            raise ProcessInFastLane(
                f"a {lane} test ({why}) started a process ({what} {command}); mark it "
                "`integration` or teach the lane rules in tests/lanes.py"
            )

        return refused

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("Popen"))
    for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    yield
    if in_threads:
        pytest.fail(f"a {lane} test started a process in a thread: {in_threads}", pytrace=False)
