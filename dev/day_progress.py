"""One day's run as a person follows it (`make demo`, `make run DATE=D BRIEF=1`).

A line per task as it finishes (and per try that ends in a retry), then one for the day; Airflow's own
log lines go to a file instead of the terminal. The task lines come from the `task_instance` rows of
the day's run in Airflow's metadata database, polled while `airflow dags test` runs. When the day
fails, the failed tasks' error lines are picked out of the log file and printed with their line
numbers, so that the rest of the story is one `less +N` away.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dev import local_airflow
from dev.local_airflow import DayResult, LocalAirflowError, Say

REPO = Path(__file__).resolve().parent.parent
POLL_SECONDS = 2
# States after which a task does not run again in this run; a try that ends in a retry is shown too.
FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
SHOWN = (*FINISHED, "up_for_retry")
# Airflow gives these a start and an end, the same moment.
NEVER_RAN = ("upstream_failed", "removed")
TASK_WIDTH = 25
STATE_WIDTH = 15
EXCERPT_LINES = 3
EXCERPT_WIDTH = 300

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
    """A task instance of the run, as in the metadata database."""

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
    """Says a line for each task of one run once it has finished, and for each try that ended in a retry."""

    def __init__(self, day: date, say: Say) -> None:
        self.day = day
        self.say = say
        self._shown: dict[tuple[str, int], tuple[int, str]] = {}

    def show(self, rows: Iterable[TaskRow]) -> None:
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


def task_rows(metadata: local_airflow.Metadata, dag_id: str, run_id: str) -> list[TaskRow]:
    return [TaskRow(*row) for row in metadata.task_instances(dag_id, run_id)]


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


def dags_test(command: list[str], env: dict[str, str], dag_id: str, day: date, log: Path, say: Say) -> DayResult:
    """Run `command` (`airflow dags test` of day D) with its output appended to `log`, saying a line per
    task as it finishes and one for the day; returns the day's outcome (failed when the command failed)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    first = _line_count(log) + 1
    started = datetime.now(timezone.utc)
    with open(log, "a", encoding="utf-8") as handle:
        # On one line: the failure lines count lines from it.
        shown_command = shlex.join([Path(command[0]).name, *command[1:]]).replace("\n", " ")
        handle.write(f"==== log day {day}, started {started.isoformat(timespec='seconds')}: {shown_command} ====\n")
    logical = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    metadata = local_airflow.Metadata(env)
    lines = TaskLines(day, say)
    run_id: str | None = None
    watching = True

    def poll() -> None:
        nonlocal run_id, watching
        if not watching:
            return
        try:
            if run_id is None:
                run_id = metadata.dags_test_run(dag_id, logical, started - timedelta(seconds=1))
            if run_id is not None:
                lines.show(task_rows(metadata, dag_id, run_id))
        except LocalAirflowError as error:
            watching = False
            say(f"  (no task lines: {error}; the run goes on, its output is in {shown_path(log)})")

    try:
        with open(log, "ab") as output, subprocess.Popen(
            command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        ) as process:
            try:
                while True:
                    try:
                        process.wait(POLL_SECONDS)
                        break
                    except subprocess.TimeoutExpired:
                        poll()
            except BaseException:
                process.kill()
                raise
        poll()
        return _outcome(metadata, dag_id, day, run_id, watching, process.returncode, lines, log, first, say)
    finally:
        metadata.close()


def _outcome(
    metadata: local_airflow.Metadata, dag_id: str, day: date, run_id: str | None, watching: bool,
    status: int, lines: TaskLines, log: Path, first: int, say: Say,
) -> DayResult:
    """The day's outcome: the run's state and duration, and its failed tasks; the exit status decides."""
    state, seconds, failed, note = ("success" if status == 0 else "failed"), None, [], ""
    found = None
    if run_id is not None and watching:
        try:
            lines.show_unfinished(task_rows(metadata, dag_id, run_id))
            found = metadata.run_state(dag_id, run_id)
            failed = metadata.failed_tasks(dag_id, run_id)
        except LocalAirflowError as error:
            note = f"its tasks are unknown: {error}"
    if found is not None:
        run_state, run_start, run_end = found
        seconds = (run_end - run_start).total_seconds() if run_start and run_end else None
        if run_state != state:
            note = f"airflow dags test exited {status}, its run is {run_state}"
    elif run_id is None and watching:
        note = f"airflow dags test exited {status} without recording a run"
    result = DayResult(day, state, seconds, failed, note)
    say(day_line(result))
    if not result.ok:
        for line in failure_lines(log, first, failed):
            say(line)
    return result


def on_scheduler(services: local_airflow.Services, dag_id: str, day: date, say: Say) -> DayResult:
    """Day D on the scheduler of `make airflow` (see local_airflow.run_day), with a line per task; its
    task logs are in the UI, at the run's address that run_day prints."""
    metadata = local_airflow.Metadata(services.env)
    lines = TaskLines(day, say)
    watching = True

    def watch(run_id: str) -> None:
        nonlocal watching
        if not watching:
            return
        try:
            lines.show(task_rows(metadata, dag_id, run_id))
        except LocalAirflowError as error:
            watching = False
            say(f"  (no task lines: {error}; the run goes on)")

    try:
        result = local_airflow.run_day(services, dag_id, day, say=say, watch=watch)
    finally:
        metadata.close()
    say(day_line(result))
    return result
