-- Device-days, errors and the error rate per industry, per age bucket, per industry x age bucket
-- and overall (docs/contract.md, section 6), over the report's days. `age_bucket` is the bucket's index:
-- days_since_sale in [0, 180), [180, 365), [365, 730), [730, 1095), [1095, infinity).
WITH bucketed AS (
    SELECT
        COALESCE(industry, '(no industry)') AS industry,
        CASE
            WHEN days_since_sale < 180 THEN 0
            WHEN days_since_sale < 365 THEN 1
            WHEN days_since_sale < 730 THEN 2
            WHEN days_since_sale < 1095 THEN 3
            ELSE 4
        END AS age_bucket,
        errors
    FROM device_day_activity
    WHERE log_date BETWEEN %(first_day)s AND %(last_day)s
)
SELECT
    GROUPING(industry) = 0 AS by_industry,
    GROUPING(age_bucket) = 0 AS by_age_bucket,
    industry,
    age_bucket,
    COUNT(*) AS device_days,
    SUM(errors) AS errors
FROM bucketed
GROUP BY GROUPING SETS ((industry), (age_bucket), (industry, age_bucket), ())
