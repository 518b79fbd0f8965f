"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl start`` on a unix socket
in that folder (no TCP port, so parallel runs cannot collide), one database, and ``pg_ctl stop -m fast`` afterwards.

The server binaries come from the PATH, else from Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest). The
server refuses to run as root, so under root ``initdb``/``pg_ctl`` run as an unprivileged account (``postgres`` if it
exists, else ``nobody``) through ``subprocess``'s ``user=``; the tests connect as the server's superuser ``postgres``
with ``trust`` authentication on the socket, from any local account.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUPERUSER = "postgres"
PORT = 5432  # names the socket file only: the server listens on no TCP address
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


@contextlib.contextmanager
def postgres_server(database: str = "sb3_dsdpg_test") -> Iterator[str]:
    """Start a server with one empty ``database``; yield its SQLAlchemy URL (psycopg2, unix socket); stop and delete."""
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
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            account,
            base,
        )
        options = f"-c listen_addresses='' -k {base} -p {PORT} -c fsync=off -c full_page_writes=off"
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
        _run([str(createdb), "-h", str(base), "-p", str(PORT), "-U", SUPERUSER, database], account, base)
        yield f"postgresql+psycopg2://{SUPERUSER}@/{database}?host={base}&port={PORT}"
    except PostgresUnavailable as error:
        log = base / "server.log"
        if log.is_file():
            raise PostgresUnavailable(f"{error}\nserver log:\n{log.read_text()[-2000:]}") from None
        raise
    finally:
        if started:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], account, base)
        shutil.rmtree(base, ignore_errors=True)
