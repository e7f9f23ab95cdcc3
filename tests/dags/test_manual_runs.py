"""The day a person triggers is the day that runs: the DAG as Airflow's API server sees it (serialized)
gives a manual run at D 00:00 day D, and its Trigger form says so and can check it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR / "hardware_correlation.py")).dags["hardware_correlation"]


@pytest.fixture(scope="module")
def served(dag):
    """The DAG as the DAG processor stores it and the scheduler and API server read it."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


@pytest.mark.parametrize(
    ("logical_date", "day"),
    [("2025-10-01T00:00:00Z", "2025-10-01"), ("2025-10-03T00:00:00Z", "2025-10-03"), ("2025-10-02T09:30:00Z", "2025-10-01")],
)
def test_a_triggered_run_processes_the_day_its_logical_date_names(served, logical_date, day):
    # What the API server does with the Trigger form's logical date (TriggerDAGRunPostBody).
    interval = served.timetable.infer_manual_data_interval(run_after=pendulum.parse(logical_date))
    assert interval.start.to_date_string() == day
    assert (interval.end - interval.start).in_hours() == 24


def test_the_trigger_form_says_which_day_runs_and_checks_it_without_a_default(served):
    param = served.params.get_param("log_day")
    assert served.params["log_day"] is None
    assert param.schema["type"] == ["null", "string"] and param.schema["format"] == "date"
    assert "00:00 of day D runs D" in param.description and "yesterday" in param.description


def test_the_check_comes_before_any_work(dag):
    check = dag.get_task("check_log_day")
    assert {"deploy_glue_scripts", "create_warehouse_tables"} <= check.downstream_task_ids
    assert not check.upstream_task_ids


def _check(dag, **context):
    return dag.get_task("check_log_day").python_callable(**context)


def test_a_run_of_the_day_asked_for_or_of_no_day_in_particular_goes_on(dag):
    day = datetime(2025, 10, 1, tzinfo=timezone.utc)
    for params in ({"log_day": None}, {"log_day": "2025-10-01"}, {}):
        assert _check(dag, params=params, data_interval_start=day, logical_date=day) is None


def test_a_run_of_another_day_than_asked_for_fails_at_once_naming_both(dag):
    later = datetime(2025, 10, 2, 14, 23, tzinfo=timezone.utc)
    with pytest.raises(AirflowFailException) as raised:
        _check(dag, params={"log_day": "2025-10-02"}, data_interval_start=datetime(2025, 10, 1, tzinfo=timezone.utc),
               logical_date=later)
    said = str(raised.value)
    assert "log_day 2025-10-02" in said and "runs log day 2025-10-01" in said
    assert "trigger 2025-10-02 with logical date 2025-10-02, 00:00 UTC" in said


def test_a_run_without_a_logical_date_fails_at_once(dag):
    with pytest.raises(AirflowFailException, match="no logical date"):
        _check(dag, params={}, data_interval_start=None, logical_date=None)
