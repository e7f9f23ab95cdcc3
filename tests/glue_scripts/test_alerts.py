"""The alert transforms on tiny inline DataFrames, and one day of alerts on local files."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone

from pyspark.sql import functions as F

from hardware_correlation import alerts
from hardware_correlation import schemas
from hardware_correlation import storage
from hardware_correlation import transforms
from hardware_correlation.alerts_etl import AlertInputs, AlertOutputs, run_alerts
from tests.support import assert_frame_equal

DAY = date(2025, 10, 2)
SALES = [
    ("SALE-101", "CUST-001", "DEV-A101", "2025-01-15"),
    ("SALE-104", "CUST-004", "DEV-B202", "2024-03-10"),
    ("SALE-108", "CUST-006", "DEV-B202", "2025-07-20"),
    ("SALE-105", "CUST-005", "DEV-C301", "2025-06-30"),
    ("SALE-106", "CUST-007", "DEV-C302", "2025-05-12"),
    ("SALE-107", "CUST-002", "DEV-D401", "2025-10-02"),
    # Two sales of one device on one day: the greatest sale_id is in force.
    ("SALE-201", "CUST-001", "DEV-T1", "2025-09-01"),
    ("SALE-202", "CUST-002", "DEV-T1", "2025-09-01"),
]
CUSTOMERS = [
    ("CUST-001", "Harborview Hotels", "Hospitality"),
    ("CUST-002", "Summit State University", "Education"),
    ("CUST-004", "Meridian Conferences", "Corporate Events"),
    ("CUST-005", "Starlight Stageworks", "Live Events"),
    ("CUST-006", "EventXperts", "Live Events"),
]


def alert(device="DEV-A101", ts="2025-10-02T10:00:00Z", alert_id="a-1", received="2025-10-02T10:00:01Z", **extra):
    """One stored alert as a JSON line; a field given as None is left out."""
    record = {"alert_id": alert_id, "device_id": device, "error_code": "E101_OVERHEAT",
              "details": "CPU temperature above threshold", "alert_timestamp": ts, "received_at": received}
    record.update(extra)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def files_df(spark, files: dict[str, str]):
    return spark.createDataFrame(list(files.items()), alerts.ALERT_FILES)


def records_df(spark, *records: str):
    return spark.createDataFrame(
        [("f.json", number, record) for number, record in enumerate(records, start=1)],
        "source_file string, record_number int, raw_record string",
    )


def classified(spark, *records: str):
    sales = spark.createDataFrame(SALES, schemas.RAW_SALES)
    customers = spark.createDataFrame(CUSTOMERS, schemas.RAW_CUSTOMERS)
    return (
        records_df(spark, *records)
        .transform(alerts.parse_alerts)
        .transform(alerts.mark_duplicates)
        .transform(alerts.classify, transforms.sales_in_force(sales), transforms.current_customers(customers))
    )


def utc(text: str) -> datetime:
    # The session time zone is UTC (tests/conftest.py): Spark hands back naive UTC datetimes.
    return datetime.fromisoformat(text).astimezone(timezone.utc).replace(tzinfo=None)


def test_split_records_takes_a_file_as_one_object_or_as_json_lines(spark):
    pretty = '{\n  "device_id": "DEV-A101",\n  "details": "x"\n}\n'
    lines = '{"alert_id": "1"}\r\n\r\n{"alert_id": "2"}\n   \n{"alert_id": "3"}'
    broken = '{"alert_id": "1"}\n{"alert_id": \n'
    files = files_df(spark, {
        "one.json": '\ufeff{"alert_id": "x"}\n', "pretty.json": pretty, "lines.json": lines,
        "broken.json": broken, "blank.json": "\n\n",
    })
    assert_frame_equal(
        files.transform(alerts.split_records),
        [
            ("one.json", 1, '{"alert_id": "x"}\n'),
            ("pretty.json", 1, pretty),
            ("lines.json", 1, '{"alert_id": "1"}'),
            ("lines.json", 3, '{"alert_id": "2"}'),
            ("lines.json", 5, '{"alert_id": "3"}'),
            ("broken.json", 1, '{"alert_id": "1"}'),
            ("broken.json", 2, '{"alert_id": '),
        ],
    )


MALFORMED_CASES = [
    ('{"alert_id": "1"', "unparseable JSON: the record is not one JSON object"),
    ('{"alert_id": "1"} {"alert_id": "2"}', "unparseable JSON: the record is not one JSON object"),
    ("[1, 2]", "unparseable JSON: the record is not one JSON object"),
    ("null", "unparseable JSON: the record is not one JSON object"),
    (alert(device=None), "missing device_id"),
    (alert(device="  "), "empty device_id"),
    (alert(error_code=""), "empty error_code"),
    (alert(details=None), "missing details"),
    (alert(ts=None), "missing alert_timestamp"),
    (alert(ts="soon"), "unparseable alert_timestamp"),
    (alert(ts="2025-10-02T10:00:00"), "unparseable alert_timestamp"),
    (alert(ts="2025-13-02T10:00:00Z"), "unparseable alert_timestamp"),
    (alert(received="yesterday"), "unparseable received_at"),
    (alert(), None),
    (alert(received=None), None),
]


def test_parse_alerts_names_what_is_malformed(spark):
    # One DataFrame for all cases: one Spark job instead of one per case.
    parsed = records_df(spark, *(record for record, _ in MALFORMED_CASES)).transform(alerts.parse_alerts)
    details = {row["record_number"]: row["malformed_detail"] for row in parsed.collect()}
    assert [details[number] for number in range(1, len(MALFORMED_CASES) + 1)] == [
        detail for _, detail in MALFORMED_CASES
    ]


def test_parse_alerts_reads_offsets_as_utc_and_keeps_fields_as_written(spark):
    row = records_df(spark, alert(ts="2025-10-01T23:29:00-05:00", received="2025-10-02T04:29:01.093Z")).transform(
        alerts.parse_alerts
    ).collect()[0]
    assert row["parsed_timestamp"] == datetime(2025, 10, 2, 4, 29)
    assert row["parsed_received_at"] == datetime(2025, 10, 2, 4, 29, 1, 93000)
    assert row["alert_timestamp"] == "2025-10-01T23:29:00-05:00"
    assert (row["alert_id"], row["device_id"], row["error_code"]) == ("a-1", "DEV-A101", "E101_OVERHEAT")


def test_an_alert_without_alert_id_gets_an_id_from_its_content(spark):
    rows = records_df(
        spark, alert(alert_id=None), alert(alert_id=""), alert(alert_id=None, device="DEV-B202")
    ).transform(alerts.parse_alerts).collect()
    fields = ["DEV-A101", "E101_OVERHEAT", "CPU temperature above threshold", "2025-10-02T10:00:00Z"]
    digest = hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()
    assert rows[0]["alert_id"] == rows[1]["alert_id"] == f"sha256:{digest}"
    assert rows[2]["alert_id"].startswith("sha256:") and rows[2]["alert_id"] != rows[0]["alert_id"]


def test_duplicates_keep_the_alert_received_first(spark):
    rows = classified(
        spark,
        alert(alert_id="a-1", received="2025-10-02T10:00:05Z", details="second"),
        alert(alert_id="a-1", received="2025-10-02T10:00:01Z", details="first"),
        alert(alert_id="a-1", received=None, details="no received_at"),
        alert(alert_id="a-1", ts="soon"),
        alert(alert_id="a-2", received=None, details="file order 1"),
        alert(alert_id="a-2", received=None, details="file order 2"),
    ).select("details", "outcome").collect()
    assert {(row["details"], row["outcome"]) for row in rows} == {
        ("second", schemas.DUPLICATE),
        ("first", schemas.LOADED_OUTCOME),
        ("no received_at", schemas.DUPLICATE),
        ("CPU temperature above threshold", schemas.MALFORMED),
        ("file order 1", schemas.LOADED_OUTCOME),
        ("file order 2", schemas.DUPLICATE),
    }


def test_classify_uses_the_sale_in_force_at_the_alerts_utc_day(spark):
    result = classified(
        spark,
        # 04:29 UTC on 2025-10-02, the day DEV-D401 was sold.
        alert(alert_id="sold-that-day", device="DEV-D401", ts="2025-10-01T23:29:00-05:00"),
        # 23:30 UTC on 2025-10-01, the day before the sale.
        alert(alert_id="before-sale", device="DEV-D401", ts="2025-10-02T01:30:00+02:00"),
        alert(alert_id="resold", device="DEV-B202", ts="2025-10-02T20:15:00+02:00"),
        alert(alert_id="same-day-sales", device="DEV-T1"),
        alert(alert_id="unknown-customer", device="DEV-C302"),
        alert(alert_id="never-sold", device="DEV-E501"),
    ).select("alert_id", "outcome", "sale_id", "customer_id", "customer_name", "industry", "days_since_sale")
    assert_frame_equal(
        result,
        [
            ("sold-that-day", schemas.LOADED_OUTCOME, "SALE-107", "CUST-002", "Summit State University", "Education", 0),
            ("before-sale", schemas.NO_SALE, None, None, None, None, None),
            ("resold", schemas.LOADED_OUTCOME, "SALE-108", "CUST-006", "EventXperts", "Live Events", 74),
            ("same-day-sales", schemas.LOADED_OUTCOME, "SALE-202", "CUST-002", "Summit State University", "Education", 31),
            ("unknown-customer", schemas.UNKNOWN_CUSTOMER, "SALE-106", "CUST-007", None, None, 143),
            ("never-sold", schemas.NO_SALE, None, None, None, None, None),
        ],
    )


def test_loaded_and_quarantined_alerts(spark):
    records = [
        alert(alert_id="ok", device="DEV-B202", ts="2025-10-02T20:15:00+02:00", received="2025-10-02T18:15:02.517Z"),
        alert(alert_id="ok", device="DEV-B202", received="2025-10-02T18:20:00Z"),
        alert(alert_id="no-sale", device="DEV-E501"),
        alert(alert_id="unknown", device="DEV-C302"),
        "not json",
    ]
    rows = classified(spark, *records).cache()
    loaded = rows.transform(alerts.loaded_alerts, DAY)
    assert tuple(loaded.columns) == alerts.LOADED_ALERT_COLUMNS
    assert_frame_equal(
        loaded,
        [(
            "ok", "DEV-B202", "E101_OVERHEAT", "CPU temperature above threshold", utc("2025-10-02T18:15:00+00:00"),
            utc("2025-10-02T18:15:02.517+00:00"), "SALE-108", "CUST-006", "EventXperts", "Live Events",
            date(2025, 7, 20), 74, DAY,
        )],
    )
    quarantined = rows.transform(alerts.quarantined_alerts, DAY)
    assert tuple(quarantined.columns) == tuple(field.name for field in alerts.QUARANTINED_ALERT.fields)
    assert_frame_equal(
        quarantined.select("alert_id", "reason", "detail", "raw_record", "record_number"),
        [
            ("ok", schemas.DUPLICATE, "alert_id ok was received earlier", records[1], 2),
            ("no-sale", schemas.NO_SALE, "device DEV-E501 has no sale on or before 2025-10-02", records[2], 3),
            ("unknown", schemas.UNKNOWN_CUSTOMER, "customer_id CUST-007 is not in customers", records[3], 4),
            (None, schemas.MALFORMED, "unparseable JSON: the record is not one JSON object", records[4], 5),
        ],
    )
    counts = {row["outcome"]: row["rows"] for row in alerts.outcome_counts(rows).collect()}
    assert alerts.audit_record(counts, DAY, "jr_1") == {
        "log_date": "2025-10-02", "alert_input_rows": 5, "alert_malformed": 1, "alert_duplicates": 1,
        "alert_no_sale": 1, "alert_unknown_customer": 1, "alert_loaded": 1, "job_run_id": "jr_1",
    }


def test_a_day_of_alerts_on_local_files_and_a_rerun_without_alerts(spark, tmp_path):
    raw = tmp_path / "raw"
    (raw / "customers").mkdir(parents=True)
    (raw / "sales").mkdir()
    (raw / "alerts").mkdir()
    (raw / "customers" / "customers.csv").write_text(
        "customer_id,customer_name,industry\n" + "".join(f"{','.join(row)}\n" for row in CUSTOMERS)
    )
    (raw / "sales" / "sales.csv").write_text(
        "sale_id,customer_id,device_id,sale_date\n" + "".join(f"{','.join(row)}\n" for row in SALES)
    )
    (raw / "alerts" / "one.json").write_text(alert(alert_id="one", device="DEV-C301") + "\n")
    (raw / "alerts" / "batch.json").write_text(
        alert(alert_id="two", device="DEV-A101") + "\n" + alert(alert_id="bad", ts="soon") + "\n"
    )
    inputs = AlertInputs(
        alert_files=storage.list_files(str(raw / "alerts"), ".json"),
        customer_files=[str(raw / "customers" / "customers.csv")],
        sale_files=[str(raw / "sales" / "sales.csv")],
    )
    out = tmp_path / "processed"
    outputs = AlertOutputs(str(out / "hardware_alerts"), str(out / "quarantine" / "alerts"), str(out / "audit"))

    counts = run_alerts(spark, DAY, inputs, outputs, "jr_1")

    assert counts == json.loads((out / "audit" / "log_date=2025-10-02" / "alerts.json").read_text())
    assert (counts["alert_input_rows"], counts["alert_loaded"], counts["alert_malformed"]) == (3, 2, 1)
    loaded = spark.read.schema(alerts.LOADED_ALERT_FILE).parquet(str(out / "hardware_alerts" / "log_date=2025-10-02"))
    assert_frame_equal(
        loaded.select("alert_id", "sale_id", "days_since_sale"), [("one", "SALE-105", 94), ("two", "SALE-101", 260)]
    )
    quarantine = spark.read.parquet(str(out / "quarantine" / "alerts" / "log_date=2025-10-02"))
    assert [(row["alert_id"], row["reason"]) for row in quarantine.collect()] == [("bad", schemas.MALFORMED)]

    rerun = run_alerts(spark, DAY, AlertInputs([], inputs.customer_files, inputs.sale_files), outputs, "jr_2")

    assert rerun == {
        "log_date": "2025-10-02", "alert_input_rows": 0, "alert_malformed": 0, "alert_duplicates": 0,
        "alert_no_sale": 0, "alert_unknown_customer": 0, "alert_loaded": 0, "job_run_id": "jr_2",
    }
    assert not (out / "hardware_alerts" / "log_date=2025-10-02").exists()
    assert not (out / "quarantine" / "alerts" / "log_date=2025-10-02").exists()
    assert json.loads((out / "audit" / "log_date=2025-10-02" / "alerts.json").read_text()) == rerun


def test_an_alert_file_is_read_whole(spark, tmp_path):
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(alert()), indent=2))
    from hardware_correlation.alerts_etl import read_alert_files

    records = read_alert_files(spark, [str(pretty)]).transform(alerts.split_records).transform(alerts.parse_alerts)
    assert [(row["alert_id"], row["malformed_detail"]) for row in records.collect()] == [("a-1", None)]
    assert records.select(F.col("source_file").endswith("pretty.json")).first()[0]
