"""The provider's SQLCheckOperator with templated `parameters`.

SQLExecuteQueryOperator renders its `parameters`, so they can be an upstream task's output (an
XComArg, resolved when the task runs); SQLCheckOperator does not. With this, a check binds the same
values as the statement it guards: check_staging binds the run's audit as swap_day_into_warehouse does.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.common.sql.operators.sql import SQLCheckOperator


class ParametrizedSQLCheckOperator(SQLCheckOperator):
    template_fields: Sequence[str] = (*SQLCheckOperator.template_fields, "parameters")
