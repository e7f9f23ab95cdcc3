-- Staging tables of one run of one day (staging.hardware_error_analysis_YYYYMMDD_<run key>) filled
-- by the Glue load job.
CREATE SCHEMA IF NOT EXISTS staging;
