"""Housekeeping of the staging schema (include/housekeeping.py) on the stack's real PostgreSQL, in a
throwaway database with the DAG's own DDL, through both drivers (Airflow's PostgresHook hands out
psycopg 3 connections where it can). Airflow's answer about each run's state is the one stand-in:
the end-to-end fault test (tests/e2e/test_faults.py, run 3) has Airflow give it."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from include.housekeeping import drop_stale_staging_tables, register_run
from include.run_scope import staging_table

pytestmark = pytest.mark.stack

DDL = ("003_staging_schema.sql", "008_staging_runs.sql")
DAY = date(2031, 3, 1)
RETENTION = timedelta(days=7)


@pytest.fixture
def database(stack):
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import make_dsn, parse_dsn

    from include.housekeeping import __file__ as housekeeping_file
    from pathlib import Path

    name = f"housekeeping_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(stack["WAREHOUSE_DSN"])
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_dsn(**{**parse_dsn(stack["WAREHOUSE_DSN"]), "dbname": name})
    try:
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            for ddl in DDL:
                cursor.execute((Path(housekeeping_file).parent / "sql" / "ddl" / ddl).read_text())
        connection.close()
        yield dsn
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def _connect(driver: str, dsn: str):
    if driver == "psycopg2":
        import psycopg2

        return psycopg2.connect(dsn)
    import psycopg

    return psycopg.connect(dsn)


def _tables(connection) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'staging.' || tablename FROM pg_tables WHERE schemaname = 'staging'")
        found = {name for (name,) in cursor.fetchall()}
    connection.commit()
    return found


def _stage(connection, run_id: str, *, days_ago: int | None) -> set[str]:
    """The run's three staging tables, as its load job would leave them; the run registered
    `days_ago` days ago (None: not registered at all)."""
    names = {staging_table(table, DAY, run_id) for table in
             ("hardware_error_analysis", "hardware_alerts", "device_day_activity")}
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"CREATE TABLE {name} (log_id text)")  # noqa: S608 - staging_table's own names
    connection.commit()
    if days_ago is not None:
        register_run(connection, run_id, DAY)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE staging.runs SET started_at = now() - %s WHERE dag_run_id = %s",
                (timedelta(days=days_ago), run_id),
            )
        connection.commit()
    return names


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_old_tables_of_failed_runs_go_and_everything_else_stays(database, driver):
    connection = _connect(driver, database)
    try:
        old_failed = _stage(connection, "backfill__2031-03-01", days_ago=8)
        fresh_failed = _stage(connection, "manual__fresh", days_ago=1)
        old_running = _stage(connection, "scheduled__running", days_ago=30)
        old_unknown = _stage(connection, "manual__deleted", days_ago=30)
        unregistered = _stage(connection, "manual__unregistered", days_ago=None)
        own = _stage(connection, "manual__own", days_ago=30)
        with connection.cursor() as cursor:
            # Not a staging table of a run: never touched.
            cursor.execute("CREATE TABLE staging.notes (line text)")
        connection.commit()
        states = {
            "backfill__2031-03-01": "failed", "manual__fresh": "failed", "scheduled__running": "running",
            "manual__deleted": None, "manual__unregistered": "failed", "manual__own": "failed",
        }
        asked = []

        def run_state(run_id: str):
            asked.append(run_id)
            return states[run_id]

        dropped = drop_stale_staging_tables(connection, run_state, RETENTION, own_run_id="manual__own")

        assert set(dropped) == old_failed
        remaining = _tables(connection)
        assert not remaining & old_failed
        assert fresh_failed | old_running | old_unknown | unregistered | own | {"staging.notes"} <= remaining
        # Only runs old enough were asked about, and never this run itself.
        assert sorted(asked) == ["backfill__2031-03-01", "manual__deleted", "scheduled__running"]
    finally:
        connection.close()


def test_a_run_started_again_restarts_its_clock(database):
    connection = _connect("psycopg2", database)
    try:
        tables = _stage(connection, "manual__cleared", days_ago=30)
        # Cleared and started again: it records itself anew, so its new failure is kept for a while.
        register_run(connection, "manual__cleared", DAY)
        assert drop_stale_staging_tables(connection, lambda _run: "failed", RETENTION, own_run_id="x") == []
        assert tables <= _tables(connection)
    finally:
        connection.close()
