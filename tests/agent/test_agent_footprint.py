"""What keeps the agent small: its own process collector, version lookup and imports.

The agent no longer imports prometheus_client (it stays the reference here); its own
replacements must export what prometheus_client's did, and the modules it leaves out to stay
under 25 MB of RSS must stay out (bench/README.md, "Agent").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest
from prometheus_client.exposition import gzip_accepted as reference_gzip_accepted
from prometheus_client.process_collector import ProcessCollector as ReferenceProcessCollector

from exporter_agent.process import ProcessCollector
from exporter_agent.server import gzip_accepted
from exporter_agent.version import SOURCE_TREE_VERSION, agent_version
from tests.agent.conftest import REPO
from tests.helpers import free_port

# Imported by prometheus_client, or by what the agent needs only on some paths (heartbeat,
# basic auth), or by the dataclasses/importlib.metadata the agent no longer uses.
LEFT_OUT = ("prometheus_client", "psutil", "urllib.request", "hmac", "hashlib", "dataclasses",
            "inspect", "importlib.metadata")  # fmt: skip


def imported_after(statement: str, env: dict[str, str] | None = None) -> dict[str, bool]:
    """Which of LEFT_OUT a fresh interpreter has imported after ``statement``."""
    report = f"print(json.dumps({{m: m in sys.modules for m in {LEFT_OUT!r}}}))"
    probe = f"{statement}; import json, sys; {report}"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True, env=env).stdout  # fmt: skip
    return json.loads(out)


def test_the_agent_does_not_import_prometheus_client():
    out = subprocess.run(
        [sys.executable, "-c",
         "import exporter_agent.__main__, sys; print('prometheus_client' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == "False"


def test_an_exporter_only_agent_imports_none_of_the_left_out_modules():
    statement = (
        "from exporter_agent.__main__ import *; "
        "from exporter_agent.config import load_settings; "
        "from exporter_agent.collectors import build_collectors; "
        "from exporter_agent.exporter import AgentCollector, build_registry; "
        "from exporter_agent.exposition import encode; "
        "s = load_settings([], env={}); "
        "encode(build_registry(AgentCollector(build_collectors(s.collectors, "
        "s.collector_options), 'v')).collect())"
    )
    assert imported_after(statement) == dict.fromkeys(LEFT_OUT, False)


def heartbeat_imports(tmp_path, **proxy_env: str) -> dict[str, bool]:
    """Which of LEFT_OUT an agent has imported after one heartbeat (wired as ``run`` wires it)
    to a port nothing listens on, with no proxy variables but ``proxy_env``."""
    statement = (
        "from exporter_agent.__main__ import _heartbeat_loop; "
        "from exporter_agent.config import load_settings; "
        "from exporter_agent.collectors import build_collectors; "
        "from exporter_agent.heartbeat_state import HeartbeatState; "
        f"s = load_settings(['--control-url', 'http://127.0.0.1:{free_port()}', '--api-key', "
        f"'k', '--state-dir', {str(tmp_path)!r}], env={{}}); "
        "collectors = build_collectors(s.collectors, s.collector_options); "
        "_heartbeat_loop(s, HeartbeatState(), 'v', collectors).run_once()"
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return imported_after(statement, {**env, **proxy_env})


def test_a_heartbeating_agent_imports_neither_psutil_nor_urllib_request(tmp_path):
    imported = heartbeat_imports(tmp_path)
    assert imported["psutil"] is False
    assert imported["urllib.request"] is False


def test_behind_a_proxy_the_heartbeat_imports_urllib_request(tmp_path):
    imported = heartbeat_imports(tmp_path, http_proxy=f"http://127.0.0.1:{free_port()}")
    assert imported["urllib.request"] is True
    assert imported["psutil"] is False


def test_basic_auth_still_compares_in_constant_time():
    import hmac

    from exporter_agent.server import BasicAuth

    auth = BasicAuth("prom", "sekrit")
    assert auth.allows("Basic cHJvbTpzZWtyaXQ=")
    assert not auth.allows("Basic cHJvbTpvdGhlcg==")
    assert auth._compare is hmac.compare_digest


# --- process_* ------------------------------------------------------------------------------


def families_by_name(collector) -> dict:
    return {family.name: family for family in collector.collect()}


def test_process_families_match_prometheus_clients():
    ours = families_by_name(ProcessCollector())
    theirs = families_by_name(ReferenceProcessCollector(registry=None))
    assert list(ours) == list(theirs)
    for name, family in ours.items():
        reference = theirs[name]
        assert (family.type, family.documentation) == (reference.type, reference.documentation)
        assert [s.name for s in family.samples] == [s.name for s in reference.samples]
        assert [s.labels for s in family.samples] == [s.labels for s in reference.samples]
        ours_value, their_value = family.samples[0].value, reference.samples[0].value
        if name == "process_resident_memory_bytes":
            assert ours_value == pytest.approx(their_value, rel=0.05)
        elif name == "process_cpu_seconds_total":
            assert ours_value == pytest.approx(their_value, abs=0.5)
        elif name == "process_open_fds":
            assert ours_value == pytest.approx(their_value, abs=2)
        else:
            assert ours_value == their_value, name


def fake_proc(tmp_path, *, stat=True, limits=True):
    """A /proc with btime and one process ``42``: 3 open fds, limits 1024."""
    (tmp_path / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    process = tmp_path / "42"
    (process / "fd").mkdir(parents=True)
    for fd in ("0", "1", "2"):
        (process / "fd" / fd).write_text("")
    if stat:
        fields = ["S", *["0"] * 8, "250", "0", "130", "70", *["0"] * 6, "50000", "1048576", "300"]
        (process / "stat").write_text("42 (odd name) with spaces) " + " ".join(fields) + "\n")
    if limits:
        (process / "limits").write_text(
            "Limit                     Soft Limit           Hard Limit           Units\n"
            "Max open files            1024                 4096                 files\n"
        )
    return tmp_path


def values(collector) -> dict:
    return {s.name: s.value for family in collector.collect() for s in family.samples}


def test_process_values_come_from_the_given_proc_tree(tmp_path):
    collector = ProcessCollector(str(fake_proc(tmp_path)), "42")
    reference = ReferenceProcessCollector(proc=str(tmp_path), pid=lambda: "42", registry=None)
    assert values(collector) == {s.name: s.value for f in reference.collect() for s in f.samples}
    assert values(collector)["process_open_fds"] == 3
    assert values(collector)["process_max_fds"] == 1024


def test_an_unreadable_proc_exports_no_process_metrics(tmp_path):
    assert values(ProcessCollector(str(tmp_path / "absent"))) == {}


def test_a_vanished_stat_file_leaves_out_only_its_families(tmp_path):
    collector = ProcessCollector(str(fake_proc(tmp_path, stat=False)), "42")
    assert set(values(collector)) == {"process_open_fds", "process_max_fds"}


# --- version and gzip ----------------------------------------------------------------------


def test_version_is_what_importlib_metadata_finds():
    assert agent_version() == metadata.version("homelabcmd")


def test_version_is_read_from_the_first_distribution_on_the_path(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "homelabcmd-2.3.4.dist-info").mkdir(parents=True)
    (first / "homelabcmd-2.3.4.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: homelabcmd\nVersion: 2.3.4\n\nVersion: not this\n"
    )
    (second / "HomeLabCmd.egg-info").mkdir(parents=True)
    (second / "HomeLabCmd.egg-info" / "PKG-INFO").write_text("Name: HomeLabCmd\nVersion: 9.9\n")
    (first / "other-1.0.dist-info").mkdir()
    assert agent_version([str(tmp_path / "absent"), str(first), str(second)]) == "2.3.4"
    assert agent_version([str(second)]) == "9.9"
    assert agent_version([str(tmp_path / "absent")]) == SOURCE_TREE_VERSION


@pytest.mark.parametrize(
    "header",
    ["", "gzip", "GZIP", "deflate, gzip;q=0.5", "gzip;q=0", "x-gzip", "deflate", " gzip , br",
     "identity;q=1, *;q=0", "gzipped"],
)  # fmt: skip
def test_gzip_accepted_reads_accept_encoding_as_prometheus_client_does(header):
    assert gzip_accepted(header) is reference_gzip_accepted(header)
