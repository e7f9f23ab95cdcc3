"""File operations of the jobs: listing, header checks, the audit file, replacing a day's Parquet.

Locations are `s3://` (or `s3a://`) URIs, reached with boto3 (which honours AWS_ENDPOINT_URL, so the
local stack works unchanged), or local paths, which the benchmark and tests use.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_S3 = re.compile(r"^s3a?://([^/]+)/?(.*)$")
# Enough for any header line of the raw files.
_HEADER_BYTES = 65_536
# A UTF-8 byte order mark, as tools on Windows write before the first line; never part of a value.
BOM = "\ufeff"


class JobInputError(Exception):
    """The job's input is not what docs/contract.md, section 2, promises; the message says what and where."""


class SchemaDriftError(JobInputError):
    pass


def is_s3(location: str) -> bool:
    return _S3.match(location) is not None


def split_s3(location: str) -> tuple[str, str]:
    match = _S3.match(location)
    if match is None:
        raise ValueError(f"not an s3:// location: {location}")
    return match.group(1), match.group(2)


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *(part.strip("/") for part in parts)])


def day_folder(root: str, log_date: date) -> str:
    """Day D of an output partitioned by log_date: `<root>/log_date=D`."""
    return join(root, f"log_date={log_date.isoformat()}")


def write_day(rows: DataFrame, root: str, log_date: date, count: int) -> None:
    """Replace day D under `root` with `rows` (`count` of them), and nothing else of `root`."""
    if count == 0:
        # Dynamic overwrite replaces only the partitions it writes: with no rows it would leave an
        # earlier run's rows of this day in place.
        delete_folder(day_folder(root, log_date))
        return
    rows.write.mode("overwrite").partitionBy("log_date").parquet(root)


def _s3_client():
    import boto3

    return boto3.client("s3")


def list_files(location: str, suffix: str) -> list[str]:
    """The files under `location` (a folder) whose names end with `suffix`, sorted."""
    if is_s3(location):
        bucket, prefix = split_s3(location)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        paginator = _s3_client().get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        scheme = location.split("://", 1)[0]
        return sorted(f"{scheme}://{bucket}/{key}" for key in keys if key.endswith(suffix))
    folder = Path(location)
    if not folder.is_dir():
        return []
    return sorted(str(path) for path in folder.rglob(f"*{suffix}") if path.is_file())


def first_line(location: str) -> str:
    """The first line of a file as written (a UTF-8 byte order mark included), without its line break."""
    if is_s3(location):
        bucket, key = split_s3(location)
        body = _s3_client().get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_HEADER_BYTES - 1}")
        head = body["Body"].read()
    else:
        with open(location, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
    text = head.decode("utf-8", errors="replace")
    return text.splitlines()[0] if text else ""


def without_bom(text: Column) -> Column:
    """`text` without a leading byte order mark: the line reader may or may not keep one."""
    from pyspark.sql import functions as F

    return F.regexp_replace(text, f"^{BOM}", "")


def header_columns(line: str) -> list[str]:
    line = line.removeprefix(BOM)
    return [name.strip().strip('"').strip() for name in line.split(",")] if line else []


def check_headers(files: list[str], expected: tuple[str, ...]) -> set[str]:
    """Fail on the first file whose header is not `expected`; return the header lines as written.

    Column names compare without surrounding spaces, quotes or case, but in the order of docs/contract.md, section 2.
    """
    lines = set()
    for location in files:
        line = first_line(location)
        found = header_columns(line)
        if [name.lower() for name in found] != list(expected):
            raise SchemaDriftError(
                f"schema drift in {location}: expected columns {', '.join(expected)}; "
                f"found {', '.join(found) if found else 'no header'}"
            )
        lines.add(line)
    return lines


def write_json(location: str, record: dict) -> None:
    body = (json.dumps(record, sort_keys=False) + "\n").encode("utf-8")
    if is_s3(location):
        bucket, key = split_s3(location)
        _s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    else:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        Path(location).write_bytes(body)


def delete_file(location: str) -> None:
    if is_s3(location):
        bucket, key = split_s3(location)
        _s3_client().delete_object(Bucket=bucket, Key=key)
    else:
        Path(location).unlink(missing_ok=True)


def delete_folder(location: str) -> None:
    """Remove everything under `location` (a folder); nothing happens when there is nothing."""
    if is_s3(location):
        bucket, prefix = split_s3(location)
        prefix = prefix.rstrip("/") + "/"
        client = _s3_client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    else:
        shutil.rmtree(location, ignore_errors=True)


def exists_folder(location: str) -> bool:
    if is_s3(location):
        bucket, prefix = split_s3(location)
        listing = _s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/", MaxKeys=1)
        return bool(listing.get("Contents"))
    return Path(location).is_dir()
