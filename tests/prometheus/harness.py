"""Real Prometheus and Alertmanager processes, and a fake control they talk to.

The fake control serves what the real one will: `/metrics` (control's own metrics), the http_sd
target list (Bearer auth), an agent's `/metrics`, and the Alertmanager webhook, all from the
recorded exposition files in `fixtures/`. The configs are the repo's files with only addresses,
paths and intervals rewritten.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

from tests.helpers import free_port, wait_until
from tests.prometheus.files import ALERTMANAGER_YML, FIXTURES, PROMETHEUS_YML, RULES_DIR

SD_PATH = "/api/v1/prometheus/targets"
WEBHOOK_PATH = "/api/v1/alerts/alertmanager"


def render_exposition(name: str, scrape: int) -> str:
    """A fixture exposition: `@NOW@` → current time, `@COUNTER_k@` → k times the scrape number."""
    text = (FIXTURES / name).read_text().replace("@NOW@", f"{time.time():.3f}")
    out = []
    for line in text.splitlines():
        if "@COUNTER_" in line:
            head, _, rest = line.partition("@COUNTER_")
            line = f"{head}{int(rest.rstrip('@')) * scrape}"
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class FakeControl:
    """An HTTP server standing in for control on 127.0.0.1 (or, with agent.prom, an agent)."""

    metrics_fixture: str = "control.prom"
    viewer_key: str = "viewer-key"
    operator_key: str = "operator-key"
    targets: list[dict] = field(default_factory=list)
    sd_requests: list[dict] = field(default_factory=list)
    webhooks: list[dict] = field(default_factory=list)

    def start(self) -> FakeControl:
        """Listen on a free port in a background thread."""
        fake = self
        scrapes = [0]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == SD_PATH:
                    auth = self.headers.get("Authorization", "")
                    fake.sd_requests.append({"authorization": auth})
                    if auth != f"Bearer {fake.viewer_key}":
                        self._send(401, '{"code": "UNAUTHORIZED"}', "application/json")
                        return
                    self._send(200, json.dumps(fake.targets), "application/json")
                elif self.path == "/metrics":
                    scrapes[0] += 1
                    body = render_exposition(fake.metrics_fixture, scrapes[0])
                    self._send(200, body, "text/plain; version=0.0.4")
                else:
                    self._send(404, "", "text/plain")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != WEBHOOK_PATH:
                    self._send(404, "", "text/plain")
                    return
                fake.webhooks.append(
                    {
                        "authorization": self.headers.get("Authorization", ""),
                        "payload": json.loads(body),
                    }
                )
                self._send(200, "{}", "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def address(self) -> str:
        """host:port of the fake."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()


def prometheus_config(
    tmp: Path,
    *,
    control: str,
    viewer_key: str,
    alertmanager: str | None = None,
    interval: str | None = None,
) -> Path:
    """The repo's prometheus.yml with addresses, paths and (optionally) intervals rewritten."""
    config = copy.deepcopy(yaml.safe_load(PROMETHEUS_YML.read_text()))
    credentials = tmp / "viewer_key"
    credentials.write_text(viewer_key)
    credentials.chmod(0o600)
    if interval:
        config["global"].update(
            scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval
        )
    config["rule_files"] = [str(RULES_DIR / Path(p).name) for p in config["rule_files"]]
    if alertmanager:
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    else:
        del config["alerting"]
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [control]
        for sd in job.get("http_sd_configs", []):
            sd["url"] = sd["url"].replace("control:8000", control)
            sd["authorization"]["credentials_file"] = str(credentials)
            if interval:
                sd["refresh_interval"] = interval
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(tmp: Path, *, control: str, alerts_key: str, fast: bool) -> Path:
    """The repo's alertmanager.yml pointing at `control`, with its key in a temp file."""
    config = copy.deepcopy(yaml.safe_load(ALERTMANAGER_YML.read_text()))
    credentials = tmp / "alerts_key"
    credentials.write_text(alerts_key)
    credentials.chmod(0o600)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace("control:8000", control)
            hook["http_config"]["authorization"]["credentials_file"] = str(credentials)
    if fast:
        config["route"].update(group_wait="0s", group_interval="1s")
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Process:
    """A server binary on a free 127.0.0.1 port, stopped by `stop()`."""

    ready_path = "/-/ready"

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=60)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.proc.args[0]} exited:\n{self.log.read_text()}")
        try:
            return requests.get(self.url + self.ready_path, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Prometheus(Process):
    """The real Debian `prometheus` with its own storage directory."""

    def __init__(self, binary: str, config: Path, tmp: Path) -> None:
        port = free_port()
        super().__init__(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            port,
            tmp / "prometheus.log",
        )

    def query(self, expr: str) -> requests.Response:
        """An instant query through the HTTP API (400 bad_data on a parse error)."""
        return requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=30)

    def api(self, path: str) -> dict:
        """GET /api/v1/<path> and return its data."""
        response = requests.get(f"{self.url}/api/v1/{path}", timeout=30)
        response.raise_for_status()
        return response.json()["data"]


class Alertmanager(Process):
    """The real Debian `prometheus-alertmanager`, clustering off."""

    def __init__(self, binary: str, config: Path, tmp: Path) -> None:
        port = free_port()
        super().__init__(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            port,
            tmp / "alertmanager.log",
        )

    def post_alerts(self, alerts: list[dict]) -> None:
        """Send alerts the way Prometheus does (API v2)."""
        response = requests.post(self.url + "/api/v2/alerts", json=alerts, timeout=10)
        response.raise_for_status()

    def alerts(self) -> list[dict]:
        """Alerts Alertmanager holds, with their status (active, suppressed by inhibition, ...)."""
        response = requests.get(self.url + "/api/v2/alerts", timeout=10)
        response.raise_for_status()
        return response.json()
