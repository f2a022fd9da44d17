-- Rollups as TimescaleDB does them, on plain PostgreSQL: materialized below a watermark, live above it.
--
-- Folding every batch into three rollup rows per series cost the loader several times the raw
-- insert (each merge is an update of a hot row). Now the rollups are views over two parts:
--   * metrics_1m_mat / metrics_1h_mat / metrics_1d_mat hold mergeable aggregates of every raw row
--     older than rollup_watermark.materialized_until (W), advanced every minute by the rollup job
--     (netpulse.rollups.advance) from closed minutes;
--   * rows at or after W are aggregated from metrics when read (real-time aggregation).
-- A row that arrives late (time < W) is folded into the *_mat tables by the loader, in the same
-- transaction that stores it, so the views always equal an aggregate over the raw rows.
-- The hour and day containing W are split: their *_mat row holds the minutes before W, and the
-- view merges it with the live part.

ALTER TABLE metrics_1m RENAME TO metrics_1m_mat;
ALTER TABLE metrics_1h RENAME TO metrics_1h_mat;
ALTER TABLE metrics_1d RENAME TO metrics_1d_mat;
ALTER TABLE metrics_1m_mat RENAME CONSTRAINT metrics_1m_pkey TO metrics_1m_mat_pkey;
ALTER TABLE metrics_1h_mat RENAME CONSTRAINT metrics_1h_pkey TO metrics_1h_mat_pkey;
ALTER TABLE metrics_1d_mat RENAME CONSTRAINT metrics_1d_pkey TO metrics_1d_mat_pkey;
ALTER INDEX metrics_1m_bucket_brin RENAME TO metrics_1m_mat_bucket_brin;
ALTER INDEX metrics_1h_bucket_brin RENAME TO metrics_1h_mat_bucket_brin;
ALTER INDEX metrics_1d_bucket_idx RENAME TO metrics_1d_mat_bucket_idx;
-- Late rows merge into existing rows: leave room on each page so those updates stay HOT.
ALTER TABLE metrics_1d_mat SET (fillfactor = 70);

-- Existing partitions follow their parent's new name (storage upkeep finds them by name).
DO $$
DECLARE p record;
BEGIN
    FOR p IN
        SELECT c.relname AS child, parent.relname AS parent
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class parent ON parent.oid = i.inhparent
        WHERE parent.relname IN ('metrics_1m_mat', 'metrics_1h_mat')
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', p.child,
                       replace(p.child, replace(p.parent, '_mat', ''), p.parent));
    END LOOP;
END $$;

CREATE TABLE rollup_watermark (
    singleton           boolean PRIMARY KEY DEFAULT true CONSTRAINT rollup_watermark_singleton CHECK (singleton),
    materialized_until  timestamptz NOT NULL DEFAULT '-infinity',
    advanced_at         timestamptz
);
INSERT INTO rollup_watermark DEFAULT VALUES;

-- Everything materialized so far: every raw row older than W (all of a table's buckets lie below W
-- for 1m; 1h and 1d may hold a partial bucket for the hour and day containing W).
CREATE VIEW metrics_1m AS
SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max, avg
FROM metrics_1m_mat
UNION ALL
SELECT date_trunc('minute', time) AS bucket, device_id, metric_id, ifindex,
       count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max, avg(value) AS avg
FROM metrics
WHERE time >= (SELECT materialized_until FROM rollup_watermark)
GROUP BY 1, 2, 3, 4;

CREATE VIEW metrics_1h AS
SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max, avg
FROM metrics_1h_mat
WHERE bucket < (SELECT date_trunc('hour', materialized_until) FROM rollup_watermark)
UNION ALL
SELECT bucket, device_id, metric_id, ifindex, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
       max(max) AS max, sum(sum) / sum(count) AS avg
FROM (
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max
    FROM metrics_1h_mat
    WHERE bucket >= (SELECT date_trunc('hour', materialized_until) FROM rollup_watermark)
    UNION ALL
    SELECT date_trunc('hour', time), device_id, metric_id, ifindex, count(*), sum(value), min(value), max(value)
    FROM metrics
    WHERE time >= (SELECT materialized_until FROM rollup_watermark)
    GROUP BY 1, 2, 3, 4
) open_hours
GROUP BY bucket, device_id, metric_id, ifindex;

CREATE VIEW metrics_1d AS
SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max, avg
FROM metrics_1d_mat
WHERE bucket < (SELECT date_trunc('day', materialized_until, 'UTC') FROM rollup_watermark)
UNION ALL
SELECT bucket, device_id, metric_id, ifindex, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min,
       max(max) AS max, sum(sum) / sum(count) AS avg
FROM (
    SELECT bucket, device_id, metric_id, ifindex, count, sum, min, max
    FROM metrics_1d_mat
    WHERE bucket >= (SELECT date_trunc('day', materialized_until, 'UTC') FROM rollup_watermark)
    UNION ALL
    SELECT date_trunc('day', time, 'UTC'), device_id, metric_id, ifindex, count(*), sum(value), min(value),
           max(value)
    FROM metrics
    WHERE time >= (SELECT materialized_until FROM rollup_watermark)
    GROUP BY 1, 2, 3, 4
) open_days
GROUP BY bucket, device_id, metric_id, ifindex;
