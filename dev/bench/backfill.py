"""Benchmark section: a 30-day backfill of about 100k log rows a day, with Airflow's own backfill.

A synthetic raw zone (`dev.datagen`, fixed seed) goes to a deployment of its own: the template
deployed a second time, as stack `hardware-correlation-bench`, with its own buckets, catalog,
crawler, Glue jobs and roles (each with the template's least privilege), so the sample data stays as
it is; the warehouse is the stack's (the bench days are November 2025). The backfill is the one
`make backfill` runs, with its default number of days at once. Figures:

- `backfill_wall_s`, `backfill_rows_per_s`: the whole backfill, from creating it to its last day
  (the services' start is reported apart, as `backfill_startup_s`);
- `backfill_day_s_median`, `backfill_day_s_max`: one day's run, from its start to its end;
- `day30_vs_day1`: the Glue time (ETL plus load) of the last day over the first day's; a day's run
  must not grow with the history already processed (goal: at most 1.2).

A warm-up run of the first day alone comes first, untimed: it creates what a first run creates (Glue
jobs, crawler, catalog and warehouse tables). Every day's audit must equal what the generator says it
wrote, or the section fails. On a shared machine the per-day figures follow the machine's load.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from dev.bench import BenchError

START = date(2025, 11, 1)
DAYS = 30
ROWS_PER_DAY = 100_000
DEVICES = 20_000
CUSTOMERS = 1_000
SEED = 20251101
BENCH_STACK = "hardware-correlation-bench"
# The deployment's names (include/settings.py), all of its own: the sample data's are left alone.
BENCH_NAMES = {
    "RAW_BUCKET": f"{BENCH_STACK}-raw",
    "PROCESSED_BUCKET": f"{BENCH_STACK}-processed",
    "ARTIFACTS_BUCKET": f"{BENCH_STACK}-artifacts",
    "GLUE_DATABASE": "hardware_correlation_bench",
    "CRAWLER_NAME": f"{BENCH_STACK}-raw",
    "ETL_JOB_NAME": f"{BENCH_STACK}-etl",
    "LOAD_JOB_NAME": f"{BENCH_STACK}-load",
    "CRAWLER_ROLE_NAME": f"{BENCH_STACK}-crawler",
    "ETL_ROLE_NAME": f"{BENCH_STACK}-etl",
    "LOAD_ROLE_NAME": f"{BENCH_STACK}-load",
    "GLUE_WAREHOUSE_CONNECTION": f"{BENCH_STACK}-warehouse",
}
AUDIT_COUNTS = ("input_rows", "malformed", "duplicates", "non_error", "no_sale", "unknown_customer", "loaded")



def _client(env: dict[str, str], service: str):
    import boto3

    return boto3.client(
        service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def _prepare(env: dict[str, str], folder: Path, days: int, rows_per_day: int, say: Callable[[str], None]):
    from dev.datagen import write_dataset
    from dev.raw_zone import upload_raw_zone

    started = time.monotonic()
    dataset = write_dataset(
        folder, start=START, days=days, devices=DEVICES, rows_per_day=rows_per_day, customers=CUSTOMERS, seed=SEED
    )
    upload_raw_zone(folder, env["RAW_BUCKET"], _client(env, "s3"))
    say(f"bench: wrote and uploaded {days} days x {rows_per_day} rows in {time.monotonic() - started:.0f} s")
    return dataset


def _audit(env: dict[str, str], first: date, last: date) -> dict[str, dict]:
    import psycopg2

    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"SELECT log_date, {', '.join(AUDIT_COUNTS)}, etl_job_run_id, load_job_run_id FROM pipeline_run_audit"
            " WHERE log_date BETWEEN %s AND %s",
            (first, last),
        )
        names = [column.name for column in cursor.description]
        return {row[0].isoformat(): dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _glue_seconds(env: dict[str, str], audit_row: dict) -> float:
    from include.settings import load

    settings = load(env)
    glue = _client(env, "glue")
    total = 0.0
    for job_name, key in ((settings.ETL_JOB_NAME, "etl_job_run_id"), (settings.LOAD_JOB_NAME, "load_job_run_id")):
        run = glue.get_job_run(JobName=job_name, RunId=audit_row[key])["JobRun"]
        total += (run["CompletedOn"] - run["StartedOn"]).total_seconds()
    return total


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    env: dict[str, str] | None = None,
    days: int = DAYS,
    rows_per_day: int = ROWS_PER_DAY,
    parallel: int | None = None,
    say: Callable[[str], None] = _progress,
) -> dict[str, float]:
    """Run the section; returns its figures by name. Progress goes to stderr, apart from the figures."""
    from dev import airflow_runs, commands
    from dev.local_aws import stack
    from include.settings import load

    env = {**(env or commands.stack_env()), **BENCH_NAMES}
    # Deployed once per stack server, as `make up` deploys the stack's own; Airflow then signs with
    # a session of this deployment's Airflow role.
    env.update(stack.provision(env, BENCH_STACK))
    parallel = parallel or load(env).number("GLUE_MAX_CONCURRENT_RUNS")
    first, last = START, START + timedelta(days=days - 1)
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as folder:
        dataset = _prepare(env, Path(folder), days, rows_per_day, say)

    marks: dict[str, float] = {}

    def note(message: str) -> None:
        if message.startswith("backfill "):
            marks["created"] = time.monotonic()
        elif message[:10] in days_text:
            marks["last_day"] = time.monotonic()
        say(f"bench: {message}")

    days_text = {(first + timedelta(days=n)).isoformat() for n in range(days)}

    # What a first run creates (Glue jobs, crawler, catalog tables, warehouse tables, deployed
    # scripts) is made by a warm-up run of the first day alone, outside the timing.
    warm_up = airflow_runs.run_backfill(env, first, first, 1, say=lambda message: say(f"bench: warm-up: {message}"))
    if not all(result.ok for result in warm_up):
        raise BenchError(f"the warm-up run of {first} failed")

    started = time.monotonic()
    results = airflow_runs.run_backfill(env, first, last, parallel, say=note)
    failed = [str(result.day) for result in results if not result.ok]
    if failed:
        raise BenchError(f"the bench backfill failed for {', '.join(failed)}")

    audit = _audit(env, first, last)
    wrong = [
        outcome.day for outcome in dataset.days
        if {name: audit.get(outcome.day, {}).get(name) for name in AUDIT_COUNTS}
        != {name: getattr(outcome, name) for name in AUDIT_COUNTS}
    ]
    if wrong:
        raise BenchError(f"the audit differs from the generated data's outcome for {', '.join(wrong)}")

    # The backfill's own time runs from its creation to the end of its last day, as seen by polling;
    # the services' start is reported apart. Days' durations come from Airflow's run records.
    created = marks["created"]
    wall = marks["last_day"] - created
    total_rows = sum(outcome.input_rows for outcome in dataset.days)
    durations = [result.seconds for result in results if result.seconds is not None]
    day1, day_last = _glue_seconds(env, audit[first.isoformat()]), _glue_seconds(env, audit[last.isoformat()])
    return {
        "backfill_days": days,
        "backfill_days_at_once": parallel,
        "backfill_rows": total_rows,
        "backfill_startup_s": round(created - started, 1),
        "backfill_wall_s": round(wall, 1),
        "backfill_rows_per_s": round(total_rows / wall, 1),
        "backfill_day_s_median": round(statistics.median(durations), 1),
        "backfill_day_s_max": round(max(durations), 1),
        "backfill_day1_glue_s": round(day1, 1),
        f"backfill_day{days}_glue_s": round(day_last, 1),
        "day30_vs_day1" if days == 30 else f"day{days}_vs_day1": round(day_last / day1, 2),
    }


def main() -> int:
    for name, value in run().items():
        print(f"{name}: {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
