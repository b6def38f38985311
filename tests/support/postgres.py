"""A PostgreSQL server for the tests: initdb and pg_ctl in a temporary directory.

``PostgresServer.start()`` finds Debian's server binaries (``initdb`` on PATH, else the
newest /usr/lib/postgresql/<version>/bin), creates a cluster in a fresh directory (in
/dev/shm when it has room, else the temp dir) with password (scram-sha-256) authentication
for the superuser ``campaign_test``, and starts it on a free port of 127.0.0.1. As root,
the binaries run as the user ``postgres`` (they refuse to run as root). ``stop()`` kills it
and removes the directory; it also runs at exit. A server left by a killed session is
stopped and its directory removed by the next session's ``start()`` (the directory names
its owner's pid).

With ``CAMPAIGN_TEST_PG_URL`` set (a superuser URL), ``PostgresServer.from_env()`` uses that
server instead and starts nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from campaign.errors import LockedError
from campaign.store.place import StatePlace

URL_ENV = "CAMPAIGN_TEST_PG_URL"
USER = "campaign_test"
DIR_PREFIX = "campaign-pg-"
OWNER_FILE = "owner.pid"
READY_TIMEOUT_S = 60.0
# A throwaway server: durability off (fsync), room for the tests' concurrent connections,
# and a small WAL (each CREATE DATABASE writes a few MB of it; the directory may be in RAM).
SERVER_SETTINGS = ["fsync=off", "full_page_writes=off", "max_connections=200"]
SERVER_SETTINGS += ["max_wal_size=128MB", "min_wal_size=32MB"]
SHM = Path("/dev/shm")
SHM_MIN_FREE = 2 * 1024**3
INSTALL_HINT = (
    "install Debian's package `postgresql` (.ci/run does: apt-get install -y postgresql), "
    f"or set {URL_ENV} to a superuser URL of a running server"
)
_names = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """No server could be found or started; the message says what to install or set."""


@dataclass(frozen=True)
class PgDatabase:
    """A database made for one test: its URL with and without the password."""

    name: str
    url: str = field(repr=False)
    url_no_password: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Backend:
    """Where a test's campaign keeps its state: SQLite files, or a fresh PostgreSQL database.

    ``url`` is None for SQLite; for PostgreSQL it carries the password (give it to the
    library or through ``CAMPAIGN_STATE_URL``), while ``url_no_password`` is what a campaign
    file may hold (the file refuses a password; pair it with ``PGPASSWORD``).
    """

    name: Literal["sqlite", "postgresql"]
    url: str | None = field(default=None, repr=False)
    url_no_password: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def is_postgres(self) -> bool:
        """True for the PostgreSQL backend."""
        return self.url is not None

    def campaign_yaml(self) -> str:
        """The campaign-file line that selects this backend ("" for SQLite)."""
        return f"state_url: {self.url_no_password}\n" if self.url_no_password else ""

    def env(self) -> dict[str, str]:
        """Environment for a ``campaign`` process: the password, which the file cannot hold."""
        return {"PGPASSWORD": self.password} if self.password else {}


def make_url(host: str, port: int, user: str, password: str | None, dbname: str) -> str:
    """A postgresql:// URL; the password is left out when None."""
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    if host.startswith("/"):  # a socket directory goes in the query
        return f"postgresql://{auth}@/{quote(dbname, safe='')}?host={quote(host)}&port={port}"
    netloc = f"[{host}]" if ":" in host else host
    return f"postgresql://{auth}@{netloc}:{port}/{quote(dbname, safe='')}"


def find_bindir(debian_root: Path = Path("/usr/lib/postgresql")) -> Path:
    """The directory of initdb and pg_ctl: PATH first, then the newest Debian version."""
    on_path = shutil.which("initdb")
    if on_path:
        bindir = Path(on_path).resolve().parent
        if (bindir / "pg_ctl").exists():
            return bindir
    candidates = [p.parent for p in debian_root.glob("*/bin/initdb")]
    candidates = [d for d in candidates if (d / "pg_ctl").exists()]
    if not candidates:
        raise PostgresUnavailable(
            "the tests need a PostgreSQL server and found no initdb/pg_ctl (neither on PATH "
            f"nor in {debian_root}/*/bin): {INSTALL_HINT}"
        )
    return max(candidates, key=lambda d: tuple(int(n) for n in re.findall(r"\d+", d.parent.name)))


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "the tests run as root, and PostgreSQL refuses root: it must run as the user "
            f"`postgres`, which does not exist here; {INSTALL_HINT} (the package creates it)"
        ) from None


def _as_server_user(argv: list[str], account: pwd.struct_passwd | None) -> list[str]:
    if account is None:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", account.pw_name, "--", *argv]
    return ["su", account.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]


def _run(argv: list[str], account: pwd.struct_passwd | None, cwd: Path) -> None:
    """Run a server tool (as the server's account); raise with its output when it fails."""
    try:
        done = subprocess.run(
            _as_server_user(argv, account),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT_S + 30,
            start_new_session=True,  # Ctrl-C reaches pytest, which then stops the server itself
        )
    except subprocess.TimeoutExpired:
        raise PostgresUnavailable(
            f"{Path(argv[0]).name} did not finish in {READY_TIMEOUT_S + 30:.0f} s"
        ) from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise PostgresUnavailable(f"{Path(argv[0]).name} failed ({done.returncode}): {output}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _base_dirs() -> list[Path]:
    """Where server directories may go: RAM (/dev/shm) first, then the temp dir."""
    return [SHM, Path(tempfile.gettempdir()).resolve(), Path("/tmp")]


def base_dir(account: pwd.struct_passwd | None) -> Path:
    """Where a new server directory goes.

    /dev/shm when it has room (RAM: no waiting on a disk other jobs keep busy), else the
    temp dir, else /tmp. The socket path must stay short (108 bytes at most), and as root
    the account ``postgres`` must be able to reach the directory.
    """
    for base in _base_dirs():
        try:
            if base == SHM:
                stats = os.statvfs(base)
                if stats.f_bavail * stats.f_frsize < SHM_MIN_FREE:
                    continue
            reachable = account is None or all(
                d.stat().st_mode & stat.S_IXOTH or d.stat().st_uid == account.pw_uid
                for d in [base, *base.parents]
            )
        except OSError:
            continue
        if reachable and len(str(base)) <= 60:
            return base
    return Path("/tmp")


def sweep_leftovers(bindir: Path, account: pwd.struct_passwd | None) -> list[Path]:
    """Stop the servers and remove the directories of sessions that died; return them."""
    removed = []
    directories = {d for base in set(_base_dirs()) for d in base.glob(f"{DIR_PREFIX}*")}
    for directory in sorted(directories):
        try:
            owner = int((directory / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or a session still writing it
        if _pid_alive(owner):
            continue
        data = directory / "data"
        if (data / "postmaster.pid").exists():
            # As root, stop it as the account that owns it (a non-root session's server too).
            with contextlib.suppress(PostgresUnavailable, KeyError):
                owner_account = pwd.getpwuid(data.stat().st_uid) if account else None
                stop = [str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate"]
                _run([*stop, "-w", "-t", "30"], owner_account, directory)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases in (as a superuser)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    maintenance_db: str = "postgres"
    started_here: bool = False
    directory: Path | None = None
    bindir: Path | None = None
    version: int = 0
    _account: pwd.struct_passwd | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)
    _owner_pid: int = field(default=0, repr=False)

    @classmethod
    def from_env(cls) -> PostgresServer:
        """The server of ``CAMPAIGN_TEST_PG_URL`` if set, else one started here."""
        url = os.environ.get(URL_ENV, "").strip()
        return cls.from_url(url) if url else cls.start()

    @classmethod
    def from_url(cls, url: str) -> PostgresServer:
        """A running server given by a superuser URL (password there or in PGPASSWORD)."""
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise PostgresUnavailable(f"{URL_ENV} is not a PostgreSQL URL") from None
        server = cls(
            host=str(params.get("host") or "127.0.0.1"),
            port=int(params.get("port") or 5432),
            user=str(params.get("user") or os.environ.get("PGUSER") or "postgres"),
            password=str(params.get("password") or os.environ.get("PGPASSWORD") or ""),
            maintenance_db=str(params.get("dbname") or "postgres"),
        )
        server._wait_ready(what=f"the server of {URL_ENV} ({server.host}:{server.port})")
        return server

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb and start a server in a fresh temp directory; stopped at exit at the latest."""
        bindir = find_bindir()
        account = server_account()
        sweep_leftovers(bindir, account)
        directory = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=base_dir(account)))
        (directory / OWNER_FILE).write_text(f"{os.getpid()}\n")
        server = cls(
            host="127.0.0.1",
            port=0,
            user=USER,
            password=secrets.token_urlsafe(24),
            started_here=True,
            directory=directory,
            bindir=bindir,
            _account=account,
            _owner_pid=os.getpid(),
        )
        atexit.register(server.stop)
        try:
            server._initdb()
            server._start_on_free_port()
            server._wait_ready(what=f"the test server in {directory}")
        except BaseException:
            server.stop()
            raise
        return server

    def _initdb(self) -> None:
        assert self.directory is not None and self.bindir is not None
        directory, account = self.directory, self._account
        if account is not None:
            os.chown(directory, account.pw_uid, account.pw_gid)
        os.chmod(directory, 0o700)
        pwfile = directory / "pwfile"
        pwfile.touch(mode=0o600)
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        pwfile.write_text(self.password + "\n")
        initdb = [str(self.bindir / "initdb"), "-D", str(directory / "data"), "-U", self.user]
        initdb += [f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8"]
        initdb += ["--no-sync", "--no-instructions"]
        try:
            _run([*initdb, "--locale=C.UTF-8"], account, directory)
        except PostgresUnavailable:  # no C.UTF-8 locale: C takes any encoding
            shutil.rmtree(directory / "data", ignore_errors=True)
            _run([*initdb, "--locale=C"], account, directory)
        finally:
            pwfile.unlink(missing_ok=True)

    def _start_on_free_port(self) -> None:
        assert self.directory is not None and self.bindir is not None
        log = self.directory / "server.log"
        for attempt in range(3):
            self.port = _free_port()
            options = f"-p {self.port} -h 127.0.0.1 -k {self.directory}"
            options += "".join(f" -c {setting}" for setting in SERVER_SETTINGS)
            pg_ctl = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.directory / "data")]
            pg_ctl += ["-w", "-t", str(int(READY_TIMEOUT_S)), "-l", str(log), "-o", options]
            try:
                _run(pg_ctl, self._account, self.directory)
                return
            except PostgresUnavailable as exc:
                text = log.read_text(errors="replace") if log.exists() else ""
                if "could not bind" in text and attempt < 2:
                    continue  # another process took the port between our probe and the bind
                raise PostgresUnavailable(f"{exc}\nserver log:\n{text[-2000:]}") from None

    def _wait_ready(self, *, what: str, timeout_s: float = 30.0) -> None:
        """Poll (libpq's ping) until the server answers, then connect: a refusal fails at once."""
        conninfo = make_conninfo(self.admin_url(), connect_timeout=5).encode()
        deadline = time.monotonic() + timeout_s
        # REJECT: starting up or shutting down; NO_RESPONSE: not listening (yet).
        while pq.PGconn.ping(conninfo) in (pq.Ping.REJECT, pq.Ping.NO_RESPONSE):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        try:
            with psycopg.connect(self.admin_url(), connect_timeout=5) as conn:
                self.version = conn.info.server_version
        except psycopg.OperationalError as exc:
            message = str(exc).replace(self.password, "***") if self.password else str(exc)
            raise PostgresUnavailable(f"{what} does not accept connections: {message}") from None

    def url(self, dbname: str, *, with_password: bool = True) -> str:
        """The URL of a database of this server (as the superuser)."""
        password = self.password if with_password and self.password else None
        return make_url(self.host, self.port, self.user, password, dbname)

    def admin_url(self) -> str:
        """The URL of the maintenance database, where databases are created and dropped."""
        return self.url(self.maintenance_db)

    def create_database(self) -> PgDatabase:
        """A new, empty database with a name no other test or session uses."""
        name = f"test_{os.getpid()}_{next(_names)}_{secrets.token_hex(3)}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        return PgDatabase(
            name=name,
            url=self.url(name),
            url_no_password=self.url(name, with_password=False),
            password=self.password,
        )

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the connections a test left open on it."""
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            if self.version >= 130000:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            else:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                drop = sql.SQL("DROP DATABASE IF EXISTS {}")
            conn.execute(drop.format(sql.Identifier(name)))

    def stop(self) -> None:
        """Kill a server started here and remove its directory (again: nothing happens)."""
        if self._stopped or not self.started_here or self.directory is None:
            return
        if os.getpid() != self._owner_pid:
            return  # a forked child exiting: the server belongs to its parent
        self._stopped = True
        atexit.unregister(self.stop)
        assert self.bindir is not None
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            pg_ctl = [str(self.bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate"]
            with contextlib.suppress(PostgresUnavailable):
                _run([*pg_ctl, "-w", "-t", "30"], self._account, self.directory)
        shutil.rmtree(self.directory, ignore_errors=True)


def acquire_when_free(place: StatePlace, deadline_s: float = 30.0) -> None:
    """Take and release a campaign's lock as soon as it is free: the kernel drops a killed
    holder's flock at once, the server a killed holder's advisory lock a moment later."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            with place.lock():
                return
        except LockedError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)
