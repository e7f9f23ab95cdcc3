-- One row per day D (replaced on rerun): the ETL's counts, which add up to input_rows, and what
-- traces the run.
CREATE TABLE IF NOT EXISTS pipeline_run_audit (
    log_date date PRIMARY KEY,
    input_rows bigint NOT NULL,
    malformed bigint NOT NULL,
    duplicates bigint NOT NULL,
    non_error bigint NOT NULL,
    no_sale bigint NOT NULL,
    unknown_customer bigint NOT NULL,
    loaded bigint NOT NULL,
    dag_run_id text NOT NULL,
    etl_job_run_id text NOT NULL,
    load_job_run_id text NOT NULL,
    scripts_version text NOT NULL,
    finished_at timestamptz NOT NULL,
    CONSTRAINT audit_equation CHECK (
        input_rows = malformed + duplicates + non_error + no_sale + unknown_customer + loaded
    )
);
