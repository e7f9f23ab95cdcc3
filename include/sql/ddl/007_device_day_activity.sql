-- The exposure behind error rates (docs/contract.md, section 4): one row per device and day D on which the
-- device logged well-formed, non-duplicate rows and had a sale in force with a known customer, with
-- the owner at D and the hardware's age then. SUM(errors) over day D equals the day's loaded errors.
-- Day D is replaced as a whole by swap_day.sql.
CREATE TABLE IF NOT EXISTS device_day_activity (
    log_date date NOT NULL,
    device_id text NOT NULL,
    sale_id text NOT NULL,
    customer_id text NOT NULL,
    industry text,
    days_since_sale integer NOT NULL CHECK (days_since_sale >= 0),
    events bigint NOT NULL CHECK (events > 0),
    errors bigint NOT NULL CHECK (errors >= 0 AND errors <= events),
    PRIMARY KEY (log_date, device_id)
);
