"""End to end: the real DAG under `airflow dags test` on the local stack, read back from PostgreSQL.

The expected warehouse rows are computed here, independently of the Glue code, from the raw files
as they landed in S3 and the rules of the contract (section 3).
"""

from __future__ import annotations

import csv
import subprocess
from datetime import date
from decimal import Decimal

import psycopg2
import pytest

from dev import commands
from dev.raw_zone import upload_raw_zone
from tests.contract_rules import OUTCOMES, classify, read_reference, utc

pytestmark = pytest.mark.stack

DAYS = commands.SAMPLE_DAYS
def _object_lines(s3, bucket: str, key: str) -> list[str]:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8").splitlines()


def expected_day(s3, bucket: str, day: str) -> tuple[set[tuple], dict[str, int]]:
    """The contract's rules applied row by row to day D's partition as it landed in S3."""
    customer_ids, sales = read_reference(commands.SAMPLE_DATA)
    with open(commands.SAMPLE_DATA / "customers" / "customers.csv", encoding="utf-8") as f:
        customers = {row["customer_id"]: row for row in csv.DictReader(f)}
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"hardware_logs/dt={day}/").get("Contents", [])
    lines = [
        line for obj in listing if obj["Key"].endswith(".csv")
        for line in _object_lines(s3, bucket, obj["Key"])[1:] if line.strip()
    ]
    outcomes = classify(lines, customer_ids, sales)
    counts = {name: sum(1 for o in outcomes if o.outcome == name) for name in OUTCOMES}
    counts["input_rows"] = len(lines)

    loaded = set()
    for outcome in (o for o in outcomes if o.outcome == "loaded"):
        log_id, timestamp, device, _, cpu, memory = next(csv.reader([outcome.line]))
        moment = utc(timestamp)
        customer = customers[outcome.customer_id]
        sale_date = date.fromordinal(moment.date().toordinal() - outcome.days_since_sale)
        loaded.add((
            log_id, device, int(cpu) if cpu else None, float(memory) if memory else None, outcome.sale_id,
            outcome.days_since_sale, customer["customer_name"], customer["industry"], outcome.customer_id,
            sale_date, moment, date.fromisoformat(day),
        ))
    return loaded, counts


def warehouse_day(dsn: str, day: str) -> tuple[set[tuple], dict[str, int] | None]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT log_id, device_id, cpu_temp_celsius, memory_usage_gb, sale_id, days_since_sale,"
            " customer_name, industry, customer_id, sale_date, error_timestamp, log_date"
            " FROM hardware_error_analysis WHERE log_date = %s",
            (day,),
        )
        rows = {
            tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in cursor.fetchall()
        }
        cursor.execute(
            "SELECT input_rows, malformed, duplicates, non_error, no_sale, unknown_customer, loaded"
            " FROM pipeline_run_audit WHERE log_date = %s",
            (day,),
        )
        audit = cursor.fetchone()
    names = ["input_rows", "malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded"]
    return rows, (dict(zip(names, audit)) if audit else None)


@pytest.fixture(scope="module")
def env(stack):
    return commands.stack_env()


@pytest.fixture(scope="module")
def s3(aws):
    return aws("s3")


@pytest.fixture(scope="module")
def sample_days_ran(env, s3):
    upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)
    results = {day: commands.run(day, env) for day in DAYS}
    assert results == dict.fromkeys(DAYS, 0), f"some sample days failed: {results}"
    return results


@pytest.mark.parametrize("day", DAYS)
def test_sample_day_gives_exactly_the_expected_rows(sample_days_ran, env, s3, day):
    expected_rows, expected_counts = expected_day(s3, env["RAW_BUCKET"], day)
    rows, audit = warehouse_day(env["WAREHOUSE_DSN"], day)
    assert rows == expected_rows
    assert audit == expected_counts
    assert audit["input_rows"] == sum(v for k, v in audit.items() if k != "input_rows")


def test_seed_errors_are_aged_at_the_error_day(sample_days_ran, env):
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT log_id, days_since_sale FROM hardware_error_analysis"
            " WHERE log_id IN ('LOG-002', 'LOG-005', 'LOG-008') ORDER BY log_id"
        )
        ages = dict(cursor.fetchall())
    assert set(ages) == {"LOG-002", "LOG-005", "LOG-008"}
    assert {31, 259} <= set(ages.values())


def test_rerunning_a_day_leaves_identical_rows(sample_days_ran, env):
    before = warehouse_day(env["WAREHOUSE_DSN"], DAYS[0])
    assert commands.run(DAYS[0], env) == 0
    assert warehouse_day(env["WAREHOUSE_DSN"], DAYS[0]) == before


def test_a_day_without_logs_fails_at_its_sensor(sample_days_ran, env):
    quick = {**env, "SENSOR_TIMEOUT_SECONDS": "6", "SENSOR_POKE_SECONDS": "2"}
    result = subprocess.run(
        commands.dags_test_command(date(2025, 9, 15)),
        env=quick, cwd=commands.REPO, capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "hardware_logs/dt=2025-09-15/*.csv" in output
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM hardware_error_analysis WHERE log_date = '2025-09-15'")
        assert cursor.fetchone()[0] == 0
