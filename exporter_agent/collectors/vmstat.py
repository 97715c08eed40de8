"""Virtual memory counters from /proc/vmstat, as node_exporter's ``vmstat`` collector."""

import os
import re
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import Metric, UnknownMetricFamily
from exporter_agent.options import Option, regex

DEFAULT_FIELDS = "^(oom_kill|pgpg|pswp|pg.*fault).*"

FIELDS = Option(
    dest="vmstat_fields",
    flag="--collector.vmstat.fields",
    env="HOMELAB_VMSTAT_FIELDS",
    default=DEFAULT_FIELDS,
    help="regex of /proc/vmstat fields to export (node_exporter's default)",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (FIELDS,)


class VmstatCollector:
    """Exports ``node_vmstat_<field>`` (untyped) for the fields the regex selects:
    by default ``pgpgin``/``pgpgout``, ``pswpin``/``pswpout``, ``pgfault``, ``pgmajfault``
    and ``oom_kill``."""

    def __init__(self, procfs: str = "/proc", fields: str = DEFAULT_FIELDS) -> None:
        self._path = os.path.join(procfs, "vmstat")
        self._pattern = re.compile(fields)
        # The kernel's field names never change while it runs: match each name once.
        self._wanted: dict[str, bool] = {}

    def collect(self) -> Iterator[Metric]:
        """Yield one untyped family per selected field; raises ValueError on a malformed line."""
        wanted = self._wanted
        for line in read_text(self._path).splitlines():
            name, _, value = line.partition(" ")
            keep = wanted.get(name)
            if keep is None:
                keep = wanted[name] = self._pattern.search(name) is not None
            if keep:
                yield UnknownMetricFamily(
                    f"node_vmstat_{name}",
                    f"/proc/vmstat information field {name}.",
                    value=float(value),
                )
