"""One day of alerts: read the day's JSON files, classify every alert, write Parquet, quarantine, counts.

`etl_job.py` runs `run_alerts` beside the logs' `etl.run_etl`, in the same Spark session. Its counts go
to `alerts.json` next to the day's `audit.json`; the entry point withdraws `audit.json` first and
`run_etl` writes it last, once the alerts are done, so a present `audit.json` still means that every
output of the day, alerts included, is complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hardware_correlation import alerts
from hardware_correlation import schemas
from hardware_correlation import storage
from hardware_correlation import transforms
from hardware_correlation.etl import check_reference_inputs, configure, read_csv

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

    def audit_file(self, log_date: date) -> str:
        return storage.join(storage.day_folder(self.audit_path, log_date), AUDIT_FILE_NAME)


def read_alert_files(spark: SparkSession, files: list[str]) -> DataFrame:
    """Each file whole (source_file, content): a single object may span several lines."""
    if not files:
        return spark.createDataFrame([], alerts.ALERT_FILES)
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
    if not inputs.alert_files:
        counts: dict[str, int] = {}
        storage.delete_folder(storage.day_folder(outputs.alerts_path, log_date))
        storage.delete_folder(storage.day_folder(outputs.quarantine_path, log_date))
    else:
        check_reference_inputs(inputs.customer_files, inputs.sale_files)
        deduped = (
            read_alert_files(spark, inputs.alert_files)
            .transform(alerts.split_records)
            .transform(alerts.parse_alerts)
            .transform(alerts.mark_duplicates)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        sales = read_csv(spark, inputs.sale_files, schemas.RAW_SALES).join(
            F.broadcast(alerts.sale_devices(deduped)), on="device_id", how="left_semi"
        )
        customers = read_csv(spark, inputs.customer_files, schemas.RAW_CUSTOMERS)
        classified = deduped.transform(
            alerts.classify, transforms.sales_in_force(sales), transforms.current_customers(customers)
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = {row["outcome"]: row["rows"] for row in alerts.outcome_counts(classified).collect()}
            quarantined = sum(counts.get(outcome, 0) for outcome in schemas.QUARANTINED_OUTCOMES)
            storage.write_day(
                classified.transform(alerts.loaded_alerts, log_date),
                outputs.alerts_path,
                log_date,
                counts.get(schemas.LOADED_OUTCOME, 0),
            )
            storage.write_day(
                classified.transform(alerts.quarantined_alerts, log_date),
                outputs.quarantine_path,
                log_date,
                quarantined,
            )
        finally:
            classified.unpersist()
            deduped.unpersist()

    audit = alerts.audit_record(counts, log_date, job_run_id)
    storage.write_json(audit_file, audit)
    log.info("alerts of day %s: %s", log_date, audit)
    return audit
