"""Contract section 6: error rates by industry and hardware age, a Poisson model and a rank correlation.

Everything is computed from `device_day_activity`: the SQL in `include/sql/report/` aggregates in
PostgreSQL, and the model is fitted in Python on the aggregated rows (device-days and errors per
industry and age in days), never on single rows. `summary(connection, first, last)` returns the
summary that `summary.json` holds, with the rows behind the pictures under `"_rows"`.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "report"
AGE_BUCKETS = ("[0, 180)", "[180, 365)", "[365, 730)", "[730, 1095)", "[1095, ∞)")
AGE_BUCKET_NAMES = ("under 6 months", "6 to 12 months", "1 to 2 years", "2 to 3 years", "3 years or more")
DAYS_PER_YEAR = 365.25
# An interval whose ends are more than this factor apart does not pin an effect down: the report
# then says the data are too few rather than "no effect".
PRECISE_RATIO = 1.5


class NoData(Exception):
    """The range holds no device-days: there is nothing to report on."""


def _query(connection, name: str, parameters: dict | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute((SQL_DIR / name).read_text(), parameters or {})
        return cursor.fetchall()


def day_range(connection, first: date | None, last: date | None) -> tuple[date, date]:
    """The report's days: as given, else the first and last loaded day."""
    if first is None or last is None:
        loaded_first, loaded_last = _query(connection, "day_range.sql")[0]
        if loaded_first is None:
            raise NoData("device_day_activity holds no rows: load some days first")
        first, last = first or loaded_first, last or loaded_last
    if last < first:
        raise ValueError(f"the last day ({last}) is before the first ({first})")
    return first, last


def _rate(device_days: int, errors: int) -> float | None:
    return errors / device_days if device_days else None


def _cell(device_days, errors) -> dict:
    device_days, errors = int(device_days), int(errors or 0)
    return {"device_days": device_days, "errors": errors, "rate": _rate(device_days, errors)}


def _finite(value: float) -> float | None:
    """JSON has no infinity or NaN: an estimate the data cannot bound is null."""
    value = float(value)
    return value if math.isfinite(value) else None


def poisson_model(rows: pd.DataFrame) -> dict:
    """Errors per device-day ~ industry (against the industry with most device-days) + age in years.

    `rows` has industry, days_since_sale, device_days and errors. Returns the rate ratios with 95%
    intervals and p-values, or `{"error": why}` when the data cannot be fitted.
    """
    import statsmodels.api as sm

    if rows["errors"].sum() == 0:
        return {"error": "no errors in the range"}
    exposure = rows.groupby("industry")["device_days"].sum()
    reference = str(exposure.sort_values(ascending=False, kind="stable").index[0])
    others = sorted(name for name in exposure.index if name != reference)
    design = pd.DataFrame({"intercept": 1.0}, index=rows.index)
    for name in others:
        design[name] = (rows["industry"] == name).astype(float)
    design["age_years"] = rows["days_since_sale"] / DAYS_PER_YEAR
    try:
        fitted = sm.GLM(
            rows["errors"].astype(float), design, family=sm.families.Poisson(),
            offset=np.log(rows["device_days"].astype(float)),
        ).fit()
    except Exception as error:  # a singular design (one age only, say) is data too thin to model
        return {"error": f"the model could not be fitted: {error}"}
    low, high = fitted.conf_int(alpha=0.05).T.values

    def ratio(column: str) -> dict:
        at = design.columns.get_loc(column)
        return {
            "estimate": _finite(np.exp(fitted.params.iloc[at])),
            "ci_low": _finite(np.exp(low[at])),
            "ci_high": _finite(np.exp(high[at])),
            "p_value": _finite(fitted.pvalues.iloc[at]),
        }

    return {
        "reference_industry": reference,
        # The reference industry's fitted rate at age 0: with the ratios, the model's rate anywhere.
        "reference_rate_at_age_0": _finite(np.exp(fitted.params["intercept"])),
        "age_rate_ratio_per_year": ratio("age_years"),
        "industry_rate_ratios": {name: ratio(name) for name in others},
        "rows": int(len(rows)),
        "converged": bool(fitted.converged),
        # Pearson chi-square over residual degrees of freedom: near 1 when the Poisson variance fits.
        "dispersion": _finite(fitted.pearson_chi2 / fitted.df_resid) if fitted.df_resid > 0 else None,
    }


def _midranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The average rank of each value when every value occurs `weights` times (ties share a rank)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    counts = np.bincount(inverse, weights=weights)
    before = np.concatenate([[0.0], np.cumsum(counts)[:-1]])
    return (before + (counts + 1) / 2)[inverse]


def spearman(frequencies: pd.DataFrame) -> dict:
    """Spearman's rho between age and errors per device-day, from (days_since_sale, errors,
    device_days) counts: the Pearson correlation of mid-ranks, with the t-distribution p-value
    (as scipy.stats.spearmanr computes it on the device-days one by one)."""
    from scipy import stats

    weights = frequencies["device_days"].to_numpy(float)
    n = weights.sum()
    x = _midranks(frequencies["days_since_sale"].to_numpy(), weights)
    y = _midranks(frequencies["errors"].to_numpy(), weights)
    mean_x, mean_y = np.average(x, weights=weights), np.average(y, weights=weights)
    covariance = np.sum(weights * (x - mean_x) * (y - mean_y))
    spread = math.sqrt(np.sum(weights * (x - mean_x) ** 2) * np.sum(weights * (y - mean_y) ** 2))
    if n < 3 or spread == 0:
        return {"rho": None, "p_value": None, "device_days": int(n)}
    rho = float(np.clip(covariance / spread, -1.0, 1.0))
    if abs(rho) == 1.0:
        p_value = 0.0
    else:
        t = rho * math.sqrt((n - 2) / (1 - rho**2))
        p_value = float(2 * stats.t.sf(abs(t), n - 2))
    return {"rho": rho, "p_value": p_value, "device_days": int(n)}


def summary(connection, first: date | None = None, last: date | None = None) -> dict:
    """Contract section 6 over [first, last] (default: every loaded day)."""
    first, last = day_range(connection, first, last)
    parameters = {"first_day": first, "last_day": last}
    result: dict = {"first_day": first.isoformat(), "last_day": last.isoformat(), "device_days": 0, "errors": 0}
    by_industry, by_bucket, cells = {}, {}, {}
    for has_industry, has_bucket, industry, bucket, device_days, errors in _query(connection, "cells.sql", parameters):
        if has_industry and has_bucket:
            cells.setdefault(industry, {})[AGE_BUCKETS[bucket]] = _cell(device_days, errors)
        elif has_industry:
            by_industry[industry] = _cell(device_days, errors)
        elif has_bucket:
            by_bucket[AGE_BUCKETS[bucket]] = _cell(device_days, errors)
        else:
            result.update(_cell(device_days, errors))
    if not result["device_days"]:
        raise NoData(f"device_day_activity holds no rows from {first} to {last}")
    result["rate"] = _rate(result["device_days"], result["errors"])
    result["by_industry"] = dict(sorted(by_industry.items()))
    result["by_age_bucket"] = {bucket: by_bucket[bucket] for bucket in AGE_BUCKETS if bucket in by_bucket}
    result["by_industry_and_age_bucket"] = {
        industry: {bucket: row[bucket] for bucket in AGE_BUCKETS if bucket in row}
        for industry, row in sorted(cells.items())
    }

    rows = pd.DataFrame(
        _query(connection, "by_industry_and_age.sql", parameters),
        columns=["industry", "days_since_sale", "device_days", "errors"],
    ).astype({"days_since_sale": int, "device_days": int, "errors": int})
    result["model"] = poisson_model(rows)
    frequencies = pd.DataFrame(
        _query(connection, "age_and_errors.sql", parameters), columns=["days_since_sale", "errors", "device_days"]
    ).astype(int)
    result["spearman_age_vs_errors"] = spearman(frequencies)
    days, last_swap = _query(connection, "loaded_days.sql", parameters)[0]
    result["warehouse_state"] = {"days": int(days), "last_swapped_at": last_swap.isoformat() if last_swap else None}
    result["answer"] = answer(result)
    result["_rows"] = rows
    return result


def _percent(ratio: float) -> str:
    change = (ratio - 1) * 100
    return f"{change:+.0f}%" if abs(change) >= 1 else f"{change:+.1f}%"


def _interval(effect: dict) -> str:
    return f"{effect['ci_low']:.2f} to {effect['ci_high']:.2f}"


def _bounded(effect: dict) -> bool:
    return all(effect.get(name) is not None for name in ("estimate", "ci_low", "ci_high")) and effect["ci_low"] > 0


def _excludes_one(effect: dict) -> bool:
    return _bounded(effect) and (effect["ci_low"] > 1 or effect["ci_high"] < 1)


def _precise(effect: dict) -> bool:
    return _bounded(effect) and effect["ci_high"] / effect["ci_low"] <= PRECISE_RATIO


def answer(result: dict) -> str:
    """The answer in one paragraph: which way age goes and how strongly, which industries stand out,
    how sure we are. It claims only what the 95% intervals support."""
    span = (
        f"{result['errors']:,} errors over {result['device_days']:,} device-days"
        f" from {result['first_day']} to {result['last_day']}"
    )
    model = result["model"]
    if "error" in model:
        return f"The data are too few to conclude anything: {span}, and {model['error']}."

    age = model["age_rate_ratio_per_year"]
    if _excludes_one(age):
        direction = "more" if age["ci_low"] > 1 else "less"
        age_text = (
            f"Older hardware fails {direction} often: each year of age multiplies the error rate by "
            f"{age['estimate']:.2f} ({_percent(age['estimate'])} a year; 95% confidence interval {_interval(age)})."
        )
    elif _precise(age):
        age_text = (
            "Age makes no detectable difference: each year of age multiplies the error rate by "
            f"{age['estimate']:.2f}, and the 95% interval ({_interval(age)}) rules out larger effects."
        )
    elif _bounded(age):
        age_text = (
            "The data are too few to tell whether age matters: each year of age could multiply the "
            f"error rate by anything from {_interval(age)} (95% interval)."
        )
    else:
        age_text = "The data are too few to tell whether age matters: the model cannot bound its effect."

    reference = model["reference_industry"]
    ratios = model["industry_rate_ratios"]
    standing_out = sorted(
        ((name, effect) for name, effect in ratios.items() if _excludes_one(effect)),
        key=lambda item: -item[1]["estimate"],
    )
    if not ratios:
        industry_text = f"All device-days belong to one industry ({reference}), so industries cannot be compared."
    elif standing_out:
        parts = [
            f"{name} has {effect['estimate']:.2f} times {reference}'s error rate (95% interval {_interval(effect)})"
            for name, effect in standing_out
        ]
        quiet = sorted(set(ratios) - {name for name, _ in standing_out})
        industry_text = (
            "Industries differ, at the same age: "
            + "; ".join(parts)
            + (f"; {', '.join(quiet)} cannot be told apart from {reference}." if quiet else ".")
        )
    elif all(_precise(effect) for effect in ratios.values()):
        industry_text = (
            f"No industry stands out: every industry's rate against {reference}'s has a narrow 95% interval"
            " that holds 1."
        )
    else:
        industry_text = "The data are too few to tell whether industries differ."

    conclusive = _excludes_one(age) or _precise(age) or standing_out or (
        ratios and all(_precise(effect) for effect in ratios.values())
    )
    if not conclusive:
        opening = (
            f"The data are too few to conclude: {span}, and every interval below is wide enough to hold"
            " no effect at all."
        )
    else:
        opening = f"From {span}, age for age and industry for industry (a Poisson model of errors per device-day):"
    rho = result["spearman_age_vs_errors"]["rho"]
    closing = (
        f" Spearman's rank correlation between age and errors per device-day is {rho:.3f}."
        if rho is not None else ""
    )
    return f"{opening} {age_text} {industry_text}{closing}"
