"""One day of alerts: read the day's JSON files, classify every alert, write Parquet, quarantine, counts.

`run_alerts` is what `etl_job.py` runs before the logs' `etl.run_etl`. Its counts go to `alerts.json`
next to the day's `audit.json`; the entry point withdraws `audit.json` first and `run_etl` writes it
last, so a present `audit.json` still means that every output of the day, alerts included, is complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hardware_correlation import alerts as A
from hardware_correlation import schemas as S
from hardware_correlation import storage
from hardware_correlation import transforms as X
from hardware_correlation.etl import configure, read_csv

log = logging.getLogger(__name__)
AUDIT_FILE_NAME = "alerts.json"


@dataclass(frozen=True)
class AlertInputs:
    alert_files: list[str]
    customer_files: list[str]
    sale_files: list[str]


@dataclass(frozen=True)
class AlertOutputs:
    """Roots of the outputs; day D goes to `<root>/log_date=D/` (the counts to `alerts.json` there)."""

    alerts_path: str
    quarantine_path: str
    audit_path: str

    def day(self, root: str, log_date: date) -> str:
        return storage.join(root, f"log_date={log_date.isoformat()}")

    def audit_file(self, log_date: date) -> str:
        return storage.join(self.day(self.audit_path, log_date), AUDIT_FILE_NAME)


def read_alert_files(spark: SparkSession, files: list[str]) -> DataFrame:
    """Each file whole (source_file, content): a single object may span several lines."""
    if not files:
        return spark.createDataFrame([], A.ALERT_FILES)
    return spark.read.text(files, wholetext=True).select(
        F.col("_metadata.file_path").alias("source_file"), F.col("value").alias("content")
    )


def run_alerts(
    spark: SparkSession,
    log_date: date,
    inputs: AlertInputs,
    outputs: AlertOutputs,
    job_run_id: str | None = None,
) -> dict:
    """Process the alerts of day `log_date`; returns the counts (also written to `alerts.json`).

    No files is a normal day: zero counts, and the day's folders of earlier runs are removed.
    """
    configure(spark)
    audit_file = outputs.audit_file(log_date)
    storage.delete_file(audit_file)
    alerts_day = outputs.day(outputs.alerts_path, log_date)
    quarantine_day = outputs.day(outputs.quarantine_path, log_date)

    if not inputs.alert_files:
        counts: dict[str, int] = {}
        storage.delete_folder(alerts_day)
        storage.delete_folder(quarantine_day)
    else:
        _check_reference_inputs(inputs)
        deduped = (
            read_alert_files(spark, inputs.alert_files)
            .transform(A.split_records)
            .transform(A.parse_alerts)
            .transform(A.mark_duplicates)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        sales = read_csv(spark, inputs.sale_files, S.RAW_SALES).join(
            F.broadcast(A.sale_devices(deduped)), on="device_id", how="left_semi"
        )
        customers = read_csv(spark, inputs.customer_files, S.RAW_CUSTOMERS)
        classified = deduped.transform(
            A.classify, X.sales_in_force(sales), X.current_customers(customers)
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = {row["outcome"]: row["rows"] for row in A.outcome_counts(classified).collect()}
            quarantined = sum(counts.get(outcome, 0) for outcome in A.QUARANTINED_OUTCOMES)
            _write_day(
                classified.transform(A.loaded_alerts, log_date),
                outputs.alerts_path,
                alerts_day,
                counts.get(S.LOADED_OUTCOME, 0),
            )
            _write_day(
                classified.transform(A.quarantined_alerts, log_date),
                outputs.quarantine_path,
                quarantine_day,
                quarantined,
            )
        finally:
            classified.unpersist()
            deduped.unpersist()

    audit = A.audit_record(counts, log_date, job_run_id)
    storage.write_json(audit_file, audit)
    log.info("alerts of day %s: %s", log_date, audit)
    return audit


def _check_reference_inputs(inputs: AlertInputs) -> None:
    if not inputs.customer_files:
        raise storage.JobInputError("no customers file (*.csv) in the customers table's location")
    if not inputs.sale_files:
        raise storage.JobInputError("no sales file (*.csv) in the sales table's location")
    storage.check_headers(inputs.customer_files, S.CUSTOMER_COLUMNS)
    storage.check_headers(inputs.sale_files, S.SALE_COLUMNS)


def _write_day(rows: DataFrame, root: str, day_folder: str, count: int) -> None:
    if count == 0:
        # Dynamic overwrite replaces only the partitions it writes: with no rows it would leave an
        # earlier run's rows of this day in place.
        storage.delete_folder(day_folder)
        return
    rows.write.mode("overwrite").partitionBy("log_date").parquet(root)
