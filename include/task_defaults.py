"""The `default_args` every task of the project's DAGs starts from: retries with backoff, a timeout,
and failure and retry callbacks that say why in Glue's and the crawler's terms."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.settings import Settings
from include.task_failure import log_task_failure


def task_defaults(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(seconds=settings.number("RETRY_DELAY_SECONDS")),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=15),
        "on_failure_callback": log_task_failure,
        # A try that fails and is retried says why too: the provider's own error only gives the state.
        "on_retry_callback": log_task_failure,
        **overrides,
    }
