"""Glue crawlers that really crawl the emulated S3.

StartCrawler lists the crawler's S3 targets and creates or updates one catalog table per table folder,
as Glue's built-in classifiers would: CSV columns from the header row with types inferred from the
values (boolean, bigint, double, string), JSON columns from the objects' keys (one object per file, an
array of objects, or JSON lines), `key=value` folders as partition keys with every partition
registered. The crawler goes RUNNING -> STOPPING -> READY with LastCrawl.Status SUCCEEDED, FAILED
(with an ErrorMessage) or CANCELLED, and GetCrawlerMetrics reports what the last crawl did.

Where the target holds several folders, each folder directly under it is a table; where it holds only
files and `key=value` folders, the target itself is the table (Glue's behaviour for a table path). A
target prefix with no objects yet gives no table and does not fail the crawl, as in AWS; a target
bucket that does not exist fails it.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import logging
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from moto.glue.exceptions import CrawlerNotRunningException, CrawlerRunningException, GlueClientError
from moto.glue.models import FakeCrawl, FakeCrawler

from dev.local_aws import config
from dev.local_aws.loopback import Loopback, LogWriter, RoleNotAssumable

log = logging.getLogger(__name__)

LOG_GROUP = "/aws-glue/crawlers"
# Glue samples the start of each file rather than reading whole objects.
SAMPLE_BYTES = 1024 * 1024
SAMPLE_FILES_PER_TABLE = 50
# Long enough for a poller to see each state, short enough not to slow tests down.
MIN_RUNNING_SECONDS = 0.5
STOPPING_SECONDS = 0.5
CSV_DELIMITERS = (",", "\t", "|", ";")
CSV_EXTENSIONS = (".csv", ".tsv", ".psv", ".txt")
JSON_EXTENSIONS = (".json", ".jsonl", ".ndjson")
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
_BIGINT = re.compile(r"[+-]?\d+")
_DOUBLE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_PARTITION_FOLDER = re.compile(r"([^=/]+)=([^/]*)")


class CrawlerStoppingException(GlueClientError):
    def __init__(self, msg: str) -> None:
        super().__init__("CrawlerStoppingException", msg)


class CrawlError(Exception):
    """The crawl fails with this message as LastCrawl.ErrorMessage."""


class CrawlCancelled(Exception):
    pass


# The states a test may hold a crawl in: RUNNING before it crawls, STOPPING before it is READY again.
HOLDABLE_STATES = ("RUNNING", "STOPPING")


class CrawlControls:
    """Test controls set through the stack's control API: failures injected into the next crawls, and
    crawls held in a state until the test releases them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail_next: dict[str, tuple[str, int]] = {}
        self._held: dict[tuple[str, str], threading.Event] = {}

    def fail_next_crawls(self, crawler_name: str, message: str, times: int) -> None:
        with self._lock:
            if times > 0:
                self._fail_next[crawler_name] = (message, times)
            else:
                self._fail_next.pop(crawler_name, None)

    def take_failure(self, crawler_name: str) -> str | None:
        with self._lock:
            message, times = self._fail_next.pop(crawler_name, (None, 0))
            if times > 1:
                self._fail_next[crawler_name] = (message, times - 1)
            return message

    def hold(self, crawler_name: str, state: str) -> None:
        with self._lock:
            self._held.setdefault((crawler_name, state), threading.Event())

    def release(self, crawler_name: str, state: str) -> None:
        with self._lock:
            gate = self._held.pop((crawler_name, state), None)
        if gate is not None:
            gate.set()

    def wait_while_held(self, crawler_name: str, state: str, stopped: Callable[[], bool] = lambda: False) -> None:
        """Return once the crawler is not held in `state`, or `stopped()` is true (a StopCrawler ends
        a hold in RUNNING: the crawl is no longer running), or HOLD_LIMIT_SECONDS have passed."""
        with self._lock:
            gate = self._held.get((crawler_name, state))
        if gate is None:
            return
        deadline = time.monotonic() + config.HOLD_LIMIT_SECONDS
        while not gate.wait(0.1) and not stopped():
            if time.monotonic() > deadline:
                log.warning(
                    "crawler %s was held in %s for %s s: going on", crawler_name, state, config.HOLD_LIMIT_SECONDS
                )
                return


CONTROLS = CrawlControls()


class LocalCrawl(FakeCrawl):
    """One crawl, run in a background thread. Replaces moto's timed state machine."""

    def __init__(self, crawler_name: str) -> None:
        super().__init__(crawler_name)
        self.start_time = datetime.now(timezone.utc)
        self.phase = "RUNNING"  # RUNNING, STOPPING, DONE
        self.outcome: str | None = None  # SUCCEEDED, FAILED, CANCELLED
        self.error_message: str | None = None
        self.cancel_requested = False
        self.tables_created = 0
        self.tables_updated = 0
        self.tables_deleted = 0
        self.runtime_seconds = 0.0
        self._started = time.monotonic()

    # ListCrawls' states: RUNNING, COMPLETED, STOPPED, FAILED.
    @property
    def status(self) -> str:  # type: ignore[override]
        if self.phase != "DONE":
            return "RUNNING"
        return {"SUCCEEDED": "COMPLETED", "CANCELLED": "STOPPED"}.get(self.outcome or "", "FAILED")

    @status.setter
    def status(self, value: str) -> None:
        pass

    def advance(self) -> None:
        pass

    @property
    def crawler_state(self) -> str:
        return {"RUNNING": "RUNNING", "STOPPING": "STOPPING"}.get(self.phase, "READY")

    def as_dict(self) -> dict[str, Any]:
        result = super().as_dict()
        if self.error_message:
            result["ErrorMessage"] = self.error_message
        return result


def install(loopback: Loopback) -> None:
    """Patch moto's crawler model so that StartCrawler, StopCrawler and GetCrawler behave as in AWS."""
    original_as_dict = FakeCrawler.as_dict

    def start_crawler(self: FakeCrawler) -> None:
        if self.crawls and getattr(self.crawls[-1], "phase", "DONE") != "DONE":
            raise CrawlerRunningException(f"Crawler with name {self.name} has already started")
        crawl = LocalCrawl(self.name)
        self.crawls.append(crawl)
        threading.Thread(
            target=_run_crawl, args=(loopback, self, crawl), name=f"crawl-{self.name}", daemon=True
        ).start()

    def stop_crawler(self: FakeCrawler) -> None:
        crawl = self.crawls[-1] if self.crawls else None
        if isinstance(crawl, LocalCrawl) and crawl.phase == "STOPPING":
            raise CrawlerStoppingException(f"Crawler with name {self.name} is already stopping")
        if not isinstance(crawl, LocalCrawl) or crawl.phase != "RUNNING":
            raise CrawlerNotRunningException(f"Crawler with name {self.name} isn't running")
        crawl.cancel_requested = True
        crawl.phase = "STOPPING"

    def status(self: FakeCrawler) -> str:
        crawl = self.crawls[-1] if self.crawls else None
        return crawl.crawler_state if isinstance(crawl, LocalCrawl) else "READY"

    def as_dict(self: FakeCrawler) -> dict[str, Any]:
        data = original_as_dict(self)
        data.pop("LastCrawl", None)
        finished = _finished_crawls(self)
        # LastCrawl describes the latest finished crawl, not the one in progress.
        if finished:
            last = finished[-1]
            data["LastCrawl"] = {
                "Status": last.outcome,
                "LogGroup": last.log_group,
                "LogStream": last.log_stream,
                "MessagePrefix": last.message_prefix,
                "StartTime": last.start_time,
            }
            if last.error_message:
                data["LastCrawl"]["ErrorMessage"] = last.error_message
        current = self.crawls[-1] if self.crawls else None
        if isinstance(current, LocalCrawl) and current.phase != "DONE":
            data["CrawlElapsedTime"] = int((time.monotonic() - current._started) * 1000)
        else:
            data["CrawlElapsedTime"] = 0
        return data

    FakeCrawler.start_crawler = start_crawler  # type: ignore[method-assign]
    FakeCrawler.stop_crawler = stop_crawler  # type: ignore[method-assign]
    FakeCrawler.status = property(status)  # type: ignore[assignment,method-assign]
    FakeCrawler.as_dict = as_dict  # type: ignore[method-assign]


def crawler_metrics(crawler: FakeCrawler) -> dict[str, Any]:
    finished = _finished_crawls(crawler)
    current = crawler.crawls[-1] if crawler.crawls else None
    running = isinstance(current, LocalCrawl) and current.phase != "DONE"
    last = finished[-1] if finished else None
    return {
        "CrawlerName": crawler.name,
        "TimeLeftSeconds": 0.0,
        "StillEstimating": running,
        "LastRuntimeSeconds": round(last.runtime_seconds, 3) if last else 0.0,
        "MedianRuntimeSeconds": round(statistics.median(c.runtime_seconds for c in finished), 3) if finished else 0.0,
        "TablesCreated": last.tables_created if last else 0,
        "TablesUpdated": last.tables_updated if last else 0,
        "TablesDeleted": last.tables_deleted if last else 0,
    }


def update_crawler(crawler: FakeCrawler, params: dict[str, Any]) -> None:
    if crawler.status != "READY":
        raise CrawlerRunningException(f"Crawler with name {crawler.name} is running and cannot be updated")
    attributes = {
        "Role": "role",
        "DatabaseName": "database_name",
        "Description": "description",
        "Targets": "targets",
        "Schedule": "schedule",
        "Classifiers": "classifiers",
        "TablePrefix": "table_prefix",
        "SchemaChangePolicy": "schema_change_policy",
        "RecrawlPolicy": "recrawl_policy",
        "LineageConfiguration": "lineage_configuration",
        "Configuration": "configuration",
        "CrawlerSecurityConfiguration": "crawler_security_configuration",
    }
    for key, attribute in attributes.items():
        if key in params:
            setattr(crawler, attribute, params[key])
    crawler.version += 1
    crawler.last_updated = datetime.now(timezone.utc)


def _finished_crawls(crawler: FakeCrawler) -> list[LocalCrawl]:
    return [c for c in crawler.crawls if isinstance(c, LocalCrawl) and c.phase == "DONE"]


def _run_crawl(loopback: Loopback, crawler: FakeCrawler, crawl: LocalCrawl) -> None:
    region = crawler.backend.region_name
    writer: LogWriter | None = None
    try:
        CONTROLS.wait_while_held(crawler.name, "RUNNING", lambda: crawl.cancel_requested)
        # Glue crawls, writes the catalog and logs with a session of the crawler's role.
        loopback = loopback.as_role(crawler.role or "", region)
        writer = LogWriter(loopback.client("logs", region), LOG_GROUP, crawler.name)
        writer.write(f"[{crawl.crawl_id}] BENCHMARK : Running Start Crawl for Crawler {crawler.name}")
        injected = CONTROLS.take_failure(crawler.name)
        if injected:
            raise CrawlError(injected)
        Crawl(loopback, crawler, crawl, writer).run()
        # A stop that came in after the last table still ends the crawl as stopped, as in AWS.
        crawl.outcome = "CANCELLED" if crawl.cancel_requested else "SUCCEEDED"
    except CrawlCancelled:
        crawl.outcome = "CANCELLED"
    except (CrawlError, RoleNotAssumable) as exc:
        crawl.outcome = "FAILED"
        crawl.error_message = str(exc)
    except Exception as exc:  # the crawler must come back to READY whatever happens
        log.exception("crawl of %s failed in the stack", crawler.name)
        crawl.outcome = "FAILED"
        crawl.error_message = f"Internal error while crawling: {exc}"
    remaining = MIN_RUNNING_SECONDS - (time.monotonic() - crawl._started)
    if remaining > 0:
        time.sleep(remaining)
    crawl.phase = "STOPPING"
    if writer is not None:
        try:
            if crawl.error_message:
                writer.write(f"[{crawl.crawl_id}] ERROR : {crawl.error_message}")
            writer.write(
                f"[{crawl.crawl_id}] BENCHMARK : Crawler has finished running and is in state {crawl.outcome}; "
                f"tables created {crawl.tables_created}, updated {crawl.tables_updated}, deleted {crawl.tables_deleted}"
            )
            writer.flush()
        except Exception:
            log.exception("could not write the crawler's log")
    CONTROLS.wait_while_held(crawler.name, "STOPPING")
    time.sleep(STOPPING_SECONDS)
    crawl.runtime_seconds = time.monotonic() - crawl._started
    crawl.end_time = datetime.now(timezone.utc)
    crawl.phase = "DONE"


@dataclass
class S3Object:
    bucket: str
    key: str
    size: int


@dataclass
class TableLayout:
    name: str
    bucket: str
    prefix: str  # the table folder, ending in "/"
    files: list[tuple[S3Object, list[str]]] = field(default_factory=list)  # object, partition folders

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class Crawl:
    def __init__(self, loopback: Loopback, crawler: FakeCrawler, crawl: LocalCrawl, writer: LogWriter) -> None:
        region = crawler.backend.region_name
        self.s3 = loopback.client("s3", region)
        self.glue = loopback.client("glue", region)
        self.crawler = crawler
        self.crawl = crawl
        self.writer = writer
        self.database = crawler.database_name
        self.table_prefix = crawler.table_prefix or ""
        policy = crawler.schema_change_policy or {}
        self.update_behavior = policy.get("UpdateBehavior", "UPDATE_IN_DATABASE")
        self.delete_behavior = policy.get("DeleteBehavior", "DEPRECATE_IN_DATABASE")

    def note(self, message: str) -> None:
        self.writer.write(f"[{self.crawl.crawl_id}] INFO : {message}")

    def check_cancelled(self) -> None:
        if self.crawl.cancel_requested:
            raise CrawlCancelled()

    def run(self) -> None:
        targets = self.crawler.targets or {}
        s3_targets = targets.get("S3Targets") or []
        unsupported = [kind for kind, value in targets.items() if value and kind != "S3Targets"]
        if unsupported:
            raise CrawlError(f"Only S3 targets can be crawled here; the crawler also has {', '.join(unsupported)}.")
        if not s3_targets:
            raise CrawlError("The crawler has no S3 targets.")
        if not self.database:
            raise CrawlError("The crawler has no DatabaseName.")

        layouts: dict[str, TableLayout] = {}
        for target in s3_targets:
            for layout in self.discover(target):
                if layout.name in layouts:
                    raise CrawlError(
                        f"Two folders map to table {layout.name}: "
                        f"{layouts[layout.name].location} and {layout.location}."
                    )
                layouts[layout.name] = layout
        self.ensure_database()
        for layout in layouts.values():
            self.check_cancelled()
            self.upsert_table(layout)
        self.handle_vanished_tables(set(layouts))

    # -- discovery ---------------------------------------------------------------------------

    def discover(self, target: dict[str, Any]) -> list[TableLayout]:
        path = target.get("Path") or ""
        # AWS takes an S3 target with or without the scheme: `s3://bucket/prefix` or `bucket/prefix`
        # (as the provider's own example DAG writes it).
        match = re.fullmatch(r"(?:s3a?://)?([^/:]+)/?(.*)", path)
        if not match:
            raise CrawlError(f"S3 target {path!r} is not an S3 path (s3://bucket/prefix or bucket/prefix).")
        bucket, prefix = match.groups()
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        exclusions = target.get("Exclusions") or []
        objects = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    objects.append(S3Object(bucket, item["Key"], item["Size"]))
        except self.s3.exceptions.NoSuchBucket as exc:
            raise CrawlError(f"S3 target {path}: the bucket {bucket} does not exist.") from exc
        relative = []
        for obj in objects:
            rel = obj.key[len(prefix) :]
            name = rel.rsplit("/", 1)[-1]
            if not name or name.startswith(("_", ".")) or obj.size == 0:
                continue  # folder markers, _SUCCESS files, empty objects: not data
            if any(fnmatch.fnmatch(rel, pattern) for pattern in exclusions):
                continue
            relative.append((obj, rel.split("/")[:-1]))
        if not relative:
            # AWS crawls a prefix that has no objects (yet) without error and catalogs nothing there.
            self.note(f"S3 target {path} has no data objects: no table for it.")
            return []

        target_is_table = all(not dirs or _PARTITION_FOLDER.fullmatch(dirs[0]) for _, dirs in relative)
        if target_is_table:
            name = prefix.rstrip("/").rsplit("/", 1)[-1] or bucket
            layout = TableLayout(self.table_name(name), bucket, prefix)
            layout.files = relative
            return [layout]

        layouts: dict[str, TableLayout] = {}
        for obj, dirs in relative:
            if not dirs:
                self.note(f"Skipping s3://{bucket}/{obj.key}: a file beside table folders belongs to no table.")
                continue
            folder = dirs[0]
            if folder not in layouts:
                layouts[folder] = TableLayout(self.table_name(folder), bucket, f"{prefix}{folder}/")
            layouts[folder].files.append((obj, dirs[1:]))
        return list(layouts.values())

    def table_name(self, folder: str) -> str:
        return (self.table_prefix + re.sub(r"[^a-z0-9_]", "_", folder.lower())).strip("_") or "table"

    # -- catalog -----------------------------------------------------------------------------

    def ensure_database(self) -> None:
        try:
            self.glue.get_database(Name=self.database)
        except self.glue.exceptions.EntityNotFoundException:
            self.glue.create_database(DatabaseInput={"Name": self.database})
            self.note(f"Created database {self.database}")

    def upsert_table(self, layout: TableLayout) -> None:
        depth = max(len(dirs) for _, dirs in layout.files)
        files = []
        for obj, dirs in layout.files:
            if len(dirs) != depth:
                self.note(
                    f"Skipping s3://{obj.bucket}/{obj.key}: table {layout.name} has {depth} partition level(s), "
                    f"the file sits under {len(dirs)}."
                )
                continue
            files.append((obj, dirs))
        partition_keys = _partition_keys([dirs for _, dirs in files], depth)
        schema = self.infer_schema(layout, [obj for obj, _ in files])
        key_names = {key for key in partition_keys}
        columns = [c for c in schema.columns if c["Name"] not in key_names]

        total_size = sum(obj.size for obj, _ in files)
        parameters = {
            **schema.parameters,
            "classification": schema.classification,
            "compressionType": "none",
            "typeOfData": "file",
            "objectCount": str(len(files)),
            "sizeKey": str(total_size),
            "recordCount": str(schema.estimated_records(total_size)),
            "averageRecordSize": str(schema.average_record_size),
            "CrawlerSchemaDeserializerVersion": "1.0",
            "CrawlerSchemaSerializerVersion": "1.0",
            "UPDATED_BY_CRAWLER": self.crawler.name,
        }
        descriptor = {
            "Columns": columns,
            "Location": layout.location,
            "InputFormat": schema.input_format,
            "OutputFormat": schema.output_format,
            "Compressed": False,
            "NumberOfBuckets": -1,
            "SerdeInfo": schema.serde,
            "BucketColumns": [],
            "SortColumns": [],
            "Parameters": dict(parameters),
            "StoredAsSubDirectories": False,
        }
        table_input = {
            "Name": layout.name,
            "Owner": "owner",
            "Retention": 0,
            "StorageDescriptor": descriptor,
            "PartitionKeys": [{"Name": key, "Type": "string"} for key in partition_keys],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
        }
        try:
            existing = self.glue.get_table(DatabaseName=self.database, Name=layout.name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            existing = None
        if existing is None:
            self.glue.create_table(DatabaseName=self.database, TableInput=table_input)
            self.crawl.tables_created += 1
            self.note(f"Created table {layout.name} in database {self.database}")
        elif _schema_of(existing) != _schema_of(table_input):
            if self.update_behavior == "LOG":
                self.note(f"Schema of table {layout.name} changed; not updated (UpdateBehavior LOG)")
            else:
                self.glue.update_table(DatabaseName=self.database, TableInput=table_input)
                self.crawl.tables_updated += 1
                self.note(f"Updated table {layout.name} in database {self.database}")
        elif existing.get("Parameters") != parameters:
            # Statistics only: the table keeps its schema, Glue does not count it as updated.
            self.glue.update_table(DatabaseName=self.database, TableInput=table_input)
        if partition_keys:
            self.register_partitions(layout, files, descriptor, parameters)

    def register_partitions(
        self,
        layout: TableLayout,
        files: list[tuple[S3Object, list[str]]],
        descriptor: dict[str, Any],
        parameters: dict[str, str],
    ) -> None:
        wanted: dict[tuple[str, ...], str] = {}
        for _, dirs in files:
            values = tuple(_partition_value(folder) for folder in dirs)
            wanted.setdefault(values, layout.location + "".join(f"{folder}/" for folder in dirs))
        existing: set[tuple[str, ...]] = set()
        paginator = self.glue.get_paginator("get_partitions")
        for page in paginator.paginate(DatabaseName=self.database, TableName=layout.name):
            existing.update(tuple(p["Values"]) for p in page["Partitions"])
        new = [(values, location) for values, location in sorted(wanted.items()) if values not in existing]
        for start in range(0, len(new), 100):
            self.check_cancelled()
            inputs = [
                {
                    "Values": list(values),
                    "StorageDescriptor": {**descriptor, "Location": location},
                    "Parameters": dict(parameters),
                }
                for values, location in new[start : start + 100]
            ]
            response = self.glue.batch_create_partition(
                DatabaseName=self.database, TableName=layout.name, PartitionInputList=inputs
            )
            for error in response.get("Errors", []):
                raise CrawlError(
                    f"Could not register partition {error.get('PartitionValues')}: {error.get('ErrorDetail')}"
                )
        if new:
            self.note(f"Table {layout.name}: registered {len(new)} new partition(s), {len(wanted)} in all")

    def handle_vanished_tables(self, seen: set[str]) -> None:
        paginator = self.glue.get_paginator("get_tables")
        ours = []
        for page in paginator.paginate(DatabaseName=self.database):
            for table in page["TableList"]:
                if (table.get("Parameters") or {}).get("UPDATED_BY_CRAWLER") == self.crawler.name:
                    ours.append(table["Name"])
        for name in ours:
            if name in seen:
                continue
            if self.delete_behavior == "DELETE_FROM_DATABASE":
                self.glue.delete_table(DatabaseName=self.database, Name=name)
                self.crawl.tables_deleted += 1
                self.note(f"Deleted table {name}: its folder is gone")
            else:
                self.note(f"Table {name}: its folder is gone; kept (DeleteBehavior {self.delete_behavior})")

    # -- schema inference --------------------------------------------------------------------

    def infer_schema(self, layout: TableLayout, objects: list[S3Object]) -> Schema:
        sample = _spread(objects, SAMPLE_FILES_PER_TABLE)
        schema: Schema | None = None
        for obj in sample:
            self.check_cancelled()
            response = self.s3.get_object(Bucket=obj.bucket, Key=obj.key, Range=f"bytes=0-{SAMPLE_BYTES - 1}")
            body = response["Body"].read()
            truncated = obj.size > len(body)
            classification = _classify(obj.key, body)
            if schema is None:
                schema = Schema(classification)
            elif classification != schema.classification:
                self.note(
                    f"Skipping s3://{obj.bucket}/{obj.key} for the schema of {layout.name}: "
                    f"it looks like {classification}, the table like {schema.classification}"
                )
                continue
            try:
                schema.add_sample(body, truncated)
            except ValueError as exc:
                self.note(f"Could not read s3://{obj.bucket}/{obj.key} as {classification}: {exc}")
        if schema is None:
            raise CrawlError(f"Table {layout.name} has no file to take its schema from.")
        schema.finish()
        return schema


class Schema:
    """Column names and types accumulated over the sampled files of one table."""

    def __init__(self, classification: str) -> None:
        self.classification = classification
        self.types: dict[str, str] = {}
        self.delimiter = ","
        self.quoted = False
        self.records = 0
        self.sampled_bytes = 0

    @property
    def columns(self) -> list[dict[str, str]]:
        return [{"Name": name, "Type": type_} for name, type_ in self.types.items()]

    @property
    def average_record_size(self) -> int:
        return max(1, self.sampled_bytes // self.records) if self.records else 0

    def estimated_records(self, total_size: int) -> int:
        return total_size // self.average_record_size if self.records else 0

    @property
    def input_format(self) -> str:
        return TEXT_INPUT_FORMAT

    @property
    def output_format(self) -> str:
        return TEXT_OUTPUT_FORMAT

    @property
    def serde(self) -> dict[str, Any]:
        if self.classification == "json":
            return {"SerializationLibrary": JSON_SERDE, "Parameters": {"paths": ",".join(sorted(self.types))}}
        if self.classification == "csv" and self.quoted:
            return {
                "SerializationLibrary": OPEN_CSV_SERDE,
                "Parameters": {"separatorChar": self.delimiter, "quoteChar": '"'},
            }
        return {"SerializationLibrary": LAZY_SIMPLE_SERDE, "Parameters": {"field.delim": self.delimiter}}

    @property
    def parameters(self) -> dict[str, str]:
        if self.classification == "csv":
            return {
                "delimiter": self.delimiter,
                "skip.header.line.count": "1",
                "columnsOrdered": "true",
                "areColumnsQuoted": str(self.quoted).lower(),
            }
        return {}

    def add_sample(self, body: bytes, truncated: bool) -> None:
        text = body.decode("utf-8-sig", errors="replace")
        if truncated:
            text = text[: text.rfind("\n") + 1]  # drop the partial last line
        self.sampled_bytes += len(text.encode())
        if self.classification == "csv":
            self._add_csv(text)
        elif self.classification == "json":
            self._add_json(text, truncated)

    def _add_csv(self, text: str) -> None:
        lines = text.splitlines()
        if not lines:
            return
        header_line = lines[0]
        if not self.types:
            self.delimiter = max(CSV_DELIMITERS, key=header_line.count)
        self.quoted = self.quoted or '"' in text
        rows = list(csv.reader(io.StringIO(text), delimiter=self.delimiter))
        header, data = rows[0], rows[1:]
        names = _column_names(header)
        for name in names:
            self.types.setdefault(name, "")
        for row in data:
            if len(row) != len(names):
                continue  # a malformed row says nothing about the column types
            self.records += 1
            for name, value in zip(names, row, strict=True):
                self.types[name] = _merge(self.types[name], _csv_type(value))

    def _add_json(self, text: str, truncated: bool) -> None:
        records: list[Any] = []
        document = None
        if not truncated:
            try:
                document = json.loads(text)
            except ValueError:
                document = None
        if isinstance(document, dict):
            records = [document]
        elif isinstance(document, list):
            records = document
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except ValueError as exc:
                        raise ValueError(f"line {number} is not JSON ({exc})") from None
        for record in records:
            if not isinstance(record, dict):
                raise ValueError("a record is not a JSON object")
            self.records += 1
            for key, value in record.items():
                name = key.lower()
                self.types[name] = _merge(self.types.get(name, ""), _json_type(value))

    def finish(self) -> None:
        for name, type_ in self.types.items():
            if not type_:
                self.types[name] = "string"


def _classify(key: str, body: bytes) -> str:
    lowered = key.lower()
    if lowered.endswith(JSON_EXTENSIONS):
        return "json"
    if lowered.endswith(CSV_EXTENSIONS):
        return "csv"
    head = body[:1024].lstrip()
    if head.startswith((b"{", b"[")):
        return "json"
    first_line = body.split(b"\n", 1)[0]
    if any(d.encode() in first_line for d in CSV_DELIMITERS):
        return "csv"
    return "UNKNOWN"


def _column_names(header: list[str]) -> list[str]:
    names: list[str] = []
    for index, raw in enumerate(header):
        name = re.sub(r"\s+", "_", raw.strip().lower()) or f"col{index}"
        if name in names:
            name = f"{name}_{index}"
        names.append(name)
    return names


def _csv_type(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if _BIGINT.fullmatch(value) and -(2**63) <= int(value) < 2**63:
        return "bigint"
    if _DOUBLE.fullmatch(value):
        return "double"
    if value.lower() in ("true", "false"):
        return "boolean"
    return "string"


def _json_type(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict):
        fields = ",".join(f"{k.lower()}:{_json_type(v) or 'string'}" for k, v in value.items())
        return f"struct<{fields}>"
    if isinstance(value, list):
        element = ""
        for item in value:
            element = _merge(element, _json_type(item))
        return f"array<{element or 'string'}>"
    return "string"


def _merge(current: str, new: str) -> str:
    """The narrowest type holding both: an empty type means only nulls were seen so far."""
    if not current:
        return new
    if not new or new == current:
        return current
    if {current, new} == {"bigint", "double"}:
        return "double"
    return "string"


def _partition_keys(all_dirs: list[list[str]], depth: int) -> list[str]:
    keys = []
    for level in range(depth):
        matches = [_PARTITION_FOLDER.fullmatch(dirs[level]) for dirs in all_dirs]
        names = {m.group(1).lower() for m in matches if m}
        if all(matches) and len(names) == 1:
            keys.append(names.pop())
        else:
            keys.append(f"partition_{level}")
    return keys


def _partition_value(folder: str) -> str:
    match = _PARTITION_FOLDER.fullmatch(folder)
    return match.group(2) if match else folder


def _spread(items: list[S3Object], limit: int) -> list[S3Object]:
    """Up to `limit` items spread evenly from first to last (new partitions sit at the end)."""
    if len(items) <= limit:
        return items
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def _schema_of(table: dict[str, Any]) -> tuple[Any, ...]:
    descriptor = table.get("StorageDescriptor") or {}
    return (
        [(c["Name"], c["Type"]) for c in descriptor.get("Columns") or []],
        [(c["Name"], c["Type"]) for c in table.get("PartitionKeys") or []],
        descriptor.get("Location"),
        (descriptor.get("SerdeInfo") or {}).get("SerializationLibrary"),
        (table.get("Parameters") or {}).get("classification"),
    )
