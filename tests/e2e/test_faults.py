"""Faults on the local stack: each one provoked for real, the pipeline must come through it.

The real DAG runs under `airflow dags test` five times, on the sample data moved to October 2031
(every date shifted by the same number of days, so outcomes and ages are those of the sample data's
README), in a corner of the stack of its own: its own raw and processed buckets, Glue jobs, crawler,
catalog database and Glue Connection, and its own PostgreSQL warehouse. So the faults reach no other
test running on the same stack, and a far-off day collides with nobody's runs in Airflow's metadata
database.

1. Day 2031-10-01, first run: the ETL job's first run fails (the stack's fail-next-run control) and
   the warehouse is down while the load job's first run connects to it (the stack holds the load job's
   runs in STARTING while the warehouse stops and starts again). Airflow's retries carry the day
   through; its rows, audit row and quarantine are exactly what the rules of docs/contract.md give.
2. The same day again, with one more error row in its partition that the warehouse refuses: the swap
   fails after its DELETE, and the day's previous rows and audit row are still there.
3. Day 2031-10-02 with every try of the crawl failing (the stack's fail-next-crawl control): the run
   fails naming the crawler's error, nothing is loaded.
4. Day 2031-10-01 with a log file whose header drifted: the run fails at once (no retry of the ETL)
   naming the file and its columns, the previous rows are intact.
5. Day 2031-10-03 with Glue answering the ETL job's GetJobRun and GetJobRuns with throttling errors
   until the task has failed two tries (polling its run, then looking for it): the last try takes
   over the run still going, which is the day's only ETL run.

Each failed run tells a person once: an SQS queue subscribed to the template's failure topic gets
exactly one message per failed run (none for the first run, which its retries carried through),
naming the DAG, the day, the failed task, its Glue run and console link, the first error line and the
log's URL; Airflow's role published it, which its policy allows on that topic only. Run 3 also drops
the staging tables that run 2 left (STAGING_RETENTION_DAYS=0): the housekeeping task asks Airflow for
run 2's state and finds it failed.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import duckdb
import psycopg2
import pytest

from dev import airflow_runs, airflow_services, commands
from dev.local_aws import stack as local_stack
from dev.local_aws import faults, policy
from dev.local_aws import postgres as stack_postgres
from dev.raw_zone import upload_raw_zone
from include.run_scope import run_key
from tests import support
from tests.contract_rules import OUTCOMES, RowOutcome, classify, read_reference
from tests.support import AUDIT_COLUMNS, QUARANTINE_REASONS, expected_rows, job_runs, raw_day_lines, warehouse_rows

pytestmark = pytest.mark.stack

SHIFT = date(2031, 10, 1) - date(2025, 10, 1)
DAYS = tuple(str(date.fromisoformat(day) + SHIFT) for day in commands.SAMPLE_DAYS)
FIRST, SECOND, THIRD = DAYS
RUN_TIMEOUT = 1200
# run_crawler's first try and its two retries (the DAG's default_args).
CRAWL_TRIES = 3
# The module's own names for everything a fault touches; the DAG reads them from the environment.
ISOLATED = {
    "RAW_BUCKET": "hardware-correlation-faults-raw",
    "PROCESSED_BUCKET": "hardware-correlation-faults-processed",
    "GLUE_DATABASE": "hardware_correlation_faults_raw",
    "CRAWLER_NAME": "hardware-correlation-faults-raw",
    "ETL_JOB_NAME": "hardware-correlation-faults-etl",
    "LOAD_JOB_NAME": "hardware-correlation-faults-load",
    "GLUE_WAREHOUSE_CONNECTION": "hardware-correlation-faults-warehouse",
}
ETL_JOB, LOAD_JOB = ISOLATED["ETL_JOB_NAME"], ISOLATED["LOAD_JOB_NAME"]
LOG_HEADER = "log_id,timestamp,device_id,event_type,cpu_temp_celsius,memory_usage_gb"


# -- a warehouse of the module's own -------------------------------------------------------------


class PrivateWarehouse:
    """A PostgreSQL server on 127.0.0.1 that this module may stop and start.

    The stack's cluster also holds Airflow's metadata database (and other tests' warehouse days), so
    stopping it would stop `airflow dags test` itself. This server stands in for the warehouse only:
    the DAG's `warehouse` connection and the Glue Connection of the load job both point at it.
    """

    ROLE = "faults"

    def __init__(self) -> None:
        try:
            self.user = stack_postgres.server_user()
        except stack_postgres.PostgresError as error:
            pytest.skip(str(error))
        self.bin = stack_postgres.pg_bin()
        self.base = Path(tempfile.mkdtemp(prefix="hc-faults-pg-"))
        self.data, self.sockets = self.base / "data", self.base / "run"
        self.sockets.mkdir()
        self.password = secrets.token_hex(16)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.base, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        password_file = self.base / "initdb-pw"
        password_file.write_text(self.password)
        if self.user:
            os.chown(password_file, pwd.getpwnam(self.user).pw_uid, -1)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", self.ROLE, f"--pwfile={password_file}",
                "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
            )
        finally:
            password_file.unlink()

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bin / program), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=self.base)
        assert result.returncode == 0, f"{program} failed: {result.stderr or result.stdout}"

    def dsn(self, database: str = "warehouse") -> str:
        return f"postgresql://{self.ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/warehouse"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "postgres.log"), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def accepts(self) -> bool:
        try:
            psycopg2.connect(self.dsn("postgres"), connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def create_database(self) -> None:
        connection = psycopg2.connect(self.dsn("postgres"))
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE warehouse")
        finally:
            connection.close()

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class WarehouseOutage(threading.Thread):
    """The warehouse down for exactly the load job's first run for `day`, whatever the machine's load.

    From its creation the stack holds the load job's runs in STARTING (their script not started, so
    they cannot have connected). The thread stops the warehouse once the first run is there, then lets
    that run go; once it has ended, starts the warehouse again, then lets the later runs (Airflow's
    retry) go. Whatever happens, the warehouse is running and no run is held when the thread ends."""

    def __init__(self, warehouse: PrivateWarehouse, glue, endpoint_url: str, day: str) -> None:
        super().__init__(daemon=True)
        self.warehouse, self.glue, self.endpoint_url, self.day = warehouse, glue, endpoint_url, day
        self.known = {run["Id"] for run in job_runs(glue, LOAD_JOB)}
        self.done = threading.Event()
        self.failed_run: dict | None = None
        self.error: BaseException | None = None
        faults.hold_job_runs(endpoint_url, LOAD_JOB)

    def run(self) -> None:
        try:
            first = None
            while first is None and not self.done.is_set():
                first = next((r for r in job_runs(self.glue, LOAD_JOB, self.day) if r["Id"] not in self.known), None)
                time.sleep(0.3)
            if first is None:
                return
            assert first["JobRunState"] == "STARTING", first
            self.warehouse.stop()
            assert faults.release_job_runs(self.endpoint_url, LOAD_JOB, first["Id"]) == [first["Id"]]
            while not self.done.is_set():
                run = self.glue.get_job_run(JobName=LOAD_JOB, RunId=first["Id"])["JobRun"]
                if run["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING", "WAITING"):
                    self.failed_run = run
                    break
                time.sleep(0.3)
        except BaseException as error:  # reported by the test, after the warehouse is back
            self.error = error
        finally:
            try:
                if not self.warehouse.accepts():
                    self.warehouse.start()
            finally:
                faults.release_job_runs(self.endpoint_url, LOAD_JOB)


# -- reading the stack back ----------------------------------------------------------------------


@dataclass
class DagRunResult:
    returncode: int
    output: str
    etl_runs: list[dict]
    load_runs: list[dict]


class DagsTest:
    """`make run DATE=day` in the module's corner of the stack, started in the background; its output
    is read as it comes, so that a test can wait for a line of it (`wait_for`)."""

    def __init__(self, env: dict[str, str], glue, day: str, **overrides: str) -> None:
        self.glue, self.day = glue, day
        self.before = {job: {run["Id"] for run in job_runs(glue, job)} for job in (ETL_JOB, LOAD_JOB)}
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._lock = airflow_services.no_backfill_running()
        self._lock.__enter__()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            airflow_runs.dags_test_command(commands.DAG_ID, date.fromisoformat(day)),
            # Unbuffered: a line is there to wait for as soon as Airflow writes it.
            env={**env, **overrides, "PYTHONUNBUFFERED": "1"}, cwd=commands.REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout: float = RUN_TIMEOUT) -> re.Match:
        """The first match of `pattern` in the output, once there; fails when the run ends without it."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = compiled.search("".join(self._lines))
                if found:
                    return found
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"the run ended without printing {pattern!r}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {pattern!r} in the run's output after {timeout} s")
                self._changed.wait(1)

    def finish(self) -> DagRunResult:
        try:
            self.process.wait(timeout=max(1, RUN_TIMEOUT - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        finally:
            self._reader.join(timeout=30)
            self._lock.__exit__(None, None, None)
        output = self.output
        # Shown by pytest when a test fails.
        print(f"--- airflow dags test for log day {self.day}: exit {self.process.returncode} after"
              f" {time.monotonic() - self.started:.0f} s ---\n{output[-40000:]}")
        new = {
            job: [run for run in job_runs(self.glue, job, self.day) if run["Id"] not in self.before[job]]
            for job in self.before
        }
        return DagRunResult(self.process.returncode, output, new[ETL_JOB], new[LOAD_JOB])


def run_day(env: dict[str, str], glue, day: str, **overrides: str) -> DagRunResult:
    """`make run DATE=day` in the module's corner of the stack, with the Glue runs it started."""
    return DagsTest(env, glue, day, **overrides).finish()


def expected_outcomes(s3, env: dict[str, str], reference: Path, day: str) -> list[RowOutcome]:
    customers, sales = read_reference(reference)
    return classify(raw_day_lines(s3, env["RAW_BUCKET"], day), customers, sales)


def expected_counts(outcomes: list[RowOutcome]) -> dict[str, int]:
    return {"input_rows": len(outcomes), **{name: sum(o.outcome == name for o in outcomes) for name in OUTCOMES}}


def execute(dsn: str, statement: str, parameters: tuple = ()) -> list[tuple]:
    """One statement in its own committed transaction; the rows it returns, if any."""
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(statement, parameters)
        rows = cursor.fetchall() if cursor.description else []
    connection.close()
    return rows


def audit_row(dsn: str, day: str) -> dict | None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pipeline_run_audit WHERE log_date = %s", (day,))
        row = cursor.fetchone()
        names = [column.name for column in cursor.description]
    connection.close()
    return dict(zip(names, row, strict=True)) if row else None


def quarantine(s3, bucket: str, day: str, dag_run_id: str, folder: Path) -> Counter:
    """(reason, raw line) of every row that the DAG run quarantined for day D."""
    prefix = f"quarantine/hardware_logs/run={run_key(dag_run_id)}/log_date={day}/"
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    files = [key for key in keys if key.endswith(".parquet")]
    assert files, f"no Parquet under s3://{bucket}/{prefix}"
    folder.mkdir(parents=True, exist_ok=True)
    for index, key in enumerate(files):
        s3.download_file(bucket, key, str(folder / f"part-{index}.parquet"))
    return Counter(duckdb.sql(f"SELECT reason, raw_line FROM read_parquet('{folder}/*.parquet')").fetchall())


def day_audit_files(s3, bucket: str, day: str) -> set[str]:
    """Every run's audit.json of day D."""
    return {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="audit/")
        for item in page.get("Contents", [])
        if item["Key"].endswith(f"/log_date={day}/audit.json")
    }


def failure_line(output: str, task_id: str, day: str) -> str:
    """The failure callback's line for the task's first failed try of log day D."""
    pattern = re.compile(rf"Task {task_id} of {commands.DAG_ID} failed \(try \d+\) for log day {day}: .*")
    found = pattern.search(output)
    assert found, f"no failure line of {task_id} in the run's output"
    return found.group(0)


def delete_objects(s3, bucket: str, prefix: str = "") -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def put_csv(s3, bucket: str, key: str, header: str, *rows: str) -> None:
    body = io.BytesIO(("\n".join([header, *rows]) + "\n").encode("utf-8"))
    s3.upload_fileobj(body, bucket, key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"})


class FailureInbox:
    """An SQS queue subscribed to the template's failure topic, as a person's mailbox would be.

    moto delivers a published message to the queue before Publish answers, so whatever a finished
    `airflow dags test` published is there: `new()` drains the queue without waiting."""

    def __init__(self, aws, topic_arn: str) -> None:
        self.sqs, self.sns, self.topic_arn = aws("sqs"), aws("sns"), topic_arn
        name = f"hardware-correlation-faults-inbox-{secrets.token_hex(4)}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.subscription = self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]

    def new(self) -> list[dict]:
        """The messages published since the last call, about this module's days only (other tests on
        the stack may publish about theirs): {"subject", "fields", "text"}."""
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                envelope = json.loads(message["Body"])
                fields = dict(
                    line.split(": ", 1) for line in envelope["Message"].splitlines() if ": " in line
                )
                found.append({"subject": envelope.get("Subject"), "fields": fields, "text": envelope["Message"]})
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return [message for message in found if message["fields"].get("Day") in DAYS]

    def remove(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.url)


def the_one_message(inbox: FailureInbox, day: str, task_id: str) -> dict[str, str]:
    """The run's single message, checked for what every failure message names."""
    messages = inbox.new()
    assert len(messages) == 1, f"expected one message about the failed run, got {messages}"
    fields = messages[0]["fields"]
    assert fields["DAG"] == commands.DAG_ID
    assert fields["Day"] == day
    assert fields["Failed task"].startswith(f"{task_id} (try ")
    try_number = fields["Failed task"].split("try ")[1].rstrip(")")
    assert fields["Log"].endswith(
        f"/dags/{commands.DAG_ID}/runs/{quote(fields['Run'])}/tasks/{task_id}?try_number={try_number}"
    ), fields
    assert messages[0]["subject"] == f"{commands.DAG_ID}: day {day} failed at {task_id}"
    return fields


# -- the module's corner of the stack ------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse():
    server = PrivateWarehouse()
    try:
        server.start()
        server.create_database()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    return support.shifted_sample(tmp_path_factory.mktemp("faults-raw-zone"), SHIFT)


@pytest.fixture(scope="module")
def glue(aws):
    return aws("glue")


@pytest.fixture(scope="module")
def inbox(stack, aws):
    box = FailureInbox(aws, stack["FAILURE_TOPIC_ARN"])
    yield box
    box.remove()


@pytest.fixture(scope="module")
def call_log_offset(stack) -> int:
    """Where the stack's call log stood before this module's runs: the calls after it are theirs."""
    return policy.call_log_size()


@pytest.fixture(scope="module")
def env(stack, aws, s3, glue, warehouse, reference) -> dict[str, str]:
    """The stack's environment with the module's own buckets, Glue resources and warehouse, which
    start empty: the raw bucket holds the shifted sample data only."""
    env = {**commands.stack_env(), **ISOLATED}
    env["WAREHOUSE_DSN"] = env["AIRFLOW_CONN_WAREHOUSE"] = warehouse.dsn()
    for bucket in (env["RAW_BUCKET"], env["PROCESSED_BUCKET"]):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            delete_objects(s3, bucket)

    secret_name = f"{ISOLATED['GLUE_WAREHOUSE_CONNECTION']}-credentials"
    secret = f'{{"username": "{warehouse.ROLE}", "password": "{warehouse.password}"}}'
    secretsmanager = aws("secretsmanager")
    try:
        secretsmanager.put_secret_value(SecretId=secret_name, SecretString=secret)
    except secretsmanager.exceptions.ResourceNotFoundException:
        secretsmanager.create_secret(Name=secret_name, SecretString=secret)
    connection = {
        "Name": ISOLATED["GLUE_WAREHOUSE_CONNECTION"],
        "ConnectionType": "JDBC",
        "ConnectionProperties": {"JDBC_CONNECTION_URL": warehouse.jdbc_url, "SECRET_ID": secret_name},
    }
    try:
        glue.update_connection(Name=connection["Name"], ConnectionInput=connection)
    except glue.exceptions.EntityNotFoundException:
        glue.create_connection(ConnectionInput=connection)

    # A catalog left by an earlier session would hold partitions of files that are gone.
    try:
        glue.delete_database(Name=ISOLATED["GLUE_DATABASE"])
    except glue.exceptions.EntityNotFoundException:
        pass
    support.define_corner_glue_resources(glue, env)

    upload_raw_zone(reference, env["RAW_BUCKET"], s3)
    return env


# -- 1. a Glue run failing once, and the warehouse down during the load -------------------------

ETL_FAULT = "Injected fault: the worker running this job run was lost"


@pytest.fixture(scope="module")
def first_run(env, glue, warehouse, inbox, call_log_offset) -> DagRunResult:
    faults.fail_next_job_run(env["AWS_ENDPOINT_URL"], ETL_JOB, ETL_FAULT)
    outage = WarehouseOutage(warehouse, glue, env["AWS_ENDPOINT_URL"], FIRST)
    outage.start()
    try:
        result = run_day(env, glue, FIRST)
    finally:
        outage.done.set()
        outage.join(timeout=120)
    assert outage.error is None, f"the warehouse outage went wrong: {outage.error!r}"
    assert outage.failed_run is not None, "the load job never ran while the warehouse was down"
    # Its retries carried the day through: the failed tries told nobody.
    assert inbox.new() == []
    return result


def test_a_glue_run_failing_once_is_retried_and_the_day_is_right(first_run, env, s3, reference):
    assert first_run.returncode == 0
    assert [run["JobRunState"] for run in first_run.etl_runs] == ["FAILED", "SUCCEEDED"]
    assert first_run.etl_runs[0]["ErrorMessage"] == ETL_FAULT
    line = failure_line(first_run.output, "run_etl_job", FIRST)
    assert f"Glue job {ETL_JOB} run {first_run.etl_runs[0]['Id']} ended FAILED: {ETL_FAULT}" in line

    outcomes = expected_outcomes(s3, env, reference, FIRST)
    assert warehouse_rows(env["WAREHOUSE_DSN"], FIRST) == expected_rows(outcomes, reference, FIRST)
    audit = audit_row(env["WAREHOUSE_DSN"], FIRST)
    assert {name: audit[name] for name in AUDIT_COLUMNS} == expected_counts(outcomes)
    # The sample data README's counts for this day, moved to 2031.
    assert expected_counts(outcomes) == {
        "input_rows": 15, "malformed": 3, "duplicates": 1, "non_error": 5, "no_sale": 1,
        "unknown_customer": 1, "loaded": 4,
    }
    assert audit["etl_job_run_id"] == first_run.etl_runs[-1]["Id"]
    assert audit["load_job_run_id"] == first_run.load_runs[-1]["Id"]


def test_the_warehouse_down_during_the_load_fails_clearly_and_the_retry_loads(first_run, env, aws, warehouse):
    """The warehouse's server process is really stopped (pg_ctl stop) while the stack holds the load
    job's first run before its script starts, and started again once the run has ended, before the
    stack lets the DAG's retry of run_load_job start; the retry then stages the day and the swap loads
    it. The warehouse is a server of the module's own: the stack's cluster also holds Airflow's
    metadata database, which `airflow dags test` needs throughout, and other tests' warehouse days."""
    assert first_run.returncode == 0
    assert [run["JobRunState"] for run in first_run.load_runs] == ["FAILED", "SUCCEEDED"]
    failed = first_run.load_runs[0]
    message = failed["ErrorMessage"]
    assert message.startswith("WarehouseError: ")
    assert warehouse.jdbc_url in message
    assert "refused" in message

    line = failure_line(first_run.output, "run_load_job", FIRST)
    assert f"Glue job {LOAD_JOB} run {failed['Id']} ended FAILED: WarehouseError: " in line
    assert warehouse.jdbc_url in line

    logs = aws("logs")
    glue_logs = "\n".join(
        event["message"]
        for group in ("/aws-glue/jobs/output", "/aws-glue/jobs/error")
        for run in first_run.load_runs
        for event in logs.get_log_events(logGroupName=group, logStreamName=run["Id"], startFromHead=True)["events"]
    )
    assert "WarehouseError" in glue_logs
    for text in (message, first_run.output, glue_logs):
        assert warehouse.password not in text
    assert audit_row(env["WAREHOUSE_DSN"], FIRST)["load_job_run_id"] == first_run.load_runs[-1]["Id"]


def test_the_audit_adds_up_and_the_quarantine_holds_exactly_the_quarantined_rows(
    first_run, env, s3, reference, tmp_path
):
    audit = audit_row(env["WAREHOUSE_DSN"], FIRST)
    assert audit["input_rows"] == sum(audit[name] for name in AUDIT_COLUMNS[1:])
    outcomes = expected_outcomes(s3, env, reference, FIRST)
    wanted = Counter((QUARANTINE_REASONS[o.outcome], o.line) for o in outcomes if o.outcome in QUARANTINE_REASONS)
    assert quarantine(s3, env["PROCESSED_BUCKET"], FIRST, audit["dag_run_id"], tmp_path) == wanted
    assert sum(wanted.values()) == sum(audit[name] for name in QUARANTINE_REASONS)


# -- 2. a load failing halfway --------------------------------------------------------------------


def test_a_load_failing_halfway_leaves_the_previous_rows_of_the_day(first_run, env, s3, glue, inbox):
    """A resent file brings one more error row for the day, and the warehouse refuses it (a CHECK
    constraint added for this test, NOT VALID so it judges only new rows): the swap's INSERT fails
    after its DELETE has run. The transaction must take the DELETE back."""
    before_rows = warehouse_rows(env["WAREHOUSE_DSN"], FIRST)
    before_audit = audit_row(env["WAREHOUSE_DSN"], FIRST)
    assert before_rows and before_audit
    before_alerts = execute(env["WAREHOUSE_DSN"], "SELECT * FROM hardware_alerts WHERE log_date = %s", (FIRST,))
    resent = f"hardware_logs/dt={FIRST}/resent.csv"
    put_csv(s3, env["RAW_BUCKET"], resent, LOG_HEADER, f"LOG-900,{FIRST}T17:00:00Z,DEV-A101,ERROR,97,8.0")
    execute(
        env["WAREHOUSE_DSN"],
        "ALTER TABLE hardware_error_analysis ADD CONSTRAINT refuses_log_900 CHECK (log_id <> 'LOG-900') NOT VALID",
    )
    try:
        result = run_day(env, glue, FIRST)
    finally:
        execute(env["WAREHOUSE_DSN"], "ALTER TABLE hardware_error_analysis DROP CONSTRAINT refuses_log_900")
        s3.delete_object(Bucket=env["RAW_BUCKET"], Key=resent)

    assert result.returncode != 0
    assert [run["JobRunState"] for run in result.etl_runs] == ["SUCCEEDED"]
    assert [run["JobRunState"] for run in result.load_runs] == ["SUCCEEDED"]
    line = failure_line(result.output, "swap_day_into_warehouse", FIRST)
    assert "refuses_log_900" in line
    # The run staged the new row and passed check_staging: the swap's INSERT, which comes after its
    # DELETE in the same transaction, is what failed.
    # The failed run's staging table stays for inspection; the earlier run's was dropped by its swap.
    (staging_table,) = execute(
        env["WAREHOUSE_DSN"],
        "SELECT tablename FROM pg_tables WHERE schemaname = 'staging' AND tablename LIKE %s",
        (f"hardware\\_error\\_analysis\\_{FIRST.replace('-', '')}\\_%",),
    )[0]
    staged = execute(env["WAREHOUSE_DSN"], f"SELECT log_id FROM staging.{staging_table}")
    assert {log_id for (log_id,) in staged} == {row[0] for row in before_rows} | {"LOG-900"}
    assert warehouse_rows(env["WAREHOUSE_DSN"], FIRST) == before_rows
    assert audit_row(env["WAREHOUSE_DSN"], FIRST) == before_audit
    assert execute(env["WAREHOUSE_DSN"], "SELECT * FROM hardware_alerts WHERE log_date = %s", (FIRST,)) == before_alerts

    # The first error line of a task that is not Glue's comes from the task's own failure callback.
    told = the_one_message(inbox, FIRST, "swap_day_into_warehouse")
    assert "refuses_log_900" in told["Error"]
    assert "Glue job run" not in told
    LEFT_BEHIND[FIRST] = f"staging.{staging_table}"


# Staging tables a failed run left, by log day, for the housekeeping of a later run to drop.
LEFT_BEHIND: dict[str, str] = {}


def staging_tables(dsn: str) -> set[str]:
    return {f"staging.{name}" for (name,) in execute(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'staging'")}


# -- 3. a crawler failure -------------------------------------------------------------------------


def test_a_crawler_failure_names_its_cause_and_loads_nothing(env, glue, inbox):
    """Every try of run_crawler (its retries included) finds the crawl failing. The run's
    housekeeping, with a retention of 0 days, drops the staging tables of run 2 (failed)."""
    crawler = ISOLATED["CRAWLER_NAME"]
    cause = f"Service is unable to assume provided role for crawler {crawler}; check the role's trust policy"
    faults.fail_next_crawl(env["AWS_ENDPOINT_URL"], crawler, cause, times=CRAWL_TRIES)
    try:
        result = run_day(env, glue, SECOND, STAGING_RETENTION_DAYS="0")
    finally:
        faults.fail_next_crawl(env["AWS_ENDPOINT_URL"], crawler, cause, times=0)

    assert result.returncode != 0
    last_crawl = glue.get_crawler(Name=crawler)["Crawler"]["LastCrawl"]
    assert (last_crawl["Status"], last_crawl["ErrorMessage"]) == ("FAILED", cause)
    line = failure_line(result.output, "run_crawler", SECOND)
    assert ISOLATED["CRAWLER_NAME"] in line
    assert last_crawl["ErrorMessage"] in line
    assert result.etl_runs == [] and result.load_runs == []
    assert warehouse_rows(env["WAREHOUSE_DSN"], SECOND) == set()
    assert audit_row(env["WAREHOUSE_DSN"], SECOND) is None

    told = the_one_message(inbox, SECOND, "run_crawler")
    assert told["Failed task"] == f"run_crawler (try {CRAWL_TRIES})"
    assert cause in told["Error"]
    assert "Glue job run" not in told
    if FIRST in LEFT_BEHIND:  # run 2 ran before, and left its staging tables
        assert LEFT_BEHIND[FIRST] not in staging_tables(env["WAREHOUSE_DSN"])
        assert re.search(rf"Dropped the staging tables of failed run \S+: .*{LEFT_BEHIND[FIRST].split('.')[1]}",
                         result.output)


# -- 4. a raw file whose header drifted -----------------------------------------------------------


def test_a_drifted_header_names_the_file_and_loads_nothing(first_run, env, s3, glue, inbox):
    before_rows = warehouse_rows(env["WAREHOUSE_DSN"], FIRST)
    before_audit = audit_row(env["WAREHOUSE_DSN"], FIRST)
    audit_file = {
        "Bucket": env["PROCESSED_BUCKET"],
        "Key": f"audit/run={run_key(before_audit['dag_run_id'])}/log_date={FIRST}/audit.json",
    }
    audit_written = s3.head_object(**audit_file)["LastModified"]
    audit_files_before = day_audit_files(s3, env["PROCESSED_BUCKET"], FIRST)
    drifted = f"hardware_logs/dt={FIRST}/late-batch.csv"
    put_csv(
        s3, env["RAW_BUCKET"], drifted,
        LOG_HEADER.replace("cpu_temp_celsius", "cpu_temperature"),
        f"LOG-901,{FIRST}T18:00:00Z,DEV-A101,ERROR,97,8.0",
    )
    try:
        result = run_day(env, glue, FIRST)
    finally:
        s3.delete_object(Bucket=env["RAW_BUCKET"], Key=drifted)

    assert result.returncode != 0
    # A retry would read the same file: the first failed run ends the task.
    assert [run["JobRunState"] for run in result.etl_runs] == ["FAILED"]
    assert result.load_runs == []
    message = result.etl_runs[0]["ErrorMessage"]
    assert message.startswith("SchemaDriftError: ")
    assert f"s3://{env['RAW_BUCKET']}/{drifted}" in message
    assert "cpu_temperature" in message
    assert message in failure_line(result.output, "run_etl_job", FIRST)
    assert "failed on its input; a retry would read the same input, so the task is not retried" in result.output
    # The ETL stopped before writing anything: the day's audit file is the previous run's, and the
    # failed run wrote none of its own.
    assert s3.head_object(**audit_file)["LastModified"] == audit_written
    assert day_audit_files(s3, env["PROCESSED_BUCKET"], FIRST) == audit_files_before
    assert warehouse_rows(env["WAREHOUSE_DSN"], FIRST) == before_rows
    assert audit_row(env["WAREHOUSE_DSN"], FIRST) == before_audit

    told = the_one_message(inbox, FIRST, "run_etl_job")
    failed = result.etl_runs[0]
    assert told["Failed task"] == "run_etl_job (try 1)"
    assert told["Glue job run"] == (
        f"{failed['Id']} ({ETL_JOB}) https://console.aws.amazon.com/gluestudio/home?region="
        f"{env['AWS_DEFAULT_REGION']}#/job/{ETL_JOB}/run/{failed['Id']}"
    )
    assert told["Error"] == first_line_of(f"Glue job {ETL_JOB} run {failed['Id']} ended FAILED: {message}")


def first_line_of(text: str) -> str:
    from include.notifications import first_line

    return first_line(text)


# -- what told a person, and with which rights -----------------------------------------------------


def test_a_day_not_loaded_by_its_deadline_tells_a_person_once(inbox, call_log_offset, env, monkeypatch):
    """The deadline alert's callback as the triggerer awaits it, with the context the scheduler gives
    it (its run record), publishing as Airflow's role through the provider's notifier. (The scheduler
    and triggerer that would wait until 06:00 are not run here: the deadline's evaluation is checked by
    tests/include/test_notifications.py.)"""
    import asyncio

    from include.notifications import notify_day_late

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", env["AIRFLOW_CONN_AWS_DEFAULT"])
    run_id = f"scheduled__{SECOND}T00:00:00+00:00"
    context = {
        "dag_run": {"dag_id": commands.DAG_ID, "dag_run_id": run_id, "state": "running",
                    "data_interval_start": f"{SECOND}T00:00:00Z", "logical_date": f"{SECOND}T00:00:00Z"},
        "deadline": {"id": "deadline-1", "deadline_time": datetime.fromisoformat(f"{DAYS[2]}T06:00:00+00:00")},
    }
    asyncio.run(notify_day_late(context, topic_arn=env["FAILURE_TOPIC_ARN"], aws_conn_id="aws_default"))

    (message,) = inbox.new()
    assert message["subject"] == f"{commands.DAG_ID}: day {SECOND} not loaded by {DAYS[2]} 06:00 UTC"
    fields = message["fields"]
    assert (fields["DAG"], fields["Day"], fields["Run"], fields["Run state"]) == (
        commands.DAG_ID, SECOND, run_id, "running"
    )
    assert fields["Log"].endswith(f"/dags/{commands.DAG_ID}/runs/{quote(run_id)}")


def test_only_airflow_published_the_messages_and_only_to_the_failure_topic(
    inbox, call_log_offset, stack, aws, env
):
    """Least privilege: the runs' SNS calls are Airflow's role's, Publish to the template's topic,
    and its policy allows them; it allows Publish on no other topic and no other SNS action."""
    calls = [call for call in policy.read_calls(offset=call_log_offset) if call["action"].startswith("sns:")]
    assert calls, "no SNS call recorded: the failed runs told nobody"
    assert {call["role"].rsplit("/", 1)[-1] for call in calls} == {local_stack.AIRFLOW_ROLE_NAME}
    assert {(call["action"], *call["resources"]) for call in calls} == {("sns:Publish", stack["FAILURE_TOPIC_ARN"])}
    assert policy.denied(calls, aws("iam")) == []
    statements = policy.role_statements(aws("iam"), stack["AIRFLOW_ROLE_ARN"])
    other_topic = stack["FAILURE_TOPIC_ARN"].rsplit(":", 1)[0] + ":someone-elses-topic"
    assert not policy.allowed(statements, "sns:Publish", other_topic, {})
    for action in ("sns:Subscribe", "sns:SetTopicAttributes", "sns:DeleteTopic"):
        assert not policy.allowed(statements, action, stack["FAILURE_TOPIC_ARN"], {})


# -- 5. Glue's API failing while the task polls its run ------------------------------------------

# The provider's line when a retry takes over the run its task already started.
REATTACHED = r"Found Glue job_run_id by task UUID: (?P<run_id>\S+), state: (?P<state>\w+)"


def test_errors_while_polling_fail_a_try_and_the_retry_reattaches_to_the_run(env, glue, s3, reference):
    """Glue's API answers GetJobRun and GetJobRuns of the ETL job with ThrottlingException (botocore's
    own retries included) until the task has failed two tries: the first while polling its run, the
    second while looking for that run. The run is held in STARTING meanwhile, so it is still going,
    whatever the machine's load, when the last try looks for it; that try must take it over instead of
    starting a second ETL run of the day.

    botocore makes two attempts of each call here (AWS_MAX_ATTEMPTS) rather than its default five,
    whose back-off would add about half a minute of sleeping to the run and test nothing more."""
    endpoint = env["AWS_ENDPOINT_URL"]
    faults.hold_job_runs(endpoint, ETL_JOB)
    run = DagsTest(env, glue, THIRD, AWS_MAX_ATTEMPTS="2")
    faults.fail_job_reads(endpoint, ETL_JOB, "ThrottlingException", actions=("GetJobRun", "GetJobRuns"))
    answered = 0
    try:
        for try_number in (1, 2):
            run.wait_for(rf"Task run_etl_job of {commands.DAG_ID} failed \(try {try_number}\) for log day {THIRD}")
        answered = faults.fail_job_reads(endpoint, ETL_JOB, None)
        # The last try either takes over the run or says that it starts a new one.
        started = f"Initializing AWS Glue Job: {ETL_JOB}"
        run.wait_for(rf"(?s){REATTACHED}|{started}.*{started}", timeout=300)
    finally:
        faults.fail_job_reads(endpoint, ETL_JOB, None)
        faults.release_job_runs(endpoint, ETL_JOB)
        result = run.finish()

    assert answered > 0, "Glue never answered an error"
    assert result.returncode == 0
    (etl_run,) = result.etl_runs
    (load_run,) = result.load_runs
    assert etl_run["JobRunState"] == load_run["JobRunState"] == "SUCCEEDED"
    reattached = re.search(REATTACHED, result.output)
    assert reattached and (reattached["run_id"], reattached["state"]) == (etl_run["Id"], "STARTING")
    assert "ThrottlingException" in failure_line(result.output, "run_etl_job", THIRD)
    second = re.search(rf"Task run_etl_job of {commands.DAG_ID} failed \(try 2\) for log day {THIRD}: .*", result.output)
    assert "could not look for a run of this task still going" in second.group(0)
    assert "ThrottlingException" in second.group(0)

    outcomes = expected_outcomes(s3, env, reference, THIRD)
    assert warehouse_rows(env["WAREHOUSE_DSN"], THIRD) == expected_rows(outcomes, reference, THIRD)
    assert execute(env["WAREHOUSE_DSN"], "SELECT count(*) FROM pipeline_run_audit WHERE log_date = %s", (THIRD,)) == [(1,)]
    audit = audit_row(env["WAREHOUSE_DSN"], THIRD)
    assert {name: audit[name] for name in AUDIT_COLUMNS} == expected_counts(outcomes)
    assert (audit["etl_job_run_id"], audit["load_job_run_id"]) == (etl_run["Id"], load_run["Id"])
