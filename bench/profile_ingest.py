"""`heartbeat_ingest.py --profile`: the two heartbeat payloads in-process, timed and profiled.

No HTTP and no other process: control's app on a fresh SQLite file, driven by Flask's test
client, so the figures are control's own cost per heartbeat (plus the test client's, the same
for both payloads). Seed-001 agents and seed-002 agents (`payloads.DEVICE_HEALTH`) enroll
first, as in the HTTP bench; then `runs` rounds (at least 3) alternate the two, each timing
`heartbeats` heartbeats with bodies built beforehand, and the median CPU per heartbeat and
ratio are printed; then cProfile's top functions (own time) for each payload.

`profile_server` (`--profile-server`) measures under HTTP instead, where most of a heartbeat's
cost turned out to be: waitress and control in this process, wrk as the load, CPU per
heartbeat by thread, then every thread under cProfile.
"""

from __future__ import annotations

import cProfile
import io
import json
import logging
import os
import pstats
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

from payloads import heartbeat_body

PATH = "/api/v1/agents/heartbeat"
AGENT_KEY = "bench-agent-key"
TOP = 25


def _enroll(client, servers: int, first: int, device_health: bool) -> list[tuple[str, str]]:
    """Enroll servers first..first+servers-1; their (id, bound key)."""
    bound = []
    for index in range(first, first + servers):
        server_id = f"bench-{index:04d}"
        answer = client.post(
            PATH,
            data=heartbeat_body(server_id, 0, device_health),
            headers={"Content-Type": "application/json", "X-API-Key": AGENT_KEY},
        )
        if answer.status_code != 200:
            raise RuntimeError(f"enrolling {server_id}: {answer.status_code} {answer.data!r}")
        bound.append((server_id, json.loads(answer.data)["agent_key"]))
    return bound


def _requests(agents, count: int, device_health: bool, start: int) -> list[tuple[bytes, str]]:
    """`count` heartbeats round-robin over `agents`, bodies built now (not while timed)."""
    return [
        (
            heartbeat_body(agents[i % len(agents)][0], start + i, device_health),
            agents[i % len(agents)][1],
        )
        for i in range(count)
    ]


def _send(client, requests) -> None:
    for body, key in requests:
        answer = client.post(
            PATH, data=body, headers={"Content-Type": "application/json", "X-API-Key": key}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"heartbeat refused: {answer.status_code} {answer.data!r}")


def profile_payloads(servers: int, heartbeats: int, runs: int) -> int:
    """Time and profile both payloads in one app; print the figures. Returns the exit status."""
    from control.app import create_app
    from control.config import load_settings
    from control.db import db

    names = {"seed-001": False, "seed-002": True}
    with tempfile.TemporaryDirectory(prefix="bench-hb-profile-") as data_dir:
        settings = load_settings(
            environ={},
            data_dir=data_dir,
            agent_key=AGENT_KEY,
            enroll_rate=max(60, 2 * servers),
            log_level="WARNING",
        )
        client = create_app(settings).test_client()
        agents = {
            name: _enroll(client, servers, index * servers, device_health)
            for index, (name, device_health) in enumerate(names.items())
        }
        timings: dict[str, list[float]] = {name: [] for name in names}
        counter = 1
        for run in range(max(3, runs)):
            order = list(names) if run % 2 == 0 else list(reversed(names))
            for name in order:
                requests = _requests(agents[name], heartbeats, names[name], counter)
                counter += heartbeats
                # CPU of every thread (the group-commit writer's too), not the wall clock: a
                # lone client waits for the writer's hand-off, which costs no CPU.
                began = time.process_time()
                _send(client, requests)
                timings[name].append((time.process_time() - began) / heartbeats * 1e6)
        ratios = [
            new / old for old, new in zip(timings["seed-001"], timings["seed-002"], strict=True)
        ]
        print(
            f"\nin-process heartbeats (SQLite, Flask test client), {heartbeats} per payload and "
            f"round, {len(ratios)} rounds"
        )
        for name, values in timings.items():
            runs_text = ", ".join(f"{value:.0f}" for value in values)
            median = statistics.median(values)
            print(f"{name}: median {median:.0f} µs of CPU per heartbeat ({runs_text})")
        print(
            f"ratio seed-002 / seed-001: median {statistics.median(ratios):.2f} "
            f"({', '.join(f'{r:.2f}' for r in ratios)}), target <= 1.10"
        )
        for name, device_health in names.items():
            requests = _requests(agents[name], heartbeats, device_health, counter)
            counter += heartbeats
            profiler = cProfile.Profile()
            profiler.enable()
            _send(client, requests)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(TOP)
            print(f"\ncProfile, {heartbeats} {name} heartbeats, top {TOP} by own time:")
            print(out.getvalue())
        db.close()
    return 0


# --- under HTTP load: waitress and control in this process, CPU by thread --------------------


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (from /proc)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(task.name), f"tid-{task.name}")
        cpu[name] = (int(fields[11]) + int(fields[12])) / ticks
    return cpu


def _group(name: str) -> str:
    """Which part of the server a thread is."""
    if name.startswith("waitress"):
        return "request threads"
    groups = {"server-loop": "waitress main loop", "group-commit": "group-commit writer"}
    return groups.get(name, "other")


def _baseline_app():
    from flask import Flask, jsonify, request
    from heartbeat_ingest import RESPONSE

    app = Flask("baseline")

    @app.post(PATH)
    def heartbeat():
        request.get_data()
        return jsonify(RESPONSE)

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    return app


def profile_server(servers: int, seconds: float, connections: int, threads: int) -> int:
    """The bare baseline, then control, under waitress in this process, driven by wrk.

    Each first unprofiled: rate, and CPU per seed-002 heartbeat of each group of threads
    (waitress's request threads, its main loop, control's group-commit writer). Then control
    again with every thread under cProfile: the top functions of each group by own time
    (cProfile inflates every Python call alike: read the shares, not the absolute figures).
    """
    with tempfile.TemporaryDirectory(prefix="bench-hb-server-") as data_dir:
        for index, (name, profiled) in enumerate(
            (("baseline", False), ("control", False), ("control", True))
        ):
            directory = Path(data_dir, str(index))
            _serve_and_measure(name, profiled, directory, servers, seconds, connections, threads)
    return 0


def _serve_and_measure(
    name: str,
    profiled: bool,
    data_dir: Path,
    servers: int,
    seconds: float,
    connections: int,
    threads: int,
) -> None:
    from heartbeat_ingest import Load, enroll, run_wrk, wait_http
    from waitress.server import create_server

    from control.app import create_app
    from control.config import load_settings
    from control.db import db
    from control.fleet import group_commit
    from tests.helpers import free_port

    profilers: list[tuple[str, cProfile.Profile]] = []
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profilers.append((thread.name, profiler))
        profiler.enable()
        try:
            original_run(thread)
        finally:
            profiler.disable()

    if profiled:
        group_commit.heartbeats.stop()  # its next thread starts profiled
        threading.Thread.run = profiled_run  # type: ignore[method-assign]
    if name == "baseline":
        app = _baseline_app()
    else:
        settings = load_settings(
            environ={},
            data_dir=str(data_dir),
            agent_key=AGENT_KEY,
            enroll_rate=max(60, 2 * servers),
            log_level="WARNING",
        )
        app = create_app(settings)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as the baseline script does
    server = create_server(app, host="127.0.0.1", port=free_port(), threads=threads)
    threading.Thread(target=server.run, name="server-loop", daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"
    wait_http(url + "/health")
    if name == "baseline":
        load = Load([f"hlc_{secrets.token_urlsafe(32)}" for _ in range(servers)], 0, True)
    else:
        load = enroll(url, servers, device_health=True)
    run_wrk(url, load, connections, 2)  # warm-up
    for _, profiler in profilers:
        profiler.clear()  # enrollment and warm-up are not the measured path
    writer = group_commit.heartbeats
    batches, writes = writer.batches, writer.writes
    before = _thread_cpu()
    figures = run_wrk(url, load, connections, seconds)
    after = _thread_cpu()
    for _, profiler in profilers:
        profiler.disable()
    threading.Thread.run = original_run  # type: ignore[method-assign]
    count = figures["requests"]
    groups: dict[str, float] = {}
    for thread, used in after.items():
        groups[_group(thread)] = groups.get(_group(thread), 0.0) + used - before.get(thread, 0.0)
    print(
        f"\n{name}{' under cProfile' if profiled else ''}: waitress, {threads} threads, "
        f"{connections} connections, seed-002 heartbeats: {count / figures['seconds']:.0f} "
        f"hb/s, p99 {figures['p99_ms']:.1f} ms, CPU {sum(groups.values()) / count * 1e6:.0f} "
        "µs per heartbeat"
    )
    for group, used in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"  {group:<22} {used / count * 1e6:6.0f} µs per heartbeat")
    if name == "control":
        per_batch = (writer.writes - writes) / max(1, writer.batches - batches)
        print(f"  group commit: {per_batch:.1f} heartbeats per transaction")
    if profiled:
        _print_thread_profiles(profilers)
    # The server is left serving (a daemon thread, idle once wrk stopped): closing it under
    # requests wrk cut off only prints their errors.
    if name != "baseline":
        db.close()


def _print_thread_profiles(profilers: list[tuple[str, cProfile.Profile]]) -> None:
    by_group: dict[str, pstats.Stats] = {}
    for thread, profiler in profilers:
        group = _group(thread)
        try:
            stats = pstats.Stats(profiler)
        except TypeError:  # a thread that ran nothing profiled
            continue
        if group in by_group:
            by_group[group].add(stats)
        else:
            by_group[group] = stats
    for group, stats in by_group.items():
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(TOP)
        print(f"\ncProfile, {group}, top {TOP} by own time:")
        print(out.getvalue().split("\n\n", 1)[-1].rstrip())
