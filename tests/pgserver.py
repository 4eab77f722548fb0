"""A real PostgreSQL (Debian's postgresql-15) started for the tests, stopped by its pid.

initdb into a temporary directory, then `postgres` in the foreground: as the `postgres` user
when the tests run as root (it refuses to run as root), else as the current user. Unit tests
use it over a Unix socket only (listen_addresses=''), the fleet lab over TCP inside its control
namespace. Durability settings are off: the tests kill workers, never the database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "exposure"  # the database role initdb makes (trust authentication: a test cluster)
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class PostgresServer:
    def __init__(
        self, *, netns: str | None = None, listen: Sequence[str] = (), port: int = 5432,
        trusted: Sequence[str] = (),
    ) -> None:
        self.netns = netns
        self.listen = tuple(listen)
        self.trusted = tuple(trusted)  # networks let in over TCP without a password
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="exp-pg-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def url(self, database: str = "postgres", host: str | None = None) -> str:
        """A URL for `database`: over TCP to `host`, else over the Unix socket."""
        if host is not None:
            return f"postgresql://{USER}@{host}:{self.port}/{database}"
        return f"postgresql://{USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def start(self) -> PostgresServer:
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError(f"PostgreSQL is not installed ({PG_BIN}): run tools/"
                               "install-system-deps.sh")
        data = self.directory / "data"
        if self._as_postgres:
            self.directory.chmod(0o755)
            shutil.chown(self.directory, "postgres", "postgres")
        self._run([PG_BIN / "initdb", "-D", data, "-A", "trust", "-U", USER, "-E", "UTF8",
                   "--locale=C", "--no-sync"])
        with open(data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in self.trusted)
        log = open(self.directory / "postgres.log", "ab")  # noqa: SIM115 (the server's lifetime)
        argv = [
            PG_BIN / "postgres", "-D", data, "-p", str(self.port),
            "-c", f"listen_addresses={','.join(self.listen)}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200", "-c", "logging_collector=off",
        ]
        with log:
            self.proc = subprocess.Popen(
                self._argv(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL over the Unix socket."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """SIGTERM (smart shutdown would wait for clients: SIGINT, fast), then SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown, clients are disconnected
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.directory / "postgres.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- internals -------------------------------------------------------------------------

    def _argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        command = [os.fspath(part) for part in argv]
        if self._as_postgres:
            command = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                       *command]
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        return command

    def _run(self, argv: Sequence[str | os.PathLike[str]]) -> None:
        completed = subprocess.run(self._argv(argv), capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {completed.stderr.strip()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"postgres not ready:\n{self.log_tail()}") from None
                time.sleep(0.05)
