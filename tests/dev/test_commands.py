"""The make commands refuse bad input with a message, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from dev import commands


@pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "2025/10/01", ""])
def test_run_refuses_a_malformed_date(text):
    result = subprocess.run(
        [sys.executable, "-m", "dev.commands", "run", text], capture_output=True, text=True, cwd=commands.REPO
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
