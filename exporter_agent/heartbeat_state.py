"""Thread-safe record of the last heartbeat outcome, shared by the sender and /metrics."""

import threading


class HeartbeatState:
    """What /metrics reports about heartbeats: last outcome and last accepted time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._success = False
        self._last_success = 0.0

    def record(self, success: bool, now: float) -> None:
        """Store one heartbeat outcome observed at Unix time ``now``."""
        with self._lock:
            self._success = success
            if success:
                self._last_success = now

    def snapshot(self) -> tuple[bool, float]:
        """Return ``(last heartbeat succeeded, Unix time of the last success or 0)``."""
        with self._lock:
            return self._success, self._last_success
