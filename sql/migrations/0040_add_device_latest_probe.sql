-- The latest probe's round-trip time and loss on the device row, written by the loader with the
-- status (same UPDATE, same HOT page): the device grid sorts and filters 10,000 devices by them
-- without reading the metrics.
ALTER TABLE devices
    ADD COLUMN last_rtt_ms    real,   -- of the latest answered probe
    ADD COLUMN last_loss_pct  real;   -- of the latest probe (100 when it went unanswered)
