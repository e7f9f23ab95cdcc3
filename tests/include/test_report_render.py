"""The report's pictures and page from a summary, without a warehouse."""

from __future__ import annotations

import re

from include.report import analysis, render
from tests.include.test_report_analysis import planted_rows


def _summary(rows):
    cells: dict = {}
    for (industry, bucket), group in rows.assign(
        bucket=[analysis.AGE_BUCKETS[min(sum(d >= edge for edge in (180, 365, 730, 1095)), 4)] for d in rows["days_since_sale"]]
    ).groupby(["industry", "bucket"]):
        device_days, errors = int(group["device_days"].sum()), int(group["errors"].sum())
        cells.setdefault(industry, {})[bucket] = {"device_days": device_days, "errors": errors, "rate": errors / device_days}
    by_industry = {
        name: {"device_days": int(g["device_days"].sum()), "errors": int(g["errors"].sum()), "rate": g["errors"].sum() / g["device_days"].sum()}
        for name, g in rows.groupby("industry")
    }
    summary = {
        "first_day": "2025-10-01", "last_day": "2025-10-02",
        "device_days": int(rows["device_days"].sum()), "errors": int(rows["errors"].sum()),
        "by_industry": by_industry, "by_age_bucket": {}, "by_industry_and_age_bucket": cells,
        "model": analysis.poisson_model(rows),
        "spearman_age_vs_errors": {"rho": 0.2, "p_value": 0.001},
    }
    summary["answer"] = analysis.answer(summary)
    return summary


def test_the_page_holds_the_answer_the_tables_and_both_pictures_inline(tmp_path):
    rows = planted_rows(seed=4, per_year=1.2)
    summary = _summary(rows)
    render.heatmap(summary, tmp_path / render.HEATMAP)
    binned = render.rate_by_age(summary["model"], rows, tmp_path / render.RATE_BY_AGE)
    page = render.write_html(summary, tmp_path, binned).read_text()

    for name in (render.HEATMAP, render.RATE_BY_AGE):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert page.count("data:image/png;base64,") == 2
    # Nothing outside the file: no linked pictures, scripts or style sheets.
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "is there a correlation between hardware errors" in page
    assert summary["answer"].replace("'", "&#39;") in page
    for industry in ("Retail", "Hospitality", "Live Events"):
        assert f"<td>{industry}</td>" in page
    # Every industry's binned rates are in the table behind the picture.
    assert set(binned["industry"]) == {"Retail", "Hospitality", "Live Events"}
    assert abs(binned["errors"].sum() - summary["errors"]) == 0
