-- One row per loaded hardware error (docs/contract.md, section 4). Day D is replaced as a whole by
-- swap_day.sql, so (log_date, log_id) is the key.
CREATE TABLE IF NOT EXISTS hardware_error_analysis (
    log_id text NOT NULL,
    device_id text NOT NULL,
    cpu_temp_celsius integer,
    memory_usage_gb double precision,
    sale_id text NOT NULL,
    days_since_sale integer NOT NULL CHECK (days_since_sale >= 0),
    customer_name text,
    industry text,
    customer_id text NOT NULL,
    sale_date date NOT NULL,
    error_timestamp timestamptz NOT NULL,
    log_date date NOT NULL,
    PRIMARY KEY (log_date, log_id)
);
