"""WSGI entry point for running the API under another server, e.g. several gunicorn workers:

    gunicorn -w 4 -b 0.0.0.0:8000 control.wsgi:app

Settings come from the environment. The scheduler is not started here: run exactly one
`homelab-control scheduler` beside the workers (a second one would only stand by).

Exposed to the internet or to untrusted clients, put a proxy with per-client limits in front:
gunicorn's threaded workers stopped answering under 3,000 idle connections where
`homelab-control serve` kept answering (bench/README.md, "Slowloris").
"""

from control.app import create_app

app = create_app()
