"""FailFastGlueJobOperator: a Glue run that failed on its input ends the task without retries; any other
failure is left to the provider and the task's retries; an AWS error while deferred fails the try."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from botocore.exceptions import ClientError

from plugins import glue_job_operator
from plugins.glue_job_operator import FailFastGlueJobOperator, GlueJobRunTrigger


@pytest.fixture
def operator():
    return FailFastGlueJobOperator(task_id="run_etl_job", job_name="etl")


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


def test_the_deferral_uses_the_trigger_that_reports_aws_errors_as_an_event(operator):
    provider_trigger = GlueJobCompleteTrigger(job_name="etl", run_id="jr_1", verbose=True, waiter_delay=2)
    with pytest.raises(TaskDeferred) as deferred:
        operator.defer(trigger=provider_trigger, method_name="execute_complete")
    trigger = deferred.value.trigger
    assert type(trigger) is GlueJobRunTrigger
    assert trigger.serialize() == ("plugins.glue_job_operator.GlueJobRunTrigger", provider_trigger.serialize()[1])


def test_an_aws_error_while_polling_ends_the_trigger_with_an_error_event(monkeypatch):
    async def throttled(self):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetJobRun")
        yield  # an async generator, as the provider's run is

    monkeypatch.setattr(GlueJobCompleteTrigger, "run", throttled)
    trigger = GlueJobRunTrigger(job_name="etl", run_id="jr_1", verbose=True)

    async def events():
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event.payload["status"] == "error" and event.payload["run_id"] == "jr_1"
    assert "ThrottlingException" in event.payload["message"]


def test_a_failed_lookup_of_the_tasks_run_fails_the_try_instead_of_starting_another(operator, monkeypatch):
    # The provider's submit_job asks _find_previous_job_run, which lists the job's runs through
    # _find_job_run_id_by_task_uuid: the override hangs on both names.
    assert "self._find_previous_job_run(" in inspect.getsource(GlueJobOperator.submit_job)

    def throttled(task_uuid):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetJobRuns")

    monkeypatch.setattr(operator, "_find_job_run_id_by_task_uuid", throttled)
    with pytest.raises(AirflowException, match="could not look for a run of this task still going"):
        operator._find_previous_job_run({}, "hardware_correlation:run_etl_job:manual__1:-1")


@pytest.mark.parametrize(("state", "taken_over"), [("STARTING", True), ("RUNNING", True), ("SUCCEEDED", False),
                                                   ("FAILED", False)])
def test_only_a_run_still_going_is_taken_over(operator, monkeypatch, state, taken_over):
    monkeypatch.setattr(operator, "_find_job_run_id_by_task_uuid", lambda task_uuid: ("jr_1", state))
    assert operator._find_previous_job_run({}, "uuid") == ("jr_1" if taken_over else None)
