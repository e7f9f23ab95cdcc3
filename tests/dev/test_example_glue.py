"""The amazon provider's Glue system test (adapted: tests/dev/dags/example_glue.py) on the local stack.

Its crawler target is `<bucket>/input`, without `s3://`, as AWS accepts it.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import boto3
import pytest

from include.settings import load as load_settings
from tests.support import task_states
from tests.dev.test_local_aws_dag import DAG_FOLDER, _run_dags_test

pytestmark = pytest.mark.stack

DAG_ID = "example_glue"
TASKS = (
    "create_bucket", "upload_csv", "upload_script", "crawl_s3", "wait_for_crawl", "wait_for_catalog_partition",
    "submit_glue_job", "wait_for_job", "glue_cleanup", "delete_bucket", "get_role_name",
)


def test_the_providers_example_glue_dag_runs_against_the_stack(stack):
    env_id = f"exampleglue{uuid.uuid4().hex[:8]}"
    session = boto3.session.Session(
        aws_access_key_id=stack["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
        region_name=stack["AWS_DEFAULT_REGION"],
    )
    iam = session.client("iam", endpoint_url=stack["AWS_ENDPOINT_URL"])
    glue = session.client("glue", endpoint_url=stack["AWS_ENDPOINT_URL"])
    role_arn = iam.get_role(RoleName=load_settings().ETL_ROLE_NAME)["Role"]["Arn"]

    env = {**os.environ, **stack, "EXAMPLE_GLUE_ENV_ID": env_id, "EXAMPLE_GLUE_ROLE_ARN": role_arn,
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER)}
    logical_date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    result = _run_dags_test(env, logical_date, DAG_ID)

    states = task_states(env, DAG_ID, logical_date)
    assert states == dict.fromkeys(TASKS, "success"), result.stdout[-8000:]
    # The crawl found the partition (the sensor waited for it), the job read the three rows.
    assert "There are 3 items in the table" in result.stdout
    # glue_cleanup removed what the DAG created.
    assert env_id + "_crawler" not in glue.list_crawlers()["CrawlerNames"]
    assert env_id + "_glue_db" not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}
