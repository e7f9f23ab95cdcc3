-- How many device-days have each (age, errors) pair: Spearman's rank correlation between age and
-- errors per device-day, ties included, computed from these counts.
SELECT days_since_sale, errors, COUNT(*) AS device_days
FROM device_day_activity
WHERE log_date BETWEEN %(first_day)s AND %(last_day)s
GROUP BY 1, 2
