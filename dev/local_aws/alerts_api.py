"""The alerts API over plain HTTP on this machine, in place of API Gateway: `POST /alerts`.

Each request is translated into the API Gateway proxy event that the Lambda handler receives in AWS,
and the handler's proxy response is sent back as is, so the local API behaves like the deployed one.

    server = start("127.0.0.1", 0)          # a free port; serves from a daemon thread
    url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    ...
    server.shutdown(); server.server_close()

or, standalone, with the environment of `.local/stack.env` (RAW_BUCKET, AWS_ENDPOINT_URL, ...):

    python -m dev.local_aws.alerts_api --port 8099
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from infrastructure.alerts_api import handler as alerts_handler

log = logging.getLogger(__name__)

PATH = "/alerts"
# API Gateway refuses payloads over 10 MB before calling the function; this server does not even read
# bodies that are far beyond what the handler accepts.
MAX_READ_BYTES = 1024 * 1024
# Connections the kernel queues until the server accepts them. socketserver's default of 5 resets
# the connections of a burst (devices reconnecting together after an outage) that arrive while the
# accept loop is busy; the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
# A client that stops sending mid-request frees its thread after this long.
REQUEST_TIMEOUT_SECONDS = 60

Handle = Callable[[dict[str, Any]], dict[str, Any]]


def _event(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """An API Gateway REST API (payload format 1.0) proxy event."""
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": PATH,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "queryStringParameters": None,
        "pathParameters": None,
        "body": text if body else None,
        "isBase64Encoded": encoded,
        "requestContext": {
            "resourcePath": PATH,
            "httpMethod": method,
            "path": path,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
    }


def _request_handler(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class AlertsRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = REQUEST_TIMEOUT_SECONDS

        def _reply(self, status: int, headers: dict[str, str], body: str) -> None:
            payload = body.encode("utf-8")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, message: str) -> None:
            self._reply(status, {"Content-Type": "application/json"}, json.dumps({"error": message}))

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.rstrip("/") != PATH:
                # Nothing of an unread body may be mistaken for the next request on this connection.
                self.close_connection = True
                self._error(404, f"no such resource {path}: the alerts API is POST {PATH}")
                return
            length_header = self.headers.get("Content-Length")
            if self.command == "POST" and length_header is None:
                self.close_connection = True
                self._error(411, "Content-Length is required")
                return
            try:
                length = int(length_header or 0)
            except ValueError:
                self.close_connection = True
                self._error(400, "Content-Length is not a number")
                return
            if length > MAX_READ_BYTES:
                self.close_connection = True
                self._error(413, f"the body is larger than {alerts_handler.MAX_BODY_BYTES} bytes")
                return
            body = self.rfile.read(length) if length > 0 else b""
            try:
                response = handle(_event(self.command, self.path, dict(self.headers.items()), body))
            except Exception:
                # What API Gateway answers when the function raises, instead of a dropped connection.
                log.exception("the alerts handler raised")
                self._reply(502, {"Content-Type": "application/json"}, json.dumps({"message": "Internal server error"}))
                return
            self._reply(response["statusCode"], response.get("headers", {}), response.get("body", ""))

        do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return AlertsRequestHandler


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def start(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    bucket: str | None = None,
    s3_client: Any = None,
) -> ThreadingHTTPServer:
    """Serve the alerts API from a daemon thread and return the server (port 0 picks a free port).

    Without `bucket` and `s3_client` it uses the Lambda handler's own set-up from the environment
    (RAW_BUCKET, and boto3's AWS_ENDPOINT_URL and credentials).
    """
    if (bucket is None) != (s3_client is None):
        raise ValueError("pass both bucket and s3_client, or neither")
    if bucket is not None:
        api = alerts_handler.AlertsApi(bucket, s3_client)
        handle: Handle = api.handle
    else:
        handle = lambda event: alerts_handler.handler(event, None)  # noqa: E731
    server = _Server((host, port), _request_handler(handle))
    thread = threading.Thread(target=server.serve_forever, name="alerts-api", daemon=True)
    thread.start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dev.local_aws.alerts_api", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    if not os.environ.get("RAW_BUCKET"):
        parser.error("RAW_BUCKET is not set: load the stack's environment first (set -a; . .local/stack.env)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = start(args.host, args.port)
    print(f"alerts API on http://{args.host}:{server.server_address[1]}{PATH}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
