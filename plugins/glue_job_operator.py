"""The provider's GlueJobOperator, except that a run which failed on its input fails the task at once,
and that the task reports its run's datasets to OpenLineage.

The Glue scripts report a problem with the data they were given (a file whose header drifted, a day
missing from the Data Catalog) as an ErrorMessage that starts with the error's class name. A retry
reads the same input and fails the same way, so such a failure ends the task at once, with Glue's
message; every other failure (a lost executor, the warehouse down) is retried as usual.

The provider's operator reports no datasets, since they are in the script's arguments: the task names
which arguments are its inputs and outputs (`lineage_inputs`, `lineage_outputs`), and
plugins/glue_job_lineage.py turns their rendered values into datasets.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.task_failure import glue_job_run
from plugins.glue_job_lineage import job_run_datasets

# The ErrorMessage prefixes of the scripts' input errors (glue_scripts/hardware_correlation/storage.py).
INPUT_ERRORS = ("JobInputError: ", "SchemaDriftError: ")


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
