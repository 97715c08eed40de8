"""A throwaway PostgreSQL cluster in a temp directory, for running the suite on PostgreSQL.

initdb refuses to run as root, so under root (as in CI) the cluster is owned by and run as the
`postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from tests.helpers import free_port, require_binary

__all__ = ["PostgresCluster", "require_binary"]


class PostgresCluster:
    """initdb + postgres on 127.0.0.1:<free port>, trust auth, fsync off (test data only)."""

    USER = "homelab"
    DATABASE = "homelab_test"

    @staticmethod
    def find_bin(name: str) -> str | None:
        """The newest installed PostgreSQL binary called `name`."""
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        return candidates[-1] if candidates else shutil.which(name)

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="homelab-pg-")
        self.datadir = os.path.join(self.workdir, "data")
        self.process: subprocess.Popen | None = None
        self._run_as = None
        if os.geteuid() == 0:
            self._run_as = pwd.getpwnam("postgres")
            os.chown(self.workdir, self._run_as.pw_uid, self._run_as.pw_gid)

    @property
    def url(self) -> str:
        """The URL control connects with."""
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{self.DATABASE}"

    def _command(self, argv: list[str]) -> list[str]:
        if self._run_as:
            return ["runuser", "-u", self._run_as.pw_name, "--", *argv]
        return argv

    def start(self) -> None:
        """initdb, start the server, wait until it accepts connections, create the database."""
        subprocess.run(
            self._command(
                [
                    self.find_bin("initdb"),
                    "-D",
                    self.datadir,
                    "-U",
                    self.USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            self._command(
                [
                    self.find_bin("postgres"),
                    "-D",
                    self.datadir,
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.workdir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=self.port, user=self.USER, dbname="postgres"
                )
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.1)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {self.DATABASE}")
        conn.close()

    def truncate_all(self) -> None:
        """Empty every table but the schema version, so the next test starts clean."""
        import psycopg2

        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_version'"
            )
            tables = [row[0] for row in cursor.fetchall()]
            if tables:
                quoted = ", ".join(f'"{name}"' for name in tables)
                cursor.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        conn.close()

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
