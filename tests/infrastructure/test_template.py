"""infrastructure/template.yaml: lint clean, least privilege by construction, names as the pipeline's.

Stack-free (seconds): cfn-lint, parliament on every IAM policy with the intrinsics resolved, and the
properties the pipeline relies on. What the DAG and the Glue jobs really call is checked against the
deployed policies by the end-to-end least-privilege test (tests/e2e/test_sample_days.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from dags import hardware_correlation as dag_module
from include import settings as pipeline_settings

TEMPLATE = Path(__file__).resolve().parents[2] / "infrastructure" / "template.yaml"
ACCOUNT, REGION = "123456789012", "us-east-1"
# Actions without resource-level permissions in IAM: a "*" resource is the only one they accept.
NO_RESOURCE_LEVEL = {
    "ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables", "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcAttribute",
    "glue:GetCrawlerMetrics",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return json.loads(json.dumps(decoded, default=str))


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


# -- resolving the intrinsics of the policies, with the parameters' defaults --------------------


def _physical(template: dict[str, Any], name: str, attribute: str | None = None) -> str:
    resource = template["Resources"][name]
    properties = resource.get("Properties", {})
    kind = resource["Type"]
    if kind == "AWS::S3::Bucket":
        bucket = resolve(template, properties["BucketName"])
        return f"arn:aws:s3:::{bucket}" if attribute == "Arn" else bucket
    if kind == "AWS::IAM::Role":
        role = resolve(template, properties.get("RoleName", name))
        return f"arn:aws:iam::{ACCOUNT}:role/{role}" if attribute == "Arn" else role
    if kind == "AWS::SecretsManager::Secret":
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{resolve(template, properties['Name'])}-AbCdEf"
    if kind == "AWS::Logs::LogGroup":
        return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{resolve(template, properties['LogGroupName'])}:*"
    if kind == "AWS::EC2::SecurityGroup":
        return "sg-0123456789abcdef0"
    if kind == "AWS::SNS::Topic":
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{resolve(template, properties['TopicName'])}"
    if kind in ("AWS::Glue::Crawler", "AWS::Glue::Job"):
        return resolve(template, properties["Name"])
    if kind == "AWS::Glue::Database":
        return resolve(template, properties["DatabaseInput"]["Name"])
    if kind == "AWS::Glue::Connection":
        return resolve(template, properties["ConnectionInput"]["Name"])
    return f"{name}-physical-id"


def resolve(template: dict[str, Any], value: Any) -> Any:
    pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::StackName": "stack"}
    parameters = {name: p.get("Default", f"{name}-value") for name, p in template["Parameters"].items()}
    parameters["PrivateSubnetIds"] = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]

    def ref(name: str) -> Any:
        if name in pseudo:
            return pseudo[name]
        if name in parameters:
            return parameters[name]
        return _physical(template, name)

    if isinstance(value, list):
        return [resolve(template, v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return ref(value["Ref"])
    if set(value) == {"Fn::GetAtt"}:
        name, attribute = value["Fn::GetAtt"]
        return _physical(template, name, attribute)
    if set(value) == {"Fn::Select"}:
        index, items = value["Fn::Select"]
        return resolve(template, items)[int(index)]
    if set(value) == {"Fn::Sub"}:
        text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
        variables = {k: resolve(template, v) for k, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                resource, attribute = name.split(".", 1)
                return _physical(template, resource, attribute)
            return str(ref(name))

        return re.sub(r"\$\{([^!}][^}]*)\}", substitute, text)
    return {k: resolve(template, v) for k, v in value.items()}


def policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every identity policy of the template, resolved: `<resource>/<policy name>` -> document."""
    found = {}
    for name, role in _resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found[f"{name}/{policy['PolicyName']}"] = resolve(template, policy["PolicyDocument"])
    for name, policy in _resources(template, "AWS::IAM::ManagedPolicy").items():
        found[name] = resolve(template, policy["Properties"]["PolicyDocument"])
    return found


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# -- linters --------------------------------------------------------------------------------------


def test_cfn_lint_is_clean():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_parliament_finds_nothing_in_any_policy(template):
    from parliament import analyze_policy_string

    documents = policies(template)
    assert {"CrawlerRole/crawl-raw-zone", "EtlJobRole/etl", "LoadJobRole/load", "AirflowPolicy"} <= set(documents)
    findings = []
    for name, document in documents.items():
        explained = template["Resources"][name.split("/")[0]].get("Metadata", {}).get("parliament", {})
        assert all(reason.strip() for reason in explained.values()), name
        analyzed = analyze_policy_string(json.dumps(document), include_community_auditors=True)
        # RESOURCE_STAR on actions that have no resource-level permissions is IAM's limit, not a choice.
        findings += [
            f"{name}: {f.issue} {f.detail}"
            for f in analyzed.findings
            if not (f.issue == "RESOURCE_STAR" and set(f.detail) <= NO_RESOURCE_LEVEL) and f.issue not in explained
        ]
    assert findings == []


# -- least privilege by construction ---------------------------------------------------------------


def test_no_wildcard_actions_and_star_resources_only_where_iam_has_no_resource_level(template):
    for name, document in policies(template).items():
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow", name
            actions = _listed(statement["Action"])
            assert all("*" not in action for action in actions), (name, actions)
            resources = _listed(statement["Resource"])
            if "*" in resources:
                assert resources == ["*"] and set(actions) <= NO_RESOURCE_LEVEL, (name, statement)
            for resource in resources:
                assert resource == "*" or resource.startswith("arn:aws:"), (name, resource)


def test_no_aws_managed_policy_is_attached(template):
    for name, role in _resources(template, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], name


def test_airflow_runs_the_crawler_and_the_jobs_and_may_change_neither(template):
    """The crawler and the jobs are the template's: Airflow's policy starts, watches and stops their runs
    only. No Create/Update/Delete of Glue resources, and no iam:PassRole or role reads (a role is handed
    to Glue only when a crawler or job is defined, which the template does)."""
    airflow = policies(template)["AirflowPolicy"]
    actions = {action for s in airflow["Statement"] for action in _listed(s["Action"])}
    glue = {action for action in actions if action.startswith("glue:")}
    assert glue == {
        "glue:GetCrawler", "glue:StartCrawler", "glue:GetCrawlerMetrics",
        "glue:GetJob", "glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun",
        # Read only, for the Glue tasks' OpenLineage datasets.
        "glue:GetTable", "glue:GetPartition", "glue:GetConnection",
    }
    assert not {action for action in actions if action.startswith("iam:")}
    crawler = f"arn:aws:glue:{REGION}:{ACCOUNT}:crawler/{template['Parameters']['CrawlerName']['Default']}"
    jobs = {f"arn:aws:glue:{REGION}:{ACCOUNT}:job/{template['Parameters'][p]['Default']}"
            for p in ("EtlJobName", "LoadJobName")}
    for statement in airflow["Statement"]:
        statement_actions = set(_listed(statement["Action"]))
        if statement_actions & {"glue:StartCrawler", "glue:GetCrawler"}:
            assert _listed(statement["Resource"]) == [crawler]
        if statement_actions & {"glue:StartJobRun", "glue:GetJob"}:
            assert set(_listed(statement["Resource"])) == jobs
        if statement_actions & {"glue:GetTable", "glue:GetPartition", "glue:GetConnection"}:
            # The pipeline's catalog database and its warehouse Connection, nothing else of the catalog.
            parameters = template["Parameters"]
            database = parameters["GlueDatabaseName"]["Default"]
            glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
            assert set(_listed(statement["Resource"])) == {
                f"{glue}:catalog", f"{glue}:database/{database}", f"{glue}:table/{database}/*",
                f"{glue}:connection/{parameters['WarehouseConnectionName']['Default']}",
            }


def test_alerts_function_may_only_put_alerts(template):
    role = template["Resources"]["AlertsFunctionRole"]["Properties"]
    statements = resolve(template, role["Policies"][0]["PolicyDocument"])["Statement"]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _listed(s["Action"]))]
    assert s3 == [
        {"Sid": "StoreAlerts", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": "arn:aws:s3:::hardware-correlation-raw/alerts/*"}
    ]


# -- the resources' own properties -----------------------------------------------------------------


def test_buckets_are_private_encrypted_tls_only_and_raw_is_versioned(template):
    buckets = _resources(template, "AWS::S3::Bucket")
    assert set(buckets) == {"RawBucket", "ProcessedBucket", "ArtifactsBucket"}
    bucket_policies = {resolve(template, p["Properties"]["Bucket"]): p["Properties"]["PolicyDocument"]
                       for p in _resources(template, "AWS::S3::BucketPolicy").values()}
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}, name
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        statements = bucket_policies[resolve(template, properties["BucketName"])]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        ), name
    assert buckets["RawBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


def test_warehouse_is_private_encrypted_and_its_password_generated(template):
    instance = template["Resources"]["Warehouse"]["Properties"]
    assert instance["PubliclyAccessible"] is False and instance["StorageEncrypted"] is True
    assert "{{resolve:secretsmanager:${WarehouseSecret}:SecretString:password}}" in json.dumps(
        instance["MasterUserPassword"]
    )
    assert not [p for p in template["Parameters"] if "password" in p.lower()]
    secret = template["Resources"]["WarehouseSecret"]["Properties"]
    assert secret["GenerateSecretString"]["GenerateStringKey"] == "password"
    connection = template["Resources"]["WarehouseConnection"]["Properties"]["ConnectionInput"]
    assert connection["ConnectionProperties"]["SECRET_ID"] == {"Ref": "WarehouseSecret"}
    assert set(connection["PhysicalConnectionRequirements"]) == {"SubnetId", "AvailabilityZone", "SecurityGroupIdList"}


def test_alerts_route_needs_iam_auth_and_is_throttled(template):
    route = template["Resources"]["AlertsRoute"]["Properties"]
    assert route["RouteKey"] == "POST /alerts" and route["AuthorizationType"] == "AWS_IAM"
    throttling = template["Resources"]["AlertsStage"]["Properties"]["DefaultRouteSettings"]
    assert throttling["ThrottlingBurstLimit"] > 0 and throttling["ThrottlingRateLimit"] > 0


def test_the_crawler_catalogs_the_raw_zone_into_the_database(template):
    crawler = resolve(template, template["Resources"]["RawZoneCrawler"]["Properties"])
    parameters = {name: p.get("Default") for name, p in template["Parameters"].items()}
    assert crawler["Name"] == parameters["CrawlerName"]
    assert crawler["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{parameters['CrawlerRoleName']}"
    assert crawler["DatabaseName"] == parameters["GlueDatabaseName"]
    raw = parameters["RawBucketName"]
    # The raw zone's four folders (docs/contract.md, section 2), each a table.
    assert [t["Path"] for t in crawler["Targets"]["S3Targets"]] == [
        f"s3://{raw}/{folder}/" for folder in ("customers", "sales", "hardware_logs", "alerts")
    ]
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}


@pytest.mark.parametrize(("job", "role", "connections"), [
    ("EtlJob", "EtlRoleName", None),
    ("LoadJob", "LoadRoleName", {"Connections": ["hardware-correlation-warehouse"]}),
])
def test_the_glue_jobs_settings_are_the_parameters(template, job, role, connections):
    raw = template["Resources"][job]["Properties"]
    properties = resolve(template, raw)
    parameters = {name: p.get("Default") for name, p in template["Parameters"].items()}
    assert properties["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{parameters[role]}"
    assert properties["GlueVersion"] == "5.0"  # Spark 3.5, Python 3.11: what glue_scripts/ is tested on
    assert properties["Command"]["Name"] == "glueetl" and properties["Command"]["PythonVersion"] == "3"
    # What a user tunes is a parameter, with the defaults that the local stack runs.
    assert raw["WorkerType"] == {"Ref": "GlueWorkerType"} and parameters["GlueWorkerType"] == "G.1X"
    assert raw["NumberOfWorkers"] == {"Ref": "GlueNumberOfWorkers"} and parameters["GlueNumberOfWorkers"] == 2
    assert raw["Timeout"] == {"Ref": "GlueJobTimeoutMinutes"} and parameters["GlueJobTimeoutMinutes"] == 30
    assert raw["ExecutionProperty"] == {"MaxConcurrentRuns": {"Ref": "GlueMaxConcurrentRuns"}}
    assert parameters["GlueMaxConcurrentRuns"] == 3
    assert properties.get("Connections") == connections
    # Each run names its scripts version; the definition holds no version, and no credentials.
    arguments = properties["DefaultArguments"]
    assert arguments == {"--job-language": "python", "--enable-continuous-cloudwatch-log": "true"}
    assert "password" not in json.dumps(properties).lower()


# -- names: what AWS will hold is what the DAG and the Glue jobs use --------------------------------

PARAMETER_OF_SETTING = {
    "RAW_BUCKET": "RawBucketName",
    "PROCESSED_BUCKET": "ProcessedBucketName",
    "ARTIFACTS_BUCKET": "ArtifactsBucketName",
    "GLUE_DATABASE": "GlueDatabaseName",
    "CRAWLER_NAME": "CrawlerName",
    "ETL_JOB_NAME": "EtlJobName",
    "LOAD_JOB_NAME": "LoadJobName",
    "CRAWLER_ROLE_NAME": "CrawlerRoleName",
    "ETL_ROLE_NAME": "EtlRoleName",
    "LOAD_ROLE_NAME": "LoadRoleName",
    "GLUE_WAREHOUSE_CONNECTION": "WarehouseConnectionName",
    # Airflow's copies of the jobs' settings it waits and limits by; the local stack deploys the
    # template with the settings' values, so both agree there also when the environment changes them.
    "GLUE_JOB_TIMEOUT_MINUTES": "GlueJobTimeoutMinutes",
    "GLUE_MAX_CONCURRENT_RUNS": "GlueMaxConcurrentRuns",
}


def test_parameter_defaults_are_the_settings_defaults(template):
    defaults = {f.name: f.default for f in fields(pipeline_settings.Settings)}
    for setting, parameter in PARAMETER_OF_SETTING.items():
        assert str(template["Parameters"][parameter]["Default"]) == defaults[setting], setting


def test_the_dag_runs_the_templates_crawler_and_jobs_and_writes_where_the_etl_may(template):
    dag = dag_module.hardware_correlation()
    names = {name: resolve(template, template["Resources"][name]["Properties"]["Name"])
             for name in ("RawZoneCrawler", "EtlJob", "LoadJob")}
    assert dag.get_task("run_crawler").crawler_name == names["RawZoneCrawler"]
    assert dag.get_task("run_etl_job").job_name == names["EtlJob"]
    assert dag.get_task("run_load_job").job_name == names["LoadJob"]
    # The ETL writes only under the prefixes its role may write.
    processed = f"s3://{template['Parameters']['ProcessedBucketName']['Default']}/"
    prefixes = {v.removeprefix(processed).split("/")[0] for v in dag_module.ETL_ARGS.values() if v.startswith(processed)}
    assert prefixes == {"hardware_error_analysis", "quarantine", "audit", "hardware_alerts", "device_day_activity"}


# -- telling a person, and nothing piling up ----------------------------------------------------------


def test_airflow_may_publish_to_the_failure_topic_and_do_nothing_else_with_sns(template):
    airflow = policies(template)["AirflowPolicy"]
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{template['Parameters']['FailureTopicName']['Default']}"
    sns = [s for s in airflow["Statement"] if any(a.startswith("sns:") for a in _listed(s["Action"]))]
    assert [(s["Effect"], _listed(s["Action"]), _listed(s["Resource"])) for s in sns] == [
        ("Allow", ["sns:Publish"], [topic])
    ]
    assert template["Outputs"]["FailureTopicArn"]["Value"] == {"Ref": "FailureTopic"}


def test_the_email_subscription_exists_only_when_an_address_is_given(template):
    subscription = template["Resources"]["FailureEmailSubscription"]
    assert subscription["Condition"] == "WithFailureEmail"
    assert template["Conditions"]["WithFailureEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FailureNotificationEmail"}, ""]}]
    }
    assert template["Parameters"]["FailureNotificationEmail"]["Default"] == ""
    assert subscription["Properties"]["Protocol"] == "email"


def template_lifecycle_rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The processed bucket's rules, resolved with the parameters' defaults, in the API's shape."""
    from dev.local_aws.cloudformation import lifecycle_rules

    bucket = template["Resources"]["ProcessedBucket"]["Properties"]
    return lifecycle_rules(resolve(template, bucket["LifecycleConfiguration"]))


def test_every_run_scoped_prefix_of_the_dag_has_a_lifecycle_rule(template):
    """Derived from the DAG's Glue arguments: an output added without a rule fails here. The
    quarantine is kept (contract, section 3), everything else of a run expires."""
    from tests.support import check_lifecycle_covers_the_dag

    parameters = template["Parameters"]
    check_lifecycle_covers_the_dag(
        template_lifecycle_rules(template),
        processed_bucket=parameters["ProcessedBucketName"]["Default"],
        run_folder_days=parameters["RunFolderRetentionDays"]["Default"],
        scratch_days=parameters["LoadScratchRetentionDays"]["Default"],
    )
