-- The runs that may own staging tables (staging.<table>_YYYYMMDD_<run key>): each run records its
-- key, DAG run id and when it (last) started, so that housekeeping can ask Airflow for the run's
-- state and drop only the tables of failed runs that started long enough ago.
CREATE TABLE IF NOT EXISTS staging.runs (
    run_key text PRIMARY KEY,
    dag_run_id text NOT NULL,
    log_date date NOT NULL,
    started_at timestamptz NOT NULL
);
