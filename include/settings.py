"""The pipeline's settings: bucket names, Glue resources and connection ids.

Every value has a default that the local stack uses and an environment variable of the same name
that overrides it, so the same DAG runs locally and in a real AWS account. Reading the environment
is cheap and touches no network, so the DAG may call `load()` at parse time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    # S3: raw zone (docs/contract.md, section 2), processed zone (Parquet, quarantine, audit), Glue artifacts.
    RAW_BUCKET: str = "hardware-correlation-raw"
    PROCESSED_BUCKET: str = "hardware-correlation-processed"
    ARTIFACTS_BUCKET: str = "hardware-correlation-artifacts"

    # Glue Data Catalog and crawler over the raw zone.
    GLUE_DATABASE: str = "hardware_correlation_raw"
    CRAWLER_NAME: str = "hardware-correlation-raw"

    # Glue jobs. They, the crawler and their settings (workers, timeout, concurrency) are defined in
    # infrastructure/template.yaml; the DAG only runs them.
    ETL_JOB_NAME: str = "hardware-correlation-etl"
    LOAD_JOB_NAME: str = "hardware-correlation-load"
    # IAM roles Glue runs as, one per principal (infrastructure/template.yaml grants each its own).
    CRAWLER_ROLE_NAME: str = "hardware-correlation-crawler"
    ETL_ROLE_NAME: str = "hardware-correlation-etl"
    LOAD_ROLE_NAME: str = "hardware-correlation-load"
    # The template's GlueJobTimeoutMinutes: how long Airflow waits for a job run (plus a margin).
    GLUE_JOB_TIMEOUT_MINUTES: str = "30"
    # The template's GlueMaxConcurrentRuns: Airflow starts no more runs of a job at once, so Glue never
    # refuses one (ConcurrentRunsExceeded); also the number of days a backfill processes at once.
    GLUE_MAX_CONCURRENT_RUNS: str = "3"
    # Seconds between status checks of Glue job runs and crawls.
    GLUE_POLL_SECONDS: str = "30"
    # Glue Connection holding the warehouse's JDBC URL and the Secrets Manager id of its credentials.
    GLUE_WAREHOUSE_CONNECTION: str = "hardware-correlation-warehouse"

    # How long the sensors wait for a day's raw data, and how often they look.
    SENSOR_TIMEOUT_SECONDS: str = "21600"
    SENSOR_POKE_SECONDS: str = "300"
    # First retry delay; later retries back off exponentially.
    RETRY_DELAY_SECONDS: str = "60"

    # SNS topic told about failed and late days (the template's output FailureTopicArn); empty: no
    # messages, only the task logs.
    FAILURE_TOPIC_ARN: str = ""
    # A day D not loaded this many hours after it ended (06:00 UTC on D+1) sends a deadline alert;
    # empty: no deadline.
    LOAD_DEADLINE_HOURS: str = "6"
    # Staging tables of failed runs that started longer ago than this are dropped by housekeeping.
    STAGING_RETENTION_DAYS: str = "7"

    # Airflow connection ids.
    AWS_CONN_ID: str = "aws_default"
    WAREHOUSE_CONN_ID: str = "warehouse"

    def number(self, name: str) -> int:
        """A numeric setting as an int (environment variables are strings)."""
        return int(getattr(self, name))


def load(environ: dict[str, str] | None = None) -> Settings:
    """Settings with each field overridden by the environment variable of the same name."""
    environ = os.environ if environ is None else environ
    return Settings(**{f.name: environ[f.name] for f in fields(Settings) if f.name in environ})
