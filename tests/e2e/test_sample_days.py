"""End to end: the sample days through the real DAG on the local stack, read back from PostgreSQL and S3.

The three sample days are backfilled once, two at a time, as `make backfill` runs them, but with
Airflow as deployed (connections through the secrets backend, the Airflow role's session as the
ambient credentials), so that every AWS call of Airflow, the crawler and both Glue jobs is checked
against the template's policies. The expected warehouse rows, counts and quarantine are computed
here, independently of the Glue code, from the raw files and the rules of docs/contract.md (section 3,
tests/contract_rules.py). Reprocessing a day with `airflow dags test` (`make run`) must start new
Glue job runs (the provider's `durable` reattachment must not hand back the previous run) and leave
identical rows; a day without logs fails at its sensor and says why.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import duckdb
import psycopg2
import pytest

from dev import commands
from dev.local_aws import policy
from dev.local_aws import stack as local_stack
from dev.raw_zone import plan_upload, upload_raw_zone
from include.run_scope import run_key
from include.settings import load as load_settings
from tests.contract_rules import OUTCOMES, classify, read_reference
from dev.airflow_api import when
from tests.support import AUDIT_COLUMNS, QUARANTINE_REASONS, airflow_json, expected_rows, raw_day_lines, warehouse_rows

pytestmark = pytest.mark.stack

DAYS = commands.SAMPLE_DAYS
# Its `airflow dags test` run has logical date D, as the backfill's run of D has, and replaces that run's
# record: it comes last, after the tests that read the backfill's records.
REPROCESSED_DAY = DAYS[-1]


def expected_day(s3, bucket: str, day: str) -> tuple[set[tuple], dict[str, int]]:
    """The rules of docs/contract.md (tests/contract_rules.py) applied row by row to day D's partition as it landed in S3."""
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


def audit_rows(dsn: str) -> dict[str, dict]:
    """The sample days' audit rows, with the runs that wrote them."""
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"SELECT log_date, {', '.join(AUDIT_COLUMNS)}, etl_job_run_id, load_job_run_id, dag_run_id"
            " FROM pipeline_run_audit WHERE log_date = ANY(%s::date[])",
            (list(DAYS),),
        )
        names = [column.name for column in cursor.description]
        found: dict[str, list[dict]] = {}
        for row in cursor.fetchall():
            found.setdefault(row[0].isoformat(), []).append(dict(zip(names, row, strict=True)))
    connection.close()
    assert all(len(rows) == 1 for rows in found.values()), f"more than one audit row for a day: {found}"
    return {day: rows[0] for day, rows in found.items()}


@pytest.fixture(scope="module")
def deployed_env(env):
    """Airflow as deployed: connections through the secrets backend, the Airflow role's session."""
    return local_stack.deployed_airflow_env(env)


@pytest.fixture(scope="module")
def expected():
    """Each sample day's rows, classified by the rules of docs/contract.md, as the upload splits them into partitions."""
    customers, sales = read_reference(commands.SAMPLE_DATA)
    partitions = {
        re.fullmatch(r"hardware_logs/dt=(.*)/[^/]+\.csv", key).group(1): content.decode().splitlines()[1:]
        for key, content in plan_upload(commands.SAMPLE_DATA)
        if key.startswith("hardware_logs/")
    }
    assert sorted(partitions) == list(DAYS)
    return {
        day: classify([line for line in lines if line.strip()], customers, sales) for day, lines in partitions.items()
    }


@pytest.fixture(scope="module")
def backfilled(env, deployed_env, s3):
    """`make backfill` of the sample days, two at once, run as a deployed Airflow: what it printed, and
    the AWS calls the days made, by role."""
    upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)
    offset = policy.call_log_size()
    printed = io.StringIO()
    started = datetime.now(timezone.utc)
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        status = commands.backfill(DAYS[0], DAYS[-1], "2", env=deployed_env)
    output = printed.getvalue()
    print(output)
    assert status == 0, f"make backfill failed:\n{output}"
    return {"output": output, "calls": policy.read_calls(offset=offset), "started": started}


def backfill_runs(env, started: datetime) -> list[tuple]:
    """(start, end) of each run of the sample days that started after `started` (the backfill's), from
    Airflow's records (its CLI: the backfill's api-server has stopped)."""
    runs = airflow_json(env, "dags", "list-runs", commands.DAG_ID, "--start-date", DAYS[0], "--end-date", DAYS[-1])
    return [
        (when(run["start_date"]), when(run["end_date"]))
        for run in runs
        if when(run["logical_date"]).date().isoformat() in DAYS and run["start_date"]
        and when(run["start_date"]) >= started
    ]


def test_backfill_prints_one_line_per_day(backfilled):
    output = backfilled["output"]
    for day in DAYS:
        assert re.search(rf"^{day}\s+success\s+\S+", output, re.MULTILINE), output
    assert "2 day(s) at once" in output
    assert "3 of 3 days succeeded" in output


def test_days_ran_two_at_once(backfilled, env):
    runs = backfill_runs(env, backfilled["started"])
    assert len(runs) == len(DAYS)
    events = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    at_once = peak = 0
    for _, change in events:
        at_once += change
        peak = max(peak, at_once)
    assert peak == 2


@pytest.mark.parametrize("day", DAYS)
def test_sample_day_gives_exactly_the_expected_rows_and_counts(backfilled, env, s3, expected, day):
    rows, audit = warehouse_day(env["WAREHOUSE_DSN"], day)
    # Expected from the partition as it landed in S3...
    wanted_rows, wanted_counts = expected_day(s3, env["RAW_BUCKET"], day)
    assert rows == wanted_rows
    assert audit == wanted_counts
    # ...and from the sample data as the upload split it into partitions.
    outcomes = Counter(result.outcome for result in expected[day])
    assert audit["input_rows"] == len(expected[day])
    assert {name: audit[name] for name in AUDIT_COLUMNS[1:]} == {name: outcomes[name] for name in AUDIT_COLUMNS[1:]}
    assert rows == expected_rows(expected[day], commands.SAMPLE_DATA, day)
    # The audit equation of docs/contract.md, section 4: nothing dropped silently.
    assert audit["input_rows"] == sum(audit[name] for name in AUDIT_COLUMNS[1:])


@pytest.mark.parametrize("day", DAYS)
def test_quarantine_holds_exactly_the_quarantined_rows(backfilled, env, s3, expected, tmp_path, day):
    # The quarantine of the run whose rows the warehouse holds.
    dag_run_id = audit_rows(env["WAREHOUSE_DSN"])[day]["dag_run_id"]
    prefix = f"quarantine/hardware_logs/run={run_key(dag_run_id)}/log_date={day}/"
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["PROCESSED_BUCKET"], Prefix=prefix)
        for item in page.get("Contents", [])
        if item["Key"].endswith(".parquet")
    ]
    assert keys, f"no Parquet under s3://{env['PROCESSED_BUCKET']}/{prefix}"
    for index, key in enumerate(keys):
        s3.download_file(env["PROCESSED_BUCKET"], key, str(tmp_path / f"part-{index}.parquet"))
    stored = duckdb.sql(f"SELECT reason, raw_line FROM read_parquet('{tmp_path}/*.parquet')").fetchall()
    wanted = [
        (QUARANTINE_REASONS[result.outcome], result.line)
        for result in expected[day]
        if result.outcome in QUARANTINE_REASONS
    ]
    assert Counter(stored) == Counter(wanted)


def test_every_aws_call_of_the_days_is_one_the_template_allows(backfilled, aws):
    """Least privilege: each call of Airflow, the crawler and both Glue jobs, checked (action and
    resource) against the policies the CloudFormation template gave that role."""
    calls = backfilled["calls"]
    settings = load_settings()
    roles = {call["role"].rsplit("/", 1)[-1] for call in calls}
    assert roles == {
        local_stack.AIRFLOW_ROLE_NAME, settings.CRAWLER_ROLE_NAME, settings.ETL_ROLE_NAME, settings.LOAD_ROLE_NAME
    }
    assert len(calls) > 100
    assert policy.denied(calls, aws("iam")) == []
    # Airflow ran the template's crawler and jobs, and neither defined nor changed them.
    airflow = {call["action"] for call in calls if call["role"].endswith(f"/{local_stack.AIRFLOW_ROLE_NAME}")}
    assert {"glue:StartCrawler", "glue:GetCrawler", "glue:StartJobRun", "glue:GetJobRun"} <= airflow
    assert not {action for action in airflow if action.startswith(("glue:Create", "glue:Update", "iam:"))}


def test_the_warehouse_connection_came_from_secrets_manager(backfilled, env, deployed_env):
    assert "AIRFLOW_CONN_WAREHOUSE" not in deployed_env
    airflow_reads = {
        resource
        for call in backfilled["calls"]
        if call["action"] == "secretsmanager:GetSecretValue" and call["role"].endswith(f"/{local_stack.AIRFLOW_ROLE_NAME}")
        for resource in call["resources"]
    }
    assert env["WAREHOUSE_SECRET_ARN"] in airflow_reads
    # Nor was it in Airflow's metadata database, whose connections `airflow connections list` lists.
    assert "warehouse" not in {connection["conn_id"] for connection in airflow_json(env, "connections", "list")}


def test_seed_errors_are_aged_at_the_error_day(backfilled, env):
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT log_id, days_since_sale FROM hardware_error_analysis"
            " WHERE log_id IN ('LOG-002', 'LOG-005', 'LOG-008') ORDER BY log_id"
        )
        ages = dict(cursor.fetchall())
    connection.close()
    assert set(ages) == {"LOG-002", "LOG-005", "LOG-008"}
    assert {31, 259} <= set(ages.values())


def test_the_sample_days_exposure_holds_their_errors_and_their_report_says_too_few(backfilled, env):
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.log_date::text, a.loaded, COALESCE(SUM(d.errors), 0), COUNT(d.device_id)"
            " FROM pipeline_run_audit a LEFT JOIN device_day_activity d USING (log_date)"
            " WHERE a.log_date = ANY(%s::date[]) GROUP BY 1, 2 ORDER BY 1",
            (list(DAYS),),
        )
        days = cursor.fetchall()
    connection.close()
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


def test_a_day_without_logs_fails_at_its_sensor_and_says_why(backfilled, env, tmp_path, capsys):
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
    connection.close()


def run_tasks(env: dict[str, str], day: str) -> set[str]:
    """The tasks of the day's latest `airflow dags test` run (the run at logical date D), from Airflow's CLI."""
    found = airflow_json(env, "tasks", "states-for-dag-run", commands.DAG_ID, f"{day}T00:00:00+00:00")
    return {task["task_id"] for task in found}


def test_reprocessing_a_day_runs_new_glue_jobs_leaves_identical_rows_and_says_a_line_per_task(
    backfilled, env, aws, tmp_path, capsys
):
    """Last in the module: the rerun replaces the day's rows and audit with its own run's."""
    dsn = env["WAREHOUSE_DSN"]
    before_audit = audit_rows(dsn)
    before_rows = {day: warehouse_rows(dsn, day) for day in DAYS}

    log = tmp_path / "run.log"
    assert commands.run(REPROCESSED_DAY, env, log=log) == 0

    after_audit = audit_rows(dsn)
    old, new = before_audit[REPROCESSED_DAY], after_audit[REPROCESSED_DAY]
    assert new["etl_job_run_id"] != old["etl_job_run_id"]
    assert new["load_job_run_id"] != old["load_job_run_id"]
    assert {name: new[name] for name in AUDIT_COLUMNS} == {name: old[name] for name in AUDIT_COLUMNS}
    for day in DAYS:
        assert warehouse_rows(dsn, day) == before_rows[day]
        if day != REPROCESSED_DAY:
            assert after_audit[day] == before_audit[day]

    glue = aws("glue")
    names = load_settings()
    for job_name, key in ((names.ETL_JOB_NAME, "etl_job_run_id"), (names.LOAD_JOB_NAME, "load_job_run_id")):
        run = glue.get_job_run(JobName=job_name, RunId=new[key])["JobRun"]
        assert run["JobRunState"] == "SUCCEEDED"
        assert run["Arguments"]["--log_date"] == REPROCESSED_DAY

    # The brief output of `make demo`: a line per task as it finished, then the day's; Airflow's in the log.
    said = capsys.readouterr().out.splitlines()
    task_lines = [line.split() for line in said if line.startswith(f"  {REPROCESSED_DAY}  ")]
    tasks = run_tasks(env, REPROCESSED_DAY)
    assert {fields[1] for fields in task_lines} == tasks
    assert len(task_lines) == len(tasks)
    assert all(fields[2] == "success" and fields[-1] == "s" and float(fields[-2]) >= 0 for fields in task_lines)
    assert re.fullmatch(rf"{REPROCESSED_DAY}: success, \d+\.\d s", said[-1])
    assert "DagRun Finished" in log.read_text()
    assert not any("DagRun Finished" in line for line in said)
