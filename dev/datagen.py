"""Synthetic raw-zone data at any scale, deterministic by seed.

`write_dataset` writes a folder laid out like the raw zone (docs/contract.md, section 2): the customers
snapshot, every sale, one `hardware_logs/dt=D/` partition per day and the alerts of each day. The data
carries what production data carries: resales, devices sold only after they started logging, sales to
customers missing from the snapshot, timestamps with UTC offsets, rows that arrive a day late, duplicate
deliveries and malformed rows of every kind that docs/contract.md, section 3 names. Hardware errors grow more
likely with the device's age and vary by industry, so the warehouse has a correlation to find.

An `ErrorEffect` plants a known one instead: each event is an error with probability
`base x industry factor x per_year ^ (age in years) x device factor`, with the customers spread evenly
over the effect's industries, so a test can check that the report recovers it. Real fleets have faulty
units: the device factor is each device's own error-proneness, drawn once per device from a gamma
distribution with mean 1 and coefficient of variation `device_spread` (0, the default, makes every
factor 1). Its last `effect_free_days` days carry no effect at all (every event of every device an
error with probability `base`).

Because the generator knows what it wrote, it also returns the outcome that docs/contract.md, section 3 defines
for every day (malformed, duplicates, non_error, no_sale, unknown_customer, loaded): tests and
benchmarks compare the pipeline's audit with it.

The same arguments give the same bytes.

    python -m dev.datagen --out /tmp/raw --days 30 --rows-per-day 100000 --devices 20000
    python -m dev.datagen --out /tmp/raw --days 2 --effect-base 0.04 --effect-per-year 1.25 \
        --effect-industry "Live Events=2.2" --effect-industry "Hospitality=1.3" ... --effect-free-days 1 \
        --effect-device-spread 0.5
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field
from functools import partial
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

LOG_HEADER = "log_id,timestamp,device_id,event_type,cpu_temp_celsius,memory_usage_gb"
RAW_FOLDERS = ("customers", "sales", "hardware_logs", "alerts")

# Relative error-proneness by industry: gear that is trucked between venues fails more often.
INDUSTRIES = (
    ("Live Events", 0.22, 1.6),
    ("Sports & Arenas", 0.12, 1.4),
    ("Hospitality", 0.18, 1.1),
    ("Corporate Events", 0.16, 1.0),
    ("Retail", 0.10, 0.9),
    ("Education", 0.12, 0.8),
    ("Healthcare", 0.06, 0.7),
    ("Government", 0.04, 0.6),
)
NAME_PREFIXES = (
    "Northwind", "Blue Harbor", "Summit", "Redwood", "Silver Lake", "Granite", "Cedar Point",
    "Bright Path", "Ironbridge", "Meridian", "Oakline", "Harborview", "Starlight", "Pinecrest",
    "Lakeshore", "Crescent", "Evergreen", "Highland", "Riverside", "Golden Gate", "Westfield",
    "Aurora", "Beacon", "Copperfield", "Driftwood", "Falcon", "Horizon", "Juniper", "Keystone",
)
NAME_NOUNS = {
    "Live Events": ("Live", "Stageworks", "Productions", "Festivals", "Touring"),
    "Sports & Arenas": ("Arena", "Stadium", "Sports Club", "Athletics", "Fieldhouse"),
    "Hospitality": ("Hotels", "Resorts", "Inn", "Suites", "Hospitality"),
    "Corporate Events": ("Conferences", "Meetings", "Expo", "Summits", "Events"),
    "Retail": ("Stores", "Outlets", "Market", "Retail", "Trading"),
    "Education": ("Academy", "University", "College", "Schools", "Institute"),
    "Healthcare": ("Clinic", "Health", "Medical Center", "Care", "Hospital"),
    "Government": ("County", "City Services", "Transit Authority", "Agency", "Council"),
}
NAME_SUFFIXES = ("Group", "Ltd", "Inc", "Partners", "Co", "LLC", "Holdings", "")

# UTC offsets a device may report in, as (minutes east of UTC, ISO-8601 suffix). Index 0 is `Z`.
OFFSETS = (
    (0, "Z"), (-300, "-05:00"), (-240, "-04:00"), (-480, "-08:00"), (-420, "-07:00"),
    (60, "+01:00"), (120, "+02:00"), (330, "+05:30"), (540, "+09:00"), (0, "+00:00"),
)
# Event types as devices spell them. The first of each list is the canonical spelling; the others
# all mean the same under upper(trim(event_type)) (docs/contract.md, section 3).
ERROR_SPELLINGS = ("ERROR", "error", " ERROR", "Error ", " error ")
OTHER_SPELLINGS = ("INFO", "WARNING", "DEBUG", "info", " Warning")
OTHER_WEIGHTS = (0.70, 0.22, 0.08)

# Malformed-row kinds of docs/contract.md, section 3, step 1, in the order their codes are numbered (code 0
# is a well-formed row).
MALFORMED_KINDS = (
    "extra_field", "missing_field", "empty_log_id", "empty_device_id", "empty_event_type",
    "empty_timestamp", "bad_timestamp", "bad_cpu_temp", "bad_memory",
)
BAD_TIMESTAMPS = ("not-a-timestamp", "2025-13-01T10:00:00Z", "yesterday")
BAD_CPU_TEMPS = ("72.5", "hot")
BAD_MEMORY = ("4GB", "high")

ERROR_CODES = (
    ("E101_OVERHEAT", "CPU temperature above threshold"),
    ("E203_FAN_FAILURE", "Cooling fan stopped responding"),
    ("E305_DISK_IO", "Storage read errors on the system disk"),
    ("E410_POWER_LOSS", "Unexpected power loss, device rebooted"),
    ("E512_MEMORY_ECC", "Uncorrectable memory ECC error"),
)
ALERT_MALFORMED_KINDS = ("missing_device_id", "bad_alert_timestamp", "empty_error_code")

_EPOCH = date(1970, 1, 1)
_SECONDS_PER_DAY = 86_400
# Sales are looked up by device and day in one sorted int64 key: device * _DAY_SPAN + day number.
_DAY_SPAN = 1 << 20


@dataclass(frozen=True)
class ErrorEffect:
    """A planted effect: an event of a device whose owner at the event's UTC day is in `industries`
    is an error with probability `base x industries[industry] x per_year ** (age_days / 365.25) x
    device factor`; the age in years of docs/contract.md, days since the sale over 365.25. Events without an
    owner in the snapshot (they never reach the warehouse) are errors with probability
    `base x device factor`.

    The device factor belongs to the physical device, whoever owns it: one draw per device id from a
    gamma distribution with mean 1 and coefficient of variation `device_spread` (shape 1 / spread ** 2,
    scale spread ** 2), so that a device's errors vary more than a binomial count would, as in fleets
    with faulty units. A spread of 0 makes every factor exactly 1. Probabilities are clipped at 1, and
    `check` refuses effects for which that could happen to more than the 1% most error-prone devices,
    since clipping would distort the planted ratios. The effect-free days of `write_dataset` carry no
    device factor either: one flat probability for every event, so that they stay free of any effect."""

    base: float
    per_year: float
    industries: dict[str, float]
    device_spread: float = 0.0

    def probability(
        self, found: dict[str, np.ndarray], industry_names: list[str], device_factor: np.ndarray | None = None
    ) -> np.ndarray:
        factors = np.array([self.industries[name] for name in industry_names] + [1.0])
        years = np.clip(found["age_days"], 0, None) / 365.25
        planted = self.base * factors[found["industry"]] * self.per_year ** years
        probability = np.where(found["known"], planted, self.base)
        if device_factor is None:
            return probability
        return np.minimum(probability * device_factor[found["device"]], 1.0)

    def device_factors(self, rng: np.random.Generator, devices: int) -> np.ndarray:
        """Each device's error-proneness factor, indexed by device number (device id minus 1)."""
        variance = self.device_spread**2
        return rng.gamma(1 / variance, variance, devices)

    def device_factor_quantile(self, q: float) -> float:
        if self.device_spread == 0:
            return 1.0
        # scipy takes a while to import and only a spread needs it.
        from scipy import stats

        variance = self.device_spread**2
        return float(stats.gamma.ppf(q, 1 / variance, scale=variance))

    def check(self) -> list[str]:
        problems = []
        unknown = sorted(set(self.industries) - {name for name, _, _ in INDUSTRIES})
        if unknown:
            problems.append(f"effect industries must be among {[name for name, _, _ in INDUSTRIES]} (got {unknown})")
        if len(self.industries) < 2:
            problems.append("an effect needs at least two industries")
        if self.base <= 0 or self.per_year <= 0 or any(f <= 0 for f in self.industries.values()):
            problems.append("effect base, per_year and industry factors must be positive")
        spread_valid = bool(np.isfinite(self.device_spread)) and self.device_spread >= 0
        if not spread_valid:
            problems.append(f"effect device_spread must be a number >= 0 (got {self.device_spread!r})")
        # The probability at the oldest age the generator sells (four years before the window).
        oldest_years = 4 * 365 / 365.25 + 1
        highest = self.base * max(self.industries.values(), default=1.0) * max(self.per_year, 1.0) ** oldest_years
        if highest > 1.0:
            problems.append(f"effect probabilities reach {highest:.2f}; they must stay at most 1")
        elif spread_valid and self.device_spread > 0:
            top = self.device_factor_quantile(0.99)
            if highest * top > 1.0:
                problems.append(
                    f"effect probabilities reach {highest:.3f} and the 99th percentile of the device factor"
                    f" at device_spread {self.device_spread:g} is {top:.2f}, so the most error-prone devices"
                    f" reach {highest * top:.2f}; that must stay at most 1, or clipping would distort the"
                    " planted ratios"
                )
        return problems


@dataclass
class DayOutcome:
    """What docs/contract.md, section 3 makes of one day's partition, and of that day's alerts."""

    day: str
    files: list[str]
    input_rows: int
    malformed: int
    duplicates: int
    non_error: int
    no_sale: int
    unknown_customer: int
    loaded: int
    malformed_by_kind: dict[str, int]
    offset_rows: int
    late_arrivals: int
    alerts: dict[str, int] = field(default_factory=dict)


@dataclass
class Dataset:
    """What `write_dataset` wrote, with the expected outcome of every day."""

    out_dir: str
    seed: int
    customers: int
    sales: int
    resales: int
    devices: int
    days: list[DayOutcome]
    effect: ErrorEffect | None = None
    effect_free_days: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def write_dataset(
    out_dir: Path | str,
    start: date,
    days: int,
    devices: int,
    rows_per_day: int,
    customers: int,
    seed: int,
    error_rate: float = 0.10,
    bad_row_rate: float = 0.002,
    duplicate_rate: float = 0.002,
    resale_rate: float = 0.10,
    late_sale_rate: float = 0.02,
    never_sold_rate: float = 0.005,
    unknown_customer_rate: float = 0.01,
    offset_rate: float = 0.30,
    empty_numeric_rate: float = 0.01,
    event_type_noise_rate: float = 0.02,
    late_arrival_rate: float = 0.001,
    files_per_day: int = 1,
    alerts_per_day: float = 20.0,
    bad_alert_rate: float = 0.05,
    effect: ErrorEffect | None = None,
    effect_free_days: int = 0,
    effect_free_probability: float | None = None,
    overwrite: bool = False,
) -> Dataset:
    """Write a raw-zone folder into `out_dir` and return what the pipeline should make of it.

    `rows_per_day` counts every data line of a day's partition, duplicates and malformed rows
    included (the audit's input_rows). Rates are fractions: `error_rate` of log rows are errors
    (more for older devices and some industries, this on average); `bad_row_rate` of rows are
    malformed, spread evenly over the kinds of docs/contract.md, section 3; `duplicate_rate` of rows are
    repeated deliveries of another row; `resale_rate` of sold devices are sold again;
    `late_sale_rate` of devices are first sold during the generated days, so their earlier errors
    have no sale; `never_sold_rate` of devices are never sold; `unknown_customer_rate` of sales name
    a customer missing from the snapshot; `offset_rate` of timestamps carry a UTC offset other than
    Z; `late_arrival_rate` of rows belong to the previous UTC day. Sales come to about
    devices * (1 - never_sold_rate) * (1 + resale_rate). With `effect`, errors follow it instead of
    `error_rate` (see `ErrorEffect`), and the last `effect_free_days` days have no effect: every event,
    whatever its device, is an error with probability `effect_free_probability` (default: the effect's
    base).
    """
    out = Path(out_dir)
    _check_arguments(locals())
    _prepare_out_dir(out, overwrite)

    rng = np.random.default_rng([seed, 0])
    first_day = (start - _EPOCH).days
    window = (first_day, first_day + days)

    if effect is None:
        industries = [(name, share) for name, share, _ in INDUSTRIES]
    else:
        industries = [(name, 1.0) for name in effect.industries]
    customer_industry = _write_customers(out, rng, customers, industries)
    sales = _make_sales(
        rng, devices, customers, window, resale_rate, late_sale_rate, never_sold_rate,
        unknown_customer_rate,
    )
    _write_sales(out, sales, devices, customers)
    lookup = _SaleLookup(sales, customers, customer_industry)
    industry_names = [name for name, _ in industries]
    device_factor = None
    if effect is not None and effect.device_spread > 0:
        # A stream of its own leaves every other draw as it is, and nothing is drawn without a spread.
        device_factor = effect.device_factors(np.random.default_rng([seed, 3]), devices)

    outcomes = []
    for index in range(days):
        day_rng = np.random.default_rng([seed, 1, index])
        if effect is None:
            probability = partial(_error_probability, error_rate=error_rate)
        elif index < days - effect_free_days:
            probability = partial(effect.probability, industry_names=industry_names, device_factor=device_factor)
        else:
            flat = effect.base if effect_free_probability is None else effect_free_probability
            probability = partial(_flat_probability, probability=flat)
        outcome = _write_log_day(
            out, day_rng, first_day + index, rows_per_day, devices, lookup,
            error_probability=probability, bad_row_rate=bad_row_rate, duplicate_rate=duplicate_rate,
            offset_rate=offset_rate, empty_numeric_rate=empty_numeric_rate,
            event_type_noise_rate=event_type_noise_rate, late_arrival_rate=late_arrival_rate,
            files_per_day=files_per_day,
        )
        alert_rng = np.random.default_rng([seed, 2, index])
        outcome.alerts = _write_alert_day(
            out, alert_rng, first_day + index, alerts_per_day, bad_alert_rate, devices, lookup,
            offset_rate,
        )
        outcomes.append(outcome)

    return Dataset(
        out_dir=str(out),
        seed=seed,
        customers=customers,
        sales=len(sales["device"]),
        resales=int(sales["is_resale"].sum()),
        devices=devices,
        days=outcomes,
        effect=effect,
        effect_free_days=effect_free_days,
    )


def _check_arguments(args: dict) -> None:
    problems = []
    for name in ("days", "devices", "rows_per_day", "files_per_day"):
        if not isinstance(args[name], (int, np.integer)) or args[name] < 1:
            problems.append(f"{name} must be a whole number >= 1 (got {args[name]!r})")
    if not isinstance(args["customers"], (int, np.integer)) or args["customers"] < 2:
        problems.append(f"customers must be a whole number >= 2 (got {args['customers']!r})")
    if not isinstance(args["start"], date) or isinstance(args["start"], datetime):
        problems.append(f"start must be a datetime.date (got {args['start']!r})")
    for name in (
        "error_rate", "bad_row_rate", "duplicate_rate", "resale_rate", "late_sale_rate",
        "never_sold_rate", "unknown_customer_rate", "offset_rate", "empty_numeric_rate",
        "event_type_noise_rate", "late_arrival_rate", "bad_alert_rate",
    ):
        if not 0.0 <= args[name] <= 1.0:
            problems.append(f"{name} must be between 0 and 1 (got {args[name]!r})")
    if args["bad_row_rate"] + args["duplicate_rate"] > 0.5:
        problems.append("bad_row_rate + duplicate_rate must not exceed 0.5")
    if args["late_sale_rate"] + args["never_sold_rate"] > 1.0:
        problems.append("late_sale_rate + never_sold_rate must not exceed 1")
    if args["effect"] is not None:
        problems.extend(args["effect"].check())
    if not 0 <= args["effect_free_days"] <= args["days"] or (args["effect_free_days"] and args["effect"] is None):
        problems.append("effect_free_days must be between 0 and days, and needs an effect")
    if args["effect_free_probability"] is not None and not 0 < args["effect_free_probability"] <= 1:
        problems.append("effect_free_probability must be above 0 and at most 1")
    if args["alerts_per_day"] < 0:
        problems.append(f"alerts_per_day must be >= 0 (got {args['alerts_per_day']!r})")
    if problems:
        raise ValueError("invalid dataset arguments: " + "; ".join(problems))


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        foreign = [name for name in entries if name not in RAW_FOLDERS]
        if foreign:
            raise ValueError(
                f"{out} holds {', '.join(foreign)}, which is not raw-zone data: choose an empty or "
                "new directory"
            )
        if entries and not overwrite:
            raise ValueError(
                f"{out} already holds a dataset: pass overwrite=True (--overwrite) to replace it"
            )
        for name in entries:
            shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)


def _id_width(count: int, minimum: int) -> int:
    return max(minimum, len(str(count)))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    digits = np.strings.zfill(numbers.astype(np.int64).astype(np.dtypes.StringDType()), width)
    return np.strings.add(prefix, digits)


def _write_customers(
    out: Path, rng: np.random.Generator, customers: int, industries: list[tuple[str, float]]
) -> np.ndarray:
    """Customers with industries drawn by their shares; returns each customer's industry index."""
    shares = np.array([share for _, share in industries])
    industry = rng.choice(len(industries), size=customers, p=shares / shares.sum())
    prefix = rng.integers(0, len(NAME_PREFIXES), customers)
    noun = rng.integers(0, 5, customers)
    suffix = rng.integers(0, len(NAME_SUFFIXES), customers)
    names = [
        " ".join(
            part
            for part in (
                NAME_PREFIXES[p], NAME_NOUNS[industries[i][0]][n], NAME_SUFFIXES[s],
            )
            if part
        )
        for p, i, n, s in zip(prefix, industry, noun, suffix, strict=True)
    ]
    frame = pd.DataFrame(
        {
            "customer_id": _ids("CUST-", np.arange(1, customers + 1), _id_width(customers, 5)),
            "customer_name": names,
            "industry": [industries[i][0] for i in industry],
        }
    )
    (out / "customers").mkdir()
    frame.to_csv(out / "customers" / "customers.csv", index=False, lineterminator="\n")
    return industry


def _make_sales(
    rng: np.random.Generator,
    devices: int,
    customers: int,
    window: tuple[int, int],
    resale_rate: float,
    late_sale_rate: float,
    never_sold_rate: float,
    unknown_customer_rate: float,
) -> dict[str, np.ndarray]:
    """Every sale as arrays sorted by (device, day, sale number); days count from 1970-01-01."""
    first_day, end_day = window
    status = rng.random(devices)
    never_sold = status < never_sold_rate
    late = (status >= never_sold_rate) & (status < never_sold_rate + late_sale_rate)
    sold = np.flatnonzero(~never_sold)

    # Installed base spread over four years before the window; late devices sell inside it.
    sale_day = first_day - rng.integers(1, 4 * 365 + 1, devices)
    sale_day[late] = rng.integers(first_day, end_day, int(late.sum()))
    sale_day = sale_day[sold]

    resold = sold[rng.random(len(sold)) < resale_rate]
    first_of_resold = sale_day[np.searchsorted(sold, resold)]
    can_resell = first_of_resold < end_day - 1
    resold, first_of_resold = resold[can_resell], first_of_resold[can_resell]
    gap = (rng.random(len(resold)) * (end_day - first_of_resold)).astype(np.int64)
    # A few resales are booked on the day of the first sale, so the greatest sale_id decides.
    gap[rng.random(len(resold)) < 0.01] = 0
    resale_day = first_of_resold + gap

    device = np.concatenate([sold, resold])
    day = np.concatenate([sale_day, resale_day])
    is_resale = np.concatenate([np.zeros(len(sold), bool), np.ones(len(resold), bool)])
    # Big accounts buy most devices: squaring a uniform draw skews towards low customer numbers.
    customer = (customers * rng.random(len(device)) ** 2).astype(np.int64)
    previous_owner = customer[: len(sold)][np.searchsorted(sold, resold)]
    resale_customer = customer[len(sold):]
    resale_customer[resale_customer == previous_owner] += 1
    customer[len(sold):] = resale_customer % customers
    unknown = rng.random(len(device)) < unknown_customer_rate
    # Unknown customers are numbered past the snapshot, as if deleted from it after the sale.
    customer[unknown] = customers + rng.integers(0, max(1, customers // 100), int(unknown.sum()))

    # Sale numbers follow booking order: by day, then device, the resale after a same-day sale.
    booking = np.lexsort((is_resale, device, day))
    sale_number = np.empty(len(device), np.int64)
    sale_number[booking] = np.arange(1, len(device) + 1)

    order = np.lexsort((sale_number, day, device))
    return {
        "device": device[order],
        "day": day[order],
        "customer": customer[order],
        "sale_number": sale_number[order],
        "is_resale": is_resale[order],
    }


def _write_sales(out: Path, sales: dict[str, np.ndarray], devices: int, customers: int) -> None:
    by_number = np.argsort(sales["sale_number"])
    frame = pd.DataFrame(
        {
            "sale_id": _ids("SALE-", sales["sale_number"][by_number], _id_width(len(by_number), 7)),
            "customer_id": _ids(
                "CUST-", sales["customer"][by_number] + 1, _id_width(2 * customers, 5)
            ),
            "device_id": _ids("DEV-", sales["device"][by_number] + 1, _id_width(devices, 6)),
            "sale_date": (
                np.datetime64("1970-01-01") + sales["day"][by_number].astype("timedelta64[D]")
            ).astype(str),
        }
    )
    (out / "sales").mkdir()
    frame.to_csv(out / "sales" / "sales.csv", index=False, lineterminator="\n")


class _SaleLookup:
    """The sale in force for (device, UTC day) per docs/contract.md, section 3, steps 4 and 5."""

    def __init__(self, sales: dict[str, np.ndarray], customers: int, customer_industry: np.ndarray):
        self._keys = sales["device"] * _DAY_SPAN + sales["day"]
        self._device = sales["device"]
        self._day = sales["day"]
        self._customer = sales["customer"]
        self._customers = customers
        self._industry = customer_industry

    def find(self, device: np.ndarray, day: np.ndarray) -> dict[str, np.ndarray]:
        # Sales are sorted by (device, day, sale number): the last key <= (device, day) is the
        # latest sale on or before the day, and among same-day sales the greatest sale number.
        index = np.searchsorted(self._keys, device * _DAY_SPAN + day, side="right") - 1
        safe = np.maximum(index, 0)
        has_sale = (index >= 0) & (self._device[safe] == device)
        customer = self._customer[safe]
        known = has_sale & (customer < self._customers)
        industry = np.where(known, self._industry[np.minimum(customer, self._customers - 1)], -1)
        age_days = np.where(has_sale, day - self._day[safe], -1)
        return {"device": device, "has_sale": has_sale, "known": known, "industry": industry, "age_days": age_days}


def _flat_probability(found: dict[str, np.ndarray], probability: float) -> np.ndarray:
    return np.full(len(found["known"]), probability)


def _error_probability(found: dict[str, np.ndarray], error_rate: float) -> np.ndarray:
    industry_factor = np.array([factor for _, _, factor in INDUSTRIES] + [1.0])
    years = np.clip(found["age_days"], 0, None) / 365.0
    age_factor = np.where(found["has_sale"], 0.5 + np.minimum(years, 4.0) * 0.5, 1.0)
    factor = industry_factor[found["industry"]] * age_factor
    return np.clip(error_rate * factor / factor.mean(), 0.0, 1.0)


def _write_log_day(
    out: Path,
    rng: np.random.Generator,
    day: int,
    rows: int,
    devices: int,
    lookup: _SaleLookup,
    *,
    error_probability,
    bad_row_rate: float,
    duplicate_rate: float,
    offset_rate: float,
    empty_numeric_rate: float,
    event_type_noise_rate: float,
    late_arrival_rate: float,
    files_per_day: int,
) -> DayOutcome:
    n_dup = int(round(rows * duplicate_rate))
    n = rows - n_dup
    day_start = day * _SECONDS_PER_DAY

    # A log line's instant in UTC; late arrivals belong to the last hour of the previous UTC day.
    seconds = rng.integers(0, _SECONDS_PER_DAY, n)
    late = rng.random(n) < late_arrival_rate
    seconds[late] = -rng.integers(1, 3600 + 1, int(late.sum()))
    instant = np.sort(day_start + seconds)
    utc_day = instant // _SECONDS_PER_DAY
    device = rng.integers(0, devices, n)

    found = lookup.find(device, utc_day)
    is_error = rng.random(n) < error_probability(found)
    noisy = rng.random(n) < event_type_noise_rate
    canonical_other = rng.choice(len(OTHER_WEIGHTS), size=n, p=OTHER_WEIGHTS)
    spelling = np.where(
        is_error,
        np.where(noisy, rng.integers(1, len(ERROR_SPELLINGS), n), 0),
        len(ERROR_SPELLINGS)
        + np.where(noisy, rng.integers(3, len(OTHER_SPELLINGS), n), canonical_other),
    )

    offset = np.where(rng.random(n) < offset_rate, rng.integers(1, len(OFFSETS), n), 0)
    cpu = np.clip(
        np.where(is_error, rng.normal(79, 9, n), rng.normal(61, 8, n)).round(), 20, 110
    ).astype(np.int64)
    memory_tenths = np.clip(
        np.where(is_error, rng.normal(140, 60, n), rng.normal(90, 45, n)).round(), 5, 640
    ).astype(np.int64)
    cpu[rng.random(n) < empty_numeric_rate] = -1
    memory_tenths[rng.random(n) < empty_numeric_rate] = -1

    malformed = np.zeros(n, np.int64)
    n_bad = int(round(rows * bad_row_rate))
    bad_rows = rng.choice(n, size=min(n_bad, n), replace=False)
    # Kinds rotate with the day so that even small days cover all of them over a few days.
    malformed[bad_rows] = (np.arange(len(bad_rows)) + day) % len(MALFORMED_KINDS) + 1
    variant = rng.integers(0, 6, n)

    # Duplicates are re-deliveries of well-formed rows, sent again at once or up to ten minutes
    # later, so the original always has the earliest timestamp and is the one kept.
    well_formed = np.flatnonzero(malformed == 0)
    source = np.sort(rng.choice(well_formed, size=min(n_dup, len(well_formed)), replace=True))
    delay = np.where(rng.random(len(source)) < 0.5, 0, rng.integers(1, 601, len(source)))
    row = np.concatenate([np.arange(n), source])
    is_copy = np.concatenate([np.zeros(n, bool), np.ones(len(source), bool)])
    row_instant = np.concatenate([instant, instant[source] + delay])
    order = np.lexsort((is_copy, row_instant))
    row, is_copy, row_instant = row[order], is_copy[order], row_instant[order]

    frame = pd.DataFrame(
        {
            "log_number": row,
            "local_seconds": row_instant + np.array([m for m, _ in OFFSETS])[offset[row]] * 60,
            "offset_index": offset[row],
            "device": device[row] + 1,
            "spelling": spelling[row],
            "cpu": cpu[row],
            "memory_tenths": memory_tenths[row],
            "malformed": malformed[row],
            "variant": variant[row],
        }
    )
    day_label = str(np.datetime64("1970-01-01") + np.timedelta64(day, "D"))
    files = _copy_log_files(
        out / "hardware_logs" / f"dt={day_label}", frame, day_label, devices, files_per_day
    )

    kept = malformed == 0
    error = kept & is_error
    no_sale = error & ~found["has_sale"]
    unknown = error & found["has_sale"] & ~found["known"]
    return DayOutcome(
        day=day_label,
        files=[str(path.relative_to(out)) for path in files],
        input_rows=n + len(source),
        malformed=int((malformed > 0).sum()),
        duplicates=len(source),
        non_error=int((kept & ~is_error).sum()),
        no_sale=int(no_sale.sum()),
        unknown_customer=int(unknown.sum()),
        loaded=int((error & found["known"]).sum()),
        malformed_by_kind={
            kind: int((malformed == code).sum()) for code, kind in enumerate(MALFORMED_KINDS, 1)
        },
        offset_rows=int((offset[row] > 0).sum()),
        late_arrivals=int(late[row].sum()),
    )


def _sql_list(values) -> str:
    return "[" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + "]"


def _copy_log_files(
    folder: Path, frame: pd.DataFrame, day_label: str, devices: int, files: int
) -> list[Path]:
    """Render the rows as CSV lines in DuckDB, which formats millions of rows in seconds."""
    folder.mkdir(parents=True)
    log_width = _id_width(len(frame), 7)
    prefix = f"LOG-{day_label.replace('-', '')}-"
    kinds = {kind: code for code, kind in enumerate(MALFORMED_KINDS, 1)}
    # Each field is rendered as written, then blanked or spoilt for the malformed kind that
    # targets it; `variant` picks one of the spoilt spellings.
    fields = {
        "log_id": f"'{prefix}' || lpad(CAST(log_number AS VARCHAR), {log_width}, '0')",
        "timestamp": (
            "strftime(make_timestamp(local_seconds * 1000000), '%Y-%m-%dT%H:%M:%S')"
            f" || {_sql_list(s for _, s in OFFSETS)}[offset_index + 1]"
        ),
        "device_id": f"'DEV-' || lpad(CAST(device AS VARCHAR), {_id_width(devices, 6)}, '0')",
        "event_type": f"{_sql_list(ERROR_SPELLINGS + OTHER_SPELLINGS)}[spelling + 1]",
        "cpu_temp_celsius": "CASE WHEN cpu < 0 THEN '' ELSE CAST(cpu AS VARCHAR) END",
        "memory_usage_gb": (
            "CASE WHEN memory_tenths < 0 THEN '' ELSE CAST(memory_tenths // 10 AS VARCHAR)"
            " || '.' || CAST(memory_tenths % 10 AS VARCHAR) END"
        ),
    }
    spoilt = {
        "log_id": (kinds["empty_log_id"], "''"),
        "device_id": (kinds["empty_device_id"], "''"),
        "event_type": (kinds["empty_event_type"], "''"),
        "timestamp": (kinds["empty_timestamp"], "''"),
        "cpu_temp_celsius": (
            kinds["bad_cpu_temp"], f"{_sql_list(BAD_CPU_TEMPS)}[variant % {len(BAD_CPU_TEMPS)} + 1]"
        ),
        "memory_usage_gb": (
            kinds["bad_memory"], f"{_sql_list(BAD_MEMORY)}[variant % {len(BAD_MEMORY)} + 1]"
        ),
    }
    rendered = []
    for name, expression in fields.items():
        code, replacement = spoilt[name]
        if name == "timestamp":
            expression = (
                f"CASE WHEN malformed = {kinds['bad_timestamp']} THEN "
                f"{_sql_list(BAD_TIMESTAMPS)}[variant % {len(BAD_TIMESTAMPS)} + 1] "
                f"ELSE {expression} END"
            )
        rendered.append(f"CASE WHEN malformed = {code} THEN {replacement} ELSE {expression} END")
    first_five = " || ',' || ".join(rendered[:5])
    line = (
        f"{first_five} || CASE WHEN malformed = {kinds['missing_field']} THEN ''"
        f" ELSE ',' || {rendered[5]} END"
        f" || CASE WHEN malformed = {kinds['extra_field']} THEN ',extra' ELSE '' END"
    )

    frame = frame.reset_index(drop=True)
    frame["position"] = np.arange(len(frame), dtype=np.int64)
    bounds = np.linspace(0, len(frame), files + 1).astype(np.int64)
    paths = []
    connection = duckdb.connect()
    try:
        connection.execute("SET preserve_insertion_order = true")
        connection.execute("SET enable_progress_bar = false")
        connection.register("log_rows", frame)
        for part in range(files):
            path = folder / f"part-{part:05d}.csv"
            # The line is one column named after the header; a tab delimiter and no quote
            # character make DuckDB write both verbatim.
            connection.execute(
                f"COPY (SELECT {line} AS \"{LOG_HEADER}\" FROM log_rows"
                f" WHERE position >= {bounds[part]} AND position < {bounds[part + 1]}"
                f" ORDER BY position) TO '{str(path).replace(chr(39), chr(39) * 2)}'"
                " (FORMAT csv, HEADER true, DELIMITER '\t', QUOTE '', ESCAPE '')"
            )
            paths.append(path)
    finally:
        connection.close()
    return paths


def _iso(seconds: int, offset_index: int) -> str:
    minutes, suffix = OFFSETS[offset_index]
    local = datetime(1970, 1, 1) + timedelta(seconds=int(seconds) + minutes * 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + suffix


def _write_alert_day(
    out: Path,
    rng: np.random.Generator,
    day: int,
    alerts_per_day: float,
    bad_alert_rate: float,
    devices: int,
    lookup: _SaleLookup,
    offset_rate: float,
) -> dict[str, int]:
    """Alerts as the alerts API stores them; a day may have none."""
    count = int(rng.poisson(alerts_per_day)) if alerts_per_day > 0 else 0
    outcome = {"input": count, "malformed": 0, "no_sale": 0, "unknown_customer": 0, "loaded": 0}
    if count == 0:
        return outcome
    device = rng.integers(0, devices, count)
    instant = np.sort(day * _SECONDS_PER_DAY + rng.integers(0, _SECONDS_PER_DAY, count))
    offset = np.where(rng.random(count) < offset_rate, rng.integers(1, len(OFFSETS), count), 0)
    code = rng.integers(0, len(ERROR_CODES), count)
    bad = rng.random(count) < bad_alert_rate
    bad_kind = rng.integers(0, len(ALERT_MALFORMED_KINDS), count)
    delay_ms = rng.integers(50, 5000, count)
    ids = rng.integers(0, 2**63, (count, 2), dtype=np.int64)
    found = lookup.find(device, np.full(count, day))

    day_label = str(np.datetime64("1970-01-01") + np.timedelta64(day, "D"))
    folder = out / "alerts" / f"dt={day_label}"
    folder.mkdir(parents=True)
    records = []
    for i in range(count):
        alert_id = str(uuid.UUID(int=(int(ids[i, 0]) << 64) | int(ids[i, 1]), version=4))
        received = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
            seconds=int(instant[i]), milliseconds=int(delay_ms[i])
        )
        record = {
            "alert_id": alert_id,
            "device_id": f"DEV-{device[i] + 1:0{_id_width(devices, 6)}d}",
            "error_code": ERROR_CODES[code[i]][0],
            "details": ERROR_CODES[code[i]][1],
            "alert_timestamp": _iso(instant[i], offset[i]),
            "received_at": received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if bad[i]:
            kind = ALERT_MALFORMED_KINDS[bad_kind[i]]
            if kind == "missing_device_id":
                del record["device_id"]
            elif kind == "bad_alert_timestamp":
                record["alert_timestamp"] = "not-a-timestamp"
            else:
                record["error_code"] = ""
            outcome["malformed"] += 1
        elif not found["has_sale"][i]:
            outcome["no_sale"] += 1
        elif not found["known"][i]:
            outcome["unknown_customer"] += 1
        else:
            outcome["loaded"] += 1
        records.append(record)

    # The API writes one object per file; bulk producers write JSON lines. A day holds both.
    singles = records[:2]
    for record in singles:
        (folder / f"{record['alert_id']}.json").write_text(json.dumps(record) + "\n")
    if len(records) > len(singles):
        lines = "".join(json.dumps(record) + "\n" for record in records[len(singles):])
        (folder / "batch-00000.json").write_text(lines)
    return outcome


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text})")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.datagen",
        description="Write a synthetic raw-zone folder (customers, sales, hardware_logs, alerts) "
        "and print the outcome the pipeline should report for each day, as JSON.",
    )
    parser.add_argument("--out", required=True, type=Path, help="directory to write (new or empty)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 10, 1),
                        help="first day, YYYY-MM-DD (default 2025-10-01)")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--files-per-day", type=int, default=1)
    parser.add_argument("--alerts-per-day", type=float, default=20.0)
    for name, default in (
        ("error-rate", 0.10), ("bad-row-rate", 0.002), ("duplicate-rate", 0.002),
        ("resale-rate", 0.10), ("late-sale-rate", 0.02), ("never-sold-rate", 0.005),
        ("unknown-customer-rate", 0.01), ("offset-rate", 0.30), ("empty-numeric-rate", 0.01),
        ("event-type-noise-rate", 0.02), ("late-arrival-rate", 0.001), ("bad-alert-rate", 0.05),
    ):
        parser.add_argument(f"--{name}", type=float, default=default)
    parser.add_argument("--effect-base", type=float,
                        help="plant an effect: error probability at age 0 where the industry factor is 1")
    parser.add_argument("--effect-per-year", type=float, default=1.0, help="the effect's rate ratio per year of age")
    parser.add_argument("--effect-industry", action="append", default=[], metavar="NAME=FACTOR",
                        help="an industry of the effect and its factor (repeat for each)")
    parser.add_argument("--effect-free-days", type=int, default=0, help="last days without any effect")
    parser.add_argument("--effect-free-probability", type=float,
                        help="error probability of every event on those days (default: --effect-base)")
    parser.add_argument("--effect-device-spread", type=_non_negative, default=0.0,
                        help="coefficient of variation of each device's error-proneness factor, gamma with "
                        "mean 1 (default 0: every device alike); e.g. 0.5 moderate, 1.8 strong")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the raw-zone folders of an earlier run in --out")
    parser.add_argument("--summary", type=Path, help="also write the JSON summary to this file")
    args = vars(parser.parse_args(argv))
    summary_path = args.pop("summary")
    args["out_dir"] = args.pop("out")
    base, per_year, named = args.pop("effect_base"), args.pop("effect_per_year"), args.pop("effect_industry")
    device_spread = args.pop("effect_device_spread")
    if base is not None:
        try:
            industries = {name.strip(): float(factor) for name, factor in (item.rsplit("=", 1) for item in named)}
        except ValueError:
            parser.error("--effect-industry takes NAME=FACTOR, e.g. 'Live Events=2.2'")
        args["effect"] = ErrorEffect(base, per_year, industries, device_spread)
    try:
        dataset = write_dataset(**args)
    except ValueError as error:
        print(f"datagen: {error}", file=sys.stderr)
        return 2
    text = dataset.to_json()
    if summary_path:
        summary_path.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
