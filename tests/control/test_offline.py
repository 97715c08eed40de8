"""Offline detection, retention and scheduler leadership."""

from __future__ import annotations

import datetime as dt

import pytest

from control import leader
from control.fleet import heartbeats, offline, retention, servers
from control.models import Event, JobRun, MetricsSample, SchedulerLease, Server, utcnow
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
    removed = retention.prune_history(30, now=now)
    assert removed == {"samples": 1, "events": 1, "thinned": 0}
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
