"""LogDayTimetable: a manual run at D 00:00 processes day D, as scheduled and backfill runs of D do,
and the plugin registers it under the name the DAG processor serializes it by."""

from __future__ import annotations

import pendulum
import pytest

from include.log_day_timetable import LogDayTimetable


def utc(text: str) -> pendulum.DateTime:
    return pendulum.parse(text).in_timezone("UTC")


@pytest.mark.parametrize(
    ("logical_date", "day"),
    [
        # At a midnight: the day that starts then, whoever triggers it.
        ("2025-10-01T00:00:00+00:00", "2025-10-01"),
        ("2025-10-01T00:00:00Z", "2025-10-01"),
        ("2024-02-29T00:00:00Z", "2024-02-29"),
        ("2025-12-31T00:00:00Z", "2025-12-31"),
        # Later in a day (the Trigger form's default is now): the latest complete day, yesterday.
        ("2025-10-02T14:23:00Z", "2025-10-01"),
        ("2025-10-02T00:00:01Z", "2025-10-01"),
        ("2025-10-02T23:59:59Z", "2025-10-01"),
        # A midnight of another timezone is not one of UTC.
        ("2025-10-02T00:00:00+02:00", "2025-09-30"),
    ],
)
def test_a_manual_run_processes_one_whole_utc_day(logical_date, day):
    interval = LogDayTimetable().infer_manual_data_interval(run_after=utc(logical_date))
    start = utc(f"{day}T00:00:00Z")
    assert (interval.start, interval.end) == (start, start.add(days=1))
    assert interval.start.tzinfo is not None and interval.start.utcoffset().total_seconds() == 0


def test_scheduled_runs_and_backfills_keep_the_cron_timetables_intervals():
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable

    ours, airflows = LogDayTimetable(), CronDataIntervalTimetable("0 0 * * *", "UTC")
    restriction = TimeRestriction(earliest=utc("2025-09-28T00:00:00Z"), latest=utc("2025-10-05T00:00:00Z"), catchup=True)
    last, days = None, []
    while (info := ours.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)) is not None:
        assert info == airflows.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        # Logical date D, data interval [D, D + 1), run after D + 1: as with schedule="0 0 * * *".
        assert info.logical_date == info.data_interval.start
        assert info.data_interval.end == info.data_interval.start.add(days=1) == info.run_after
        days.append(info.logical_date.to_date_string())
        last = info.data_interval
    assert days == [f"2025-{month_day}" for month_day in ("09-28", "09-29", "09-30", "10-01", "10-02", "10-03",
                                                          "10-04", "10-05")]


def test_the_plugin_registers_the_timetable_under_the_name_it_is_serialized_by():
    from airflow import plugins_manager
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    assert plugins_manager.get_timetables_plugins()["include.log_day_timetable.LogDayTimetable"] is LogDayTimetable
    rebuilt = decode_timetable(encode_timetable(LogDayTimetable()))
    assert type(rebuilt) is LogDayTimetable and rebuilt == LogDayTimetable()
    interval = rebuilt.infer_manual_data_interval(run_after=utc("2025-10-01T00:00:00Z"))
    assert interval.start == utc("2025-10-01T00:00:00Z")
