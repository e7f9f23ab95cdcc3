"""The rules of docs/contract.md, section 3, as pure DataFrame -> DataFrame functions.

Each function ends in a `select` that states the columns it produces. They compose with
`df.transform`:

    owners = sale_owners(sales_in_force(sales), current_customers(customers))
    parsed = lines.transform(parse_log_lines)
    flagged = parsed.transform(flag_repeated, repeated_log_ids(lines))
    rows = flagged.transform(compact_rows).transform(type_log_fields)
    classified = rows.transform(rank_rows, header_lines).transform(classify, owners, log_date)
    days = classified.transform(device_days, log_date)

(`classify_lines` is the first five lines in one call.)

The day is read twice: `repeated_log_ids` takes only each line's first field, then `parse_log_lines`
does all of step 1 in one projection. After `compact_rows` only the rows that need more than a count
stay rows (about a tenth: errors, malformed rows, candidate duplicates); the plain non-errors are
counted per device. `classified` carries the `outcome` of every row (and of every device's plain
non-errors, `weight` of them); `loaded_rows` and `quarantine_rows` turn it into what the ETL job
writes, `device_days` into the day's exposure (`device_day_activity`) and, summed by
`day_totals`, the audit.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hardware_correlation import schemas, storage, timestamp_rule
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
    rest of the line: the text before the first comma, or for a line that starts with a quote the
    first field per RFC 4180 (rare, so the slower regular expression runs only for those). A first
    field that does not start with a quote is unquoted however the rest of the line is quoted; and
    looking at its first byte, rather than searching the whole line for a quote, takes about a fifth
    off this pass (10.4 s to 8.1 s over 5M lines)."""
    quoted = line.startswith('"')
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


def log_id_hash(column: Column) -> Column:
    return F.xxhash64(column)


def repeated_log_ids(lines: DataFrame) -> DataFrame:
    """Hashes of the log_ids that occur on more than one line of the partition.

    `lines` has the raw `line` (the read lines, or the parsed ones). Only the first field of each
    line is taken apart (`first_field`), so this pass over the day costs little next to the parse.
    A superset of the duplicated log_ids (malformed lines and headers count here, and hashes may
    collide), small in practice: only the rows that carry one of them are ranked (`rank_rows`).
    Nearly every log_id occurs once, so a hash aggregation would hold millions of one-line groups (on
    the map side and again after the shuffle) and spill. The lines are counted by a window over
    the hashes instead: one shuffle, then a sort of plain longs, which streams. The second line of
    each hash stands for it, so each repeated hash comes out once, with no further aggregation.
    """
    log_id = first_field(F.col("line"))
    hashes = lines.filter(log_id.isNotNull()).select(log_id_hash(log_id).alias("log_id_hash"))
    same_hash = Window.partitionBy("log_id_hash").orderBy("log_id_hash")
    return (
        hashes.select("log_id_hash", F.row_number().over(same_hash).alias("line_of_hash"))
        .filter(F.col("line_of_hash") == 2)
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


# What a row keeps through `compact_rows`; `weight` is the number of input rows it stands for.
ROW_COLUMNS = (*PARSED_COLUMNS, "needs_ranking")
COMPACT_COLUMNS = ("plain", *ROW_COLUMNS, "weight")


def compact_rows(flagged: DataFrame) -> DataFrame:
    """The rows that the later rules look at one by one, and the others counted per device.

    About nine rows in ten are plain non-errors: well-formed, not an error, and with a log_id that
    no other line has. Whatever the rest of the day holds, such a row is a non-error event of its
    device (`plain`), and neither the duplicate ranking, nor the owner match, nor the quarantine
    needs more of it. One aggregation with map-side combining collapses them into one row per
    device (`weight` of them), before anything is shuffled; every other row is its own group
    (`line_number` differs), kept whole with `weight` 1.
    """
    plain = F.col("malformed_detail").isNull() & ~F.col("needs_ranking") & ~F.col("is_error")
    keys = [
        plain.alias("plain"),
        *(
            # is_error and needs_ranking are False for every plain row already.
            F.col(name) if name in ("device_id", "is_error", "needs_ranking")
            else F.when(~plain, F.col(name)).alias(name)
            for name in ROW_COLUMNS
        ),
    ]
    return flagged.groupBy(*keys).agg(F.count(F.lit(1)).alias("weight")).select(*COMPACT_COLUMNS)


def type_log_fields(parsed: DataFrame) -> DataFrame:
    """The timestamp (UTC), cpu_temp_celsius and memory_usage_gb of well-formed rows as values."""
    well_formed = F.col("malformed_detail").isNull()
    return _adding(
        parsed,
        F.when(well_formed, timestamp_rule.instant("timestamp")).alias("parsed_timestamp"),
        F.when(well_formed, F.col("cpu_temp_celsius").cast("int")).alias("parsed_cpu"),
        F.when(well_formed, F.col("memory_usage_gb").cast("double")).alias("parsed_memory"),
    )


REPEATED_HEADER = "the header line again, among the data rows"


def rank_rows(typed: DataFrame, header_lines: set[str] | frozenset[str] = frozenset()) -> DataFrame:
    """docs/contract.md, section 3, step 2, and each file's header line, in one ranking.

    Duplicates: of the well-formed rows that share a log_id (those `flag_repeated` marked), all but
    the one with the earliest timestamp (`is_duplicate`); ties keep the first line in file order,
    so reruns mark the same rows.

    Headers: `header_lines` are the files' first lines as `storage.check_headers` read them. The
    first line of each file that reads like one (`is_file_header`) is that file's header and no
    row; the header's text again, further down, is data, and malformed (REPEATED_HEADER): removing
    every such line would drop it uncounted. A byte order mark, which the line reader may or may
    not keep, does not count. `line_number` follows each file's order (Spark reads a file's first
    split in its lowest partition). Header-like lines never parse (their timestamp is a column
    name), so they are among the rows that `compact_rows` kept whole.

    Only those rows are ranked, so the shuffle is as small as the repeats and the headers.
    """
    texts = sorted({line.removeprefix(storage.BOM) for line in header_lines})
    header_like = F.lit(False)
    if texts:
        header_like = F.coalesce(storage.without_bom(F.col("line")).isin(*texts), F.lit(False))
    # Only single rows are ranked. Written with `weight`, which the aggregation of `compact_rows`
    # computes, the split stays above that aggregation: pushed below it, it would give each
    # branch an aggregation, and a parse, of its own.
    to_rank = F.when(header_like | F.col("needs_ranking"), F.col("weight") == 1).otherwise(F.lit(False))
    first = Window.partitionBy(
        F.when(header_like, F.col("source_file")), F.when(~header_like, F.col("log_id"))
    ).orderBy("parsed_timestamp", "source_file", "line_number")
    columns = [F.col(name) for name in typed.columns]
    ranked = typed.filter(to_rank).select(
        *columns, header_like.alias("header_like"), F.row_number().over(first).alias("rank")
    )
    single = typed.filter(~to_rank).select(*columns, F.lit(False).alias("header_like"), F.lit(1).alias("rank"))
    rows = ranked.unionByName(single)
    later = F.col("rank") > 1
    return rows.select(
        *(
            F.when(F.col("header_like") & later, F.lit(REPEATED_HEADER)).otherwise(F.col(name)).alias(name)
            if name == "malformed_detail"
            else F.col(name)
            for name in typed.columns
        ),
        (F.col("header_like") & ~later).alias("is_file_header"),
        (~F.col("header_like") & later).alias("is_duplicate"),
    )


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


def sale_owners(in_force: DataFrame, customers: DataFrame) -> DataFrame:
    """Every sale in force (`sales_in_force`) with its customer (`current_customers`), if known.

    The two small reference tables, joined once, so that a match needs one broadcast. When both
    come in one partition (as `etl` reads them), the join needs no shuffle either.
    """
    known = customers.select(F.col("customer_id").alias("known_customer_id"), "customer_name", "industry")
    return in_force.join(
        known.hint("shuffle_hash"), on=F.col("customer_id") == F.col("known_customer_id"), how="left"
    ).select(
        "device_id",
        "sale_id",
        "customer_id",
        "sale_date",
        "valid_until",
        "customer_name",
        "industry",
        F.col("known_customer_id").isNotNull().alias("known_customer"),
    )


OWNER_COLUMNS = (
    "match_day", "sale_id", "customer_id", "customer_name", "industry", "sale_date", "days_since_sale", "owner_outcome"
)


def match_owner(
    rows: DataFrame, day: Column, to_match: Column, owners: DataFrame, prefix: str = ""
) -> DataFrame:
    """docs/contract.md, section 3, steps 4 to 6 for dated device rows (errors, alerts, device-days):
    the owner on `day`.

    For the rows where `to_match` holds, the device's sale in force on `day` (the latest sale on or
    before it; a resold device belongs to its current owner) and that sale's customer: adds
    OWNER_COLUMNS, `days_since_sale` being whole days from the sale to `day`, and `owner_outcome` no
    sale, unknown customer or loaded (NULL where `to_match` does not hold). `owners` is
    `sale_owners(...)`, broadcast; other rows join on a NULL key, which matches nothing and costs
    nothing. The added columns' names start with `prefix`, so that one frame can be matched twice.
    """
    sales = F.broadcast(
        owners.select(
            F.col("device_id").alias("sale_device_id"),
            "sale_id",
            F.col("customer_id").alias("sale_customer_id"),
            "sale_date",
            "valid_until",
            "customer_name",
            "industry",
            "known_customer",
        )
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
    joined = with_keys.join(sales, on=in_force_on_day, how="left")
    owner_outcome = (
        F.when(F.col("match_device_id").isNull(), F.lit(None).cast("string"))
        .when(F.col("sale_id").isNull(), F.lit(schemas.NO_SALE))
        .when(~F.col("known_customer"), F.lit(schemas.UNKNOWN_CUSTOMER))
        .otherwise(F.lit(schemas.LOADED_OUTCOME))
    )
    known = F.col("known_customer")
    added = (
        F.col("match_day"),
        F.col("sale_id"),
        F.col("sale_customer_id"),
        F.when(known, F.col("customer_name")),
        F.when(known, F.col("industry")),
        F.col("sale_date"),
        F.datediff(F.col("match_day"), F.col("sale_date")),
        owner_outcome,
    )
    return joined.select(
        *(F.col(name) for name in rows.columns),
        *(column.alias(prefix + name) for column, name in zip(added, OWNER_COLUMNS, strict=True)),
    )


# Not an outcome: the line of a file that is its header (`rank_rows`), which the day does not count.
FILE_HEADER = "file_header"
CLASSIFIED_COLUMNS = (
    *COMPACT_COLUMNS, *TYPED_COLUMNS, "is_duplicate", "outcome",
    "sale_id", "customer_id", "customer_name", "industry", "sale_date", "days_since_sale", "day_owner",
)
# The owner that a device-day takes (`device_days`), as `day_owner` and the loaded errors carry it.
DAY_OWNER_FIELDS = ("sale_date", "sale_id", "customer_id", "customer_name", "industry")


def classify(ranked: DataFrame, owners: DataFrame, log_date: date) -> DataFrame:
    """docs/contract.md, section 3, steps 3 to 6: the outcome of every row, and the enrichment of errors.

    `ranked` is `rank_rows`' output. `owners` is `sale_owners(...)`. Only kept error rows look up
    their owner, at the error's UTC day.

    `day_owner` is for the exposure (`device_days`): the device's owner at `log_date` (D), where the
    sale in force then has a known customer, on each kept row whose own match does not already say
    it (every kept row but the errors of UTC day D); NULL otherwise. Both matches of a row read the
    same broadcast of the owners.
    """
    kept = F.col("malformed_detail").isNull() & ~F.col("is_duplicate") & ~F.col("is_file_header")
    kept_error = kept & F.col("is_error")
    error_day = utc_date(F.col("parsed_timestamp"))
    day_match = kept & (~F.col("is_error") | (error_day != F.lit(log_date)))
    # D only where it is matched (NULL elsewhere): as a constant, the optimizer would push it into
    # the owners' side of this match, and the two matches could no longer share their broadcast.
    matched = (
        ranked.transform(match_owner, F.when(day_match, F.lit(log_date)), day_match, owners, "day_")
        .transform(match_owner, error_day, kept_error, owners)
    )
    outcome = (
        F.when(F.col("is_file_header"), F.lit(FILE_HEADER))
        .when(F.col("malformed_detail").isNotNull(), F.lit(schemas.MALFORMED))
        .when(F.col("is_duplicate"), F.lit(schemas.DUPLICATE))
        .when(~F.col("is_error"), F.lit(schemas.NON_ERROR))
        .otherwise(F.col("owner_outcome"))
    )
    day_owner = F.when(
        F.col("day_owner_outcome") == schemas.LOADED_OUTCOME,
        F.struct(*(F.col(f"day_{name}").alias(name) for name in DAY_OWNER_FIELDS)),
    )
    return matched.select(
        *COMPACT_COLUMNS,
        *TYPED_COLUMNS,
        "is_duplicate",
        outcome.alias("outcome"),
        "sale_id",
        "customer_id",
        "customer_name",
        "industry",
        "sale_date",
        "days_since_sale",
        day_owner.alias("day_owner"),
    )


def classify_lines(
    lines: DataFrame, owners: DataFrame, log_date: date, header_lines: set[str] | frozenset[str] = frozenset()
) -> DataFrame:
    """The day's raw lines (line, source_file) of day `log_date` through steps 1 to 6, in order:
    `parse_log_lines` to `classify`. `owners` is `sale_owners(...)`, `header_lines` as `rank_rows`
    takes them."""
    return (
        lines.transform(parse_log_lines)
        .transform(flag_repeated, repeated_log_ids(lines))
        .transform(compact_rows)
        .transform(type_log_fields)
        .transform(rank_rows, header_lines)
        .transform(classify, owners, log_date)
    )


def _total(condition: Column, of: str = "weight") -> Column:
    return F.coalesce(F.sum(F.when(condition, F.col(of))), F.lit(0)).cast("long")


DEVICE_DAY_COUNTS = (*schemas.OUTCOMES, FILE_HEADER)


def device_days(classified: DataFrame, log_date: date) -> DataFrame:
    """One row per device_id of the day (malformed rows without one included): its rows per outcome,
    for the audit, and its `device_day_activity` (docs/contract.md, section 4) where it has one.

    The events are the device's well-formed, non-duplicate rows, the errors its loaded ones. The
    device-day is matched once, at D, by `match_owner`, the rule the errors go through (`classify`
    leaves that owner on the kept rows, in `day_owner` or as the loaded errors' own of UTC day D);
    its errors are exactly the day's loaded errors, so SUM(errors) = loaded. An error that arrived a
    day late (UTC day D - 1) was matched at its own day; should the device have no owner with a
    known customer at D (sold again on D to a customer missing from the snapshot), the device-day
    keeps the owner of its latest loaded error rather than losing the error. That owner is the loaded
    errors' sale with the latest sale_date: a later error is in force under the same or a later
    sale, and of one device and day only one sale is ever in force. A device with neither has no
    device-day (`has_activity` false).
    """
    outcome = F.col("outcome")
    loaded = outcome == schemas.LOADED_OUTCOME
    kept = outcome.isin(schemas.NON_ERROR, schemas.NO_SALE, schemas.UNKNOWN_CUSTOMER, schemas.LOADED_OUTCOME)
    error_owner = F.struct(*DAY_OWNER_FIELDS)
    loaded_at_day = loaded & (utc_date(F.col("parsed_timestamp")) == F.lit(log_date))
    totals = classified.groupBy("device_id").agg(
        *(_total(outcome == name).alias(name) for name in DEVICE_DAY_COUNTS),
        _total(kept).alias("events"),
        _total(loaded).alias("errors"),
        F.coalesce(F.max("day_owner"), F.max(F.when(loaded_at_day, error_owner))).alias("day_owner"),
        F.max(F.when(loaded, error_owner)).alias("error_owner"),
    )
    owner = F.coalesce(F.col("day_owner"), F.col("error_owner"))
    day = F.lit(log_date)
    return totals.select(
        "device_id",
        *DEVICE_DAY_COUNTS,
        owner.isNotNull().alias("has_activity"),
        day.alias("log_date"),
        owner["sale_id"].alias("sale_id"),
        owner["customer_id"].alias("customer_id"),
        owner["customer_name"].alias("customer_name"),
        owner["industry"].alias("industry"),
        F.datediff(day, owner["sale_date"]).alias("days_since_sale"),
        "events",
        "errors",
    )


def device_day_activity(days: DataFrame) -> DataFrame:
    """The `device_day_activity` rows of `device_days`."""
    return days.filter(F.col("has_activity")).select("log_date", *schemas.DEVICE_DAY_ACTIVITY.fieldNames())


def day_totals(days: DataFrame) -> DataFrame:
    """The day's rows per outcome, its file headers, device-days and their errors, in one row."""
    activity = F.col("has_activity")
    return days.agg(
        *(F.sum(name).alias(name) for name in DEVICE_DAY_COUNTS),
        F.count(F.when(activity, True)).alias("device_days"),
        _total(activity, "errors").alias("activity_errors"),
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
    """Input rows per outcome (outcomes without rows are absent; file headers are no rows)."""
    return (
        classified.filter(F.col("outcome") != FILE_HEADER)
        .groupBy("outcome")
        .agg(F.sum("weight").alias("rows"))
        .select("outcome", "rows")
    )


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
