"""Shared fixtures: one local Spark session, and the local AWS stack with its PostgreSQL."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# In-process Airflow (the DAG integrity tests) keeps its config and database inside the project.
os.environ.setdefault("AIRFLOW_HOME", str(Path(__file__).resolve().parent.parent / ".local" / "airflow-tests"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# The plugin that registers the DAG's timetable, which serializing the DAG needs.
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(Path(__file__).resolve().parent.parent / "plugins"))


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()
    # py4j logs at INFO when its last connection is collected at interpreter exit, after pytest has
    # closed the streams: that would print a "Logging error" traceback under the summary.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """The local stack's environment (the contents of `.local/stack.env`), starting it if needed.

    The stack is left running after the session: `make down` (and `.ci/run`) stop it.
    """
    from dev.local_aws.stack import ensure_up

    return ensure_up()


@pytest.fixture(scope="session")
def aws(stack):
    """A factory of boto3 clients for the local stack: `aws("s3")`."""
    from tests.support import aws_client

    return lambda service: aws_client(stack, service)


def pytest_collection_modifyitems(items):
    """A test that uses the stack is in the `stack` tier whether or not its module says so."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
