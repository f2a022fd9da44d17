-- Core inventory and users. Tenancy: every tenant row carries organization_id.
-- Devices use integer ids (not the spec's UUIDs) because every metric row carries one: 4 bytes
-- instead of 16 on billions of rows; organizations and users keep the spec's UUIDs.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(255) NOT NULL,
    slug        varchar(100) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email            varchar(255) NOT NULL,
    hashed_password  varchar(255) NOT NULL,
    full_name        varchar(255),
    role             varchar(20) NOT NULL DEFAULT 'viewer'
                     CONSTRAINT users_role_check CHECK (role IN ('admin', 'operator', 'viewer', 'api_user')),
    is_active        boolean NOT NULL DEFAULT true,
    is_superuser     boolean NOT NULL DEFAULT false,
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_organization_id_idx ON users (organization_id);

CREATE TABLE sites (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    slug             varchar(100) NOT NULL,
    time_zone        varchar(64) NOT NULL DEFAULT 'UTC',
    description      text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sites_organization_id_slug_key UNIQUE (organization_id, slug),
    CONSTRAINT sites_organization_id_name_key UNIQUE (organization_id, name)
);

CREATE TABLE device_groups (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    slug             varchar(100) NOT NULL,
    description      text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT device_groups_organization_id_slug_key UNIQUE (organization_id, slug),
    CONSTRAINT device_groups_organization_id_name_key UNIQUE (organization_id, name)
);

CREATE TABLE tags (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    slug             varchar(100) NOT NULL,
    color            char(6) NOT NULL DEFAULT '9e9e9e',
    CONSTRAINT tags_organization_id_slug_key UNIQUE (organization_id, slug)
);

-- Named SNMP credential profiles (v3 users live here; devices may also carry a v2c community inline).
CREATE TABLE snmp_credentials (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    version          varchar(2) NOT NULL CONSTRAINT snmp_credentials_version_check CHECK (version IN ('2c', '3')),
    community        varchar(255),
    username         varchar(255),
    auth_protocol    varchar(10) CONSTRAINT snmp_credentials_auth_check
                     CHECK (auth_protocol IS NULL OR auth_protocol IN ('MD5', 'SHA', 'SHA224', 'SHA256', 'SHA384', 'SHA512')),
    auth_password    varchar(255),
    priv_protocol    varchar(10) CONSTRAINT snmp_credentials_priv_check
                     CHECK (priv_protocol IS NULL OR priv_protocol IN ('DES', 'AES', 'AES192', 'AES256')),
    priv_password    varchar(255),
    CONSTRAINT snmp_credentials_organization_id_name_key UNIQUE (organization_id, name),
    CONSTRAINT snmp_credentials_v2c_community CHECK (version <> '2c' OR community IS NOT NULL),
    CONSTRAINT snmp_credentials_v3_username CHECK (version <> '3' OR username IS NOT NULL)
);

CREATE TABLE devices (
    id                  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                varchar(255) NOT NULL,
    -- What the operator typed: an IPv4/IPv6 literal or a hostname. ip_address is set for literals.
    address             varchar(255) NOT NULL,
    ip_address          inet,
    device_type         varchar(50) NOT NULL CONSTRAINT devices_device_type_check
                        CHECK (device_type IN ('router', 'switch', 'firewall', 'server', 'access_point',
                                               'load_balancer', 'wireless_controller', 'storage', 'other')),
    site_id             integer REFERENCES sites (id) ON DELETE RESTRICT,
    group_id            integer REFERENCES device_groups (id) ON DELETE SET NULL,
    parent_id           integer REFERENCES devices (id) ON DELETE SET NULL,
    -- Lifecycle status (NetBox's seven values); oper_status is what the probes last saw.
    status              varchar(20) NOT NULL DEFAULT 'active' CONSTRAINT devices_status_check
                        CHECK (status IN ('offline', 'active', 'planned', 'staged', 'failed', 'inventory',
                                          'decommissioning')),
    oper_status         varchar(10) NOT NULL DEFAULT 'unknown' CONSTRAINT devices_oper_status_check
                        CHECK (oper_status IN ('unknown', 'up', 'degraded', 'down')),
    last_seen           timestamptz,
    last_checked        timestamptz,
    oper_status_since   timestamptz,
    -- Probe settings; NULL means "the global default from settings".
    probe_enabled       boolean NOT NULL DEFAULT true,
    probe_interval_s    integer CONSTRAINT devices_probe_interval_check CHECK (probe_interval_s BETWEEN 1 AND 86400),
    probe_timeout_s     real CONSTRAINT devices_probe_timeout_check CHECK (probe_timeout_s > 0 AND probe_timeout_s <= 60),
    probe_count         smallint CONSTRAINT devices_probe_count_check CHECK (probe_count BETWEEN 1 AND 100),
    -- SNMP: version NULL means "do not poll SNMP".
    snmp_version        varchar(2) CONSTRAINT devices_snmp_version_check CHECK (snmp_version IN ('2c', '3')),
    snmp_port           integer NOT NULL DEFAULT 161 CONSTRAINT devices_snmp_port_check CHECK (snmp_port BETWEEN 1 AND 65535),
    snmp_community      varchar(255),
    snmp_credential_id  integer REFERENCES snmp_credentials (id) ON DELETE SET NULL,
    -- Simulated devices are generated by ingest.simulator and never probed on the network.
    simulated           boolean NOT NULL DEFAULT false,
    description         text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT devices_organization_id_name_key UNIQUE (organization_id, name),
    CONSTRAINT devices_not_own_parent CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX devices_organization_id_oper_status_idx ON devices (organization_id, oper_status);
CREATE INDEX devices_site_id_idx ON devices (site_id);
CREATE INDEX devices_group_id_idx ON devices (group_id);
CREATE INDEX devices_parent_id_idx ON devices (parent_id);
CREATE UNIQUE INDEX devices_organization_id_address_key ON devices (organization_id, address);

CREATE TABLE device_tags (
    device_id  integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tag_id     integer NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (device_id, tag_id)
);
CREATE INDEX device_tags_tag_id_idx ON device_tags (tag_id);

CREATE TABLE alerts (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    device_id         integer REFERENCES devices (id) ON DELETE CASCADE,
    alert_type        varchar(50) NOT NULL,
    severity          varchar(20) NOT NULL CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    status            varchar(20) NOT NULL DEFAULT 'firing'
                      CONSTRAINT alerts_status_check CHECK (status IN ('firing', 'acknowledged', 'resolved')),
    fingerprint       varchar(128) NOT NULL,
    message           text NOT NULL,
    occurrences       integer NOT NULL DEFAULT 1,
    acknowledged      boolean NOT NULL DEFAULT false,
    acknowledged_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_at   timestamptz,
    resolved          boolean NOT NULL DEFAULT false,
    resolved_at       timestamptz,
    last_seen         timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_organization_id_severity_idx ON alerts (organization_id, severity);
CREATE INDEX alerts_device_id_created_at_idx ON alerts (device_id, created_at DESC);
-- One open alert per fingerprint: a repeat bumps occurrences instead of opening another.
CREATE UNIQUE INDEX alerts_open_fingerprint_key ON alerts (organization_id, fingerprint) WHERE NOT resolved;

-- The catalogue of metric kinds; metric rows carry its smallint id. Seeded in 0002.
CREATE TABLE metric_kinds (
    id           smallint PRIMARY KEY,
    name         varchar(64) NOT NULL,
    unit         varchar(16) NOT NULL,
    description  text NOT NULL DEFAULT '',
    CONSTRAINT metric_kinds_name_key UNIQUE (name)
);
