"""Rows into PostgreSQL from a Spark job with COPY, through the JDBC driver already on the classpath.

Spark's JDBC writer sends INSERT batches; COPY is several times faster. The executors write the rows
as CSV files to a scratch folder, then the driver streams each file into `COPY ... FROM STDIN` with
the PostgreSQL driver's CopyManager, one connection per file, all from the JVM: no row passes
through Python. The credentials go from the caller to the driver's connection properties only.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

_PG_TYPES = {
    T.StringType: "text",
    T.IntegerType: "integer",
    T.LongType: "bigint",
    T.DoubleType: "double precision",
    T.DateType: "date",
    T.TimestampType: "timestamptz",
}
# Files streamed into the table at once; PostgreSQL runs one backend per connection.
_PARALLEL_COPIES = 4
# `schema.table` of plain lower-case identifiers: the name is written into DDL and COPY unquoted.
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")
# The password in a JDBC URL's query (password=...) or user information (//user:password@host).
_URL_SECRETS = re.compile(r"(?i)((?:[?&;]password=)[^&;]*)|(//[^/@:]*:)[^/@]*@")


def masked_url(url: str) -> str:
    """The JDBC URL as it may be logged: any password in it replaced by ***."""
    return _URL_SECRETS.sub(
        lambda match: match.group(1).split("=", 1)[0] + "=***" if match.group(1) else match.group(2) + "***@",
        url,
    )


def _connect(spark: SparkSession, url: str, properties: dict[str, str]):
    jvm = spark.sparkContext._jvm
    settings = jvm.java.util.Properties()
    for name in ("user", "password"):
        settings.setProperty(name, properties[name])
    # The driver itself, not DriverManager: a driver loaded from --jars or a Glue Connection is not
    # always visible to DriverManager from the py4j thread.
    connection = jvm.org.postgresql.Driver().connect(url, settings)
    if connection is None:
        raise ValueError("the JDBC URL is not a jdbc:postgresql: URL")
    return connection


def execute(spark: SparkSession, url: str, properties: dict[str, str], *statements: str) -> None:
    """Run statements in one transaction."""
    connection = _connect(spark, url, properties)
    try:
        connection.setAutoCommit(False)
        statement = connection.createStatement()
        for sql in statements:
            statement.execute(sql)
        connection.commit()
    finally:
        connection.close()


def table_columns(schema: T.StructType) -> str:
    return ", ".join(f'"{field.name}" {_PG_TYPES[type(field.dataType)]}' for field in schema.fields)


def copy_rows(
    spark: SparkSession,
    rows: DataFrame,
    url: str,
    properties: dict[str, str],
    table: str,
    scratch: str,
) -> int:
    """Replace `table` (schema.table) with `rows`; returns the number of rows copied.

    The table is UNLOGGED: it is a staging table, rebuilt by every load, so it needs no WAL.
    `scratch` is a folder for the CSV files (S3 or local), removed afterwards.
    """
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"table must be schema.table of lower-case letters, digits and _, not {table!r}")
    execute(
        spark, url, properties,
        f"DROP TABLE IF EXISTS {table}",
        f"CREATE UNLOGGED TABLE {table} ({table_columns(rows.schema)})",
    )
    (
        rows.write.mode("overwrite")
        .option("header", False)
        # RFC 4180 quoting, which COPY's CSV format reads; NULL is an empty unquoted field.
        .option("escape", '"')
        .option("ignoreLeadingWhiteSpace", False)
        .option("ignoreTrailingWhiteSpace", False)
        .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
        .option("dateFormat", "yyyy-MM-dd")
        .csv(scratch)
    )
    jvm = spark.sparkContext._jvm
    folder = jvm.org.apache.hadoop.fs.Path(scratch)
    filesystem = folder.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    files = [
        status.getPath()
        for status in filesystem.listStatus(folder)
        if status.getPath().getName().startswith("part-")
    ]
    columns = ", ".join(f'"{name}"' for name in rows.columns)
    sql = f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)"

    def copy_file(path) -> int:
        connection = _connect(spark, url, properties)
        stream = filesystem.open(path)
        try:
            copied = jvm.org.postgresql.copy.CopyManager(connection).copyIn(sql, stream, 1 << 20)
            return int(copied)
        finally:
            stream.close()
            connection.close()

    try:
        with ThreadPoolExecutor(max_workers=_PARALLEL_COPIES) as pool:
            return sum(pool.map(copy_file, files))
    finally:
        filesystem.delete(folder, True)
