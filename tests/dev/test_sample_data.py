"""The sample data: what each row is documented to become is what the rules of docs/contract.md make of it."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from dev.raw_zone import plan_upload
from tests.contract_rules import classify, read_reference, utc

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "dev" / "sample_data"

# Every row of hardware_logs.csv, by the partition it is split into, in file order.
EXPECTED = {
    "2025-10-01": [
        ("LOG-001", "non_error"), ("LOG-002", "loaded"), ("LOG-003", "non_error"),
        ("LOG-009", "loaded"), ("LOG-002", "duplicates"), ("LOG-010", "no_sale"),
        ("LOG-011", "unknown_customer"), ("LOG-012", "malformed"), ("LOG-013", "loaded"),
        ("LOG-014", "loaded"), ("LOG-017", "non_error"), ("LOG-020", "malformed"),
        ("LOG-018", "non_error"), ("LOG-021", "malformed"), ("LOG-019", "non_error"),
    ],
    "2025-10-02": [
        ("LOG-016", "loaded"), ("LOG-004", "non_error"), ("LOG-005", "loaded"),
        ("LOG-006", "non_error"), ("LOG-006", "duplicates"), ("LOG-022", "loaded"),
        ("LOG-023", "loaded"), ("LOG-024", "loaded"), ("LOG-025", "malformed"),
        ("LOG-026", "malformed"), ("LOG-027", "no_sale"), ("LOG-028", "non_error"),
        ("LOG-029", "non_error"), ("LOG-034", "non_error"),
    ],
    "2025-10-03": [
        ("LOG-007", "non_error"), ("LOG-008", "loaded"), ("LOG-030", "loaded"),
        ("LOG-031", "unknown_customer"), ("LOG-032", "non_error"), ("LOG-033", "loaded"),
        ("LOG-035", "malformed"), ("LOG-036", "non_error"), ("LOG-037", "malformed"),
        ("LOG-038", "non_error"),
    ],
}
# log_id: (sale_id, customer_id, days_since_sale) of every loaded error.
LOADED = {
    "LOG-002": ("SALE-101", "CUST-001", 259),
    "LOG-009": ("SALE-102", "CUST-002", 330),
    "LOG-013": ("SALE-103", "CUST-003", 30),
    "LOG-014": ("SALE-108", "CUST-006", 73),
    "LOG-016": ("SALE-105", "CUST-005", 94),
    "LOG-005": ("SALE-103", "CUST-003", 31),
    "LOG-022": ("SALE-107", "CUST-002", 0),
    "LOG-023": ("SALE-101", "CUST-001", 260),
    "LOG-024": ("SALE-102", "CUST-002", 331),
    "LOG-008": ("SALE-108", "CUST-006", 75),
    "LOG-030": ("SALE-107", "CUST-002", 1),
    "LOG-033": ("SALE-103", "CUST-003", 32),
}
# alert_id prefix: (dt partition, outcome under the rules applied to errors).
ALERTS = {
    "2c0026e3": ("2025-10-01", "loaded"),
    "9b9c8ba0": ("2025-10-01", "no_sale"),
    "ade06bb2": ("2025-10-02", "loaded"),
    "27eb383e": ("2025-10-02", "loaded"),
    "5d62bbc2": ("2025-10-02", "unknown_customer"),
    "a2b46c68": ("2025-10-02", "malformed"),
    "a7bff6f5": ("2025-10-02", "loaded"),
}


@pytest.fixture(scope="module")
def partitions(tmp_path_factory) -> dict[str, list[str]]:
    """The sample data as `make seed` lays it out in the bucket, as lines per dt= partition."""
    return {
        re.fullmatch(r"hardware_logs/dt=(.*)/hardware_logs.csv", key).group(1): content.decode().splitlines()[1:]
        for key, content in plan_upload(SAMPLE_DATA)
        if key.startswith("hardware_logs/")
    }


def test_every_row_becomes_what_is_documented(partitions):
    customers, sales = read_reference(SAMPLE_DATA)
    assert set(partitions) == set(EXPECTED)
    for day, expected in EXPECTED.items():
        results = classify(partitions[day], customers, sales)
        assert [(r.line.split(",")[0], r.outcome) for r in results] == expected, day
        for result in results:
            if result.outcome == "loaded":
                loaded = (result.sale_id, result.customer_id, result.days_since_sale)
                assert LOADED[result.log_id] == loaded, result.log_id
    loaded_ids = [log_id for rows in EXPECTED.values() for log_id, outcome in rows if outcome == "loaded"]
    assert sorted(loaded_ids) == sorted(LOADED)


def test_every_case_of_the_contract_is_shown(partitions):
    counts = Counter(outcome for rows in EXPECTED.values() for _, outcome in rows)
    assert set(counts) == {"malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded"}
    lines = [line for rows in partitions.values() for line in rows]
    assert any(",hot," in line for line in lines) and any(",91.5," in line for line in lines)
    assert any(line.split(",")[3] == " error " for line in lines)
    assert any(line.endswith(",") for line in lines) and any(",," in line for line in lines)
    # 23:30 at UTC-5 is the next UTC day, and is split into that day's partition.
    assert "LOG-016,2025-10-01T23:30:00-05:00,DEV-C301,ERROR,95,9.5" in partitions["2025-10-02"]


def test_seed_figures_and_the_resale(partitions):
    with open(SAMPLE_DATA / "customers" / "customers.csv", encoding="utf-8") as f:
        customers = {row["customer_id"]: row for row in csv.DictReader(f)}
    assert sorted(customers) == [f"CUST-00{n}" for n in range(1, 7)]
    assert customers["CUST-006"]["customer_name"] == "EventXperts"
    assert customers["CUST-006"]["industry"] == "Live Events"

    with open(SAMPLE_DATA / "sales" / "sales.csv", encoding="utf-8") as f:
        sales = {row["sale_id"]: row for row in csv.DictReader(f)}
    assert sorted(sales) == [f"SALE-10{n}" for n in range(1, 9)]
    assert (sales["SALE-108"]["device_id"], sales["SALE-108"]["customer_id"], sales["SALE-108"]["sale_date"]) == (
        "DEV-B202", "CUST-006", "2025-07-20"
    )
    earlier = [s for s in sales.values() if s["device_id"] == "DEV-B202" and s["sale_id"] != "SALE-108"]
    assert earlier and earlier[0]["customer_id"] != "CUST-006" and earlier[0]["sale_date"] < "2025-07-20"

    # The seed's 33 and 262 were counted to 2025-10-04; at the errors' own days they are 31 and 259.
    for log_id, at_error_day, at_run_day in (("LOG-005", 31, 33), ("LOG-002", 259, 262)):
        sale = sales[LOADED[log_id][0]]
        assert LOADED[log_id][2] == at_error_day
        assert (date(2025, 10, 4) - date.fromisoformat(sale["sale_date"])).days == at_run_day
    assert LOADED["LOG-008"][:2] == ("SALE-108", "CUST-006")


def test_alerts_sit_in_the_partition_of_their_utc_day():
    customers, sales = read_reference(SAMPLE_DATA)
    seen = {}
    for path in sorted((SAMPLE_DATA / "alerts").rglob("*.json")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if path.stem != "batch-0001":
            assert len(lines) == 1 and json.loads(lines[0])["alert_id"] == path.stem
        for line in lines:
            alert = json.loads(line)
            day = path.parent.name.removeprefix("dt=")
            instant = utc(alert["alert_timestamp"])
            assert instant is None or instant.date().isoformat() == day
            in_force = [s for s in sales.get(alert["device_id"], []) if instant and s[0] <= instant.date()]
            outcome = (
                "malformed" if instant is None
                else "no_sale" if not in_force
                else "loaded" if max(in_force)[2] in customers
                else "unknown_customer"
            )
            seen[alert["alert_id"][:8]] = (day, outcome)
            assert set(alert) == {"alert_id", "device_id", "error_code", "details", "alert_timestamp", "received_at"}
    assert seen == ALERTS
    assert not (SAMPLE_DATA / "alerts" / "dt=2025-10-03").exists()


def test_readme_covers_every_row_and_alert():
    readme = (SAMPLE_DATA / "README.md").read_text(encoding="utf-8")
    for rows in EXPECTED.values():
        for log_id, _ in rows:
            assert log_id in readme
    for prefix in ALERTS:
        assert prefix in readme
