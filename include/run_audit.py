"""The row of `pipeline_run_audit` (docs/contract.md, section 4) that a DAG run writes for its day.

The Airflow side names the audit's columns here only: `collect_run_audit` builds the row from them,
`include/sql/swap_day.sql` renders its INSERT from `AUDIT_COLUMNS`, and the tests check the table's
DDL and the Glue ETL's audit keys against them (the Glue package, a deployment unit of its own, keeps
its own copy of the keys).
"""

from __future__ import annotations

import json

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException

from include import settings as pipeline_settings
from include.run_scope import run_key

# The day's log rows by outcome (docs/contract.md, section 3), in the contract's order: input_rows
# equals the sum of the others.
LOG_COUNTS = ("input_rows", "malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded")
# The day's alerts by outcome, in the same way.
ALERT_COUNTS = (
    "alert_input_rows", "alert_malformed", "alert_duplicates", "alert_no_sale", "alert_unknown_customer",
    "alert_loaded",
)
# Sales and customers rows the run could not match with; outside the audit equation.
REFERENCE_COUNTS = ("rejected_sales", "rejected_customers")
# What traces the run; finished_at is the swap's own clock (now() in the swap's transaction).
TRACE_COLUMNS = ("dag_run_id", "etl_job_run_id", "load_job_run_id", "scripts_version")
AUDIT_COLUMNS = ("log_date", *LOG_COUNTS, *ALERT_COUNTS, *REFERENCE_COUNTS, *TRACE_COLUMNS)


def _read_json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.read_key(key=key, bucket_name=bucket))


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

    settings = pipeline_settings.load()
    log_date = data_interval_start.date().isoformat()
    folder = f"audit/run={run_key(run_id)}/log_date={log_date}"
    s3 = S3Hook(aws_conn_id=settings.AWS_CONN_ID)
    counts = _read_json(s3, settings.PROCESSED_BUCKET, f"{folder}/audit.json")
    # Written by the same ETL run before audit.json: present whenever audit.json is.
    alert_counts = _read_json(s3, settings.PROCESSED_BUCKET, f"{folder}/alerts.json")
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
    glue = GlueJobHook(aws_conn_id=settings.AWS_CONN_ID).conn
    for job_name, glue_run_id, script in (
        (settings.ETL_JOB_NAME, etl_job_run_id, deployed["etl_script"]),
        (settings.LOAD_JOB_NAME, load_job_run_id, deployed["load_script"]),
    ):
        arguments = glue.get_job_run(JobName=job_name, RunId=glue_run_id)["JobRun"].get("Arguments", {})
        ran = (arguments.get("--scriptLocation"), arguments.get("--extra-py-files"))
        if ran != (script, deployed["extra_py_files"]):
            raise AirflowFailException(
                f"Glue job {job_name} run {glue_run_id} ran {ran}, not scripts version {deployed['version']}"
            )
    return {
        **{name: int(counts[name]) for name in (*LOG_COUNTS, *REFERENCE_COUNTS)},
        **{name: int(alert_counts[name]) for name in ALERT_COUNTS},
        # Not a column of pipeline_run_audit: check_staging compares the staged device-days with it.
        "device_days": int(counts["device_days"]),
        "log_date": log_date,
        "dag_run_id": run_id,
        "etl_job_run_id": etl_job_run_id,
        "load_job_run_id": load_job_run_id,
        "scripts_version": counts["scripts_version"],
    }
