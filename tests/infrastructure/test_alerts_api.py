"""The alerts Lambda handler against the local stack's S3: what it stores, and every refusal."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone

import pytest

from infrastructure.alerts_api import handler as alerts_handler
from infrastructure.alerts_api.handler import MAX_BODY_BYTES, AlertsApi
from tests.support import aws_client

pytestmark = pytest.mark.stack

NOW = datetime(2025, 10, 2, 12, 0, 0, 123456, tzinfo=timezone.utc)
ALERT = {
    "device_id": "DEV-B202",
    "error_code": "E101_OVERHEAT",
    "details": "CPU temperature above threshold",
    "alert_timestamp": "2025-10-01T23:30:00-05:00",
}


def _s3(stack: dict[str, str]):
    return aws_client(stack, "s3")


def _keys(s3, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture
def bucket(stack):
    """A bucket of its own, so that 'nothing was written' is a plain listing."""
    s3 = _s3(stack)
    name = f"alerts-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield s3, name
    for key in _keys(s3, name):
        s3.delete_object(Bucket=name, Key=key)
    s3.delete_bucket(Bucket=name)


def _event(body, method: str = "POST", content_type: str | None = "application/json", encoded: bool = False) -> dict:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    headers = {"Content-Type": content_type} if content_type else {}
    return {"httpMethod": method, "path": "/alerts", "headers": headers, "body": body, "isBase64Encoded": encoded}


def test_an_alert_is_stored_under_the_utc_day_of_its_timestamp(bucket):
    s3, name = bucket
    response = AlertsApi(name, s3).handle(_event(ALERT), now=NOW)

    assert response["statusCode"] == 202
    assert response["headers"]["Content-Type"] == "application/json"
    answer = json.loads(response["body"])
    assert uuid.UUID(answer["alert_id"]).version == 4
    assert answer["received_at"] == "2025-10-02T12:00:00.123Z"

    # 23:30 at UTC-5 is 04:30 UTC the next day.
    key = f"alerts/dt=2025-10-02/{answer['alert_id']}.json"
    assert _keys(s3, name) == [key]
    stored = s3.get_object(Bucket=name, Key=key)
    assert stored["ContentType"] == "application/json"
    body = stored["Body"].read().decode("utf-8")
    assert body.endswith("\n") and body.count("\n") == 1
    assert json.loads(body) == {"alert_id": answer["alert_id"], **ALERT, "received_at": "2025-10-02T12:00:00.123Z"}


def test_each_alert_gets_its_own_id_and_object(bucket):
    s3, name = bucket
    api = AlertsApi(name, s3)
    ids = {json.loads(api.handle(_event({**ALERT, "alert_timestamp": "2025-10-01T10:00:00Z"}))["body"])["alert_id"]
           for _ in range(3)}
    assert len(ids) == 3
    assert sorted(_keys(s3, name)) == sorted(f"alerts/dt=2025-10-01/{i}.json" for i in ids)


def test_http_api_payload_format_2_and_base64_bodies_are_accepted(bucket):
    s3, name = bucket
    event = {
        "version": "2.0",
        "routeKey": "POST /alerts",
        "rawPath": "/alerts",
        "headers": {"content-type": "application/json; charset=utf-8"},
        "requestContext": {"http": {"method": "POST", "path": "/alerts"}},
        "body": base64.b64encode(json.dumps({**ALERT, "details": "Température élevée"}).encode()).decode(),
        "isBase64Encoded": True,
    }
    response = AlertsApi(name, s3).handle(event, now=NOW)
    assert response["statusCode"] == 202, response
    (key,) = _keys(s3, name)
    assert json.loads(s3.get_object(Bucket=name, Key=key)["Body"].read())["details"] == "Température élevée"


def _without(field: str) -> dict:
    return {k: v for k, v in ALERT.items() if k != field}


REFUSALS = [
    ("get", _event(ALERT, method="GET"), 405, None),
    ("form body", _event("device_id=DEV-1", content_type="application/x-www-form-urlencoded"), 415, None),
    ("no body", _event(None), 400, None),
    ("empty body", _event(""), 400, None),
    ("not json", _event("{device_id: DEV-1}"), 400, None),
    ("not an object", _event([ALERT]), 400, None),
    ("unknown field", _event({**ALERT, "severity": "high"}), 400, "severity"),
    ("alert_id from the client", _event({**ALERT, "alert_id": "mine"}), 400, "alert_id"),
    ("missing device_id", _event(_without("device_id")), 400, "device_id"),
    ("missing error_code", _event(_without("error_code")), 400, "error_code"),
    ("missing details", _event(_without("details")), 400, "details"),
    ("missing alert_timestamp", _event(_without("alert_timestamp")), 400, "alert_timestamp"),
    ("number device_id", _event({**ALERT, "device_id": 42}), 400, "device_id"),
    ("null details", _event({**ALERT, "details": None}), 400, "details"),
    ("blank error_code", _event({**ALERT, "error_code": "  "}), 400, "error_code"),
    ("device_id with a comma", _event({**ALERT, "device_id": "DEV-1,DEV-2"}), 400, "device_id"),
    ("long device_id", _event({**ALERT, "device_id": "D" * 65}), 400, "device_id"),
    ("long details", _event({**ALERT, "details": "x" * 2001}), 400, "details"),
    ("timestamp without offset", _event({**ALERT, "alert_timestamp": "2025-10-01T10:00:00"}), 400, "alert_timestamp"),
    ("timestamp not a time", _event({**ALERT, "alert_timestamp": "2025-10-01T24:00:00Z"}), 400, "alert_timestamp"),
    ("timestamp a date only", _event({**ALERT, "alert_timestamp": "2025-10-01"}), 400, "alert_timestamp"),
    ("timestamp two days ahead", _event({**ALERT, "alert_timestamp": "2025-10-04T12:00:01Z"}), 400, "alert_timestamp"),
    ("field twice", _event('{"device_id": "A", "device_id": "B"}'), 400, "device_id"),
    ("bad base64", _event("not base64!", encoded=True), 400, None),
    ("not utf-8", _event(base64.b64encode(b'{"device_id": "\xff"}').decode(), encoded=True), 400, None),
    ("oversized", _event({**ALERT, "details": "x" * MAX_BODY_BYTES}), 413, None),
    ("oversized base64", _event(base64.b64encode(b"x" * (MAX_BODY_BYTES + 1)).decode(), encoded=True), 413, None),
]


@pytest.mark.parametrize(("case", "event", "status", "field"), REFUSALS, ids=[case[0] for case in REFUSALS])
def test_refusals_name_the_problem_and_write_nothing(bucket, case, event, status, field):
    s3, name = bucket
    response = AlertsApi(name, s3).handle(event, now=NOW)
    assert response["statusCode"] == status
    body = json.loads(response["body"])
    assert body["error"]
    assert body.get("field") == field
    if field:
        assert field in body["error"]
    assert _keys(s3, name) == []


def test_a_day_ahead_of_the_clock_is_still_accepted(bucket):
    s3, name = bucket
    response = AlertsApi(name, s3).handle(_event({**ALERT, "alert_timestamp": "2025-10-03T12:00:00Z"}), now=NOW)
    assert response["statusCode"] == 202


def test_a_store_failure_is_a_503_not_a_crash(stack):
    response = AlertsApi(f"no-such-bucket-{uuid.uuid4().hex[:8]}", _s3(stack)).handle(_event(ALERT), now=NOW)
    assert response["statusCode"] == 503
    assert "retry" in json.loads(response["body"])["error"]


def test_the_lambda_entry_point_takes_its_set_up_from_the_environment(bucket, stack, monkeypatch):
    s3, name = bucket
    for variable in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(variable, stack[variable])
    monkeypatch.setattr(alerts_handler, "_api", None)
    monkeypatch.delenv("RAW_BUCKET", raising=False)
    response = alerts_handler.handler(_event(ALERT), None)
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"error": "the alerts API is not configured"}

    monkeypatch.setenv("RAW_BUCKET", name)
    response = alerts_handler.handler(_event(ALERT), None)
    assert response["statusCode"] == 202
    alert_id = json.loads(response["body"])["alert_id"]
    assert _keys(s3, name) == [f"alerts/dt=2025-10-02/{alert_id}.json"]
