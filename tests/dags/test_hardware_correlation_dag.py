"""DAG integrity: every DAG file parses without reaching out or importing what only tasks need, and is
wired as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

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


# Parses each DAG file as the DAG processor does: in a child forked from a process that has imported
# Airflow and the providers, so that what the file itself imports and touches shows. Run in a fresh
# interpreter: this test session has long imported pandas, Spark and botocore's clients.
PARSE_PROBE = """
import importlib, json, os, socket, sys, time
from unittest import mock

import airflow.providers.amazon.aws.operators.glue
import airflow.providers.amazon.aws.operators.glue_crawler
import airflow.providers.amazon.aws.sensors.s3
import airflow.providers.common.sql.operators.sql
import botocore.session
from airflow.configuration import conf
from airflow.sdk import BaseHook, Connection, Variable


def parse(module):
    touched = []

    def refuse(what):
        def refused(*args, **kwargs):
            touched.append(what)
            raise RuntimeError(what + " at parse time")
        return refused

    before = set(sys.modules)
    refusals = [
        mock.patch.object(BaseHook, "get_connection", refuse("a connection")),
        mock.patch.object(Connection, "get", refuse("a connection")),
        mock.patch.object(Variable, "get", refuse("a Variable")),
        mock.patch.object(botocore.session.Session, "create_client", refuse("an AWS client")),
        mock.patch.object(socket.socket, "connect", refuse("a network connection")),
        mock.patch.object(socket, "getaddrinfo", refuse("a name lookup")),
    ]
    for refusal in refusals:
        refusal.start()
    started = time.perf_counter()
    try:
        importlib.import_module(module)
        error = None
    except Exception as exc:
        error = repr(exc)
    seconds = time.perf_counter() - started
    imported = sorted({name.partition(".")[0] for name in set(sys.modules) - before})
    return {"error": error, "touched": touched, "imported": imported, "seconds": seconds}


out, modules = sys.argv[1], sys.argv[2:]
results = {}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            with os.fdopen(write, "w") as answer:
                json.dump(parse(module), answer)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        results[module] = json.loads(answer.read() or "null")
    os.waitpid(pid, 0)
with open(out, "w") as written:
    json.dump({"import_timeout": conf.getfloat("core", "dagbag_import_timeout"), "files": results}, written)
"""
# Modules whose import costs a DAG file seconds, and which only tasks need.
HEAVY_MODULES = {"pyspark", "pandas", "numpy", "scipy", "statsmodels", "matplotlib", "duckdb", "pyarrow", "psycopg2"}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    out = tmp_path_factory.mktemp("parse") / "parsed.json"
    repo = DAGS_DIR.parent
    probe = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(out), *(f"dags.{path.stem}" for path in DAG_FILES)],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=600,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_connections_network_or_heavy_imports(parsed, path):
    """What makes a parse slow is checked for itself rather than timed: a wall-clock bound flakes on
    a loaded machine and passes a slow import on a fast one."""
    result = parsed["files"][f"dags.{path.stem}"]
    assert result is not None, f"the parse of {path.name} died"
    assert result["error"] is None, result["error"]
    assert result["touched"] == [], f"{path.name} reaches out at parse time: {result['touched']}"
    assert not HEAVY_MODULES & set(result["imported"]), f"{path.name} imports {HEAVY_MODULES & set(result['imported'])}"
    # The DAG processor's own limit, past which it drops the file: not a figure of this machine's speed.
    assert result["seconds"] < parsed["import_timeout"], f"{path.name} took {result['seconds']:.1f} s"


def test_schedule_gives_the_log_day_as_data_interval(dag):
    from include.log_day_timetable import LogDayTimetable

    assert dag.timetable == LogDayTimetable("0 0 * * *", "UTC")
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


def test_glue_jobs_are_the_templates_and_each_run_names_its_own_scripts(dag):
    """The jobs' definitions (workers, timeout, ...) are infrastructure/template.yaml's: the operators
    neither create nor update them, and every run names the scripts version its DAG run deployed."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    from dags.hardware_correlation import GLUE_MAX_CONCURRENT_RUNS

    for task_id, script in (("run_etl_job", "etl_script"), ("run_load_job", "load_script")):
        task = dag.get_task(task_id)
        assert not task.update_config and task.create_job_kwargs is None
        assert task.iam_role_name is None and task.iam_role_arn is None and task.script_location is None
        assert task.verbose and task.stop_job_run_on_kill
        # A retry takes over the run its task started while it still goes (see plugins/glue_job_operator.py).
        assert task.durable and task.deferrable
        assert task.max_active_tis_per_dag == GLUE_MAX_CONCURRENT_RUNS
        assert task.script_args["--log_date"] == "{{ data_interval_start | ds }}"
        for argument, key in (("--scriptLocation", script), ("--extra-py-files", "extra_py_files")):
            pinned = task.script_args[argument]
            assert isinstance(pinned, XComArg), argument
            assert (pinned.operator.task_id, pinned.key) == ("deploy_glue_scripts", key)
        # No credentials travel in job arguments.
        flat = repr(task.script_args)
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
        "{{ staging_table('device_day_activity', data_interval_start, run_id) }}"
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
            **etl.render_template(_without_xcom(etl.script_args), context),
            **{
                f"load{key}": value
                for key, value in load.render_template(_without_xcom(load.script_args), context).items()
            },
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


def _without_xcom(arguments: dict) -> dict:
    """The arguments that render from the run's context alone (the scripts' locations are deploy's output)."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    return {key: value for key, value in arguments.items() if not isinstance(value, XComArg)}


def test_staging_tables_are_named_in_one_place_and_the_check_binds_the_runs_audit(dag):
    """The load job's arguments, check_staging and the swap name the same tables, all by
    include/run_scope.py's staging_table; the check reads the audit from its own parameters."""
    from datetime import datetime, timezone

    from airflow.sdk.definitions.xcom_arg import XComArg

    from include.run_scope import STAGED_TABLES, staging_table

    day, run_id = datetime(2025, 10, 1, tzinfo=timezone.utc), "manual__2025-10-01T00:00:00+00:00"
    context = {"run_id": run_id, "data_interval_start": day}
    load, check, swap = (dag.get_task(t) for t in ("run_load_job", "check_staging", "swap_day_into_warehouse"))
    arguments = load.render_template(_without_xcom(load.script_args), context)
    named = {name: staging_table(name, day, run_id) for name in STAGED_TABLES}
    assert {arguments["--staging_table"], arguments["--alerts_staging_table"],
            arguments["--activity_staging_table"]} == set(named.values())
    check_sql = check.render_template(check.sql, context)
    swap_sql = swap.render_template(swap.sql, context)
    for table in named.values():
        assert table in check_sql and f"DROP TABLE {table};" in swap_sql
    for path in ("check_staging.sql", "swap_day.sql"):
        source = (DAGS_DIR.parent / "include" / "sql" / path).read_text()
        assert "staging." not in source and "xcom_pull" not in source, path
    for task in (check, swap):
        assert isinstance(task.parameters, XComArg) and task.parameters.operator.task_id == "collect_run_audit"
    for count in ("loaded", "alert_loaded", "device_days", "log_date"):
        assert f"%({count})s" in check_sql, count


def test_the_swap_writes_every_audit_column_of_the_one_list(dag):
    import re
    from datetime import datetime, timezone

    from include.run_audit import AUDIT_COLUMNS

    context = {"run_id": "manual__2025-10-01T00:00:00+00:00",
               "data_interval_start": datetime(2025, 10, 1, tzinfo=timezone.utc)}
    swap = dag.get_task("swap_day_into_warehouse")
    sql = swap.render_template(swap.sql, context)
    insert = re.search(r"INSERT INTO pipeline_run_audit \(([^)]*)\)\s*VALUES \((.*?)\)\s*ON CONFLICT", sql, re.DOTALL)
    assert insert, sql
    columns = [c.strip() for c in insert.group(1).split(",")]
    assert columns == [*AUDIT_COLUMNS, "finished_at"]
    assert [v.strip() for v in insert.group(2).split(",")] == [f"%({c})s" for c in AUDIT_COLUMNS] + ["now()"]
    updated = re.findall(r"^\s+(\w+) = EXCLUDED\.(\w+)[,;]$", sql, flags=re.MULTILINE)
    assert updated == [(c, c) for c in [*AUDIT_COLUMNS[1:], "finished_at"]]
