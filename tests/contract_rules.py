"""docs/contract.md, section 3, applied one row at a time with the standard library only: the tests'
executable reading of the contract.

The generator's expected outcomes and the sample data's documented outcomes are both checked against
this independent reading of the rules.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

LOG_COLUMNS = ["log_id", "timestamp", "device_id", "event_type", "cpu_temp_celsius", "memory_usage_gb"]
OUTCOMES = ("malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:[0-5]\d)", re.ASCII)
# ASCII digits, as the timestamp: int() and float() would also take other scripts' digits.
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
# The warehouse's cpu_temp_celsius is a 32-bit `integer` (docs/contract.md, section 4): an integer it
# cannot hold is not one that column of the contract takes.
_INT32 = range(-(2**31), 2**31)


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
    # The timestamp rule of docs/data.md: offsets within +-18:00, a UTC day from 2015-01-01 to 9999-12-31
    # (a later one has no YYYY-MM-DD day to be filed under). Aware datetimes compare without converting.
    if (
        abs(instant.utcoffset()) > timedelta(hours=18)
        or instant < datetime(2015, 1, 1, tzinfo=timezone.utc)
        or instant > datetime.max.replace(tzinfo=timezone.utc)
    ):
        return None
    return instant.astimezone(timezone.utc)


def _is_int32(text: str) -> bool:
    # int() refuses more than 4300 digits; past ten significant ones no value is in range anyway.
    return bool(_INTEGER.fullmatch(text)) and len(text.lstrip("+-0")) <= 10 and int(text) in _INT32


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
            or (fields[4] and not _is_int32(fields[4]))
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


# Alerts (docs/data.md, "Alerts"): the records of one day's `alerts/dt=D/` go through the errors' steps but
# the event type's, with the alert's own reading of malformed and duplicate.

ALERT_FIELDS = ("device_id", "error_code", "details", "alert_timestamp")
ALERT_OUTCOMES = ("malformed", "duplicates", "no_sale", "unknown_customer", "loaded")
# pipeline_run_audit's alert counts, input rows first.
ALERT_COUNTS = ("alert_input_rows", *(f"alert_{outcome}" for outcome in ALERT_OUTCOMES))
_MAX_AHEAD_OF_RECEIVED = timedelta(days=1)


@dataclass
class AlertOutcome:
    record: str
    outcome: str
    alert_id: str | None = None
    fields: dict[str, str] | None = None
    alert_timestamp: datetime | None = None  # UTC
    received_at: datetime | None = None  # UTC
    sale_id: str | None = None
    customer_id: str | None = None
    sale_date: date | None = None
    days_since_sale: int | None = None


def alert_records(text: str) -> list[str]:
    """The records of one alert file: the file, if it is one JSON object (on any number of lines);
    otherwise each non-blank line (JSON lines)."""
    text = text.removeprefix("\ufeff")
    if isinstance(_json_value(text), dict):
        return [text]
    return [line for line in re.split(r"\r?\n", text) if line.strip()]


def derived_alert_id(fields: dict[str, str]) -> str:
    """The id of an alert written without one: `sha256:` and the SHA-256 of its four fields as
    written, taken as a JSON array."""
    text = json.dumps([fields[name] for name in ALERT_FIELDS], separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def classify_alerts(records: list[str], customers: set[str], sales: dict) -> list[AlertOutcome]:
    """The outcome of every record of one day's alerts, given in file order (files by key, then
    records); `customers` and `sales` as `read_reference` gives them."""
    results = [AlertOutcome(record, "malformed") for record in records]
    well_formed = []
    for index, result in enumerate(results):
        alert = _json_value(result.record)
        if not isinstance(alert, dict):
            continue
        fields = {name: _as_text(alert.get(name)) for name in ALERT_FIELDS}
        if any(value is None or not value.strip() for value in fields.values()):
            continue
        instant = utc(fields["alert_timestamp"])
        received_text = _as_text(alert.get("received_at"))
        has_received = received_text is not None and received_text.strip() != ""
        received = _instant(received_text) if has_received else None
        if instant is None or (has_received and received is None):
            continue
        # The API refuses an alert more than a day ahead of its clock; a stored one is held to its
        # received_at (one without is not checked).
        if received is not None and instant - received > _MAX_AHEAD_OF_RECEIVED:
            continue
        given_id = _as_text(alert.get("alert_id"))
        result.alert_id = given_id if given_id is not None and given_id.strip() else derived_alert_id(fields)
        result.fields, result.alert_timestamp, result.received_at = fields, instant, received
        well_formed.append(index)

    # Of the alerts sharing an alert_id the one received first is kept; without a received_at, or on
    # a tie, the first in file order.
    never = datetime.min.replace(tzinfo=timezone.utc)
    first_received = sorted(
        well_formed, key=lambda i: (results[i].received_at is None, results[i].received_at or never, i)
    )
    kept: dict[str, int] = {}
    for index in first_received:
        kept.setdefault(results[index].alert_id, index)

    for index in well_formed:
        result = results[index]
        if kept[result.alert_id] != index:
            result.outcome = "duplicates"
            continue
        day = result.alert_timestamp.date()
        in_force = [sale for sale in sales.get(result.fields["device_id"], []) if sale[0] <= day]
        if not in_force:
            result.outcome = "no_sale"
            continue
        result.sale_date, result.sale_id, result.customer_id = max(in_force, key=lambda s: (s[0], s[1]))
        if result.customer_id not in customers:
            result.outcome = "unknown_customer"
        else:
            result.outcome = "loaded"
            result.days_since_sale = (day - result.sale_date).days
    return results


def alert_counts(outcomes: list[AlertOutcome]) -> dict[str, int]:
    """The day's alert counts as pipeline_run_audit holds them (ALERT_COUNTS)."""
    counts = Counter(result.outcome for result in outcomes)
    return {"alert_input_rows": len(outcomes), **{f"alert_{name}": counts[name] for name in ALERT_OUTCOMES}}


def _json_value(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _as_text(value) -> str | None:
    # A field that is not a JSON string (a number, say) counts as its JSON text, as written.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _instant(text: str) -> datetime | None:
    """A received_at: the timestamp's format and offsets, without the timestamp rule's days."""
    if not _TIMESTAMP.fullmatch(text.strip()):
        return None
    try:
        instant = datetime.fromisoformat(text.strip())
        if abs(instant.utcoffset()) > timedelta(hours=18):
            return None
        return instant.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
