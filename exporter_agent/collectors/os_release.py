"""Distribution identity from os-release(5), as node_exporter's ``os`` collector."""

import os
import re
from collections.abc import Iterator

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric

INFO_FIELDS = {
    "build_id": "BUILD_ID",
    "id": "ID",
    "id_like": "ID_LIKE",
    "image_id": "IMAGE_ID",
    "image_version": "IMAGE_VERSION",
    "name": "NAME",
    "pretty_name": "PRETTY_NAME",
    "variant": "VARIANT",
    "variant_id": "VARIANT_ID",
    "version": "VERSION",
    "version_codename": "VERSION_CODENAME",
    "version_id": "VERSION_ID",
}
_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")
_LINE = re.compile(r"^([A-Za-z0-9_]+)=(.*)$")


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release's shell-like ``KEY="value"`` lines (quotes and escapes removed)."""
    values = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        key, value = match.groups()
        quote = value[:1]
        if len(value) >= 2 and quote in ("'", '"') and value[-1] == quote:
            value = value[1:-1]
            if quote == '"':
                value = re.sub(r"\\([\\$\"`])", r"\1", value)
        values[key] = value
    return values


def os_release_paths(rootfs: str = "/") -> tuple[str, str]:
    """Return where os-release lives under ``rootfs``, in the order the spec says to try."""
    return (
        os.path.join(rootfs, "etc", "os-release"),
        os.path.join(rootfs, "usr", "lib", "os-release"),
    )


def read_os_release(paths: tuple[str, ...]) -> dict[str, str]:
    """Parse the first os-release file that exists; raise FileNotFoundError if none does."""
    for path in paths:
        try:
            return parse_os_release(read_text(path))
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"no os-release in {paths}")


class OsCollector:
    """Exports ``node_os_info{id,name,pretty_name,version_id,…} 1`` and ``node_os_version``."""

    def __init__(self, rootfs: str = "/") -> None:
        self._paths = os_release_paths(rootfs)
        self._cache: tuple[tuple, dict[str, str]] | None = None

    def _release(self) -> dict[str, str]:
        # The file changes on upgrades only: re-parse when its mtime or size does.
        for path in self._paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            key = (path, st.st_mtime_ns, st.st_size)
            if self._cache is None or self._cache[0] != key:
                self._cache = (key, parse_os_release(read_text(path)))
            return self._cache[1]
        raise FileNotFoundError(f"no os-release in {self._paths}")

    def collect(self) -> Iterator[Metric]:
        """Yield the info and version gauges."""
        release = self._release()
        info = GaugeMetricFamily(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, "
            "image_version, name, pretty_name, variant, variant_id, version, version_codename, "
            "version_id.",
            labels=tuple(INFO_FIELDS),
        )
        info.add_metric(tuple(release.get(key, "") for key in INFO_FIELDS.values()), 1)
        yield info
        match = _VERSION.match(release.get("VERSION_ID", ""))
        version = GaugeMetricFamily(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            labels=("id", "id_like", "name"),
        )
        version.add_metric(
            (release.get("ID", ""), release.get("ID_LIKE", ""), release.get("NAME", "")),
            float(match.group(0)) if match else 0.0,
        )
        yield version
