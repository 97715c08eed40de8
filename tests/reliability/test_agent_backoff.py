"""Control down for 10 simulated minutes under 100 agents: the agents' real retry policy.

Each agent is the agent's own `HeartbeatLoop` with its own `Backoff`, driven by a discrete-event
simulation on a shared simulated clock instead of threads and sleeps, so ten minutes take
milliseconds and a fixed seed makes every run identical. The worst case for a herd is chosen on
purpose: all 100 agents start in the same second (a rack powered on together), so only the
jitter can spread them out.

What must hold: while control is down every wait is within the cap and follows the exponential
ceiling; when control returns, the agents' first retries are spread over the cap window rather
than arriving together; and every agent is back within the cap. A jitter-free backoff run
through the same measurement is caught as a herd, which shows the check can fail.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

import pytest

from exporter_agent.heartbeat import Backoff, HeartbeatLoop, Outcome, Result
from exporter_agent.heartbeat_state import HeartbeatState

AGENTS = 100
INTERVAL = 60.0
CAP = 30.0  # the agent's default --backoff-cap
DOWN_AT = 90.0  # control stops 1.5 min in ...
UP_AT = DOWN_AT + 600.0  # ... and comes back 10 min later
END = UP_AT + 3 * INTERVAL
SEED = 20260118
# With 100 retries spread uniformly over a 30 s window a 1 s bucket expects 3.3 of them; more
# than 15 in one second would be a herd (a synchronized fleet puts all 100 in one or two).
MAX_PER_SECOND = 15
# The agents' own logs are not under test here; 100 agents x 40 retries would flood the output.
QUIET = logging.getLogger("tests.reliability.backoff")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


class ControlOutage:
    """A control plane that refuses connections between `down_at` and `up_at` (simulated time)."""

    def __init__(self, clock: SimClock, down_at: float, up_at: float) -> None:
        self.clock, self.down_at, self.up_at = clock, down_at, up_at

    def send(self, agent: int, payload: dict) -> Result:
        """Answer one heartbeat as the real sender would classify it."""
        now = self.clock.now
        if self.down_at <= now < self.up_at:
            return Result(Outcome.UNAVAILABLE, None, "cannot reach control: connection refused")
        return Result(Outcome.OK, 200, body={"status": "ok", "server_registered": False})


@dataclass
class SimClock:
    """The simulated wall clock every agent reads."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Trace:
    """Every heartbeat attempt and every wait the agents chose."""

    attempts: dict[int, list[tuple[float, bool]]] = field(default_factory=dict)
    delays: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def first_attempt_after(self, agent: int, moment: float) -> tuple[float, bool]:
        """The agent's first attempt at or after `moment`, and whether it succeeded."""
        return next((t, ok) for t, ok in self.attempts[agent] if t >= moment)


def simulate(
    agents: int, make_backoff, seed: int, start_spread: float = 1.0
) -> tuple[Trace, list[Backoff]]:
    """Run `agents` heartbeat loops on one simulated clock through the outage; return the trace."""
    clock = SimClock()
    control = ControlOutage(clock, DOWN_AT, UP_AT)
    rng = random.Random(seed)
    trace = Trace()
    loops, backoffs, queue = [], [], []
    for agent in range(agents):
        backoff = make_backoff(rng)
        send = _recording_sender(control, trace, clock, agent)
        loop = HeartbeatLoop(
            send, lambda: {}, INTERVAL, backoff, HeartbeatState(), clock=clock, logger=QUIET
        )
        loops.append(loop)
        backoffs.append(backoff)
        trace.attempts[agent], trace.delays[agent] = [], []
        heapq.heappush(queue, (rng.uniform(0, start_spread), agent))
    while queue:
        clock.now, agent = heapq.heappop(queue)
        if clock.now > END:
            break
        delay = loops[agent].run_once()
        trace.delays[agent].append((clock.now, delay))
        heapq.heappush(queue, (clock.now + delay, agent))
    return trace, backoffs


def _recording_sender(control: ControlOutage, trace: Trace, clock: SimClock, agent: int):
    def send(payload: dict) -> Result:
        result = control.send(agent, payload)
        trace.attempts[agent].append((clock.now, result.outcome is Outcome.OK))
        return result

    return send


def jittered(rng: random.Random) -> Backoff:
    """The agent's backoff as shipped (full jitter), drawing from the seeded generator."""
    return Backoff(cap=CAP, rand=rng.random)


def first_retries_after_return(trace: Trace) -> list[float]:
    """Seconds after control's return at which each agent first tried again."""
    return [trace.first_attempt_after(a, UP_AT)[0] - UP_AT for a in trace.attempts]


def busiest_second(offsets: list[float]) -> int:
    """How many of `offsets` share the busiest 1-second bucket."""
    return max(Counter(int(offset) for offset in offsets).values())


@pytest.fixture(scope="module")
def outage():
    """The shipped backoff through the 10-minute outage with 100 agents."""
    return simulate(AGENTS, jittered, SEED)


def test_every_wait_during_the_outage_is_bounded_by_the_cap(outage):
    trace, _ = outage
    for agent, delays in trace.delays.items():
        failed = [delay for t, delay in delays if DOWN_AT <= t < UP_AT]
        assert failed, f"agent {agent} never noticed the outage"
        assert all(0.0 <= delay <= CAP for delay in failed)
        # Exponential ceiling with base 1 s: attempt n waits at most min(cap, 2**n).
        assert all(delay <= min(CAP, 2.0**n) for n, delay in enumerate(failed))


def test_agents_keep_retrying_through_the_whole_outage_without_flooding(outage):
    trace, _ = outage
    for agent, attempts in trace.attempts.items():
        during = [t for t, ok in attempts if DOWN_AT <= t < UP_AT]
        assert all(not ok for t, ok in attempts if DOWN_AT <= t < UP_AT)
        # Never silent for longer than the cap, so the agent notices control's return in time.
        gaps = [b - a for a, b in pairwise(during)]
        assert max(gaps) <= CAP
        # Full jitter averages cap/2 per wait at the plateau: ~40 tries in 10 minutes, so
        # a 100-agent fleet sends a handful of requests per second to a recovering control.
        assert 20 <= len(during) <= 120, (agent, len(during))


def test_first_retries_after_control_returns_are_spread_over_the_cap_window(outage):
    trace, _ = outage
    offsets = first_retries_after_return(trace)
    assert len(offsets) == AGENTS
    assert busiest_second(offsets) <= MAX_PER_SECOND
    # The first retry after a return is the remainder of a uniform(0, cap) wait, so its
    # density falls linearly from 0 to the cap (median ~0.29 cap): about 19% of the fleet in
    # the first 3 s, and some agents near the end of the window.
    assert max(offsets) >= CAP / 2
    for start in range(int(CAP)):
        in_window = sum(start <= offset < start + 3 for offset in offsets)
        assert in_window <= 0.35 * AGENTS, (start, in_window)


def test_every_agent_is_back_within_the_cap_and_then_heartbeats_at_the_interval(outage):
    trace, backoffs = outage
    for agent in trace.attempts:
        when, ok = trace.first_attempt_after(agent, UP_AT)
        assert ok and when - UP_AT <= CAP
        after = [t for t, _ in trace.attempts[agent] if t >= when]
        gaps = {round(b - a, 6) for a, b in pairwise(after)}
        assert gaps == {INTERVAL}
        assert backoffs[agent].attempts == 0  # reset by the first success


def test_a_backoff_without_jitter_is_caught_as_a_thundering_herd():
    """The herd check fails on a synchronized fleet, so passing it above means something."""
    trace, _ = simulate(AGENTS, lambda rng: Backoff(cap=CAP, rand=lambda: 1.0), SEED)
    assert busiest_second(first_retries_after_return(trace)) > MAX_PER_SECOND
