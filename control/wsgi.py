"""WSGI entry point for running the API under a server of your own choosing.

`homelab-control serve --workers N` is the tested way to run several API processes (granian
workers, the scheduler in the main process; docs/scale.md). To run the app under another
process manager, point it at `control.wsgi:app`, e.g.

    granian --interface wsgi --workers 4 --backpressure 2500 control.wsgi:app

Each worker process imports this module and builds its own app (database connections, SSH
pool) from the environment. The scheduler is not started here: run exactly one
`homelab-control scheduler` beside the workers (a second one would only stand by).

Exposed to the internet or to untrusted clients, put a proxy with per-client limits in front.
gunicorn's threaded workers (`-k gthread`) stopped answering under 3,000 idle connections where
`serve` (waitress or granian) kept answering (bench/README.md, "Slowloris"), so gunicorn is no
longer suggested.
"""

from control.workers import worker_app

app = worker_app()
