"""prometheus.yml: valid for the real promtool and wired the way docker-compose runs it."""

from __future__ import annotations

from tests.prometheus.files import PROMETHEUS_YML, load_yaml, rule_files, run
from tests.prometheus.harness import prometheus_config


def _jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]}


def test_promtool_check_config_accepts_prometheus_yml_and_finds_every_rule_file(promtool, tmp_path):
    config = prometheus_config(
        tmp_path, control="control:8000", viewer_key="k", alertmanager="alertmanager:9093"
    )
    result = run([promtool, "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    for path in rule_files():
        assert str(path) in result.stdout, f"{path.name} not loaded:\n{result.stdout}"


def test_promtool_check_config_rejects_a_broken_config(promtool, tmp_path):
    """The check can fail: an http_sd block without a URL is refused."""
    config = prometheus_config(tmp_path, control="control:8000", viewer_key="k")
    config.write_text(config.read_text().replace("url: http://", "urll: http://"))
    assert run([promtool, "check", "config", str(config)]).returncode != 0


def test_rule_files_glob_resolves_to_the_rules_directory_from_the_config_directory():
    (pattern,) = load_yaml(PROMETHEUS_YML)["rule_files"]
    assert sorted(PROMETHEUS_YML.parent.glob(pattern)) == rule_files()
    assert rule_files()


def test_control_is_scraped_as_job_homelab_control():
    job = _jobs()["homelab-control"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["control:8000"]}]


def test_agents_are_discovered_through_controls_http_sd_with_a_bearer_credentials_file():
    job = _jobs()["homelab-agents"]
    assert "static_configs" not in job
    (sd,) = job["http_sd_configs"]
    assert sd["url"] == "http://control:8000/api/v1/prometheus/targets"
    assert sd["authorization"].get("type", "Bearer") == "Bearer"
    assert sd["authorization"]["credentials_file"].startswith("/")
    assert "credentials" not in sd["authorization"]  # never a key inline in the repo


def test_alerts_go_to_the_compose_alertmanager():
    (am,) = load_yaml(PROMETHEUS_YML)["alerting"]["alertmanagers"]
    assert am["static_configs"] == [{"targets": ["alertmanager:9093"]}]
