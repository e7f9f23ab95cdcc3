"""End to end: alerts posted to the alerts API appear, enriched, in `hardware_alerts` after the DAG runs.

The alerts go through the local stack's API (ALERTS_API_URL) into the raw zone next to the sample
data, with a file from another producer that resends some of them; the real DAG runs day D under
`airflow dags test`. The raw zone's alerts, customers and sales as the run read them go through the
rules of docs/contract.md (tests/contract_rules.py), and the warehouse's rows, audit counts and quarantine must
be exactly what those give. (A day without alerts, the sample's last, is checked with the sample days'
backfill: tests/e2e/test_sample_days.py.)
"""

from __future__ import annotations

import csv
import json
import urllib.request
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import psycopg2
import pytest

from dev import commands
from dev.raw_zone import upload_raw_zone
from include.run_scope import run_key
from tests.contract_rules import (
    AlertOutcome,
    alert_counts,
    alert_records,
    classify_alerts,
    read_reference,
)
from tests.support import QUARANTINE_REASONS, audit_alert_counts

pytestmark = pytest.mark.stack

DAY = "2025-10-02"
REFERENCE = ("customers/customers.csv", "sales/sales.csv")
ALERT_COLUMNS = (
    "alert_id, device_id, error_code, details, alert_timestamp, received_at, sale_id, customer_id,"
    " customer_name, industry, sale_date, days_since_sale, log_date"
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


def raw_inputs(s3, bucket: str) -> dict:
    """What a run of DAY reads from the raw bucket: the alert records as (file key, record), in file
    order, and the bytes of customers and sales."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"alerts/dt={DAY}/")
    keys = sorted(item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".json"))
    records = [
        (key, record)
        for key in keys
        for record in alert_records(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))
    ]
    return {"records": records, **{key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in REFERENCE}}


def expected_rows(outcomes: list[AlertOutcome], reference: Path) -> dict[str, tuple]:
    """The `hardware_alerts` rows (ALERT_COLUMNS) of the loaded alerts, by alert_id."""
    with open(reference / "customers" / "customers.csv", encoding="utf-8") as f:
        customers = {row["customer_id"]: row for row in csv.DictReader(f)}
    return {
        result.alert_id: (
            result.alert_id, *(result.fields[name] for name in ("device_id", "error_code", "details")),
            result.alert_timestamp, result.received_at, result.sale_id, result.customer_id,
            customers[result.customer_id]["customer_name"], customers[result.customer_id]["industry"],
            result.sale_date, result.days_since_sale, date.fromisoformat(DAY),
        )
        for result in outcomes
        if result.outcome == "loaded"
    }


def warehouse_alerts(dsn: str, day: str) -> dict[str, tuple]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {ALERT_COLUMNS} FROM hardware_alerts WHERE log_date = %s", (day,))
        return {row[0]: row for row in cursor.fetchall()}


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
def resent(env, s3, posted):
    """A JSON-lines file of another producer, next to the API's files: a copy of the second posted
    alert received after it; a version of the third received before it; and an alert without
    alert_id or received_at, sent twice. Its key and its records, in order."""
    copied, replaced = posted[1], posted[2]
    earlier = datetime.fromisoformat(replaced["alert_timestamp"]) + timedelta(seconds=5)
    records = [
        {**copied, "received_at": _stamp(datetime.fromisoformat(copied["received_at"]) + timedelta(hours=1))},
        {**replaced, "details": f"{replaced['details']}, resent by the gateway", "received_at": _stamp(earlier)},
        *[{"device_id": "DEV-A101", "error_code": "E305_DISK_IO", "details": f"from the gateway {uuid.uuid4()}",
           "alert_timestamp": "2025-10-02T15:00:00Z"}] * 2,
    ]
    key = f"alerts/dt={DAY}/gateway-{uuid.uuid4().hex[:8]}.json"
    s3.put_object(Bucket=env["RAW_BUCKET"], Key=key, Body="".join(json.dumps(r) + "\n" for r in records).encode())
    yield key, records
    s3.delete_object(Bucket=env["RAW_BUCKET"], Key=key)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def ran(env, s3, posted, resent, tmp_path_factory):
    """Runs DAY. The raw zone's alert records of DAY as (file key, record), the outcome of each by
    docs/contract.md, and a folder holding the customers and sales the run read."""
    for _ in range(2):
        inputs = raw_inputs(s3, env["RAW_BUCKET"])
        assert commands.run(DAY, env) == 0, f"the DAG run of {DAY} failed"
        # The raw bucket is shared with other tests: the expected rows hold for inputs that stayed
        # as they were while the run read them.
        if raw_inputs(s3, env["RAW_BUCKET"]) == inputs:
            break
    else:
        pytest.fail(f"the raw zone's alerts of {DAY}, customers or sales changed during both runs")
    reference = tmp_path_factory.mktemp("reference")
    for key in REFERENCE:
        (reference / key).parent.mkdir(parents=True)
        (reference / key).write_bytes(inputs[key])
    customers, sales = read_reference(reference)
    outcomes = classify_alerts([record for _, record in inputs["records"]], customers, sales)
    return {"records": inputs["records"], "outcomes": outcomes, "reference": reference}


def test_posted_alerts_are_stored_under_their_utc_day(posted, env, s3):
    for record in posted:
        body = s3.get_object(Bucket=env["RAW_BUCKET"], Key=f"alerts/dt={DAY}/{record['alert_id']}.json")["Body"]
        assert json.loads(body.read()) == record


def test_the_alerts_were_chosen_for_each_rule(ran, posted, resent):
    """The outcomes (docs/contract.md) of the posted and resent alerts are the cases they were written for."""
    by_file: dict[str, list[AlertOutcome]] = {}
    for (key, _), result in zip(ran["records"], ran["outcomes"], strict=True):
        by_file.setdefault(key, []).append(result)
    posted_outcomes = [by_file[f"alerts/dt={DAY}/{record['alert_id']}.json"] for record in posted]
    assert [[result.outcome for result in results] for results in posted_outcomes] == [
        ["loaded"], ["loaded"], ["duplicates"], ["no_sale"], ["unknown_customer"]
    ]
    assert posted_outcomes[0][0].days_since_sale == 0
    key, _ = resent
    assert [result.outcome for result in by_file[key]] == ["duplicates", "loaded", "loaded", "duplicates"]
    assert [result.alert_id for result in by_file[key]][:2] == [posted[1]["alert_id"], posted[2]["alert_id"]]
    assert by_file[key][2].alert_id.startswith("sha256:") and by_file[key][2].received_at is None
    assert "malformed" in {result.outcome for result in ran["outcomes"]}  # the sample's "soon"


def test_hardware_alerts_holds_exactly_the_loaded_alerts(ran, env):
    rows = warehouse_alerts(env["WAREHOUSE_DSN"], DAY)
    expected = expected_rows(ran["outcomes"], ran["reference"])
    loaded_keys = {(row[-1], alert_id) for alert_id, row in rows.items()}
    expected_keys = {(row[-1], alert_id) for alert_id, row in expected.items()}
    assert loaded_keys == expected_keys, (
        f"loaded but not expected: {sorted(loaded_keys - expected_keys)}; "
        f"expected but not loaded: {sorted(expected_keys - loaded_keys)}"
    )
    for alert_id, row in expected.items():
        assert rows[alert_id] == row


def test_the_audit_counts_the_days_alerts(ran, env):
    counts = audit_alert_counts(env["WAREHOUSE_DSN"], DAY)
    assert counts == alert_counts(ran["outcomes"])
    assert counts["alert_loaded"] == len(warehouse_alerts(env["WAREHOUSE_DSN"], DAY))


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
    quarantined = duckdb.sql(f"SELECT raw_record, reason FROM read_parquet('{tmp_path}/*.parquet')").fetchall()
    assert Counter((record.strip(), reason) for record, reason in quarantined) == Counter(
        (result.record.strip(), QUARANTINE_REASONS[result.outcome])
        for result in ran["outcomes"]
        if result.outcome != "loaded"
    )
