-- Leases: one instance at a time owns a named piece of work (an account's executor, a cron
-- tick). A lease is held until `expires_at`; its owner renews it, and when the owner dies it
-- lapses and a survivor takes it. Times are the database's, so instances' clocks do not matter.
CREATE TABLE leases (
  name        text PRIMARY KEY,
  owner       text NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
