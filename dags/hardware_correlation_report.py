"""
### hardware_correlation_report

The answer to the pipeline's question, over every loaded day: error rates by industry and hardware
age, a Poisson model of errors per device-day on industry and age with intervals cluster-robust by
device (errors cluster in faulty units), how concentrated errors are, Spearman's rank correlation, the
pictures and a one-paragraph answer (docs/contract.md, section 6).

Scheduled on the `device_day_activity` asset, which the daily DAG's **swap_day_into_warehouse**
updates whenever a day is swapped in:

1. **wait_for_daily_runs** waits until no run of `hardware_correlation` is queued or running, so that
   a backfill's days all land before the report is built.
2. **build_report** reads `device_day_activity` and writes the report to
   `s3://PROCESSED_BUCKET/reports/<run id>/` and `reports/latest/`; its log names both. When
   `reports/latest/` already describes the warehouse as it is (the same days, swapped in at the same
   times), it writes nothing and says so.

With `max_active_runs=1`, the asset events of the days that land while a report run is active wait
for it and start one more run together, which finds the report up to date: a backfill of 30 days
gives one report, not 30.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from include import settings as pipeline_settings
from include.assets import DEVICE_DAY_ACTIVITY
from include.task_defaults import task_defaults

SETTINGS = pipeline_settings.load()
DAILY_DAG_ID = "hardware_correlation"
REPORTS_PREFIX = "reports"


@task.sensor(poke_interval=60, timeout=12 * 3600, mode="reschedule", execution_timeout=timedelta(minutes=5))
def wait_for_daily_runs() -> bool:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    return RuntimeTaskInstance.get_dr_count(dag_id=DAILY_DAG_ID, states=["queued", "running"]) == 0


@task(execution_timeout=timedelta(minutes=30))
def build_report(run_id=None) -> dict:
    import json
    import logging
    import re
    import tempfile
    from pathlib import Path

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowSkipException

    from include import report

    log = logging.getLogger(__name__)
    bucket = SETTINGS.PROCESSED_BUCKET
    s3 = S3Hook(aws_conn_id=SETTINGS.AWS_CONN_ID)
    latest = f"{REPORTS_PREFIX}/latest"
    connection = PostgresHook(postgres_conn_id=SETTINGS.WAREHOUSE_CONN_ID).get_conn()
    try:
        with tempfile.TemporaryDirectory() as folder:
            summary = report.build(connection, folder)
            if s3.check_for_key(f"{latest}/summary.json", bucket):
                previous = json.loads(s3.read_key(f"{latest}/summary.json", bucket))
                same_range = (previous.get("first_day"), previous.get("last_day")) == (
                    summary["first_day"], summary["last_day"]
                )
                if same_range and previous.get("warehouse_state") == summary["warehouse_state"]:
                    raise AirflowSkipException(
                        f"s3://{bucket}/{latest}/ already reports the warehouse as it is: "
                        f"days {summary['first_day']} to {summary['last_day']}, {summary['warehouse_state']}"
                    )
            run_folder = f"{REPORTS_PREFIX}/{re.sub(r'[^A-Za-z0-9._-]+', '_', run_id)}"
            # The run's folder first: `latest/` only ever points at a complete report.
            for prefix in (run_folder, latest):
                for name in report.FILES:
                    s3.load_file(str(Path(folder) / name), f"{prefix}/{name}", bucket, replace=True)
    finally:
        connection.close()
    log.info(
        "report of %s to %s: s3://%s/%s/report.html", summary["first_day"], summary["last_day"], bucket, run_folder
    )
    log.info("latest report: s3://%s/%s/report.html", bucket, latest)
    log.info("answer: %s", summary["answer"])
    return {"report": f"s3://{bucket}/{run_folder}/", "latest": f"s3://{bucket}/{latest}/"}


@dag(
    schedule=[DEVICE_DAY_ACTIVITY],
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=task_defaults(SETTINGS, execution_timeout=timedelta(minutes=30)),
    tags=["report", "warehouse"],
)
def hardware_correlation_report():
    wait_for_daily_runs() >> build_report()


hardware_correlation_report()
