"""The alerts handler's checks on hostile and generated bodies, without the local stack.

The S3 client is a stub that records what would be stored: these tests are about which answer a body
gets, that an alert is stored exactly when the answer is 202, and that every alert within the rules is
answered 202. What the stored object looks like in S3 is tested against the stack's S3 in
test_alerts_api.py and test_alerts_api_http.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infrastructure.alerts_api.handler import AlertsApi

from tests.alert_bodies import ALERT, alert_bodies, valid_alerts

NOW = datetime(2025, 10, 2, 12, 0, 0, tzinfo=timezone.utc)


class RecordingS3:
    """Stands in for boto3's S3 client: keeps each put_object's key and body."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict:  # noqa: N803 (boto3's names)
        self.objects[Key] = Body
        return {}


def _post(api: AlertsApi, body: bytes, now: datetime = NOW) -> dict:
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        import base64

        text, encoded = base64.b64encode(body).decode("ascii"), True
    event = {"httpMethod": "POST", "path": "/alerts", "headers": {"Content-Type": "application/json"},
             "body": text, "isBase64Encoded": encoded}
    return api.handle(event, now=now)


HOSTILE = [
    ("16 KB of nested brackets", b"[" * 8000 + b"]" * 8000, None),
    ("nested objects", b'{"a":' * 2500 + b"1" + b"}" * 2500, None),
    ("nested brackets in a field", json.dumps(ALERT).encode()[:-1] + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", None),
    ("an integer of 5000 digits", b"1" * 5000, None),
    ("an integer of 5000 digits in a field", b'{"device_id": ' + b"9" * 5000 + b"}", None),
    ("year 1 with a positive offset", json.dumps({**ALERT, "alert_timestamp": "0001-01-01T00:30:00+01:00"}).encode(),
     "alert_timestamp"),
    ("year 9999 with a negative offset",
     json.dumps({**ALERT, "alert_timestamp": "9999-12-31T23:30:00-01:00"}).encode(), "alert_timestamp"),
    ("offset +23:30", json.dumps({**ALERT, "alert_timestamp": "2025-10-02T10:00:00+23:30"}).encode(),
     "alert_timestamp"),
    ("non-ASCII digits", json.dumps({**ALERT, "alert_timestamp": "٢٠٢٥-10-02T10:00:00Z"}).encode(), "alert_timestamp"),
]


@pytest.mark.parametrize(("case", "body", "field"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_bodies_get_a_400_naming_the_problem(case, body, field):
    s3 = RecordingS3()
    response = _post(AlertsApi("raw", s3), body)
    assert response["statusCode"] == 400, response
    answer = json.loads(response["body"])
    assert answer["error"]
    assert answer.get("field") == field
    assert s3.objects == {}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alert_bodies())
def test_any_body_gets_a_4xx_or_is_stored(body):
    s3 = RecordingS3()
    response = _post(AlertsApi("raw", s3), body)
    status = response["statusCode"]
    assert status == 202 or 400 <= status < 500, response
    assert json.loads(response["body"])
    if status == 202:
        (key,) = s3.objects
        alert_id = json.loads(response["body"])["alert_id"]
        assert re.fullmatch(rf"alerts/dt=20[0-9]{{2}}-[0-9]{{2}}-[0-9]{{2}}/{alert_id}\.json", key), key
    else:
        assert s3.objects == {}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_alerts(NOW), st.booleans())
def test_every_valid_alert_is_answered_202_and_stored(alert, ascii_only):
    # Without this, a handler that refused every body would pass the test above.
    s3 = RecordingS3()
    response = _post(AlertsApi("raw", s3), json.dumps(alert, ensure_ascii=ascii_only).encode())
    assert response["statusCode"] == 202, response
    answer = json.loads(response["body"])
    day = datetime.fromisoformat(alert["alert_timestamp"]).astimezone(timezone.utc).date().isoformat()
    key = f"alerts/dt={day}/{answer['alert_id']}.json"
    assert list(s3.objects) == [key]
    stored = json.loads(s3.objects[key])
    assert stored == {"alert_id": answer["alert_id"], **alert, "received_at": answer["received_at"]}


@given(st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_any_bytes_get_a_4xx(body):
    s3 = RecordingS3()
    response = _post(AlertsApi("raw", s3), body)
    assert 400 <= response["statusCode"] < 500
    assert s3.objects == {}
