"""``homelab-agent``: serve /metrics and heartbeat to control until SIGTERM.

The heartbeat's modules are imported only with a ``--control-url``: an exporter-only agent
does without their memory. The heartbeat itself reads its figures from /proc (no psutil) and
sends over http.client, taking urllib.request only when a proxy applies to the control URL.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from exporter_agent.collectors import Collector, build_collectors
from exporter_agent.config import Settings, SettingsError, load_settings
from exporter_agent.exporter import AgentCollector, build_registry
from exporter_agent.heartbeat_state import HeartbeatState
from exporter_agent.server import BasicAuth, make_app, serve, tls_context
from exporter_agent.version import agent_version

if TYPE_CHECKING:
    from exporter_agent.heartbeat import HeartbeatLoop

log = logging.getLogger("exporter_agent")


class _BackgroundChecker(Protocol):
    def start(self, stop: threading.Event) -> None: ...


def _heartbeat_loop(
    settings: Settings,
    state: HeartbeatState,
    version: str,
    collectors: Mapping[str, Collector],
) -> HeartbeatLoop:
    """Wire the heartbeat sender, payload and backoff from the settings and collectors."""
    # Imported on the heartbeat's path only (see the module docstring).
    from exporter_agent.device_health import DeviceHealth
    from exporter_agent.heartbeat import Backoff, HeartbeatLoop, HttpSender, build_payload
    from exporter_agent.heartbeat_metrics import Summary, default_server_id, os_info
    from exporter_agent.heartbeat_source import ProcSource
    from exporter_agent.identity import Identity

    hostname = socket.gethostname()
    server_id = settings.server_id or default_server_id(hostname)
    context = None
    if settings.control_url and settings.control_url.startswith("https:"):
        context = ssl.create_default_context(cafile=settings.control_ca_file)
    # Called only with a control_url, and load_settings refuses a control_url without a key.
    # The kept key is bound to one server id: a box reporting as another id (its hostname,
    # so the default id, changed; a cloned VM) must enroll that id, not send the old key.
    identity = Identity(cast(str, settings.api_key), settings.state_dir, server_id)
    identity.check_state_dir()
    sender = HttpSender(cast(str, settings.control_url), identity, f"homelab-agent/{version}",
                        context=context)  # fmt: skip
    # In a container with the host's /proc and / mounted elsewhere, the figures come from those.
    options = settings.collector_options
    source = ProcSource(options.procfs, options.statvfs, options.page_size)
    summary = Summary(source, disk_path=options.rootfs)
    info = os_info(rootfs=settings.collector_options.rootfs)
    device = DeviceHealth.from_collectors(collectors, settings.commit_file)

    def payload() -> dict:
        return build_payload(
            server_id=server_id,
            hostname=hostname,
            now=time.time(),
            os_info=info,
            metrics=summary.metrics(),
            agent_version=version,
            metrics_port=settings.listen_port,
            device=device.read(),
        )

    log.info("heartbeating to %s as server_id=%s every %ss (%s)", sender.url, server_id,
             settings.interval, "enrolled key" if identity.enrolled
             else "configured key until control enrolls this server")  # fmt: skip
    return HeartbeatLoop(sender, payload, settings.interval, Backoff(cap=settings.backoff_cap),
                         state)  # fmt: skip


def run(settings: Settings, stop: threading.Event) -> int:
    """Serve /metrics and heartbeat until ``stop`` is set; returns the exit status."""
    version = agent_version()
    state = HeartbeatState() if settings.control_url else None
    collectors = build_collectors(settings.collectors, settings.collector_options)
    registry = build_registry(AgentCollector(collectors, version, state))
    auth = None
    if settings.basic_auth_user:
        auth = BasicAuth(settings.basic_auth_user, settings.basic_auth_password or "")
    try:
        # load_settings requires --tls-cert and --tls-key together.
        context = (
            tls_context(settings.tls_cert, cast(str, settings.tls_key))
            if settings.tls_cert
            else None
        )
    except (OSError, ssl.SSLError) as exc:
        log.error("cannot load --tls-cert/--tls-key: %s", exc)
        return 2
    try:
        server, _ = serve(make_app(registry, auth), settings.listen_address,
                          settings.listen_port, context)  # fmt: skip
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.listen_address, settings.listen_port,
                  exc.strerror or exc)  # fmt: skip
        return 1
    scheme = "https" if context else "http"
    log.info("homelab-agent %s serving %s://%s:%s/metrics (collectors: %s)", version, scheme,
             settings.listen_address, settings.listen_port, ", ".join(collectors))  # fmt: skip
    if "packages" in collectors:
        # The package check is slow (apt, dnf): it runs in its own thread, never in a scrape.
        cast(_BackgroundChecker, collectors["packages"]).start(stop)
    heartbeat = None
    if state is not None:
        loop = _heartbeat_loop(settings, state, version, collectors)
        heartbeat = threading.Thread(target=loop.run, args=(stop.wait,), name="heartbeat",
                                     daemon=True)  # fmt: skip
        heartbeat.start()
    else:
        log.info("no --control-url: exporter-only mode, no heartbeats")
    stop.wait()
    log.info("stopping")
    server.shutdown()
    server.server_close()
    if heartbeat is not None:
        heartbeat.join(timeout=0.5)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: parse settings, install signal handlers, run."""
    try:
        settings = load_settings(argv)
    except SettingsError as exc:
        print(f"homelab-agent: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return run(settings, stop)


if __name__ == "__main__":
    sys.exit(main())
