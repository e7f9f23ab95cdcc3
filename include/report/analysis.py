"""docs/contract.md, section 6: error rates by industry and hardware age, a Poisson model with intervals that
allow for devices, and a rank correlation.

Everything is computed from `device_day_activity`: the SQL in `include/sql/report/` aggregates in
PostgreSQL, and the model is fitted in Python on the aggregated rows (device-days and errors per
device, industry and 90-day age period), never on single device-days. `summary(connection, first,
last)` returns the summary that `summary.json` holds, with the model's rows under `"_cells"`.

Why the intervals are cluster-robust by device: errors cluster in devices (a faulty unit errs day after
day, and each device appears on many days), so device-days are not independent. A plain Poisson model
then gives intervals far too narrow and "finds" effects that are not there. The Poisson model's rate
ratios stay right whatever the devices' own spread; its sandwich covariance, summed by device, makes
the intervals right too, with t quantiles on devices - 1 degrees of freedom.
`tests/include/test_report_coverage.py` checks by simulation that the 95% intervals hold the planted
ratios in about 95% of fleets, with no, moderate and strong spread between devices.
"""

from __future__ import annotations

import io
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "report"
AGE_BUCKETS = ("[0, 180)", "[180, 365)", "[365, 730)", "[730, 1095)", "[1095, ∞)")
AGE_BUCKET_NAMES = ("under 6 months", "6 to 12 months", "1 to 2 years", "2 to 3 years", "3 years or more")
DAYS_PER_YEAR = 365.25
# model_cells.sql groups a device's days into periods of this many days of age.
AGE_PERIOD_DAYS = 90
CELL_COLUMNS = ("device_id", "industry", "age_period", "device_days", "errors", "age_days_total")
# An interval whose ends are more than this factor apart does not pin an effect down: the report
# then says the data are too few rather than "no effect".
PRECISE_RATIO = 1.5
# The industries' comparisons (Holm-adjusted) and the test of age by industry claim a difference only
# below this p-value, so that a fleet without one shows none in about 95% of reports.
SIGNIFICANCE = 0.05
# Intervals robust by device hold only with enough devices behind each comparison: simulated fleets
# with strong spread between devices keep 89 to 96% coverage from 20 devices an industry, 84 to 88%
# with 10. Fewer devices in all give no model; an industry with fewer is not compared.
MIN_DEVICES = 20
# The caveat on concentration: the share of errors from this fraction of the devices, those with most.
TOP_DEVICES = 0.01
METHOD = (
    "Poisson regression (log link, log device-days offset) with cluster-robust (sandwich) standard errors"
    " by device; 95% intervals and p-values from t on devices - 1 degrees of freedom"
)


class NoData(Exception):
    """The range holds no device-days: there is nothing to report on."""


def _query(connection, name: str, parameters: dict | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute((SQL_DIR / name).read_text(), parameters or {})
        return cursor.fetchall()


def _copy_csv(connection, name: str, parameters: dict) -> io.BytesIO:
    """A query's rows as CSV through COPY: a million rows arrive in seconds and in a few tens of MiB,
    where fetching them as Python tuples would take ten times the memory."""
    statement = f"COPY ({(SQL_DIR / name).read_text()}) TO STDOUT WITH (FORMAT csv)"
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        if hasattr(cursor, "copy_expert"):  # psycopg2
            cursor.copy_expert(cursor.mogrify(statement, parameters).decode(), buffer)
        else:  # psycopg 3
            with cursor.copy(statement, parameters) as copy:
                for block in copy:
                    buffer.write(block)
    buffer.seek(0)
    return buffer


def model_cells(connection, first: date, last: date) -> pd.DataFrame:
    """The model's rows over [first, last] (model_cells.sql), with each row's mean age in years."""
    buffer = _copy_csv(connection, "model_cells.sql", {"first_day": first, "last_day": last})
    cells = pd.read_csv(
        buffer, names=list(CELL_COLUMNS), header=None, na_filter=False,
        dtype={"device_id": str, "industry": str, "age_period": np.int64, "device_days": np.int64,
               "errors": np.int64, "age_days_total": np.int64},
    )
    return with_age_years(cells)


def with_age_years(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.assign(age_years=cells["age_days_total"] / cells["device_days"] / DAYS_PER_YEAR)


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


def _design(cells: pd.DataFrame, others: list[str], by_industry: bool = False) -> pd.DataFrame:
    """Intercept, one indicator per industry but the reference, age in years; with `by_industry`,
    also age times each indicator (age acting differently by industry)."""
    design = pd.DataFrame({"intercept": 1.0}, index=cells.index)
    for name in others:
        design[name] = (cells["industry"] == name).astype(float)
    design["age_years"] = cells["age_years"]
    if by_industry:
        for name in others:
            design[f"age_years:{name}"] = design[name] * cells["age_years"]
    return design


def _fit(cells: pd.DataFrame, design: pd.DataFrame, groups: np.ndarray):
    import statsmodels.api as sm

    # Newton's method rather than statsmodels' default least-squares iterations: the same estimates,
    # in a third of the memory and half the time on a year of a large fleet.
    fitted = sm.GLM(
        cells["errors"].to_numpy(float), design, family=sm.families.Poisson(),
        offset=np.log(cells["device_days"].to_numpy(float)),
    ).fit(method="newton", maxiter=100, cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    if not fitted.mle_retvals.get("converged", False):
        raise ValueError("the fit did not converge")
    if not np.all(np.isfinite(fitted.bse)):
        raise ValueError("the covariance cannot be estimated")
    return fitted


def _effect(fitted, weights: dict[str, float], df: int) -> dict:
    """The rate ratio exp(sum of weight x coefficient), with its 95% interval and p-value from the
    fit's (cluster-robust) covariance and t on `df` degrees of freedom."""
    from scipy import stats

    vector = np.array([weights.get(name, 0.0) for name in fitted.params.index])
    estimate = float(vector @ fitted.params.to_numpy())
    error = math.sqrt(max(float(vector @ fitted.cov_params().to_numpy() @ vector), 0.0))
    quantile = stats.t.ppf(0.975, df)
    p_value = float(2 * stats.t.sf(abs(estimate / error), df)) if error > 0 else None
    with np.errstate(over="ignore"):
        return {
            "estimate": _finite(np.exp(estimate)),
            "ci_low": _finite(np.exp(estimate - quantile * error)),
            "ci_high": _finite(np.exp(estimate + quantile * error)),
            "p_value": _finite(p_value) if p_value is not None else None,
        }


def _joint_p_value(fitted, columns: list[str]) -> float | None:
    """The p-value of the F test that every coefficient of `columns` is 0 (robust covariance)."""
    if not columns:
        return None
    restriction = np.zeros((len(columns), len(fitted.params)))
    for row, column in enumerate(columns):
        restriction[row, fitted.params.index.get_loc(column)] = 1.0
    try:
        test = fitted.wald_test(restriction, use_f=True, scalar=True)
    except (ValueError, np.linalg.LinAlgError):
        return None
    return _finite(test.pvalue)


def poisson_model(cells: pd.DataFrame) -> dict:
    """Errors per device-day ~ industry (against the industry with most device-days) + age in years,
    with intervals cluster-robust by device.

    `cells` has device_id, industry, age_years, device_days and errors (model_cells.sql). Returns the
    rate ratios with 95% intervals and p-values (for industries, also Holm-adjusted over their
    comparisons), the test of age acting differently by industry, or `{"error": why}` when the data
    cannot be fitted. An industry with fewer than `MIN_DEVICES` devices keeps its estimate but gets no
    interval, and so does every industry when the reference has fewer.
    """
    if cells["errors"].sum() == 0:
        return {"error": "no errors in the range"}
    groups, devices = pd.factorize(cells["device_id"], sort=True)
    if len(devices) < MIN_DEVICES:
        return {
            "error": f"{len(devices)} devices are too few to allow for each device's own error rate"
            f" (the model needs at least {MIN_DEVICES})",
            "devices": len(devices),
        }
    exposure = cells.groupby("industry")["device_days"].sum()
    reference = str(exposure.sort_values(ascending=False, kind="stable").index[0])
    others = sorted(name for name in exposure.index if name != reference)
    per_industry = cells.groupby("industry")["device_id"].nunique()
    comparable = per_industry[reference] >= MIN_DEVICES
    design = _design(cells, others)
    df = len(devices) - 1
    try:
        fitted = _fit(cells, design, groups)
    except Exception as error:  # a singular design (one age only, say) is data too thin to model
        return {"error": f"the model could not be fitted: {error}", "devices": len(devices)}

    ratios = {}
    for name in others:
        effect = _effect(fitted, {name: 1.0}, df)
        if not (comparable and per_industry[name] >= MIN_DEVICES):
            # The estimate stays; an interval from so few devices would claim more than they show.
            effect.update(ci_low=None, ci_high=None, p_value=None)
        ratios[name] = {**effect, "devices": int(per_industry[name])}
    return {
        "reference_industry": reference,
        "method": METHOD,
        "devices": len(devices),
        "reference_devices": int(per_industry[reference]),
        # The reference industry's fitted rate at age 0: with the ratios, the model's rate anywhere.
        "reference_rate_at_age_0": _finite(np.exp(fitted.params["intercept"])),
        "age_rate_ratio_per_year": _effect(fitted, {"age_years": 1.0}, df),
        "industry_rate_ratios": _with_holm(ratios),
        "age_by_industry": _age_by_industry(cells, per_industry, reference),
        "rows": int(len(cells)),
        "converged": True,
        # Pearson chi-square over residual degrees of freedom on the device x age-period rows: near 1
        # when errors are as regular as a Poisson count, far above when devices differ.
        "dispersion": _finite(fitted.pearson_chi2 / fitted.df_resid) if fitted.df_resid > 0 else None,
    }


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of `p_values`, in their order.

    The same values as statsmodels' `multipletests(method="holm")`, which also runs a full garbage
    collection on every call: a tenth of a second per report in a large process, and most of the
    coverage simulation's time.
    """
    values = np.asarray(p_values, dtype=float)
    order = np.argsort(values, kind="stable")
    stepped = np.maximum.accumulate(values[order] * np.arange(len(values), 0, -1))
    adjusted = np.empty_like(values)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def _with_holm(ratios: dict[str, dict]) -> dict[str, dict]:
    """Each industry's p-value adjusted by Holm's method over the industries' comparisons with the
    reference (`p_value_holm`): the report names an industry only below 0.05 there, so that a fleet
    whose industries do not differ shows none in about 95% of reports, however many industries."""
    named = [name for name, effect in ratios.items() if effect["p_value"] is not None]
    for name, p_value in zip(named, holm_adjusted([ratios[name]["p_value"] for name in named]), strict=True):
        ratios[name]["p_value_holm"] = p_value
    return ratios


def _age_by_industry(cells: pd.DataFrame, per_industry: pd.Series, reference: str) -> dict:
    """Does age act differently by industry? The model with age x industry, the same robust
    covariance, an F test of the interaction terms and each industry's own rate ratio per year, over
    the industries with at least `MIN_DEVICES` devices."""
    tested = sorted(name for name, count in per_industry.items() if count >= MIN_DEVICES)
    if reference not in tested or len(tested) < 2:
        return {"error": f"fewer than two industries with {MIN_DEVICES} devices or more"}
    others = [name for name in tested if name != reference]
    cells = cells[cells["industry"].isin(tested)]
    groups, devices = pd.factorize(cells["device_id"], sort=True)
    df = len(devices) - 1
    try:
        fitted = _fit(cells, _design(cells, others, by_industry=True), groups)
    except Exception as error:
        return {"error": f"the model could not be fitted: {error}"}
    p_value = _joint_p_value(fitted, [f"age_years:{name}" for name in others])
    ratios = {reference: _effect(fitted, {"age_years": 1.0}, df)}
    for name in others:
        ratios[name] = _effect(fitted, {"age_years": 1.0, f"age_years:{name}": 1.0}, df)
    return {
        "p_value": p_value,
        "detectable": p_value is not None and p_value < SIGNIFICANCE,
        "age_rate_ratio_per_year": dict(sorted(ratios.items())),
    }


def concentration(cells: pd.DataFrame) -> dict:
    """How concentrated errors are: the share of errors (and of device-days) of the `TOP_DEVICES`
    of devices with most errors (at least one device)."""
    per_device = cells.groupby("device_id")[["errors", "device_days"]].sum()
    top = max(1, round(TOP_DEVICES * len(per_device)))
    worst = per_device.sort_values("errors", ascending=False, kind="stable").head(top)
    errors = int(per_device["errors"].sum())
    return {
        "devices": int(len(per_device)),
        "top_devices": int(top),
        "share_of_errors": float(worst["errors"].sum() / errors) if errors else None,
        "share_of_device_days": float(worst["device_days"].sum() / per_device["device_days"].sum()),
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
    """docs/contract.md, section 6 over [first, last] (default: every loaded day)."""
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

    model_rows = model_cells(connection, first, last)
    result["model"] = poisson_model(model_rows)
    result["concentration"] = concentration(model_rows)
    frequencies = pd.DataFrame(
        _query(connection, "age_and_errors.sql", parameters), columns=["days_since_sale", "errors", "device_days"]
    ).astype(int)
    result["spearman_age_vs_errors"] = spearman(frequencies)
    days, last_swap = _query(connection, "loaded_days.sql", parameters)[0]
    result["warehouse_state"] = {"days": int(days), "last_swapped_at": last_swap.isoformat() if last_swap else None}
    result["answer"] = answer(result)
    result["_cells"] = model_rows
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


def _age_sentence(age: dict) -> str:
    if _excludes_one(age):
        direction = "more" if age["ci_low"] > 1 else "less"
        return (
            f"Older hardware fails {direction} often: each year of age multiplies the error rate by "
            f"{age['estimate']:.2f} ({_percent(age['estimate'])} a year; 95% confidence interval {_interval(age)})."
        )
    if _precise(age):
        return (
            "Age makes no detectable difference: each year of age multiplies the error rate by "
            f"{age['estimate']:.2f}, and the 95% interval ({_interval(age)}) rules out larger effects."
        )
    if _bounded(age):
        return (
            "The data are too few to tell whether age matters: each year of age could multiply the "
            f"error rate by anything from {_interval(age)} (95% interval)."
        )
    return "The data are too few to tell whether age matters: the model cannot bound its effect."


def _stands_out(effect: dict) -> bool:
    p_value = effect.get("p_value_holm")
    return p_value is not None and p_value < SIGNIFICANCE and _excludes_one(effect)


def _industry_sentence(model: dict) -> tuple[str, bool]:
    """The industries' sentence, and whether it concludes something (a difference, or a precise none).
    An industry is named only when it differs from the reference with the comparisons taken together
    (Holm); its own 95% interval then excludes 1."""
    reference = model["reference_industry"]
    ratios = model["industry_rate_ratios"]
    if not ratios:
        return f"All device-days belong to one industry ({reference}), so industries cannot be compared.", False
    standing_out = sorted(
        ((name, effect) for name, effect in ratios.items() if _stands_out(effect)),
        key=lambda item: -item[1]["estimate"],
    )
    few = sorted(name for name, effect in ratios.items() if effect.get("devices", MIN_DEVICES) < MIN_DEVICES)
    few_text = (
        f" {', '.join(few)} {'has' if len(few) == 1 else 'have'} too few devices (under {MIN_DEVICES}) to be compared."
        if few else ""
    )
    if standing_out:
        parts = [
            f"{name} has {effect['estimate']:.2f} times {reference}'s error rate (95% interval {_interval(effect)})"
            for name, effect in standing_out
        ]
        quiet = sorted(set(ratios) - {name for name, _ in standing_out} - set(few))
        text = (
            "Industries differ, at the same age: "
            + "; ".join(parts)
            + (f"; {', '.join(quiet)} cannot be told apart from {reference}." if quiet else ".")
        )
        return text + few_text, True
    if all(_precise(effect) for effect in ratios.values()):
        return (
            "Industry makes no detectable difference: every industry's rate against "
            f"{reference}'s has a narrow 95% interval that holds 1.",
            True,
        )
    return "The data are too few to tell whether industries differ." + few_text, False


def _age_by_industry_sentence(model: dict) -> str:
    """Said only when age acts detectably differently by industry."""
    test = model.get("age_by_industry") or {}
    if not test.get("detectable"):
        return ""
    ratios = sorted(test["age_rate_ratio_per_year"].items(), key=lambda item: -(item[1]["estimate"] or 0))
    parts = [f"{effect['estimate']:.2f} in {name} ({_interval(effect)})" for name, effect in ratios if _bounded(effect)]
    return (
        f" Age acts differently by industry (p = {test['p_value']:.2g}): each year of age multiplies the error rate"
        f" by {', '.join(parts)} (95% intervals)."
    )


def _concentration_sentence(found: dict | None) -> str:
    if not found or found.get("share_of_errors") is None:
        return ""
    share, days = found["share_of_errors"], found["share_of_device_days"]
    who = (
        f"the {TOP_DEVICES:.0%} of devices with the most errors ({found['top_devices']:,} of {found['devices']:,})"
        if found["top_devices"] > 1
        else f"the device with the most errors (1 of {found['devices']:,})"
    )
    text = f"{who} produced {share:.0%} of all errors on {days:.1%} of the device-days"
    # A few faulty units carrying many times their share of the exposure is what real fleets show.
    if share >= 3 * days:
        return f" Errors concentrate in a few devices: {text}; the intervals above allow for that."
    return f" {text[0].upper()}{text[1:]}."


def answer(result: dict) -> str:
    """The answer in one paragraph: which way age goes and how strongly, which industries stand out,
    whether age acts differently by industry, how concentrated errors are and how sure we are. It
    claims only what the 95% intervals support, with the industries' comparisons taken together."""
    span = (
        f"{result['errors']:,} errors over {result['device_days']:,} device-days"
        f" from {result['first_day']} to {result['last_day']}"
    )
    model = result["model"]
    if "error" in model:
        return f"The data are too few to conclude anything: {span}, and {model['error']}."

    age = model["age_rate_ratio_per_year"]
    age_text = _age_sentence(age)
    industry_text, industry_concludes = _industry_sentence(model)
    if not (_excludes_one(age) or _precise(age) or industry_concludes):
        opening = (
            f"The data are too few to conclude: {span}, and every interval below is wide enough to hold"
            " no effect at all."
        )
    else:
        opening = (
            f"From {span} on {model['devices']:,} devices, age for age and industry for industry (a Poisson model"
            " of errors per device-day, with intervals that allow for each device's own error rate):"
        )
    rho = result["spearman_age_vs_errors"]["rho"]
    closing = (
        f" Spearman's rank correlation between age and errors per device-day is {rho:.3f}."
        if rho is not None else ""
    )
    return (
        f"{opening} {age_text} {industry_text}{_age_by_industry_sentence(model)}"
        f"{_concentration_sentence(result.get('concentration'))}{closing}"
    )
