"""State of the systemd units the operator lists, via ``systemctl show``.

Unlike node_exporter (which talks D-Bus and lists every unit), the agent asks only for the
units named with ``--collector.systemd.units``, in one ``systemctl show`` call per scrape.
On a host without systemd the collector exports nothing and reports success.
"""

import os
import subprocess
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter_agent.options import Option, unit_names

STATES = ("activating", "active", "deactivating", "failed", "inactive")
PROPERTIES = "Id,ActiveState,Type"
TIMEOUT_SECONDS = 5

# This collector's settings; the COLLECTORS table hands them to config's parser.
UNITS = Option(
    dest="systemd_units",
    flag="--collector.systemd.units",
    env="HOMELAB_SYSTEMD_UNITS",
    default=(),
    help="comma-separated systemd units to export node_systemd_unit_state for",
    convert=unit_names,
    metavar="UNITS",
)
OPTIONS = (UNITS,)


def run_systemctl(args: Sequence[str]) -> str:
    """Run ``systemctl ARGS`` and return stdout; raises subprocess/OS errors on failure."""
    result = subprocess.run(
        ["systemctl", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=True,
        env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    return result.stdout


def parse_show(text: str) -> list[dict[str, str]]:
    """Split ``systemctl show`` output into one property dict per unit (blank-line separated)."""
    units: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                units.append(current)
            current = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"malformed systemctl show line: {line!r}")
        current[key] = value
    if current:
        units.append(current)
    return units


def systemd_booted(root: str = "/") -> bool:
    """Return True when the host runs systemd as init (sd_booted(3)'s test)."""
    return os.path.isdir(os.path.join(root, "run", "systemd", "system"))


class SystemdCollector:
    """Exports ``node_systemd_unit_state{name,state,type}``: 1 for the unit's current state."""

    def __init__(
        self,
        units: Sequence[str] = (),
        runner: Callable[[Sequence[str]], str] = run_systemctl,
        booted: Callable[[], bool] = systemd_booted,
    ) -> None:
        self._units = tuple(units)
        self._runner = runner
        self._booted = booted

    def collect(self) -> Iterator[Metric]:
        """Yield one sample per listed unit and state; nothing without units or systemd."""
        if not self._units or not self._booted():
            return
        output = self._runner(["show", f"--property={PROPERTIES}", "--", *self._units])
        family = GaugeMetricFamily(
            "node_systemd_unit_state", "Systemd unit", labels=("name", "state", "type")
        )
        for unit in parse_show(output):
            name = unit.get("Id", "")
            if not name:
                raise ValueError("systemctl show returned a unit without Id")
            active = unit.get("ActiveState", "")
            unit_type = unit.get("Type", "")
            for state in STATES:
                family.add_metric((name, state, unit_type), 1.0 if state == active else 0.0)
        yield family
