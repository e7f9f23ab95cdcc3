"""Upload a folder laid out like the raw zone (docs/contract.md, section 2) into the raw bucket.

`make seed DATA=DIR` and the tests use `upload_raw_zone`. The folder may hold:

    customers/customers.csv
    sales/sales.csv
    hardware_logs/dt=YYYY-MM-DD/*.csv
    alerts/dt=YYYY-MM-DD/*.json
    hardware_logs.csv            a day-less log file, split into dt= partitions (below)

Files are uploaded byte for byte under the same relative key; an object already at that key is
replaced, other objects in the bucket are left alone. Markdown files at the top (a README) and hidden
files are not data and are skipped. Anything else is refused before a single object is written, so a
typo in a folder name cannot leave half a dataset in the bucket.

A top-level `hardware_logs.csv` is split by the UTC day of each row's `timestamp` into
`hardware_logs/dt=YYYY-MM-DD/hardware_logs.csv`, the header repeated in each. Its header must be the
one of docs/contract.md. A row whose timestamp cannot be dated (empty, unparseable, missing its UTC offset, or a
row too short to have one) is still raw data that the pipeline must count and quarantine as malformed,
so it is neither dropped nor refused: it goes to the partition of the row before it in the file (the
first dateable row's, for rows at the very top), which is where a producer writing its log in time
order would have put it. Each such row is reported in a warning. Blank lines are not rows and are
left out.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date, datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

LOG_COLUMNS = ("log_id", "timestamp", "device_id", "event_type", "cpu_temp_celsius", "memory_usage_gb")
SPLIT_FILE = "hardware_logs.csv"
LAYOUT = (
    "customers/customers.csv, sales/sales.csv, hardware_logs/dt=YYYY-MM-DD/*.csv, "
    "alerts/dt=YYYY-MM-DD/*.json, and optionally a top-level hardware_logs.csv"
)
CONTENT_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json"}
_PARTITIONED = {"hardware_logs": ".csv", "alerts": ".json"}
_SNAPSHOTS = {"customers": "customers.csv", "sales": "sales.csv"}
_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


class RawZoneError(ValueError):
    """The folder cannot be uploaded as a raw zone; the message says why and where."""


def upload_raw_zone(data_dir: Path, bucket: str, s3_client) -> list[str]:
    """Upload `data_dir` into `bucket` and return the keys written, in upload order."""
    plan = plan_upload(Path(data_dir))
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    written = []
    for key, source in plan:
        extra = {"ContentType": CONTENT_TYPES[Path(key).suffix]}
        try:
            if isinstance(source, Path):
                # upload_file switches to multipart for big files (generated days run to 100s of MB).
                s3_client.upload_file(str(source), bucket, key, ExtraArgs=extra)
            else:
                s3_client.upload_fileobj(io.BytesIO(source), bucket, key, ExtraArgs=extra)
        except (Boto3Error, BotoCoreError, ClientError) as error:
            done = f" ({len(written)} objects were written before it)" if written else ""
            raise RawZoneError(f"uploading {key} to s3://{bucket} failed: {error}{done}") from error
        written.append(key)
    return written


def plan_upload(data_dir: Path) -> list[tuple[str, Path | bytes]]:
    """Check the folder's layout and return (key, file or content) pairs in upload order.

    Reference data goes first and alerts last, so a sensor that sees a day's logs also finds the
    customers and sales they refer to.
    """
    if not data_dir.exists():
        raise RawZoneError(f"{data_dir} does not exist")
    if not data_dir.is_dir():
        raise RawZoneError(f"{data_dir} is not a directory")

    plan: dict[str, Path | bytes] = {}
    unexpected: list[str] = []
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir)
        if any(part.startswith(".") for part in relative.parts) or path.is_dir():
            continue
        if len(relative.parts) == 1 and path.suffix.lower() == ".md":
            continue
        if relative.as_posix() == SPLIT_FILE:
            continue
        if _is_raw_zone_key(relative.parts):
            plan[relative.as_posix()] = path
        else:
            unexpected.append(relative.as_posix())
    if unexpected:
        shown = ", ".join(unexpected[:10]) + (f" and {len(unexpected) - 10} more" if len(unexpected) > 10 else "")
        raise RawZoneError(
            f"{data_dir} is not laid out like the raw zone: unexpected {shown}. Expected {LAYOUT}."
        )

    split_source = data_dir / SPLIT_FILE
    if split_source.is_file():
        for day, content in split_hardware_logs(split_source).items():
            key = f"hardware_logs/dt={day}/{SPLIT_FILE}"
            if key in plan:
                raise RawZoneError(
                    f"{split_source} and {data_dir / key} would both be uploaded as {key}: "
                    "keep one of them"
                )
            plan[key] = content

    if not plan:
        raise RawZoneError(f"{data_dir} holds no raw-zone files. Expected {LAYOUT}.")
    order = ("customers", "sales", "hardware_logs", "alerts")
    return sorted(plan.items(), key=lambda item: (order.index(item[0].split("/")[0]), item[0]))


def _is_raw_zone_key(parts: tuple[str, ...]) -> bool:
    if len(parts) == 2 and _SNAPSHOTS.get(parts[0]) == parts[1]:
        return True
    if len(parts) == 3 and parts[0] in _PARTITIONED:
        match = _PARTITION.fullmatch(parts[1])
        return bool(match) and _is_day(match.group(1)) and parts[2].endswith(_PARTITIONED[parts[0]])
    return False


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def utc_day(timestamp: str) -> str | None:
    """The UTC day of an ISO-8601 timestamp with `Z` or an offset, or None if it has no such day."""
    try:
        moment = datetime.fromisoformat(timestamp.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(timezone.utc).date().isoformat()


def split_hardware_logs(path: Path) -> dict[str, bytes]:
    """Split a log file into {UTC day: partition file content}; see the module docstring."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RawZoneError(f"{path} is not UTF-8 text ({error})") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if not lines or not lines[0].strip():
        raise RawZoneError(f"{path} is empty: it needs the header {','.join(LOG_COLUMNS)}")
    header = lines[0]
    found = next(csv.reader([header]))
    if [name.strip() for name in found] != list(LOG_COLUMNS):
        raise RawZoneError(
            f"{path}, line 1: the header is {header!r}, expected {','.join(LOG_COLUMNS)!r}"
        )

    partitions: dict[str, list[str]] = {}
    undated_at_top: list[str] = []
    undated: list[tuple[int, str]] = []
    current: str | None = None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = next(csv.reader([line]), [])
        day = utc_day(fields[1]) if len(fields) > 1 else None
        if day is None:
            undated.append((number, line))
            if current is None:
                undated_at_top.append(line)
                continue
            day = current
        elif current is None:
            partitions.setdefault(day, []).extend(undated_at_top)
        current = day
        partitions.setdefault(day, []).append(line)

    if current is None:
        if not undated:
            raise RawZoneError(f"{path} has a header but no rows")
        raise RawZoneError(
            f"{path}: no row has a timestamp that can be dated, so no row can be given a dt= "
            f"partition (line {undated[0][0]}: {undated[0][1]!r})"
        )
    if undated:
        shown = "; ".join(f"line {n}: {line!r}" for n, line in undated[:5])
        more = f" and {len(undated) - 5} more" if len(undated) > 5 else ""
        log.warning(
            "%s: %d row(s) without a datable timestamp were put in the partition of the row before "
            "them; the pipeline will quarantine them as malformed (%s%s)",
            path, len(undated), shown, more,
        )
    return {
        day: ("\n".join([header, *rows]) + "\n").encode("utf-8")
        for day, rows in sorted(partitions.items())
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m dev.raw_zone DIR`: upload DIR to the raw bucket of the AWS the environment names
    (AWS_ENDPOINT_URL and credentials; RAW_BUCKET from the pipeline's settings). The compose file's
    seeding command; `make seed` does the same against `make up`'s stack."""
    import argparse
    import sys

    import boto3

    from include.settings import load as load_settings

    parser = argparse.ArgumentParser(prog="python -m dev.raw_zone", description=main.__doc__)
    parser.add_argument("data_dir", type=Path, help="a folder laid out like the raw zone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if not args.data_dir.is_dir():
        print(f"seed: {args.data_dir} is not a folder", file=sys.stderr)
        return 2
    bucket = load_settings().RAW_BUCKET
    try:
        keys = upload_raw_zone(args.data_dir, bucket, boto3.client("s3"))
    except RawZoneError as error:
        print(f"seed: {error}", file=sys.stderr)
        return 1
    print(f"seed: uploaded {len(keys)} objects to s3://{bucket}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
