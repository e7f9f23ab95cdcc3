"""One day's run as a person follows it (`make demo`, `make run DATE=D BRIEF=1`).

A line per task as it finishes (and per try that ends in a retry), then one for the day; Airflow's own
log lines go to a file instead of the terminal. The task lines come from the day's run's task
instances as Airflow's REST API gives them, polled while `airflow dags test` runs (with an api-server
of its own, dev/airflow_services.py's `api_server`) or while the scheduler of `make airflow` runs the
day. When the day fails, the failed tasks' error lines are picked out of the log file and printed with their line
numbers, so that the rest of the story is one `less +N` away.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dev.airflow_api import LocalAirflowError, RestApi, Say, when
from dev.airflow_runs import DayResult, dags_test_run, run_day, run_seconds
from dev.airflow_services import Services

REPO = Path(__file__).resolve().parent.parent
POLL_SECONDS = 2
# How long the API may fail to answer (a restarted database server, say) before the task lines stop.
RECONNECT_TIMEOUT = 120
# States after which a task does not run again in this run; a try that ends in a retry is shown too.
FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
SHOWN = (*FINISHED, "up_for_retry")
# Airflow gives these a start and an end, the same moment.
NEVER_RAN = ("upstream_failed", "removed")
TASK_WIDTH = 25
STATE_WIDTH = 15
EXCERPT_LINES = 3
EXCERPT_WIDTH = 300
# The `airflow dags test` processes of `dags_test` that are running. A command that runs several days
# at once (`make demo`) stops them all when it is interrupted: only its main thread sees Ctrl-C.
# After `kill_running`, a process that starts is killed at once: its thread may start it just after.
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
_killing = False

# A record of Airflow's console log: `2026-11-29T03:08:26.278132Z [error    ] message [logger] key=value ...`,
# possibly followed by lines of its own (a traceback).
_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z? \[(?P<level>[a-z]+)\s*\] (?P<text>.*)$")
_LOGGER = re.compile(r"\s+\[[A-Za-z_][\w.]*\](?=\s|$)")


def shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class TaskRow:
    """A task instance of the run, as Airflow's API gives it."""

    task_id: str
    map_index: int
    try_number: int
    state: str | None
    start: datetime | None
    end: datetime | None
    duration: float | None = None

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    @property
    def seconds(self) -> float | None:
        if self.state in NEVER_RAN:
            return None
        if self.start and self.end:
            return (self.end - self.start).total_seconds()
        return self.duration


def seconds_text(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"


def task_line(day: date, label: str, state: str, seconds: float | None) -> str:
    return f"  {day}  {label:<{TASK_WIDTH}} {state:<{STATE_WIDTH}} {seconds_text(seconds):>8}".rstrip()


def day_line(result: DayResult) -> str:
    text = f"{result.day}: {result.state}"
    if result.seconds is not None:
        text += f", {seconds_text(result.seconds)}"
    if result.failed_tasks:
        text += f"; failed tasks: {', '.join(result.failed_tasks)}"
    if result.note:
        text += f" ({result.note})"
    return text


class TaskLines:
    """Says a line for each task of one run once it has finished, and for each try that ended in a retry.

    A sensor in reschedule mode starts anew at each poke: its seconds count from the earliest start
    seen of its try, which polls every few seconds see at its first poke.
    """

    def __init__(self, day: date, say: Say) -> None:
        self.day = day
        self.say = say
        self._shown: dict[tuple[str, int], tuple[int, str]] = {}
        self._first_start: dict[tuple[str, int, int], datetime] = {}

    def _from_first_start(self, rows: Iterable[TaskRow]) -> list[TaskRow]:
        out = []
        for row in rows:
            key = (row.task_id, row.map_index, row.try_number)
            if row.start is not None:
                self._first_start[key] = min(self._first_start.get(key, row.start), row.start)
            out.append(dataclasses.replace(row, start=self._first_start.get(key)))
        return out

    def show(self, rows: Iterable[TaskRow]) -> None:
        rows = self._from_first_start(rows)
        new = [
            row for row in rows
            if row.state in SHOWN and self._shown.get((row.task_id, row.map_index)) != (row.try_number, row.state)
        ]
        earliest = datetime.min.replace(tzinfo=timezone.utc)
        for row in sorted(new, key=lambda row: (row.end is None, row.end or earliest, row.task_id, row.map_index)):
            self._shown[(row.task_id, row.map_index)] = (row.try_number, row.state)
            self.say(task_line(self.day, row.label, row.state, row.seconds))

    def show_unfinished(self, rows: Iterable[TaskRow]) -> None:
        """Once the run has ended: the tasks it never finished."""
        for row in sorted(rows, key=lambda row: (row.task_id, row.map_index)):
            if row.state not in FINISHED:
                self.say(task_line(self.day, row.label, row.state or "not run", None))


def task_rows(api: RestApi, dag_id: str, run_id: str) -> list[TaskRow]:
    return [
        TaskRow(
            task["task_id"], task["map_index"], task["try_number"], task["state"], when(task["start_date"]),
            when(task["end_date"]), task["duration"],
        )
        for task in api.task_instances(dag_id, run_id)
    ]


class Watch:
    """Polls the API for the day's task lines; an API that stops answering for RECONNECT_TIMEOUT ends the
    lines (the run goes on), with a note that says so."""

    def __init__(self, lines: TaskLines, say: Say, where: str) -> None:
        self.lines = lines
        self.say = say
        self.where = where
        self.watching = True
        self._answered = time.monotonic()

    def poll(self, read: Callable[[], Iterable[TaskRow] | None]) -> None:
        if not self.watching:
            return
        try:
            rows = read()
        except LocalAirflowError as error:
            if time.monotonic() - self._answered > RECONNECT_TIMEOUT:
                self.watching = False
                self.say(f"  (no task lines: {error}; the run goes on{self.where})")
            return
        self._answered = time.monotonic()
        if rows is not None:
            self.lines.show(rows)


# -- the failed tasks' error lines -------------------------------------------------------------


def _records(lines: list[str], first: int) -> Iterator[tuple[int, str, str, list[str]]]:
    """(line number, level, message, the record's further lines) of each record from line `first` on."""
    current: tuple[int, str, str, list[str]] | None = None
    for number, line in enumerate(lines[first - 1:], start=first):
        match = _RECORD.match(line)
        if match:
            if current:
                yield current
            message = _LOGGER.split(match["text"], maxsplit=1)[0].strip()
            current = (number, match["level"], message, [])
        elif current:
            current[3].append(line)
    if current:
        yield current


def _task_section(lines: list[str], first: int, task_id: str) -> tuple[int, int]:
    """The lines of the task's last try in `airflow dags test` output (which runs one task at a time and
    marks where each starts and ends), or from `first` to the end when they are not marked."""
    start_mark, end_mark = f"[DAG TEST] starting task_id={task_id} ", f"[DAG TEST] end task task_id={task_id} "
    start = end = None
    for number in range(first, len(lines) + 1):
        line = lines[number - 1]
        if start_mark in line:
            start, end = number, None
        elif end_mark in line and start is not None:
            end = number
    return (start or first), (end or len(lines))


def task_excerpt(lines: list[str], first: int, task_id: str) -> tuple[int, list[str]]:
    """Where the task's last try starts in the log (line number), and its last error lines: each
    error's message, with the last line of its traceback (the exception) when it has one."""
    start, end = _task_section(lines, first, task_id)
    found: list[str] = []
    for _number, level, message, more in _records(lines[:end], start):
        if level not in ("error", "critical"):
            continue
        tail = next((line.strip() for line in reversed(more) if line.strip()), "")
        text = f"{message}: {tail}" if tail else message
        if not found or found[-1] != text:
            found.append(text)
    return start, [_clip(text) for text in found[-EXCERPT_LINES:]]


def log_tail(lines: list[str], first: int, count: int = EXCERPT_LINES + 2) -> list[str]:
    """The last non-empty lines from line `first` on (when no run was recorded: an import error, say)."""
    return [_clip(line.strip()) for line in lines[first - 1:] if line.strip()][-count:]


def _clip(text: str) -> str:
    return text if len(text) <= EXCERPT_WIDTH else text[: EXCERPT_WIDTH - 3] + "..."


def failure_lines(log: Path, first: int, failed_tasks: list[str]) -> list[str]:
    """What to say about a failed day: for each failed task where its last try starts in the log and
    its errors; without failed tasks (no run was recorded), the end of the day's output."""
    lines = log.read_text(errors="replace").splitlines()
    shown = shown_path(log)
    if not failed_tasks:
        return [f"  the end of its output ({shown}, from line {first}):"] + [
            f"    {line}" for line in log_tail(lines, first)
        ]
    out = []
    for task_id in failed_tasks:
        start, errors = task_excerpt(lines, first, task_id)
        out.append(f"  {task_id}: {shown}, line {start}" + (":" if errors else ""))
        out += [f"    {text}" for text in errors]
    return out


# -- running the day ---------------------------------------------------------------------------


def _line_count(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def dags_test(
    command: list[str], env: dict[str, str], api: RestApi, dag_id: str, day: date, log: Path, say: Say
) -> DayResult:
    """Run `command` (`airflow dags test` of day D) with its output appended to `log`, saying a line per
    task as it finishes and one for the day; returns the day's outcome (failed when the command failed).
    `api`: an api-server on the same metadata database, which the tasks are read from."""
    log.parent.mkdir(parents=True, exist_ok=True)
    first = _line_count(log) + 1
    started = datetime.now(timezone.utc)
    with open(log, "a", encoding="utf-8") as handle:
        # On one line: the failure lines count lines from it.
        shown_command = shlex.join([Path(command[0]).name, *command[1:]]).replace("\n", " ")
        handle.write(f"==== log day {day}, started {started.isoformat(timespec='seconds')}: {shown_command} ====\n")
    lines = TaskLines(day, say)
    watch = Watch(lines, say, f", its output is in {shown_path(log)}")
    run_id: str | None = None

    def read() -> list[TaskRow] | None:
        nonlocal run_id
        if run_id is None:
            run = dags_test_run(api, dag_id, day, started - timedelta(seconds=1))
            run_id = run["dag_run_id"] if run else None
        return task_rows(api, dag_id, run_id) if run_id is not None else None

    with open(log, "ab") as output, subprocess.Popen(
        command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
    ) as process:
        with _RUNNING_LOCK:
            _RUNNING.add(process)
            if _killing:
                process.kill()
        try:
            while True:
                try:
                    process.wait(POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    watch.poll(read)
        except BaseException:
            process.kill()
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
    watch.poll(read)
    return _outcome(api, dag_id, day, run_id, watch.watching, process.returncode, lines, log, first, say)


def kill_running() -> None:
    """Kill every `airflow dags test` process that `dags_test` runs now, or starts from now on."""
    global _killing
    with _RUNNING_LOCK:
        _killing = True
        for process in _RUNNING:
            process.kill()


def _outcome(
    api: RestApi, dag_id: str, day: date, run_id: str | None, watching: bool,
    status: int, lines: TaskLines, log: Path, first: int, say: Say,
) -> DayResult:
    """The day's outcome: the run's state and duration, and its failed tasks; the exit status decides."""
    state, seconds, failed, note = ("success" if status == 0 else "failed"), None, [], ""
    if run_id is not None and watching:
        try:
            lines.show_unfinished(task_rows(api, dag_id, run_id))
            run = api.run(dag_id, run_id)
            failed = api.failed_tasks(dag_id, run_id)
            seconds = run_seconds(run)
            if run["state"] != state:
                note = f"airflow dags test exited {status}, its run is {run['state']}"
        except LocalAirflowError as error:
            note = f"its tasks are unknown: {error}"
    elif run_id is None and watching:
        note = f"airflow dags test exited {status} without recording a run"
    result = DayResult(day, state, seconds, failed, note)
    say(day_line(result))
    if not result.ok:
        for line in failure_lines(log, first, failed):
            say(line)
    return result


def on_scheduler(services: Services, dag_id: str, day: date, say: Say) -> DayResult:
    """Day D on the scheduler of `make airflow` (see airflow_runs.run_day), with a line per task; its
    task logs are in the UI, at the run's address that run_day prints."""
    lines = TaskLines(day, say)
    watch = Watch(lines, say, "")
    result = run_day(
        services, dag_id, day, say=say, watch=lambda api, run_id: watch.poll(lambda: task_rows(api, dag_id, run_id))
    )
    say(day_line(result))
    return result
