"""Notifications: events at or above a severity, and actions waiting for approval, sent to the
operator's Apprise URLs (ntfy, Discord, Slack, Telegram, email, Gotify, JSON webhooks, …).

The path of one message:
- `routing`: `events.record` hands every event to `router.enqueue`, which picks the channels
  whose routes want it and writes one outbox row per channel in the event's own transaction
  (nothing is sent on a request's path);
- `outbox`: the rows, claimed by one sender at a time, retried with backoff, kept after sending
  so cooldowns and recoveries know what each channel was told;
- `sender`: the leader scheduler's job: folds the rows of one incident into one message, holds
  an incident quiet for the cooldown, sums up a fleet-wide outage in one message, drops the
  rows of channels no longer configured, and hands each channel's messages to `delivery`;
- `delivery`: one channel's messages, on the channel's own thread, through `channels` (the
  Apprise wrapper): a refused message is given up, a failing channel waits alone with backoff;
- `redact`: a URL is a credential; it is never stored, logged or shown whole.

This package is imported by `control.fleet.events`, so nothing here imports that module at
import time.
"""
