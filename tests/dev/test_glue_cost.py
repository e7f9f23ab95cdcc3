"""The Glue cost table of docs/aws.md: billing rules applied to a measured throughput."""

from __future__ import annotations

import pytest

from dev.bench import glue_cost


def test_a_small_day_pays_the_one_minute_minimum():
    cost = glue_cost.day_cost(1_000_000, 2, rows_per_core_s=100_000)
    assert cost.seconds == pytest.approx(2.5)
    assert cost.dpu_hours == pytest.approx(2 * 60 / 3600)
    assert cost.standard_usd == pytest.approx(cost.dpu_hours * 0.44)
    assert cost.flex_usd == pytest.approx(cost.dpu_hours * 0.29)


def test_a_large_day_pays_its_seconds_on_every_worker():
    cost = glue_cost.day_cost(100_000_000, 10, rows_per_core_s=10_000)
    # 9 executor workers of 4 cores: 36 cores at 10k rows/s.
    assert cost.seconds == pytest.approx(100_000_000 / 360_000)
    assert cost.dpu_hours == pytest.approx(10 * 278 / 3600)


def test_one_worker_is_refused():
    with pytest.raises(ValueError, match="at least 2 workers"):
        glue_cost.day_cost(1_000_000, 1, rows_per_core_s=10_000)


def test_bench_prints_a_line_per_volume():
    lines = dict(glue_cost.figures(50_000))
    assert list(lines) == ["glue_day_1M_rows", "glue_day_10M_rows", "glue_day_100M_rows"]
    assert all("USD standard" in value and "USD flex" in value for value in lines.values())
