"""WSGI entry point for running the API under another server, e.g. several gunicorn workers:

    gunicorn -w 4 -b 0.0.0.0:8000 control.wsgi:app

Settings come from the environment. The scheduler is not started here: run exactly one
`homelab-control scheduler` beside the workers (a second one would only stand by).
"""

from control.app import create_app

app = create_app()
