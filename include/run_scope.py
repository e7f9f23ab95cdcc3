"""Names that belong to one DAG run, so that two runs of the same day never share them.

Two runs may process day D at once: the run at logical date D (scheduled, backfilled or triggered)
and a manual run triggered the day after with the Trigger form's default logical date, or two such
manual runs. Names made from the day alone (staging tables, the ETL's output folders, its audit.json)
would be written by both at once. Each run gets a key of its own, from its run id (unique per DAG),
which the DAG's templates use as `{{ run_id | run_key }}`.
"""

from __future__ import annotations

import hashlib

# 48 bits: two runs of one day colliding is out of the question, and a staging table's name
# (staging.hardware_error_analysis_YYYYMMDD_<key>) stays within PostgreSQL's 63 characters.
KEY_HEX_DIGITS = 12


def run_key(run_id: str) -> str:
    """A short, lower-case hex key of the DAG run: fit for S3 keys and PostgreSQL identifiers."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]
