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
from pyspark.sql import DataFrame, SparkSession
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
    # bytecode and would interpret it. Past that size Spark generates smaller per-operator code, and
    # the stage is slower by a third: tests/glue_scripts/test_etl.py keeps the day's stages under it.
    spark.conf.set("spark.sql.codegen.hugeMethodLimit", "8000")
    # The repeated log_ids are the second line of each hash (`transforms.repeated_log_ids`). Spark
    # would first sort every line's hash before the shuffle to keep two lines per hash, which removes
    # nothing, since nearly every log_id occurs once (bench scaling run: 1M, 5M and 20M rows in 13.8,
    # 29.2 and 86.6 s instead of 15.9, 30.8 and 91.0 s).
    spark.conf.set("spark.sql.optimizer.windowGroupLimitThreshold", "-1")


def check_reference_inputs(customer_files: list[str], sale_files: list[str]) -> None:
    """The customers and sales files exist and have the headers of docs/contract.md, section 2; errors and alerts both
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
    """The non-blank lines of the day's files, each file's header included (`transforms.rank_rows`)."""
    if not files:
        return spark.createDataFrame([], schemas.LOG_LINES)
    text = spark.read.text(files)
    return text.filter(F.trim(F.col("value")) != "").select(
        F.col("value").alias("line"), F.col("_metadata.file_path").alias("source_file")
    )


def read_csv(spark: SparkSession, files: list[str], schema) -> DataFrame:
    return (
        spark.read.schema(schema)
        .option("header", True)
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .csv(files)
    )


REFERENCE_TABLES = ("sales", "customers")


def read_reference(spark: SparkSession, inputs: EtlInputs) -> tuple[DataFrame, DataFrame]:
    """The sales and customers, each in one partition: they are small (a row per device sold), and in
    one partition the sales' window, the customers' grouping and their join need no shuffle."""
    sales = read_csv(spark, inputs.sale_files, schemas.RAW_SALES).coalesce(1)
    customers = read_csv(spark, inputs.customer_files, schemas.RAW_CUSTOMERS).coalesce(1)
    return sales, customers


def day_rows(
    spark: SparkSession,
    log_date: date,
    inputs: EtlInputs,
    header_lines: set[str],
    sales: DataFrame,
    customers: DataFrame,
) -> tuple[DataFrame, DataFrame]:
    """The day's classified rows (`transforms.classify`) and its device-days (`transforms.device_days`),
    both cached: every output of the day and the audit read them. The caller unpersists them.

    `header_lines` are the log files' first lines (`check_inputs`), `sales` and `customers` the
    reference tables as `read_reference` reads them.

    The device-days are computed from the cached classified rows, which carry each device's owner at
    the day (`transforms.classify`), so they need no owner match of their own. In one query with the
    rows (a union, cached as one), the classification would run twice, once for the rows and once
    for the device-days: the bench's 5M-row day takes 33.1 s that way instead of 28.8 s.
    """
    owners = transforms.sale_owners(transforms.sales_in_force(sales), transforms.current_customers(customers))
    classified = transforms.classify_lines(read_log_lines(spark, inputs.log_files), owners, log_date, header_lines)
    # Only quarantined rows are written with their line and file: the others drop them before the
    # cache, which they would otherwise fill with text nobody reads.
    quarantined = F.col("outcome").isin(*schemas.QUARANTINED_OUTCOMES)
    classified = classified.withColumns(
        {name: F.when(quarantined, F.col(name)) for name in transforms.LINE_COLUMNS}
    ).persist(StorageLevel.MEMORY_AND_DISK)
    days = classified.transform(transforms.device_days, log_date).persist(StorageLevel.MEMORY_AND_DISK)
    return classified, days


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

    The day's files are read twice: a first pass over the log_ids only (`repeated_log_ids`), then
    one parse, after which only about a tenth of the rows stay rows (`compact_rows`); everything
    else (ranking, owner match, audit, exposure) works on those and on the small reference tables.
    """
    header_lines = check_inputs(inputs)
    configure(spark)
    audit_file = outputs.audit_file(log_date)
    # The audit's presence says the day's outputs are complete: withdraw it while they change.
    storage.delete_file(audit_file)

    sales, customers = read_reference(spark, inputs)
    classified, days = day_rows(spark, log_date, inputs, header_lines, sales, customers)
    rejected = transforms.rejected_reference_rows(sales, customers)
    try:
        # In one partition the totals need no shuffle: the day's devices are few enough for one task,
        # and the reference tables come in one partition. One action for both.
        day_totals = days.coalesce(1).transform(transforms.day_totals)
        rejected_totals = rejected.coalesce(1).agg(
            *(
                F.count(F.when(F.col("source_table") == table, True)).alias(f"rejected_{table}")
                for table in REFERENCE_TABLES
            )
        )
        found: dict[str, int] = {}
        for row in day_totals.unionByName(rejected_totals, allowMissingColumns=True).collect():
            found.update({name: int(value) for name, value in row.asDict().items() if value is not None})
        totals = {name: found.get(name, 0) for name in day_totals.columns}
        rejected_counts = {table: found[f"rejected_{table}"] for table in REFERENCE_TABLES}
        rejected_counts = {table: rows for table, rows in rejected_counts.items() if rows}
        audit = transforms.audit_record(totals, log_date, job_run_id, rejected_counts)
        audit["scripts_version"] = deployed_version()
        # Every file has exactly one header line (check_headers), and it is not a row.
        if totals[transforms.FILE_HEADER] != len(inputs.log_files):
            raise RuntimeError(
                f"audit does not add up: {totals[transforms.FILE_HEADER]} header lines found in"
                f" {len(inputs.log_files)} files, outcomes {totals}"
            )
        # The exposure's errors are the loaded errors, row for row: SUM(errors) = loaded.
        if totals["activity_errors"] != audit["loaded"]:
            raise RuntimeError(
                f"device_day_activity holds {totals['activity_errors']} errors, the day loaded {audit['loaded']}"
            )

        storage.write_day(
            classified.transform(transforms.loaded_rows, log_date), outputs.processed_path, log_date, audit["loaded"]
        )
        quarantined = sum(audit[schemas.AUDIT_NAMES[o]] for o in schemas.QUARANTINED_OUTCOMES)
        storage.write_day(
            classified.transform(transforms.quarantine_rows, log_date), outputs.quarantine_path, log_date, quarantined
        )
        if outputs.activity_path:
            audit["device_days"] = totals["device_days"]
            storage.write_day(
                days.transform(transforms.device_day_activity), outputs.activity_path, log_date, audit["device_days"]
            )
        _report_rejected_reference_rows(rejected, rejected_counts, log_date, outputs)
    finally:
        days.unpersist()
        classified.unpersist()

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
