"""
### hardware_correlation

Is there a correlation between hardware errors, the client's industry and the age of the hardware?

Each run processes one UTC day D of device logs: its data interval, [D, D+1), which templates read
as `data_interval_start`. Its logical date is D, whoever starts it (`include/log_day_timetable.py`):
to run day D by hand, trigger it with logical date D, 00:00 UTC. A logical date later in a day (the
Trigger form's default is now) runs the latest complete day, yesterday. To rerun a day that already
has a run, clear that run in the grid (a second trigger at the same logical date is refused).

1. **check_log_day** fails the run at once when the Trigger form's optional *log_day* is another day
   than D (the logical date picked the wrong day), or when the run has no logical date, hence no day.
2. **deploy_glue_scripts** uploads `glue_scripts/` to the artifacts bucket under a content-hash
   version prefix (nothing is uploaded when that version is already there).
3. **wait_for_*** sensors wait for day D's `hardware_logs/dt=D/` partition, `customers/` and `sales/`.
4. The Glue crawler is created or updated, then run, to catalog the raw zone.
5. **run_etl_job** (Glue) filters errors, matches each to the sale in force and its customer,
   computes the hardware's age at the error, writes Parquet (errors and device-days), quarantine and
   the day's audit counts;
   the same for day D's alerts (`alerts/dt=D/`, when there are any). A run that failed on its input
   (a drifted header) is not retried: a retry would read the same files.
6. **run_load_job** (Glue) copies day D's Parquet into the run's staging tables in PostgreSQL.
7. **check_staging** compares the staged rows with the ETL's counts, then **swap_day_into_warehouse**
   replaces day D of `hardware_error_analysis`, `hardware_alerts`, `device_day_activity` (the
   exposure: device-days with their events and errors) and its `pipeline_run_audit` row in one
   transaction, and updates the `device_day_activity` asset, on which the report DAG
   `hardware_correlation_report` is scheduled.
8. **verify_*** checks the warehouse rows of day D; a failed check fails the run.

Backfills are explicit (`catchup=False`): `airflow backfill create --dag-id hardware_correlation ...`.

Runs may overlap, two runs of the same day D included (the run at logical date D, and a manual run
triggered the day after with the form's default logical date). What one run writes before the swap is
its own: the ETL's folders (`<output>/run=<key>/`) and the staging tables
(`staging.<table>_YYYYMMDD_<key>`) carry a key of the run (`include/run_scope.py`), and each Glue run
is started with its own scripts version. The swaps of day D take turns (an advisory lock on D), so
day D ends up holding exactly one complete run's rows and audit row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerRunOperator
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.common.sql.operators.sql import (
    SQLCheckOperator,
    SQLColumnCheckOperator,
    SQLExecuteQueryOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import Param, chain, dag, task
from airflow.sdk.exceptions import AirflowFailException

from include import settings as pipeline_settings
from include.assets import DEVICE_DAY_ACTIVITY
from include.log_day_timetable import LogDayTimetable
from include.run_scope import run_key
from include.task_defaults import task_defaults
from plugins.glue_job_operator import FailFastGlueJobOperator

SETTINGS = pipeline_settings.load()
SQL_DIR = Path(__file__).resolve().parent.parent / "include" / "sql"
RAW = f"s3://{SETTINGS.RAW_BUCKET}"
PROCESSED = f"s3://{SETTINGS.PROCESSED_BUCKET}"
# What a run writes before the swap is the run's own (see include/run_scope.py).
RUN = "run={{ run_id | run_key }}"
STAGING_TABLE = "staging.hardware_error_analysis_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}"
ALERTS_STAGING_TABLE = "staging.hardware_alerts_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}"
ACTIVITY_STAGING_TABLE = "staging.device_day_activity_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}"
AUDIT_COUNTS = (
    "input_rows", "malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded",
    "rejected_sales", "rejected_customers",
)
ALERT_COUNTS = (
    "alert_input_rows", "alert_malformed", "alert_duplicates", "alert_no_sale", "alert_unknown_customer", "alert_loaded"
)
# Its description is the one place in the Trigger form that says which day a run processes.
LOG_DAY_PARAM = Param(
    None,
    type=["null", "string"],
    format="date",
    title="Log day (optional check)",
    description=(
        "A run processes one UTC log day, the one its Logical Date names: 00:00 of day D runs D. "
        "Any later time of a day runs the latest complete day (left at its default, now: yesterday). "
        "To run 2025-10-01, set the Logical Date to 2025-10-01 00:00. Enter the day here as well, and a "
        "run whose Logical Date names another day fails at once, before any work."
    ),
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
    "--processed_path": f"{PROCESSED}/hardware_error_analysis/{RUN}/",
    "--quarantine_path": f"{PROCESSED}/quarantine/hardware_logs/{RUN}/",
    "--reference_quarantine_path": f"{PROCESSED}/quarantine/reference/{RUN}/",
    "--audit_path": f"{PROCESSED}/audit/{RUN}/",
    "--alerts_table": "alerts",
    "--alerts_path": f"{PROCESSED}/hardware_alerts/{RUN}/",
    "--alerts_quarantine_path": f"{PROCESSED}/quarantine/alerts/{RUN}/",
    "--activity_path": f"{PROCESSED}/device_day_activity/{RUN}/",
}
LOAD_ARGS = {
    "--processed_path": f"{PROCESSED}/hardware_error_analysis/{RUN}/",
    "--connection_name": SETTINGS.GLUE_WAREHOUSE_CONNECTION,
    "--staging_table": STAGING_TABLE,
    "--alerts_path": f"{PROCESSED}/hardware_alerts/{RUN}/",
    "--alerts_staging_table": ALERTS_STAGING_TABLE,
    "--activity_path": f"{PROCESSED}/device_day_activity/{RUN}/",
    "--activity_staging_table": ACTIVITY_STAGING_TABLE,
    # Glue's own scratch folder: the load job stages its COPY files there (the template's tmp/ prefix,
    # the one place of the processed bucket the load role may write).
    "--TempDir": f"{PROCESSED}/tmp/",  # noqa: S108 - an S3 prefix, not the local /tmp
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


@task(execution_timeout=timedelta(minutes=5))
def check_log_day(params=None, data_interval_start=None, logical_date=None) -> None:
    """Stop a run that would process another day than the one its trigger asked for, or no day."""
    if data_interval_start is None:
        raise AirflowFailException(
            "this run has no logical date, so no log day to process: trigger day D with logical date D, 00:00 UTC"
        )
    day = data_interval_start.date().isoformat()
    asked = (params or {}).get("log_day")
    if asked and asked != day:
        raise AirflowFailException(
            f"log_day {asked} was asked for, but logical date {logical_date.isoformat()} runs log day {day}: "
            f"trigger {asked} with logical date {asked}, 00:00 UTC"
        )


@task(execution_timeout=timedelta(minutes=10))
def deploy_glue_scripts() -> dict[str, str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include.glue_deploy import deploy

    s3 = S3Hook(aws_conn_id=SETTINGS.AWS_CONN_ID).get_conn()
    return deploy(s3, SETTINGS.ARTIFACTS_BUCKET).as_dict()


@task
def create_or_update_crawler() -> None:
    """Make the crawler match CRAWLER_CONFIG, however many runs do the same at once.

    Runs starting together on a new deployment all find no crawler: the ones that lose the race to
    create it update it instead. A crawler that is crawling cannot be updated; the update waits for
    the crawl (the task's execution_timeout bounds the wait).
    """
    import time

    from airflow.providers.amazon.aws.hooks.glue_crawler import GlueCrawlerHook
    from botocore.exceptions import ClientError

    hook = GlueCrawlerHook(aws_conn_id=SETTINGS.AWS_CONN_ID)
    if not hook.has_crawler(SETTINGS.CRAWLER_NAME):
        try:
            hook.create_crawler(**CRAWLER_CONFIG)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "AlreadyExistsException":
                raise
    while True:
        try:
            # Compares first: an unchanged crawler is not updated, so a crawl in progress is no bar.
            hook.update_crawler(**CRAWLER_CONFIG)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "CrawlerRunningException":
                raise
        time.sleep(GLUE_POLL_SECONDS)


def _read_json(s3, key: str) -> dict:
    import json

    return json.loads(s3.read_key(key=key, bucket_name=SETTINGS.PROCESSED_BUCKET))


@task
def collect_run_audit(
    etl_job_run_id: str, load_job_run_id: str, deployed: dict, data_interval_start=None, run_id=None
) -> dict:
    """The ETL's counts for day D plus what traces the run: the row of `pipeline_run_audit`.

    Checked first: the counts are those of the ETL run this DAG run waited for, and both Glue runs
    executed the scripts version this DAG run deployed. A mismatch fails the run without retries:
    the outputs it would load are not its own.
    """
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    log_date = data_interval_start.date().isoformat()
    folder = f"audit/run={run_key(run_id)}/log_date={log_date}"
    s3 = S3Hook(aws_conn_id=SETTINGS.AWS_CONN_ID)
    counts = _read_json(s3, f"{folder}/audit.json")
    # Written by the same ETL run before audit.json: present whenever audit.json is.
    alert_counts = _read_json(s3, f"{folder}/alerts.json")
    for name, record in (("audit.json", counts), ("alerts.json", alert_counts)):
        if record.get("job_run_id") != etl_job_run_id:
            raise AirflowFailException(
                f"{folder}/{name} was written by Glue run {record.get('job_run_id')}, not by this run's ETL "
                f"run {etl_job_run_id}"
            )
    if counts.get("scripts_version") != deployed["version"]:
        raise AirflowFailException(
            f"ETL run {etl_job_run_id} ran scripts version {counts.get('scripts_version')}, not the version "
            f"this run deployed ({deployed['version']})"
        )
    glue = GlueJobHook(aws_conn_id=SETTINGS.AWS_CONN_ID).conn
    for job_name, glue_run_id, script in (
        (SETTINGS.ETL_JOB_NAME, etl_job_run_id, deployed["etl_script"]),
        (SETTINGS.LOAD_JOB_NAME, load_job_run_id, deployed["load_script"]),
    ):
        arguments = glue.get_job_run(JobName=job_name, RunId=glue_run_id)["JobRun"].get("Arguments", {})
        ran = (arguments.get("--scriptLocation"), arguments.get("--extra-py-files"))
        if ran != (script, deployed["extra_py_files"]):
            raise AirflowFailException(
                f"Glue job {job_name} run {glue_run_id} ran {ran}, not scripts version {deployed['version']}"
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
        "scripts_version": counts["scripts_version"],
    }


@dag(
    # A manual run at D 00:00 processes day D, as the scheduled and backfill runs of D do: one logical
    # date per log day, whoever starts the run.
    schedule=LogDayTimetable(),
    # Early enough for any history a backfill may ask for: tasks do not run before it.
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=SETTINGS.number("GLUE_MAX_CONCURRENT_RUNS"),
    doc_md=__doc__,
    template_searchpath=[str(SQL_DIR)],
    user_defined_filters={"run_key": run_key},
    default_args=task_defaults(SETTINGS, aws_conn_id=SETTINGS.AWS_CONN_ID, conn_id=SETTINGS.WAREHOUSE_CONN_ID),
    tags=["glue", "warehouse"],
    params={"log_day": LOG_DAY_PARAM},
)
def hardware_correlation():
    checked = check_log_day()
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

    set_up_crawler = create_or_update_crawler()
    run_crawler = GlueCrawlerRunOperator(
        task_id="run_crawler",
        crawler_name=SETTINGS.CRAWLER_NAME,
        poll_interval=GLUE_POLL_SECONDS,
        # Concurrent runs of the DAG share the crawler: wait for a crawl already running rather than
        # failing, and start one crawl at a time from this DAG.
        fail_on_already_running=False,
        max_active_tis_per_dag=1,
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
    audit = collect_run_audit(etl.output, load.output, deployed)

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

    chain(checked, [deployed, create_warehouse_tables])
    chain(deployed, sensors, set_up_crawler, run_crawler, etl)
    chain([etl, create_warehouse_tables], load)
    chain(audit, check_staging, swap_day_into_warehouse, [verify_columns, verify_counts])


hardware_correlation()
