"""End to end with Docker: `docker compose up -d --wait`, seed, trigger day D through Airflow's REST
API, and read the warehouse back from the compose file's PostgreSQL.

Runs where a Docker engine and the Compose v2 CLI answer (`.ci/run` installs and starts both); skips
elsewhere, saying why. The project name and the published ports are the test's own, so it runs beside
a developer's `docker compose up` and beside other runs of itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.parse
import uuid

import boto3
import pytest

from dev import airflow_services, commands
from dev.airflow_api import LocalAirflowError, RestApi
from tests.e2e.test_sample_days import expected_day, warehouse_day
from tests.support import wait_for

pytestmark = pytest.mark.docker

REPO = commands.REPO
DAG_ID = commands.DAG_ID
DAY = "2025-10-01"
# A manual run at logical date D 00:00 processes log day D (its data interval is [D, D + 1)).
LOGICAL_DATE = "2025-10-01T00:00:00Z"
BUILD_TIMEOUT = 1800
UP_TIMEOUT = 600
RUN_TIMEOUT = 1200
# Where the test writes how long each step took (the note on cold and warm image caches quotes it).
TIMINGS = REPO / ".local" / "compose-test-timings.txt"


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    for command, what in ((["docker", "info"], "no Docker engine answers"),
                          (["docker", "compose", "version"], "no Compose v2 CLI plugin")):
        if subprocess.run(command, capture_output=True, timeout=60, check=False).returncode != 0:
            return f"{what} (`.ci/run` installs and starts them: dev/docker/)"
    return None


class Compose:
    """`docker compose` on the repository's compose file, under a project name of its own."""

    def __init__(self) -> None:
        self.project = f"hc-test-{uuid.uuid4().hex[:8]}"
        self.ports = {name: airflow_services.free_port() for name in ("AIRFLOW_PORT", "AWS_PORT", "ALERTS_API_PORT", "POSTGRES_PORT")}
        # An image tag of its own: another checkout's run cannot swap the image under this one. Its
        # layers are shared with any earlier build of the same files (`.ci/run` builds one early).
        self.image = f"hardware-correlation:{self.project}"
        self.env = {**os.environ, "PROJECT_IMAGE": self.image, **{name: str(port) for name, port in self.ports.items()}}
        # Only the compose file's own defaults: nothing of a developer's shell decides the test.
        for name in ("COMPOSE_PROJECT_NAME", "AIRFLOW_UI_USER", "AIRFLOW_UI_PASSWORD", "WAREHOUSE_USER",
                     "WAREHOUSE_PASSWORD"):
            self.env.pop(name, None)
        self.timings: dict[str, float] = {}

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "--project-name", self.project, "--project-directory", str(REPO), *args]
        started = time.monotonic()
        result = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)
        self.timings[" ".join(args[:2])] = time.monotonic() - started
        if check and result.returncode != 0:
            raise AssertionError(
                f"`docker compose {' '.join(args)}` failed ({result.returncode}):\n{result.stdout[-3000:]}"
                f"\n{result.stderr[-3000:]}\n--- service logs ---\n{self.logs()}"
            )
        return result

    def logs(self) -> str:
        result = subprocess.run(
            ["docker", "compose", "--project-name", self.project, "--project-directory", str(REPO), "logs",
             "--no-color", "--tail", "40"],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )
        return result.stdout[-12000:]


@pytest.fixture(scope="module")
def compose():
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)
    project = Compose()
    try:
        project("build", timeout=BUILD_TIMEOUT)
        project("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT), timeout=UP_TIMEOUT + 60)
        yield project
    finally:
        project("down", "-v", "--remove-orphans", timeout=300, check=False)
        subprocess.run(["docker", "image", "rm", project.image], capture_output=True, timeout=120, check=False)
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text("".join(f"{step}: {seconds:.0f} s\n" for step, seconds in project.timings.items()))


def test_a_day_triggered_through_the_rest_api_goes_green_with_the_contract_rows(compose):
    seeded = compose("run", "--rm", "aws", "python", "-m", "dev.raw_zone", "dev/sample_data")
    assert "uploaded" in seeded.stdout, seeded.stdout + seeded.stderr

    # The compose file's defaults: the UI's login is airflow / airflow.
    api = RestApi(f"http://127.0.0.1:{compose.ports['AIRFLOW_PORT']}", user="airflow", password="airflow")
    dag = wait_for("the DAG to be parsed", lambda: _get_or_none(api, f"/api/v2/dags/{DAG_ID}"), 300, 5.0)
    assert dag["is_paused"], "a new DAG starts paused, as in the official compose file"
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run_id = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": LOGICAL_DATE})["dag_run_id"]
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    started = time.monotonic()
    run = wait_for(f"run {run_id} to finish", lambda: _finished(api, path), RUN_TIMEOUT, 5.0)
    compose.timings["day run"] = time.monotonic() - started
    if run["state"] != "success":
        failed = api.get(f"{path}/taskInstances?state=failed")["task_instances"]
        pytest.fail(f"run {run_id} is {run['state']}; failed tasks: {[t['task_id'] for t in failed]}\n{compose.logs()}")
    tasks = api.get(f"{path}/taskInstances")["task_instances"]
    assert {task["state"] for task in tasks} == {"success"}, [(t["task_id"], t["state"]) for t in tasks]

    # The rows of docs/contract.md for D, computed from the raw files as they landed in the compose stack's S3.
    s3 = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{compose.ports['AWS_PORT']}", region_name="us-east-1",
        aws_access_key_id="local-stack-access-key", aws_secret_access_key="local-stack-secret-key",  # noqa: S106
    )
    expected, counts = expected_day(s3, "hardware-correlation-raw", DAY)
    dsn = f"postgresql://warehouse:warehouse@127.0.0.1:{compose.ports['POSTGRES_PORT']}/warehouse"
    rows, audit = warehouse_day(dsn, DAY)
    assert expected, "the sample day has rows to load"
    assert rows == expected
    assert audit is not None and {key: audit[key] for key in counts} == counts


def _get_or_none(api: RestApi, path: str):
    try:
        return api.get(path)
    except LocalAirflowError:
        return None


def _finished(api: RestApi, path: str):
    run = api.get(path)
    return run if run["state"] in ("success", "failed") else None
