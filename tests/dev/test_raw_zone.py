"""Uploading a raw-zone folder: layout checks, the split of a day-less log file, and the real upload."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from pathlib import Path

import pytest

from dev.datagen import write_dataset
from dev.raw_zone import RawZoneError, plan_upload, split_hardware_logs, upload_raw_zone
from tests.support import aws_client

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "dev" / "sample_data"
HEADER = "log_id,timestamp,device_id,event_type,cpu_temp_celsius,memory_usage_gb"


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def _split(tmp_path: Path, *rows: str) -> dict[str, list[str]]:
    path = _write(tmp_path, {"hardware_logs.csv": "\n".join([HEADER, *rows]) + "\n"}) / "hardware_logs.csv"
    return {day: content.decode().splitlines() for day, content in split_hardware_logs(path).items()}


def test_split_goes_by_the_utc_day_and_repeats_the_header(tmp_path):
    parts = _split(
        tmp_path,
        "L1,2025-10-01T10:00:00Z,D1,INFO,50,1.0",
        "L2,2025-10-01T23:30:00-05:00,D1,ERROR,90,2.0",
        "L3,2025-10-02T00:30:00+05:30,D1,INFO,50,1.0",
        "L4,2025-10-02T12:00:00+00:00,D1, error ,,",
    )
    assert parts == {
        "2025-10-01": [
            HEADER,
            "L1,2025-10-01T10:00:00Z,D1,INFO,50,1.0",
            "L3,2025-10-02T00:30:00+05:30,D1,INFO,50,1.0",
        ],
        "2025-10-02": [
            HEADER,
            "L2,2025-10-01T23:30:00-05:00,D1,ERROR,90,2.0",
            "L4,2025-10-02T12:00:00+00:00,D1, error ,,",
        ],
    }


def test_rows_that_cannot_be_dated_stay_with_their_neighbours(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="dev.raw_zone"):
        parts = _split(
            tmp_path,
            "L0,garbage,D1,INFO,50,1.0",
            "L1,2025-10-01T10:00:00Z,D1,INFO,50,1.0",
            "L2,2025-10-02T10:00:00Z,D1,INFO,50,1.0",
            "L3,,D1,INFO,50,1.0",
            "L4,2025-10-02T11:00:00,D1,INFO,50,1.0",
            "L5",
            "",
            "L6,2025-10-01T12:00:00Z,D1,INFO,50,1.0",
        )
    assert parts == {
        "2025-10-01": [
            HEADER, "L0,garbage,D1,INFO,50,1.0", "L1,2025-10-01T10:00:00Z,D1,INFO,50,1.0",
            "L6,2025-10-01T12:00:00Z,D1,INFO,50,1.0",
        ],
        "2025-10-02": [
            HEADER, "L2,2025-10-02T10:00:00Z,D1,INFO,50,1.0", "L3,,D1,INFO,50,1.0",
            "L4,2025-10-02T11:00:00,D1,INFO,50,1.0", "L5",
        ],
    }
    assert "4 row(s) without a datable timestamp" in caplog.text
    assert "line 2: 'L0,garbage,D1,INFO,50,1.0'" in caplog.text


def test_split_accepts_a_byte_order_mark_and_crlf(tmp_path):
    path = _write(tmp_path, {"hardware_logs.csv": b"\xef\xbb\xbf" + (
        HEADER + "\r\nL1,2025-10-01T10:00:00Z,D1,INFO,50,1.0\r\n"
    ).encode()}) / "hardware_logs.csv"
    assert split_hardware_logs(path) == {
        "2025-10-01": (HEADER + "\nL1,2025-10-01T10:00:00Z,D1,INFO,50,1.0\n").encode()
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty: it needs the header"),
        (b"log_id,ts,device_id\nL1,2025-10-01T10:00:00Z,D1\n", "line 1: the header is 'log_id,ts,device_id'"),
        ((HEADER + "\n").encode(), "has a header but no rows"),
        ((HEADER + "\nL1,soon,D1,INFO,1,1\n").encode(), "no row has a timestamp that can be dated"),
        (b"\xff\xfe" + HEADER.encode(), "is not UTF-8 text"),
    ],
)
def test_split_refuses_what_it_cannot_split(tmp_path, content, message):
    path = _write(tmp_path, {"hardware_logs.csv": content}) / "hardware_logs.csv"
    with pytest.raises(RawZoneError, match=message):
        split_hardware_logs(path)


def test_layout_errors_name_the_path(tmp_path):
    with pytest.raises(RawZoneError, match="does not exist"):
        plan_upload(tmp_path / "missing")
    _write(tmp_path, {"file.csv": "x"})
    with pytest.raises(RawZoneError, match="is not a directory"):
        plan_upload(tmp_path / "file.csv")

    empty = tmp_path / "empty"
    _write(empty, {"README.md": "docs only", ".DS_Store": "x"})
    with pytest.raises(RawZoneError, match="holds no raw-zone files"):
        plan_upload(empty)

    wrong = _write(tmp_path / "wrong", {
        "customers/customers.csv": "customer_id,customer_name,industry\n",
        "customers/old.csv": "x",
        "hardware_logs/2025-10-01/a.csv": "x",
        "hardware_logs/dt=2025-13-01/a.csv": "x",
        "alerts/dt=2025-10-01/a.txt": "x",
        "logs.csv": "x",
    })
    with pytest.raises(RawZoneError) as refused:
        plan_upload(wrong)
    message = str(refused.value)
    for name in ("customers/old.csv", "hardware_logs/2025-10-01/a.csv",
                 "hardware_logs/dt=2025-13-01/a.csv", "alerts/dt=2025-10-01/a.txt", "logs.csv"):
        assert name in message
    assert "customers/customers.csv" not in message.split("Expected")[0]


def test_a_split_partition_may_not_overwrite_a_file_of_the_folder(tmp_path):
    folder = _write(tmp_path, {
        "hardware_logs.csv": HEADER + "\nL1,2025-10-01T10:00:00Z,D1,INFO,50,1.0\n",
        "hardware_logs/dt=2025-10-01/hardware_logs.csv": HEADER + "\n",
    })
    with pytest.raises(RawZoneError, match="keep one of them"):
        plan_upload(folder)


@pytest.fixture
def bucket(stack):
    """A bucket of its own in the stack's S3, so other tests' raw bucket stays as they left it."""
    s3 = aws_client(stack, "s3")
    name = f"raw-zone-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield s3, name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def _objects(s3, bucket: str) -> dict[str, bytes]:
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


@pytest.mark.stack
def test_sample_data_lands_in_the_bucket_as_the_raw_zone(bucket):
    s3, name = bucket
    sample = SAMPLE_DATA
    keys = upload_raw_zone(sample, name, s3)

    stored = _objects(s3, name)
    assert sorted(keys) == sorted(stored)
    assert keys[:2] == ["customers/customers.csv", "sales/sales.csv"]
    assert stored["customers/customers.csv"] == (sample / "customers/customers.csv").read_bytes()
    for path in (sample / "alerts").rglob("*.json"):
        assert stored[path.relative_to(sample).as_posix()] == path.read_bytes()
    partitions = sorted(key for key in stored if key.startswith("hardware_logs/"))
    assert partitions == [f"hardware_logs/dt=2025-10-0{d}/hardware_logs.csv" for d in (1, 2, 3)]

    # Every row of the day-less file is in exactly one partition, under a repeated header.
    source = (sample / "hardware_logs.csv").read_text().splitlines()
    uploaded = [stored[key].decode().splitlines() for key in partitions]
    assert all(lines[0] == source[0] for lines in uploaded)
    assert sorted(line for lines in uploaded for line in lines[1:]) == sorted(source[1:])
    assert not any(key.endswith(".md") or key == "hardware_logs.csv" for key in stored)
    head = s3.head_object(Bucket=name, Key=partitions[0])
    assert head["ContentType"].startswith("text/csv")


@pytest.mark.stack
def test_generated_dataset_uploads_byte_for_byte(bucket, tmp_path):
    s3, name = bucket
    write_dataset(tmp_path, date(2025, 10, 1), 2, 200, 3000, 20, 9, files_per_day=2)
    keys = upload_raw_zone(tmp_path, name, s3)
    stored = _objects(s3, name)
    local = {
        path.relative_to(tmp_path).as_posix(): path.read_bytes()
        for path in tmp_path.rglob("*") if path.is_file()
    }
    assert stored == local
    assert sorted(keys) == sorted(local)


@pytest.mark.stack
def test_a_missing_bucket_is_a_clear_error(stack, tmp_path):
    s3 = aws_client(stack, "s3")
    folder = _write(tmp_path, {"sales/sales.csv": "sale_id,customer_id,device_id,sale_date\n"})
    with pytest.raises(RawZoneError, match="uploading sales/sales.csv to s3://no-such-bucket-"):
        upload_raw_zone(folder, f"no-such-bucket-{uuid.uuid4().hex[:8]}", s3)
