"""Heartbeats to control: payload building, sending, and a loop that never gives up.

The request goes out over http.client, or urllib's opener when a proxy applies
(heartbeat_transport.py); either way a 3xx is a failed heartbeat, never followed.

Retry policy: connection errors, timeouts, 429 and 5xx back off exponentially with full
jitter (``uniform(0, min(cap, base * 2**n))``) forever; 401/403 (bad or foreign key) and other
4xx answers are logged once per change and retried every ``interval``, because only an
operator can fix them. After a 401 for the enrolled key kept in the state directory the
configured key is tried once; the kept key is replaced only by a new key from control, never
dropped. Sleep, clock and randomness are injected so the policy is unit-tested without waiting.

Over 300 lines: the sender and the loop share `Result`/`Outcome` and the retry policy;
the key handling they need lives in identity.py.
"""

import enum
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Any, NamedTuple

from exporter_agent.heartbeat_state import HeartbeatState
from exporter_agent.heartbeat_transport import make_transport
from exporter_agent.identity import Identity

log = logging.getLogger(__name__)

HEARTBEAT_PATH = "/api/v1/agents/heartbeat"
# Device-health fields that go inside ``metrics``; the others go beside it (wire contract).
DEVICE_METRICS = ("temperature", "containers_running", "containers_failed")
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_RETRY_AFTER_SECONDS = 300.0


class Outcome(enum.Enum):
    """How control answered a heartbeat, which decides the next wait."""

    OK = "ok"
    UNAVAILABLE = "unavailable"  # network error, timeout, 429, 5xx: back off
    UNAUTHORIZED = "unauthorized"  # 401/403: the key is wrong or bound elsewhere
    REJECTED = "rejected"  # any other 4xx: the payload or URL is wrong


class Result(NamedTuple):
    """One heartbeat attempt: outcome, HTTP status (None without a response) and details."""

    outcome: Outcome
    status: int | None = None
    detail: str = ""
    body: dict | None = None
    retry_after: float | None = None


def iso_utc(now: float) -> str:
    """Format Unix time ``now`` as ISO 8601 UTC with a ``Z`` (``2026-01-18T10:30:00Z``)."""
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_payload(
    *,
    server_id: str,
    hostname: str,
    now: float,
    os_info: dict,
    metrics: dict,
    agent_version: str,
    metrics_port: int,
    device: Mapping[str, Any] | None = None,
) -> dict:
    """Return the seed-001 heartbeat body plus ``agent_version``, ``metrics_port`` and the
    seed-002 ``device`` fields (``DeviceHealth.read()``): DEVICE_METRICS go into ``metrics``,
    the others (``containers``, ``services``, ``packages``, ``commit_hash``) beside it."""
    device = device or {}
    payload = {
        "server_id": server_id,
        "hostname": hostname,
        "timestamp": iso_utc(now),
        "os_info": os_info,
        "metrics": {**metrics, **{k: v for k, v in device.items() if k in DEVICE_METRICS}},
        "agent_version": agent_version,
        "metrics_port": metrics_port,
    }
    payload.update((k, v) for k, v in device.items() if k not in DEVICE_METRICS)
    return payload


def _error_detail(body: dict | None, fallback: str) -> str:
    if not isinstance(body, dict):
        return fallback
    detail = f"{body.get('code', '')}: {body.get('message', '')}".strip(": ")
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        fields = "; ".join(
            f"{field}: {', '.join(map(str, msgs))}" for field, msgs in errors.items()
        )
        detail = f"{detail} ({fields})"
    return detail or fallback


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value else None
    except ValueError:
        return None


def classify(status: int, body: dict | None, retry_after: str | None = None) -> Result:
    """Map an HTTP answer from control to a Result."""
    if 200 <= status < 300:
        return Result(Outcome.OK, status, body=body)
    detail = _error_detail(body, f"HTTP {status}")
    if status in (401, 403):
        return Result(Outcome.UNAUTHORIZED, status, detail, body)
    if status == 429 or status >= 500:
        return Result(Outcome.UNAVAILABLE, status, detail, body, _retry_after(retry_after))
    return Result(Outcome.REJECTED, status, detail, body)


class HttpSender:
    """POSTs heartbeats to ``{control_url}/api/v1/agents/heartbeat`` with the agent's key.

    The key comes from ``identity`` (see identity.py): the configured key until control enrolls
    the server and answers with a bound ``agent_key``, which is kept and sent from then on.
    Whether a proxy applies is decided once, here, from the environment.
    """

    def __init__(
        self,
        control_url: str,
        api_key: "str | Identity",
        user_agent: str,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = control_url.rstrip("/") + HEARTBEAT_PATH
        self.identity = api_key if isinstance(api_key, Identity) else Identity(api_key)
        self._user_agent = user_agent
        self.transport = make_transport(self.url, timeout, context)
        # How the configured key last answered after a 401 for the kept key (None: the kept
        # key works), so that state is logged once per change.
        self._kept_refused: tuple[Outcome, int | None] | None = None

    def __call__(self, payload: dict) -> Result:
        """Send one heartbeat and classify the answer; never raises for network trouble."""
        with_kept_key = self.identity.enrolled
        result = self._post(payload, self.identity.key)
        if with_kept_key and result.status == 401:
            return self._kept_key_refused(payload)
        if result.outcome is Outcome.OK:
            if with_kept_key and self._kept_refused is not None:
                log.info("control accepts the kept key again")
                self._kept_refused = None
            self._take_minted_key(result)
        return result

    def _kept_key_refused(self, payload: dict) -> Result:
        """Control answered 401 to the kept key: try the configured key once, keep the kept one.

        An operator's enrollment reset answers 401, but so may a reverse proxy, control on a
        restored database or a forged answer, while control still holds the bound key. Dropping
        the kept key then would leave only the configured key, which gets 403 for an enrolled
        server, forever. So the kept key goes only when a 200 brings a new well-formed key, and
        the next heartbeat tries it again otherwise.
        """
        fallback = self._post(payload, self.identity.configured_key)
        if self._take_minted_key(fallback):
            self._kept_refused = None
            return fallback
        state = (fallback.outcome, fallback.status)
        if state != self._kept_refused:
            self._kept_refused = state
            answer = f"HTTP {fallback.status}" if fallback.status else "no answer"
            if fallback.outcome is Outcome.OK:
                detail = "accepted, without a new key"
            else:
                detail = fallback.detail
            log.warning(
                "control answered HTTP 401 to this server's kept key, and the configured key did "
                "not enroll it again (%s %s): keeping the kept key (only a new key from control "
                "replaces it) and trying it again next heartbeat",
                answer,
                detail,
            )
        return fallback

    def _take_minted_key(self, result: Result) -> bool:
        """Keep the ``agent_key`` of a 200 answer (it is never passed on); True if kept."""
        if not isinstance(result.body, dict):
            return False
        minted = result.body.pop("agent_key", None)
        return result.status == 200 and minted is not None and self.identity.accept(minted)

    def _post(self, payload: dict, key: str) -> Result:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-API-Key": key,
            "User-Agent": self._user_agent,
        }
        try:
            answer = self.transport.post(json.dumps(payload).encode(), headers)
        except (OSError, HTTPException) as exc:
            # A failure before the request went out carries its cause as `reason` (urllib's
            # URLError, the transport's Unreachable); a read timeout is itself the reason.
            reason = getattr(exc, "reason", None) or exc
            return Result(Outcome.UNAVAILABLE, None, f"cannot reach control: {reason}")
        if 300 <= answer.status < 400:
            return _redirected(answer.status, answer.location)
        return classify(answer.status, _json(answer.body), answer.retry_after)


def _redirected(status: int, location: str | None) -> Result:
    """A 3xx: a failed heartbeat, never followed (the key would go wherever it points)."""
    where = f" to {location}" if location else ""
    return Result(
        Outcome.REJECTED,
        status,
        f"control redirected the heartbeat{where}; not following it with the key: "
        "set --control-url to the address control really serves",
    )


def _json(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    def __init__(
        self, base: float = 1.0, cap: float = 30.0, rand: Callable[[], float] = random.random
    ) -> None:
        self.base, self.cap = base, cap
        self._rand = rand
        self.attempts = 0

    def next_delay(self) -> float:
        """Return the wait before the next retry and count one more failed attempt."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return self._rand() * ceiling

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0


class HeartbeatLoop:
    """Sends a heartbeat now and then every ``interval`` seconds until told to stop."""

    def __init__(
        self,
        send: Callable[[dict], Result],
        payload: Callable[[], dict],
        interval: float,
        backoff: Backoff,
        state: HeartbeatState,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger = log,
    ) -> None:
        self._send = send
        self._payload = payload
        self._interval = interval
        self._backoff = backoff
        self._state = state
        self._clock = clock
        self._log = logger
        self._reported: tuple | None = None
        self._failures = 0

    def run_once(self) -> float:
        """Send one heartbeat, log what changed, and return how long to wait before the next."""
        result = self._send(self._payload())
        self._state.record(result.outcome is Outcome.OK, self._clock())
        self._report(result)
        if result.outcome is Outcome.OK:
            self._backoff.reset()
            self._failures = 0
            return self._interval
        self._failures += 1
        if result.outcome is Outcome.UNAVAILABLE:
            delay = self._backoff.next_delay()
            return max(delay, result.retry_after or 0.0)
        self._backoff.reset()
        return self._interval

    def run(self, wait: Callable[[float], bool]) -> None:
        """Loop until ``wait(delay)`` returns True (e.g. ``threading.Event.wait``)."""
        while True:
            try:
                delay = self.run_once()
            except Exception:
                # A bug in payload building must not silence the box forever: log it with its
                # traceback and retry like an outage.
                self._log.exception("heartbeat failed unexpectedly; retrying")
                self._state.record(False, self._clock())
                delay = self._backoff.next_delay()
            if wait(delay):
                return

    def _report(self, result: Result) -> None:
        """Log a result only when it differs from the last one logged."""
        key = (result.outcome, result.status)
        if key == self._reported:
            self._log.debug(
                "heartbeat: %s %s %s", result.outcome.value, result.status, result.detail
            )
            return
        previous, self._reported = self._reported, key
        if result.outcome is Outcome.OK:
            registered = bool((result.body or {}).get("server_registered"))
            if previous is None:
                self._log.info("heartbeat accepted by control (newly registered: %s)", registered)
            else:
                self._log.info("heartbeat accepted again after %d failed attempts", self._failures)
        elif result.outcome is Outcome.UNAUTHORIZED and result.status == 403:
            self._log.error(
                "control refused the API key for this server (HTTP 403 %s): the key is bound "
                "to another server or lacks the agent scope; retrying every %ss",
                result.detail,
                self._interval,
            )
        elif result.outcome is Outcome.UNAUTHORIZED:
            self._log.error(
                "control rejected the API key (HTTP 401 %s): check --api-key / "
                "HOMELAB_API_KEY; retrying every %ss",
                result.detail,
                self._interval,
            )
        elif result.outcome is Outcome.REJECTED:
            self._log.error(
                "control rejected the heartbeat (HTTP %s %s); retrying every %ss",
                result.status,
                result.detail,
                self._interval,
            )
        else:
            self._log.warning(
                "control unavailable (%s); retrying with backoff up to %ss",
                result.detail,
                self._backoff.cap,
            )
