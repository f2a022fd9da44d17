-- The notification outbox: what is to be sent, written in the transaction that decided it, and sent
-- from there by whichever worker claims it (analytics.notify.outbox). notification_deliveries stays
-- the log of attempts, each attempt now tied to its outbox row.

CREATE TABLE notification_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- RESTRICT, as for deliveries: a channel with history is disabled, not deleted.
    channel_id       integer NOT NULL REFERENCES notification_channels (id) ON DELETE RESTRICT,
    -- alert: one alert event (opened, escalated, resolved, sla); digest: several warnings;
    -- report: a scheduled report; test: `netpulse notify test`.
    kind             varchar(10) NOT NULL CONSTRAINT notification_outbox_kind_check
                     CHECK (kind IN ('alert', 'digest', 'report', 'test')),
    -- Unique per message and channel, e.g. "alert:<uuid>:opened:0:<channel id>". It travels to the
    -- providers that accept one (webhook header, SendGrid custom args, SMTP Message-ID), so a retry
    -- after an answer that never came is recognisable downstream.
    idempotency_key  varchar(200) NOT NULL CONSTRAINT notification_outbox_idempotency_key_key UNIQUE,
    alert_ids        uuid[] NOT NULL DEFAULT '{}',   -- the alerts this message is about (digests: several)
    payload          jsonb NOT NULL CONSTRAINT notification_outbox_payload_check CHECK (jsonb_typeof(payload) = 'object'),
    -- queued: waiting for an attempt; sending: claimed until claimed_until (past it, the sender is
    -- presumed dead and the row is due again); sent: done, never sent again; failed: the last attempt
    -- failed, and next_attempt_at says when the next one is made (NULL: none, it stays failed).
    status           varchar(10) NOT NULL DEFAULT 'queued' CONSTRAINT notification_outbox_status_check
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts         smallint NOT NULL DEFAULT 0 CONSTRAINT notification_outbox_attempts_check CHECK (attempts >= 0),
    -- NULL: 1 + NETPULSE_NOTIFY_MAX_RETRIES of the sending worker; a test send makes one attempt only.
    max_attempts     smallint CONSTRAINT notification_outbox_max_attempts_check CHECK (max_attempts >= 1),
    next_attempt_at  timestamptz DEFAULT now(),
    claim_token      uuid,
    claimed_until    timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    CONSTRAINT notification_outbox_claim_check CHECK ((status = 'sending') = (claim_token IS NOT NULL AND claimed_until IS NOT NULL)),
    CONSTRAINT notification_outbox_sent_check CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CONSTRAINT notification_outbox_due_check CHECK (status IN ('sent', 'failed', 'sending') OR next_attempt_at IS NOT NULL)
);
-- What a sweeper looks for: rows waiting for an attempt, and claims whose sender went away.
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at)
    WHERE status IN ('queued', 'failed') AND next_attempt_at IS NOT NULL;
CREATE INDEX notification_outbox_claimed_idx ON notification_outbox (claimed_until) WHERE status = 'sending';
CREATE INDEX notification_outbox_alert_ids_idx ON notification_outbox USING gin (alert_ids);
CREATE INDEX notification_outbox_organization_id_created_at_idx ON notification_outbox (organization_id, created_at DESC);

-- Files sent with a message by the channels that carry them (email): report PDFs and CSVs. Removed
-- once the message is sent.
CREATE TABLE notification_attachments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id     bigint NOT NULL REFERENCES notification_outbox (id) ON DELETE CASCADE,
    filename      varchar(255) NOT NULL,
    content_type  varchar(100) NOT NULL,
    content       bytea NOT NULL
);
CREATE INDEX notification_attachments_outbox_id_idx ON notification_attachments (outbox_id);

-- Every attempt belongs to an outbox row; rows written before the outbox have none. An attempt whose
-- worker stopped before it recorded the outcome is 'unknown' (it may or may not have reached the provider).
ALTER TABLE notification_deliveries
    ADD COLUMN outbox_id bigint REFERENCES notification_outbox (id) ON DELETE CASCADE,
    DROP CONSTRAINT notification_deliveries_status_check,
    ADD CONSTRAINT notification_deliveries_status_check
        CHECK (status IN ('queued', 'sent', 'failed', 'rate_limited', 'unknown'));
CREATE INDEX notification_deliveries_outbox_id_idx ON notification_deliveries (outbox_id) WHERE outbox_id IS NOT NULL;

-- Where an alert's notification stands, for the API and the pages. NULL: nothing to deliver (info,
-- suppressed, flapping, a warning not yet in a digest); pending: queued in the outbox; delivered: at
-- least one channel took it (notified_at is then set); failed: every delivery failed for good;
-- no_channel: the organization has no enabled channel to send it through.
ALTER TABLE alerts
    ADD COLUMN delivery_status varchar(10) CONSTRAINT alerts_delivery_status_check
        CHECK (delivery_status IN ('pending', 'delivered', 'failed', 'no_channel'));

-- queued: deliveries written to the outbox; undelivered: nothing could be sent (no channel, or
-- every channel failed).
ALTER TABLE alert_events
    DROP CONSTRAINT alert_events_kind_check,
    ADD CONSTRAINT alert_events_kind_check CHECK (kind IN (
        'opened', 'repeated', 'acknowledged', 'resolved', 'suppressed', 'unsuppressed', 'flapping',
        'escalated', 'notified', 'digested', 'queued', 'undelivered'));
