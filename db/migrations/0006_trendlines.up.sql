-- Trendline scanning (issue 6): what each trader watches (1H+ timeframes only), their scan
-- settings, the lines found, and the append-only history of each line.
CREATE TABLE watchlists (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  symbol     text NOT NULL CHECK (length(symbol) BETWEEN 1 AND 64),
  timeframe  text NOT NULL CHECK (timeframe IN ('1h', '2h', '4h', '1d', '1w')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, symbol, timeframe)
);
CREATE INDEX watchlists_timeframe ON watchlists (timeframe);

-- One row per user; missing keys take the defaults of lib/trendlines.ts.
CREATE TABLE scan_settings (
  user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  settings   jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trendlines (
  id             uuid PRIMARY KEY,
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  symbol         text NOT NULL,
  timeframe      text NOT NULL CHECK (timeframe IN ('1h', '2h', '4h', '1d', '1w')),
  kind           text NOT NULL CHECK (kind IN ('support', 'resistance')),
  t1             timestamptz NOT NULL,
  p1             numeric NOT NULL,
  t2             timestamptz NOT NULL,
  p2             numeric NOT NULL,
  -- Price change per hour (the geometry is in time, so it does not depend on gaps in the bars).
  slope_per_hour double precision NOT NULL,
  touches        integer NOT NULL CHECK (touches >= 2),
  score          double precision NOT NULL,
  status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'broken', 'retired')),
  first_seen     timestamptz NOT NULL,
  last_evaluated timestamptz NOT NULL,
  broken_at      timestamptz,
  -- Alert state: the open time of the last bar evaluated, so a bar is evaluated once.
  last_bar_ts    timestamptz,
  retested_at    timestamptz,
  UNIQUE (user_id, symbol, timeframe, kind, t1, t2)
);
CREATE INDEX trendlines_by_symbol ON trendlines (user_id, symbol, timeframe, status);

CREATE TABLE trendline_events (
  id           bigserial PRIMARY KEY,
  trendline_id uuid NOT NULL REFERENCES trendlines (id) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('created', 'touched', 'broken', 'retested', 'retired')),
  bar_ts       timestamptz,
  price        numeric,
  data         jsonb NOT NULL DEFAULT '{}',
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trendline_events_by_line ON trendline_events (trendline_id, id);
