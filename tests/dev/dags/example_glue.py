"""Test DAG: the amazon provider's system test `example_glue.py`, adapted to run on the local stack.

The provider's DAG (providers/amazon/tests/system/amazon/aws/example_glue.py in apache/airflow) with
its task chain, operators, sensors and configuration, including the crawler target written without
`s3://` (`<bucket>/input`). Adapted: the job script is plain PySpark rather than awsglue (which only
exists inside AWS Glue), names and the role come from the environment instead of the system-test
context, the log pruning and the test watcher of the provider's test harness are left out, and the
crawler sensor pokes every 2 s rather than every 60 s (the local crawl takes about 2 s).
tests/dev/test_example_glue.py runs it with `airflow dags test`.
"""

from __future__ import annotations

import os
from datetime import datetime

import boto3
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerOperator
from airflow.providers.amazon.aws.operators.s3 import (
    S3CreateBucketOperator,
    S3CreateObjectOperator,
    S3DeleteBucketOperator,
)
from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor
from airflow.providers.amazon.aws.sensors.glue_catalog_partition import GlueCatalogPartitionSensor
from airflow.providers.amazon.aws.sensors.glue_crawler import GlueCrawlerSensor
from airflow.sdk import DAG, chain, task
from airflow.utils.trigger_rule import TriggerRule

DAG_ID = "example_glue"
ENV_ID = os.environ.get("EXAMPLE_GLUE_ENV_ID", "local")
ROLE_ARN = os.environ.get("EXAMPLE_GLUE_ROLE_ARN", "arn:aws:iam::123456789012:role/hardware-correlation-etl")

EXAMPLE_CSV = """product,value
apple,0.5
milk,2.5
bread,4.0
"""

# The provider's script reads the crawled table through awsglue's GlueContext; this one finds the
# table's location in the same Data Catalog and reads it with Spark.
EXAMPLE_SCRIPT = """
import boto3
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
table = boto3.client("glue").get_table(DatabaseName="{db_name}", Name="input")["Table"]
datasource = spark.read.option("header", True).csv(table["StorageDescriptor"]["Location"])
print("There are %s items in the table" % datasource.count())

datasource.write.format("csv").mode("append").save("s3://{bucket_name}/output")
"""


@task
def get_role_name(arn: str) -> str:
    return arn.split("/")[-1]


@task(trigger_rule=TriggerRule.ALL_DONE)
def glue_cleanup(crawler_name: str, job_name: str, db_name: str) -> None:
    client = boto3.client("glue")

    client.delete_crawler(Name=crawler_name)
    client.delete_job(JobName=job_name)
    client.delete_database(Name=db_name)


with DAG(
    dag_id=DAG_ID,
    schedule="@once",
    start_date=datetime(2021, 1, 1),
    tags=["example"],
    catchup=False,
) as dag:
    env_id = ENV_ID
    role_arn = ROLE_ARN
    glue_crawler_name = f"{env_id}_crawler"
    glue_db_name = f"{env_id}_glue_db"
    glue_job_name = f"{env_id}_glue_job"
    bucket_name = f"{env_id}-bucket"
    role_name = get_role_name(role_arn)

    glue_crawler_config = {
        "Name": glue_crawler_name,
        "Role": role_arn,
        "DatabaseName": glue_db_name,
        "Targets": {"S3Targets": [{"Path": f"{bucket_name}/input"}]},
    }

    create_bucket = S3CreateBucketOperator(
        task_id="create_bucket",
        bucket_name=bucket_name,
    )

    upload_csv = S3CreateObjectOperator(
        task_id="upload_csv",
        s3_bucket=bucket_name,
        s3_key="input/category=mixed/input.csv",
        data=EXAMPLE_CSV,
        replace=True,
    )

    upload_script = S3CreateObjectOperator(
        task_id="upload_script",
        s3_bucket=bucket_name,
        s3_key="etl_script.py",
        data=EXAMPLE_SCRIPT.format(db_name=glue_db_name, bucket_name=bucket_name),
        replace=True,
    )

    crawl_s3 = GlueCrawlerOperator(
        task_id="crawl_s3",
        config=glue_crawler_config,
    )
    # GlueCrawlerOperator waits by default, setting as False to test the Sensor below.
    crawl_s3.wait_for_completion = False

    wait_for_crawl = GlueCrawlerSensor(
        task_id="wait_for_crawl",
        crawler_name=glue_crawler_name,
    )
    wait_for_crawl.timeout = 500
    wait_for_crawl.poke_interval = 2

    wait_for_catalog_partition = GlueCatalogPartitionSensor(
        task_id="wait_for_catalog_partition",
        table_name="input",
        database_name=glue_db_name,
        expression="category='mixed'",
    )

    submit_glue_job = GlueJobOperator(
        task_id="submit_glue_job",
        job_name=glue_job_name,
        script_location=f"s3://{bucket_name}/etl_script.py",
        s3_bucket=bucket_name,
        iam_role_name=role_name,
        create_job_kwargs={"GlueVersion": "3.0", "NumberOfWorkers": 2, "WorkerType": "G.1X"},
    )
    # GlueJobOperator waits by default, setting as False to test the Sensor below.
    submit_glue_job.wait_for_completion = False

    wait_for_job = GlueJobSensor(
        task_id="wait_for_job",
        job_name=glue_job_name,
        run_id=submit_glue_job.output,
        verbose=True,
    )
    wait_for_job.poke_interval = 5

    delete_bucket = S3DeleteBucketOperator(
        task_id="delete_bucket",
        trigger_rule=TriggerRule.ALL_DONE,
        bucket_name=bucket_name,
        force_delete=True,
    )

    chain(
        create_bucket,
        upload_csv,
        upload_script,
        crawl_s3,
        wait_for_crawl,
        wait_for_catalog_partition,
        submit_glue_job,
        wait_for_job,
        glue_cleanup(glue_crawler_name, glue_job_name, glue_db_name),
        delete_bucket,
    )
