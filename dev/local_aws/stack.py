"""Start, reuse and stop the local stack; provision it; write `.local/stack.env`.

`ensure_up()` is what `make up` and the test suite call: it reuses a healthy stack (the server answers
its health check and PostgreSQL accepts connections) or starts what is missing, provisions what a real
AWS account would hold, and returns the stack's environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from dev.local_aws import config, postgres
from include.settings import load as load_settings

SERVER_START_TIMEOUT = 60
SERVER_STOP_TIMEOUT = 15
MIGRATE_TIMEOUT = 600
MIGRATED_MARKER = config.LOCAL / "airflow-migrated"


class StackError(Exception):
    """An expected failure: the CLI prints the message without a traceback."""


# -- the server process -----------------------------------------------------------------------


def _server_state() -> dict[str, Any] | None:
    try:
        return json.loads(config.SERVER_STATE.read_text())
    except (OSError, ValueError):
        return None


def _health(endpoint_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{endpoint_url}{config.CONTROL_PREFIX}/health", timeout=timeout) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return payload if payload.get("status") == "ok" else None


def server_endpoint(current_code: bool = False) -> str | None:
    """The running server's URL if it is healthy and belongs to this repository.

    With `current_code`, only a server running the stack's current sources counts.
    """
    state = _server_state()
    if not state:
        return None
    health = _health(state["endpoint_url"])
    if not health or health.get("pid") != state["pid"] or health.get("root") != str(config.ROOT):
        return None
    if current_code and health.get("code") != config.code_fingerprint():
        return None
    return str(state["endpoint_url"])


def _start_server() -> subprocess.Popen[bytes]:
    config.SERVER_STATE.unlink(missing_ok=True)
    config.LOGS.mkdir(parents=True, exist_ok=True)
    log = open(config.SERVER_LOG, "ab")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(config.ROOT)
    # The server prefers its previous port so that Airflow connections and open shells stay valid.
    port = config.SERVER_PORT.read_text().strip() if config.SERVER_PORT.exists() else "0"
    return subprocess.Popen(
        [sys.executable, "-m", "dev.local_aws.server", "--port", port],
        cwd=config.ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_server(process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"The stack server exited at start (code {process.returncode}); see {config.SERVER_LOG}.")
        state = _server_state()
        if state and state.get("pid") == process.pid and _health(state["endpoint_url"], timeout=1):
            config.SERVER_PORT.write_text(str(state["port"]))
            return str(state["endpoint_url"])
        time.sleep(0.05)
    _kill_group(process.pid)
    raise StackError(f"The stack server did not answer within {SERVER_START_TIMEOUT} s; see {config.SERVER_LOG}.")


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def process_alive(pid: int) -> bool:
    """Whether the process runs; a zombie child of ours counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def _stop_server() -> bool:
    state = _server_state()
    stopped = False
    if state and process_alive(state["pid"]):
        os.kill(state["pid"], signal.SIGTERM)
        deadline = time.monotonic() + SERVER_STOP_TIMEOUT
        while process_alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(state["pid"]):
            _kill_group(state["pid"])
        stopped = True
    # Job runs live in their own process groups; a server killed hard leaves them behind.
    if config.GLUE_RUNS.exists():
        for pid_file in config.GLUE_RUNS.glob("*/pid"):
            with contextlib.suppress(ValueError, OSError):
                _kill_group(int(pid_file.read_text()))
        for run_dir in config.GLUE_RUNS.iterdir():
            subprocess.run(["rm", "-rf", str(run_dir)], check=False)
    config.SERVER_STATE.unlink(missing_ok=True)
    return stopped


# -- environment ------------------------------------------------------------------------------


def _warehouse_dsn(cluster: postgres.Cluster) -> str:
    external = os.environ.get("WAREHOUSE_DSN")
    if not external:
        return cluster.dsn("warehouse")
    try:
        import psycopg2

        psycopg2.connect(external, connect_timeout=5).close()
    except Exception as exc:
        raise StackError(
            f"WAREHOUSE_DSN is set but its server does not accept connections: {_first_line(exc)}"
        ) from None
    return external


def build_env(endpoint_url: str, cluster: postgres.Cluster, warehouse_dsn: str) -> dict[str, str]:
    settings = load_settings()
    airflow_home = config.LOCAL / "airflow"
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": config.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": config.SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": config.REGION,
        "RAW_BUCKET": settings.RAW_BUCKET,
        "PROCESSED_BUCKET": settings.PROCESSED_BUCKET,
        "ARTIFACTS_BUCKET": settings.ARTIFACTS_BUCKET,
        "WAREHOUSE_DSN": warehouse_dsn,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cluster.dsn("airflow").replace(
            "postgresql://", "postgresql+psycopg2://", 1
        ),
        # Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as on a developer's machine.
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": endpoint_url, "region_name": config.REGION}}
        ),
        "AIRFLOW_CONN_WAREHOUSE": warehouse_dsn,
        "PYTHONPATH": str(config.ROOT),
        "SPARK_LOCAL_IP": config.HOST,
        "ALERTS_API_URL": (_server_state() or {}).get("alerts_api_url", ""),
    }


def write_env_file(env: dict[str, str]) -> None:
    config.LOCAL.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make up` (python -m dev.local_aws up). Source it: set -a; . .local/stack.env"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    tmp = config.ENV_FILE.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(config.ENV_FILE)


def _airflow_ui_entries() -> dict[str, str]:
    """The UI's address and login that `make airflow` added to the file: they stay while it runs."""
    if not config.ENV_FILE.exists():
        return {}
    return {key: value for key, value in read_env_file(config.ENV_FILE).items() if key.startswith("AIRFLOW_UI_")}


def read_env_file(path: Path = config.ENV_FILE) -> dict[str, str]:
    """The KEY=VALUE pairs of a stack.env file (values are shell-quoted)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            parts = shlex.split(value)
            env[key.strip()] = parts[0] if parts else ""
    return env


# -- provisioning -----------------------------------------------------------------------------


def provision(env: dict[str, str]) -> None:
    """Create, or bring up to date, what a real AWS account would hold for the pipeline."""
    import boto3
    from botocore.exceptions import ClientError

    settings = load_settings()
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=env["AWS_ENDPOINT_URL"])

    s3 = client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (env["RAW_BUCKET"], env["PROCESSED_BUCKET"], env["ARTIFACTS_BUCKET"]):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)

    iam = client("iam")
    try:
        iam.get_role(RoleName=settings.GLUE_ROLE_NAME)
    except ClientError:
        iam.create_role(
            RoleName=settings.GLUE_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )
        iam.put_role_policy(
            RoleName=settings.GLUE_ROLE_NAME,
            PolicyName="pipeline",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["s3:*", "glue:*", "logs:*", "secretsmanager:GetSecretValue"],
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )

    from urllib.parse import urlsplit

    dsn = urlsplit(env["WAREHOUSE_DSN"])
    secret_name = warehouse_secret_name(settings)
    secret = json.dumps({"username": dsn.username or "", "password": dsn.password or ""})
    secrets = client("secretsmanager")
    try:
        current = secrets.get_secret_value(SecretId=secret_name)["SecretString"]
        if current != secret:
            secrets.put_secret_value(SecretId=secret_name, SecretString=secret)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=secret_name, SecretString=secret)

    glue = client("glue")
    try:
        glue.get_database(Name=settings.GLUE_DATABASE)
    except glue.exceptions.EntityNotFoundException:
        glue.create_database(DatabaseInput={"Name": settings.GLUE_DATABASE})
    connection_input = {
        "Name": settings.GLUE_WAREHOUSE_CONNECTION,
        "Description": "The warehouse (PostgreSQL); credentials in Secrets Manager",
        "ConnectionType": "JDBC",
        "ConnectionProperties": {
            "JDBC_CONNECTION_URL": f"jdbc:postgresql://{dsn.hostname}:{dsn.port or 5432}{dsn.path}",
            "SECRET_ID": secret_name,
        },
    }
    try:
        current = glue.get_connection(Name=settings.GLUE_WAREHOUSE_CONNECTION)["Connection"]
        if current.get("ConnectionProperties") != connection_input["ConnectionProperties"]:
            glue.update_connection(Name=settings.GLUE_WAREHOUSE_CONNECTION, ConnectionInput=connection_input)
    except glue.exceptions.EntityNotFoundException:
        glue.create_connection(ConnectionInput=connection_input)


def warehouse_secret_name(settings: Any = None) -> str:
    """Name of the Secrets Manager secret holding the warehouse's {"username", "password"}."""
    settings = settings or load_settings()
    return f"{settings.GLUE_WAREHOUSE_CONNECTION}-credentials"


# -- Airflow's metadata database --------------------------------------------------------------


def _alembic_revision(dsn: str) -> str | None:
    import psycopg2

    try:
        with contextlib.closing(psycopg2.connect(dsn, connect_timeout=5)) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT version_num FROM alembic_version")
                row = cursor.fetchone()
                return row[0] if row else None
    except psycopg2.Error:
        return None


def migrate_airflow(env: dict[str, str], say: Any) -> None:
    """Run `airflow db migrate` unless this Airflow version already migrated this database."""
    dsn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://", 1)
    version = metadata.version("apache-airflow-core")
    revision = _alembic_revision(dsn)
    if revision and MIGRATED_MARKER.exists() and MIGRATED_MARKER.read_text().split() == [version, revision]:
        return
    say("migrating Airflow's metadata database (first start only)...")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    try:
        result = subprocess.run(
            [str(airflow), "db", "migrate"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"airflow db migrate did not finish within {MIGRATE_TIMEOUT} s.") from None
    if result.returncode != 0:
        log = config.LOGS / "airflow-db-migrate.log"
        log.write_text(result.stdout + result.stderr)
        raise StackError(f"airflow db migrate failed (exit {result.returncode}); see {log}.")
    revision = _alembic_revision(dsn)
    if revision:
        MIGRATED_MARKER.write_text(f"{version} {revision}\n")


# -- entry points -----------------------------------------------------------------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    config.LOCAL.mkdir(parents=True, exist_ok=True)
    with open(config.LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _quiet(_message: str) -> None:
    pass


def ensure_up(say: Any = _quiet) -> dict[str, str]:
    """Start or reuse the stack, provision it, write `.local/stack.env` and return its environment."""
    with _locked():
        endpoint = server_endpoint(current_code=True)
        process = None
        if endpoint is None:
            if server_endpoint() is not None:
                say("the stack's code changed: restarting the server (its S3 and Glue state start empty)")
            _stop_server()  # whatever is left of an unhealthy or outdated server
            process = _start_server()  # starts in the background while PostgreSQL comes up
        try:
            cluster = postgres.ensure_running()
        except postgres.PostgresError as exc:
            if process is not None:
                _kill_group(process.pid, signal.SIGTERM)
            raise StackError(str(exc)) from None
        if process is not None:
            endpoint = _wait_for_server(process)
            say(f"server started: {endpoint} (pid {process.pid}, log {_rel(config.SERVER_LOG)})")
        else:
            say(f"server reused: {endpoint}")
        say(f"PostgreSQL on {cluster.host}:{cluster.port} (databases {', '.join(postgres.DATABASES)})")
        if endpoint is None:
            raise RuntimeError("the local AWS server did not report its endpoint")
        env = build_env(endpoint, cluster, _warehouse_dsn(cluster))
        try:
            provision(env)
        except Exception as exc:
            raise StackError(f"provisioning the stack failed: {_first_line(exc)}") from None
        write_env_file({**env, **_airflow_ui_entries()})
        migrate_airflow(env, say)
        say(f"wrote {_rel(config.ENV_FILE)}")
        return env


def down(say: Any = _quiet) -> None:
    with _locked():
        say("server stopped" if _stop_server() else "server was not running")
        try:
            say("PostgreSQL stopped" if postgres.stop() else "PostgreSQL was not running")
        except postgres.PostgresError as exc:
            raise StackError(str(exc)) from None


def status() -> dict[str, Any]:
    endpoint = server_endpoint()
    cluster = postgres.saved_cluster()
    return {
        "server": endpoint or "down",
        "postgres": f"{cluster.host}:{cluster.port}" if cluster and postgres.is_healthy() else "down",
        "env_file": str(config.ENV_FILE) if config.ENV_FILE.exists() else "missing",
    }


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(config.ROOT))
    except ValueError:
        return str(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
