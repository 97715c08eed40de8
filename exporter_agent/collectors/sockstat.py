"""Socket counts from /proc/net/sockstat and sockstat6, as node_exporter's ``sockstat``."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric

# The per-protocol fields node_exporter exports, in its order; others are ignored as it does.
FIELDS = ("inuse", "orphan", "tw", "alloc", "mem", "memory")


def parse_sockstat(text: str) -> tuple[int | None, dict[str, dict[str, int]]]:
    """Return (``sockets: used``, {protocol: {field: value}}) from a sockstat file."""
    used = None
    protocols: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        protocol, _, rest = line.partition(":")
        pairs = rest.split()
        if not pairs:
            continue
        if len(pairs) % 2:
            raise ValueError(f"malformed sockstat line: {line!r}")
        values = {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        if protocol == "sockets":
            used = values.get("used")
        else:
            protocols[protocol] = values
    return used, protocols


class SockstatCollector:
    """Exports ``node_sockstat_sockets_used`` and ``node_sockstat_<PROTO>_<field>`` gauges.

    ``mem`` is in pages; like node_exporter it is also exported as ``…_mem_bytes`` using
    ``page_size`` (this machine's by default).
    """

    def __init__(self, procfs: str = "/proc", page_size: int | None = None) -> None:
        self._paths = (
            os.path.join(procfs, "net", "sockstat"),
            os.path.join(procfs, "net", "sockstat6"),
        )
        self._page_size = page_size or os.sysconf("SC_PAGE_SIZE")

    def collect(self) -> Iterator[Metric]:
        """Yield the IPv4 then the IPv6 families; a missing file (IP version off) yields none."""
        for ipv6, path in enumerate(self._paths):
            try:
                used, protocols = parse_sockstat(read_text(path))
            except FileNotFoundError:
                continue
            if not ipv6 and used is not None:
                yield GaugeMetricFamily(
                    "node_sockstat_sockets_used", "Number of IPv4 sockets in use.", value=used
                )
            for protocol, values in protocols.items():
                for field in FIELDS:
                    if field in values:
                        yield self._family(protocol, field, values[field])
                if "mem" in values:
                    yield self._family(protocol, "mem_bytes", values["mem"] * self._page_size)

    @staticmethod
    def _family(protocol: str, field: str, value: float) -> Metric:
        return GaugeMetricFamily(
            f"node_sockstat_{protocol}_{field}",
            f"Number of {protocol} sockets in state {field}.",
            value=value,
        )
