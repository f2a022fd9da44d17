-- Report emails go through the notification outbox like every other message. An outbox row names
-- the report run it mails (the run's history shows each email's state from these rows), and a
-- report email can end 'unconfirmed': its sender stopped while the provider was being called, so
-- it may have arrived, and it is not sent again (a manager never gets one report twice). Alerts
-- are resent instead, under the same idempotency key: a lost critical alert is worse than a repeat.

ALTER TABLE notification_outbox
    ADD COLUMN report_run_id bigint REFERENCES report_runs (id) ON DELETE SET NULL,
    ALTER COLUMN status TYPE varchar(12),
    DROP CONSTRAINT notification_outbox_status_check,
    ADD CONSTRAINT notification_outbox_status_check
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unconfirmed')),
    DROP CONSTRAINT notification_outbox_due_check,
    ADD CONSTRAINT notification_outbox_due_check
        CHECK (status IN ('sent', 'failed', 'sending', 'unconfirmed') OR next_attempt_at IS NOT NULL);
CREATE INDEX notification_outbox_report_run_id_idx ON notification_outbox (report_run_id)
    WHERE report_run_id IS NOT NULL;
