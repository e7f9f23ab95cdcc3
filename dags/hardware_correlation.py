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
4. **run_crawler** runs the Glue crawler over the raw zone, to catalog day D's partition. The
   crawler and both Glue jobs are defined in `infrastructure/template.yaml` (workers, timeout,
   concurrency): this DAG runs them and cannot change them.
5. **run_etl_job** (Glue) filters errors, matches each to the sale in force and its customer,
   computes the hardware's age at the error, writes Parquet (errors and device-days), quarantine and
   the day's audit counts;
   the same for day D's alerts (`alerts/dt=D/`, when there are any). A run that failed on its input
   (a drifted header) is not retried: a retry would read the same files.
   A retry of a Glue task whose run is still going (its try failed polling it, or its worker was
   lost) takes that run over rather than starting a second one; a cleared task starts a new run.
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
names its own scripts version in its arguments, whatever the job's definition says. The swaps of
day D take turns (an advisory lock on D), so day D ends up holding exactly one complete run's rows and
audit row.

A run that fails after its retries sends one message to the SNS topic `FAILURE_TOPIC_ARN` (the failed
task, its Glue run, the first error line, the log), and so does a day not loaded by
`LOAD_DEADLINE_HOURS` after it ends; **drop_stale_staging_tables** drops the staging tables of failed
runs older than `STAGING_RETENTION_DAYS` (`include/notifications.py`, `include/housekeeping.py`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerRunOperator
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.common.sql.operators.sql import (
    SQLColumnCheckOperator,
    SQLExecuteQueryOperator,
    SQLTableCheckOperator,
)
from airflow.sdk import chain, dag

from include import settings as pipeline_settings
from include.assets import DEVICE_DAY_ACTIVITY
from include.glue_deploy import deploy_glue_scripts
from include.housekeeping import drop_stale_staging_tables_task
from include.log_day import LOG_DAY_PARAM, check_log_day
from include.log_day_timetable import LogDayTimetable
from include.notifications import load_deadline, notify_run_failed
from include.run_audit import AUDIT_COLUMNS, collect_run_audit
from include.run_scope import run_key, staging_table
from include.task_defaults import task_defaults
from include.warehouse_checks import AUDIT_CHECKS, COLUMN_CHECKS, DAY
from plugins.glue_job_operator import FailFastGlueJobOperator
from plugins.sql_check_operator import ParametrizedSQLCheckOperator

SETTINGS = pipeline_settings.load()
SQL_DIR = Path(__file__).resolve().parent.parent / "include" / "sql"
RAW = f"s3://{SETTINGS.RAW_BUCKET}"
PROCESSED = f"s3://{SETTINGS.PROCESSED_BUCKET}"
# What a run writes before the swap is the run's own (see include/run_scope.py).
RUN = "run={{ run_id | run_key }}"
GLUE_POLL_SECONDS = SETTINGS.number("GLUE_POLL_SECONDS")
# The template's GlueJobTimeoutMinutes and GlueMaxConcurrentRuns, as Airflow's environment repeats them.
GLUE_TIMEOUT_MINUTES = SETTINGS.number("GLUE_JOB_TIMEOUT_MINUTES")
GLUE_MAX_CONCURRENT_RUNS = SETTINGS.number("GLUE_MAX_CONCURRENT_RUNS")

ETL_ARGS = {
    "--database": SETTINGS.GLUE_DATABASE,
    # The crawler's tables, named here too so that the task's lineage reads the ones the job reads.
    "--logs_table": "hardware_logs",
    "--customers_table": "customers",
    "--sales_table": "sales",
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
    "--staging_table": "{{ staging_table('hardware_error_analysis', data_interval_start, run_id) }}",
    "--alerts_path": f"{PROCESSED}/hardware_alerts/{RUN}/",
    "--alerts_staging_table": "{{ staging_table('hardware_alerts', data_interval_start, run_id) }}",
    "--activity_path": f"{PROCESSED}/device_day_activity/{RUN}/",
    "--activity_staging_table": "{{ staging_table('device_day_activity', data_interval_start, run_id) }}",
    # Glue's own scratch folder: the load job stages its COPY files there (the template's tmp/ prefix,
    # the one place of the processed bucket the load role may write).
    "--TempDir": f"{PROCESSED}/tmp/",  # noqa: S108 - an S3 prefix, not the local /tmp
}
# The arguments that name what each job reads and writes for day D: the tasks' OpenLineage datasets
# (plugins/glue_job_lineage.py). The ETL's outputs are the load job's inputs, under the same names.
ETL_LINEAGE = {
    "lineage_inputs": ("--logs_table", "--customers_table", "--sales_table", "--alerts_table"),
    "lineage_outputs": (
        "--processed_path", "--activity_path", "--alerts_path", "--quarantine_path", "--alerts_quarantine_path",
        "--reference_quarantine_path", "--audit_path",
    ),
}
LOAD_LINEAGE = {
    "lineage_inputs": ("--processed_path", "--alerts_path", "--activity_path"),
    "lineage_outputs": ("--staging_table", "--alerts_staging_table", "--activity_staging_table"),
}


def _glue_job(
    task_id: str, job_name: str, script, deployed, script_args: dict, lineage: dict
) -> FailFastGlueJobOperator:
    # A run that failed on its input (a drifted header) fails the task at once: a retry cannot help.
    return FailFastGlueJobOperator(
        task_id=task_id,
        job_name=job_name,
        script_args={
            "--log_date": "{{ data_interval_start | ds }}",
            # The scripts version this DAG run deployed, named by the run itself (Glue's special
            # parameters override the job's script and package): runs of two versions at once each run
            # their own, and collect_run_audit checks that they did.
            "--scriptLocation": script,
            "--extra-py-files": deployed["extra_py_files"],
            **script_args,
        },
        # Deferred tasks count towards this limit, so however many days a backfill runs at once,
        # Airflow never starts more runs of the job than Glue accepts (ConcurrentRunsExceeded).
        max_active_tis_per_dag=GLUE_MAX_CONCURRENT_RUNS,
        verbose=True,
        # A try that Airflow stops while it runs on a worker (SIGTERM) stops its run first. A worker
        # that dies (SIGKILL, a lost machine) stops nothing: its retry takes the run over, as below.
        stop_job_run_on_kill=True,
        # The run's Spark gets this task's OpenLineage run as its parent (`--conf spark.openlineage.*`),
        # so that the Glue run's own lineage, where Spark's OpenLineage listener is on, hangs under it.
        openlineage_inject_parent_job_info=True,
        **lineage,
        # Deferred: the worker slot is free while Glue runs.
        deferrable=True,
        # One Glue run per task, whatever happens to Airflow: each run is tagged with its task instance
        # (--airflow_task_uuid) and a retry (after a failed poll, or a worker lost before the task
        # deferred) reattaches to the run of its task that is still starting or running, instead of
        # starting a second one beside it. Only a run still going is taken over: a reprocessed
        # (cleared) day always submits a new run.
        durable=True,
        waiter_delay=GLUE_POLL_SECONDS,
        waiter_max_attempts=GLUE_TIMEOUT_MINUTES * 60 // GLUE_POLL_SECONDS + 10,
        execution_timeout=timedelta(minutes=GLUE_TIMEOUT_MINUTES + 10),
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


@dag(
    # A manual run at D 00:00 processes day D, as the scheduled and backfill runs of D do: one logical
    # date per log day, whoever starts the run.
    schedule=LogDayTimetable(),
    # Early enough for any history a backfill may ask for: tasks do not run before it.
    start_date=datetime(2015, 1, 1),
    catchup=False,
    max_active_runs=GLUE_MAX_CONCURRENT_RUNS,
    doc_md=__doc__,
    template_searchpath=[str(SQL_DIR)],
    user_defined_filters={"run_key": run_key},
    user_defined_macros={"staging_table": staging_table, "audit_columns": AUDIT_COLUMNS},
    default_args=task_defaults(SETTINGS, aws_conn_id=SETTINGS.AWS_CONN_ID, conn_id=SETTINGS.WAREHOUSE_CONN_ID),
    tags=["glue", "warehouse"],
    params={"log_day": LOG_DAY_PARAM},
    # A person hears of a failed run, once, and of a day not loaded by its deadline
    # (include/notifications.py).
    on_failure_callback=notify_run_failed,
    deadline=load_deadline(SETTINGS),
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
    etl = _glue_job("run_etl_job", SETTINGS.ETL_JOB_NAME, deployed["etl_script"], deployed, ETL_ARGS, ETL_LINEAGE)
    load = _glue_job("run_load_job", SETTINGS.LOAD_JOB_NAME, deployed["load_script"], deployed, LOAD_ARGS, LOAD_LINEAGE)
    audit = collect_run_audit(etl.output, load.output, deployed)
    check_staging = ParametrizedSQLCheckOperator(task_id="check_staging", sql="check_staging.sql", parameters=audit)
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
    chain(deployed, sensors, run_crawler, etl)
    chain([etl, create_warehouse_tables], load)
    chain(audit, check_staging, swap_day_into_warehouse, [verify_columns, verify_counts])

    # Staging tables of old failed runs go (include/housekeeping.py); the day's own work does not wait.
    chain(create_warehouse_tables, drop_stale_staging_tables_task())


hardware_correlation()
