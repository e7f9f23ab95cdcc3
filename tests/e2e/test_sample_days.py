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
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import psycopg2
import pytest

from dev import commands
from dev.local_aws import policy
from dev.local_aws import stack as local_stack
from dev.raw_zone import plan_upload, upload_raw_zone
from include.run_scope import run_key, staging_table
from include.settings import load as load_settings
from tests.contract_rules import ALERT_COUNTS, OUTCOMES, classify, read_reference
from dev.airflow_api import when
from tests.support import (
    AUDIT_COLUMNS, QUARANTINE_REASONS, airflow_json, audit_alert_counts, expected_rows, raw_day_lines, warehouse_rows,
)

pytestmark = pytest.mark.stack

DAYS = commands.SAMPLE_DAYS
# Its `airflow dags test` run has logical date D, as the backfill's run of D has, and replaces that run's
# record: it comes last, after the tests that read the backfill's records.
REPROCESSED_DAY = DAYS[-1]
# The sample has alerts for its first two days only.
DAY_WITHOUT_ALERTS = DAYS[-1]


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


def test_the_day_without_alerts_has_zero_alert_rows(backfilled, env, s3):
    """The sample's last day has logs but no alerts: no alert rows and zero alert counts (that it
    succeeded, the backfill's line says: test_backfill_prints_one_line_per_day)."""
    listing = s3.list_objects_v2(Bucket=env["RAW_BUCKET"], Prefix=f"alerts/dt={DAY_WITHOUT_ALERTS}/")
    assert not listing.get("Contents"), f"the raw zone has alerts for {DAY_WITHOUT_ALERTS}"
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM hardware_alerts WHERE log_date = %s", (DAY_WITHOUT_ALERTS,))
        assert cursor.fetchone()[0] == 0
    connection.close()
    assert audit_alert_counts(env["WAREHOUSE_DSN"], DAY_WITHOUT_ALERTS) == dict.fromkeys(ALERT_COUNTS, 0)


# -- OpenLineage ------------------------------------------------------------------------------------

# A day with alerts: its lineage has all four raw inputs.
LINEAGE_DAY = DAYS[0]
WAREHOUSE_TABLES = ("hardware_error_analysis", "hardware_alerts", "device_day_activity")


def lineage_events(env: dict[str, str], since: datetime) -> list[dict]:
    """The OpenLineage events written since `since`, from where the local Airflow's file transport
    puts them (its setting in stack.env): a JSON line per event."""
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport["type"] == "file" and transport["append"]
    lines = Path(transport["log_file_path"]).read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [event for event in events if when(event["eventTime"]) >= since]


def task_lineage(events: list[dict], dag_run_id: str) -> dict[str, dict]:
    """Per task of the DAG run: its OpenLineage run ids, and the datasets of all its events (a consumer
    accumulates a run's inputs and outputs over its events), as (namespace, name)."""
    tasks: dict[str, dict] = {}
    for event in events:
        airflow = event["run"]["facets"].get("airflow")
        if not airflow or airflow["dagRun"]["run_id"] != dag_run_id:
            continue
        task = tasks.setdefault(
            event["job"]["name"], {"run_ids": set(), "types": set(), "parents": set(), "inputs": set(), "outputs": set()}
        )
        task["run_ids"].add(event["run"]["runId"])
        task["types"].add(event["eventType"])
        task["parents"].add(event["run"]["facets"]["parent"]["run"]["runId"])
        for side in ("inputs", "outputs"):
            task[side] |= {(dataset["namespace"], dataset["name"]) for dataset in event.get(side, [])}
    return tasks


def spark_conf(argument: str) -> dict[str, str]:
    """Glue's `--conf` argument: `k=v --conf k=v ...`."""
    return dict(setting.split("=", 1) for setting in argument.split(" --conf "))


def test_a_days_lineage_runs_from_the_raw_zone_through_both_glue_jobs_to_the_warehouse(
    backfilled, env, deployed_env, aws
):
    day = LINEAGE_DAY
    audit = audit_rows(env["WAREHOUSE_DSN"])[day]
    events = lineage_events(env, backfilled["started"])
    tasks = task_lineage(events, audit["dag_run_id"])
    dag = commands.DAG_ID
    etl, load, swap = (tasks[f"{dag}.{task}"] for task in ("run_etl_job", "run_load_job", "swap_day_into_warehouse"))
    # Every task of the run reported its start and its success, as one OpenLineage run each.
    assert {name.removeprefix(f"{dag}.") for name in tasks} == run_tasks_of(env, audit["dag_run_id"])
    assert all(task["types"] == {"START", "COMPLETE"} and len(task["run_ids"]) == 1 for task in tasks.values())

    raw = f"s3://{env['RAW_BUCKET']}"
    processed = f"s3://{env['PROCESSED_BUCKET']}"
    key = run_key(audit["dag_run_id"])
    dsn = urlparse(env["WAREHOUSE_DSN"])
    warehouse = f"postgres://{dsn.hostname}:{dsn.port}"
    database = dsn.path.lstrip("/")

    # The ETL read day D's partitions and the reference tables where the catalog put them...
    assert etl["inputs"] == {
        (raw, f"hardware_logs/dt={day}"), (raw, "customers"), (raw, "sales"), (raw, f"alerts/dt={day}")
    }
    parquet = {(processed, f"{table}/run={key}/log_date={day}") for table in WAREHOUSE_TABLES}
    assert parquet <= etl["outputs"]
    assert (processed, f"quarantine/hardware_logs/run={key}/log_date={day}") in etl["outputs"]
    # ...the load job staged its Parquet, under the same names, in the warehouse...
    staging = {
        (warehouse, f"{database}.{staging_table(table, date.fromisoformat(day), audit['dag_run_id'])}")
        for table in WAREHOUSE_TABLES
    }
    assert load["inputs"] == parquet
    assert load["outputs"] == staging
    # ...and the swap moved the staged rows into the warehouse's tables, named as the SQL operators name them.
    assert staging <= swap["inputs"]
    tables = {(warehouse, f"{database}.public.{table}") for table in WAREHOUSE_TABLES}
    assert tables <= swap["outputs"]

    # The chain as a lineage graph walks it: from each raw input, through the tasks, to every table.
    edges: dict[tuple, set] = {}
    for task in tasks.values():
        for source in task["inputs"]:
            edges.setdefault(source, set()).update(task["outputs"])
    for source in etl["inputs"]:
        reached, frontier = set(), {source}
        while frontier:
            reached |= frontier
            frontier = set().union(*(edges.get(node, set()) for node in frontier)) - reached
        assert tables <= reached, source

    # Each Glue run got its task's OpenLineage run as its parent, and the DAG run's as its root.
    glue = aws("glue")
    names = load_settings()
    dag_run = {parent for task in tasks.values() for parent in task["parents"]}
    assert len(dag_run) == 1
    assert [
        event["eventType"] for event in events
        if event["job"]["name"] == dag and event["run"]["runId"] in dag_run and event["eventType"] == "COMPLETE"
        and event["run"]["facets"]["airflowDagRun"]["dagRun"]["run_id"] == audit["dag_run_id"]
    ] == ["COMPLETE"]
    for job_name, run_id_column, task_id in (
        (names.ETL_JOB_NAME, "etl_job_run_id", "run_etl_job"), (names.LOAD_JOB_NAME, "load_job_run_id", "run_load_job")
    ):
        arguments = glue.get_job_run(JobName=job_name, RunId=audit[run_id_column])["JobRun"]["Arguments"]
        conf = spark_conf(arguments["--conf"])
        assert conf == {
            "spark.openlineage.parentJobNamespace": conf["spark.openlineage.rootParentJobNamespace"],
            "spark.openlineage.parentJobName": f"{dag}.{task_id}",
            "spark.openlineage.parentRunId": next(iter(tasks[f"{dag}.{task_id}"]["run_ids"])),
            "spark.openlineage.rootParentJobNamespace": conf["spark.openlineage.parentJobNamespace"],
            "spark.openlineage.rootParentJobName": dag,
            "spark.openlineage.rootParentRunId": next(iter(dag_run)),
        }

    # No secret in any event: neither the warehouse's password nor Airflow's AWS keys.
    written = json.dumps(events)
    connection = json.loads(deployed_env["AIRFLOW_CONN_AWS_DEFAULT"])
    secrets = {
        dsn.password, env["AWS_SECRET_ACCESS_KEY"], deployed_env["AWS_SECRET_ACCESS_KEY"],
        deployed_env["AWS_SESSION_TOKEN"], connection["password"],
    }
    assert all(secrets) and not [secret for secret in secrets if secret in written]


def run_tasks_of(env: dict[str, str], dag_run_id: str) -> set[str]:
    found = airflow_json(env, "tasks", "states-for-dag-run", commands.DAG_ID, dag_run_id)
    return {task["task_id"] for task in found}


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
