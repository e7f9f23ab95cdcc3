"""docs/contract.md, section 3, rule by rule, on tiny inline DataFrames."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from tests import contract_rules
from tests.support import assert_frame_equal

from hardware_correlation import schemas
from hardware_correlation import timestamp_rule, transforms

DAY = date(2025, 10, 1)
HEADER = ",".join(schemas.LOG_COLUMNS)

# DEV-1: sold once. DEV-2: resold (SALE-20 then SALE-21). DEV-3: two sales on one day (the greatest
# sale_id wins). DEV-4: sold after the errors below. DEV-5: sold to a customer missing from the
# snapshot. DEV-9 was never sold.
SALES = [
    ("SALE-10", "CUST-1", "DEV-1", "2025-01-15"),
    ("SALE-20", "CUST-1", "DEV-2", "2024-03-10"),
    ("SALE-21", "CUST-2", "DEV-2", "2025-07-20"),
    ("SALE-31", "CUST-1", "DEV-3", "2025-09-01"),
    ("SALE-32", "CUST-2", "DEV-3", "2025-09-01"),
    ("SALE-40", "CUST-1", "DEV-4", "2025-10-02"),
    ("SALE-50", "CUST-7", "DEV-5", "2025-05-12"),
]
CUSTOMERS = [
    ("CUST-1", "Harborview Hotels", "Hospitality"),
    ("CUST-2", "EventXperts", "Live Events"),
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc).replace(tzinfo=None)


@pytest.fixture(scope="module")
def reference(spark):
    sales = spark.createDataFrame(SALES, schemas.RAW_SALES)
    customers = spark.createDataFrame(CUSTOMERS, schemas.RAW_CUSTOMERS)
    return transforms.sale_owners(transforms.sales_in_force(sales), transforms.current_customers(customers))


def lines(spark, *texts: str, source_file: str = "s3://raw/hardware_logs/dt=2025-10-01/a.csv"):
    return spark.createDataFrame([(text, source_file) for text in texts], schemas.LOG_LINES)


def classify(spark, owners, *texts: str, header_lines: frozenset[str] = frozenset()):
    """The transforms in run_etl's order (`classify_lines`). Plain non-errors are counted per device (`compact_rows`):
    they keep no line, and only `outcome_counts` sees them."""
    return transforms.classify_lines(lines(spark, *texts), owners, DAY, header_lines)


def outcomes(classified) -> dict[str, str]:
    return {row["line"]: row["outcome"] for row in classified.collect() if not row["plain"]}


def counts(classified) -> dict[str, int]:
    return {row["outcome"]: row["rows"] for row in transforms.outcome_counts(classified).collect()}


def details(spark, *texts: str) -> dict[str, str | None]:
    parsed = lines(spark, *texts).transform(transforms.parse_log_lines)
    return {row["line"]: row["malformed_detail"] for row in parsed.collect()}


# -- step 1: malformed -------------------------------------------------------------------------


MALFORMED = (
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70", "wrong number of fields"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5,extra", "wrong number of fields"),
    ("garbage", "wrong number of fields"),
    ('"L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5', "badly quoted field"),
    (",2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5", "empty log_id"),
    ("  ,2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5", "empty log_id"),
    ("L1,2025-10-01T10:00:00Z,,ERROR,70,3.5", "empty device_id"),
    ("L1,2025-10-01T10:00:00Z,DEV-1, ,70,3.5", "empty event_type"),
    ("L1,,DEV-1,ERROR,70,3.5", "empty timestamp"),
    ("L1,not-a-timestamp,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T10:00:00,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01 10:00:00Z,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-13-01T10:00:00Z,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-02-30T10:00:00Z,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T24:00:00Z,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T10:60:00Z,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T10:00:60Z,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T10:00:00+24:00,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T10:00:00+05:60,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,hot,3.5", "cpu_temp_celsius is not an integer"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,91.5,3.5", "cpu_temp_celsius is not an integer"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR, 70,3.5", "cpu_temp_celsius is not an integer"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,99999999999,3.5", "cpu_temp_celsius is not an integer"),
    ("L1,2025-10-01T10:00:00+23:59,DEV-1,ERROR,70,3.5", "unparseable timestamp"),
    ("L1,2014-12-31T23:59:59Z,DEV-1,ERROR,70,3.5", "timestamp before 2015-01-01 (UTC)"),
    ("L1,9999-12-31T23:30:00-01:00,DEV-1,ERROR,70,3.5", "timestamp after 9999-12-31 (UTC)"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,high", "memory_usage_gb is not a number"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,4GB", "memory_usage_gb is not a number"),
    ("L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,NaN", "memory_usage_gb is not a number"),
)
WELL_FORMED = (
    "L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5",
    "L1,2025-10-01T10:00:00.123456Z,DEV-1,ERROR,-5,+3",
    "L1, 2025-10-01T23:30:00-05:00 ,DEV-1,info,+70,.5",
    "L1,2025-10-01T10:00:00+18:00,DEV-1,ERROR,2147483647,1e3",
    "L1,2024-02-29T10:00:00Z,DEV-1,ERROR,,",
)


def test_malformed_rows_name_the_first_rule_they_break_and_well_formed_rows_none(spark):
    # One DataFrame for all cases: a Spark job per case would make this the slowest test here.
    expected = {**dict(MALFORMED), **dict.fromkeys(WELL_FORMED)}
    assert details(spark, *expected) == expected


# Where the warehouse's types bound the words of docs/contract.md: cpu_temp_celsius goes into a 32-bit
# `integer` column, which holds no integer outside -2147483648..2147483647; a timestamp's UTC day
# becomes a YYYY-MM-DD day (dt=, log_date), the last of which is 9999-12-31. Digits are ASCII only.
AT_THE_LIMITS = (
    ("B01,2025-10-01T10:00:00Z,DEV-1,ERROR,2147483647,3.5", "loaded"),
    ("B02,2025-10-01T10:00:00Z,DEV-1,ERROR,-2147483648,3.5", "loaded"),
    ("B03,2025-10-01T10:00:00Z,DEV-1,ERROR,+00000000000070,3.5", "loaded"),
    ("B04,2025-10-01T10:00:00Z,DEV-1,ERROR,2147483648,3.5", "malformed"),
    ("B05,2025-10-01T10:00:00Z,DEV-1,ERROR,-2147483649,3.5", "malformed"),
    ("B06,2025-10-01T10:00:00Z,DEV-1,ERROR,99999999999,3.5", "malformed"),
    (f"B07,2025-10-01T10:00:00Z,DEV-1,ERROR,{'9' * 5000},3.5", "malformed"),
    ("B08,2025-10-01T10:00:00Z,DEV-1,ERROR,\u0667\u0660,3.5", "malformed"),
    ("B09,2025-10-01T10:00:00Z,DEV-1,ERROR,70,\u0663.\u0665", "malformed"),
    ("B10,9999-12-31T23:59:59.999999Z,DEV-1,ERROR,70,3.5", "loaded"),
    ("B11,9999-12-31T23:30:00+01:00,DEV-1,ERROR,70,3.5", "loaded"),
    ("B12,9999-12-31T23:30:00-01:00,DEV-1,ERROR,70,3.5", "malformed"),
    ("B13,9999-12-31T23:59:59.5-00:01,DEV-1,ERROR,70,3.5", "malformed"),
)


def test_the_pipeline_and_the_contract_rules_agree_at_the_limits(spark, reference):
    texts = [text for text, _ in AT_THE_LIMITS]
    sales: dict[str, list[tuple[date, str, str]]] = {}
    for sale_id, customer_id, device_id, sale_date in SALES:
        sales.setdefault(device_id, []).append((date.fromisoformat(sale_date), sale_id, customer_id))
    customers = {customer_id for customer_id, _, _ in CUSTOMERS}
    by_rules = {
        result.line: (result.outcome, result.days_since_sale)
        for result in contract_rules.classify(texts, customers, sales)
    }
    by_pipeline = {
        row["line"]: (schemas.AUDIT_NAMES[row["outcome"]], row["days_since_sale"])
        for row in classify(spark, reference, *texts).select("line", "outcome", "days_since_sale").collect()
    }
    expected = dict(AT_THE_LIMITS)
    assert {line: outcome for line, (outcome, _) in by_rules.items()} == expected
    assert {line: outcome for line, (outcome, _) in by_pipeline.items()} == expected
    assert by_pipeline == by_rules


def test_quoted_fields_follow_csv_quoting(spark, reference):
    quoted = '"L,1","2025-10-01T10:00:00Z","DEV-1"," error ","70",""'
    escaped = 'L2,2025-10-01T10:00:00Z,DEV-1,"ERR""OR",70,3.5'
    parsed = lines(spark, quoted, escaped).transform(transforms.parse_log_lines)
    rows = {row["line"]: row for row in parsed.collect()}
    assert [rows[quoted][name] for name in schemas.LOG_COLUMNS] == [
        "L,1", "2025-10-01T10:00:00Z", "DEV-1", " error ", "70", None
    ]
    assert rows[quoted]["malformed_detail"] is None and rows[quoted]["is_error"]
    assert rows[escaped]["event_type"] == 'ERR"OR' and not rows[escaped]["is_error"]


def test_empty_numeric_fields_are_null_and_the_row_is_loaded(spark, reference):
    line = "L1,2025-10-01T10:00:00Z,DEV-1,ERROR,,"
    classified = classify(spark, reference, line)
    row = classified.collect()[0]
    assert row["outcome"] == schemas.LOADED_OUTCOME
    assert row["parsed_cpu"] is None and row["parsed_memory"] is None


def test_typed_values(spark):
    parsed = lines(
        spark,
        "L1,2025-10-01T23:30:00-05:00,DEV-1,ERROR,-7,1.5e2",
        "L2,2025-10-01T10:00:00.5Z,DEV-1,ERROR,70,.25",
        "L3,2025-10-01T00:15:00+05:30,DEV-1,ERROR,70,3",
    ).transform(transforms.parse_log_lines)
    typed = parsed.transform(transforms.type_log_fields).select(
        "log_id", "parsed_timestamp", "parsed_cpu", "parsed_memory"
    )
    assert_frame_equal(
        typed,
        [
            Row(log_id="L1", parsed_timestamp=datetime(2025, 10, 2, 4, 30), parsed_cpu=-7, parsed_memory=150.0),
            Row(log_id="L2", parsed_timestamp=datetime(2025, 10, 1, 10, 0, 0, 500000), parsed_cpu=70, parsed_memory=0.25),
            Row(log_id="L3", parsed_timestamp=datetime(2025, 9, 30, 18, 45), parsed_cpu=70, parsed_memory=3.0),
        ],
    )


# -- step 2: duplicates ------------------------------------------------------------------------


def test_duplicates_keep_the_earliest_timestamp(spark, reference):
    later = "L1,2025-10-01T09:20:00Z,DEV-1,ERROR,88,7.9"
    earlier = "L1,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9"
    assert outcomes(classify(spark, reference, later, earlier)) == {
        later: schemas.DUPLICATE, earlier: schemas.LOADED_OUTCOME
    }


def test_an_earlier_non_error_makes_the_error_a_duplicate(spark, reference):
    error = "L1,2025-10-01T09:20:00Z,DEV-1,ERROR,88,7.9"
    info = "L1,2025-10-01T09:15:00+00:00,DEV-1,INFO,50,1.0"
    assert outcomes(classify(spark, reference, error, info)) == {error: schemas.DUPLICATE, info: schemas.NON_ERROR}


def test_exact_copies_keep_one_and_count_the_others(spark, reference):
    line = "L1,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9"
    classified = classify(spark, reference, line, line, line)
    assert counts(classified) == {schemas.LOADED_OUTCOME: 1, schemas.DUPLICATE: 2}


def test_timestamp_ties_keep_the_first_line_of_the_file(spark, reference):
    first = "L1,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9"
    second = "L1,2025-10-01T10:15:00+01:00,DEV-1,INFO,88,7.9"
    assert outcomes(classify(spark, reference, first, second)) == {first: schemas.LOADED_OUTCOME, second: schemas.DUPLICATE}
    assert outcomes(classify(spark, reference, second, first)) == {second: schemas.NON_ERROR, first: schemas.DUPLICATE}


def test_malformed_rows_do_not_take_part_in_duplicates(spark, reference):
    bad = "L1,2025-10-01T09:00:00Z,DEV-1,ERROR,hot,7.9"
    good = "L1,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9"
    assert outcomes(classify(spark, reference, bad, good)) == {bad: schemas.MALFORMED, good: schemas.LOADED_OUTCOME}


def test_repeated_log_ids_are_only_the_repeated_ones(spark):
    parsed = lines(
        spark,
        "L1,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9",
        "L1,2025-10-01T09:16:00Z,DEV-1,ERROR,88,7.9",
        "L2,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9",
    ).transform(transforms.parse_log_lines)
    expected = parsed.sparkSession.range(1).select(F.xxhash64(F.lit("L1")).alias("log_id_hash"))
    assert_frame_equal(transforms.repeated_log_ids(parsed), expected)



def test_the_first_field_is_the_parsed_log_id(spark):
    # repeated_log_ids reads only the first field: it must be the log_id that the parse finds.
    texts = [
        "L1,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9",
        " L2 ,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9",
        ',2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9',
        '"L,3",2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9',
        '"L""4""",2025-10-01T09:15:00Z,"DEV-1",ERROR,88,7.9',
        'L5,"2025-10-01T09:15:00Z",DEV-1,ERROR,88,7.9',
        '"",2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9',
        "L6",
        # Quotes after the first field, or within it but not at its start.
        'L"7,2025-10-01T09:15:00Z,"DEV-1",ERROR,88,7.9',
        ' "L8",2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9',
        'L9,2025-10-01T09:15:00Z,DEV-1,"ERROR,88,7.9',
    ]
    parsed = lines(spark, *texts).transform(transforms.parse_log_lines)
    found = parsed.select("log_id", transforms.first_field(F.col("line")).alias("first_field")).collect()
    assert [row["first_field"] for row in found] == [row["log_id"] for row in found]
    assert [row["log_id"] for row in found] == [
        "L1", " L2 ", None, "L,3", 'L"4"', "L5", None, "L6", 'L"7', ' "L8"', "L9"
    ]

# -- step 3: non-error -------------------------------------------------------------------------


def test_error_in_any_case_and_with_spaces_and_nothing_else(spark, reference):
    errors = ["ERROR", "error", " Error ", "eRRoR  "]
    others = ["INFO", "WARNING", "ERRORS", "E RROR"]
    line = "L{},2025-10-01T10:00:00Z,DEV-1,{},70,3.5"
    expected = {line.format(i, event): schemas.LOADED_OUTCOME for i, event in enumerate(errors)}
    classified = classify(spark, reference, *expected, *(line.format(i + 10, event) for i, event in enumerate(others)))
    assert outcomes(classified) == expected
    assert counts(classified) == {schemas.LOADED_OUTCOME: 4, schemas.NON_ERROR: 4}


def test_plain_non_errors_are_counted_per_device_and_other_rows_kept(spark, reference):
    day = [
        "L1,2025-10-01T09:00:00Z,DEV-1,INFO,50,1.0",
        "L2,2025-10-01T09:01:00Z,DEV-1,INFO,50,1.0",
        "L3,2025-10-01T09:02:00Z,DEV-2,DEBUG,50,1.0",
        "L4,2025-10-01T09:03:00Z,DEV-1,INFO,hot,1.0",
        "L5,2025-10-01T09:04:00Z,DEV-1,INFO,50,1.0",
        "L5,2025-10-01T09:05:00Z,DEV-1,INFO,50,1.0",
    ]
    rows = classify(spark, reference, *day).collect()
    assert sorted((row["device_id"], row["weight"]) for row in rows if row["plain"]) == [("DEV-1", 2), ("DEV-2", 1)]
    assert sorted(row["line"] for row in rows if not row["plain"]) == sorted(day[3:])
    assert {row["line"]: row["outcome"] for row in rows if not row["plain"]} == {
        day[3]: schemas.MALFORMED, day[4]: schemas.NON_ERROR, day[5]: schemas.DUPLICATE
    }


def test_the_first_line_of_each_file_that_reads_as_the_header_is_no_row(spark, reference):
    bom_header = "\ufeff" + HEADER
    classified = classify(
        spark, reference, bom_header, "L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5", HEADER,
        header_lines=frozenset({bom_header}),
    )
    assert outcomes(classified) == {
        bom_header: transforms.FILE_HEADER,
        "L1,2025-10-01T10:00:00Z,DEV-1,ERROR,70,3.5": schemas.LOADED_OUTCOME,
        HEADER: schemas.MALFORMED,
    }
    assert counts(classified) == {schemas.LOADED_OUTCOME: 1, schemas.MALFORMED: 1}


# -- steps 4 to 6: the sale in force, the customer, the age ------------------------------------


def loaded(classified):
    return classified.transform(transforms.loaded_rows, DAY).drop("log_date")


def test_resold_device_is_attributed_to_its_current_owner_once(spark, reference):
    before = "L1,2025-07-19T12:00:00Z,DEV-2,ERROR,70,3.5"
    after = "L2,2025-10-01T12:00:00Z,DEV-2,ERROR,71,3.6"
    rows = {row["log_id"]: row for row in loaded(classify(spark, reference, before, after)).collect()}
    assert (rows["L1"]["sale_id"], rows["L1"]["customer_id"], rows["L1"]["days_since_sale"]) == ("SALE-20", "CUST-1", 496)
    assert (rows["L2"]["sale_id"], rows["L2"]["customer_id"], rows["L2"]["days_since_sale"]) == ("SALE-21", "CUST-2", 73)


def test_same_day_sales_tie_goes_to_the_greatest_sale_id(spark, reference):
    line = "L1,2025-10-01T12:00:00Z,DEV-3,ERROR,70,3.5"
    row = loaded(classify(spark, reference, line)).collect()[0]
    assert (row["sale_id"], row["customer_name"], row["days_since_sale"]) == ("SALE-32", "EventXperts", 30)


def test_sale_on_the_errors_day_is_in_force(spark, reference):
    before = "L1,2025-10-01T23:59:59Z,DEV-4,ERROR,70,3.5"
    same_day = "L2,2025-10-02T00:00:00Z,DEV-4,ERROR,70,3.5"
    classified = classify(spark, reference, before, same_day)
    assert outcomes(classified) == {before: schemas.NO_SALE, same_day: schemas.LOADED_OUTCOME}
    assert loaded(classified).collect()[0]["days_since_sale"] == 0


def test_offset_timestamp_crossing_midnight_is_aged_at_its_utc_day(spark, reference):
    # 23:30 at -05:00 is 04:30 UTC the next day: a day older, and sold the day before in UTC.
    crossing = "L1,2025-10-01T23:30:00-05:00,DEV-4,ERROR,70,3.5"
    local_only = "L2,2025-10-01T23:30:00Z,DEV-4,ERROR,70,3.5"
    classified = classify(spark, reference, crossing, local_only)
    assert outcomes(classified) == {crossing: schemas.LOADED_OUTCOME, local_only: schemas.NO_SALE}
    row = loaded(classified).collect()[0]
    assert row["error_timestamp"] == datetime(2025, 10, 2, 4, 30)
    assert row["days_since_sale"] == 0


def test_never_sold_device_is_no_sale(spark, reference):
    line = "L1,2025-10-01T12:00:00Z,DEV-9,ERROR,70,3.5"
    assert outcomes(classify(spark, reference, line)) == {line: schemas.NO_SALE}


def test_sale_to_a_customer_missing_from_the_snapshot_is_unknown_customer(spark, reference):
    line = "L1,2025-10-01T12:00:00Z,DEV-5,ERROR,70,3.5"
    classified = classify(spark, reference, line)
    assert outcomes(classified) == {line: schemas.UNKNOWN_CUSTOMER}
    quarantined = classified.transform(transforms.quarantine_rows, DAY).collect()[0]
    assert quarantined["reason"] == schemas.UNKNOWN_CUSTOMER
    assert quarantined["detail"] == "customer_id CUST-7 is not in customers"


def test_loaded_rows_have_the_contract_columns(spark, reference):
    line = "LOG-002,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9"
    rows = classify(spark, reference, line).transform(transforms.loaded_rows, DAY)
    assert tuple(rows.columns) == schemas.LOADED_COLUMNS
    assert_frame_equal(
        rows,
        [
            Row(
                log_id="LOG-002", device_id="DEV-1", cpu_temp_celsius=88, memory_usage_gb=7.9,
                sale_id="SALE-10", days_since_sale=259, customer_name="Harborview Hotels",
                industry="Hospitality", customer_id="CUST-1", sale_date=date(2025, 1, 15),
                error_timestamp=datetime(2025, 10, 1, 9, 15), log_date=DAY,
            )
        ],
    )


def test_quarantine_keeps_the_raw_fields_and_the_reason(spark, reference):
    bad = "L1,2025-10-01T10:00:00Z,DEV-1,ERROR,hot,3.5"
    short = "L2,2025-10-01T10:00:00Z,DEV-1,ERROR"
    rows = classify(spark, reference, bad, short).transform(transforms.quarantine_rows, DAY)
    assert tuple(rows.columns) == tuple(field.name for field in schemas.QUARANTINE.fields)
    by_id = {row["log_id"]: row for row in rows.collect()}
    assert by_id["L1"]["cpu_temp_celsius"] == "hot"
    assert (by_id["L1"]["reason"], by_id["L1"]["detail"]) == (schemas.MALFORMED, "cpu_temp_celsius is not an integer")
    assert by_id["L2"]["raw_line"] == short and by_id["L2"]["log_date"] == DAY


def test_sales_that_cannot_be_placed_in_time_are_not_in_force(spark):
    sales = spark.createDataFrame(
        [
            ("SALE-1", "CUST-1", "DEV-1", "2025-01-15"),
            ("SALE-2", "CUST-2", "DEV-1", "2025/06/01"),
            (None, "CUST-2", "DEV-1", "2025-07-01"),
            ("SALE-3", "CUST-2", None, "2025-07-01"),
        ],
        schemas.RAW_SALES,
    )
    assert_frame_equal(
        transforms.sales_in_force(sales),
        [Row(device_id="DEV-1", sale_id="SALE-1", customer_id="CUST-1", sale_date=date(2025, 1, 15), valid_until=None)],
    )
    customers = spark.createDataFrame(
        [("CUST-1", "Acme", "Retail"), (" ", "Nameless", "Retail"), (None, "Nobody", None)], schemas.RAW_CUSTOMERS
    )
    assert_frame_equal(
        transforms.rejected_reference_rows(sales, customers),
        [
            Row(source_table="sales", row='{"sale_id":"SALE-2","customer_id":"CUST-2","device_id":"DEV-1","sale_date":"2025/06/01"}', reason="sale_date is not a YYYY-MM-DD day"),
            Row(source_table="sales", row='{"customer_id":"CUST-2","device_id":"DEV-1","sale_date":"2025-07-01"}', reason="empty sale_id"),
            Row(source_table="sales", row='{"sale_id":"SALE-3","customer_id":"CUST-2","sale_date":"2025-07-01"}', reason="empty device_id"),
            Row(source_table="customers", row='{"customer_id":" ","customer_name":"Nameless","industry":"Retail"}', reason="empty customer_id"),
            Row(source_table="customers", row='{"customer_name":"Nobody"}', reason="empty customer_id"),
        ],
    )
    assert transforms.audit_record({}, DAY, None, {"sales": 3, "customers": 2})["rejected_sales"] == 3


def test_sales_in_force_intervals(spark):
    in_force = transforms.sales_in_force(spark.createDataFrame(SALES, schemas.RAW_SALES)).filter(
        F.col("device_id").isin("DEV-2", "DEV-3")
    )
    assert_frame_equal(
        in_force,
        [
            Row(device_id="DEV-2", sale_id="SALE-20", customer_id="CUST-1", sale_date=date(2024, 3, 10), valid_until=date(2025, 7, 20)),
            Row(device_id="DEV-2", sale_id="SALE-21", customer_id="CUST-2", sale_date=date(2025, 7, 20), valid_until=None),
            Row(device_id="DEV-3", sale_id="SALE-32", customer_id="CUST-2", sale_date=date(2025, 9, 1), valid_until=None),
        ],
    )


def test_repeated_customer_ids_give_one_customer(spark):
    customers = spark.createDataFrame(
        [("CUST-1", "Old Name", "Retail"), ("CUST-1", "New Name", "Retail"), ("", "Nobody", "None")],
        schemas.RAW_CUSTOMERS,
    )
    assert_frame_equal(
        transforms.current_customers(customers),
        [Row(customer_id="CUST-1", customer_name="Old Name", industry="Retail")],
    )


# -- the day as a whole ------------------------------------------------------------------------


def test_empty_partition_gives_zero_counts(spark, reference):
    classified = classify(spark, reference)
    assert classified.count() == 0
    record = transforms.audit_record({}, DAY, "jr_1")
    assert record == {
        "log_date": "2025-10-01", "input_rows": 0, "malformed": 0, "duplicates": 0, "non_error": 0,
        "no_sale": 0, "unknown_customer": 0, "loaded": 0, "rejected_sales": 0, "rejected_customers": 0,
        "job_run_id": "jr_1",
    }


def test_audit_equation_holds_for_a_mixed_day(spark, reference):
    day = [
        "L01,2025-10-01T09:00:00Z,DEV-1,INFO,50,1.0",
        "L02,2025-10-01T09:15:00Z,DEV-1,ERROR,88,7.9",
        "L02,2025-10-01T09:20:00Z,DEV-1,ERROR,88,7.9",
        "L03,2025-10-01T10:00:00Z,DEV-9,ERROR,70,3.5",
        "L04,2025-10-01T10:00:00Z,DEV-5,ERROR,70,3.5",
        "L05,2025-10-01T10:00:00Z,DEV-1,ERROR,hot,3.5",
        "L06,2025-10-01T10:00:00Z,DEV-1",
        "L07,2025-10-01T23:30:00-05:00,DEV-2, error ,,",
    ]
    classified = classify(spark, reference, *day)
    record = transforms.audit_record(counts(classified), DAY, None)
    assert record["input_rows"] == len(day)
    assert {name: record[name] for name in schemas.AUDIT_NAMES.values()} == {
        "malformed": 2, "duplicates": 1, "non_error": 1, "no_sale": 1, "unknown_customer": 1, "loaded": 2,
    }
    assert record["input_rows"] == sum(record[name] for name in schemas.AUDIT_NAMES.values())
    quarantined = classified.transform(transforms.quarantine_rows, DAY).count()
    assert quarantined == record["malformed"] + record["duplicates"] + record["no_sale"] + record["unknown_customer"]


def test_utc_date_does_not_depend_on_the_session_time_zone(spark):
    frame = spark.createDataFrame([(datetime(2025, 10, 2, 4, 30),)], "ts timestamp")
    previous = spark.conf.get("spark.sql.session.timeZone")
    try:
        spark.conf.set("spark.sql.session.timeZone", "America/New_York")
        shifted = frame.select(timestamp_rule.utc_date(F.col("ts")).alias("day")).collect()[0]["day"]
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assert shifted == date(2025, 10, 2)
