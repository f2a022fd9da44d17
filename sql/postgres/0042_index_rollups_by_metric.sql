-- Fleet-wide charts read one metric of every device over a time range (the worst latencies of the
-- overview): the rollups' primary keys lead with the device, so give the hourly and daily ones an
-- index that leads with the metric and carries what the ranking sums (an index-only scan: the rows of
-- one metric are spread over every page of the table). The raw and minute tables are read by device only.
CREATE INDEX metrics_1h_mat_metric_id_bucket_idx ON metrics_1h_mat (metric_id, bucket)
    INCLUDE (device_id, ifindex, count, sum);
CREATE INDEX metrics_1d_mat_metric_id_bucket_idx ON metrics_1d_mat (metric_id, bucket)
    INCLUDE (device_id, ifindex, count, sum);
