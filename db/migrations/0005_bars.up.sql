-- OHLCV bars per user, symbol and timeframe: from the bar-close webhook, Alpaca market data or a
-- CSV import. Kept per user, so one trader's feed can never move another trader's trendlines.
CREATE TABLE bars (
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  symbol      text NOT NULL CHECK (length(symbol) BETWEEN 1 AND 64),
  timeframe   text NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '30m', '1h', '2h', '4h', '1d', '1w')),
  -- The bar's open time.
  ts          timestamptz NOT NULL,
  open        numeric NOT NULL,
  high        numeric NOT NULL,
  low         numeric NOT NULL,
  close       numeric NOT NULL,
  volume      numeric NOT NULL DEFAULT 0 CHECK (volume >= 0),
  source      text NOT NULL CHECK (source IN ('webhook', 'alpaca', 'csv')),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, symbol, timeframe, ts),
  CHECK (high >= low AND high >= open AND high >= close AND low <= open AND low <= close)
);
