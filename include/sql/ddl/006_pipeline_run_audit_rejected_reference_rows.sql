-- Rows of sales and customers that the day's run could not match with (no sale_id, no device_id, a
-- sale_date that is not a day, no customer_id); they are in the reference quarantine with their
-- reasons. Outside the audit equation, which counts the day's log rows. Rows written before read 0.
-- As in 005, the catalog is consulted first so that no run takes ALTER TABLE's exclusive lock once
-- the columns exist.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'pipeline_run_audit'::regclass AND attname = 'rejected_customers'
            AND NOT attisdropped
    ) THEN
        BEGIN
            ALTER TABLE pipeline_run_audit
                ADD COLUMN IF NOT EXISTS rejected_sales bigint NOT NULL DEFAULT 0,
                ADD COLUMN IF NOT EXISTS rejected_customers bigint NOT NULL DEFAULT 0;
        EXCEPTION WHEN duplicate_column THEN
            NULL;  -- a concurrent run added them first
        END;
    END IF;
END
$$;
