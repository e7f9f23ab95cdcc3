"""Glue ETL job: one day of hardware logs and alerts to Parquet, quarantine and the day's audit counts.

Arguments (Glue's `--name value` form): --log_date YYYY-MM-DD, --database (the crawler's Glue
database), --processed_path, --quarantine_path, --audit_path, and optionally --logs_table,
--customers_table, --sales_table, --reference_quarantine_path (sales and customers rows that
cannot take part in the match, with their reasons) and --activity_path (root of the device-days'
Parquet, `device_day_activity` of docs/contract.md, section 4). With --alerts_path (root of the alerts' Parquet) and
--alerts_quarantine_path, the day's partition of --alerts_table (default alerts) is processed too,
its counts written to `alerts.json` next to `audit.json`; a day without alerts gives zero counts.
Glue adds --JOB_NAME, --JOB_RUN_ID and options of its own, which are ignored here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from pyspark.sql import SparkSession

from hardware_correlation import catalog, storage
from hardware_correlation.alerts_etl import AlertInputs, AlertOutputs, run_alerts
from hardware_correlation.etl import EtlInputs, EtlOutputs, check_inputs, run_etl

log = logging.getLogger("etl_job")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log_date", type=date.fromisoformat, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--logs_table", default="hardware_logs")
    parser.add_argument("--customers_table", default="customers")
    parser.add_argument("--sales_table", default="sales")
    parser.add_argument("--processed_path", required=True)
    parser.add_argument("--quarantine_path", required=True)
    parser.add_argument("--reference_quarantine_path", default=None)
    parser.add_argument("--activity_path", default=None)
    parser.add_argument("--audit_path", required=True)
    parser.add_argument("--alerts_table", default="alerts")
    parser.add_argument("--alerts_path", default=None)
    parser.add_argument("--alerts_quarantine_path", default=None)
    parser.add_argument("--JOB_RUN_ID", default=None)
    # Glue passes many options of its own (--TempDir, --enable-metrics, --job-language, ...).
    args, _ = parser.parse_known_args(argv)
    if bool(args.alerts_path) != bool(args.alerts_quarantine_path):
        parser.error("--alerts_path and --alerts_quarantine_path go together")
    return args


def find_inputs(args: argparse.Namespace) -> EtlInputs:
    """Day D's log files and the reference tables' files, located through the Glue Data Catalog."""
    logs = catalog.partition_location(args.database, args.logs_table, [args.log_date.isoformat()])
    customers = catalog.table_location(args.database, args.customers_table)
    sales = catalog.table_location(args.database, args.sales_table)
    return EtlInputs(
        log_files=storage.list_files(logs, ".csv"),
        customer_files=storage.list_files(customers, ".csv"),
        sale_files=storage.list_files(sales, ".csv"),
    )


def find_alert_files(args: argparse.Namespace) -> list[str]:
    """Day D's alert files; none when the catalog has no alerts partition of D (a normal day)."""
    try:
        location = catalog.partition_location(args.database, args.alerts_table, [args.log_date.isoformat()])
    except storage.JobInputError as error:
        # The crawler adds an alerts partition only for a day with alert files: a normal day.
        log.info("zero alerts for %s: no alerts partition of that day in the catalog (%s)", args.log_date, error)
        return []
    return storage.list_files(location, ".json")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # py4j logs at INFO while the interpreter exits, after the error line: the run's error must stay
    # the last line the script writes, which Glue reports as its ErrorMessage.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        inputs = find_inputs(args)
        # Schema drift fails the run before a Spark session starts and before anything is written,
        # the alerts of the day included.
        check_inputs(inputs)
        alert_files = find_alert_files(args) if args.alerts_path else None
    except storage.JobInputError as error:
        # One clear line: it becomes the Glue run's ErrorMessage.
        raise SystemExit(f"{type(error).__name__}: {error}") from None
    outputs = EtlOutputs(
        args.processed_path, args.quarantine_path, args.audit_path, args.reference_quarantine_path, args.activity_path
    )
    spark = SparkSession.builder.appName(f"hardware-correlation-etl-{args.log_date}").getOrCreate()
    try:
        # The alerts run beside the logs, in the same session: on a small day most of each one's time
        # is its Spark jobs' start-up and storage round trips, which overlap (a sample day's ETL job:
        # 25 s instead of 29, local stack). run_etl writes audit.json last, once the alerts are done
        # too: withdrawn until then, it says the day is incomplete.
        with ThreadPoolExecutor(max_workers=1) as pool:
            alerts_done = None
            if alert_files is not None:
                # Withdrawn before the alerts start writing; run_etl withdraws it itself otherwise.
                storage.delete_file(outputs.audit_file(args.log_date))
                alerts_done = pool.submit(
                    run_alerts,
                    spark,
                    args.log_date,
                    AlertInputs(alert_files, inputs.customer_files, inputs.sale_files),
                    AlertOutputs(args.alerts_path, args.alerts_quarantine_path, args.audit_path),
                    args.JOB_RUN_ID,
                ).result
            audit = run_etl(spark, args.log_date, inputs, outputs, args.JOB_RUN_ID, before_audit=alerts_done)
    except storage.JobInputError as error:
        raise SystemExit(f"{type(error).__name__}: {error}") from None
    finally:
        spark.stop()
    log.info("audit for %s: %s", args.log_date, audit)


if __name__ == "__main__":
    main()
