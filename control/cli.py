"""`homelab-control`: serve the API, run the scheduler alone, manage API keys."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from collections.abc import Sequence

import peewee

from control import context, db, keys, logs, migrations
from control.config import Settings, load_settings
from control.errors import ConfigError, ControlError

log = logging.getLogger("control")


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
    serve.add_argument("--threads", type=int, default=8, help="WSGI worker threads (default 8)")
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="serve the API only (run `homelab-control scheduler` elsewhere)",
    )

    commands.add_parser("scheduler", help="the scheduler alone (offline detection, retention)")

    key_cmd = commands.add_parser("keys", help="create, list or revoke API keys")
    key_actions = key_cmd.add_subparsers(dest="keys_command", required=True)
    create = key_actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--scope", required=True, choices=["agent", "viewer", "operator"])
    create.add_argument("--name", help="a unique name (default: scope plus random suffix)")
    create.add_argument("--server-id", help="bind an agent key to one server")
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


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the API under waitress, with the scheduler in-process unless --no-scheduler."""
    from waitress.server import create_server

    from control.app import create_app
    from control.scheduler import ControlScheduler

    try:
        app = create_app(settings)
    except peewee.DatabaseError as exc:
        raise _database_failure(exc) from None
    try:
        server = create_server(
            app, host=args.host, port=args.port, threads=args.threads, ident="homelab-control",
            connection_limit=1000, asyncore_use_poll=True,  # 100 + select() starve a busy fleet
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
    scheduler = ControlScheduler(settings)
    scheduler.start()
    _wait_for_termination()
    scheduler.shutdown()
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Create, list or revoke stored API keys."""
    _open_database(settings)
    if args.keys_command == "create":
        key, row = keys.create_key(args.scope, args.name, args.server_id)
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


COMMANDS = {"serve": cmd_serve, "scheduler": cmd_scheduler, "keys": cmd_keys}


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
