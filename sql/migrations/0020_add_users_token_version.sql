-- Login tokens carry the token version of their user at issue time; a token whose version is behind
-- the user's is refused. Changing what a token stands for (active, role, organization, password) moves
-- the version on, so every token issued before stops working, whichever code or hand-written SQL made
-- the change. Signing out moves it on explicitly. Re-hashing the unchanged password at login (after the
-- argon2 parameters changed) sets netpulse.rehash for its transaction and keeps the sessions.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;

CREATE FUNCTION users_bump_token_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.token_version = OLD.token_version AND (
           NEW.is_active IS DISTINCT FROM OLD.is_active
        OR NEW.role IS DISTINCT FROM OLD.role
        OR NEW.is_superuser IS DISTINCT FROM OLD.is_superuser
        OR NEW.organization_id IS DISTINCT FROM OLD.organization_id
        OR (NEW.hashed_password IS DISTINCT FROM OLD.hashed_password
            AND coalesce(current_setting('netpulse.rehash', true), '') <> 'on')) THEN
        NEW.token_version := OLD.token_version + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_token_version BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_token_version();
