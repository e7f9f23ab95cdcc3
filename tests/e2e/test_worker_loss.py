"""End to end: Airflow losing a Glue task's worker, or all of its services, while the Glue run goes on.

One day's run serves every test of the module, on Airflow's own services (api-server, scheduler with
LocalExecutor, dag-processor, triggerer) and in a corner of the stack of its own (raw and processed
buckets, catalog database, crawler, Glue jobs), on the sample data moved to October 2019:

1. The stack keeps back the answer of the ETL job's StartJobRun, its run created (held in STARTING),
   and the test SIGKILLs the task's process in that window: the worker is lost after Glue started the
   run and before the task could defer. The task's retry must find that run and reattach to it.
2. While the retry is deferred on that run, every Airflow service is SIGKILLed and started again; the
   deferred task must go on with the same run once the services are back.
3. The day's run, once finished, is cleared from run_etl_job on (a reprocessing): the cleared task
   must start a new ETL run, never reattach to the finished one.

After 1 and 2 the day has exactly one ETL run and one load run, and after 3 exactly one more of each;
each time the warehouse holds the day once, with the rows the rules of docs/contract.md give and an
audit row naming the Glue runs of the day's latest processing.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from dev import airflow_services, commands
from dev.airflow_api import TERMINAL, RestApi, iso, midnight
from dev.airflow_services import Services, running_services
from dev.local_aws import faults
from dev.raw_zone import upload_raw_zone
from tests import support
from tests.support import warehouse_rows

pytestmark = pytest.mark.stack

SHIFT = date(2019, 10, 1) - date(2025, 10, 1)
DAY = date.fromisoformat(commands.SAMPLE_DAYS[0]) + SHIFT
DAG_ID = commands.DAG_ID
ISOLATED = {
    "RAW_BUCKET": "hardware-correlation-worker-loss-raw",
    "PROCESSED_BUCKET": "hardware-correlation-worker-loss-processed",
    "GLUE_DATABASE": "hardware_correlation_worker_loss_raw",
    "CRAWLER_NAME": "hardware-correlation-worker-loss-raw",
    "ETL_JOB_NAME": "hardware-correlation-worker-loss-etl",
    "LOAD_JOB_NAME": "hardware-correlation-worker-loss-load",
}
ETL_JOB, LOAD_JOB = ISOLATED["ETL_JOB_NAME"], ISOLATED["LOAD_JOB_NAME"]
RUN_TIMEOUT = 1800


@dataclass
class Processing:
    """What one processing of the day left: the DAG run's state, the ETL task's tries, the Glue runs
    of the day it started, the warehouse's rows and audit rows of the day."""

    state: str
    etl_tries: int
    etl_runs: list[dict]
    load_runs: list[dict]
    rows: set[tuple]
    audits: list[dict]


@dataclass
class Scenario:
    killed_pid: int
    killed_during_start: bool
    deferred_before_restart: tuple[int, str]
    first: Processing
    cleared: Processing


def audits(dsn: str) -> list[dict]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pipeline_run_audit WHERE log_date = %s", (DAY,))
        names = [column.name for column in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    connection.close()
    return found


def etl_task(api: RestApi, run_id: str) -> dict:
    (task,) = [task for task in api.task_instances(DAG_ID, run_id) if task["task_id"] == "run_etl_job"]
    return task


def wait_for_run(services: Services, api: RestApi, run_id: str) -> str:
    def finished() -> str | None:
        services.check()
        state = api.run(DAG_ID, run_id)["state"]
        return state if state in TERMINAL else None

    return support.wait_for(f"run {run_id} to finish", finished, timeout=RUN_TIMEOUT, every=2)


def processing(services: Services, api: RestApi, run_id: str, glue, env: dict[str, str], before: set[str]) -> Processing:
    state = wait_for_run(services, api, run_id)
    return Processing(
        state=state,
        etl_tries=etl_task(api, run_id)["try_number"],
        etl_runs=[run for run in support.job_runs(glue, ETL_JOB, DAY.isoformat()) if run["Id"] not in before],
        load_runs=[run for run in support.job_runs(glue, LOAD_JOB, DAY.isoformat()) if run["Id"] not in before],
        rows=warehouse_rows(env["WAREHOUSE_DSN"], DAY.isoformat()),
        audits=audits(env["WAREHOUSE_DSN"]),
    )


def kill_every_service(services: Services) -> None:
    """SIGKILL every service's process group (the scheduler's LocalExecutor workers with it), as a
    machine losing power would: nothing is told to stop."""
    for pid in services.pids.values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for process in services.processes.values():
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def raw_zone(tmp_path_factory) -> Path:
    return support.shifted_sample(tmp_path_factory.mktemp("worker-loss-raw-zone"), SHIFT)


@pytest.fixture(scope="module")
def env(stack) -> dict[str, str]:
    return {**commands.stack_env(), **ISOLATED}


@pytest.fixture(scope="module")
def scenario(env, aws, raw_zone) -> Scenario:
    s3, glue = aws("s3"), aws("glue")
    endpoint = env["AWS_ENDPOINT_URL"]
    support.empty_corner(env, aws, (DAY,))
    upload_raw_zone(raw_zone, env["RAW_BUCKET"], s3)

    restarted: Services | None = None
    with running_services(env, parallel=1) as services:
        if services.env.get("CRAWLER_NAME") != env["CRAWLER_NAME"]:
            # `make airflow`'s services: they run the DAG with the stack's own names, not this corner's.
            pytest.skip("`make airflow` is running; stop it (make down) to run this scenario in its own corner")
        try:
            services.wait_until_parsed(DAG_ID, "hardware_correlation.py", print)
            api = services.api()
            for run in api.runs_at(DAG_ID, midnight(DAY), midnight(DAY + timedelta(days=1))):
                api.delete(api.run_path(DAG_ID, run["dag_run_id"]))
            api.set_paused(DAG_ID, False)

            # 1. The worker lost between StartJobRun and the deferral.
            faults.hold_job_runs(endpoint, ETL_JOB)
            faults.hold_start_answer(endpoint, ETL_JOB)
            run_id = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": iso(midnight(DAY))})["dag_run_id"]
            (started,) = support.wait_for("the ETL task to start its Glue run", lambda: support.job_runs(glue, ETL_JOB, DAY.isoformat()),
                                          timeout=RUN_TIMEOUT, every=0.5)
            task = etl_task(api, run_id)
            assert (task["state"], task["try_number"]) == ("running", 1), task
            killed_pid = task["pid"]
            os.kill(killed_pid, signal.SIGKILL)
            # The task was still waiting for StartJobRun's answer when it died.
            killed_during_start = faults.release_start_answer(endpoint, ETL_JOB)

            def retry_deferred() -> dict | None:
                services.check()
                task = etl_task(api, run_id)
                return task if task["try_number"] == 2 and task["state"] == "deferred" else None

            task = support.wait_for("the ETL task's retry to defer", retry_deferred, timeout=RUN_TIMEOUT, every=1)
            deferred_before_restart = (task["try_number"], task["state"])

            # 2. Every service killed while the task is deferred on the run, then started again.
            kill_every_service(services)
            restarted = airflow_services._start(services.env, services.port, print)
            airflow_services._wait_for_api(restarted)
            faults.release_job_runs(endpoint, ETL_JOB)
            first = processing(restarted, restarted.api(), run_id, glue, env, set())

            # 3. The finished day reprocessed: run_etl_job and what follows it cleared.
            before = {run["Id"] for job in (ETL_JOB, LOAD_JOB) for run in support.job_runs(glue, job, DAY.isoformat())}
            api = restarted.api()
            api.post(f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
                "dry_run": False, "dag_run_id": run_id, "task_ids": ["run_etl_job"], "include_downstream": True,
                "only_failed": False, "reset_dag_runs": True,
            })
            support.wait_for("the cleared run to start again",
                             lambda: api.run(DAG_ID, run_id)["state"] not in TERMINAL, timeout=120, every=0.5)
            cleared = processing(restarted, api, run_id, glue, env, before)
        finally:
            faults.release_start_answer(endpoint, ETL_JOB)
            faults.release_job_runs(endpoint, ETL_JOB)
            if restarted is not None:
                airflow_services._stop(restarted, print)
    return Scenario(killed_pid, killed_during_start, deferred_before_restart, first, cleared)


def test_a_worker_lost_before_the_deferral_leaves_one_etl_run_that_the_retry_takes_over(scenario, aws, env, raw_zone):
    assert scenario.killed_during_start, "the task was not waiting for StartJobRun when it was killed"
    assert scenario.deferred_before_restart == (2, "deferred")
    first = scenario.first
    assert first.state == "success"
    # The retry (try 2) took over the run the killed try started, and the restart added no try.
    assert first.etl_tries == 2
    assert [run["JobRunState"] for run in first.etl_runs] == ["SUCCEEDED"]
    assert [run["JobRunState"] for run in first.load_runs] == ["SUCCEEDED"]
    assert first.rows == support.expected_day_rows(aws("s3"), env["RAW_BUCKET"], raw_zone, DAY.isoformat())
    (audit,) = first.audits
    assert (audit["etl_job_run_id"], audit["load_job_run_id"]) == (first.etl_runs[0]["Id"], first.load_runs[0]["Id"])


def test_a_cleared_day_starts_new_glue_runs_and_replaces_the_day(scenario, aws, env, raw_zone):
    cleared = scenario.cleared
    assert cleared.state == "success"
    assert cleared.etl_tries == 3
    assert [run["JobRunState"] for run in cleared.etl_runs] == ["SUCCEEDED"]
    assert [run["JobRunState"] for run in cleared.load_runs] == ["SUCCEEDED"]
    assert cleared.etl_runs[0]["Id"] != scenario.first.etl_runs[0]["Id"]
    assert cleared.rows == scenario.first.rows == support.expected_day_rows(aws("s3"), env["RAW_BUCKET"], raw_zone, DAY.isoformat())
    (audit,) = cleared.audits
    assert (audit["etl_job_run_id"], audit["load_job_run_id"]) == (cleared.etl_runs[0]["Id"], cleared.load_runs[0]["Id"])
