"""The report's pictures (PNG, with matplotlib) and `report.html`, which embeds them so that the one
file opens in a browser with nothing else."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from include.report.analysis import AGE_BUCKET_NAMES, AGE_BUCKETS, AGE_PERIOD_DAYS, DAYS_PER_YEAR

TEMPLATE = Path(__file__).resolve().parent / "report.html.j2"
HEATMAP = "rate_heatmap.png"
RATE_BY_AGE = "rate_by_age.png"
# The rate-against-age picture's age bins: the model's age periods, about a quarter.
AGE_BIN_DAYS = AGE_PERIOD_DAYS


def _pyplot():
    import matplotlib

    # No display on a worker: draw into files only.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(summary: dict, path: Path) -> None:
    """Errors per device-day by industry (rows) and age bucket (columns), the numbers written in."""
    plt = _pyplot()
    cells = summary["by_industry_and_age_bucket"]
    industries = list(cells)
    rates = np.array(
        [[(cells[name].get(bucket) or {}).get("rate", np.nan) for bucket in AGE_BUCKETS] for name in industries],
        dtype=float,
    )
    figure, axes = plt.subplots(figsize=(9, 0.55 * len(industries) + 2.2))
    image = axes.imshow(np.ma.masked_invalid(rates), cmap="viridis", aspect="auto")
    labels = [f"{name}\n{bucket}" for name, bucket in zip(AGE_BUCKET_NAMES, AGE_BUCKETS, strict=True)]
    axes.set_xticks(range(len(AGE_BUCKETS)), labels)
    axes.set_yticks(range(len(industries)), industries)
    axes.set_xlabel("age of the hardware on the day (days since sale)")
    axes.set_title("Errors per device-day by industry and age")
    finite = rates[np.isfinite(rates)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for row, column in np.ndindex(rates.shape):
        value = rates[row, column]
        axes.text(
            column, row, "no data" if np.isnan(value) else f"{value:.3g}", ha="center", va="center",
            color="black" if np.isnan(value) or value > middle else "white", fontsize=9,
        )
    figure.colorbar(image, ax=axes, label="errors per device-day")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def binned_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """Device-days, errors and rate per industry and age bin (`AGE_BIN_DAYS` wide), from the model's
    rows (model_cells.sql: one per device, industry and age period); `age_years` is where a bin starts."""
    binned = cells.assign(age_years=cells["age_period"] * AGE_BIN_DAYS / DAYS_PER_YEAR)
    table = binned.groupby(["industry", "age_years"], as_index=False)[["device_days", "errors"]].sum()
    table["rate"] = table["errors"] / table["device_days"]
    return table


def rate_by_age(model: dict, cells: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The error rate against age, one line per industry, with the model's fitted rate dashed.
    Returns the binned rates it draws."""
    plt = _pyplot()
    table = binned_rates(cells)
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for index, (industry, group) in enumerate(table.groupby("industry")):
        color = f"C{index % 10}"
        middle = group["age_years"] + AGE_BIN_DAYS / DAYS_PER_YEAR / 2
        axes.plot(middle, group["rate"], marker="o", markersize=3, linewidth=1, color=color, label=industry)
        fitted = _fitted_rate(model, industry, middle)
        if fitted is not None:
            axes.plot(middle, fitted, linestyle="--", linewidth=1, color=color)
    axes.set_xlabel(f"age of the hardware (years since sale, {AGE_BIN_DAYS}-day bins)")
    axes.set_ylabel("errors per device-day")
    axes.set_title("Error rate against hardware age, per industry (dashed: the model)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return table


def _fitted_rate(model: dict, industry: str, age_years: pd.Series):
    """The model's rate for an industry at each age; None when the model cannot draw it."""
    if "error" in model:
        return None
    if industry == model["reference_industry"]:
        industry_ratio = 1.0
    else:
        industry_ratio = model["industry_rate_ratios"].get(industry, {}).get("estimate")
    base, per_year = model["reference_rate_at_age_0"], model["age_rate_ratio_per_year"]["estimate"]
    if None in (industry_ratio, base, per_year):
        return None
    return base * industry_ratio * per_year**age_years


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _number(value, digits: int = 4) -> str:
    from jinja2 import Undefined

    # Absent (an industry with too few devices has no interval and no Holm p-value) reads as a dash.
    if value is None or isinstance(value, Undefined):
        return "–"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def write_html(summary: dict, folder: Path, binned: pd.DataFrame) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATE.parent)), autoescape=select_autoescape(["html", "j2"])
    )
    environment.filters["number"] = _number
    page = environment.get_template(TEMPLATE.name).render(
        summary=summary,
        buckets=list(zip(AGE_BUCKETS, AGE_BUCKET_NAMES, strict=True)),
        heatmap=_png(folder / HEATMAP),
        rate_by_age=_png(folder / RATE_BY_AGE),
        binned=binned.to_dict("records"),
        escape=html.escape,
    )
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
