"""DAG integrity: every DAG file parses fast, touches nothing at parse time, and is wired as documented."""

from __future__ import annotations

import importlib
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["hardware_correlation"]


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"hardware_correlation", "hardware_correlation_report"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_fast_without_connections(path):
    # Airflow and the providers are imported by the DAG processor once for all files: warm them so
    # that the figure is this file's own parse cost.
    import airflow.providers.amazon.aws.operators.glue  # noqa: F401
    import airflow.providers.amazon.aws.operators.glue_crawler  # noqa: F401
    import airflow.providers.amazon.aws.sensors.s3  # noqa: F401
    import airflow.providers.common.sql.operators.sql  # noqa: F401
    from airflow.sdk import BaseHook

    module = f"dags.{path.stem}"
    sys.modules.pop(module, None)
    with mock.patch.object(BaseHook, "get_connection", side_effect=AssertionError("connection at parse time")) as get_connection:
        started = time.perf_counter()
        importlib.import_module(module)
        elapsed = time.perf_counter() - started
    get_connection.assert_not_called()
    # A generous bound on a shared machine: it catches parse-time work that waits on something (a
    # connection timing out, a network call), not a few hundred milliseconds of CPU.
    assert elapsed < 5, f"{path.name} took {elapsed:.2f}s to import"


def test_schedule_gives_the_log_day_as_data_interval(dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    assert dag.max_active_runs > 1


def _upstream_closure(dag, task_id: str) -> set[str]:
    seen, todo = set(), [task_id]
    while todo:
        for upstream in dag.get_task(todo.pop()).upstream_task_ids:
            if upstream not in seen:
                seen.add(upstream)
                todo.append(upstream)
    return seen


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("deploy_glue_scripts", "wait_for_hardware_logs"),
        ("wait_for_hardware_logs", "run_crawler"),
        ("wait_for_customers", "run_crawler"),
        ("wait_for_sales", "run_crawler"),
        ("run_crawler", "run_etl_job"),
        ("run_etl_job", "run_load_job"),
        ("create_warehouse_tables", "run_load_job"),
        ("run_load_job", "check_staging"),
        ("check_staging", "swap_day_into_warehouse"),
        ("swap_day_into_warehouse", "verify_columns"),
        ("swap_day_into_warehouse", "verify_counts"),
    ],
)
def test_task_order(dag, earlier, later):
    assert earlier in _upstream_closure(dag, later)


@pytest.mark.parametrize("dag_id", ["hardware_correlation", "hardware_correlation_report"])
def test_every_task_has_retries_backoff_and_timeout(dagbag, dag_id):
    for task in dagbag.dags[dag_id].tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_delay > timedelta(0), task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.on_failure_callback, task.task_id


def test_glue_jobs_are_sized_and_versioned(dag):
    for task_id in ("run_etl_job", "run_load_job"):
        task = dag.get_task(task_id)
        kwargs = task.create_job_kwargs
        assert kwargs["GlueVersion"] == "5.0"
        assert kwargs["WorkerType"] and kwargs["NumberOfWorkers"] >= 1
        assert kwargs["Timeout"] > 0
        assert task.update_config and task.verbose and task.stop_job_run_on_kill
        assert task.script_args["--log_date"] == "{{ data_interval_start | ds }}"
        # No credentials travel in job arguments.
        flat = repr(task.script_args) + repr(kwargs)
        assert "password" not in flat.lower() and "secret" not in flat.lower()


def test_the_report_runs_on_the_asset_the_swap_updates_one_run_at_a_time(dagbag, dag):
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    from include.assets import DEVICE_DAY_ACTIVITY

    report = dagbag.dags["hardware_correlation_report"]
    assert isinstance(report.timetable, AssetTriggeredTimetable)
    assert list(report.timetable.asset_condition.objects) == [DEVICE_DAY_ACTIVITY]
    # Only the swap updates it: a day whose swap failed does not start a report.
    producers = [task.task_id for task in dag.tasks if DEVICE_DAY_ACTIVITY in task.outlets]
    assert producers == ["swap_day_into_warehouse"]
    # Events arriving while a report run is active wait for it and start one run together.
    assert report.max_active_runs == 1 and report.catchup is False
    assert "wait_for_daily_runs" in report.get_task("build_report").upstream_task_ids


def test_day_d_checks_that_the_exposure_holds_the_loaded_errors(dag):
    checks = dag.get_task("verify_counts").checks
    statement = checks["activity_errors_match_loaded"]["check_statement"]
    assert "SUM(loaded)" in statement and "SUM(errors)" in statement and "device_day_activity" in statement
    etl, load = dag.get_task("run_etl_job"), dag.get_task("run_load_job")
    assert etl.script_args["--activity_path"] == load.script_args["--activity_path"]
    assert load.script_args["--activity_staging_table"] == (
        "staging.device_day_activity_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}"
    )


def test_two_runs_of_one_day_write_apart_and_swap_in_turn(dag):
    """A manual run and a backfill run of day D: nothing either writes before the swap is shared."""
    from datetime import datetime, timezone

    day = datetime(2025, 10, 1, tzinfo=timezone.utc)
    contexts = [
        {"run_id": run_id, "data_interval_start": day, "ds": "2025-10-02"}
        for run_id in ("manual__2025-10-02T00:00:00+00:00", "backfill__2025-10-01T00:00:00+00:00")
    ]
    etl, load, swap = (dag.get_task(t) for t in ("run_etl_job", "run_load_job", "swap_day_into_warehouse"))
    rendered = [
        {
            **etl.render_template(etl.script_args, context),
            **{f"load{key}": value for key, value in load.render_template(load.script_args, context).items()},
        }
        for context in contexts
    ]
    first, second = rendered
    for name in ("--processed_path", "--quarantine_path", "--reference_quarantine_path", "--audit_path",
                 "--alerts_path", "--alerts_quarantine_path", "--activity_path", "load--staging_table",
                 "load--alerts_staging_table", "load--activity_staging_table"):
        assert first[name] != second[name], name
    assert first["load--processed_path"] == first["--processed_path"]
    assert first["load--staging_table"].startswith("staging.hardware_error_analysis_20251001_")
    assert len(first["load--staging_table"].split(".")[1]) <= 63

    swap_sql = [swap.render_template("swap_day.sql", context) for context in contexts]
    statements = [line for line in swap_sql[0].splitlines() if line and not line.startswith("--")]
    assert statements[0].startswith("SELECT pg_advisory_xact_lock(")
    assert first["load--staging_table"] in swap_sql[0] and second["load--staging_table"] in swap_sql[1]
