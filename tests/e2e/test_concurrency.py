"""End to end: runs that start together and share the crawler and the Glue jobs.

One scenario serves every test of the module, on the sample data moved to October 2021 and in a corner
of the stack of its own (raw and processed buckets, catalog database, crawler, Glue jobs), which starts
empty but for the crawler and the jobs, defined as the template defines the stack's own. Airflow's own
services (scheduler, triggerer, ...) then run, all at once:

- a backfill of days D1 and D2, both days at once, and
- a manual run of D2, as the UI's Trigger makes it with its default logical date (now) on the day
  after D2 (logical date D2 + 1 06:00, so another logical date than the backfill's run of D2, but the
  same data interval: the latest complete day), queued before the backfill so that all three start
  together;

while another deployment, with scripts of another version, keeps moving the two Glue jobs' definitions
to its own script and package (UpdateJob), as a redeployment of the template could meanwhile.

Every run must succeed at once (no task needs a retry); day D2 must hold exactly the rows and the
audit row of one of its two runs, whose Glue runs the audit row names; every Glue run must have
executed the scripts version its own DAG run deployed, and the audit rows must name it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from dev import airflow_runs, commands
from dev.airflow_api import TERMINAL, RestApi, midnight, when
from dev.airflow_services import Services, running_services
from dev.raw_zone import upload_raw_zone
from include import glue_deploy
from include.run_scope import run_key
from tests import support
from tests.support import AUDIT_COLUMNS, warehouse_rows

pytestmark = pytest.mark.stack

# Past days (a manual run may not start before its run_after) that no other test uses.
SHIFT = date(2021, 10, 1) - date(2025, 10, 1)
D1, D2 = (date.fromisoformat(day) + SHIFT for day in commands.SAMPLE_DAYS[:2])
DAG_ID = commands.DAG_ID
ISOLATED = {
    "RAW_BUCKET": "hardware-correlation-concurrency-raw",
    "PROCESSED_BUCKET": "hardware-correlation-concurrency-processed",
    "GLUE_DATABASE": "hardware_correlation_concurrency_raw",
    "CRAWLER_NAME": "hardware-correlation-concurrency-raw",
    "ETL_JOB_NAME": "hardware-correlation-concurrency-etl",
    "LOAD_JOB_NAME": "hardware-correlation-concurrency-load",
}
JOBS = (ISOLATED["ETL_JOB_NAME"], ISOLATED["LOAD_JOB_NAME"])
# Glue tasks and the swap: none of them needs a second try.
FIRST_TRY_TASKS = ("run_crawler", "run_etl_job", "run_load_job", "collect_run_audit",
                   "swap_day_into_warehouse")
RUN_TIMEOUT = 2400
ACTIVE = ("STARTING", "RUNNING", "STOPPING", "WAITING")


# -- the other deployment -------------------------------------------------------------------------


class OtherDeployment(threading.Thread):
    """Moves both Glue jobs to another scripts version again and again while the runs go, as a
    redeployment's UpdateJob would; counts the moves made while a run of the job was
    starting or running."""

    def __init__(self, glue, artifacts: glue_deploy.GlueArtifacts) -> None:
        super().__init__(daemon=True)
        self.glue, self.artifacts = glue, artifacts
        self.done = threading.Event()
        self.moves_while_running = 0
        self.error: BaseException | None = None

    def _move(self, job_name: str, script: str) -> None:
        job = self.glue.get_job(JobName=job_name)["Job"]
        update = {key: job[key] for key in support.JOB_FIELDS if job.get(key) is not None}
        update["Command"] = {**job["Command"], "ScriptLocation": script}
        update["DefaultArguments"] = {
            **job.get("DefaultArguments", {}), "--extra-py-files": self.artifacts.extra_py_files
        }
        self.glue.update_job(JobName=job_name, JobUpdate=update)
        runs = self.glue.get_job_runs(JobName=job_name)["JobRuns"]
        if any(run["JobRunState"] in ACTIVE for run in runs):
            self.moves_while_running += 1

    def run(self) -> None:
        scripts = dict(zip(JOBS, (self.artifacts.etl_script, self.artifacts.load_script), strict=True))
        try:
            while not self.done.wait(0.5):
                for job_name, script in scripts.items():
                    self._move(job_name, script)
        except BaseException as error:  # reported by the tests
            self.error = error


# -- the scenario ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    backfill: list[airflow_runs.DayResult]
    manual_run_id: str
    manual_state: str
    runs: dict[str, tuple[date, datetime, datetime]]  # run_id -> (day, start, end)
    tries: list[tuple[str, str, int, str]]  # (run_id, task_id, try_number, state)
    glue_runs: dict[str, list[dict]] = field(default_factory=dict)  # job -> its runs
    moves_while_running: int = 0
    scripts_version: str = ""
    other_version: str = ""


def _wait_for_run(services: Services, api: RestApi, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        services.check()
        state = api.run(DAG_ID, run_id)["state"]
        if state in TERMINAL:
            return state
        assert time.monotonic() < deadline, f"run {run_id} still {state} after {RUN_TIMEOUT} s"
        time.sleep(airflow_runs.POLL_SECONDS)


def _forget_runs_of_the_days(api: RestApi) -> None:
    """Airflow's records of earlier sessions' runs of D1 and D2: the runs below must be new. A run of a
    day is at a logical date from its midnight to the next day's (a scheduled or manual run)."""
    for run in api.runs_at(DAG_ID, midnight(D1), midnight(D2 + timedelta(days=2))):
        if D1 <= when(run["data_interval_start"]).date() <= D2:
            api.delete(api.run_path(DAG_ID, run["dag_run_id"]))


@pytest.fixture(scope="module")
def raw_zone(tmp_path_factory) -> Path:
    return support.shifted_sample(tmp_path_factory.mktemp("concurrency-raw-zone"), SHIFT)


@pytest.fixture(scope="module")
def env(stack) -> dict[str, str]:
    return {**commands.stack_env(), **ISOLATED}


@pytest.fixture(scope="module")
def scenario(env, aws, raw_zone, tmp_path_factory) -> Scenario:
    s3, glue = aws("s3"), aws("glue")
    support.empty_corner(env, aws, (D1, D2))
    upload_raw_zone(raw_zone, env["RAW_BUCKET"], s3)

    # The other deployment's scripts: the same code, one comment apart, so another content version.
    other_scripts = tmp_path_factory.mktemp("other-version") / "glue_scripts"
    shutil.copytree(glue_deploy.GLUE_SCRIPTS_DIR, other_scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for name in glue_deploy.ENTRY_POINTS:
        (other_scripts / name).write_text((other_scripts / name).read_text() + "\n# another deployment\n")
    other = glue_deploy.deploy(s3, env["ARTIFACTS_BUCKET"], scripts_dir=other_scripts)
    ours = glue_deploy.scripts_version()
    assert other.version != ours
    mover = OtherDeployment(glue, other)

    manual_moment = f"{D2 + timedelta(days=1)}T06:00:00+00:00"
    with running_services(env, parallel=3) as services:
        if services.env.get("CRAWLER_NAME") != env["CRAWLER_NAME"]:
            # `make airflow`'s services: they run the DAG with the stack's own names, not this corner's.
            pytest.skip("`make airflow` is running; stop it (make down) to run this scenario in its own corner")
        try:
            was_paused = services.wait_until_parsed(DAG_ID, "hardware_correlation.py", print)
            api = services.api()
            _forget_runs_of_the_days(api)
            if not was_paused:
                api.set_paused(DAG_ID, True)
            # Queued while the DAG is paused: it starts with the backfill's runs once it is unpaused. A
            # manual run made at `manual_moment`, as the UI's Trigger makes it then with its default
            # logical date (its data interval is the latest day complete at that moment).
            manual = api.post(
                f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": manual_moment, "run_after": manual_moment}
            )
            manual_run_id = manual["dag_run_id"]
            assert when(manual["data_interval_start"]).date() == D2
            backfill = airflow_runs._create_backfill(api, DAG_ID, D1, D2, 2)
            mover.start()
            api.set_paused(DAG_ID, False)
            results = airflow_runs._follow(services, api, DAG_ID, backfill, D1, D2, 2, print)
            manual_state = _wait_for_run(services, api, manual_run_id)
            airflow_runs._wait_until_completed(services, api, backfill["id"], print)
            if was_paused:
                api.set_paused(DAG_ID, True)
            records = [
                api.run(DAG_ID, manual_run_id),
                *(run for run in api.runs_at(DAG_ID, midnight(D1), midnight(D2)) if airflow_runs._is_of(backfill, run)),
            ]
            runs = {
                run["dag_run_id"]: (when(run["data_interval_start"]).date(), when(run["start_date"]), when(run["end_date"]))
                for run in records
            }
            tries = [
                (run_id, task["task_id"], task["try_number"], task["state"])
                for run_id in runs for task in api.task_instances(DAG_ID, run_id)
            ]
        finally:
            mover.done.set()
            if mover.is_alive():
                mover.join(timeout=30)
    assert mover.error is None, f"the other deployment's updates failed: {mover.error!r}"
    glue_runs = {job: glue.get_job_runs(JobName=job)["JobRuns"] for job in JOBS}
    return Scenario(results, manual_run_id, manual_state, runs, tries, glue_runs, mover.moves_while_running,
                    ours, other.version)


# -- reading the results --------------------------------------------------------------------------


def _warehouse(env: dict[str, str], day: date) -> tuple[set[tuple], dict]:
    rows = warehouse_rows(env["WAREHOUSE_DSN"], str(day))
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pipeline_run_audit WHERE log_date = %s", (day,))
        audits = [dict(zip([c.name for c in cursor.description], row, strict=True)) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'staging' AND tablename LIKE %s",
            (f"%\\_{day:%Y%m%d}\\_%",),
        )
        staging = [row[0] for row in cursor.fetchall()]
    connection.close()
    assert len(audits) == 1, audits
    assert staging == [], f"staging tables left behind: {staging}"
    return rows, audits[0]


def _glue_runs_of(scenario: Scenario, job: str, run_id: str) -> list[dict]:
    """The Glue runs that the DAG run started: both jobs read or write the run's own folder."""
    folder = f"/hardware_error_analysis/run={run_key(run_id)}/"
    return [run for run in scenario.glue_runs[job] if folder in run.get("Arguments", {}).get("--processed_path", "")]


# -- the tests ------------------------------------------------------------------------------------


def test_runs_starting_together_all_succeed_first_time(scenario, aws, env):
    assert [(result.day, result.state) for result in scenario.backfill] == [(D1, "success"), (D2, "success")]
    assert scenario.manual_state == "success"
    assert sorted(day for day, _, _ in scenario.runs.values()) == [D1, D2, D2]
    # The three runs really overlapped: each started before any of them had finished.
    assert max(start for _, start, _ in scenario.runs.values()) < min(end for _, _, end in scenario.runs.values())
    retried = [(run_id, task_id, tries) for run_id, task_id, tries, _ in scenario.tries
               if task_id in FIRST_TRY_TASKS and tries != 1]
    assert retried == []
    assert {task_id for _, task_id, _, state in scenario.tries if state != "success"} == set()
    glue = aws("glue")
    assert glue.get_crawler(Name=env["CRAWLER_NAME"])["Crawler"]["LastCrawl"]["Status"] == "SUCCEEDED"
    # Each job holds every run: one ETL and one load run per DAG run.
    for job in JOBS:
        assert len(scenario.glue_runs[job]) == 3, job
        assert {run["JobRunState"] for run in scenario.glue_runs[job]} == {"SUCCEEDED"}


@pytest.mark.parametrize("day", [D1, D2], ids=str)
def test_each_day_holds_exactly_one_complete_runs_rows_and_audit(scenario, aws, env, raw_zone, day):
    rows, audit = _warehouse(env, day)
    assert rows == support.expected_day_rows(aws("s3"), env["RAW_BUCKET"], raw_zone, str(day))
    assert audit["loaded"] == len(rows)
    assert audit["input_rows"] == sum(audit[name] for name in AUDIT_COLUMNS[1:])
    runs_of_the_day = [run_id for run_id, (run_day, _, _) in scenario.runs.items() if run_day == day]
    assert audit["dag_run_id"] in runs_of_the_day
    # The audit row names the Glue runs of the DAG run whose rows were swapped in, and no other's.
    (etl,) = _glue_runs_of(scenario, ISOLATED["ETL_JOB_NAME"], audit["dag_run_id"])
    (load,) = _glue_runs_of(scenario, ISOLATED["LOAD_JOB_NAME"], audit["dag_run_id"])
    assert (audit["etl_job_run_id"], audit["load_job_run_id"]) == (etl["Id"], load["Id"])
    assert etl["Arguments"]["--log_date"] == load["Arguments"]["--log_date"] == day.isoformat()


def test_both_runs_of_a_day_wrote_apart(scenario, aws, env):
    s3 = aws("s3")
    runs_of_d2 = sorted(run_id for run_id, (run_day, _, _) in scenario.runs.items() if run_day == D2)
    assert len(runs_of_d2) == 2 and scenario.manual_run_id in runs_of_d2
    audits = {}
    for run_id in runs_of_d2:
        (etl,) = _glue_runs_of(scenario, ISOLATED["ETL_JOB_NAME"], run_id)
        key = f"audit/run={run_key(run_id)}/log_date={D2}/audit.json"
        audits[run_id] = json.loads(s3.get_object(Bucket=env["PROCESSED_BUCKET"], Key=key)["Body"].read())
        assert audits[run_id]["job_run_id"] == etl["Id"]
    first, second = audits.values()
    counts = [name for name in first if name not in ("job_run_id", "scripts_version")]
    assert {name: first[name] for name in counts} == {name: second[name] for name in counts}


def test_every_glue_run_ran_the_scripts_version_of_its_own_run(scenario, env):
    assert scenario.moves_while_running > 0, "the other deployment never moved a job while a run was active"
    bucket = env["ARTIFACTS_BUCKET"]
    ours = f"s3://{bucket}/glue-scripts/{scenario.scripts_version}"
    for job, entry in zip(JOBS, glue_deploy.ENTRY_POINTS, strict=True):
        for run in scenario.glue_runs[job]:
            arguments = run["Arguments"]
            assert arguments["--scriptLocation"] == f"{ours}/{entry}", run["Id"]
            assert arguments["--extra-py-files"] == f"{ours}/{glue_deploy.TRANSFORM_PACKAGE}.zip", run["Id"]
    for day in (D1, D2):
        _, audit = _warehouse(env, day)
        assert audit["scripts_version"] == scenario.scripts_version != scenario.other_version
