"""Helpers shared by the tests: the warehouse's columns and rows, expected rows by docs/contract.md, clients.

The expected values come from `tests/contract_rules.py` (docs/contract.md read with the standard library),
never from the Glue code under test.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame

from dev import commands
from dev.airflow_services import AIRFLOW
from include.run_audit import ALERT_COUNTS, LOG_COUNTS
from tests.contract_rules import RowOutcome, utc

# pipeline_run_audit's counts of the day's log rows, in the order of docs/contract.md (input_rows first).
AUDIT_COLUMNS = LOG_COUNTS
# The ETL's quarantine reason for each quarantined outcome, by the audit's name of the outcome.
QUARANTINE_REASONS = {
    "malformed": "malformed",
    "duplicates": "duplicate",
    "no_sale": "no_sale",
    "unknown_customer": "unknown_customer",
}
_DATE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
# hardware_error_analysis's columns (docs/contract.md, section 4), in order.
ROW_COLUMNS = (
    "log_id, device_id, cpu_temp_celsius, memory_usage_gb, sale_id, days_since_sale, customer_name,"
    " industry, customer_id, sale_date, error_timestamp, log_date"
)


def aws_client(env: dict[str, str], service: str, **options):
    """A boto3 client for the local stack described by `env` (the contents of `.local/stack.env`);
    `options` go to boto3.client (a `config`, say)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        **options,
    )


def raw_day_lines(s3, bucket: str, day: str) -> list[str]:
    """The data lines of day D's partition as it is in the raw bucket, file by file (headers and blank
    lines left out)."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"hardware_logs/dt={day}/").get("Contents", [])
    lines = []
    for key in sorted(item["Key"] for item in listing if item["Key"].endswith(".csv")):
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8").splitlines()
        lines.extend(line for line in text[1:] if line.strip())
    return lines


def expected_rows(outcomes: list[RowOutcome], reference: Path, day: str) -> set[tuple]:
    """The warehouse rows (ROW_COLUMNS) of the loaded outcomes, with customers from `reference`."""
    with open(reference / "customers" / "customers.csv", encoding="utf-8") as handle:
        customers = {row["customer_id"]: row for row in csv.DictReader(handle)}
    rows = set()
    for outcome in (o for o in outcomes if o.outcome == "loaded"):
        log_id, timestamp, device, _, cpu, memory = next(csv.reader([outcome.line]))
        moment = utc(timestamp)
        customer = customers[outcome.customer_id]
        rows.add((
            log_id, device, int(cpu) if cpu else None, float(memory) if memory else None, outcome.sale_id,
            outcome.days_since_sale, customer["customer_name"], customer["industry"], outcome.customer_id,
            date.fromordinal(moment.date().toordinal() - outcome.days_since_sale), moment, date.fromisoformat(day),
        ))
    return rows


def warehouse_rows(dsn: str, day: str) -> set[tuple]:
    """Day D of hardware_error_analysis (ROW_COLUMNS); numeric values as floats."""
    import psycopg2

    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {ROW_COLUMNS} FROM hardware_error_analysis WHERE log_date = %s", (day,))
            return {tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in cursor.fetchall()}
    finally:
        connection.close()


def audit_alert_counts(dsn: str, day: str) -> dict[str, int] | None:
    """Day D's alert counts in `pipeline_run_audit`; None when the day has no audit row."""
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(ALERT_COUNTS)} FROM pipeline_run_audit WHERE log_date = %s", (day,))
        row = cursor.fetchone()
    connection.close()
    return dict(zip(ALERT_COUNTS, row, strict=True)) if row else None


def _row_key(row) -> tuple:
    return tuple((value is None, str(value)) for value in row)


def assert_frame_equal(actual: DataFrame, expected: DataFrame | list) -> None:
    """The same rows in any order. Against a DataFrame, also the same column names and types; against
    Rows, the same column names; against plain tuples, the values in column order.

    `pyspark.testing.assertDataFrameEqual` cannot be imported here: its package imports
    pandas-on-Spark, which PySpark 3.5 builds against NumPy 1 (`np.NaN`).
    """
    if isinstance(expected, DataFrame):
        assert [(f.name, f.dataType) for f in actual.schema] == [(f.name, f.dataType) for f in expected.schema]
        expected = expected.collect()
    if expected and hasattr(expected[0], "asDict"):
        assert actual.columns == list(expected[0].asDict())
    rows = [tuple(row) for row in actual.collect()]
    assert sorted(rows, key=_row_key) == sorted((tuple(row) for row in expected), key=_row_key)


def shift_dates(text: str, shift: timedelta) -> str:
    return _DATE.sub(lambda match: str(date.fromisoformat(match.group(0)) + shift), text)


def shifted_sample(target: Path, shift: timedelta) -> Path:
    """The sample raw zone with every date (in names and contents) moved by `shift`.

    Outcomes and ages are those of the sample data's README, on days that no other test (nor Airflow's
    records of other tests' runs) uses.
    """
    for source in sorted(commands.SAMPLE_DATA.rglob("*")):
        if source.is_dir() or source.suffix == ".md":
            continue
        destination = target / shift_dates(source.relative_to(commands.SAMPLE_DATA).as_posix(), shift)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(shift_dates(source.read_text(encoding="utf-8"), shift), encoding="utf-8")
    return target


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


# A Glue job's definition as GetJob answers it and CreateJob/UpdateJob take it.
JOB_FIELDS = ("Role", "Command", "DefaultArguments", "ExecutionProperty", "Connections", "GlueVersion",
              "WorkerType", "NumberOfWorkers", "Timeout", "MaxRetries", "LogUri", "Description")


def define_corner_glue_resources(glue, env: dict[str, str]) -> None:
    """A test corner's crawler and Glue jobs (the names in `env`), fresh: the stack's own, as
    CloudFormation deployed them from infrastructure/template.yaml, under the corner's names and over its
    raw bucket, catalog database and warehouse Connection, as a deployment of the template with those
    names as parameters defines them. The DAG only runs them; those of an earlier session are replaced."""
    from include import settings

    stack, corner = settings.load(commands.stack_env()), settings.load(env)
    for delete in (
        lambda: glue.delete_crawler(Name=corner.CRAWLER_NAME),
        lambda: glue.delete_job(JobName=corner.ETL_JOB_NAME),
        lambda: glue.delete_job(JobName=corner.LOAD_JOB_NAME),
    ):
        try:
            delete()
        except glue.exceptions.EntityNotFoundException:
            pass
    crawler = glue.get_crawler(Name=stack.CRAWLER_NAME)["Crawler"]
    stack_raw, corner_raw = f"s3://{stack.RAW_BUCKET}/", f"s3://{corner.RAW_BUCKET}/"
    targets = crawler["Targets"]["S3Targets"]
    assert all(target["Path"].startswith(stack_raw) for target in targets), targets
    glue.create_crawler(
        Name=corner.CRAWLER_NAME,
        Role=crawler["Role"],
        DatabaseName=corner.GLUE_DATABASE,
        Targets={"S3Targets": [{"Path": target["Path"].replace(stack_raw, corner_raw, 1)} for target in targets]},
        SchemaChangePolicy=crawler["SchemaChangePolicy"],
    )
    for stack_job, corner_job in ((stack.ETL_JOB_NAME, corner.ETL_JOB_NAME), (stack.LOAD_JOB_NAME, corner.LOAD_JOB_NAME)):
        job = glue.get_job(JobName=stack_job)["Job"]
        definition = {key: job[key] for key in JOB_FIELDS if job.get(key) is not None}
        if "Connections" in definition:
            names = definition["Connections"]["Connections"]
            definition["Connections"] = {"Connections": [
                corner.GLUE_WAREHOUSE_CONNECTION if name == stack.GLUE_WAREHOUSE_CONNECTION else name for name in names
            ]}
        glue.create_job(Name=corner_job, **definition)


def job_runs(glue, job_name: str, day: str | None = None) -> list[dict]:
    """The job's runs (for log day `day` if given), oldest first."""
    try:
        runs = [
            run
            for page in glue.get_paginator("get_job_runs").paginate(JobName=job_name)
            for run in page["JobRuns"]
        ]
    except glue.exceptions.EntityNotFoundException:
        return []
    if day is not None:
        runs = [run for run in runs if run.get("Arguments", {}).get("--log_date") == day]
    return sorted(runs, key=lambda run: run["StartedOn"])


def expected_day_rows(s3, raw_bucket: str, reference: Path, day: str) -> set[tuple]:
    """Day `day`'s warehouse rows by the rules of docs/contract.md (tests/contract_rules.py), from the
    raw files as they are in S3 and the sales and customers in `reference`."""
    from tests.contract_rules import classify, read_reference

    customers, sales = read_reference(reference)
    return expected_rows(classify(raw_day_lines(s3, raw_bucket, day), customers, sales), reference, day)


# The warehouse tables that hold a day's rows (docs/contract.md, section 4).
DAY_TABLES = ("hardware_error_analysis", "hardware_alerts", "device_day_activity", "pipeline_run_audit")


def empty_corner(env: dict[str, str], aws, days: tuple[date, ...]) -> None:
    """A test corner (the names in `env`) as on a fresh deployment: its buckets empty, no catalog
    database, its crawler and jobs as the template defines them (`define_corner_glue_resources`), and
    no rows of `days` in its warehouse."""
    import psycopg2

    s3, glue = aws("s3"), aws("glue")
    for bucket in (env["RAW_BUCKET"], env["PROCESSED_BUCKET"]):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    try:
        glue.delete_database(Name=env["GLUE_DATABASE"])
    except glue.exceptions.EntityNotFoundException:
        pass
    define_corner_glue_resources(glue, env)
    connection = psycopg2.connect(env["WAREHOUSE_DSN"])
    try:
        with connection, connection.cursor() as cursor:
            for table in DAY_TABLES:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                if cursor.fetchone()[0]:
                    cursor.execute(f"DELETE FROM {table} WHERE log_date = ANY(%s)", (list(days),))  # noqa: S608 - our table names
    finally:
        connection.close()


def airflow_json(env: dict[str, str], *args: str) -> Any:
    """What an `airflow` CLI command prints with `-o json`, run in `env` (the stack's): Airflow's records
    read through its CLI when no api-server runs."""
    result = subprocess.run(
        [str(AIRFLOW), *args, "-o", "json"], env=env, cwd=commands.REPO, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stderr[-2000:]}"
    # The JSON is the last line: Airflow may warn before it.
    return json.loads(result.stdout.strip().splitlines()[-1])


def task_states(env: dict[str, str], dag_id: str, run: str) -> dict[str, str]:
    """Task id -> state of the DAG's run `run` (its run id or logical date), from Airflow's CLI."""
    return {task["task_id"]: task["state"] for task in airflow_json(env, "tasks", "states-for-dag-run", dag_id, run)}


def run_scoped_prefixes(processed_bucket: str) -> set[str]:
    """Every prefix of the processed bucket under which the DAG's Glue runs write run-scoped folders
    (`<output>/run=<key>/`), from the DAG's own arguments, up to and including `run=`."""
    from dags import hardware_correlation as dag_module

    root = f"s3://{processed_bucket}/"
    found = set()
    for value in (*dag_module.ETL_ARGS.values(), *dag_module.LOAD_ARGS.values()):
        if isinstance(value, str) and value.startswith(root) and "/run=" in value:
            found.add(value.removeprefix(root).split("run=")[0] + "run=")
    return found


def check_lifecycle_covers_the_dag(rules: list[dict], processed_bucket: str, run_folder_days, scratch_days) -> None:
    """A rule for every run-scoped prefix: quarantined rows never expire; every other run folder expires
    after `run_folder_days`; the load job's scratch (its --TempDir) after `scratch_days`."""
    from dags import hardware_correlation as dag_module

    def rule_for(prefix: str) -> dict:
        matching = [r for r in rules if r["Status"] == "Enabled" and prefix.startswith(r["Filter"].get("Prefix", ""))
                    and r["Filter"].get("Prefix")]
        assert len(matching) == 1, f"{prefix}: {len(matching)} lifecycle rules"
        return matching[0]

    prefixes = run_scoped_prefixes(processed_bucket)
    assert len(prefixes) >= 7, prefixes
    for prefix in prefixes:
        rule = rule_for(prefix)
        if prefix.startswith("quarantine/"):
            assert "Expiration" not in rule, f"{prefix} would expire: quarantined rows must be kept"
            assert rule.get("Transitions"), prefix
        else:
            assert rule.get("Expiration") == {"Days": int(run_folder_days)}, prefix
    scratch = dag_module.LOAD_ARGS["--TempDir"].removeprefix(f"s3://{processed_bucket}/")
    assert rule_for(scratch).get("Expiration") == {"Days": int(scratch_days)}
