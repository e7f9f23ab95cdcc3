"""Benchmark section: the report (`include.report.build`) over one year of a 100,000-device fleet.

Goal: the report of 365 days x 100,000 devices (36.5M device-days) finishes in under 5 minutes and
2 GiB. The rows go into a database of their own on the stack's PostgreSQL server (`bench_report`,
never the warehouse's tables), with the project's DDL, filled by SQL (`generate_series`) once and
reused while its generator and the DDL stay as they are: a marker table records what made them.

The fleet: each device has one sale, on a day spread over the four years before the first day, to a
customer among CUSTOMERS (big accounts own most devices), whose industry is drawn by the data
generator's shares (`dev.datagen.INDUSTRIES`). A device-day has 30 to 50 events; its errors are a
geometric draw with mean `events x ERROR_RATE x industry factor x age factor x device factor`, the
age factor growing from 0.5 at the sale to 2.5 at four years and more (as in `dev.datagen`), the
device factor lognormal with mean 1 (a few faulty devices err many times as often as the rest).
The database takes about 5 GB; `DROP DATABASE bench_report` gives it back.

The report runs in a child process, as `make report` would, into a temporary folder. Figures:

- `report_device_days`, `report_devices`, `report_days`: what the report read;
- `report_fill_reused` (yes or no) and `report_fill_seconds`: the fill's time when the rows were
  made (information only);
- `report_seconds`: the child's wall time, from its start (imports included) to its end;
- `report_build_seconds`: `build` alone, as the child measured it;
- `report_peak_rss_mib`: the child's peak resident memory (PostgreSQL's own is apart);
- `report_model_method`: the model's method, when the summary names one;
- `report_answer`: the report's answer paragraph on this fleet.

The report's summary must count every filled device-day and carry a fitted model, or the section
fails.

    python -m dev.bench report
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

from dev.bench import BenchError

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".local" / "bench"
DDL_DIR = REPO / "include" / "sql" / "ddl"
DATABASE = "bench_report"
DEVICES = 100_000
DAYS = 365
FIRST_DAY = date(2025, 1, 1)
CUSTOMERS = 5_000
SEED = 0.2025
# Errors per event where the industry, age and device factors are 1 (the age factor is 1 at one year).
ERROR_RATE = 0.02
# The device factor's log has this standard deviation: about 1 device in 100 errs 6 times as often
# as the average device.
DEVICE_SPREAD = 1.0
# Rows are inserted over this many connections at once, each its share of the days.
FILL_CONNECTIONS = max(1, min(4, os.cpu_count() or 1))
# Free space the fill needs per row: the table (about 110 bytes a row), its primary key (about 30),
# the key's sort and the WAL in between, with room to spare.
FILL_BYTES_PER_ROW = 250
MARKER_TABLE = "bench_report_fill"
# Part of the marker with the SQL and the DDL: raise it when the fill changes in any other way.
FILL_VERSION = 1
CHILD_TIMEOUT_SECONDS = 3600
CHILD_FIGURES = ("build_seconds", "peak_rss_kib")

CUSTOMERS_SQL = """
CREATE UNLOGGED TABLE bench_customers AS
SELECT drawn.customer, industry.name AS industry, industry.factor
FROM (SELECT customer, random() AS draw FROM generate_series(1, %(customers)s) AS customer) AS drawn
JOIN unnest(%(names)s::text[], %(factors)s::float8[], %(low)s::float8[], %(high)s::float8[])
    AS industry (name, factor, low, high)
    ON drawn.draw >= industry.low AND drawn.draw < industry.high
"""

# Squaring a uniform draw skews ownership towards low customer numbers (big accounts), as in
# dev.datagen; the device factor is lognormal with mean 1, from a Box-Muller normal draw.
DEVICES_SQL = """
CREATE UNLOGGED TABLE bench_devices AS
SELECT
    'DEV-' || lpad(drawn.device::text, 6, '0') AS device_id,
    'SALE-' || lpad(drawn.device::text, 7, '0') AS sale_id,
    'CUST-' || lpad(owner.customer::text, 5, '0') AS customer_id,
    owner.industry,
    %(first_day)s::date - drawn.days_before AS sale_date,
    %(error_rate)s * owner.factor * exp(
        %(spread)s * sqrt(-2 * ln(1 - drawn.u1)) * cos(2 * pi() * drawn.u2) - %(spread)s ^ 2 / 2
    ) AS rate
FROM (
    SELECT
        device,
        1 + floor(random() * 4 * 365)::int AS days_before,
        1 + floor(%(customers)s * random() ^ 2)::int AS customer,
        random() AS u1,
        random() AS u2
    FROM generate_series(1, %(devices)s) AS device
) AS drawn
JOIN bench_customers AS owner USING (customer)
"""

# Day by day, as swap_day.sql loads them. errors is a geometric draw (a negative binomial with r = 1)
# with mean `expected`, capped at the events: overdispersed, as counts of real fleets are, and with
# the planted mean exactly, so the report's ratios come out near the factors' (the floor of an
# exponential draw would shrink low rates more than high ones).
ROWS_SQL = """
INSERT INTO device_day_activity
    (log_date, device_id, sale_id, customer_id, industry, days_since_sale, events, errors)
SELECT
    log_date, device_id, sale_id, customer_id, industry, days_since_sale, events,
    least(events, floor(ln(1 - random()) / ln(expected / (1 + expected))))
FROM (
    SELECT *, events * rate * (0.5 + least(days_since_sale / 365.25, 4) * 0.5) AS expected
    FROM (
        SELECT
            %(first_day)s::date + day AS log_date, device.device_id, device.sale_id, device.customer_id,
            device.industry, %(first_day)s::date + day - device.sale_date AS days_since_sale,
            30 + floor(random() * 21)::int AS events, device.rate
        FROM generate_series(%(first)s, %(last)s) AS day
        CROSS JOIN bench_devices AS device
    ) AS drawn
) AS device_day
"""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_dsn(dsn: str, database: str = DATABASE) -> str:
    """The DSN of `database` on the server of `dsn` (a URL or key=value pairs), credentials alike."""
    from psycopg2.extensions import make_dsn, parse_dsn

    if parse_dsn(dsn).get("dbname") == database:
        raise BenchError(f"the warehouse itself is named {database}: the bench needs a database of its own")
    return make_dsn(dsn, dbname=database)


def parse_child_output(stdout: str) -> dict[str, float]:
    """The child's figures: its `name: value` lines of CHILD_FIGURES (the report may print more)."""
    figures = {}
    for line in stdout.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in CHILD_FIGURES and value.strip():
            figures[name.strip()] = float(value)
    missing = [name for name in CHILD_FIGURES if name not in figures]
    if missing:
        raise BenchError(f"the report's process did not print {', '.join(missing)}")
    return figures


def generator(devices: int = DEVICES, days: int = DAYS) -> dict:
    """What makes the rows: a database made by a different generator, DDL or fill is made afresh."""
    from dev.datagen import INDUSTRIES

    parameters = {
        "version": FILL_VERSION, "devices": devices, "days": days, "first_day": FIRST_DAY.isoformat(),
        "customers": CUSTOMERS, "seed": SEED, "error_rate": ERROR_RATE, "device_spread": DEVICE_SPREAD,
        "industries": [list(industry) for industry in INDUSTRIES],
    }
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode())
    for text in (CUSTOMERS_SQL, DEVICES_SQL, ROWS_SQL, *(path.read_text() for path in _ddl_files())):
        digest.update(text.encode())
    return {**parameters, "digest": digest.hexdigest()}


def _ddl_files() -> list[Path]:
    return sorted(DDL_DIR.glob("*.sql"))


def _connect(dsn: str, autocommit: bool = False):
    import psycopg2

    connection = psycopg2.connect(dsn)
    connection.autocommit = autocommit
    return connection


def _query_one(dsn: str, sql: str, parameters: tuple = ()) -> tuple | None:
    connection = _connect(dsn, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchone()
    finally:
        connection.close()


def _filled(dsn: str, made_by: dict) -> dict | None:
    """The marker of rows made by `made_by`, if the database holds them; None otherwise."""
    import psycopg2

    try:
        row = _query_one(dsn, f"SELECT generator, device_days, fill_seconds FROM {MARKER_TABLE}")
    except psycopg2.OperationalError:
        return None  # no database yet
    except psycopg2.errors.UndefinedTable:
        return None  # a fill that never finished
    if row is None or row[0] != made_by:
        return None
    # Counted on every run: the check reads the whole table, so a fresh and a reused database both
    # meet the report with the table in the OS's cache.
    (count,) = _query_one(dsn, "SELECT count(*) FROM device_day_activity")
    if count != row[1]:
        return None
    return {"device_days": row[1], "fill_seconds": row[2]}


def _check_room(dsn: str, rows: int, say: Callable[[str], None]) -> None:
    import psycopg2

    try:
        (data_directory,) = _query_one(dsn, "SELECT current_setting('data_directory')")
    except psycopg2.Error:  # a role that may not read the server's settings
        data_directory = None
    if data_directory is None or not Path(data_directory).exists():
        say("bench: the server's data directory is out of sight from here: its free space is unchecked")
        return
    free, needed = shutil.disk_usage(data_directory).free, rows * FILL_BYTES_PER_ROW
    if free < needed:
        raise BenchError(
            f"the report's {rows:,} rows need about {needed / 2**30:.1f} GiB free next to PostgreSQL's data"
            f" ({data_directory}); only {free / 2**30:.1f} GiB are"
        )


def _recreate_database(server_dsn: str, database: str) -> None:
    import psycopg2

    connection = _connect(server_dsn, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{database}"')
    except psycopg2.Error as error:
        raise BenchError(f"cannot make the database {database} on the warehouse's server: {error}") from None
    finally:
        connection.close()


def _insert_days(dsn: str, part: int, first: int, last: int) -> None:
    connection = _connect(dsn)
    try:
        with connection.cursor() as cursor:
            # Each connection its own seed: the same generator gives the same rows.
            cursor.execute("SELECT setseed(%s)", (SEED + part / 100,))
            cursor.execute(ROWS_SQL, {"first_day": FIRST_DAY, "first": first, "last": last})
        connection.commit()
    finally:
        connection.close()


def _fill(dsn: str, made_by: dict, say: Callable[[str], None]) -> float:
    from dev.datagen import INDUSTRIES

    started = time.perf_counter()
    shares = [share for _, share, _ in INDUSTRIES]
    bounds = [sum(shares[:at]) / sum(shares) for at in range(len(shares) + 1)]
    bounds[-1] = 2.0  # above any draw, whatever the rounding of the sum
    connection = _connect(dsn, autocommit=True)
    try:
        with connection.cursor() as cursor:
            for ddl in _ddl_files():
                cursor.execute(ddl.read_text())
            # The key is built once the rows are in: one sort instead of 36M index insertions.
            cursor.execute("ALTER TABLE device_day_activity DROP CONSTRAINT device_day_activity_pkey")
            # Unlogged, the rows skip the WAL: the fill takes about 40% less time, and the report reads
            # the table as it reads a logged one. A crash empties it; the next run's count sees that.
            cursor.execute("ALTER TABLE device_day_activity SET UNLOGGED")
            cursor.execute("SELECT setseed(%s)", (SEED,))
            cursor.execute(CUSTOMERS_SQL, {
                "customers": CUSTOMERS, "names": [name for name, _, _ in INDUSTRIES],
                "factors": [factor for _, _, factor in INDUSTRIES], "low": bounds[:-1], "high": bounds[1:],
            })
            cursor.execute(DEVICES_SQL, {
                "first_day": FIRST_DAY, "devices": made_by["devices"], "customers": CUSTOMERS,
                "error_rate": ERROR_RATE, "spread": DEVICE_SPREAD,
            })

            days = made_by["days"]
            parts = min(FILL_CONNECTIONS, days)
            errors: list[BaseException] = []

            def insert(part: int) -> None:
                try:
                    _insert_days(dsn, part, part * days // parts, (part + 1) * days // parts - 1)
                except BaseException as error:  # re-raised below, in the calling thread
                    errors.append(error)

            threads = [threading.Thread(target=insert, args=(part,)) for part in range(parts)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise BenchError(f"filling device_day_activity failed: {errors[0]}")
            say(f"bench: inserted the rows in {time.perf_counter() - started:.0f} s; adding the key")
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute("ALTER TABLE device_day_activity ADD PRIMARY KEY (log_date, device_id)")
            cursor.execute("DROP TABLE bench_devices, bench_customers")
            say(f"bench: keyed the rows after {time.perf_counter() - started:.0f} s; vacuuming")
            # Vacuumed now rather than by autovacuum in the middle of the report's scans; the first
            # reader would otherwise also write every page back, setting hint bits.
            cursor.execute("VACUUM (ANALYZE) device_day_activity")
            cursor.execute("SELECT count(*) FROM device_day_activity")
            (rows,) = cursor.fetchone()
            seconds = time.perf_counter() - started
            cursor.execute(
                f"CREATE TABLE {MARKER_TABLE} (generator jsonb NOT NULL, device_days bigint NOT NULL,"
                " fill_seconds double precision NOT NULL, filled_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor.execute(
                f"INSERT INTO {MARKER_TABLE} (generator, device_days, fill_seconds) VALUES (%s, %s, %s)",
                (json.dumps(made_by), rows, seconds),
            )
    finally:
        connection.close()
    return seconds


def _run_child(dsn: str, folder: Path) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dev.bench.report", "build", str(folder)],
            cwd=REPO, capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS,
            # Through the environment, not the command line: the DSN holds the password.
            env={**os.environ, "BENCH_REPORT_DSN": dsn},
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"the report did not finish within {CHILD_TIMEOUT_SECONDS} s") from None
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n  ".join(result.stderr.strip().splitlines()[-10:])
        raise BenchError(f"the report failed (exit {result.returncode}):\n  {tail}")
    return seconds, parse_child_output(result.stdout)


def run(
    devices: int = DEVICES, days: int = DAYS, database: str = DATABASE, say: Callable[[str], None] = _progress
) -> Iterator[tuple[str, object]]:
    from dev.local_aws.stack import ensure_up

    server_dsn = ensure_up()["WAREHOUSE_DSN"]
    dsn = bench_dsn(server_dsn, database)
    made_by = generator(devices, days)
    filled = _filled(dsn, made_by)
    reused = filled is not None
    if filled is None:
        rows = devices * days
        # Dropped first: the space of rows made by another generator is free for the new ones.
        _recreate_database(server_dsn, database)
        _check_room(server_dsn, rows, say)
        say(f"bench: filling {database} with {rows:,} device-days (some minutes)")
        fill_seconds = _fill(dsn, made_by, say)
        filled = {"device_days": rows, "fill_seconds": fill_seconds}
        (count,) = _query_one(dsn, f"SELECT device_days FROM {MARKER_TABLE}")
        if count != rows:
            raise BenchError(f"the fill made {count:,} device-days instead of {rows:,}")
    yield "report_device_days", filled["device_days"]
    yield "report_devices", devices
    yield "report_days", days
    yield "report_fill_reused", "yes" if reused else "no"
    yield "report_fill_seconds", round(filled["fill_seconds"], 1)

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-report-", dir=BENCH_DIR) as folder:
        seconds, child = _run_child(dsn, Path(folder))
        summary = json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
    if summary.get("device_days") != filled["device_days"]:
        raise BenchError(
            f"the report counted {summary.get('device_days')} device-days of the {filled['device_days']:,} filled"
        )
    model = summary.get("model") or {}
    if "error" in model or not model:
        raise BenchError(f"the report's model was not fitted: {model.get('error', 'no model in summary.json')}")
    yield "report_seconds", round(seconds, 1)
    yield "report_build_seconds", round(child["build_seconds"], 1)
    yield "report_peak_rss_mib", round(child["peak_rss_kib"] / 1024)
    if model.get("method"):
        yield "report_model_method", model["method"]
    # What a manager would read about this fleet, whose devices differ (information only).
    yield "report_answer", summary.get("answer")


def _build(folder: str) -> None:
    """The child: the report of every day in the bench database, then its own figures."""
    import resource

    import psycopg2

    from include.report import build

    started = time.perf_counter()
    connection = psycopg2.connect(os.environ["BENCH_REPORT_DSN"])
    try:
        build(connection, folder)
    finally:
        connection.close()
    print(f"build_seconds: {time.perf_counter() - started:.3f}")
    # Kibibytes on Linux.
    print(f"peak_rss_kib: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["build"]:
    _build(sys.argv[2])
