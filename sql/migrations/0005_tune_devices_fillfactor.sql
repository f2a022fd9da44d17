-- The loader rewrites each probed device's status and last_seen every interval: room on every
-- page lets those updates stay HOT (no index churn, dead versions pruned in place).
ALTER TABLE devices SET (fillfactor = 70);
