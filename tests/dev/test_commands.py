"""The make commands refuse bad input with a message, not a traceback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import date

import pytest

from dev import commands
from dev.airflow_runs import DayResult


@pytest.mark.parametrize("brief", ["", "1"])
@pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "2025/10/01", ""])
def test_run_refuses_a_malformed_date(text, brief):
    result = subprocess.run(
        [sys.executable, "-m", "dev.commands", "run", text, brief], capture_output=True, text=True, cwd=commands.REPO
    )
    assert result.returncode == 2
    assert "DATE" in result.stderr and "Traceback" not in result.stderr


def test_run_before_the_stack_is_up_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(commands, "STACK_ENV", tmp_path / "missing.env")
    with pytest.raises(commands.UsageError, match="make up"):
        commands.run("2025-10-01")


def test_backfill_days_are_inclusive_and_ordered():
    assert commands.days_between(date(2025, 10, 30), date(2025, 11, 2)) == [
        date(2025, 10, 30), date(2025, 10, 31), date(2025, 11, 1), date(2025, 11, 2)
    ]
    with pytest.raises(commands.UsageError, match="before"):
        commands.days_between(date(2025, 10, 2), date(2025, 10, 1))


def test_airflow_before_the_stack_is_up_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(commands, "STACK_ENV", tmp_path / "missing.env")
    with pytest.raises(commands.UsageError, match="make up"):
        commands.airflow()


@pytest.mark.parametrize("first, last", [("2025-10-02", "2025-10-01"), ("2025-10-40", ""), ("soon", "")])
def test_report_refuses_a_bad_range_before_touching_the_stack(first, last, tmp_path, monkeypatch):
    monkeypatch.setattr(commands, "STACK_ENV", tmp_path / "missing.env")
    with pytest.raises(commands.UsageError, match="FROM|TO"):
        commands.report(first, last)


@pytest.mark.parametrize("brief", ["1", "yes"])
def test_brief_run_sends_airflows_lines_to_a_fresh_log_of_the_day(brief, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(commands, "LOGS", tmp_path)
    monkeypatch.setattr(commands, "run", lambda day_text, env=None, log=None: calls.append((day_text, log)) or 0)
    (tmp_path / "run-2025-10-01.log").write_text("the previous run's lines\n")
    assert commands.main(["run", "2025-10-01", brief]) == 0
    assert calls == [("2025-10-01", tmp_path / "run-2025-10-01.log")]
    assert not (tmp_path / "run-2025-10-01.log").exists()
    assert capsys.readouterr().out == f"Airflow's log lines: {tmp_path / 'run-2025-10-01.log'}\n"


@pytest.mark.parametrize("brief", ["", "0"])
def test_run_without_brief_keeps_airflows_full_output(brief, monkeypatch):
    calls = []
    monkeypatch.setattr(commands, "run", lambda day_text, env=None, log=None: calls.append((day_text, log)) or 1)
    assert commands.main(["run", "2025-10-01", brief]) == 1
    assert calls == [("2025-10-01", None)]


def test_a_failed_demo_names_the_failed_tasks_and_the_log_of_each_day():
    failed = [
        DayResult(date(2025, 10, 2), "failed", 95.0, ["run_etl_job"]),
        DayResult(date(2025, 10, 3), "failed", note="airflow dags test exited 1 without recording a run"),
    ]
    assert commands.demo_failure(failed).splitlines() == [
        "Failed days: 2025-10-02 (run_etl_job), 2025-10-03",
        "Airflow's log lines: .local/logs/demo-2025-10-02.log, .local/logs/demo-2025-10-03.log"
        " (their errors are above)",
    ]


def test_the_demo_days_run_at_once_and_come_back_in_order():
    days = ("2025-10-01", "2025-10-02", "2025-10-03")
    started = threading.Barrier(len(days), timeout=10)

    def run_one(day: str) -> DayResult:
        started.wait()  # only passes once every day has started
        return DayResult(date.fromisoformat(day), "success")

    assert [result.day.isoformat() for result in commands.at_once(days, run_one)] == list(days)


def test_a_days_error_is_raised_once_the_other_days_have_finished():
    finished = []

    def run_one(day: str) -> DayResult:
        if day == "2025-10-01":
            raise commands.LocalAirflowError("the api-server stopped answering")
        time.sleep(0.2)
        finished.append(day)
        return DayResult(date.fromisoformat(day), "success")

    with pytest.raises(commands.LocalAirflowError, match="stopped answering"):
        commands.at_once(("2025-10-01", "2025-10-02", "2025-10-03"), run_one)
    assert sorted(finished) == ["2025-10-02", "2025-10-03"]
