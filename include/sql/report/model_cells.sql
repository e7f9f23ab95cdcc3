-- The model's rows: device-days, errors and their summed age per device, owner's industry and 90-day
-- age period. Errors cluster in devices (a faulty unit errs day after day), so the rows keep the
-- device, and the model's intervals allow for it. The row's mean age stands for each of its days:
-- for a rate that doubles a year, the expected errors of 90 days at their mean age are within 0.2 in
-- 100 of the sum over the days, and the model's age ratio moves by less than that.
-- A year of a 100,000-device fleet (36M device-days) gives about 500,000 rows.
SELECT
    device_id,
    COALESCE(industry, '(no industry)') AS industry,
    days_since_sale / 90 AS age_period,
    COUNT(*) AS device_days,
    SUM(errors) AS errors,
    SUM(days_since_sale) AS age_days_total
FROM device_day_activity
WHERE log_date BETWEEN %(first_day)s AND %(last_day)s
GROUP BY 1, 2, 3
