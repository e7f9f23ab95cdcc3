-- The model's rows: device-days, errors and their summed age per device, owner's industry and 30-day
-- age period. Errors cluster in devices (a faulty unit errs day after day), so the rows keep the
-- device, and the model's intervals allow for it. A device's days within one period differ in age by
-- under 30 days, so the row's mean age stands for each of them: even a rate that doubles a year moves
-- by under 6 in 100 over 30 days, and the mean is exact to the first order.
-- A year of a 100,000-device fleet (36M device-days) gives about 1.3M rows.
SELECT
    device_id,
    COALESCE(industry, '(no industry)') AS industry,
    days_since_sale / 30 AS age_period,
    COUNT(*) AS device_days,
    SUM(errors) AS errors,
    SUM(days_since_sale) AS age_days_total
FROM device_day_activity
WHERE log_date BETWEEN %(first_day)s AND %(last_day)s
GROUP BY 1, 2, 3
