"""Alerts of day D (raw zone `alerts/dt=D/*.json`) as pure DataFrame -> DataFrame functions.

A stored alert carries the four fields of docs/contract.md, section 2 (device_id, error_code, details, alert_timestamp)
and, when the alerts API wrote it, an `alert_id` and a `received_at`. A file holds one JSON object
(on one line or spread over several) or JSON lines. The rules follow those of the errors
(docs/contract.md, section 3), in this order:

1. **Malformed**: not one JSON object, a missing or empty field of those four, an alert_timestamp that
   breaks the timestamp rule (`timestamp_rule`) or is more than a day after received_at, or a
   received_at that is present but unparseable.
2. **Duplicate**: another well-formed alert of the partition has the same alert_id; the one received
   first is kept: by received_at, alerts without one after those with one, then by file and by
   record within the file.
3. **No sale**: the device has no sale with `sale_date <= date_utc(alert_timestamp)`; otherwise the
   sale in force is the one `transforms.sales_in_force` gives for that day.
4. **Unknown customer**: the sale's customer_id is not in customers.
5. Otherwise **loaded**, with `days_since_sale = date_utc(alert_timestamp) - sale_date`.

An alert without an alert_id (written by another producer) gets `sha256:` + the SHA-256 of the JSON
array of its four fields as written, so a rerun gives it the same id, and a copy sent twice counts
as a duplicate. A field that is not a JSON string (a number, say) is taken as its JSON text.

    records = files.transform(split_records)
    parsed = records.transform(parse_alerts).transform(mark_duplicates)
    classified = parsed.transform(classify, sales_in_force(sales), current_customers(customers))

`loaded_alerts`, `quarantined_alerts` and `audit_record` turn `classified` into what the ETL writes.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from hardware_correlation import schemas, storage, timestamp_rule
from hardware_correlation.timestamp_rule import utc_date
from hardware_correlation.transforms import blank, match_owner, sale_owners

ALERT_FIELDS = ("device_id", "error_code", "details", "alert_timestamp")
STORED_FIELDS = ("alert_id", *ALERT_FIELDS, "received_at")
DERIVED_ID_PREFIX = "sha256:"
# A record is parsed wrapped in [ ]: a valid array of exactly one object is one JSON object and
# nothing else, where a plain parse would take the first object of `{...} {...}` and ignore the rest.
RAW_ALERT = T.ArrayType(T.StructType([T.StructField(name, T.StringType(), True) for name in STORED_FIELDS]))

# One raw file as read with the text reader in whole-file mode.
ALERT_FILES = T.StructType(
    [T.StructField("source_file", T.StringType(), True), T.StructField("content", T.StringType(), True)]
)

# One row per loaded alert. log_date is the partition column of the Parquet.
LOADED_ALERT = T.StructType(
    [
        T.StructField("alert_id", T.StringType(), False),
        T.StructField("device_id", T.StringType(), False),
        T.StructField("error_code", T.StringType(), False),
        T.StructField("details", T.StringType(), False),
        T.StructField("alert_timestamp", T.TimestampType(), False),
        T.StructField("received_at", T.TimestampType(), True),
        T.StructField("sale_id", T.StringType(), False),
        T.StructField("customer_id", T.StringType(), False),
        T.StructField("customer_name", T.StringType(), True),
        T.StructField("industry", T.StringType(), True),
        T.StructField("sale_date", T.DateType(), False),
        T.StructField("days_since_sale", T.IntegerType(), False),
        T.StructField("log_date", T.DateType(), False),
    ]
)
LOADED_ALERT_COLUMNS = tuple(field.name for field in LOADED_ALERT.fields)
LOADED_ALERT_FILE = T.StructType([field for field in LOADED_ALERT.fields if field.name != "log_date"])

# Every quarantined alert: its fields as stored, why it was set aside, and where it came from.
QUARANTINED_ALERT = T.StructType(
    [
        *(T.StructField(name, T.StringType(), True) for name in STORED_FIELDS),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("raw_record", T.StringType(), True),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("record_number", T.IntegerType(), True),
        T.StructField("log_date", T.DateType(), False),
    ]
)

OUTCOMES = (schemas.MALFORMED, schemas.DUPLICATE, schemas.NO_SALE, schemas.UNKNOWN_CUSTOMER, schemas.LOADED_OUTCOME)
# The audit's keys: the columns of `pipeline_run_audit` that hold the alert counts.
AUDIT_NAMES = {
    schemas.MALFORMED: "alert_malformed",
    schemas.DUPLICATE: "alert_duplicates",
    schemas.NO_SALE: "alert_no_sale",
    schemas.UNKNOWN_CUSTOMER: "alert_unknown_customer",
    schemas.LOADED_OUTCOME: "alert_loaded",
}
AUDIT_COUNTS = ("alert_input_rows", *AUDIT_NAMES.values())

PARSED_COLUMNS = (
    "source_file", "record_number", "raw_record", *STORED_FIELDS,
    "parsed_timestamp", "parsed_received_at", "malformed_detail",
)


def _one_json_object(text: Column) -> tuple[Column, Column]:
    """Whether `text` is exactly one JSON object, and that object's fields."""
    parsed = F.from_json(F.concat(F.lit("["), text, F.lit("]")), RAW_ALERT)
    alert = F.element_at(parsed, 1)
    is_object = (
        F.trim(text).startswith("{")
        & F.coalesce(F.size(parsed) == 1, F.lit(False))
        & alert.isNotNull()
    )
    return is_object, alert


def split_records(files: DataFrame) -> DataFrame:
    """The records of each file (source_file, content): one per file, or one per non-blank line.

    A file that as a whole is one JSON object (however many lines it spans) is one record; any other
    file is JSON lines, each non-blank line a record, numbered from 1 by line.
    """
    content = storage.without_bom(F.col("content"))
    whole_is_object, _ = _one_json_object(content)
    records = F.when(whole_is_object, F.array(content)).otherwise(F.split(content, r"\r?\n", -1))
    return (
        files.select("source_file", F.posexplode(records).alias("position", "raw_record"))
        .filter(F.trim(F.col("raw_record")) != "")
        .select("source_file", (F.col("position") + 1).alias("record_number"), "raw_record")
    )


def derived_alert_id(*fields: Column) -> Column:
    """`sha256:` + hex SHA-256 of the JSON array of `fields`: the same alert, the same id."""
    return F.concat(F.lit(DERIVED_ID_PREFIX), F.sha2(F.to_json(F.array(*fields)), 256))


def parse_alerts(records: DataFrame) -> DataFrame:
    """Parse each record (source_file, record_number, raw_record) and find the malformed ones.

    `malformed_detail` names the first rule the record breaks (step 1 of the module's rules), or is
    NULL for a well-formed alert. A missing alert_id is derived from the content.
    """
    is_object, alert = _one_json_object(F.col("raw_record"))
    fields = {name: F.when(is_object, alert[name]) for name in STORED_FIELDS}
    given_id = fields["alert_id"]
    alert_id = F.when(
        is_object,
        F.when(~blank(given_id), given_id).otherwise(
            derived_alert_id(*(fields[name] for name in ALERT_FIELDS))
        ),
    )
    typed = records.select(
        "source_file",
        "record_number",
        "raw_record",
        is_object.alias("is_object"),
        alert_id.alias("alert_id"),
        *(fields[name].alias(name) for name in STORED_FIELDS if name != "alert_id"),
    ).select(
        "*",
        timestamp_rule.parsed("alert_timestamp").alias("parsed_timestamp"),
        timestamp_rule.parsed("received_at").alias("parsed_received_at"),
    )

    def missing_or_empty(name: str) -> Column:
        column = F.col(name)
        return F.when(column.isNull(), F.lit(f"missing {name}")).when(
            F.trim(column) == "", F.lit(f"empty {name}")
        )

    detail = F.coalesce(
        F.when(~F.col("is_object"), F.lit("unparseable JSON: the record is not one JSON object")),
        *(missing_or_empty(name) for name in ALERT_FIELDS),
        timestamp_rule.violation("alert_timestamp"),
        F.when(
            F.unix_seconds(F.col("parsed_timestamp")) - F.unix_seconds(F.col("parsed_received_at"))
            > timestamp_rule.MAX_CLOCK_AHEAD_SECONDS,
            F.lit("alert_timestamp is more than a day after received_at"),
        ),
        F.when(
            ~blank(F.col("received_at")) & F.col("parsed_received_at").isNull(),
            F.lit("unparseable received_at"),
        ),
    )
    return typed.select(
        *(name for name in PARSED_COLUMNS if name != "malformed_detail"), detail.alias("malformed_detail")
    )


def mark_duplicates(parsed: DataFrame) -> DataFrame:
    """`is_duplicate`: a well-formed alert whose alert_id an earlier received one of the day has.

    Malformed records are never duplicates (they are counted as malformed). Ties on received_at, or
    no received_at, keep the first record in file order, so reruns mark the same records.
    """
    well_formed = F.col("malformed_detail").isNull()
    first_received = Window.partitionBy(well_formed, "alert_id").orderBy(
        F.col("parsed_received_at").asc_nulls_last(), "source_file", "record_number"
    )
    return parsed.select(
        *PARSED_COLUMNS,
        (well_formed & (F.row_number().over(first_received) > 1)).alias("is_duplicate"),
    )


def sale_devices(deduped: DataFrame) -> DataFrame:
    """The devices whose sales `classify` can use: filtering sales to them first keeps the sales'
    window small (sales_in_force works per device, so the result is the same)."""
    kept = F.col("malformed_detail").isNull() & ~F.col("is_duplicate")
    return deduped.filter(kept).select("device_id").distinct()


def classify(deduped: DataFrame, in_force: DataFrame, customers: DataFrame) -> DataFrame:
    """The outcome of every alert, and the enrichment of the kept ones.

    `in_force` is `transforms.sales_in_force(sales)`, `customers` is
    `transforms.current_customers(customers)`: the same sale and customer as an error of that day.
    """
    kept = F.col("malformed_detail").isNull() & ~F.col("is_duplicate")
    owners = sale_owners(in_force, customers)
    matched = deduped.transform(match_owner, utc_date(F.col("parsed_timestamp")), kept, owners)
    outcome = (
        F.when(F.col("malformed_detail").isNotNull(), F.lit(schemas.MALFORMED))
        .when(F.col("is_duplicate"), F.lit(schemas.DUPLICATE))
        .otherwise(F.col("owner_outcome"))
    )
    return matched.select(
        *PARSED_COLUMNS,
        "is_duplicate",
        outcome.alias("outcome"),
        F.col("match_day").alias("alert_date"),
        "sale_id",
        "customer_id",
        "customer_name",
        "industry",
        "sale_date",
        "days_since_sale",
    )


def loaded_alerts(classified: DataFrame, log_date: date) -> DataFrame:
    """The columns of `hardware_alerts` for the loaded alerts of day `log_date`."""
    return classified.filter(F.col("outcome") == schemas.LOADED_OUTCOME).select(
        "alert_id",
        "device_id",
        "error_code",
        "details",
        F.col("parsed_timestamp").alias("alert_timestamp"),
        F.col("parsed_received_at").alias("received_at"),
        "sale_id",
        "customer_id",
        "customer_name",
        "industry",
        "sale_date",
        "days_since_sale",
        F.lit(log_date).alias("log_date"),
    )


def quarantined_alerts(classified: DataFrame, log_date: date) -> DataFrame:
    """Every malformed, duplicate, no-sale and unknown-customer alert, as stored, with its reason."""
    detail = (
        F.when(F.col("outcome") == schemas.MALFORMED, F.col("malformed_detail"))
        .when(
            F.col("outcome") == schemas.DUPLICATE,
            F.concat(F.lit("alert_id "), F.col("alert_id"), F.lit(" was received earlier")),
        )
        .when(
            F.col("outcome") == schemas.NO_SALE,
            F.concat(
                F.lit("device "), F.col("device_id"), F.lit(" has no sale on or before "),
                F.col("alert_date").cast("string"),
            ),
        )
        .when(
            F.col("outcome") == schemas.UNKNOWN_CUSTOMER,
            F.concat(F.lit("customer_id "), F.col("customer_id"), F.lit(" is not in customers")),
        )
    )
    return classified.filter(F.col("outcome").isin(*schemas.QUARANTINED_OUTCOMES)).select(
        *STORED_FIELDS,
        F.col("outcome").alias("reason"),
        detail.alias("detail"),
        "raw_record",
        "source_file",
        "record_number",
        F.lit(log_date).alias("log_date"),
    )


def outcome_counts(classified: DataFrame) -> DataFrame:
    """Alerts per outcome (outcomes without alerts are absent)."""
    return classified.groupBy("outcome").agg(F.count(F.lit(1)).alias("rows")).select("outcome", "rows")


def audit_record(counts: dict[str, int], log_date: date, job_run_id: str | None) -> dict:
    """The day's alert counts from the alerts per outcome; every count is present, zero included."""
    record: dict = {"log_date": log_date.isoformat()}
    record["alert_input_rows"] = int(sum(counts.get(outcome, 0) for outcome in OUTCOMES))
    for outcome, name in AUDIT_NAMES.items():
        record[name] = int(counts.get(outcome, 0))
    record["job_run_id"] = job_run_id
    return record
