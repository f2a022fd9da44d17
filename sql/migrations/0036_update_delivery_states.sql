-- Data for 0035: the state of deliveries and alerts written before the outbox.

-- Attempts the old code queued but whose message never ran stay queued for good: close them.
UPDATE notification_deliveries
SET status = 'failed', finished_at = now(),
    error = 'queued before the notification outbox existed and never attempted'
WHERE status = 'queued' AND outbox_id IS NULL;

-- notified_at used to be set when a delivery was queued: keep it only where one was sent.
UPDATE alerts a SET delivery_status = 'delivered'
WHERE a.notified_at IS NOT NULL
  AND (a.severity = 'warning'  -- digests were recorded without their alerts: taken as delivered
       OR EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.alert_id = a.id AND d.status = 'sent'));
UPDATE alerts SET delivery_status = 'failed', notified_at = NULL
WHERE notified_at IS NOT NULL AND delivery_status IS NULL;
