-- Data for 0055: the report emails recorded in report_deliveries become finished outbox rows, under
-- the key the reports now use (schedule and period, or the run for a report made on request, then
-- the channel), so the runs' history keeps them and a resumed run cannot queue them a second time.
-- An email that failed while its run is still unfinished is not moved: the run is resumed by the
-- report scheduler, which queues the email through the outbox then. Their payload is never sent;
-- it only names the report.
WITH moved AS (
    SELECT d.id AS delivery_id, d.channel_id, d.status, d.attempts, d.provider_status, d.provider_answer,
           d.provider_ids, d.error, d.started_at, d.finished_at, r.id AS run_id, r.organization_id,
           CASE WHEN r.schedule_id IS NOT NULL
                THEN 'report:' || r.schedule_id || ':' || to_char(r.period_start AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"')
                ELSE 'report-run:' || r.id END || '/' || d.channel_id AS key,
           jsonb_build_object(
               'notification', jsonb_build_object(
                   'title', initcap(r.kind) || ' report ' || coalesce(r.file_name, ''), 'severity', 'info',
                   'message', '', 'kind', 'report', 'link', '/reports/' || r.id,
                   'started_at', to_char(r.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')),
               'reason', NULL, 'tier', NULL, 'at_most_once', true) AS payload
    FROM report_deliveries d JOIN report_runs r ON r.id = d.run_id
    WHERE NOT (d.status = 'failed' AND r.status IN ('pending', 'running'))
), rows AS (
    INSERT INTO notification_outbox (organization_id, channel_id, kind, idempotency_key, payload, status, attempts,
                                     next_attempt_at, last_error, created_at, sent_at, report_run_id)
    SELECT organization_id, channel_id, 'report', key, payload,
           CASE status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'unconfirmed' END,
           attempts, NULL,
           CASE WHEN status = 'sent' THEN NULL
                ELSE coalesce(error, 'the sender stopped while the provider was being called; not sent again') END,
           started_at, CASE WHEN status = 'sent' THEN coalesce(finished_at, started_at) END, run_id
    FROM moved
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
)
INSERT INTO notification_deliveries (organization_id, channel_id, attempt, status, provider_status, provider_answer,
                                     provider_ids, error, scheduled_at, created_at, finished_at, outbox_id)
SELECT m.organization_id, m.channel_id, m.attempts,
       CASE m.status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'unknown' END,
       m.provider_status, m.provider_answer, m.provider_ids, m.error, m.started_at, m.started_at, m.finished_at, r.id
FROM rows r JOIN moved m ON m.key = r.idempotency_key;
