"""`make run`: control on SQLite plus one local agent, with keys generated on first start.

Development convenience only. The keys are kept in clear in `.homelab/dev-keys.env` (mode 600)
so the local agent can use them on every start; production keys come from
`homelab-control keys create`, which stores only hashes.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DATA_DIR = Path(os.environ.get("HOMELAB_DATA_DIR", ".homelab"))
KEYS_FILE = DATA_DIR / "dev-keys.env"
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
AGENT_PORT = int(os.environ.get("AGENT_PORT", "9100"))
SCOPES = ("operator", "agent", "viewer")


def load_or_create_keys() -> tuple[dict[str, str], bool]:
    """The dev keys by scope, generating and saving them on the first run."""
    if KEYS_FILE.exists():
        pairs = (line.split("=", 1) for line in KEYS_FILE.read_text().splitlines() if "=" in line)
        stored = {
            name.removeprefix("HOMELAB_").removesuffix("_KEY").lower(): value
            for name, value in pairs
        }
        if all(stored.get(scope) for scope in SCOPES):
            return stored, False
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    created = {scope: f"hlc_{secrets.token_urlsafe(32)}" for scope in SCOPES}
    KEYS_FILE.touch(mode=0o600)
    KEYS_FILE.write_text("".join(f"HOMELAB_{s.upper()}_KEY={k}\n" for s, k in created.items()))
    return created, True


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Block until control answers /health, or exit if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"control exited with status {process.returncode}; see the lines above")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit("control did not become healthy within 30 s")


def banner(url: str, keys: dict[str, str], new: bool, agent: bool) -> str:
    """What a newcomer needs: where things are, the keys, and a first request to try."""
    lines = [
        "",
        "homelabcmd is running (Ctrl-C stops it)",
        f"  API              {url}/api/v1",
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
    wait_for_health(url, processes[0])
    agent_env = {
        **env,
        "HOMELAB_CONTROL_URL": url,
        "HOMELAB_API_KEY": keys["agent"],
        "HOMELAB_LISTEN_ADDRESS": HOST,
        "HOMELAB_LISTEN_PORT": str(AGENT_PORT),
    }
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
