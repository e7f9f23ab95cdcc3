"""End to end: `make backfill` runs Airflow's own backfill with a local scheduler on the local stack.

The sample days are backfilled two at a time, then read back from PostgreSQL and S3 and compared with
the contract's rules applied to the raw files (tests/contract_rules.py). Reprocessing one day
must start new Glue job runs (the provider's `durable` reattachment must not hand back the previous
run) and leave identical rows.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import duckdb
import psycopg2
import pytest

from dev import commands
from dev.raw_zone import plan_upload, upload_raw_zone
from include import settings
from include.run_scope import run_key
from tests.contract_rules import classify, read_reference
from tests.support import AUDIT_COLUMNS, QUARANTINE_REASONS, expected_rows, warehouse_rows

pytestmark = pytest.mark.stack

DAYS = commands.SAMPLE_DAYS
REPROCESSED_DAY = DAYS[1]
BACKFILL_TIMEOUT = 2400


def make_backfill(first: str, last: str, parallel: int) -> subprocess.CompletedProcess[str]:
    """`make backfill FROM=first TO=last PARALLEL=parallel`, minus the set-up step."""
    result = subprocess.run(
        [sys.executable, "-m", "dev.commands", "backfill", first, last, str(parallel)],
        cwd=commands.REPO, capture_output=True, text=True, timeout=BACKFILL_TIMEOUT,
    )
    print(result.stdout, result.stderr, sep="\n")
    return result


def audit_rows(dsn: str) -> dict[str, dict]:
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
    assert all(len(rows) == 1 for rows in found.values()), f"more than one audit row for a day: {found}"
    return {day: rows[0] for day, rows in found.items()}


@pytest.fixture(scope="module")
def expected():
    """Each sample day's rows, classified by the contract's rules, as they are split into partitions."""
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
def backfilled(env, s3):
    upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)
    result = make_backfill(DAYS[0], DAYS[-1], parallel=2)
    assert result.returncode == 0, f"make backfill failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def backfill_runs(env, output: str) -> list[tuple]:
    """(start, end) of each run of the backfill whose id the output names, from Airflow's records."""
    backfill_id = int(re.search(r"^backfill (\d+):", output, re.MULTILINE).group(1))
    dsn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.start_date, r.end_date FROM backfill_dag_run b JOIN dag_run r ON r.id = b.dag_run_id"
            " WHERE b.backfill_id = %s",
            (backfill_id,),
        )
        return cursor.fetchall()


def test_backfill_prints_one_line_per_day(backfilled):
    for day in DAYS:
        assert re.search(rf"^{day}\s+success\s+\S+", backfilled, re.MULTILINE), backfilled
    assert "2 day(s) at once" in backfilled
    assert "3 of 3 days succeeded" in backfilled


def test_days_ran_two_at_once(backfilled, env):
    runs = backfill_runs(env, backfilled)
    assert len(runs) == len(DAYS)
    events = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    at_once = peak = 0
    for _, change in events:
        at_once += change
        peak = max(peak, at_once)
    assert peak == 2


@pytest.mark.parametrize("day", DAYS)
def test_audit_holds_the_contract_equation(backfilled, env, expected, day):
    audit = audit_rows(env["WAREHOUSE_DSN"])[day]
    outcomes = Counter(result.outcome for result in expected[day])
    assert audit["input_rows"] == len(expected[day])
    assert audit["input_rows"] == sum(audit[name] for name in AUDIT_COLUMNS[1:])
    assert {name: audit[name] for name in AUDIT_COLUMNS[1:]} == {name: outcomes[name] for name in AUDIT_COLUMNS[1:]}


@pytest.mark.parametrize("day", DAYS)
def test_warehouse_holds_the_expected_errors(backfilled, env, expected, day):
    assert warehouse_rows(env["WAREHOUSE_DSN"], day) == expected_rows(expected[day], commands.SAMPLE_DATA, day)


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


def test_reprocessing_a_day_runs_new_glue_jobs_and_leaves_identical_rows(backfilled, env, aws):
    before_audit = audit_rows(env["WAREHOUSE_DSN"])
    before_rows = {day: warehouse_rows(env["WAREHOUSE_DSN"], day) for day in DAYS}

    result = make_backfill(REPROCESSED_DAY, REPROCESSED_DAY, parallel=1)
    assert result.returncode == 0, f"reprocessing failed:\n{result.stdout}\n{result.stderr}"
    assert re.search(rf"^{REPROCESSED_DAY}\s+success", result.stdout, re.MULTILINE)

    after_audit = audit_rows(env["WAREHOUSE_DSN"])
    old, new = before_audit[REPROCESSED_DAY], after_audit[REPROCESSED_DAY]
    assert new["etl_job_run_id"] != old["etl_job_run_id"]
    assert new["load_job_run_id"] != old["load_job_run_id"]
    assert {name: new[name] for name in AUDIT_COLUMNS} == {name: old[name] for name in AUDIT_COLUMNS}
    for day in DAYS:
        assert warehouse_rows(env["WAREHOUSE_DSN"], day) == before_rows[day]
        if day != REPROCESSED_DAY:
            assert after_audit[day] == before_audit[day]

    glue = aws("glue")
    names = settings.load()
    for job_name, key in ((names.ETL_JOB_NAME, "etl_job_run_id"), (names.LOAD_JOB_NAME, "load_job_run_id")):
        run = glue.get_job_run(JobName=job_name, RunId=new[key])["JobRun"]
        assert run["JobRunState"] == "SUCCEEDED"
        assert run["Arguments"]["--log_date"] == REPROCESSED_DAY
