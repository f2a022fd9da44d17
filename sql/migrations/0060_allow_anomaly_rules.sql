-- Alert rules of kind 'anomaly': the metric's stored anomaly score (anomaly_scores) >= k for for_s.
-- k is kept in k_mad (for a dynamic rule the band's half-width in MADs, for an anomaly rule a score in (0, 1]).
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_kind_check
    CHECK (kind IN ('threshold', 'dynamic', 'status', 'anomaly'));
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_anomaly_fields
    CHECK (kind <> 'anomaly' OR (metric IS NOT NULL AND k_mad IS NOT NULL AND k_mad <= 1));
