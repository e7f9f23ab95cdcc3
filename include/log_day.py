"""Which UTC log day a run processes, as the Trigger form says it and as the run checks it.

A run processes day D = its `data_interval_start` (docs/contract.md, section 3); its logical date is
D whoever starts it (`include/log_day_timetable.py`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, task
from airflow.sdk.exceptions import AirflowFailException

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
