"""DataFrame equality for tests.

`pyspark.testing` cannot be imported here: its package imports pandas-on-Spark, which PySpark 3.5
builds against NumPy 1 (`np.NaN`). This is the part of `assertDataFrameEqual` the tests use.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Row


def _key(row: Row) -> tuple:
    return tuple((value is None, str(value)) for value in row)


def assert_frame_equal(actual: DataFrame, expected: DataFrame | list[Row]) -> None:
    """Same column names and the same rows in any order (and the same types, for a DataFrame)."""
    if isinstance(expected, DataFrame):
        assert [(f.name, f.dataType) for f in actual.schema] == [(f.name, f.dataType) for f in expected.schema]
        expected = expected.collect()
    rows = actual.collect()
    if expected:
        assert actual.columns == list(expected[0].asDict())
    assert sorted(rows, key=_key) == sorted(expected, key=_key)
