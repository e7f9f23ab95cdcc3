"""Fixtures of the end-to-end tests: the stack's environment as the make commands see it, and S3."""

from __future__ import annotations

import pytest

from dev import commands


@pytest.fixture(scope="module")
def env(stack) -> dict[str, str]:
    """`.local/stack.env` with the local timings, as `make run` and `make backfill` run with."""
    return commands.stack_env()


@pytest.fixture(scope="module")
def s3(aws):
    return aws("s3")
