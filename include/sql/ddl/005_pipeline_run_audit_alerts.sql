-- The day's alert counts in pipeline_run_audit; rows written before alerts were processed read 0.
-- Every run executes this file: the catalog is consulted first so that, once the columns exist, no
-- run takes ALTER TABLE's exclusive lock on the audit table (it would queue behind any long reader).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'pipeline_run_audit'::regclass AND conname = 'alert_audit_equation'
    ) THEN
        BEGIN
            ALTER TABLE pipeline_run_audit
                ADD COLUMN IF NOT EXISTS alert_input_rows bigint NOT NULL DEFAULT 0,
                ADD COLUMN IF NOT EXISTS alert_malformed bigint NOT NULL DEFAULT 0,
                ADD COLUMN IF NOT EXISTS alert_duplicates bigint NOT NULL DEFAULT 0,
                ADD COLUMN IF NOT EXISTS alert_no_sale bigint NOT NULL DEFAULT 0,
                ADD COLUMN IF NOT EXISTS alert_unknown_customer bigint NOT NULL DEFAULT 0,
                ADD COLUMN IF NOT EXISTS alert_loaded bigint NOT NULL DEFAULT 0,
                ADD CONSTRAINT alert_audit_equation CHECK (
                    alert_input_rows = alert_malformed + alert_duplicates + alert_no_sale
                        + alert_unknown_customer + alert_loaded
                );
        EXCEPTION WHEN duplicate_object THEN
            NULL;  -- a concurrent run added them first
        END;
    END IF;
END
$$;
