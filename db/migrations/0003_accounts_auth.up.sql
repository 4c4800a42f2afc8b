-- Sessions with rotating refresh tokens, login throttling, external identities, webhook key
-- rotation and expiry warnings, and the audit log.

-- Users from an external identity provider may have no local password.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- One row per login: the refresh-token family. Revoking it ends every token of the family.
CREATE TABLE sessions (
  id              uuid PRIMARY KEY,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at      timestamptz NOT NULL,
  last_used_at    timestamptz NOT NULL,
  -- When the newest refresh token of the family expires.
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz,
  revoked_reason  text,
  ip              text,
  user_agent      text
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);

-- Refresh tokens are stored as SHA-256 hashes. A token is used once: using it again revokes
-- its whole family (reuse detection).
CREATE TABLE refresh_tokens (
  token_hash  bytea PRIMARY KEY,
  session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  issued_at   timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed logins per email (lower-cased, known or not): a growing delay after repeated failures.
CREATE TABLE login_throttle (
  email            text PRIMARY KEY,
  failures         integer NOT NULL,
  last_failure_at  timestamptz NOT NULL,
  blocked_until    timestamptz
);

-- Subjects of an external identity provider mapped to local users.
CREATE TABLE external_identities (
  issuer        text NOT NULL,
  subject       text NOT NULL,
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  email         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user ON external_identities (user_id);

ALTER TABLE webhook_keys ADD COLUMN replaced_by uuid REFERENCES webhook_keys (id) ON DELETE SET NULL;
ALTER TABLE webhook_keys ADD COLUMN expiry_warned_at timestamptz;
CREATE INDEX webhook_keys_expiring ON webhook_keys (expires_at)
  WHERE revoked_at IS NULL AND expiry_warned_at IS NULL AND expires_at IS NOT NULL;

-- Who did what, when, from where. Rows outlive the users they name (no foreign keys).
CREATE TABLE audit_log (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT now(),
  -- The acting user; NULL for operator tasks, the system, or a login with an unknown email.
  actor_id     uuid,
  -- The acting user's email, "operator" or "system".
  actor        text NOT NULL,
  action       text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('success', 'failure')),
  target_type  text,
  target_id    text,
  ip           text,
  user_agent   text,
  request_id   text,
  data         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
