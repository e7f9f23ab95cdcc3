-- Per-day staging tables (staging.hardware_error_analysis_YYYYMMDD) filled by the Glue load job.
CREATE SCHEMA IF NOT EXISTS staging;
