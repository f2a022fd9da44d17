-- Probe failures are data: the latest outcome of each probe of a device (ICMP, SNMP, the TCP fallback
-- or a TCP/HTTP service check), with its last error and when it last succeeded. One row per device,
-- probe kind and check (check_id 0: the device itself, as in the metrics' ifindex; otherwise the
-- service_checks id). Written by the loader in the transaction that stores the batch's metric rows;
-- a redelivered batch changes nothing (a row only moves forward in checked_at).
CREATE TABLE probe_status (
    device_id        integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind             varchar(8) NOT NULL CONSTRAINT probe_status_kind_check CHECK (kind IN ('icmp', 'snmp', 'tcp', 'http')),
    check_id         integer NOT NULL DEFAULT 0,
    checked_at       timestamptz NOT NULL,          -- the scheduled time of the latest probe stored
    ok               boolean NOT NULL,              -- did that probe succeed
    error            text,                          -- the latest failure's reason ("auth_failed", "timeout", ...), kept after a success
    detail           text,                          -- the agent's or library's words for it ("wrongDigest: ...")
    last_error_at    timestamptz,
    last_success_at  timestamptz,
    failing_since    timestamptz,                   -- the first failure of the current run of failures; NULL while ok
    fail_streak      integer NOT NULL DEFAULT 0 CONSTRAINT probe_status_fail_streak_check CHECK (fail_streak >= 0),
    PRIMARY KEY (device_id, kind, check_id)
);
-- The built-in "SNMP failing while ICMP answers" rule reads the failing SNMP rows only.
CREATE INDEX probe_status_failing_idx ON probe_status (kind, fail_streak) WHERE NOT ok;
