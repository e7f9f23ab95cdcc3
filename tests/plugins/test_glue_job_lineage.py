"""plugins/glue_job_lineage.py: a Glue run's S3 folders as OpenLineage names day D of them.

The Data Catalog and JDBC datasets need Glue: the end-to-end sample-day test reads them from a real
run's events (tests/e2e/test_sample_days.py).
"""

from __future__ import annotations

import pytest

from plugins.glue_job_lineage import job_run_datasets

ARGS = {
    "--log_date": "2025-10-01",
    "--processed_path": "s3://processed/hardware_error_analysis/run=abc/",
    "--audit_path": "s3a://processed/audit/run=abc",
    "--staging_table": "staging.hardware_error_analysis_20251001_abc",
}


def test_an_s3_folder_is_its_day_folder_named_by_bucket_and_key():
    datasets = job_run_datasets(None, ARGS, ("--processed_path", "--audit_path"))
    assert [(dataset.namespace, dataset.name) for dataset in datasets] == [
        ("s3://processed", "hardware_error_analysis/run=abc/log_date=2025-10-01"),
        ("s3://processed", "audit/run=abc/log_date=2025-10-01"),
    ]


def test_a_table_without_a_connection_or_a_database_to_find_it_in_is_refused():
    with pytest.raises(ValueError, match="--staging_table"):
        job_run_datasets(None, ARGS, ("--staging_table",))
