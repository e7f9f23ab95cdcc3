-- Day D's staged rows in this run's staging tables, errors, alerts and device-days, must be exactly the rows the ETL wrote, with
-- their keys and a non-negative age, before they may replace the warehouse's rows of D; the
-- device-days' errors must add up to the loaded errors. Each column must come out true. The ETL's
-- counts are the run's audit (collect_run_audit), bound as the task's parameters.
WITH errors AS (
SELECT
    COUNT(*) = %(loaded)s AS row_count_matches_etl,
    COUNT(*) FILTER (WHERE log_id IS NULL OR device_id IS NULL OR sale_id IS NULL) = 0 AS keys_present,
    COUNT(*) FILTER (WHERE days_since_sale < 0) = 0 AS ages_not_negative,
    COUNT(*) FILTER (WHERE log_date IS DISTINCT FROM %(log_date)s) = 0 AS only_day_d
FROM {{ staging_table('hardware_error_analysis', data_interval_start, run_id) }}
),
alerts AS (
SELECT
    COUNT(*) = %(alert_loaded)s AS alert_count_matches_etl,
    COUNT(DISTINCT alert_id) = COUNT(*) AS alert_ids_unique,
    COUNT(*) FILTER (WHERE alert_id IS NULL OR device_id IS NULL OR sale_id IS NULL) = 0 AS alert_keys_present,
    COUNT(*) FILTER (WHERE days_since_sale < 0) = 0 AS alert_ages_not_negative,
    COUNT(*) FILTER (WHERE log_date IS DISTINCT FROM %(log_date)s) = 0 AS alerts_only_day_d
FROM {{ staging_table('hardware_alerts', data_interval_start, run_id) }}
),
activity AS (
SELECT
    COUNT(*) = %(device_days)s AS device_days_match_etl,
    COALESCE(SUM(errors), 0) = %(loaded)s AS activity_errors_match_loaded,
    COUNT(DISTINCT device_id) = COUNT(*) AS activity_devices_unique,
    COUNT(*) FILTER (WHERE device_id IS NULL OR sale_id IS NULL OR customer_id IS NULL) = 0 AS activity_keys_present,
    COUNT(*) FILTER (WHERE days_since_sale < 0) = 0 AS activity_ages_not_negative,
    COUNT(*) FILTER (WHERE log_date IS DISTINCT FROM %(log_date)s) = 0 AS activity_only_day_d
FROM {{ staging_table('device_day_activity', data_interval_start, run_id) }}
)
SELECT * FROM errors CROSS JOIN alerts CROSS JOIN activity
