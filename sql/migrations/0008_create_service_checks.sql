-- Service checks: a TCP port or an HTTP(S) URL checked on a device (ingest.tcp, ingest.http).
-- Their metric rows (http_response_ms, http_status, tls_cert_days, check_ok, and tcp_connect_ms of a
-- tcp check) carry service_checks.id in the metrics table's ifindex column; ifindex 0 stays the
-- device itself (identity ids start at 1). See netpulse.metrics.
INSERT INTO metric_kinds (id, name, unit, description) VALUES
    (14, 'http_response_ms', 'ms', 'HTTP check: time until the response headers arrived (connect and TLS included)'),
    (15, 'http_status',      '1',  'HTTP check: response status code'),
    (16, 'tls_cert_days',    'd',  'HTTPS check: days until the server certificate expires (negative once expired)'),
    (17, 'check_ok',         '1',  '1 when the service check passed, 0 when it did not')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE service_checks (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Tenancy; inventory.add_service_check keeps it equal to the device's organization.
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    device_id        integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind             varchar(4) NOT NULL CONSTRAINT service_checks_kind_check CHECK (kind IN ('tcp', 'http')),
    name             varchar(100) NOT NULL,
    port             integer CONSTRAINT service_checks_port_check CHECK (port BETWEEN 1 AND 65535),  -- tcp
    url              varchar(2048),                                                                -- http
    method           varchar(4) NOT NULL DEFAULT 'GET'
                     CONSTRAINT service_checks_method_check CHECK (method IN ('GET', 'HEAD')),
    -- NULL: any 2xx or 3xx status passes.
    expected_status  smallint CONSTRAINT service_checks_expected_status_check
                     CHECK (expected_status BETWEEN 100 AND 599),
    -- NULL: the body is not read. Looked for in the first MiB of the body.
    expected_body    varchar(1024),
    timeout_s        real NOT NULL DEFAULT 5
                     CONSTRAINT service_checks_timeout_check CHECK (timeout_s > 0 AND timeout_s <= 60),
    verify_tls       boolean NOT NULL DEFAULT true,
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT service_checks_device_id_name_key UNIQUE (device_id, name),
    CONSTRAINT service_checks_tcp_fields CHECK (kind <> 'tcp' OR (port IS NOT NULL AND url IS NULL
                                                                  AND expected_status IS NULL
                                                                  AND expected_body IS NULL)),
    CONSTRAINT service_checks_http_fields CHECK (kind <> 'http' OR (url IS NOT NULL AND port IS NULL)),
    CONSTRAINT service_checks_head_without_body CHECK (method <> 'HEAD' OR expected_body IS NULL)
);
CREATE INDEX service_checks_organization_id_idx ON service_checks (organization_id);
