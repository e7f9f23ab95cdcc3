"""boto3 clients from inside the server process back to the server itself, and CloudWatch log writers.

Crawlers and job runs talk to the emulated S3, Glue catalog and CloudWatch Logs through the public
API, exactly as a client would, so they depend on moto's API rather than on its internals.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from dev.local_aws import config


class RoleNotAssumable(Exception):
    """The role a crawler or job names does not exist, so Glue could not assume it."""


class Loopback:
    """Clients with the stack's own (administrator) credentials, or `as_role(role)` for a role's."""

    def __init__(self, endpoint_url: str, credentials: dict[str, str] | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        credentials = credentials or {
            "aws_access_key_id": config.ACCESS_KEY_ID,
            "aws_secret_access_key": config.SECRET_ACCESS_KEY,
        }
        self.credentials = credentials
        self._session = boto3.session.Session(**credentials)
        self._roles: dict[str, Loopback] = {}

    def client(self, service: str, region: str) -> Any:
        # botocore clients are thread-safe once built; building them is not, and costs ~50 ms.
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}),
                )
            return self._clients[key]

    def as_role(self, role: str, region: str = config.REGION) -> Loopback:
        """Clients with the credentials of a session of `role` (a name or an ARN), as Glue assumes a
        crawler's or a job's role: the stack records each call with that role (`calls`)."""
        arn = role_arn(role)
        with self._lock:
            cached = self._roles.get(arn)
        if cached is not None:
            return cached
        try:
            self.client("iam", region).get_role(RoleName=arn.rsplit("/", 1)[-1])
        except Exception as exc:
            raise RoleNotAssumable(f"Glue could not assume role {role}: it does not exist.") from exc
        credentials = self.client("sts", region).assume_role(RoleArn=arn, RoleSessionName="glue")["Credentials"]
        view = Loopback(
            self.endpoint_url,
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            },
        )
        with self._lock:
            return self._roles.setdefault(arn, view)


def role_arn(role: str) -> str:
    """A role's ARN from its name or ARN (Glue accepts both), in the stack's one account."""
    return role if role.startswith("arn:") else f"arn:aws:iam::{config.ACCOUNT_ID}:role/{role}"


class LogWriter:
    """Buffers lines for one CloudWatch log stream; `flush` sends them in one PutLogEvents call."""

    MAX_BATCH = 1000

    def __init__(self, logs_client: Any, group: str, stream: str) -> None:
        self._logs = logs_client
        self.group = group
        self.stream = stream
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        for create, kwargs in (
            (self._logs.create_log_group, {"logGroupName": group}),
            (self._logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                create(**kwargs)
            except self._logs.exceptions.ResourceAlreadyExistsException:
                pass

    def write(self, message: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": message.rstrip("\n") or " "}
        with self._lock:
            self._pending.append(event)
            full = len(self._pending) >= self.MAX_BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                self._logs.put_log_events(
                    logGroupName=self.group, logStreamName=self.stream, logEvents=batch
                )
