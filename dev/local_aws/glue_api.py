"""The Glue API actions the stack adds to or changes in moto.

moto dispatches an API action to the GlueResponse method of the same name (StartJobRun ->
start_job_run), so adding a method adds an action. Added: BatchStopJobRun, UpdateJob, UpdateCrawler,
GetCrawlerMetrics, UpdateConnection, DeleteConnection. Changed: StartJobRun (a real run), GetJobRun
and GetJobRuns (answer an error while the test control faults.fail_job_reads says so), and
StartCrawler/StopCrawler/GetCrawler (a real crawl) through the models in glue_jobs and glue_crawlers;
CreateJob refuses a name that exists with AlreadyExistsException, as Glue does (moto would replace
the job, its runs included, and hide two callers racing to create it).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.glue.exceptions import AlreadyExistsException, EntityNotFoundException, InvalidInputException
from moto.glue.models import FakeConnection, FakeJob
from moto.glue.responses import GlueResponse

from dev.local_aws import glue_crawlers, glue_jobs
from dev.local_aws.glue_jobs import JobRunner
from dev.local_aws.loopback import Loopback

# UpdateJob replaces the whole definition: a field left out of JobUpdate goes back to its default.
_JOB_FIELDS = {
    "Description": ("description", None),
    "LogUri": ("log_uri", None),
    "Role": ("role", None),
    "ExecutionProperty": ("execution_property", {}),
    "Command": ("command", None),
    "DefaultArguments": ("default_arguments", {}),
    "NonOverridableArguments": ("non_overridable_arguments", None),
    "Connections": ("connections", None),
    "MaxRetries": ("max_retries", 0),
    "AllocatedCapacity": ("allocated_capacity", None),
    "Timeout": ("timeout", None),
    "MaxCapacity": ("max_capacity", None),
    "WorkerType": ("worker_type", None),
    "NumberOfWorkers": ("number_of_workers", None),
    "SecurityConfiguration": ("security_configuration", None),
    "NotificationProperty": ("notification_property", None),
    "GlueVersion": ("glue_version", None),
    "CodeGenConfigurationNodes": ("code_gen_configuration_nodes", None),
    "ExecutionClass": ("execution_class", "STANDARD"),
    "SourceControlDetails": ("source_control_details", None),
}


_create_job_lock = threading.Lock()

# The errors faults.fail_job_reads may make the reads answer, with Glue's HTTP status for each, and
# the reads it may fail.
READ_ERRORS = {"ThrottlingException": 400, "InternalServiceException": 500}
READ_ACTIONS = ("GetJobRun", "GetJobRuns")


class InjectedError(JsonRESTError):
    def __init__(self, code: str) -> None:
        super().__init__(code, f"{code} injected by the local stack's fail_job_reads control.")
        self.code = READ_ERRORS[code]


def install(runner: JobRunner, loopback: Loopback) -> None:
    glue_crawlers.install(loopback)
    moto_create_job = GlueResponse.create_job

    def create_job(self: GlueResponse) -> Any:
        # The server answers requests on several threads: the check and the create go together.
        with _create_job_lock:
            if self._get_param("Name") in self.glue_backend.jobs:
                raise AlreadyExistsException("Job")
            return moto_create_job(self)

    GlueResponse.create_job = create_job  # type: ignore[method-assign]
    for action in READ_ACTIONS:
        _fail_when_told(runner, action)

    def start_job_run(self: FakeJob, **kwargs: Any) -> str:
        return glue_jobs.start_job_run(runner, self, **kwargs)

    FakeJob.start_job_run = start_job_run  # type: ignore[method-assign,assignment]

    for name, method in _ACTIONS.items():
        setattr(GlueResponse, name, method)


def _fail_when_told(runner: JobRunner, action: str) -> None:
    method = "get_job_run" if action == "GetJobRun" else "get_job_runs"
    moto_method = getattr(GlueResponse, method)

    def read(self: GlueResponse) -> Any:
        code = runner.controls.read_error(self._get_param("JobName") or "", action)
        if code is not None:
            raise InjectedError(code)
        return moto_method(self)

    setattr(GlueResponse, method, read)


def _batch_stop_job_run(self: GlueResponse) -> ActionResult:
    job = self.glue_backend.get_job(self._get_param("JobName"))
    stopped, errors = glue_jobs.batch_stop_job_run(job, self._get_param("JobRunIds") or [])
    return ActionResult({"SuccessfulSubmissions": stopped, "Errors": errors})


def _update_job(self: GlueResponse) -> ActionResult:
    name = self._get_param("JobName")
    update = self._get_param("JobUpdate") or {}
    job = self.glue_backend.get_job(name)
    if "Role" not in update or "Command" not in update:
        raise InvalidInputException("UpdateJob", "JobUpdate needs at least Role and Command.")
    for key, (attribute, default) in _JOB_FIELDS.items():
        setattr(job, attribute, update.get(key, default))
    job.last_modified_on = datetime.now(timezone.utc)
    return ActionResult({"JobName": name})


def _update_crawler(self: GlueResponse) -> ActionResult:
    crawler = self.glue_backend.get_crawler(self._get_param("Name"))
    glue_crawlers.update_crawler(crawler, self.parameters)
    return EmptyResult()


def _get_crawler_metrics(self: GlueResponse) -> ActionResult:
    names = self._get_param("CrawlerNameList") or [c.name for c in self.glue_backend.get_crawlers()]
    metrics = [glue_crawlers.crawler_metrics(self.glue_backend.get_crawler(name)) for name in names]
    return ActionResult({"CrawlerMetricsList": metrics})


def _update_connection(self: GlueResponse) -> ActionResult:
    name = self._get_param("Name")
    connection_input = self._get_param("ConnectionInput") or {}
    backend = self.glue_backend
    old = backend.connections.get(name)
    if old is None:
        raise EntityNotFoundException(f"Connection {name} not found")
    new = FakeConnection(backend, self._get_param("CatalogId") or old.catalog_id, connection_input, {})
    new.created_time = old.created_time
    del backend.connections[name]
    backend.connections[new.name] = new
    return EmptyResult()


def _delete_connection(self: GlueResponse) -> ActionResult:
    name = self._get_param("ConnectionName")
    if self.glue_backend.connections.pop(name, None) is None:
        raise EntityNotFoundException(f"Connection {name} not found")
    return EmptyResult()


_ACTIONS = {
    "batch_stop_job_run": _batch_stop_job_run,
    "update_job": _update_job,
    "update_crawler": _update_crawler,
    "get_crawler_metrics": _get_crawler_metrics,
    "update_connection": _update_connection,
    "delete_connection": _delete_connection,
}
