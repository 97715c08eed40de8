"""The textfile collector: ``*.prom`` files dropped by cron scripts, as node_exporter reads them.

Each test writes its files into its own directory; the last one runs the real
prometheus-node-exporter on the same directory and wants the same series.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter_agent.collectors import build_collectors
from exporter_agent.collectors.textfile import MAX_FILE_BYTES, TextfileCollector
from exporter_agent.config import load_settings
from exporter_agent.exporter import AgentCollector, build_registry
from exporter_agent.exposition import encode
from tests.agent.conftest import SNAPSHOT, snapshot_options
from tests.agent.test_agent_collectors_hw import agent_series, node_exporter_series

BACKUP = """\
# HELP backup_last_success_timestamp_seconds When the last backup finished.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds{job="photos"} 1.7639e+09
backup_last_success_timestamp_seconds{job="mail"} 1.7638e+09
"""
SMART = """\
# TYPE smartmon_device_smart_healthy gauge
smartmon_device_smart_healthy{disk="/dev/sda",type="sat"} 1
smartmon_device_smart_healthy{disk="/dev/nvme0",type="nvme"} 1
"""


def registry_for(directory: Path | str, names=("textfile",)) -> CollectorRegistry:
    """A fresh registry with the textfile collector (and ``names``) on ``directory``."""
    options = snapshot_options(values={"textfile_directory": str(directory)})
    return build_registry(AgentCollector(build_collectors(names, options), "test"), False)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def scrape_error(registry: CollectorRegistry) -> float | None:
    return value(registry, "node_textfile_scrape_error")


def families(registry: CollectorRegistry) -> dict:
    return {family.name: family for family in registry.collect()}


def write(directory: Path, name: str, text: str, mtime: int = 1_763_000_000) -> Path:
    path = directory / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def test_prom_files_are_exported_with_their_mtime_and_no_error(tmp_path):
    backup = write(tmp_path, "backup.prom", BACKUP, mtime=1_763_000_123)
    write(tmp_path, "smartmon.prom", SMART)
    write(tmp_path, "notes.txt", "not metrics\n")
    registry = registry_for(tmp_path)
    name = "backup_last_success_timestamp_seconds"
    assert value(registry, name, job="photos") == 1.7639e09
    assert families(registry)[name].documentation == "When the last backup finished."
    assert value(registry, "smartmon_device_smart_healthy", disk="/dev/sda", type="sat") == 1
    assert value(registry, "node_textfile_mtime_seconds", file=str(backup)) == 1_763_000_123
    mtimes = {s.labels["file"] for s in families(registry)["node_textfile_mtime_seconds"].samples}
    assert mtimes == {str(backup), str(tmp_path / "smartmon.prom")}  # not notes.txt
    assert scrape_error(registry) == 0
    assert value(registry, "homelab_agent_collector_success", collector="textfile") == 1


def test_a_file_that_does_not_parse_sets_the_error_and_the_others_still_count(tmp_path):
    write(tmp_path, "backup.prom", BACKUP)
    broken = write(tmp_path, "broken.prom", "garbage{{\n")
    registry = registry_for(tmp_path)
    assert scrape_error(registry) == 1
    assert value(registry, "backup_last_success_timestamp_seconds", job="mail") == 1.7638e09
    assert value(registry, "node_textfile_mtime_seconds", file=str(broken)) is None
    # The collector itself worked: the error metric carries the bad file.
    assert value(registry, "homelab_agent_collector_success", collector="textfile") == 1


@pytest.mark.parametrize(
    "text",
    [
        "ts_metric 1 1700000000000\n",  # client-side timestamps are refused, as node_exporter
        "# TYPE q info\nq 1\n",  # a type text format 0.0.4 does not know
        "# TYPE s stateset\ns 1\n",
        'dup{a="1",a="2"} 1\n',
        "twice 1\ntwice 2\n",  # the same series twice
    ],
)
def test_files_node_exporter_refuses_are_skipped_whole(tmp_path, text):
    write(tmp_path, "bad.prom", "good_metric 1\n" + text)
    registry = registry_for(tmp_path)
    assert scrape_error(registry) == 1
    assert value(registry, "good_metric") is None


def test_missing_help_names_the_file_and_every_sample_gets_every_label(tmp_path):
    path = write(tmp_path, "a.prom", 'x{a="1"} 1\nx{b="2"} 2\n')
    registry = registry_for(tmp_path)
    x = families(registry)["x"]
    assert x.documentation == f"Metric read from {path}"
    assert x.type == "unknown"  # written "untyped"
    assert {tuple(sorted(s.labels.items())) for s in x.samples} == {
        (("a", "1"), ("b", "")),
        (("a", ""), ("b", "2")),
    }
    assert b"# TYPE x untyped\n" in encode([x])


def test_a_family_the_agent_exports_itself_is_skipped_with_the_error(tmp_path):
    write(tmp_path, "old-apt.prom", "node_load1 99\n")
    write(tmp_path, "agent.prom", "homelab_agent_build_info 1\nprocess_open_fds 3\n")
    write(tmp_path, "backup.prom", BACKUP)
    registry = registry_for(tmp_path, ["loadavg", "textfile"])
    load1 = [s.value for s in families(registry)["node_load1"].samples]
    assert load1 == [float((SNAPSHOT / "proc" / "loadavg").read_text().split()[0])]
    assert value(registry, "process_open_fds") is None
    assert scrape_error(registry) == 1
    assert value(registry, "backup_last_success_timestamp_seconds", job="mail") == 1.7638e09


def test_a_family_in_several_files_merges_and_a_conflicting_one_is_skipped(tmp_path):
    a = write(tmp_path, "a.prom", 'x{job="a"} 1\n')
    b = write(tmp_path, "b.prom", 'x{job="b"} 2\n')
    registry = registry_for(tmp_path)
    assert value(registry, "x", job="a") == 1
    assert value(registry, "x", job="b") == 2
    assert families(registry)["x"].documentation == f"Metric read from {a}, {b}"
    assert scrape_error(registry) == 0
    write(tmp_path, "c.prom", '# TYPE x gauge\nx{job="c"} 3\n')  # another type
    write(tmp_path, "d.prom", 'x{job="a"} 4\n')  # a series a.prom already has
    registry = registry_for(tmp_path)
    assert value(registry, "x", job="c") is None
    assert value(registry, "x", job="a") == 1
    assert scrape_error(registry) == 1


def test_a_counter_written_without_total_keeps_its_name(tmp_path):
    write(tmp_path, "backup.prom", "# TYPE backup_runs counter\nbackup_runs 5\n")
    write(tmp_path, "done.prom", "# TYPE done_total counter\ndone_total 7\n")
    registry = registry_for(tmp_path)
    assert value(registry, "backup_runs") == 5
    assert value(registry, "backup_runs_total") is None
    assert value(registry, "done_total") == 7
    assert families(registry)["done"].type == "counter"


def test_oversized_files_and_fifos_are_skipped_without_blocking(tmp_path):
    write(tmp_path, "huge.prom", "# many series\n" + "x 1\n" * (MAX_FILE_BYTES // 4 + 1))
    os.mkfifo(tmp_path / "fifo.prom")  # nobody writes: opening it normally would block
    write(tmp_path, "backup.prom", BACKUP)
    registry = registry_for(tmp_path)
    assert scrape_error(registry) == 1
    assert value(registry, "x") is None
    assert value(registry, "backup_last_success_timestamp_seconds", job="mail") == 1.7638e09


def test_without_a_directory_nothing_is_read_and_there_is_no_error(tmp_path):
    registry = registry_for("")
    names = {f.name for f in registry.collect() if f.name.startswith("node_textfile")}
    assert names == {"node_textfile_scrape_error"}
    assert scrape_error(registry) == 0


def test_a_missing_directory_is_an_error(tmp_path):
    assert scrape_error(registry_for(tmp_path / "nope")) == 1


def test_a_glob_reads_every_matching_directory(tmp_path):
    for name, text in (("one", BACKUP), ("two", SMART)):
        (tmp_path / name).mkdir()
        write(tmp_path / name, f"{name}.prom", text)
    registry = registry_for(tmp_path / "*")
    assert value(registry, "backup_last_success_timestamp_seconds", job="mail") == 1.7638e09
    assert value(registry, "smartmon_device_smart_healthy", disk="/dev/sda", type="sat") == 1


def test_a_rewritten_file_is_read_again(tmp_path):
    collector = TextfileCollector(str(tmp_path))
    write(tmp_path, "backup.prom", "backup_ok 1\n")

    def backup_ok():
        return [s.value for f in collector.collect() if f.name == "backup_ok" for s in f.samples]

    assert backup_ok() == [1]
    # The way scripts should write: a new file renamed over the old one, same second.
    write(tmp_path, "backup.prom.tmp", "backup_ok 0\n")
    os.replace(tmp_path / "backup.prom.tmp", tmp_path / "backup.prom")
    assert backup_ok() == [0]
    (tmp_path / "backup.prom").unlink()
    assert backup_ok() == []


def test_directory_flag_and_environment_variable():
    settings = load_settings(["--collector.textfile.directory", "/var/lib/node-exporter"], {})
    assert settings.collector_options.values["textfile_directory"] == "/var/lib/node-exporter"
    settings = load_settings([], {"HOMELAB_TEXTFILE_DIRECTORY": "/srv/prom"})
    assert settings.collector_options.values["textfile_directory"] == "/srv/prom"
    assert "textfile" in settings.collectors  # enabled by default, as in node_exporter


@pytest.mark.integration
def test_same_series_as_node_exporter_for_the_same_directory(tmp_path):
    files = tmp_path / "textfiles"
    files.mkdir()
    write(files, "backup.prom", BACKUP)
    write(files, "smartmon.prom", SMART)
    write(files, "a.prom", 'x{a="1"} 1\n# HELP done_total Done.\n# TYPE done_total counter\n'
          "done_total 7\n")  # fmt: skip
    write(files, "b.prom", 'x{b="2"} 2\n')
    write(files, "broken.prom", "# TYPE q info\nq 1\n")
    write(files, "stamped.prom", "ts_metric 1 1700000000000\n")
    theirs = node_exporter_series(
        tmp_path, "--collector.textfile", f"--collector.textfile.directory={files}"
    )
    options = snapshot_options(values={"textfile_directory": str(files)})
    ours = agent_series(options, ["textfile"])
    assert ours["node_textfile_scrape_error"][2] == [("node_textfile_scrape_error", [], 1.0)]
    assert len(ours["node_textfile_mtime_seconds"][2]) == 4
    assert ours == theirs
