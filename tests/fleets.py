"""Simulated fleets for the report's statistics: device-day tables with known effects, aggregated the
way `include/sql/report/model_cells.sql` aggregates `device_day_activity`.

A fleet's devices are spread evenly over industries, each sold at an age drawn evenly from zero to
five years before the first day and seen on every day. Each device has its own error-proneness, a
gamma factor with mean 1 and coefficient of variation `device_spread` (0: none): real fleets have
faulty units that err day after day. A device-day's errors are Poisson with mean
`errors_per_device_day x industry factor x per_year ^ (age in years) x device factor`, where an
industry of `per_year_by_industry` ages at its own rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.report import analysis

FIVE_INDUSTRIES = {"Education": 1.0, "Healthcare": 0.7, "Hospitality": 1.0, "Live Events": 1.5, "Retail": 1.0}


@dataclass(frozen=True)
class Fleet:
    industries: dict[str, float] = field(default_factory=lambda: dict(FIVE_INDUSTRIES))
    per_year: float = 1.0
    per_year_by_industry: dict[str, float] = field(default_factory=dict)
    device_spread: float = 0.0
    devices: int = 1000
    days: int = 6
    errors_per_device_day: float = 1.0

    def device_factors(self, rng: np.random.Generator) -> np.ndarray:
        if self.device_spread == 0:
            return np.ones(self.devices)
        shape = 1 / self.device_spread**2
        return rng.gamma(shape, 1 / shape, self.devices)

    def device_days(self, seed: int) -> pd.DataFrame:
        """One row per device and day: device_id, industry, days_since_sale, errors."""
        rng = np.random.default_rng(seed)
        names = list(self.industries)
        industry = np.arange(self.devices) % len(names)
        first_age = rng.integers(0, int(5 * analysis.DAYS_PER_YEAR), self.devices)
        factor = self.device_factors(rng) * np.array([self.industries[name] for name in names])[industry]
        device = np.repeat(np.arange(self.devices), self.days)
        age = first_age[device] + np.tile(np.arange(self.days), self.devices)
        per_year = np.array([self.per_year_by_industry.get(name, self.per_year) for name in names])[industry]
        mean = self.errors_per_device_day * factor[device] * per_year[device] ** (age / analysis.DAYS_PER_YEAR)
        return pd.DataFrame({
            "device_id": np.char.add("DEV-", device.astype(str)),
            "industry": np.array(names)[industry[device]],
            "days_since_sale": age,
            "errors": rng.poisson(mean),
        })

    def planted(self, reference: str) -> dict[str, float]:
        """The planted rate ratios against `reference`, and per year of age."""
        ratios = {name: factor / self.industries[reference] for name, factor in self.industries.items()}
        return {"age": self.per_year, **{name: ratio for name, ratio in ratios.items() if name != reference}}


def cells(device_days: pd.DataFrame) -> pd.DataFrame:
    """model_cells.sql on a device-day table: device-days, errors and summed age per device, industry
    and 30-day age period, with each row's mean age in years."""
    grouped = device_days.assign(
        age_period=device_days["days_since_sale"] // analysis.AGE_PERIOD_DAYS, device_days=1
    ).groupby(["device_id", "industry", "age_period"], as_index=False)
    table = grouped.agg(
        device_days=("device_days", "sum"), errors=("errors", "sum"), age_days_total=("days_since_sale", "sum")
    )
    return analysis.with_age_years(table)
