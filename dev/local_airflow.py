"""Airflow's own services on the local stack, and backfills run to completion by them.

`make backfill FROM=.. TO=.. [PARALLEL=n]` calls `run_backfill()`. It starts, against the stack's
metadata database, the Airflow components a backfill needs: the api-server (127.0.0.1, a free port;
task workers talk to its execution API), the scheduler (LocalExecutor), the dag-processor and the
triggerer (the Glue tasks defer). It waits until the dag-processor has parsed the DAG file, unpauses
the DAG, creates the backfill with Airflow's own `airflow backfill create ... --reprocess-behavior
completed`, follows its runs in the metadata database and prints one line per day, then pauses the DAG
again if it was paused and stops the services. Ctrl-C or an error cancels the backfill first, so the
next one is not refused as "already running". Finished runs recorded at one of the range's logical
dates but for another day are removed first (see `_remove_runs_of_other_days`).

While its services run, a backfill holds `.local/airflow-services.lock` exclusively: its scheduler
would also run the tasks of an `airflow dags test` run of the DAG, so such runs (`make run` among
them) hold the lock shared (`no_backfill_running`): each waits for the other.

`make airflow` calls `start_ui()`: the same services, kept running in the background by a small
supervisor process (`serve`) until `make down` (`stop_services()`), with the UI's login in
`.local/stack.env`. The supervisor holds the lock exclusively for as long as the services run, so
while they do, `make backfill` and `make run` use them instead of starting services of their own or
running `airflow dags test` beside their scheduler (`shared_services()`).

The services share one JWT secret, generated once into `.local/airflow-jwt-secret`, and one UI login,
whose password SimpleAuthManager reads from `.local/airflow-ui-passwords.json` (both mode 600; the
password is printed by `make airflow` only). Their output goes to `.local/logs/airflow-<service>.log`;
task logs stay under `$AIRFLOW_HOME/logs`. A backfill's own scheduler ignores the DAG's cron schedule
(`use_job_schedule = False`): it wants only the backfill's runs, not the run of yesterday that
unpausing would create. Under `make airflow` the scheduler follows the schedule, as a deployed one does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dev.local_aws.stack import process_alive

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / ".local"
LOGS = LOCAL / "logs"
JWT_SECRET_FILE = LOCAL / "airflow-jwt-secret"
STATE_FILE = LOCAL / "airflow-services.json"
LOCK_FILE = LOCAL / "airflow-services.lock"
# SimpleAuthManager's users/passwords file: created here so that its one user's password is known
# (and never printed by the api-server, which only prints passwords it generates itself).
PASSWORDS_FILE = LOCAL / "airflow-ui-passwords.json"
SUPERVISOR_LOG = LOGS / "airflow-services.log"
UI_USER = "admin"
UI_ENV_KEYS = ("AIRFLOW_UI_URL", "AIRFLOW_UI_USER", "AIRFLOW_UI_PASSWORD")
BIN = Path(sys.executable).parent
AIRFLOW = BIN / "airflow"
HOST = "127.0.0.1"

SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
START_TIMEOUT = 180
PARSE_TIMEOUT = 240
CLI_TIMEOUT = 180
STOP_TIMEOUT = 45
# The scheduler marks a finished backfill complete every 30 s.
COMPLETE_TIMEOUT = 90
RECONNECT_TIMEOUT = 120
LOCK_TIMEOUT = 1800
POLL_SECONDS = 3
# Upper bound for one day's run, from its start to its end; the backfill's bound is this times the
# number of rounds of days at once.
DAY_TIMEOUT = timedelta(minutes=90)
TERMINAL = ("success", "failed")

Say = Callable[[str], None]


class LocalAirflowError(Exception):
    """An expected failure, reported as a message without a traceback."""


# -- settings shared by the services ---------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


def _secret(path: Path) -> str:
    """A random secret kept in `path` (mode 600), created on first use; never printed."""
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(48)
    _write_private(path, value + "\n")
    return value


def ui_password() -> str:
    """The UI user's password, from SimpleAuthManager's passwords file (created on first use)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        value = json.loads(PASSWORDS_FILE.read_text()).get(UI_USER)
        if value:
            return str(value)
    value = secrets.token_urlsafe(12)
    _write_private(PASSWORDS_FILE, json.dumps({UI_USER: value}) + "\n")
    return value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def services_env(stack_env: dict[str, str], port: int, parallel: int, scheduled: bool = False) -> dict[str, str]:
    """The environment of every service: the stack's, plus what makes them one Airflow.

    `scheduled`: whether the scheduler creates the DAG's scheduled runs (`make airflow`) or only
    runs what it is given (a backfill's own services).
    """
    base_url = f"http://{HOST}:{port}"
    ui_password()
    return {
        **stack_env,
        "PATH": f"{BIN}{os.pathsep}{stack_env.get('PATH', os.environ.get('PATH', ''))}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Deferred Glue tasks hold no slot, so a few slots per day at once are plenty; every slot
        # is a forked worker process.
        "AIRFLOW__CORE__PARALLELISM": str(max(4, 2 * parallel)),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(JWT_SECRET_FILE),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduled),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(PASSWORDS_FILE),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        # Pick up a changed DAG file quickly, but do not re-parse it in a loop.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "5",
    }


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _metadata_dsn(env: dict[str, str]) -> str:
    return env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://", 1)


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


# -- the services ----------------------------------------------------------------------------


def _command(service: str, port: int) -> list[str]:
    if service == "api-server":
        return [str(AIRFLOW), "api-server", "--host", HOST, "--port", str(port), "--workers", "1"]
    return [str(AIRFLOW), service]


def _is_airflow_group(pgid: int) -> bool:
    """Whether `pgid` still leads a process group running Airflow (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "airflow" in cmdline


def _stop_groups(pgids: list[int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM every group, wait for their leaders, then SIGKILL what is left; returns the killed."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process_alive(pgid) for pgid in pgids) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = [pgid for pgid in pgids if process_alive(pgid)]
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return killed


def _stop_leftovers(say: Say) -> None:
    """Services of an earlier run that was killed too hard to stop them (`kill -9`, a crash)."""
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return
    pgids = [
        int(pid) for pid in state.get("pids", {}).values() if process_alive(int(pid)) and _is_airflow_group(int(pid))
    ]
    if pgids:
        say(f"stopping Airflow services left over from an earlier run (pids {', '.join(map(str, pgids))})")
        _stop_groups(pgids)
    STATE_FILE.unlink(missing_ok=True)


@dataclass
class Services:
    """The running services; `check()` fails as soon as one of them has exited.

    `shared`: started by `make airflow`, not by this process, which must leave them running.
    """

    env: dict[str, str]
    port: int
    started_at: datetime
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    shared: bool = False

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self, service: str) -> Path:
        return LOGS / f"airflow-{service}.log"

    def check(self) -> None:
        for service, process in self.processes.items():
            if process.poll() is not None:
                raise LocalAirflowError(
                    f"the Airflow {service} exited (code {process.returncode}); see {_rel(self.log(service))}"
                )
        for service, pid in self.pids.items():
            if service not in self.processes and not process_alive(pid):
                raise LocalAirflowError(f"the Airflow {service} has exited; see {_rel(self.log(service))}")

    def airflow(self, *args: str, timeout: int = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """An `airflow` CLI command in the services' environment; its output is returned, not shown."""
        try:
            return subprocess.run(
                [str(AIRFLOW), *args], env=self.env, cwd=REPO, capture_output=True, text=True,
                timeout=timeout, start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise LocalAirflowError(f"`airflow {' '.join(args)}` did not finish within {timeout} s") from None


def _start(env: dict[str, str], port: int, say: Say, mode: str = "backfill") -> Services:
    LOGS.mkdir(parents=True, exist_ok=True)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    services = Services(env=env, port=port, started_at=datetime.now(timezone.utc))
    for service in SERVICES:
        log = services.log(service)
        with open(log, "ab") as handle:
            handle.write(f"\n==== {services.started_at.isoformat()} airflow {service} ====\n".encode())
            services.processes[service] = subprocess.Popen(
                _command(service, port), env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=handle,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
    services.pids = {name: process.pid for name, process in services.processes.items()}
    STATE_FILE.write_text(json.dumps({
        "mode": mode, "owner": os.getpid(), "pids": services.pids, "port": port,
        "started_at": services.started_at.isoformat(),
    }))
    say(
        f"started Airflow {', '.join(SERVICES)} (api-server on {services.base_url}; "
        f"logs .local/logs/airflow-*.log)"
    )
    return services


def _stop(services: Services, say: Say) -> None:
    pids = {process.pid: service for service, process in services.processes.items()}
    killed = _stop_groups(list(pids))
    STATE_FILE.unlink(missing_ok=True)
    if killed:
        names = ", ".join(pids[pid] for pid in killed)
        say(f"stopped the Airflow services (killed the {names} after {STOP_TIMEOUT} s)")
    else:
        say("stopped the Airflow services")


def _wait_for_api(services: Services) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        services.check()
        try:
            with urllib.request.urlopen(f"{services.base_url}/execution/health", timeout=3) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise LocalAirflowError(
        f"the Airflow api-server did not answer within {START_TIMEOUT} s; see {_rel(services.log('api-server'))}"
    )


def _take_lock(
    lock: Any, mode: int, waiting_for: str, say: Say, stack_env: dict[str, str] | None = None
) -> Services | None:
    """Take LOCK_FILE in `mode` (fcntl.LOCK_EX or LOCK_SH), waiting up to LOCK_TIMEOUT for its holders.

    With `stack_env`, services of `make airflow` that are (or come) up end the wait: they are
    returned, to be used instead, and the lock is not taken.
    """
    deadline = time.monotonic() + LOCK_TIMEOUT
    said = False
    while True:
        if stack_env is not None:
            shared = shared_services(stack_env)
            if shared is not None:
                return shared
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        if time.monotonic() > deadline:
            raise LocalAirflowError(f"{_rel(LOCK_FILE)} was still held after {LOCK_TIMEOUT} s by {waiting_for}")
        if not said:
            say(f"waiting for {waiting_for} to finish (it holds {_rel(LOCK_FILE)})")
            said = True
        time.sleep(5 if stack_env is None else 2)


@contextlib.contextmanager
def no_backfill_running(say: Say = print, stack_env: dict[str, str] | None = None) -> Iterator[Services | None]:
    """Keep backfills out while an `airflow dags test` run of the DAG goes, waiting for a running one.

    A backfill's scheduler would also queue and run the tasks of a `dags test` run, with its own
    environment: the two hold LOCK_FILE, the backfill exclusively and `dags test` runs shared.
    With `stack_env`, yields the services of a running `make airflow` instead when there are any (the
    day is then to be run by their scheduler, see `run_day`); otherwise yields None.
    """
    LOCAL.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        shared = _take_lock(lock, fcntl.LOCK_SH, "a running backfill", say, stack_env)
        try:
            yield shared
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def running_services(stack_env: dict[str, str], parallel: int, say: Say = print) -> Iterator[Services]:
    """Start the services, yield them once the api-server answers, and stop them on the way out.

    When `make airflow` runs, its services are yielded instead, and left running.
    """
    LOCAL.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        # Another backfill holds the lock exclusively, `airflow dags test` runs hold it shared.
        shared = _take_lock(lock, fcntl.LOCK_EX, "another backfill or an `airflow dags test` run", say, stack_env)
        if shared is not None:
            say(f"using the Airflow services of `make airflow` ({shared.base_url})")
            yield shared
            return
        _stop_leftovers(say)
        port = free_port()
        services = _start(services_env(stack_env, port, parallel), port, say)
        try:
            _wait_for_api(services)
            yield services
        finally:
            _stop(services, say)


# -- `make airflow`: the services in the background ------------------------------------------


def _state() -> dict[str, Any]:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def _supervisor_alive(state: dict[str, Any]) -> bool:
    owner = int(state.get("owner") or 0)
    if state.get("mode") != "ui" or not owner or not process_alive(owner):
        return False
    try:
        cmdline = Path(f"/proc/{owner}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "dev.local_airflow" in cmdline


def shared_services(stack_env: dict[str, str]) -> Services | None:
    """The services of a running `make airflow`, or None."""
    state = _state()
    if not _supervisor_alive(state):
        return None
    port = int(state["port"])
    parallel = settings_parallel(stack_env)
    return Services(
        env=services_env(stack_env, port, parallel, scheduled=True),
        port=port,
        started_at=datetime.fromisoformat(state["started_at"]),
        pids={name: int(pid) for name, pid in state["pids"].items()},
        shared=True,
    )


def settings_parallel(stack_env: dict[str, str]) -> int:
    from include import settings

    return settings.load(stack_env).number("GLUE_MAX_CONCURRENT_RUNS")


@dataclass
class UiLogin:
    url: str
    user: str
    password: str
    reused: bool


def _ui_answers(services: Services) -> bool:
    """Whether the UI's page and the REST API's health check both answer."""
    try:
        with urllib.request.urlopen(f"{services.base_url}/api/v2/monitor/health", timeout=5) as response:
            if response.status != 200:
                return False
        with urllib.request.urlopen(f"{services.base_url}/", timeout=5) as response:
            return response.status == 200 and b"<html" in response.read(4096).lower()
    except (OSError, urllib.error.URLError):
        return False


def _write_ui_env(login: UiLogin | None) -> None:
    """Add the UI's address and login to `.local/stack.env` (mode 600), or remove them."""
    from dev.local_aws.stack import config, read_env_file, write_env_file

    if not config.ENV_FILE.exists():
        return
    env = {key: value for key, value in read_env_file(config.ENV_FILE).items() if key not in UI_ENV_KEYS}
    if login is not None:
        env.update(zip(UI_ENV_KEYS, (login.url, login.user, login.password), strict=True))
    write_env_file(env)


def start_ui(stack_env: dict[str, str], dag_id: str, dag_file: str, say: Say = print) -> UiLogin:
    """Start the services in the background (or reuse running ones); return once the UI answers."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        services = _take_lock(lock, fcntl.LOCK_EX, "a backfill or an `airflow dags test` run", say, stack_env)
        if services is not None and _ui_answers(services):
            login = UiLogin(services.base_url, UI_USER, ui_password(), reused=True)
            _write_ui_env(login)
            return login
        if services is not None:
            raise LocalAirflowError(
                f"the Airflow services of `make airflow` run but the UI does not answer on {services.base_url}; "
                f"see {_rel(SUPERVISOR_LOG)} (`make down` stops them)"
            )
        _stop_leftovers(say)
        port = free_port()
        env = services_env(stack_env, port, settings_parallel(stack_env), scheduled=True)
        with open(SUPERVISOR_LOG, "ab") as log:
            # The supervisor inherits the lock: it holds it for as long as the services run.
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "dev.local_airflow", "serve", str(port), str(lock.fileno())],
                env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(lock.fileno(),),
            )
    try:
        services = _wait_for_supervisor(supervisor, stack_env)
        deadline = time.monotonic() + START_TIMEOUT
        while not _ui_answers(services):
            services.check()
            if time.monotonic() > deadline:
                raise LocalAirflowError(
                    f"the Airflow UI did not answer within {START_TIMEOUT} s; see {_rel(services.log('api-server'))}"
                )
            time.sleep(1)
        metadata = Metadata(services.env)
        try:
            _wait_until_parsed(services, metadata, dag_id, dag_file, say)
        finally:
            metadata.close()
    except BaseException:
        _stop_supervisor(supervisor.pid, say)
        raise
    login = UiLogin(services.base_url, UI_USER, ui_password(), reused=False)
    _write_ui_env(login)
    return login


def _wait_for_supervisor(supervisor: subprocess.Popen[bytes], stack_env: dict[str, str]) -> Services:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            raise LocalAirflowError(
                f"the Airflow services did not start (exit {supervisor.returncode}); see {_rel(SUPERVISOR_LOG)}"
            )
        if _state().get("owner") == supervisor.pid:
            services = shared_services(stack_env)
            if services is not None:
                return services
        time.sleep(0.5)
    raise LocalAirflowError(f"the Airflow services did not start within {START_TIMEOUT} s; see {_rel(SUPERVISOR_LOG)}")


def _stop_supervisor(pid: int, say: Say) -> None:
    """SIGTERM the supervisor (it stops its services) and wait; kill what is left after that."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT + 15
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if process_alive(pid):
        say(f"the Airflow services' supervisor (pid {pid}) did not stop within {STOP_TIMEOUT + 15} s: killing it")
        _stop_groups([pid], timeout=5)


def stop_services(say: Say = print) -> bool:
    """Stop the services of `make airflow`, and any left behind; returns whether any ran (`make down`)."""
    state = _state()
    ran = False
    if _supervisor_alive(state):
        _stop_supervisor(int(state["owner"]), say)
        ran = True
    leftover = [int(pid) for pid in _state().get("pids", {}).values() if process_alive(int(pid))]
    if leftover:
        ran = True
    _stop_leftovers(say)
    _write_ui_env(None)
    return ran


def _serve(port: int, lock_fd: int) -> None:
    """The supervisor: run the services until SIGTERM or until one of them exits, then stop them all."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def say(message: str) -> None:
        print(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {message}", flush=True)

    services = _start(dict(os.environ), port, say, mode="ui")
    try:
        while not stopping.wait(2):
            try:
                services.check()
            except LocalAirflowError as error:
                say(f"error: {error}; stopping the other services")
                return
    finally:
        _stop(services, say)
        os.close(lock_fd)


# -- the metadata database -------------------------------------------------------------------


class Metadata:
    """Read-only queries on Airflow's metadata database (its tables are stable across 3.x)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._dsn = _metadata_dsn(env)
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg2

        connection = psycopg2.connect(self._dsn, connect_timeout=10)
        connection.autocommit = True
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def rows(self, query: str, *parameters: Any) -> list[tuple]:
        """The query's rows; a restarted database server is waited for, up to RECONNECT_TIMEOUT."""
        import psycopg2

        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while True:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                with self._connection.cursor() as cursor:
                    cursor.execute(query, parameters)
                    return cursor.fetchall()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                self.close()
                if time.monotonic() > deadline:
                    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    raise LocalAirflowError(f"Airflow's metadata database does not answer: {message}") from None
                time.sleep(2)

    def dag(self, dag_id: str) -> tuple | None:
        found = self.rows("SELECT is_paused, is_stale, last_parsed_time FROM dag WHERE dag_id = %s", dag_id)
        return found[0] if found else None

    def is_serialized(self, dag_id: str) -> bool:
        return bool(self.rows("SELECT 1 FROM serialized_dag WHERE dag_id = %s LIMIT 1", dag_id))

    def import_errors(self, fileloc_suffix: str, since: datetime) -> list[str]:
        found = self.rows(
            "SELECT stacktrace FROM import_error WHERE filename LIKE %s AND timestamp >= %s",
            f"%{fileloc_suffix}", since,
        )
        return [row[0] or "" for row in found]

    def backfill_after(self, dag_id: str, since: datetime) -> int | None:
        found = self.rows(
            "SELECT id FROM backfill WHERE dag_id = %s AND created_at >= %s ORDER BY id DESC LIMIT 1", dag_id, since
        )
        return found[0][0] if found else None

    def backfill_completed(self, backfill_id: int) -> bool:
        return bool(self.rows("SELECT 1 FROM backfill WHERE id = %s AND completed_at IS NOT NULL", backfill_id))

    def active_backfill(self, dag_id: str) -> int | None:
        found = self.rows(
            "SELECT id FROM backfill WHERE dag_id = %s AND completed_at IS NULL ORDER BY id DESC LIMIT 1", dag_id
        )
        return found[0][0] if found else None

    def backfill_days(self, backfill_id: int) -> list[tuple]:
        """(logical_date, exception_reason, run_id, state, start_date, end_date) per day, in order."""
        return self.rows(
            "SELECT b.logical_date, b.exception_reason, r.run_id, r.state, r.start_date, r.end_date"
            " FROM backfill_dag_run b LEFT JOIN dag_run r ON r.id = b.dag_run_id"
            " WHERE b.backfill_id = %s ORDER BY b.sort_ordinal",
            backfill_id,
        )

    def unfinished_runs_outside_backfills(self, dag_id: str) -> list[str]:
        found = self.rows(
            "SELECT run_id FROM dag_run WHERE dag_id = %s AND state IN ('queued', 'running')"
            " AND backfill_id IS NULL ORDER BY logical_date",
            dag_id,
        )
        return [row[0] for row in found]

    def runs_of_other_days(self, dag_id: str, first: date, last: date) -> list[str]:
        """Finished runs at the logical date of a day of the range (its midnight) that processed another day."""
        midnights = [_midnight(first + timedelta(days=n)) for n in range((last - first).days + 1)]
        found = self.rows(
            "SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = ANY(%s)"
            " AND data_interval_start IS DISTINCT FROM logical_date AND state IN ('success', 'failed')"
            " ORDER BY logical_date",
            dag_id, midnights,
        )
        return [row[0] for row in found]

    def dags_test_run(self, dag_id: str, logical_date: datetime, since: datetime) -> str | None:
        """The run that `airflow dags test` created at `logical_date` after `since` (it replaces any earlier
        run at that logical date, and `dags-test` records its real start)."""
        found = self.rows(
            "SELECT run_id FROM dag_run WHERE dag_id = %s AND logical_date = %s AND start_date >= %s"
            " ORDER BY start_date DESC LIMIT 1",
            dag_id, logical_date, since,
        )
        return found[0][0] if found else None

    def run_state(self, dag_id: str, run_id: str) -> tuple | None:
        """(state, start_date, end_date) of the run."""
        found = self.rows(
            "SELECT state, start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
        )
        return found[0] if found else None

    def task_instances(self, dag_id: str, run_id: str) -> list[tuple]:
        """(task_id, map_index, try_number, state, start_date, end_date, duration) of each task of the run.

        A sensor in reschedule mode starts anew at each poke: its start is that of the try's first poke.
        """
        return self.rows(
            "SELECT ti.task_id, ti.map_index, ti.try_number, ti.state,"
            " LEAST(ti.start_date, (SELECT MIN(r.start_date) FROM task_reschedule r WHERE r.ti_id = ti.id)),"
            " ti.end_date, ti.duration FROM task_instance ti WHERE ti.dag_id = %s AND ti.run_id = %s",
            dag_id, run_id,
        )

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        found = self.rows(
            "SELECT task_id FROM task_instance WHERE dag_id = %s AND run_id = %s AND state = 'failed'"
            " ORDER BY start_date NULLS LAST, task_id",
            dag_id, run_id,
        )
        return [row[0] for row in found]


# -- the backfill ----------------------------------------------------------------------------


@dataclass
class DayResult:
    day: date
    state: str
    seconds: float | None = None
    failed_tasks: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def line(self) -> str:
        duration = "" if self.seconds is None else _duration(self.seconds)
        text = f"{self.day}  {self.state:<8} {duration:>8}"
        if self.failed_tasks:
            text += f"  failed: {', '.join(self.failed_tasks)}"
        if self.note:
            text += f"  {self.note}"
        return text.rstrip()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _wait_until_parsed(services: Services, metadata: Metadata, dag_id: str, dag_file: str, say: Say) -> bool:
    """Wait until the dag-processor has parsed the DAG file since the services started.

    Returns whether the DAG was paused. An import error fails at once with its last line.
    """
    deadline = time.monotonic() + PARSE_TIMEOUT
    since = services.started_at - timedelta(seconds=5)
    while time.monotonic() < deadline:
        services.check()
        errors = metadata.import_errors(dag_file, since)
        if errors:
            last = [line for line in errors[0].strip().splitlines() if line.strip()][-1:] or ["(no message)"]
            raise LocalAirflowError(f"the DAG file {dag_file} does not import: {last[0].strip()}")
        row = metadata.dag(dag_id)
        if row and not row[1] and row[2] and row[2] >= since and metadata.is_serialized(dag_id):
            say(f"DAG {dag_id} parsed")
            return bool(row[0])
        time.sleep(1)
    raise LocalAirflowError(
        f"the dag-processor did not parse {dag_id} within {PARSE_TIMEOUT} s; "
        f"see {_rel(services.log('dag-processor'))}"
    )


def _cli_failure(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr + result.stdout).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit {result.returncode}"


def _create_backfill(
    services: Services, metadata: Metadata, dag_id: str, first: date, last: date, parallel: int, before: datetime
) -> int:
    active = metadata.active_backfill(dag_id)
    if active is not None:
        raise LocalAirflowError(
            f"backfill {active} of {dag_id} is still marked as running; cancel it in the UI (Backfills) "
            "or wait until the scheduler marks it complete"
        )
    result = services.airflow(
        "backfill", "create", "--dag-id", dag_id, "--from-date", first.isoformat(), "--to-date", last.isoformat(),
        "--max-active-runs", str(parallel), "--reprocess-behavior", "completed",
    )
    if result.returncode != 0:
        raise LocalAirflowError(f"airflow backfill create failed: {_cli_failure(result)}")
    backfill_id = metadata.backfill_after(dag_id, before)
    if backfill_id is None:
        raise LocalAirflowError(f"airflow backfill create reported success but no backfill of {dag_id} exists")
    return backfill_id


def _follow(
    services: Services, metadata: Metadata, dag_id: str, backfill_id: int, parallel: int, say: Say
) -> list[DayResult]:
    """Poll the backfill's runs until every day has finished, printing each day when it does."""
    days = metadata.backfill_days(backfill_id)
    bound = DAY_TIMEOUT * math.ceil(max(len(days), 1) / parallel)
    deadline = time.monotonic() + bound.total_seconds()
    results: dict[date, DayResult] = {}
    while True:
        services.check()
        days = metadata.backfill_days(backfill_id)
        for logical_date, reason, run_id, state, started, ended in days:
            day = logical_date.astimezone(timezone.utc).date()
            if day in results:
                continue
            if reason:
                note = {
                    "in flight": "not run: a run of this day is still queued or running",
                    "already exists": "not run: it already ran",
                }.get(reason.replace("_", " "), f"not run: {reason}")
                results[day] = DayResult(day, "skipped", note=note)
            elif run_id is None:
                results[day] = DayResult(day, "failed", note="its run was deleted while the backfill ran")
            elif state in TERMINAL:
                seconds = (ended - started).total_seconds() if started and ended else None
                failed = metadata.failed_tasks(dag_id, run_id) if state != "success" else []
                results[day] = DayResult(day, state, seconds, failed)
            else:
                continue
            say(results[day].line())
        if len(results) == len(days):
            return [results[row[0].astimezone(timezone.utc).date()] for row in days]
        if time.monotonic() > deadline:
            waiting = sorted(
                row[0].astimezone(timezone.utc).date().isoformat()
                for row in days
                if row[0].astimezone(timezone.utc).date() not in results
            )
            raise LocalAirflowError(
                f"the backfill did not finish within {bound} (still running: {', '.join(waiting)}); "
                f"see {_rel(services.log('scheduler'))} and the task logs under $AIRFLOW_HOME/logs"
            )
        time.sleep(POLL_SECONDS)


def _wait_until_completed(services: Services, metadata: Metadata, backfill_id: int, say: Say) -> None:
    """The scheduler marks a backfill complete after its last run; until then a new one is refused."""
    deadline = time.monotonic() + COMPLETE_TIMEOUT
    while not metadata.backfill_completed(backfill_id):
        services.check()
        if time.monotonic() > deadline:
            say(f"warning: the scheduler did not mark backfill {backfill_id} complete within {COMPLETE_TIMEOUT} s")
            return
        time.sleep(1)


def _internal(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    """One of this module's internal commands (below), run with Airflow's code in the services' env."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "dev.local_airflow", *args],
            env=services.env, cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT, start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise LocalAirflowError(f"`{args[0]}` did not finish within {CLI_TIMEOUT} s") from None


def _remove_runs_of_other_days(
    services: Services, metadata: Metadata, dag_id: str, first: date, last: date, say: Say
) -> None:
    """Remove finished runs at a logical date of the range whose data interval is another day's.

    The backfill reprocesses a day by clearing the run at its logical date, which keeps that run's data
    interval: a run at D 00:00 that processed D - 1 would make it process D - 1 again, never D. Manual
    runs were recorded so (at D + 1, for day D) before the DAG's timetable gave a manual run at D
    00:00 day D, and metadata databases of that time still hold them. `airflow dags test` replaces a
    run at its logical date in the same way.
    """
    runs = metadata.runs_of_other_days(dag_id, first, last)
    if not runs:
        return
    result = _internal(services, "delete-runs", dag_id, *runs)
    if result.returncode != 0:
        raise LocalAirflowError(f"removing earlier runs of other days failed: {_cli_failure(result)}")
    say(
        f"removed {len(runs)} earlier run record(s) at logical dates of the range that processed another day "
        f"({', '.join(runs)})"
    )


def _cancel(services: Services, backfill_id: int, say: Say) -> None:
    """Cancel the backfill the way Airflow's API does, and fail its runs still in progress."""
    try:
        result = _internal(services, "cancel", str(backfill_id))
    except LocalAirflowError as error:
        say(f"warning: cancelling backfill {backfill_id} failed: {error}")
        return
    if result.returncode == 0:
        say(f"cancelled backfill {backfill_id}: its unfinished days are marked failed")
    else:
        say(f"warning: cancelling backfill {backfill_id} failed: {_cli_failure(result)}")


def _set_paused(services: Services, dag_id: str, paused: bool) -> None:
    command = "pause" if paused else "unpause"
    result = services.airflow("dags", command, dag_id)
    if result.returncode != 0:
        raise LocalAirflowError(f"airflow dags {command} {dag_id} failed: {_cli_failure(result)}")


def _pause_again(services: Services, dag_id: str, say: Say) -> None:
    try:
        _set_paused(services, dag_id, True)
    except LocalAirflowError as error:
        say(f"warning: {error}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let `kill` (not only Ctrl-C) unwind through the clean-up below."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_backfill(
    stack_env: dict[str, str],
    first: date,
    last: date,
    parallel: int,
    dag_id: str = "hardware_correlation",
    dag_file: str = "hardware_correlation.py",
    say: Say = print,
) -> list[DayResult]:
    """Backfill days `first`..`last` (inclusive), `parallel` at once; one result per day.

    Raises LocalAirflowError when the backfill cannot be run or followed to its end, and
    KeyboardInterrupt after a clean-up when interrupted.
    """
    if parallel < 1:
        raise LocalAirflowError(f"the number of days at once must be at least 1 (got {parallel})")
    with _sigterm_as_interrupt(), running_services(stack_env, parallel, say) as services:
        metadata = Metadata(services.env)
        try:
            was_paused = _wait_until_parsed(services, metadata, dag_id, dag_file, say)
            # Under `make airflow` the DAG stays unpaused afterwards, as the UI's Backfill leaves it:
            # pausing it again would stop the scheduled run that unpausing started.
            pause_again = was_paused and not services.shared
            if was_paused and services.shared:
                say(f"unpausing {dag_id}: it stays unpaused, and its scheduler also starts the latest day's run")
            others = metadata.unfinished_runs_outside_backfills(dag_id)
            if others:
                shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
                say(
                    f"note: {len(others)} other run(s) of {dag_id} are marked queued or running ({shown}); "
                    "the scheduler will carry them on too"
                )
            # Unpausing, and pausing again at the end, take seconds of CLI start-up each: they run
            # alongside the other steps (a backfill may be created while its DAG is paused).
            with ThreadPoolExecutor(max_workers=1) as pool:
                unpausing = pool.submit(_set_paused, services, dag_id, False) if was_paused else None
                backfill_id = None
                finished = False
                before = datetime.now(timezone.utc) - timedelta(seconds=1)
                try:
                    _remove_runs_of_other_days(services, metadata, dag_id, first, last, say)
                    backfill_id = _create_backfill(services, metadata, dag_id, first, last, parallel, before)
                    if unpausing is not None:
                        unpausing.result()
                    say(f"backfill {backfill_id}: {first} .. {last}, {parallel} day(s) at once")
                    results = _follow(services, metadata, dag_id, backfill_id, parallel, say)
                    finished = True
                    pausing = pool.submit(_pause_again, services, dag_id, say) if pause_again else None
                    _wait_until_completed(services, metadata, backfill_id, say)
                    if pausing is not None:
                        pausing.result()
                    return results
                finally:
                    if backfill_id is None and not finished:
                        # Interrupted while `airflow backfill create` ran: it may have got that far.
                        with contextlib.suppress(LocalAirflowError):
                            backfill_id = metadata.backfill_after(dag_id, before)
                    if backfill_id is not None and not finished:
                        _cancel(services, backfill_id, say)
                    if pause_again and not finished:
                        with contextlib.suppress(Exception):
                            unpausing.result()
                        _pause_again(services, dag_id, say)
        finally:
            metadata.close()


# -- one day on the services of `make airflow` ------------------------------------------------


class RestApi:
    """Airflow's REST API (v2) as the UI's user, with a token from SimpleAuthManager's /auth/token."""

    def __init__(self, base_url: str, user: str = UI_USER, password: str | None = None) -> None:
        self.base_url = base_url
        login = {"username": user, "password": ui_password() if password is None else password}
        answer = self._request("POST", "/auth/token", login, token=None)
        self._token = answer["access_token"]

    def _request(self, method: str, path: str, body: dict | None = None, token: str | None = "") -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self._token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip()[:300]
            raise LocalAirflowError(f"Airflow's API refused {method} {path}: {error.code} {detail}") from None
        except OSError as error:
            raise LocalAirflowError(f"Airflow's API does not answer on {self.base_url}: {error}") from None
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: dict) -> Any:
        return self._request("POST", path, body)

    def patch(self, path: str, body: dict) -> Any:
        return self._request("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)


def run_day(
    services: Services, dag_id: str, day: date, say: Say = print, watch: Callable[[str], None] | None = None
) -> DayResult:
    """Run log day D on the scheduler of `make airflow`, as the UI's Trigger does, and wait for it.

    The run is manual, at logical date D (its data interval is [D, D + 1)), as `airflow dags test`
    makes it; a finished run already recorded at that logical date (a scheduled or backfill run of D,
    say) is replaced, as `airflow dags test` replaces it. A paused DAG is unpaused, as the Trigger
    form offers to.
    `watch` is called with the run id at every poll, and once more when the run has finished.
    """
    api = RestApi(services.base_url)
    logical = _midnight(day).isoformat().replace("+00:00", "Z")
    quoted = urllib.parse.quote(logical)
    existing = api.get(f"/api/v2/dags/{dag_id}/dagRuns?logical_date_gte={quoted}&logical_date_lte={quoted}")
    for run in existing["dag_runs"]:
        if run["state"] not in TERMINAL:
            raise LocalAirflowError(
                f"run {run['dag_run_id']} at logical date {logical} is still {run['state']}; "
                "wait for it to finish (it is in the UI) and run the day again"
            )
        api.delete(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}")
        say(f"replaced the earlier run {run['dag_run_id']} ({run['state']})")
    if api.get(f"/api/v2/dags/{dag_id}")["is_paused"]:
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        say(f"unpaused {dag_id}: its scheduler also starts the latest day's run")
    run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical})
    run_id = run["dag_run_id"]
    say(f"triggered {run_id} on the `make airflow` scheduler: {services.base_url}/dags/{dag_id}/runs/{run_id}")
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + DAY_TIMEOUT.total_seconds()
    while True:
        services.check()
        run = api.get(path)
        if watch is not None:
            watch(run_id)
        if run["state"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise LocalAirflowError(f"run {run_id} did not finish within {DAY_TIMEOUT}; see it in the UI")
        time.sleep(POLL_SECONDS)
    started, ended = (datetime.fromisoformat(run[key]) if run.get(key) else None for key in ("start_date", "end_date"))
    failed = []
    if run["state"] != "success":
        tasks = api.get(f"{path}/taskInstances?state=failed")["task_instances"]
        failed = sorted(task["task_id"] for task in tasks)
    seconds = (ended - started).total_seconds() if started and ended else None
    return DayResult(day, run["state"], seconds, failed)


# -- internal commands, run in the services' environment -------------------------------------


def _cancel_here(backfill_id: int) -> None:
    from sqlalchemy import select, update

    from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils import timezone as airflow_timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        backfill = session.get(Backfill, backfill_id)
        if backfill is None or backfill.completed_at is not None:
            return
        backfill.is_paused = True
        session.commit()
        queued = select(BackfillDagRun.dag_run_id).where(BackfillDagRun.backfill_id == backfill_id)
        session.execute(
            update(DagRun)
            .where(DagRun.id.in_(queued), DagRun.state == DagRunState.QUEUED)
            .values(state=DagRunState.FAILED)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        running = session.scalars(
            select(DagRun).where(DagRun.backfill_id == backfill_id, DagRun.state == DagRunState.RUNNING)
        ).all()
        if running:
            dag = session.scalar(SerializedDagModel.latest_item_select_object(backfill.dag_id)).dag
            for dag_run in running:
                set_dag_run_state_to_failed(dag=dag, run_id=dag_run.run_id, commit=True, session=session)
        session.refresh(backfill)
        backfill.completed_at = airflow_timezone.utcnow()


def _delete_runs_here(dag_id: str, run_ids: list[str]) -> None:
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for dag_run in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(run_ids))):
            session.delete(dag_run)


def _dags_test_here(args: list[str]) -> None:
    """`airflow dags test ARGS`, except that the run's start date is when it really started.

    `airflow dags test` records its run as started at the logical date (e.g. 2025-10-02), so the UI
    shows a run that lasted from then until now; the run is created through
    `airflow.models.dagrun.get_or_create_dagrun`, which `dag.test()` imports when it runs.
    """
    import airflow.models.dagrun as dagrun_module
    from airflow.__main__ import main as airflow_main
    from airflow.utils import timezone as airflow_timezone

    create = dagrun_module.get_or_create_dagrun

    def started_now(**kwargs: Any) -> Any:
        return create(**{**kwargs, "start_date": airflow_timezone.utcnow()})

    dagrun_module.get_or_create_dagrun = started_now
    sys.argv = [str(AIRFLOW), "dags", "test", *args]
    airflow_main()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "dags-test":
        _dags_test_here(sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "cancel":
        _cancel_here(int(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "delete-runs":
        _delete_runs_here(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(
            "usage: python -m dev.local_airflow {dags-test DAG_ID LOGICAL_DATE | serve PORT LOCK_FD"
            " | cancel BACKFILL_ID | delete-runs DAG_ID RUN_ID...} (internal; see run_day, start_ui, run_backfill)"
        )
