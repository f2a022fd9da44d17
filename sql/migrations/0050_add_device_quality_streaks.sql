-- Degraded gets hysteresis like down (ingest.status): the runs of answers with and without lost
-- packets carry over between batches on the device row, and so does the answer quality they
-- decided, which a device keeps through an outage (its status then shows down).

ALTER TABLE devices
    ADD COLUMN loss_streak   integer NOT NULL DEFAULT 0,
    ADD COLUMN clean_streak  integer NOT NULL DEFAULT 0,
    ADD COLUMN quality       varchar(10) NOT NULL DEFAULT 'up'
                             CONSTRAINT devices_quality_check CHECK (quality IN ('up', 'degraded'));
