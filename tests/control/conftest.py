"""Fixtures for the remediation tests (action queue, dispatcher, execute, injection).

Commands run on this very host through the test sshd, so a test checks their side effects
(files written, processes left) locally. Nothing here changes the settings of other control
tests: a module opts in by overriding `settings_overrides` with `remediation_settings` (no SSH
needed) or `ssh_settings` (the real sshd).
"""

from __future__ import annotations

import pytest

from control.scheduler import ControlScheduler

COMMANDS = """
[commands.touch_marker]
argv = ["touch", "{workdir}/marker-{{name}}"]
[commands.touch_marker.params]
name = "^[a-z0-9][a-z0-9-]{{0,39}}$"

[commands.count_run]
argv = ["sh", "-c", "echo run >> {workdir}/count-{{name}}; sleep {{seconds}}"]
[commands.count_run.params]
name = "^[a-z0-9][a-z0-9-]{{0,39}}$"
seconds = "^[0-9]{{1,2}}$"

[commands.fail_loudly]
argv = ["sh", "-c", "echo broken >&2; exit 3"]

[commands.sleep_for]
argv = ["sleep", "{{seconds}}"]
[commands.sleep_for.params]
seconds = "^[0-9]{{1,3}}[.][0-9]{{1,9}}$"

[commands.deploy_app]
argv = ["touch", "{workdir}/deployed"]
changes_software = true

[commands.patient_wait]
argv = ["sh", "-c", "sleep 4; echo waited"]
timeout = 10

[commands.impatient_wait]
argv = ["sh", "-c", "sleep 2; echo waited"]
timeout = 1

[commands.echo_text]
argv = ["echo", "{{text}}"]
[commands.echo_text.params]
text = "^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
"""


@pytest.fixture
def workdir(tmp_path):
    """Where the whitelisted commands leave their marker files."""
    path = tmp_path / "remote"
    path.mkdir()
    return path


@pytest.fixture
def remediation_settings(workdir, tmp_path):
    """The test whitelist (COMMANDS), a 3 s command timeout and 5 executes per minute."""
    commands = tmp_path / "commands.toml"
    commands.write_text(COMMANDS.format(workdir=workdir))
    return {"commands_file": str(commands), "command_timeout": 3, "rate_limit": 5}


@pytest.fixture
def ssh_settings(remediation_settings, sshd):
    """`remediation_settings` plus the client key and known_hosts of the real test sshd."""
    return {
        **remediation_settings,
        "ssh_key_file": str(sshd.client_key_path),
        "ssh_known_hosts": str(sshd.known_hosts_path),
        "ssh_user": sshd.user,
    }


@pytest.fixture
def ssh_address(sshd):
    """Host and port the `server` fixture registers: the real test sshd."""
    return sshd.host, sshd.port


@pytest.fixture
def dispatching(app):
    """Run the scheduler (and its dispatcher) in-process, sharing the app's SSH pool."""
    context = app.extensions["homelab"]
    scheduler = ControlScheduler(context.settings, remediation=context.remediation)
    context.wake = scheduler.dispatcher.wake
    scheduler.start()
    yield scheduler
    scheduler.shutdown()


@pytest.fixture
def server(client, auth, ssh_address):
    """A registered server `box` at `ssh_address`."""
    host, port = ssh_address
    body = {"id": "box", "hostname": "box", "ip_address": host, "ssh_port": port}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    return "box"


@pytest.fixture
def box(client, auth):
    """A registered server `box` whose SSH port (1) refuses at once: for requests that must
    be refused or rate-limited before anything would run."""
    body = {"id": "box", "hostname": "box", "ip_address": "127.0.0.1", "ssh_port": 1}
    assert client.post("/api/v1/servers", json=body, headers=auth.operator).status_code == 201
    return "box"
