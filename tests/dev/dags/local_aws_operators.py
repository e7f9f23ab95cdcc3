"""Test DAG: the amazon provider's Glue crawler and job operators, unmodified, against the local stack.

Creates a crawler, updates it, runs it synchronously and deferred, then runs a PySpark Glue job
synchronously and deferred. tests/dev/test_local_aws_dag.py seeds the data and the script, runs
this DAG with `airflow dags test` and checks the results in the stack. Names come from the
environment so that each test run uses its own.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.glue_crawler import (
    GlueCrawlerCreateOperator,
    GlueCrawlerRunOperator,
    GlueCrawlerUpdateOperator,
)
from airflow.sdk import chain, dag

BUCKET = os.environ.get("LOCAL_AWS_DAG_BUCKET", "local-aws-dag-test")
CRAWLER = os.environ.get("LOCAL_AWS_DAG_CRAWLER", "local-aws-dag-crawler")
DATABASE = os.environ.get("LOCAL_AWS_DAG_DATABASE", "local_aws_dag_test")
JOB = os.environ.get("LOCAL_AWS_DAG_JOB", "local-aws-dag-job")
# A role the stack's template created: Glue runs crawls and jobs as it, and it must exist.
ROLE = os.environ.get("ETL_ROLE_NAME", "hardware-correlation-etl")


def _crawler_config(folders: list[str]) -> dict:
    return {
        "Name": CRAWLER,
        "Role": ROLE,
        "DatabaseName": DATABASE,
        "Targets": {"S3Targets": [{"Path": f"s3://{BUCKET}/raw/{folder}/"} for folder in folders]},
    }


def _job(task_id: str, mode: str, deferrable: bool) -> GlueJobOperator:
    return GlueJobOperator(
        task_id=task_id,
        job_name=JOB,
        script_location=f"s3://{BUCKET}/scripts/job.py",
        s3_bucket=BUCKET,
        iam_role_name=ROLE,
        create_job_kwargs={"GlueVersion": "5.0", "WorkerType": "G.1X", "NumberOfWorkers": 2, "Timeout": 10},
        script_args={"--output": f"s3://{BUCKET}/out/{mode}/", "--mode": mode},
        verbose=True,
        job_poll_interval=1,
        deferrable=deferrable,
        waiter_delay=1,
        waiter_max_attempts=600,
    )


@dag(
    dag_id="local_aws_operators",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    doc_md=__doc__,
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=10)},
)
def local_aws_operators():
    create_crawler = GlueCrawlerCreateOperator(task_id="create_crawler", config=_crawler_config(["customers"]))
    update_crawler = GlueCrawlerUpdateOperator(
        task_id="update_crawler", config=_crawler_config(["customers", "alerts"])
    )
    crawl = GlueCrawlerRunOperator(task_id="crawl", crawler_name=CRAWLER, poll_interval=1)
    crawl_deferred = GlueCrawlerRunOperator(
        task_id="crawl_deferred", crawler_name=CRAWLER, poll_interval=1, deferrable=True
    )
    chain(create_crawler, update_crawler, crawl, crawl_deferred, _job("job", "sync", False), _job("job_deferred", "deferred", True))


local_aws_operators()
