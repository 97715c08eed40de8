"""Kernel identity from uname(2), as node_exporter's ``uname`` collector."""

import os
from collections.abc import Callable, Iterator

from exporter_agent.collectors.util import read_stripped
from exporter_agent.metrics import GaugeMetricFamily, Metric

LABELS = ("domainname", "machine", "nodename", "release", "sysname", "version")


class UnameCollector:
    """Exports ``node_uname_info{sysname,release,version,machine,nodename,domainname} 1``."""

    def __init__(
        self, procfs: str = "/proc", uname: Callable[[], os.uname_result] = os.uname
    ) -> None:
        # Python's uname() lacks the NIS domain name; the kernel publishes it here.
        self._domainname = os.path.join(procfs, "sys", "kernel", "domainname")
        self._uname = uname

    def collect(self) -> Iterator[Metric]:
        """Yield the single info sample."""
        info = self._uname()
        try:
            domainname = read_stripped(self._domainname)
        except FileNotFoundError:
            domainname = "(none)"
        family = GaugeMetricFamily(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            labels=LABELS,
        )
        family.add_metric(
            (domainname, info.machine, info.nodename, info.release, info.sysname, info.version), 1
        )
        yield family
