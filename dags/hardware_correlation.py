"""
### hardware_correlation

Is there a correlation between hardware errors, the client's industry and the age of the hardware?

Each run processes one UTC day D of device logs: its data interval, [D, D+1). Templates use
`data_interval_start`, which is D for scheduled runs, backfills and manual runs alike (a manual run's
logical date is the end of the interval it processes):

1. **deploy_glue_scripts** uploads `glue_scripts/` to the artifacts bucket under a content-hash
   version prefix (nothing is uploaded when that version is already there).
2. **wait_for_*** sensors wait for day D's `hardware_logs/dt=D/` partition, `customers/` and `sales/`.
3. The Glue crawler is created or updated, then run, to catalog the raw zone.
4. **run_etl_job** (Glue) filters errors, matches each to the sale in force and its customer,
   computes the hardware's age at the error, writes Parquet (errors and device-days), quarantine and
   the day's audit counts;
   the same for day D's alerts (`alerts/dt=D/`, when there are any). A run that failed on its input
   (a drifted header) is not retried: a retry would read the same files.
5. **run_load_job** (Glue) copies day D's Parquet into per-day staging tables in PostgreSQL.
6. **check_staging** compares the staged rows with the ETL's counts, then **swap_day_into_warehouse**
   replaces day D of `hardware_error_analysis`, `hardware_alerts`, `device_day_activity` (the
   exposure: device-days with their events and errors) and its `pipeline_run_audit` row in one
   transaction, and updates the `device_day_activity` asset, on which the report DAG
   `hardware_correlation_report` is scheduled.
7. **verify_*** checks the warehouse rows of day D; a failed check fails the run.

Backfills are explicit (`catchup=False`): `airflow backfill create --dag-id hardware_correlation ...`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.amazon.aws.operators.glue_crawler import (
    GlueCrawlerCreateOperator,
    GlueCrawlerRunOperator,
    GlueCrawlerUpdateOperator,
)
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.common.sql.operators.sql import (
    SQLCheckOperator,
    SQLColumnCheckOperator,
    SQLExecuteQueryOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import CronDataIntervalTimetable, chain, dag, task

from include import settings as pipeline_settings
from include.assets import DEVICE_DAY_ACTIVITY
from include.task_failure import log_task_failure
from plugins.glue_job_operator import FailFastGlueJobOperator

SETTINGS = pipeline_settings.load()
SQL_DIR = Path(__file__).resolve().parent.parent / "include" / "sql"
RAW = f"s3://{SETTINGS.RAW_BUCKET}"
PROCESSED = f"s3://{SETTINGS.PROCESSED_BUCKET}"
STAGING_TABLE = "staging.hardware_error_analysis_{{ data_interval_start | ds_nodash }}"
ALERTS_STAGING_TABLE = "staging.hardware_alerts_{{ data_interval_start | ds_nodash }}"
ACTIVITY_STAGING_TABLE = "staging.device_day_activity_{{ data_interval_start | ds_nodash }}"
AUDIT_COUNTS = (
    "input_rows", "malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded",
    "rejected_sales", "rejected_customers",
)
ALERT_COUNTS = (
    "alert_input_rows", "alert_malformed", "alert_duplicates", "alert_no_sale", "alert_unknown_customer", "alert_loaded"
)
GLUE_POLL_SECONDS = SETTINGS.number("GLUE_POLL_SECONDS")
GLUE_TIMEOUT_MINUTES = SETTINGS.number("GLUE_JOB_TIMEOUT_MINUTES")


CRAWLER_CONFIG = {
    "Name": SETTINGS.CRAWLER_NAME,
    "Role": SETTINGS.CRAWLER_ROLE_NAME,
    "DatabaseName": SETTINGS.GLUE_DATABASE,
    "Targets": {
        "S3Targets": [{"Path": f"{RAW}/{folder}/"} for folder in ("customers", "sales", "hardware_logs", "alerts")]
    },
    "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"},
}
ETL_ARGS = {
    "--database": SETTINGS.GLUE_DATABASE,
    "--processed_path": f"{PROCESSED}/hardware_error_analysis/",
    "--quarantine_path": f"{PROCESSED}/quarantine/hardware_logs/",
    "--reference_quarantine_path": f"{PROCESSED}/quarantine/reference/",
    "--audit_path": f"{PROCESSED}/audit/",
    "--alerts_table": "alerts",
    "--alerts_path": f"{PROCESSED}/hardware_alerts/",
    "--alerts_quarantine_path": f"{PROCESSED}/quarantine/alerts/",
    "--activity_path": f"{PROCESSED}/device_day_activity/",
}
LOAD_ARGS = {
    "--processed_path": f"{PROCESSED}/hardware_error_analysis/",
    "--connection_name": SETTINGS.GLUE_WAREHOUSE_CONNECTION,
    "--staging_table": STAGING_TABLE,
    "--alerts_path": f"{PROCESSED}/hardware_alerts/",
    "--alerts_staging_table": ALERTS_STAGING_TABLE,
    "--activity_path": f"{PROCESSED}/device_day_activity/",
    "--activity_staging_table": ACTIVITY_STAGING_TABLE,
}

# Checks of day D in the warehouse once it is swapped in; a failed check fails the run.
DAY = "log_date = '{{ data_interval_start | ds }}'"
COLUMN_CHECKS = {
    "log_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
    "device_id": {"null_check": {"equal_to": 0}},
    "sale_id": {"null_check": {"equal_to": 0}},
    "customer_id": {"null_check": {"equal_to": 0}},
    "days_since_sale": {"null_check": {"equal_to": 0}, "min": {"geq_to": 0}},
}
AUDIT_CHECKS = {
    "one_audit_row": {"check_statement": "COUNT(*) = 1"},
    "audit_equation": {
        "check_statement": "SUM(input_rows) = SUM(malformed + duplicates + non_error"
        " + no_sale + unknown_customer + loaded)"
    },
    "rows_match_etl": {
        "check_statement": f"SUM(loaded) = (SELECT COUNT(*) FROM hardware_error_analysis WHERE {DAY})"
    },
    "alert_audit_equation": {
        "check_statement": "SUM(alert_input_rows) = SUM(alert_malformed + alert_duplicates"
        " + alert_no_sale + alert_unknown_customer + alert_loaded)"
    },
    "alerts_match_etl": {
        "check_statement": f"SUM(alert_loaded) = (SELECT COUNT(*) FROM hardware_alerts WHERE {DAY})"
    },
    # The exposure holds every loaded error of the day, and no other: rates divide the right counts.
    "activity_errors_match_loaded": {
        "check_statement": f"SUM(loaded) = (SELECT COALESCE(SUM(errors), 0) FROM device_day_activity WHERE {DAY})"
    },
}


def _glue_job_kwargs(extra_py_files, connections: list[str] | None = None) -> dict:
    kwargs = {
        # A string: the hook rejects a float version, and "5.0" is Glue 5 (Spark 3.5, Java 17).
        "GlueVersion": SETTINGS.GLUE_VERSION,
        # Both set, or the hook sizes the job by DPUs (10 by default).
        "WorkerType": SETTINGS.GLUE_WORKER_TYPE,
        "NumberOfWorkers": SETTINGS.number("GLUE_NUMBER_OF_WORKERS"),
        "Timeout": GLUE_TIMEOUT_MINUTES,
        "ExecutionProperty": {"MaxConcurrentRuns": SETTINGS.number("GLUE_MAX_CONCURRENT_RUNS")},
        "DefaultArguments": {
            "--job-language": "python",
            "--extra-py-files": extra_py_files,
            "--enable-continuous-cloudwatch-log": "true",
        },
    }
    if connections:
        kwargs["Connections"] = {"Connections": connections}
    return kwargs


def _glue_job(task_id: str, job_name: str, role: str, script_location, extra_py_files, script_args: dict, **kwargs):
    # A run that failed on its input (a drifted header) fails the task at once: a retry cannot help.
    return FailFastGlueJobOperator(
        task_id=task_id,
        job_name=job_name,
        script_location=script_location,
        script_args={"--log_date": "{{ data_interval_start | ds }}", **script_args},
        iam_role_name=role,
        s3_bucket=SETTINGS.ARTIFACTS_BUCKET,
        update_config=True,
        concurrent_run_limit=SETTINGS.number("GLUE_MAX_CONCURRENT_RUNS"),
        # Deferred tasks count towards this limit, so however many days a backfill runs at once,
        # Airflow never starts more runs of the job than Glue accepts (ConcurrentRunsExceeded).
        max_active_tis_per_dag=SETTINGS.number("GLUE_MAX_CONCURRENT_RUNS"),
        verbose=True,
        stop_job_run_on_kill=True,
        # Deferred: the worker slot is free while Glue runs. A reprocessed (cleared) day always
        # submits a new run: on this path the provider reattaches only to a run still active.
        deferrable=True,
        waiter_delay=GLUE_POLL_SECONDS,
        waiter_max_attempts=GLUE_TIMEOUT_MINUTES * 60 // GLUE_POLL_SECONDS + 10,
        execution_timeout=timedelta(minutes=GLUE_TIMEOUT_MINUTES + 10),
        **kwargs,
    )


def _raw_sensor(task_id: str, key: str, *, wildcard: bool = False) -> S3KeySensor:
    return S3KeySensor(
        task_id=task_id,
        bucket_key=f"{RAW}/{key}",
        wildcard_match=wildcard,
        aws_conn_id=SETTINGS.AWS_CONN_ID,
        # Reschedule: no worker slot is held between pokes, and the timeout is enforced everywhere
        # (also under `airflow dags test`, which runs deferred triggers without one).
        mode="reschedule",
        poke_interval=SETTINGS.number("SENSOR_POKE_SECONDS"),
        timeout=SETTINGS.number("SENSOR_TIMEOUT_SECONDS"),
        execution_timeout=timedelta(minutes=5),
    )


@task(execution_timeout=timedelta(minutes=10))
def deploy_glue_scripts() -> dict[str, str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include.glue_deploy import deploy

    s3 = S3Hook(aws_conn_id=SETTINGS.AWS_CONN_ID).get_conn()
    return deploy(s3, SETTINGS.ARTIFACTS_BUCKET).as_dict()


@task.branch
def create_or_update_crawler() -> str:
    from airflow.providers.amazon.aws.hooks.glue_crawler import GlueCrawlerHook

    exists = GlueCrawlerHook(aws_conn_id=SETTINGS.AWS_CONN_ID).has_crawler(SETTINGS.CRAWLER_NAME)
    return "update_crawler" if exists else "create_crawler"


@task
def collect_run_audit(
    etl_job_run_id: str, load_job_run_id: str, scripts_version: str, data_interval_start=None, run_id=None
) -> dict:
    """The ETL's counts for day D plus what traces the run: the row of `pipeline_run_audit`."""
    import json

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    log_date = data_interval_start.date().isoformat()
    s3 = S3Hook(aws_conn_id=SETTINGS.AWS_CONN_ID)
    counts = json.loads(
        s3.read_key(key=f"audit/log_date={log_date}/audit.json", bucket_name=SETTINGS.PROCESSED_BUCKET)
    )
    # Written by the same ETL run before audit.json: present whenever audit.json is.
    alert_counts = json.loads(
        s3.read_key(key=f"audit/log_date={log_date}/alerts.json", bucket_name=SETTINGS.PROCESSED_BUCKET)
    )
    return {
        **{name: int(counts[name]) for name in AUDIT_COUNTS},
        **{name: int(alert_counts[name]) for name in ALERT_COUNTS},
        # Not a column of pipeline_run_audit: check_staging compares the staged device-days with it.
        "device_days": int(counts["device_days"]),
        "log_date": log_date,
        "dag_run_id": run_id,
        "etl_job_run_id": etl_job_run_id,
        "load_job_run_id": load_job_run_id,
        "scripts_version": scripts_version,
    }


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # Early enough for any history a backfill may ask for: tasks do not run before it.
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=SETTINGS.number("GLUE_MAX_CONCURRENT_RUNS"),
    doc_md=__doc__,
    template_searchpath=[str(SQL_DIR)],
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(seconds=SETTINGS.number("RETRY_DELAY_SECONDS")),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=15),
        "on_failure_callback": log_task_failure,
        # A try that fails and is retried says why too: the provider's own error only gives the state.
        "on_retry_callback": log_task_failure,
        "aws_conn_id": SETTINGS.AWS_CONN_ID,
        "conn_id": SETTINGS.WAREHOUSE_CONN_ID,
    },
    tags=["glue", "warehouse"],
)
def hardware_correlation():
    deployed = deploy_glue_scripts()
    sensors = [
        _raw_sensor("wait_for_hardware_logs", "hardware_logs/dt={{ data_interval_start | ds }}/*.csv", wildcard=True),
        _raw_sensor("wait_for_customers", "customers/customers.csv"),
        _raw_sensor("wait_for_sales", "sales/sales.csv"),
    ]
    create_warehouse_tables = SQLExecuteQueryOperator(
        task_id="create_warehouse_tables",
        sql=sorted(f"ddl/{path.name}" for path in (SQL_DIR / "ddl").glob("*.sql")),
        # Two sessions creating the same new table at once collide in PostgreSQL's catalog (unique
        # violation on pg_type) despite IF NOT EXISTS: days running at once take turns here.
        max_active_tis_per_dag=1,
    )

    choose_crawler_step = create_or_update_crawler()
    create_crawler = GlueCrawlerCreateOperator(task_id="create_crawler", config=CRAWLER_CONFIG)
    update_crawler = GlueCrawlerUpdateOperator(task_id="update_crawler", config=CRAWLER_CONFIG)
    run_crawler = GlueCrawlerRunOperator(
        task_id="run_crawler",
        crawler_name=SETTINGS.CRAWLER_NAME,
        poll_interval=GLUE_POLL_SECONDS,
        # Concurrent runs of the DAG share the crawler: wait for a crawl already running rather than
        # failing, and start one crawl at a time from this DAG.
        fail_on_already_running=False,
        max_active_tis_per_dag=1,
        trigger_rule="none_failed_min_one_success",
        execution_timeout=timedelta(minutes=30),
    )

    etl = _glue_job(
        "run_etl_job",
        SETTINGS.ETL_JOB_NAME,
        SETTINGS.ETL_ROLE_NAME,
        deployed["etl_script"],
        deployed["extra_py_files"],
        ETL_ARGS,
        create_job_kwargs=_glue_job_kwargs(deployed["extra_py_files"]),
    )
    load = _glue_job(
        "run_load_job",
        SETTINGS.LOAD_JOB_NAME,
        SETTINGS.LOAD_ROLE_NAME,
        deployed["load_script"],
        deployed["extra_py_files"],
        LOAD_ARGS,
        create_job_kwargs=_glue_job_kwargs(deployed["extra_py_files"], [SETTINGS.GLUE_WAREHOUSE_CONNECTION]),
    )
    audit = collect_run_audit(etl.output, load.output, deployed["version"])

    check_staging = SQLCheckOperator(task_id="check_staging", sql="check_staging.sql")
    swap_day_into_warehouse = SQLExecuteQueryOperator(
        task_id="swap_day_into_warehouse",
        sql="swap_day.sql",
        parameters=audit,
        # One statement per execute (psycopg prepares statements with parameters), all in one
        # transaction that the hook commits after the last one.
        split_statements=True,
        autocommit=False,
        # The report DAG is scheduled on this asset: it runs after days are swapped in.
        outlets=[DEVICE_DAY_ACTIVITY],
    )
    verify_columns = SQLColumnCheckOperator(
        task_id="verify_columns", table="hardware_error_analysis", partition_clause=DAY, column_mapping=COLUMN_CHECKS
    )
    verify_counts = SQLTableCheckOperator(
        task_id="verify_counts", table="pipeline_run_audit", partition_clause=DAY, checks=AUDIT_CHECKS
    )

    chain(deployed, sensors, choose_crawler_step, [create_crawler, update_crawler], run_crawler, etl)
    chain([etl, create_warehouse_tables], load)
    chain(audit, check_staging, swap_day_into_warehouse, [verify_columns, verify_counts])


hardware_correlation()
