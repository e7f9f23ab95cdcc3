"""Messages to a person: one when a day's run fails after its retries, one when a day is not loaded
by its deadline. Both go to the SNS topic of the template (`FAILURE_TOPIC_ARN`) through the Amazon
provider's notifier.

Where each runs. The DAG's `on_failure_callback` runs once per failed run, when the run is marked
failed: in the DAG processor on a deployed Airflow (the scheduler sends it the run and its last
failed task instance), in the `airflow dags test` process itself under `make run`. Its context is the
last failed task's, so the message names that task, its Glue run (read back from XCom and Glue) and
the first error line, which the task's own failure callback stored in XCom (`FAILURE_LINE_KEY`): the
DAG processor never sees the task's exception. The deadline alert's callback runs in the triggerer,
with the run's record only (no task context).

Backfills. A deadline exists only for a run created before it passes (`LogDayLoadDeadline`): a
backfill of last year's days, or a rerun of an old day, creates none, since an alert at creation would
only tell the person who started it what they already know. Such runs still send a message if they
fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseDeadlineReference

log = logging.getLogger(__name__)

# XCom key under which a failed try's first error line is kept for the run's failure message.
FAILURE_LINE_KEY = "failure_line"
# SNS subjects are at most 100 characters; e-mail shows them first.
SUBJECT_LIMIT = 100
LINE_LIMIT = 500


def first_line(text: Any) -> str:
    """The first non-empty line of an error, trimmed: enough to recognise it, never a traceback."""
    line = next((part.strip() for part in str(text or "").splitlines() if part.strip()), "")
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 3] + "..."


def _publish(topic_arn: str, aws_conn_id: str, subject: str, lines: list[str]) -> Any:
    from airflow.providers.amazon.aws.notifications.sns import send_sns_notification

    # notify() rather than calling the notifier: calling it renders the message as a Jinja template,
    # and an error line may hold braces.
    return send_sns_notification(
        aws_conn_id=aws_conn_id, target_arn=topic_arn, subject=subject[:SUBJECT_LIMIT], message="\n".join(lines)
    )


def _task_xcom(ti: Any, key: str) -> Any:
    """A value the failed task kept in XCom. On a deployed Airflow the DAG processor answers
    `xcom_pull` through its API connection. `airflow dags test` runs the DAG's callbacks in its own
    process, where no task's API connection is open any more; that process holds the metadata
    database, from which Airflow's XCom model reads the value instead."""
    from airflow.sdk.execution_time import task_runner

    if hasattr(task_runner, "SUPERVISOR_COMMS"):
        return ti.xcom_pull(task_ids=ti.task_id, key=key)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=ti.run_id, key=key, task_ids=ti.task_id, dag_ids=ti.dag_id)
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def _glue_run_lines(task: Any, ti: Any) -> list[str]:
    """The Glue job run of a failed Glue task, with its page in the AWS console."""
    job_name = getattr(task, "job_name", None)
    if not job_name:
        return []
    run_id = _task_xcom(ti, "glue_job_run_id")
    if not run_id:
        return [f"Glue job run: none started ({job_name})"]
    from airflow.providers.amazon.aws.hooks.glue import GlueJobHook
    from airflow.providers.amazon.aws.links.glue import GlueJobRunDetailsLink

    try:
        hook = GlueJobHook(aws_conn_id=task.aws_conn_id)
        link = GlueJobRunDetailsLink().format_link(
            aws_domain=GlueJobRunDetailsLink.get_aws_domain(hook.conn_partition),
            region_name=hook.conn_region_name,
            job_name=job_name,
            job_run_id=run_id,
        )
    except Exception as error:  # the message must go out without the link
        link = f"(no console link: {first_line(error)})"
    return [f"Glue job run: {run_id} ({job_name}) {link}"]


def failure_message(context: dict[str, Any]) -> tuple[str, list[str]]:
    """Subject and lines of the message about a failed run, from the DAG callback's context."""
    from include.task_failure import failure_detail

    dag_id = context["dag"].dag_id
    run_id = context["run_id"]
    start = context.get("data_interval_start")
    day = start.date().isoformat() if start else "unknown"
    ti, task = context.get("ti"), context.get("task")
    lines = [f"DAG: {dag_id}", f"Day: {day}", f"Run: {run_id}"]
    if ti is None or task is None:
        lines += ["Failed task: unknown", f"Error: {first_line(context.get('reason'))}"]
        return f"{dag_id}: day {day} failed", lines
    lines.append(f"Failed task: {ti.task_id} (try {ti.try_number})")
    lines += _glue_run_lines(task, ti)
    error = _task_xcom(ti, FAILURE_LINE_KEY) or failure_detail(task, ti)
    lines.append(f"Error: {first_line(error) or 'see the log'}")
    lines.append(f"Log: {ti.log_url}")
    return f"{dag_id}: day {day} failed at {ti.task_id}", lines


def notify_run_failed(context: dict[str, Any]) -> None:
    """The DAG's on_failure_callback: one message per failed run."""
    from include import settings as pipeline_settings

    settings = pipeline_settings.load()
    subject, lines = failure_message(context)
    if not settings.FAILURE_TOPIC_ARN:
        log.warning("FAILURE_TOPIC_ARN is not set: nobody is told that %s", subject)
        return
    try:
        _publish(settings.FAILURE_TOPIC_ARN, settings.AWS_CONN_ID, subject, lines).notify(context)
    except Exception:  # the run has failed already; say in the log that nobody was told
        log.exception("Could not publish to %s: %s", settings.FAILURE_TOPIC_ARN, subject)
        raise
    log.info("Told %s: %s", settings.FAILURE_TOPIC_ARN, subject)


def late_message(context: dict[str, Any], base_url: str) -> tuple[str, list[str]]:
    """Subject and lines of the deadline alert, from the run record the triggerer hands over."""
    run = context["dag_run"]
    start = run.get("data_interval_start") or run.get("logical_date") or ""
    day = str(start)[:10] or "unknown"
    deadline = context.get("deadline", {}).get("deadline_time")
    deadline_text = (
        deadline.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if isinstance(deadline, datetime)
        else str(deadline)
    )
    state = run.get("state")
    lines = [
        f"DAG: {run['dag_id']}",
        f"Day: {day}",
        f"Run: {run['dag_run_id']}",
        f"Deadline: {deadline_text}",
        f"Run state: {state}",
        # The deadline knows the run, not its tasks; a failed run also sent its own message with them.
        "Failed task: " + ("see the failure message of this run" if state == "failed" else "none yet"),
        f"Log: {base_url.rstrip('/')}/dags/{run['dag_id']}/runs/{quote(run['dag_run_id'])}",
    ]
    return f"{run['dag_id']}: day {day} not loaded by {deadline_text}", lines


async def notify_day_late(context: dict[str, Any], topic_arn: str, aws_conn_id: str) -> None:
    """The deadline alert's callback (an AsyncCallback: the triggerer awaits it)."""
    from airflow.configuration import conf

    subject, lines = late_message(context, conf.get("api", "base_url", fallback="http://localhost:8080/"))
    if not topic_arn:
        log.warning("FAILURE_TOPIC_ARN is not set: nobody is told that %s", subject)
        return
    await _publish(topic_arn, aws_conn_id, subject, lines).async_notify(context)


@dataclass
class LogDayLoadDeadline(BaseDeadlineReference):
    """The time by which day D must be loaded: `hours_after_day` hours after D ends (the run's
    data_interval_end), for runs created before then; None (no deadline) for a run created later,
    such as a backfill of past days. Evaluated by the scheduler when it creates the run; registered
    with Airflow by `plugins/deadlines.py`."""

    hours_after_day: int = 6
    required_kwargs = frozenset({"dag_id", "run_id"})

    def deadline_for(self, data_interval_end: datetime | None, now: datetime) -> datetime | None:
        if data_interval_end is None:
            return None
        deadline = data_interval_end + timedelta(hours=self.hours_after_day)
        return deadline if deadline > now else None

    def _evaluate_with(self, *, session: Any, dag_id: str, run_id: str, **_: Any) -> datetime | None:
        from sqlalchemy import select

        from airflow.models import DagRun

        end = session.scalar(
            select(DagRun.data_interval_end).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
        return self.deadline_for(end, datetime.now(timezone.utc))

    def serialize_reference(self) -> dict[str, Any]:
        return {**super().serialize_reference(), "hours_after_day": self.hours_after_day}

    @classmethod
    def deserialize_reference(cls, reference_data: dict[str, Any]) -> LogDayLoadDeadline:
        return cls(hours_after_day=int(reference_data.get("hours_after_day", 6)))

    def __hash__(self) -> int:
        return hash(("LogDayLoadDeadline", self.hours_after_day))


def load_deadline(settings: Any) -> Any:
    """The DAG's deadline alert: day D loaded by LOAD_DEADLINE_HOURS after it ends, or a message.
    None (no deadline) when the setting is empty."""
    from airflow.sdk import AsyncCallback, DeadlineAlert

    if not settings.LOAD_DEADLINE_HOURS:
        return None
    return DeadlineAlert(
        reference=LogDayLoadDeadline(settings.number("LOAD_DEADLINE_HOURS")),
        # The reference is the deadline itself: it knows D's end and whether the run came too late.
        interval=timedelta(0),
        callback=AsyncCallback(
            notify_day_late,
            kwargs={"topic_arn": settings.FAILURE_TOPIC_ARN, "aws_conn_id": settings.AWS_CONN_ID},
        ),
        name="day_loaded_by_deadline",
    )
