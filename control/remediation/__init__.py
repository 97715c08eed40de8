"""The remediation wing: the whitelist, the action queue and its approval gate, alert rules,
running commands over SSH, the dispatcher, the audit log and the execute rate limit.

It may use the fleet wing (servers, events); the fleet wing never imports it.
"""
