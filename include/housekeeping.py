"""Housekeeping of the warehouse's staging schema: the staging tables of failed runs go, in time.

A run's staging tables (`staging.<table>_YYYYMMDD_<run key>`, include/run_scope.py) are dropped by
its own swap; only a run that failed after its load leaves them, for inspection. Each run records
itself in `staging.runs` (its key, DAG run id and start), and drops the tables of every other run
that Airflow reports failed and that started more than STAGING_RETENTION_DAYS ago. A run Airflow
reports in any other state (running, queued, cleared to run again, succeeded) keeps its tables, as
does a run that `staging.runs` does not know. `pipeline_run_audit` is never touched: it keeps the
history of the loaded days.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from airflow.sdk import task

from include import settings as pipeline_settings
from include.run_scope import KEY_HEX_DIGITS, STAGED_TABLES, run_key

log = logging.getLogger(__name__)

STAGING_TABLE = re.compile(rf"^(?:{'|'.join(STAGED_TABLES)})_\d{{8}}_(?P<key>[0-9a-f]{{{KEY_HEX_DIGITS}}})$")


def register_run(connection: Any, dag_run_id: str, log_date: date) -> None:
    """Record the run as the owner of its key; a cleared run started again restarts its clock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO staging.runs (run_key, dag_run_id, log_date, started_at) VALUES (%s, %s, %s, now())"
            " ON CONFLICT (run_key) DO UPDATE SET started_at = now()",
            (run_key(dag_run_id), dag_run_id, log_date),
        )
    connection.commit()


def drop_stale_staging_tables(
    connection: Any, run_state: Callable[[str], str | None], retention: timedelta, own_run_id: str
) -> list[str]:
    """Drop the staging tables of failed runs that started before `retention` ago; their names.

    `run_state(dag_run_id)` is Airflow's state of the run (None when Airflow does not know it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'staging'")
        tables: dict[str, list[str]] = {}
        for (name,) in cursor.fetchall():
            match = STAGING_TABLE.match(name)
            if match:
                tables.setdefault(match.group("key"), []).append(name)
        cursor.execute(
            "SELECT run_key, dag_run_id FROM staging.runs WHERE started_at < now() - %s AND run_key = ANY(%s)",
            (retention, list(tables)),
        )
        old_runs = dict(cursor.fetchall())
    dropped = []
    for key, dag_run_id in sorted(old_runs.items()):
        if dag_run_id == own_run_id or run_state(dag_run_id) != "failed":
            continue
        with connection.cursor() as cursor:
            for name in sorted(tables[key]):
                # The name matched STAGING_TABLE (letters, digits, underscores), so it is a safe identifier.
                cursor.execute(f"DROP TABLE IF EXISTS staging.{name}")  # noqa: S608
                dropped.append(f"staging.{name}")
        connection.commit()
        log.info("Dropped the staging tables of failed run %s: %s", dag_run_id, ", ".join(sorted(tables[key])))
    return dropped


def _airflow_run_state(dag_id: str) -> Callable[[str], str | None]:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    def state(dag_run_id: str) -> str | None:
        try:
            found = RuntimeTaskInstance.get_dagrun_state(dag_id=dag_id, run_id=dag_run_id)
            return getattr(found, "value", found)
        except Exception as error:  # a run Airflow no longer knows: keep its tables
            log.warning("No state for run %s (%s): its staging tables stay", dag_run_id, error)
            return None

    return state


@task(task_id="drop_stale_staging_tables")
def drop_stale_staging_tables_task(dag_run=None, data_interval_start=None, run_id=None) -> list[str]:
    """Record this run, then drop the staging tables of old failed runs (see the module's doc)."""
    from contextlib import closing

    from airflow.providers.postgres.hooks.postgres import PostgresHook

    settings = pipeline_settings.load()
    retention = timedelta(days=settings.number("STAGING_RETENTION_DAYS"))
    with closing(PostgresHook(postgres_conn_id=settings.WAREHOUSE_CONN_ID).get_conn()) as connection:
        register_run(connection, run_id, data_interval_start.date())
        return drop_stale_staging_tables(connection, _airflow_run_state(dag_run.dag_id), retention, run_id)
