"""Filesystem sizes via statvfs on each mount, as node_exporter's ``filesystem`` collector."""

import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

from exporter_agent.collectors.util import read_text
from exporter_agent.metrics import GaugeMetricFamily, Metric
from exporter_agent.options import Option, regex

# node_exporter 1.5's upstream defaults (Debian's build also hides /run, /mnt and /media;
# a homelab's data disks often live under /mnt, so we keep upstream's choice).
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|sysfs|tracefs)$"
)
# This collector's settings; the COLLECTORS table hands them to config's parser.
MOUNT_POINTS_EXCLUDE = Option(
    dest="mount_points_exclude",
    flag="--collector.filesystem.mount-points-exclude",
    env="HOMELAB_FILESYSTEM_MOUNT_POINTS_EXCLUDE",
    default=DEFAULT_MOUNT_POINTS_EXCLUDE,
    help="regex of mount points to ignore",
    convert=regex,
    metavar="REGEX",
)
FS_TYPES_EXCLUDE = Option(
    dest="fs_types_exclude",
    flag="--collector.filesystem.fs-types-exclude",
    env="HOMELAB_FILESYSTEM_FS_TYPES_EXCLUDE",
    default=DEFAULT_FS_TYPES_EXCLUDE,
    help="regex of filesystem types to ignore",
    convert=regex,
    metavar="REGEX",
)
OPTIONS = (MOUNT_POINTS_EXCLUDE, FS_TYPES_EXCLUDE)
LABELS = ("device", "fstype", "mountpoint")
# (metric name, help) in the order node_exporter documents them.
GAUGES = (
    ("node_filesystem_size_bytes", "Filesystem size in bytes."),
    ("node_filesystem_free_bytes", "Filesystem free space in bytes."),
    ("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
    ("node_filesystem_files", "Filesystem total file nodes."),
    ("node_filesystem_files_free", "Filesystem total free file nodes."),
    ("node_filesystem_readonly", "Filesystem read-only status."),
)


class Mount(NamedTuple):
    """One /proc/mounts entry: the labels node_exporter exports plus the mount options."""

    device: str
    mountpoint: str
    fstype: str
    options: str


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t")


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/<pid>/mounts, undoing the kernel's escaping of blanks in paths."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            raise ValueError(f"malformed mounts line: {line!r}")
        mounts.append(Mount(parts[0], _unescape(parts[1]), parts[2], parts[3]))
    return mounts


class FilesystemCollector:
    """Exports ``node_filesystem_{size,free,avail}_bytes``, ``files``, ``readonly`` per mount.

    Sizes come from ``statvfs`` with ``f_bsize`` as node_exporter's ``statfs`` does, so the
    bytes are identical. A mount whose statvfs never returned (a hung NFS server) is skipped
    with ``node_filesystem_device_error 1`` on later scrapes instead of hanging every scrape.
    """

    def __init__(
        self,
        procfs: str = "/proc",
        rootfs: str = "/",
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        mount_points_exclude: str = DEFAULT_MOUNT_POINTS_EXCLUDE,
        fs_types_exclude: str = DEFAULT_FS_TYPES_EXCLUDE,
    ) -> None:
        self._mount_files = (os.path.join(procfs, "1", "mounts"), os.path.join(procfs, "mounts"))
        self._rootfs = rootfs
        self._statvfs = statvfs
        self._mount_points_exclude = re.compile(mount_points_exclude)
        self._fs_types_exclude = re.compile(fs_types_exclude)
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def _read_mounts(self) -> list[Mount]:
        try:
            return parse_mounts(read_text(self._mount_files[0]))
        except PermissionError:
            # /proc/1 is hidden (hidepid): fall back to our own mount namespace's view.
            return parse_mounts(read_text(self._mount_files[1]))

    def _stat(self, mountpoint: str) -> os.statvfs_result | None:
        """statvfs a mount, or None when it fails or an earlier call on it is still stuck."""
        with self._lock:
            if mountpoint in self._in_flight:
                return None
            self._in_flight.add(mountpoint)
        try:
            return self._statvfs(os.path.join(self._rootfs, mountpoint.lstrip("/")))
        except OSError:
            return None
        finally:
            with self._lock:
                self._in_flight.discard(mountpoint)

    def collect(self) -> Iterator[Metric]:
        """Yield the filesystem gauges for every mount not excluded by the two regexes."""
        error = GaugeMetricFamily(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            labels=LABELS,
        )
        gauges = [GaugeMetricFamily(name, text, labels=LABELS) for name, text in GAUGES]
        seen = set()
        for mount in self._read_mounts():
            if self._mount_points_exclude.search(mount.mountpoint):
                continue
            if self._fs_types_exclude.search(mount.fstype):
                continue
            labels = (mount.device, mount.fstype, mount.mountpoint)
            if labels in seen:
                continue
            seen.add(labels)
            st = self._stat(mount.mountpoint)
            error.add_metric(labels, 0 if st is not None else 1)
            if st is None:
                continue
            readonly = 1 if "ro" in mount.options.split(",") else 0
            values = (
                st.f_blocks * st.f_bsize,
                st.f_bfree * st.f_bsize,
                st.f_bavail * st.f_bsize,
                st.f_files,
                st.f_ffree,
                readonly,
            )
            for gauge, value in zip(gauges, values, strict=True):
                gauge.add_metric(labels, float(value))
        yield error
        yield from gauges
