-- Data: the time a probe's host name took to resolve (devices configured by name, not address).
INSERT INTO metric_kinds (id, name, unit, description) VALUES
    (18, 'dns_resolve_ms', 'ms', 'DNS lookup time of a device configured by host name, once per probe interval')
ON CONFLICT (id) DO NOTHING;
