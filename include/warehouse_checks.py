"""The checks of day D in the warehouse once it is swapped in; a failed check fails the run.

Templates: `DAY` is rendered with the run's data interval by the check operators.
"""

from __future__ import annotations

DAY = "log_date = '{{ data_interval_start | ds }}'"

# hardware_error_analysis (docs/contract.md, section 4): keys present, one row per log_id, no negative age.
COLUMN_CHECKS = {
    "log_id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}},
    "device_id": {"null_check": {"equal_to": 0}},
    "sale_id": {"null_check": {"equal_to": 0}},
    "customer_id": {"null_check": {"equal_to": 0}},
    "days_since_sale": {"null_check": {"equal_to": 0}, "min": {"geq_to": 0}},
}

# pipeline_run_audit: one row for D whose counts add up and match the rows swapped in.
AUDIT_CHECKS = {
    "one_audit_row": {"check_statement": "COUNT(*) = 1"},
    "audit_equation": {
        "check_statement": "SUM(input_rows) = SUM(malformed + duplicates + non_error"
        " + no_sale + unknown_customer + loaded)"
    },
    "rows_match_etl": {
        "check_statement": f"SUM(loaded) = (SELECT COUNT(*) FROM hardware_error_analysis WHERE {DAY})"
    },
    "alert_audit_equation": {
        "check_statement": "SUM(alert_input_rows) = SUM(alert_malformed + alert_duplicates"
        " + alert_no_sale + alert_unknown_customer + alert_loaded)"
    },
    "alerts_match_etl": {
        "check_statement": f"SUM(alert_loaded) = (SELECT COUNT(*) FROM hardware_alerts WHERE {DAY})"
    },
    # The exposure holds every loaded error of the day, and no other: rates divide the right counts.
    "activity_errors_match_loaded": {
        "check_statement": f"SUM(loaded) = (SELECT COALESCE(SUM(errors), 0) FROM device_day_activity WHERE {DAY})"
    },
}
