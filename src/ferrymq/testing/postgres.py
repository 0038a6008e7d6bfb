"""A private PostgreSQL server for tests and benchmarks: `initdb` into a
temporary directory, a free port, `pg_ctl start`; no system service needed.

The binaries are looked up on PATH, then in Debian's /usr/lib/postgresql/*/bin.
`initdb` refuses to run as root: as root, the cluster runs as the `postgres`
user (Debian's package creates it) through `runuser`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["PASSWORD", "PostgresCluster", "find_bin_dir", "unavailable_reason"]

# The superuser's password: the server asks for it over TCP (scram-sha-256),
# so a test can also check what a wrong password does.
PASSWORD = "ferrymq-test"


def find_bin_dir() -> Path | None:
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found is None:
            break
        # Debian's /usr/bin/pg_ctl is a wrapper script; the real ones sit together.
        real = Path(os.path.realpath(found)).parent
        if (
            (real / "initdb").exists()
            and (real / "pg_ctl").exists()
            and (real / "postgres").exists()
        ):
            return real
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def unavailable_reason() -> str | None:
    """Why a private PostgreSQL cannot be started here, or None if it can."""
    if find_bin_dir() is None:
        return (
            "PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs Debian's postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to drop to the postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresCluster:
    """`start()`, `url(dbname)`, `create_database()`, `restart()`, `stop()`."""

    def __init__(self, *, fsync: bool = True) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason() or "no PostgreSQL")
        self.bin = bin_dir
        self.fsync = fsync
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ferrymq-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = list(cmd)
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresCluster:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E", "UTF8",
        )  # fmt: skip
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            f"-c fsync={'on' if self.fsync else 'off'}",
            "-c max_connections=200",
        ]
        self._pg_ctl("start", "-w", "-t", "60", "-o", " ".join(options), "-l", str(self.log))
        return self

    def _pg_ctl(self, *args: str) -> None:
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args, check=False)
        if result.returncode != 0:
            with contextlib.suppress(OSError):
                tail = self.log.read_text()[-2000:]
            raise RuntimeError(f"pg_ctl {args[0]} failed: {result.stderr}\n{tail}")

    def url(self, dbname: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        result = self._run(
            str(self.bin / "psql"),
            "-h", str(self.root),
            "-p", str(self.port),
            "-U", "postgres",
            "-d", dbname,
            "-At",
            "-v", "ON_ERROR_STOP=1",
            "-c", sql,
        )  # fmt: skip
        return result.stdout.strip()

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        # With -l: the new postmaster must not inherit our captured stdout,
        # or waiting for pg_ctl's output would wait for the server to end.
        self._pg_ctl("restart", "-w", "-t", "60", "-m", "fast", "-l", str(self.log))

    def stop(self) -> None:
        if self.data.exists():
            self._pg_ctl("stop", "-w", "-t", "30", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
