"""The local alerts API over HTTP, storing into the local stack's S3."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dev.local_aws.alerts_api import start
from tests.alert_bodies import alert_bodies, valid_alerts
from tests.support import aws_client

pytestmark = pytest.mark.stack

ALERT = {
    "device_id": "DEV-C301",
    "error_code": "E203_FAN_FAILURE",
    "details": "Cooling fan stopped responding",
    "alert_timestamp": "2025-10-03T00:30:00+05:30",
}


@pytest.fixture
def api(stack):
    # The burst test's 50 request threads share this client.
    s3 = aws_client(stack, "s3", config=Config(max_pool_connections=64))
    bucket = f"alerts-http-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    server = start("127.0.0.1", 0, bucket=bucket, s3_client=s3)
    yield server.server_address[1], s3, bucket
    server.shutdown()
    server.server_close()
    keys = _all_keys(s3, bucket)
    for first in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[first:first + 1000]]})
    s3.delete_bucket(Bucket=bucket)


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        connection.close()


def _keys(s3, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_post_alerts_stores_the_alert(api):
    port, s3, bucket = api
    status, content_type, body = _request(
        port, "POST", "/alerts", json.dumps(ALERT).encode(), {"Content-Type": "application/json"}
    )
    assert (status, content_type) == (202, "application/json")
    key = f"alerts/dt=2025-10-02/{body['alert_id']}.json"
    assert _keys(s3, bucket) == [key]
    stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored == {"alert_id": body["alert_id"], **ALERT, "received_at": body["received_at"]}


def test_refusals_over_http(api):
    port, s3, bucket = api
    json_header = {"Content-Type": "application/json"}
    status, _, body = _request(port, "POST", "/alerts", json.dumps({**ALERT, "extra": 1}).encode(), json_header)
    assert (status, body["field"]) == (400, "extra")
    status, _, body = _request(port, "POST", "/alerts", b"\xff\xfe", json_header)
    assert status == 400
    status, _, body = _request(port, "GET", "/alerts")
    assert status == 405
    status, _, body = _request(port, "POST", "/alert", json.dumps(ALERT).encode(), json_header)
    assert status == 404 and "POST /alerts" in body["error"]
    status, _, _ = _request(port, "POST", "/alerts", json.dumps({**ALERT, "details": "x" * 20_000}).encode(), json_header)
    assert status == 413
    # Far beyond any alert: refused from the Content-Length alone, before the body is sent.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/alerts")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(2 * 1024 * 1024))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()
    assert _keys(s3, bucket) == []


def test_concurrent_posts_each_get_stored(api):
    port, s3, bucket = api
    body = json.dumps({**ALERT, "alert_timestamp": "2025-10-03T08:00:00Z"}).encode()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(
            lambda _: _request(port, "POST", "/alerts", body, {"Content-Type": "application/json"}), range(8)
        ))
    assert [status for status, _, _ in results] == [202] * 8
    assert len(_keys(s3, bucket)) == 8


def test_the_stack_serves_the_alerts_api_at_alerts_api_url(stack, aws):
    """`make up` starts the API with the stack and publishes it as ALERTS_API_URL."""
    from urllib.parse import urlsplit

    url = urlsplit(stack["ALERTS_API_URL"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("POST", url.path, json.dumps(ALERT), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 202
    alert_id = json.loads(response.read())["alert_id"]

    s3 = aws("s3")
    stored = s3.get_object(Bucket=stack["RAW_BUCKET"], Key=f"alerts/dt=2025-10-02/{alert_id}.json")
    assert json.loads(stored["Body"].read())["device_id"] == ALERT["device_id"]
    s3.delete_object(Bucket=stack["RAW_BUCKET"], Key=f"alerts/dt=2025-10-02/{alert_id}.json")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=alert_bodies(now=datetime.now(timezone.utc)))
def test_any_body_is_answered_with_a_4xx_or_stored(api, body):
    """Never a 5xx or a dropped connection; an object is stored if and only if the answer is 202."""
    port, s3, bucket = api
    before = set(_keys(s3, bucket))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/alerts", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        status, answer = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 202 or 400 <= status < 500, (status, answer)
    added = set(_keys(s3, bucket)) - before
    if status == 202:
        assert added == {f"alerts/dt={_utc_day(json.loads(body)['alert_timestamp'])}/{answer['alert_id']}.json"}
    else:
        assert added == set() and answer["error"]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(alert=valid_alerts(now=datetime.now(timezone.utc)), ascii_only=st.booleans())
def test_every_valid_alert_is_answered_202_and_stored(api, alert, ascii_only):
    """The converse of the test above, which a server refusing every body would pass."""
    port, s3, bucket = api
    body = json.dumps(alert, ensure_ascii=ascii_only).encode()
    status, _, answer = _request(port, "POST", "/alerts", body, {"Content-Type": "application/json"})
    assert status == 202, answer
    key = f"alerts/dt={_utc_day(alert['alert_timestamp'])}/{answer['alert_id']}.json"
    stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored == {"alert_id": answer["alert_id"], **alert, "received_at": answer["received_at"]}


def _utc_day(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(timezone.utc).date().isoformat()


def _all_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_a_burst_of_valid_alerts_is_answered_and_stored(api):
    """2,000 alerts from 50 clients at once, each on a new connection, as devices reconnecting together."""
    port, s3, bucket = api
    clients, per_client = 50, 40
    body = json.dumps({**ALERT, "alert_timestamp": "2025-10-03T08:00:00Z"}).encode()
    start = threading.Barrier(clients)

    def client(_: int) -> list[object]:
        start.wait()
        answers: list[object] = []
        for _ in range(per_client):
            try:
                answers.append(_request(port, "POST", "/alerts", body, {"Content-Type": "application/json"})[0])
            except OSError as error:  # a reset or refused connection
                answers.append(repr(error))
        return answers

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = [answer for batch in pool.map(client, range(clients)) for answer in batch]
    elapsed = time.perf_counter() - began
    print(f"alerts API burst: {len(answers)} alerts from {clients} clients in {elapsed:.1f} s, "
          f"{len(answers) / elapsed:.0f} alerts/s")
    assert Counter(answers) == {202: clients * per_client}
    assert len(_all_keys(s3, bucket)) == clients * per_client
