-- Network interfaces as SNMP polls find them (IF-MIB), one row per device and ifIndex, upserted by
-- ingest.interfaces.upsert_interfaces after each poll. Metric rows name an interface by
-- (device_id, ifindex), this table's unique key.
CREATE TABLE interfaces (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ifindex      integer NOT NULL CONSTRAINT interfaces_ifindex_check CHECK (ifindex > 0),
    name         varchar(255) NOT NULL DEFAULT '',              -- ifName, else ifDescr
    speed_bps    bigint CONSTRAINT interfaces_speed_bps_check CHECK (speed_bps >= 0),  -- NULL: unknown
    oper_status  varchar(20) NOT NULL DEFAULT 'unknown' CONSTRAINT interfaces_oper_status_check
                 CHECK (oper_status IN ('up', 'down', 'testing', 'unknown', 'dormant', 'not_present',
                                        'lower_layer_down')),
    last_seen    timestamptz NOT NULL,
    CONSTRAINT interfaces_device_id_ifindex_key UNIQUE (device_id, ifindex)
);
