"""Coverage benchmark: how much of the community's node_exporter artefacts work on the agent.

The real prometheus-node-exporter (Debian's defaults) and the agent (its defaults) run side by
side on this box; one real Prometheus scrapes both (jobs ``node`` and ``agent``) every
``--interval`` seconds for ``--duration`` seconds. Then, for each job:

* every query of Grafana's "Node Exporter Full" (grafana.com 1860, the extract in
  ``bench/coverage/``) runs as a range query over the run with the dashboard variables filled
  in as Grafana would (``$node`` the target's instance, ``$job`` the job, ``$__rate_interval``
  four scrape intervals, ``$diskdevices`` its custom value): an expression "returns data" when
  any series has any point, and a panel "has data" when one of its visible queries does;
* every awesome-prometheus-alerts host rule counts when every metric its expression names has
  a series in that job (rules rarely fire on a healthy box, so "would it work" is the fair test);
* Prometheus's own ``scrape_samples_scraped`` and ``scrape_duration_seconds``, averaged.

    .venv/bin/python bench/dashboard_coverage.py            # 90 s of scraping, about 2 minutes
    .venv/bin/python bench/dashboard_coverage.py --gaps     # also list what only one side has
    .venv/bin/python bench/dashboard_coverage.py --smoke    # 12 s, for the tests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COVERAGE = REPO / "bench" / "coverage"
PANELS = COVERAGE / "node-exporter-full.panels.json"
RULES = COVERAGE / "awesome-prometheus-alerts-node-exporter.yml"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS = "/usr/bin/prometheus"
SIDES = (("node_exporter", "node"), ("agent", "agent"))  # (report name, Prometheus job)
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "offset", "inf", "nan"}  # fmt: skip


def free_port() -> int:
    """A currently unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Fill in Grafana variables (``$name`` and ``${name}``), longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    clauses = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(clauses, " ", text, flags=re.IGNORECASE)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == "." or text[match.end() :].lstrip().startswith("("):
            continue  # the exponent or unit of a number, or a function call
        if match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def load_artefacts() -> tuple[list[dict], list[dict]]:
    """The dashboard's non-row panels and the alert rules."""
    panels = [p for p in json.loads(PANELS.read_text())["panels"] if p["type"] != "row"]
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    return panels, rules


class Prometheus:
    """A tiny client for the HTTP API of the Prometheus this run started."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str | float) -> dict:
        """GET an API path; returns the decoded body (also for 4xx answers)."""
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read()
            try:
                return json.loads(body)
            except ValueError:  # "Service Unavailable" while Prometheus starts
                return {"status": "error", "error": body.decode(errors="replace")}

    def has_data(self, expr: str, start: float, end: float, step: float) -> bool:
        """Whether a range query returns any point (a bad query counts as no data)."""
        body = self.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        return body.get("status") == "success" and any(
            series.get("values") for series in body["data"]["result"]
        )

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None."""
        result = self.get("/api/v1/query", query=expr).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def names_with_series(self, job: str, start: float, end: float) -> set[str]:
        """Every metric name the job has a series of in the window."""
        body = self.get("/api/v1/label/__name__/values", **{"match[]": f'{{job="{job}"}}'},
                        start=start, end=end)  # fmt: skip
        return set(body.get("data", []))


def start(argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a process with its output in ``log`` (a file: a full pipe would block it)."""
    with open(log, "wb") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def wait_for(check, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it is true; exit with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def measure(prom: Prometheus, job: str, instance: str, window: tuple[float, float, float],
            panels: list[dict], rules: list[dict]) -> dict:  # fmt: skip
    """Coverage of one job over ``window`` = (start, end, step)."""
    begin, end, step = window
    variables = {"node": instance, "job": job, "__rate_interval": f"{int(step * 4)}s",
                 "diskdevices": "[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+"}  # fmt: skip
    with_data, panels_with_data = [], 0
    for panel in panels:
        visible = False
        for target in panel["targets"]:
            if prom.has_data(substitute(target["expr"], variables), begin, end, step):
                with_data.append(f"{panel['title']} [{target['refId']}]")
                visible = visible or not target.get("hide")
        panels_with_data += visible
    present = prom.names_with_series(job, begin, end)
    covered = [r["alert"] for r in rules if metric_names(r["expr"]) <= present]
    seconds = int(end - begin)
    return {
        "expressions_with_data": with_data,
        "panels_with_data": panels_with_data,
        "rules_covered": covered,
        "metric_names": sorted(present),
        "samples_per_scrape": prom.value(
            f'avg_over_time(scrape_samples_scraped{{job="{job}"}}[{seconds}s])'
        ),
        "scrape_ms": 1000 * (prom.value(
            f'avg_over_time(scrape_duration_seconds{{job="{job}"}}[{seconds}s])'
        ) or 0.0),
    }  # fmt: skip


def run(duration: float, interval: float, node_exporter: str, prometheus: str) -> dict:
    """Start both exporters and Prometheus, scrape for ``duration`` s, and measure both jobs."""
    panels, rules = load_artefacts()
    ports = {"node": free_port(), "agent": free_port(), "prometheus": free_port()}
    tmp = Path(tempfile.mkdtemp(prefix="homelab-coverage-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMELAB_")}
    env.update(PYTHONPATH=str(REPO), HOMELAB_STATE_DIR=str(tmp / "state"))
    config = {
        "global": {"scrape_interval": f"{interval:g}s", "scrape_timeout": f"{interval:g}s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{ports[job]}"]}]}
            for _, job in SIDES
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    processes = [
        start([node_exporter, f"--web.listen-address=127.0.0.1:{ports['node']}"],
              tmp / "node_exporter.log"),
        start([sys.executable, "-m", "exporter_agent", "--listen-address", "127.0.0.1",
               "--listen-port", str(ports["agent"])], tmp / "agent.log", env),
        start([prometheus, f"--config.file={tmp / 'prometheus.yml'}",
               f"--storage.tsdb.path={tmp / 'data'}",
               f"--web.listen-address=127.0.0.1:{ports['prometheus']}"], tmp / "prometheus.log"),
    ]  # fmt: skip
    prom = Prometheus(ports["prometheus"])
    try:
        wait_for(lambda: _targets_up(prom) == len(SIDES), "both targets to be scraped")
        begin = time.time()
        time.sleep(duration)
        end = time.time()
        report = {
            name: measure(prom, job, f"127.0.0.1:{ports[job]}", (begin, end, interval),
                          panels, rules)
            for name, job in SIDES
        }  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    return {
        "duration_s": duration,
        "interval_s": interval,
        "expressions": sum(len(p["targets"]) for p in panels),
        "panels": len(panels),
        "rules": len(rules),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        **report,
    }


def _targets_up(prom: Prometheus) -> int:
    try:
        targets = prom.get("/api/v1/targets").get("data", {}).get("activeTargets", [])
    except OSError:
        return 0
    return sum(target.get("health") == "up" for target in targets)


def print_table(result: dict, gaps: bool) -> None:
    """The issue's table, and with ``gaps`` what only one side answers."""
    n, a = result["node_exporter"], result["agent"]
    print(f"{result['duration_s']:g} s of scrapes every {result['interval_s']:g} s; "
          f"nproc {result['cpus']}, Python {result['python']}\n")  # fmt: skip
    print("| | node_exporter | homelab-agent |\n|---|---|---|")
    rows = (
        (f'"Node Exporter Full" query expressions returning data, of {result["expressions"]}',
         len(n["expressions_with_data"]), len(a["expressions_with_data"])),
        (f"panels with any data, of {result['panels']}", n["panels_with_data"],
         a["panels_with_data"]),
        (f"awesome-prometheus-alerts host rules whose metrics all exist, of {result['rules']}",
         len(n["rules_covered"]), len(a["rules_covered"])),
        ("samples per scrape / mean scrape time",
         f"{n['samples_per_scrape']:.0f} / {n['scrape_ms']:.1f} ms",
         f"{a['samples_per_scrape']:.0f} / {a['scrape_ms']:.1f} ms"),
    )  # fmt: skip
    for label, node, agent in rows:
        print(f"| {label} | {node} | {agent} |")
    if not gaps:
        return
    for title, key in (("expressions", "expressions_with_data"), ("rules", "rules_covered")):
        print(f"\n{title} with data only on node_exporter:", sorted(set(n[key]) - set(a[key])))
        print(f"{title} with data only on the agent:", sorted(set(a[key]) - set(n[key])))


def main() -> None:
    """Parse flags, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of scraping")
    parser.add_argument("--interval", type=float, default=5.0, help="scrape interval, seconds")
    parser.add_argument("--smoke", action="store_true", help="12 s at a 2 s interval")
    parser.add_argument("--gaps", action="store_true", help="list what only one side answers")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--node-exporter", default=NODE_EXPORTER)
    parser.add_argument("--prometheus", default=PROMETHEUS)
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.interval = 12.0, 2.0
    result = run(args.duration, args.interval, args.node_exporter, args.prometheus)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result, args.gaps)


if __name__ == "__main__":
    main()
