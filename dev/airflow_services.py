"""Airflow's own services on the local stack: starting and stopping them, the lock they share, the UI's login.

A backfill (`make backfill`, see dev/airflow_runs.py) starts, against the stack's metadata database, the
components it needs: the api-server (127.0.0.1, a free port; task workers talk to its execution API,
the tools to its REST API), the scheduler (LocalExecutor), the dag-processor and the triggerer (the
Glue tasks defer), and stops them at its end (`running_services`). A run of `make run` that shows its
tasks' lines (`BRIEF=1`, `make demo`) starts an api-server alone, to read them (`api_server`).

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
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dev.airflow_api import UI_USER, LocalAirflowError, RestApi, Say
from dev.local_aws import config
from dev.local_aws.stack import process_alive

# Airflow's local state and logs live beside the stack's.
REPO, LOCAL, LOGS = config.ROOT, config.LOCAL, config.LOGS
JWT_SECRET_FILE = LOCAL / "airflow-jwt-secret"
STATE_FILE = LOCAL / "airflow-services.json"
LOCK_FILE = LOCAL / "airflow-services.lock"
# SimpleAuthManager's users/passwords file: created here so that its one user's password is known
# (and never printed by the api-server, which only prints passwords it generates itself).
PASSWORDS_FILE = LOCAL / "airflow-ui-passwords.json"
SUPERVISOR_LOG = LOGS / "airflow-services.log"
UI_ENV_KEYS = ("AIRFLOW_UI_URL", "AIRFLOW_UI_USER", "AIRFLOW_UI_PASSWORD")
BIN = Path(sys.executable).parent
AIRFLOW = BIN / "airflow"
HOST = "127.0.0.1"

SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
START_TIMEOUT = 180
PARSE_TIMEOUT = 240
STOP_TIMEOUT = 45
LOCK_TIMEOUT = 1800


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

    def api(self) -> RestApi:
        """Their REST API, as the UI's user."""
        return RestApi(self.base_url, ui_password())

    def wait_until_parsed(self, dag_id: str, dag_file: str, say: Say) -> bool:
        """Wait until the dag-processor has parsed the DAG file since the services started; returns
        whether the DAG is paused. An import error fails at once with its last line."""
        try:
            return self.api().wait_until_parsed(
                dag_id, dag_file, self.started_at - timedelta(seconds=5), self.check, PARSE_TIMEOUT, say
            )
        except TimeoutError:
            raise LocalAirflowError(
                f"the dag-processor did not parse {dag_id} within {PARSE_TIMEOUT} s; "
                f"see {_rel(self.log('dag-processor'))}"
            ) from None


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


def _wait_for_api(services: Services, path: str = "/execution/health") -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        services.check()
        try:
            with urllib.request.urlopen(f"{services.base_url}{path}", timeout=3) as response:
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
    return "dev.airflow_services" in cmdline


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
                [sys.executable, "-m", "dev.airflow_services", "serve", str(port), str(lock.fileno())],
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
        services.wait_until_parsed(dag_id, dag_file, say)
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


@contextlib.contextmanager
def api_server(stack_env: dict[str, str], say: Say = print) -> Iterator[RestApi]:
    """An api-server alone, for reading the records of an `airflow dags test` run while it runs.

    It runs no tasks, so it needs no lock; it is not recorded as the services of a backfill or of
    `make airflow` are, and its output goes to `.local/logs/airflow-api-server-dags-test.log`.
    """
    port = free_port()
    env = services_env(stack_env, port, 1)
    LOGS.mkdir(parents=True, exist_ok=True)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    log = LOGS / "airflow-api-server-dags-test.log"
    services = Services(env=env, port=port, started_at=datetime.now(timezone.utc))
    with open(log, "ab") as handle:
        handle.write(f"\n==== {services.started_at.isoformat()} airflow api-server ====\n".encode())
        services.processes["api-server"] = subprocess.Popen(
            _command("api-server", port), env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        try:
            _wait_for_api(services, "/api/v2/monitor/health")
        except LocalAirflowError:
            raise LocalAirflowError(f"the Airflow api-server did not start; see {_rel(log)}") from None
        yield services.api()
    finally:
        _stop_groups([services.processes["api-server"].pid])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m dev.airflow_services serve PORT LOCK_FD (internal; see start_ui)")
