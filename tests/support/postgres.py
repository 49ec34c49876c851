"""A throwaway PostgreSQL server for the flag-store tests, from Debian's binaries (``postgresql``).

Each test session that needs it runs ``initdb`` into a temporary folder and starts the server on
127.0.0.1 at a free port, with password authentication over TCP (the password comes from a
``PGPASSFILE``, as a deployment's should) and its socket in that folder; at the end it stops that
server with ``pg_ctl`` (or, failing that, by the PID in its ``postmaster.pid``) and deletes the
folder. PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user
that Debian's package creates (``runuser``).

Outside CI a machine without the binaries skips these tests with the reason; ``.ci/run`` installs
them and sets ``LRCLR_REQUIRE_POSTGRES=1``, under which a missing server fails instead.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port

REQUIRE_ENV = "LRCLR_REQUIRE_POSTGRES"
BIN_ENV = "LRCLR_POSTGRES_BIN"  # a folder with initdb and pg_ctl, if not Debian's
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
SUPERUSER = "lrclr_test"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Binaries:
    folder: Path
    run_as: str | None  # the user to run the server as (under root), else None: ourselves


def _newest_debian_binaries() -> Path | None:
    found = [Path(p) for p in glob.glob(DEBIAN_BINARIES) if (Path(p) / "initdb").exists()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def require_postgres() -> Binaries:
    """The server binaries and who runs them, or a skip (a failure under ``LRCLR_REQUIRE_POSTGRES=1``)."""
    problem, folder, run_as = None, None, None
    try:
        import psycopg  # noqa: F401 - the store's driver
    except ImportError:
        problem = "the psycopg package is not installed (pip install -r requirements.txt)"
    if problem is None:
        folder = Path(os.environ[BIN_ENV]) if os.environ.get(BIN_ENV) else _newest_debian_binaries()
        if folder is None or not (folder / "initdb").exists() or not (folder / "pg_ctl").exists():
            problem = (f"no PostgreSQL server binaries (initdb, pg_ctl) in {folder or DEBIAN_BINARIES} "
                       f"(apt-get install postgresql, or set {BIN_ENV})")
    if problem is None and os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres").pw_name
        except KeyError:
            problem = ("running as root, and PostgreSQL refuses to: no 'postgres' user to run it as "
                       "(Debian's postgresql package creates one)")
        if problem is None and shutil.which("runuser") is None:
            problem = "running as root and no runuser to start PostgreSQL as the 'postgres' user"
    if problem:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return Binaries(folder, run_as)


class Cluster:
    """One running throwaway server; ``new_database()`` gives each test its own empty database."""

    def __init__(self, binaries: Binaries) -> None:
        self.binaries = binaries
        # Under root, in /tmp: the server's user must reach the folder, and a root TMPDIR may be
        # inside a folder only root can enter.
        self.root = Path(tempfile.mkdtemp(prefix="lrclr-postgres-", dir="/tmp" if binaries.run_as else None))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_urlsafe(18)
        self.passfile = self.root / "pgpass"
        self.port = 0
        self._names = itertools.count(1)
        if binaries.run_as:  # the server's user must own its folder; the tests (root) read it anyway
            user = pwd.getpwnam(binaries.run_as)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        command = [str(self.binaries.folder / args[0]), *args[1:]]
        if self.binaries.run_as:
            command = ["runuser", "-u", self.binaries.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def _as_server_user(self, path: Path) -> None:
        if self.binaries.run_as:
            user = pwd.getpwnam(self.binaries.run_as)
            os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        secret = self.root / "superuser-password"
        secret.write_text(self.password + "\n")
        secret.chmod(0o600)
        self._as_server_user(secret)
        # --no-sync only skips flushing the fresh cluster's files once; the server itself runs
        # with fsync and synchronous_commit on (the defaults), as a deployment's would.
        done = self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={secret}",
                         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                         "--locale=C.UTF-8", "--no-sync", "--no-instructions")
        secret.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        for attempt in range(3):  # a free port may be taken between choosing it and binding it
            self.port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                       f"-c unix_socket_directories={self.root} -c max_connections=100")
            started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                                "-w", "-t", str(START_TIMEOUT_S), "start")
            if started.returncode == 0:
                break
        else:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}\n{self.server_log()}")
        # libpq reads the password from here, as README tells deployments to do
        self.passfile.write_text(f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self.password}\n")
        self.passfile.chmod(0o600)

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def url(self, database: str, *, password: str | None = None) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self):
        """A connection to the maintenance database (autocommit: CREATE DATABASE needs it)."""
        import psycopg

        return psycopg.connect(self.url("postgres"), autocommit=True, passfile=str(self.passfile))

    def new_database(self) -> str:
        """The URL (no password in it) of a new, empty database."""
        name = f"flags_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")  # our own name: no quoting needed
        return self.url(name)

    def drop_database(self, url: str) -> None:
        with self.admin() as conn:  # FORCE: a store a test left open still holds a connection
            conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def stop(self) -> None:
        if self.data.exists():
            stopped = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
            pid_file = self.data / "postmaster.pid"
            if stopped.returncode != 0 and pid_file.exists():
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGQUIT)  # postgres' own "immediate shutdown"
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def throwaway_cluster(binaries: Binaries):
    """A started server, with ``PGPASSFILE`` pointing at its password for this process and its
    children (the tests' worker processes); stopped and deleted at the end."""
    cluster = Cluster(binaries)
    previous = os.environ.get("PGPASSFILE")
    try:
        cluster.start()
        os.environ["PGPASSFILE"] = str(cluster.passfile)
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = previous
        cluster.stop()
