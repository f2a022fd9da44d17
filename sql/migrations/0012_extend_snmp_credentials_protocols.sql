-- The privacy protocols the poller supports (ingest.snmp.PRIV_PROTOCOLS): besides net-snmp's AES192 and
-- AES256 (Blumenthal key extension), Cisco's AES192C and AES256C (Reeder key extension).
ALTER TABLE snmp_credentials DROP CONSTRAINT snmp_credentials_priv_check;
ALTER TABLE snmp_credentials ADD CONSTRAINT snmp_credentials_priv_check
    CHECK (priv_protocol IS NULL OR priv_protocol IN ('DES', 'AES', 'AES192', 'AES256', 'AES192C', 'AES256C'));
