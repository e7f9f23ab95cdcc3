"""The provider's Glue crawler and job operators, sync and deferrable, under `airflow dags test`.

Runs tests/dev/dags/local_aws_operators.py against the local stack and reads the results back
from the stack (catalog, S3, job runs) and from Airflow's records of the run (its CLI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from tests.support import task_states

pytestmark = pytest.mark.stack

DAG_FOLDER = Path(__file__).parent / "dags"
DAG_ID = "local_aws_operators"
DAGS_TEST_TIMEOUT = 600

JOB_SCRIPT = """
import sys

from pyspark.sql import SparkSession

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
spark = SparkSession.builder.getOrCreate()
frame = spark.createDataFrame([(args["--mode"], args["--JOB_RUN_ID"])], "mode string, run_id string")
frame.write.mode("overwrite").json(args["--output"])
print("job ran in mode", args["--mode"])
"""


def _run_dags_test(env: dict[str, str], logical_date: str, dag_id: str = DAG_ID) -> subprocess.CompletedProcess[str]:
    # `dags test` runs deferred triggers inline without a timeout and shrugs off SIGTERM: on timeout
    # the whole process group is killed.
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, logical_date],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=DAGS_TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"airflow dags test did not finish within {DAGS_TEST_TIMEOUT} s:\n{output[-5000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def test_provider_crawler_and_job_operators_run_against_the_stack(stack):
    suffix = uuid.uuid4().hex[:10]
    names = {
        "LOCAL_AWS_DAG_BUCKET": f"local-aws-dag-{suffix}",
        "LOCAL_AWS_DAG_CRAWLER": f"local-aws-dag-crawler-{suffix}",
        "LOCAL_AWS_DAG_DATABASE": f"local_aws_dag_{suffix}",
        "LOCAL_AWS_DAG_JOB": f"local-aws-dag-job-{suffix}",
    }
    session = boto3.session.Session(
        aws_access_key_id=stack["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
        region_name=stack["AWS_DEFAULT_REGION"],
    )
    s3 = session.client("s3", endpoint_url=stack["AWS_ENDPOINT_URL"])
    glue = session.client("glue", endpoint_url=stack["AWS_ENDPOINT_URL"])
    bucket = names["LOCAL_AWS_DAG_BUCKET"]
    s3.create_bucket(Bucket=bucket)
    customers = b"customer_id,customer_name,industry\nC1,Acme,Retail\n"
    s3.put_object(Bucket=bucket, Key="raw/customers/customers.csv", Body=customers)
    alert = {"device_id": "D1", "error_code": 7, "details": "fan", "alert_timestamp": "2025-10-01T10:00:00Z"}
    s3.put_object(Bucket=bucket, Key="raw/alerts/dt=2025-10-01/a.json", Body=json.dumps(alert).encode())
    s3.put_object(Bucket=bucket, Key="scripts/job.py", Body=JOB_SCRIPT.encode())

    env = {**os.environ, **stack, **names, "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER)}
    logical_date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    result = _run_dags_test(env, logical_date)

    states = task_states(env, DAG_ID, logical_date)
    tasks = ("create_crawler", "update_crawler", "crawl", "crawl_deferred", "job", "job_deferred")
    expected = {name: "success" for name in tasks}
    assert states == expected, result.stdout[-8000:]

    crawler = glue.get_crawler(Name=names["LOCAL_AWS_DAG_CRAWLER"])["Crawler"]
    assert crawler["LastCrawl"]["Status"] == "SUCCEEDED"
    assert len(crawler["Targets"]["S3Targets"]) == 2
    tables = {t["Name"] for t in glue.get_tables(DatabaseName=names["LOCAL_AWS_DAG_DATABASE"])["TableList"]}
    assert tables == {"customers", "alerts"}

    runs = glue.get_job_runs(JobName=names["LOCAL_AWS_DAG_JOB"])["JobRuns"]
    assert sorted(run["JobRunState"] for run in runs) == ["SUCCEEDED", "SUCCEEDED"]
    for mode in ("sync", "deferred"):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"out/{mode}/").get("Contents", [])]
        assert f"out/{mode}/_SUCCESS" in keys
    # verbose=True: the job's CloudWatch output reached the task log.
    assert "job ran in mode sync" in result.stdout
