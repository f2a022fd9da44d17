-- Notification channels (one per way of reaching people) and the record of every delivery attempt.

CREATE TABLE notification_channels (
    id                     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                   varchar(100) NOT NULL,
    kind                   varchar(20) NOT NULL CONSTRAINT notification_channels_kind_check
                           CHECK (kind IN ('sendgrid', 'smtp', 'africastalking', 'slack', 'webhook')),
    -- Kind-specific, checked by analytics.notify.channels: recipients ("to"), "from_email", "sender_id",
    -- "url", "secret", "headers". Provider credentials are settings, not channel config.
    config                 jsonb NOT NULL DEFAULT '{}' CONSTRAINT notification_channels_config_check
                           CHECK (jsonb_typeof(config) = 'object'),
    -- Enforced across all workers through Redis; over it, an attempt waits instead of being dropped.
    rate_limit_per_minute  integer NOT NULL DEFAULT 60 CONSTRAINT notification_channels_rate_limit_check
                           CHECK (rate_limit_per_minute BETWEEN 1 AND 100000),
    enabled                boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_channels_organization_id_name_key UNIQUE (organization_id, name)
);

-- One row per attempt, never updated once finished: a retry or a rate-limited wait adds a row, so the
-- history of every attempt stays. A rate-limited attempt is made again under the same attempt number.
CREATE TABLE notification_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- RESTRICT: a channel with history is disabled, not deleted.
    channel_id       integer NOT NULL REFERENCES notification_channels (id) ON DELETE RESTRICT,
    alert_id         uuid REFERENCES alerts (id) ON DELETE SET NULL,  -- NULL for test sends
    attempt          smallint NOT NULL CONSTRAINT notification_deliveries_attempt_check CHECK (attempt >= 1),
    status           varchar(20) NOT NULL DEFAULT 'queued' CONSTRAINT notification_deliveries_status_check
                     CHECK (status IN ('queued', 'sent', 'failed', 'rate_limited')),
    provider_status  integer,               -- HTTP status, or the SMTP reply code
    provider_answer  text,                  -- the provider's body, truncated
    provider_ids     text[] NOT NULL DEFAULT '{}',  -- the provider's message ids
    error            text,                  -- why it failed or waited, when the answer does not say
    scheduled_at     timestamptz NOT NULL DEFAULT now(),  -- not before: now + backoff for a retry
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CONSTRAINT notification_deliveries_finished_check CHECK ((status = 'queued') = (finished_at IS NULL))
);
CREATE INDEX notification_deliveries_channel_id_created_at_idx ON notification_deliveries (channel_id, created_at DESC);
CREATE INDEX notification_deliveries_alert_id_idx ON notification_deliveries (alert_id) WHERE alert_id IS NOT NULL;
-- Attempts still waiting: what a sweeper or an operator looks at when a worker or Redis was lost.
CREATE INDEX notification_deliveries_queued_idx ON notification_deliveries (scheduled_at) WHERE status = 'queued';
