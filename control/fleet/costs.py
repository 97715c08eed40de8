"""Power and electricity cost estimates from each server's `tdp_watts` and its CPU use.

The model, deliberately simple: a box draws an idle share of its TDP all the time, plus the
rest of its TDP in proportion to CPU utilisation,

    watts = tdp * (IDLE_SHARE + (1 - IDLE_SHARE) * cpu_percent / 100),   IDLE_SHARE = 0.4

with `cpu_percent` from the server's newest heartbeat sample (clamped to 0..100; no sample
yet → idle). kWh/day = watts * 24 / 1000; cost/day = kWh/day * price; cost/month = 30 *
cost/day. A server without `tdp_watts` is listed with nulls and left out of the totals.
"""

from __future__ import annotations

from dataclasses import dataclass

from control.fleet import servers
from control.models import Server

IDLE_SHARE = 0.4
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class ServerCost:
    """One server's estimate; every number is None when the server has no `tdp_watts`."""

    server: Server
    cpu_percent: float | None
    watts: float | None
    kwh_per_day: float | None
    cost_per_day: float | None
    cost_per_month: float | None


@dataclass(frozen=True)
class FleetCost:
    """Every server's estimate and the totals over those with a TDP."""

    servers: list[ServerCost]
    price: float
    currency: str

    @property
    def counted(self) -> list[ServerCost]:
        """The servers with an estimate."""
        return [cost for cost in self.servers if cost.watts is not None]

    def total(self, attribute: str) -> float:
        """The sum of one estimate over the counted servers."""
        total: float = sum(getattr(cost, attribute) for cost in self.counted)
        return total

    @property
    def totals(self) -> dict[str, float]:
        """Fleet totals (unrounded) over the servers with a TDP."""
        return {
            "servers_counted": len(self.counted),
            "estimated_watts": self.total("watts"),
            "kwh_per_day": self.total("kwh_per_day"),
            "cost_per_day": self.total("cost_per_day"),
            "cost_per_month": self.total("cost_per_month"),
        }

    @property
    def model(self) -> dict[str, float]:
        """The constants of the estimate, so a reader can redo the arithmetic."""
        return {"idle_share": IDLE_SHARE, "days_per_month": DAYS_PER_MONTH}


def estimate_watts(tdp_watts: float, cpu_percent: float | None) -> float:
    """Estimated draw in watts for a TDP and a CPU utilisation (None → idle)."""
    utilisation = min(max(cpu_percent or 0.0, 0.0), 100.0) / 100
    return tdp_watts * (IDLE_SHARE + (1 - IDLE_SHARE) * utilisation)


def server_cost(server: Server, price: float) -> ServerCost:
    """The estimate for one server carrying `.latest_sample` (as `servers.list_servers` gives)."""
    sample = getattr(server, "latest_sample", None)
    cpu = sample.cpu_percent if sample is not None and sample.id is not None else None
    if server.tdp_watts is None:
        return ServerCost(server, cpu, None, None, None, None)
    watts = estimate_watts(server.tdp_watts, cpu)
    kwh = watts * 24 / 1000
    return ServerCost(server, cpu, watts, kwh, kwh * price, kwh * price * DAYS_PER_MONTH)


def fleet_costs(price: float, currency: str) -> FleetCost:
    """The estimate for every server, in id order."""
    return FleetCost([server_cost(s, price) for s in servers.list_servers()], price, currency)
