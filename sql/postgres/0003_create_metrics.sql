-- Metrics storage, plain PostgreSQL variant (no extension: the embedded default, managed databases).
-- Raw rows go to a table range-partitioned by day; the rollups are ordinary tables that the loader
-- keeps up to date in the same transaction as the raw rows, with mergeable aggregates
-- (count, sum, min, max; avg derived). Partitions are created ahead and dropped past retention by
-- netpulse.storage (the maintain_storage actor). Relation names and columns match the TimescaleDB
-- variant exactly, so no query branches on the variant.

CREATE TABLE metrics (
    time       timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL DEFAULT 0,   -- 0: the device itself; otherwise the SNMP ifIndex
    value      double precision NOT NULL,
    CONSTRAINT metrics_pkey PRIMARY KEY (device_id, metric_id, ifindex, time)
) PARTITION BY RANGE (time);
CREATE INDEX metrics_time_brin ON metrics USING brin (time);

CREATE TABLE metrics_1m (
    bucket     timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL DEFAULT 0,
    count      bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    avg        double precision GENERATED ALWAYS AS (sum / count) STORED,
    CONSTRAINT metrics_1m_pkey PRIMARY KEY (device_id, metric_id, ifindex, bucket)
) PARTITION BY RANGE (bucket);
CREATE INDEX metrics_1m_bucket_brin ON metrics_1m USING brin (bucket);

CREATE TABLE metrics_1h (
    bucket     timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL DEFAULT 0,
    count      bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    avg        double precision GENERATED ALWAYS AS (sum / count) STORED,
    CONSTRAINT metrics_1h_pkey PRIMARY KEY (device_id, metric_id, ifindex, bucket)
) PARTITION BY RANGE (bucket);
CREATE INDEX metrics_1h_bucket_brin ON metrics_1h USING brin (bucket);

CREATE TABLE metrics_1d (
    bucket     timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL DEFAULT 0,
    count      bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    avg        double precision GENERATED ALWAYS AS (sum / count) STORED,
    CONSTRAINT metrics_1d_pkey PRIMARY KEY (device_id, metric_id, ifindex, bucket)
);
CREATE INDEX metrics_1d_bucket_idx ON metrics_1d (bucket);
