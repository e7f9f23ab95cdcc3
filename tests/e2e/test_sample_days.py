"""End to end: the real DAG under `airflow dags test` on the local stack, read back from PostgreSQL.

The expected warehouse rows are computed here, independently of the Glue code, from the raw files
as they landed in S3 and the rules of the contract (section 3).
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone

import psycopg2
import pytest

from dev import commands
from dev.local_aws import policy
from dev.local_aws import stack as local_stack
from dev.raw_zone import upload_raw_zone
from include.settings import load as load_settings
from tests.contract_rules import OUTCOMES, classify, read_reference
from tests.support import AUDIT_COLUMNS, expected_rows, raw_day_lines, warehouse_rows

pytestmark = pytest.mark.stack

DAYS = commands.SAMPLE_DAYS
def expected_day(s3, bucket: str, day: str) -> tuple[set[tuple], dict[str, int]]:
    """The contract's rules applied row by row to day D's partition as it landed in S3."""
    customer_ids, sales = read_reference(commands.SAMPLE_DATA)
    outcomes = classify(raw_day_lines(s3, bucket, day), customer_ids, sales)
    counts = {"input_rows": len(outcomes), **{name: sum(o.outcome == name for o in outcomes) for name in OUTCOMES}}
    return expected_rows(outcomes, commands.SAMPLE_DATA, day), counts


def warehouse_day(dsn: str, day: str) -> tuple[set[tuple], dict[str, int] | None]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM pipeline_run_audit WHERE log_date = %s", (day,))
        audit = cursor.fetchone()
    connection.close()
    return warehouse_rows(dsn, day), (dict(zip(AUDIT_COLUMNS, audit, strict=True)) if audit else None)


@pytest.fixture(scope="module")
def deployed_env(env):
    """Airflow as deployed: connections through the secrets backend, the Airflow role's session."""
    return local_stack.deployed_airflow_env(env)


@pytest.fixture(scope="module")
def sample_days_ran(env, deployed_env, s3):
    """The sample days, run as a deployed Airflow; the AWS calls they made, by role."""
    upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)
    offset = policy.call_log_size()
    results = {day: commands.run(day, deployed_env) for day in DAYS}
    assert results == dict.fromkeys(DAYS, 0), f"some sample days failed: {results}"
    return {"results": results, "calls": policy.read_calls(offset=offset)}


@pytest.mark.parametrize("day", DAYS)
def test_sample_day_gives_exactly_the_expected_rows(sample_days_ran, env, s3, day):
    wanted_rows, wanted_counts = expected_day(s3, env["RAW_BUCKET"], day)
    rows, audit = warehouse_day(env["WAREHOUSE_DSN"], day)
    assert rows == wanted_rows
    assert audit == wanted_counts
    assert audit["input_rows"] == sum(v for k, v in audit.items() if k != "input_rows")


def test_every_aws_call_of_the_days_is_one_the_template_allows(sample_days_ran, aws):
    """Least privilege: each call of Airflow, the crawler and both Glue jobs, checked (action and
    resource) against the policies the CloudFormation template gave that role."""
    calls = sample_days_ran["calls"]
    settings = load_settings()
    roles = {call["role"].rsplit("/", 1)[-1] for call in calls}
    assert roles == {
        local_stack.AIRFLOW_ROLE_NAME, settings.CRAWLER_ROLE_NAME, settings.ETL_ROLE_NAME, settings.LOAD_ROLE_NAME
    }
    assert len(calls) > 100
    assert policy.denied(calls, aws("iam")) == []


def test_the_warehouse_connection_came_from_secrets_manager(sample_days_ran, env, deployed_env):
    assert "AIRFLOW_CONN_WAREHOUSE" not in deployed_env
    airflow_reads = {
        resource
        for call in sample_days_ran["calls"]
        if call["action"] == "secretsmanager:GetSecretValue" and call["role"].endswith(f"/{local_stack.AIRFLOW_ROLE_NAME}")
        for resource in call["resources"]
    }
    assert env["WAREHOUSE_SECRET_ARN"] in airflow_reads
    # Nor was it in Airflow's metadata database.
    metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg2.connect(metadata) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM connection WHERE conn_id = 'warehouse'")
        assert cursor.fetchone() == (0,)


def test_seed_errors_are_aged_at_the_error_day(sample_days_ran, env):
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT log_id, days_since_sale FROM hardware_error_analysis"
            " WHERE log_id IN ('LOG-002', 'LOG-005', 'LOG-008') ORDER BY log_id"
        )
        ages = dict(cursor.fetchall())
    assert set(ages) == {"LOG-002", "LOG-005", "LOG-008"}
    assert {31, 259} <= set(ages.values())


def run_tasks(env: dict[str, str], day: str) -> set[str]:
    """The tasks of the day's latest `airflow dags test` run, from Airflow's metadata database."""
    metadata = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://", 1)
    logical = date.fromisoformat(day) + timedelta(days=1)
    with psycopg2.connect(metadata) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT ti.task_id FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id"
            " WHERE r.dag_id = %s AND r.logical_date = %s",
            (commands.DAG_ID, datetime.combine(logical, time(), timezone.utc)),
        )
        tasks = {task_id for (task_id,) in cursor.fetchall()}
    connection.close()
    return tasks


def test_rerunning_a_day_leaves_identical_rows_and_says_a_line_per_task(sample_days_ran, env, tmp_path, capsys):
    before = warehouse_day(env["WAREHOUSE_DSN"], DAYS[0])
    log = tmp_path / "run.log"
    assert commands.run(DAYS[0], env, log=log) == 0
    assert warehouse_day(env["WAREHOUSE_DSN"], DAYS[0]) == before

    # The brief output of `make demo`: a line per task as it finished, then the day's; Airflow's in the log.
    said = capsys.readouterr().out.splitlines()
    task_lines = [line.split() for line in said if line.startswith(f"  {DAYS[0]}  ")]
    assert {fields[1] for fields in task_lines} == run_tasks(env, DAYS[0])
    assert len(task_lines) == len(run_tasks(env, DAYS[0]))
    assert all(fields[2] == "success" and fields[-1] == "s" and float(fields[-2]) >= 0 for fields in task_lines)
    assert re.fullmatch(rf"{DAYS[0]}: success, \d+\.\d s", said[-1])
    assert "DagRun Finished" in log.read_text()
    assert not any("DagRun Finished" in line for line in said)


def test_a_day_without_logs_fails_at_its_sensor_and_says_why(sample_days_ran, env, tmp_path, capsys):
    quick = {**env, "SENSOR_TIMEOUT_SECONDS": "6", "SENSOR_POKE_SECONDS": "2"}
    log = tmp_path / "run.log"
    assert commands.run("2025-09-15", quick, log=log) != 0
    said = capsys.readouterr().out
    assert "  2025-09-15  wait_for_hardware_logs    failed" in said
    assert "2025-09-15: failed, " in said and "; failed tasks: wait_for_hardware_logs" in said
    # The failure's own lines, and where they are in the log.
    excerpt = said[said.index(f"  wait_for_hardware_logs: {log}, line "):]
    assert "AirflowSensorTimeout" in excerpt
    assert "no object matches s3://" in excerpt and "hardware_logs/dt=2025-09-15/*.csv" in excerpt
    assert "hardware_logs/dt=2025-09-15/*.csv" in log.read_text()
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM hardware_error_analysis WHERE log_date = '2025-09-15'")
        assert cursor.fetchone()[0] == 0


def test_the_sample_days_exposure_holds_their_errors_and_their_report_says_too_few(sample_days_ran, env):
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.log_date::text, a.loaded, COALESCE(SUM(d.errors), 0), COUNT(d.device_id)"
            " FROM pipeline_run_audit a LEFT JOIN device_day_activity d USING (log_date)"
            " WHERE a.log_date = ANY(%s::date[]) GROUP BY 1, 2 ORDER BY 1",
            (list(DAYS),),
        )
        days = cursor.fetchall()
    assert [day for day, *_ in days] == list(DAYS)
    assert all(errors == loaded and device_days > 0 for _, loaded, errors, device_days in days), days

    result = subprocess.run(
        [sys.executable, "-m", "dev.commands", "report", DAYS[0], DAYS[-1]],
        cwd=commands.REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    # A dozen errors: the answer says plainly that they cannot settle the question.
    assert "The data are too few to conclude" in result.stdout
    assert f"Report: {commands.REPORTS / 'latest' / 'report.html'}" in result.stdout
