"""Who called what: every AWS call made with a role's session, as IAM would authorize it.

The server passes each request through `Recorder` before moto answers it. A request signed with the
credentials of an assumed role (Airflow's, the crawler's, a Glue job's) is written to
`.local/logs/aws-calls.jsonl` as one JSON line: the role's ARN, the IAM action, the ARNs of the
resources IAM checks for it, and the condition keys the pipeline's policies use (`s3:prefix`,
`iam:PassedToService`). Requests with the stack's own credentials are not recorded. moto does not
enforce IAM on these services itself (its optional enforcement checks Glue actions against "*"
only), so the least-privilege test reads this log and evaluates each call against the policies the
CloudFormation template gave the role (`policy.py`).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from dev.local_aws import config

log = logging.getLogger(__name__)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")
ARN = f"{config.REGION}:{config.ACCOUNT_ID}"
# Glue catalog actions: IAM checks the catalog, the database and (for table-level actions) the table.
_GLUE_TABLE_ACTIONS = {
    "GetTable", "CreateTable", "UpdateTable", "DeleteTable", "GetPartition", "GetPartitions", "CreatePartition",
    "BatchCreatePartition", "UpdatePartition", "BatchUpdatePartition", "BatchGetPartition", "DeletePartition",
    "BatchDeletePartition",
}
_GLUE_JOB_ACTIONS = {
    "GetJob", "CreateJob", "UpdateJob", "DeleteJob", "StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun",
}
_GLUE_CRAWLER_ACTIONS = {"GetCrawler", "UpdateCrawler", "StartCrawler", "StopCrawler", "DeleteCrawler"}


class Recorder:
    """WSGI middleware: records the calls of assumed roles, then hands the request on unchanged."""

    def __init__(self, app: Callable[..., Any], role_of_key: Callable[[str], str | None]) -> None:
        self.app = app
        self.role_of_key = role_of_key
        self._lock = threading.Lock()
        config.LOGS.mkdir(parents=True, exist_ok=True)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        role = self.role_of_key(match.group(1)) if match else None
        if role:
            try:
                self._record(role, match.group(3), environ)
            except Exception:  # recording must never change what the caller gets
                log.exception("could not record a call of %s", role)
        return self.app(environ, start_response)

    def _record(self, role: str, service: str, environ: dict[str, Any]) -> None:
        if service == "s3":
            calls = s3_calls(environ)
        else:
            body = _read_body(environ)
            calls = api_calls(service, environ, body)
        if not calls:
            return
        now = time.time()
        lines = "".join(json.dumps({"time": now, "role": role, **call}) + "\n" for call in calls)
        with self._lock, open(config.CALL_LOG, "a") as handle:
            handle.write(lines)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back so that moto reads it too."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _call(action: str, resources: list[str], **context: Any) -> dict[str, Any]:
    return {"action": action, "resources": resources, "context": context}


# -- S3 (REST) ----------------------------------------------------------------------------------


def s3_calls(environ: dict[str, Any]) -> list[dict[str, Any]]:
    method = environ.get("REQUEST_METHOD", "GET")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    path = unquote(environ.get("PATH_INFO", "/")).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket:
        return [_call("s3:ListAllMyBuckets", ["*"])]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not key:
        if method == "POST" and "delete" in query:
            keys = re.findall(rb"<Key>(.*?)</Key>", _read_body(environ))
            return [_call("s3:DeleteObject", [f"{bucket_arn}/{_xml_text(k)}" for k in keys])]
        if method in ("GET", "HEAD") and not (set(query) - {"list-type", "prefix", "delimiter", "max-keys",
                                                              "continuation-token", "start-after", "encoding-type",
                                                              "fetch-owner", "marker"}):
            return [_call("s3:ListBucket", [bucket_arn], **{"s3:prefix": query.get("prefix", [""])[0]})]
        if "location" in query:
            return [_call("s3:GetBucketLocation", [bucket_arn])]
        if "uploads" in query:
            return [_call("s3:ListBucketMultipartUploads", [bucket_arn])]
        sub = next(iter(query), "")
        return [_call(f"s3:{method}Bucket{sub.title()}", [bucket_arn])]
    object_arn = f"{bucket_arn}/{key}"
    if method in ("GET", "HEAD"):
        if "uploadId" in query:
            return [_call("s3:ListMultipartUploadParts", [object_arn])]
        if "tagging" in query:
            return [_call("s3:GetObjectTagging", [object_arn])]
        return [_call("s3:GetObjectVersion" if "versionId" in query else "s3:GetObject", [object_arn])]
    if method in ("PUT", "POST"):
        if "tagging" in query:
            return [_call("s3:PutObjectTagging", [object_arn])]
        calls = [_call("s3:PutObject", [object_arn])]
        source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        if source:
            calls.append(_call("s3:GetObject", ["arn:aws:s3:::" + unquote(source).lstrip("/").split("?")[0]]))
        return calls
    if method == "DELETE":
        if "uploadId" in query:
            return [_call("s3:AbortMultipartUpload", [object_arn])]
        return [_call("s3:DeleteObject", [object_arn])]
    return [_call(f"s3:{method}Object", [object_arn])]


def _xml_text(raw: bytes) -> str:
    return raw.decode().replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')


# -- JSON and query APIs ------------------------------------------------------------------------


def api_calls(service: str, environ: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        action = target.rsplit(".", 1)[-1]
        params = json.loads(body or b"{}")
    else:
        form = parse_qs(body.decode() or environ.get("QUERY_STRING", ""))
        params = {name: values[0] for name, values in form.items()}
        action = params.pop("Action", "")
    if not action:
        return []
    if service == "glue":
        return _glue(action, params)
    if service == "logs":
        return _logs(action, params)
    if service == "secretsmanager":
        return [_call(f"secretsmanager:{action}", [_secret_arn(str(params.get("SecretId", "")))])]
    if service == "iam":
        name = params.get("RoleName")
        return [_call(f"iam:{action}", [f"arn:aws:iam::{config.ACCOUNT_ID}:role/{name}" if name else "*"])]
    if service == "sns":
        # Publish names its topic as TopicArn, or as TargetArn (the provider's notifier uses that).
        return [_call(f"sns:{action}", [params.get("TopicArn") or params.get("TargetArn") or "*"])]
    if service == "sts" and action == "GetCallerIdentity":
        return []  # needs no permission
    return [_call(f"{service}:{action}", ["*"])]


def _glue(action: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    glue = f"arn:aws:glue:{ARN}"
    calls = []
    if action == "CreateCrawler":
        # No resource-level permissions in IAM: a policy must allow it on "*".
        calls.append(_call("glue:CreateCrawler", ["*"]))
        role = params.get("Role")
    elif action in _GLUE_JOB_ACTIONS:
        name = params.get("JobName") or params.get("Name")
        calls.append(_call(f"glue:{action}", [f"{glue}:job/{name}"]))
        role = params.get("Role") or (params.get("JobUpdate") or {}).get("Role")
    elif action in _GLUE_CRAWLER_ACTIONS:
        calls.append(_call(f"glue:{action}", [f"{glue}:crawler/{params.get('Name')}"]))
        role = params.get("Role")
    elif action == "GetCrawlerMetrics":
        return [_call("glue:GetCrawlerMetrics", ["*"])]
    elif action == "GetConnection":
        return [_call("glue:GetConnection", [f"{glue}:catalog", f"{glue}:connection/{params.get('Name')}"])]
    elif action in ("GetDatabase", "CreateDatabase", "UpdateDatabase"):
        name = params.get("Name") or (params.get("DatabaseInput") or {}).get("Name")
        return [_call(f"glue:{action}", [f"{glue}:catalog", f"{glue}:database/{name}"])]
    elif action == "GetTables":
        database = params.get("DatabaseName")
        resources = [f"{glue}:catalog", f"{glue}:database/{database}", f"{glue}:table/{database}/*"]
        return [_call("glue:GetTables", resources)]
    elif action in _GLUE_TABLE_ACTIONS:
        database = params.get("DatabaseName")
        table = params.get("TableName") or params.get("Name") or (params.get("TableInput") or {}).get("Name")
        return [
            _call(
                f"glue:{action}", [f"{glue}:catalog", f"{glue}:database/{database}", f"{glue}:table/{database}/{table}"]
            )
        ]
    else:
        return [_call(f"glue:{action}", ["*"])]
    if role:
        # CreateJob/UpdateJob/CreateCrawler/UpdateCrawler hand the role to Glue: IAM checks PassRole.
        arn = role if role.startswith("arn:") else f"arn:aws:iam::{config.ACCOUNT_ID}:role/{role}"
        calls.append(_call("iam:PassRole", [arn], **{"iam:PassedToService": "glue.amazonaws.com"}))
    return calls


def _logs(action: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    group = params.get("logGroupName") or params.get("logGroupIdentifier") or ""
    arn = f"arn:aws:logs:{ARN}:log-group:{group}"
    stream = params.get("logStreamName")
    if action in ("PutLogEvents", "CreateLogStream", "GetLogEvents") and stream:
        arn += f":log-stream:{stream}"
    return [_call(f"logs:{action}", [arn])]


_secret_arns: dict[str, str] = {}


def _secret_arn(secret_id: str) -> str:
    """IAM checks the secret's full ARN (name plus a random suffix) also when a call names it."""
    if secret_id.startswith("arn:"):
        return secret_id
    if secret_id not in _secret_arns:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[config.ACCOUNT_ID][config.REGION]
        try:
            _secret_arns[secret_id] = backend.describe_secret(secret_id).arn
        except Exception:
            # No such secret (the secrets backend looks for connections that live elsewhere).
            return f"arn:aws:secretsmanager:{ARN}:secret:{secret_id}"
    return _secret_arns[secret_id]


def role_of_key(access_key_id: str) -> str | None:
    """The role ARN whose session the access key belongs to, or None (the stack's own key)."""
    if access_key_id == config.ACCESS_KEY_ID:
        return None
    from moto.sts.models import sts_backends

    assumed = sts_backends[config.ACCOUNT_ID]["aws"].get_assumed_role_from_access_key(access_key_id)
    return assumed.role_arn if assumed else None
