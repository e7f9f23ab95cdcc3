-- The loaded days of device_day_activity: the report's range when none is given.
SELECT MIN(log_date), MAX(log_date) FROM device_day_activity
