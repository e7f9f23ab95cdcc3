"""The report's pictures and page from a summary, without a warehouse."""

from __future__ import annotations

import re

import pandas as pd

from include.report import analysis, render
from tests.fleets import Fleet, cells


def _summary(table):
    buckets = table.assign(
        bucket=[analysis.AGE_BUCKETS[sum(age >= edge for edge in (0.5, 1, 2, 3))] for age in table["age_years"]]
    )
    by_cell: dict = {}
    for (industry, bucket), group in buckets.groupby(["industry", "bucket"]):
        device_days, errors = int(group["device_days"].sum()), int(group["errors"].sum())
        by_cell.setdefault(industry, {})[bucket] = {"device_days": device_days, "errors": errors, "rate": errors / device_days}
    by_industry = {
        name: {"device_days": int(g["device_days"].sum()), "errors": int(g["errors"].sum()), "rate": g["errors"].sum() / g["device_days"].sum()}
        for name, g in table.groupby("industry")
    }
    summary = {
        "first_day": "2025-10-01", "last_day": "2025-10-02",
        "device_days": int(table["device_days"].sum()), "errors": int(table["errors"].sum()),
        "by_industry": by_industry, "by_age_bucket": {}, "by_industry_and_age_bucket": by_cell,
        "model": analysis.poisson_model(table), "concentration": analysis.concentration(table),
        "spearman_age_vs_errors": {"rho": 0.2, "p_value": 0.001},
    }
    summary["answer"] = analysis.answer(summary)
    return summary


def test_the_page_holds_the_answer_the_tables_and_both_pictures_inline(tmp_path):
    industries = {"Retail": 1.0, "Hospitality": 1.5, "Live Events": 2.0}
    table = cells(Fleet(industries=industries, per_year=1.2, device_spread=0.7, devices=600, days=5).device_days(4))
    # An industry with too few devices to compare: its row has no interval and no p-values.
    few = cells(Fleet(industries={"Education": 1.0}, devices=5, days=5).device_days(5))
    table = pd.concat([table, few.assign(device_id="E-" + few["device_id"])], ignore_index=True)
    summary = _summary(table)
    render.heatmap(summary, tmp_path / render.HEATMAP)
    binned = render.rate_by_age(summary["model"], table, tmp_path / render.RATE_BY_AGE)
    page = render.write_html(summary, tmp_path, binned).read_text()

    for name in (render.HEATMAP, render.RATE_BY_AGE):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert page.count("data:image/png;base64,") == 2
    # Nothing outside the file: no linked pictures, scripts or style sheets.
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "is there a correlation between hardware errors" in page
    assert summary["answer"].replace("'", "&#39;") in page
    # How the intervals were computed, and why, in one line.
    assert "cluster-robust by device" in page and "a faulty unit" in page
    for industry in [*industries, "Education"]:
        assert f"<td>{industry}</td>" in page
    assert summary["model"]["industry_rate_ratios"]["Education"]["ci_low"] is None
    assert "Education has too few devices (under 20) to be compared." in summary["answer"]
    # Every industry's binned rates are in the table behind the picture, and every error in a bin.
    assert set(binned["industry"]) == {*industries, "Education"}
    assert binned["errors"].sum() == summary["errors"]
    bins = binned["age_years"] * analysis.DAYS_PER_YEAR / render.AGE_BIN_DAYS
    assert (bins - bins.round()).abs().max() < 1e-9
