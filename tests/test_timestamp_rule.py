"""One table of timestamps, run against the two copies of the timestamp rule and the jobs that use it.

The Glue package writes the rule once (`hardware_correlation.timestamp_rule`), for the log parse
(transforms) and the alerts ETL (alerts); the alerts API's handler runs in Lambda without that
package and writes its own copy (standard library). This table proves the copies agree.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

from hardware_correlation import alerts, timestamp_rule, transforms
from infrastructure.alerts_api import handler

# The server's clock for the API; the alerts' received_at for the ETL.
NOW = datetime(2025, 10, 2, 12, 0, 0, tzinfo=timezone.utc)
RECEIVED_AT = "2025-10-02T12:00:00Z"
# A clock at the end of time, and alerts without received_at: what is BAD stays bad whatever the clock.
LAST_CLOCK = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)

# FUTURE: ahead of the clock, refused for alerts only; logs have no clock to compare.
OK, BAD, FUTURE = "ok", "bad", "future"
CASES = [
    ("2025-10-01T10:00:00Z", OK),
    ("2025-10-01T23:30:00-05:00", OK),
    ("2025-10-01T10:00:00.5+18:00", OK),
    ("2025-10-01T10:00:00-18:00", OK),
    ("2025-10-01T10:00:00+17:59", OK),
    ("2025-10-01T10:00:00.123456789+01:00", OK),
    ("2025-10-01T10:00:00+18:01", BAD),
    ("2025-10-01T10:00:00-18:30", BAD),
    ("2025-10-01T10:00:00+23:30", BAD),
    ("2025-10-01T10:00:00-23:59", BAD),
    ("2025-10-01T10:00:00+05:60", BAD),
    ("2015-01-01T00:00:00Z", OK),
    ("2015-01-01T05:00:00+05:00", OK),
    ("2014-12-31T20:00:00-05:00", OK),
    ("2015-01-01T00:30:00+01:00", BAD),
    ("2014-12-31T23:59:59.999Z", BAD),
    ("2015-01-01T17:00:00+18:00", BAD),
    ("2015-01-02T08:00:00+18:00", OK),
    ("0001-01-01T00:30:00+01:00", BAD),
    ("0001-01-01T00:00:00Z", BAD),
    ("2025-10-03T12:00:00Z", OK),
    ("2025-10-03T13:00:00+01:00", OK),
    ("2025-10-03T12:00:01Z", FUTURE),
    ("9999-12-31T23:59:59.999999Z", FUTURE),
    ("9999-12-31T23:30:00+01:00", FUTURE),
    ("9999-12-31T23:30:00-01:00", BAD),
    ("9999-12-31T23:59:59.5-00:01", BAD),
    ("2025-10-01T24:00:00Z", BAD),
    ("2025-02-29T10:00:00Z", BAD),
    ("2024-02-29T23:59:59-18:00", OK),
    ("2025-08-31T10:00:00-00:00", OK),
    ("2025-04-31T10:00:00Z", BAD),
    ("2025-10-01T10:00:60Z", BAD),
    ("2025-10-01T10:60:00Z", BAD),
    ("2025-10-01T10:00:00.123456789012Z", OK),
    ("2025-13-01T10:00:00Z", BAD),
    ("2025-10-01T10:00:00", BAD),
    ("2025-10-01 10:00:00Z", BAD),
    ("2025-10-01T10:00Z", BAD),
    ("2025-10-01T10:00:00+0100", BAD),
    ("2025-10-01T10:00:00.Z", BAD),
    ("٢٠٢٥-10-01T10:00:00Z", BAD),
]
IDS = [f"{expected}:{stamp}" for stamp, expected in CASES]


def _utc_day(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(timezone.utc).date().isoformat()


def test_both_copies_write_the_same_constants():
    from dags import hardware_correlation as dag_module

    start_date = dag_module.hardware_correlation().start_date
    assert handler.EARLIEST_DAY == timestamp_rule.EARLIEST_DAY == start_date.date()
    assert handler.LATEST_DAY == timestamp_rule.LATEST_DAY
    assert handler.MAX_CLOCK_AHEAD.total_seconds() == timestamp_rule.MAX_CLOCK_AHEAD_SECONDS
    assert handler.MAX_UTC_OFFSET == timedelta(hours=int(timestamp_rule.MAX_OFFSET[:2]))


@pytest.mark.parametrize(("stamp", "expected"), CASES, ids=IDS)
def test_the_alerts_api(stamp, expected):
    body = json.dumps({"device_id": "DEV-1", "error_code": "E1", "details": "d", "alert_timestamp": stamp})
    if expected == OK:
        _, day = handler.validate(body.encode(), NOW)
        assert day == _utc_day(stamp)
    else:
        with pytest.raises(handler.Refused) as refused:
            handler.validate(body.encode(), NOW)
        assert (refused.value.status, refused.value.field) == (400, "alert_timestamp")
    if expected == BAD:
        with pytest.raises(handler.Refused) as refused:
            handler.validate(body.encode(), LAST_CLOCK)
        assert (refused.value.status, refused.value.field) == (400, "alert_timestamp")


def test_the_log_parse(spark):
    lines = spark.createDataFrame(
        [(f"L{index},{stamp},DEV-1,ERROR,50,1.5", "f.csv") for index, (stamp, _) in enumerate(CASES)],
        "line string, source_file string",
    )
    rows = lines.transform(transforms.parse_log_lines).transform(transforms.type_log_fields).select(
        "log_id", "malformed_detail", timestamp_rule.utc_date(F.col("parsed_timestamp")).cast("string").alias("day")
    ).collect()
    found = {row["log_id"]: row for row in rows}
    for index, (stamp, expected) in enumerate(CASES):
        row = found[f"L{index}"]
        if expected == BAD:
            assert row["malformed_detail"] and "timestamp" in row["malformed_detail"], (stamp, row)
        else:
            assert (row["malformed_detail"], row["day"]) == (None, _utc_day(stamp)), stamp


def test_the_alerts_etl(spark):
    def record(alert_id: str, stamp: str, received_at: dict) -> str:
        return json.dumps({"alert_id": alert_id, "device_id": "DEV-1", "error_code": "E1", "details": "d",
                           "alert_timestamp": stamp, **received_at})

    records = spark.createDataFrame(
        [
            ("f.json", index, record(f"{prefix}{index}", stamp, received_at))
            for prefix, received_at in (("A", {"received_at": RECEIVED_AT}), ("N", {}))
            for index, (stamp, _) in enumerate(CASES)
        ],
        "source_file string, record_number int, raw_record string",
    )
    rows = records.transform(alerts.parse_alerts).select(
        "alert_id", "malformed_detail", timestamp_rule.utc_date(F.col("parsed_timestamp")).cast("string").alias("day")
    ).collect()
    found = {row["alert_id"]: row for row in rows}
    for index, (stamp, expected) in enumerate(CASES):
        # An alert without received_at has no clock to be ahead of.
        for row, accepted in ((found[f"A{index}"], expected == OK), (found[f"N{index}"], expected != BAD)):
            if accepted:
                assert (row["malformed_detail"], row["day"]) == (None, _utc_day(stamp)), (stamp, row)
            else:
                assert row["malformed_detail"] and "alert_timestamp" in row["malformed_detail"], (stamp, row)
