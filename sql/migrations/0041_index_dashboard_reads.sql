-- Indexes for the dashboard's questions at 10,000 devices and thousands of alerts.
-- Open alerts newest first, per organization (the alerts page and its root-cause groups).
CREATE INDEX alerts_organization_id_created_at_open_idx ON alerts (organization_id, created_at DESC)
    WHERE NOT resolved;
-- All alerts of an organization newest first (the "all incl. resolved" list and the alerts-per-hour chart).
CREATE INDEX alerts_organization_id_created_at_idx ON alerts (organization_id, created_at DESC);
