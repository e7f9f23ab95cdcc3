"""Names that belong to one DAG run, so that two runs of the same day never share them.

Two runs may process day D at once: the run at logical date D (scheduled, backfilled or triggered)
and a manual run triggered the day after with the Trigger form's default logical date, or two such
manual runs. Names made from the day alone (staging tables, the ETL's output folders, its audit.json)
would be written by both at once. Each run gets a key of its own, from its run id (unique per DAG),
which the DAG's templates use as `{{ run_id | run_key }}`, and its staging tables are named by
`staging_table`, the one place that builds their names (`{{ staging_table(...) }}` in the DAG's
templates and SQL files).
"""

from __future__ import annotations

import hashlib
from datetime import date

# 48 bits: two runs of one day colliding is out of the question, and a staging table's name
# (staging.hardware_error_analysis_YYYYMMDD_<key>) stays within PostgreSQL's 63 characters.
KEY_HEX_DIGITS = 12
# The warehouse tables that the load job stages for a run and the swap replaces day D of.
STAGED_TABLES = ("hardware_error_analysis", "hardware_alerts", "device_day_activity")


def run_key(run_id: str) -> str:
    """A short, lower-case hex key of the DAG run: fit for S3 keys and PostgreSQL identifiers."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]


def staging_table(table: str, day: date, run_id: str) -> str:
    """The run's staging table of `table` for log day `day`: `staging.<table>_YYYYMMDD_<run key>`.

    The name goes into SQL as an identifier, so only the known tables are accepted.
    """
    if table not in STAGED_TABLES:
        raise ValueError(f"{table!r} is not staged; staged tables: {', '.join(STAGED_TABLES)}")
    return f"staging.{table}_{day:%Y%m%d}_{run_key(run_id)}"
