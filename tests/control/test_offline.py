"""Offline detection, retention and scheduler leadership.

Over 300 lines: offline detection, its grace period and scheduler leadership share the
clock and lease fixtures.
"""

from __future__ import annotations

import datetime as dt

import pytest

from control import leader
from control.fleet import heartbeats, offline, retention, servers
from control.models import (
    Event,
    JobRun,
    MetricsSample,
    RateLimitHit,
    SchedulerLease,
    Server,
    ServerUpdate,
    utcnow,
)
from control.scheduler import ControlScheduler
from tests.helpers import wait_until


def beat(server_id, now, metrics=None):
    heartbeats.ingest_heartbeat(
        {"server_id": server_id, "hostname": server_id, "timestamp": now, "metrics": metrics},
        now=now,
    )


def status_events(server_id):
    return [
        e.message
        for e in Event.select()
        .where((Event.server_id == server_id) & (Event.type == "status_changed"))
        .order_by(Event.id)
    ]


def test_silent_server_goes_offline_after_threshold(app):
    now = utcnow()
    beat("quiet", now - dt.timedelta(seconds=200))
    beat("chatty", now - dt.timedelta(seconds=10))
    assert offline.mark_offline(180, now=now) == ["quiet"]
    assert Server.get_by_id("quiet").status == "offline"
    assert Server.get_by_id("chatty").status == "online"
    assert status_events("quiet") == ["server quiet is offline (no heartbeat for 180s)"]


def test_offline_sweep_is_idempotent(app):
    now = utcnow()
    beat("quiet", now - dt.timedelta(seconds=500))
    offline.mark_offline(180, now=now)
    assert offline.mark_offline(180, now=now) == []
    assert len(status_events("quiet")) == 1


def test_never_seen_servers_stay_unknown(app):
    servers.register_server({"id": "new", "hostname": "new"})
    assert offline.mark_offline(1, now=utcnow() + dt.timedelta(days=1)) == []
    assert Server.get_by_id("new").status == "unknown"


def test_offline_sweep_is_one_update_statement(app):
    from control.db import db

    now = utcnow()
    for index in range(5):
        beat(f"s{index}", now - dt.timedelta(hours=1))
    statements = []
    original = db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql.lstrip().split()[0].upper())
        return original(sql, params, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        assert len(offline.mark_offline(60, now=now)) == 5
    finally:
        db.obj.execute_sql = original
    assert statements.count("UPDATE") == 1


def test_retention_prunes_old_samples_and_events(app):
    now = utcnow()
    beat("box", now - dt.timedelta(days=40), metrics={"cpu_percent": 1})
    beat("box", now, metrics={"cpu_percent": 2})
    Event.update(created_at=now - dt.timedelta(days=40)).where(Event.server_id == "box").execute()
    for age in (dt.timedelta(days=2), dt.timedelta(minutes=1)):  # a gone key's, a live one's
        RateLimitHit.create(bucket="execute", key_name="k", hit_at=now - age)
    for status, age in (("success", 40), ("rolled_back", 40), ("pending", 40), ("failed", 1)):
        detected = now - dt.timedelta(days=age)
        versions = {"kind": "agent", "from_version": "1", "to_version": "2"}
        ServerUpdate.create(server_id="box", detected_at=detected, check_due_at=detected,
                            update_status=status, **versions)  # fmt: skip
    removed = retention.prune_history(30, now=now)
    # The two old events: registered by heartbeat, and judged healthy (health_changed); the
    # two old settled updates (a pending one waits for its check, however old).
    assert removed == {
        "samples": 1, "events": 2, "updates": 2, "rate_limit_hits": 1, "thinned": 0,
    }  # fmt: skip
    assert sorted(u.update_status for u in ServerUpdate.select()) == ["failed", "pending"]
    assert RateLimitHit.select().count() == 1
    assert [s.cpu_percent for s in MetricsSample.select()] == [2]


def test_lease_allows_one_leader_until_it_expires(app):
    now = utcnow()
    assert leader.acquire("a", 30, now=now)
    assert leader.acquire("a", 30, now=now)  # renewal
    assert not leader.acquire("b", 30, now=now)
    assert leader.acquire("b", 30, now=now + dt.timedelta(seconds=31))
    assert not leader.acquire("a", 30, now=now + dt.timedelta(seconds=32))
    leader.release("b")
    assert leader.acquire("a", 30, now=now + dt.timedelta(seconds=33))


@pytest.fixture
def settings_overrides():
    return {"offline_after": 1, "offline_check_interval": 1}


def test_scheduler_marks_server_offline_in_background(app, settings):
    beat("pi", utcnow())
    scheduler = ControlScheduler(settings)
    scheduler.start()
    try:
        wait_until(lambda: Server.get_by_id("pi").status == "offline", timeout=30)
    finally:
        scheduler.shutdown()
    job = JobRun.get_by_id("offline_check")
    assert job.successes >= 1 and job.last_result == "ok"
    assert SchedulerLease.get_by_id("scheduler").holder is None  # released on shutdown


def test_two_schedulers_never_both_run_a_job(app, settings):
    first, second = ControlScheduler(settings), ControlScheduler(settings)
    ran = [
        first.run_job("probe", lambda: None),
        second.run_job("probe", lambda: None),
        first.run_job("probe", lambda: None),
        second.run_job("probe", lambda: None),
    ]
    assert ran == [True, False, True, False]
    assert JobRun.get_by_id("probe").successes == 2


def test_failing_job_is_recorded_and_does_not_kill_scheduler(app, settings):
    scheduler = ControlScheduler(settings)

    def broken():
        raise RuntimeError("boom")

    assert scheduler.run_job("broken", broken)
    assert scheduler.run_job("broken", broken)
    job = JobRun.get_by_id("broken")
    assert (job.failures, job.last_result) == (2, "error")


def test_samples_older_than_a_day_are_thinned_to_one_per_hour(app):
    now = utcnow().replace(minute=30, second=0, microsecond=0)
    start = now - dt.timedelta(hours=25, minutes=30)  # on the hour
    for minute in range(0, 80, 10):  # every 10 minutes for 80 minutes, all over a day old
        beat("box", start + dt.timedelta(minutes=minute), metrics={"cpu_percent": 1})
    beat("quiet", now - dt.timedelta(hours=25, minutes=5), metrics={"cpu_percent": 9})
    beat("quiet", now - dt.timedelta(hours=25), metrics={"cpu_percent": 7})  # its latest
    beat("box", now, metrics={"cpu_percent": 2})
    removed = retention.prune_history(30, now=now)
    box = list(
        MetricsSample.select()
        .where(MetricsSample.server == "box")
        .order_by(MetricsSample.received_at)
    )
    old = [s for s in box if s.received_at < now - dt.timedelta(hours=24)]
    hours = [s.received_at.replace(minute=0, second=0, microsecond=0) for s in old]
    assert len(hours) == len(set(hours)) == 2  # one sample per hour remains
    assert all(s.received_at.minute == 0 for s in old)  # the first of each hour
    assert box[-1].cpu_percent == 2  # everything recent is kept
    quiet = Server.get_by_id("quiet")
    assert MetricsSample.get_by_id(quiet.latest_sample_id).cpu_percent == 7  # latest survives
    assert removed["thinned"] == 6
    assert retention.prune_history(30, now=now)["thinned"] == 0


def test_idle_retention_run_reports_nothing(app, settings):
    jobs = ControlScheduler(settings).jobs()
    prune, _interval = jobs["retention"]
    assert prune() == {}


def test_servers_silent_before_control_started_get_one_offline_after_of_grace(app):
    started = utcnow()
    beat("long-gone", started - dt.timedelta(hours=2))
    beat("recent", started - dt.timedelta(seconds=100))
    # The first tick after an outage: nobody could heartbeat, so nobody is judged yet.
    assert offline.mark_offline(180, now=started, since=started) == []
    assert offline.mark_offline(180, now=started + dt.timedelta(seconds=180), since=started) == []
    assert Server.get_by_id("long-gone").status == "online"
    # One full period counted from control's start, and still silent: now they are offline.
    later = started + dt.timedelta(seconds=181)
    assert offline.mark_offline(180, now=later, since=started) == ["long-gone", "recent"]


def test_a_server_that_heartbeats_within_the_grace_never_flaps(app):
    started = utcnow()
    beat("box", started - dt.timedelta(hours=2))
    beat("quiet", started - dt.timedelta(hours=2))
    for seconds in (0, 60, 120):
        assert (
            offline.mark_offline(180, now=started + dt.timedelta(seconds=seconds), since=started)
            == []
        )
    beat("box", started + dt.timedelta(seconds=150))
    at = started + dt.timedelta(seconds=200)
    assert offline.mark_offline(180, now=at, since=started) == ["quiet"]
    assert Server.get_by_id("box").status == "online"
    assert not any("offline" in message for message in status_events("box"))
    # The grace only delays judgement: silent for a full period after its last beat, it goes.
    at = started + dt.timedelta(seconds=331)
    assert offline.mark_offline(180, now=at, since=started) == ["box"]


LONG_OFFLINE_AFTER = {"offline_after": 180, "offline_check_interval": 1}


def offline_tick(scheduler, now=None):
    """Run the scheduler's offline_check job (lease and all) as its interval timer would.

    Without `now` it is the very job `start()` schedules; with one, the same check at that time.
    Returns the ids it marked offline, or None when this scheduler is not the leader.
    """
    job, _interval = scheduler.jobs()["offline_check"]
    found = []
    if now is None:
        ran = scheduler.run_job("offline_check", lambda: found.extend(job()))
    else:
        ran = scheduler.run_job("offline_check", lambda: found.extend(scheduler.offline_check(now)))
    return found if ran else None


@pytest.mark.parametrize("settings_overrides", [LONG_OFFLINE_AFTER])
def test_first_tick_after_control_starts_marks_nobody_offline(app, settings):
    for index in range(5):
        beat(f"s{index}", utcnow() - dt.timedelta(hours=1))
    scheduler = ControlScheduler(settings)
    assert offline_tick(scheduler) == []  # the tick that used to take the whole fleet offline
    assert Server.select().where(Server.status == "offline").count() == 0
    assert scheduler.leader_since is not None
    later = utcnow() + dt.timedelta(seconds=181)
    assert offline_tick(scheduler, now=later) == [f"s{index}" for index in range(5)]


@pytest.mark.parametrize("settings_overrides", [LONG_OFFLINE_AFTER])
def test_grace_starts_again_when_a_scheduler_takes_leadership_over(app, settings):
    beat("box", utcnow() - dt.timedelta(hours=1))
    first, standby = ControlScheduler(settings), ControlScheduler(settings)
    assert offline_tick(first) == []
    assert offline_tick(standby) is None  # not the leader: does not run at all
    leader.release(first.holder)  # the leader stops (or dies and its lease runs out)
    assert offline_tick(standby) == []  # offline detection resumes here: a fresh grace
    assert Server.get_by_id("box").status == "online"
    assert offline_tick(standby, now=utcnow() + dt.timedelta(seconds=181)) == ["box"]


@pytest.mark.parametrize("settings_overrides", [LONG_OFFLINE_AFTER])
def test_leadership_lost_and_regained_restarts_the_grace(app, settings):
    beat("box", utcnow() - dt.timedelta(hours=1))
    scheduler = ControlScheduler(settings)
    assert offline_tick(scheduler) == []
    first_term = scheduler.leader_since
    # Another scheduler takes the lease once ours has run out, then goes away.
    assert leader.acquire(
        "other", 60, now=utcnow() + dt.timedelta(seconds=settings.lease_seconds + 1)
    )
    assert offline_tick(scheduler) is None
    assert scheduler.leader_since is None
    leader.release("other")
    assert offline_tick(scheduler) == []
    assert scheduler.leader_since > first_term
    assert Server.get_by_id("box").status == "online"


@pytest.mark.parametrize("settings_overrides", [LONG_OFFLINE_AFTER])
def test_renewing_the_lease_keeps_the_grace_start(app, settings):
    scheduler = ControlScheduler(settings)
    assert offline_tick(scheduler) == []
    since = scheduler.leader_since
    assert offline_tick(scheduler) == []
    assert scheduler.leader_since == since


@pytest.mark.parametrize("settings_overrides", [LONG_OFFLINE_AFTER])
def test_a_lease_that_ran_out_between_ticks_starts_a_new_term(app, settings, monkeypatch):
    """A stalled leader (long GC pause, suspended VM) whose lease lapsed may have left the fleet
    unwatched, or another scheduler led meanwhile: when it renews, the grace starts again."""
    import types

    from control import scheduler as scheduler_module

    clock = [1000.0]
    monkeypatch.setattr(scheduler_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    beat("box", utcnow() - dt.timedelta(hours=1))
    scheduler = ControlScheduler(settings)
    assert offline_tick(scheduler) == []
    first_term = scheduler.leader_since
    clock[0] += settings.lease_seconds - 1  # a late tick, lease still ours: same term
    assert offline_tick(scheduler) == []
    assert scheduler.leader_since == first_term
    clock[0] += settings.lease_seconds  # longer than the lease since the last renewal
    assert offline_tick(scheduler) == []
    assert scheduler.leader_since > first_term
    assert Server.get_by_id("box").status == "online"
