"""Protocol counters from /proc/net/{netstat,snmp,snmp6}, as node_exporter's ``netstat`` collector.

Exports ``node_netstat_<Protocol>_<Field>`` (untyped, node_exporter's camelCase names such as
``node_netstat_Tcp_InSegs``) for the fields ``--collector.netstat.fields`` selects.
"""

import contextlib
import os
import re
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import Metric, UnknownMetricFamily
from exporter_agent.options import Option, regex

# node_exporter 1.5's default, as Debian 12 ships it.
DEFAULT_FIELDS = (
    "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    "|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
    "|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    "|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)

FIELDS = Option(
    dest="netstat_fields",
    flag="--collector.netstat.fields",
    env="HOMELAB_NETSTAT_FIELDS",
    default=DEFAULT_FIELDS,
    help="regex of Protocol_Field names to export (node_exporter's default)",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (FIELDS,)


def parse_pairs(text: str, path: str) -> dict[str, dict[str, str]]:
    """Parse /proc/net/netstat or /proc/net/snmp: a header line, then a value line, per protocol."""
    stats: dict[str, dict[str, str]] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        names, numbers = header.split(), values.split()
        if len(names) != len(numbers) or not names or names[0] != numbers[0]:
            raise ValueError(f"field count mismatch in {path}: {header.split(':')[0]}")
        stats[names[0].rstrip(":")] = dict(zip(names[1:], numbers[1:], strict=True))
    if len(lines) % 2:
        raise ValueError(f"{path} ends with a header and no values")
    return stats


def parse_snmp6(text: str) -> dict[str, dict[str, str]]:
    """Parse /proc/net/snmp6 (``Ip6InOctets 123`` lines), splitting names after the first 6."""
    stats: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        protocol, six, name = parts[0].partition("6")
        if six:
            stats.setdefault(protocol + "6", {})[name] = parts[1]
    return stats


class NetstatCollector:
    """Exports ``node_netstat_*`` from the three files, filtered by a field-name regex."""

    def __init__(self, procfs: str = "/proc", fields: str = DEFAULT_FIELDS) -> None:
        net = os.path.join(procfs, "net")
        self._netstat = os.path.join(net, "netstat")
        self._snmp = os.path.join(net, "snmp")
        self._snmp6 = os.path.join(net, "snmp6")
        self._pattern = re.compile(fields)
        # The kernel's field names never change while it runs: match each name once.
        self._wanted: dict[str, bool] = {}

    def _read(self) -> dict[str, dict[str, str]]:
        stats = parse_pairs(read_text(self._netstat), self._netstat)
        stats.update(parse_pairs(read_text(self._snmp), self._snmp))
        # IPv6 disabled (no snmp6): node_exporter exports the rest.
        with contextlib.suppress(FileNotFoundError):
            stats.update(parse_snmp6(read_text(self._snmp6)))
        return stats

    def collect(self) -> Iterator[Metric]:
        """Yield one untyped family per selected field; raises OSError/ValueError on bad files."""
        wanted = self._wanted
        for protocol, fields in self._read().items():
            for name, text in fields.items():
                key = f"{protocol}_{name}"
                keep = wanted.get(key)
                if keep is None:
                    keep = wanted[key] = self._pattern.search(key) is not None
                if keep:
                    yield UnknownMetricFamily(
                        f"node_netstat_{key}", f"Statistic {protocol}{name}.", value=float(text)
                    )
