"""The project's timetables, registered with Airflow.

The DAG processor serializes a DAG's timetable by its import path and the scheduler and API server
rebuild it from there; both accept only built-in timetables and those a plugin lists in `timetables`.
`AIRFLOW__CORE__PLUGINS_FOLDER` must point at this folder wherever Airflow runs (the Dockerfile and
`.local/stack.env` set it).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.log_day_timetable import LogDayTimetable


class HardwareCorrelationTimetables(AirflowPlugin):
    name = "hardware_correlation_timetables"
    timetables = [LogDayTimetable]
