-- Alerting: rules, maintenance windows, escalation policies, SLA targets, the alert lifecycle and
-- its history, and stored anomaly scores. The spec's alerts table (0001) is extended, not replaced.

-- Who an object applies to: one device, a group, a site, a tag, or the whole organization.
CREATE DOMAIN scope_kind AS varchar(10) CHECK (VALUE IN ('device', 'group', 'site', 'tag', 'all'));

CREATE TABLE escalation_policies (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    -- Tiers in order: [{"after_s": 0, "channels": ["noc-email", "noc-slack"]}, {"after_s": 900, ...}].
    -- Tier 0 is notified when an alert opens; tier k when a critical alert is still unacknowledged
    -- after_s seconds after it opened. Channels are notification_channels names.
    steps            jsonb NOT NULL DEFAULT '[]',
    digest_every_s   integer NOT NULL DEFAULT 900 CONSTRAINT escalation_policies_digest_check CHECK (digest_every_s >= 60),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT escalation_policies_organization_id_name_key UNIQUE (organization_id, name),
    CONSTRAINT escalation_policies_steps_is_array CHECK (jsonb_typeof(steps) = 'array')
);

CREATE TABLE alert_rules (
    id                    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                  varchar(100) NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    -- threshold: value against a fixed value; dynamic: outside the hour-of-week baseline band;
    -- status: the device's own status (down/degraded) with the hysteresis of the probes.
    kind                  varchar(10) NOT NULL CONSTRAINT alert_rules_kind_check CHECK (kind IN ('threshold', 'dynamic', 'status')),
    metric                varchar(64),
    scope                 scope_kind NOT NULL DEFAULT 'all',
    scope_ref             varchar(100),         -- the device, group, site or tag name; NULL for 'all'
    comparator            varchar(2) CONSTRAINT alert_rules_comparator_check CHECK (comparator IN ('>', '>=', '<', '<=')),
    value                 double precision,
    clear_value           double precision,
    for_s                 integer NOT NULL DEFAULT 0 CONSTRAINT alert_rules_for_check CHECK (for_s >= 0),
    k_mad                 double precision CONSTRAINT alert_rules_k_check CHECK (k_mad > 0),
    baseline_weeks        smallint CONSTRAINT alert_rules_weeks_check CHECK (baseline_weeks BETWEEN 1 AND 12),
    severity              varchar(20) NOT NULL CONSTRAINT alert_rules_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    escalation_policy_id  integer REFERENCES escalation_policies (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_rules_organization_id_name_key UNIQUE (organization_id, name),
    CONSTRAINT alert_rules_scope_ref CHECK ((scope = 'all') = (scope_ref IS NULL)),
    CONSTRAINT alert_rules_threshold_fields CHECK (kind <> 'threshold' OR (metric IS NOT NULL AND comparator IS NOT NULL AND value IS NOT NULL)),
    CONSTRAINT alert_rules_dynamic_fields CHECK (kind <> 'dynamic' OR (metric IS NOT NULL AND k_mad IS NOT NULL))
);

CREATE TABLE maintenance_windows (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    scope            scope_kind NOT NULL,
    scope_ref        varchar(100),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    reason           text NOT NULL DEFAULT '',
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_windows_span CHECK (ends_at > starts_at),
    CONSTRAINT maintenance_windows_scope_ref CHECK ((scope = 'all') = (scope_ref IS NULL))
);
CREATE INDEX maintenance_windows_organization_id_ends_at_idx ON maintenance_windows (organization_id, ends_at);

CREATE TABLE sla_targets (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    scope            scope_kind NOT NULL,
    scope_ref        varchar(100),
    target_pct       numeric(7, 4) NOT NULL CONSTRAINT sla_targets_pct_check CHECK (target_pct > 0 AND target_pct <= 100),
    period           varchar(10) NOT NULL DEFAULT 'month' CONSTRAINT sla_targets_period_check CHECK (period IN ('day', 'week', 'month', 'quarter', 'year')),
    severity         varchar(20) NOT NULL DEFAULT 'critical' CONSTRAINT sla_targets_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    CONSTRAINT sla_targets_scope_ref CHECK ((scope = 'all') = (scope_ref IS NULL)),
    CONSTRAINT sla_targets_scope_key UNIQUE NULLS NOT DISTINCT (organization_id, scope, scope_ref, period)
);

-- The alert lifecycle: firing -> acknowledged -> resolved; repeats raise occurrences and last_seen.
ALTER TABLE alerts
    ADD COLUMN rule_id             integer REFERENCES alert_rules (id) ON DELETE SET NULL,
    ADD COLUMN metric              varchar(64),
    ADD COLUMN ifindex             integer NOT NULL DEFAULT 0,
    ADD COLUMN value               double precision,
    ADD COLUMN threshold           double precision,
    -- When the condition began (the first breaching sample), as opposed to created_at (when it fired).
    ADD COLUMN started_at          timestamptz,
    ADD COLUMN suppressed          boolean NOT NULL DEFAULT false,
    ADD COLUMN suppressed_reason   varchar(20) CONSTRAINT alerts_suppressed_reason_check
                                   CHECK (suppressed_reason IN ('parent_down', 'maintenance')),
    ADD COLUMN flapping            boolean NOT NULL DEFAULT false,
    ADD COLUMN escalation_level    smallint NOT NULL DEFAULT 0,
    ADD COLUMN notified_at         timestamptz,
    ADD COLUMN acknowledged_note   text,
    ADD COLUMN resolved_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN resolution_note     text,
    ADD CONSTRAINT alerts_suppressed_has_reason CHECK (NOT suppressed OR suppressed_reason IS NOT NULL);
CREATE INDEX alerts_organization_id_status_idx ON alerts (organization_id, status) WHERE NOT resolved;
CREATE INDEX alerts_fingerprint_created_at_idx ON alerts (organization_id, fingerprint, created_at);

-- Everything that ever happened to an alert, in order.
CREATE TABLE alert_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id   uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    time       timestamptz NOT NULL,
    kind       varchar(20) NOT NULL CONSTRAINT alert_events_kind_check CHECK (kind IN (
                   'opened', 'repeated', 'acknowledged', 'resolved', 'suppressed', 'unsuppressed', 'flapping',
                   'escalated', 'notified', 'digested')),
    user_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    note       text,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_alert_id_time_idx ON alert_events (alert_id, time);

-- Anomaly scores per series and time (analytics.anomaly), kept beside the metrics they score.
CREATE TABLE anomaly_scores (
    time       timestamptz NOT NULL,
    device_id  integer NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    metric_id  smallint NOT NULL,
    ifindex    integer NOT NULL DEFAULT 0,
    score      real NOT NULL CONSTRAINT anomaly_scores_range CHECK (score >= 0 AND score <= 1),
    PRIMARY KEY (device_id, metric_id, ifindex, time)
);
CREATE INDEX anomaly_scores_time_brin ON anomaly_scores USING brin (time);
