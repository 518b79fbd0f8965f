"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl start`` on a unix socket
in that folder and on a free TCP port of 127.0.0.1, one database owned by one password-protected account, and
``pg_ctl stop -m fast`` afterwards.

Workers on the server's machine connect through the socket (``trust``, no password); workers on other machines would
connect over TCP with the password (``scram-sha-256``): the TCP URL is that second kind, tried from this machine.

The server binaries come from the PATH, else from Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest). The
server refuses to run as root, so under root ``initdb``/``pg_ctl`` run as an unprivileged account (``postgres`` if it
exists, else ``nobody``) through ``subprocess``'s ``user=``. The server's superuser ``postgres`` only sets up the
account ``optuna`` and its database; the tests connect as ``optuna``: through the socket with ``trust`` (from any
local account), over TCP with its password.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
ROLE = "optuna"  # owns the database: the tables optuna creates through either URL belong to it
PASSWORD = "sb3-dsdpg-test"
UNPRIVILEGED_ACCOUNTS = ("postgres", "nobody")


class PostgresUnavailable(RuntimeError):
    """No server binary, or no account it may run as, or it did not start: the reason a test skips."""


def find_server_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: the PATH's, else the newest Debian one."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)

    def version(path: Path) -> tuple:
        return tuple(int(part) if part.isdigit() else 0 for part in path.parent.name.split("."))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on the PATH nor in /usr/lib/postgresql/*/bin: "
        "install them (Debian: apt-get install postgresql)"
    )


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None for the current one, an unprivileged one under root."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_ACCOUNTS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable(f"running as root and none of the accounts {UNPRIVILEGED_ACCOUNTS} exists to run postgres")


def _run(args: list[str], account: pwd.struct_passwd | None, cwd: Path, timeout: float = 120) -> None:
    as_account = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    if account is not None:
        env["HOME"] = str(cwd)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **as_account)
    if proc.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


@dataclass(frozen=True)
class PostgresURLs:
    """SQLAlchemy URLs (psycopg2) of one database: through the unix socket, and over TCP with the password."""

    socket: str
    tcp: str

    def with_password(self, password: str) -> str:
        """The TCP URL with another password (to see the server refuse it)."""
        return self.tcp.replace(f":{PASSWORD}@", f":{password}@")


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database: str = "sb3_dsdpg_test") -> Iterator[PostgresURLs]:
    """Start a server with one empty ``database``; yield its URLs (unix socket, TCP); stop and delete."""
    bin_dir = find_server_bin()
    account = server_account()
    # /tmp, not a deep pytest folder: a unix socket path is limited to 107 bytes, and pytest's root-owned 0700 folders
    # would keep the unprivileged account out.
    base = Path(tempfile.mkdtemp(prefix="sb3_dsdpg_pg_", dir="/tmp" if Path("/tmp").is_dir() else None))
    data = base / "data"
    started = False
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            account,
            base,
        )
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -k {base} -p {port} -c fsync=off -c full_page_writes=off"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            account,
            base,
        )
        started = True
        createdb = bin_dir / "createdb"
        if not createdb.is_file():
            createdb = Path(shutil.which("createdb") or "createdb")
        psql = bin_dir / "psql"
        if not psql.is_file():
            psql = Path(shutil.which("psql") or "psql")
        connect = ["-h", str(base), "-p", str(port), "-U", SUPERUSER]
        create_role = f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"
        _run([str(psql), *connect, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", create_role], account, base)
        _run([str(createdb), *connect, "-O", ROLE, database], account, base)
        yield PostgresURLs(
            socket=f"postgresql+psycopg2://{ROLE}@/{database}?host={base}&port={port}",
            tcp=f"postgresql+psycopg2://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{database}",
        )
    except PostgresUnavailable as error:
        log = base / "server.log"
        if log.is_file():
            raise PostgresUnavailable(f"{error}\nserver log:\n{log.read_text()[-2000:]}") from None
        raise
    finally:
        if started:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], account, base)
        shutil.rmtree(base, ignore_errors=True)
