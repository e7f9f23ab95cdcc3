"""The local AWS stack against its real server: crawls, job runs, logs, controls, provisioning.

Every test works in its own buckets, database and job names, so tests may share one running stack
with each other and with a developer's session.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
import zipfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from dev.local_aws import config, faults, warm_spark
from dev.local_aws import stack as local_stack
from include.settings import load as load_settings
from tests.support import aws_client

pytestmark = pytest.mark.stack

ACTIVE = ("STARTING", "RUNNING", "STOPPING")


@pytest.fixture(scope="module")
def s3(aws):
    return aws("s3")


@pytest.fixture(scope="module")
def glue(aws):
    # Glue assumes a crawler's or job's role, which must exist; these tests need no permissions.
    _glue_role(aws("iam"), "glue-role")
    return aws("glue")


def _glue_role(iam, name: str) -> None:
    """A role Glue may assume, created once per stack."""
    try:
        iam.get_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))


@pytest.fixture(scope="module")
def logs(aws):
    return aws("logs")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bucket(s3):
    name = _name("test-local-aws")
    s3.create_bucket(Bucket=name)
    return name


def _put(s3, bucket: str, key: str, body: str | bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _wait_crawler(glue, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        if crawler["State"] == "READY":
            return crawler
        time.sleep(0.2)
    raise AssertionError(f"crawler {name} still {crawler['State']} after {timeout} s")


def _state_after(glue, name: str, state: str, timeout: float = 60) -> str:
    """The crawler's next state once it leaves `state` (held by the stack, it cannot leave unseen)."""
    deadline = time.monotonic() + timeout
    while (current := glue.get_crawler(Name=name)["Crawler"]["State"]) == state:
        assert time.monotonic() < deadline, f"crawler {name} still {state} after {timeout} s"
        time.sleep(0.05)
    return current


def _crawl(glue, name: str) -> dict:
    glue.start_crawler(Name=name)
    return _wait_crawler(glue, name)


def _wait_run(glue, job: str, run_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        if run["JobRunState"] not in ACTIVE:
            return run
        time.sleep(0.2)
    raise AssertionError(f"job run {run_id} still {run['JobRunState']} after {timeout} s")


def _wait_state(glue, job: str, run_id: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]["JobRunState"] != state:
        assert time.monotonic() < deadline, f"job run {run_id} never reached {state}"
        time.sleep(0.1)


def _python_job(s3, glue, bucket: str, source: str, **job_kwargs) -> str:
    job = _name("pyjob")
    _put(s3, bucket, f"scripts/{job}.py", source)
    glue.create_job(
        Name=job,
        Role="glue-role",
        Command={"Name": "pythonshell", "ScriptLocation": f"s3://{bucket}/scripts/{job}.py", "PythonVersion": "3.9"},
        **job_kwargs,
    )
    return job


def _log_messages(logs, group: str, run_id: str) -> list[str]:
    events = logs.filter_log_events(logGroupName=group, logStreamNames=[run_id])["events"]
    return [event["message"] for event in events]


def test_the_server_routes_each_host_to_the_backend_moto_would():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from dev.local_aws.server import moto_dispatcher

    hosts = [
        "127.0.0.1:4566", "s3.us-east-1.amazonaws.com", "glue.eu-west-1.amazonaws.com", "logs.us-east-1.amazonaws.com",
        "bucket.s3.amazonaws.com", "moto_api", None,
    ]
    ours, motos = moto_dispatcher(), DomainDispatcherApplication(create_backend_app)
    expected = [motos.get_backend_for_host(host) for host in hosts]
    assert expected[1:3] == ["s3", "glue"]
    # The second time from what the first looked up.
    for _ in range(2):
        assert [ours.get_backend_for_host(host) for host in hosts] == expected


# -- crawlers ---------------------------------------------------------------------------------

CSV_HEADER = "log_id,timestamp,device_id,event_type,cpu_temp_celsius,memory_usage_gb\n"


def _raw_layout(s3, bucket: str) -> None:
    customers = "customer_id,customer_name,industry\nC1,Acme,Retail\nC2,Globex,Energy\n"
    _put(s3, bucket, "customers/customers.csv", customers)
    day_1 = "L1,2025-10-01T10:00:00Z,D1,ERROR,80,3.5\nL2,2025-10-01T11:00:00Z,D2,INFO,,4\n"
    _put(s3, bucket, "hardware_logs/dt=2025-10-01/part-1.csv", CSV_HEADER + day_1)
    _put(s3, bucket, "hardware_logs/dt=2025-10-01/part-2.csv", CSV_HEADER + "L3,2025-10-01T12:00:00Z,D1,ERROR,75,2\n")
    _put(s3, bucket, "hardware_logs/dt=2025-10-02/part-1.csv", CSV_HEADER + "L4,2025-10-02T10:00:00Z,D3,WARN,81,1.25\n")
    alert = {"device_id": "D1", "error_code": 17, "details": "fan", "alert_timestamp": "2025-10-01T10:00:00Z"}
    _put(s3, bucket, "alerts/dt=2025-10-01/a-1.json", json.dumps(alert))
    lines = [
        {"device_id": "D2", "error_code": 18, "details": None, "alert_timestamp": "2025-10-02T01:00:00-05:00"},
        {"device_id": "D3", "error_code": 19, "details": "disk", "alert_timestamp": "2025-10-02T02:00:00Z"},
    ]
    _put(s3, bucket, "alerts/dt=2025-10-02/a-2.json", "\n".join(json.dumps(line) for line in lines) + "\n")


def _table(glue, database: str, name: str) -> dict:
    return glue.get_table(DatabaseName=database, Name=name)["Table"]


def _columns(table: dict) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def _partitions(glue, database: str, table: str) -> dict[tuple[str, ...], str]:
    partitions = glue.get_partitions(DatabaseName=database, TableName=table)["Partitions"]
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in partitions}


def test_crawler_catalogs_csv_and_json_with_partitions_and_recrawls(stack, s3, glue, logs, bucket):
    _raw_layout(s3, bucket)
    crawler, database = _name("crawler"), _name("db").replace("-", "_")
    glue.create_crawler(
        Name=crawler,
        Role="glue-role",
        DatabaseName=database,
        Targets={
            "S3Targets": [{"Path": f"s3://{bucket}/{folder}/"} for folder in ("customers", "hardware_logs", "alerts")]
        },
    )

    # Held in each state by the stack: every state is seen, however slowly this test polls.
    endpoint = stack["AWS_ENDPOINT_URL"]
    for state in ("RUNNING", "STOPPING"):
        faults.hold_crawler(endpoint, crawler, state)
    try:
        glue.start_crawler(Name=crawler)
        with pytest.raises(ClientError) as running:
            glue.start_crawler(Name=crawler)
        assert running.value.response["Error"]["Code"] == "CrawlerRunningException"
        assert glue.get_crawler(Name=crawler)["Crawler"]["State"] == "RUNNING"
        faults.release_crawler(endpoint, crawler, "RUNNING")
        assert _state_after(glue, crawler, "RUNNING") == "STOPPING"
        faults.release_crawler(endpoint, crawler, "STOPPING")
        assert _state_after(glue, crawler, "STOPPING") == "READY"
    finally:
        for state in ("RUNNING", "STOPPING"):
            faults.release_crawler(endpoint, crawler, state)
    finished = glue.get_crawler(Name=crawler)["Crawler"]
    assert finished["LastCrawl"]["Status"] == "SUCCEEDED"

    tables = {t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert tables == {"customers", "hardware_logs", "alerts"}

    customers = _table(glue, database, "customers")
    assert _columns(customers) == [("customer_id", "string"), ("customer_name", "string"), ("industry", "string")]
    assert customers["PartitionKeys"] == []
    assert customers["Parameters"]["classification"] == "csv"
    assert customers["Parameters"]["skip.header.line.count"] == "1"
    assert customers["StorageDescriptor"]["Location"] == f"s3://{bucket}/customers/"

    logs_table = _table(glue, database, "hardware_logs")
    assert _columns(logs_table) == [
        ("log_id", "string"),
        ("timestamp", "string"),
        ("device_id", "string"),
        ("event_type", "string"),
        ("cpu_temp_celsius", "bigint"),
        ("memory_usage_gb", "double"),
    ]
    assert logs_table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    descriptor = logs_table["StorageDescriptor"]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    assert descriptor["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert _partitions(glue, database, "hardware_logs") == {
        ("2025-10-01",): f"s3://{bucket}/hardware_logs/dt=2025-10-01/",
        ("2025-10-02",): f"s3://{bucket}/hardware_logs/dt=2025-10-02/",
    }

    alerts = _table(glue, database, "alerts")
    assert _columns(alerts) == [
        ("device_id", "string"),
        ("error_code", "bigint"),
        ("details", "string"),
        ("alert_timestamp", "string"),
    ]
    assert alerts["Parameters"]["classification"] == "json"
    assert alerts["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert set(_partitions(glue, database, "alerts")) == {("2025-10-01",), ("2025-10-02",)}

    metrics = glue.get_crawler_metrics(CrawlerNameList=[crawler])["CrawlerMetricsList"][0]
    assert (metrics["TablesCreated"], metrics["TablesUpdated"], metrics["TablesDeleted"]) == (3, 0, 0)
    crawl_log = _log_messages(logs, "/aws-glue/crawlers", crawler)
    assert any("Created table hardware_logs" in line for line in crawl_log)

    # A new day arrives, with a value that widens a column from bigint to double.
    _put(s3, bucket, "hardware_logs/dt=2025-10-03/part-1.csv", CSV_HEADER + "L5,2025-10-03T10:00:00Z,D1,ERROR,82.5,3\n")
    assert _crawl(glue, crawler)["LastCrawl"]["Status"] == "SUCCEEDED"
    assert set(_partitions(glue, database, "hardware_logs")) == {("2025-10-01",), ("2025-10-02",), ("2025-10-03",)}
    assert ("cpu_temp_celsius", "double") in _columns(_table(glue, database, "hardware_logs"))
    metrics = glue.get_crawler_metrics(CrawlerNameList=[crawler])["CrawlerMetricsList"][0]
    assert (metrics["TablesCreated"], metrics["TablesUpdated"]) == (0, 1)


def test_crawler_creates_one_table_per_folder_under_a_bucket_root(s3, glue, bucket):
    _raw_layout(s3, bucket)
    crawler, database = _name("crawler"), _name("db").replace("-", "_")
    glue.create_crawler(
        Name=crawler, Role="glue-role", DatabaseName=database, TablePrefix="raw_",
        Targets={"S3Targets": [{"Path": f"s3://{bucket}/"}]},
    )
    assert _crawl(glue, crawler)["LastCrawl"]["Status"] == "SUCCEEDED"
    tables = {t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert tables == {"raw_customers", "raw_hardware_logs", "raw_alerts"}


def test_crawler_target_prefix_without_objects_gives_no_table_and_no_failure(s3, glue, logs, bucket):
    """As in AWS: a raw zone whose alerts folder has not received its first alert still crawls."""
    _put(s3, bucket, "some/customers/customers.csv", "customer_id,name\nC1,Acme\n")
    database = _name("db")
    crawler = _name("crawler")
    glue.create_crawler(
        Name=crawler, Role="glue-role", DatabaseName=database,
        Targets={"S3Targets": [{"Path": f"s3://{bucket}/some/customers/"}, {"Path": f"s3://{bucket}/nothing-here/"}]},
    )
    last = _crawl(glue, crawler)["LastCrawl"]
    assert last["Status"] == "SUCCEEDED", last
    assert [t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]] == ["customers"]
    messages = _log_messages(logs, "/aws-glue/crawlers", crawler)
    assert any(f"s3://{bucket}/nothing-here/ has no data objects" in message for message in messages)


def test_crawler_target_bucket_that_does_not_exist_fails_with_a_message(s3, glue, bucket):
    missing_bucket = _name("crawler")
    glue.create_crawler(
        Name=missing_bucket, Role="glue-role", DatabaseName="unused",
        Targets={"S3Targets": [{"Path": "s3://no-such-bucket-anywhere/logs/"}]},
    )
    last = _crawl(glue, missing_bucket)["LastCrawl"]
    assert last["Status"] == "FAILED"
    assert "no-such-bucket-anywhere does not exist" in last["ErrorMessage"]


def test_stop_crawler_cancels_the_crawl(stack, s3, glue, bucket):
    _raw_layout(s3, bucket)
    crawler = _name("crawler")
    glue.create_crawler(
        Name=crawler, Role="glue-role", DatabaseName=_name("db").replace("-", "_"),
        Targets={"S3Targets": [{"Path": f"s3://{bucket}/hardware_logs/"}]},
    )
    # Held RUNNING, the crawl is still running when the stop comes; held STOPPING, it is still stopping
    # when the second stop comes.
    endpoint = stack["AWS_ENDPOINT_URL"]
    for state in ("RUNNING", "STOPPING"):
        faults.hold_crawler(endpoint, crawler, state)
    try:
        glue.start_crawler(Name=crawler)
        glue.stop_crawler(Name=crawler)
        assert glue.get_crawler(Name=crawler)["Crawler"]["State"] == "STOPPING"
        with pytest.raises(ClientError) as stopping:
            glue.stop_crawler(Name=crawler)
        assert stopping.value.response["Error"]["Code"] == "CrawlerStoppingException"
    finally:
        for state in ("RUNNING", "STOPPING"):
            faults.release_crawler(endpoint, crawler, state)
    assert _wait_crawler(glue, crawler)["LastCrawl"]["Status"] == "CANCELLED"
    with pytest.raises(ClientError) as not_running:
        glue.stop_crawler(Name=crawler)
    assert not_running.value.response["Error"]["Code"] == "CrawlerNotRunningException"


def test_update_crawler_changes_its_targets(s3, glue, bucket):
    _raw_layout(s3, bucket)
    crawler, database = _name("crawler"), _name("db").replace("-", "_")
    glue.create_crawler(
        Name=crawler, Role="glue-role", DatabaseName=database,
        Targets={"S3Targets": [{"Path": f"s3://{bucket}/customers/"}]},
    )
    glue.update_crawler(Name=crawler, Targets={"S3Targets": [{"Path": f"s3://{bucket}/alerts/"}]})
    updated = glue.get_crawler(Name=crawler)["Crawler"]
    assert updated["Targets"]["S3Targets"] == [{"Path": f"s3://{bucket}/alerts/"}]
    assert updated["Version"] == 2
    _crawl(glue, crawler)
    assert {t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]} == {"alerts"}


# -- job runs ---------------------------------------------------------------------------------

SPARK_SCRIPT = """
import sys

from pyspark.sql import SparkSession, functions as F, types as T

from shipped_helpers import double_it

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
spark = SparkSession.builder.appName(args["--JOB_NAME"]).getOrCreate()
schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("value", T.DoubleType())])
frame = spark.read.option("header", "true").schema(schema).csv(args["--source"])
if args.get("--explode") == "yes":
    raise RuntimeError("refusing to process " + args["--source"])
frame.select("id", double_it(F.col("value")).alias("doubled")).write.mode("overwrite").parquet(args["--target"])
print("wrote", frame.count(), "rows")
"""


def _helpers_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("shipped_helpers/__init__.py", "def double_it(column):\n    return column * 2\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def spark_job(s3, glue):
    bucket = _name("test-local-aws-spark")
    s3.create_bucket(Bucket=bucket)
    _put(s3, bucket, "scripts/spark_job.py", SPARK_SCRIPT)
    _put(s3, bucket, "scripts/shipped_helpers.zip", _helpers_zip())
    _put(s3, bucket, "input/data.csv", "id,value\n1,1.5\n2,2.25\n3,-4\n")
    job = _name("sparkjob")
    glue.create_job(
        Name=job,
        Role="glue-role",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/spark_job.py", "PythonVersion": "3"},
        GlueVersion="5.0",
        WorkerType="G.1X",
        NumberOfWorkers=2,
        DefaultArguments={
            "--extra-py-files": f"s3://{bucket}/scripts/shipped_helpers.zip",
            "--job-language": "python",
            "--enable-metrics": "true",
            "--TempDir": f"s3://{bucket}/tmp/",  # noqa: S108 - an S3 prefix, not the local /tmp
            "--source": f"s3://{bucket}/input/",
        },
    )
    return bucket, job


def test_spark_job_reads_csv_and_writes_parquet_in_s3(s3, glue, logs, spark_job, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    bucket, job = spark_job
    started = time.monotonic()
    run_id = glue.start_job_run(JobName=job, Arguments={"--target": f"s3a://{bucket}/output/"})["JobRunId"]
    run = _wait_run(glue, job, run_id)
    wall = time.monotonic() - started
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["CompletedOn"] >= run["StartedOn"]
    assert 0 < run["ExecutionTime"] <= wall + 1
    assert run["Arguments"]["--target"] == f"s3a://{bucket}/output/"

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="output/")["Contents"]]
    parquet = [key for key in keys if key.endswith(".parquet")]
    assert parquet and "output/_SUCCESS" in keys
    for index, key in enumerate(parquet):
        s3.download_file(bucket, key, str(tmp_path / f"{index}.parquet"))
    rows = duckdb.sql(f"SELECT id, doubled FROM read_parquet('{tmp_path}/*.parquet') ORDER BY id").fetchall()
    assert rows == [(1, 3.0), (2, 4.5), (3, -8.0)]
    assert "wrote 3 rows" in _log_messages(logs, "/aws-glue/jobs/output", run_id)


def test_spark_job_failure_reports_the_scripts_exception(glue, spark_job):
    bucket, job = spark_job
    arguments = {"--target": f"s3://{bucket}/never/", "--explode": "yes"}
    run_id = glue.start_job_run(JobName=job, Arguments=arguments)["JobRunId"]
    run = _wait_run(glue, job, run_id)
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == f"RuntimeError: refusing to process s3://{bucket}/input/"


# -- warm Spark drivers (dev/local_aws/warm_spark.py) ----------------------------------------

PROBE_SCRIPT = """\
import json, os, sys
from pyspark import SparkFiles
from pyspark.sql import SparkSession
import probe_helpers

spark = SparkSession.builder.appName("probe").getOrCreate()
sc = spark.sparkContext
loader = sc._jvm.java.lang.Thread.currentThread().getContextClassLoader()
# The bucket name of the warm drivers' own S3 client, which their warm-up closed.
s3a = sc._jvm.org.apache.hadoop.fs.FileSystem.get(sc._jvm.java.net.URI("s3a://warm-up/"), sc._jsc.hadoopConfiguration())
# The class-data-sharing archives the driver's JVM has mapped.
with open(f"/proc/{sc._jvm.java.lang.ProcessHandle.current().pid()}/maps") as maps:
    archives = sorted({line.split()[-1] for line in maps if line.rstrip().endswith(".jsa")})
print(json.dumps({
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "access_key": os.environ["AWS_ACCESS_KEY_ID"],
    "s3a_key": sc._jsc.hadoopConfiguration().get("fs.s3a.access.key"),
    "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    "app": sc.appName,
    "tags": sc.parallelize(range(3), 2).map(probe_helpers.tag).collect(),
    "worker_keys": sc.parallelize([0], 1).map(lambda _: os.environ.get("AWS_ACCESS_KEY_ID")).collect(),
    "jar_marker": loader.getResource("warm-test-marker.txt") is not None,
    "spark_files": SparkFiles.getRootDirectory(),
    "s3a_client": [s3a.getConf().get(key) for key in ("fs.s3a.access.key", "fs.s3a.aws.credentials.provider")],
    "class_archives": archives,
}))
spark.stop()
if "--fail" in sys.argv:
    raise ValueError("probe failed as asked")
"""


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _how_started(run_id: str) -> str:
    """"warm" or "cold", as the server's log says; skips the test when warm starts are off."""
    lines = [line for line in config.SERVER_LOG.read_text(errors="replace").splitlines() if f"run {run_id} starts" in line]
    assert lines, f"the server's log does not say how {run_id} started"
    if "warm starts are off" in lines[-1]:
        pytest.skip("warm starts are off on this stack (LOCAL_AWS_WARM_SPARK=0)")
    return "warm" if "starts warm" in lines[-1] else "cold"


@pytest.fixture(scope="module")
def probe_job(s3, glue):
    bucket = _name("test-local-aws-warm")
    s3.create_bucket(Bucket=bucket)
    _put(s3, bucket, "scripts/probe.py", PROBE_SCRIPT)
    _put(s3, bucket, "scripts/probe_helpers.zip", _zip({"probe_helpers.py": "def tag(x):\n    return f'v1-{x}'\n"}))
    _put(s3, bucket, "jars/marker.jar", _zip({"warm-test-marker.txt": "marker"}))
    job = _name("probe")
    glue.create_job(
        Name=job,
        Role="glue-role",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/probe.py", "PythonVersion": "3"},
        DefaultArguments={"--extra-py-files": f"s3://{bucket}/scripts/probe_helpers.zip", "--level": "job"},
        ExecutionProperty={"MaxConcurrentRuns": 2},
    )
    return bucket, job


def _probe(glue, logs, job: str, **start) -> tuple[str, dict, dict]:
    run_id = glue.start_job_run(JobName=job, **start)["JobRunId"]
    run = _wait_run(glue, job, run_id)
    said = [json.loads(m) for m in _log_messages(logs, "/aws-glue/jobs/output", run_id) if m.startswith("{")]
    return run_id, run, said[0] if said else {}


def test_a_warm_run_gets_its_arguments_conf_credentials_and_py_files_on_the_workers(glue, logs, probe_job):
    _, job = probe_job
    run_id, run, said = _probe(glue, logs, job, Arguments={"--level": "run", "--log_date": "2025-10-01"})
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert _how_started(run_id) == "warm"
    assert said["argv"][:4] == ["--extra-py-files", said["argv"][1], "--level", "run"]
    assert said["argv"][-6:] == ["--log_date", "2025-10-01", "--JOB_NAME", job, "--JOB_RUN_ID", run_id]
    assert said["cwd"] == str(config.GLUE_RUNS / run_id)
    # The job role's session signs boto3, S3A and the Python workers' calls alike.
    assert said["access_key"] != config.ACCESS_KEY_ID
    assert said["s3a_key"] == said["access_key"]
    assert said["worker_keys"] == [said["access_key"]]
    assert said["s3a_client"] == [said["access_key"], "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"]
    assert said["shuffle_partitions"] == "4" and said["app"] == "probe"
    # The Python workers import the run's --extra-py-files.
    assert said["tags"] == ["v1-0", "v1-1", "v1-2"]
    assert not said["jar_marker"]
    # The driver's JVM started from the stack's class archive (the JDK's own one beside it).
    assert [path for path in said["class_archives"] if path.startswith(f"{warm_spark.CLASS_ARCHIVES}/")], said
    # Spark's scratch is in the run's folder, which goes with the run.
    assert said["spark_files"].startswith(said["cwd"] + "/")
    assert not (config.GLUE_RUNS / run_id).exists()


def test_jars_and_credentials_of_one_run_are_not_visible_to_the_next(s3, glue, logs, aws, probe_job):
    bucket, job = probe_job
    _glue_role(aws("iam"), "glue-role-2")
    # A run that needs a JVM of its own (--extra-jars) starts cold, and sees its jar.
    first_id, first, with_jar = _probe(glue, logs, job, Arguments={"--extra-jars": f"s3://{bucket}/jars/marker.jar"})
    assert first["JobRunState"] == "SUCCEEDED", first.get("ErrorMessage")
    assert _how_started(first_id) == "cold" and with_jar["jar_marker"]
    assert with_jar["spark_files"].startswith(with_jar["cwd"] + "/")

    other = _name("probe-other-role")
    definition = glue.get_job(JobName=job)["Job"]
    glue.create_job(Name=other, Role="glue-role-2", Command=definition["Command"],
                    DefaultArguments=definition["DefaultArguments"])
    runs = [_probe(glue, logs, name) for name in (other, job)]
    for run_id, run, _ in runs:
        assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
        assert _how_started(run_id) == "warm"
    keys = [said["access_key"] for _, _, said in runs]
    assert keys[0] != keys[1] and keys[1] == with_jar["access_key"]
    for _, _, said in runs:
        assert not said["jar_marker"]
        assert said["s3a_key"] == said["access_key"] and said["worker_keys"] == [said["access_key"]]


def test_a_failed_warm_run_reports_the_scripts_exception(glue, logs, probe_job):
    _, job = probe_job
    run_id, run, said = _probe(glue, logs, job, Arguments={"--fail": "yes"})
    assert _how_started(run_id) == "warm"
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: probe failed as asked"
    assert said["tags"] == ["v1-0", "v1-1", "v1-2"]
    assert "ValueError: probe failed as asked" in _log_messages(logs, "/aws-glue/jobs/error", run_id)


def test_stop_kills_a_warm_run_with_its_jvm(s3, glue, bucket):
    job = _name("sleeper")
    script = "import time\nfrom pyspark.sql import SparkSession\nSparkSession.builder.getOrCreate()\ntime.sleep(300)\n"
    _put(s3, bucket, "scripts/sleeper.py", script)
    glue.create_job(Name=job, Role="glue-role",
                    Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/sleeper.py"})
    run_id = glue.start_job_run(JobName=job)["JobRunId"]
    _wait_state(glue, job, run_id, "RUNNING", timeout=120)
    assert _how_started(run_id) == "warm"
    pid = int((config.GLUE_RUNS / run_id / "pid").read_text())
    os.killpg(pid, 0)
    glue.batch_stop_job_run(JobName=job, JobRunIds=[run_id])
    assert _wait_run(glue, job, run_id, timeout=60)["JobRunState"] == "STOPPED"
    # The driver's process group, its JVM with it, is gone (once the killed JVM has been reaped).
    deadline = time.monotonic() + 20
    with pytest.raises(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.2)


@pytest.mark.parametrize(
    ("arguments", "conf", "reason"),
    [
        ({"--extra-jars": "s3://b/x.jar"}, {}, "--extra-jars"),
        ({"--conf": "spark.driver.memory=4g --conf spark.sql.shuffle.partitions=8"}, {}, "--conf spark.driver.memory"),
        ({"--conf": "spark.sql.shuffle.partitions=8"}, {}, None),
        ({}, {"spark.driver.extraJavaOptions": "-Xss4m"}, "Spark setting spark.driver.extraJavaOptions"),
        ({}, {"spark.driver.extraJavaOptions": "-Duser.timezone=UTC", "spark.sql.shuffle.partitions": "8"}, None),
    ],
)
def test_what_a_warm_driver_cannot_serve_starts_cold(arguments, conf, reason):
    launched = {"spark.driver.extraJavaOptions": "-Duser.timezone=UTC", "spark.master": "local[2]"}
    assert warm_spark.cold_start_reason(arguments, conf, launched) == reason


def test_python_job_gets_merged_arguments_and_logs_both_streams(s3, glue, logs, bucket):
    script = (
        "import json, os, sys\n"
        "print(json.dumps(sys.argv[1:]))\n"
        "print('endpoint', os.environ['AWS_ENDPOINT_URL'])\n"
        "print('to stderr', file=sys.stderr)\n"
    )
    job = _python_job(s3, glue, bucket, script, DefaultArguments={"--a": "job", "--b": "job", "--enable-metrics": ""})
    run_id = glue.start_job_run(JobName=job, Arguments={"--b": "run", "--log_date": "2025-10-01"})["JobRunId"]
    run = _wait_run(glue, job, run_id)
    assert run["JobRunState"] == "SUCCEEDED"
    assert run["LogGroupName"] == "/aws-glue/jobs"
    output = _log_messages(logs, "/aws-glue/jobs/output", run_id)
    argv = json.loads(output[0])
    assert argv == [
        "--a", "job", "--b", "run", "--enable-metrics", "", "--log_date", "2025-10-01",
        "--JOB_NAME", job, "--JOB_RUN_ID", run_id,
    ]
    assert output[1].startswith("endpoint http://127.0.0.1:")
    assert _log_messages(logs, "/aws-glue/jobs/error", run_id) == ["to stderr"]


def test_failing_script_gives_failed_with_its_message(s3, glue, bucket):
    script = "def check(value):\n    raise ValueError(f'bad log_date: {value!r}')\n\ncheck('2025-13-01')\n"
    job = _python_job(s3, glue, bucket, script)
    run = _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: bad log_date: '2025-13-01'"


def test_missing_script_location_fails_with_a_clear_message(glue, bucket):
    job = _name("nojob")
    command = {"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/missing.py"}
    glue.create_job(Name=job, Role="glue-role", Command=command)
    run = _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == f"ScriptLocation s3://{bucket}/missing.py does not exist in S3."


def test_a_role_that_does_not_exist_fails_the_run_and_the_crawl(glue, bucket):
    job, crawler = _name("norole"), _name("norole")
    command = {"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/missing.py"}
    glue.create_job(Name=job, Role="no-such-role", Command=command)
    run = _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "Glue could not assume role no-such-role: it does not exist."
    glue.create_crawler(
        Name=crawler, Role="no-such-role", DatabaseName="unused", Targets={"S3Targets": [{"Path": f"s3://{bucket}/"}]}
    )
    last = _crawl(glue, crawler)["LastCrawl"]
    assert last["Status"] == "FAILED" and "could not assume role no-such-role" in last["ErrorMessage"]


def test_calls_of_a_role_are_recorded_with_action_and_resources(stack, aws, s3, glue, bucket):
    from dev.local_aws import policy

    offset = policy.call_log_size()
    arn = aws("iam").get_role(RoleName="glue-role")["Role"]["Arn"]
    credentials = aws("sts").assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
    as_role = boto3.client(
        "s3", endpoint_url=stack["AWS_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    as_role.put_object(Bucket=bucket, Key="a/b.txt", Body=b"x")
    as_role.list_objects_v2(Bucket=bucket, Prefix="a/")
    s3.get_object(Bucket=bucket, Key="a/b.txt")  # the stack's own keys: not recorded
    calls = [c for c in policy.read_calls(offset=offset) if c["role"] == arn]
    assert [(c["action"], c["resources"], c["context"]) for c in calls] == [
        ("s3:PutObject", [f"arn:aws:s3:::{bucket}/a/b.txt"], {}),
        ("s3:ListBucket", [f"arn:aws:s3:::{bucket}"], {"s3:prefix": "a/"}),
    ]
    # glue-role holds no policy: IAM would have refused both.
    assert len(policy.denied(calls, aws("iam"))) == 2


def test_run_past_its_timeout_gives_timeout(stack, s3, glue, bucket):
    # Glue's Timeout is whole minutes; the stack's test control makes this job's minute one second.
    job = _python_job(s3, glue, bucket, "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n", Timeout=2)
    faults.set_timeout_scale(stack["AWS_ENDPOINT_URL"], job, 1)
    # Waiting at most 60 s for a job that sleeps 120 s: the run ended on its timeout.
    run = _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"], timeout=60)
    assert run["JobRunState"] == "TIMEOUT"
    assert "timeout of 2 minutes" in run["ErrorMessage"]

    # The run's own Timeout wins over the job's.
    run = _wait_run(glue, job, glue.start_job_run(JobName=job, Timeout=1)["JobRunId"], timeout=30)
    assert run["JobRunState"] == "TIMEOUT" and run["Timeout"] == 1


def test_stop_kills_the_run_and_gives_stopped(s3, glue, bucket):
    job = _python_job(s3, glue, bucket, "import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    run_id = glue.start_job_run(JobName=job)["JobRunId"]
    _wait_state(glue, job, run_id, "RUNNING")
    response = glue.batch_stop_job_run(JobName=job, JobRunIds=[run_id, "jr_unknown"])
    assert response["SuccessfulSubmissions"] == [{"JobName": job, "JobRunId": run_id}]
    assert response["Errors"][0]["JobRunId"] == "jr_unknown"
    # Waiting at most 60 s for a job that sleeps 300 s: the stop ended it.
    run = _wait_run(glue, job, run_id, timeout=60)
    assert run["JobRunState"] == "STOPPED"
    assert not (config.GLUE_RUNS / run_id).exists()


def test_max_concurrent_runs_is_enforced(s3, glue, bucket):
    job = _python_job(s3, glue, bucket, "import time\ntime.sleep(300)\n", ExecutionProperty={"MaxConcurrentRuns": 2})
    runs = [glue.start_job_run(JobName=job)["JobRunId"] for _ in range(2)]
    try:
        with pytest.raises(ClientError) as exceeded:
            glue.start_job_run(JobName=job)
        assert exceeded.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"
    finally:
        glue.batch_stop_job_run(JobName=job, JobRunIds=runs)
    for run_id in runs:
        assert _wait_run(glue, job, run_id, timeout=30)["JobRunState"] == "STOPPED"
    # Stopped runs no longer count.
    third = glue.start_job_run(JobName=job)["JobRunId"]
    glue.batch_stop_job_run(JobName=job, JobRunIds=[third])
    assert _wait_run(glue, job, third, timeout=30)["JobRunState"] == "STOPPED"


def test_fail_next_job_run_fails_exactly_one_run(stack, s3, glue, logs, bucket):
    job = _python_job(s3, glue, bucket, "print('ran')\n")
    faults.fail_next_job_run(stack["AWS_ENDPOINT_URL"], job, "Injected: executor lost")
    failed_id = glue.start_job_run(JobName=job)["JobRunId"]
    failed = _wait_run(glue, job, failed_id)
    assert (failed["JobRunState"], failed["ErrorMessage"]) == ("FAILED", "Injected: executor lost")
    assert _log_messages(logs, "/aws-glue/jobs/error", failed_id) == ["Injected: executor lost"]
    assert _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])["JobRunState"] == "SUCCEEDED"


def test_held_job_runs_stay_starting_until_released(stack, s3, glue, bucket):
    job = _python_job(s3, glue, bucket, "print('ran')\n", ExecutionProperty={"MaxConcurrentRuns": 3})
    endpoint = stack["AWS_ENDPOINT_URL"]
    faults.hold_job_runs(endpoint, job)
    try:
        first = glue.start_job_run(JobName=job)["JobRunId"]
        second = glue.start_job_run(JobName=job)["JobRunId"]
        assert faults.release_job_runs(endpoint, job, first) == [first]
        assert _wait_run(glue, job, first)["JobRunState"] == "SUCCEEDED"
        # Letting one run go leaves the others held, and the job too.
        assert glue.get_job_run(JobName=job, RunId=second)["JobRun"]["JobRunState"] == "STARTING"
        stopped = glue.start_job_run(JobName=job)["JobRunId"]
        glue.batch_stop_job_run(JobName=job, JobRunIds=[stopped])
        assert _wait_run(glue, job, stopped, timeout=30)["JobRunState"] == "STOPPED"
        assert glue.get_job_run(JobName=job, RunId=second)["JobRun"]["JobRunState"] == "STARTING"
    finally:
        released = faults.release_job_runs(endpoint, job)
    assert second in released
    assert _wait_run(glue, job, second)["JobRunState"] == "SUCCEEDED"
    assert _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])["JobRunState"] == "SUCCEEDED"


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalServiceException", 500)])
def test_failed_job_reads_answer_the_error_until_switched_off(stack, aws, s3, glue, bucket, code, status):
    job = _python_job(s3, glue, bucket, "print('ran')\n")
    endpoint = stack["AWS_ENDPOINT_URL"]
    run_id = glue.start_job_run(JobName=job)["JobRunId"]
    # One attempt per call: botocore would retry both errors.
    once = aws_client(stack, "glue", config=Config(retries={"total_max_attempts": 1}))
    faults.fail_job_reads(endpoint, job, code, actions=("GetJobRun", "GetJobRuns"))
    try:
        for read in (lambda: once.get_job_run(JobName=job, RunId=run_id), lambda: once.get_job_runs(JobName=job)):
            with pytest.raises(ClientError) as failed:
                read()
            assert failed.value.response["Error"]["Code"] == code
            assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        # Only this job's reads fail: another job's answer.
        assert once.get_job_runs(JobName=_python_job(s3, glue, bucket, "print('other')\n"))["JobRuns"] == []
    finally:
        answered = faults.fail_job_reads(endpoint, job, None)
    assert answered == 2
    assert _wait_run(glue, job, run_id)["JobRunState"] == "SUCCEEDED"


def test_a_held_start_answer_comes_once_released_with_the_run_already_there(stack, s3, glue, bucket):
    job = _python_job(s3, glue, bucket, "print('ran')\n")
    endpoint = stack["AWS_ENDPOINT_URL"]
    faults.hold_start_answer(endpoint, job)
    answer: dict = {}
    caller = threading.Thread(target=lambda: answer.update(glue.start_job_run(JobName=job)), daemon=True)
    caller.start()
    try:
        deadline = time.monotonic() + 60
        while not glue.get_job_runs(JobName=job)["JobRuns"] and time.monotonic() < deadline:
            time.sleep(0.2)
        (run,) = glue.get_job_runs(JobName=job)["JobRuns"]
        caller.join(timeout=2)
        assert caller.is_alive() and not answer, "StartJobRun answered while held"
    finally:
        released = faults.release_start_answer(endpoint, job)
    caller.join(timeout=30)
    assert released and answer["JobRunId"] == run["Id"]
    assert _wait_run(glue, job, run["Id"])["JobRunState"] == "SUCCEEDED"
    # The hold was for one StartJobRun only.
    assert _wait_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])["JobRunState"] == "SUCCEEDED"
    assert not faults.release_start_answer(endpoint, job)


def test_fail_next_crawl_fails_exactly_one_crawl(stack, s3, glue, logs, bucket):
    _put(s3, bucket, "customers/customers.csv", "customer_id,name\nC1,Acme\n")
    crawler = _name("crawler")
    glue.create_crawler(
        Name=crawler, Role="glue-role", DatabaseName=_name("db"), Targets={"S3Targets": [{"Path": f"s3://{bucket}/"}]}
    )
    faults.fail_next_crawl(stack["AWS_ENDPOINT_URL"], crawler, "Injected: unable to assume the role", times=2)
    for _ in range(2):
        last = _crawl(glue, crawler)["LastCrawl"]
        assert (last["Status"], last["ErrorMessage"]) == ("FAILED", "Injected: unable to assume the role")
    assert any("ERROR : Injected: unable to assume the role" in m for m in _log_messages(logs, "/aws-glue/crawlers", crawler))
    assert _crawl(glue, crawler)["LastCrawl"]["Status"] == "SUCCEEDED"
    faults.fail_next_crawl(stack["AWS_ENDPOINT_URL"], crawler, "never seen", times=5)
    faults.fail_next_crawl(stack["AWS_ENDPOINT_URL"], crawler, "never seen", times=0)
    assert _crawl(glue, crawler)["LastCrawl"]["Status"] == "SUCCEEDED"


def test_update_job_replaces_the_definition(s3, glue, bucket):
    job = _python_job(s3, glue, bucket, "print('v1')\n", DefaultArguments={"--old": "1"}, Timeout=5)
    command = glue.get_job(JobName=job)["Job"]["Command"]
    update = {"Role": "glue-role", "Command": command, "DefaultArguments": {"--new": "2"}}
    glue.update_job(JobName=job, JobUpdate=update)
    updated = glue.get_job(JobName=job)["Job"]
    assert updated["DefaultArguments"] == {"--new": "2"}
    assert "Timeout" not in updated


def test_create_job_refuses_a_name_that_exists(s3, glue, bucket):
    job = _python_job(s3, glue, bucket, "print('first')\n")
    first_run = glue.start_job_run(JobName=job)["JobRunId"]
    command = glue.get_job(JobName=job)["Job"]["Command"]
    with pytest.raises(ClientError) as exists:
        glue.create_job(Name=job, Role="glue-role", Command={**command, "ScriptLocation": f"s3://{bucket}/other.py"})
    assert exists.value.response["Error"]["Code"] == "AlreadyExistsException"
    # The job and its runs are untouched.
    assert glue.get_job(JobName=job)["Job"]["Command"] == command
    assert _wait_run(glue, job, first_run)["JobRunState"] == "SUCCEEDED"


def _versioned_scripts(s3, bucket: str, version: str) -> tuple[str, str]:
    """A script and a py-files zip that each say which version they are; their S3 URIs."""
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("marker.py", f"VERSION = {version!r}\n")
    _put(s3, bucket, f"{version}/marker.zip", package.getvalue())
    _put(s3, bucket, f"{version}/job.py", f"import marker\nprint('script {version}, package', marker.VERSION)\n")
    return f"s3://{bucket}/{version}/job.py", f"s3://{bucket}/{version}/marker.zip"


def test_a_run_executes_the_script_and_py_files_it_was_started_with(s3, glue, logs, bucket):
    """Glue's --scriptLocation and --extra-py-files run arguments pin one run's code, whatever the
    job's definition says then or later; a run without them runs the definition as of its start."""
    v1_script, v1_files = _versioned_scripts(s3, bucket, "v1")
    v2_script, v2_files = _versioned_scripts(s3, bucket, "v2")
    job = _name("pinned")
    command = {"Name": "pythonshell", "ScriptLocation": v1_script, "PythonVersion": "3.9"}
    at_once = {"MaxConcurrentRuns": 3}
    glue.create_job(Name=job, Role="glue-role", Command=command, DefaultArguments={"--extra-py-files": v1_files},
                    ExecutionProperty=at_once)

    pinned = glue.start_job_run(JobName=job, Arguments={"--scriptLocation": v2_script, "--extra-py-files": v2_files})
    unpinned = glue.start_job_run(JobName=job)
    # Another deployment moves the job to v2 while both runs start.
    glue.update_job(JobName=job, JobUpdate={"Role": "glue-role", "Command": {**command, "ScriptLocation": v2_script},
                                            "DefaultArguments": {"--extra-py-files": v2_files},
                                            "ExecutionProperty": at_once})
    back_to_v1 = glue.start_job_run(
        JobName=job, Arguments={"--scriptLocation": v1_script, "--extra-py-files": v1_files}
    )

    said = {}
    for name, started in (("pinned", pinned), ("unpinned", unpinned), ("back_to_v1", back_to_v1)):
        run = _wait_run(glue, job, started["JobRunId"])
        assert run["JobRunState"] == "SUCCEEDED", run
        said[name] = _log_messages(logs, "/aws-glue/jobs/output", started["JobRunId"])
    assert said == {
        "pinned": ["script v2, package v2"],
        "unpinned": ["script v1, package v1"],
        "back_to_v1": ["script v1, package v1"],
    }


# -- the stack itself -------------------------------------------------------------------------


def test_second_ensure_up_reuses_the_stack_and_env_file_matches(stack):
    server = local_stack._server_state()
    again = local_stack.ensure_up()
    # The same server process, not a new one.
    assert local_stack._server_state() == server
    assert again == stack
    assert local_stack.read_env_file() == stack
    for key in (
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "RAW_BUCKET",
        "PROCESSED_BUCKET", "ARTIFACTS_BUCKET", "WAREHOUSE_DSN", "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_CONN_AWS_DEFAULT",
        "AIRFLOW_CONN_WAREHOUSE", "PYTHONPATH", "SPARK_LOCAL_IP",
    ):
        assert stack[key], key
    connection = json.loads(stack["AIRFLOW_CONN_AWS_DEFAULT"])
    assert connection["conn_type"] == "aws"
    assert {key: connection["extra"][key] for key in ("endpoint_url", "region_name")} == {
        "endpoint_url": stack["AWS_ENDPOINT_URL"], "region_name": "us-east-1"
    }
    # Airflow signs as a session of its own role, not with the stack's keys.
    assert f":assumed-role/{local_stack.AIRFLOW_ROLE_NAME}/" in _signer(stack, stack["AIRFLOW_CONN_AWS_DEFAULT"])


def _signer(stack: dict[str, str], aws_connection: str) -> str:
    """The ARN that calls made with an Airflow aws connection (its JSON) are signed as."""
    connection = json.loads(aws_connection)
    return boto3.client(
        "sts", endpoint_url=stack["AWS_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id=connection["login"], aws_secret_access_key=connection["password"],
        aws_session_token=connection["extra"]["aws_session_token"],
    ).get_caller_identity()["Arn"]


def test_provisioning_creates_what_the_pipeline_expects(stack, aws, s3, glue):
    import psycopg2

    settings = load_settings()
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {stack["RAW_BUCKET"], stack["PROCESSED_BUCKET"], stack["ARTIFACTS_BUCKET"]} <= buckets
    cloudformation = aws("cloudformation")
    deployed = cloudformation.describe_stacks(StackName=local_stack.STACK_NAME)["Stacks"][0]
    assert deployed["StackStatus"] == "CREATE_COMPLETE"
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName=local_stack.STACK_NAME)["StackResourceSummaries"]
    }
    # The types moto's CloudFormation lacks are deployed too, by the stack's own registrations.
    assert resources["GlueDatabase"] == settings.GLUE_DATABASE
    assert resources["WarehouseConnection"] == settings.GLUE_WAREHOUSE_CONNECTION
    assert resources["WarehouseSecret"].startswith("arn:aws:secretsmanager:")
    assert aws("apigatewayv2").get_routes(ApiId=resources["AlertsApi"])["Items"][0]["AuthorizationType"] == "AWS_IAM"
    for role in (settings.CRAWLER_ROLE_NAME, settings.ETL_ROLE_NAME, settings.LOAD_ROLE_NAME):
        assert aws("iam").list_role_policies(RoleName=role)["PolicyNames"], role
    glue.get_database(Name=settings.GLUE_DATABASE)
    # The crawler and the jobs are the template's, deployed with Airflow's timeout and concurrency.
    assert resources["RawZoneCrawler"] == settings.CRAWLER_NAME
    crawler = glue.get_crawler(Name=settings.CRAWLER_NAME)["Crawler"]
    assert crawler["DatabaseName"] == settings.GLUE_DATABASE and crawler["Role"].endswith(f"/{settings.CRAWLER_ROLE_NAME}")
    for logical, name, role in (("EtlJob", settings.ETL_JOB_NAME, settings.ETL_ROLE_NAME),
                                ("LoadJob", settings.LOAD_JOB_NAME, settings.LOAD_ROLE_NAME)):
        assert resources[logical] == name
        job = glue.get_job(JobName=name)["Job"]
        assert job["Role"].endswith(f"/{role}") and job["GlueVersion"] == "5.0"
        assert (job["WorkerType"], job["NumberOfWorkers"]) == ("G.1X", 2)
        assert job["Timeout"] == settings.number("GLUE_JOB_TIMEOUT_MINUTES")
        assert job["ExecutionProperty"]["MaxConcurrentRuns"] == settings.number("GLUE_MAX_CONCURRENT_RUNS")

    properties = glue.get_connection(Name=settings.GLUE_WAREHOUSE_CONNECTION)["Connection"]["ConnectionProperties"]
    secret = json.loads(aws("secretsmanager").get_secret_value(SecretId=properties["SECRET_ID"])["SecretString"])
    host_port_db = properties["JDBC_CONNECTION_URL"].removeprefix("jdbc:postgresql://")
    host_port, database = host_port_db.split("/")
    host, port = host_port.split(":")
    with psycopg2.connect(
        host=host, port=port, dbname=database, user=secret["username"], password=secret["password"]
    ) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone() == ("warehouse",)
    with psycopg2.connect(stack["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW listen_addresses")
        assert cursor.fetchone() == ("127.0.0.1",)


def test_a_second_deployment_takes_names_and_an_airflow_role_of_its_own(stack, aws, glue):
    """The backfill bench deploys the template again under its own names: its Airflow session may
    touch that deployment only, and the stack's own deployment keeps its role and policy."""
    from dev.bench.backfill import BENCH_NAMES, BENCH_STACK
    from dev.local_aws import policy

    entries = local_stack.provision({**stack, **BENCH_NAMES}, BENCH_STACK)
    # Again: the same deployment (only Airflow's session is new).
    again = local_stack.provision({**stack, **BENCH_NAMES}, BENCH_STACK)
    assert {k: v for k, v in again.items() if k != "AIRFLOW_CONN_AWS_DEFAULT"} == {
        k: v for k, v in entries.items() if k != "AIRFLOW_CONN_AWS_DEFAULT"
    }
    assert aws("cloudformation").describe_stacks(StackName=BENCH_STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    bench = load_settings({**stack, **BENCH_NAMES})
    assert glue.get_crawler(Name=bench.CRAWLER_NAME)["Crawler"]["DatabaseName"] == bench.GLUE_DATABASE
    assert glue.get_job(JobName=bench.ETL_JOB_NAME)["Job"]["Role"].endswith(f"/{bench.ETL_ROLE_NAME}")
    assert entries["FAILURE_TOPIC_ARN"].endswith(f":{BENCH_STACK}-failures")

    assert f":assumed-role/{local_stack.airflow_role_name(BENCH_STACK)}/" in _signer(
        stack, entries["AIRFLOW_CONN_AWS_DEFAULT"]
    )

    iam = aws("iam")
    own = load_settings(stack)
    for role, settings, other in (
        (entries["AIRFLOW_ROLE_ARN"], bench, own), (stack["AIRFLOW_ROLE_ARN"], own, bench)
    ):
        statements = policy.role_statements(iam, role)
        for action, resource, name in (
            ("s3:GetObject", "arn:aws:s3:::{}/customers/customers.csv", "RAW_BUCKET"),
            ("glue:StartCrawler", f"arn:aws:glue:{config.REGION}:{config.ACCOUNT_ID}:crawler/{{}}", "CRAWLER_NAME"),
        ):
            mine, theirs = (resource.format(getattr(s, name)) for s in (settings, other))
            assert policy.allowed(statements, action, mine, {}), (role, action, mine)
            assert not policy.allowed(statements, action, theirs, {}), (role, action, theirs)


def test_a_server_start_keeps_one_previous_generation_of_each_append_only_log(tmp_path):
    calls, lineage, never_written = tmp_path / "aws-calls.jsonl", tmp_path / "events.jsonl", tmp_path / "none.log"
    calls.write_text("first server\n")
    lineage.write_text("first server\n")
    local_stack.rotate_logs((calls, lineage, never_written))
    assert not calls.exists() and not never_written.exists()
    assert (tmp_path / "aws-calls.1.jsonl").read_text() == "first server\n"
    calls.write_text("second server\n")
    local_stack.rotate_logs((calls, lineage, never_written))
    # One generation only: the second server's replaces the first's; a file left empty is not rotated.
    assert (tmp_path / "aws-calls.1.jsonl").read_text() == "second server\n"
    assert (tmp_path / "events.1.jsonl").read_text() == "first server\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["aws-calls.1.jsonl", "events.1.jsonl"]
    assert {config.SERVER_LOG, config.CALL_LOG, config.LINEAGE_LOG} == set(config.APPEND_ONLY_LOGS)
