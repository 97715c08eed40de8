"""docker-compose.yml and Dockerfile: valid for the real docker-compose (no daemon), and every
file, key and address the stack relies on lines up with prometheus.yml and alertmanager.yml."""

from __future__ import annotations

import configparser
import os
import re

import pytest
import yaml

from tests.prometheus.files import (
    ALERTMANAGER_YML,
    COMPOSE_ENV,
    COMPOSE_YML,
    DOCKERFILE,
    PROMETHEUS_YML,
    REPO,
    load_yaml,
    run,
)

SERVICES = {"secrets", "control", "agent", "prometheus", "alertmanager", "grafana"}


def _compose(docker_compose, *args: str, env: dict[str, str]) -> object:
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    return run([docker_compose, "-f", str(COMPOSE_YML), *args], env={**clean, **env}, cwd=REPO)


@pytest.fixture(scope="module")
def resolved(docker_compose) -> dict:
    """`docker-compose config` output: the file as Compose itself understands it."""
    result = _compose(docker_compose, "config", env=COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _mounts(service: dict) -> dict[str, str]:
    """Container path → source (absolute host path or volume name)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            out[target] = source
    return out


def test_docker_compose_config_is_valid(docker_compose):
    result = _compose(docker_compose, "config", "-q", env=COMPOSE_ENV)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(COMPOSE_ENV))
def test_compose_refuses_to_start_without_each_key(docker_compose, missing):
    """No default credentials ship with the stack."""
    env = {k: v for k, v in COMPOSE_ENV.items() if k != missing}
    result = _compose(docker_compose, "config", "-q", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_stack_has_control_prometheus_alertmanager_grafana_and_a_demo_agent(resolved):
    assert set(resolved["services"]) == SERVICES


def test_control_keeps_sqlite_in_a_named_volume(resolved):
    control = resolved["services"]["control"]
    data_dir = control["environment"]["HOMELAB_DATA_DIR"]
    assert _mounts(control)[data_dir] in resolved["volumes"]
    assert "HOMELAB_DATABASE_URL" not in control["environment"]  # SQLite in the data dir


def test_control_gets_all_three_keys_and_the_agent_uses_the_agent_key(resolved):
    env = resolved["services"]["control"]["environment"]
    for scope in ("OPERATOR", "AGENT", "VIEWER", "ALERTS"):
        assert env[f"HOMELAB_{scope}_KEY"] == COMPOSE_ENV[f"HOMELAB_{scope}_KEY"]
    agent = resolved["services"]["agent"]["environment"]
    assert agent["HOMELAB_API_KEY"] == COMPOSE_ENV["HOMELAB_AGENT_KEY"]
    assert agent["HOMELAB_CONTROL_URL"] == "http://control:8000"


def test_control_and_agent_run_the_one_image_with_the_two_commands(resolved):
    control, agent = resolved["services"]["control"], resolved["services"]["agent"]
    assert control["image"] == agent["image"]
    assert control["command"][:4] == ["homelab-control", "serve", "--host", "0.0.0.0"]
    assert agent["command"] == ["homelab-agent"]


def test_prometheus_reads_the_repo_config_and_rules_where_rule_files_points(resolved):
    mounts = _mounts(resolved["services"]["prometheus"])
    config_path = next(
        a.split("=", 1)[1]
        for a in resolved["services"]["prometheus"]["command"]
        if a.startswith("--config.file=")
    )
    assert mounts[config_path] == str(PROMETHEUS_YML)
    (pattern,) = load_yaml(PROMETHEUS_YML)["rule_files"]
    rules_dir = os.path.dirname(os.path.join(os.path.dirname(config_path), pattern))
    assert mounts[rules_dir] == str(REPO / "prometheus" / "rules")


def test_alertmanager_reads_the_repo_config(resolved):
    service = resolved["services"]["alertmanager"]
    config_path = next(
        a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.file=")
    )
    assert _mounts(service)[config_path] == str(ALERTMANAGER_YML)


def test_credentials_files_are_written_by_the_secrets_service_into_the_mounted_volumes(resolved):
    """Prometheus and Alertmanager read their Bearer keys from files the `secrets` service
    writes from the same environment variables control uses."""
    services = resolved["services"]
    secrets = services["secrets"]
    script = "\n".join(secrets["command"])
    written = dict(re.findall(r'"\$\$?(HOMELAB_\w+_KEY)" > (\S+)', script))
    secret_mounts = {source: target for target, source in _mounts(secrets).items()}

    def check(service: str, credentials_file: str, key: str) -> None:
        directory, filename = os.path.split(credentials_file)
        volume = _mounts(services[service])[directory]
        assert written[key] == f"{secret_mounts[volume]}/{filename}"
        assert services[service]["depends_on"]["secrets"]["condition"] == (
            "service_completed_successfully"
        )

    (sd,) = next(
        j for j in load_yaml(PROMETHEUS_YML)["scrape_configs"] if j["job_name"] == "homelab-agents"
    )["http_sd_configs"]
    check("prometheus", sd["authorization"]["credentials_file"], "HOMELAB_VIEWER_KEY")
    (hook,) = load_yaml(ALERTMANAGER_YML)["receivers"][0]["webhook_configs"]
    check(
        "alertmanager",
        hook["http_config"]["authorization"]["credentials_file"],
        "HOMELAB_ALERTS_KEY",  # scope alerts: the webhook only, never the operator key
    )
    assert secrets["environment"]["HOMELAB_VIEWER_KEY"] == COMPOSE_ENV["HOMELAB_VIEWER_KEY"]
    assert secrets["environment"]["HOMELAB_ALERTS_KEY"] == COMPOSE_ENV["HOMELAB_ALERTS_KEY"]
    assert "HOMELAB_OPERATOR_KEY" not in secrets["environment"]
    assert "HOMELAB_OPERATOR_KEY" not in services["alertmanager"].get("environment", {})


def test_config_addresses_are_compose_service_names(resolved):
    services = resolved["services"]
    text = PROMETHEUS_YML.read_text() + ALERTMANAGER_YML.read_text()
    for host, port in set(re.findall(r"(?:https?://)?\b([a-z][a-z-]*):(\d{4})\b", text)):
        assert host in services, f"{host}:{port} is not a compose service"
    assert "8000:8000" in str(services["control"]["ports"])


def test_published_ports_default_to_localhost(resolved):
    for name, service in resolved["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", name


def test_dockerfile_builds_one_python_311_slim_image_for_control_and_agent():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'pip install ".[control,agent]"' in text
    assert 'CMD ["homelab-control", "serve", "--host", "0.0.0.0"]' in text
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in source.split():
            if name != "README.md":  # the lead's file; setup.cfg needs it too
                assert (REPO / name).exists(), name
    assert re.search(r"^USER \w+", text, re.M), "the image should not run as root"


def test_dockerfile_commands_are_the_packages_console_scripts():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert re.search(r"^homelab-control\s*=", scripts, re.M)
    assert re.search(r"^homelab-agent\s*=", scripts, re.M)
    extras = setup["options.extras_require"]
    assert "control" in extras and "agent" in extras
