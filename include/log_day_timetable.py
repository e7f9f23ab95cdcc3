"""The daily DAG's timetable: one logical date per log day, whoever starts the run.

Scheduled and backfill runs of day D have logical date D 00:00 UTC and process [D, D + 1). Airflow's
CronDataIntervalTimetable gives a manual run the latest interval that has *ended* by its logical
date instead, so a run triggered at D 00:00 would process D - 1, and the day a person picked would not
be the day that ran. Here a logical date on the schedule (midnight UTC) starts the interval it
processes, as it does for scheduled runs and backfills. A logical date between two midnights (the
Trigger form's default is the present moment) keeps Airflow's rule: the latest complete day.

Airflow serializes a DAG's timetable by its import path, and accepts only the built-in ones and those
a plugin registers: `plugins/timetables.py` registers this class. It lives outside `plugins/` because
Airflow imports plugin files under their bare file names: the DAG and the plugin must both import it
as `include.log_day_timetable`, the name it is registered under.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.timetables.base import DataInterval
from airflow.timetables.interval import CronDataIntervalTimetable

if TYPE_CHECKING:
    from pendulum import DateTime


class LogDayTimetable(CronDataIntervalTimetable):
    """Every midnight UTC, for the day that just ended; a manual run at a midnight processes the day
    that starts then."""

    def __init__(self, cron: str = "0 0 * * *", timezone: str = "UTC") -> None:
        # Positional, as CronDataIntervalTimetable.deserialize passes them.
        super().__init__(cron, timezone)

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        end = self._get_next(run_after)
        start = self._get_prev(end)
        if start == run_after:
            return DataInterval(start=start, end=end)
        return super().infer_manual_data_interval(run_after=run_after)
