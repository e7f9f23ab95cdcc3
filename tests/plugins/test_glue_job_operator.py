"""FailFastGlueJobOperator: a Glue run that failed on its input ends the task without retries, and the
job that many runs share is set up safely however many of them start at once."""

from __future__ import annotations

import threading
import uuid

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from plugins import glue_job_operator
from include.settings import load
from plugins.glue_job_operator import FailFastGlueJobOperator, SharedGlueJobHook

RUNS_AT_ONCE = 6


@pytest.fixture
def operator():
    return FailFastGlueJobOperator(task_id="run_etl_job", job_name="etl", script_location="s3://b/etl.py")


def failed_run(message: str) -> dict:
    return {"Id": "jr_1", "JobRunState": "FAILED", "ErrorMessage": message}


@pytest.mark.parametrize("message", ["JobInputError: no partition dt=2025-10-01", "SchemaDriftError: a.csv header"])
def test_an_input_error_fails_the_task_without_retries(operator, monkeypatch, message):
    monkeypatch.setattr(glue_job_operator, "glue_job_run", lambda task, ti: failed_run(message))
    with pytest.raises(AirflowFailException, match="not retried") as raised:
        operator._fail_fast_on_input_error({"ti": None}, AirflowException("Job run jr_1 FAILED"))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "run",
    [
        failed_run("Py4JJavaError: executor lost"),
        {"Id": "jr_1", "JobRunState": "TIMEOUT", "ErrorMessage": "JobInputError: looks like one"},
        None,
    ],
    ids=["other error", "not FAILED", "no run"],
)
def test_any_other_failure_is_left_to_the_retries(operator, monkeypatch, run):
    monkeypatch.setattr(glue_job_operator, "glue_job_run", lambda task, ti: run)
    operator._fail_fast_on_input_error({"ti": None}, AirflowException("Job run jr_1 failed"))


def test_a_failed_get_job_run_is_logged_and_left_to_the_retries(operator, monkeypatch, capfd):
    def unreachable(task, ti):
        raise ConnectionError("Glue endpoint unreachable")

    monkeypatch.setattr(glue_job_operator, "glue_job_run", unreachable)
    # Returns without raising: the caller re-raises the provider's error, and retries apply.
    assert operator._fail_fast_on_input_error({"ti": None}, AirflowException("job failed")) is None
    # Airflow's task loggers write through structlog, to the process's output.
    output = "".join(capfd.readouterr())
    (line,) = [line for line in output.splitlines() if "could not read Glue job" in line]
    assert "warning" in line.lower() and "Glue job etl's run" in line
    assert "ConnectionError: Glue endpoint unreachable" in output


@pytest.fixture
def airflow_env(stack, monkeypatch):
    """The stack's Airflow connections and AWS settings, for hooks made in this process."""
    for name, value in stack.items():
        if name.startswith(("AIRFLOW_CONN_", "AWS_")):
            monkeypatch.setenv(name, value)
    return stack


def _hook(job_name: str, script: str) -> SharedGlueJobHook:
    settings = load()
    return SharedGlueJobHook(
        job_name=job_name,
        desc="shared by every run",
        script_location=script,
        iam_role_name=settings.ETL_ROLE_NAME,
        update_config=True,
        create_job_kwargs={
            "GlueVersion": "5.0", "WorkerType": "G.1X", "NumberOfWorkers": 2,
            "DefaultArguments": {"--extra-py-files": script.replace(".py", ".zip")},
        },
        aws_conn_id=settings.AWS_CONN_ID,
    )


def test_runs_setting_up_a_new_job_at_once_all_succeed(airflow_env, aws):
    """Every run finds no job and creates it; those that lose the race update it instead."""
    job_name = f"shared-job-{uuid.uuid4().hex[:10]}"
    hooks = [_hook(job_name, f"s3://artifacts/glue-scripts/v{index}/etl_job.py") for index in range(RUNS_AT_ONCE)]
    for hook in hooks:
        _ = hook.conn  # clients made before the race: it is about the API calls, not client start-up
    start = threading.Barrier(RUNS_AT_ONCE)
    outcomes: list[object] = [None] * RUNS_AT_ONCE

    def set_up(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = hooks[index].create_or_update_glue_job()
        except Exception as error:  # reported below, with the others'
            outcomes[index] = error

    threads = [threading.Thread(target=set_up, args=(index,)) for index in range(RUNS_AT_ONCE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes == [job_name] * RUNS_AT_ONCE
    job = aws("glue").get_job(JobName=job_name)["Job"]
    # The definition is the last writer's, whichever it was: runs do not depend on it.
    scripts = {f"s3://artifacts/glue-scripts/v{index}/etl_job.py" for index in range(RUNS_AT_ONCE)}
    assert job["Command"]["ScriptLocation"] in scripts
