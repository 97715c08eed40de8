"""`homelab-control`: serve the API, run the scheduler alone, manage API keys, test the
notification channels."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import resource
import signal
import socket
import sys
import threading
from collections.abc import Sequence

import peewee

from control import context, db, keys, logs, migrations
from control.config import Settings, load_settings
from control.errors import ConfigError, ControlError, ValidationFailed
from control.notify import routing

log = logging.getLogger("control")


# Idle and half-sent connections cost waitress a file descriptor and a few KB each, and no
# thread; past the limit it stops accepting, so a slowloris client with 1,000 sockets once
# starved every agent. See bench/README.md ("Slowloris") for the figures behind these values.
SERVE_CONNECTION_LIMIT = 10000
SERVE_CHANNEL_TIMEOUT = 30
# File descriptors beyond the connections: database, SSH pool, logs, the listening socket.
SPARE_FDS = 256


def _positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="homelab-control",
        description="homelabcmd control plane. Settings come from HOMELAB_* environment "
        "variables (see README); flags override them.",
    )
    parser.add_argument("--log-format", choices=["text", "json"], help="HOMELAB_LOG_FORMAT")
    parser.add_argument("--log-level", help="HOMELAB_LOG_LEVEL (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="API and scheduler in one process")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--threads", type=_positive_int, default=8, help="WSGI threads (per worker; default 8)"
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        help="run the API in N worker processes (granian), the scheduler in the main one "
        "unless --no-scheduler (docs/scale.md)",
    )
    serve.add_argument(
        "--connection-limit",
        type=_positive_int,
        default=SERVE_CONNECTION_LIMIT,
        help="open connections held at once before new ones wait (default "
        f"{SERVE_CONNECTION_LIMIT}; the open-files limit is raised to fit)",
    )
    serve.add_argument(
        "--channel-timeout",
        type=_positive_int,
        default=SERVE_CHANNEL_TIMEOUT,
        help="seconds an idle or half-sent connection is kept open (default "
        f"{SERVE_CHANNEL_TIMEOUT}; at most 60 with --workers)",
    )
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="serve the API only (run `homelab-control scheduler` elsewhere)",
    )

    commands.add_parser("scheduler", help="the scheduler alone (offline detection, retention)")

    notify_cmd = commands.add_parser("notify", help="notification channels")
    notify_actions = notify_cmd.add_subparsers(dest="notify_command", required=True)
    notify_actions.add_parser(
        "test", help="send a test message to every configured notification URL, print results"
    )

    key_cmd = commands.add_parser("keys", help="create, list or revoke API keys")
    key_actions = key_cmd.add_subparsers(dest="keys_command", required=True)
    create = key_actions.add_parser("create", help="create a key and print it once")
    create.add_argument(
        "--scope",
        required=True,
        choices=["agent", "viewer", "operator", "alerts"],
        help="alerts: Alertmanager's key, which may only post the webhook",
    )
    create.add_argument(
        "--name",
        help="a unique name: 1-100 printable ASCII characters, no spaces "
        "(default: scope plus random suffix)",
    )
    create.add_argument("--server-id", help="bind an agent key to one server (^[a-z0-9-]{1,100}$)")
    key_actions.add_parser("list", help="list stored keys (never the keys themselves)")
    revoke = key_actions.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.log_level:
        overrides["log_level"] = args.log_level
    return load_settings(**overrides)


def _database_failure(exc: peewee.DatabaseError) -> ConfigError:
    """A one-line error for a database that cannot be opened or migrated."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return ConfigError(f"cannot open database: {reason}")


def _open_database(settings: Settings) -> None:
    """Bind and migrate the database, turning failures into one-line ConfigErrors."""
    try:
        db.bind(db.open_database(settings.resolved_database_url))
        migrations.migrate()
    except peewee.DatabaseError as exc:
        raise _database_failure(exc) from None


def _wait_for_termination() -> None:
    """Block until SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def _fit_open_files(connections: int) -> int:
    """Raise the soft open-files limit to hold `connections`; return how many fit.

    A soft limit of 1,024 (common) would make waitress's accept() fail long before its own
    limit; the hard limit is the ceiling, and a lower one shrinks the connection limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit to %d: %s", new_soft, exc)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return connections
    fitting = max(1, soft - SPARE_FDS)
    log.warning(
        "open-files limit %d holds only %d connections (asked for %d)", soft, fitting, connections
    )
    return fitting


def listen_url(host: str, port: int) -> str:
    """The URL a browser would use for `serve --host H --port P`: the default of
    HOMELAB_PUBLIC_URL (links in notifications). A wildcard address is this host's name."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _check_port_free(host: str, port: int) -> None:
    """Fail with one clear line when nothing could listen on host:port (granian would log a
    traceback per worker)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def cmd_serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """Run the API in `--workers` granian processes, the scheduler in this one (control/workers)."""
    from control import workers

    workers.check_database(settings)
    _check_port_free(args.host, args.port)
    _open_database(settings)
    plan = workers.WorkerPlan(
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        connection_limit=_fit_open_files(args.connection_limit),
        header_timeout=args.channel_timeout,
        scheduler=not args.no_scheduler,
    )
    return workers.run(plan, settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the API under waitress, with the scheduler in-process unless --no-scheduler;
    with --workers, in worker processes instead (`cmd_serve_workers`)."""
    from waitress.server import create_server

    from control.app import create_app
    from control.scheduler import ControlScheduler

    if not settings.public_url:
        settings = dataclasses.replace(settings, public_url=listen_url(args.host, args.port))
    if args.workers:
        return cmd_serve_workers(args, settings)
    try:
        app = create_app(settings)
    except peewee.DatabaseError as exc:
        raise _database_failure(exc) from None
    try:
        server = create_server(
            app, host=args.host, port=args.port, threads=args.threads, ident="homelab-control",
            connection_limit=_fit_open_files(args.connection_limit),
            channel_timeout=args.channel_timeout,
            cleanup_interval=max(1, min(30, args.channel_timeout // 2)),
            asyncore_use_poll=True,  # select() stops at 1,024 descriptors
        )  # fmt: skip
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {args.port} on {args.host} is already in use") from None
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    scheduler = None
    if not args.no_scheduler:
        # One SSH pool per process: the dispatcher shares the API's.
        scheduler = ControlScheduler(settings, remediation=context.of(app).remediation)
        scheduler.start()
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    log.info("control listening on http://%s:%d (docs at /api/docs)", args.host, args.port)
    _wait_for_termination()
    log.info("shutting down")
    server.close()
    if scheduler:
        scheduler.shutdown()
    db.db.close()
    return 0


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    """Run only the scheduler until SIGTERM."""
    from control.scheduler import ControlScheduler

    _open_database(settings)
    routing.configure(settings)  # the offline sweep's events queue notifications
    scheduler = ControlScheduler(settings)
    scheduler.start()
    _wait_for_termination()
    scheduler.shutdown()
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Create, list or revoke stored API keys."""
    _open_database(settings)
    if args.keys_command == "create":
        try:
            key, row = keys.create_key(args.scope, args.name, args.server_id)
        except ValidationFailed as exc:
            # A bad argument, like argparse's own: one line (no value echoed back), exit 2.
            raise ConfigError(f"keys create: {exc.message}") from None
        bound = f" bound to server {row.server_id}" if row.server_id else ""
        print(
            f"Created {row.scope} key '{row.name}'{bound}. It is shown only once:", file=sys.stderr
        )
        print(key)
    elif args.keys_command == "list":
        print(f"{'NAME':<24} {'SCOPE':<9} {'PREFIX':<9} {'SERVER':<20} {'CREATED':<20} STATE")
        for row in keys.list_keys():
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
            print(
                f"{row.name:<24} {row.scope:<9} {row.prefix:<9} {row.server_id or '-':<20} "
                f"{row.created_at:%Y-%m-%d %H:%M:%S}  {state}"
            )
    else:
        row = keys.revoke_key(args.name)
        print(f"Revoked key '{row.name}'.")
    return 0


def cmd_notify(args: argparse.Namespace, settings: Settings) -> int:
    """Send a test message to every configured URL; print each result (redacted).

    Exit 0 when every channel took it, 1 when one failed, 2 when none is configured.
    """
    from control.notify.sender import send_test

    failed = 0
    for channel, outcome in send_test(settings):
        if outcome.ok:
            print(f"ok      {channel.shown}")
        else:
            failed += 1
            print(f"FAILED  {channel.shown}: {outcome.error}")
    return 1 if failed else 0


COMMANDS = {"serve": cmd_serve, "scheduler": cmd_scheduler, "keys": cmd_keys, "notify": cmd_notify}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, configure logging, dispatch; errors become one line and exit 2/1."""
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        logs.configure(settings.log_format, settings.log_level)
        return COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        print(f"homelab-control: error: {exc}", file=sys.stderr)
        return 2
    except ControlError as exc:
        print(f"homelab-control: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
