-- Fleet-wide charts read one metric of every device over a time range (the worst latencies of the
-- overview): index the hourly and daily continuous aggregates by metric and bucket.
CREATE INDEX metrics_1h_metric_id_bucket_idx ON metrics_1h (metric_id, bucket)
    INCLUDE (device_id, ifindex, count, sum);
CREATE INDEX metrics_1d_metric_id_bucket_idx ON metrics_1d (metric_id, bucket)
    INCLUDE (device_id, ifindex, count, sum);
