"""The answer to the pipeline's question (docs/contract.md, section 6), as a folder a person can open.

`build(connection, folder, first, last)` reads `device_day_activity` through a DB-API connection to
the warehouse and writes `summary.json`, `report.html` and the pictures into `folder`. The report
DAG (`hardware_correlation_report`) and `make report` both call it. Heavy imports (pandas,
statsmodels, matplotlib) happen inside, so importing this package costs nothing.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

FILES = ("summary.json", "report.html", "rate_heatmap.png", "rate_by_age.png")


def build(connection, folder: Path | str, first: date | None = None, last: date | None = None) -> dict:
    """Write the report of [first, last] (default: every loaded day) into `folder`; return its summary.

    Raises `analysis.NoData` when the range holds no device-days.
    """
    from include.report import analysis, render

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = analysis.summary(connection, first, last)
    # The model's rows (device-days per device, industry and age period) draw the rate-against-age picture.
    cells = summary.pop("_cells")
    render.heatmap(summary, folder / render.HEATMAP)
    binned = render.rate_by_age(summary["model"], cells, folder / render.RATE_BY_AGE)
    render.write_html(summary, folder, binned)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
