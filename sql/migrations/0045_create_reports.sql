-- Reports: schedules per organization, every run (scheduled or on request) with its file and figures,
-- and the emails that carried it. The organization gets a time zone for its reports' periods and
-- schedules (sites already have one).

ALTER TABLE organizations ADD COLUMN time_zone varchar(64) NOT NULL DEFAULT 'UTC';

CREATE TABLE report_schedules (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    kind             varchar(20) NOT NULL CONSTRAINT report_schedules_kind_check
                     CHECK (kind IN ('availability', 'performance', 'alerts')),
    scope            scope_kind NOT NULL DEFAULT 'all',
    scope_ref        varchar(100),             -- the device, group, site or tag name; NULL for 'all'
    format           varchar(10) NOT NULL DEFAULT 'pdf' CONSTRAINT report_schedules_format_check
                     CHECK (format IN ('pdf', 'csv')),
    -- daily: the day before; weekly: the week (Monday to Monday) before; monthly: the month before;
    -- cron: from the previous firing to this one. `cron` says when it fires, in the time zone.
    frequency        varchar(10) NOT NULL CONSTRAINT report_schedules_frequency_check
                     CHECK (frequency IN ('daily', 'weekly', 'monthly', 'cron')),
    cron             varchar(100) NOT NULL,
    time_zone        varchar(64),              -- NULL: the scope's site's, else the organization's
    channels         text[] NOT NULL DEFAULT '{}',  -- email notification channels (names) that get the file
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT report_schedules_organization_id_name_key UNIQUE (organization_id, name),
    CONSTRAINT report_schedules_scope_ref CHECK ((scope = 'all') = (scope_ref IS NULL))
);

-- One row per report made: claimed before any work, so a schedule's period is made (and mailed) once
-- however many workers or ticks see it due.
CREATE TABLE report_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    schedule_id      integer REFERENCES report_schedules (id) ON DELETE SET NULL,  -- NULL: made on request
    schedule_name    varchar(100),
    kind             varchar(20) NOT NULL CONSTRAINT report_runs_kind_check
                     CHECK (kind IN ('availability', 'performance', 'alerts')),
    scope            scope_kind NOT NULL,
    scope_ref        varchar(100),
    format           varchar(10) NOT NULL CONSTRAINT report_runs_format_check CHECK (format IN ('pdf', 'csv')),
    time_zone        varchar(64) NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    status           varchar(10) NOT NULL DEFAULT 'pending' CONSTRAINT report_runs_status_check
                     CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    attempts         smallint NOT NULL DEFAULT 0,
    error            text,                     -- the last failure; kept on a run that succeeded after it
    file_name        varchar(255),
    content_type     varchar(100),
    content          bytea,
    figures          jsonb,                    -- the headline figures, for listings and trends
    pages            integer,
    duration_s       double precision,         -- making the file, without the email
    requested_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    enqueued_at      timestamptz,              -- the last time a worker was asked to make it
    started_at       timestamptz,
    finished_at      timestamptz,
    CONSTRAINT report_runs_period CHECK (period_end > period_start),
    CONSTRAINT report_runs_scope_ref CHECK ((scope = 'all') = (scope_ref IS NULL)),
    CONSTRAINT report_runs_finished CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);
CREATE UNIQUE INDEX report_runs_schedule_id_period_start_key ON report_runs (schedule_id, period_start)
    WHERE schedule_id IS NOT NULL;
CREATE INDEX report_runs_organization_id_created_at_idx ON report_runs (organization_id, created_at DESC);
CREATE INDEX report_runs_unfinished_idx ON report_runs (status) WHERE status IN ('pending', 'running');

-- One email of a run per channel. 'sending' is committed before the provider is called: a worker that
-- dies during the send leaves it, and the next attempt records it 'unconfirmed' instead of sending the
-- report a second time.
CREATE TABLE report_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           bigint NOT NULL REFERENCES report_runs (id) ON DELETE CASCADE,
    channel_id       integer NOT NULL REFERENCES notification_channels (id) ON DELETE RESTRICT,
    status           varchar(12) NOT NULL CONSTRAINT report_deliveries_status_check
                     CHECK (status IN ('sending', 'sent', 'failed', 'unconfirmed')),
    attempts         smallint NOT NULL DEFAULT 1,
    provider_status  integer,
    provider_answer  text,
    provider_ids     text[] NOT NULL DEFAULT '{}',
    error            text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CONSTRAINT report_deliveries_run_id_channel_id_key UNIQUE (run_id, channel_id)
);
