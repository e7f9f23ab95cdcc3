"""What a day of logs costs on AWS Glue, from the ETL's measured throughput (docs/aws.md's cost table).

Assumptions, stated in docs/aws.md next to the table:
- G.1X workers: 1 DPU, 4 vCPUs each; one worker runs the Spark driver, the others run executors with
  4 cores each, and every core processes log rows at the rate measured by `make bench` on this
  machine's cores (`etl_rows_per_core_s`).
- Billing per second with a 1-minute minimum per job run (Glue 2.0 and later); start-up time is not
  billed. Prices in us-east-1: 0.44 USD per DPU-hour standard, 0.29 USD per DPU-hour Flex.
- Only the ETL job's processing is costed; the load job is a second run with at least its 1-minute
  minimum (listed separately).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STANDARD_USD_PER_DPU_HOUR = 0.44
FLEX_USD_PER_DPU_HOUR = 0.29
CORES_PER_WORKER = 4
MINIMUM_SECONDS = 60
# Workers per daily volume: the fewest (2) until a day of rows would keep them busy for minutes.
WORKERS = {1_000_000: 2, 10_000_000: 2, 100_000_000: 4}


@dataclass(frozen=True)
class DayCost:
    rows: int
    workers: int
    seconds: float
    dpu_hours: float
    standard_usd: float
    flex_usd: float


def day_cost(rows: int, workers: int, rows_per_core_s: float) -> DayCost:
    if workers < 2:
        raise ValueError("a G.1X job has at least 2 workers (one of them the driver)")
    if rows_per_core_s <= 0:
        raise ValueError("the throughput must be positive")
    seconds = rows / (rows_per_core_s * (workers - 1) * CORES_PER_WORKER)
    billed = max(MINIMUM_SECONDS, math.ceil(seconds))
    dpu_hours = workers * billed / 3600
    return DayCost(
        rows, workers, seconds, dpu_hours,
        dpu_hours * STANDARD_USD_PER_DPU_HOUR, dpu_hours * FLEX_USD_PER_DPU_HOUR,
    )


def figures(rows_per_core_s: float):
    """`make bench` lines: for each daily volume, the ETL run's time, DPU-hours and dollars."""
    for rows, workers in WORKERS.items():
        cost = day_cost(rows, workers, rows_per_core_s)
        yield (
            f"glue_day_{rows // 1_000_000}M_rows",
            f"{workers} x G.1X, {cost.seconds:.0f} s, {cost.dpu_hours:.3f} DPU-h,"
            f" {cost.standard_usd:.3f} USD standard, {cost.flex_usd:.3f} USD flex",
        )
