"""The failure and deadline messages (include/notifications.py): the deadline as the scheduler rebuilds
and evaluates it, and what the deadline alert says. The messages of failed runs, as a subscriber gets
them, are checked end to end by tests/e2e/test_faults.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dags import hardware_correlation as dag_module
from include.notifications import LogDayLoadDeadline, first_line, late_message

DAY_END = datetime(2031, 10, 2, tzinfo=timezone.utc)


def test_a_run_created_before_its_day_s_deadline_gets_one_at_06_00_the_day_after():
    reference = LogDayLoadDeadline(hours_after_day=6)
    # The scheduled run of D is created at D+1 00:00, as D ends.
    assert reference.deadline_for(DAY_END, now=DAY_END) == datetime(2031, 10, 2, 6, tzinfo=timezone.utc)
    assert reference.deadline_for(DAY_END, now=DAY_END + timedelta(hours=5, minutes=59)) is not None


@pytest.mark.parametrize("late", [timedelta(hours=6), timedelta(days=365)])
def test_a_run_created_after_its_deadline_gets_none_so_a_backfill_alerts_nobody_at_creation(late):
    assert LogDayLoadDeadline(hours_after_day=6).deadline_for(DAY_END, now=DAY_END + late) is None


def test_the_scheduler_rebuilds_the_dag_s_deadline_through_the_plugin():
    """The DAG's deadline alert, serialized as the DAG processor stores it and decoded as the scheduler
    does when it creates a run: the custom reference comes back through plugins/deadlines.py."""
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.encoders import encode_deadline_alert

    dag = dag_module.hardware_correlation()
    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    decoded = decode_deadline_alert(encode_deadline_alert(alert))
    assert decoded.reference.inner_ref == LogDayLoadDeadline(hours_after_day=6)
    assert decoded.interval == timedelta(0)
    assert decoded.callback.path == "include.notifications.notify_day_late"


def test_the_deadline_alert_names_the_dag_the_day_the_run_and_where_to_look():
    # The context the scheduler hands the triggerer (airflow.models.deadline.Deadline.handle_miss).
    context = {
        "dag_run": {"dag_id": "hardware_correlation", "dag_run_id": "scheduled__2031-10-01T00:00:00+00:00",
                    "data_interval_start": "2031-10-01T00:00:00Z", "state": "running"},
        "deadline": {"id": "x", "deadline_time": datetime(2031, 10, 2, 6, tzinfo=timezone.utc)},
    }
    subject, lines = late_message(context, "https://airflow.example.com/")
    assert subject == "hardware_correlation: day 2031-10-01 not loaded by 2031-10-02 06:00 UTC"
    fields = dict(line.split(": ", 1) for line in lines)
    assert fields["DAG"] == "hardware_correlation" and fields["Day"] == "2031-10-01"
    assert fields["Run state"] == "running" and fields["Failed task"] == "none yet"
    assert fields["Log"] == (
        "https://airflow.example.com/dags/hardware_correlation/runs/scheduled__2031-10-01T00%3A00%3A00%2B00%3A00"
    )


def test_an_error_is_told_by_its_first_line_only():
    assert first_line("\n  psycopg.errors.CheckViolation: new row violates\nDETAIL: Failing row") == (
        "psycopg.errors.CheckViolation: new row violates"
    )
    assert len(first_line("x" * 2000)) == 500
