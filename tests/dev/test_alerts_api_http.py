"""The local alerts API over HTTP, storing into the local stack's S3."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest

from dev.local_aws.alerts_api import start
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
    s3 = aws_client(stack, "s3")
    bucket = f"alerts-http-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    server = start("127.0.0.1", 0, bucket=bucket, s3_client=s3)
    yield server.server_address[1], s3, bucket
    server.shutdown()
    server.server_close()
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
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
    from concurrent.futures import ThreadPoolExecutor

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
