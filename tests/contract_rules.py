"""Contract section 3 applied one row at a time with the standard library only.

The generator's expected outcomes and the sample data's documented outcomes are both checked against
this independent reading of the rules.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

LOG_COLUMNS = ["log_id", "timestamp", "device_id", "event_type", "cpu_temp_celsius", "memory_usage_gb"]
OUTCOMES = ("malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:[0-5]\d)", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass
class RowOutcome:
    line: str
    outcome: str
    log_id: str = ""
    sale_id: str | None = None
    customer_id: str | None = None
    days_since_sale: int | None = None


def utc(text: str) -> datetime | None:
    if not _TIMESTAMP.fullmatch(text.strip()):
        return None
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    # The README's timestamp rule: offsets within +-18:00, no UTC day before 2015-01-01.
    if abs(instant.utcoffset()) > timedelta(hours=18) or instant < datetime(2015, 1, 1, tzinfo=timezone.utc):
        return None
    return instant.astimezone(timezone.utc)


def read_reference(folder: Path) -> tuple[set[str], dict[str, list[tuple[date, str, str]]]]:
    """Customer ids, and each device's sales as (sale_date, sale_id, customer_id)."""
    with open(folder / "customers" / "customers.csv", encoding="utf-8") as f:
        customers = {row["customer_id"] for row in csv.DictReader(f)}
    sales: dict[str, list[tuple[date, str, str]]] = {}
    with open(folder / "sales" / "sales.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            sales.setdefault(row["device_id"], []).append(
                (date.fromisoformat(row["sale_date"]), row["sale_id"], row["customer_id"])
            )
    return customers, sales


def partition_lines(folder: Path) -> list[str]:
    """The data lines of every file of one dt= partition folder, each file's header checked."""
    lines = []
    for path in sorted(folder.glob("*.csv")):
        text = path.read_text(encoding="utf-8").splitlines()
        assert text[0] == ",".join(LOG_COLUMNS), f"{path}: header {text[0]!r}"
        lines.extend(line for line in text[1:] if line.strip())
    return lines


def classify(lines: list[str], customers: set[str], sales: dict) -> list[RowOutcome]:
    """The outcome of every line of one partition, in input order."""
    results = [RowOutcome(line, "") for line in lines]
    well_formed = []
    for index, result in enumerate(results):
        fields = next(csv.reader([result.line]))
        instant = utc(fields[1]) if len(fields) == 6 else None
        if (
            len(fields) != 6
            or not all(fields[i].strip() for i in range(4))
            or instant is None
            or (fields[4] and not _INTEGER.fullmatch(fields[4]))
            or (fields[5] and not _NUMBER.fullmatch(fields[5]))
        ):
            result.outcome = "malformed"
            continue
        result.log_id = fields[0]
        well_formed.append((index, fields, instant))

    earliest: dict[str, tuple] = {}
    for entry in well_formed:
        log_id, instant = entry[1][0], entry[2]
        if log_id not in earliest or instant < earliest[log_id][2]:
            earliest[log_id] = entry
    kept = {entry[0] for entry in earliest.values()}

    for index, fields, instant in well_formed:
        result = results[index]
        if index not in kept:
            result.outcome = "duplicates"
        elif fields[3].strip().upper() != "ERROR":
            result.outcome = "non_error"
        else:
            in_force = [sale for sale in sales.get(fields[2], []) if sale[0] <= instant.date()]
            if not in_force:
                result.outcome = "no_sale"
                continue
            sale_date, result.sale_id, result.customer_id = max(in_force, key=lambda s: (s[0], s[1]))
            if result.customer_id not in customers:
                result.outcome = "unknown_customer"
            else:
                result.outcome = "loaded"
                result.days_since_sale = (instant.date() - sale_date).days
    return results


def day_counts(folder: Path, day: str) -> Counter:
    """The audit counts of one day of a raw-zone folder."""
    customers, sales = read_reference(folder)
    lines = partition_lines(folder / "hardware_logs" / f"dt={day}")
    counts = Counter(result.outcome for result in classify(lines, customers, sales))
    counts["input_rows"] = len(lines)
    return counts
