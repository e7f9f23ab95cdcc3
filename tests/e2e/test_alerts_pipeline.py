"""End to end: alerts posted to the alerts API appear, enriched, in `hardware_alerts` after the DAG runs.

The alerts go through the local stack's API (ALERTS_API_URL) into the raw zone next to the sample
data; the real DAG runs day D under `airflow dags test`; the rows are read back from PostgreSQL and
compared with the sale in force, customer and age computed here from the sample's CSV files. A day
without alerts succeeds with zero alert rows.
"""

from __future__ import annotations

import csv
import json
import urllib.request
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import psycopg2
import pytest

from dev import commands
from dev.raw_zone import upload_raw_zone
from include.run_scope import run_key
from tests.contract_rules import read_reference, utc

pytestmark = pytest.mark.stack

DAY = "2025-10-02"
DAY_WITHOUT_ALERTS = "2025-10-03"
ALERT_COLUMNS = (
    "alert_id, device_id, error_code, details, alert_timestamp, received_at, sale_id, customer_id,"
    " customer_name, industry, sale_date, days_since_sale, log_date"
)
ALERT_COUNTS = (
    "alert_input_rows", "alert_malformed", "alert_duplicates", "alert_no_sale", "alert_unknown_customer", "alert_loaded"
)
# All on UTC day 2025-10-02, whatever the offset they are written with.
POSTED = [
    # 23:00 UTC on the day DEV-D401 was sold: age 0.
    ("DEV-D401", "E410_POWER_LOSS", "2025-10-02T21:00:00-02:00"),
    # Resold: the current owner's sale.
    ("DEV-B202", "E203_FAN_FAILURE", "2025-10-02T06:00:00Z"),
    ("DEV-A101", "E101_OVERHEAT", "2025-10-02T12:30:00+05:30"),
    # Never sold: no sale.
    ("DEV-E501", "E305_DISK_IO", "2025-10-02T10:00:00Z"),
    # Sold to a customer missing from customers.csv: unknown customer.
    ("DEV-C302", "E512_MEMORY_ECC", "2025-10-02T11:00:00Z"),
]


def post_alert(url: str, alert: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return json.loads(response.read())


def expected_row(record: dict, log_day: str) -> tuple | str:
    """The warehouse row the contract's rules give for one stored alert, or the reason it has none."""
    customers_ids, sales = read_reference(commands.SAMPLE_DATA)
    with open(commands.SAMPLE_DATA / "customers" / "customers.csv", encoding="utf-8") as f:
        customers = {row["customer_id"]: row for row in csv.DictReader(f)}
    if any(not str(record.get(name) or "").strip() for name in ("device_id", "error_code", "details")):
        return "malformed"
    moment = utc(record.get("alert_timestamp") or "")
    if moment is None:
        return "malformed"
    in_force = [sale for sale in sales.get(record["device_id"], []) if sale[0] <= moment.date()]
    if not in_force:
        return "no_sale"
    sale_date, sale_id, customer_id = max(in_force, key=lambda sale: (sale[0], sale[1]))
    if customer_id not in customers_ids:
        return "unknown_customer"
    customer = customers[customer_id]
    received = datetime.fromisoformat(record["received_at"]).astimezone(timezone.utc)
    return (
        record["alert_id"], record["device_id"], record["error_code"], record["details"], moment, received, sale_id,
        customer_id, customer["customer_name"], customer["industry"], sale_date, (moment.date() - sale_date).days,
        date.fromisoformat(log_day),
    )


def sample_alerts(day: str) -> list[dict]:
    records = []
    for path in sorted((commands.SAMPLE_DATA / "alerts" / f"dt={day}").glob("*.json")):
        records.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return records


def warehouse_alerts(dsn: str, day: str) -> dict[str, tuple]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {ALERT_COLUMNS} FROM hardware_alerts WHERE log_date = %s", (day,))
        return {row[0]: row for row in cursor.fetchall()}


def audit_alert_counts(dsn: str, day: str) -> dict[str, int] | None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(ALERT_COUNTS)} FROM pipeline_run_audit WHERE log_date = %s", (day,))
        row = cursor.fetchone()
    return dict(zip(ALERT_COUNTS, row, strict=True)) if row else None


@pytest.fixture(scope="module")
def posted(env, s3):
    """The alerts posted for DAY, as the API stored them; removed from the raw zone afterwards."""
    upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)
    marker = uuid.uuid4().hex[:8]
    records = []
    for device_id, error_code, timestamp in POSTED:
        alert = {
            "device_id": device_id, "error_code": error_code,
            "details": f"end-to-end alert {marker}", "alert_timestamp": timestamp,
        }
        answer = post_alert(env["ALERTS_API_URL"], alert)
        records.append({"alert_id": answer["alert_id"], **alert, "received_at": answer["received_at"]})
    yield records
    for record in records:
        s3.delete_object(Bucket=env["RAW_BUCKET"], Key=f"alerts/dt={DAY}/{record['alert_id']}.json")


@pytest.fixture(scope="module")
def ran(env, posted):
    results = {day: commands.run(day, env) for day in (DAY, DAY_WITHOUT_ALERTS)}
    assert results == dict.fromkeys(results, 0), f"DAG runs failed: {results}"


def test_posted_alerts_are_stored_under_their_utc_day(posted, env, s3):
    for record in posted:
        body = s3.get_object(Bucket=env["RAW_BUCKET"], Key=f"alerts/dt={DAY}/{record['alert_id']}.json")["Body"]
        assert json.loads(body.read()) == record


def test_alerts_appear_enriched_in_hardware_alerts(ran, posted, env):
    rows = warehouse_alerts(env["WAREHOUSE_DSN"], DAY)
    known = [*posted, *sample_alerts(DAY)]
    outcomes = {record["alert_id"]: expected_row(record, DAY) for record in known}
    # The cases the posted alerts were chosen for.
    kinds = [outcome if isinstance(outcome, str) else "loaded" for outcome in (outcomes[r["alert_id"]] for r in posted)]
    assert kinds == ["loaded", "loaded", "loaded", "no_sale", "unknown_customer"]
    assert outcomes[posted[0]["alert_id"]][-2] == 0
    for alert_id, outcome in outcomes.items():
        if isinstance(outcome, tuple):
            assert rows.get(alert_id) == outcome
        else:
            assert alert_id not in rows, f"{alert_id} is {outcome}, yet it was loaded"


def test_the_audit_counts_the_days_alerts(ran, env):
    counts = audit_alert_counts(env["WAREHOUSE_DSN"], DAY)
    assert counts is not None
    assert counts["alert_input_rows"] == sum(value for name, value in counts.items() if name != "alert_input_rows")
    assert counts["alert_loaded"] == len(warehouse_alerts(env["WAREHOUSE_DSN"], DAY))
    # At least the posted and the sample alerts (other tests may post more for the same day).
    assert counts["alert_loaded"] >= 6
    assert counts["alert_no_sale"] >= 1 and counts["alert_unknown_customer"] >= 2 and counts["alert_malformed"] >= 1


def test_quarantine_holds_the_alerts_that_were_not_loaded(ran, posted, env, s3, tmp_path: Path):
    # The quarantine of the run whose rows the warehouse holds.
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT dag_run_id FROM pipeline_run_audit WHERE log_date = %s", (DAY,))
        (dag_run_id,) = cursor.fetchone()
    prefix = f"quarantine/alerts/run={run_key(dag_run_id)}/log_date={DAY}/"
    keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=env["PROCESSED_BUCKET"], Prefix=prefix).get("Contents", [])
        if item["Key"].endswith(".parquet")
    ]
    assert keys, f"no Parquet under s3://{env['PROCESSED_BUCKET']}/{prefix}"
    for index, key in enumerate(keys):
        s3.download_file(env["PROCESSED_BUCKET"], key, str(tmp_path / f"part-{index}.parquet"))
    reasons = dict(duckdb.sql(f"SELECT alert_id, reason FROM read_parquet('{tmp_path}/*.parquet')").fetchall())
    assert reasons[posted[3]["alert_id"]] == "no_sale"
    assert reasons[posted[4]["alert_id"]] == "unknown_customer"
    assert "a2b46c68-2b6f-4169-b94a-eb0dc396631b" in reasons  # the sample's alert_timestamp "soon"


def test_a_day_without_alerts_succeeds_with_zero_alert_rows(ran, env, s3):
    listing = s3.list_objects_v2(Bucket=env["RAW_BUCKET"], Prefix=f"alerts/dt={DAY_WITHOUT_ALERTS}/")
    assert not listing.get("Contents"), f"the raw zone has alerts for {DAY_WITHOUT_ALERTS}"
    assert warehouse_alerts(env["WAREHOUSE_DSN"], DAY_WITHOUT_ALERTS) == {}
    assert audit_alert_counts(env["WAREHOUSE_DSN"], DAY_WITHOUT_ALERTS) == dict.fromkeys(ALERT_COUNTS, 0)
