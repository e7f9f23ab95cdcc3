"""The brief output of a day's run: its task and day lines, the failed tasks' errors picked out of
Airflow's log, and the following of a run while its command runs (against a stand-in of Airflow's REST API)."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone

import pytest

from dev import day_progress
from dev.airflow_runs import DayResult
from dev.airflow_services import Services

DAY = date(2025, 10, 1)
T0 = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(task_id, state, start=None, end=None, try_number=1, map_index=-1, duration=None):
    return day_progress.TaskRow(task_id, map_index, try_number, state, start, end, duration)


def test_a_task_line_has_day_task_state_and_seconds_in_columns():
    assert day_progress.task_line(DAY, "run_etl_job", "success", 41.23) == (
        "  2025-10-01  run_etl_job               success           41.2 s"
    )
    assert day_progress.task_line(DAY, "run_crawler", "upstream_failed", None) == (
        "  2025-10-01  run_crawler               upstream_failed"
    )


def test_the_day_line_says_state_seconds_and_failed_tasks():
    assert day_progress.day_line(DayResult(DAY, "success", 295.86)) == "2025-10-01: success, 295.9 s"
    assert day_progress.day_line(DayResult(DAY, "failed", 31.0, ["run_etl_job", "run_load_job"])) == (
        "2025-10-01: failed, 31.0 s; failed tasks: run_etl_job, run_load_job"
    )
    assert day_progress.day_line(DayResult(DAY, "failed", note="exited 1")) == "2025-10-01: failed (exited 1)"


def test_each_task_is_said_once_when_it_finishes_and_each_try_that_ends_in_a_retry():
    said: list[str] = []
    lines = day_progress.TaskLines(DAY, said.append)
    polls = [
        [row("etl", "running", at(0)), row("deploy", "success", at(0), at(2.5))],
        [row("etl", "up_for_retry", at(0), at(10)), row("deploy", "success", at(0), at(2.5))],
        [row("etl", "running", at(12), try_number=2), row("deploy", "success", at(0), at(2.5))],
        [
            # Finished in the same interval: said in the order they ended.
            row("verify", "upstream_failed", at(31), at(31)),
            row("etl", "success", at(12), at(30), try_number=2),
            row("mapped", "success", at(29), at(30.5), map_index=0),
            row("deploy", "success", at(0), at(2.5)),
        ],
    ]
    for rows in polls:
        lines.show(rows)
    assert said == [
        day_progress.task_line(DAY, "deploy", "success", 2.5),
        day_progress.task_line(DAY, "etl", "up_for_retry", 10.0),
        day_progress.task_line(DAY, "etl", "success", 18.0),
        day_progress.task_line(DAY, "mapped[0]", "success", 1.5),
        day_progress.task_line(DAY, "verify", "upstream_failed", None),
    ]
    said.clear()
    lines.show_unfinished([row("etl", "success", at(12), at(30)), row("report", None), row("swap", "scheduled")])
    assert said == [
        day_progress.task_line(DAY, "report", "not run", None),
        day_progress.task_line(DAY, "swap", "scheduled", None),
    ]


def test_a_task_without_times_shows_its_recorded_duration():
    assert row("etl", "success", duration=4.0).seconds == 4.0
    assert row("etl", "success").seconds is None


def record(level: str, message: str, logger: str = "task") -> str:
    return f"2026-11-29T03:08:26.260143Z [{level:<9}] {message} [{logger}] loc=task_runner.py:1639"


def dags_test_output(task_id: str, *body: str) -> list[str]:
    return [
        record("info", f"[DAG TEST] starting task_id={task_id} map_index=-1", "airflow.sdk.definitions.dag"),
        *body,
        record("info", f"[DAG TEST] end task task_id={task_id} map_index=-1", "airflow.sdk.definitions.dag"),
    ]


FAILED_TRY = [
    record("error", "Task failed with exception"),
    "Traceback (most recent call last):",
    '  File "glue.py", line 1, in execute',
    "airflow.exceptions.AirflowException: Glue job failed: ValueError: bad header",
    "",
    record("error", "Task run_etl_job of hardware_correlation failed (try 2) for log day 2025-10-01: Glue job ended FAILED",
           "include.task_failure"),
    record("warning", "not an error"),
]


def test_the_excerpt_is_the_last_tries_errors_with_their_exceptions():
    lines = [
        "==== log day 2025-10-01 ====",
        *dags_test_output("run_etl_job", record("error", "first try's error")),
        *dags_test_output("other_task", record("error", "another task's error")),
        *dags_test_output("run_etl_job", *FAILED_TRY),
        record("error", "after the task"),
    ]
    start, errors = day_progress.task_excerpt(lines, 1, "run_etl_job")
    assert start == 8 and "[DAG TEST] starting task_id=run_etl_job " in lines[start - 1]
    assert errors == [
        "Task failed with exception: airflow.exceptions.AirflowException: Glue job failed: ValueError: bad header",
        "Task run_etl_job of hardware_correlation failed (try 2) for log day 2025-10-01: Glue job ended FAILED",
    ]


def test_the_excerpt_keeps_to_the_day_and_to_a_few_clipped_lines(monkeypatch):
    earlier_day = dags_test_output("run_etl_job", record("error", "yesterday's error"))
    many = [record("error", f"error {n} " + "x" * 400) for n in range(5)]
    lines = [*earlier_day, *dags_test_output("run_etl_job", *many)]
    start, errors = day_progress.task_excerpt(lines, len(earlier_day) + 1, "run_etl_job")
    assert start == len(earlier_day) + 1
    assert len(errors) == day_progress.EXCERPT_LINES
    assert errors[-1].startswith("error 4 ") and errors[-1].endswith("...")
    assert all(len(text) == day_progress.EXCERPT_WIDTH for text in errors)
    # Output that does not mark its tasks: the errors from the day's first line on.
    start, errors = day_progress.task_excerpt([record("error", "unmarked")], 1, "run_etl_job")
    assert (start, errors) == (1, ["unmarked"])


def test_the_failure_lines_point_into_the_log(tmp_path):
    log = tmp_path / "demo.log"
    log.write_text("\n".join(["==== day ====", *dags_test_output("run_etl_job", *FAILED_TRY)]) + "\n")
    lines = day_progress.failure_lines(log, 1, ["run_etl_job"])
    assert lines[0] == f"  run_etl_job: {log}, line 2:"
    assert lines[1].startswith("    Task failed with exception: airflow.exceptions.AirflowException")
    # No run, so no failed task: the end of the day's output (an import error, say).
    log.write_text("==== day ====\nTraceback (most recent call last):\nImportError: no module named x\n\n")
    assert day_progress.failure_lines(log, 1, []) == [
        f"  the end of its output ({log}, from line 1):",
        "    ==== day ====",
        "    Traceback (most recent call last):",
        "    ImportError: no module named x",
    ]


def _iso(moment):
    return moment.isoformat() if moment else None


class StandInApi:
    """Airflow's REST API as `airflow dags test` fills its records: the run appears, then its tasks finish.

    Its run is recorded as started at its logical date, and created (run_after) when it really started.
    """

    polls = [
        [row("deploy", "running", at(0))],
        [row("deploy", "success", at(0), at(1)), row("etl", "running", at(1))],
        [row("deploy", "success", at(0), at(1)), row("etl", "failed", at(1), at(4)), row("verify", None)],
    ]
    run_record = {
        "dag_run_id": "manual__run", "state": "failed", "start_date": "2025-10-01T00:00:00+00:00",
        "run_after": _iso(at(0)), "end_date": _iso(at(5.25)),
    }
    failed = ["etl"]

    def __init__(self):
        self.calls = 0

    def runs_at(self, dag_id, first, last=None, **query):
        assert (dag_id, first, last) == ("dag", datetime(2025, 10, 1, tzinfo=timezone.utc), None)
        assert set(query) == {"run_after_gte"}
        return [self.run_record]

    def task_instances(self, dag_id, run_id):
        assert run_id == "manual__run"
        rows = self.polls[min(self.calls, len(self.polls) - 1)]
        self.calls += 1
        return [
            {"task_id": r.task_id, "map_index": r.map_index, "try_number": r.try_number, "state": r.state,
             "start_date": _iso(r.start), "end_date": _iso(r.end), "duration": r.duration}
            for r in rows
        ]

    def run(self, dag_id, run_id):
        return self.run_record

    def failed_tasks(self, dag_id, run_id):
        return self.failed


def test_a_day_is_followed_while_its_command_runs_and_its_output_goes_to_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(day_progress, "POLL_SECONDS", 0.05)
    output = dags_test_output("etl", *FAILED_TRY)
    script = f"import sys, time\nprint({chr(10).join(output)!r})\ntime.sleep(0.5)\nsys.exit(1)\n"
    log = tmp_path / "logs" / "demo.log"
    log.parent.mkdir()
    log.write_text("an earlier day\n")
    said: list[str] = []

    result = day_progress.dags_test([sys.executable, "-c", script], {}, StandInApi(), "dag", DAY, log, said.append)

    assert result == DayResult(DAY, "failed", 5.25, ["etl"])
    assert said == [
        day_progress.task_line(DAY, "deploy", "success", 1.0),
        day_progress.task_line(DAY, "etl", "failed", 3.0),
        day_progress.task_line(DAY, "verify", "not run", None),
        "2025-10-01: failed, 5.2 s; failed tasks: etl",
        f"  etl: {log}, line 3:",
        "    Task failed with exception: airflow.exceptions.AirflowException: Glue job failed: ValueError: bad header",
        "    Task run_etl_job of hardware_correlation failed (try 2) for log day 2025-10-01: Glue job ended FAILED",
    ]
    written = log.read_text().splitlines()
    assert written[0] == "an earlier day"
    assert written[1].startswith("==== log day 2025-10-01, ")
    assert written[2:] == output


def test_a_command_that_records_no_run_fails_the_day_with_the_end_of_its_output(tmp_path, monkeypatch):
    class NoRun(StandInApi):
        def runs_at(self, dag_id, first, last=None, **query):
            return []

    monkeypatch.setattr(day_progress, "POLL_SECONDS", 0.05)
    script = "import sys\nprint('ImportError: the DAG file does not import')\nsys.exit(1)\n"
    said: list[str] = []
    result = day_progress.dags_test(
        [sys.executable, "-c", script], {}, NoRun(), "dag", DAY, tmp_path / "run.log", said.append
    )
    assert not result.ok
    assert said[0] == "2025-10-01: failed (airflow dags test exited 1 without recording a run)"
    assert said[-1] == "    ImportError: the DAG file does not import"


@pytest.mark.parametrize("status, state", [(0, "success"), (1, "failed")])
def test_the_exit_status_decides_the_day(tmp_path, status, state):
    class Succeeded(StandInApi):
        polls = [[row("deploy", "success", at(0), at(1))]]
        run_record = {**StandInApi.run_record, "state": "success", "end_date": _iso(at(1))}
        failed = []

    said: list[str] = []
    script = f"import sys\nsys.exit({status})\n"
    result = day_progress.dags_test(
        [sys.executable, "-c", script], {}, Succeeded(), "dag", DAY, tmp_path / "run.log", said.append
    )
    assert result.state == state
    assert result.seconds == 1.0
    if status:
        assert "airflow dags test exited 1, its run is success" in said[1]


def test_a_sensor_counts_from_its_first_poke_and_an_api_outage_is_waited_out(monkeypatch):
    lines: list[str] = []
    watch = day_progress.Watch(day_progress.TaskLines(DAY, lines.append), lines.append, "")
    watch.poll(lambda: [row("wait", "up_for_reschedule", at(0))])
    watch.poll(lambda: (_ for _ in ()).throw(day_progress.LocalAirflowError("the API does not answer")))
    watch.poll(lambda: [row("wait", "success", at(10), at(11))])
    assert lines == [day_progress.task_line(DAY, "wait", "success", 11.0)]
    monkeypatch.setattr(day_progress, "RECONNECT_TIMEOUT", -1)
    watch.poll(lambda: (_ for _ in ()).throw(day_progress.LocalAirflowError("the API does not answer")))
    assert lines[-1] == "  (no task lines: the API does not answer; the run goes on)"
    assert not watch.watching


def test_a_day_on_the_scheduler_of_make_airflow_says_its_tasks_as_run_day_polls(monkeypatch):
    api = StandInApi()

    def run_day(services, dag_id, day, say, watch):
        for _ in StandInApi.polls:
            watch(api, "manual__run")
        return DayResult(day, "failed", 5.25, ["etl"])

    monkeypatch.setattr(day_progress, "run_day", run_day)
    said: list[str] = []
    services = Services(env={}, port=1, started_at=T0, shared=True)
    result = day_progress.on_scheduler(services, "dag", DAY, said.append)
    assert result == DayResult(DAY, "failed", 5.25, ["etl"])
    assert said == [
        day_progress.task_line(DAY, "deploy", "success", 1.0),
        day_progress.task_line(DAY, "etl", "failed", 3.0),
        "2025-10-01: failed, 5.2 s; failed tasks: etl",
    ]
