-- One row per loaded alert: the alert with the sale in force at its UTC day, the customer and the
-- hardware's age then. Day D (the alerts partition dt=D) is replaced as a whole by swap_day.sql.
CREATE TABLE IF NOT EXISTS hardware_alerts (
    alert_id text NOT NULL,
    device_id text NOT NULL,
    error_code text NOT NULL,
    details text NOT NULL,
    alert_timestamp timestamptz NOT NULL,
    received_at timestamptz,
    sale_id text NOT NULL,
    customer_id text NOT NULL,
    customer_name text,
    industry text,
    sale_date date NOT NULL,
    days_since_sale integer NOT NULL CHECK (days_since_sale >= 0),
    log_date date NOT NULL,
    PRIMARY KEY (log_date, alert_id)
);
