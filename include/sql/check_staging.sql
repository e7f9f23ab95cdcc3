-- Day D's staged rows in this run's staging tables, errors, alerts and device-days, must be exactly the rows the ETL wrote, with
-- their keys and a non-negative age, before they may replace the warehouse's rows of D; the
-- device-days' errors must add up to the loaded errors. Each column must come out true.
WITH errors AS (
SELECT
    COUNT(*) = {{ ti.xcom_pull(task_ids='collect_run_audit')['loaded'] | int }} AS row_count_matches_etl,
    COUNT(*) FILTER (WHERE log_id IS NULL OR device_id IS NULL OR sale_id IS NULL) = 0 AS keys_present,
    COUNT(*) FILTER (WHERE days_since_sale < 0) = 0 AS ages_not_negative,
    COUNT(*) FILTER (WHERE log_date IS DISTINCT FROM '{{ data_interval_start | ds }}') = 0 AS only_day_d
FROM staging.hardware_error_analysis_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}
),
alerts AS (
SELECT
    COUNT(*) = {{ ti.xcom_pull(task_ids='collect_run_audit')['alert_loaded'] | int }} AS alert_count_matches_etl,
    COUNT(DISTINCT alert_id) = COUNT(*) AS alert_ids_unique,
    COUNT(*) FILTER (WHERE alert_id IS NULL OR device_id IS NULL OR sale_id IS NULL) = 0 AS alert_keys_present,
    COUNT(*) FILTER (WHERE days_since_sale < 0) = 0 AS alert_ages_not_negative,
    COUNT(*) FILTER (WHERE log_date IS DISTINCT FROM '{{ data_interval_start | ds }}') = 0 AS alerts_only_day_d
FROM staging.hardware_alerts_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}
),
activity AS (
SELECT
    COUNT(*) = {{ ti.xcom_pull(task_ids='collect_run_audit')['device_days'] | int }} AS device_days_match_etl,
    COALESCE(SUM(errors), 0) = {{ ti.xcom_pull(task_ids='collect_run_audit')['loaded'] | int }} AS activity_errors_match_loaded,
    COUNT(DISTINCT device_id) = COUNT(*) AS activity_devices_unique,
    COUNT(*) FILTER (WHERE device_id IS NULL OR sale_id IS NULL OR customer_id IS NULL) = 0 AS activity_keys_present,
    COUNT(*) FILTER (WHERE days_since_sale < 0) = 0 AS activity_ages_not_negative,
    COUNT(*) FILTER (WHERE log_date IS DISTINCT FROM '{{ data_interval_start | ds }}') = 0 AS activity_only_day_d
FROM staging.device_day_activity_{{ data_interval_start | ds_nodash }}_{{ run_id | run_key }}
)
SELECT * FROM errors CROSS JOIN alerts CROSS JOIN activity
