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
- `hold_job_runs(endpoint_url, job_name)`: the job's runs started from then on stay STARTING, their
  script not started, until `release_job_runs(endpoint_url, job_name, run_id)` lets one of them go
  (the job staying held for later runs) or `release_job_runs(endpoint_url, job_name)` lets them all
  go and ends the hold. A BatchStopJobRun of a held run stops it.
- `fail_job_reads(endpoint_url, job_name, code, actions=("GetJobRun",))`: the job's `actions`
  (GetJobRun, GetJobRuns) answer the error `code` (`ThrottlingException`, HTTP 400, or
  `InternalServiceException`, HTTP 500), as an overloaded Glue API does, until
  `fail_job_reads(endpoint_url, job_name, None)`, which returns how many error answers were given.
  The job's other actions (StartJobRun, BatchStopJobRun) answer as usual.
- `hold_start_answer(endpoint_url, job_name)`: the job's next StartJobRun creates and starts its run,
  then keeps its answer back until `release_start_answer(endpoint_url, job_name)`: the window in which
  a caller has started a run but does not know its id yet.
- `hold_crawler(endpoint_url, crawler_name, state)`: a crawl of the crawler stays in `state` (RUNNING:
  before it crawls; STOPPING: before it is READY again) until `release_crawler(endpoint_url,
  crawler_name, state)`. A StopCrawler ends a hold in RUNNING (the crawl goes STOPPING).

A test waits for the state it holds instead of polling for a window that a loaded machine may miss.
Holds lapse after `config.HOLD_LIMIT_SECONDS` (10 minutes): a test that dies holding a crawl or a run
does not leave its crawler or job busy for good.
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


def hold_job_runs(endpoint_url: str, job_name: str) -> None:
    """Keep the runs of `job_name` started from now on in STARTING until they are released."""
    _post(endpoint_url, _job_path(job_name, "hold"), {})


def release_job_runs(endpoint_url: str, job_name: str, run_id: str | None = None) -> list[str]:
    """Let the held run `run_id` go on, later runs staying held; without `run_id`, let every held run
    go on and hold no more. The ids of the runs let go."""
    return _post(endpoint_url, _job_path(job_name, "release"), {"run_id": run_id})["released"]


def fail_job_reads(
    endpoint_url: str, job_name: str, code: str | None, actions: tuple[str, ...] = ("GetJobRun",)
) -> int:
    """Make `job_name`'s `actions` (GetJobRun, GetJobRuns) answer the error `code` until called with
    None; returns how many error answers were given since the errors were switched on."""
    body = {"code": code, "actions": list(actions)}
    return _post(endpoint_url, _job_path(job_name, "fail-reads"), body)["answered"]


def hold_start_answer(endpoint_url: str, job_name: str) -> None:
    """Keep back the answer of `job_name`'s next StartJobRun, its run created, until released."""
    _post(endpoint_url, _job_path(job_name, "hold-start-answer"), {})


def release_start_answer(endpoint_url: str, job_name: str) -> bool:
    """Let the held StartJobRun answer of `job_name` go; whether a hold was still set."""
    return _post(endpoint_url, _job_path(job_name, "release-start-answer"), {})["released"]


def _crawler_path(crawler_name: str, action: str) -> str:
    return f"/_stack/glue/crawlers/{urllib.parse.quote(crawler_name, safe='')}/{action}"


def hold_crawler(endpoint_url: str, crawler_name: str, state: str) -> None:
    """Keep a crawl of `crawler_name` in `state` (RUNNING or STOPPING) until it is released."""
    _post(endpoint_url, _crawler_path(crawler_name, "hold"), {"state": state})


def release_crawler(endpoint_url: str, crawler_name: str, state: str) -> None:
    """Let a crawl of `crawler_name` held in `state` go on, and hold no more crawls there."""
    _post(endpoint_url, _crawler_path(crawler_name, "release"), {"state": state})


def fail_next_crawl(endpoint_url: str, crawler_name: str, message: str, times: int = 1) -> None:
    """Make the next `times` crawls of `crawler_name` end FAILED with `message`, without crawling."""
    _post(endpoint_url, _crawler_path(crawler_name, "fail-next-crawl"), {"message": message, "times": times})
