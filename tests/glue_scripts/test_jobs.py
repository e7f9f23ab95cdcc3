"""Both Glue entry points, run as Glue job runs on the local stack, read back from S3 and PostgreSQL.

Everything lives under names of its own (buckets, Glue database, jobs, staging tables), so these
tests leave the sample data and concurrent runs of the DAG alone. The catalog tables are created
the way the crawler would create them.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import duckdb
import psycopg2
import pytest

from include import glue_deploy
from include.settings import load

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "dev" / "sample_data"
HEADER = "log_id,timestamp,device_id,event_type,cpu_temp_celsius,memory_usage_gb"
ACTIVE = ("STARTING", "RUNNING", "STOPPING")


def _wait(glue, job: str, run_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if run["JobRunState"] not in ACTIVE:
            return run
        assert time.monotonic() < deadline, f"{job} run {run_id} still {run['JobRunState']}"
        time.sleep(1)


class World:
    """A raw zone, a processed bucket, a catalog and the two jobs, all of this module's own."""

    def __init__(self, aws, stack):
        self.s3, self.glue = aws("s3"), aws("glue")
        self.settings = load(stack)
        self.dsn = stack["WAREHOUSE_DSN"]
        suffix = uuid.uuid4().hex[:8]
        self.suffix = suffix
        self.raw = f"jobtest-raw-{suffix}"
        self.processed = f"jobtest-processed-{suffix}"
        self.database = f"jobtest_{suffix}"
        for bucket in (self.raw, self.processed):
            self.s3.create_bucket(Bucket=bucket)
        self.glue.create_database(DatabaseInput={"Name": self.database})
        for table in ("customers", "sales"):
            self._table(table, [])
        self._table("hardware_logs", [{"Name": "dt", "Type": "string"}])
        self.put("customers/customers.csv", (SAMPLE / "customers" / "customers.csv").read_bytes())
        self.put("sales/sales.csv", (SAMPLE / "sales" / "sales.csv").read_bytes())

        artifacts = glue_deploy.deploy(self.s3, self.settings.ARTIFACTS_BUCKET, prefix=f"jobtest-{suffix}")
        self.scripts_version = artifacts.version
        self.etl_job, self.load_job = f"jobtest-etl-{suffix}", f"jobtest-load-{suffix}"
        for name, role, script, connections in (
            (self.etl_job, self.settings.ETL_ROLE_NAME, artifacts.etl_script, []),
            (self.load_job, self.settings.LOAD_ROLE_NAME, artifacts.load_script, [self.settings.GLUE_WAREHOUSE_CONNECTION]),
        ):
            self.glue.create_job(
                Name=name,
                Role=role,
                Command={"Name": "glueetl", "ScriptLocation": script, "PythonVersion": "3"},
                GlueVersion="5.0",
                DefaultArguments={"--extra-py-files": artifacts.extra_py_files, "--job-language": "python"},
                Connections={"Connections": connections},
                ExecutionProperty={"MaxConcurrentRuns": 4},
            )
        with psycopg2.connect(self.dsn) as connection, connection.cursor() as cursor:
            for ddl in sorted((REPO / "include" / "sql" / "ddl").glob("*.sql")):
                cursor.execute(ddl.read_text())

    def _table(self, name: str, partition_keys: list[dict]) -> None:
        self.glue.create_table(
            DatabaseName=self.database,
            TableInput={
                "Name": name,
                "StorageDescriptor": {"Location": f"s3://{self.raw}/{name}/", "Columns": []},
                "PartitionKeys": partition_keys,
            },
        )

    def put(self, key: str, body: bytes | str) -> None:
        self.s3.put_object(Bucket=self.raw, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def log_partition(self, day: str, files: dict[str, str]) -> None:
        for name, text in files.items():
            self.put(f"hardware_logs/dt={day}/{name}", text)
        self.glue.create_partition(
            DatabaseName=self.database,
            TableName="hardware_logs",
            PartitionInput={
                "Values": [day],
                "StorageDescriptor": {"Location": f"s3://{self.raw}/hardware_logs/dt={day}/"},
            },
        )

    def run_etl(self, day: str) -> dict:
        arguments = {
            "--log_date": day,
            "--database": self.database,
            "--processed_path": f"s3://{self.processed}/hardware_error_analysis/",
            "--quarantine_path": f"s3://{self.processed}/quarantine/hardware_logs/",
            "--audit_path": f"s3://{self.processed}/audit/",
        }
        run_id = self.glue.start_job_run(JobName=self.etl_job, Arguments=arguments)["JobRunId"]
        return _wait(self.glue, self.etl_job, run_id)

    def run_load(self, day: str, staging_table: str, connection: str | None = None) -> dict:
        arguments = {
            "--log_date": day,
            "--processed_path": f"s3://{self.processed}/hardware_error_analysis/",
            "--connection_name": connection or self.settings.GLUE_WAREHOUSE_CONNECTION,
            "--staging_table": staging_table,
        }
        run_id = self.glue.start_job_run(JobName=self.load_job, Arguments=arguments)["JobRunId"]
        return _wait(self.glue, self.load_job, run_id)

    def keys(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.processed, Prefix=prefix)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def audit(self, day: str) -> dict:
        body = self.s3.get_object(Bucket=self.processed, Key=f"audit/log_date={day}/audit.json")["Body"]
        return json.loads(body.read())

    def parquet(self, prefix: str, tmp_path: Path) -> list[dict]:
        files = [key for key in self.keys(prefix) if key.endswith(".parquet")]
        for index, key in enumerate(files):
            (tmp_path / f"{index}.parquet").write_bytes(self.s3.get_object(Bucket=self.processed, Key=key)["Body"].read())
        if not files:
            return []
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/*.parquet')")
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]


@pytest.fixture(scope="module")
def world(aws, stack):
    return World(aws, stack)


def _sample_lines(*log_ids: str) -> list[str]:
    lines = (SAMPLE / "hardware_logs.csv").read_text().splitlines()[1:]
    return [line for line in lines if line.split(",")[0] in log_ids]


def _staged(dsn: str, table: str) -> list[tuple]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT log_id, days_since_sale, sale_id, customer_name, log_date FROM {table} ORDER BY log_id")
        rows = cursor.fetchall()
        cursor.execute(f"DROP TABLE {table}")
    return rows


def test_seed_errors_are_aged_at_their_own_day_through_both_jobs(world, tmp_path):
    # The seed table's 33 and 262 days were counted to the run day, 2025-10-04; counted to each
    # error's own UTC day they are 31 and 259, whatever day the partition or the run is.
    day = "2025-10-04"
    world.log_partition(day, {"part-0.csv": "\n".join([HEADER, *_sample_lines("LOG-002", "LOG-005", "LOG-008")]) + "\n"})

    run = world.run_etl(day)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    audit = world.audit(day)
    assert audit == {
        "log_date": day, "input_rows": 4, "malformed": 0, "duplicates": 1, "non_error": 0, "no_sale": 0,
        "unknown_customer": 0, "loaded": 3, "rejected_sales": 0, "rejected_customers": 0, "job_run_id": run["Id"],
        # The version in the package the run imported, which the deployment wrote into its zip.
        "scripts_version": world.scripts_version,
    }
    loaded = {row["log_id"]: row for row in world.parquet(f"hardware_error_analysis/log_date={day}/", tmp_path)}
    assert {log_id: row["days_since_sale"] for log_id, row in loaded.items()} == {
        "LOG-002": 259, "LOG-005": 31, "LOG-008": 75
    }
    assert loaded["LOG-008"]["sale_id"] == "SALE-108"
    (tmp_path / "quarantine").mkdir()
    quarantined = world.parquet(f"quarantine/hardware_logs/log_date={day}/", tmp_path / "quarantine")
    assert [(row["log_id"], row["timestamp"], row["reason"]) for row in quarantined] == [
        ("LOG-002", "2025-10-01T09:20:00Z", "duplicate")
    ]

    table = f"staging.jobtest_{world.suffix}"
    run = world.run_load(day, table)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    staged = _staged(world.dsn, table)
    assert [(log_id, age, sale) for log_id, age, sale, _, _ in staged] == [
        ("LOG-002", 259, "SALE-101"), ("LOG-005", 31, "SALE-103"), ("LOG-008", 75, "SALE-108")
    ]
    assert {str(log_date) for *_, log_date in staged} == {day}


def test_schema_drift_fails_naming_the_file_and_writes_nothing(world):
    day = "2025-10-05"
    drifted = "log_id,timestamp,device,event_type,cpu_temp_celsius,memory_usage_gb"
    world.log_partition(day, {
        "a.csv": f"{HEADER}\nL1,2025-10-05T10:00:00Z,DEV-A101,ERROR,70,3.5\n",
        "b.csv": f"{drifted}\nL2,2025-10-05T10:00:00Z,DEV-A101,ERROR,70,3.5\n",
    })
    run = world.run_etl(day)
    assert run["JobRunState"] == "FAILED"
    message = run["ErrorMessage"]
    assert f"s3://{world.raw}/hardware_logs/dt={day}/b.csv" in message
    assert "expected columns log_id, timestamp, device_id," in message and "found log_id, timestamp, device," in message
    assert world.keys(f"hardware_error_analysis/log_date={day}/") == []
    assert world.keys(f"quarantine/hardware_logs/log_date={day}/") == []
    assert world.keys(f"audit/log_date={day}/") == []


def test_empty_partition_succeeds_with_a_zero_audit_and_stages_no_rows(world):
    day = "2025-10-06"
    world.log_partition(day, {"part-0.csv": HEADER + "\n"})
    run = world.run_etl(day)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    audit = world.audit(day)
    # The ETL stamps the scripts version it ran (the package's VERSION file).
    assert audit["scripts_version"]
    assert {
        key: value for key, value in audit.items() if key not in ("log_date", "job_run_id", "scripts_version")
    } == {
        "input_rows": 0, "malformed": 0, "duplicates": 0, "non_error": 0, "no_sale": 0,
        "unknown_customer": 0, "loaded": 0, "rejected_sales": 0, "rejected_customers": 0,
    }
    assert world.keys(f"hardware_error_analysis/log_date={day}/") == []

    table = f"staging.jobtest_empty_{world.suffix}"
    run = world.run_load(day, table)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert _staged(world.dsn, table) == []


def test_load_fails_clearly_without_secrets_when_postgresql_is_unreachable(world, aws):
    real = world.glue.get_connection(Name=world.settings.GLUE_WAREHOUSE_CONNECTION, HidePassword=False)["Connection"]
    properties = real["ConnectionProperties"]
    secret = json.loads(aws("secretsmanager").get_secret_value(SecretId=properties["SECRET_ID"])["SecretString"])
    down = f"jobtest-down-{world.suffix}"
    world.glue.create_connection(
        ConnectionInput={
            "Name": down,
            "ConnectionType": "JDBC",
            # Port 9 (discard) on loopback: nothing listens there.
            "ConnectionProperties": {
                "JDBC_CONNECTION_URL": "jdbc:postgresql://127.0.0.1:9/warehouse",
                "SECRET_ID": properties["SECRET_ID"],
            },
        }
    )
    run = world.run_load("2025-10-04", f"staging.jobtest_down_{world.suffix}", connection=down)
    assert run["JobRunState"] == "FAILED"
    message = run["ErrorMessage"]
    assert message.startswith("WarehouseError: loading staging.jobtest_down_"), message
    assert "127.0.0.1:9" in message
    assert "refused" in message
    assert secret["password"] not in message and secret["username"] not in message
