"""One day of the ETL: read the raw files, classify every row, write Parquet (errors and device-days),
quarantine and audit.

`run_etl` is what `etl_job.py` runs once it has found the files through the Glue Data Catalog; the
benchmark runs it on local files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from hardware_correlation import schemas
from hardware_correlation import storage
from hardware_correlation import transforms
from hardware_correlation.version import deployed_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EtlInputs:
    log_files: list[str]
    customer_files: list[str]
    sale_files: list[str]


@dataclass(frozen=True)
class EtlOutputs:
    """Roots of the outputs; day D goes to `<root>/log_date=D/` (the audit to `audit.json` there).

    `reference_quarantine_path` receives the sales and customers rows that could not take part in
    the day's match, with their reasons; without it they are only counted and logged.
    `activity_path` receives the day's `device_day_activity` (the exposure, docs/contract.md, section 4);
    its row count is then the audit's `device_days`.
    """

    processed_path: str
    quarantine_path: str
    audit_path: str
    reference_quarantine_path: str | None = None
    activity_path: str | None = None

    def audit_file(self, log_date: date) -> str:
        return storage.join(storage.day_folder(self.audit_path, log_date), "audit.json")


def configure(spark: SparkSession) -> None:
    """Session settings the ETL relies on, whatever the cluster's defaults."""
    # Only the partitions present in the written data are replaced: day D, never other days.
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # INT96 is a legacy encoding; microsecond timestamps read the same in every Parquet reader.
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    # The parse compiles to large methods; HotSpot does not JIT-compile a method over 8000 bytes of
    # bytecode and would interpret it. Past that size Spark generates smaller per-operator code.
    spark.conf.set("spark.sql.codegen.hugeMethodLimit", "8000")


def check_reference_inputs(customer_files: list[str], sale_files: list[str]) -> None:
    """The customers and sales files exist and have the contract's headers; errors and alerts both
    need them."""
    if not customer_files:
        raise storage.JobInputError("no customers file (*.csv) in the customers table's location")
    if not sale_files:
        raise storage.JobInputError("no sales file (*.csv) in the sales table's location")
    storage.check_headers(customer_files, schemas.CUSTOMER_COLUMNS)
    storage.check_headers(sale_files, schemas.SALE_COLUMNS)


def check_inputs(inputs: EtlInputs) -> set[str]:
    """Schema drift fails here, before anything is written. Returns the log files' header lines."""
    check_reference_inputs(inputs.customer_files, inputs.sale_files)
    return storage.check_headers(inputs.log_files, schemas.LOG_COLUMNS)


def read_log_lines(spark: SparkSession, files: list[str]) -> DataFrame:
    """The non-blank lines of the day's files, each file's header included (`without_file_headers`)."""
    if not files:
        return spark.createDataFrame([], schemas.LOG_LINES)
    text = spark.read.text(files)
    return text.filter(F.trim(F.col("value")) != "").select(
        F.col("value").alias("line"), F.col("_metadata.file_path").alias("source_file")
    )


REPEATED_HEADER = "the header line again, among the data rows"


def without_file_headers(parsed: DataFrame, header_lines: set[str]) -> DataFrame:
    """`parsed` without the first line of each file, its header; the header's text again is data.

    Removing every line equal to a header would drop such a data line uncounted; a byte order mark
    (which the line reader may or may not keep) would make a header count as data. `check_headers`
    has seen each file's first line, so it is among `header_lines`, and it is the first of its file's
    header-like lines: line_number follows the file's order (Spark reads a file's first split in
    its lowest partition). A header-like row is malformed (its timestamp field is a column name),
    so it is among the few rows that the ETL keeps apart from the plain non-errors.
    """
    texts = {line.removeprefix(storage.BOM) for line in header_lines}
    header_like = storage.without_bom(F.col("line")).isin(*texts)
    first_in_file = Window.partitionBy("source_file").orderBy("line_number")
    repeated = (
        parsed.filter(header_like)
        .withColumn("header_rank", F.row_number().over(first_in_file))
        .filter(F.col("header_rank") > 1)
        .withColumn("malformed_detail", F.lit(REPEATED_HEADER))
    )
    return parsed.filter(~header_like).unionByName(repeated.select(*parsed.columns))


def read_csv(spark: SparkSession, files: list[str], schema) -> DataFrame:
    return (
        spark.read.schema(schema)
        .option("header", True)
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .csv(files)
    )


def run_etl(
    spark: SparkSession,
    log_date: date,
    inputs: EtlInputs,
    outputs: EtlOutputs,
    job_run_id: str | None = None,
    before_audit: Callable[[], object] | None = None,
) -> dict:
    """Process day `log_date` and return its audit record (also written to the audit file).

    `before_audit` is called once every other output of the day is written, before the audit file:
    the job waits there for the alerts, processed meanwhile, and an error it raises leaves the day
    without an audit file, marked incomplete.
    """
    header_lines = check_inputs(inputs)
    configure(spark)
    audit_file = outputs.audit_file(log_date)
    # The audit's presence says the day's outputs are complete: withdraw it while they change.
    storage.delete_file(audit_file)

    sales = read_csv(spark, inputs.sale_files, schemas.RAW_SALES)
    customers = read_csv(spark, inputs.customer_files, schemas.RAW_CUSTOMERS)
    lines = read_log_lines(spark, inputs.log_files)

    parsed = lines.transform(transforms.parse_log_lines)
    flagged = parsed.transform(transforms.flag_repeated, transforms.repeated_log_ids(lines))

    # Most rows are plain non-errors: they never go through the joins. Of them only the device is
    # kept (the other columns are NULL, which costs the cache next to nothing), so that one pass
    # over the files both counts them per device, for the exposure, and sets the rest aside.
    plain_non_error = (
        F.col("malformed_detail").isNull() & ~F.col("needs_ranking") & ~F.col("is_error")
    )
    rows = flagged.select(
        plain_non_error.alias("plain_non_error"),
        *(
            F.col(name) if name == "device_id" else F.when(~plain_non_error, F.col(name)).alias(name)
            for name in flagged.columns
        ),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    plain_per_device = (
        rows.filter(F.col("plain_non_error"))
        .groupBy("device_id")
        .agg(F.count(F.lit(1)).alias("events"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    in_force = transforms.sales_in_force(sales)
    known_customers = transforms.current_customers(customers)
    classified = (
        rows.filter(~F.col("plain_non_error"))
        .select(*flagged.columns)
        .transform(without_file_headers, header_lines)
        .transform(transforms.type_log_fields)
        .transform(transforms.rank_duplicates)
        .transform(transforms.classify, in_force, known_customers)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    rejected = transforms.rejected_reference_rows(sales, customers).persist(StorageLevel.MEMORY_AND_DISK)
    activity = None
    try:
        input_rows = rows.count()
        rejected_counts = {
            row["source_table"]: row["rows"]
            for row in rejected.groupBy("source_table").agg(F.count(F.lit(1)).alias("rows")).collect()
        }
        counts = {row["outcome"]: row["rows"] for row in transforms.outcome_counts(classified).collect()}
        plain_rows = plain_per_device.agg(F.sum("events")).collect()[0][0] or 0
        counts[schemas.NON_ERROR] = counts.get(schemas.NON_ERROR, 0) + plain_rows
        audit = transforms.audit_record(counts, log_date, job_run_id, rejected_counts)
        audit["scripts_version"] = deployed_version()
        # Every file has exactly one header line (check_headers), and it is not a row.
        data_lines = input_rows - len(inputs.log_files)
        if audit["input_rows"] != data_lines:
            raise RuntimeError(
                f"audit does not add up: {data_lines} data lines in {len(inputs.log_files)} files, outcomes {counts}"
            )

        storage.write_day(
            classified.transform(transforms.loaded_rows, log_date), outputs.processed_path, log_date, audit["loaded"]
        )
        quarantined = sum(audit[schemas.AUDIT_NAMES[o]] for o in schemas.QUARANTINED_OUTCOMES)
        storage.write_day(
            classified.transform(transforms.quarantine_rows, log_date), outputs.quarantine_path, log_date, quarantined
        )
        if outputs.activity_path:
            activity = (
                transforms.counted_events(plain_per_device)
                .unionByName(transforms.classified_events(classified))
                .transform(transforms.device_day_activity, log_date, in_force, known_customers)
                .persist(StorageLevel.MEMORY_AND_DISK)
            )
            totals = activity.agg(F.count(F.lit(1)), F.sum("errors")).collect()[0]
            audit["device_days"], activity_errors = totals[0], totals[1] or 0
            # The exposure's errors are the loaded errors, row for row: SUM(errors) = loaded.
            if activity_errors != audit["loaded"]:
                raise RuntimeError(
                    f"device_day_activity holds {activity_errors} errors, the day loaded {audit['loaded']}"
                )
            storage.write_day(activity, outputs.activity_path, log_date, audit["device_days"])
        _report_rejected_reference_rows(rejected, rejected_counts, log_date, outputs)
    finally:
        for frame in (activity, classified, plain_per_device, rows, rejected):
            if frame is not None:
                frame.unpersist()

    if before_audit is not None:
        before_audit()
    storage.write_json(audit_file, audit)
    log.info("day %s: %s", log_date, audit)
    return audit


def _report_rejected_reference_rows(
    rejected: DataFrame, counts: dict[str, int], log_date: date, outputs: EtlOutputs
) -> None:
    root = outputs.reference_quarantine_path
    if counts:
        examples = "; ".join(f"{row['source_table']} {row['row']}: {row['reason']}" for row in rejected.take(3))
        log.warning(
            "day %s: rows of the reference tables left out of the match (%s), e.g. %s; all of them are in %s",
            log_date,
            ", ".join(f"{table}: {rows}" for table, rows in sorted(counts.items())),
            examples,
            storage.day_folder(root, log_date) if root else "no quarantine location (--reference_quarantine_path)",
        )
    if root:
        storage.write_day(rejected.withColumn("log_date", F.lit(log_date)), root, log_date, sum(counts.values()))
