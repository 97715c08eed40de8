"""Bonded interfaces from /sys/class/net, as node_exporter's ``bonding`` collector.

For each master listed in ``bonding_masters``: how many slaves it has and how many of them
report MII status ``up`` — ``node_bonding_active < node_bonding_slaves`` is a degraded bond.
Without the bonding driver (no ``bonding_masters``) there is no bond and nothing to export;
node_exporter reports that as a failed collector, the agent as a successful empty one, as
for hwmon. A listed master or slave whose files cannot be read fails the collector.
"""

import os
from collections.abc import Iterator

from exporter_agent.collectors.sysfs import read_value
from exporter_agent.metrics import GaugeMetricFamily, Metric


class BondingCollector:
    """Exports ``node_bonding_slaves{master}`` and ``node_bonding_active{master}``."""

    def __init__(self, sysfs: str = "/sys") -> None:
        self._class_dir = os.path.join(sysfs, "class", "net")

    def bonds(self) -> dict[str, tuple[int, int]]:
        """Map each bonding master to (configured slaves, slaves whose MII status is up)."""
        try:
            masters = read_value(os.path.join(self._class_dir, "bonding_masters")).split()
        except FileNotFoundError:
            return {}
        bonds = {}
        for master in masters:
            slaves = read_value(os.path.join(self._class_dir, master, "bonding", "slaves")).split()
            active = sum(self._mii_status(master, slave) == "up" for slave in slaves)
            bonds[master] = (len(slaves), active)
        return bonds

    def _mii_status(self, master: str, slave: str) -> str:
        base = os.path.join(self._class_dir, master)
        try:
            status = read_value(os.path.join(base, f"lower_{slave}", "bonding_slave", "mii_status"))
        except FileNotFoundError:
            # Older kernels name the link to the slave slave_<name>.
            status = read_value(os.path.join(base, f"slave_{slave}", "bonding_slave", "mii_status"))
        return status.strip()

    def collect(self) -> Iterator[Metric]:
        """Yield both families, one sample per master; nothing without bonds."""
        bonds = self.bonds()
        if not bonds:
            return
        slaves = GaugeMetricFamily(
            "node_bonding_slaves",
            "Number of configured slaves per bonding interface.",
            labels=("master",),
        )
        active = GaugeMetricFamily(
            "node_bonding_active",
            "Number of active slaves per bonding interface.",
            labels=("master",),
        )
        for master, (configured, up) in sorted(bonds.items()):
            slaves.add_metric((master,), configured)
            active.add_metric((master,), up)
        yield slaves
        yield active
