"""The alerts API: an AWS Lambda handler behind API Gateway (Lambda proxy integration).

A device POSTs one alert as a JSON object:

    {"device_id": "DEV-B202", "error_code": "E101_OVERHEAT",
     "details": "CPU temperature above threshold", "alert_timestamp": "2025-10-02T20:15:00+02:00"}

The handler checks it, gives it an `alert_id` (a UUID) and a `received_at` (UTC, server clock), and
stores it as `alerts/dt=<UTC day of alert_timestamp>/<alert_id>.json` in the raw bucket (env
RAW_BUCKET). Answers, each a JSON body:

    202 {"alert_id": ..., "received_at": ...}   stored
    400 {"error": ..., "field": ...}            invalid alert; `field` names the offending field
    405 / 415                                   not a POST / not a JSON body
    413 {"error": ...}                          body larger than MAX_BODY_BYTES
    503 {"error": ...}                          the alert could not be stored; retry later

Nothing is written for a refused alert. The S3 client is created on first use, so importing this
module is cheap and the standard AWS environment (including AWS_ENDPOINT_URL for the local stack)
applies. Both API Gateway payload formats (REST API 1.0 and HTTP API 2.0) are accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
FIELDS = ("device_id", "error_code", "details", "alert_timestamp")
MAX_LENGTHS = {"device_id": 64, "error_code": 64, "details": 2000, "alert_timestamp": 40}
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
# ASCII digits only: `\d` and `datetime.fromisoformat` would also take other scripts' digits, which
# the ETL's parse does not.
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-5][0-9])")
# The timestamp rule (docs/contract.md, section 2), a copy of the Glue jobs' own
# (glue_scripts/hardware_correlation/timestamp_rule.py), which a Lambda function cannot import;
# tests/test_timestamp_rule.py runs one table of cases against both. Offsets within +-18:00, as
# Spark's and Java's ZoneOffset; no UTC day before the DAG's start date, whose runs never read such
# a day, nor after the last day written YYYY-MM-DD, as the alert's key is; and a device clock far
# ahead would file the alert under a day that is never processed.
MAX_UTC_OFFSET = timedelta(hours=18)
EARLIEST_DAY = date(2015, 1, 1)
LATEST_DAY = date(9999, 12, 31)
MAX_CLOCK_AHEAD = timedelta(days=1)
_EARLIEST_INSTANT = datetime(EARLIEST_DAY.year, EARLIEST_DAY.month, EARLIEST_DAY.day, tzinfo=timezone.utc)
_LATEST_INSTANT = datetime.combine(LATEST_DAY, datetime.max.time(), timezone.utc)


class Refused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value
    return None


def _method(event: dict[str, Any]) -> str:
    return (event.get("httpMethod") or event.get("requestContext", {}).get("http", {}).get("method") or "").upper()


def _body_bytes(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise Refused(400, "the request has no body: send one alert as a JSON object")
    if event.get("isBase64Encoded"):
        if len(body) > (MAX_BODY_BYTES * 4) // 3 + 4:
            raise Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "the body is marked base64-encoded but is not valid base64") from None
    else:
        raw = body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        raise Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return raw


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused(400, f"field {key!r} appears more than once", key)
        seen[key] = value
    return seen


def validate(raw: bytes, now: datetime) -> tuple[dict[str, str], str]:
    """The alert's four fields and the UTC day of its timestamp, or Refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8 text") from None
    try:
        alert = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as error:
        raise Refused(
            400, f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        # The parser recurses once per nesting level: a body of brackets reaches the interpreter's
        # limit well within MAX_BODY_BYTES.
        raise Refused(400, "the body is not an alert: its JSON nests too deeply") from None
    except ValueError as error:
        # An integer literal beyond Python's digit limit for int(), for one.
        raise Refused(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(alert, dict):
        raise Refused(400, "the body must be one JSON object with the fields " + ", ".join(FIELDS))

    unknown = sorted(set(alert) - set(FIELDS))
    if unknown:
        raise Refused(400, f"unknown field {unknown[0]!r}; an alert has exactly " + ", ".join(FIELDS), unknown[0])
    for name in FIELDS:
        value = alert.get(name)
        if name not in alert:
            raise Refused(400, f"{name} is missing", name)
        if not isinstance(value, str):
            raise Refused(400, f"{name} must be a string", name)
        if not value.strip():
            raise Refused(400, f"{name} is empty", name)
        if len(value) > MAX_LENGTHS[name]:
            raise Refused(400, f"{name} is longer than {MAX_LENGTHS[name]} characters", name)
    for name in ("device_id", "error_code"):
        if not IDENTIFIER.fullmatch(alert[name]):
            raise Refused(
                400, f"{name} may hold only letters, digits and . _ : / - (starting with a letter or digit)", name
            )

    stamp = alert["alert_timestamp"]
    instant = None
    if TIMESTAMP.fullmatch(stamp):
        try:
            instant = datetime.fromisoformat(stamp)
        except ValueError:
            pass
    if instant is None:
        raise Refused(
            400,
            "alert_timestamp must be ISO-8601 with Z or a UTC offset, e.g. 2025-10-01T10:00:00Z or "
            "2025-10-01T23:30:00-05:00",
            "alert_timestamp",
        )
    offset = instant.utcoffset()
    if offset is None or abs(offset) > MAX_UTC_OFFSET:
        raise Refused(400, "alert_timestamp has a UTC offset beyond -18:00..+18:00", "alert_timestamp")
    # Aware datetimes compare through UTC without converting, so year 1 or 9999 cannot overflow here.
    if instant < _EARLIEST_INSTANT:
        raise Refused(400, f"alert_timestamp is before {EARLIEST_DAY.isoformat()} (UTC)", "alert_timestamp")
    if instant > _LATEST_INSTANT:
        raise Refused(400, f"alert_timestamp is after {LATEST_DAY.isoformat()} (UTC)", "alert_timestamp")
    if instant - now > MAX_CLOCK_AHEAD:
        raise Refused(400, "alert_timestamp is more than a day ahead of the server's clock", "alert_timestamp")
    return {name: alert[name] for name in FIELDS}, instant.astimezone(timezone.utc).date().isoformat()


class AlertsApi:
    """The API bound to a bucket and an S3 client; `handler` below builds one from the environment."""

    def __init__(self, bucket: str, s3_client: Any):
        self.bucket = bucket
        self.s3 = s3_client

    def handle(self, event: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(timezone.utc)
        try:
            if _method(event) != "POST":
                raise Refused(405, "only POST is allowed: POST one alert as a JSON object")
            content_type = _header(event, "content-type")
            if content_type and content_type.split(";")[0].strip().lower() != "application/json":
                raise Refused(415, f"the body must be application/json, not {content_type}")
            alert, day = validate(_body_bytes(event), now)
        except Refused as refused:
            log.info("alert refused (%d): %s", refused.status, refused.message)
            body = {"error": refused.message}
            if refused.field:
                body["field"] = refused.field
            return _response(refused.status, body)

        alert_id = str(uuid.uuid4())
        received_at = now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {"alert_id": alert_id, **alert, "received_at": received_at}
        key = f"alerts/dt={day}/{alert_id}.json"
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=(json.dumps(record) + "\n").encode("utf-8"),
                ContentType="application/json",
            )
        except (BotoCoreError, ClientError):
            log.exception("storing alert %s as s3://%s/%s failed", alert_id, self.bucket, key)
            return _response(503, {"error": "the alert could not be stored; retry later"})
        log.info("alert %s stored as s3://%s/%s", alert_id, self.bucket, key)
        return _response(202, {"alert_id": alert_id, "received_at": received_at})


_api: AlertsApi | None = None


def _default_api() -> AlertsApi:
    global _api
    if _api is None:
        bucket = os.environ.get("RAW_BUCKET")
        if not bucket:
            raise RuntimeError("RAW_BUCKET is not set: the alerts API needs the raw bucket's name")
        import boto3

        _api = AlertsApi(bucket, boto3.client("s3"))
    return _api


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point: `handler.handler` (the module at the root of the function's zip)."""
    try:
        api = _default_api()
    except RuntimeError as error:
        log.error("%s", error)
        return _response(500, {"error": "the alerts API is not configured"})
    return api.handle(event)
