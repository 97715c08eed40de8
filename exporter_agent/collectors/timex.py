"""Kernel clock discipline from adjtimex(2), as node_exporter's ``timex`` collector.

The awesome-prometheus-alerts rules HostClockSkew and HostClockNotSynchronising read
``node_timex_offset_seconds``, ``node_timex_sync_status`` and ``node_timex_maxerror_seconds``.
adjtimex is called through libc with ``modes = 0``, which only reads and needs no privilege.
"""

import ctypes
import os
from collections.abc import Callable, Iterator

from exporter_agent.metrics import CounterMetricFamily, GaugeMetricFamily, Metric

TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
STA_NANO = 0x2000  # status bit: offset and jitter are in nanoseconds, not microseconds
PPM16FRAC = 1_000_000.0 * 65536.0  # freq, ppsfreq and stabil are ppm with a 16-bit fraction
MICRO = 1_000_000.0
NANO = 1_000_000_000.0


class Timex(ctypes.Structure):
    """glibc's ``struct timex`` (sys/timex.h); C longs, so it fits 32- and 64-bit Linux."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),  # struct timeval
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


_libc: ctypes.CDLL | None = None


def adjtimex() -> tuple[int, Timex]:
    """Call adjtimex(2) read-only; return (clock state, struct timex). Raises OSError."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
    timex = Timex()
    state = _libc.adjtimex(ctypes.byref(timex))
    if state == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "adjtimex")
    return state, timex


class TimexCollector:
    """Exports the 17 ``node_timex_*`` series from one adjtimex call per scrape.

    ``adjtimex`` is the data source (the real syscall by default, a recorded answer in tests).
    """

    def __init__(self, adjtimex: Callable[[], tuple[int, Timex]] = adjtimex) -> None:
        self._adjtimex = adjtimex

    def collect(self) -> Iterator[Metric]:
        """Yield the families with node_exporter's unit conversions; OSError on a failed call."""
        state, tx = self._adjtimex()
        divisor = NANO if tx.status & STA_NANO else MICRO
        gauges = (
            ("sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
             0.0 if state == TIME_ERROR else 1.0),
            ("offset_seconds", "Time offset in between local system and reference clock.",
             tx.offset / divisor),
            ("frequency_adjustment_ratio", "Local clock frequency adjustment.",
             1 + tx.freq / PPM16FRAC),
            ("maxerror_seconds", "Maximum error in seconds.", tx.maxerror / MICRO),
            ("estimated_error_seconds", "Estimated error in seconds.", tx.esterror / MICRO),
            ("status", "Value of the status array bits.", tx.status),
            ("loop_time_constant", "Phase-locked loop time constant.", tx.constant),
            ("tick_seconds", "Seconds between clock ticks.", tx.tick / MICRO),
            ("pps_frequency_hertz", "Pulse per second frequency.", tx.ppsfreq / PPM16FRAC),
            ("pps_jitter_seconds", "Pulse per second jitter.", tx.jitter / divisor),
            ("pps_shift_seconds", "Pulse per second interval duration.", tx.shift),
            ("pps_stability_hertz",
             "Pulse per second stability, average of recent frequency changes.",
             tx.stabil / PPM16FRAC),
            ("tai_offset_seconds", "International Atomic Time (TAI) offset.", tx.tai),
        )  # fmt: skip
        counters = (
            ("pps_jitter_total", "Pulse per second count of jitter limit exceeded events.",
             tx.jitcnt),
            ("pps_calibration_total", "Pulse per second count of calibration intervals.",
             tx.calcnt),
            ("pps_error_total", "Pulse per second count of calibration errors.", tx.errcnt),
            ("pps_stability_exceeded_total",
             "Pulse per second count of stability limit exceeded events.", tx.stbcnt),
        )  # fmt: skip
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(f"node_timex_{name}", help_text, value=value)
        for name, help_text, value in counters:
            yield CounterMetricFamily(f"node_timex_{name}", help_text, value=value)
