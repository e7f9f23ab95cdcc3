"""The checks warehouse.py and catalog.py make on their own, without Spark or AWS."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from hardware_correlation import catalog, warehouse
from hardware_correlation.storage import JobInputError


@pytest.mark.parametrize("table", [
    "staging.hardware_error_analysis; DROP TABLE public.x",
    "hardware_error_analysis",
    'staging."t"',
    "staging.t\n",
    "Staging.T",
])
def test_copy_rows_refuses_a_table_name_it_would_write_into_sql_unquoted(table, tmp_path):
    # Refused before anything touches Spark or the database (both are absent here).
    with pytest.raises(ValueError, match="schema.table"):
        warehouse.copy_rows(None, None, "jdbc:postgresql://db/x", {}, table, str(tmp_path / "scratch"))


@pytest.mark.parametrize(("url", "logged"), [
    ("jdbc:postgresql://db:5432/warehouse", "jdbc:postgresql://db:5432/warehouse"),
    ("jdbc:postgresql://db:5432/warehouse?user=etl&password=s3cret&ssl=true",
     "jdbc:postgresql://db:5432/warehouse?user=etl&password=***&ssl=true"),
    ("jdbc:postgresql://db/warehouse?PASSWORD=s3cret", "jdbc:postgresql://db/warehouse?PASSWORD=***"),
    ("jdbc:postgresql://etl:s3cret@db:5432/warehouse", "jdbc:postgresql://etl:***@db:5432/warehouse"),
])
def test_jdbc_urls_are_logged_without_passwords(url, logged):
    assert warehouse.masked_url(url) == logged
    assert "s3cret" not in warehouse.masked_url(url)


def _glue():
    return boto3.client("glue", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_a_table_missing_from_the_catalog_is_an_input_error():
    glue = _glue()
    with Stubber(glue) as stub:
        stub.add_client_error("get_table", service_error_code="EntityNotFoundException")
        with pytest.raises(JobInputError, match="crawler"):
            catalog.table_location("db", "customers", glue)


def test_other_catalog_errors_pass_through_unchanged():
    glue = _glue()
    with Stubber(glue) as stub:
        stub.add_client_error("get_partition", service_error_code="AccessDeniedException")
        with pytest.raises(ClientError):
            catalog.partition_location("db", "hardware_logs", ["2025-10-01"], glue)

    class NotAClientError(Exception):
        # Looks like a not-found answer, but is not an answer from the service.
        response = {"Error": {"Code": "EntityNotFoundException"}}

    class Broken:
        def get_table(self, **_):
            raise NotAClientError("a bug")

    with pytest.raises(NotAClientError):
        catalog.table_location("db", "customers", Broken())
