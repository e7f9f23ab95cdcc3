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


def rotate_logs(paths: tuple[Path, ...] = config.APPEND_ONLY_LOGS) -> None:
    """Keep each file's current contents as `<name>.1<suffix>` (replacing the one before) and leave
    the file to start afresh. Called as the server starts, before anything writes to them: readers
    that remember an offset in the call log (the least-privilege tests) read within one server's
    life."""
    for path in paths:
        if path.exists() and path.stat().st_size:
            path.replace(path.with_name(f"{path.stem}.1{path.suffix}"))


def _start_server() -> subprocess.Popen[bytes]:
    config.SERVER_STATE.unlink(missing_ok=True)
    config.LOGS.mkdir(parents=True, exist_ok=True)
    rotate_logs()
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


def wait_for_server(process: subprocess.Popen[bytes]) -> str:
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
            f"WAREHOUSE_DSN is set but its server does not accept connections: {first_line(exc)}"
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
        # The plugin that registers the DAG's timetable: without it the DAG cannot be serialized.
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # OpenLineage's events of every task and DAG run, a JSON line each, appended to one file. Each
        # event is one write to a file opened for appending, which Linux keeps whole between writers;
        # the transport's timestamped files, one per event, collided when two runs at once wrote an
        # event in the same microsecond.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(config.LINEAGE_LOG), "append": True}
        ),
        # The provider's default forks the task's process for every event, and the AWS clients each fork
        # builds go with it: a `make run` took 2 to 3 s longer. In a thread the task waits for the event
        # as it does for the fork, up to [openlineage] execution_timeout.
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cluster.dsn("airflow").replace(
            "postgresql://", "postgresql+psycopg2://", 1
        ),
        "AIRFLOW_CONN_WAREHOUSE": warehouse_dsn,
        "PYTHONPATH": str(config.ROOT),
        "SPARK_LOCAL_IP": config.HOST,
        "ALERTS_API_URL": (_server_state() or {}).get("alerts_api_url", ""),
        # No deadline alert locally: `airflow dags test` (make run, make demo, the tests) runs no
        # scheduler that could fire one, and Airflow 3.3's dag.test() fails a successful run of a DAG
        # with a deadline (its in-memory DAG keeps the alerts' definitions where the run's end looks
        # up the ids of stored alerts: "can't adapt type 'dict'").
        "LOAD_DEADLINE_HOURS": "",
    }


def write_env_file(env: dict[str, str]) -> None:
    config.LOCAL.mkdir(parents=True, exist_ok=True)
    # OpenLineage's file transport writes into it but does not create it.
    config.OPENLINEAGE_EVENTS.mkdir(exist_ok=True)
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

STACK_NAME = "hardware-correlation"
# The bucket `aws cloudformation package` uploads the Lambda code to (its --s3-bucket).
PACKAGE_BUCKET = "hardware-correlation-cloudformation"


def connections_prefix(stack_name: str = STACK_NAME) -> str:
    return f"{stack_name}/connections"


def airflow_role_name(stack_name: str = STACK_NAME) -> str:
    """Stands in for Airflow's execution role (MWAA's, or Astro's workload identity): the template's
    Airflow policy is attached to it, and Airflow's aws_default connection signs with its session."""
    return f"{stack_name}-airflow"


CONNECTIONS_PREFIX = connections_prefix()
AIRFLOW_ROLE_NAME = airflow_role_name()


# Airflow's secrets backend as a deployment sets it (docs/aws.md, "Steps", 3): connections
# from Secrets Manager under the template's prefix; no variables or configuration from there. The
# warehouse secret holds RDS's fields (engine, host, port, username, password, dbname): `dbname` is
# the connection's schema (the database), the others are words the backend knows.
SECRETS_BACKEND = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
SECRETS_BACKEND_KWARGS = {
    "connections_prefix": CONNECTIONS_PREFIX,
    "variables_prefix": None,
    "config_prefix": None,
    "extra_conn_words": {"schema": ["dbname"]},
}


def deployed_airflow_env(env: dict[str, str]) -> dict[str, str]:
    """`env` as a deployed Airflow sees it: the warehouse connection served by the secrets backend
    (no AIRFLOW_CONN_WAREHOUSE), and the Airflow role's session as the ambient credentials, as an
    MWAA execution role's are."""
    connection = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    deployed = {key: value for key, value in env.items() if key != "AIRFLOW_CONN_WAREHOUSE"}
    deployed.update(
        {
            "AIRFLOW__SECRETS__BACKEND": SECRETS_BACKEND,
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(SECRETS_BACKEND_KWARGS),
            "AWS_ACCESS_KEY_ID": connection["login"],
            "AWS_SECRET_ACCESS_KEY": connection["password"],
            "AWS_SESSION_TOKEN": connection["extra"]["aws_session_token"],
        }
    )
    return deployed


def template_parameters(settings: Any, network: dict[str, Any], stack_name: str = STACK_NAME) -> dict[str, str]:
    """The template's parameters from the pipeline's settings and the account's network. The names
    the settings do not hold (Airflow's policy, the failure topic, the connections' secrets) derive
    from the stack's name, so that a second deployment in the account shares none of the first's."""
    return {
        "RawBucketName": settings.RAW_BUCKET,
        "ProcessedBucketName": settings.PROCESSED_BUCKET,
        "ArtifactsBucketName": settings.ARTIFACTS_BUCKET,
        "GlueDatabaseName": settings.GLUE_DATABASE,
        "CrawlerName": settings.CRAWLER_NAME,
        "EtlJobName": settings.ETL_JOB_NAME,
        "LoadJobName": settings.LOAD_JOB_NAME,
        "CrawlerRoleName": settings.CRAWLER_ROLE_NAME,
        "EtlRoleName": settings.ETL_ROLE_NAME,
        "LoadRoleName": settings.LOAD_ROLE_NAME,
        "WarehouseConnectionName": settings.GLUE_WAREHOUSE_CONNECTION,
        # What Airflow assumes of the jobs, so that both agree also when the environment changes it.
        "GlueJobTimeoutMinutes": settings.GLUE_JOB_TIMEOUT_MINUTES,
        "GlueMaxConcurrentRuns": settings.GLUE_MAX_CONCURRENT_RUNS,
        "ConnectionsSecretPrefix": connections_prefix(stack_name),
        "AirflowPolicyName": f"{stack_name}-airflow",
        "FailureTopicName": f"{stack_name}-failures",
        **network,
    }


def package_template(s3: Any, bucket: str, template_path: Path = config.TEMPLATE) -> dict[str, Any]:
    """What `aws cloudformation package` does to the template: each AWS::Lambda::Function whose Code
    is a folder gets that folder zipped to S3, and its Code becomes {S3Bucket, S3Key}."""
    import hashlib
    import io
    import zipfile

    from cfnlint.decode import decode

    template, errors = decode(str(template_path))
    if errors or template is None:
        raise StackError(f"{template_path} does not parse: {errors}")
    template = json.loads(json.dumps(template, default=str))  # cfn-lint's node types to plain ones
    for resource in template["Resources"].values():
        code = resource.get("Properties", {}).get("Code")
        if resource["Type"] != "AWS::Lambda::Function" or not isinstance(code, str):
            continue
        folder = template_path.parent / code
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), (1980, 1, 1, 0, 0, 0))
                    archive.writestr(info, path.read_bytes())
        body = buffer.getvalue()
        # The key `package` uses (the zip's MD5), so an unchanged folder is not sent again.
        key = hashlib.md5(body, usedforsecurity=False).hexdigest()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        resource["Properties"]["Code"] = {"S3Bucket": bucket, "S3Key": key}
    return template


def _local_network(ec2: Any) -> dict[str, str]:
    """The template's network parameters from moto's default VPC (two subnets in different zones)."""
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = sorted(
        ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"],
        key=lambda subnet: subnet["AvailabilityZone"],
    )[:2]
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    return {
        "VpcId": vpc,
        "PrivateSubnetIds": ",".join(subnet["SubnetId"] for subnet in subnets),
        "GlueSubnetAvailabilityZone": subnets[0]["AvailabilityZone"],
        "PrivateRouteTableIds": ",".join(table["RouteTableId"] for table in tables),
    }


def deploy_template(session: Any, endpoint_url: str, settings: Any, stack_name: str = STACK_NAME) -> dict[str, str]:
    """Deploy infrastructure/template.yaml through CloudFormation as `stack_name` unless deployed;
    its outputs."""

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)

    cloudformation = client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except cloudformation.exceptions.ClientError:
        stack = None
    if stack is None:
        s3 = client("s3")
        if PACKAGE_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=PACKAGE_BUCKET)
        template = package_template(s3, PACKAGE_BUCKET)
        parameters = template_parameters(settings, _local_network(client("ec2")), stack_name)
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        reason = stack.get("StackStatusReason")
        raise StackError(f"CloudFormation stack {stack_name} is {stack['StackStatus']}: {reason}")
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def provision(env: dict[str, str], stack_name: str = STACK_NAME) -> dict[str, str]:
    """Deploy the template as `stack_name`, named by the settings in `env`, serve its RDS warehouse by
    the local PostgreSQL, and give Airflow the session of a role with the template's Airflow policy.
    Returns the environment entries it sets."""
    import boto3
    from urllib.parse import urlsplit

    settings = load_settings({**os.environ, **env})
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=env["AWS_ENDPOINT_URL"])

    outputs = deploy_template(session, env["AWS_ENDPOINT_URL"], settings, stack_name)

    # RDS is the one resource served differently: the template's instance exists in moto (endpoint
    # <id>.<random>.<region>.rds.amazonaws.com) but nothing listens there. The warehouse secret and the
    # Glue Connection are pointed at the local PostgreSQL instead; engine, dbname and SECRET_ID stay.
    dsn = urlsplit(env["WAREHOUSE_DSN"])
    secrets = client("secretsmanager")
    secret_arn = outputs["WarehouseSecretArn"]
    current = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    local = {
        **current,
        "host": dsn.hostname or "",
        "port": dsn.port or 5432,
        "dbname": dsn.path.lstrip("/"),
        "username": dsn.username or "",
        "password": dsn.password or "",
    }
    if local != current:
        secrets.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(local))
    glue = client("glue")
    connection = glue.get_connection(Name=settings.GLUE_WAREHOUSE_CONNECTION)["Connection"]
    url = f"jdbc:postgresql://{dsn.hostname}:{dsn.port or 5432}{dsn.path}"
    if connection["ConnectionProperties"].get("JDBC_CONNECTION_URL") != url:
        connection_input = {
            key: connection[key]
            for key in ("Name", "Description", "ConnectionType", "ConnectionProperties",
                        "PhysicalConnectionRequirements")
            if key in connection
        }
        # moto's GetConnection leaves ConnectionType out; the template's is JDBC.
        connection_input.setdefault("ConnectionType", "JDBC")
        connection_input["ConnectionProperties"] = {**connection["ConnectionProperties"], "JDBC_CONNECTION_URL": url}
        glue.update_connection(Name=settings.GLUE_WAREHOUSE_CONNECTION, ConnectionInput=connection_input)

    role_name = airflow_role_name(stack_name)
    credentials = _reusable_airflow_credentials(env, role_name) or airflow_credentials(
        client("iam"), client("sts"), outputs["AirflowPolicyArn"], role_name
    )
    aws_default = {
        "conn_type": "aws",
        "login": credentials["AccessKeyId"],
        "password": credentials["SecretAccessKey"],
        "extra": {
            "aws_session_token": credentials["SessionToken"],
            "endpoint_url": env["AWS_ENDPOINT_URL"],
            "region_name": env["AWS_DEFAULT_REGION"],
        },
    }
    return {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_default),
        "WAREHOUSE_SECRET_ARN": secret_arn,
        "AIRFLOW_ROLE_ARN": credentials["RoleArn"],
        "FAILURE_TOPIC_ARN": outputs["FailureTopicArn"],
    }


def _reusable_airflow_credentials(env: dict[str, str], role_name: str) -> dict[str, str] | None:
    """The Airflow session of the last `up`, while the server still knows it: running Airflow
    processes and open shells keep working, and a second `up` writes the same environment."""
    import boto3

    try:
        connection = json.loads(read_env_file().get("AIRFLOW_CONN_AWS_DEFAULT", "{}"))
        credentials = {
            "AccessKeyId": connection["login"],
            "SecretAccessKey": connection["password"],
            "SessionToken": connection["extra"]["aws_session_token"],
        }
        identity = boto3.client(
            "sts",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        ).get_caller_identity()
    except Exception:
        return None
    if f":assumed-role/{role_name}/" not in identity["Arn"]:
        return None
    return {**credentials, "RoleArn": f"arn:aws:iam::{config.ACCOUNT_ID}:role/{role_name}"}


def airflow_credentials(iam: Any, sts: Any, policy_arn: str, role_name: str = AIRFLOW_ROLE_NAME) -> dict[str, str]:
    """A session of the local Airflow role, which has the template's Airflow policy and nothing else."""
    from botocore.exceptions import ClientError

    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{config.ACCOUNT_ID}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    if [policy["PolicyArn"] for policy in attached] != [policy_arn]:
        for policy in attached:
            iam.detach_role_policy(RoleName=role_name, PolicyArn=policy["PolicyArn"])
        iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    # moto does not expire sessions; a restarted server forgets them, and `up` makes a new one.
    credentials = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="airflow", DurationSeconds=43200)["Credentials"]
    return {**credentials, "RoleArn": role["Arn"]}


# -- Airflow's metadata database --------------------------------------------------------------


def _airflow_db(env: dict[str, str], *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    airflow = Path(sys.executable).parent / "airflow"
    try:
        return subprocess.run(
            [str(airflow), "db", *args], env={**os.environ, **env}, capture_output=True, text=True,
            timeout=timeout, start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"airflow db {args[0]} did not finish within {timeout} s.") from None


def migrate_airflow(env: dict[str, str], say: Any) -> None:
    """Run `airflow db migrate` unless this Airflow version already migrated this database.

    The marker names the version that migrated last; `airflow db check-migrations` confirms that the
    database (which `make down` may have removed since) is at that version's revision.
    """
    version = metadata.version("apache-airflow-core")
    if MIGRATED_MARKER.exists() and MIGRATED_MARKER.read_text().split() == [version]:
        check = _airflow_db(env, "check-migrations", "--migration-wait-timeout", "0", timeout=MIGRATE_TIMEOUT)
        if check.returncode == 0:
            return
    say("migrating Airflow's metadata database (first start only)...")
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    result = _airflow_db(env, "migrate", timeout=MIGRATE_TIMEOUT)
    if result.returncode != 0:
        log = config.LOGS / "airflow-db-migrate.log"
        log.write_text(result.stdout + result.stderr)
        raise StackError(f"airflow db migrate failed (exit {result.returncode}); see {log}.")
    MIGRATED_MARKER.write_text(f"{version}\n")


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
            endpoint = wait_for_server(process)
            say(f"server started: {endpoint} (pid {process.pid}, log {_rel(config.SERVER_LOG)})")
        else:
            say(f"server reused: {endpoint}")
        say(f"PostgreSQL on {cluster.host}:{cluster.port} (databases {', '.join(postgres.DATABASES)})")
        if endpoint is None:
            raise RuntimeError("the local AWS server did not report its endpoint")
        env = build_env(endpoint, cluster, _warehouse_dsn(cluster))
        try:
            env.update(provision(env))
        except StackError:
            raise
        except Exception as exc:
            raise StackError(f"provisioning the stack failed: {first_line(exc)}") from None
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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
