-- Users, webhook keys, broker accounts, and the signal → order → fill → position record.

CREATE TABLE users (
  id             uuid PRIMARY KEY,
  email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  password_hash  text NOT NULL,
  role           text NOT NULL DEFAULT 'trader' CHECK (role IN ('admin', 'trader')),
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Keys are stored as SHA-256 hashes; `prefix` is the short visible start (e.g. "whk_3f9a").
CREATE TABLE webhook_keys (
  id            uuid PRIMARY KEY,
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix        text NOT NULL,
  key_hash      bytea NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  expires_at    timestamptz,
  revoked_at    timestamptz
);
CREATE INDEX webhook_keys_user ON webhook_keys (user_id);

CREATE TABLE broker_accounts (
  id                 uuid PRIMARY KEY,
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  alias              text NOT NULL CHECK (alias ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
  broker             text NOT NULL CHECK (broker IN ('paper', 'alpaca')),
  live               boolean NOT NULL DEFAULT false,
  -- AES-256-GCM with a key version (see lib/crypto); NULL for the paper broker.
  credentials        bytea,
  -- Per-account symbol overrides, e.g. {"NQ1!": "MNQZ6", "BTCUSD": "BTC/USD"}.
  symbol_map         jsonb NOT NULL DEFAULT '{}',
  -- Map continuous futures to their micro contract (NQ1! → MNQ…).
  micro_futures      boolean NOT NULL DEFAULT false,
  -- RiskLimits (lib/risk.ts); missing fields mean "no limit".
  risk               jsonb NOT NULL DEFAULT '{}',
  -- Paper broker settings: slippage_bps, fee_per_unit, fee_bps.
  paper              jsonb NOT NULL DEFAULT '{}',
  kill_switch        boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, alias)
);

-- Process-wide switches (the global kill switch).
CREATE TABLE settings (
  key         text PRIMARY KEY,
  value       jsonb NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signals (
  id             uuid PRIMARY KEY,
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  account_id     uuid REFERENCES broker_accounts (id) ON DELETE SET NULL,
  key_id         uuid REFERENCES webhook_keys (id) ON DELETE SET NULL,
  source         text NOT NULL CHECK (source IN ('tradingview', 'signed')),
  dedup_key      text NOT NULL,
  -- The body as received, with the webhook key blanked out.
  raw_body       text NOT NULL,
  account_alias  text,
  ticker         text,
  symbol         text,
  action         text,
  side           text CHECK (side IN ('buy', 'sell')),
  quantity       numeric,
  order_type     text,
  time_in_force  text,
  price          numeric,
  limit_price    numeric,
  stop_price     numeric,
  take_profit    numeric,
  stop_loss      numeric,
  sender_id      text,
  strategy       jsonb,
  comment        text,
  signal_time    timestamptz,
  status         text NOT NULL CHECK (status IN ('accepted', 'executing', 'placed', 'filled', 'rejected', 'failed', 'canceled')),
  reason         text,
  received_at    timestamptz NOT NULL,
  accepted_at    timestamptz,
  dispatched_at  timestamptz,
  ordered_at     timestamptz,
  filled_at      timestamptz,
  finished_at    timestamptz
);
CREATE INDEX signals_user_recent ON signals (user_id, received_at DESC, id DESC);
CREATE INDEX signals_unfinished ON signals (received_at) WHERE status IN ('accepted', 'executing', 'placed');
-- The last price any alert carried for a symbol (paper fills of alerts that carry none).
CREATE INDEX signals_symbol_priced ON signals (symbol, received_at DESC) WHERE price IS NOT NULL;

-- One row per (user, dedup key) while its window is open: the unique key is the dedup.
CREATE TABLE signal_dedup (
  user_id     uuid NOT NULL,
  dedup_key   text NOT NULL,
  signal_id   uuid NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (user_id, dedup_key)
);
CREATE INDEX signal_dedup_expires ON signal_dedup (expires_at);

CREATE TABLE orders (
  id                  uuid PRIMARY KEY,
  user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  account_id          uuid NOT NULL REFERENCES broker_accounts (id) ON DELETE CASCADE,
  signal_id           uuid REFERENCES signals (id) ON DELETE SET NULL,
  parent_id           uuid REFERENCES orders (id) ON DELETE CASCADE,
  leg                 text NOT NULL DEFAULT 'entry' CHECK (leg IN ('entry', 'take_profit', 'stop_loss')),
  client_order_id     text NOT NULL UNIQUE,
  broker_order_id     text,
  symbol              text NOT NULL,
  side                text NOT NULL CHECK (side IN ('buy', 'sell')),
  quantity            numeric NOT NULL CHECK (quantity > 0),
  order_type          text NOT NULL CHECK (order_type IN ('market', 'limit', 'stop', 'stop_limit')),
  time_in_force       text NOT NULL,
  limit_price         numeric,
  stop_price          numeric,
  status              text NOT NULL CHECK (status IN ('new', 'pending', 'partially_filled', 'filled', 'canceled', 'expired', 'rejected')),
  broker_status       text,
  filled_quantity     numeric NOT NULL DEFAULT 0,
  average_fill_price  numeric,
  reason              text,
  -- [{status, broker_status, at}] in order.
  status_history      jsonb NOT NULL DEFAULT '[]',
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX orders_broker_order ON orders (account_id, broker_order_id) WHERE broker_order_id IS NOT NULL;
CREATE INDEX orders_user_recent ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_open ON orders (account_id) WHERE status IN ('new', 'pending', 'partially_filled');

CREATE TABLE fills (
  id              uuid PRIMARY KEY,
  order_id        uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  account_id      uuid NOT NULL REFERENCES broker_accounts (id) ON DELETE CASCADE,
  broker_fill_id  text NOT NULL,
  symbol          text NOT NULL,
  side            text NOT NULL CHECK (side IN ('buy', 'sell')),
  quantity        numeric NOT NULL CHECK (quantity > 0),
  price           numeric NOT NULL,
  fee             numeric NOT NULL DEFAULT 0,
  -- P&L this fill realized, net of its fee (daily loss limits sum it).
  realized_pnl    numeric NOT NULL DEFAULT 0,
  filled_at       timestamptz NOT NULL,
  UNIQUE (order_id, broker_fill_id)
);
CREATE INDEX fills_account_time ON fills (account_id, filled_at);

CREATE TABLE positions (
  account_id      uuid NOT NULL REFERENCES broker_accounts (id) ON DELETE CASCADE,
  symbol          text NOT NULL,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- Signed: long > 0, short < 0.
  quantity        numeric NOT NULL DEFAULT 0,
  average_price   numeric NOT NULL DEFAULT 0,
  realized_pnl    numeric NOT NULL DEFAULT 0,
  last_price      numeric,
  opened_at       timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, symbol)
);

-- Round trips: a position opened and (eventually) closed, for P&L and R-multiples.
CREATE TABLE trades (
  id               uuid PRIMARY KEY,
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  account_id       uuid NOT NULL REFERENCES broker_accounts (id) ON DELETE CASCADE,
  symbol           text NOT NULL,
  direction        text NOT NULL CHECK (direction IN ('long', 'short')),
  quantity         numeric NOT NULL,
  entry_price      numeric NOT NULL,
  exit_price       numeric,
  stop_loss        numeric,
  realized_pnl     numeric NOT NULL DEFAULT 0,
  fees             numeric NOT NULL DEFAULT 0,
  status           text NOT NULL CHECK (status IN ('open', 'closed')),
  entry_signal_id  uuid,
  exit_signal_id   uuid,
  opened_at        timestamptz NOT NULL,
  closed_at        timestamptz
);
CREATE INDEX trades_user_recent ON trades (user_id, opened_at DESC, id DESC);
CREATE UNIQUE INDEX trades_one_open ON trades (account_id, symbol) WHERE status = 'open';

-- Last known price per symbol (from signals and bars), for paper fills without a price.
CREATE TABLE last_prices (
  symbol  text PRIMARY KEY,
  price   numeric NOT NULL,
  at      timestamptz NOT NULL
);

-- Every state change, in order; never updated or deleted.
CREATE TABLE journal (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     uuid,
  account_id  uuid,
  signal_id   uuid,
  order_id    uuid,
  event       text NOT NULL,
  data        jsonb NOT NULL DEFAULT '{}',
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_signal ON journal (signal_id, id);
CREATE INDEX journal_user_recent ON journal (user_id, id DESC);

CREATE FUNCTION journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'journal is append-only: % is not allowed', TG_OP;
END
$$;
CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal
  FOR EACH ROW EXECUTE FUNCTION journal_is_append_only();
