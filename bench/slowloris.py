"""Slowloris: heartbeats and /health while thousands of idle or trickling connections are open.

Starts a real server as a subprocess (by default `homelab-control serve`, the command operators
run), measures heartbeat and /health latency and errors with no attack (the baseline), then
opens N connections that each send half a request and stop (`idle`), or keep adding one header
line every few seconds (`trickle`, which defeats inactivity timeouts), and measures the same
probes again while they are held. Probes behave like the agent: a new connection per request
(urllib), 10 s timeout.

    .venv/bin/python bench/slowloris.py [--connections 3000] [--modes idle,trickle]
        [--duration 15] [--settle 0] [--server serve|gunicorn|granian] [--serve-args "..."]
        [--extra-path DIR] [--smoke]

`--server gunicorn|granian` runs `control.wsgi:app` under that server instead (API only, no
scheduler); install it outside the project's venv, e.g.
`pip install --target /tmp/wsgi-servers gunicorn granian`, and pass `--extra-path
/tmp/wsgi-servers`. Each row: probes answered 200 / sent, latency p50 / p95 / max, the ratio of
p50 and p95 to the baseline of the same run, the attack connections the server still held at the
end, and the server's CPU (fraction of one core) during the phase.

Over 300 lines: a self-contained script (attackers, servers, probes, report) that runs from
a bare checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import resource
import selectors
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from payloads import heartbeat_body  # noqa: E402 - bench/, the script's directory, is on sys.path

from tests.helpers import free_port  # noqa: E402 - after the sys.path line above

AGENT_KEY = "slowloris-agent-key"
OPERATOR_KEY = "slowloris-operator-key"
VIEWER_KEY = "slowloris-viewer-key"
HEARTBEAT = "/api/v1/agents/heartbeat"
PROBE_TIMEOUT = 10.0
# What a slowloris client sends first: a request line and one header, never the blank line.
HALF_REQUEST = b"POST /api/v1/agents/heartbeat HTTP/1.1\r\nHost: control\r\n"


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft open-files limit towards `wanted`; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the server under test -----------------------------------------------------------------


class Target:
    """One server as a subprocess of this script, on a free port with a fresh SQLite file."""

    def __init__(self, kind: str, serve_args: list[str], extra_path: str, workdir: Path):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{kind}-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
        env.update(
            HOMELAB_DATA_DIR=str(workdir / f"data-{self.port}"),
            HOMELAB_AGENT_KEY=AGENT_KEY,
            HOMELAB_OPERATOR_KEY=OPERATOR_KEY,
            HOMELAB_VIEWER_KEY=VIEWER_KEY,
            HOMELAB_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join(p for p in (extra_path, str(REPO)) if p),
        )
        Path(env["HOMELAB_DATA_DIR"]).mkdir(parents=True)
        address = f"127.0.0.1:{self.port}"
        commands = {
            "serve": [sys.executable, "-m", "control.cli", "serve", "--port", str(self.port)],
            # gthread: the threaded worker, the one that serves a Flask app without gevent.
            "gunicorn": [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "8",
                         "-w", "1", "-b", address, "control.wsgi:app"],
            "granian": [sys.executable, "-m", "granian", "--interface", "wsgi",
                        "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                        "--blocking-threads", "8", "control.wsgi:app"],
        }  # fmt: skip
        self.command = commands[kind] + serve_args
        self.env = env

    def __enter__(self) -> Target:
        self._log = open(self.log_path, "wb")  # closed in __exit__
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO
        )
        deadline = time.monotonic() + 60
        while not probe(self.url + "/health", timeout=1).ok:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not come up:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        return self

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and its children (gunicorn's worker, …)."""
        root = psutil.Process(self.process.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# --- probes: what the fleet needs answered -------------------------------------------------


@dataclass
class Probe:
    """One request's outcome."""

    ok: bool
    seconds: float
    error: str = ""
    body: bytes = b""


def probe(
    url: str, body: bytes | None = None, timeout: float = PROBE_TIMEOUT, key: str = AGENT_KEY
) -> Probe:
    """One request on a new connection, as the agent sends it (urllib)."""
    headers = {"X-API-Key": key}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = response.read()
            return Probe(response.status == 200, time.perf_counter() - started, body=answer)
    except urllib.error.HTTPError as exc:
        return Probe(False, time.perf_counter() - started, f"HTTP {exc.code}")
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        return Probe(False, time.perf_counter() - started, type(reason).__name__)


@dataclass
class Phase:
    """The probes of one phase (baseline or attack) and what the server used meanwhile."""

    name: str
    probes: list[Probe] = field(default_factory=list)
    cpu: float = 0.0
    held: str = "-"

    def latencies(self) -> list[float]:
        """Latencies of the answered probes, in ms, sorted."""
        return sorted(p.seconds * 1000 for p in self.probes if p.ok)

    def pct(self, q: float) -> float:
        """The q-quantile latency in ms (of answered probes); nan when none was answered."""
        values = self.latencies()
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]

    def errors(self) -> dict[str, int]:
        """Failed probes by reason."""
        counts: dict[str, int] = {}
        for p in self.probes:
            if not p.ok:
                counts[p.error or "not 200"] = counts.get(p.error or "not 200", 0) + 1
        return counts


def run_probes(target: Target, seconds: float, workers: int, keys: dict[int, str]) -> list[Probe]:
    """`workers` closed loops of heartbeat + /health for `seconds`; every outcome.

    `keys` holds each loop's enrolled agent key, kept across phases.
    """
    results: list[Probe] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        counter = 0
        while time.monotonic() < deadline:
            counter += 1
            body = heartbeat_body(f"probe-{index}", counter)
            beat = probe(target.url + HEARTBEAT, body, key=keys.get(index, AGENT_KEY))
            if beat.ok and b"agent_key" in beat.body:
                # The first heartbeat enrolled the server: from now on only its own key speaks.
                keys[index] = json.loads(beat.body)["agent_key"]
            outcomes = [beat, probe(target.url + "/health")]
            with lock:
                results.extend(outcomes)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --- the attack ----------------------------------------------------------------------------


class Slowloris:
    """N connections that each send half a request and hold it, from one selector thread.

    `idle`: send HALF_REQUEST once, then nothing. `trickle`: one more header line every
    `interval` seconds per connection, the classic slowloris that resets inactivity timers.
    """

    def __init__(self, port: int, connections: int, mode: str, interval: float = 5.0):
        self.port = port
        self.connections = connections
        self.mode = mode
        self.interval = interval
        self.sent_half = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> Slowloris:
        self._thread.start()
        # Hold the probes until every connection has been attempted (or 30 s passed).
        deadline = time.monotonic() + 30
        while self.sent_half + self.closed_by_server < self.connections:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return self

    def held(self) -> int:
        """Connections that sent their half request and were not closed by the server."""
        return self.sent_half - self.closed_by_server

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for _ in range(self.connections):
            sock = socket.socket()
            sock.setblocking(False)
            err = sock.connect_ex(("127.0.0.1", self.port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                self.closed_by_server += 1
                continue
            self._sockets.append(sock)
            selector.register(sock, selectors.EVENT_WRITE, "connecting")
        next_trickle = time.monotonic() + self.interval
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if key.data == "connecting":
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self._drop(selector, sock)
                        continue
                    try:
                        sock.send(HALF_REQUEST)
                    except OSError:
                        self._drop(selector, sock)
                        continue
                    self.sent_half += 1
                    selector.modify(sock, selectors.EVENT_READ, "held")
                else:  # readable while held: the server answered (408, 400) or closed it
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(selector, sock)
            if self.mode == "trickle" and time.monotonic() >= next_trickle:
                next_trickle = time.monotonic() + self.interval
                for key in list(selector.get_map().values()):
                    if key.data == "held":
                        # A full buffer or a reset: the recv side counts the close.
                        with contextlib.suppress(OSError):
                            key.fileobj.send(b"X-Slow: 1\r\n")  # type: ignore[union-attr]
        selector.close()

    def _drop(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        selector.unregister(sock)
        sock.close()
        self.closed_by_server += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._sockets:
            sock.close()


# --- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[Phase]:
    """Baseline, then one attack phase per mode, against one fresh server."""
    phases: list[Phase] = []
    keys: dict[int, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="slowloris-") as workdir,
        Target(args.server, shlex.split(args.serve_args), args.extra_path, Path(workdir)) as target,
    ):
        run_probes(target, 1.0, args.probes, keys)  # warm-up: first registrations, imports
        phase = Phase("baseline")
        cpu = target.cpu_seconds()
        phase.probes = run_probes(target, args.duration, args.probes, keys)
        phase.cpu = (target.cpu_seconds() - cpu) / args.duration
        phases.append(phase)
        for mode in args.modes:
            with Slowloris(target.port, args.connections, mode) as attack:
                time.sleep(args.settle)  # 0: probe during the accept storm, as an attacker would
                phase = Phase(f"{mode} x{args.connections}")
                cpu = target.cpu_seconds()
                phase.probes = run_probes(target, args.duration, args.probes, keys)
                phase.cpu = (target.cpu_seconds() - cpu) / args.duration
                phase.held = f"{attack.held()}/{args.connections}"
            phases.append(phase)
            time.sleep(2)  # let the server close the attack's sockets before the next phase
    return phases


def print_table(phases: list[Phase], args: argparse.Namespace) -> None:
    """One row per phase, with ratios to the baseline."""
    base = phases[0]
    print(f"server: {args.server} {args.serve_args}".rstrip())
    print(f"probes: {args.probes} loops of heartbeat + /health, {args.duration:g} s per phase")
    header = (
        f"{'phase':<16} {'answered':>11} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
        f"{'p50 ratio':>9} {'p95 ratio':>9} {'held':>11} {'srv cpu':>7}  errors"
    )
    print(header)
    for phase in phases:
        answered = sum(p.ok for p in phase.probes)
        values = phase.latencies()
        maximum = values[-1] if values else float("nan")
        p50_ratio = phase.pct(0.5) / base.pct(0.5)
        p95_ratio = phase.pct(0.95) / base.pct(0.95)
        print(
            f"{phase.name:<16} {f'{answered}/{len(phase.probes)}':>11} {phase.pct(0.5):>8.1f} "
            f"{phase.pct(0.95):>8.1f} {maximum:>8.1f} {p50_ratio:>9.2f} {p95_ratio:>9.2f} "
            f"{phase.held:>11} {phase.cpu:>7.2f}  {phase.errors() or '-'}"
        )


def main() -> int:
    """Parse, run, print the table; exit 1 if any attack phase lost a probe."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--modes", default="idle,trickle", help="comma-separated: idle,trickle")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--probes", type=int, default=2, help="concurrent probe loops")
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds between opening and probing"
    )
    parser.add_argument("--server", choices=["serve", "gunicorn", "granian"], default="serve")
    parser.add_argument("--serve-args", default="", help="extra arguments for the server")
    parser.add_argument("--extra-path", default="", help="PYTHONPATH entry with gunicorn/granian")
    parser.add_argument("--smoke", action="store_true", help="200 connections, 2 s phases")
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    if args.smoke:
        args.connections, args.duration = 200, 2.0
    limit = raise_nofile(args.connections + 256)
    if limit < args.connections + 64:
        parser.error(f"open-files limit {limit} is too low for {args.connections} connections")
    phases = run(args)
    print_table(phases, args)
    attacked = phases[1:]
    return 0 if all(all(p.ok for p in phase.probes) for phase in attacked) else 1


if __name__ == "__main__":
    sys.exit(main())
