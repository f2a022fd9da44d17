-- Data: the metric catalogue (mirrored by netpulse.metrics.MetricKind; a test keeps the two equal).
INSERT INTO metric_kinds (id, name, unit, description) VALUES
    (1,  'icmp_rtt_ms',     'ms',  'ICMP round-trip time, average of the echoes of one probe'),
    (2,  'icmp_rtt_min_ms', 'ms',  'ICMP round-trip time, minimum'),
    (3,  'icmp_rtt_max_ms', 'ms',  'ICMP round-trip time, maximum'),
    (4,  'icmp_jitter_ms',  'ms',  'ICMP jitter, mean deviation of consecutive round-trip times'),
    (5,  'icmp_loss_pct',   '%',   'ICMP packet loss'),
    (6,  'tcp_connect_ms',  'ms',  'TCP connect time'),
    (7,  'cpu_pct',         '%',   'Processor load'),
    (8,  'mem_pct',         '%',   'Memory in use'),
    (9,  'if_in_bps',       'bit/s', 'Interface inbound rate'),
    (10, 'if_out_bps',      'bit/s', 'Interface outbound rate'),
    (11, 'if_util_pct',     '%',   'Interface utilisation, the larger direction against ifHighSpeed'),
    (12, 'if_errors_ps',    '1/s', 'Interface errors per second, both directions'),
    (13, 'available',       '1',   '1 when the device answered its probe, 0 when it did not')
ON CONFLICT (id) DO NOTHING;
