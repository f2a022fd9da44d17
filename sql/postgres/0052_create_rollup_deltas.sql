-- Loaders no longer wait for the rollup job (plain variant; see netpulse.rollups for the protocol).
--
-- Before, the job held the watermark row lock while it materialized a minute and every load waited
-- for it. Now the job materializes from a snapshot without a lock that loaders take, and:
--   * rollup_fence.fenced_until (F >= W) is the end of the range a job may be materializing; the job
--     moves it first, in a transaction of its own. A loader reads F once (share-locked, so F cannot
--     move under a batch) and sends its rows older than F here, to rollup_deltas, as per-minute
--     mergeable aggregates; append-only, so loaders never contend on them;
--   * the views add the deltas behind W to the materialized rows, so they stay an exact aggregate of
--     the raw rows in every snapshot; the job folds the deltas into the *_mat tables as it goes.

CREATE TABLE rollup_fence (
    singleton     boolean PRIMARY KEY DEFAULT true CONSTRAINT rollup_fence_singleton CHECK (singleton),
    fenced_until  timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO rollup_fence (fenced_until) SELECT materialized_until FROM rollup_watermark;

CREATE TABLE rollup_deltas (
    bucket     timestamptz NOT NULL,   -- the minute
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL,
    count      bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL
);
CREATE INDEX rollup_deltas_series_idx ON rollup_deltas (device_id, metric_id, ifindex, bucket);

-- Each view: materialized rows with no delta behind W, as they are (a plain scan, as before); the
-- few with deltas, merged with them; and the live rows at or after W. A delta's key matches its mat
-- row by equality (date_trunc of the minute), so the anti-join can hash the small delta table.
CREATE OR REPLACE VIEW metrics_1m AS
SELECT m.bucket, m.device_id, m.metric_id, m.ifindex, m.count, m.sum, m.min, m.max, m.avg
FROM metrics_1m_mat m
WHERE NOT EXISTS (SELECT 1 FROM rollup_deltas d WHERE d.device_id = m.device_id AND d.metric_id = m.metric_id
                  AND d.ifindex = m.ifindex AND d.bucket = m.bucket)
UNION ALL
SELECT bucket, device_id, metric_id, ifindex, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
       max(max) AS max, sum(sum) / sum(count) AS avg
FROM (
    SELECT m.bucket, m.device_id, m.metric_id, m.ifindex, m.count, m.sum, m.min, m.max
    FROM metrics_1m_mat m
    JOIN (SELECT DISTINCT device_id, metric_id, ifindex, bucket FROM rollup_deltas) d
      ON d.device_id = m.device_id AND d.metric_id = m.metric_id AND d.ifindex = m.ifindex AND d.bucket = m.bucket
    UNION ALL
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max
    FROM rollup_deltas
    WHERE bucket < (SELECT materialized_until FROM rollup_watermark)
) late
GROUP BY bucket, device_id, metric_id, ifindex
UNION ALL
SELECT date_trunc('minute', time) AS bucket, device_id, metric_id, ifindex,
       count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max, avg(value) AS avg
FROM metrics
WHERE time >= (SELECT materialized_until FROM rollup_watermark)
GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE VIEW metrics_1h AS
SELECT m.bucket, m.device_id, m.metric_id, m.ifindex, m.count, m.sum, m.min, m.max, m.avg
FROM metrics_1h_mat m
WHERE m.bucket < (SELECT date_trunc('hour', materialized_until) FROM rollup_watermark)
  AND NOT EXISTS (SELECT 1 FROM rollup_deltas d WHERE d.device_id = m.device_id AND d.metric_id = m.metric_id
                  AND d.ifindex = m.ifindex AND date_trunc('hour', d.bucket) = m.bucket)
UNION ALL
SELECT bucket, device_id, metric_id, ifindex, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
       max(max) AS max, sum(sum) / sum(count) AS avg
FROM (
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max
    FROM metrics_1h_mat
    WHERE bucket >= (SELECT date_trunc('hour', materialized_until) FROM rollup_watermark)
    UNION ALL
    SELECT m.bucket, m.device_id, m.metric_id, m.ifindex, m.count, m.sum, m.min, m.max
    FROM metrics_1h_mat m
    JOIN (SELECT DISTINCT device_id, metric_id, ifindex, date_trunc('hour', bucket) AS bucket FROM rollup_deltas) d
      ON d.device_id = m.device_id AND d.metric_id = m.metric_id AND d.ifindex = m.ifindex AND d.bucket = m.bucket
    WHERE m.bucket < (SELECT date_trunc('hour', materialized_until) FROM rollup_watermark)
    UNION ALL
    SELECT date_trunc('hour', bucket), device_id, metric_id, ifindex, count, sum, min, max
    FROM rollup_deltas
    WHERE bucket < (SELECT materialized_until FROM rollup_watermark)
    UNION ALL
    SELECT date_trunc('hour', time), device_id, metric_id, ifindex, count(*), sum(value), min(value), max(value)
    FROM metrics
    WHERE time >= (SELECT materialized_until FROM rollup_watermark)
    GROUP BY 1, 2, 3, 4
) open_hours
GROUP BY bucket, device_id, metric_id, ifindex;

CREATE OR REPLACE VIEW metrics_1d AS
SELECT m.bucket, m.device_id, m.metric_id, m.ifindex, m.count, m.sum, m.min, m.max, m.avg
FROM metrics_1d_mat m
WHERE m.bucket < (SELECT date_trunc('day', materialized_until, 'UTC') FROM rollup_watermark)
  AND NOT EXISTS (SELECT 1 FROM rollup_deltas d WHERE d.device_id = m.device_id AND d.metric_id = m.metric_id
                  AND d.ifindex = m.ifindex AND date_trunc('day', d.bucket, 'UTC') = m.bucket)
UNION ALL
SELECT bucket, device_id, metric_id, ifindex, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
       max(max) AS max, sum(sum) / sum(count) AS avg
FROM (
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max
    FROM metrics_1d_mat
    WHERE bucket >= (SELECT date_trunc('day', materialized_until, 'UTC') FROM rollup_watermark)
    UNION ALL
    SELECT m.bucket, m.device_id, m.metric_id, m.ifindex, m.count, m.sum, m.min, m.max
    FROM metrics_1d_mat m
    JOIN (SELECT DISTINCT device_id, metric_id, ifindex, date_trunc('day', bucket, 'UTC') AS bucket
          FROM rollup_deltas) d
      ON d.device_id = m.device_id AND d.metric_id = m.metric_id AND d.ifindex = m.ifindex AND d.bucket = m.bucket
    WHERE m.bucket < (SELECT date_trunc('day', materialized_until, 'UTC') FROM rollup_watermark)
    UNION ALL
    SELECT date_trunc('day', bucket, 'UTC'), device_id, metric_id, ifindex, count, sum, min, max
    FROM rollup_deltas
    WHERE bucket < (SELECT materialized_until FROM rollup_watermark)
    UNION ALL
    SELECT date_trunc('day', time, 'UTC'), device_id, metric_id, ifindex, count(*), sum(value), min(value),
           max(value)
    FROM metrics
    WHERE time >= (SELECT materialized_until FROM rollup_watermark)
    GROUP BY 1, 2, 3, 4
) open_days
GROUP BY bucket, device_id, metric_id, ifindex;
