"""The raw files' columns (docs/contract.md, section 2) and the schemas of everything the jobs write."""

from __future__ import annotations

from pyspark.sql import types as T

LOG_COLUMNS = ("log_id", "timestamp", "device_id", "event_type", "cpu_temp_celsius", "memory_usage_gb")
CUSTOMER_COLUMNS = ("customer_id", "customer_name", "industry")
SALE_COLUMNS = ("sale_id", "customer_id", "device_id", "sale_date")


def all_strings(columns: tuple[str, ...]) -> T.StructType:
    """Raw CSV columns are read as text: the transforms decide what is well-formed, not the reader."""
    return T.StructType([T.StructField(name, T.StringType(), True) for name in columns])


RAW_CUSTOMERS = all_strings(CUSTOMER_COLUMNS)
RAW_SALES = all_strings(SALE_COLUMNS)

# One line of a raw log file as read with the text reader, and the file it came from.
LOG_LINES = T.StructType(
    [
        T.StructField("line", T.StringType(), True),
        T.StructField("source_file", T.StringType(), True),
    ]
)

# docs/contract.md, section 4: one row per loaded error. log_date is the partition column of the Parquet.
LOADED = T.StructType(
    [
        T.StructField("log_id", T.StringType(), False),
        T.StructField("device_id", T.StringType(), False),
        T.StructField("cpu_temp_celsius", T.IntegerType(), True),
        T.StructField("memory_usage_gb", T.DoubleType(), True),
        T.StructField("sale_id", T.StringType(), False),
        T.StructField("days_since_sale", T.IntegerType(), False),
        T.StructField("customer_name", T.StringType(), True),
        T.StructField("industry", T.StringType(), True),
        T.StructField("customer_id", T.StringType(), False),
        T.StructField("sale_date", T.DateType(), False),
        T.StructField("error_timestamp", T.TimestampType(), False),
        T.StructField("log_date", T.DateType(), False),
    ]
)
LOADED_COLUMNS = tuple(field.name for field in LOADED.fields)
# What a day's Parquet files hold: log_date lives in the `log_date=D` directory name.
LOADED_FILE = T.StructType([field for field in LOADED.fields if field.name != "log_date"])

# docs/contract.md, section 4: the exposure, one row per device and day D. log_date is the partition column.
DEVICE_DAY_ACTIVITY = T.StructType(
    [
        T.StructField("device_id", T.StringType(), False),
        T.StructField("sale_id", T.StringType(), False),
        T.StructField("customer_id", T.StringType(), False),
        T.StructField("industry", T.StringType(), True),
        T.StructField("days_since_sale", T.IntegerType(), False),
        T.StructField("events", T.LongType(), False),
        T.StructField("errors", T.LongType(), False),
    ]
)

# Every quarantined log row: the raw fields as they were read, why it was set aside, and where from.
QUARANTINE = T.StructType(
    [
        *(T.StructField(name, T.StringType(), True) for name in LOG_COLUMNS),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("raw_line", T.StringType(), True),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("log_date", T.DateType(), False),
    ]
)

# The outcome of every input row (docs/contract.md, section 3), in the order the rules apply.
MALFORMED = "malformed"
DUPLICATE = "duplicate"
NON_ERROR = "non_error"
NO_SALE = "no_sale"
UNKNOWN_CUSTOMER = "unknown_customer"
LOADED_OUTCOME = "loaded"
OUTCOMES = (MALFORMED, DUPLICATE, NON_ERROR, NO_SALE, UNKNOWN_CUSTOMER, LOADED_OUTCOME)
# Set aside with a reason, for logs and alerts alike (non-errors are only counted).
QUARANTINED_OUTCOMES = (MALFORMED, DUPLICATE, NO_SALE, UNKNOWN_CUSTOMER)

# The audit's keys (docs/contract.md, section 4), each outcome under its audit name.
AUDIT_NAMES = {
    MALFORMED: "malformed",
    DUPLICATE: "duplicates",
    NON_ERROR: "non_error",
    NO_SALE: "no_sale",
    UNKNOWN_CUSTOMER: "unknown_customer",
    LOADED_OUTCOME: "loaded",
}
