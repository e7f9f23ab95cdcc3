"""The report's statistics on aggregated rows: the model, the rank correlation and the answer's wording.

The fleets are simulated (`tests/fleets.py`); the last test checks on the local stack's PostgreSQL that
`model_cells.sql` aggregates `device_day_activity` exactly as `fleets.cells` does.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from include.report import analysis
from tests.fleets import FIVE_INDUSTRIES, Fleet, cells

THREE_INDUSTRIES = {"Retail": 1.0, "Hospitality": 1.5, "Live Events": 2.0}


def fleet_cells(seed: int, **settings) -> pd.DataFrame:
    return cells(Fleet(**settings).device_days(seed))


def result(table: pd.DataFrame) -> dict:
    """What `summary` gives `answer`, from the model's rows alone."""
    return {
        "first_day": "2025-10-01", "last_day": "2025-10-30",
        "device_days": int(table["device_days"].sum()), "errors": int(table["errors"].sum()),
        "model": analysis.poisson_model(table), "concentration": analysis.concentration(table),
        "spearman_age_vs_errors": {"rho": 0.1, "p_value": 0.01},
    }


def test_the_model_recovers_planted_rate_ratios_with_intervals_that_hold_them():
    table = fleet_cells(1, industries=THREE_INDUSTRIES, per_year=1.3, devices=3000, days=10)
    model = analysis.poisson_model(table)
    # Every industry has the same device-days: the reference is the first by name.
    assert model["reference_industry"] == "Hospitality"
    assert model["devices"] == 3000 and model["rows"] == len(table)
    assert "cluster-robust" in model["method"] and "by device" in model["method"]
    age = model["age_rate_ratio_per_year"]
    assert age["ci_low"] < 1.3 < age["ci_high"] and abs(age["estimate"] / 1.3 - 1) < 0.05
    assert age["p_value"] < 1e-6
    for industry in ("Retail", "Live Events"):
        ratio = model["industry_rate_ratios"][industry]
        planted = THREE_INDUSTRIES[industry] / THREE_INDUSTRIES["Hospitality"]
        assert ratio["ci_low"] < planted < ratio["ci_high"], (industry, ratio)
        assert ratio["p_value"] <= ratio["p_value_holm"] < 1e-6
    assert model["converged"] and 0.8 < model["dispersion"] < 1.2
    assert abs(model["reference_rate_at_age_0"] / THREE_INDUSTRIES["Hospitality"] - 1) < 0.1


def test_holm_adjustment_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    generator = np.random.default_rng(7)
    # Few calls: each of statsmodels' runs a full garbage collection, slow in a large test process.
    cases = [generator.uniform(0, 0.2, size).round(2).tolist() for size in (1, 2, 5, 12)]  # rounded: ties
    cases += [[0.01, 0.04, 0.03, 0.005], [0.5, 0.5, 0.9]]
    for p_values in cases:
        expected = multipletests(p_values, method="holm")[1]
        assert analysis.holm_adjusted(p_values) == pytest.approx(expected.tolist(), abs=1e-12)


def test_devices_that_differ_widen_the_intervals_and_show_in_the_dispersion():
    alike = analysis.poisson_model(fleet_cells(2, device_spread=0.0))
    differ = analysis.poisson_model(fleet_cells(2, device_spread=1.8))

    def width(model):
        age = model["age_rate_ratio_per_year"]
        return np.log(age["ci_high"] / age["ci_low"])

    assert width(differ) > 2.5 * width(alike)
    assert alike["dispersion"] < 1.3 < 3 < differ["dispersion"]


def test_too_few_devices_or_no_errors_is_no_model():
    table = fleet_cells(1, devices=19, days=30)
    model = analysis.poisson_model(table)
    assert model == {
        "error": "19 devices are too few to allow for each device's own error rate (the model needs at least 20)",
        "devices": 19,
    }
    assert analysis.poisson_model(fleet_cells(1, devices=20, days=30).assign(errors=0)) == {"error": "no errors in the range"}


def test_an_industry_with_too_few_devices_is_not_compared():
    # 210 devices over five industries, but Retail holds only 10 of them.
    table = fleet_cells(7, industries={"Live Events": 2.0, "Education": 1.0}, devices=200, days=10)
    few = fleet_cells(8, industries={"Retail": 1.0}, devices=10, days=10).assign(
        device_id=lambda frame: "R-" + frame["device_id"]
    )
    model = analysis.poisson_model(pd.concat([table, few], ignore_index=True))
    retail = model["industry_rate_ratios"]["Retail"]
    assert retail["devices"] == 10 and retail["estimate"] is not None
    assert retail["ci_low"] is retail["ci_high"] is retail["p_value"] is None and "p_value_holm" not in retail
    assert model["industry_rate_ratios"]["Live Events"]["ci_low"] > 1.5
    # The test of age by industry leaves Retail out.
    assert set(model["age_by_industry"]["age_rate_ratio_per_year"]) == {"Education", "Live Events"}
    text, _ = analysis._industry_sentence(model)
    assert text.startswith("Industries differ, at the same age: Live Events has ")
    assert text.endswith("Retail has too few devices (under 20) to be compared.")


def test_the_concentration_counts_the_devices_with_most_errors():
    table = pd.DataFrame(
        [(f"D{n}", "Retail", 0, 10, errors, 0) for n, errors in enumerate([50] + [1] * 199)],
        columns=list(analysis.CELL_COLUMNS),
    )
    found = analysis.concentration(table)
    # 1% of 200 devices: the two with most errors, 51 of 249 errors on 20 of 2,000 device-days.
    assert found == {"devices": 200, "top_devices": 2, "share_of_errors": 51 / 249, "share_of_device_days": 0.01}
    assert "Errors concentrate in a few devices: the 1% of devices with the most errors (2 of 200) produced 20%" in (
        analysis._concentration_sentence(found)
    )


def test_spearman_from_counts_equals_spearman_on_every_device_day():
    rng = np.random.default_rng(7)
    ages = rng.integers(0, 20, 3000)
    errors = rng.poisson(0.3 + ages / 20)
    frequencies = (
        pd.DataFrame({"days_since_sale": ages, "errors": errors})
        .groupby(["days_since_sale", "errors"]).size().rename("device_days").reset_index()
    )
    expected = stats.spearmanr(ages, errors)
    found = analysis.spearman(frequencies)
    assert found["rho"] == pytest.approx(expected.statistic, abs=1e-12)
    assert found["p_value"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert found["device_days"] == 3000


def test_the_answer_says_which_way_age_goes_which_industries_stand_out_and_how_concentrated_errors_are():
    table = fleet_cells(3, industries=THREE_INDUSTRIES, per_year=1.3, devices=3000, days=10, device_spread=1.0)
    text = analysis.answer(result(table))
    assert text.startswith("From ") and "on 3,000 devices" in text and "Older hardware fails more often" in text
    assert "Live Events has 1.2" in text and "Retail has 0.6" in text and "times Hospitality's error rate" in text
    # Highest rate first.
    assert text.index("Live Events has") < text.index("Retail has")
    assert "Errors concentrate in a few devices: the 1% of devices with the most errors (30 of 3,000)" in text
    assert "too few" not in text and "Age acts differently" not in text


def test_the_answer_names_only_industries_that_differ_with_the_comparisons_taken_together():
    model = {
        "reference_industry": "Retail",
        "industry_rate_ratios": {
            "Education": {"estimate": 1.3, "ci_low": 1.01, "ci_high": 1.7, "p_value": 0.04, "p_value_holm": 0.12},
            "Healthcare": {"estimate": 1.6, "ci_low": 1.3, "ci_high": 2.0, "p_value": 0.0001, "p_value_holm": 0.0004},
            "Hospitality": {"estimate": 1.0, "ci_low": 0.8, "ci_high": 1.25, "p_value": 0.9, "p_value_holm": 0.9},
        },
    }
    text, concludes = analysis._industry_sentence(model)
    assert concludes
    assert text == (
        "Industries differ, at the same age: Healthcare has 1.60 times Retail's error rate (95% interval 1.30 to"
        " 2.00); Education, Hospitality cannot be told apart from Retail."
    )


def test_the_answer_says_when_age_acts_differently_by_industry():
    table = fleet_cells(
        4, industries=THREE_INDUSTRIES, per_year=1.0, per_year_by_industry={"Live Events": 1.5},
        devices=3000, days=10,
    )
    model = analysis.poisson_model(table)
    test = model["age_by_industry"]
    assert test["detectable"] and test["p_value"] < 1e-6
    by_industry = test["age_rate_ratio_per_year"]
    assert by_industry["Live Events"]["ci_low"] < 1.5 < by_industry["Live Events"]["ci_high"]
    assert by_industry["Retail"]["ci_low"] < 1.0 < by_industry["Retail"]["ci_high"]
    text = analysis.answer(result(table))
    assert "Age acts differently by industry (p = " in text and "1.5" in text.split("Age acts differently")[1]


def test_the_answer_says_plainly_when_the_data_are_too_few():
    table = fleet_cells(5, industries=THREE_INDUSTRIES, devices=30, days=2, errors_per_device_day=0.2)
    text = analysis.answer(result(table))
    assert text.startswith(f"The data are too few to conclude: {table['errors'].sum():,} errors over 60 device-days")
    assert "too few to tell whether age matters" in text
    assert "too few to tell whether industries differ" in text


def test_the_answer_with_much_data_and_no_effect_says_none_is_detectable():
    table = fleet_cells(6, industries={"Retail": 1.0}, devices=3000, days=20, errors_per_device_day=2.0)
    text = analysis.answer(result(table))
    assert "Age makes no detectable difference" in text
    assert "one industry (Retail)" in text


@pytest.mark.stack
def test_model_cells_sql_aggregates_the_warehouse_as_the_simulation_does(stack):
    """The SQL behind the model, run on a throwaway database filled with a simulated fleet, through
    both drivers: Airflow's PostgresHook hands out psycopg 3 connections where it can, `make report`
    psycopg2 ones."""
    import psycopg
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import make_dsn, parse_dsn

    device_days = Fleet(industries=FIVE_INDUSTRIES, device_spread=1.0, devices=200, days=70).device_days(seed=8)
    first = date(2025, 1, 1)
    device_days["log_date"] = [first + timedelta(days=int(n)) for n in np.tile(np.arange(70), 200)]
    name = f"report_cells_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(stack["WAREHOUSE_DSN"])
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        connection = psycopg2.connect(make_dsn(**{**parse_dsn(stack["WAREHOUSE_DSN"]), "dbname": name}))
        try:
            with connection.cursor() as cursor:
                cursor.execute((analysis.SQL_DIR.parent / "ddl" / "007_device_day_activity.sql").read_text())
                cursor.executemany(
                    "INSERT INTO device_day_activity VALUES (%s, %s, 'S', 'C', %s, %s, %s, %s)",
                    [
                        (row.log_date, row.device_id, row.industry, int(row.days_since_sale), 1000, int(row.errors))
                        for row in device_days.itertuples()
                    ],
                )
            connection.commit()
            found = analysis.model_cells(connection, first, first + timedelta(days=69))
        finally:
            connection.close()
        with psycopg.connect(make_dsn(**{**parse_dsn(stack["WAREHOUSE_DSN"]), "dbname": name})) as connection:
            found_by_psycopg3 = analysis.model_cells(connection, first, first + timedelta(days=69))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        admin.close()
    keys = ["device_id", "industry", "age_period"]
    expected = cells(device_days.drop(columns="log_date")).sort_values(keys).reset_index(drop=True)
    for table in (found, found_by_psycopg3):
        pd.testing.assert_frame_equal(table.sort_values(keys).reset_index(drop=True), expected, check_dtype=False)
