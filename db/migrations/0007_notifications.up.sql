-- Notification channels per user (Telegram, Discord) and the notifications that failed every
-- attempt. The channel's secret (Telegram bot token, Discord webhook URL) is sealed with the
-- keyring like broker credentials: never returned by the API, never logged.
CREATE TABLE notification_channels (
  id          uuid PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind        text NOT NULL CHECK (kind IN ('telegram', 'discord')),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  secret      bytea NOT NULL,
  -- Telegram only: the chat the bot writes to.
  chat_id     text CHECK (chat_id IS NULL OR length(chat_id) BETWEEN 1 AND 64),
  -- The event types wanted; NULL means every type.
  events      jsonb,
  enabled     boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 'telegram') = (chat_id IS NOT NULL))
);
CREATE INDEX notification_channels_user ON notification_channels (user_id);

CREATE TABLE notification_dead_letters (
  id           uuid PRIMARY KEY,
  -- A user's channel, or (both NULL) the operator channel of that kind from the configuration.
  channel_id   uuid REFERENCES notification_channels (id) ON DELETE CASCADE,
  user_id      uuid REFERENCES users (id) ON DELETE CASCADE,
  operator     text CHECK (operator IN ('telegram', 'discord')),
  event_type   text NOT NULL,
  message      text NOT NULL,
  attempts     integer NOT NULL CHECK (attempts >= 1),
  last_error   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  replayed_at  timestamptz,
  CHECK ((channel_id IS NULL) = (operator IS NOT NULL))
);
CREATE INDEX notification_dead_letters_pending ON notification_dead_letters (created_at)
  WHERE replayed_at IS NULL;
