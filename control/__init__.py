"""homelabcmd control plane: servers, heartbeats, actions and SSH remediation over a JSON API."""
