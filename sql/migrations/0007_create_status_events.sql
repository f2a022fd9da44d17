-- Device status with hysteresis (ingest.status): the streak of identical probe outcomes carries
-- over between batches on the device row, and every status change is kept as an event, the input
-- of availability and SLA figures.

ALTER TABLE devices
    ADD COLUMN fail_streak   integer NOT NULL DEFAULT 0,
    ADD COLUMN ok_streak     integer NOT NULL DEFAULT 0,
    -- The first probe of the current streak: a confirmed outage is dated from here.
    ADD COLUMN streak_since  timestamptz;

CREATE TABLE device_status_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    device_id        integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- When the new status began (into or out of down: the first probe of the deciding run).
    time             timestamptz NOT NULL,
    -- The probe that decided it (later than time by up to the hysteresis).
    confirmed_at     timestamptz NOT NULL,
    from_status      varchar(10) NOT NULL CONSTRAINT device_status_events_from_check
                     CHECK (from_status IN ('unknown', 'up', 'degraded', 'down')),
    to_status        varchar(10) NOT NULL CONSTRAINT device_status_events_to_check
                     CHECK (to_status IN ('unknown', 'up', 'degraded', 'down')),
    CONSTRAINT device_status_events_change CHECK (from_status <> to_status),
    -- A redelivered batch cannot record a change twice.
    CONSTRAINT device_status_events_device_id_confirmed_at_key UNIQUE (device_id, confirmed_at)
);
CREATE INDEX device_status_events_device_id_time_idx ON device_status_events (device_id, time);
CREATE INDEX device_status_events_organization_id_time_idx ON device_status_events (organization_id, time);
