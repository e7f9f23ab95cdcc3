"""The project's deadline references, registered with Airflow.

The scheduler rebuilds a DAG's deadline alert from its serialized form when it creates a run, and
accepts only built-in references and those a plugin lists in `deadline_references`. The DAG's
deadline (`include/notifications.py`, `LogDayLoadDeadline`) needs this plugin wherever Airflow runs,
as the timetable needs `plugins/timetables.py`.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.notifications import LogDayLoadDeadline


class HardwareCorrelationDeadlines(AirflowPlugin):
    name = "hardware_correlation_deadlines"
    deadline_references = [LogDayLoadDeadline]
