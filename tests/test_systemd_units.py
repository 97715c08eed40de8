"""The systemd units shipped in the wheels are valid units that start our own entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from tests.helpers import require_binary

pytestmark = pytest.mark.integration

UNITS = [
    ("exporter_agent", "homelab-agent.service", "/opt/homelab-agent/bin/homelab-agent"),
    ("control", "homelab-control.service", "/opt/homelab-control/bin/homelab-control"),
]


@pytest.mark.parametrize(("package", "name", "installed_binary"), UNITS)
def test_unit_is_shipped_and_passes_systemd_analyze_verify(
    tmp_path, package, name, installed_binary
):
    analyze = require_binary("systemd-analyze", "systemd-analyze (Debian package systemd)")
    text = resources.files(package).joinpath(name).read_text()
    assert f"ExecStart={installed_binary} " in text or f"ExecStart={installed_binary}\n" in text
    # verify checks that ExecStart is executable: point it at this venv's entry point.
    here = Path(sys.executable).with_name(Path(installed_binary).name)
    assert here.exists() or shutil.which(here.name), f"{here.name} is not installed"
    unit = tmp_path / name
    unit.write_text(text.replace(installed_binary, str(here)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_control_unit_keeps_its_database_and_ssh_key_where_the_docs_say():
    text = resources.files("control").joinpath("homelab-control.service").read_text()
    assert "StateDirectory=homelab-control" in text
    assert "Environment=HOMELAB_DATA_DIR=/var/lib/homelab-control" in text
    assert "LoadCredential=ssh_key:/etc/homelab-control/ssh_key" in text
    assert "EnvironmentFile=-/etc/homelab-control/env" in text
