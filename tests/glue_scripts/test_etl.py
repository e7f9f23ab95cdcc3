"""`run_etl` on local files: what a day writes, and that a rerun replaces that day only."""

from __future__ import annotations

import contextlib
import json
from datetime import date
from pathlib import Path

import pytest

from hardware_correlation import schemas
from hardware_correlation import storage
from hardware_correlation.etl import (
    EtlInputs, EtlOutputs, check_inputs, configure, day_rows, read_reference, run_etl,
)

SAMPLE = Path(__file__).resolve().parents[2] / "dev" / "sample_data"
HEADER = "log_id,timestamp,device_id,event_type,cpu_temp_celsius,memory_usage_gb"


def _day(tmp_path: Path, day: str, *lines: str) -> EtlInputs:
    folder = tmp_path / "raw" / "hardware_logs" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    return EtlInputs(
        log_files=storage.list_files(str(folder), ".csv"),
        customer_files=[str(SAMPLE / "customers" / "customers.csv")],
        sale_files=[str(SAMPLE / "sales" / "sales.csv")],
    )


def test_a_rerun_replaces_only_its_day(spark, tmp_path):
    outputs = EtlOutputs(str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"))
    first = _day(
        tmp_path, "2025-10-01",
        "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9",
        "LOG-010,2025-10-01T12:05:00Z,DEV-D401,ERROR,85,4.0",
    )
    audit = run_etl(spark, date(2025, 10, 1), first, outputs, "jr_1")
    assert (audit["input_rows"], audit["loaded"], audit["no_sale"]) == (2, 1, 1)
    second = _day(tmp_path, "2025-10-02", "LOG-005,2025-10-02T10:30:00Z,DEV-B201,ERROR,83,5.5")
    assert run_etl(spark, date(2025, 10, 2), second, outputs, "jr_2")["loaded"] == 1
    kept = sorted(p.name for p in (tmp_path / "processed" / "log_date=2025-10-02").glob("*.parquet"))

    # Day 1 again, now empty: its rows and quarantine go, day 2 stays as it was.
    (tmp_path / "raw" / "hardware_logs" / "dt=2025-10-01" / "part-0.csv").write_text(HEADER + "\n")
    audit = run_etl(spark, date(2025, 10, 1), first, outputs, "jr_3")
    assert audit["input_rows"] == 0 and audit["job_run_id"] == "jr_3"
    assert not (tmp_path / "processed" / "log_date=2025-10-01").exists()
    assert not (tmp_path / "quarantine" / "log_date=2025-10-01").exists()
    assert sorted(p.name for p in (tmp_path / "processed" / "log_date=2025-10-02").glob("*.parquet")) == kept
    written = json.loads((tmp_path / "audit" / "log_date=2025-10-01" / "audit.json").read_text())
    assert written == audit


def test_a_failure_before_the_audit_leaves_the_day_without_one(spark, tmp_path):
    """The job waits for the day's alerts in `before_audit`; when they fail, the day's other outputs
    may be written, but no audit.json says the day is complete."""
    outputs = EtlOutputs(str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"))
    inputs = _day(tmp_path, "2025-10-01", "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9")
    audit_file = tmp_path / "audit" / "log_date=2025-10-01" / "audit.json"
    run_etl(spark, date(2025, 10, 1), inputs, outputs, "jr_1")
    assert audit_file.exists()
    waited = []

    def alerts_failed() -> None:
        waited.append(True)
        raise RuntimeError("the alerts of the day failed")

    with pytest.raises(RuntimeError, match="the alerts of the day failed"):
        run_etl(spark, date(2025, 10, 1), inputs, outputs, "jr_2", before_audit=alerts_failed)
    assert waited == [True]
    assert not audit_file.exists()
    assert list((tmp_path / "processed" / "log_date=2025-10-01").glob("*.parquet"))


def test_schema_drift_fails_before_anything_is_written(spark, tmp_path):
    outputs = EtlOutputs(str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"))
    inputs = _day(tmp_path, "2025-10-01", "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9")
    drifted = tmp_path / "sales.csv"
    drifted.write_text("sale_id,customer_id,device_id\nSALE-1,CUST-001,DEV-A101\n")
    inputs = EtlInputs(inputs.log_files, inputs.customer_files, [str(drifted)])
    with pytest.raises(storage.SchemaDriftError) as raised:
        run_etl(spark, date(2025, 10, 1), inputs, outputs)
    assert str(drifted) in str(raised.value)
    assert "expected columns sale_id, customer_id, device_id, sale_date; found sale_id, customer_id, device_id" in str(raised.value)
    assert not any(tmp_path.glob("processed")) and not any(tmp_path.glob("audit"))


def test_unusable_reference_rows_are_reported_with_the_day(spark, tmp_path, caplog):
    sales = tmp_path / "raw" / "sales" / "sales.csv"
    sales.parent.mkdir(parents=True)
    sample_sales = (SAMPLE / "sales" / "sales.csv").read_text().rstrip("\n")
    # DEV-A101's only usable sale is SALE-101; the undated resale cannot be placed in time.
    sales.write_text(sample_sales + "\nSALE-900,CUST-005,DEV-A101,soon\n,CUST-005,DEV-A101,2025-09-30\n")
    inputs = EtlInputs(
        log_files=_day(tmp_path, "2025-10-01", "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9").log_files,
        customer_files=[str(SAMPLE / "customers" / "customers.csv")],
        sale_files=[str(sales)],
    )
    outputs = EtlOutputs(
        str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"),
        str(tmp_path / "reference_quarantine"),
    )
    with caplog.at_level("WARNING", logger="hardware_correlation.etl"):
        audit = run_etl(spark, date(2025, 10, 1), inputs, outputs, "jr_1")

    assert (audit["loaded"], audit["rejected_sales"], audit["rejected_customers"]) == (1, 2, 0)
    assert "sales: 2" in caplog.text and "SALE-900" in caplog.text
    rejected = spark.read.parquet(str(tmp_path / "reference_quarantine")).collect()
    assert sorted((row["source_table"], row["reason"], str(row["log_date"])) for row in rejected) == [
        ("sales", "empty sale_id", "2025-10-01"),
        ("sales", "sale_date is not a YYYY-MM-DD day", "2025-10-01"),
    ]
    assert json.loads((tmp_path / "audit" / "log_date=2025-10-01" / "audit.json").read_text()) == audit


def _quarantine(spark, tmp_path: Path) -> list:
    return spark.read.parquet(str(tmp_path / "quarantine")).select("reason", "detail", "raw_line").collect()


def test_a_data_line_equal_to_the_header_is_malformed_not_dropped(spark, tmp_path):
    outputs = EtlOutputs(str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"))
    inputs = _day(
        tmp_path, "2025-10-01",
        "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9",
        HEADER,
        "LOG-010,2025-10-01T12:05:00Z,DEV-D401,ERROR,85,4.0",
    )
    second = Path(inputs.log_files[0]).with_name("part-1.csv")
    second.write_text(f"{HEADER}\nLOG-003,2025-10-01T10:00:00Z,DEV-A101,INFO,50,2.0\n")
    inputs = EtlInputs([*inputs.log_files, str(second)], inputs.customer_files, inputs.sale_files)

    audit = run_etl(spark, date(2025, 10, 1), inputs, outputs, "jr_1")

    # Each file's own header is not a row; the header's text again among the rows is one.
    assert (audit["input_rows"], audit["malformed"], audit["loaded"], audit["no_sale"], audit["non_error"]) == (
        4, 1, 1, 1, 1
    )
    (malformed,) = [row for row in _quarantine(spark, tmp_path) if row["reason"] == "malformed"]
    assert malformed["raw_line"] == HEADER
    assert malformed["detail"] == "the header line again, among the data rows"


def test_a_byte_order_mark_and_crlf_line_ends_are_not_data(spark, tmp_path):
    """Files saved by Windows tools: a UTF-8 BOM before the header of every raw CSV, CRLF line ends."""
    def windows_copy(source: Path, target: Path) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\xef\xbb\xbf" + source.read_text().replace("\n", "\r\n").encode())
        return str(target)

    plain = _day(
        tmp_path / "plain", "2025-10-01",
        "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9",
        "LOG-010,2025-10-01T12:05:00Z,DEV-D401,ERROR,85,4.0",
        "LOG-003,2025-10-01T10:00:00Z,DEV-A101,INFO,50,2.0",
    )
    windows = EtlInputs(
        [windows_copy(Path(plain.log_files[0]), tmp_path / "raw" / "dt=2025-10-01" / "part-0.csv")],
        [windows_copy(SAMPLE / "customers" / "customers.csv", tmp_path / "raw" / "customers.csv")],
        [windows_copy(SAMPLE / "sales" / "sales.csv", tmp_path / "raw" / "sales.csv")],
    )
    for files, columns in ((windows.log_files, schemas.LOG_COLUMNS), (windows.sale_files, schemas.SALE_COLUMNS),
                           (windows.customer_files, schemas.CUSTOMER_COLUMNS)):
        assert storage.first_line(files[0]).startswith("\ufeff")
        (header,) = storage.check_headers(files, columns)
        assert storage.header_columns(header) == list(columns)

    expected = run_etl(spark, date(2025, 10, 1), plain, EtlOutputs(*(str(tmp_path / "plain" / n) for n in ("p", "q", "a"))))
    audit = run_etl(spark, date(2025, 10, 1), windows, EtlOutputs(*(str(tmp_path / n) for n in ("p", "q", "a"))))
    assert (audit["input_rows"], audit["malformed"], audit["loaded"], audit["non_error"]) == (3, 0, 1, 1)
    assert {k: v for k, v in audit.items() if k != "job_run_id"} == {k: v for k, v in expected.items() if k != "job_run_id"}


def test_device_days_hold_every_kept_row_and_exactly_the_loaded_errors(spark, tmp_path):
    sales = tmp_path / "raw" / "sales" / "sales.csv"
    sales.parent.mkdir(parents=True)
    # DEV-X01 changes hands on D to a customer missing from the snapshot; DEV-Y01 and DEV-Z01 are
    # resold on D.
    sales.write_text(
        (SAMPLE / "sales" / "sales.csv").read_text().rstrip("\n")
        + "\nSALE-900,CUST-001,DEV-X01,2025-01-01\nSALE-901,CUST-999,DEV-X01,2025-10-02"
        + "\nSALE-910,CUST-001,DEV-Y01,2024-10-02\nSALE-911,CUST-003,DEV-Y01,2025-10-02"
        + "\nSALE-920,CUST-001,DEV-Z01,2024-10-02\nSALE-921,CUST-003,DEV-Z01,2025-10-02\n"
    )
    day = _day(
        tmp_path, "2025-10-02",
        "LOG-1,2025-10-02T08:00:00Z,DEV-A101,INFO,55,3.2",
        "LOG-2,2025-10-02T09:00:00Z,DEV-A101,ERROR,88,7.9",
        "LOG-2,2025-10-02T09:05:00Z,DEV-A101,ERROR,88,7.9",  # duplicate: not an event
        "LOG-3,2025-10-02T09:10:00Z,DEV-A101,info,x,7.9",  # malformed: not an event
        "LOG-4,2025-10-02T10:00:00Z,DEV-A102, error ,92,6.4",
        "LOG-5,2025-10-02T10:00:00Z,DEV-A102,DEBUG,60,2.0",
        "LOG-6,2025-10-02T11:00:00Z,DEV-C302,ERROR,90,4.0",  # unknown customer: no device-day
        "LOG-7,2025-10-02T12:00:00Z,DEV-NONE,ERROR,90,4.0",  # never sold: no device-day
        "LOG-8,2025-10-02T12:00:00Z,DEV-NONE,INFO,60,4.0",
        # Arrived a day late: matched at its own day (2025-10-01) to SALE-900, the owner then.
        "LOG-9,2025-10-01T23:30:00Z,DEV-X01,ERROR,90,4.0",
        "LOG-10,2025-10-02T10:00:00Z,DEV-X01,INFO,60,4.0",
        "LOG-11,2025-10-01T23:00:00Z,DEV-Y01,ERROR,90,4.0",
        "LOG-12,2025-10-02T09:00:00Z,DEV-Y01,WARNING,60,4.0",
        # A device-day of errors only: one of D, and one that arrived a day late.
        "LOG-13,2025-10-02T13:00:00Z,DEV-B201,ERROR,91,4.0",
        "LOG-14,2025-10-01T22:00:00Z,DEV-Z01,ERROR,90,4.0",
    )
    inputs = EtlInputs(day.log_files, day.customer_files, [str(sales)])
    outputs = EtlOutputs(
        str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"),
        activity_path=str(tmp_path / "activity"),
    )
    audit = run_etl(spark, date(2025, 10, 2), inputs, outputs)

    rows = spark.read.parquet(str(tmp_path / "activity")).collect()
    found = {
        row["device_id"]: (row["sale_id"], row["customer_id"], row["industry"], row["days_since_sale"], row["events"], row["errors"], str(row["log_date"]))
        for row in rows
    }
    assert found == {
        "DEV-A101": ("SALE-101", "CUST-001", "Hospitality", 260, 2, 1, "2025-10-02"),
        "DEV-A102": ("SALE-102", "CUST-002", "Education", 331, 2, 1, "2025-10-02"),
        # No owner with a known customer at D: the late error's owner keeps its error counted.
        "DEV-X01": ("SALE-900", "CUST-001", "Hospitality", 274, 2, 1, "2025-10-02"),
        # The owner at D, though its late error was loaded under the previous owner.
        "DEV-Y01": ("SALE-911", "CUST-003", "Sports & Arenas", 0, 2, 1, "2025-10-02"),
        "DEV-B201": ("SALE-103", "CUST-003", "Sports & Arenas", 31, 1, 1, "2025-10-02"),
        # Its only row, loaded under SALE-920 on 2025-10-01, and the owner at D all the same.
        "DEV-Z01": ("SALE-921", "CUST-003", "Sports & Arenas", 0, 1, 1, "2025-10-02"),
    }
    assert audit["loaded"] == sum(row["errors"] for row in rows) == 6
    assert audit["device_days"] == 6
    assert (audit["duplicates"], audit["malformed"], audit["unknown_customer"], audit["no_sale"]) == (1, 1, 1, 1)
    assert audit["input_rows"] == 15 and audit["non_error"] == 5


def test_a_day_without_device_days_leaves_no_activity_folder(spark, tmp_path):
    outputs = EtlOutputs(
        str(tmp_path / "processed"), str(tmp_path / "quarantine"), str(tmp_path / "audit"),
        activity_path=str(tmp_path / "activity"),
    )
    first = _day(tmp_path, "2025-10-01", "LOG-001,2025-10-01T08:00:00Z,DEV-A101,INFO,55,3.2")
    assert run_etl(spark, date(2025, 10, 1), first, outputs)["device_days"] == 1
    assert (tmp_path / "activity" / "log_date=2025-10-01").is_dir()
    # The same day again, now only an unsold device: the earlier device-day goes.
    (tmp_path / "raw" / "hardware_logs" / "dt=2025-10-01" / "part-0.csv").write_text(
        HEADER + "\nLOG-001,2025-10-01T08:00:00Z,DEV-NONE,INFO,55,3.2\n"
    )
    audit = run_etl(spark, date(2025, 10, 1), first, outputs)
    assert (audit["device_days"], audit["non_error"]) == (0, 1)
    assert not (tmp_path / "activity" / "log_date=2025-10-01").exists()


def _executed_plans(frame):
    """`frame`'s executed plan, and the plans of the caches it reads, of the caches those read, ..."""
    plans = [frame._jdf.queryExecution().executedPlan()]
    while plans:
        plan = plans.pop()
        yield plan
        leaves = plan.collectLeaves().iterator()
        while leaves.hasNext():
            leaf = leaves.next()
            if leaf.getClass().getSimpleName() == "InMemoryTableScanExec":
                plans.append(leaf.relation().cachedPlan())


def _nodes(plan):
    yield plan
    children = plan.children().iterator()
    while children.hasNext():
        yield from _nodes(children.next())


@contextlib.contextmanager
def _day_query(spark, tmp_path):
    """The device-days of a one-line day (`day_rows`), whose plan reads the classified rows' cache,
    planned without adaptive execution: it plans each stage as the one before it ends; without it
    the whole plan, with the same stages and reused exchanges, is there before anything runs."""
    inputs = _day(tmp_path, "2025-10-01", "LOG-002,2025-10-01T09:15:00Z,DEV-A101,ERROR,88,7.9")
    header_lines = check_inputs(inputs)
    configure(spark)
    sales, customers = read_reference(spark, inputs)
    adaptive = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    frames = ()
    try:
        frames = _, days = day_rows(spark, date(2025, 10, 1), inputs, header_lines, sales, customers)
        yield days
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)
        for frame in frames:
            frame.unpersist()


def test_every_stage_of_the_days_query_keeps_whole_stage_code_generation(spark, tmp_path):
    """Past spark.sql.codegen.hugeMethodLimit (`configure`), Spark runs a stage without whole-stage
    code generation, and says so only in a log line at INFO. Over 5M log lines, a parse stage 300
    bytes over the limit took 17 to 18 s instead of 12: every day would cost a third more. The
    parse's method is within a few hundred bytes of the limit, so a rule that adds to it must keep
    it under."""
    # Scala's package object of org.apache.spark.sql.execution.debug, which DataFrame.debugCodegen uses.
    debug = spark.sparkContext._jvm.org.apache.spark.sql.execution.debug.package
    # Per whole-stage-code-generated part (named by its first line): the bytecode size of its
    # largest generated method, as Spark compiles it.
    sizes = {}
    with _day_query(spark, tmp_path) as days:
        limit = int(spark.conf.get("spark.sql.codegen.hugeMethodLimit"))  # as `configure` set it
        for plan in _executed_plans(days):
            subtrees = debug.codegenStringSeq(plan).iterator()
            while subtrees.hasNext():
                subtree = subtrees.next()
                sizes[subtree._1().splitlines()[0]] = subtree._3().maxMethodCodeSize()
    # The parse's stage ends in `compact_rows`' aggregation: it must be among the parts checked.
    aggregations = [part for part in sizes if part.split(") ", 1)[1].startswith("HashAggregate")]
    assert aggregations, f"no aggregation among the generated parts {list(sizes)}"
    too_large = {part[:160]: size for part, size in sizes.items() if size > limit}
    assert not too_large, f"generated methods over {limit} bytes: {too_large}"


def test_the_day_broadcasts_the_owners_once(spark, tmp_path):
    """The errors' match, and the owner at D that the device-days take, read one broadcast of the
    owners (`transforms.classify`): a second one would be a Spark job more in every run, which read
    the sales and customers again."""
    with _day_query(spark, tmp_path) as days:
        nodes = [node for plan in _executed_plans(days) for node in _nodes(plan)]
    kinds = [node.getClass().getSimpleName() for node in nodes]
    owner_broadcasts = [
        node for node, kind in zip(nodes, kinds, strict=True) if kind == "BroadcastExchangeExec" and "sales.csv" in node.treeString()
    ]
    assert len(owner_broadcasts) == 1, [node.treeString()[:300] for node in owner_broadcasts]
    assert "ReusedExchangeExec" in kinds
