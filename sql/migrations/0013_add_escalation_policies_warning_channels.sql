-- Channels per severity: critical alerts go through the tiers of `steps`; warnings go into the digest
-- sent to `warning_channels` (NULL: the channels of tier 0, as before); info alerts are only logged.
ALTER TABLE escalation_policies ADD COLUMN warning_channels text[];
