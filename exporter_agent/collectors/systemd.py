"""State of the systemd units the operator lists, via ``systemctl show``.

Unlike node_exporter (which talks D-Bus and lists every unit), the agent asks only for the
units named with ``--collector.systemd.units``, in one ``systemctl show`` call per scrape.
On a host without systemd the collector exports nothing and reports success. The same units
go into each heartbeat as ``services`` (one more call per heartbeat).
"""

import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence

from exporter_agent.metrics import GaugeMetricFamily, Metric
from exporter_agent.options import UNIT_NAME, Option, unit_names

STATES = ("activating", "active", "deactivating", "failed", "inactive")
PROPERTIES = "Id,ActiveState,SubState,Type"
# What the heartbeat contract accepts (control answers 422 to anything else).
ACTIVE_STATES = frozenset((*STATES, "reloading", "maintenance", "refreshing"))
SUB_STATE = re.compile(r"[a-z][a-z-]{0,31}")
MAX_SERVICES = 256
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

    def _show(self) -> list[dict[str, str]] | None:
        """The listed units' properties, or None without units or systemd (nothing runs)."""
        if not self._units or not self._booted():
            return None
        output = self._runner(["show", f"--property={PROPERTIES}", "--", *self._units])
        units = parse_show(output)
        if not all(unit.get("Id") for unit in units):
            raise ValueError("systemctl show returned a unit without Id")
        return units

    def services(self) -> list[dict[str, str]] | None:
        """The heartbeat's ``services``: ``{name, active_state, sub_state}`` per listed unit.

        None without listed units or without systemd. A unit whose states fall outside the
        heartbeat contract (a systemd newer than it) is left out rather than sent.
        """
        units = self._show()
        if units is None:
            return None
        services = []
        for unit in units[:MAX_SERVICES]:
            name, active, sub = unit["Id"], unit.get("ActiveState", ""), unit.get("SubState", "")
            if UNIT_NAME.fullmatch(name) and active in ACTIVE_STATES and SUB_STATE.fullmatch(sub):
                services.append({"name": name, "active_state": active, "sub_state": sub})
        return services

    def collect(self) -> Iterator[Metric]:
        """Yield one sample per listed unit and state; nothing without units or systemd."""
        units = self._show()
        if units is None:
            return
        family = GaugeMetricFamily(
            "node_systemd_unit_state", "Systemd unit", labels=("name", "state", "type")
        )
        for unit in units:
            name = unit["Id"]
            active = unit.get("ActiveState", "")
            unit_type = unit.get("Type", "")
            for state in STATES:
                family.add_metric((name, state, unit_type), 1.0 if state == active else 0.0)
        yield family
