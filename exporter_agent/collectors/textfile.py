"""Metrics from ``*.prom`` files, as node_exporter's ``textfile`` collector.

Cron jobs and timers drop ``*.prom`` files (text exposition format) into one directory —
smartmon, backup results, apt — and every scrape exports their families with
``node_textfile_mtime_seconds{file}`` per file read and ``node_textfile_scrape_error`` (1 when
any file could not be read or parsed). Set the directory with
``--collector.textfile.directory`` (a glob works, as in node_exporter); without one nothing is
read and the error is 0.

Like node_exporter, a file with client-side timestamps or a TYPE the text format 0.0.4 does
not know (info, stateset, …) is skipped whole, a missing HELP becomes "Metric read from
<path>", and samples of one family get every label the family uses (empty where absent).
Unlike it:

* a family whose name the agent itself exports this scrape (``node_reboot_required`` from an
  old ``apt.sh`` beside the packages collector) is left out and sets the error, where
  node_exporter drops it with only a log line;
* a file larger than ``MAX_FILE_BYTES`` or that is not a regular file is skipped with the
  error set, so a runaway script or a FIFO cannot stall or bloat the scrape;
* a file is parsed again only when it changes (inode, size or mtime), not every scrape;
* a counter written without the ``_total`` suffix keeps its name but is exported untyped,
  since the data model (prometheus_client's, ``exporter_agent.metrics``) has no counter
  without ``_total``;
* a metric or label name outside Prometheus's ASCII names (a quoted UTF-8 name) is refused,
  as node_exporter 1.5 refuses it (``collectors/textformat.py`` says how it reads a file).
"""

import glob
import logging
import os
import stat
from collections.abc import Container, Iterator
from typing import NamedTuple

from exporter_agent.collectors.textformat import parse_families
from exporter_agent.metrics import GaugeMetricFamily, Metric
from exporter_agent.options import Option

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024
# Types text format 0.0.4 knows; the data model calls untyped "unknown".
TEXT_TYPES = frozenset(("counter", "gauge", "summary", "histogram", "unknown"))
# Families the agent always exports itself, besides whatever the other collectors yield.
RESERVED_PREFIXES = ("homelab_agent_", "node_scrape_collector_", "node_textfile_", "process_")

# This collector's settings; the COLLECTORS table hands them to config's parser.
DIRECTORY = Option(
    dest="textfile_directory",
    flag="--collector.textfile.directory",
    env="HOMELAB_TEXTFILE_DIRECTORY",
    default="",
    help="directory (or glob) of *.prom files to export, as node_exporter's textfile collector",
    metavar="DIR",
)
OPTIONS = (DIRECTORY,)


class TextfileError(ValueError):
    """A ``*.prom`` file that cannot be exported; the message names the file and why."""


class ParsedFile(NamedTuple):
    """One file's families, and what identifies the version of the file they came from."""

    key: tuple[int, int, int, int]  # device, inode, size, mtime in ns
    mtime: int
    families: tuple[Metric, ...]


def parse_textfile(text: str, path: str) -> list[Metric]:
    """The families of one file's ``text``, as node_exporter would export them.

    A family without HELP keeps an empty documentation here; the collector gives it
    node_exporter's "Metric read from <path>" when it merges the files. Raises TextfileError
    for what node_exporter refuses (a syntax error, a timestamp, an unknown TYPE).
    """
    try:
        parsed = parse_families(text)
    except ValueError as exc:
        raise TextfileError(f"failed to parse textfile data from {path!r}: {exc}") from None
    written = _sample_names(text)
    families: dict[str, Metric] = {}
    for family in parsed:
        if family.type not in TEXT_TYPES:
            raise TextfileError(f"{path!r}: unknown metric type {family.type!r}")
        if any(sample.timestamp is not None for sample in family.samples):
            raise TextfileError(f"{path!r} contains unsupported client-side timestamps")
        if not family.samples:
            continue
        if (
            family.type == "counter"
            and family.name in written
            and family.name + "_total" not in written
        ):
            # The parser renamed the samples to NAME_total; keep the name that was written.
            family.type = "unknown"
            family.samples = [sample._replace(name=family.name) for sample in family.samples]
        earlier = families.get(family.name)
        if earlier is None:
            families[family.name] = family
        elif earlier.type == family.type == "unknown":
            # The parser starts a new untyped family at each change of label names.
            earlier.samples.extend(family.samples)
        else:
            raise TextfileError(f"{path!r}: {family.name} is declared twice")
    for family in families.values():
        _fill_labels(family)
        series = {(s.name, tuple(sorted(s.labels.items()))) for s in family.samples}
        if len(series) != len(family.samples):
            raise TextfileError(f"{path!r}: {family.name} repeats a series")
    return list(families.values())


def _sample_names(text: str) -> set[str]:
    """The metric name of every sample line, as written."""
    names = set()
    for line in text.splitlines():
        line = line.lstrip()
        if line and line[0] != "#":
            names.add(line.split("{", 1)[0].split(None, 1)[0] if line[0] != "{" else "")
    return names


def _fill_labels(family: Metric) -> None:
    """Give every sample every label name the family uses, empty where absent."""
    names = {name for sample in family.samples for name in sample.labels}
    if any(len(sample.labels) != len(names) for sample in family.samples):
        family.samples = [
            sample._replace(labels={name: sample.labels.get(name, "") for name in names})
            for sample in family.samples
        ]


class TextfileCollector:
    """Exports the families of ``*.prom`` files, their mtimes and ``node_textfile_scrape_error``."""

    def __init__(self, directory: str = "") -> None:
        self._directory = directory
        self._cache: dict[str, ParsedFile] = {}

    def collect(self) -> Iterator[Metric]:
        """Yield the files' families and the textfile metrics (nothing else is known taken)."""
        return self.collect_beside(frozenset())

    def collect_beside(self, taken: Container[str]) -> Iterator[Metric]:
        """Like ``collect``, leaving out (with the error set) families named in ``taken``.

        ``taken`` holds the family and sample names the agent's other collectors exported in
        this scrape; a textfile family clashing with one would make the exposition invalid.
        """
        errored = False
        merged: dict[str, Metric] = {}
        unhelped: dict[str, list[str]] = {}  # family -> the files it came from without HELP
        mtimes = GaugeMetricFamily(
            "node_textfile_mtime_seconds",
            "Unixtime mtime of textfiles successfully read.",
            labels=("file",),
        )
        cache: dict[str, ParsedFile] = {}
        for path in self._files():
            if path is None:
                errored = True
                continue
            try:
                parsed = self._read(path)
            except (OSError, TextfileError) as exc:
                log.error("textfile %s skipped: %s", path, exc)
                errored = True
                continue
            cache[path] = parsed
            mtimes.add_metric((path,), parsed.mtime)
            for family in parsed.families:
                if not _merge(merged, unhelped, family, taken, path):
                    errored = True
        self._cache = cache  # forget files that are gone
        for name, paths in unhelped.items():
            merged[name].documentation = "Metric read from " + ", ".join(paths)
        yield from merged.values()
        if mtimes.samples:
            yield mtimes
        yield GaugeMetricFamily(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            value=1.0 if errored else 0.0,
        )

    def _files(self) -> Iterator[str | None]:
        """Every ``*.prom`` path, sorted per directory; None for a directory that fails."""
        if not self._directory:
            return
        directories = sorted(glob.glob(self._directory)) or [self._directory]
        for directory in directories:
            try:
                names = sorted(os.listdir(directory))
            except OSError as exc:
                log.error("textfile directory %s cannot be read: %s", directory, exc)
                yield None
                continue
            yield from (os.path.join(directory, n) for n in names if n.endswith(".prom"))

    def _read(self, path: str) -> ParsedFile:
        # O_NONBLOCK: opening a FIFO someone left behind must not block the scrape.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise TextfileError(f"{path!r} is not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise TextfileError(f"{path!r} is larger than {MAX_FILE_BYTES} bytes")
            key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            cached = self._cache.get(path)
            if cached is not None and cached.key == key:
                return cached
            data = os.read(fd, MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:
            raise TextfileError(f"{path!r} is larger than {MAX_FILE_BYTES} bytes")
        families = parse_textfile(data.decode("utf-8", "replace"), path)
        return ParsedFile(key, info.st_mtime_ns // 1_000_000_000, tuple(families))


def _merge(
    merged: dict[str, Metric],
    unhelped: dict[str, list[str]],
    family: Metric,
    taken: Container[str],
    path: str,
) -> bool:
    """Add ``family`` from ``path`` to ``merged``; False (nothing added) when it cannot be.

    Families of the same name from several files merge when their type and HELP agree (or
    none has HELP) and no series repeats, as node_exporter's registry allows.
    """
    names = {family.name, *(sample.name for sample in family.samples)}
    if family.name.startswith(RESERVED_PREFIXES) or any(name in taken for name in names):
        log.error("textfile %s: %s is exported by the agent itself, skipped", path, family.name)
        return False
    existing = merged.get(family.name)
    if existing is None:
        merged[family.name] = Metric(family.name, family.documentation, family.type)
        merged[family.name].samples = list(family.samples)
    else:
        if existing.type != family.type or existing.documentation != family.documentation:
            log.error("textfile %s: %s differs from an earlier file's, skipped", path, family.name)
            return False
        seen = {(s.name, tuple(sorted(s.labels.items()))) for s in existing.samples}
        if any((s.name, tuple(sorted(s.labels.items()))) in seen for s in family.samples):
            log.error(
                "textfile %s: %s repeats an earlier file's series, skipped", path, family.name
            )
            return False
        existing.samples.extend(family.samples)
    if not family.documentation:
        unhelped.setdefault(family.name, []).append(path)
    return True
