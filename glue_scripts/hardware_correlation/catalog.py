"""Where the raw tables live, as the Glue Data Catalog (filled by the crawler) records it."""

from __future__ import annotations

from botocore.exceptions import ClientError

from hardware_correlation.storage import JobInputError


def _glue_client():
    import boto3

    return boto3.client("glue")


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "EntityNotFoundException"


def table_location(database: str, table: str, glue=None) -> str:
    glue = glue or _glue_client()
    try:
        response = glue.get_table(DatabaseName=database, Name=table)
    except ClientError as error:
        if _not_found(error):
            raise JobInputError(
                f"table {database}.{table} is not in the Glue Data Catalog: has the crawler run over "
                "the raw zone?"
            ) from None
        raise
    location = response["Table"].get("StorageDescriptor", {}).get("Location")
    if not location:
        raise JobInputError(f"table {database}.{table} has no location in the Glue Data Catalog")
    return location


def partition_location(database: str, table: str, values: list[str], glue=None) -> str:
    glue = glue or _glue_client()
    try:
        response = glue.get_partition(DatabaseName=database, TableName=table, PartitionValues=values)
    except ClientError as error:
        if _not_found(error):
            raise JobInputError(
                f"partition {values} of {database}.{table} is not in the Glue Data Catalog: is the "
                "day's data in the raw zone, and has the crawler run since it arrived?"
            ) from None
        raise
    location = response["Partition"].get("StorageDescriptor", {}).get("Location")
    if not location:
        raise JobInputError(f"partition {values} of {database}.{table} has no location")
    return location
