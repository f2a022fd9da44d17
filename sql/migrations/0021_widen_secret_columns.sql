-- Stored secrets are encrypted (netpulse.crypto: "fernet:" and a Fernet token), longer than the
-- 255 characters their plaintext may have. varchar to text needs no table rewrite.
ALTER TABLE snmp_credentials
    ALTER COLUMN community TYPE text,
    ALTER COLUMN auth_password TYPE text,
    ALTER COLUMN priv_password TYPE text;
ALTER TABLE devices ALTER COLUMN snmp_community TYPE text;
