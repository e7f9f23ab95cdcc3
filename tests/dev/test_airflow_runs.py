"""Following runs and backfills through Airflow's REST API, against a stand-in of it: which runs are the
backfill's, what each day's result is, what a cancel fails, which earlier runs are removed."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from dev import airflow_runs
from dev.airflow_api import iso
from dev.airflow_runs import DayResult

D1, D2, D3 = date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 3)
CREATED = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
BACKFILL = {"id": 7, "created_at": iso(CREATED)}


def at(seconds: float) -> str:
    return iso(CREATED + timedelta(seconds=seconds))


def midnight(day: date) -> str:
    return f"{day}T00:00:00Z"


def run(run_id, day, state, run_type="backfill", queued=1.0, start=None, end=None, interval_start=None):
    return {
        "dag_run_id": run_id, "logical_date": midnight(day), "state": state, "run_type": run_type,
        "queued_at": at(queued), "start_date": start, "end_date": end, "run_after": midnight(day + timedelta(days=1)),
        "data_interval_start": interval_start or midnight(day),
    }


class StandInApi:
    def __init__(self, runs):
        self.records = runs
        self.calls = []

    def runs_at(self, dag_id, first, last=None, state=None):
        return [r for r in self.records if state is None or r["state"] in state]

    def failed_tasks(self, dag_id, run_id):
        return ["run_etl_job"]

    def run_path(self, dag_id, run_id):
        return f"/runs/{run_id}"

    def put(self, path, body=None):
        self.calls.append(("PUT", path))

    def patch(self, path, body):
        self.calls.append(("PATCH", path, body))

    def delete(self, path):
        self.calls.append(("DELETE", path))


class Services:
    def check(self):
        pass

    def log(self, service):
        return service


def test_each_day_of_the_backfill_is_its_run_a_run_in_flight_or_a_deleted_one():
    api = StandInApi([
        run("backfill__1", D1, "success", start=at(5), end=at(65)),
        run("scheduled__2", D2, "running", run_type="scheduled", queued=-600),
    ])
    said = []
    results = airflow_runs._follow(Services(), api, "dag", BACKFILL, D1, D3, 2, said.append)
    assert results == [
        DayResult(D1, "success", 60.0),
        DayResult(D2, "skipped", note="not run: a run of this day is still queued or running"),
        DayResult(D3, "failed", note="its run was deleted while the backfill ran"),
    ]
    assert said == [result.line() for result in results]


def test_a_finished_run_taken_over_before_the_backfill_is_not_the_backfills():
    earlier = run("backfill__1", D1, "failed", queued=-3600, start=at(-3590), end=at(-3500))
    assert not airflow_runs._is_of(BACKFILL, earlier)
    assert airflow_runs._is_of(BACKFILL, {**earlier, "queued_at": at(0.5)})


def test_a_dags_test_run_lasts_from_its_creation_not_from_its_logical_date():
    record = {"start_date": midnight(D1), "run_after": at(0), "end_date": at(42)}
    assert airflow_runs.run_seconds(record) == 42.0
    assert airflow_runs.run_seconds({**record, "start_date": at(2)}) == 40.0
    assert airflow_runs.run_seconds({**record, "end_date": None}) is None


def test_cancelling_fails_the_backfills_running_runs_only():
    api = StandInApi([
        run("backfill__1", D1, "running", start=at(5)),
        run("manual__2", D2, "running", run_type="manual", queued=-60),
    ])
    said = []
    airflow_runs._cancel(api, "dag", BACKFILL, D1, D2, said.append)
    assert api.calls == [("PUT", "/api/v2/backfills/7/cancel"), ("PATCH", "/runs/backfill__1", {"state": "failed"})]
    assert said == ["cancelled backfill 7: its unfinished days are marked failed"]


def test_finished_runs_of_another_day_at_the_ranges_logical_dates_are_removed():
    api = StandInApi([
        run("manual__old", D2, "success", run_type="manual", interval_start=midnight(D1)),
        run("backfill__1", D1, "success"),
    ])
    said = []
    airflow_runs._remove_runs_of_other_days(api, "dag", D1, D2, said.append)
    assert api.calls == [("DELETE", "/runs/manual__old")]
    assert "manual__old" in said[0]
