"""The synthetic generator: deterministic, laid out as the raw zone, and its expected outcomes right.

The expected outcomes are checked against an independent, row-by-row reading of docs/contract.md,
section 3 (tests/contract_rules.py).
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from scipy import stats

from dev import datagen
from dev.datagen import write_dataset
from tests.contract_rules import OUTCOMES, day_counts, utc

ALERT_FIELDS = {"alert_id", "device_id", "error_code", "details", "alert_timestamp", "received_at"}

SMALL = dict(start=date(2025, 10, 1), days=3, devices=400, rows_per_day=4000, customers=30)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_same_bytes_and_another_seed_does_not(tmp_path):
    write_dataset(tmp_path / "a", seed=7, **SMALL)
    write_dataset(tmp_path / "b", seed=7, **SMALL)
    write_dataset(tmp_path / "c", seed=8, **SMALL)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_expected_outcomes_match_the_contract_read_row_by_row(tmp_path):
    # High rates of every irregularity, so each day holds many of each kind.
    dataset = write_dataset(
        tmp_path, seed=3, bad_row_rate=0.02, duplicate_rate=0.03, late_sale_rate=0.2,
        never_sold_rate=0.05, unknown_customer_rate=0.1, resale_rate=0.5, error_rate=0.3,
        late_arrival_rate=0.05, files_per_day=3, **SMALL,
    )
    for outcome in dataset.days:
        counts = day_counts(tmp_path, outcome.day)
        expected = {key: getattr(outcome, key) for key in ("input_rows", *OUTCOMES)}
        assert {key: counts[key] for key in expected} == expected
        assert sum(expected.values()) == 2 * expected["input_rows"]
        assert min(expected.values()) > 0
        assert all(n > 0 for n in outcome.malformed_by_kind.values()), outcome.malformed_by_kind


def test_expected_outcomes_of_planted_effects_match_the_contract_read_row_by_row(tmp_path):
    # A planted effect draws errors its own way (industry, age and device factors; a flat last day),
    # and with irregularities of every kind the outcomes must still be those of docs/contract.md.
    effect = datagen.ErrorEffect(
        base=0.05, per_year=1.2, industries={"Retail": 1.0, "Live Events": 2.0, "Hospitality": 1.4},
        device_spread=0.5,
    )
    dataset = write_dataset(
        tmp_path, seed=5, bad_row_rate=0.02, duplicate_rate=0.03, late_sale_rate=0.2, never_sold_rate=0.05,
        unknown_customer_rate=0.1, resale_rate=0.5, late_arrival_rate=0.05, effect=effect, effect_free_days=1,
        effect_free_probability=0.1, **SMALL,
    )
    for outcome in dataset.days:
        counts = day_counts(tmp_path, outcome.day)
        expected = {key: getattr(outcome, key) for key in ("input_rows", *OUTCOMES)}
        assert {key: counts[key] for key in expected} == expected, outcome.day
        assert min(expected.values()) > 0


def test_rates_come_out_roughly_as_asked(tmp_path):
    dataset = write_dataset(
        tmp_path, start=date(2025, 10, 1), days=1, devices=5000, rows_per_day=200_000,
        customers=500, seed=11, error_rate=0.1, bad_row_rate=0.002, duplicate_rate=0.002,
        resale_rate=0.1, offset_rate=0.3,
    )
    day = dataset.days[0]
    kept = day.input_rows - day.malformed - day.duplicates
    errors = kept - day.non_error
    assert day.input_rows == 200_000
    assert day.malformed == 400 and day.duplicates == 400
    assert 0.09 < errors / kept < 0.11
    assert 0.28 < day.offset_rows / day.input_rows < 0.32
    assert 0.08 < dataset.resales / (dataset.sales - dataset.resales) < 0.12
    assert 0 < day.no_sale < 0.1 * errors and 0 < day.unknown_customer < 0.05 * errors

    # Errors grow with the device's age, so the warehouse has a correlation to find.
    first_sale: dict[str, date] = {}
    for row in csv.DictReader(open(tmp_path / "sales/sales.csv")):
        sold = date.fromisoformat(row["sale_date"])
        first_sale[row["device_id"]] = min(sold, first_sale.get(row["device_id"], sold))
    by_age: dict[str, Counter] = {"young": Counter(), "old": Counter()}
    for path in (tmp_path / "hardware_logs/dt=2025-10-01").glob("*.csv"):
        for row in csv.DictReader(open(path)):
            sold = first_sale.get(row["device_id"] or "")
            if sold is None:
                continue
            age = (date(2025, 10, 1) - sold).days
            group = "young" if age < 365 else "old" if age >= 3 * 365 else None
            if group:
                by_age[group][(row["event_type"] or "").strip().upper() == "ERROR"] += 1
    young, old = (c[True] / (c[True] + c[False]) for c in (by_age["young"], by_age["old"]))
    assert old > 2 * young


def test_schema_follows_the_raw_zone_contract(tmp_path):
    dataset = write_dataset(tmp_path, seed=5, alerts_per_day=30, bad_alert_rate=0.2, **SMALL)
    with open(tmp_path / "customers/customers.csv", encoding="utf-8") as f:
        customers = list(csv.reader(f))
    assert customers[0] == ["customer_id", "customer_name", "industry"]
    assert len(customers) == 1 + SMALL["customers"]
    assert len({row[0] for row in customers[1:]}) == SMALL["customers"]
    assert {row[2] for row in customers[1:]} <= {name for name, _, _ in datagen.INDUSTRIES}

    with open(tmp_path / "sales/sales.csv", encoding="utf-8") as f:
        sales = list(csv.reader(f))
    assert sales[0] == ["sale_id", "customer_id", "device_id", "sale_date"]
    assert len(sales) - 1 == dataset.sales
    assert [row[0] for row in sales[1:]] == sorted(row[0] for row in sales[1:])
    for row in sales[1:]:
        date.fromisoformat(row[3])
    resold = Counter(row[2] for row in sales[1:])
    assert max(resold.values()) == 2

    folders = sorted(p.name for p in (tmp_path / "hardware_logs").iterdir())
    assert folders == ["dt=2025-10-01", "dt=2025-10-02", "dt=2025-10-03"]
    for outcome in dataset.days:
        assert outcome.alerts["input"] > 0
        malformed = 0
        for path in (tmp_path / f"alerts/dt={outcome.day}").glob("*.json"):
            for line in path.read_text(encoding="utf-8").splitlines():
                alert = json.loads(line)
                assert set(alert) <= ALERT_FIELDS
                instant = utc(alert["alert_timestamp"])
                if set(alert) != ALERT_FIELDS or instant is None or not alert["error_code"]:
                    malformed += 1
                else:
                    assert instant.date().isoformat() == outcome.day
        assert malformed == outcome.alerts["malformed"]


def test_refuses_bad_arguments_and_a_directory_in_use(tmp_path):
    with pytest.raises(ValueError, match="rows_per_day must be a whole number >= 1"):
        write_dataset(tmp_path / "x", date(2025, 10, 1), 1, 10, 0, 5, 1)
    with pytest.raises(ValueError, match="error_rate must be between 0 and 1"):
        write_dataset(tmp_path / "x", date(2025, 10, 1), 1, 10, 10, 5, 1, error_rate=1.5)

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="notes.txt, which is not raw-zone data"):
        write_dataset(tmp_path / "home", date(2025, 10, 1), 1, 10, 10, 5, 1)
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep me"

    write_dataset(tmp_path / "data", date(2025, 10, 1), 1, 10, 10, 5, 1)
    with pytest.raises(ValueError, match="already holds a dataset"):
        write_dataset(tmp_path / "data", date(2025, 10, 1), 1, 10, 10, 5, 1)
    write_dataset(tmp_path / "data", date(2025, 10, 2), 1, 10, 10, 5, 1, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "data/hardware_logs").iterdir()) == ["dt=2025-10-02"]


def test_command_line_prints_the_summary(tmp_path, capsys):
    status = datagen.main(
        ["--out", str(tmp_path / "cli"), "--days", "2", "--rows-per-day", "500", "--devices", "50",
         "--customers", "10", "--summary", str(tmp_path / "summary.json")]
    )
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "summary.json").read_text())
    assert [day["day"] for day in printed["days"]] == ["2025-10-01", "2025-10-02"]

    assert datagen.main(["--out", str(tmp_path / "cli"), "--days", "1"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err


def test_a_planted_effect_sets_each_events_error_probability(tmp_path):
    from tests.contract_rules import read_reference

    effect = datagen.ErrorEffect(base=0.05, per_year=1.3, industries={"Retail": 1.0, "Live Events": 2.0})
    dataset = write_dataset(
        tmp_path, start=date(2025, 10, 1), days=2, devices=2000, rows_per_day=100_000, customers=100,
        seed=5, effect=effect, effect_free_days=1, alerts_per_day=0,
    )
    assert dataset.effect == effect and dataset.effect_free_days == 1
    customer_ids, sales = read_reference(tmp_path)
    industries = {
        row.split(",")[0]: row.rsplit(",", 1)[1]
        for row in (tmp_path / "customers" / "customers.csv").read_text().splitlines()[1:]
    }
    assert set(industries.values()) == {"Retail", "Live Events"}

    def error_shares(day: str) -> dict[str, float]:
        counts: dict[str, list[int]] = {}
        lines = (tmp_path / "hardware_logs" / f"dt={day}" / "part-00000.csv").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split(",")
            if len(fields) != 6 or not fields[2] or not fields[1].startswith(day):
                continue
            owned = [sale for sale in sales.get(fields[2], []) if sale[0] <= date.fromisoformat(day)]
            if not owned:
                continue
            sale_date, _, customer = max(owned)
            if customer not in industries or (date.fromisoformat(day) - sale_date).days > 365:
                continue
            tally = counts.setdefault(industries[customer], [0, 0])
            tally[0] += fields[3].strip().upper() == "ERROR"
            tally[1] += 1
        return {name: errors / events for name, (errors, events) in counts.items()}

    # Devices under a year old: base x factor x at most 1.3.
    planted = error_shares("2025-10-01")
    assert 0.05 < planted["Retail"] < 0.065 and 0.10 < planted["Live Events"] < 0.13
    assert 1.8 < planted["Live Events"] / planted["Retail"] < 2.2
    # The effect-free day: every event an error with probability base.
    free = error_shares("2025-10-02")
    assert all(0.045 < share < 0.055 for share in free.values()), free


def test_a_planted_effect_must_keep_probabilities_below_one(tmp_path):
    effect = datagen.ErrorEffect(base=0.3, per_year=1.5, industries={"Retail": 1.0, "Live Events": 2.0})
    with pytest.raises(ValueError, match="at most 1"):
        write_dataset(tmp_path / "x", date(2025, 10, 1), 1, 10, 10, 5, 1, effect=effect)


def test_a_device_spread_of_0_changes_no_byte_and_another_only_the_planted_days_logs(tmp_path):
    industries = {"Retail": 1.0, "Live Events": 2.0}
    effects = {
        "unset": datagen.ErrorEffect(base=0.05, per_year=1.3, industries=industries),
        "zero": datagen.ErrorEffect(base=0.05, per_year=1.3, industries=industries, device_spread=0.0),
        "spread": datagen.ErrorEffect(base=0.05, per_year=1.3, industries=industries, device_spread=0.5),
    }
    for name, effect in effects.items():
        write_dataset(tmp_path / name, seed=7, effect=effect, effect_free_days=1, **SMALL)
    unset, zero, spread = (_digest(tmp_path / name) for name in effects)
    assert unset == zero
    # The factors come from a stream of their own, and the effect-free day (the last) has none.
    differing = {path.split("/")[1] for path in unset if unset[path] != spread[path]}
    assert differing == {"dt=2025-10-01", "dt=2025-10-02"}


SPREAD_RUN = dict(
    start=date(2025, 10, 1), days=1, devices=4000, rows_per_day=200_000, customers=100, seed=13, alerts_per_day=0,
    bad_row_rate=0, duplicate_rate=0, late_arrival_rate=0, resale_rate=0, late_sale_rate=0, never_sold_rate=0,
    unknown_customer_rate=0,
)


def _device_tallies(folder: Path) -> dict[str, list[tuple[int, int]]]:
    """(errors, events) of each device that logged on the run's one day, by its owner's industry."""

    def rows(name: str) -> csv.DictReader:
        return csv.DictReader((folder / name).read_text().splitlines())

    owner = {row["device_id"]: row["customer_id"] for row in rows("sales/sales.csv")}
    industry = {row["customer_id"]: row["industry"] for row in rows("customers/customers.csv")}
    tallies: dict[str, list[int]] = {}
    for row in rows("hardware_logs/dt=2025-10-01/part-00000.csv"):
        tally = tallies.setdefault(row["device_id"], [0, 0])
        tally[0] += row["event_type"].strip().upper() == "ERROR"
        tally[1] += 1
    by_industry: dict[str, list[tuple[int, int]]] = {}
    for device, (errors, events) in tallies.items():
        by_industry.setdefault(industry[owner[device]], []).append((errors, events))
    return by_industry


def test_a_device_spread_makes_devices_differ_and_keeps_the_planted_ratios(tmp_path):
    # Age plays no part (per_year 1) and every device has one known owner, so within an industry each
    # device's errors are binomial, about Poisson: variance over mean near 1, unless devices differ.
    industries = {"Retail": 1.0, "Live Events": 2.0}
    dispersion, rate = {}, {}
    for spread in (0.0, 1.0):
        effect = datagen.ErrorEffect(base=0.05, per_year=1.0, industries=industries, device_spread=spread)
        write_dataset(tmp_path / str(spread), effect=effect, **SPREAD_RUN)
        for industry, devices in _device_tallies(tmp_path / str(spread)).items():
            errors = [e for e, _ in devices]
            assert len(devices) > 1000, (industry, len(devices))
            dispersion[spread, industry] = statistics.pvariance(errors) / statistics.mean(errors)
            rate[spread, industry] = sum(errors) / sum(n for _, n in devices)

    # About 50 events a device: 2.5 errors on average in Retail and 5 in Live Events, so a spread
    # of 1 gives a variance over mean of about 1 + 2.5 and 1 + 5.
    for industry in industries:
        assert 0.9 < dispersion[0.0, industry] < 1.1, dispersion
        assert dispersion[1.0, industry] > 2.5, dispersion
    for spread in (0.0, 1.0):
        for industry, factor in industries.items():
            assert abs(rate[spread, industry] / (0.05 * factor) - 1) < 0.15, rate
        assert 1.7 < rate[spread, "Live Events"] / rate[spread, "Retail"] < 2.3, rate


def test_a_device_spread_must_keep_the_most_error_prone_devices_below_one(tmp_path):
    industries = {"Retail": 1.0, "Live Events": 2.2}
    # At the oldest age the generator sells, about 5 years: 0.04 x 2.2 x 1.25^5 = 0.27.
    assert datagen.ErrorEffect(0.04, 1.25, industries, device_spread=0.5).check() == []
    effect = datagen.ErrorEffect(0.04, 1.25, industries, device_spread=1.8)
    top = stats.gamma.ppf(0.99, 1 / 1.8**2, scale=1.8**2)
    with pytest.raises(ValueError, match="99th percentile of the device factor at device_spread 1.8") as refused:
        write_dataset(tmp_path / "x", date(2025, 10, 1), 1, 10, 10, 5, 1, effect=effect)
    assert f"is {top:.2f}" in str(refused.value) and "reach 0.268" in str(refused.value)

    negative = datagen.ErrorEffect(0.04, 1.25, industries, device_spread=-0.5)
    assert negative.check() == ["effect device_spread must be a number >= 0 (got -0.5)"]


def test_command_line_plants_a_device_spread(tmp_path, capsys):
    effect = ["--effect-base", "0.05", "--effect-industry", "Retail=1", "--effect-industry", "Live Events=2"]
    small = ["--days", "1", "--rows-per-day", "500", "--devices", "50", "--customers", "10"]
    status = datagen.main(["--out", str(tmp_path / "cli"), *small, *effect, "--effect-device-spread", "0.5"])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["effect"] == {
        "base": 0.05, "per_year": 1.0, "industries": {"Retail": 1.0, "Live Events": 2.0}, "device_spread": 0.5,
    }

    assert datagen.main(["--out", str(tmp_path / "strong"), *small, *effect, "--effect-device-spread", "6"]) == 2
    assert "99th percentile of the device factor at device_spread 6" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        datagen.main(["--out", str(tmp_path / "negative"), *small, *effect, "--effect-device-spread", "-1"])
    assert exited.value.code == 2
    assert "--effect-device-spread: must be >= 0 (got -1)" in capsys.readouterr().err
