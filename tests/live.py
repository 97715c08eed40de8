"""`homelab-control serve` as a real subprocess, for tests that need a live HTTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.helpers import free_port, wait_until


class LiveControl:
    """Start control on 127.0.0.1:<free port> with the given HOMELAB_* settings; stop it later."""

    def __init__(self, data_dir: Path, port: int | None = None, **settings: str):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = Path(data_dir) / f"control-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
        self.env["HOMELAB_DATA_DIR"] = str(data_dir)
        self.env.update({f"HOMELAB_{k.upper()}": str(v) for k, v in settings.items()})
        self.process: subprocess.Popen | None = None

    def start(self, *extra_args: str) -> LiveControl:
        """Launch and wait until /health answers 200."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "control.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *extra_args,
            ],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, timeout=30)
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"control exited early:\n{self.log()}")
        try:
            return requests.get(self.url + "/health", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log(self) -> str:
        """Everything control wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the process and wait for it; returns its exit status."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> LiveControl:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
