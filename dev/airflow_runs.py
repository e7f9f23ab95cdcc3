"""Runs of the DAG through Airflow's REST API: `make backfill`, a day on the scheduler of `make airflow`,
finding the run of an `airflow dags test`, and the results of days.

`make backfill FROM=.. TO=.. [PARALLEL=n]` calls `run_backfill()`. On the services of
dev/airflow_services.py it waits until the dag-processor has parsed the DAG file, unpauses the DAG,
creates the backfill (`POST /api/v2/backfills`, reprocess behaviour `completed`), follows its runs and
prints one line per day, then pauses the DAG again if it was paused. Ctrl-C or an error cancels the
backfill first, so the next one is not refused as "already running". Finished runs recorded at one of
the range's logical dates but for another day are removed first (see `_remove_runs_of_other_days`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dev.airflow_api import TERMINAL, ApiError, LocalAirflowError, RestApi, Say, iso, midnight, when
from dev.airflow_services import AIRFLOW, Services, _rel, running_services

POLL_SECONDS = 3
# The scheduler marks a finished backfill complete every 30 s.
COMPLETE_TIMEOUT = 90
# Upper bound for one day's run, from its start to its end; the backfill's bound is this times the
# number of rounds of days at once.
DAY_TIMEOUT = timedelta(minutes=90)
# A backfill's runs are queued when it is created; the clocks are the same machine's.
CLOCK_SLACK = timedelta(seconds=2)
# Days run at once (`make demo`) unpause the DAG once, and say so once.
_UNPAUSING = threading.Lock()


@dataclass
class DayResult:
    day: date
    state: str
    seconds: float | None = None
    failed_tasks: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def line(self) -> str:
        duration = "" if self.seconds is None else _duration(self.seconds)
        text = f"{self.day}  {self.state:<8} {duration:>8}"
        if self.failed_tasks:
            text += f"  failed: {', '.join(self.failed_tasks)}"
        if self.note:
            text += f"  {self.note}"
        return text.rstrip()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def run_seconds(run: dict) -> float | None:
    """How long a finished run took, from the API's record of it.

    `airflow dags test` records its run as started at the run's logical date (days ago); the run was
    created, and started, at its `run_after`. Other runs start after their `run_after`.
    """
    started, ended, after = when(run.get("start_date")), when(run.get("end_date")), when(run.get("run_after"))
    if started is None or ended is None:
        return None
    return (ended - max(started, after or started)).total_seconds()


def day_result(api: RestApi, dag_id: str, day: date, run: dict) -> DayResult:
    """The result of a finished run of `day`."""
    failed = api.failed_tasks(dag_id, run["dag_run_id"]) if run["state"] != "success" else []
    return DayResult(day, run["state"], run_seconds(run), failed)


# -- `airflow dags test` ------------------------------------------------------------------------


def dags_test_command(dag_id: str, day: date) -> list[str]:
    """`airflow dags test` for log day D, at logical date D (its data interval is [D, D + 1))."""
    return [str(AIRFLOW), "dags", "test", dag_id, day.isoformat()]


def dags_test_run(api: RestApi, dag_id: str, day: date, since: datetime) -> dict | None:
    """The run that `airflow dags test` of `day` created after `since` (it replaces any earlier run at
    that logical date, and records when it was created as the run's `run_after`)."""
    found = api.runs_at(dag_id, midnight(day), run_after_gte=iso(since))
    return found[-1] if found else None


# -- the backfill -------------------------------------------------------------------------------


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _is_of(backfill: dict, run: dict) -> bool:
    """Whether the backfill created (or cleared and took over) the run: it queued it when it was created."""
    queued = when(run.get("queued_at"))
    return run["run_type"] == "backfill" and queued is not None and queued >= when(backfill["created_at"]) - CLOCK_SLACK


def _active_backfill(api: RestApi, dag_id: str, since: datetime | None = None) -> dict | None:
    found = [
        backfill for backfill in api.get("/api/v2/backfills", dag_id=dag_id, limit=100)["backfills"]
        if backfill["completed_at"] is None and (since is None or when(backfill["created_at"]) >= since)
    ]
    return max(found, key=lambda backfill: backfill["id"]) if found else None


def _remove_runs_of_other_days(api: RestApi, dag_id: str, first: date, last: date, say: Say) -> None:
    """Remove finished runs at a logical date of the range whose data interval is another day's.

    The backfill reprocesses a day by clearing the run at its logical date, which keeps that run's data
    interval: a run at D 00:00 that processed D - 1 would make it process D - 1 again, never D. Manual
    runs were recorded so (at D + 1, for day D) before the DAG's timetable gave a manual run at D
    00:00 day D, and metadata databases of that time still hold them. `airflow dags test` replaces a
    run at its logical date in the same way.
    """
    runs = [
        run for run in api.runs_at(dag_id, midnight(first), midnight(last), state=list(TERMINAL))
        if when(run["data_interval_start"]) != when(run["logical_date"])
    ]
    if not runs:
        return
    for run in runs:
        api.delete(api.run_path(dag_id, run["dag_run_id"]))
    say(
        f"removed {len(runs)} earlier run record(s) at logical dates of the range that processed another day "
        f"({', '.join(run['dag_run_id'] for run in runs)})"
    )


def _create_backfill(api: RestApi, dag_id: str, first: date, last: date, parallel: int) -> dict:
    active = _active_backfill(api, dag_id)
    if active is not None:
        raise LocalAirflowError(
            f"backfill {active['id']} of {dag_id} is still marked as running; cancel it in the UI (Backfills) "
            "or wait until the scheduler marks it complete"
        )
    try:
        return api.post("/api/v2/backfills", {
            "dag_id": dag_id, "from_date": iso(midnight(first)), "to_date": iso(midnight(last)),
            "max_active_runs": parallel, "reprocess_behavior": "completed",
        })
    except ApiError as error:
        raise LocalAirflowError(f"creating the backfill failed: {error}") from None


def _follow(
    services: Services, api: RestApi, dag_id: str, backfill: dict, first: date, last: date, parallel: int, say: Say
) -> list[DayResult]:
    """Poll the backfill's runs until every day has finished, printing each day when it does."""
    days = _days(first, last)
    bound = DAY_TIMEOUT * math.ceil(len(days) / parallel)
    deadline = time.monotonic() + bound.total_seconds()
    results: dict[date, DayResult] = {}
    while True:
        services.check()
        runs = {when(run["logical_date"]).date(): run for run in api.runs_at(dag_id, midnight(first), midnight(last))}
        for day in days:
            run = runs.get(day)
            if day in results:
                continue
            if run is None:
                results[day] = DayResult(day, "failed", note="its run was deleted while the backfill ran")
            elif not _is_of(backfill, run):
                # Airflow does not take over a day whose run is unfinished ("in flight").
                results[day] = DayResult(day, "skipped", note="not run: a run of this day is still queued or running")
            elif run["state"] in TERMINAL:
                results[day] = day_result(api, dag_id, day, run)
            else:
                continue
            say(results[day].line())
        if len(results) == len(days):
            return [results[day] for day in days]
        if time.monotonic() > deadline:
            waiting = ", ".join(str(day) for day in days if day not in results)
            raise LocalAirflowError(
                f"the backfill did not finish within {bound} (still running: {waiting}); "
                f"see {_rel(services.log('scheduler'))} and the task logs under $AIRFLOW_HOME/logs"
            )
        time.sleep(POLL_SECONDS)


def _wait_until_completed(services: Services, api: RestApi, backfill_id: int, say: Say) -> None:
    """The scheduler marks a backfill complete after its last run; until then a new one is refused."""
    deadline = time.monotonic() + COMPLETE_TIMEOUT
    while api.get(f"/api/v2/backfills/{backfill_id}")["completed_at"] is None:
        services.check()
        if time.monotonic() > deadline:
            say(f"warning: the scheduler did not mark backfill {backfill_id} complete within {COMPLETE_TIMEOUT} s")
            return
        time.sleep(1)


def _cancel(api: RestApi, dag_id: str, backfill: dict, first: date, last: date, say: Say) -> None:
    """Cancel the backfill, and fail its runs still in progress.

    Airflow's cancel pauses the backfill, fails its queued runs and marks it complete; its running runs
    are failed here too, so that their tasks stop as the UI's "mark as failed" stops them.
    """
    try:
        api.put(f"/api/v2/backfills/{backfill['id']}/cancel")
        for run in api.runs_at(dag_id, midnight(first), midnight(last), state=["running"]):
            if _is_of(backfill, run):
                api.patch(api.run_path(dag_id, run["dag_run_id"]), {"state": "failed"})
    except LocalAirflowError as error:
        say(f"warning: cancelling backfill {backfill['id']} failed: {error}")
        return
    say(f"cancelled backfill {backfill['id']}: its unfinished days are marked failed")


def _pause_again(api: RestApi, dag_id: str, say: Say) -> None:
    try:
        api.set_paused(dag_id, True)
    except LocalAirflowError as error:
        say(f"warning: pausing {dag_id} again failed: {error}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let `kill` (not only Ctrl-C) unwind through the clean-up below."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_backfill(
    stack_env: dict[str, str],
    first: date,
    last: date,
    parallel: int,
    dag_id: str = "hardware_correlation",
    dag_file: str = "hardware_correlation.py",
    say: Say = print,
) -> list[DayResult]:
    """Backfill days `first`..`last` (inclusive), `parallel` at once; one result per day.

    Raises LocalAirflowError when the backfill cannot be run or followed to its end, and
    KeyboardInterrupt after a clean-up when interrupted.
    """
    if parallel < 1:
        raise LocalAirflowError(f"the number of days at once must be at least 1 (got {parallel})")
    with _sigterm_as_interrupt(), running_services(stack_env, parallel, say) as services:
        was_paused = services.wait_until_parsed(dag_id, dag_file, say)
        api = services.api()
        # Under `make airflow` the DAG stays unpaused afterwards, as the UI's Backfill leaves it:
        # pausing it again would stop the scheduled run that unpausing started.
        pause_again = was_paused and not services.shared
        if was_paused and services.shared:
            say(f"unpausing {dag_id}: it stays unpaused, and its scheduler also starts the latest day's run")
        unfinished = api.runs(dag_id, state=["queued", "running"])
        others = [run["dag_run_id"] for run in unfinished if run["run_type"] != "backfill"]
        if others:
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            say(
                f"note: {len(others)} other run(s) of {dag_id} are marked queued or running ({shown}); "
                "the scheduler will carry them on too"
            )
        backfill = None
        finished = False
        before = datetime.now(timezone.utc) - CLOCK_SLACK
        try:
            _remove_runs_of_other_days(api, dag_id, first, last, say)
            backfill = _create_backfill(api, dag_id, first, last, parallel)
            if was_paused:
                api.set_paused(dag_id, False)
            say(f"backfill {backfill['id']}: {first} .. {last}, {parallel} day(s) at once")
            results = _follow(services, api, dag_id, backfill, first, last, parallel, say)
            finished = True
            if pause_again:
                _pause_again(api, dag_id, say)
            _wait_until_completed(services, api, backfill["id"], say)
            return results
        finally:
            if backfill is None and not finished:
                # Interrupted while the backfill was being created: Airflow may have got that far.
                with contextlib.suppress(LocalAirflowError):
                    backfill = _active_backfill(api, dag_id, since=before)
            if backfill is not None and not finished:
                _cancel(api, dag_id, backfill, first, last, say)
            if pause_again and not finished:
                _pause_again(api, dag_id, say)


# -- one day on the services of `make airflow` ----------------------------------------------------


def run_day(
    services: Services, dag_id: str, day: date, say: Say = print, watch: Callable[[RestApi, str], None] | None = None
) -> DayResult:
    """Run log day D on the scheduler of `make airflow`, as the UI's Trigger does, and wait for it.

    The run is manual, at logical date D (its data interval is [D, D + 1)), as `airflow dags test`
    makes it; a finished run already recorded at that logical date (a scheduled or backfill run of D,
    say) is replaced, as `airflow dags test` replaces it. A paused DAG is unpaused, as the Trigger
    form offers to.
    `watch` is called with the API and the run id at every poll, and once more when the run has finished.
    """
    api = services.api()
    logical = midnight(day)
    for run in api.runs_at(dag_id, logical):
        if run["state"] not in TERMINAL:
            raise LocalAirflowError(
                f"run {run['dag_run_id']} at logical date {iso(logical)} is still {run['state']}; "
                "wait for it to finish (it is in the UI) and run the day again"
            )
        api.delete(api.run_path(dag_id, run["dag_run_id"]))
        say(f"replaced the earlier run {run['dag_run_id']} ({run['state']})")
    with _UNPAUSING:
        if api.get(f"/api/v2/dags/{dag_id}")["is_paused"]:
            api.set_paused(dag_id, False)
            say(f"unpaused {dag_id}: its scheduler also starts the latest day's run")
    run_id = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": iso(logical)})["dag_run_id"]
    say(f"triggered {run_id} on the `make airflow` scheduler: {services.base_url}/dags/{dag_id}/runs/{run_id}")
    deadline = time.monotonic() + DAY_TIMEOUT.total_seconds()
    while True:
        services.check()
        run = api.run(dag_id, run_id)
        if watch is not None:
            watch(api, run_id)
        if run["state"] in TERMINAL:
            return day_result(api, dag_id, day, run)
        if time.monotonic() > deadline:
            raise LocalAirflowError(f"run {run_id} did not finish within {DAY_TIMEOUT}; see it in the UI")
        time.sleep(POLL_SECONDS)
