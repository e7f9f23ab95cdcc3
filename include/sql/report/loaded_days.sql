-- Which state of the warehouse a report describes: the days swapped in over its range and when the
-- last of them was. A later report of the same range with the same state would say the same.
SELECT COUNT(*), MAX(finished_at) FROM pipeline_run_audit WHERE log_date BETWEEN %(first_day)s AND %(last_day)s
