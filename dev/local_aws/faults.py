"""Test controls of the local stack's Glue job runs and crawls, over its control API (`/_stack/...`).

These exist only on the local stack; nothing in AWS corresponds to them, and the pipeline's code never
calls them. Tests use them to provoke what is hard to provoke honestly:

- `fail_next_job_run(endpoint_url, job_name, message)`: the next run of the job fails without running
  its script, with `message` as ErrorMessage and in the run's error log.
- `set_timeout_scale(endpoint_url, job_name, seconds_per_minute)`: a Timeout minute of the job's runs
  lasts that many seconds (Glue's Timeout is whole minutes); None restores 60.
- `fail_next_crawl(endpoint_url, crawler_name, message, times=1)`: the next `times` crawls of the
  crawler fail without crawling, with `message` as LastCrawl.ErrorMessage and in the crawler's log;
  `times=0` cancels what is left.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ControlError(Exception):
    pass


def _post(endpoint_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        endpoint_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ControlError(f"{path}: {exc.code} {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise ControlError(f"the stack at {endpoint_url} does not answer: {exc.reason}") from None


def _job_path(job_name: str, action: str) -> str:
    return f"/_stack/glue/jobs/{urllib.parse.quote(job_name, safe='')}/{action}"


def fail_next_job_run(endpoint_url: str, job_name: str, message: str) -> None:
    """Make the next run of `job_name` end FAILED with `message`, without running its script."""
    _post(endpoint_url, _job_path(job_name, "fail-next-run"), {"message": message})


def set_timeout_scale(endpoint_url: str, job_name: str, seconds_per_minute: float | None) -> None:
    """Let one Timeout minute of `job_name`'s runs last `seconds_per_minute` seconds (None: 60)."""
    _post(endpoint_url, _job_path(job_name, "timeout-scale"), {"seconds_per_minute": seconds_per_minute})


def fail_next_crawl(endpoint_url: str, crawler_name: str, message: str, times: int = 1) -> None:
    """Make the next `times` crawls of `crawler_name` end FAILED with `message`, without crawling."""
    path = f"/_stack/glue/crawlers/{urllib.parse.quote(crawler_name, safe='')}/fail-next-crawl"
    _post(endpoint_url, path, {"message": message, "times": times})
