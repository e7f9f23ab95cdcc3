"""End to end: planted effects go through the DAG (Airflow's backfill) and come out of the report.

One generated dataset serves every test here: two days with the same devices, sales and customers,
the first with a planted effect (each event an error with probability base x industry factor x
per_year ^ age in years x device factor, the device's own error-proneness, as in fleets with faulty
units), the second with none. Both days are backfilled through the real DAG on the local stack;
`make report` then answers over each day alone. The sizes give about 13,000 errors a day, 50 events
per device-day, 3,000 devices; the devices' factors (coefficient of variation 0.5) add to the
counts' own noise, so the industry ratios' standard errors are about 3.5% and the age ratio's about
1%: 10% is two and a half standard errors or more. Each 95% interval holds its planted value with
probability 0.95, so for some seeds one of the five misses: the seed is fixed, and the run is
deterministic (the same bytes in, the same figures out).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import pytest

from dev import airflow_services, commands
from dev.airflow_api import iso, when
from dev.datagen import ErrorEffect, write_dataset
from dev.raw_zone import upload_raw_zone
from include.assets import DEVICE_DAY_ACTIVITY
from tests.contract_rules import OUTCOMES, day_counts

pytestmark = pytest.mark.stack

PLANTED = ErrorEffect(
    base=0.04,
    per_year=1.25,
    industries={"Retail": 1.0, "Hospitality": 1.3, "Sports & Arenas": 1.7, "Live Events": 2.2},
    device_spread=0.5,
)
PLANTED_DAY, EFFECT_FREE_DAY = "2026-03-02", "2026-03-03"
SEED = 20260303
# About the planted day's average error probability: as many errors on the effect-free day.
EFFECT_FREE_PROBABILITY = 0.09
TOLERANCE = 0.10
TIMEOUT = 2400
SCREENSHOT = commands.REPO / ".local" / "reports" / "report-screenshot.png"


def run_module(*argv: str, env: dict | None = None, timeout: int = TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *argv], cwd=commands.REPO, capture_output=True, text=True, timeout=timeout, env=env
    )
    print(result.stdout, result.stderr, sep="\n")
    return result


def make_report(first: str, last: str, keep: Path) -> tuple[str, dict]:
    """`make report FROM=first TO=last` (minus set-up); the report folder is copied to `keep`."""
    result = run_module("-m", "dev.commands", "report", first, last, timeout=600)
    assert result.returncode == 0, result.stderr
    latest = commands.REPORTS / "latest"
    assert f"Report: {latest / 'report.html'}" in result.stdout
    shutil.copytree(latest, keep)
    return result.stdout, json.loads((keep / "summary.json").read_text())


@pytest.fixture(scope="module")
def backfilled(env, s3, tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted") / "raw"
    dataset = write_dataset(
        folder, start=commands.parse_day(PLANTED_DAY), days=2, devices=3000, rows_per_day=150_000,
        customers=200, seed=SEED, effect=PLANTED, effect_free_days=1,
        effect_free_probability=EFFECT_FREE_PROBABILITY, alerts_per_day=5,
    )
    # The generator's own expected outcomes are checked against docs/contract.md read row by row (the
    # independent oracle) for this planted configuration, before anything is compared with them.
    oracle = {outcome.day: day_counts(folder, outcome.day) for outcome in dataset.days}
    for outcome in dataset.days:
        assert {name: getattr(outcome, name) for name in ("input_rows", *OUTCOMES)} == {
            name: oracle[outcome.day][name] for name in ("input_rows", *OUTCOMES)
        }, outcome.day
    started, started_at = time.monotonic(), datetime.now(timezone.utc)
    upload_raw_zone(folder, env["RAW_BUCKET"], s3)
    try:
        # Both days at once: the crawler and the jobs are the template's, shared by concurrent runs.
        result = run_module("-m", "dev.commands", "backfill", PLANTED_DAY, EFFECT_FREE_DAY, "2")
        assert result.returncode == 0, f"make backfill failed:\n{result.stdout}\n{result.stderr}"
        print(f"backfill of the planted days took {time.monotonic() - started:.0f} s")
        yield {"dataset": dataset, "oracle": oracle, "output": result.stdout, "started_at": started_at}
    finally:
        # customers/ and sales/ are one snapshot for every day: the other tests expect the sample's.
        upload_raw_zone(commands.SAMPLE_DATA, env["RAW_BUCKET"], s3)


@pytest.fixture(scope="module")
def reports(backfilled, tmp_path_factory):
    keep = tmp_path_factory.mktemp("reports")
    return {
        "planted": make_report(PLANTED_DAY, PLANTED_DAY, keep / "planted"),
        "effect_free": make_report(EFFECT_FREE_DAY, EFFECT_FREE_DAY, keep / "effect_free"),
        "folder": keep,
    }


def _close(found: float, planted: float) -> bool:
    return abs(found / planted - 1) <= TOLERANCE


def test_the_exposure_holds_every_loaded_error_of_each_day(backfilled, env):
    with psycopg2.connect(env["WAREHOUSE_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.log_date::text, a.loaded, SUM(d.errors), COUNT(d.device_id), SUM(d.events)"
            " FROM pipeline_run_audit a JOIN device_day_activity d USING (log_date)"
            " WHERE a.log_date IN (%s, %s) GROUP BY 1, 2 ORDER BY 1",
            (PLANTED_DAY, EFFECT_FREE_DAY),
        )
        rows = cursor.fetchall()
    expected = {day: counts["loaded"] for day, counts in backfilled["oracle"].items()}
    assert [(day, loaded) for day, loaded, *_ in rows] == sorted(expected.items())
    for day, loaded, errors, device_days, events in rows:
        assert errors == loaded, day
        # Nearly every one of the 3,000 devices logs on a day (50 events each on average).
        assert 2500 < device_days <= 3000 and events > 40 * device_days, (day, device_days, events)


def test_the_report_recovers_the_planted_effects(reports):
    summary = reports["planted"][1]
    model = summary["model"]
    print(json.dumps(model, indent=2))
    age = model["age_rate_ratio_per_year"]
    assert _close(age["estimate"], PLANTED.per_year), age
    assert age["ci_low"] <= PLANTED.per_year <= age["ci_high"], age

    reference = model["reference_industry"]
    assert reference in PLANTED.industries
    for industry, ratio in model["industry_rate_ratios"].items():
        planted = PLANTED.industries[industry] / PLANTED.industries[reference]
        assert _close(ratio["estimate"], planted), (industry, ratio, planted)
        assert ratio["ci_low"] <= planted <= ratio["ci_high"], (industry, ratio, planted)
    recovered = {industry: ratio["estimate"] for industry, ratio in model["industry_rate_ratios"].items()}
    recovered[reference] = 1.0
    assert sorted(recovered, key=recovered.get) == sorted(PLANTED.industries, key=PLANTED.industries.get)

    assert summary["spearman_age_vs_errors"]["rho"] > 0 and summary["spearman_age_vs_errors"]["p_value"] < 1e-6
    assert set(summary["by_industry"]) == set(PLANTED.industries)
    assert summary["errors"] == sum(cell["errors"] for cell in summary["by_industry"].values())
    assert summary["errors"] == sum(cell["errors"] for cell in summary["by_age_bucket"].values())
    assert "Older hardware fails more often" in summary["answer"]


def test_the_report_finds_no_effect_where_none_was_planted(reports):
    summary = reports["effect_free"][1]
    model = summary["model"]
    print(json.dumps(model, indent=2))
    effects = {"age": model["age_rate_ratio_per_year"], **model["industry_rate_ratios"]}
    assert len(effects) == len(PLANTED.industries)
    for name, effect in effects.items():
        assert _close(effect["estimate"], 1.0), (name, effect)
    assert summary["errors"] > 12_000


def test_make_report_prints_the_answer_and_the_path(reports):
    output, summary = reports["planted"]
    assert summary["answer"] in output
    assert summary["first_day"] == summary["last_day"] == PLANTED_DAY
    for name in ("summary.json", "report.html", "rate_heatmap.png", "rate_by_age.png"):
        assert (reports["folder"] / "planted" / name).stat().st_size > 0, name


def test_the_report_opens_in_a_browser_by_itself(reports, tmp_path):
    page = reports["folder"] / "planted" / "report.html"
    html = page.read_text()
    # Nothing to fetch: the pictures are inside the page.
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        subprocess.run(["/usr/bin/apt-get", "install", "-y", "chromium"], check=True, capture_output=True, timeout=900)
        chromium = shutil.which("chromium")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    SCREENSHOT.unlink(missing_ok=True)
    shot = subprocess.run(
        [chromium, *flags, f"--screenshot={SCREENSHOT}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert shot.returncode == 0, shot.stderr
    assert SCREENSHOT.stat().st_size > 50_000
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180
    )
    assert dom.returncode == 0, dom.stderr
    # The browser laid out the answer and decoded both pictures.
    assert reports["planted"][1]["answer"].split(":")[0] in dom.stdout
    assert dom.stdout.count("data:image/png;base64,") == 2


def test_the_swap_updated_the_report_asset_once_per_day(backfilled, env):
    """This module's own backfill runs, each day's once: events of other modules' runs, or of an earlier
    run of this module on the same stack, do not count."""
    # The backfill's api-server has stopped: one of its own reads the events and their runs.
    with airflow_services.api_server(env) as api:
        found = api.get(
            "/api/v2/assets/events", source_dag_id=commands.DAG_ID, timestamp_gte=iso(backfilled["started_at"]),
            limit=100,
        )["asset_events"]
        mine = [event for event in found if event["uri"] == DEVICE_DAY_ACTIVITY.uri]
        runs = {run_id: api.run(commands.DAG_ID, run_id) for run_id in {event["source_run_id"] for event in mine}}
    counted = Counter(
        (when(runs[event["source_run_id"]]["data_interval_start"]).date().isoformat(), event["source_task_id"])
        for event in mine if runs[event["source_run_id"]]["run_type"] == "backfill"
    )
    events = sorted((day, task, count) for (day, task), count in counted.items() if day in (PLANTED_DAY, EFFECT_FREE_DAY))
    assert events == [(PLANTED_DAY, "swap_day_into_warehouse", 1), (EFFECT_FREE_DAY, "swap_day_into_warehouse", 1)]


def test_the_report_dag_writes_the_report_to_s3_and_logs_where(backfilled, env, s3):
    bucket = env["PROCESSED_BUCKET"]
    airflow = str(Path(sys.executable).parent / "airflow")
    result = subprocess.run(
        [airflow, "dags", "test", "hardware_correlation_report"],
        cwd=commands.REPO, capture_output=True, text=True, timeout=900, env=env,
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0
    written = re.search(rf"report of \S+ to \S+: s3://{bucket}/(reports/[^/\s]+)/report\.html", output)
    if written is None:
        # The latest report already describes the warehouse: the run says so and writes nothing.
        assert "already reports the warehouse as it is" in output
    else:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=written.group(1) + "/")["Contents"]
        assert {item["Key"].rsplit("/", 1)[1] for item in listed} >= {"summary.json", "report.html"}
    latest = json.loads(s3.get_object(Bucket=bucket, Key="reports/latest/summary.json")["Body"].read())
    # Every loaded day, the planted ones among them.
    assert latest["first_day"] <= PLANTED_DAY and latest["last_day"] >= EFFECT_FREE_DAY
    assert f"latest report: s3://{bucket}/reports/latest/report.html" in output or written is None
