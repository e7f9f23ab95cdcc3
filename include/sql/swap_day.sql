-- Replaces day D of the warehouse (errors, alerts, device-days and the audit row) in one transaction: the operator
-- commits once, after the last statement, so a failure anywhere leaves the previous rows of D and
-- their audit row in place. The staging
-- tables are this run's own (`run_key`).
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
FROM staging.hardware_error_analysis_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }};

DELETE FROM hardware_alerts WHERE log_date = %(log_date)s;

INSERT INTO hardware_alerts (
    alert_id, device_id, error_code, details, alert_timestamp, received_at, sale_id, customer_id,
    customer_name, industry, sale_date, days_since_sale, log_date
)
SELECT
    alert_id, device_id, error_code, details, alert_timestamp::timestamptz, received_at::timestamptz,
    sale_id, customer_id, customer_name, industry, sale_date::date, days_since_sale, log_date::date
FROM staging.hardware_alerts_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }};

DELETE FROM device_day_activity WHERE log_date = %(log_date)s;

INSERT INTO device_day_activity (
    log_date, device_id, sale_id, customer_id, industry, days_since_sale, events, errors
)
SELECT log_date::date, device_id, sale_id, customer_id, industry, days_since_sale, events, errors
FROM staging.device_day_activity_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }};

INSERT INTO pipeline_run_audit (
    log_date, input_rows, malformed, duplicates, non_error, no_sale, unknown_customer, loaded,
    alert_input_rows, alert_malformed, alert_duplicates, alert_no_sale, alert_unknown_customer,
    alert_loaded, rejected_sales, rejected_customers, dag_run_id, etl_job_run_id, load_job_run_id,
    scripts_version, finished_at
)
VALUES (
    %(log_date)s, %(input_rows)s, %(malformed)s, %(duplicates)s, %(non_error)s, %(no_sale)s,
    %(unknown_customer)s, %(loaded)s, %(alert_input_rows)s, %(alert_malformed)s,
    %(alert_duplicates)s, %(alert_no_sale)s, %(alert_unknown_customer)s, %(alert_loaded)s,
    %(rejected_sales)s, %(rejected_customers)s, %(dag_run_id)s, %(etl_job_run_id)s, %(load_job_run_id)s, %(scripts_version)s, now()
)
ON CONFLICT (log_date) DO UPDATE SET
    input_rows = EXCLUDED.input_rows,
    malformed = EXCLUDED.malformed,
    duplicates = EXCLUDED.duplicates,
    non_error = EXCLUDED.non_error,
    no_sale = EXCLUDED.no_sale,
    unknown_customer = EXCLUDED.unknown_customer,
    loaded = EXCLUDED.loaded,
    alert_input_rows = EXCLUDED.alert_input_rows,
    alert_malformed = EXCLUDED.alert_malformed,
    alert_duplicates = EXCLUDED.alert_duplicates,
    alert_no_sale = EXCLUDED.alert_no_sale,
    alert_unknown_customer = EXCLUDED.alert_unknown_customer,
    alert_loaded = EXCLUDED.alert_loaded,
    rejected_sales = EXCLUDED.rejected_sales,
    rejected_customers = EXCLUDED.rejected_customers,
    dag_run_id = EXCLUDED.dag_run_id,
    etl_job_run_id = EXCLUDED.etl_job_run_id,
    load_job_run_id = EXCLUDED.load_job_run_id,
    scripts_version = EXCLUDED.scripts_version,
    finished_at = EXCLUDED.finished_at;

DROP TABLE staging.hardware_error_analysis_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }};

DROP TABLE staging.hardware_alerts_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }};

DROP TABLE staging.device_day_activity_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }};
