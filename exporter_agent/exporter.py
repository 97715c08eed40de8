"""The agent's registry: runs each collector, isolates its failures and adds agent metrics."""

import logging
import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from exporter_agent.collectors import Collector
from exporter_agent.heartbeat_state import HeartbeatState

log = logging.getLogger(__name__)

# What a broken data source raises; anything else is a bug and should surface loudly.
COLLECT_ERRORS = (OSError, ValueError, subprocess.SubprocessError, psutil.Error)


class AgentCollector:
    """Runs the enabled collectors for each scrape and exports the ``homelab_agent_*`` facts.

    A collector that raises one of ``COLLECT_ERRORS`` contributes nothing to that scrape and
    shows ``homelab_agent_collector_success{collector} 0``; the scrape itself still succeeds.
    """

    def __init__(
        self,
        collectors: Mapping[str, Collector],
        version: str,
        heartbeat: HeartbeatState | None = None,
        timer: Callable[[], float] = time.perf_counter,
        python_version: str = platform.python_version(),
    ) -> None:
        self._collectors = dict(collectors)
        self._version = version
        self._heartbeat = heartbeat
        self._timer = timer
        self._python_version = python_version
        self._failing: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        """Yield every collector's families, then the agent's own metrics."""
        duration = GaugeMetricFamily(
            "homelab_agent_collector_duration_seconds",
            "Duration of a collector scrape in seconds.",
            labels=("collector",),
        )
        success = GaugeMetricFamily(
            "homelab_agent_collector_success",
            "Whether a collector succeeded (1) or failed (0) during this scrape.",
            labels=("collector",),
        )
        for name, collector in self._collectors.items():
            start = self._timer()
            families = self._run(name, collector)
            duration.add_metric((name,), self._timer() - start)
            success.add_metric((name,), 0.0 if families is None else 1.0)
            if families:
                yield from families
        yield duration
        yield success
        yield from self._agent_families()

    def _run(self, name: str, collector: Collector) -> list[Metric] | None:
        try:
            families = list(collector.collect())
        except COLLECT_ERRORS as exc:
            if name not in self._failing:
                log.warning("collector %s failed, skipping its metrics: %s", name, exc)
                self._failing.add(name)
            return None
        if name in self._failing:
            log.info("collector %s recovered", name)
            self._failing.discard(name)
        return families

    def _agent_families(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "homelab_agent_build_info",
            "A metric with a constant '1' value labeled by the agent's version and Python version.",
            labels=("version", "pythonversion"),
        )
        build.add_metric((self._version, self._python_version), 1)
        yield build
        if self._heartbeat is None:
            return
        ok, last = self._heartbeat.snapshot()
        yield GaugeMetricFamily(
            "homelab_agent_heartbeat_success",
            "Whether the last heartbeat to control was accepted (1) or not (0).",
            value=1.0 if ok else 0.0,
        )
        yield GaugeMetricFamily(
            "homelab_agent_last_heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat control accepted, 0 before the first.",
            value=last,
        )


def build_registry(agent: AgentCollector, process_metrics: bool = True) -> CollectorRegistry:
    """Return a fresh registry holding the agent collector (and process_* metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(agent)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry
