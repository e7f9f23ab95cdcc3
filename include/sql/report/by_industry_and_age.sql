-- The model's rows: device-days and errors per industry and age in days. Industry and age are the
-- same for every device-day of a row, so a Poisson model on these rows, with log(device_days) as
-- offset, is the model of errors per device-day.
SELECT
    COALESCE(industry, '(no industry)') AS industry,
    days_since_sale,
    COUNT(*) AS device_days,
    SUM(errors) AS errors
FROM device_day_activity
WHERE log_date BETWEEN %(first_day)s AND %(last_day)s
GROUP BY 1, 2
ORDER BY 1, 2
