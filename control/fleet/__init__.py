"""The fleet wing: servers, heartbeats, offline detection, retention, events, targets, costs.

Plain functions over the models; the API, the console, the scheduler and the CLI call them.
Nothing here imports Flask or the remediation wing.
"""
