-- Replaces day D of the warehouse (errors, alerts, device-days and the audit row) in one transaction: the operator
-- commits once, after the last statement, so a failure anywhere leaves the previous rows of D and
-- their audit row in place. The staging
-- tables are this run's own (include/run_scope.py's `staging_table`).
--
-- Two runs of day D (a manual run and a backfill run) may swap at once. The first statement makes
-- them take turns on D until commit: the second swap's DELETE then sees the first one's rows, so D
-- holds one run's rows and audit row, never a mix, and neither run fails on the other's keys.
SELECT pg_advisory_xact_lock(hashtext('hardware_correlation.swap_day'), %(log_date)s::date - DATE '1970-01-01');

DELETE FROM hardware_error_analysis WHERE log_date = %(log_date)s;

INSERT INTO hardware_error_analysis (
    log_id, device_id, cpu_temp_celsius, memory_usage_gb, sale_id, days_since_sale,
    customer_name, industry, customer_id, sale_date, error_timestamp, log_date
)
-- The load job stages days and instants as ISO-8601 text, so no time zone can shift them.
SELECT
    log_id, device_id, cpu_temp_celsius, memory_usage_gb, sale_id, days_since_sale,
    customer_name, industry, customer_id, sale_date::date, error_timestamp::timestamptz, log_date::date
FROM {{ staging_table('hardware_error_analysis', data_interval_start, run_id) }};

DELETE FROM hardware_alerts WHERE log_date = %(log_date)s;

INSERT INTO hardware_alerts (
    alert_id, device_id, error_code, details, alert_timestamp, received_at, sale_id, customer_id,
    customer_name, industry, sale_date, days_since_sale, log_date
)
SELECT
    alert_id, device_id, error_code, details, alert_timestamp::timestamptz, received_at::timestamptz,
    sale_id, customer_id, customer_name, industry, sale_date::date, days_since_sale, log_date::date
FROM {{ staging_table('hardware_alerts', data_interval_start, run_id) }};

DELETE FROM device_day_activity WHERE log_date = %(log_date)s;

INSERT INTO device_day_activity (
    log_date, device_id, sale_id, customer_id, industry, days_since_sale, events, errors
)
SELECT log_date::date, device_id, sale_id, customer_id, industry, days_since_sale, events, errors
FROM {{ staging_table('device_day_activity', data_interval_start, run_id) }};

-- The columns are include/run_audit.py's AUDIT_COLUMNS, whose values the task's parameters bind.
INSERT INTO pipeline_run_audit ({{ audit_columns | join(', ') }}, finished_at)
VALUES ({% for column in audit_columns %}%({{ column }})s, {% endfor %}now())
ON CONFLICT (log_date) DO UPDATE SET
{%- for column in audit_columns if column != 'log_date' %}
    {{ column }} = EXCLUDED.{{ column }},
{%- endfor %}
    finished_at = EXCLUDED.finished_at;

DROP TABLE {{ staging_table('hardware_error_analysis', data_interval_start, run_id) }};

DROP TABLE {{ staging_table('hardware_alerts', data_interval_start, run_id) }};

DROP TABLE {{ staging_table('device_day_activity', data_interval_start, run_id) }};
