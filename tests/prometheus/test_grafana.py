"""Grafana provisioning and dashboards: wired to the compose stack, valid dashboard JSON, every
panel on the provisioned datasource, every template variable defined."""

from __future__ import annotations

import re
from itertools import combinations

import pytest

from tests.prometheus.files import (
    BUILTIN_VARIABLES,
    COMPOSE_YML,
    DASHBOARDS_DIR,
    GRAFANA_DASHBOARD_PROVIDERS,
    GRAFANA_DATASOURCES,
    dashboards,
    load_yaml,
    panels,
    variables_used,
)

DASHBOARDS = dashboards()
REQUIRED_TITLES = {"Fleet overview", "Host detail", "Remediation", "Power & cost"}


def _datasource() -> dict:
    (path,) = GRAFANA_DATASOURCES.glob("*.yml")
    (source,) = load_yaml(path)["datasources"]
    return source


def _grafana_mounts() -> dict[str, str]:
    """Host path → container path for the grafana service's bind mounts."""
    volumes = load_yaml(COMPOSE_YML)["services"]["grafana"]["volumes"]
    return dict(v.split(":")[:2] for v in volumes if v.startswith("./"))


def _data_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def test_datasource_is_the_compose_prometheus_with_a_fixed_uid():
    source = _datasource()
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["uid"]
    assert source.get("isDefault") is True


def test_provider_loads_the_directory_compose_mounts_dashboards_into():
    (path,) = GRAFANA_DASHBOARD_PROVIDERS.glob("*.yml")
    (provider,) = load_yaml(path)["providers"]
    assert provider["type"] == "file"
    mounts = _grafana_mounts()
    assert mounts["./dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_four_dashboards_exist_with_unique_uids():
    assert {d["title"] for d in DASHBOARDS.values()} == REQUIRED_TITLES
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_is_schema_39_with_unique_panel_ids_and_ref_ids(name):
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] == 39
    ids = [p["id"] for p in panels(dashboard)]
    assert len(set(ids)) == len(ids)
    for panel in _data_panels(dashboard):
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panels_fit_the_grid_without_overlapping(name):
    boxes = []
    for panel in panels(DASHBOARDS[name]):
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        boxes.append((panel["title"], pos))
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_and_query_uses_the_provisioned_datasource_by_uid(name):
    uid = _datasource()["uid"]
    dashboard = DASHBOARDS[name]
    for panel in _data_panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": uid}


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_template_variable_used_is_defined(name):
    dashboard = DASHBOARDS[name]
    defined = {v["name"] for v in dashboard["templating"]["list"]} | set(BUILTIN_VARIABLES)
    for panel in _data_panels(dashboard):
        for target in panel["targets"]:
            assert variables_used(target["expr"]) <= defined, (panel["title"], target["expr"])


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_links_point_at_existing_dashboards(name):
    uids = {d["uid"] for d in DASHBOARDS.values()}
    text = (DASHBOARDS_DIR / name).read_text()
    for uid in re.findall(r"/d/([a-z0-9-]+)", text):
        assert uid in uids


def _by_title(title: str) -> dict:
    return next(d for d in DASHBOARDS.values() if d["title"] == title)


def _exprs(title: str) -> str:
    return "\n".join(t["expr"] for p in _data_panels(_by_title(title)) for t in p["targets"])


def test_host_detail_is_templated_on_server_id_from_label_values():
    dashboard = _by_title("Host detail")
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "server_id"
    assert variable["type"] == "query"
    assert variable["definition"].startswith("label_values(")
    assert variable["definition"].endswith(", server_id)")
    for panel in _data_panels(dashboard):
        for target in panel["targets"]:
            assert 'server_id="$server_id"' in target["expr"], panel["title"]


@pytest.mark.parametrize(
    ("title", "metrics"),
    [
        (
            "Fleet overview",
            [
                "homelab_servers",
                "homelab_server_last_seen_timestamp_seconds",
                "node_cpu_seconds_total",
                "node_memory_MemAvailable_bytes",
                "node_filesystem_avail_bytes",
                "topk(",
                # Device health (seed 002): counts, each server's health, temperature, containers.
                "homelab_servers_by_health",
                "homelab_server_health",
                "node_hwmon_temp_celsius",
                "node_thermal_zone_temp",
                "homelab_agent_container_state",
                "homelab_agent_container_failed",
            ],
        ),
        (
            "Host detail",
            [
                "node_cpu_seconds_total",
                "node_memory_MemAvailable_bytes",
                "node_filesystem_avail_bytes",
                "node_network_receive_bytes_total",
                "node_load1",
                "node_hwmon_temp_celsius",
                "node_systemd_unit_state",
                # Device health (seed 002): a Pi's only sensor, containers, updates, health.
                "node_thermal_zone_temp",
                "homelab_agent_container_state",
                "homelab_agent_container_failed",
                "apt_upgrades_pending",
                "node_reboot_required",
                "homelab_server_health",
            ],
        ),
        (
            "Remediation",
            [
                "homelab_actions",
                "homelab_command_duration_seconds_bucket",
                "ALERTS",
                "homelab_alerts_received_total",
            ],
        ),
        ("Power & cost", ["homelab_server_power_watts", "homelab_server_cost_per_month"]),
    ],
)
def test_dashboard_shows_what_the_issue_asks_for(title, metrics):
    exprs = _exprs(title)
    assert [m for m in metrics if m not in exprs] == []


def _panel(dashboard: str, title: str) -> dict:
    return next(p for p in _data_panels(_by_title(dashboard)) if p["title"] == title)


def test_host_containers_table_lists_current_states_and_highlights_failed_ones():
    panel = _panel("Host detail", "Containers")
    exprs = [t["expr"] for t in panel["targets"]]
    assert any("homelab_agent_container_state" in e and e.endswith("== 1)") for e in exprs)
    assert any("homelab_agent_container_failed" in e for e in exprs)
    (failed,) = [
        o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "failed"
    ]
    properties = {p["id"]: p["value"] for p in failed["properties"]}
    assert properties["custom.cellOptions"] == {"type": "color-background"}
    (mapping,) = properties["mappings"]
    assert mapping["options"]["1"]["color"] == "red"


def test_fleet_health_counts_do_not_double_with_several_control_instances():
    """Every control process reports the same database: `max`, not `sum`, across them."""
    (target,) = _panel("Fleet overview", "Servers by health")["targets"]
    assert target["expr"] == "max by (health) (homelab_servers_by_health)"
