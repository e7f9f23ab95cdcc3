"""The `make seed / run / backfill / report / demo / airflow / down` commands on the local stack
(docs/contract.md, section 5).

Usage: python -m dev.commands {seed DIR | run YYYY-MM-DD [BRIEF] | backfill FROM TO [PARALLEL] | report [FROM [TO]]
                               | demo | airflow | down}
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from dev import airflow_runs, airflow_services, day_progress
from dev.airflow_api import LocalAirflowError, RestApi
from dev.airflow_runs import DayResult
from include import settings

REPO = Path(__file__).resolve().parent.parent
STACK_ENV = REPO / ".local" / "stack.env"
SAMPLE_DATA = REPO / "dev" / "sample_data"
SAMPLE_DAYS = ("2025-10-01", "2025-10-02", "2025-10-03")
REPORTS = REPO / ".local" / "reports"
LOGS = REPO / ".local" / "logs"
DAG_ID = "hardware_correlation"

# Timings for a laptop: the stack answers in milliseconds, so poll and retry quickly. A variable
# already set in the environment wins.
LOCAL_TIMINGS = {
    "GLUE_POLL_SECONDS": "1",
    "SENSOR_POKE_SECONDS": "5",
    "SENSOR_TIMEOUT_SECONDS": "120",
    "RETRY_DELAY_SECONDS": "2",
}


class UsageError(Exception):
    """A mistake the user can fix; printed as a message, not a traceback."""


def stack_env() -> dict[str, str]:
    """The environment for running against the local stack; fails clearly when it is not up."""
    if not STACK_ENV.exists():
        raise UsageError("The local stack is not running: start it with `make up` (or run `make demo`).")
    from dev.local_aws.stack import read_env_file

    values = read_env_file(STACK_ENV)
    try:
        urllib.request.urlopen(values["AWS_ENDPOINT_URL"], timeout=3).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except (OSError, KeyError):
        raise UsageError("The local stack is not answering: restart it with `make down && make up`.") from None
    # A stack.env written by an older `make up` lacks the plugins folder, without which Airflow cannot
    # load the DAG's timetable.
    return {**LOCAL_TIMINGS, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), **os.environ, **values}


def parse_day(text: str, name: str = "DATE") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{name} must be a day as YYYY-MM-DD, e.g. `make run {name}=2025-10-01` (got {text!r})."
        ) from None


def seed(data_dir: str) -> None:
    if not data_dir:
        raise UsageError("Say which folder to upload: `make seed DATA=dev/sample_data`.")
    import boto3

    from dev.raw_zone import RawZoneError, upload_raw_zone

    env = stack_env()
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UsageError(f"DATA={data_dir} is not a folder.")
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    try:
        keys = upload_raw_zone(folder, env["RAW_BUCKET"], s3)
    except RawZoneError as error:
        raise UsageError(str(error)) from None
    print(f"Uploaded {len(keys)} objects to s3://{env['RAW_BUCKET']}/")


def run(day_text: str, env: dict[str, str] | None = None, log: Path | None = None) -> int:
    """`airflow dags test` for one day; returns its exit status (non-zero when any task failed).

    With `log`, Airflow's own output is appended to that file, and what is printed is a line per task as
    it finishes and one for the day, with the failed tasks' errors (day_progress); without, all of it.
    While `make airflow` runs, its scheduler runs the day instead (see airflow_runs.run_day): it
    would otherwise also pick up the tasks of the `dags test` run.
    """
    return 0 if run_day(day_text, env, log).ok else 1


def run_day(
    day_text: str, env: dict[str, str] | None = None, log: Path | None = None, api: RestApi | None = None
) -> DayResult:
    """`run`, with the day's outcome; a day run with its full output knows only whether it failed.

    With `log`, the day's tasks are read from `api` (an api-server of `airflow_services.api_server`),
    or from an api-server started for the day.
    """
    if not day_text:
        raise UsageError("Say which day to run: `make run DATE=2025-10-01`.")
    day = parse_day(day_text)
    env = env or stack_env()
    with airflow_services.no_backfill_running(say=_say, stack_env=env) as shared:
        if shared is not None:
            if log is not None:
                return day_progress.on_scheduler(shared, DAG_ID, day, say=_say)
            result = airflow_runs.run_day(shared, DAG_ID, day, say=_say)
            print(result.line())
            return result
        command = airflow_runs.dags_test_command(DAG_ID, day)
        if log is not None:
            with contextlib.ExitStack() as started:
                api = api or started.enter_context(airflow_services.api_server(env, say=_say))
                return day_progress.dags_test(command, env, api, DAG_ID, day, log, say=_say)
        status = subprocess.call(command, env=env, cwd=REPO)
        return DayResult(day, "success" if status == 0 else "failed")


def run_command(day_text: str = "", brief: str = "") -> int:
    """`make run DATE=D [BRIEF=1]`: Airflow's full output, or with BRIEF the lines of `make demo`."""
    if not day_text or brief.strip().lower() in ("", "0", "no", "false"):
        return run(day_text)
    log = LOGS / f"run-{parse_day(day_text)}.log"
    log.unlink(missing_ok=True)
    print(f"Airflow's log lines: {day_progress.shown_path(log)}", flush=True)
    return run(day_text, log=log)


def days_between(first: date, last: date) -> list[date]:
    if last < first:
        raise UsageError(f"TO ({last}) is before FROM ({first}).")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def parse_parallel(text: str, default: int) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"PARALLEL must be a whole number of days at once, at least 1 (got {text!r}).")
    return value


def backfill(first_text: str, last_text: str, parallel_text: str = "", env: dict[str, str] | None = None) -> int:
    """Airflow's own backfill of FROM..TO, run by a local scheduler; non-zero when a day failed.

    `env`: the services' environment, by default the stack's (as for `run`).
    """
    if not first_text or not last_text:
        raise UsageError("Say which days to process: `make backfill FROM=2025-10-01 TO=2025-10-03 [PARALLEL=3]`.")
    first, last = parse_day(first_text, "FROM"), parse_day(last_text, "TO")
    days = days_between(first, last)
    env = env or stack_env()
    parallel = parse_parallel(parallel_text, settings.load(env).number("GLUE_MAX_CONCURRENT_RUNS"))
    try:
        results = airflow_runs.run_backfill(env, first, last, min(parallel, len(days)), dag_id=DAG_ID, say=_say)
    except LocalAirflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the backfill was cancelled and the Airflow services stopped", file=sys.stderr)
        return 130
    failed = [str(result.day) for result in results if result.state == "failed"]
    not_run = [str(result.day) for result in results if result.state not in ("success", "failed")]
    print(f"{len(results) - len(failed) - len(not_run)} of {len(results)} days succeeded")
    if failed:
        print("Failed days: " + ", ".join(failed), file=sys.stderr)
    if not_run:
        print("Days not run: " + ", ".join(not_run), file=sys.stderr)
    return 1 if failed or not_run else 0


def _say(message: str) -> None:
    print(message, flush=True)


def print_warehouse(env: dict[str, str]) -> None:
    import psycopg2

    queries = {
        "hardware_error_analysis": "SELECT log_date, log_id, device_id, industry, customer_name, sale_id,"
        " sale_date, days_since_sale, cpu_temp_celsius, memory_usage_gb, error_timestamp"
        " FROM hardware_error_analysis ORDER BY log_date, log_id",
        "hardware_alerts": "SELECT log_date, alert_id, device_id, error_code, industry, customer_name,"
        " sale_id, days_since_sale, alert_timestamp FROM hardware_alerts ORDER BY log_date, alert_timestamp",
        "pipeline_run_audit": "SELECT log_date, input_rows, malformed, duplicates, non_error, no_sale,"
        " unknown_customer, loaded, scripts_version FROM pipeline_run_audit ORDER BY log_date",
    }
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        for title, query in queries.items():
            cursor.execute(query)
            header = [column.name for column in cursor.description]
            rows = [[("" if value is None else str(value)) for value in row] for row in cursor.fetchall()]
            widths = [max(len(text) for text in column) for column in zip(header, *rows, strict=True)]
            print(f"\n{title} ({len(rows)} rows)")
            for row in [header, *rows]:
                print("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)))


def report(first_text: str = "", last_text: str = "") -> int:
    """docs/contract.md, section 6, over FROM..TO (default: every loaded day) into `.local/reports/latest/`."""
    import shutil

    import psycopg2

    from include import report as answer
    from include.report.analysis import NoData

    first = parse_day(first_text, "FROM") if first_text else None
    last = parse_day(last_text, "TO") if last_text else None
    if first and last and last < first:
        raise UsageError(f"TO ({last}) is before FROM ({first}).")
    env = stack_env()
    latest, building = REPORTS / "latest", REPORTS / "building"
    shutil.rmtree(building, ignore_errors=True)
    connection = psycopg2.connect(env["WAREHOUSE_DSN"])
    try:
        summary = answer.build(connection, building, first, last)
    except NoData as error:
        raise UsageError(f"{error} (`make run`, `make backfill` or `make demo` load days).") from None
    finally:
        connection.close()
    # Swapped in whole: latest/ never holds half of one report and half of another.
    shutil.rmtree(latest, ignore_errors=True)
    building.rename(latest)
    print(f"\nThe answer ({summary['first_day']} to {summary['last_day']}):\n{summary['answer']}\n")
    print(f"Report: {latest / 'report.html'}")
    return 0


def at_once(days: Sequence[str], run_one: Callable[[str], DayResult]) -> list[DayResult]:
    """`run_one(day)` for every day at once, a thread each; their results in order, or the first error.

    Only the main thread sees Ctrl-C: it then kills the days' `airflow dags test` processes, as one
    day at a time does (runs on the scheduler of `make airflow` go on there), and does not wait for
    the threads, which are daemons."""
    outcomes: dict[str, DayResult | BaseException] = {}

    def target(day: str) -> None:
        try:
            outcomes[day] = run_one(day)
        except BaseException as error:  # handed to the caller's thread below
            outcomes[day] = error

    threads = [threading.Thread(target=target, args=(day,), name=f"day-{day}", daemon=True) for day in days]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        day_progress.kill_running()
        raise
    for day in days:
        if isinstance(outcomes[day], BaseException):
            raise outcomes[day]
    return [outcomes[day] for day in days]


def demo_log(day: str) -> Path:
    """Airflow's own log lines of day D in the last `make demo` (`make run DATE=D BRIEF=1`: run-D.log)."""
    return LOGS / f"demo-{day}.log"


def demo() -> int:
    seed(str(SAMPLE_DATA))
    env = stack_env()
    LOGS.mkdir(parents=True, exist_ok=True)
    for day in SAMPLE_DAYS:
        demo_log(day).unlink(missing_ok=True)
    shown = day_progress.shown_path(demo_log("D"))
    print(f"Running {', '.join(SAMPLE_DAYS)} at once; Airflow's log lines: {shown}", flush=True)
    # One api-server for the three days' task lines, unless `make airflow` runs them on its scheduler.
    # The days run at once, as a backfill would run them: much of a day's time is waiting on the
    # Glue runs' and Airflow's start-ups, which overlap (on two cores the demo takes about 130 s
    # instead of 165 s with the days one after the other).
    with contextlib.ExitStack() as started:
        api = None
        if airflow_services.shared_services(env) is None:
            api = started.enter_context(airflow_services.api_server(env, say=_say))
        results = at_once(SAMPLE_DAYS, lambda day: run_day(day, env, demo_log(day), api))
    print_warehouse(env)
    failed = [result for result in results if not result.ok]
    if failed:
        print(demo_failure(failed), file=sys.stderr)
        return 1
    return report(SAMPLE_DAYS[0], SAMPLE_DAYS[-1])


def demo_failure(failed: list[DayResult]) -> str:
    days = ", ".join(
        f"{result.day} ({', '.join(result.failed_tasks)})" if result.failed_tasks else str(result.day)
        for result in failed
    )
    logs = ", ".join(day_progress.shown_path(demo_log(str(result.day))) for result in failed)
    return f"Failed days: {days}\nAirflow's log lines: {logs} (their errors are above)"


def airflow() -> int:
    """`make airflow`: the Airflow UI and scheduler on the local stack, in the background."""
    import time

    started = time.monotonic()
    env = stack_env()
    login = airflow_services.start_ui(env, DAG_ID, f"{DAG_ID}.py", say=_say)
    verb = "already running" if login.reused else f"started in {time.monotonic() - started:.0f} s"
    print(
        f"Airflow UI {verb}: {login.url}\n"
        f"login: {login.user} / {login.password}\n"
        f"(also in .local/stack.env as AIRFLOW_UI_URL, AIRFLOW_UI_USER, AIRFLOW_UI_PASSWORD; "
        f"`make down` stops Airflow with the stack)",
        flush=True,
    )
    return 0


def down() -> int:
    """`make down`: the Airflow services of `make airflow` (and any left behind), then the stack."""
    from dev.local_aws import stack

    if airflow_services.stop_services(say=_say):
        print("stopped Airflow", flush=True)
    try:
        stack.down(say=lambda message: print(f"stack: {message}", flush=True))
    except stack.StackError as error:
        print(f"stack: error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    commands = {
        "seed": seed, "run": run_command, "backfill": backfill, "report": report, "demo": demo, "airflow": airflow,
        "down": down,
    }
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        return commands[argv[0]](*argv[1:]) or 0
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except LocalAirflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
