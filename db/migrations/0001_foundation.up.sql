-- Durable queue for the PostgreSQL adapter (several instances share it).
-- A job is claimed by setting locked_until; a crashed worker's lease expires and the job runs again.
CREATE TABLE queue_jobs (
  id            uuid PRIMARY KEY,
  type          text NOT NULL CHECK (length(type) BETWEEN 1 AND 200),
  payload       jsonb NOT NULL,
  attempts      integer NOT NULL DEFAULT 0,
  backoff_ms    integer[] NOT NULL DEFAULT '{}',
  run_at        timestamptz NOT NULL DEFAULT now(),
  locked_until  timestamptz,
  locked_by     text,
  last_error    text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_jobs_due ON queue_jobs (run_at);

CREATE TABLE queue_dead_letters (
  id          uuid PRIMARY KEY,
  type        text NOT NULL,
  payload     jsonb NOT NULL,
  attempts    integer NOT NULL,
  error       text NOT NULL,
  created_at  timestamptz NOT NULL,
  failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_dead_letters_failed_at ON queue_dead_letters (failed_at);
