"""The provider's GlueJobOperator, except that a run which failed on its input fails the task at once,
that Glue's API failing while the task waits fails the try the same way everywhere, and that
the task reports its run's datasets to OpenLineage.

The Glue scripts report a problem with the data they were given (a file whose header drifted, a day
missing from the Data Catalog) as an ErrorMessage that starts with the error's class name. A retry
reads the same input and fails the same way, so such a failure ends the task at once, with Glue's
message; every other failure (a lost executor, the warehouse down) is retried as usual.

A retry never starts a second run beside one its task started that is still going: the provider's
`durable` (default on Airflow 3.3) tags each run with the task instance (`--airflow_task_uuid`) and a
retry takes over that task's run when it is still going. A finished run is never taken over, so a
cleared task (a reprocessed day) starts a new one. Where the provider, failing to list the job's runs
(GetJobRuns throttled beyond botocore's retries), logs it and starts a new run, which could be a
second one beside the task's run, this operator fails the try: its retry looks again.

While deferred, the provider's trigger lets an error of GetJobRun (throttling, a 5xx, after
botocore's own retries) escape. A triggerer then fails the try and Airflow retries it, but `airflow
dags test` fails the task outright, retries left or not; `GlueJobRunTrigger` turns such an error into
the trigger's error event instead, so that the try fails and is retried under both, and the retry
takes over the run.

The provider's operator reports no datasets, since they are in the script's arguments: the task names
which arguments are its inputs and outputs (`lineage_inputs`, `lineage_outputs`), and
plugins/glue_job_lineage.py turns their rendered values into datasets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from include.task_failure import glue_job_run
from plugins.glue_job_lineage import job_run_datasets

# The ErrorMessage prefixes of the scripts' input errors (glue_scripts/hardware_correlation/storage.py).
INPUT_ERRORS = ("JobInputError: ", "SchemaDriftError: ")


class GlueJobRunTrigger(GlueJobCompleteTrigger):
    """The provider's trigger, with an AWS error while it polls ending in an error event."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async for event in super().run():
                yield event
        except (ClientError, BotoCoreError) as error:
            yield TriggerEvent({
                "status": "error",
                "message": f"Glue job {self.job_name} run {self.run_id}: its state could not be read: {error}",
                "run_id": self.run_id,
            })


class FailFastGlueJobOperator(GlueJobOperator):
    def __init__(self, *, lineage_inputs: tuple[str, ...] = (), lineage_outputs: tuple[str, ...] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.lineage_inputs = tuple(lineage_inputs)
        self.lineage_outputs = tuple(lineage_outputs)

    def get_openlineage_facets_on_start(self) -> Any:
        return self._lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        # The same datasets: the COMPLETE event is the one some lineage backends read them from.
        return self._lineage()

    def _lineage(self) -> Any:
        # Imported only when lineage is extracted, never while the DAG file is parsed.
        from airflow.providers.openlineage.extractors import OperatorLineage

        glue = self.hook.conn
        return OperatorLineage(
            inputs=job_run_datasets(glue, self.script_args, self.lineage_inputs),
            outputs=job_run_datasets(glue, self.script_args, self.lineage_outputs),
        )

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowException as error:
            self._fail_fast_on_input_error(context, error)
            raise

    def _find_previous_job_run(self, context: Any, task_uuid: str) -> str | None:
        # The provider's own version first reads the previous try's run id from XCom, which Airflow 3
        # clears before every try, then lists the job's runs for the task's UUID; it logs a failure to
        # list them and starts a new run. Here that failure fails the try instead.
        try:
            found = self._find_job_run_id_by_task_uuid(task_uuid)
        except (ClientError, BotoCoreError) as error:
            raise AirflowException(
                f"Glue job {self.job_name}: could not look for a run of this task still going, so none is "
                f"started beside it: {error}"
            ) from error
        if found is None:
            return None
        run_id, state = found
        self.log.info("Found Glue job_run_id by task UUID: %s, state: %s", run_id, state)
        return run_id if self.is_job_active(state) else None

    def defer(self, *, trigger: Any, **kwargs: Any) -> Any:
        # The provider builds its trigger inside execute(), after submit_job (which takes over a run
        # still going): the same trigger, of the class that reports AWS errors as an event.
        if type(trigger) is GlueJobCompleteTrigger:
            _, trigger_kwargs = trigger.serialize()
            trigger = GlueJobRunTrigger(**trigger_kwargs)
        return super().defer(trigger=trigger, **kwargs)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        try:
            return super().execute_complete(context, event)
        except AirflowException as error:
            self._fail_fast_on_input_error(context, error)
            raise

    def _fail_fast_on_input_error(self, context: Any, error: AirflowException) -> None:
        if isinstance(error, AirflowFailException):
            return
        try:
            run = glue_job_run(self, context["ti"])
        except Exception:  # any failure to read the run leaves the provider's error in charge
            # Without the run's record the task fails as the provider said, and retries apply.
            self.log.warning(
                "could not read Glue job %s's run to tell an input error from others; the task may be retried",
                self.job_name, exc_info=True,
            )
            return
        message = (run or {}).get("ErrorMessage") or ""
        if run and run.get("JobRunState") == "FAILED" and message.startswith(INPUT_ERRORS):
            raise AirflowFailException(
                f"Glue job {self.job_name} run {run['Id']} failed on its input; a retry would read the "
                f"same input, so the task is not retried: {message}"
            ) from error
