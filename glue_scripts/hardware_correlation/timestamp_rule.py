"""The timestamp rule of the Glue jobs: which texts are instants, and the instant a text stands for.

The logs' `timestamp` and the alerts' `alert_timestamp` (and `received_at`) follow one rule
(docs/contract.md, section 2): ISO-8601 with seconds and an explicit zone, `Z` or an offset, converted
to UTC. Without a zone the UTC day, and so the partition and the hardware's age, would be a guess.
Within that shape:

- a real calendar day, time of day (no 24:00, no leap second) and offset (within +-18:00, as Java's
  ZoneOffset; minutes up to 59); digits are ASCII only;
- no UTC day before EARLIEST_DAY, the DAG's start date, whose runs never read such a day;
- no UTC day after LATEST_DAY, the last day written YYYY-MM-DD, as partitions and log_date are (and
  as Python's date ends).

The alerts API's handler (infrastructure/alerts_api/handler.py) runs in Lambda without this package
and keeps its own copy; tests/test_timestamp_rule.py runs one table of cases against both.

Within the rule's shape, Spark's own cast gives the instant and refuses what is no real day, time
of day or offset. The zone is explicit, so the session's time zone plays no part. Most rows need
only to be checked, not converted: for them the cast reads the text without its zone (a zone in
the text costs the cast a ZoneId parse per row, about four fifths of its time), and the offset is
checked as text; only the rows that need their instant are cast whole (`instant`).
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

# Ranges that would need alternations (days, hours, offsets) are checked apart from the pattern:
# alternations in it would make it several times slower.
PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-5][0-9])$"
EARLIEST_DAY = date(2015, 1, 1)
LATEST_DAY = date(9999, 12, 31)
# The largest offset, as Java's ZoneOffset (and so the cast in `instant`) allows it.
MAX_OFFSET = "18:00"
# Alerts only (logs have no clock to compare): an alert_timestamp more than this after the alert was
# received is refused, as the API refuses it.
MAX_CLOCK_AHEAD_SECONDS = 86_400

_SECONDS_PER_DAY = 86_400


def utc_date(instant: Column) -> Column:
    """The UTC calendar day of an instant, whatever the session's time zone."""
    return F.date_from_unix_date(F.floor(F.unix_seconds(instant) / _SECONDS_PER_DAY).cast("int"))


def _text(name: str) -> Column:
    return F.trim(F.col(name))


def well_formed(name: str) -> Column:
    """The column `name` has the rule's shape and a real day, time of day and offset (surrounding
    spaces aside); the day bounds are `violation`'s."""
    text = _text(name)
    # The pattern fixes the shape (the cast alone also takes a date without time, a space for the
    # T, a zone name...) and the offset's minutes (up to 59). The cast of the local part,
    # `YYYY-MM-DDTHH:MM:SS`, then checks the day and time of day (no 24:00, no leap second, no
    # February 30th); fractional digits, which the pattern has checked, change neither. An offset's
    # hours and minutes have two digits each, so as text "HH:MM" <= "18:00" is the numeric bound of
    # Java's ZoneOffset.
    real_offset = text.endswith("Z") | (F.substring(text, -5, 5) <= MAX_OFFSET)
    real_local_time = F.expr(f"try_cast(substring(trim(`{name}`), 1, 19) AS TIMESTAMP_NTZ)").isNotNull()
    return text.rlike(PATTERN) & (F.substring(text, 1, 4) >= "0001") & real_offset & real_local_time


def instant(name: str) -> Column:
    """The UTC instant of a `well_formed` column (microseconds; further digits are cut off)."""
    # try_cast has no DataFrame function in Spark 3.5; a plain cast would fail under ANSI mode.
    # TIMESTAMP_LTZ, an instant, whatever spark.sql.timestampType says TIMESTAMP means.
    return F.expr(f"try_cast(trim(`{name}`) AS TIMESTAMP_LTZ)")


def parsed(name: str) -> Column:
    """The instant of the column `name` when it is `well_formed`, else NULL."""
    return F.when(well_formed(name), instant(name))


def _before_earliest_day(name: str) -> Column:
    # The local day tells for all but the few texts within a day of the bound: only those need the
    # instant, the costly part of the rule.
    local_day = F.substring(_text(name), 1, 10)
    return (local_day <= (EARLIEST_DAY + timedelta(days=1)).isoformat()) & (
        utc_date(instant(name)) < F.lit(EARLIEST_DAY)
    )


def _after_latest_day(name: str) -> Column:
    # Past LATEST_DAY in UTC only with a negative offset, late on that very day.
    local_day = F.substring(_text(name), 1, 10)
    return (local_day == LATEST_DAY.isoformat()) & (utc_date(instant(name)) > F.lit(LATEST_DAY))


def violation(name: str) -> Column:
    """What is wrong with the column `name` (not empty) as a timestamp, or NULL when nothing is."""
    return F.coalesce(
        F.when(~well_formed(name), F.lit(f"unparseable {name}")),
        F.when(_before_earliest_day(name), F.lit(f"{name} before {EARLIEST_DAY.isoformat()} (UTC)")),
        F.when(_after_latest_day(name), F.lit(f"{name} after {LATEST_DAY.isoformat()} (UTC)")),
    )
