"""The agent's registry: runs each collector, isolates its failures and adds agent metrics."""

import logging
import platform
import resource
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial

from exporter_agent.collectors import Collector
from exporter_agent.collectors.textfile import TextfileCollector
from exporter_agent.heartbeat_state import HeartbeatState
from exporter_agent.metrics import GaugeMetricFamily, Metric
from exporter_agent.process import ProcessCollector
from exporter_agent.registry import Registry

log = logging.getLogger(__name__)

# What a broken data source raises; anything else is a bug and should surface loudly.
COLLECT_ERRORS = (OSError, ValueError, subprocess.SubprocessError)


class AgentCollector:
    """Runs the enabled collectors for each scrape and exports the ``homelab_agent_*`` facts.

    A collector that raises one of ``COLLECT_ERRORS`` contributes nothing to that scrape and
    shows ``homelab_agent_collector_success{collector} 0``; the scrape itself still succeeds.
    The same facts are also exported under node_exporter's names
    (``node_scrape_collector_{duration_seconds,success}``) for the dashboards that use them.
    The textfile collector runs last, told every name the others exported, so a ``*.prom``
    file cannot shadow the agent's own families.
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
        node_duration = GaugeMetricFamily(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            labels=("collector",),
        )
        node_success = GaugeMetricFamily(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            labels=("collector",),
        )
        tables = (duration, success, node_duration, node_success)
        exported: list[Metric] = []
        textfiles = []
        for name, collector in self._collectors.items():
            if isinstance(collector, TextfileCollector):
                textfiles.append((name, collector))
                continue
            families = self._scrape(name, collector.collect, tables)
            if families:
                exported.extend(families)
                yield from families
        taken = ExportedNames(exported)
        for name, textfile in textfiles:
            yield from self._scrape(name, partial(textfile.collect_beside, taken), tables) or ()
        yield from tables
        yield from self._agent_families()

    def _scrape(
        self,
        name: str,
        collect: Callable[[], Iterable[Metric]],
        tables: tuple[GaugeMetricFamily, ...],
    ) -> list[Metric] | None:
        """Run one collector, recording its duration and success in ``tables``."""
        duration, success, node_duration, node_success = tables
        start = self._timer()
        families = self._run(name, collect)
        elapsed = self._timer() - start
        ok = 0.0 if families is None else 1.0
        for family, value in (
            (duration, elapsed),
            (success, ok),
            (node_duration, elapsed),
            (node_success, ok),
        ):
            family.add_metric((name,), value)
        return families

    def _run(self, name: str, collect: Callable[[], Iterable[Metric]]) -> list[Metric] | None:
        try:
            families = list(collect())
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


class ExportedNames:
    """The family and sample names of this scrape's families, as a set built on first use.

    Only a textfile collector with files asks, so a scrape without one never builds it.
    """

    def __init__(self, families: list[Metric]) -> None:
        self._families = families
        self._names: set[str] | None = None

    def __contains__(self, name: object) -> bool:
        if self._names is None:
            self._names = {f.name for f in self._families}
            self._names.update(s.name for f in self._families for s in f.samples)
        return name in self._names


# What Go's client reports for an unlimited address space: RLIM_INFINITY as an unsigned 64 bits.
UNLIMITED_BYTES = float(2**64 - 1)


class AddressSpaceLimitCollector:
    """``process_virtual_memory_max_bytes``, the one process series of node_exporter (Go's
    client) that prometheus-client's ProcessCollector (and ours, process.py) lacks; "Node
    Exporter Full" graphs it."""

    def __init__(self, getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit) -> None:
        self._getrlimit = getrlimit

    def collect(self) -> Iterator[Metric]:
        """Yield the soft RLIMIT_AS in bytes (2**64 - 1 when unlimited, as Go reports it)."""
        soft, _ = self._getrlimit(resource.RLIMIT_AS)
        yield GaugeMetricFamily(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            value=UNLIMITED_BYTES if soft == resource.RLIM_INFINITY or soft < 0 else float(soft),
        )


def build_registry(agent: AgentCollector, process_metrics: bool = True) -> Registry:
    """Return a fresh registry holding the agent collector (and process_* metrics)."""
    registry = Registry()
    registry.register(agent)
    if process_metrics:
        registry.register(ProcessCollector())
        registry.register(AddressSpaceLimitCollector())
    return registry
