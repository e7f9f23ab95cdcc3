"""The stack's private PostgreSQL cluster: `.local/pg`, 127.0.0.1 only, databases warehouse and airflow.

initdb and postgres refuse to run as root, so when we are root they run as an unprivileged system
user (`postgres` if the machine has one, else `nobody`) that owns the cluster's directory. If that
user cannot reach `.local/pg` (a parent directory it may not traverse), the cluster lives under
/tmp instead, in a directory named after the repository's path. The role's password is generated
once and kept in `.local/pg-password` (mode 600); it is never printed.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dev.local_aws import config

ROLE = "stack"
DATABASES = ("warehouse", "airflow")
PASSWORD_FILE = config.LOCAL / "pg-password"
PORT_FILE = config.LOCAL / "pg-port"
LOG_FILE = config.LOGS / "postgres.log"
# A unix socket path must fit in 107 bytes; beyond that the socket goes to a short /tmp directory.
MAX_SOCKET_DIR = 80


class PostgresError(Exception):
    pass


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    password: str

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"


def pg_bin() -> Path:
    configured = os.environ.get("PG_BIN")
    candidates = [Path(configured)] if configured else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresError("PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin; set PG_BIN).")


def server_user() -> str | None:
    """The user the server runs as, or None to run as ourselves (when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresError("Running as root, but neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL.")


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _usable_by(user: str | None, directory: Path) -> bool:
    if user is None:
        return True
    probe = subprocess.run(
        _as_user(user, ["test", "-w", str(directory), "-a", "-x", str(directory)]), capture_output=True
    )
    return probe.returncode == 0


def _fallback_dir() -> Path:
    name = f"local-aws-pg-{hashlib.sha256(str(config.ROOT).encode()).hexdigest()[:12]}"
    return Path("/tmp") / name  # noqa: S108 - cluster_dir checks it with lstat (_check_private) before use


def _check_private(directory: Path, user: str | None) -> None:
    """Refuse a directory in /tmp that anyone else could have made: the cluster's data and socket go there.

    Another local user may create the predictable name first, as a symlink to somewhere else or as a
    directory they own and can fill. `lstat` sees the entry itself, never a symlink's target; /tmp's
    sticky bit then keeps others from replacing a directory that is ours.
    """
    entry = os.lstat(directory)
    owners = {os.geteuid()} | ({pwd.getpwnam(user).pw_uid} if user else set())
    if not stat.S_ISDIR(entry.st_mode):
        raise PostgresError(f"{directory} is not a directory (a symlink?); remove it and start the stack again.")
    if entry.st_uid not in owners:
        raise PostgresError(
            f"{directory} belongs to uid {entry.st_uid}, not to us; remove it and start the stack again."
        )
    if entry.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PostgresError(f"{directory} is writable by others; remove it and start the stack again.")


def cluster_dir(user: str | None) -> Path:
    preferred = config.LOCAL / "pg"
    preferred.mkdir(parents=True, exist_ok=True)
    _chown(preferred, user)
    if _usable_by(user, preferred) and len(str(preferred / "run")) <= MAX_SOCKET_DIR:
        return preferred
    fallback = _fallback_dir()
    fallback.mkdir(mode=0o700, exist_ok=True)
    _check_private(fallback, user)
    _chown(fallback, user)
    if not _usable_by(user, fallback):
        raise PostgresError(
            f"No directory usable by the '{user}' user for PostgreSQL (tried {preferred} and {fallback})."
        )
    return fallback


def _password() -> str:
    if PASSWORD_FILE.exists():
        return PASSWORD_FILE.read_text().strip()
    password = secrets.token_hex(16)
    config.LOCAL.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(password)
    return password


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((config.HOST, 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers do: a port in TIME_WAIT after a restart is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((config.HOST, port))
            return True
        except OSError:
            return False


def _connect(cluster: Cluster, database: str = "postgres", timeout: int = 3):  # type: ignore[no-untyped-def]
    import psycopg2

    return psycopg2.connect(
        host=cluster.host,
        port=cluster.port,
        user=cluster.user,
        password=cluster.password,
        dbname=database,
        connect_timeout=timeout,
    )


def _accepts(cluster: Cluster) -> bool:
    try:
        _connect(cluster).close()
        return True
    except Exception:
        return False


def saved_cluster() -> Cluster | None:
    if not (PORT_FILE.exists() and PASSWORD_FILE.exists()):
        return None
    return Cluster(config.HOST, int(PORT_FILE.read_text().strip()), ROLE, PASSWORD_FILE.read_text().strip())


def is_healthy() -> bool:
    cluster = saved_cluster()
    return cluster is not None and _accepts(cluster)


def ensure_running() -> Cluster:
    """Start the cluster (creating it on first use) unless it already accepts connections."""
    current = saved_cluster()
    if current is not None and _accepts(current):
        _ensure_databases(current)
        return current

    user = server_user()
    base = cluster_dir(user)
    data = base / "data"
    sockets = base / "run"
    bin_dir = pg_bin()
    password = _password()
    config.LOGS.mkdir(parents=True, exist_ok=True)
    # The server writes its own log, so it must sit where the server's user can reach it.
    log_file = LOG_FILE if base == config.LOCAL / "pg" else base / "postgres.log"
    log_file.touch()
    _chown(log_file, user)

    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)
        pwfile = base / "initdb-pw"
        with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(password)
        _chown(pwfile, user)
        try:
            result = subprocess.run(
                _as_user(
                    user,
                    [
                        str(bin_dir / "initdb"),
                        "-D", str(data),
                        "-U", ROLE,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "-E", "UTF8",
                        "--locale=C",
                        "--no-sync",
                    ],
                ),
                capture_output=True,
                text=True,
                cwd=base,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    sockets.mkdir(exist_ok=True)
    _chown(sockets, user)
    # A stale pid file from a killed server would make pg_ctl refuse to start.
    _clear_stale_pid(data)

    port = current.port if current is not None and _port_free(current.port) else _free_port()
    # A disposable local cluster: durability across an OS crash is not worth the fsync cost.
    options = (
        f"-p {port} -k {sockets} -c listen_addresses={config.HOST} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    )
    result = subprocess.run(
        _as_user(
            user,
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start"],
        ),
        capture_output=True,
        text=True,
        cwd=base,
        start_new_session=True,
    )
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-5:]
        raise PostgresError("PostgreSQL did not start:\n  " + "\n  ".join(tail or [result.stderr.strip()]))
    PORT_FILE.write_text(str(port))
    cluster = Cluster(config.HOST, port, ROLE, password)
    try:
        _ensure_databases(cluster)
    except Exception as exc:
        raise PostgresError(
            f"PostgreSQL started on port {port} but refuses the stack's role ({str(exc).strip()}); "
            f"to start afresh, run `make down` and remove {base} and {PASSWORD_FILE}."
        ) from None
    return cluster


def _clear_stale_pid(data: Path) -> None:
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
    except PermissionError:
        pass


def _ensure_databases(cluster: Cluster) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            connection = _connect(cluster)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for database in DATABASES:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()


def stop() -> bool:
    """Stop the cluster if it runs; True when it was running."""
    user = server_user()
    for base in (config.LOCAL / "pg", _fallback_dir()):
        data = base / "data"
        if not (data / "postmaster.pid").exists():
            continue
        result = subprocess.run(
            _as_user(user, [str(pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"]),
            capture_output=True,
            text=True,
            cwd=base,
        )
        if result.returncode != 0 and (data / "postmaster.pid").exists():
            raise PostgresError(f"pg_ctl stop failed: {result.stderr.strip()}")
        return True
    return False
