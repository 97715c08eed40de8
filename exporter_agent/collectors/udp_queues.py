"""Bytes queued on UDP sockets from /proc/net/udp and udp6, as node_exporter's ``udp_queues``."""

import os
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric


def queue_totals(text: str) -> tuple[int, int]:
    """Sum the hex ``tx_queue:rx_queue`` column over every socket line (after the header)."""
    tx = rx = 0
    for line in text.splitlines()[1:]:
        columns = line.split()
        if not columns:
            continue
        if len(columns) < 5:
            raise ValueError(f"malformed UDP socket line: {line!r}")
        tx_queue, _, rx_queue = columns[4].partition(":")
        tx += int(tx_queue, 16)
        rx += int(rx_queue, 16)
    return tx, rx


class UdpQueuesCollector:
    """Exports ``node_udp_queues{ip="v4"|"v6",queue="tx"|"rx"}`` in bytes.

    A missing file (that IP version disabled) is skipped; both missing fails the collector,
    which is node_exporter's ``ErrNoData``.
    """

    def __init__(self, procfs: str = "/proc") -> None:
        net = os.path.join(procfs, "net")
        self._files = (("v4", os.path.join(net, "udp")), ("v6", os.path.join(net, "udp6")))

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge family with tx and rx per available IP version."""
        family = GaugeMetricFamily(
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            labels=("queue", "ip"),
        )
        missing = 0
        for ip, path in self._files:
            try:
                tx, rx = queue_totals(read_text(path))
            except FileNotFoundError:
                missing += 1
                if missing == len(self._files):
                    raise
                continue
            family.add_metric(("tx", ip), tx)
            family.add_metric(("rx", ip), rx)
        yield family
