"""`make run`: control on SQLite plus one local agent, with keys generated on first start.

Development convenience only. The keys are kept in clear in `.homelab/dev-keys.env` (mode 600,
enforced at every start) so the same keys work on every start; production keys come from
`homelab-control keys create`, which stores only hashes. The local agent gets the agent key
alone, never the operator or viewer key, and keeps its enrolled key in `.homelab/agent`.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

DATA_DIR = Path(os.environ.get("HOMELAB_DATA_DIR", ".homelab"))
KEYS_FILE = DATA_DIR / "dev-keys.env"
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
AGENT_PORT = int(os.environ.get("AGENT_PORT", "9100"))
SCOPES = ("operator", "agent", "viewer")


def load_or_create_keys() -> tuple[dict[str, str], bool]:
    """The dev keys by scope, generating and saving them on the first run."""
    if KEYS_FILE.exists():
        # Whatever mode the file was given since (a copy, an editor, a checkout): keys are 600.
        os.chmod(KEYS_FILE, 0o600, follow_symlinks=False)
        pairs = (line.split("=", 1) for line in KEYS_FILE.read_text().splitlines() if "=" in line)
        stored = {
            name.removeprefix("HOMELAB_").removesuffix("_KEY").lower(): value
            for name, value in pairs
        }
        if all(stored.get(scope) for scope in SCOPES):
            return stored, False
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    DATA_DIR.chmod(0o700)  # the dev keys and the database live here
    created = {scope: f"hlc_{secrets.token_urlsafe(32)}" for scope in SCOPES}
    # O_CREAT's mode applies only to a new file; fchmod narrows one that was already there.
    fd = os.open(KEYS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, 0o600)
        handle.write("".join(f"HOMELAB_{s.upper()}_KEY={k}\n" for s, k in created.items()))
    return created, True


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (so control could not bind it).

    Bound the way waitress binds (SO_REUSEADDR), so a socket left in TIME_WAIT by the last run
    is not mistaken for a server.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False  # control will report the bad host itself
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def free_port_after(host: str, port: int, avoid: tuple[int, ...] = ()) -> int:
    """The first port above `port` that is free and not one of `avoid` (control's, say)."""
    for candidate in range(port + 1, min(port + 200, 65536)):
        if candidate not in avoid and not port_in_use(host, candidate):
            return candidate
    return port + 1


def port_taken_message(
    what: str, host: str, port: int, variable: str, holder: str, avoid: tuple[int, ...] = ()
) -> str:
    """The one line that says a port is taken, by what probably, and how to pick another."""
    return (
        f"{what}: port {port} on {host} is already in use ({holder}?). "
        f"Stop that server or choose another port: "
        f"{variable}={free_port_after(host, port, avoid)} make run"
    )


def control_port_taken(port: int) -> str:
    """The message for a control port someone else holds."""
    return port_taken_message("control", HOST, port, "PORT", "another control or `make run`")


def listens_on(process: subprocess.Popen, port: int) -> bool | None:
    """Whether `process` itself holds a listening TCP socket on `port`; None if unknowable."""
    try:
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None  # some systems hide even a child's sockets: trust the health answer
    except psutil.NoSuchProcess:
        return False
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections
    )


def wait_for_health(url: str, process: subprocess.Popen, port: int, timeout: float = 30) -> None:
    """Block until the control just started answers /health; exit if it died or is not the one.

    A 200 counts only once `process` holds the port: until then it comes from some other
    server that took the port first, and "running" would point the user at that one.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"control exited with status {process.returncode}; see the lines above")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    if listens_on(process, port) is not False:
                        return
                    # Another server answered: ours cannot bind the port and would exit.
                    process.terminate()
                    process.wait(timeout=10)
                    sys.exit(control_port_taken(port))
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit("control did not become healthy within 30 s")


def agent_environment(url: str, agent_key: str) -> dict[str, str]:
    """The local agent's environment: what it needs and no other HOMELAB_* variable.

    In particular not the operator and viewer keys (nor a database URL with its password)
    that control's environment holds: the agent runs with the agent key alone, enrolls with
    it, and keeps the key bound to its server in `<data dir>/agent`.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("HOMELAB_")}
    env.update(
        HOMELAB_CONTROL_URL=url,
        HOMELAB_API_KEY=agent_key,
        HOMELAB_LISTEN_ADDRESS=HOST,
        HOMELAB_LISTEN_PORT=str(AGENT_PORT),
        HOMELAB_STATE_DIR=str((DATA_DIR / "agent").resolve()),
    )
    return env


def banner(url: str, keys: dict[str, str], new: bool, agent: bool) -> str:
    """What a newcomer needs: where things are, the keys, and a first request to try."""
    lines = [
        "",
        "homelabcmd is running (Ctrl-C stops it)",
        f"  console          {url}/ui/  (sign in with the operator or viewer key below)",
        f"  API              {url}/api/v1/servers  (send X-API-Key)",
        f"  API docs         {url}/api/docs",
        f"  health, metrics  {url}/health  {url}/metrics",
    ]
    if agent:
        lines.append(f"  local agent      http://{HOST}:{AGENT_PORT}/metrics")
    lines += [
        "",
        f"Keys ({'generated now' if new else 'from'} {KEYS_FILE}):",
        *(f"  {scope:<9} {keys[scope]}" for scope in SCOPES),
        "",
        "Try:",
        f"  curl -H 'X-API-Key: {keys['operator']}' {url}/api/v1/servers",
        "",
    ]
    return "\n".join(lines)


def _interrupt(*_: object) -> None:
    """Treat SIGTERM like Ctrl-C so both children are stopped the same way."""
    raise KeyboardInterrupt


def main() -> int:
    """Start control and a local agent, print the banner, stop both on Ctrl-C or SIGTERM."""
    if port_in_use(HOST, PORT):
        sys.exit(control_port_taken(PORT))
    keys, new = load_or_create_keys()
    env = {**os.environ, "HOMELAB_DATA_DIR": str(DATA_DIR)}
    env.update({f"HOMELAB_{scope.upper()}_KEY": key for scope, key in keys.items()})
    url = f"http://{HOST}:{PORT}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "control.cli", "serve", "--host", HOST, "--port", str(PORT)],
            env=env,
        )
    ]
    wait_for_health(url, processes[0], PORT)
    if port_in_use(HOST, AGENT_PORT):
        # Often node_exporter, on the same default port: control runs on without the agent.
        holder = "node_exporter or another agent"
        message = port_taken_message(
            "local agent not started", HOST, AGENT_PORT, "AGENT_PORT", holder, avoid=(PORT,)
        )
        print(message)
        agent_running = False
    else:
        agent_env = agent_environment(url, keys["agent"])
        processes.append(subprocess.Popen([sys.executable, "-m", "exporter_agent"], env=agent_env))
        time.sleep(1)
        agent_running = processes[1].poll() is None
    print(banner(url, keys, new, agent_running), flush=True)

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while processes[0].poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    return processes[0].returncode or 0


if __name__ == "__main__":
    sys.exit(main())
