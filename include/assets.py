"""Assets the DAGs share (Airflow's data-aware scheduling).

`DEVICE_DAY_ACTIVITY` is the warehouse table of device-days (docs/contract.md, section 4): the daily DAG's
swap task updates it whenever a day is swapped in, and the report DAG is scheduled on it.
"""

from __future__ import annotations

from airflow.sdk import Asset

DEVICE_DAY_ACTIVITY = Asset(name="device_day_activity", uri="warehouse://public/device_day_activity", group="warehouse")
