"""The agent as a process: start-up, exporter-only mode, serving while control is down, SIGTERM."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.agent.conftest import agent_env, http_get
from tests.helpers import free_port, wait_until


def samples(url: str) -> dict:
    body = http_get(url + "/metrics")[2].decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_exporter_only_mode_serves_metrics_without_heartbeat_series(start_agent):
    agent = start_agent()
    values = samples(agent.url)
    assert ("node_load1", ()) in values
    assert not any(name.startswith("homelab_agent_heartbeat") for name, _ in values)
    assert "exporter-only mode" in agent.log()


def test_metrics_keep_serving_while_control_is_unreachable(start_agent):
    dead = f"http://127.0.0.1:{free_port()}"
    agent = start_agent("--control-url", dead, "--backoff-cap", "0.2", "--log-level", "debug",
                        env=agent_env(HOMELAB_API_KEY="k"))  # fmt: skip
    # Several retries happen (debug lines) while the outage is logged at warning level once.
    wait_until(lambda: agent.log().count("heartbeat: unavailable") >= 3)
    values = samples(agent.url)
    assert values[("homelab_agent_heartbeat_success", ())] == 0
    assert values[("homelab_agent_last_heartbeat_timestamp_seconds", ())] == 0
    assert values[("homelab_agent_collector_success", (("collector", "meminfo"),))] == 1
    assert agent.log().count("control unavailable") == 1, "a lasting outage is logged once"


def test_sigterm_stops_cleanly_with_status_0(start_agent):
    agent = start_agent("--control-url", f"http://127.0.0.1:{free_port()}",
                        env=agent_env(HOMELAB_API_KEY="k"))  # fmt: skip
    assert agent.stop() == 0
    assert "stopping" in agent.log()
    assert "Traceback" not in agent.log()


def test_port_in_use_is_a_clear_error(start_agent):
    first = start_agent()
    second = start_agent("--listen-port", str(first.port), wait=False)
    assert second.popen.wait(timeout=30) == 1
    assert f"cannot listen on 127.0.0.1:{first.port}" in second.log()


def test_api_key_never_appears_in_logs(start_agent):
    agent = start_agent("--control-url", f"http://127.0.0.1:{free_port()}", "--log-level",
                        "debug", env=agent_env(HOMELAB_API_KEY="very-secret-key"))  # fmt: skip
    wait_until(lambda: "control unavailable" in agent.log())
    assert "very-secret-key" not in agent.log()


def test_a_state_dir_it_cannot_write_is_an_error_at_start_and_it_runs_on(start_agent, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "state"  # not a directory anyone can make, root included
    env = agent_env(HOMELAB_API_KEY="k", HOMELAB_STATE_DIR=str(state))
    agent = start_agent("--control-url", f"http://127.0.0.1:{free_port()}", env=env)
    wait_until(lambda: "control unavailable" in agent.log())
    assert f"ERROR exporter_agent.identity: cannot write the state directory {state}" in agent.log()
    assert "kept in memory only" in agent.log()
    assert http_get(agent.url + "/metrics")[0] == 200
