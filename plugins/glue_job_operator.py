"""GlueJobOperator for a Glue job that many DAG runs, of one or several scripts versions, share.

- **Create or update, whoever comes first.** With `update_config=True` the provider's hook looks the
  job up, then creates it when it was missing. Runs that start together on a new deployment all find
  no job; every one but the first then fails with AlreadyExistsException, and its retries fail the
  same way while the race lasts. Here a create that lost the race updates the job instead, and an
  update that collides with another (ConcurrentModificationException) leaves the job as that one
  set it: the run does not depend on the definition (below).
- **A run executes its own scripts version.** The job definition is shared: between this task's
  UpdateJob and its StartJobRun, a run of another version may update it again. So every run names
  its script and its `--extra-py-files` in its own arguments (Glue's `--scriptLocation` overrides
  the job's ScriptLocation for that run), and whatever the definition says then does not matter.
- **Fail fast on bad input.** The Glue scripts report a problem with the data they were given (a file
  whose header drifted, a day missing from the Data Catalog) as an ErrorMessage that starts with the
  error's class name. A retry reads the same input and fails the same way, so such a failure ends the
  task at once, with Glue's message; every other failure (a lost executor, the warehouse down) is
  retried as usual.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.glue import GlueJobHook
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.exceptions import ClientError

from include.task_failure import glue_job_run

# The ErrorMessage prefixes of the scripts' input errors (glue_scripts/hardware_correlation/storage.py).
INPUT_ERRORS = ("JobInputError: ", "SchemaDriftError: ")
# CreateJob's answers when the name is taken: another run created the job since it was looked up.
_CREATED_MEANWHILE = ("AlreadyExistsException", "IdempotentParameterMismatchException")


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class SharedGlueJobHook(GlueJobHook):
    def create_or_update_glue_job(self) -> str | None:
        if self.job_name is None:
            raise ValueError("job_name must be set to create or update a Glue job")
        # Built once: building it takes Command out of create_job_kwargs.
        config = self.create_glue_job_config()
        if not self.has_job(self.job_name):
            try:
                self.log.info("Creating job: %s", self.job_name)
                self.conn.create_job(**config)
                return self.job_name
            except ClientError as error:
                if _error_code(error) not in _CREATED_MEANWHILE:
                    raise
                self.log.info("Job %s was created by another run meanwhile: updating it", self.job_name)
        try:
            # update_job takes Name out of what it is given.
            self.update_job(**dict(config))
        except ClientError as error:
            if _error_code(error) != "ConcurrentModificationException":
                raise
            self.log.info("Job %s is being updated by another run; this run names its own scripts", self.job_name)
        return self.job_name


class FailFastGlueJobOperator(GlueJobOperator):
    aws_hook_class = SharedGlueJobHook

    def execute(self, context: Any) -> Any:
        # Rendered by now: the script and the package of the version this DAG run deployed.
        pinned = {"--scriptLocation": self.script_location}
        extra_py_files = (self.create_job_kwargs or {}).get("DefaultArguments", {}).get("--extra-py-files")
        if extra_py_files:
            pinned["--extra-py-files"] = extra_py_files
        self.script_args = {**(self.script_args or {}), **pinned}
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
