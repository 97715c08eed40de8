"""`heartbeat_ingest.py --profile`: the two heartbeat payloads in-process, timed and profiled.

No HTTP and no other process: control's app on a fresh SQLite file, driven by Flask's test
client, so the figures are control's own cost per heartbeat (plus the test client's, the same
for both payloads). Seed-001 agents and seed-002 agents (`payloads.DEVICE_HEALTH`) enroll
first, as in the HTTP bench; then `runs` rounds (at least 3) alternate the two, each timing
`heartbeats` heartbeats with bodies built beforehand, and the median time per heartbeat and
ratio are printed; then cProfile's top functions (own time) for each payload.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import statistics
import tempfile
import time

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
                began = time.perf_counter()
                _send(client, requests)
                timings[name].append((time.perf_counter() - began) / heartbeats * 1e6)
        ratios = [
            new / old for old, new in zip(timings["seed-001"], timings["seed-002"], strict=True)
        ]
        print(
            f"\nin-process heartbeats (SQLite, Flask test client), {heartbeats} per payload and "
            f"round, {len(ratios)} rounds"
        )
        for name, values in timings.items():
            runs_text = ", ".join(f"{value:.0f}" for value in values)
            print(f"{name}: median {statistics.median(values):.0f} µs per heartbeat ({runs_text})")
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
