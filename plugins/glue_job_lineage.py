"""The OpenLineage datasets of a Glue job run, from the run's own arguments.

The provider's GlueJobOperator reports no datasets: what a Glue script reads and writes is in its
arguments, which only the script understands. A task names the arguments that are its inputs and
outputs; each becomes a dataset by its value, with OpenLineage's naming
(https://openlineage.io/docs/spec/naming):

- an `s3://bucket/prefix/` folder is partitioned by day, as every folder the scripts read or write is:
  day D is `s3://bucket` / `prefix/log_date=D`;
- a Data Catalog table of the run's `--database` is read where the catalog says it is: day D's
  partition when the table has partition keys (none when the catalog has no partition of D, as the
  alerts of a day without alerts), its location otherwise. The dataset is that S3 folder, with the
  catalog table as a symlink, so that the S3 objects a producer wrote and the table are one dataset;
- a `schema.table` of the database behind the run's `--connection_name` (a JDBC Glue Connection) is
  `postgres://host:port` / `database.schema.table`, as the SQL operators name the warehouse's tables.

Nothing here reads a secret: the connection is read with its password hidden, and only its JDBC URL's
host, port and database are used.
"""

from __future__ import annotations

import re
from typing import Any

LOG_DATE_ARG = "--log_date"
_S3_URI = re.compile(r"s3a?://(?P<bucket>[^/]+)/?(?P<key>.*)")
# The warehouse is PostgreSQL (RDS): `jdbc:postgresql://host[:port]/database[?...]`.
_JDBC_URL = re.compile(r"jdbc:postgresql://(?P<authority>[^/?]+)/(?P<database>[^?;]+)")


def s3_dataset(uri: str, facets: dict | None = None):
    from airflow.providers.common.compat.openlineage.facet import Dataset

    match = _S3_URI.fullmatch(uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    # OpenLineage names an S3 folder by its key without the trailing slash (the root is "/").
    return Dataset(
        namespace=f"s3://{match['bucket']}", name=match["key"].strip("/") or "/", facets=facets or {}
    )


def day_folder(uri: str, log_date: str) -> str:
    """Day D of a folder partitioned by log_date, as the scripts write and read it."""
    return f"{uri.rstrip('/')}/log_date={log_date}"


def job_run_datasets(glue, script_args: dict[str, Any], names: tuple[str, ...]) -> list:
    """The datasets of `names` (keys of `script_args`) for the day in `--log_date`."""
    log_date = str(script_args[LOG_DATE_ARG])
    datasets = []
    for name in names:
        value = str(script_args[name])
        if value.startswith(("s3://", "s3a://")):
            datasets.append(s3_dataset(day_folder(value, log_date)))
        elif "--connection_name" in script_args:
            datasets.append(jdbc_table(glue, str(script_args["--connection_name"]), value))
        elif "--database" in script_args:
            dataset = catalog_table(glue, str(script_args["--database"]), value, log_date)
            if dataset is not None:
                datasets.append(dataset)
        else:
            raise ValueError(f"{name}={value!r}: not an s3:// folder, and no --connection_name or --database")
    return datasets


def catalog_table(glue, database: str, table: str, log_date: str):
    """The S3 folder the job reads for `database.table` on day D, with the table as a symlink; None
    when the table is partitioned and has no partition of D."""
    from airflow.providers.common.compat.openlineage.facet import Identifier, SymlinksDatasetFacet

    described = glue.get_table(DatabaseName=database, Name=table)["Table"]
    location = described["StorageDescriptor"]["Location"]
    if described.get("PartitionKeys"):
        try:
            partition = glue.get_partition(DatabaseName=database, TableName=table, PartitionValues=[log_date])
        except glue.exceptions.EntityNotFoundException:
            return None
        location = partition["Partition"]["StorageDescriptor"]["Location"]
    account = described.get("CatalogId")
    if not account:
        return s3_dataset(location)
    # The catalog's namespace is its ARN without the resource (OpenLineage's AWS Glue naming).
    symlink = Identifier(
        namespace=f"arn:{glue.meta.partition}:glue:{glue.meta.region_name}:{account}",
        name=f"table/{database}/{table}",
        type="TABLE",
    )
    return s3_dataset(location, {"symlinks": SymlinksDatasetFacet(identifiers=[symlink])})


def jdbc_table(glue, connection_name: str, table: str):
    from airflow.providers.common.compat.openlineage.facet import Dataset

    connection = glue.get_connection(Name=connection_name, HidePassword=True)["Connection"]
    url = connection.get("ConnectionProperties", {}).get("JDBC_CONNECTION_URL", "")
    match = _JDBC_URL.match(url)
    if not match:
        raise ValueError(f"Glue Connection {connection_name} has no PostgreSQL JDBC URL")
    authority = match["authority"]
    if ":" not in authority:
        # OpenLineage's namespace always names the port, as the SQL operators' events do.
        authority = f"{authority}:5432"
    return Dataset(namespace=f"postgres://{authority}", name=f"{match['database']}.{table}")
