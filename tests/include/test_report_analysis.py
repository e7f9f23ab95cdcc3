"""The report's statistics on aggregated rows: the model, the rank correlation and the answer's wording."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from include.report import analysis

INDUSTRIES = {"Retail": 1.0, "Hospitality": 1.5, "Live Events": 2.0}


def planted_rows(seed: int, per_year: float, device_days: int = 40) -> pd.DataFrame:
    """Device-days per industry and age (every 10th day over 4 years) with Poisson errors at
    0.05 x industry factor x per_year ^ age, aggregated the way by_industry_and_age.sql does."""
    rng = np.random.default_rng(seed)
    rows = []
    for industry, factor in INDUSTRIES.items():
        for days in range(0, 4 * 365, 10):
            rate = 0.05 * factor * per_year ** (days / analysis.DAYS_PER_YEAR)
            rows.append((industry, days, device_days, int(rng.poisson(rate, device_days).sum())))
    return pd.DataFrame(rows, columns=["industry", "days_since_sale", "device_days", "errors"])


def test_the_model_recovers_planted_rate_ratios_with_intervals_that_hold_them():
    model = analysis.poisson_model(planted_rows(seed=1, per_year=1.3))
    # Every industry has the same device-days: the reference is the first by name.
    assert model["reference_industry"] == "Hospitality"
    age = model["age_rate_ratio_per_year"]
    assert age["ci_low"] < 1.3 < age["ci_high"] and abs(age["estimate"] / 1.3 - 1) < 0.05
    assert age["p_value"] < 1e-6
    for industry in ("Retail", "Live Events"):
        ratio = model["industry_rate_ratios"][industry]
        planted = INDUSTRIES[industry] / INDUSTRIES["Hospitality"]
        assert ratio["ci_low"] < planted < ratio["ci_high"], (industry, ratio)
    assert model["converged"] and 0.8 < model["dispersion"] < 1.2
    assert abs(model["reference_rate_at_age_0"] / (0.05 * INDUSTRIES["Hospitality"]) - 1) < 0.1


def test_no_errors_is_no_model():
    rows = planted_rows(seed=1, per_year=1.0).assign(errors=0)
    assert analysis.poisson_model(rows) == {"error": "no errors in the range"}


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


def _result(rows: pd.DataFrame) -> dict:
    frequencies = rows.rename(columns={"device_days": "n"})
    return {
        "first_day": "2025-10-01", "last_day": "2025-10-30",
        "device_days": int(rows["device_days"].sum()), "errors": int(rows["errors"].sum()),
        "model": analysis.poisson_model(rows),
        "spearman_age_vs_errors": {"rho": 0.1 if len(frequencies) else None, "p_value": 0.01},
    }


def test_the_answer_says_which_way_age_goes_and_which_industries_stand_out():
    text = analysis.answer(_result(planted_rows(seed=2, per_year=1.3)))
    assert text.startswith("From ") and "Older hardware fails more often" in text
    assert "Live Events has 1.3" in text and "Retail has 0.6" in text and "times Hospitality's error rate" in text
    # Highest rate first.
    assert text.index("Live Events has") < text.index("Retail has")
    assert "too few" not in text


def test_the_answer_says_plainly_when_the_data_are_too_few():
    rows = pd.DataFrame(
        [("Retail", 30, 3, 2), ("Retail", 400, 2, 1), ("Hospitality", 200, 4, 3), ("Hospitality", 900, 2, 2)],
        columns=["industry", "days_since_sale", "device_days", "errors"],
    )
    text = analysis.answer(_result(rows))
    assert text.startswith("The data are too few to conclude: 8 errors over 11 device-days")
    assert "too few to tell whether age matters" in text
    assert "too few to tell whether industries differ" in text


def test_the_answer_with_much_data_and_no_effect_says_none_is_detectable():
    rows = planted_rows(seed=3, per_year=1.0, device_days=400).assign(industry="Retail")
    rows = rows.groupby(["industry", "days_since_sale"], as_index=False).sum()
    text = analysis.answer(_result(rows))
    assert "Age makes no detectable difference" in text
    assert "one industry (Retail)" in text
