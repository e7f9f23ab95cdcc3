"""The audit's columns are one list on the Airflow side (include/run_audit.py); the warehouse's DDL,
the Glue ETL's audit records and the outcomes of docs/contract.md (section 3, as tests/contract_rules.py reads them) must name the same ones. Stack-free."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from include import run_audit
from include.run_scope import STAGED_TABLES, run_key, staging_table
from tests import contract_rules

DDL = Path(__file__).resolve().parents[2] / "include" / "sql" / "ddl"
# Written by the swap's own clock (now()), not by the run's audit.
SWAP_COLUMNS = ("finished_at",)


def _ddl_columns(table: str) -> set[str]:
    """The columns that the DDL files give `table`: its CREATE TABLE and every ADD COLUMN on it."""
    columns: set[str] = set()
    for path in sorted(DDL.glob("*.sql")):
        text = path.read_text()
        created = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", text, re.DOTALL)
        if created:
            # Column lines only: constraints are upper case, and a CHECK's terms are followed by operators.
            columns |= set(re.findall(r"^\s+([a-z_]+) [a-z]", created.group(1), re.MULTILINE))
        if re.search(rf"ALTER TABLE {table}\b", text):
            columns |= set(re.findall(r"ADD COLUMN IF NOT EXISTS ([a-z_]+)", text))
    return columns


def test_the_audit_table_has_exactly_the_listed_columns():
    assert _ddl_columns("pipeline_run_audit") == {*run_audit.AUDIT_COLUMNS, *SWAP_COLUMNS}


def test_the_list_has_every_column_once_and_the_contracts_counts_in_order():
    assert len(set(run_audit.AUDIT_COLUMNS)) == len(run_audit.AUDIT_COLUMNS)
    # docs/contract.md, section 4: input_rows, then the outcomes of section 3 in their order.
    assert run_audit.LOG_COUNTS == ("input_rows", *contract_rules.OUTCOMES)
    assert run_audit.ALERT_COUNTS == contract_rules.ALERT_COUNTS


def test_the_glue_etl_writes_every_count_the_audit_row_takes():
    """The Glue package keeps its own keys (another deployment unit); they must be these."""
    from hardware_correlation import alerts, transforms

    day = date(2025, 10, 1)
    trace = {"log_date", "job_run_id"}
    etl_keys = set(transforms.audit_record({}, day, "jr_1", {})) - trace
    alert_keys = set(alerts.audit_record({}, day, "jr_1")) - trace
    assert etl_keys == {*run_audit.LOG_COUNTS, *run_audit.REFERENCE_COUNTS}
    assert alert_keys == set(run_audit.ALERT_COUNTS)


def test_staging_tables_are_the_runs_own_and_fit_postgresql():
    day = date(2025, 10, 1)
    names = {staging_table(table, day, run_id) for table in STAGED_TABLES
             for run_id in ("manual__2025-10-02T00:00:00+00:00", "backfill__2025-10-01T00:00:00+00:00")}
    assert len(names) == 2 * len(STAGED_TABLES)
    key = run_key("manual__2025-10-02T00:00:00+00:00")
    assert staging_table("hardware_alerts", day, "manual__2025-10-02T00:00:00+00:00") == (
        f"staging.hardware_alerts_20251001_{key}"
    )
    assert max(len(name.split(".", 1)[1]) for name in names) <= 63


def test_only_the_staged_tables_get_a_staging_name():
    with pytest.raises(ValueError, match="not staged"):
        staging_table("pipeline_run_audit; DROP TABLE x", date(2025, 10, 1), "manual__x")
