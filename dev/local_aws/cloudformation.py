"""CloudFormation resource types that moto's CloudFormation lacks, registered so the template deploys whole.

moto's CloudFormation creates a resource through the moto model whose `cloudformation_type()` names
its type, and skips every other type with a warning while the stack still reports CREATE_COMPLETE.
The template uses twelve such types; each class below creates its resource through the stack's own
public API (a loopback client with the stack's credentials), as CloudFormation calls the service's
API, so the result is what the API itself would hold. `{{resolve:secretsmanager:...}}` dynamic
references are resolved too (moto would pass them on as text).

`install(loopback)` must run in the server process before the first stack is created.
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel

from dev.local_aws import config
from dev.local_aws.loopback import Loopback

_LOOPBACK: Loopback | None = None
_DYNAMIC_SECRET = re.compile(
    r"\{\{resolve:secretsmanager:(?P<id>.+?)(?::SecretString(?::(?P<key>[^:}]*))?(?::[^:}]*:[^:}]*)?)?\}\}"
)


def _client(service: str, region: str) -> Any:
    if _LOOPBACK is None:
        raise RuntimeError("cloudformation.install() was not called")
    return _LOOPBACK.client(service, region)


class _Registered:
    """A resource known by its physical id and a few attributes; update = create anew.

    Each type also names CloudFormationModel as a direct base: moto finds types through
    `CloudFormationModel.__subclasses__()`, which lists direct subclasses only.
    """

    TYPE = ""
    NAME_PROPERTY = ""
    ATTRIBUTES: tuple[str, ...] = ()

    def __init__(self, physical_id: str, attributes: dict[str, Any] | None = None) -> None:
        self._physical_id = physical_id
        self._attributes = attributes or {}

    @property
    def physical_resource_id(self) -> str:
        return self._physical_id

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name in self._attributes:
            return self._attributes[attribute_name]
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> _Registered:
        return cls.create(cloudformation_json.get("Properties") or {}, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _Registered:
        return cls.create(cloudformation_json.get("Properties") or {}, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        return None

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        raise NotImplementedError


class GlueDatabase(_Registered, CloudFormationModel):
    TYPE = "AWS::Glue::Database"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        database_input = properties["DatabaseInput"]
        _client("glue", region).create_database(DatabaseInput=database_input)
        return cls(database_input["Name"])


class GlueConnection(_Registered, CloudFormationModel):
    TYPE = "AWS::Glue::Connection"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        connection_input = properties["ConnectionInput"]
        _client("glue", region).create_connection(ConnectionInput=connection_input)
        return cls(connection_input["Name"])


class GlueCrawler(_Registered, CloudFormationModel):
    TYPE = "AWS::Glue::Crawler"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        # The resource's properties are CreateCrawler's parameters, under the same names.
        _client("glue", region).create_crawler(**properties)
        return cls(properties["Name"])


class GlueJob(_Registered, CloudFormationModel):
    TYPE = "AWS::Glue::Job"
    # CloudFormation hands every parameter over as text; CreateJob wants these as numbers.
    _NUMBERS = ("NumberOfWorkers", "Timeout", "MaxRetries", "AllocatedCapacity")

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        job = dict(properties)
        for key in cls._NUMBERS:
            if key in job:
                job[key] = int(job[key])
        if "MaxCapacity" in job:
            job["MaxCapacity"] = float(job["MaxCapacity"])
        if "ExecutionProperty" in job:
            job["ExecutionProperty"] = {key: int(value) for key, value in job["ExecutionProperty"].items()}
        _client("glue", region).create_job(**job)
        return cls(job["Name"])


class Secret(_Registered, CloudFormationModel):
    TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = ("Id",)

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        secrets = _client("secretsmanager", region)
        generate = properties.get("GenerateSecretString")
        if generate:
            # As CloudFormation does: Secrets Manager's GetRandomPassword, put into the template's JSON.
            password = secrets.get_random_password(
                PasswordLength=int(generate.get("PasswordLength", 32)),
                ExcludeCharacters=generate.get("ExcludeCharacters", ""),
                ExcludePunctuation=bool(generate.get("ExcludePunctuation", False)),
            )["RandomPassword"]
            if "GenerateStringKey" in generate:
                value = json.loads(generate.get("SecretStringTemplate") or "{}")
                value[generate["GenerateStringKey"]] = password
                secret_string = json.dumps(value)
            else:
                secret_string = password
        else:
            secret_string = properties.get("SecretString", "")
        arn = secrets.create_secret(
            Name=properties["Name"], Description=properties.get("Description", ""), SecretString=secret_string
        )["ARN"]
        return cls(arn, {"Id": arn})


class SecretTargetAttachment(_Registered, CloudFormationModel):
    """Adds the database's connection details to its credentials secret, as Secrets Manager does."""

    TYPE = "AWS::SecretsManager::SecretTargetAttachment"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        if properties.get("TargetType") != "AWS::RDS::DBInstance":
            raise ValueError(
                f"SecretTargetAttachment: only AWS::RDS::DBInstance targets, not {properties.get('TargetType')}"
            )
        instance = _client("rds", region).describe_db_instances(DBInstanceIdentifier=properties["TargetId"])[
            "DBInstances"
        ][0]
        secrets = _client("secretsmanager", region)
        value = json.loads(secrets.get_secret_value(SecretId=properties["SecretId"])["SecretString"])
        value.update(
            {
                "engine": instance["Engine"],
                "host": instance["Endpoint"]["Address"],
                "port": instance["Endpoint"]["Port"],
                "dbname": instance.get("DBName", ""),
                "dbInstanceIdentifier": instance["DBInstanceIdentifier"],
            }
        )
        secrets.put_secret_value(SecretId=properties["SecretId"], SecretString=json.dumps(value))
        return cls(properties["SecretId"])


class BucketPolicy(_Registered, CloudFormationModel):
    """The bucket policy, less its TLS-only statements: the stack serves plain HTTP on 127.0.0.1, and
    moto's S3 applies a bucket policy's Deny without evaluating its condition, so a statement that
    denies requests without TLS would deny every request."""

    TYPE = "AWS::S3::BucketPolicy"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        document = dict(properties["PolicyDocument"])
        document["Statement"] = [s for s in document["Statement"] if not _denies_plain_http(s)]
        if document["Statement"]:
            _client("s3", region).put_bucket_policy(Bucket=properties["Bucket"], Policy=json.dumps(document))
        return cls(properties["Bucket"])


def _denies_plain_http(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    return statement.get("Effect") == "Deny" and condition == {"Bool": {"aws:SecureTransport": "false"}}


class SecurityGroupEgress(_Registered, CloudFormationModel):
    TYPE = "AWS::EC2::SecurityGroupEgress"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        permission: dict[str, Any] = {
            "IpProtocol": str(properties["IpProtocol"]),
            "FromPort": int(properties.get("FromPort", -1)),
            "ToPort": int(properties.get("ToPort", -1)),
        }
        if "DestinationSecurityGroupId" in properties:
            permission["UserIdGroupPairs"] = [{"GroupId": properties["DestinationSecurityGroupId"]}]
        else:
            permission["IpRanges"] = [{"CidrIp": properties.get("CidrIp", "0.0.0.0/0")}]
        _client("ec2", region).authorize_security_group_egress(
            GroupId=properties["GroupId"], IpPermissions=[permission]
        )
        return cls(f"{properties['GroupId']}-egress-{permission['FromPort']}")


class HttpApi(_Registered, CloudFormationModel):
    TYPE = "AWS::ApiGatewayV2::Api"
    ATTRIBUTES = ("ApiEndpoint", "ApiId")

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        api = _client("apigatewayv2", region).create_api(
            Name=properties["Name"], ProtocolType=properties["ProtocolType"]
        )
        return cls(api["ApiId"], {"ApiEndpoint": api["ApiEndpoint"], "ApiId": api["ApiId"]})


class HttpApiIntegration(_Registered, CloudFormationModel):
    TYPE = "AWS::ApiGatewayV2::Integration"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        integration = _client("apigatewayv2", region).create_integration(
            ApiId=properties["ApiId"],
            IntegrationType=properties["IntegrationType"],
            IntegrationUri=properties["IntegrationUri"],
            PayloadFormatVersion=properties.get("PayloadFormatVersion", "2.0"),
        )
        return cls(integration["IntegrationId"])


class HttpApiRoute(_Registered, CloudFormationModel):
    TYPE = "AWS::ApiGatewayV2::Route"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        route = _client("apigatewayv2", region).create_route(
            ApiId=properties["ApiId"],
            RouteKey=properties["RouteKey"],
            AuthorizationType=properties.get("AuthorizationType", "NONE"),
            Target=properties["Target"],
        )
        return cls(route["RouteId"])


class HttpApiStage(_Registered, CloudFormationModel):
    TYPE = "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create(cls, properties: dict[str, Any], region: str) -> _Registered:
        settings = {key: value for key, value in (properties.get("DefaultRouteSettings") or {}).items()}
        for key in ("ThrottlingBurstLimit",):
            if key in settings:
                settings[key] = int(settings[key])
        for key in ("ThrottlingRateLimit",):
            if key in settings:
                settings[key] = float(settings[key])
        stage = _client("apigatewayv2", region).create_stage(
            ApiId=properties["ApiId"],
            StageName=properties["StageName"],
            AutoDeploy=bool(properties.get("AutoDeploy", False)),
            DefaultRouteSettings=settings,
        )
        return cls(stage["StageName"])


def _resolve_dynamic_references(value: Any) -> Any:
    # Fn::Sub cleans its text before substituting: a reference still holding ${...} is not one yet.
    if isinstance(value, str) and "{{resolve:secretsmanager:" in value and "${" not in value:

        def secret(match: re.Match[str]) -> str:
            text = _client("secretsmanager", config.REGION).get_secret_value(SecretId=match.group("id"))["SecretString"]
            return str(json.loads(text)[match.group("key")]) if match.group("key") else text

        return _DYNAMIC_SECRET.sub(secret, value)
    return value


def lifecycle_rules(configuration: dict[str, Any]) -> list[dict[str, Any]]:
    """A bucket's CloudFormation LifecycleConfiguration as PutBucketLifecycleConfiguration's rules."""
    rules = []
    for rule in configuration.get("Rules", []):
        api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "Transitions" in rule:
            api["Transitions"] = [
                {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
            ]
        if "NoncurrentVersionExpiration" in rule:
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            }
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            }
        rules.append(api)
    return rules


def _with_lifecycle(create: Any) -> Any:
    """moto's AWS::S3::Bucket ignores LifecycleConfiguration: put the bucket's rules after creating it,
    so the deployed buckets hold the template's rules (moto stores them; it expires nothing)."""

    def create_bucket(resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
                      **kwargs: Any) -> Any:
        bucket = create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        configuration = (cloudformation_json.get("Properties") or {}).get("LifecycleConfiguration")
        if configuration:
            _client("s3", region_name).put_bucket_lifecycle_configuration(
                Bucket=bucket.name, LifecycleConfiguration={"Rules": lifecycle_rules(configuration)}
            )
        return bucket

    return create_bucket


def install(loopback: Loopback) -> None:
    global _LOOPBACK
    _LOOPBACK = loopback
    from moto.s3.models import FakeBucket

    FakeBucket.create_from_cloudformation_json = _with_lifecycle(FakeBucket.create_from_cloudformation_json)
    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        return _resolve_dynamic_references(original(resource_json, resources_map))

    parsing.clean_json = clean_json
    # moto caches the type map on first use; the classes above are subclasses from now on.
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
