"""End to end in a real browser: `make airflow`, then the Airflow UI as a user sees it.

Debian's chromium, driven by Selenium through chromium-driver, logs in with the login `make airflow`
printed, opens the DAG, triggers sample day 2025-10-01 from the UI's own Trigger form (logical date
2025-10-01 00:00, the day itself) and waits until the grid shows the run green; a screenshot of
the grid is saved as `.local/airflow-ui-grid.png`. The run's warehouse rows are then compared with
the rules of docs/contract.md applied to the raw files (tests/contract_rules.py), not with the UI.

On the way it checks what else a user sees: the DAG's doc and tasks; a `make run` run (`airflow dags
test`) with its real start and end; the scheduled run that unpausing starts for the latest day, which
has no data and so fails at its sensor, timed out after the local sensor timeout. At the end the
services are stopped as `make down` stops them, and none is left.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.parse
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from dev import airflow_services, commands
from dev.airflow_api import LocalAirflowError, RestApi
from dev.local_aws.stack import read_env_file
from dev.raw_zone import upload_raw_zone
from tests.e2e.test_sample_days import expected_day, warehouse_day
from tests.support import wait_for

pytestmark = pytest.mark.stack

DAG_ID = commands.DAG_ID
DAY = "2025-10-01"
# The Trigger form's logical date for log day DAY: the day itself, at 00:00 UTC.
LOGICAL_DATE = ("2025/10/01", "00:00")
# A day without data, run by `make run` (`airflow dags test`) with a short sensor timeout.
EMPTY_DAY = date(2025, 9, 20)
SCREENSHOT = commands.REPO / ".local" / "airflow-ui-grid.png"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Chromium as root in a container, with no network but the local UI.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1000",
)
MAKE_AIRFLOW_TIMEOUT = 600
UI_TIMEOUT = 60
RUN_TIMEOUT = 1500
SCHEDULED_SENSOR_TIMEOUT = 30


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make setup` installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except Exception:  # the page is being replaced
        return ""


def _text_of(driver, by: str, selector: str) -> str:
    from selenium.common.exceptions import WebDriverException

    try:
        return " ".join(element.text for element in driver.find_elements(by, selector))
    except WebDriverException:  # re-rendered while read
        return ""


def _click(driver, by: str, selector: str, what: str) -> None:
    """Click the (last) element `selector` finds, again when the UI re-renders it under the click."""
    from selenium.common.exceptions import WebDriverException

    def clicked() -> bool:
        try:
            found = driver.find_elements(by, selector)
            if found:
                found[-1].click()
                return True
        except WebDriverException:
            pass
        return False

    wait_for(f"clicking {what}", clicked, UI_TIMEOUT, 0.5)


def _runs(api: RestApi, **query: str) -> list[dict]:
    return api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?{urllib.parse.urlencode(query)}")["dag_runs"]


def _run_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _task_log(api: RestApi, run_id: str, task: dict) -> str:
    """The logs of the task instance's tries, as the UI shows them (a try failed before it ran has none)."""
    path = f"{_run_path(run_id)}/taskInstances/{task['task_id']}/logs"
    logs = []
    for number in range(1, task["try_number"] + 1):
        try:
            logs.append(json.dumps(api.get(f"{path}/{number}?full_content=true")["content"]))
        except LocalAirflowError:
            pass
    return "\n".join(logs)


@pytest.fixture
def no_airflow_left_behind():
    """Whatever happens, the services are stopped as `make down` stops them; none may be left."""
    airflow_services.stop_services(say=print)
    yield
    state = airflow_services._state()
    pids = [int(pid) for pid in state.get("pids", {}).values()] + ([int(state["owner"])] if state.get("owner") else [])
    airflow_services.stop_services(say=print)
    left = [pid for pid in pids if airflow_services.process_alive(pid)]
    assert not left, f"Airflow processes left after stopping the services: {left}"
    assert not set(airflow_services.UI_ENV_KEYS) & set(read_env_file()), "stack.env still names the stopped UI"


def test_a_day_triggered_in_the_airflow_ui_goes_green_with_the_contract_rows(
    stack, aws, no_airflow_left_behind, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    env = commands.stack_env()
    s3 = aws("s3")
    upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)

    # `make run` of a day without data, before `make airflow`: `airflow dags test`, failing fast.
    before_dags_test = datetime.now(timezone.utc)
    quick = {**env, "SENSOR_TIMEOUT_SECONDS": "6", "SENSOR_POKE_SECONDS": "2"}
    assert commands.run(EMPTY_DAY.isoformat(), quick) != 0

    # `make airflow`, minus the set-up and `make up` it runs first. The scheduled run that unpausing
    # starts has no data; its sensor gives up after 30 s rather than the local 120 s, so that it is
    # over by the time the triggered day is (whose data is there at the first poke).
    started = time.monotonic()
    made = subprocess.run(
        [sys.executable, "-m", "dev.commands", "airflow"],
        cwd=commands.REPO, capture_output=True, text=True, timeout=MAKE_AIRFLOW_TIMEOUT,
        env={**os.environ, "SENSOR_TIMEOUT_SECONDS": str(SCHEDULED_SENSOR_TIMEOUT)},
    )
    assert made.returncode == 0, made.stdout + made.stderr
    url = re.search(r"^Airflow UI started in \d+ s: (http://127\.0\.0\.1:\d+)$", made.stdout, re.MULTILINE).group(1)
    user, password = re.search(r"^login: (\S+) / (\S+)$", made.stdout, re.MULTILINE).groups()
    print(f"make airflow: {time.monotonic() - started:.0f} s\n{made.stdout.replace(password, '<password>')}")
    written = read_env_file()
    assert (written["AIRFLOW_UI_URL"], written["AIRFLOW_UI_USER"], written["AIRFLOW_UI_PASSWORD"]) == (
        url, user, password
    )
    assert stat.S_IMODE(os.stat(commands.STACK_ENV).st_mode) == 0o600

    api = RestApi(url, airflow_services.ui_password())
    # As a new user finds it: the DAG paused (the Trigger form then offers to unpause it), and no run
    # at the form's logical date (a manual run can only be triggered where there is none; `airflow
    # dags test` would replace it).
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
    trigger_logical = datetime(2025, 10, 1, tzinfo=timezone.utc)
    iso = trigger_logical.isoformat()
    # Unpausing starts the scheduled run of the latest complete day: a fresh DAG has none, and one left
    # by an earlier session is removed (the dag-processor then schedules the day again). Which day that
    # is, the scheduler decides by its own clock, later: with every scheduled run removed from the day
    # before the latest on, whichever runs of those days are there after the trigger are the ones
    # unpausing started, on either side of a midnight UTC passing meanwhile.
    since = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    in_the_way = _runs(api, logical_date_gte=iso, logical_date_lte=iso)
    in_the_way += _runs(api, logical_date_gte=since.isoformat(), run_type="scheduled")
    for run in in_the_way:
        if run["state"] not in ("success", "failed"):  # left by an interrupted earlier session
            api.patch(_run_path(run["dag_run_id"]), {"state": "failed"})
        api.delete(_run_path(run["dag_run_id"]))
    # The DAG's next scheduled day was set when its file was last parsed, from the runs there were
    # then; a parse asked for now sets it from the runs left, so that unpausing starts that day at
    # once rather than after the dag-processor's next parse of its own (up to a minute later).
    api.put(f"/api/v2/parseDagFile/{api.get(f'/api/v2/dags/{DAG_ID}')['file_token']}")

    driver = _browser(tmp_path / "chromium-profile")
    try:
        # Log in; the UI then shows the DAG page that was asked for.
        driver.get(f"{url}/dags/{DAG_ID}")
        wait_for("the login form", lambda: driver.find_elements(By.NAME, "username"), UI_TIMEOUT, 0.5)
        driver.find_element(By.NAME, "username").send_keys(user)
        driver.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
        wait_for(
            "the DAG page after logging in",
            lambda: driver.find_elements(By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"), UI_TIMEOUT, 0.5,
        )

        # Its tasks, as the grid lists them, and its doc.
        tasks = {task["task_id"] for task in api.get(f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]}
        assert {"deploy_glue_scripts", "wait_for_hardware_logs", "run_etl_job", "verify_counts"} <= tasks
        wait_for("every task in the grid", lambda: tasks <= set(_page_text(driver).split()), UI_TIMEOUT, 0.5)
        _click(driver, By.CSS_SELECTOR, "[data-testid=markdown-button]", "the DAG's doc button")
        wait_for(
            "the DAG's doc",
            lambda: "Is there a correlation between hardware errors" in _page_text(driver), UI_TIMEOUT, 0.5,
        )
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait_for("the doc to close", lambda: "Is there a correlation" not in _page_text(driver), UI_TIMEOUT, 0.5)

        # The Trigger form: logical date 2025-10-01 00:00 UTC; the DAG is unpaused on trigger. The form
        # says which day a logical date runs (the log_day Param's description).
        _click(driver, By.CSS_SELECTOR, "[data-testid=trigger-dag-button]", "Trigger")
        wait_for(
            "the Trigger form", lambda: driver.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]"),
            UI_TIMEOUT, 0.5,
        )
        for offered in (
            "Unpause hardware_correlation on trigger", "Inferred from Logical Date and Timetable",
            "00:00 of day D runs D",
        ):
            wait_for(f"'{offered}' in the Trigger form", lambda o=offered: o in _page_text(driver), UI_TIMEOUT, 0.5)
        _click(driver, By.CSS_SELECTOR, "[data-testid=datetime-input]", "the logical date")
        for placeholder, value in zip(("YYYY/MM/DD", "HH:mm"), LOGICAL_DATE, strict=True):
            field = wait_for(
                f"the {placeholder} field",
                lambda p=placeholder: driver.find_elements(By.CSS_SELECTOR, f"input[placeholder='{p}']"), UI_TIMEOUT, 0.5,
            )[0]
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(Keys.BACKSPACE)
            field.send_keys(value)
        wait_for(
            "the chosen logical date",
            lambda: "Oct 01, 2025 00:00" in _text_of(driver, By.CSS_SELECTOR, "[data-testid=datetime-input]"),
            UI_TIMEOUT, 0.5,
        )
        _click(driver, By.CSS_SELECTOR, "[data-testid=datetime-input]", "the logical date (closing its picker)")
        triggered_at = datetime.now(timezone.utc)
        _click(driver, By.XPATH, "//*[@role='dialog']//button[normalize-space()='Trigger']", "the form's Trigger")

        run = wait_for("the triggered run", lambda: _runs(api, logical_date_gte=iso, logical_date_lte=iso), UI_TIMEOUT)[0]
        run_id = run["dag_run_id"]
        assert run["run_type"] == "manual"
        assert _when(run["data_interval_start"]) == trigger_logical
        assert _when(run["data_interval_end"]) == datetime(2025, 10, 2, tzinfo=timezone.utc)

        # Unpausing started the latest day's scheduled run, as Airflow does. The day is checked against
        # the run's own times: one whole UTC day, over when the scheduler queued the run, and the latest
        # one then (or the one before, when midnight came between the dag-processor's last parse and
        # the unpausing: the scheduler starts the day the dag-processor computed).
        scheduled = wait_for(
            "the scheduled run unpausing starts",
            lambda: _runs(api, logical_date_gte=since.isoformat(), run_type="scheduled"), 300,
        )[0]
        day_start, day_end, queued = (
            _when(scheduled[key]) for key in ("data_interval_start", "data_interval_end", "queued_at")
        )
        assert queued >= triggered_at - timedelta(minutes=1), scheduled
        assert day_start == day_start.replace(hour=0, minute=0, second=0, microsecond=0), scheduled
        assert day_end - day_start == timedelta(days=1), scheduled
        assert day_end <= queued < day_end + timedelta(days=2), scheduled

        # The grid: wait until it shows the triggered run green.
        driver.get(f"{url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}")
        finished = wait_for(
            f"run {run_id} to finish",
            lambda: (lambda state: state if state in ("success", "failed") else None)(api.get(_run_path(run_id))["state"]),
            RUN_TIMEOUT, 5,
        )
        assert finished == "success", f"run {run_id} {finished}: {api.get(_run_path(run_id) + '/taskInstances?state=failed')}"
        driver.get(f"{url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}")
        wait_for("the grid's bar of the run", lambda: _grid_bar_colour(driver, run_id), UI_TIMEOUT, 1)
        wait_for(
            f"the grid showing the run green (its bar is {_grid_bar_colour(driver, run_id)})",
            lambda: _green(_grid_bar_colour(driver, run_id)), UI_TIMEOUT, 1,
        )
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))

        # Runs as the UI lists them, with their real times: the one `make run` made too.
        runs = {run["dag_run_id"]: run for run in api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]}
        dags_test_run = [
            run for run in runs.values()
            if _when(run["logical_date"]) == datetime.combine(EMPTY_DAY, datetime.min.time(), timezone.utc)
        ]
        assert len(dags_test_run) == 1
        assert dags_test_run[0]["state"] == "failed"
        # `airflow dags test` records its run as started at its logical date (no flag or setting of it
        # changes that); when it really started is when it was created, its run_after.
        assert before_dags_test <= _when(dags_test_run[0]["run_after"]) <= _when(dags_test_run[0]["end_date"])
        assert _when(dags_test_run[0]["end_date"]) - _when(dags_test_run[0]["run_after"]) < timedelta(minutes=30)
        triggered = runs[run_id]
        assert triggered_at - timedelta(minutes=1) <= _when(triggered["start_date"]) < _when(triggered["end_date"])
        driver.get(f"{url}/dags/{DAG_ID}/runs")
        for shown in (run_id, dags_test_run[0]["dag_run_id"], scheduled["dag_run_id"]):
            wait_for(f"run {shown} in the list of runs", lambda r=shown: r in _page_text(driver), UI_TIMEOUT, 1)
        # The list shows when the `make run` run really started (its Run After), not only its logical date.
        row = driver.find_element(By.XPATH, f"//tr[contains(., '{dags_test_run[0]['dag_run_id']}')]").text
        assert _when(dags_test_run[0]["run_after"]).strftime("%Y-%m-%d %H:%M") in row, row

        # A scheduled run has no data: it fails at its sensor, which pokes for the run's own day. It is
        # waited for by its state, not timed: when it fails depends on how busy the scheduler is (at
        # the SENSOR_TIMEOUT_SECONDS given to `make airflow` above, or sooner when a loaded
        # LocalExecutor reports a rescheduled poke as finished after the next one was queued and the
        # scheduler fails the try). The deadline is a safety net, and far short of production's 6-hour
        # sensor timeout. Every scheduled run unpausing started is waited for (a midnight passing
        # while the DAG is unpaused starts another), so that none is left running.
        for started in _runs(api, logical_date_gte=since.isoformat(), run_type="scheduled"):
            scheduled_id = started["dag_run_id"]
            state = wait_for(
                f"scheduled run {scheduled_id} to finish",
                lambda r=scheduled_id: (lambda s: s if s in ("success", "failed") else None)(
                    api.get(_run_path(r))["state"]
                ),
                RUN_TIMEOUT, 5,
            )
            assert state == "failed", scheduled_id
            failed = api.get(_run_path(scheduled_id) + "/taskInstances?state=failed")["task_instances"]
            sensor = {task["task_id"]: task for task in failed}.get("wait_for_hardware_logs")
            assert sensor, f"{scheduled_id}: failed tasks {[task['task_id'] for task in failed]}"
            day = _when(started["data_interval_start"]).date()
            assert f"hardware_logs/dt={day}/" in _task_log(api, scheduled_id, sensor), scheduled_id
    except BaseException:
        with_failure = commands.REPO / ".local" / "airflow-ui-failure.png"
        driver.save_screenshot(str(with_failure))
        print(f"page at failure ({driver.current_url}; screenshot {with_failure}):\n{_page_text(driver)}")
        raise
    finally:
        driver.quit()
        # Paused again, as the suite found it: later tests and `make airflow` start no scheduled runs.
        api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": True})

    # The warehouse holds what the rules of docs/contract.md give for the day, independently of the UI.
    expected_rows, expected_counts = expected_day(s3, env["RAW_BUCKET"], DAY)
    rows, audit = warehouse_day(env["WAREHOUSE_DSN"], DAY)
    assert rows == expected_rows
    assert audit == expected_counts


# The browser's own reading of a CSS colour, whatever notation the UI's stylesheet uses, as 0-255 RGB.
_RGB = """
const canvas = document.createElement('canvas'); canvas.width = canvas.height = 1;
const context = canvas.getContext('2d');
context.fillStyle = getComputedStyle(arguments[0]).backgroundColor;
context.fillRect(0, 0, 1, 1);
return Array.from(context.getImageData(0, 0, 1, 1).data.slice(0, 3));
"""


def _grid_bar_colour(driver, run_id: str) -> tuple[int, int, int] | None:
    """The colour of the run's bar in the grid (a link to the run holding one coloured box)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    try:
        for link in driver.find_elements(By.CSS_SELECTOR, "a[href*='/runs/']"):
            href = urllib.parse.unquote(link.get_attribute("href") or "").rstrip("/")
            if href.endswith(f"/runs/{run_id}"):
                boxes = link.find_elements(By.CSS_SELECTOR, "div")
                if boxes:
                    return tuple(driver.execute_script(_RGB, boxes[0]))
    except WebDriverException:  # re-rendered while read
        pass
    return None


def _green(colour: tuple[int, int, int] | None) -> bool:
    return colour is not None and colour[1] >= 60 and colour[1] > 1.5 * colour[0] and colour[1] > 1.5 * colour[2]
