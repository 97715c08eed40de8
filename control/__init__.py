"""homelabcmd control plane: servers, heartbeats, actions and SSH remediation over a JSON API."""

from control.app import create_app

__all__ = ["create_app"]
