"""The rules of docs/contract.md, section 3, as pure DataFrame -> DataFrame functions.

Each function ends in a `select` that states the columns it produces. They compose with
`df.transform`:

    parsed = lines.transform(parse_log_lines)
    flagged = parsed.transform(flag_repeated, repeated_log_ids(lines))
    typed = flagged.transform(type_log_fields)
    deduped = typed.transform(rank_duplicates)
    classified = deduped.transform(classify, sales_in_force(sales), current_customers(customers))

`classified` carries one `outcome` per input row; `loaded_rows`, `quarantine_rows` and
`outcome_counts` turn it into what the ETL job writes, and `classified_events` with
`device_day_activity` into the day's exposure (device-days). Parsing only validates; the typed values are
computed separately so that a job can skip them for rows that never need them (most non-errors).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hardware_correlation import schemas, timestamp_rule
from hardware_correlation.timestamp_rule import utc_date

# CSV per RFC 4180, recognised with regular expressions rather than a CSV parser so that the whole
# parse compiles to JVM code (Spark's CSV expressions are interpreted row by row). A field is quoted
# ("..." with "" for a quote), unquoted (no comma, not starting with a quote) or empty. Matched
# against "," + line, every field is preceded by a comma, so no match is empty.
_FIELD = r'"[^"]*+(?:""[^"]*+)*+"|[^,"][^,]*+|'
_QUOTED_LINE = rf"^(?:,(?:{_FIELD}))++$"
_QUOTED_FIELD = rf",({_FIELD})"
_INTEGER = r"^[+-]?[0-9]+$"
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"

LINE_COLUMNS = ("line", "source_file")
PARSED_COLUMNS = (*LINE_COLUMNS, "line_number", *schemas.LOG_COLUMNS, "is_error", "malformed_detail")
TYPED_COLUMNS = ("parsed_timestamp", "parsed_cpu", "parsed_memory")


def blank(column: Column) -> Column:
    """NULL, empty or only spaces: a required text field that is missing."""
    return column.isNull() | (F.trim(column) == "")


def _adding(df: DataFrame, *columns: Column) -> DataFrame:
    return df.select(*(F.col(name) for name in df.columns), *columns)


def _field_value(token: Column, quoted: Column) -> Column:
    """A field's value from its token: unquoted when the line has quotes, NULL when empty."""
    unquoted = F.when(
        quoted & token.startswith('"'),
        F.replace(token.substr(F.lit(2), F.length(token) - 2), F.lit('""'), F.lit('"')),
    ).otherwise(token)
    return F.when(unquoted != "", unquoted)


def first_field(line: Column) -> Column:
    """The first field of a line (the log_id) as `parse_log_lines` reads it, without splitting the
    rest of the line: the text before the first comma, or for a line with a quote the first field
    per RFC 4180 (rare, so the slower regular expression runs only for those)."""
    quoted = line.contains('"')
    first_token = F.when(
        quoted, F.get(F.regexp_extract_all(F.concat(F.lit(","), line), F.lit(_QUOTED_FIELD), 1), 0)
    ).otherwise(F.substring_index(line, ",", 1))
    return _field_value(first_token, quoted)


def _split_fields(lines: DataFrame) -> DataFrame:
    """The six fields of each line (NULL when empty) and what is wrong with its structure, if any.

    Lines without a quote are split on commas, which is all CSV parsing does for them; quoted lines
    are taken apart per RFC 4180.
    """
    line = F.col("line")
    quoted = line.contains('"')
    comma_line = F.concat(F.lit(","), line)
    # The split is a column of its own, computed once per line: written into each field's
    # expression, it would run again for every use of every field.
    tokenized = lines.select(
        *LINE_COLUMNS,
        quoted.alias("quoted"),
        F.when(quoted, F.regexp_extract_all(comma_line, F.lit(_QUOTED_FIELD), 1))
        .otherwise(F.split(line, ",", -1))
        .alias("tokens"),
        F.when(quoted & ~comma_line.rlike(_QUOTED_LINE), F.lit("badly quoted field")).alias("quoting_error"),
    )
    tokens = F.col("tokens")
    return tokenized.select(
        *LINE_COLUMNS,
        *(
            _field_value(F.get(tokens, index), F.col("quoted")).alias(name)
            for index, name in enumerate(schemas.LOG_COLUMNS)
        ),
        F.coalesce(
            F.col("quoting_error"),
            F.when(F.size(tokens) != len(schemas.LOG_COLUMNS), F.lit("wrong number of fields")),
        ).alias("structure_error"),
    )


def _valid_integer(text: Column) -> Column:
    # Nine digits always fit an INT; longer ones must be checked.
    return text.rlike(_INTEGER) & (
        (F.length(text) <= 9) | F.expr("try_cast(cpu_temp_celsius AS INT)").isNotNull()
    )


def parse_log_lines(lines: DataFrame) -> DataFrame:
    """Split raw log lines (line, source_file) into fields and find malformed rows.

    `malformed_detail` names the first rule of docs/contract.md, section 3, step 1 that the row breaks, or is
    NULL for a well-formed row. `line_number` increases with the lines of each file (within a file
    split, Spark keeps the lines in order); it breaks timestamp ties between duplicates.
    """
    fields = lines.transform(_split_fields)
    detail = F.coalesce(
        F.col("structure_error"),
        F.when(blank(F.col("log_id")), F.lit("empty log_id")),
        F.when(blank(F.col("device_id")), F.lit("empty device_id")),
        F.when(blank(F.col("event_type")), F.lit("empty event_type")),
        F.when(blank(F.col("timestamp")), F.lit("empty timestamp")),
        timestamp_rule.violation("timestamp"),
        F.when(
            F.col("cpu_temp_celsius").isNotNull() & ~_valid_integer(F.col("cpu_temp_celsius")),
            F.lit("cpu_temp_celsius is not an integer"),
        ),
        F.when(
            F.col("memory_usage_gb").isNotNull() & ~F.col("memory_usage_gb").rlike(_NUMBER),
            F.lit("memory_usage_gb is not a number"),
        ),
    )
    return fields.select(
        *LINE_COLUMNS,
        # Being non-deterministic, it also keeps the optimizer from pushing later filters into this
        # projection, which would copy the parsing expressions into every filter that reads them.
        F.monotonically_increasing_id().alias("line_number"),
        *schemas.LOG_COLUMNS,
        (F.upper(F.trim("event_type")) == "ERROR").alias("is_error"),
        detail.alias("malformed_detail"),
    )


def type_log_fields(parsed: DataFrame) -> DataFrame:
    """The timestamp (UTC), cpu_temp_celsius and memory_usage_gb of well-formed rows as values."""
    well_formed = F.col("malformed_detail").isNull()
    return _adding(
        parsed,
        F.when(well_formed, timestamp_rule.instant("timestamp")).alias("parsed_timestamp"),
        F.when(well_formed, F.col("cpu_temp_celsius").cast("int")).alias("parsed_cpu"),
        F.when(well_formed, F.col("memory_usage_gb").cast("double")).alias("parsed_memory"),
    )


def log_id_hash(column: Column) -> Column:
    return F.xxhash64(column)


def repeated_log_ids(lines: DataFrame) -> DataFrame:
    """Hashes of the log_ids that occur on more than one line of the partition.

    `lines` has the raw `line` (the read lines, or the parsed ones). Only the first field of each
    line is taken apart (`first_field`), so this pass over the day costs little next to the parse.
    A superset of the duplicated log_ids (malformed lines and headers count here, and hashes may
    collide), small in practice: `rank_duplicates` then ranks only the lines that carry one of them.
    """
    log_id = first_field(F.col("line"))
    return (
        lines.filter(log_id.isNotNull())
        .groupBy(log_id_hash(log_id).alias("log_id_hash"))
        .agg(F.count(F.lit(1)).alias("lines"))
        .filter(F.col("lines") > 1)
        .select("log_id_hash")
    )


def flag_repeated(parsed: DataFrame, repeated: DataFrame) -> DataFrame:
    """Mark the well-formed rows whose log_id hash is in `repeated` (`needs_ranking`)."""
    candidates = F.broadcast(repeated.select("log_id_hash", F.lit(True).alias("is_repeated")))
    return parsed.join(
        candidates, on=log_id_hash(F.col("log_id")) == F.col("log_id_hash"), how="left"
    ).select(
        *(parsed[name] for name in parsed.columns),
        (F.col("is_repeated").isNotNull() & F.col("malformed_detail").isNull()).alias("needs_ranking"),
    )


def rank_duplicates(flagged: DataFrame) -> DataFrame:
    """docs/contract.md, section 3, step 2: among well-formed rows sharing a log_id, all but the earliest.

    Needs the typed timestamp (`type_log_fields`). Only rows flagged by `flag_repeated` are ranked,
    so the shuffle is as small as the repeats. Ties on the timestamp keep the first line in file
    order, so reruns mark the same rows.
    """
    earliest_first = Window.partitionBy("log_id").orderBy(
        "parsed_timestamp", "source_file", "line_number"
    )
    ranked = flagged.filter(F.col("needs_ranking")).withColumn(
        "is_duplicate", F.row_number().over(earliest_first) > 1
    )
    single = flagged.filter(~F.col("needs_ranking")).withColumn("is_duplicate", F.lit(False))
    kept = [name for name in flagged.columns if name != "needs_ranking"]
    return single.unionByName(ranked).select(*kept, "is_duplicate")


def sales_in_force(sales: DataFrame) -> DataFrame:
    """Every sale with the day from which it is in force and the day it stops being (exclusive).

    A sale is in force from its sale_date until the device's next sale on a later day; of several
    sales of one device on one day only the greatest sale_id is ever in force (docs/contract.md, section 3,
    step 4). Rows without a device_id or sale_id, or with a sale_date that is not YYYY-MM-DD, cannot
    be placed in time and are left out (`rejected_reference_rows` reports them).
    """
    latest_first = Window.partitionBy("device_id").orderBy(
        F.col("sale_date").desc(), F.col("sale_id").desc(), F.col("customer_id").desc_nulls_last()
    )
    next_sale_date = F.lag("sale_date").over(latest_first)
    return (
        sales.transform(_usable_sales)
        .select("device_id", "sale_id", "customer_id", "sale_date", next_sale_date.alias("next_sale_date"))
        # Rows of the same device and day after the first lost the tie for that day.
        .filter(F.col("next_sale_date").isNull() | (F.col("next_sale_date") != F.col("sale_date")))
        .select(
            "device_id",
            "sale_id",
            "customer_id",
            "sale_date",
            F.col("next_sale_date").alias("valid_until"),
        )
    )


def _parsed_sale_date() -> Column:
    return F.when(
        F.col("sale_date").rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), F.expr("try_cast(sale_date AS DATE)")
    )


def _sale_rejection() -> Column:
    """Why a sales row cannot be placed in time, or NULL when it can."""
    return (
        F.when(blank(F.col("sale_id")), F.lit("empty sale_id"))
        .when(blank(F.col("device_id")), F.lit("empty device_id"))
        .when(_parsed_sale_date().isNull(), F.lit("sale_date is not a YYYY-MM-DD day"))
    )


def _usable_sales(sales: DataFrame) -> DataFrame:
    return sales.filter(_sale_rejection().isNull()).select(
        "sale_id", "customer_id", "device_id", _parsed_sale_date().alias("sale_date")
    )


def rejected_reference_rows(sales: DataFrame, customers: DataFrame) -> DataFrame:
    """The sales and customers rows that `sales_in_force` and `current_customers` leave out.

    One row each: the table, the row as JSON and the reason. An error whose only sale is such a row
    counts as no sale, so these rows are reported with the day rather than dropped unseen.
    """
    rejected_sales = sales.select(
        F.lit("sales").alias("source_table"),
        F.to_json(F.struct(*schemas.SALE_COLUMNS)).alias("row"),
        _sale_rejection().alias("reason"),
    ).filter(F.col("reason").isNotNull())
    rejected_customers = customers.filter(blank(F.col("customer_id"))).select(
        F.lit("customers").alias("source_table"),
        F.to_json(F.struct(*schemas.CUSTOMER_COLUMNS)).alias("row"),
        F.lit("empty customer_id").alias("reason"),
    )
    return rejected_sales.unionByName(rejected_customers).select("source_table", "row", "reason")


def current_customers(customers: DataFrame) -> DataFrame:
    """One row per customer_id of the snapshot; a repeated id keeps its greatest name, industry."""
    latest = F.max(F.struct("customer_name", "industry"))
    return (
        customers.filter(~blank(F.col("customer_id")))
        .groupBy("customer_id")
        .agg(latest.alias("customer"))
        .select("customer_id", "customer.customer_name", "customer.industry")
    )


def match_owner(rows: DataFrame, day: Column, to_match: Column, in_force: DataFrame, customers: DataFrame) -> DataFrame:
    """docs/contract.md, section 3, steps 4 to 6 for dated device rows (errors, alerts): the owner on `day`.

    For the rows where `to_match` holds, the device's sale in force on `day` (the latest sale on or
    before it; a resold device belongs to its current owner) and that sale's customer. Adds
    `match_day`, sale_id, customer_id, customer_name, industry, sale_date, `days_since_sale` (whole
    days from the sale to `day`) and `owner_outcome`: no sale, unknown customer or loaded (NULL
    where `to_match` does not hold). `in_force` is `sales_in_force(sales)`, `customers` is
    `current_customers(customers)`. Other rows join on a NULL key, which matches nothing and costs
    nothing; both dimensions are broadcast.
    """
    sales = F.broadcast(
        in_force.select(
            F.col("device_id").alias("sale_device_id"),
            "sale_id",
            F.col("customer_id").alias("sale_customer_id"),
            "sale_date",
            "valid_until",
        )
    )
    known = F.broadcast(
        customers.select(F.col("customer_id").alias("known_customer_id"), "customer_name", "industry")
    )
    with_keys = rows.select(
        "*",
        day.alias("match_day"),
        F.when(to_match, F.col("device_id")).alias("match_device_id"),
    )
    in_force_on_day = (
        (F.col("match_device_id") == F.col("sale_device_id"))
        & (F.col("sale_date") <= F.col("match_day"))
        & (F.col("valid_until").isNull() | (F.col("match_day") < F.col("valid_until")))
    )
    joined = with_keys.join(sales, on=in_force_on_day, how="left").join(
        known, on=F.col("sale_customer_id") == F.col("known_customer_id"), how="left"
    )
    owner_outcome = (
        F.when(F.col("match_device_id").isNull(), F.lit(None).cast("string"))
        .when(F.col("sale_id").isNull(), F.lit(schemas.NO_SALE))
        .when(F.col("known_customer_id").isNull(), F.lit(schemas.UNKNOWN_CUSTOMER))
        .otherwise(F.lit(schemas.LOADED_OUTCOME))
    )
    return joined.select(
        *(F.col(name) for name in rows.columns),
        "match_day",
        "sale_id",
        F.col("sale_customer_id").alias("customer_id"),
        "customer_name",
        "industry",
        "sale_date",
        F.datediff(F.col("match_day"), F.col("sale_date")).alias("days_since_sale"),
        owner_outcome.alias("owner_outcome"),
    )


def classify(deduped: DataFrame, in_force: DataFrame, customers: DataFrame) -> DataFrame:
    """docs/contract.md, section 3, steps 3 to 6: the outcome of every row, and the enrichment of errors.

    `deduped` has the parsed and typed columns and `is_duplicate`.
    `in_force` is `sales_in_force(sales)`, `customers` is `current_customers(customers)`.
    Only kept error rows look up their owner, at the error's UTC day.
    """
    kept_error = F.col("malformed_detail").isNull() & ~F.col("is_duplicate") & F.col("is_error")
    matched = deduped.transform(
        match_owner, utc_date(F.col("parsed_timestamp")), kept_error, in_force, customers
    )
    outcome = (
        F.when(F.col("malformed_detail").isNotNull(), F.lit(schemas.MALFORMED))
        .when(F.col("is_duplicate"), F.lit(schemas.DUPLICATE))
        .when(~F.col("is_error"), F.lit(schemas.NON_ERROR))
        .otherwise(F.col("owner_outcome"))
    )
    return matched.select(
        *PARSED_COLUMNS,
        *TYPED_COLUMNS,
        "is_duplicate",
        outcome.alias("outcome"),
        "sale_id",
        "customer_id",
        "customer_name",
        "industry",
        "sale_date",
        "days_since_sale",
    )


EVENT_COLUMNS = ("device_id", "events", "errors", "error_owner")
_OWNER_FIELDS = ("sale_id", "customer_id", "industry", "sale_date")
_OWNER_TYPES = {
    "timestamp": "timestamp", "sale_id": "string", "customer_id": "string", "industry": "string", "sale_date": "date"
}


def counted_events(per_device: DataFrame) -> DataFrame:
    """`EVENT_COLUMNS` for rows that were only counted per device (`device_id`, `events`): plain
    non-errors, well-formed and never duplicates, so each is an event and none is an error."""
    typed = F.struct(*(F.lit(None).cast(_OWNER_TYPES[name]).alias(name) for name in ("timestamp", *_OWNER_FIELDS)))
    no_owner = F.when(F.lit(False), typed)
    return per_device.select(
        "device_id", "events", F.lit(0).cast("long").alias("errors"), no_owner.alias("error_owner")
    )



def classified_events(classified: DataFrame) -> DataFrame:
    """`EVENT_COLUMNS` per device from classified rows: its well-formed, non-duplicate rows (events),
    its loaded errors (errors) and the owner of its latest loaded error (`error_owner`)."""
    kept = classified.filter(~F.col("outcome").isin(schemas.MALFORMED, schemas.DUPLICATE))
    loaded = F.col("outcome") == schemas.LOADED_OUTCOME
    owner = F.struct(F.col("parsed_timestamp").alias("timestamp"), *_OWNER_FIELDS)
    return kept.groupBy("device_id").agg(
        F.count(F.lit(1)).alias("events"),
        F.count(F.when(loaded, True)).alias("errors"),
        # The struct compares by timestamp first: the latest loaded error.
        F.max(F.when(loaded, owner)).alias("error_owner"),
    ).select(*EVENT_COLUMNS)


def device_day_activity(events: DataFrame, log_date: date, in_force: DataFrame, customers: DataFrame) -> DataFrame:
    """`device_day_activity` (docs/contract.md, section 4) for day D from `EVENT_COLUMNS` rows (several per
    device allowed): one row per device with its events and errors, owned by the sale in force at D.

    The device-day is matched once, at D, by `match_owner`, the rule the errors go through. Its
    errors are exactly the day's loaded errors, so SUM(errors) = loaded. An error that arrived a day
    late (UTC day D - 1) was matched at its own day; should the device have no owner with a known
    customer at D (sold again on D to a customer missing from the snapshot), the device-day keeps
    that error's owner rather than losing the error. A device with neither has no row.
    """
    totals = events.groupBy("device_id").agg(
        F.sum("events").alias("events"),
        F.sum("errors").alias("errors"),
        F.max("error_owner").alias("error_owner"),
    )
    day = F.lit(log_date)
    matched = totals.transform(match_owner, day, F.lit(True), in_force, customers)
    owned_at_day = F.col("owner_outcome") == schemas.LOADED_OUTCOME

    def owner(name: str) -> Column:
        return F.when(owned_at_day, F.col(name)).otherwise(F.col(f"error_owner.{name}"))

    return matched.filter(owned_at_day | F.col("error_owner").isNotNull()).select(
        day.alias("log_date"),
        "device_id",
        owner("sale_id").alias("sale_id"),
        owner("customer_id").alias("customer_id"),
        owner("industry").alias("industry"),
        F.datediff(day, owner("sale_date")).alias("days_since_sale"),
        F.col("events").cast("long").alias("events"),
        F.col("errors").cast("long").alias("errors"),
    )


def loaded_rows(classified: DataFrame, log_date: date) -> DataFrame:
    """The columns of docs/contract.md, section 4 for the loaded rows of day `log_date`."""
    return classified.filter(F.col("outcome") == schemas.LOADED_OUTCOME).select(
        "log_id",
        "device_id",
        F.col("parsed_cpu").alias("cpu_temp_celsius"),
        F.col("parsed_memory").alias("memory_usage_gb"),
        "sale_id",
        "days_since_sale",
        "customer_name",
        "industry",
        "customer_id",
        "sale_date",
        F.col("parsed_timestamp").alias("error_timestamp"),
        F.lit(log_date).alias("log_date"),
    )


def quarantine_rows(classified: DataFrame, log_date: date) -> DataFrame:
    """Every malformed, duplicate, no-sale and unknown-customer row, as read, with its reason."""
    return classified.filter(F.col("outcome").isin(*schemas.QUARANTINED_OUTCOMES)).select(
        *schemas.LOG_COLUMNS,
        F.col("outcome").alias("reason"),
        F.coalesce(
            F.col("malformed_detail"),
            F.when(
                F.col("outcome") == schemas.UNKNOWN_CUSTOMER,
                F.concat(F.lit("customer_id "), F.col("customer_id"), F.lit(" is not in customers")),
            ),
        ).alias("detail"),
        F.col("line").alias("raw_line"),
        "source_file",
        F.lit(log_date).alias("log_date"),
    )


def outcome_counts(classified: DataFrame) -> DataFrame:
    """Rows per outcome (outcomes without rows are absent)."""
    return classified.groupBy("outcome").agg(F.count(F.lit(1)).alias("rows")).select("outcome", "rows")


def audit_record(
    counts: dict[str, int], log_date: date, job_run_id: str | None, rejected: dict[str, int] | None = None
) -> dict:
    """The day's audit (docs/contract.md, section 4) from the rows per outcome; every outcome is present.

    `rejected` is rows of `rejected_reference_rows` per source table; they are reported beside the
    log rows' outcomes, outside the audit equation, which counts the day's log rows.
    """
    record: dict = {"log_date": log_date.isoformat()}
    record["input_rows"] = sum(counts.get(outcome, 0) for outcome in schemas.OUTCOMES)
    for outcome, name in schemas.AUDIT_NAMES.items():
        record[name] = int(counts.get(outcome, 0))
    for table in ("sales", "customers"):
        record[f"rejected_{table}"] = int((rejected or {}).get(table, 0))
    record["job_run_id"] = job_run_id
    return record
