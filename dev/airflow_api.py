"""Airflow's REST API (v2) as the local tools and the tests use it: the client and the reads they share.

Airflow's metadata tables and ORM are internals that change between releases; the REST API and the
`airflow` CLI are its public interfaces, and the only ones the tools under dev/ and tests/ use.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

Say = Callable[[str], None]
UI_USER = "admin"
TERMINAL = ("success", "failed")
# Enough for every run of a backfill and every task instance of a run of the DAG.
PAGE = 100


class LocalAirflowError(Exception):
    """An expected failure, reported as a message without a traceback."""


class ApiError(LocalAirflowError):
    """Airflow's API refused a request; `status` is its HTTP status (0: it did not answer)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class RestApi:
    """Airflow's REST API (v2) as the UI's user, with a token from SimpleAuthManager's /auth/token."""

    def __init__(self, base_url: str, password: str, user: str = UI_USER) -> None:
        self.base_url = base_url
        answer = self._request("POST", "/auth/token", {"username": user, "password": password}, token=None)
        self._token = answer["access_token"]

    def _request(self, method: str, path: str, body: dict | None = None, token: str | None = "") -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self._token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip()[:300]
            raise ApiError(f"Airflow's API refused {method} {path}: {error.code} {detail}", error.code) from None
        except OSError as error:
            raise ApiError(f"Airflow's API does not answer on {self.base_url}: {error}", 0) from None
        return json.loads(text) if text else None

    def get(self, path: str, **query: Any) -> Any:
        """GET `path`; list values of `query` repeat the parameter (`state=queued&state=running`)."""
        if query:
            path += "?" + urllib.parse.urlencode(query, doseq=True)
        return self._request("GET", path)

    def post(self, path: str, body: dict) -> Any:
        return self._request("POST", path, body)

    def patch(self, path: str, body: dict) -> Any:
        return self._request("PATCH", path, body)

    def put(self, path: str, body: dict | None = None) -> Any:
        return self._request("PUT", path, body or {})

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)

    # -- the reads and writes the tools share ------------------------------------------------------

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def runs(self, dag_id: str, **query: Any) -> list[dict]:
        """The DAG's runs that match `query` (the list endpoint's filters), by logical date."""
        query = {"limit": PAGE, "order_by": "logical_date", **query}
        return list(self.get(f"/api/v2/dags/{dag_id}/dagRuns", **query)["dag_runs"])

    def runs_at(self, dag_id: str, first: datetime, last: datetime | None = None, **query: Any) -> list[dict]:
        """Runs at logical dates `first`..`last` (inclusive; just `first` without `last`)."""
        return self.runs(dag_id, logical_date_gte=iso(first), logical_date_lte=iso(last or first), **query)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(self.run_path(dag_id, run_id))

    def task_instances(self, dag_id: str, run_id: str, **query: Any) -> list[dict]:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances"
        return list(self.get(path, limit=PAGE, **query)["task_instances"])

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        """The run's failed tasks, in the order they started."""
        failed = self.task_instances(dag_id, run_id, state="failed")
        latest = datetime.max.replace(tzinfo=timezone.utc)
        return [
            task["task_id"] for task in sorted(failed, key=lambda t: (when(t["start_date"]) or latest, t["task_id"]))
        ]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def wait_until_parsed(
        self, dag_id: str, dag_file: str, since: datetime, check: Callable[[], None], timeout: float, say: Say
    ) -> bool:
        """Wait until the dag-processor has parsed the DAG file after `since`; returns whether the DAG is paused.

        An import error of the file recorded since then fails at once, with its last line.
        `check` is called at every poll (it raises when the services have stopped); TimeoutError after
        `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check()
            for error in self.get("/api/v2/importErrors", limit=PAGE)["import_errors"]:
                if error["filename"].endswith(dag_file) and when(error["timestamp"]) >= since:
                    lines = [line for line in (error["stack_trace"] or "").strip().splitlines() if line.strip()]
                    raise LocalAirflowError(
                        f"the DAG file {dag_file} does not import: {(lines or ['(no message)'])[-1].strip()}"
                    )
            dag = self._dag(dag_id)
            parsed_at = when(dag["last_parsed_time"]) if dag else None
            parsed = dag is not None and not dag["is_stale"] and parsed_at is not None and parsed_at >= since
            if parsed and self.get(f"/api/v2/dags/{dag_id}/dagVersions", limit=1)["total_entries"]:
                say(f"DAG {dag_id} parsed")
                return bool(dag["is_paused"])
            time.sleep(1)
        raise TimeoutError

    def _dag(self, dag_id: str) -> dict | None:
        try:
            return self.get(f"/api/v2/dags/{dag_id}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise
