-- Metrics storage, TimescaleDB 2.x variant (production).
-- The raw table is a hypertable with one-day chunks; metrics_1m/1h/1d are continuous aggregates
-- (1h and 1d are hierarchical, built on the level below) with the same names and columns as the
-- rollup tables of the plain-PostgreSQL variant. Every statement here is allowed inside a
-- transaction: the aggregates are created WITH NO DATA and filled by their refresh policies
-- (and by netpulse.storage.refresh_rollups after a backfill, since policies only look back a window).
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE metrics (
    time       timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL DEFAULT 0,
    value      double precision NOT NULL,
    -- A unique index on a hypertable must include the time column; it makes reloads idempotent.
    CONSTRAINT metrics_pkey PRIMARY KEY (device_id, metric_id, ifindex, time)
);
SELECT create_hypertable('metrics', 'time', chunk_time_interval => INTERVAL '1 day');

-- materialized_only = false: recent rows not yet materialized are aggregated at query time
-- (real-time aggregation; the default became true in TimescaleDB 2.13), matching the plain variant,
-- whose rollups are current as soon as a batch commits.
CREATE MATERIALIZED VIEW metrics_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket,
       device_id, metric_id, ifindex,
       count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max, avg(value) AS avg
FROM metrics
GROUP BY time_bucket(INTERVAL '1 minute', time), device_id, metric_id, ifindex
WITH NO DATA;

CREATE MATERIALIZED VIEW metrics_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       device_id, metric_id, ifindex,
       sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
       sum(sum) / sum(count) AS avg
FROM metrics_1m
GROUP BY time_bucket(INTERVAL '1 hour', bucket), device_id, metric_id, ifindex
WITH NO DATA;

CREATE MATERIALIZED VIEW metrics_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
       device_id, metric_id, ifindex,
       sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
       sum(sum) / sum(count) AS avg
FROM metrics_1h
GROUP BY time_bucket(INTERVAL '1 day', bucket), device_id, metric_id, ifindex
WITH NO DATA;

-- Refresh policies: each window spans several buckets and ends one bucket short of now, so a
-- bucket is materialized once it is complete.
SELECT add_continuous_aggregate_policy('metrics_1m',
    start_offset => INTERVAL '3 hours', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('metrics_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes');
SELECT add_continuous_aggregate_policy('metrics_1d',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');

-- Compression (the columnstore in TimescaleDB 2.18+, where these names remain as aliases)
-- after 7 days, segmented by series so a device's history decompresses alone.
ALTER TABLE metrics SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric_id, ifindex',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy('metrics', compress_after => INTERVAL '7 days');

-- Retention: raw rows 90 days, minute rollups 90 days, hourly two years, daily kept.
SELECT add_retention_policy('metrics', drop_after => INTERVAL '90 days');
SELECT add_retention_policy('metrics_1m', drop_after => INTERVAL '90 days');
SELECT add_retention_policy('metrics_1h', drop_after => INTERVAL '730 days');
