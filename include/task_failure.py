"""The DAG's failure callback: say in the task log what failed, in the terms of the failed step."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def glue_job_run(task, ti) -> dict | None:
    """Glue's record of the job run the task started (GetJobRun), or None when there is none."""
    job_name = getattr(task, "job_name", None)
    run_id = ti.xcom_pull(task_ids=ti.task_id, key="glue_job_run_id")
    if not job_name or not run_id:
        return None
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook

    return GlueJobHook(aws_conn_id=task.aws_conn_id).conn.get_job_run(JobName=job_name, RunId=run_id)["JobRun"]


def _glue_run_error(task, ti) -> str | None:
    """The Glue job run id and Glue's error message, when the failed task ran a Glue job."""
    try:
        run = glue_job_run(task, ti)
    except Exception as error:  # the callback must report, never raise
        return f"Glue job {task.job_name} run: state unknown ({error})"
    if run is None:
        return None
    return (
        f"Glue job {task.job_name} run {run['Id']} ended {run.get('JobRunState')}: "
        f"{run.get('ErrorMessage') or 'no error message'}"
    )


def _crawl_error(task) -> str | None:
    """The crawler's last crawl and its error, when the failed task ran a Glue crawler: the provider's
    waiter only says that the crawl ended FAILED, not why."""
    crawler_name = getattr(task, "crawler_name", None)
    if not crawler_name:
        return None
    from airflow.providers.amazon.aws.hooks.glue_crawler import GlueCrawlerHook

    try:
        crawl = GlueCrawlerHook(aws_conn_id=task.aws_conn_id).get_crawler(crawler_name).get("LastCrawl", {})
    except Exception as error:  # the callback must report, never raise
        return f"Glue crawler {crawler_name}: state unknown ({error})"
    return (
        f"Glue crawler {crawler_name}: last crawl {crawl.get('Status', 'unknown')}: "
        f"{crawl.get('ErrorMessage') or 'no error message'}"
    )


def failure_detail(task, ti) -> str | None:
    """Why the task failed in the failed step's terms, when the step is Glue's or a sensor's."""
    detail = _glue_run_error(task, ti) or _crawl_error(task)
    if detail is None and hasattr(task, "bucket_key"):
        detail = f"raw data never arrived: no object matches {task.bucket_key}"
    return detail


def log_task_failure(context) -> None:
    ti, task = context["ti"], context["task"]
    detail = failure_detail(task, ti)
    _keep_failure_line(ti, detail or context.get("exception"))
    log.error(
        "Task %s of %s failed (try %s) for log day %s: %s",
        ti.task_id,
        ti.dag_id,
        ti.try_number,
        context["data_interval_start"].date() if context.get("data_interval_start") else None,
        detail or context.get("exception"),
    )


def _keep_failure_line(ti, error) -> None:
    """The try's first error line in XCom, for the run's failure message (include/notifications.py):
    the DAG's failure callback runs elsewhere and never sees the exception."""
    from include.notifications import FAILURE_LINE_KEY, first_line

    try:
        ti.xcom_push(key=FAILURE_LINE_KEY, value=first_line(error))
    except Exception:  # the callback must report, never raise
        log.exception("Could not keep the failure line of %s", ti.task_id)
